//! Beyond memory: a memtable small enough that flushes and compactions
//! happen many times, checked against a model, across snapshots held
//! through them, reopens and reboots; and space that comes back.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{contents, db_contents, simulate_reboot, small};
use rand::{Rng, SeedableRng};
use scribedb::{Database, Durability, WriteTxn};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// A database with a memtable budget of `memtable` bytes and arenas of
/// `arena` bytes; commits are not synced.
fn open_sized(path: &Path, memtable: u64, arena: usize) -> Database {
    Database::builder()
        .durability(Durability::None)
        .memtable_size(memtable)
        .arena_size(arena)
        .open(path)
        .expect("open")
}

/// Bytes of disk blocks the database directory uses.
fn disk_use(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().map(|m| m.blocks() * 512).unwrap_or(0))
        .sum()
}

fn count_files(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .count()
}

/// Wait until the background flush has caught up.
fn settle(db: &Database) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.stats().unwrap().sealed_memtable {
        assert!(Instant::now() < deadline, "the flush never finished");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

/// Delete a random one of the first `keys` keys (with probability
/// `p_delete`) or give it a new value of round `round`, in `w` and `model`.
fn random_write(
    w: &mut WriteTxn,
    model: &mut Model,
    rng: &mut impl Rng,
    keys: u32,
    p_delete: f64,
    round: u32,
) {
    let i = rng.random_range(0..keys);
    if rng.random_bool(p_delete) {
        w.delete(key(i)).unwrap();
        model.remove(&key(i));
    } else {
        let v = value(rng, i, round);
        w.put(key(i), &v).unwrap();
        model.insert(key(i), v);
    }
}

/// Compact, then reboot and reopen: the database holds `model` throughout.
fn compact_and_reboot(db: Database, path: &Path, model: &Model) {
    db.compact().unwrap();
    assert!(db_contents(&db) == *model, "after the compaction");
    drop(db);
    simulate_reboot(path);
    let db = small(path);
    assert!(db_contents(&db) == *model, "after the reboot");
}

fn value(rng: &mut impl Rng, i: u32, round: u32) -> Vec<u8> {
    // Short values live in the arenas, long ones in the log until a flush.
    let len = if rng.random_bool(0.5) {
        rng.random_range(0..40)
    } else {
        rng.random_range(64..400)
    };
    let mut v = format!("{i}:{round}:").into_bytes();
    v.resize(len.max(v.len()), b'x');
    v
}

/// A count or seed from the environment, for longer runs.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    env_or("SCRIBEDB_SEGMENT_SEED", 7)
}

#[test]
fn model_with_flushes_compactions_snapshots_and_reboots() {
    let rounds: u32 = env_or("SCRIBEDB_SEGMENT_ROUNDS", 60);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let mut model = Model::new();
    let mut db = small(path);
    // Snapshots held across flushes and compactions, with what they saw.
    let mut held: Vec<(scribedb::ReadTxn, Model)> = Vec::new();
    for round in 0..rounds {
        let mut w = db.begin_write().unwrap();
        for _ in 0..rng.random_range(1..120) {
            random_write(&mut w, &mut model, &mut rng, 600, 0.2, round);
        }
        // The writer reads its own writes over every source.
        assert_eq!(
            w.iter()
                .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect::<Result<Model, _>>()
                .unwrap(),
            model,
            "writer's view, round {round}"
        );
        w.commit().unwrap();
        let r = db.begin_read().unwrap();
        let got = contents(&r);
        assert_eq!(got.len(), model.len(), "round {round}");
        assert!(got == model, "contents differ at round {round}");
        for _ in 0..20 {
            let i = rng.random_range(0..600);
            assert_eq!(
                r.get(key(i)).unwrap(),
                model.get(&key(i)).map(Vec::as_slice),
                "get {i} at round {round}"
            );
        }
        let rev: Vec<Vec<u8>> = r.iter().rev().map(|kv| kv.unwrap().0.to_vec()).collect();
        assert!(
            rev.iter().rev().eq(model.keys()),
            "reverse scan at round {round}"
        );
        let (lo, hi) = (key(100), key(300));
        let ranged: Vec<Vec<u8>> = r
            .range(lo.clone()..hi.clone())
            .map(|kv| kv.unwrap().0.to_vec())
            .collect();
        assert!(ranged.iter().eq(model.range(lo..hi).map(|(k, _)| k)));
        if rng.random_bool(0.15) && held.len() < 4 {
            held.push((r, model.clone()));
        } else {
            drop(r);
        }
        if rng.random_bool(0.1) && !held.is_empty() {
            held.remove(rng.random_range(0..held.len()));
        }
        for (snap, seen) in &held {
            assert!(contents(snap) == *seen, "a held snapshot changed");
        }
        match rng.random_range(0..30) {
            0 => {
                db.compact().unwrap();
                let s = db.stats().unwrap();
                assert!(!s.sealed_memtable);
            }
            1 if held.is_empty() => {
                drop(db);
                db = small(path);
            }
            2 if held.is_empty() => {
                drop(db);
                simulate_reboot(path);
                db = small(path);
                let report = db.recovery_report();
                // Only the log since the last flush is replayed.
                assert!(report.records <= 400, "replayed {} records", report.records);
            }
            _ => {}
        }
    }
    held.clear();
    assert!(db_contents(&db) == model);
    let s = db.stats().unwrap();
    assert!(
        s.manifest_generation > 3,
        "flushes happened: {}",
        s.manifest_generation
    );
    assert!(s.log_start > 64, "the log was cut");
    compact_and_reboot(db, path, &model);
}

#[test]
fn overwrite_churn_stays_in_bounded_space() {
    let writes: u32 = env_or("SCRIBEDB_CHURN_WRITES", 200_000);
    let keys = 10_000u32;
    let budget = 1u64 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path();
    let db = open_sized(path, budget, 4 << 20);
    let mut model = Model::new();
    let mut done = 0u32;
    let mut reader = None;
    while done < writes {
        let mut w = db.begin_write().unwrap();
        for _ in 0..100 {
            let i = done % keys;
            let v = format!("{done:0150}").into_bytes();
            w.put(key(i), &v).unwrap();
            model.insert(key(i), v);
            done += 1;
        }
        w.commit().unwrap();
        if done == writes / 4 {
            // A reader open through a stretch of churn, released halfway.
            reader = Some((db.begin_read().unwrap(), model.clone()));
        }
        if done == writes / 2 {
            let (r, seen) = reader.take().unwrap();
            assert!(contents(&r) == seen, "the held reader's snapshot changed");
        }
        if done % 50_000 == 0 {
            let used = disk_use(path);
            eprintln!("{done} writes: {} KiB on disk", used / 1024);
            // Also while the reader is held: it pins only the files of its
            // own view, not everything written since.
            let live: u64 = model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
            let bound = 2 * live + 3 * budget + (64 << 20);
            assert!(used <= bound, "{used} bytes on disk after {done} writes");
        }
    }
    settle(&db);
    // Let maintenance catch up with the files the reader pinned.
    db.compact().unwrap();
    let live: u64 = model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    let used = disk_use(path);
    let bound = 2 * live + 3 * budget + (64 << 20);
    eprintln!(
        "live {live} B, on disk {used} B, bound {bound} B, {} segment files",
        count_files(path, "seg-")
    );
    assert!(used <= bound, "{used} bytes on disk for {live} live");
    assert!(db_contents(&db) == model);
    assert!(count_files(path, "seg-") <= 2);
    assert!(count_files(path, "manifest-") <= 2);
}

#[test]
fn deleting_everything_and_compacting_returns_the_space() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path();
    let db = open_sized(path, 256 << 10, 2 << 20);
    let empty = disk_use(path);
    for chunk in 0..20u32 {
        let mut w = db.begin_write().unwrap();
        for i in 0..1000 {
            w.put(key(chunk * 1000 + i), [7u8; 200]).unwrap();
        }
        w.commit().unwrap();
    }
    db.compact().unwrap();
    let full = disk_use(path);
    let mut w = db.begin_write().unwrap();
    for i in 0..20_000 {
        w.delete(key(i)).unwrap();
    }
    w.commit().unwrap();
    db.compact().unwrap();
    // The maintenance thread deletes what the compaction retired.
    let deadline = Instant::now() + Duration::from_secs(10);
    while count_files(path, "seg-") > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = disk_use(path);
    eprintln!("empty {empty} B, full {full} B, after deleting all {after} B");
    for e in std::fs::read_dir(path).unwrap().flatten() {
        let m = e.metadata().unwrap();
        eprintln!(
            "  {:?} {} B, {} B on disk",
            e.file_name(),
            m.len(),
            m.blocks() * 512
        );
    }
    assert!(db_contents(&db).is_empty());
    assert_eq!(count_files(path, "seg-"), 0, "no segment is left");
    // What stays is the empty database plus the log's preallocated zero
    // blocks ahead of its end (up to two 16 MiB chunks, so that commits
    // sync in place), not the data.
    assert!(
        after <= empty + (32 << 20) + (1 << 20),
        "space came back: {after} B against {empty} B empty"
    );
}

#[test]
fn a_reader_in_another_handle_keeps_its_snapshot_through_compactions() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path();
    let writer = small(path);
    let reader_db = small(path);
    let mut w = writer.begin_write().unwrap();
    for i in 0..500 {
        w.put(key(i), format!("first-{i}")).unwrap();
    }
    w.commit().unwrap();
    let old = reader_db.begin_read().unwrap();
    let seen = contents(&old);
    for round in 0..25 {
        let mut w = writer.begin_write().unwrap();
        for i in 0..500 {
            if (i + round) % 3 == 0 {
                w.delete(key(i)).unwrap();
            } else {
                w.put(key(i), format!("round-{round}-{i}-{}", "y".repeat(80)))
                    .unwrap();
            }
        }
        w.commit().unwrap();
        writer.compact().unwrap();
        assert!(
            contents(&old) == seen,
            "snapshot changed after compaction {round}"
        );
        assert_eq!(
            old.get(key(7)).unwrap(),
            Some(&b"first-7"[..]),
            "point read of the old snapshot"
        );
    }
    drop(old);
    writer.compact().unwrap();
    // The old snapshot's versions are gone: one version per key is left.
    let s = writer.stats().unwrap();
    assert_eq!(s.segments, 1);
}

#[test]
fn deeper_levels_keep_every_answer() {
    let keys: u32 = env_or("SCRIBEDB_LEVEL_KEYS", 24_000);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path();
    // Level 1 is 1 MiB here, level 2 10 MiB.
    let db = open_sized(path, 64 << 10, 1 << 20);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed() + 1);
    let mut model = Model::new();
    let mut deepest = 0;
    for round in 0..(keys / 400) {
        let mut w = db.begin_write().unwrap();
        for _ in 0..400 {
            random_write(&mut w, &mut model, &mut rng, keys, 0.1, round);
        }
        w.commit().unwrap();
        deepest = deepest.max(db.stats().unwrap().level_bytes.len());
    }
    settle(&db);
    // Let background compactions finish what is due.
    std::thread::sleep(Duration::from_millis(300));
    let s = db.stats().unwrap();
    eprintln!("levels {:?}, {} segments", s.level_bytes, s.segments);
    assert!(deepest >= 3, "data reached level 2: {deepest} levels");
    assert!(db_contents(&db) == model);
    let r = db.begin_read().unwrap();
    for _ in 0..2000 {
        let i = rng.random_range(0..keys);
        assert_eq!(
            r.get(key(i)).unwrap(),
            model.get(&key(i)).map(Vec::as_slice)
        );
    }
    let rev: Vec<Vec<u8>> = r.iter().rev().map(|kv| kv.unwrap().0.to_vec()).collect();
    assert!(rev.iter().rev().eq(model.keys()));
    drop(r);
    compact_and_reboot(db, path, &model);
}
