//! Segments: immutable, checksummed files of versions sorted by key
//! ascending, then timestamp descending. Every process maps them read-only;
//! values are returned as slices of the mapping.
//!
//! ```text
//! segment file  (all integers little-endian; sections 8-byte aligned)
//! ┌──────────┬─────────────────┬────────────┬──────────────┬─────────────┬────────┐
//! │ header   │ data: entries,  │ block      │ offset table │ hash index  │ footer │
//! │ (64 B)   │ sorted, packed  │ crcs       │ u64 × entries│ u64 × slots │        │
//! └──────────┴─────────────────┴────────────┴──────────────┴─────────────┴────────┘
//! 0          64                data_end     table_off      index_off     footer_off
//!
//! header
//!   0  magic "SCRBSEG\0"    8  version u32 (2)    12 flags u32 (0)
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
//! block crcs     crc32c of each 4 KiB block of the data section: block b
//!                covers file bytes [4096 b, 4096 (b + 1)) within
//!                [64, data_end); ceil(data_end / 4096) blocks; zero
//!                padding to 8 bytes
//!
//! offset table   entry i's file offset, u64, for i in 0..entries
//!
//! hash index     slots: a power of two ≥ 2 × keys (at least 2); a slot is
//!                tag (top 24 bits of the hash) << 40 | entry offset / 8,
//!                0 when empty. It names the newest version of a key.
//!
//! footer (the last footer_len bytes)
//!   0  crc32c of offset table u32     4  crc32c of hash index u32
//!   8  crc32c of block crcs u32       12 zero u32
//!   16 tombstones u64     24 min_ts u64     32 max_ts u64
//!   40 newest_put_bytes u64
//!   48 first_key_len u32  52 last_key_len u32
//!   56 first key, last key
//!   .. crc32c of the footer's preceding bytes u32
//! ```
//!
//! The file's size must be exactly `data_end + block table + 8 × entries +
//! 8 × slots + footer_len`, so a truncated or extended file is rejected at
//! open. Keys are 1 byte to 16 MiB − 1; a value is below 4 GiB (its length
//! is a `u32`); the data section is below 8 TiB (the offset bits of a
//! slot).
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
//! footer, the sizes of all sections against the file and the checksums of
//! the block table, the offset table and the index (all small). Entry
//! data is checked by block: each decode checks the entry's bounds, then
//! that every block it lies in has been verified in this process, checking
//! the block's crc32c first if not, and only then reads the entry. A
//! segment keeps one bit per block (atomics, set once and never cleared:
//! the mapping is immutable), so each block is checksummed once per
//! process, not each entry at every read. Damage is an `Error::Corrupted`
//! naming the file and offset, never a panic or a read outside the
//! mapping.
//!
//! **Writing.** Entries stream through a large buffer, their block
//! checksums computed on the way; the block table, the offset table and
//! the index are built in memory (4 bytes per block, 8 per entry, 16 per
//! key) and written at `finish`, then the footer, and last the header (in
//! place of the zeros written at the start), before the file's data is
//! synced. A writer dropped before `finish` removes its file.

mod format;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub(crate) use reader::Segment;
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
