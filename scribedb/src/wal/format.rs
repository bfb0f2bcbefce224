//! Byte format of the write-ahead log.
//!
//! ```text
//! log file (`wal`, `wal-<base>`)
//! ┌───────────────────┬──────────┬──────────┬─────┬────────────────────────┐
//! │ file header 64 B  │ record   │ record   │ ... │ preallocated zeros     │
//! └───────────────────┴──────────┴──────────┴─────┴────────────────────────┘
//!
//! file header: magic "SCRBWAL\0" (8) | version u64 | base u64 | zero padding
//!
//! The log is one sequence of positions over its files: the byte at file
//! offset `o` of the file whose base is `b` has position `b + o`, and a
//! file's first record begins where the one before it ends.
//!
//! record (8-byte aligned):
//! 0   magic        u32   "SCWL"
//! 4   kind         u32   1 = commit
//! 8   payload_len  u64
//! 16  ts           u64   commit timestamp, strictly increasing along the log
//! 24  synced_mark  u64   log position known durable when this record was written
//! 32  header_crc   u32   crc32c of bytes 0..32
//! 36  payload_crc  u32   crc32c of the payload
//! 40  payload, zero-padded to a multiple of 8
//!
//! payload: count u64, then per write:
//!   kind u8 (1 put, 2 delete) | key_len u32 | [value_len u64, put only] | key | [value]
//! ```
//!
//! All integers are little-endian. The end of the log is found by checksum,
//! not by file length: the file is preallocated with zeros.

use crate::entry::Kind;

pub const FILE_MAGIC: [u8; 8] = *b"SCRBWAL\0";
/// Version 3: the log is split into files, each named by and carrying its
/// base position. Version 2 (one file, which may be cut below the
/// manifest's `log_start`) and version 1 (before segments) are upgraded in
/// place on open: they are the single file `wal`, base 0.
pub const FILE_VERSION: u64 = 3;
/// The versions of a one-file log, still accepted for `wal`.
pub const FILE_VERSIONS_ONE_FILE: [u64; 2] = [1, 2];
/// Where the header keeps the file's base position.
pub const FILE_BASE_AT: usize = 16;
pub const FILE_HEADER: usize = 64;

pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"SCWL");
pub const KIND_COMMIT: u32 = 1;
pub const RECORD_HEADER: usize = 40;
/// Largest payload a header may claim; anything above is not a record.
pub const MAX_PAYLOAD: u64 = 1 << 48;
const R_MAGIC: usize = 0;
const R_KIND: usize = R_MAGIC + 4;
const R_PAYLOAD_LEN: usize = R_KIND + 4;
const R_TS: usize = R_PAYLOAD_LEN + 8;
const R_SYNCED_MARK: usize = R_TS + 8;
const R_HEADER_CRC: usize = R_SYNCED_MARK + 8;
const R_PAYLOAD_CRC: usize = R_HEADER_CRC + 4;
/// Where in a record its payload checksum is, filled in after the payload.
pub const PAYLOAD_CRC_AT: usize = R_PAYLOAD_CRC;

/// A parsed, checksum-verified record header.
#[derive(Clone, Copy, Debug)]
pub struct RecordHeader {
    pub payload_len: u64,
    pub ts: u64,
    /// The log position known durable when the record was written:
    /// recovery's proof that bytes before a damaged record were durable.
    pub synced_mark: u64,
    pub payload_crc: u32,
}

impl RecordHeader {
    /// Bytes the whole record occupies in the log (cannot overflow: the
    /// payload length is bounded by `MAX_PAYLOAD` when parsed).
    pub fn total_len(&self) -> u64 {
        RECORD_HEADER as u64 + ((self.payload_len + 7) & !7)
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// Parse the record header at the start of `bytes`; `None` when it is not a
/// valid header (wrong magic, kind or header checksum).
pub fn parse_header(bytes: &[u8]) -> Option<RecordHeader> {
    if bytes.len() < RECORD_HEADER
        || u32_at(bytes, R_MAGIC) != RECORD_MAGIC
        || u32_at(bytes, R_KIND) != KIND_COMMIT
        || crc32c::crc32c(&bytes[..R_HEADER_CRC]) != u32_at(bytes, R_HEADER_CRC)
        || u64_at(bytes, R_PAYLOAD_LEN) > MAX_PAYLOAD
    {
        return None;
    }
    Some(RecordHeader {
        payload_len: u64_at(bytes, R_PAYLOAD_LEN),
        ts: u64_at(bytes, R_TS),
        synced_mark: u64_at(bytes, R_SYNCED_MARK),
        payload_crc: u32_at(bytes, R_PAYLOAD_CRC),
    })
}

/// Feed the payload of a commit to `out`, piece by piece: the count, then
/// per write its small header, its key and its value. Nothing is copied
/// into one buffer, so a commit of any size needs no memory of that size.
pub fn payload_pieces<'a>(
    count: u64,
    writes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    mut out: impl FnMut(&[u8]),
) {
    out(&count.to_le_bytes());
    for (key, value) in writes {
        let mut head = [0u8; 13];
        head[1..5].copy_from_slice(&(key.len() as u32).to_le_bytes());
        let n = match value {
            Some(v) => {
                head[0] = Kind::Put as u8;
                head[5..13].copy_from_slice(&(v.len() as u64).to_le_bytes());
                13
            }
            None => {
                head[0] = Kind::Delete as u8;
                5
            }
        };
        out(&head[..n]);
        out(key);
        if let Some(v) = value {
            out(v);
        }
    }
}

/// The header of a record whose payload has this length and checksum.
pub fn record_header(
    payload_len: u64,
    ts: u64,
    synced_mark: u64,
    payload_crc: u32,
) -> [u8; RECORD_HEADER] {
    let mut b = [0u8; RECORD_HEADER];
    b[R_MAGIC..R_MAGIC + 4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    b[R_KIND..R_KIND + 4].copy_from_slice(&KIND_COMMIT.to_le_bytes());
    b[R_PAYLOAD_LEN..R_PAYLOAD_LEN + 8].copy_from_slice(&payload_len.to_le_bytes());
    b[R_TS..R_TS + 8].copy_from_slice(&ts.to_le_bytes());
    b[R_SYNCED_MARK..R_SYNCED_MARK + 8].copy_from_slice(&synced_mark.to_le_bytes());
    let header_crc = crc32c::crc32c(&b[..R_HEADER_CRC]);
    b[R_HEADER_CRC..R_HEADER_CRC + 4].copy_from_slice(&header_crc.to_le_bytes());
    b[R_PAYLOAD_CRC..R_PAYLOAD_CRC + 4].copy_from_slice(&payload_crc.to_le_bytes());
    b
}

/// Length of the payload of `puts` puts and `deletes` deletes whose keys
/// and values total `key_bytes` and `value_bytes`.
pub fn payload_len(puts: u64, deletes: u64, key_bytes: u64, value_bytes: u64) -> u64 {
    8 + 13 * puts + 5 * deletes + key_bytes + value_bytes
}

/// Length and checksum of a payload, from a pass over its pieces.
#[cfg(test)]
pub fn payload_summary<'a>(
    count: u64,
    writes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> (u64, u32) {
    let (mut len, mut crc) = (0u64, 0u32);
    payload_pieces(count, writes, |piece| {
        len += piece.len() as u64;
        crc = crc32c::crc32c_append(crc, piece);
    });
    (len, crc)
}

/// One write decoded from a payload.
pub struct Write<'a> {
    pub kind: Kind,
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// Offset of the value within the payload.
    pub value_at: u64,
}

/// Offsets within a payload of each write's value, in the order
/// [`payload_pieces`] lays the writes out.
pub struct ValueOffsets {
    pos: u64,
}

impl ValueOffsets {
    pub fn new() -> Self {
        // After the count.
        ValueOffsets { pos: 8 }
    }

    /// The value offset of the next write (`value_len` is `None` for a
    /// delete).
    pub fn next(&mut self, key_len: usize, value_len: Option<usize>) -> u64 {
        let head = if value_len.is_some() { 13 } else { 5 };
        let at = self.pos + head + key_len as u64;
        self.pos = at + value_len.unwrap_or(0) as u64;
        at
    }
}

/// Decode a checksum-verified payload; `Err` names what is malformed.
pub fn decode_payload(payload: &[u8]) -> Result<Vec<Write<'_>>, &'static str> {
    let mut pos = 8usize;
    let count = payload
        .get(..8)
        .map(|b| u64_at(b, 0))
        .ok_or("payload shorter than its count")?;
    let take = |pos: &mut usize, n: usize| -> Result<&[u8], &'static str> {
        let end = pos
            .checked_add(n)
            .filter(|&e| e <= payload.len())
            .ok_or("write runs past the payload")?;
        let s = &payload[*pos..end];
        *pos = end;
        Ok(s)
    };
    let mut writes = Vec::with_capacity(count.min(payload.len() as u64 / 6) as usize);
    for _ in 0..count {
        let kind = match take(&mut pos, 1)?[0] {
            1 => Kind::Put,
            2 => Kind::Delete,
            _ => return Err("unknown write kind"),
        };
        let key_len = u32_at(take(&mut pos, 4)?, 0) as usize;
        let value_len = match kind {
            Kind::Put => {
                usize::try_from(u64_at(take(&mut pos, 8)?, 0)).map_err(|_| "value too long")?
            }
            Kind::Delete => 0,
        };
        if key_len == 0 || key_len > crate::entry::MAX_KEY_LEN {
            return Err("key length out of range");
        }
        if value_len > crate::entry::MAX_VALUE_LEN {
            return Err("value longer than the limit");
        }
        let key = take(&mut pos, key_len)?;
        let value_at = pos as u64;
        let value = take(&mut pos, value_len)?;
        writes.push(Write {
            kind,
            key,
            value,
            value_at,
        });
    }
    if pos != payload.len() {
        return Err("trailing bytes after the last write");
    }
    // A commit writes each key once (its write buffer keeps the last
    // write); the version store relies on it, as (key, timestamp) orders
    // its versions strictly.
    if writes.len() > 1 {
        let mut seen = std::collections::HashSet::with_capacity(writes.len());
        if !writes.iter().all(|w| seen.insert(w.key)) {
            return Err("key written twice in one record");
        }
    }
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole record in one buffer, as the log holds it.
    fn encode(ts: u64, mark: u64, writes: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
        let (len, crc) = payload_summary(writes.len() as u64, writes.iter().copied());
        let mut rec = record_header(len, ts, mark, crc).to_vec();
        payload_pieces(writes.len() as u64, writes.iter().copied(), |p| {
            rec.extend_from_slice(p)
        });
        rec.resize(rec.len().next_multiple_of(8), 0);
        rec
    }

    #[test]
    fn record_round_trips() {
        let rec = encode(
            42,
            7,
            &[
                (b"alpha", Some(b"one")),
                (b"beta", None),
                (b"gamma", Some(b"")),
            ],
        );
        assert_eq!(rec.len() % 8, 0);
        let h = parse_header(&rec).unwrap();
        assert_eq!((h.ts, h.synced_mark), (42, 7));
        assert_eq!(h.total_len(), rec.len() as u64);
        let payload = &rec[RECORD_HEADER..RECORD_HEADER + h.payload_len as usize];
        assert_eq!(crc32c::crc32c(payload), h.payload_crc);
        assert_eq!(payload_len(2, 1, 14, 3), h.payload_len);
        let w = decode_payload(payload).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!(
            (w[0].kind, w[0].key, w[0].value),
            (Kind::Put, &b"alpha"[..], &b"one"[..])
        );
        assert_eq!((w[1].kind, w[1].key), (Kind::Delete, &b"beta"[..]));
        assert_eq!((w[2].kind, w[2].value), (Kind::Put, &b""[..]));
        // Value offsets computed from the writes match the decoded ones.
        let mut offsets = ValueOffsets::new();
        for w in &w {
            let len = (w.kind == Kind::Put).then_some(w.value.len());
            let at = offsets.next(w.key.len(), len);
            assert_eq!(at, w.value_at);
            assert_eq!(&payload[at as usize..][..w.value.len()], w.value);
        }
    }

    #[test]
    fn damaged_header_is_rejected() {
        let mut rec = encode(1, 0, &[(b"k", Some(b"v"))]);
        rec[17] ^= 1;
        assert!(parse_header(&rec).is_none());
    }

    #[test]
    fn malformed_payload_is_an_error_not_a_panic() {
        let mut payload = 5u64.to_le_bytes().to_vec();
        payload.extend_from_slice(&[1, 0xff, 0xff, 0xff, 0xff]);
        assert!(decode_payload(&payload).is_err());
        assert!(decode_payload(&[1, 2]).is_err());
    }

    #[test]
    fn a_payload_the_engine_never_writes_is_refused() {
        let payload_of = |writes: &[(&[u8], Option<&[u8]>)]| {
            let rec = encode(1, 0, writes);
            let h = parse_header(&rec).unwrap();
            rec[RECORD_HEADER..RECORD_HEADER + h.payload_len as usize].to_vec()
        };
        let twice = payload_of(&[(b"k", Some(b"1")), (b"j", None), (b"k", Some(b"2"))]);
        assert_eq!(
            decode_payload(&twice).err(),
            Some("key written twice in one record")
        );
        let empty_key = payload_of(&[(b"", Some(b"v"))]);
        assert_eq!(
            decode_payload(&empty_key).err(),
            Some("key length out of range")
        );
        assert!(decode_payload(&payload_of(&[(b"k", Some(b"1")), (b"j", None)])).is_ok());
    }
}
