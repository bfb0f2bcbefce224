//! Segments: immutable, checksummed files of versions sorted by key
//! ascending, then timestamp descending. Every process maps them read-only;
//! values are returned as slices of the mapping.
//!
//! ```text
//! segment file  (all integers little-endian; sections 8-byte aligned)
//! ┌──────────┬─────────────────┬──────────────┬─────────────┬────────────┬────────┐
//! │ header   │ data: entries,  │ offset table │ hash index  │ block      │ footer │
//! │ (64 B)   │ sorted, packed  │ u64 × entries│ u64 × slots │ crcs       │        │
//! └──────────┴─────────────────┴──────────────┴─────────────┴────────────┴────────┘
//! 0          64                data_end       index_off     blocks_off   footer_off
//!            └──────── checksummed in 4 KiB blocks ────────┘
//!
//! header
//!   0  magic "SCRBSEG\0"    8  version u32 (3)    12 flags u32 (0)
//!   16 hash seed u64        24 entries u64        32 keys u64
//!   40 data_end u64         48 index slots u64    56 footer_len u32
//!   60 crc32c of bytes 0..60
//!
//! entry (at an 8-byte aligned offset; the next entry follows its padding)
//!   0  ts u64
//!   8  key_len u32: key length in the low 24 bits, kind in the high 8
//!      (1 put, 2 delete)
//!   12 value_len u32
//!   16 key, value, zero padding to a multiple of 8
//!
//! offset table   entry i's file offset, u64, for i in 0..entries
//!
//! hash index     slots: a power of two ≥ 2 × keys (at least 2); a slot is
//!                tag (top 24 bits of the hash) << 40 | entry offset / 8,
//!                0 when empty. It names the newest version of a key.
//!
//! block crcs     crc32c of each 4 KiB block of [64, blocks_off), the data,
//!                offset table and index together: block b covers file
//!                bytes [4096 b, 4096 (b + 1)) within that range, so a
//!                block may hold the end of one section and the start of
//!                the next; ceil(blocks_off / 4096) blocks; zero padding
//!                to 8 bytes
//!
//! footer (the last footer_len bytes)
//!   0  crc32c of block crcs u32       4  zero u32
//!   8  tombstones u64     16 min_ts u64     24 max_ts u64
//!   32 newest_put_bytes u64
//!   40 first_key_len u32  44 last_key_len u32
//!   48 first key, last key
//!   .. crc32c of the footer's preceding bytes u32
//! ```
//!
//! With `index_off = data_end + 8 × entries` and `blocks_off = index_off +
//! 8 × slots`, the file's size must be exactly `blocks_off + block table +
//! footer_len`, so a truncated or extended file is rejected at open. Keys
//! are 1 byte to 16 MiB − 1; a value is below 4 GiB (its length is a
//! `u32`); the data section is below 8 TiB (the offset bits of a slot).
//! Version 2 files (offset table and index checksummed whole, block table
//! before them) are refused as an unsupported version, not converted:
//! compaction rewrites segments, and no released database holds them.
//!
//! **Point reads.** The key's hash is XXH3-64 under the seed in the header
//! (random per file, so keys cannot be chosen in advance to collide). The
//! home slot is `hash & (slots - 1)`; probing is linear and stops at an
//! empty slot, which always exists because the index is at most half full.
//! A slot whose tag matches names an entry directly, so a hit costs about
//! two cache misses: the slot and the entry. The key's older versions
//! follow that entry contiguously, newest first; the read walks forward to
//! the first with a timestamp at or below the snapshot.
//!
//! **Ranges** start through the hash index when the bound is a key of the
//! segment, else by binary search of the offset table; then whole keys
//! from either end. A merge can ask for a scan's hash slot and then its
//! entry ahead of its first step (`SegmentIter::prefetch_front`), so that
//! the misses of several sources overlap.
//!
//! **Integrity.** The file is untrusted. Opening checks the header, the
//! footer, the sizes of all sections against the file and the checksum of
//! the block table (4 bytes per 4 KiB of file, about a thousandth of it);
//! it reads none of the data, offset table or index, whose sizes grow
//! with the entry count. Everything else is checked by block, data,
//! offset table and index alike: before a read uses bytes of a block, it
//! makes sure the block has been verified in this process, checking its
//! crc32c first if not. A decode checks the entry's bounds, then every
//! block the entry lies in; a probe of the index checks the block of its
//! home slot, and another only when it steps into the next block; a read
//! of the offset table checks the block of the entry it reads (8-byte
//! fields at 8-byte offsets never straddle blocks). A segment keeps one
//! bit per block (atomics, set once and never cleared: the mapping is
//! immutable), so each block is checksummed once per process, and a point
//! read pays one bit test for its slot and one per block of its entry.
//! Damage is an `Error::Corrupted` naming the file and the damaged block's
//! offset, never a panic or a read outside the mapping.
//!
//! **Writing.** Entries stream through a large buffer, their block
//! checksums computed on the way; the offset table and the index are built
//! in memory (8 bytes per entry, 16 per key) and streamed the same way at
//! `finish`, then the block table, the footer, and last the header (in
//! place of the zeros written at the start), before the file's data is
//! synced. A writer dropped before `finish` removes its file.

// The fuzz targets recompute a file's checksums with its layout.
pub(crate) mod format;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub(crate) use reader::{Segment, Verify};
// Part of the API even where callers never spell them out.
#[allow(unused_imports)]
pub(crate) use reader::{SegmentIter, Version};
pub(crate) use writer::SegmentWriter;

/// What a segment holds, as recorded in its footer and header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentMeta {
    /// File size in bytes.
    pub size: u64,
    /// Versions stored.
    pub entries: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Versions that are tombstones.
    pub tombstones: u64,
    /// Smallest and largest timestamp (both 0 if there are no entries).
    pub min_ts: u64,
    pub max_ts: u64,
    /// Smallest and largest key (empty if there are no entries).
    pub first_key: Vec<u8>,
    pub last_key: Vec<u8>,
    /// Bytes of key and value of the newest version of each key that is a
    /// put: an estimate of the live data.
    pub newest_put_bytes: u64,
}
