//! The manifest: which sorted segment files are live, and a few durable
//! properties of the database.
//!
//! Every generation of the manifest is its own immutable file
//! `manifest-<generation:016x>` in the database directory. A new generation
//! is written to `manifest-<generation:016x>.tmp`, synced, renamed to its
//! final name, and the directory is synced, so a crash leaves either the
//! whole file or none. The current generation number is published elsewhere
//! (in shared memory); other processes read that generation's file once, so
//! older generations stay readable until the engine removes them.
//!
//! ```text
//! manifest file
//! ┌──────────────┬───────────┬───────────┬─────┬───────────┬───────────┐
//! │ header 72 B  │ segment 0 │ segment 1 │ ... │ segment n │ crc32c 4B │
//! └──────────────┴───────────┴───────────┴─────┴───────────┴───────────┘
//!
//! header:
//! 0   magic            [u8; 8]  "SCRBMANF"
//! 8   version          u32      1
//! 12  reserved         u32      0
//! 16  generation       u64
//! 24  log_start        u64      log offset where unflushed records begin
//! 32  next_segment_id  u64
//! 40  flushed_ts       u64
//! 48  retention_ms     u64
//! 56  history_floor    u64
//! 64  segment_count    u64      at most MAX_SEGMENTS
//! 72  segment entries, 56 bytes each
//!
//! segment entry:
//! 0   id               u64      file seg-<id:016x>.seg
//! 8   size             u64
//! 16  entries          u64
//! 24  live_bytes       u64
//! 32  min_ts           u64
//! 40  max_ts           u64
//! 48  level            u8
//! 49  reserved         [u8; 7]  0
//!
//! trailer: crc32c u32 of every byte before it
//! ```
//!
//! All integers are little-endian. The file is untrusted input: its length
//! must match the segment count exactly, the checksum must match, reserved
//! bytes must be zero, and the segment list must be consistent (levels in
//! order, ids unique and below `next_segment_id`, `min_ts <= max_ts`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::{self, Open};

pub const MAGIC: [u8; 8] = *b"SCRBMANF";
/// Version of this format. Bump on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;
/// Largest segment count a manifest may claim.
pub const MAX_SEGMENTS: u64 = 1_000_000;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = OFF_MAGIC + 8;
const OFF_RESERVED: usize = OFF_VERSION + 4;
const OFF_GENERATION: usize = OFF_RESERVED + 4;
const OFF_LOG_START: usize = OFF_GENERATION + 8;
const OFF_NEXT_SEGMENT_ID: usize = OFF_LOG_START + 8;
const OFF_FLUSHED_TS: usize = OFF_NEXT_SEGMENT_ID + 8;
const OFF_RETENTION_MS: usize = OFF_FLUSHED_TS + 8;
const OFF_HISTORY_FLOOR: usize = OFF_RETENTION_MS + 8;
const OFF_SEGMENT_COUNT: usize = OFF_HISTORY_FLOOR + 8;
/// Size of the fixed header; the segment entries follow it.
pub const HEADER_SIZE: usize = OFF_SEGMENT_COUNT + 8;

// Segment entry fields, relative to the start of the entry.
const S_ID: usize = 0;
const S_SIZE: usize = S_ID + 8;
const S_ENTRIES: usize = S_SIZE + 8;
const S_LIVE_BYTES: usize = S_ENTRIES + 8;
const S_MIN_TS: usize = S_LIVE_BYTES + 8;
const S_MAX_TS: usize = S_MIN_TS + 8;
const S_LEVEL: usize = S_MAX_TS + 8;
const S_RESERVED: usize = S_LEVEL + 1;
/// Size of one segment entry.
pub const SEGMENT_ENTRY_SIZE: usize = S_RESERVED + 7;

/// Size of the trailing checksum.
const CRC_SIZE: usize = 4;

const _: () = assert!(HEADER_SIZE == 72);
const _: () = assert!(SEGMENT_ENTRY_SIZE == 56);

const MANIFEST_PREFIX: &str = "manifest-";
const TMP_SUFFIX: &str = ".tmp";
const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".seg";

/// One live segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentRef {
    /// The file is `seg-<id:016x>.seg`.
    pub id: u64,
    /// 0 = flushed, overlapping, newest first; 1.. = sorted runs of
    /// non-overlapping files ordered by key.
    pub level: u8,
    /// Bytes of the file.
    pub size: u64,
    /// Versions in it.
    pub entries: u64,
    /// Estimate of the live key and value bytes it holds.
    pub live_bytes: u64,
    /// Oldest commit timestamp of a version in it.
    pub min_ts: u64,
    /// Newest commit timestamp of a version in it.
    pub max_ts: u64,
}

/// One generation of the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Manifest {
    pub generation: u64,
    /// Log offset at which records not yet flushed into segments begin.
    pub log_start: u64,
    /// Next segment id to hand out.
    pub next_segment_id: u64,
    /// Newest commit timestamp whose data is wholly in segments (0 if none).
    pub flushed_ts: u64,
    /// Retention window in milliseconds (a durable property of the
    /// database; 0 = none).
    pub retention_ms: u64,
    /// Oldest timestamp readable with a read-at-time request; never
    /// decreases.
    pub history_floor: u64,
    /// Live segments, in read priority order: level 0 newest first, then
    /// each deeper level's files in key order.
    pub segments: Vec<SegmentRef>,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Fill the segment entry `e` (reserved bytes are left as they are: zero).
fn put_segment(e: &mut [u8], s: &SegmentRef) {
    put_u64(e, S_ID, s.id);
    put_u64(e, S_SIZE, s.size);
    put_u64(e, S_ENTRIES, s.entries);
    put_u64(e, S_LIVE_BYTES, s.live_bytes);
    put_u64(e, S_MIN_TS, s.min_ts);
    put_u64(e, S_MAX_TS, s.max_ts);
    e[S_LEVEL] = s.level;
}

/// The value of a name made of `prefix`, exactly 16 lowercase hex digits and
/// `suffix`, as this module writes them.
fn parse_hex_name(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let hex = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if hex.len() != 16 || !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Generation of a final manifest file name `manifest-<16 hex>`.
fn parse_manifest_file(name: &str) -> Option<u64> {
    parse_hex_name(name, MANIFEST_PREFIX, "")
}

/// Generation of a leftover temporary file `manifest-<16 hex>.tmp`.
fn parse_manifest_tmp(name: &str) -> Option<u64> {
    parse_hex_name(name, MANIFEST_PREFIX, TMP_SUFFIX)
}

/// The file of segment `id`: `dir/seg-<id:016x>.seg`.
pub(crate) fn segment_file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{id:016x}{SEGMENT_SUFFIX}"))
}

/// Parse `seg-<16 hex>.seg` into the segment id.
pub(crate) fn parse_segment_file(name: &str) -> Option<u64> {
    parse_hex_name(name, SEGMENT_PREFIX, SEGMENT_SUFFIX)
}

impl Manifest {
    /// The file of generation `generation`: `dir/manifest-<generation:016x>`.
    pub fn file(dir: &Path, generation: u64) -> PathBuf {
        dir.join(format!("{MANIFEST_PREFIX}{generation:016x}"))
    }

    fn tmp_file(dir: &Path, generation: u64) -> PathBuf {
        dir.join(format!("{MANIFEST_PREFIX}{generation:016x}{TMP_SUFFIX}"))
    }

    /// The first segment (by index) that breaks the invariants of the
    /// segment list, and what is wrong with it.
    fn inconsistency(&self) -> Option<(usize, String)> {
        let mut ids = HashSet::with_capacity(self.segments.len());
        let mut prev_level = 0u8;
        for (i, s) in self.segments.iter().enumerate() {
            if s.level < prev_level {
                return Some((
                    i,
                    format!(
                        "segment {i} (id {:#x}) is at level {} after a segment of level {prev_level}",
                        s.id, s.level
                    ),
                ));
            }
            prev_level = s.level;
            if s.id >= self.next_segment_id {
                return Some((
                    i,
                    format!(
                        "segment {i} has id {:#x}, not below the next segment id {:#x}",
                        s.id, self.next_segment_id
                    ),
                ));
            }
            if !ids.insert(s.id) {
                return Some((i, format!("segment id {:#x} is listed twice", s.id)));
            }
            if s.min_ts > s.max_ts {
                return Some((
                    i,
                    format!(
                        "segment {i} (id {:#x}) has min_ts {} above max_ts {}",
                        s.id, s.min_ts, s.max_ts
                    ),
                ));
            }
        }
        None
    }

    /// The bytes of this manifest's file.
    pub fn encode(&self) -> Vec<u8> {
        debug_assert!(
            self.inconsistency().is_none(),
            "encoding an inconsistent manifest: {:?}",
            self.inconsistency()
        );
        let len = HEADER_SIZE + SEGMENT_ENTRY_SIZE * self.segments.len() + CRC_SIZE;
        let mut b = vec![0u8; len];
        b[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&MAGIC);
        b[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        put_u64(&mut b, OFF_GENERATION, self.generation);
        put_u64(&mut b, OFF_LOG_START, self.log_start);
        put_u64(&mut b, OFF_NEXT_SEGMENT_ID, self.next_segment_id);
        put_u64(&mut b, OFF_FLUSHED_TS, self.flushed_ts);
        put_u64(&mut b, OFF_RETENTION_MS, self.retention_ms);
        put_u64(&mut b, OFF_HISTORY_FLOOR, self.history_floor);
        put_u64(&mut b, OFF_SEGMENT_COUNT, self.segments.len() as u64);
        for (i, s) in self.segments.iter().enumerate() {
            let e = &mut b[HEADER_SIZE + SEGMENT_ENTRY_SIZE * i..][..SEGMENT_ENTRY_SIZE];
            put_segment(e, s);
        }
        let crc_at = len - CRC_SIZE;
        let crc = crc32c::crc32c(&b[..crc_at]);
        b[crc_at..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parse and validate the bytes of a manifest file; `path` is only used
    /// in error messages.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Manifest> {
        let len = bytes.len();
        if len < OFF_MAGIC + 8 || bytes[OFF_MAGIC..OFF_MAGIC + 8] != MAGIC {
            return Err(Error::BadMagic {
                file: path.to_path_buf(),
                kind: "manifest",
            });
        }
        if len < OFF_VERSION + 4 {
            return Err(Error::corrupted(
                path,
                len as u64,
                format!("manifest of {len} bytes ends inside its version field"),
            ));
        }
        let version = u32_at(bytes, OFF_VERSION);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                file: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if len < HEADER_SIZE + CRC_SIZE {
            return Err(Error::corrupted(
                path,
                len as u64,
                format!(
                    "manifest of {len} bytes is shorter than its header and checksum ({} bytes)",
                    HEADER_SIZE + CRC_SIZE
                ),
            ));
        }
        let count = u64_at(bytes, OFF_SEGMENT_COUNT);
        if count > MAX_SEGMENTS {
            return Err(Error::corrupted(
                path,
                OFF_SEGMENT_COUNT as u64,
                format!("segment count {count} exceeds the limit of {MAX_SEGMENTS}"),
            ));
        }
        // Cannot overflow: count is at most MAX_SEGMENTS.
        let expected = HEADER_SIZE as u64 + SEGMENT_ENTRY_SIZE as u64 * count + CRC_SIZE as u64;
        if len as u64 != expected {
            return Err(Error::corrupted(
                path,
                OFF_SEGMENT_COUNT as u64,
                format!(
                    "segment count {count} implies a file of {expected} bytes, but it has {len}"
                ),
            ));
        }
        let crc_at = len - CRC_SIZE;
        let stored = u32_at(bytes, crc_at);
        let actual = crc32c::crc32c(&bytes[..crc_at]);
        if stored != actual {
            return Err(Error::corrupted(
                path,
                crc_at as u64,
                format!("checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"),
            ));
        }
        if u32_at(bytes, OFF_RESERVED) != 0 {
            return Err(Error::corrupted(
                path,
                OFF_RESERVED as u64,
                "reserved header bytes are not zero",
            ));
        }
        let count = count as usize;
        let mut segments = Vec::with_capacity(count);
        for i in 0..count {
            let at = HEADER_SIZE + SEGMENT_ENTRY_SIZE * i;
            let e = &bytes[at..at + SEGMENT_ENTRY_SIZE];
            if e[S_RESERVED..].iter().any(|&b| b != 0) {
                return Err(Error::corrupted(
                    path,
                    (at + S_RESERVED) as u64,
                    format!("reserved bytes of segment entry {i} are not zero"),
                ));
            }
            segments.push(SegmentRef {
                id: u64_at(e, S_ID),
                level: e[S_LEVEL],
                size: u64_at(e, S_SIZE),
                entries: u64_at(e, S_ENTRIES),
                live_bytes: u64_at(e, S_LIVE_BYTES),
                min_ts: u64_at(e, S_MIN_TS),
                max_ts: u64_at(e, S_MAX_TS),
            });
        }
        let manifest = Manifest {
            generation: u64_at(bytes, OFF_GENERATION),
            log_start: u64_at(bytes, OFF_LOG_START),
            next_segment_id: u64_at(bytes, OFF_NEXT_SEGMENT_ID),
            flushed_ts: u64_at(bytes, OFF_FLUSHED_TS),
            retention_ms: u64_at(bytes, OFF_RETENTION_MS),
            history_floor: u64_at(bytes, OFF_HISTORY_FLOOR),
            segments,
        };
        if let Some((i, what)) = manifest.inconsistency() {
            return Err(Error::corrupted(
                path,
                (HEADER_SIZE + SEGMENT_ENTRY_SIZE * i) as u64,
                what,
            ));
        }
        Ok(manifest)
    }

    /// Write generation `self.generation` crash-safely: a temporary file is
    /// written and synced, renamed to the final name, and the directory is
    /// synced. A stale temporary file of the same generation is replaced.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let tmp = Self::tmp_file(dir, self.generation);
        let path = Self::file(dir, self.generation);
        io::remove(&tmp)?;
        let bytes = self.encode();
        let written = io::open(&tmp, Open::CreateNew)
            .and_then(|f| {
                io::write_at(&f, &tmp, &bytes, 0)?;
                io::sync_data(&f, &tmp)
            })
            .and_then(|()| io::rename(&tmp, &path));
        if let Err(e) = written {
            // Best effort: the leftover is also removed by `remove_older`.
            io::remove_quietly(&tmp);
            return Err(e);
        }
        io::sync_dir(dir)
    }

    /// Read and validate generation `generation`.
    pub fn read(dir: &Path, generation: u64) -> Result<Manifest> {
        let path = Self::file(dir, generation);
        let Some(bytes) = io::read_file(&path)? else {
            return Err(Error::corrupted(
                &path,
                0,
                format!("manifest generation {generation} is missing"),
            ));
        };
        let manifest = Self::decode(&path, &bytes)?;
        if manifest.generation != generation {
            return Err(Error::corrupted(
                &path,
                OFF_GENERATION as u64,
                format!(
                    "file of generation {generation} holds generation {}",
                    manifest.generation
                ),
            ));
        }
        Ok(manifest)
    }

    /// The highest-numbered manifest in `dir`, read and validated, or `None`
    /// if there is none. Temporary files and names that do not parse are
    /// ignored. A damaged newest file is an error, never a silent fallback
    /// to an older generation.
    pub fn latest(dir: &Path) -> Result<Option<Manifest>> {
        let mut newest: Option<u64> = None;
        for (name, _) in io::list(dir)? {
            if let Some(generation) = parse_manifest_file(&name) {
                newest = newest.max(Some(generation));
            }
        }
        newest.map(|g| Self::read(dir, g)).transpose()
    }

    /// Remove the manifest files of generations below `keep` and every
    /// leftover temporary manifest file. Best effort: errors are ignored.
    /// Returns how many files were removed.
    pub fn remove_older(dir: &Path, keep: u64) -> usize {
        let Ok(entries) = io::list(dir) else {
            return 0;
        };
        let mut removed = 0;
        for (name, path) in entries {
            let doomed = match parse_manifest_file(&name) {
                Some(generation) => generation < keep,
                None => parse_manifest_tmp(&name).is_some(),
            };
            if doomed && io::remove_quietly(&path) {
                removed += 1;
            }
        }
        removed
    }

    /// Total bytes of live segment files per level (index = level).
    pub fn level_sizes(&self) -> Vec<u64> {
        let mut sizes = Vec::new();
        for s in &self.segments {
            let level = s.level as usize;
            if sizes.len() <= level {
                sizes.resize(level + 1, 0);
            }
            sizes[level] = u64::saturating_add(sizes[level], s.size);
        }
        sizes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn seg(id: u64, level: u8, size: u64) -> SegmentRef {
        SegmentRef {
            id,
            level,
            size,
            entries: id * 10 + 1,
            live_bytes: size / 2,
            min_ts: id << 16,
            max_ts: (id << 16) + 7,
        }
    }

    fn sample(generation: u64) -> Manifest {
        Manifest {
            generation,
            log_start: generation.wrapping_add(4096),
            next_segment_id: 20,
            flushed_ts: 0x1234_5678_9abc,
            retention_ms: 86_400_000,
            history_floor: 0x1000_0000,
            segments: vec![
                seg(9, 0, 1000),
                seg(8, 0, 2000),
                seg(3, 1, 40_000),
                seg(5, 1, 50_000),
                seg(1, 2, 700_000),
            ],
        }
    }

    fn path() -> PathBuf {
        PathBuf::from("db/manifest-0000000000000001")
    }

    #[test]
    fn round_trip() {
        for m in [Manifest::default(), sample(1), sample(u64::MAX)] {
            let bytes = m.encode();
            assert_eq!(
                bytes.len(),
                HEADER_SIZE + SEGMENT_ENTRY_SIZE * m.segments.len() + CRC_SIZE
            );
            assert_eq!(&bytes[..8], b"SCRBMANF");
            assert_eq!(Manifest::decode(&path(), &bytes).unwrap(), m);
        }
    }

    #[test]
    fn every_single_byte_corruption_is_an_error() {
        let bytes = sample(1).encode();
        for pos in 0..bytes.len() {
            // Under Miri, two flips per byte (its low and its high bit).
            let values: Vec<u8> = if cfg!(miri) {
                vec![bytes[pos] ^ 1, bytes[pos] ^ 0x80]
            } else {
                (0..=255u8).filter(|&v| v != bytes[pos]).collect()
            };
            for v in values {
                let mut damaged = bytes.clone();
                damaged[pos] = v;
                assert!(
                    Manifest::decode(&path(), &damaged).is_err(),
                    "byte {pos} set to {v:#04x} was accepted"
                );
            }
        }
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        let bytes = sample(1).encode();
        for len in 0..bytes.len() {
            assert!(
                Manifest::decode(&path(), &bytes[..len]).is_err(),
                "truncation to {len} bytes was accepted"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Manifest::decode(&path(), &longer).is_err());
    }

    /// Recompute the trailing checksum after an edit.
    fn reseal(bytes: &mut [u8]) {
        let at = bytes.len() - CRC_SIZE;
        let crc = crc32c::crc32c(&bytes[..at]);
        bytes[at..].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn wrong_version_and_magic() {
        let mut bytes = sample(1).encode();
        bytes[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&2u32.to_le_bytes());
        reseal(&mut bytes);
        match Manifest::decode(&path(), &bytes) {
            Err(Error::UnsupportedVersion {
                file,
                found: 2,
                supported: 1,
            }) => assert_eq!(file, path()),
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }

        let mut bytes = sample(1).encode();
        bytes[0] = b'X';
        reseal(&mut bytes);
        match Manifest::decode(&path(), &bytes) {
            Err(Error::BadMagic { file, kind }) => {
                assert_eq!(file, path());
                assert_eq!(kind, "manifest");
            }
            other => panic!("expected BadMagic, got {other:?}"),
        }
        assert!(matches!(
            Manifest::decode(&path(), b""),
            Err(Error::BadMagic { .. })
        ));
    }

    #[test]
    fn absurd_count_is_rejected() {
        let mut bytes = Manifest::default().encode();
        for count in [MAX_SEGMENTS + 1, u64::MAX, 1 << 62] {
            put_u64(&mut bytes, OFF_SEGMENT_COUNT, count);
            reseal(&mut bytes);
            match Manifest::decode(&path(), &bytes) {
                Err(Error::Corrupted { offset, what, .. }) => {
                    assert_eq!(offset, OFF_SEGMENT_COUNT as u64);
                    assert!(what.contains("limit"), "{what}");
                }
                other => panic!("expected Corrupted, got {other:?}"),
            }
        }
    }

    #[test]
    fn inconsistent_segment_lists_are_rejected() {
        type Edit = fn(&mut Manifest);
        let cases: [(&str, Edit); 4] = [
            ("level order", |m: &mut Manifest| m.segments.swap(0, 4)),
            ("duplicate id", |m: &mut Manifest| m.segments[3].id = 3),
            ("id too large", |m: &mut Manifest| m.segments[2].id = 20),
            ("min above max", |m: &mut Manifest| {
                m.segments[1].min_ts = u64::MAX
            }),
        ];
        for (name, edit) in cases {
            let base = sample(1);
            let mut bytes = base.encode();
            // Edit the bytes rather than the struct: `encode` asserts
            // consistency in debug builds.
            let mut edited = base.clone();
            edit(&mut edited);
            for (i, s) in edited.segments.iter().enumerate() {
                let e = &mut bytes[HEADER_SIZE + SEGMENT_ENTRY_SIZE * i..][..SEGMENT_ENTRY_SIZE];
                put_segment(e, s);
            }
            reseal(&mut bytes);
            assert!(
                matches!(
                    Manifest::decode(&path(), &bytes),
                    Err(Error::Corrupted { .. })
                ),
                "{name} was accepted"
            );
        }
    }

    #[test]
    fn nonzero_reserved_bytes_are_rejected() {
        let base = sample(1).encode();
        let entry_reserved = HEADER_SIZE + SEGMENT_ENTRY_SIZE * 2 + S_RESERVED + 3;
        for at in [OFF_RESERVED, OFF_RESERVED + 3, entry_reserved] {
            let mut bytes = base.clone();
            bytes[at] = 1;
            reseal(&mut bytes);
            match Manifest::decode(&path(), &bytes) {
                Err(Error::Corrupted { offset, .. }) => {
                    assert!(offset <= at as u64 && at as u64 - offset < 8)
                }
                other => panic!("expected Corrupted, got {other:?}"),
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "touches files")]
    fn write_read_latest() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::latest(dir.path()).unwrap(), None);
        for g in [1, 2, 3] {
            sample(g).write(dir.path()).unwrap();
        }
        // Noise that `latest` must ignore.
        fs::write(Manifest::tmp_file(dir.path(), 9), b"partial").unwrap();
        fs::write(dir.path().join("manifest-zzzz"), b"junk").unwrap();
        fs::write(dir.path().join("manifest-00000000000000ff.bak"), b"junk").unwrap();
        fs::write(dir.path().join("MANIFEST-00000000000000FF"), b"junk").unwrap();
        fs::write(segment_file(dir.path(), 1), b"segment").unwrap();

        for g in [1, 2, 3] {
            assert_eq!(Manifest::read(dir.path(), g).unwrap(), sample(g));
        }
        assert_eq!(Manifest::latest(dir.path()).unwrap(), Some(sample(3)));
        assert!(!Manifest::tmp_file(dir.path(), 3).exists());
    }

    #[test]
    #[cfg_attr(miri, ignore = "touches files")]
    fn write_replaces_a_stale_tmp() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(Manifest::tmp_file(dir.path(), 4), b"stale leftover").unwrap();
        sample(4).write(dir.path()).unwrap();
        assert_eq!(Manifest::read(dir.path(), 4).unwrap(), sample(4));
        assert!(!Manifest::tmp_file(dir.path(), 4).exists());
    }

    #[test]
    #[cfg_attr(miri, ignore = "touches files")]
    fn damaged_latest_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        sample(1).write(dir.path()).unwrap();
        sample(2).write(dir.path()).unwrap();
        let newest = Manifest::file(dir.path(), 2);
        let mut bytes = fs::read(&newest).unwrap();
        bytes[OFF_LOG_START] ^= 1;
        fs::write(&newest, &bytes).unwrap();
        match Manifest::latest(dir.path()) {
            Err(Error::Corrupted { file, .. }) => assert_eq!(file, newest),
            other => panic!("expected Corrupted, got {other:?}"),
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "touches files")]
    fn read_checks_the_generation_inside() {
        let dir = tempfile::tempdir().unwrap();
        sample(5).write(dir.path()).unwrap();
        fs::rename(Manifest::file(dir.path(), 5), Manifest::file(dir.path(), 6)).unwrap();
        match Manifest::read(dir.path(), 6) {
            Err(Error::Corrupted { offset, .. }) => assert_eq!(offset, OFF_GENERATION as u64),
            other => panic!("expected Corrupted, got {other:?}"),
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "touches files")]
    fn read_missing_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Manifest::read(dir.path(), 7).unwrap_err();
        match &err {
            Error::Corrupted { file, what, .. } => {
                assert_eq!(file, &Manifest::file(dir.path(), 7));
                assert_eq!(what, "manifest generation 7 is missing");
            }
            other => panic!("expected Corrupted, got {other:?}"),
        }
        assert!(err.to_string().contains("manifest-0000000000000007"));
    }

    #[test]
    #[cfg_attr(miri, ignore = "touches files")]
    fn remove_older_keeps_current_and_newer() {
        let dir = tempfile::tempdir().unwrap();
        for g in 1..=5 {
            sample(g).write(dir.path()).unwrap();
        }
        fs::write(Manifest::tmp_file(dir.path(), 2), b"x").unwrap();
        fs::write(Manifest::tmp_file(dir.path(), 8), b"x").unwrap();
        fs::write(dir.path().join("manifest-zzzz"), b"x").unwrap();
        fs::write(segment_file(dir.path(), 1), b"x").unwrap();

        assert_eq!(Manifest::remove_older(dir.path(), 4), 3 + 2);
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "manifest-0000000000000004",
                "manifest-0000000000000005",
                "manifest-zzzz",
                "seg-0000000000000001.seg",
            ]
        );
        assert_eq!(Manifest::remove_older(dir.path(), 4), 0);
        assert_eq!(Manifest::latest(dir.path()).unwrap(), Some(sample(5)));
        assert_eq!(Manifest::remove_older(&dir.path().join("absent"), 4), 0);
    }

    #[test]
    fn level_sizes_sum_per_level() {
        assert_eq!(Manifest::default().level_sizes(), Vec::<u64>::new());
        assert_eq!(sample(1).level_sizes(), vec![3000, 90_000, 700_000]);
        let m = Manifest {
            next_segment_id: 3,
            segments: vec![seg(1, 0, 5), seg(2, 3, u64::MAX), seg(0, 3, 1)],
            ..Manifest::default()
        };
        assert_eq!(m.level_sizes(), vec![5, 0, 0, u64::MAX]);
    }

    #[test]
    fn file_names() {
        let dir = Path::new("d");
        assert_eq!(
            Manifest::file(dir, 0x2a),
            Path::new("d/manifest-000000000000002a")
        );
        assert_eq!(
            segment_file(dir, 0xabc),
            Path::new("d/seg-0000000000000abc.seg")
        );
        assert_eq!(parse_segment_file("seg-0000000000000abc.seg"), Some(0xabc));
        assert_eq!(
            parse_segment_file("seg-ffffffffffffffff.seg"),
            Some(u64::MAX)
        );
        for bad in [
            "seg-abc.seg",
            "seg-0000000000000ABC.seg",
            "seg-0000000000000abc",
            "seg-0000000000000abc.seg.tmp",
            "seg-+000000000000abc.seg",
            "seg-00000000000000abc.seg",
            "manifest-0000000000000001",
            "",
        ] {
            assert_eq!(parse_segment_file(bad), None, "{bad}");
        }
        assert_eq!(parse_manifest_file("manifest-0000000000000001"), Some(1));
        assert_eq!(parse_manifest_file("manifest-0000000000000001.tmp"), None);
        assert_eq!(parse_manifest_tmp("manifest-0000000000000001.tmp"), Some(1));
    }
}
