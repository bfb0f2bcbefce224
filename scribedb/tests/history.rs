//! Reads as of a past time: the retention window, `begin_read_at` at every
//! past commit through flushes, compactions and reboots, the floor that
//! never moves back, and a key's kept versions.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{contents, simulate_reboot};
use rand::{Rng, SeedableRng};
use scribedb::{Database, Durability, Error};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn open(path: &Path, retention: Option<Duration>) -> Database {
    let mut b = Database::builder()
        .durability(Durability::None)
        .memtable_size(24 << 10)
        .arena_size(1 << 20);
    if let Some(r) = retention {
        b = b.retention(r);
    }
    b.open(path).expect("open")
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

#[test]
fn every_past_commit_within_retention_reads_exactly() {
    let rounds: u32 = std::env::var("SCRIBEDB_HISTORY_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(80);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path();
    let mut db = open(path, Some(Duration::from_secs(3600)));
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut model = Model::new();
    let mut history: Vec<(u64, Model)> = Vec::new();
    for round in 0..rounds {
        let mut w = db.begin_write().unwrap();
        for _ in 0..rng.random_range(1..60) {
            let i = rng.random_range(0..300);
            if rng.random_bool(0.25) {
                w.delete(key(i)).unwrap();
                model.remove(&key(i));
            } else {
                let v = format!("{i}@{round}:{}", "v".repeat(rng.random_range(0..120)));
                w.put(key(i), &v).unwrap();
                model.insert(key(i), v.into_bytes());
            }
        }
        let ts = w.commit().unwrap();
        history.push((ts, model.clone()));
        match rng.random_range(0..20) {
            0 => db.compact().unwrap(),
            1 => {
                drop(db);
                simulate_reboot(path);
                // Reopened without the option: the stored window applies.
                db = open(path, None);
                assert_eq!(db.retention().unwrap(), Duration::from_secs(3600));
            }
            _ => {}
        }
        if round % 10 == 9 {
            for (n, (ts, seen)) in history.iter().enumerate() {
                let r = db.begin_read_at(*ts).unwrap();
                assert_eq!(r.snapshot_ts(), *ts);
                assert!(contents(&r) == *seen, "read at {ts} differs");
                // Just before the next commit: still this one's state.
                if let Some((next, _)) = history.get(n + 1) {
                    let r = db.begin_read_at(next - 1).unwrap();
                    assert_eq!(r.snapshot_ts(), next - 1);
                    assert!(contents(&r) == *seen, "read before {next} differs");
                }
            }
        }
    }
    db.compact().unwrap();
    assert!(db.stats().unwrap().segments >= 1);
    // A key's versions, newest first, with their timestamps.
    let r = db.begin_read().unwrap();
    for i in 0..300 {
        let versions = r.versions(key(i)).unwrap();
        assert!(versions.windows(2).all(|w| w[0].ts > w[1].ts));
        let expect: Vec<(u64, Option<Vec<u8>>)> = history
            .iter()
            .enumerate()
            .filter(|(n, (_, m))| {
                let before = if *n == 0 {
                    None
                } else {
                    history[n - 1].1.get(&key(i))
                };
                m.get(&key(i)) != before
            })
            .map(|(_, (ts, m))| (*ts, m.get(&key(i)).cloned()))
            .rev()
            .collect();
        let got: Vec<(u64, Option<Vec<u8>>)> = versions
            .iter()
            .map(|v| (v.ts, v.value.map(<[u8]>::to_vec)))
            .collect();
        // Every change of the key within the window is kept (a put of the
        // same value again is its own version, so compare what changed).
        for e in &expect {
            assert!(got.contains(e), "key {i}: version {e:?} missing");
        }
        assert_eq!(
            versions.first().and_then(|v| v.value),
            r.get(key(i)).unwrap()
        );
    }
    // As of a wall-clock time: now reads the newest commit.
    let r = db.begin_read_as_of(SystemTime::now()).unwrap();
    assert!(contents(&r) == model);
}

#[test]
fn without_retention_the_past_is_unavailable_and_the_floor_never_moves_back() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path();
    let db = open(path, None);
    assert_eq!(db.retention().unwrap(), Duration::ZERO);
    let mut stamps = Vec::new();
    for i in 0..200 {
        let mut w = db.begin_write().unwrap();
        w.put(key(i % 20), format!("{i:0200}")).unwrap();
        stamps.push(w.commit().unwrap());
    }
    let newest = *stamps.last().unwrap();
    let oldest = db.oldest_readable_ts().unwrap();
    assert_eq!(
        oldest, newest,
        "with no retention only the newest commit is readable"
    );
    match db.begin_read_at(stamps[0]) {
        Err(Error::HistoryUnavailable { requested, oldest }) => {
            assert_eq!(requested, stamps[0]);
            assert_eq!(oldest, newest);
        }
        other => panic!("expected HistoryUnavailable, got {other:?}"),
    }
    // A future timestamp reads the newest commit.
    let r = db.begin_read_at(u64::MAX - 1).unwrap();
    assert_eq!(r.snapshot_ts(), newest);
    drop(r);
    // A reader that is open keeps its snapshot, but the floor does not come
    // back to it: reading there again is refused.
    let held = db.begin_read().unwrap();
    let mut w = db.begin_write().unwrap();
    w.put(b"later", b"x").unwrap();
    let later = w.commit().unwrap();
    assert!(db.oldest_readable_ts().unwrap() >= later);
    assert!(matches!(
        db.begin_read_at(held.snapshot_ts()),
        Err(Error::HistoryUnavailable { .. })
    ));
    drop(held);
    // The floor survives a reboot (it is kept in the manifest).
    db.compact().unwrap();
    let floor = db.oldest_readable_ts().unwrap();
    drop(db);
    simulate_reboot(path);
    let db = open(path, None);
    assert!(db.oldest_readable_ts().unwrap() >= floor);
    assert!(matches!(
        db.begin_read_at(stamps[100]),
        Err(Error::HistoryUnavailable { .. })
    ));
}

#[test]
fn retention_is_a_property_of_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path();
    let a = open(path, Some(Duration::from_secs(60)));
    let b = open(path, None);
    assert_eq!(b.retention().unwrap(), Duration::from_secs(60));
    // Setting it in one handle changes it for every handle.
    let c = open(path, Some(Duration::from_secs(7200)));
    assert_eq!(a.retention().unwrap(), Duration::from_secs(7200));
    assert_eq!(b.retention().unwrap(), Duration::from_secs(7200));
    drop((a, b, c));
    let d = open(path, None);
    assert_eq!(d.retention().unwrap(), Duration::from_secs(7200));
    let too_long = Database::builder()
        .retention(Duration::from_secs(1000 * 365 * 24 * 3600))
        .open(path);
    assert!(matches!(too_long, Err(Error::InvalidOption { .. })));
}

#[test]
fn a_short_window_lets_old_versions_go() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path();
    let db = open(path, Some(Duration::from_millis(300)));
    let mut w = db.begin_write().unwrap();
    w.put(b"k", b"old").unwrap();
    let old = w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    w.put(b"k", b"new").unwrap();
    w.commit().unwrap();
    assert_eq!(
        db.begin_read_at(old).unwrap().get(b"k").unwrap(),
        Some(&b"old"[..])
    );
    std::thread::sleep(Duration::from_millis(400));
    db.compact().unwrap();
    assert!(matches!(
        db.begin_read_at(old),
        Err(Error::HistoryUnavailable { .. })
    ));
    let r = db.begin_read().unwrap();
    let versions = r.versions(b"k").unwrap();
    assert_eq!(versions.len(), 1, "the shadowed version went: {versions:?}");
    assert_eq!(versions[0].value, Some(&b"new"[..]));
}
