//! Recovery from the write-ahead log: torn tails at every byte, damage
//! before the tail, damaged or foreign coordination and log files, and the
//! limits on keys and values.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::{read, simulate_reboot, Record};
use rand::{Rng, SeedableRng};
use scribedb::{Database, Durability, Error, RecoveryReport, MAX_KEY_LEN, MAX_VALUE_LEN};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

fn map(items: &[(&[u8], &[u8])]) -> Map {
    items
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

fn commit(db: &Database, writes: &[(&[u8], Option<&[u8]>)]) -> u64 {
    let mut w = db.begin_write().unwrap();
    for (k, v) in writes {
        match v {
            Some(v) => w.put(k, v).unwrap(),
            None => w.delete(k).unwrap(),
        }
    }
    w.commit().unwrap()
}

/// Run `trial` for every item on a few threads; collect the failures.
fn run_parallel<T: Sync>(items: &[T], trial: impl Fn(&T) -> Result<(), String> + Sync) {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                if let Err(e) = trial(item) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} trials failed; the first ones:\n{}",
        failures.len(),
        items.len(),
        failures[..failures.len().min(12)].join("\n")
    );
}

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn open(dir: &Path) -> Result<Database, String> {
    Database::open(dir).map_err(|e| format!("open failed: {e}"))
}

// ---------------------------------------------------------------------------
// (a) A torn last record, at every byte offset

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fill {
    Zeros,
    Garbage,
}

struct TornSetup {
    _dir: tempfile::TempDir,
    /// The log as the three commits left it.
    wal: Vec<u8>,
    last: Record,
    before_last: Map,
    with_last: Map,
    last_ts: [u64; 3],
}

fn torn_setup() -> TornSetup {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let t1 = commit(
        &db,
        &[
            (b"k1", Some(b"v1")),
            (b"shared", Some(b"one")),
            (b"doomed", Some(b"d")),
        ],
    );
    let t2 = commit(&db, &[(b"k2", Some(b"v2")), (b"shared", Some(b"two"))]);
    // Size the last commit's payload to a multiple of 8 and end it with a
    // non-zero byte: then every change to the record's bytes is a change to
    // checksummed bytes (no padding), and the record is whole only when
    // nothing was torn. Payload: count, put shared, delete doomed, put k3.
    let base = 8 + (13 + 6) + (5 + 6) + (13 + 2 + 2);
    let vlen = 8 + (8 - base % 8) % 8;
    let value = vec![b'3'; vlen];
    let t3 = commit(
        &db,
        &[
            (b"shared", Some(&value)),
            (b"doomed", None),
            (b"k3", Some(b"v3")),
        ],
    );
    drop(db);
    let wal = read(&dir.path().join("wal"));
    let records = common::wal_records(&wal);
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!(
        records.iter().map(|r| r.ts).collect::<Vec<_>>(),
        vec![t1, t2, t3]
    );
    let last = records[2].clone();
    assert_eq!(
        last.payload_len % 8,
        0,
        "test setup: the last record has padding"
    );
    assert_ne!(wal[(last.offset + last.len - 1) as usize], 0);
    assert_eq!(
        last.synced_mark,
        records[1].offset + records[1].len,
        "with Immediate durability a record vouches for its predecessor"
    );
    let before_last = map(&[
        (b"doomed", b"d"),
        (b"k1", b"v1"),
        (b"k2", b"v2"),
        (b"shared", b"two"),
    ]);
    let with_last = map(&[
        (b"k1", b"v1"),
        (b"k2", b"v2"),
        (b"k3", b"v3"),
        (b"shared", &value),
    ]);
    TornSetup {
        _dir: dir,
        wal,
        last,
        before_last,
        with_last,
        last_ts: [t1, t2, t3],
    }
}

/// Tear the last record from byte `k` on, reboot, recover, commit, reboot
/// again. `full_length` keeps the log at its preallocated length; otherwise
/// the copy keeps only a little of the zeros after the last record.
fn torn_trial(setup: &TornSetup, k: u64, fill: Fill, full_length: bool) -> Result<(), String> {
    let what = format!("k={k} fill={fill:?} full_length={full_length}");
    let last = &setup.last;
    let mut wal = setup.wal.clone();
    let start = (last.offset + k) as usize;
    let end = (last.offset + last.len) as usize;
    let mut rng = rand::rngs::StdRng::seed_from_u64(k * 2 + full_length as u64);
    for b in &mut wal[start..end] {
        *b = match fill {
            Fill::Zeros => 0,
            // Never zero, never the byte that was there.
            Fill::Garbage => loop {
                let g: u8 = rng.random_range(1..=255);
                if g != *b {
                    break g;
                }
            },
        };
    }
    if !full_length {
        wal.truncate((end.div_ceil(4096) * 4096) + (64 << 10));
    }
    let file_len = wal.len() as u64;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("wal"), &wal).unwrap();

    // What recovery must find.
    let whole = k == last.len;
    let record = &wal[last.offset as usize..end];
    let expect_torn = match record.iter().rposition(|&b| b != 0) {
        Some(i) if !whole => Some((last.offset, i as u64 + 1)),
        _ => None,
    };
    let (mut expect, records, last_ts) = if whole {
        (setup.with_last.clone(), 3, setup.last_ts[2])
    } else {
        (setup.before_last.clone(), 2, setup.last_ts[1])
    };

    let db = open(dir).map_err(|e| format!("{what}: {e}"))?;
    let report = db.recovery_report().clone();
    let want = RecoveryReport {
        records,
        last_ts,
        wal_end: if whole { end as u64 } else { last.offset },
        torn_tail: expect_torn,
        torn_records: 0,
        repaired: None,
        coord_rebuilt: None,
    };
    check!(
        report == want,
        "{what}: report {report:?}, expected {want:?}"
    );
    let got = common::db_contents(&db);
    check!(
        got == expect,
        "{what}: contents {got:?}, expected {expect:?}"
    );
    check!(db.committed_ts() == last_ts, "{what}: committed_ts");
    let after = read(&dir.join("wal"));
    check!(after.len() as u64 == file_len, "{what}: log length changed");
    let kept = if whole { end } else { last.offset as usize };
    check!(
        after[..kept] == setup.wal[..kept],
        "{what}: bytes of whole records changed"
    );
    if !whole {
        check!(
            after[last.offset as usize..].iter().all(|&b| b == 0),
            "{what}: torn bytes not cleared"
        );
    }

    // The log goes on from there, and survives another reboot.
    let marker = format!("after-{k}");
    let mut w = db.begin_write().map_err(|e| format!("{what}: {e}"))?;
    check!(w.snapshot_ts() == last_ts, "{what}: writer snapshot");
    w.put(b"after", marker.as_bytes()).unwrap();
    let ts = w.commit().map_err(|e| format!("{what}: commit: {e}"))?;
    check!(ts > last_ts, "{what}: ts {ts} not after {last_ts}");
    drop(db);
    let recs = common::read_wal_records(dir);
    check!(
        recs.len() as u64 == records + 1 && recs.last().unwrap().ts == ts,
        "{what}: records after the new commit: {recs:?}"
    );
    simulate_reboot(dir);
    let db = open(dir).map_err(|e| format!("{what}: second reboot: {e}"))?;
    let report = db.recovery_report();
    check!(
        report.records == records + 1
            && report.last_ts == ts
            && report.torn_tail.is_none()
            && report.repaired.is_none(),
        "{what}: second report {report:?}"
    );
    expect.insert(b"after".to_vec(), marker.into_bytes());
    let got = common::db_contents(&db);
    check!(
        got == expect,
        "{what}: contents after second reboot {got:?}"
    );
    Ok(())
}

#[test]
fn torn_tail_at_every_byte() {
    let setup = torn_setup();
    let mut trials = Vec::new();
    for fill in [Fill::Zeros, Fill::Garbage] {
        for k in 0..=setup.last.len {
            trials.push((k, fill));
        }
    }
    run_parallel(&trials, |&(k, fill)| torn_trial(&setup, k, fill, false));
}

/// The same at a few offsets with the log at its real, preallocated length
/// (slower: recovery scans all of it).
#[test]
fn torn_tail_in_full_length_log() {
    let setup = torn_setup();
    let len = setup.last.len;
    let mut trials = Vec::new();
    for fill in [Fill::Zeros, Fill::Garbage] {
        for k in [0, 1, 39, 40, len - 1, len] {
            trials.push((k, fill));
        }
    }
    run_parallel(&trials, |&(k, fill)| torn_trial(&setup, k, fill, true));
}

// ---------------------------------------------------------------------------
// (b) Damage before the tail

struct DamageSetup {
    dir: tempfile::TempDir,
    records: Vec<Record>,
}

const DAMAGE_COMMITS: usize = 6;

fn damage_setup() -> DamageSetup {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    for i in 0..DAMAGE_COMMITS {
        let k = format!("c{i}");
        let v = format!("value {i}");
        commit(
            &db,
            &[
                (k.as_bytes(), Some(v.as_bytes())),
                (b"latest", Some(i.to_string().as_bytes())),
            ],
        );
    }
    drop(db);
    let records = common::read_wal_records(dir.path());
    assert_eq!(records.len(), DAMAGE_COMMITS);
    for pair in records.windows(2) {
        assert_eq!(pair[1].synced_mark, pair[0].offset + pair[0].len);
    }
    DamageSetup { dir, records }
}

/// State after the first `n` commits of `damage_setup`.
fn first_commits(n: usize) -> Map {
    let mut m = Map::new();
    for i in 0..n {
        m.insert(
            format!("c{i}").into_bytes(),
            format!("value {i}").into_bytes(),
        );
        m.insert(b"latest".to_vec(), i.to_string().into_bytes());
    }
    m
}

fn damage_trial(
    setup: &DamageSetup,
    rec: usize,
    at: u64,
    bit: u8,
    full: bool,
) -> Result<(), String> {
    let what = format!("record {rec} byte {at} bit {bit}");
    let r = &setup.records[rec];
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let end = setup.records.last().map(|r| r.offset + r.len).unwrap();
    let len = (!full).then_some(end.div_ceil(4096) * 4096 + (64 << 10));
    common::copy_wal(setup.dir.path(), dir, len);
    let wal_path = dir.join("wal");
    let mut byte = [0u8];
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(&wal_path).unwrap();
        f.read_exact_at(&mut byte, r.offset + at).unwrap();
    }
    common::patch(&wal_path, r.offset + at, &[byte[0] ^ (1 << bit)]);
    let damaged = read(&wal_path);
    let later = (setup.records.len() - rec - 1) as u64;

    for attempt in 0..2 {
        match Database::open(dir) {
            Err(Error::WalDamaged {
                file,
                offset,
                records_after,
                ..
            }) => {
                check!(file == wal_path, "{what}: error names {}", file.display());
                check!(
                    offset == r.offset,
                    "{what}: offset {offset}, expected {}",
                    r.offset
                );
                check!(
                    records_after == later,
                    "{what}: records_after {records_after}, expected {later}"
                );
            }
            Err(e) => return Err(format!("{what}: expected WalDamaged, got {e}")),
            Ok(db) => {
                return Err(format!(
                    "{what}: open succeeded ({:?}) with {:?}",
                    db.recovery_report(),
                    common::db_contents(&db)
                ))
            }
        }
        check!(
            read(&wal_path) == damaged,
            "{what}: the failed open (attempt {attempt}) changed the log"
        );
    }

    let db = Database::builder()
        .repair(true)
        .open(dir)
        .map_err(|e| format!("{what}: repair open: {e}"))?;
    let report = db.recovery_report().clone();
    check!(
        report.repaired == Some((r.offset, later))
            && report.records == rec as u64
            && report.torn_tail.is_none()
            && report.wal_end == r.offset,
        "{what}: repair report {report:?}"
    );
    let mut expect = first_commits(rec);
    let got = common::db_contents(&db);
    check!(
        got == expect,
        "{what}: after repair {got:?}, expected {expect:?}"
    );
    let after = read(&wal_path);
    check!(
        after[..r.offset as usize] == damaged[..r.offset as usize]
            && after[r.offset as usize..].iter().all(|&b| b == 0),
        "{what}: repair did not cut the log exactly at the damage"
    );
    commit(&db, &[(b"fresh", Some(b"start"))]);
    drop(db);
    simulate_reboot(dir);
    let db = open(dir).map_err(|e| format!("{what}: reboot after repair: {e}"))?;
    let report = db.recovery_report();
    check!(
        report.records == rec as u64 + 1 && report.repaired.is_none() && report.torn_tail.is_none(),
        "{what}: report after repair and reboot {report:?}"
    );
    expect.insert(b"fresh".to_vec(), b"start".to_vec());
    let got = common::db_contents(&db);
    check!(got == expect, "{what}: after repair and reboot {got:?}");
    Ok(())
}

#[test]
fn flipped_bit_before_the_tail_is_refused_then_repaired() {
    let setup = damage_setup();
    let payload_end = |i: usize| 40 + setup.records[i].payload_len - 1;
    let cases = vec![
        (0, 0, 0, true),               // magic of the first record, log at full length
        (1, 9, 3, false),              // payload length
        (2, 17, 7, false),             // timestamp
        (2, 26, 1, false),             // synced mark
        (3, 33, 0, false),             // header checksum
        (3, 37, 5, false),             // payload checksum
        (4, 40, 2, false),             // write count
        (4, payload_end(4), 6, false), // last payload byte
        (0, payload_end(0), 0, false),
    ];
    run_parallel(&cases, |&(rec, at, bit, full)| {
        damage_trial(&setup, rec, at, bit, full)
    });
}

/// A flipped bit in the last record is indistinguishable from a torn
/// write: the record is cut and reported, the database opens.
#[test]
fn flipped_bit_in_the_last_record_is_a_torn_tail() {
    let setup = damage_setup();
    let last = setup.records.last().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    common::copy_wal(setup.dir.path(), tmp.path(), None);
    let wal_path = tmp.path().join("wal");
    let original = read(&wal_path)[(last.offset + 45) as usize];
    common::patch(&wal_path, last.offset + 45, &[original ^ 0x10]);
    let db = Database::open(tmp.path()).unwrap();
    let report = db.recovery_report();
    assert_eq!(report.records, DAMAGE_COMMITS as u64 - 1);
    assert_eq!(report.torn_tail.map(|(off, _)| off), Some(last.offset));
    assert!(report.torn_tail.unwrap().1 > 0);
    assert_eq!(report.repaired, None);
    assert_eq!(common::db_contents(&db), first_commits(DAMAGE_COMMITS - 1));
}

// ---------------------------------------------------------------------------
// (c) Damaged or foreign coordination and log files

/// A database with two commits, closed.
fn small_db() -> (tempfile::TempDir, Map) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    commit(&db, &[(b"a", Some(b"1")), (b"b", Some(b"2"))]);
    commit(&db, &[(b"a", None), (b"c", Some(b""))]);
    drop(db);
    (dir, map(&[(b"b", b"2"), (b"c", b"")]))
}

fn set_u64(path: &Path, offset: u64, v: u64) {
    common::patch(path, offset, &v.to_le_bytes());
}

fn flip(path: &Path, offset: u64, bit: u8) {
    let b = read(path)[offset as usize];
    common::patch(path, offset, &[b ^ (1 << bit)]);
}

/// Whether an error is a clear report about `file` (not a crash, not an
/// unrelated complaint).
fn names_file(e: &Error, file: &str) -> bool {
    let clear = matches!(
        e,
        Error::Corrupted { .. } | Error::BadMagic { .. } | Error::UnsupportedVersion { .. }
    ) || matches!(e, Error::Io { .. });
    let text = e.to_string();
    clear && (text.contains(file) || (file == "coord" && text.contains("coordination")))
}

/// A damaged magic in a database that exists (it has a log): the file is
/// derived state, so an opener that is alone replaces it and rebuilds from
/// the log, saying why; the log is not changed.
#[test]
fn coord_bad_magic() {
    for (offset, bit) in [(0, 0), (7, 6)] {
        let (dir, expect) = small_db();
        let coord = dir.path().join("coord");
        flip(&coord, offset, bit);
        let wal = read(&dir.path().join("wal"));
        let db = Database::open(dir.path()).unwrap();
        let why = db
            .recovery_report()
            .coord_rebuilt
            .as_deref()
            .expect("the damage is reported");
        assert!(why.contains("coordination"), "{why}");
        assert_eq!(common::db_contents(&db), expect);
        assert_eq!(&read(&coord)[..8], b"SCRBCOOR");
        assert!(read(&dir.path().join("wal")) == wal, "the log was modified");
    }
}

#[test]
fn coord_unsupported_version() {
    for version in [4u64, u64::MAX] {
        let (dir, expect) = small_db();
        let coord = dir.path().join("coord");
        set_u64(&coord, 8, version);
        // Alone in a database that exists: replaced and rebuilt.
        let db = Database::open(dir.path()).unwrap();
        let why = db
            .recovery_report()
            .coord_rebuilt
            .as_deref()
            .expect("the damage is reported");
        assert!(why.contains("version"), "{why}");
        assert_eq!(common::db_contents(&db), expect);
        assert_eq!(read(&coord)[8..16], 3u64.to_le_bytes());
    }
    // An earlier release's layout holds nothing of its own: an opener that
    // is alone replaces it and rebuilds from the log.
    let (dir, expect) = small_db();
    let coord = dir.path().join("coord");
    set_u64(&coord, 8, 1);
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(common::db_contents(&db), expect);
    assert_eq!(read(&coord)[8..16], 3u64.to_le_bytes());
}

fn truncate(path: &Path, len: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_len(len).unwrap();
}

/// A coordination file cut short after it was fully initialised (its magic
/// and `READY` state intact) is damage: an opener that is alone in a
/// database that exists replaces it, rebuilds from the log and says why.
#[test]
fn coord_truncated_is_rebuilt() {
    for len in [100u64, 4000, 4096, 5000] {
        let (dir, expect) = small_db();
        let coord = dir.path().join("coord");
        truncate(&coord, len);
        let wal_before = read(&dir.path().join("wal"));
        match std::panic::catch_unwind(|| Database::open(dir.path())) {
            Err(_) => panic!("{len} bytes: open panicked"),
            Ok(Err(e)) => panic!("{len} bytes: expected a rebuild, got {e:?}"),
            Ok(Ok(db)) => {
                assert!(
                    db.recovery_report().coord_rebuilt.is_some(),
                    "{len} bytes: not reported"
                );
                assert_eq!(common::db_contents(&db), expect, "{len} bytes");
            }
        }
        assert!(
            read(&dir.path().join("wal")) == wal_before,
            "{len} bytes: log modified"
        );
    }
}

/// Out-of-range slot counts and garbage, alone in a database that exists:
/// replaced and rebuilt from the log, and reported.
#[test]
fn coord_bad_slot_counts_or_garbage() {
    for (name, offset, value) in [
        ("zero reader slots", 16u64, Some(0u64)),
        ("absurd reader slots", 16, Some(u64::MAX)),
        ("zero process slots", 24, Some(0)),
        ("absurd process slots", 24, Some(1 << 40)),
        ("garbage", 0, None),
    ] {
        let (dir, expect) = small_db();
        let coord = dir.path().join("coord");
        match value {
            Some(v) => set_u64(&coord, offset, v),
            None => {
                let len = read(&coord).len();
                let mut rng = rand::rngs::StdRng::seed_from_u64(7);
                let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                std::fs::write(&coord, junk).unwrap();
            }
        }
        match std::panic::catch_unwind(|| Database::open(dir.path())) {
            Err(_) => panic!("{name}: open panicked"),
            Ok(Ok(db)) => {
                assert!(
                    db.recovery_report().coord_rebuilt.is_some(),
                    "{name}: not reported"
                );
                assert_eq!(common::db_contents(&db), expect, "{name}");
            }
            Ok(other) => panic!("{name}: got {other:?}"),
        }
    }
}

/// An empty or stub coordination file (as an interrupted creation leaves):
/// never a panic; either a clear error naming it, or a rebuild from the log
/// that loses nothing.
#[test]
fn coord_empty_or_stub() {
    for len in [0u64, 7] {
        let (dir, expect) = small_db();
        let coord = dir.path().join("coord");
        truncate(&coord, len);
        match std::panic::catch_unwind(|| Database::open(dir.path())) {
            Err(_) => panic!("{len} bytes: open panicked"),
            Ok(Err(e)) => assert!(names_file(&e, "coord"), "{len} bytes: unclear error: {e:?}"),
            Ok(Ok(db)) => {
                assert_eq!(common::db_contents(&db), expect, "{len} bytes: data lost");
                assert_eq!(db.recovery_report().records, 2, "{len} bytes: not rebuilt");
            }
        }
    }
}

#[test]
fn wal_bad_magic_or_version() {
    for reboot in [false, true] {
        for (what, offset, value) in [
            ("magic", 0u64, u64::from_le_bytes(*b"SCRBWAL\x01")),
            ("magic", 0, 0),
            ("version", 8, 4),
        ] {
            let (dir, expect) = small_db();
            if reboot {
                simulate_reboot(dir.path());
            }
            let wal = dir.path().join("wal");
            let original = read(&wal)[offset as usize..offset as usize + 8].to_vec();
            set_u64(&wal, offset, value);
            let before = read(&wal);
            match (what, Database::open(dir.path())) {
                ("magic", Err(Error::BadMagic { file, kind })) => {
                    assert_eq!(file, wal);
                    assert_eq!(kind, "write-ahead log");
                }
                ("version", Err(Error::UnsupportedVersion { file, found, .. })) => {
                    assert_eq!(file, wal);
                    assert_eq!(found, 4);
                }
                (_, other) => panic!("{what}={value:#x} reboot={reboot}: got {other:?}"),
            }
            assert!(read(&wal) == before, "the failed open modified the log");
            common::patch(&wal, offset, &original);
            let db = Database::open(dir.path()).unwrap();
            assert_eq!(common::db_contents(&db), expect);
        }
    }
}

/// A one-file log of format version 1 (before segments existed) or 2
/// (before the log was split into files) opens, and is marked version 3 so
/// that builds that know neither refuse it.
#[test]
fn one_file_logs_of_earlier_versions_are_upgraded_in_place() {
    for version in [1u64, 2] {
        let (dir, expect) = small_db();
        let wal = dir.path().join("wal");
        set_u64(&wal, 8, version);
        simulate_reboot(dir.path());
        let db = Database::open(dir.path()).unwrap();
        assert_eq!(common::db_contents(&db), expect);
        drop(db);
        assert_eq!(read(&wal)[8..16], 3u64.to_le_bytes());
    }
}

#[test]
fn wal_shorter_than_its_header() {
    let (dir, _) = small_db();
    let wal = dir.path().join("wal");
    let head = read(&wal)[..10].to_vec();
    std::fs::write(&wal, &head).unwrap();
    match std::panic::catch_unwind(|| Database::open(dir.path())) {
        Err(_) => panic!("open panicked"),
        Ok(Ok(_)) => panic!("opened a log shorter than its header"),
        Ok(Err(e)) => assert!(names_file(&e, "wal"), "unclear error: {e:?}"),
    }
    assert_eq!(read(&wal), head);
}

// ---------------------------------------------------------------------------
// (d) An empty value is a value

#[test]
fn empty_value_is_not_a_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let db = Database::open(path).unwrap();
    commit(
        &db,
        &[
            (b"empty", Some(b"")),
            (b"gone", Some(b"x")),
            (b"flip", Some(b"")),
        ],
    );
    let r1 = db.begin_read().unwrap();
    commit(&db, &[(b"gone", None), (b"flip", None)]);
    let r2 = db.begin_read().unwrap();
    commit(
        &db,
        &[
            (b"flip", Some(b"")),
            (b"last", Some(b"")),
            (b"absent", None),
        ],
    );
    let expect = map(&[(b"empty", b""), (b"flip", b""), (b"last", b"")]);

    let check = |db: &Database, when: &str| {
        let r = db.begin_read().unwrap();
        assert_eq!(r.get(b"empty").unwrap(), Some(&b""[..]), "{when}");
        assert_eq!(r.get(b"flip").unwrap(), Some(&b""[..]), "{when}");
        assert_eq!(r.get(b"gone").unwrap(), None, "{when}");
        assert_eq!(r.get(b"absent").unwrap(), None, "{when}");
        assert_eq!(common::contents(&r), expect, "{when}");
        let rev: Vec<Vec<u8>> = r.iter().rev().map(|kv| kv.unwrap().0.to_vec()).collect();
        assert_eq!(
            rev,
            vec![b"last".to_vec(), b"flip".to_vec(), b"empty".to_vec()]
        );
        assert_eq!(r.prefix(b"fl").count(), 1, "{when}");
        assert_eq!(r.prefix(b"go").count(), 0, "{when}");
        let w = db.begin_write().unwrap();
        assert_eq!(w.get(b"empty").unwrap(), Some(&b""[..]), "{when}");
        assert_eq!(w.get(b"gone").unwrap(), None, "{when}");
        assert_eq!(db.stats().unwrap().keys, 3, "{when}");
    };
    check(&db, "same handle");
    // Old snapshots keep their view.
    assert_eq!(r1.get(b"gone").unwrap(), Some(&b"x"[..]));
    assert_eq!(r1.get(b"flip").unwrap(), Some(&b""[..]));
    assert_eq!(r2.get(b"flip").unwrap(), None);
    assert_eq!(r2.get(b"empty").unwrap(), Some(&b""[..]));
    drop((r1, r2, db));

    let db = Database::open(path).unwrap();
    check(&db, "reopened");
    drop(db);
    simulate_reboot(path);
    let db = Database::open(path).unwrap();
    assert_eq!(db.recovery_report().records, 3);
    check(&db, "after a reboot");
    // In a write transaction's buffer too.
    let mut w = db.begin_write().unwrap();
    w.put(b"empty", b"").unwrap();
    w.delete(b"flip").unwrap();
    w.put(b"new", b"").unwrap();
    assert_eq!(w.get(b"new").unwrap(), Some(&b""[..]));
    assert_eq!(w.get(b"flip").unwrap(), None);
    let keys: Vec<Vec<u8>> = w.iter().map(|kv| kv.unwrap().0.to_vec()).collect();
    assert_eq!(
        keys,
        vec![b"empty".to_vec(), b"last".to_vec(), b"new".to_vec()]
    );
    w.commit().unwrap();
    drop(db);
    simulate_reboot(path);
    let db = Database::open(path).unwrap();
    assert_eq!(
        common::db_contents(&db),
        map(&[(b"empty", b""), (b"last", b""), (b"new", b"")])
    );
}

// ---------------------------------------------------------------------------
// (e) Limits on keys and values

fn is_key_too_large(r: scribedb::Result<impl std::fmt::Debug>, len: usize) -> bool {
    matches!(r, Err(Error::KeyTooLarge { len: l, max }) if l == len && max == MAX_KEY_LEN)
}

#[test]
fn key_limits_and_rejected_writes_leave_no_trace() {
    assert_eq!(MAX_KEY_LEN, 65_536);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let db = Database::open(path).unwrap();
    let t0 = commit(&db, &[(b"before", Some(b"1"))]);
    let wal_before = read(&path.join("wal"));
    let stats_before = db.stats().unwrap();

    let long = vec![b'k'; MAX_KEY_LEN + 1];
    let mut w = db.begin_write().unwrap();
    assert!(is_key_too_large(w.put(&long, b"v"), MAX_KEY_LEN + 1));
    assert!(is_key_too_large(w.put(b"", b"v"), 0));
    assert!(is_key_too_large(w.delete(&long), MAX_KEY_LEN + 1));
    assert!(is_key_too_large(w.delete(b""), 0));
    assert!(is_key_too_large(w.get(&long), MAX_KEY_LEN + 1));
    assert!(is_key_too_large(w.get(b""), 0));
    // A value one byte over the limit (the allocation is never touched).
    let huge = vec![0u8; MAX_VALUE_LEN + 1];
    match w.put(b"huge", &huge) {
        Err(Error::ValueTooLarge { len, max }) => {
            assert_eq!((len, max), (MAX_VALUE_LEN + 1, MAX_VALUE_LEN))
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    drop(huge);
    assert_eq!(w.iter().count(), 1, "rejected writes reached the buffer");
    assert_eq!(w.get(b"huge").unwrap(), None);
    // Only rejected writes: committing writes nothing.
    assert_eq!(w.commit().unwrap(), t0);
    assert_eq!(db.committed_ts(), t0);
    assert!(
        read(&path.join("wal")) == wal_before,
        "a rejected write reached the log"
    );
    let stats = db.stats().unwrap();
    assert_eq!(stats.wal_bytes, stats_before.wal_bytes);
    assert_eq!(stats.versions, stats_before.versions);

    let r = db.begin_read().unwrap();
    assert!(is_key_too_large(r.get(&long), MAX_KEY_LEN + 1));
    assert!(is_key_too_large(r.get(b""), 0));
    drop(r);

    // Rejected writes mixed with good ones: only the good ones commit, and
    // a key of exactly the maximum length is fine.
    let max_key: Vec<u8> = (0..MAX_KEY_LEN).map(|i| (i % 251) as u8).collect();
    let mut w = db.begin_write().unwrap();
    w.put(b"good", b"yes").unwrap();
    assert!(w.put(&long, b"no").is_err());
    w.put(&max_key, b"max").unwrap();
    assert!(w.delete(b"").is_err());
    let t1 = w.commit().unwrap();
    assert!(t1 > t0);
    let records = common::read_wal_records(path);
    assert_eq!(records.len(), 2);
    // count + put good + put max_key
    assert_eq!(
        records[1].payload_len,
        8 + (13 + 4 + 3) + (13 + MAX_KEY_LEN as u64 + 3)
    );
    let expect = {
        let mut m = map(&[(b"before", b"1"), (b"good", b"yes")]);
        m.insert(max_key.clone(), b"max".to_vec());
        m
    };
    assert_eq!(common::db_contents(&db), expect);
    drop(db);
    simulate_reboot(path);
    let db = Database::open(path).unwrap();
    assert_eq!(common::db_contents(&db), expect);
    assert_eq!(
        db.begin_read().unwrap().get(&max_key).unwrap(),
        Some(&b"max"[..])
    );
}

#[test]
fn value_of_64_mib_survives_a_reboot() {
    const LEN: usize = 64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let mut value = vec![0u8; LEN];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in value.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let check = |db: &Database, when: &str| {
        let r = db.begin_read().unwrap();
        let got = r.get(b"big").unwrap().expect("big value missing");
        assert!(
            got.len() == LEN && got == &value[..],
            "{when}: value differs"
        );
        let all: Vec<(Vec<u8>, usize)> = r
            .iter()
            .map(|kv| {
                let (k, v) = kv.unwrap();
                (k.to_vec(), v.len())
            })
            .collect();
        assert_eq!(
            all,
            vec![(b"big".to_vec(), LEN), (b"small".to_vec(), 1)],
            "{when}"
        );
    };
    // A budget above the value keeps the commit in the log (a default
    // budget would flush it into a segment at once).
    let open = || {
        Database::builder()
            .memtable_size(1 << 30)
            .open(path)
            .unwrap()
    };
    {
        let db = open();
        let mut w = db.begin_write().unwrap();
        w.put(b"big", &value).unwrap();
        w.put(b"small", b"s").unwrap();
        w.commit().unwrap();
        check(&db, "after commit");
    }
    simulate_reboot(path);
    let db = open();
    assert_eq!(db.recovery_report().records, 1);
    check(&db, "after a reboot");
    drop(db);
    let db = Database::open(path).unwrap();
    check(&db, "reopened");
}

// ---------------------------------------------------------------------------
// Records that pass their header checksum but make no sense

/// A record header with a valid checksum but an absurd payload length (a
/// crafted or badly damaged log) is damage to report, never a panic.
#[test]
fn checksummed_header_with_absurd_length_is_not_a_panic() {
    let mut failures = Vec::new();
    for payload_len in [
        u64::MAX,
        u64::MAX - 3,
        u64::MAX - 7,
        u64::MAX - 40,
        u64::MAX - 47,
        1 << 63,
    ] {
        let (dir, expect) = small_db();
        let recs = common::read_wal_records(dir.path());
        let last = recs.last().unwrap();
        let end = last.offset + last.len;
        // A header claiming a huge payload, right where the log ends.
        let mut header = Vec::new();
        header.extend_from_slice(&common::RECORD_MAGIC.to_le_bytes());
        header.extend_from_slice(&common::KIND_COMMIT.to_le_bytes());
        header.extend_from_slice(&payload_len.to_le_bytes());
        header.extend_from_slice(&(last.ts + 1).to_le_bytes());
        header.extend_from_slice(&0u64.to_le_bytes());
        let crc = crc32c::crc32c(&header);
        header.extend_from_slice(&crc.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        assert!(common::parse_record_header(&header).is_some());
        let wal = dir.path().join("wal");
        common::patch(&wal, end, &header);
        simulate_reboot(dir.path());
        let what = format!("payload_len {payload_len:#x}");
        match std::panic::catch_unwind(|| Database::open(dir.path())) {
            Err(_) => failures.push(format!("{what}: open panicked")),
            Ok(Ok(db)) => {
                let report = db.recovery_report();
                if common::db_contents(&db) != expect
                    || report.records != 2
                    || report.torn_tail.map(|t| t.0) != Some(end)
                {
                    failures.push(format!("{what}: recovered {report:?}"));
                }
            }
            Ok(Err(Error::WalDamaged { .. } | Error::Corrupted { .. })) => {}
            Ok(Err(e)) => failures.push(format!("{what}: unclear error {e:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------
// (e) Evidence before a torn tail

/// A copy of the damage setup with its coordination file, as a reboot
/// leaves it when `coord` survives: the next open rebuilds from the log.
fn rebooted_with_coord(setup: &DamageSetup) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    common::copy_wal(setup.dir.path(), tmp.path(), None);
    std::fs::copy(setup.dir.path().join("coord"), tmp.path().join("coord")).unwrap();
    // Another boot: the arenas are not trusted, the log is replayed.
    set_u64(&tmp.path().join("coord"), 40, 0x5eed);
    tmp
}

#[test]
fn a_damaged_last_record_is_damage_while_coord_says_it_was_durable() {
    let setup = damage_setup();
    let last = setup.records.last().unwrap();
    let tmp = rebooted_with_coord(&setup);
    let wal_path = tmp.path().join("wal");
    flip(&wal_path, last.offset + 45, 4);
    let before = read(&wal_path);
    match Database::open(tmp.path()) {
        Err(Error::WalDamaged { file, offset, .. }) => {
            assert_eq!(file, wal_path);
            assert_eq!(offset, last.offset);
        }
        other => panic!("expected WalDamaged, got {other:?}"),
    }
    assert!(read(&wal_path) == before, "a failed open changed the log");
    let db = Database::builder().repair(true).open(tmp.path()).unwrap();
    assert_eq!(db.recovery_report().repaired, Some((last.offset, 0)));
    assert_eq!(common::db_contents(&db), first_commits(DAMAGE_COMMITS - 1));
}

#[test]
fn a_log_cut_short_of_its_durable_end_is_damage() {
    let setup = damage_setup();
    let last = setup.records.last().unwrap();
    let tmp = rebooted_with_coord(&setup);
    let wal_path = tmp.path().join("wal");
    truncate(&wal_path, last.offset);
    match Database::open(tmp.path()) {
        Err(Error::WalDamaged { offset, what, .. }) => {
            assert_eq!(offset, last.offset);
            assert!(what.contains("durable"), "{what}");
        }
        other => panic!("expected WalDamaged, got {other:?}"),
    }
}

#[test]
fn intact_commits_after_damage_are_kept_whatever_the_durability() {
    for durability in [Durability::None, Durability::Eventual] {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::builder()
            .durability(durability)
            .open(dir.path())
            .unwrap();
        for i in 0..20u32 {
            let mut w = db.begin_write().unwrap();
            w.put(format!("k{i:02}"), format!("value {i}")).unwrap();
            w.commit().unwrap();
        }
        drop(db);
        let records = common::read_wal_records(dir.path());
        assert_eq!(records.len(), 20);
        // The coordination file is gone too: only the records after the
        // damage say the log went on.
        simulate_reboot(dir.path());
        flip(&dir.path().join("wal"), records[9].offset + 45, 2);
        match Database::open(dir.path()) {
            Err(Error::WalDamaged {
                offset,
                records_after,
                ..
            }) => {
                assert_eq!(offset, records[9].offset, "{durability:?}");
                assert_eq!(records_after, 10, "{durability:?}");
            }
            other => panic!("{durability:?}: expected WalDamaged, got {other:?}"),
        }
        let db = Database::builder().repair(true).open(dir.path()).unwrap();
        assert_eq!(db.recovery_report().repaired, Some((records[9].offset, 10)));
        assert_eq!(common::db_contents(&db).len(), 9);
    }
}

/// A machine crash can keep later unsynced records and lose a sector of
/// an earlier one: that tail was never durable, and is cleared as a torn
/// one, later records with it. The same records with a changed bit in
/// place of the lost sector are damage (above), and so is a lost sector
/// that a later record says was durable.
#[test]
fn a_sector_lost_in_a_crash_before_later_unsynced_records_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .durability(Durability::None)
        .open(dir.path())
        .unwrap();
    for i in 0..20u32 {
        let mut w = db.begin_write().unwrap();
        w.put(format!("k{i:02}"), vec![b'v' | 1; 700]).unwrap();
        w.commit().unwrap();
    }
    drop(db);
    let records = common::read_wal_records(dir.path());
    assert_eq!(records.len(), 20);
    // None of them was synced while the others were written.
    assert!(records[11..]
        .iter()
        .all(|r| r.synced_mark <= records[10].offset));
    simulate_reboot(dir.path());
    let wal = dir.path().join("wal");
    let saved = std::fs::read(&wal).unwrap();
    // The second sector that record 10 touches was lost, and with it the
    // head of record 11, which begins in it.
    let sector = (records[10].offset / 512 + 1) * 512;
    assert!(sector < records[10].offset + records[10].len);
    assert!((sector..sector + 512).contains(&records[11].offset));
    let mut lost = saved.clone();
    lost[sector as usize..sector as usize + 512].fill(0);
    std::fs::write(&wal, &lost).unwrap();
    let db = Database::open(dir.path()).expect("a crash image opens without repair");
    let report = db.recovery_report();
    assert_eq!(report.torn_tail.map(|t| t.0), Some(records[10].offset));
    assert_eq!(report.torn_records, 8);
    assert_eq!(common::db_contents(&db).len(), 10);
    drop(db);

    // A later record saying record 10 was durable makes it damage.
    let dir = tempfile::tempdir().unwrap();
    let mut log = saved[..records[12].offset as usize].to_vec();
    let mark = records[10].offset + records[10].len;
    log.extend(common::build_record(
        records[19].ts + 1,
        mark,
        &[(b"x", Some(b"y"))],
    ));
    log.resize(saved.len(), 0);
    log[sector as usize..sector as usize + 512].fill(0);
    std::fs::write(dir.path().join("wal"), &log).unwrap();
    match Database::open(dir.path()) {
        Err(Error::WalDamaged {
            offset,
            records_after,
            ..
        }) => assert_eq!((offset, records_after), (records[10].offset, 1)),
        other => panic!("expected WalDamaged, got {other:?}"),
    }
}
