//! Helpers shared by the integration tests: simulated reboots, copies of a
//! database directory, a reader for the write-ahead log's record chain, and
//! child processes (`child`).

#![allow(dead_code)]

pub mod child;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use scribedb::{Database, Durability, ReadTxn};

/// Size of the log file header.
pub const WAL_HEADER: usize = 64;
/// Size of a record header.
pub const RECORD_HEADER: usize = 40;
/// Record magic, `"SCWL"` as a little-endian u32.
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"SCWL");
/// Record kind of a commit.
pub const KIND_COMMIT: u32 = 1;

/// A database with a tiny memtable (32 KiB) and small arenas, so that
/// seals, flushes and compactions happen every few commits; commits are
/// not synced (`Durability::None`).
pub fn small(dir: &Path) -> Database {
    Database::builder()
        .durability(Durability::None)
        .memtable_size(32 << 10)
        .arena_size(1 << 20)
        .open(dir)
        .expect("open")
}

/// A random generator seeded from the environment variable `var`, or at
/// random; the seed is printed, with `test`, so that a run can be replayed.
pub fn seeded_rng(var: &str, test: &str) -> rand::rngs::StdRng {
    use rand::{Rng, SeedableRng};
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("{test}: {var}={seed}");
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Take (`F_WRLCK`) or drop (`F_UNLCK`) an OFD lock on one byte of `f`,
/// waiting for it: conflicts with the engine's locks as another process
/// would.
pub fn ofd(f: &File, byte: i64, kind: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: plain struct, zeroed is valid; OFD locks want l_pid = 0.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte;
    fl.l_len = 1;
    // SAFETY: valid descriptor and a pointer to a live struct.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLKW, &mut fl) };
    assert_eq!(rc, 0, "fcntl: {}", std::io::Error::last_os_error());
}

/// The coordination file of `dir`, open for reading and writing (to take
/// the engine's kernel locks on it).
pub fn open_coord(dir: &Path) -> File {
    File::options()
        .read(true)
        .write(true)
        .open(dir.join("coord"))
        .expect("opening the coordination file")
}

/// Commit round `round` of 20 writes (keys `key-00000` to `key-00699` in
/// turn), with values long enough to live in the log only; `model` follows.
pub fn commit_round(db: &Database, model: &mut BTreeMap<Vec<u8>, Vec<u8>>, round: u32) {
    let mut w = db.begin_write().unwrap();
    for i in 0..20u32 {
        let k = format!("key-{:05}", (round * 20 + i) % 700).into_bytes();
        let v = format!("{round}:{i}:{}", "x".repeat(90)).into_bytes();
        w.put(&k, &v).unwrap();
        model.insert(k, v);
    }
    w.commit().unwrap();
}

/// Commit rounds (`commit_round`) from 0 until the memtable is sealed;
/// returns the number of rounds.
pub fn commit_until_sealed(db: &Database, model: &mut BTreeMap<Vec<u8>, Vec<u8>>) -> u32 {
    let mut round = 0;
    while !db.stats().unwrap().sealed_memtable {
        commit_round(db, model, round);
        round += 1;
        assert!(round < 10_000, "the memtable never sealed");
    }
    round
}

/// Copy the files of `dir` that a crash leaves behind (the log files,
/// manifests and segments) into the directory `image`.
pub fn copy_crash_image(dir: &Path, image: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_log_file(&name) || name.starts_with("manifest-") || name.starts_with("seg-") {
            sparse_copy(&e.path(), &image.join(&name), None);
        }
    }
}

/// Whether `name` is one of the log's files: `wal`, or `wal-` and the
/// 16 hex digits of its base position.
#[allow(dead_code)]
pub fn is_log_file(name: &str) -> bool {
    name == "wal"
        || name
            .strip_prefix("wal-")
            .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Forget everything a reboot would: the coordination file and the mapped
/// version store. The next open has to rebuild from the write-ahead log.
pub fn simulate_reboot(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("listing the database directory") {
        let entry = entry.expect("reading a directory entry");
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "coord" || (name.starts_with("mem-") && name.ends_with(".arena")) {
            std::fs::remove_file(entry.path()).expect("removing a file");
        }
    }
}

/// Copy `src` to `dst` byte for byte, leaving runs of zeros as holes (the
/// log and the arenas are mostly zeros). With `len`, the copy is cut or
/// extended with zeros to that length instead.
pub fn sparse_copy(src: &Path, dst: &Path, len: Option<u64>) {
    const BLOCK: usize = 1 << 16;
    static ZEROS: [u8; BLOCK] = [0; BLOCK];
    let mut input = File::open(src).expect("opening the copy source");
    let src_len = input.metadata().expect("stat").len();
    let want = len.unwrap_or(src_len);
    let out = File::create(dst).expect("creating the copy");
    let mut buf = vec![0u8; BLOCK];
    let mut pos = 0u64;
    while pos < want.min(src_len) {
        let n = (want.min(src_len) - pos).min(BLOCK as u64) as usize;
        input
            .read_exact(&mut buf[..n])
            .expect("reading the copy source");
        if buf[..n] != ZEROS[..n] {
            out.write_all_at(&buf[..n], pos).expect("writing the copy");
        }
        pos += n as u64;
    }
    out.set_len(want).expect("sizing the copy");
    out.sync_all().expect("syncing the copy");
}

/// Copy only the write-ahead log of `src` into a new directory `dst`: what
/// is left of a database after a reboot wiped its shared memory.
pub fn copy_wal(src: &Path, dst: &Path, len: Option<u64>) {
    std::fs::create_dir_all(dst).expect("creating the copy directory");
    sparse_copy(&src.join("wal"), &dst.join("wal"), len);
}

/// Grow the (still empty) log of a database to `len` bytes of zeros, as its
/// preallocation would, so that later scans of it stay short.
pub fn presize_wal(dir: &Path, len: u64) {
    let f = File::options()
        .write(true)
        .open(dir.join("wal"))
        .expect("opening the log");
    assert!(f.metadata().unwrap().len() <= len);
    f.set_len(len).expect("sizing the log");
}

/// One record of the log, as found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Offset of the record in the file.
    pub offset: u64,
    /// Bytes it occupies, padding included.
    pub len: u64,
    pub payload_len: u64,
    pub ts: u64,
    pub synced_mark: u64,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// Parse the record header at the start of `b` if it is a valid one.
pub fn parse_record_header(b: &[u8]) -> Option<(u64, u64, u64)> {
    if b.len() < RECORD_HEADER
        || u32_at(b, 0) != RECORD_MAGIC
        || u32_at(b, 4) != KIND_COMMIT
        || crc32c::crc32c(&b[..32]) != u32_at(b, 32)
    {
        return None;
    }
    Some((u64_at(b, 8), u64_at(b, 16), u64_at(b, 24)))
}

/// The chain of valid records from the start of the log.
pub fn wal_records(wal: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut pos = WAL_HEADER;
    while let Some((payload_len, ts, synced_mark)) = parse_record_header(&wal[pos..]) {
        let len = RECORD_HEADER as u64 + payload_len.div_ceil(8) * 8;
        let end = pos + RECORD_HEADER + payload_len as usize;
        assert!(end <= wal.len(), "record at {pos} runs past the file");
        assert_eq!(
            crc32c::crc32c(&wal[pos + RECORD_HEADER..end]),
            u32_at(wal, pos + 36),
            "payload checksum of the record at {pos}"
        );
        out.push(Record {
            offset: pos as u64,
            len,
            payload_len,
            ts,
            synced_mark,
        });
        pos += len as usize;
    }
    out
}

/// The records of the log file of database directory `dir`.
pub fn read_wal_records(dir: &Path) -> Vec<Record> {
    wal_records(&std::fs::read(dir.join("wal")).expect("reading the log"))
}

/// Build a commit record exactly as the format describes (for tests that
/// plant records by hand).
pub fn build_record(ts: u64, synced_mark: u64, writes: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
    let mut payload = (writes.len() as u64).to_le_bytes().to_vec();
    for (k, v) in writes {
        match v {
            Some(v) => {
                payload.push(1);
                payload.extend_from_slice(&(k.len() as u32).to_le_bytes());
                payload.extend_from_slice(&(v.len() as u64).to_le_bytes());
                payload.extend_from_slice(k);
                payload.extend_from_slice(v);
            }
            None => {
                payload.push(2);
                payload.extend_from_slice(&(k.len() as u32).to_le_bytes());
                payload.extend_from_slice(k);
            }
        }
    }
    let mut rec = Vec::with_capacity(RECORD_HEADER + payload.len() + 8);
    rec.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
    rec.extend_from_slice(&KIND_COMMIT.to_le_bytes());
    rec.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    rec.extend_from_slice(&ts.to_le_bytes());
    rec.extend_from_slice(&synced_mark.to_le_bytes());
    let header_crc = crc32c::crc32c(&rec);
    rec.extend_from_slice(&header_crc.to_le_bytes());
    rec.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    rec.extend_from_slice(&payload);
    rec.resize(rec.len().div_ceil(8) * 8, 0);
    rec
}

/// Every key and value visible to `txn`.
pub fn contents(txn: &ReadTxn) -> BTreeMap<Vec<u8>, Vec<u8>> {
    txn.iter()
        .map(|kv| {
            let (k, v) = kv.expect("iterating");
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// Every key and value visible to a new read transaction on `db`.
pub fn db_contents(db: &Database) -> BTreeMap<Vec<u8>, Vec<u8>> {
    contents(&db.begin_read().expect("begin_read"))
}

/// Read the whole file.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Write `bytes` at `offset` of the file, in place.
pub fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let f = File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    f.write_all_at(bytes, offset).expect("patching");
    f.sync_all().expect("syncing");
}

/// Flush stdout after printing a line (used by child processes).
pub fn say(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}
