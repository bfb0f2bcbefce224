//! Entry points of the fuzz targets (`fuzz/` in the repository).
//!
//! Each function takes arbitrary bytes and must never panic on them,
//! except when the engine breaks a property it promises, which is what the
//! panic reports. The fuzz targets call these functions, and so does the
//! test that replays the kept corpora on the stable compiler, so both run
//! the very same code. Not part of the API.
//!
//! Several targets start with a mode byte. In "fixed" modes the function
//! recomputes the checksums of the input before decoding it, so that the
//! fuzzer reaches the checks behind them (a checksum only guards against
//! damage; a decoder must be safe on any bytes whose checksums match).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::entry::Kind;
use crate::faults::{Fault, Op, Plan};
use crate::manifest::Manifest;
use crate::segment::{Segment, SegmentWriter, Verify};
use crate::wal::format as wal;
use crate::{Database, Durability, Error};

/// A directory removed on drop, on a memory file system where there is
/// one: the targets write a file or a database per input.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("scribedb-fuzz-{}-{n}", std::process::id()));
        // Left over by a run that was killed: start clean.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a scratch directory");
        Scratch { path }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("writing a scratch file");
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The first byte (0 if none) and the rest.
fn split_mode(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&m, rest)) => (m, rest),
        None => (0, data),
    }
}

/// An error must say something: a clear message, not an empty one.
fn clear(e: &Error) {
    assert!(
        !e.to_string().is_empty(),
        "an error without a message: {e:?}"
    );
}

// ---------------------------------------------------------------------------
// Log records

/// Recompute the header checksum of the record at the start of `b`, and
/// its payload checksum when the payload lies within `b`.
fn fix_record(b: &mut [u8]) {
    if b.len() < wal::RECORD_HEADER {
        return;
    }
    let crc = crc32c::crc32c(&b[..32]);
    put_u32(b, 32, crc);
    let len = le_u64(b, 8);
    if len <= (b.len() - wal::RECORD_HEADER) as u64 {
        let payload = &b[wal::RECORD_HEADER..wal::RECORD_HEADER + len as usize];
        let crc = crc32c::crc32c(payload);
        put_u32(b, wal::PAYLOAD_CRC_AT, crc);
    }
}

/// One record found by [`chain`]: its timestamp and writes (`None` for a
/// delete).
type Record = (u64, Vec<(Vec<u8>, Option<Vec<u8>>)>);

/// The records of a log file's chain from `start`, by the rules of the
/// format (independently of the engine's scan): each header valid, within
/// the file, its timestamp above the one before, its payload checksummed
/// and well formed; the chain ends at zeros, at the end, or at the first
/// record that breaks a rule. With `fix`, each header's and payload's
/// checksums are recomputed in `bytes` first.
fn chain(bytes: &mut [u8], start: usize, fix: bool) -> Vec<Record> {
    let mut out = Vec::new();
    let mut pos = start;
    let mut last_ts = 0;
    while pos < bytes.len() {
        let rest = &mut bytes[pos..];
        if rest.len() < wal::RECORD_HEADER || rest[..wal::RECORD_HEADER].iter().all(|&b| b == 0) {
            break;
        }
        if fix {
            fix_record(rest);
        }
        let Some(h) = wal::parse_header(rest) else {
            break;
        };
        if h.total_len() > rest.len() as u64 || h.ts <= last_ts {
            break;
        }
        let payload = &rest[wal::RECORD_HEADER..wal::RECORD_HEADER + h.payload_len as usize];
        if crc32c::crc32c(payload) != h.payload_crc {
            break;
        }
        let Ok(writes) = wal::decode_payload(payload) else {
            break;
        };
        let writes = writes
            .iter()
            .map(|w| {
                let value = (w.kind == Kind::Put).then(|| w.value.to_vec());
                (w.key.to_vec(), value)
            })
            .collect();
        out.push((h.ts, writes));
        last_ts = h.ts;
        pos += h.total_len() as usize;
    }
    out
}

/// Log records: a sequence of records, each parsed and decoded as recovery
/// does. Whatever parses must re-encode to the same bytes.
///
/// Mode byte: odd, the checksums are recomputed first.
pub fn log_records(data: &[u8]) {
    let (mode, rest) = split_mode(data);
    let mut bytes = rest.to_vec();
    let mut pos = 0usize;
    while bytes.len() - pos >= wal::RECORD_HEADER {
        if mode & 1 == 1 {
            fix_record(&mut bytes[pos..]);
        }
        let rec = &bytes[pos..];
        let Some(h) = wal::parse_header(rec) else {
            break;
        };
        // The header is canonical: the fields it parsed to give it back.
        let again = wal::record_header(h.payload_len, h.ts, h.synced_mark, h.payload_crc);
        assert_eq!(&again[..], &rec[..wal::RECORD_HEADER], "header re-encodes");
        assert!(h.total_len() >= wal::RECORD_HEADER as u64 && h.total_len() % 8 == 0);
        if h.payload_len > (rec.len() - wal::RECORD_HEADER) as u64 {
            break;
        }
        let payload = &rec[wal::RECORD_HEADER..wal::RECORD_HEADER + h.payload_len as usize];
        if let Ok(writes) = wal::decode_payload(payload) {
            let mut offsets = wal::ValueOffsets::new();
            let (mut puts, mut deletes, mut key_bytes, mut value_bytes) = (0, 0, 0, 0);
            for w in &writes {
                let value_len = (w.kind == Kind::Put).then_some(w.value.len());
                assert_eq!(offsets.next(w.key.len(), value_len), w.value_at);
                let at = w.value_at as usize;
                assert_eq!(&payload[at..at + w.value.len()], w.value);
                match w.kind {
                    Kind::Put => puts += 1,
                    Kind::Delete => {
                        assert!(w.value.is_empty(), "a decoded delete has a value");
                        deletes += 1
                    }
                }
                key_bytes += w.key.len() as u64;
                value_bytes += w.value.len() as u64;
            }
            assert_eq!(
                wal::payload_len(puts, deletes, key_bytes, value_bytes),
                payload.len() as u64
            );
            let mut encoded = Vec::with_capacity(payload.len());
            let pieces = writes
                .iter()
                .map(|w| (w.key, (w.kind == Kind::Put).then_some(w.value)));
            wal::payload_pieces(writes.len() as u64, pieces, |p| {
                encoded.extend_from_slice(p)
            });
            assert_eq!(encoded, payload, "payload re-encodes");
        }
        match pos.checked_add(h.total_len() as usize) {
            Some(next) if next <= bytes.len() => pos = next,
            _ => break,
        }
    }
}

// ---------------------------------------------------------------------------
// Recovery from a log file

fn small_db(dir: &Path, durability: Durability, repair: bool) -> crate::Result<Database> {
    Database::builder()
        .durability(durability)
        .memtable_size(16 << 10)
        .arena_size(1 << 16)
        .repair(repair)
        .open(dir)
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Everything a new read transaction sees, or the first error.
fn contents(db: &Database) -> crate::Result<Model> {
    let r = db.begin_read()?;
    let mut out = Model::new();
    for kv in r.iter() {
        let (k, v) = kv?;
        out.insert(k.to_vec(), v.to_vec());
    }
    Ok(out)
}

/// The contents after the first `n` records of `records`, and the keys
/// whose value the format leaves open (written twice by one record).
fn replay(records: &[Record], n: usize) -> (Model, BTreeSet<Vec<u8>>) {
    let mut model = Model::new();
    let mut open = BTreeSet::new();
    for (_, writes) in &records[..n] {
        let mut seen = BTreeSet::new();
        for (k, v) in writes {
            if !seen.insert(k) {
                open.insert(k.clone());
            }
            match v {
                Some(v) => model.insert(k.clone(), v.clone()),
                None => model.remove(k),
            };
        }
    }
    (model, open)
}

/// Whether `got` matches `want` except at the `open` keys.
fn matches(got: &Model, want: &Model, open: &BTreeSet<Vec<u8>>) -> bool {
    let strip = |m: &Model| -> Model {
        m.iter()
            .filter(|(k, _)| !open.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    strip(got) == strip(want)
}

/// A database directory whose only file is the log `wal`, the input.
/// Opening it without repair, then with, is `Ok` or a clear error. After
/// an open succeeds, the database holds exactly the records of the log's
/// chain that recovery says it replayed, every key of a scan is found by a
/// point read, a commit works, and a reopen finds it all again.
///
/// Mode byte: odd, the checksums of the chain are recomputed first.
pub fn log_recovery(data: &[u8]) {
    let (mode, rest) = split_mode(data);
    let mut log = rest.to_vec();
    let records = chain(&mut log, wal::FILE_HEADER, mode & 1 == 1);
    let scratch = Scratch::new();
    for (attempt, repair) in [false, true].into_iter().enumerate() {
        let dir = scratch.path().join(format!("db{attempt}"));
        std::fs::create_dir(&dir).expect("creating a database directory");
        write_file(&dir.join("wal"), &log);
        let db = match small_db(&dir, Durability::None, repair) {
            Ok(db) => db,
            Err(e) => {
                clear(&e);
                continue;
            }
        };
        let report = db.recovery_report().clone();
        let n = report.records as usize;
        assert!(
            n <= records.len(),
            "recovery replayed {n} records of a chain of {}",
            records.len()
        );
        let (want, open) = replay(&records, n);
        let got = contents(&db).expect("reading a recovered database");
        assert!(
            matches(&got, &want, &open),
            "recovered contents differ from the log's first {n} records ({report:?})"
        );
        let r = db.begin_read().expect("begin_read");
        for (k, v) in &got {
            assert_eq!(r.get(k).expect("get"), Some(&v[..]), "a scanned key reads");
        }
        drop(r);
        let mut expect = got;
        let committed = db.begin_write().and_then(|mut w| {
            w.put(b"fuzz-after-recovery", b"1")?;
            w.commit()
        });
        match committed {
            Ok(_) => {
                expect.insert(b"fuzz-after-recovery".to_vec(), b"1".to_vec());
            }
            Err(e) => clear(&e),
        }
        drop(db);
        let db = small_db(&dir, Durability::None, false).expect("reopening a recovered database");
        assert_eq!(
            contents(&db).expect("reading after reopen"),
            expect,
            "a reopen changed the contents"
        );
    }
}

// ---------------------------------------------------------------------------
// Segments

/// Recompute every checksum of a segment file whose header counts are
/// consistent enough to locate them; other bytes are left alone.
fn fix_segment(b: &mut [u8]) {
    use crate::segment::format::{
        block_range, Layout, FOOTER_FIXED, F_BLOCKS_CRC, HEADER, H_CRC, H_DATA_END, H_ENTRIES,
        H_FOOTER_LEN, H_SLOTS,
    };
    if b.len() < HEADER + FOOTER_FIXED {
        return;
    }
    let crc = crc32c::crc32c(&b[..H_CRC]);
    put_u32(b, H_CRC, crc);
    let data_end = le_u64(b, H_DATA_END);
    let (entries, slots) = (le_u64(b, H_ENTRIES), le_u64(b, H_SLOTS));
    let footer_len = le_u32(b, H_FOOTER_LEN) as usize;
    let Some(layout) = Layout::new(data_end, entries, slots) else {
        return;
    };
    let len = b.len() as u64;
    if layout.blocks_off < HEADER as u64 || layout.footer_off > len {
        return;
    }
    let blocks_off = layout.blocks_off as usize;
    for i in 0..layout.blocks as usize {
        let (from, to) = block_range(i, blocks_off);
        let crc = crc32c::crc32c(&b[from..to.max(from)]);
        put_u32(b, blocks_off + 4 * i, crc);
    }
    if footer_len < FOOTER_FIXED || footer_len > b.len() {
        return;
    }
    let footer_off = b.len() - footer_len;
    if footer_off < layout.footer_off as usize {
        return;
    }
    let crc = crc32c::crc32c(&b[blocks_off..layout.footer_off as usize]);
    put_u32(b, footer_off + F_BLOCKS_CRC, crc);
    let crc_at = b.len() - 4;
    let crc = crc32c::crc32c(&b[footer_off..crc_at]);
    put_u32(b, crc_at, crc);
}

/// Every read of an arbitrary segment that opened is data or an error,
/// never a panic or a read outside the mapping; a point read returns the
/// key it was asked for, at or below the snapshot. (Nothing more holds for
/// any bytes: a file whose checksums match but whose entries are out of
/// order is one the reader trusts to be as written, so a scan of it may
/// leave its bounds. `segment_roundtrip` checks the answers.)
fn probe_segment(seg: &Segment, snapshots: &[u64]) {
    let n = seg.len();
    let mut keys = BTreeSet::new();
    for i in 0..n.min(512) {
        if let Ok(v) = seg.entry(i) {
            if keys.len() < 32 {
                keys.insert(v.key.to_vec());
            }
        }
        let _ = seg.entry_located(i);
    }
    assert!(seg.entry(n).is_err(), "an entry past the end");
    let _ = seg.verify_all();
    let _ = seg.occupied_slots();
    keys.insert(seg.meta().first_key.clone());
    keys.insert(seg.meta().last_key.clone());
    keys.insert(b"m".to_vec());
    for k in &keys {
        let _ = seg.indexed_offset(k);
        let _ = seg.lower_bound(k);
        for &snap in snapshots {
            if let Ok(Some(v)) = seg.get(k, snap) {
                assert_eq!(v.key, &k[..], "a point read returned another key");
                assert!(v.ts <= snap, "a point read returned a version too new");
            }
        }
    }
    let lo = keys.iter().next().cloned().unwrap_or_default();
    for &snap in snapshots {
        for (lower, upper) in [
            (Bound::Unbounded, Bound::Unbounded),
            (Bound::Included(lo.clone()), Bound::Excluded(b"m".to_vec())),
            (Bound::Excluded(lo.clone()), Bound::Unbounded),
        ] {
            let fwd = seg.visible(snap, lower.clone(), upper.clone());
            for kv in fwd.take(n + 1) {
                if kv.is_err() {
                    break;
                }
            }
            let back = seg.visible(snap, lower.clone(), upper.clone()).rev();
            for kv in back.take(n + 1) {
                if kv.is_err() {
                    break;
                }
            }
        }
    }
}

/// A byte reader that yields zeros once the input runs out.
struct Bytes<'a> {
    data: &'a [u8],
}

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A version in a segment built by the target: (key, ts) → value, `None`
/// for a tombstone.
type Versions = BTreeMap<(Vec<u8>, std::cmp::Reverse<u64>), Option<Vec<u8>>>;

fn segment_key(b: u8) -> Vec<u8> {
    // A few lengths, so that entries straddle blocks in different ways.
    let mut k = format!("key{:02}", b % 48).into_bytes();
    k.resize(k.len() + (b as usize / 48) * 3, b'.');
    k
}

fn segment_value(b: u8, n: usize) -> Option<Vec<u8>> {
    let len = match b % 8 {
        0 => return None,
        1 => 0,
        2..=5 => (b as usize) * 2,
        6 => 1500,
        _ => 5000,
    };
    let mut v = format!("{n}:").into_bytes();
    v.resize(len.max(v.len()), b'v');
    Some(v)
}

/// The version of `key` visible at `snap` in `versions`.
fn visible_in(versions: &Versions, key: &[u8], snap: u64) -> Option<(u64, Option<Vec<u8>>)> {
    versions
        .range((key.to_vec(), std::cmp::Reverse(snap))..)
        .take_while(|((k, _), _)| k == key)
        .map(|((_, ts), v)| (ts.0, v.clone()))
        .next()
}

/// Build a segment from the input with the writer, flip up to three bits
/// of it, and read it back. At most three flipped bits are always caught
/// by the checksums, so every read that succeeds returns exactly what was
/// written, and with no flip every read succeeds: a key the index finds is
/// found by a scan, and the other way round.
fn segment_roundtrip(dir: &Path, data: &[u8], verify: Verify) {
    let mut input = Bytes { data };
    let count = input.byte() as usize;
    let mut versions = Versions::new();
    for n in 0..count {
        if input.is_empty() {
            break;
        }
        let key = segment_key(input.byte());
        let ts = 1 + input.byte() as u64 % 32;
        versions.insert((key, std::cmp::Reverse(ts)), segment_value(input.byte(), n));
    }
    let path = dir.join("built.seg");
    let mut w = SegmentWriter::create(&path).expect("creating a segment");
    for ((k, ts), v) in &versions {
        let (kind, value) = match v {
            Some(v) => (Kind::Put, &v[..]),
            None => (Kind::Delete, &[][..]),
        };
        w.add(k, ts.0, kind, value).expect("adding a version");
    }
    let meta = w.finish().expect("finishing a segment");
    let mut file = std::fs::read(&path).expect("reading the segment back");
    let mut flips = 0;
    while flips < 3 && !input.is_empty() {
        let at = u32::from_le_bytes([input.byte(), input.byte(), input.byte(), 0]) as usize;
        let bit = input.byte() % 8;
        let len = file.len();
        file[at % len] ^= 1 << bit;
        flips += 1;
    }
    let path = dir.join("flipped.seg");
    write_file(&path, &file);
    let seg = match Segment::open(&path, verify) {
        Ok(seg) => seg,
        Err(e) => {
            assert!(flips > 0, "a segment as written does not open: {e}");
            clear(&e);
            return;
        }
    };
    let intact = flips == 0;
    assert_eq!(
        seg.meta(),
        &meta,
        "the metadata read is not what was written"
    );
    let list: Vec<_> = versions.iter().collect();
    assert_eq!(seg.len(), list.len());
    for (i, ((k, ts), v)) in list.iter().enumerate() {
        match seg.entry(i) {
            Ok(e) => {
                assert_eq!((e.key, e.ts), (&k[..], ts.0), "entry {i}");
                assert_eq!(e.kind == Kind::Put, v.is_some(), "kind of entry {i}");
                assert_eq!(e.value, v.as_deref().unwrap_or_default(), "entry {i}");
            }
            Err(e) => assert!(!intact, "entry {i} of an intact segment: {e}"),
        }
    }
    let keys: BTreeSet<Vec<u8>> = versions.keys().map(|(k, _)| k.clone()).collect();
    let mut asked: Vec<Vec<u8>> = keys.iter().cloned().collect();
    asked.extend([b"key".to_vec(), b"key00.".to_vec(), b"zz".to_vec()]);
    for snap in [0, 5, 16, u64::MAX] {
        for k in &asked {
            let want = visible_in(&versions, k, snap);
            match seg.get(k, snap) {
                Ok(got) => {
                    let got = got.map(|v| (v.ts, (v.kind == Kind::Put).then(|| v.value.to_vec())));
                    assert_eq!(got, want, "point read of {k:?} at {snap}");
                }
                Err(e) => assert!(!intact, "point read of an intact segment: {e}"),
            }
        }
        let want: Vec<(Vec<u8>, Option<Vec<u8>>)> = keys
            .iter()
            .filter_map(|k| visible_in(&versions, k, snap).map(|(_, v)| (k.clone(), v)))
            .collect();
        let lo = asked[asked.len() / 3].clone();
        let hi = asked[asked.len() * 2 / 3].clone();
        for (lower, upper) in [
            (Bound::Unbounded, Bound::Unbounded),
            (Bound::Included(lo.clone()), Bound::Excluded(hi.clone())),
            (Bound::Excluded(lo), Bound::Included(hi)),
        ] {
            let want: Vec<_> = want
                .iter()
                .filter(|(k, _)| {
                    crate::entry::above_lower(k, &lower) && crate::entry::below_upper(k, &upper)
                })
                .cloned()
                .collect();
            for reverse in [false, true] {
                let it = seg.visible(snap, lower.clone(), upper.clone());
                let items: Box<dyn Iterator<Item = _>> = if reverse {
                    Box::new(it.rev())
                } else {
                    Box::new(it)
                };
                let mut got = Vec::new();
                let mut failed = false;
                for kv in items {
                    match kv {
                        Ok((k, v)) => got.push((k.to_vec(), v.map(|v| v.to_vec()))),
                        Err(e) => {
                            assert!(!intact, "a scan of an intact segment: {e}");
                            failed = true;
                            break;
                        }
                    }
                }
                let mut expect = want.clone();
                if reverse {
                    expect.reverse();
                }
                if failed {
                    expect.truncate(got.len());
                }
                assert_eq!(got, expect, "scan at {snap} (reverse: {reverse})");
            }
        }
    }
    if intact {
        assert!(
            seg.verify_all().is_empty(),
            "an intact segment fails its check"
        );
    }
}

/// Segment files: blocks, offset table and hash index.
///
/// Mode byte `% 3`: 0, the rest is a segment file; 1, the same with its
/// checksums recomputed; 2, the rest describes versions written with the
/// segment writer and up to three bit flips (see `segment_roundtrip`).
/// `/ 3` odd: the file is read with every read checked.
pub fn segment(data: &[u8]) {
    let (mode, rest) = split_mode(data);
    let scratch = Scratch::new();
    let verify = match mode / 3 % 2 {
        0 => Verify::Once,
        _ => Verify::EveryRead,
    };
    match mode % 3 {
        2 => segment_roundtrip(scratch.path(), rest, verify),
        m => {
            let mut bytes = rest.to_vec();
            if m == 1 {
                fix_segment(&mut bytes);
            }
            let path = scratch.path().join("input.seg");
            write_file(&path, &bytes);
            match Segment::open(&path, verify) {
                Ok(seg) => probe_segment(&seg, &[0, 1, 1 << 20, u64::MAX]),
                Err(e) => clear(&e),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Manifests

/// Manifests: what decodes re-encodes to the very same bytes, and reads
/// back the same from a file.
///
/// Mode byte: odd, the trailing checksum is recomputed first.
pub fn manifest(data: &[u8]) {
    let (mode, rest) = split_mode(data);
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 && bytes.len() >= 4 {
        let at = bytes.len() - 4;
        let crc = crc32c::crc32c(&bytes[..at]);
        put_u32(&mut bytes, at, crc);
    }
    let name = Path::new("manifest-fuzz");
    match Manifest::decode(name, &bytes) {
        Ok(m) => {
            assert_eq!(
                m.encode(),
                bytes,
                "a decoded manifest re-encodes differently"
            );
            let _ = m.level_sizes();
            let scratch = Scratch::new();
            write_file(&Manifest::file(scratch.path(), m.generation), &bytes);
            let read = Manifest::read(scratch.path(), m.generation).expect("reading it back");
            assert_eq!(read, m);
            match Manifest::latest(scratch.path()) {
                Ok(latest) => assert_eq!(latest, Some(m)),
                Err(e) => clear(&e),
            }
        }
        Err(e) => clear(&e),
    }
}

// ---------------------------------------------------------------------------
// The coordination file

/// The coordination file: opening one with arbitrary contents is `Ok` or a
/// clear error, and so is opening a new database beside it; such a
/// database is empty, takes a commit, and keeps it across a reopen.
///
/// Two bytes first: the reader and process slot counts asked for; then a
/// mode byte: odd, the magic, version and ready mark are made valid, and
/// the boot id is this machine's (so the opener may trust the rest).
pub fn coord(data: &[u8]) {
    use crate::coord::layout::*;
    let mut input = Bytes { data };
    let readers = 1 + input.byte() as u32 % 16;
    let procs = 1 + input.byte() as u32 % 8;
    let mode = input.byte();
    let mut bytes = input.data.to_vec();
    if mode & 1 == 1 && bytes.len() >= HEADER_SIZE {
        bytes[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&MAGIC);
        bytes[OFF_VERSION..OFF_VERSION + 8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes[OFF_INIT_STATE..OFF_INIT_STATE + 8].copy_from_slice(&INIT_READY.to_le_bytes());
        let boot = crate::coord::boot_id();
        bytes[OFF_BOOT_ID..OFF_BOOT_ID + 8].copy_from_slice(&boot.to_le_bytes());
    }
    let scratch = Scratch::new();
    let path = scratch.path().join("coord");
    write_file(&path, &bytes);
    match crate::coord::Coord::open(&path, readers, procs) {
        Ok((c, _)) => {
            let _ = c.read_view();
            let _ = c.reader_slots();
            let _ = c.attached_processes();
            if let Ok((slot, _)) = c.claim_process_slot(std::process::id() as u64, 1) {
                c.release_process_slot(slot);
            }
        }
        Err(e) => clear(&e),
    }
    let dir = scratch.path().join("db");
    std::fs::create_dir(&dir).expect("creating a database directory");
    write_file(&dir.join("coord"), &bytes);
    let open = || {
        Database::builder()
            .durability(Durability::None)
            .memtable_size(16 << 10)
            .arena_size(1 << 16)
            .max_readers(readers)
            .max_processes(procs)
            .open(&dir)
    };
    let db = match open() {
        Ok(db) => db,
        Err(e) => {
            clear(&e);
            return;
        }
    };
    let got = contents(&db).expect("reading a new database");
    assert!(got.is_empty(), "a new database holds {} keys", got.len());
    let committed = db.begin_write().and_then(|mut w| {
        w.put(b"k", b"v")?;
        w.commit()
    });
    let mut expect = Model::new();
    match committed {
        Ok(_) => {
            expect.insert(b"k".to_vec(), b"v".to_vec());
        }
        Err(e) => clear(&e),
    }
    drop(db);
    let db = open().expect("reopening");
    assert_eq!(contents(&db).expect("reading after reopen"), expect);
}

// ---------------------------------------------------------------------------
// The API against a model, with injected faults

type Batch = Vec<(Vec<u8>, Option<Vec<u8>>)>;

fn apply(model: &mut Model, batch: &Batch) {
    for (k, v) in batch {
        match v {
            Some(v) => model.insert(k.clone(), v.clone()),
            None => model.remove(k),
        };
    }
}

fn model_key(b: u8) -> Vec<u8> {
    format!("k{:02}", b % 40).into_bytes()
}

fn model_value(b: u8, n: u64) -> Vec<u8> {
    let len = match b % 8 {
        0 => 0,
        1..=5 => b as usize * 3,
        6 => 600,
        _ => 3000,
    };
    let mut v = format!("{n}:").into_bytes();
    v.resize(len.max(v.len()), b'v');
    v
}

/// The database, its model and the faults in force.
struct Machine {
    dir: PathBuf,
    durability: Durability,
    db: Option<Database>,
    plan: Option<Plan>,
    /// Every acknowledged commit applied.
    model: Model,
    /// Writes not yet committed.
    pending: Batch,
    /// Values handed out so far (each value is unique).
    serial: u64,
}

impl Machine {
    fn open(&self) -> crate::Result<Database> {
        small_db(&self.dir, self.durability, false)
    }

    /// Contents read now must be the model's, if the read succeeds.
    fn check_reads(&self) {
        let Some(db) = &self.db else { return };
        if let Ok(got) = contents(db) {
            assert!(
                got == self.model,
                "wrong contents (faults: {})",
                self.faults()
            );
        }
    }

    fn faults(&self) -> String {
        match &self.plan {
            Some(p) => format!("{:?}", p.fired()),
            None => "none".into(),
        }
    }

    /// Close everything, drop the plan and reopen: the database must open
    /// without repair and hold every acknowledged commit, and `unknown` if
    /// it may.
    fn settle(&mut self, unknown: Option<&Batch>) {
        let fired = self.faults();
        self.db = None;
        self.plan = None;
        let db = self
            .open()
            .unwrap_or_else(|e| panic!("reopen without faults (fired {fired}): {e}"));
        let got = contents(&db).unwrap_or_else(|e| panic!("read after reopen: {e}"));
        let mut with = self.model.clone();
        if let Some(b) = unknown {
            apply(&mut with, b);
        }
        if got == with {
            self.model = with;
        } else {
            assert!(
                got == self.model,
                "after reopen the contents differ from the acknowledged commits (fired {fired})"
            );
        }
        self.db = Some(db);
    }

    fn commit(&mut self) {
        let batch = std::mem::take(&mut self.pending);
        let Some(db) = &self.db else { return };
        let result = db.begin_write().and_then(|mut w| {
            for (k, v) in &batch {
                match v {
                    Some(v) => w.put(k, v)?,
                    None => w.delete(k)?,
                }
            }
            // The transaction reads its own writes.
            if let Some((k, v)) = batch.last() {
                if let Ok(got) = w.get(k) {
                    assert_eq!(got, v.as_deref(), "a write transaction reads its writes");
                }
            }
            w.commit()
        });
        match result {
            Ok(_) => apply(&mut self.model, &batch),
            Err(Error::CommitOutcomeUnknown { .. }) => self.settle(Some(&batch)),
            Err(e @ Error::Poisoned(_)) => {
                clear(&e);
                self.settle(None)
            }
            Err(e) => clear(&e),
        }
    }

    fn abort(&mut self) {
        let batch = std::mem::take(&mut self.pending);
        let Some(db) = &self.db else { return };
        if let Ok(mut w) = db.begin_write() {
            for (k, v) in &batch {
                let _ = match v {
                    Some(v) => w.put(k, v),
                    None => w.delete(k),
                };
            }
            w.abort();
        }
    }

    fn get(&self, k: &[u8]) {
        let Some(db) = &self.db else { return };
        let Ok(r) = db.begin_read() else { return };
        if let Ok(got) = r.get(k) {
            assert_eq!(
                got,
                self.model.get(k).map(|v| &v[..]),
                "point read of {k:?}"
            );
        }
    }

    fn range(&self, a: &[u8], b: &[u8], reverse: bool) {
        let Some(db) = &self.db else { return };
        let Ok(r) = db.begin_read() else { return };
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let mut want: Vec<(&[u8], &[u8])> = self
            .model
            .range::<[u8], _>((Bound::Included(lo), Bound::Excluded(hi)))
            .map(|(k, v)| (&k[..], &v[..]))
            .collect();
        let it = r.range(lo..hi);
        let items: Box<dyn Iterator<Item = _>> = if reverse {
            want.reverse();
            Box::new(it.rev())
        } else {
            Box::new(it)
        };
        let mut got = Vec::new();
        for kv in items {
            match kv {
                Ok(kv) => got.push(kv),
                Err(_) => {
                    // What came before the error is still right.
                    want.truncate(got.len());
                    break;
                }
            }
        }
        assert_eq!(got, want, "range {lo:?}..{hi:?} (reverse: {reverse})");
    }

    fn reopen(&mut self, reboot: bool) {
        self.db = None;
        if reboot {
            // What a reboot forgets: the shared memory.
            for entry in std::fs::read_dir(&self.dir).expect("listing the database") {
                let entry = entry.expect("listing the database");
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name == "coord" || (name.starts_with("mem-") && name.ends_with(".arena")) {
                    std::fs::remove_file(entry.path()).expect("removing shared memory");
                }
            }
        }
        match self.open() {
            Ok(db) => {
                self.db = Some(db);
                self.check_reads();
            }
            Err(e) => {
                assert!(self.plan.is_some(), "reopen without faults: {e}");
                clear(&e);
            }
        }
    }

    fn fault(&mut self, a: u8, b: u8) {
        self.plan = None;
        let fault = Fault {
            op: Op::ALL[a as usize % Op::ALL.len()],
            nth: 1 + (b % 32) as u64,
            errno: if a & 0x80 == 0 {
                libc::EIO
            } else {
                libc::ENOSPC
            },
            sticky: b & 0x40 != 0,
            short: b & 0x80 != 0,
        };
        self.plan = Some(Plan::install(&self.dir, vec![fault]));
    }
}

/// The API against a model, with injected I/O faults. The input is a
/// program: a durability byte, then operations (put, delete, commit,
/// abort, point read, range, reopen, reboot, compaction, sync, install or
/// drop a fault). A commit that returned `Ok` is present, one that failed
/// with an error other than [`Error::CommitOutcomeUnknown`] is absent,
/// reads are right or an error, and after dropping the faults and
/// reopening everything acknowledged is there.
pub fn api_model(data: &[u8]) {
    let mut input = Bytes { data };
    let durability = [
        Durability::Immediate,
        Durability::Eventual,
        Durability::None,
    ][input.byte() as usize % 3];
    let scratch = Scratch::new();
    let dir = scratch.path().join("db");
    let mut m = Machine {
        db: Some(small_db(&dir, durability, false).expect("creating a database")),
        dir,
        durability,
        plan: None,
        model: Model::new(),
        pending: Batch::new(),
        serial: 0,
    };
    let mut reopens = 0;
    for _ in 0..400 {
        if input.is_empty() {
            break;
        }
        let op = input.byte();
        match op % 16 {
            0..=3 => {
                let (k, v) = (input.byte(), input.byte());
                m.serial += 1;
                let value = model_value(v, m.serial);
                m.pending.push((model_key(k), Some(value)));
            }
            4 => {
                let k = input.byte();
                m.pending.push((model_key(k), None));
            }
            5 | 6 => m.commit(),
            7 => m.abort(),
            8 => m.get(&model_key(input.byte())),
            9 => {
                let (a, b) = (model_key(input.byte()), model_key(input.byte()));
                m.range(&a, &b, op & 0x10 != 0);
            }
            10 | 11 if reopens < 12 => {
                reopens += 1;
                m.reopen(op % 16 == 11);
            }
            12 => {
                if let Some(db) = &m.db {
                    match db.compact() {
                        Err(e @ Error::Poisoned(_)) => {
                            clear(&e);
                            m.settle(None);
                        }
                        Err(e) => clear(&e),
                        Ok(()) => {}
                    }
                    m.check_reads();
                }
            }
            13 => {
                if let Some(db) = &m.db {
                    if let Err(e) = db.sync() {
                        clear(&e);
                    }
                }
            }
            14 => {
                let (a, b) = (input.byte(), input.byte());
                m.fault(a, b);
            }
            15 => m.plan = None,
            _ => m.check_reads(),
        }
    }
    m.pending.clear();
    m.settle(None);
    // And it works: a commit, then everything once more.
    let db = m.db.as_ref().expect("settled");
    let mut w = db.begin_write().expect("begin_write after settling");
    w.put(b"k-final", b"1").expect("put");
    w.commit().expect("a commit after settling");
    m.model.insert(b"k-final".to_vec(), b"1".to_vec());
    assert!(contents(db).expect("read") == m.model, "the last commit");
}
