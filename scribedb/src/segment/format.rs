//! Layout constants of segment files and the encoding of their parts.
//!
//! Everything here is pure: byte layouts in, values out. Every function
//! that reads untrusted bytes checks its bounds and reports damage as an
//! [`Error::Corrupted`] naming the file and offset.

use std::path::Path;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::entry::Kind;
use crate::error::{Error, Result};

pub const MAGIC: [u8; 8] = *b"SCRBSEG\0";
/// Version 3: the block checksums cover the offset table and the hash
/// index as well as the data, so that opening reads no section whole.
/// (Version 2 checksummed those two whole, at open, and is not read.)
pub const VERSION: u32 = 3;

// Header, at offset 0.
pub const H_MAGIC: usize = 0; // [u8; 8]
pub const H_VERSION: usize = H_MAGIC + 8; // u32
pub const H_FLAGS: usize = H_VERSION + 4; // u32, zero
pub const H_SEED: usize = H_FLAGS + 4; // u64
pub const H_ENTRIES: usize = H_SEED + 8; // u64
pub const H_KEYS: usize = H_ENTRIES + 8; // u64
pub const H_DATA_END: usize = H_KEYS + 8; // u64
pub const H_SLOTS: usize = H_DATA_END + 8; // u64
pub const H_FOOTER_LEN: usize = H_SLOTS + 8; // u32
pub const H_CRC: usize = H_FOOTER_LEN + 4; // u32 over [0, H_CRC)
pub const HEADER: usize = H_CRC + 4;
const _: () = assert!(HEADER == 64);

// Entry, 8-byte aligned, in the data section.
pub const E_TS: usize = 0; // u64
pub const E_KEY_LEN: usize = E_TS + 8; // u32: key length (low 24 bits), kind (high 8)
pub const E_VALUE_LEN: usize = E_KEY_LEN + 4; // u32
pub const E_KEY: usize = E_VALUE_LEN + 4;
const _: () = assert!(E_KEY == 16);
/// Longest key an entry can hold (its length has 24 bits).
pub const MAX_KEY_LEN: usize = (1 << 24) - 1;
/// Smallest entry: the header and a one-byte key, padded.
pub const MIN_ENTRY: usize = entry_size(1, 0);

/// The data section, the offset table and the hash index, which lie end to
/// end, are checksummed in blocks of this many bytes of the file: block `b`
/// covers `[b × BLOCK, (b + 1) × BLOCK)` within `[HEADER, blocks_off)`
/// (the end of the index). A block may hold the end of one section and the
/// start of the next; one checksum per block keeps a single bit per block
/// in the reader, whatever the section.
pub const BLOCK: usize = 4096;

/// Where the sections after the header lie, all derived from the header's
/// counts (see [`Layout::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// End of the data section: the offset table starts here.
    pub data_end: u64,
    /// Start of the hash index.
    pub index_off: u64,
    /// End of the hash index, so of the bytes the blocks cover: the block
    /// checksum table starts here.
    pub blocks_off: u64,
    /// Number of blocks (at least one: the index is never empty).
    pub blocks: u64,
    /// Start of the footer.
    pub footer_off: u64,
}

impl Layout {
    /// The layout of a file with these header fields; `None` if it would
    /// not fit in a `u64`. `data_end` must be 8-byte aligned.
    pub fn new(data_end: u64, entries: u64, slots: u64) -> Option<Layout> {
        let index_off = entries.checked_mul(8)?.checked_add(data_end)?;
        let blocks_off = slots.checked_mul(8)?.checked_add(index_off)?;
        let blocks = blocks_off.div_ceil(BLOCK as u64);
        let footer_off = blocks_off.checked_add(block_table_len(blocks))?;
        Some(Layout {
            data_end,
            index_off,
            blocks_off,
            blocks,
            footer_off,
        })
    }
}

/// Bytes of the block checksum table: a `u32` per block, padded to 8.
#[inline]
pub fn block_table_len(blocks: u64) -> u64 {
    (4 * blocks + 7) & !7
}

/// The bytes block `b` covers, as file offsets, when the covered bytes end
/// at `blocks_off`.
#[inline]
pub fn block_range(b: usize, blocks_off: usize) -> (usize, usize) {
    ((b * BLOCK).max(HEADER), ((b + 1) * BLOCK).min(blocks_off))
}

// Footer, the last bytes of the file.
pub const F_BLOCKS_CRC: usize = 0; // u32
pub const F_ZERO: usize = F_BLOCKS_CRC + 4; // u32, zero
pub const F_TOMBSTONES: usize = F_ZERO + 4; // u64
pub const F_MIN_TS: usize = F_TOMBSTONES + 8; // u64
pub const F_MAX_TS: usize = F_MIN_TS + 8; // u64
pub const F_NEWEST_PUT_BYTES: usize = F_MAX_TS + 8; // u64
pub const F_FIRST_KEY_LEN: usize = F_NEWEST_PUT_BYTES + 8; // u32
pub const F_LAST_KEY_LEN: usize = F_FIRST_KEY_LEN + 4; // u32
pub const F_KEYS: usize = F_LAST_KEY_LEN + 4; // first key, last key, then crc u32
const _: () = assert!(F_KEYS == 48);
/// Footer bytes besides the two keys (including the final checksum).
pub const FOOTER_FIXED: usize = F_KEYS + 4;

/// Hash index slot: tag in the high bits, entry offset / 8 in the low.
pub const SLOT_OFFSET_BITS: u32 = 40;
pub const SLOT_OFFSET_MASK: u64 = (1 << SLOT_OFFSET_BITS) - 1;
/// Largest data section end the slot encoding can address.
pub const MAX_DATA_END: u64 = 8 << SLOT_OFFSET_BITS;

/// Hash of `key` under the file's seed.
#[inline]
pub fn hash_key(key: &[u8], seed: u64) -> u64 {
    xxh3_64_with_seed(key, seed)
}

/// Hash index capacity for `keys` distinct keys: a power of two, at least
/// twice the key count (so that probing always meets an empty slot).
pub fn index_slots(keys: u64) -> u64 {
    keys.saturating_mul(2).max(2).next_power_of_two()
}

/// The slot that names the entry at byte `offset` for a key hashing to `hash`.
#[inline]
pub fn make_slot(hash: u64, offset: u64) -> u64 {
    debug_assert!(offset & 7 == 0 && offset >= HEADER as u64 && offset < MAX_DATA_END);
    (hash >> SLOT_OFFSET_BITS << SLOT_OFFSET_BITS) | (offset / 8)
}

/// Does the occupied `slot` possibly belong to a key hashing to `hash`?
#[inline]
pub fn slot_tag_matches(slot: u64, hash: u64) -> bool {
    (slot ^ hash) >> SLOT_OFFSET_BITS == 0
}

/// The entry offset an occupied slot names (not yet checked).
#[inline]
pub fn slot_offset(slot: u64) -> u64 {
    (slot & SLOT_OFFSET_MASK) * 8
}

/// Bytes an entry occupies, padding included.
#[inline]
pub const fn entry_size(key_len: usize, value_len: usize) -> usize {
    (E_KEY + key_len + value_len + 7) & !7
}

/// The header of an entry (`key.len()` must be at most [`MAX_KEY_LEN`]).
pub fn encode_entry_head(key: &[u8], ts: u64, kind: Kind, value: &[u8]) -> [u8; E_KEY] {
    debug_assert!(key.len() <= MAX_KEY_LEN);
    let mut head = [0u8; E_KEY];
    head[E_TS..E_TS + 8].copy_from_slice(&ts.to_le_bytes());
    let key_len = key.len() as u32 | (kind as u32) << 24;
    head[E_KEY_LEN..E_KEY_LEN + 4].copy_from_slice(&key_len.to_le_bytes());
    head[E_VALUE_LEN..E_VALUE_LEN + 4].copy_from_slice(&(value.len() as u32).to_le_bytes());
    head
}

/// Where an entry lies, from its header: checked to be inside the data
/// section, not yet checksummed.
#[derive(Clone, Copy)]
pub struct Span {
    pub offset: usize,
    pub key_len: usize,
    pub value_len: usize,
    /// The end of the value (padding excluded).
    pub end: usize,
}

/// The entry at `offset` of `buf`, which must lie in `[HEADER, data_end)`:
/// bounds only. The caller verifies the checksums of the blocks from
/// `offset` to `end` before [`decode_entry`] trusts the bytes.
#[inline]
pub fn entry_span(buf: &[u8], data_end: usize, offset: u64, path: &Path) -> Result<Span> {
    let bad = |what: &str| Error::corrupted(path, offset, format!("segment entry: {what}"));
    let data_end = data_end.min(buf.len());
    let off = match usize::try_from(offset) {
        Ok(o) if o & 7 == 0 && o >= HEADER && o <= data_end.saturating_sub(E_KEY) => o,
        _ => return Err(bad("offset outside the data section or misaligned")),
    };
    let key_len = (le_u32(buf, off + E_KEY_LEN) & MAX_KEY_LEN as u32) as usize;
    let value_len = le_u32(buf, off + E_VALUE_LEN) as usize;
    // Both lengths are below 2^32, so the sum cannot overflow a 64-bit usize.
    let end = off + E_KEY + key_len + value_len;
    if end > data_end {
        return Err(bad("key or value runs past the data section"));
    }
    Ok(Span {
        offset: off,
        key_len,
        value_len,
        end,
    })
}

/// One decoded entry: borrowed from the bytes it was decoded from.
#[derive(Clone, Copy)]
pub struct RawEntry<'a> {
    pub key: &'a [u8],
    pub ts: u64,
    pub kind: Kind,
    pub value: &'a [u8],
    /// Offset of the next entry (the end of this one, padding included).
    pub next: usize,
}

/// Decode the entry at `span`, whose bytes have been verified.
#[inline]
pub fn decode_entry<'a>(buf: &'a [u8], span: Span, path: &Path) -> Result<RawEntry<'a>> {
    let off = span.offset;
    let bad = |what: &str| Error::corrupted(path, off as u64, format!("segment entry: {what}"));
    let kind = Kind::from_code(buf[off + E_KEY_LEN + 3]).ok_or_else(|| bad("unknown kind"))?;
    if span.key_len == 0 {
        return Err(bad("empty key"));
    }
    if kind == Kind::Delete && span.value_len != 0 {
        return Err(bad("tombstone with a value"));
    }
    let key_at = off + E_KEY;
    let value_at = key_at + span.key_len;
    Ok(RawEntry {
        key: &buf[key_at..value_at],
        ts: le_u64(buf, off + E_TS),
        kind,
        value: &buf[value_at..span.end],
        next: (span.end + 7) & !7,
    })
}

/// The little-endian `u32` at `off` (the caller has checked the bounds).
#[inline]
pub fn le_u32(buf: &[u8], off: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[off..off + 4]);
    u32::from_le_bytes(b)
}

/// The little-endian `u64` at `off` (the caller has checked the bounds).
#[inline]
pub fn le_u64(buf: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[off..off + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data section holding `entries` (key, ts, kind, value) end to end
    /// after a zeroed header, as the writer lays them out.
    fn data(entries: &[(&[u8], u64, Kind, &[u8])]) -> (Vec<u8>, Vec<u64>) {
        let mut buf = vec![0u8; HEADER];
        let mut offsets = Vec::new();
        for &(key, ts, kind, value) in entries {
            offsets.push(buf.len() as u64);
            buf.extend_from_slice(&encode_entry_head(key, ts, kind, value));
            buf.extend_from_slice(key);
            buf.extend_from_slice(value);
            buf.resize(buf.len().next_multiple_of(8), 0);
        }
        (buf, offsets)
    }

    #[test]
    fn entries_round_trip_through_span_and_decode() {
        let path = Path::new("seg");
        let entries: [(&[u8], u64, Kind, &[u8]); 3] = [
            (b"a", 9, Kind::Put, b"one"),
            (b"a", 3, Kind::Delete, b""),
            (b"longer key", u64::MAX, Kind::Put, &[0xff; 21]),
        ];
        let (buf, offsets) = data(&entries);
        let mut at = HEADER;
        for (&(key, ts, kind, value), &off) in entries.iter().zip(&offsets) {
            assert_eq!(off as usize, at);
            let span = entry_span(&buf, buf.len(), off, path).unwrap();
            let e = decode_entry(&buf, span, path).unwrap();
            assert_eq!((e.key, e.ts, e.kind, e.value), (key, ts, kind, value));
            assert_eq!(e.next, at + entry_size(key.len(), value.len()));
            at = e.next;
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn entries_out_of_bounds_or_malformed_are_errors() {
        let path = Path::new("seg");
        let (mut buf, offsets) = data(&[(b"key", 1, Kind::Put, b"value")]);
        let end = buf.len();
        // Misaligned, before the data, past its end.
        for off in [offsets[0] + 4, 0, end as u64, u64::MAX] {
            assert!(entry_span(&buf, end, off, path).is_err(), "offset {off}");
        }
        // A value running past the data section.
        assert!(entry_span(&buf, end - 8, offsets[0], path).is_err());
        // An unknown kind; a tombstone with a value; an empty key.
        let at = offsets[0] as usize;
        buf[at + E_KEY_LEN + 3] = 7;
        let span = entry_span(&buf, end, offsets[0], path).unwrap();
        assert!(decode_entry(&buf, span, path).is_err());
        buf[at + E_KEY_LEN + 3] = Kind::Delete as u8;
        assert!(decode_entry(&buf, span, path).is_err());
        let (buf, offsets) = data(&[(b"", 1, Kind::Put, b"")]);
        let span = entry_span(&buf, buf.len(), offsets[0], path).unwrap();
        assert!(decode_entry(&buf, span, path).is_err());
    }

    #[test]
    fn slots_keep_their_tag_and_offset() {
        for (key, offset) in [(&b"a"[..], HEADER as u64), (b"bb", MAX_DATA_END - 8)] {
            let hash = hash_key(key, 0x5eed);
            let slot = make_slot(hash, offset);
            assert_ne!(slot, 0);
            assert!(slot_tag_matches(slot, hash));
            assert!(!slot_tag_matches(slot, hash ^ (1 << 63)));
            assert_eq!(slot_offset(slot), offset);
        }
        assert_eq!(index_slots(0), 2);
        assert_eq!(index_slots(3), 8);
    }

    #[test]
    fn layout_sums_the_sections_and_refuses_overflow() {
        let l = Layout::new(4096, 10, 16).unwrap();
        assert_eq!(l.index_off, 4096 + 80);
        assert_eq!(l.blocks_off, 4096 + 80 + 128);
        assert_eq!(l.blocks, 2);
        assert_eq!(l.footer_off, l.blocks_off + 8);
        assert_eq!(block_table_len(3), 16);
        assert_eq!(block_range(0, 5000), (HEADER, BLOCK));
        assert_eq!(block_range(1, 5000), (BLOCK, 5000));
        assert_eq!(Layout::new(u64::MAX - 8, 2, 2), None);
        assert_eq!(Layout::new(64, u64::MAX / 4, 2), None);
    }
}
