//! Regression tests of the storage layer (segments, manifests, the view,
//! garbage collection, history): each pins a bug that was found and fixed,
//! and asserts the documented behaviour. Crash states are built by freezing
//! a job at a known instruction (holding one of the engine's kernel locks
//! from a separate open file description) and copying the directory, or by
//! editing a closed database's files into exactly the state a kill leaves.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    commit_until_sealed, copy_crash_image, db_contents, ofd, open_coord, patch, read_wal_records,
    simulate_reboot, small, sparse_copy,
};
use scribedb::{Database, Durability};

/// Header offsets of the coordination file (docs/design.md section 3).
const COORD_BOOT_ID: u64 = 40;
const COORD_MANIFEST_GENERATION: u64 = 160;
const COORD_VIEW_SEQ: u64 = 176;
/// Kernel lock bytes on `coord`.
const LOCK_VIEW: i64 = 2;
const LOCK_MAINT: i64 = 3;

fn coord_u64(dir: &Path, off: u64) -> u64 {
    let b = common::read(&dir.join("coord"));
    u64::from_le_bytes(b[off as usize..off as usize + 8].try_into().unwrap())
}

// ---------------------------------------------------------------------------
// 1. Any call of Database::oldest_snapshot() (and so Database::stats(), i.e.
//    `scribe stat`) raises gc_horizon to committed_ts, after which every
//    read of the past inside the retention window fails with `Corrupted`.
// ---------------------------------------------------------------------------

fn past_read_after(poke: impl Fn(&Database)) {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .durability(Durability::None)
        .retention(Duration::from_secs(3600))
        .open(tmp.path())
        .unwrap();
    let mut w = db.begin_write().unwrap();
    w.put("k", "v1").unwrap();
    let ts1 = w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    w.put("k", "v2").unwrap();
    w.commit().unwrap();
    // Works before the poke.
    assert_eq!(
        db.begin_read_at(ts1).unwrap().get("k").unwrap(),
        Some(&b"v1"[..])
    );
    poke(&db);
    let r = db
        .begin_read_at(ts1)
        .expect("a read within the retention window must succeed");
    assert_eq!(r.get("k").unwrap(), Some(&b"v1"[..]));
}

#[test]
fn past_reads_within_retention_work_after_oldest_snapshot() {
    past_read_after(|db| {
        db.oldest_snapshot();
    });
}

#[test]
fn past_reads_within_retention_work_after_stats() {
    past_read_after(|db| {
        db.stats().unwrap();
    });
}

// ---------------------------------------------------------------------------
// 2. A process killed inside Coord::write_view (view_seq odd) bricks the
//    database: every read_view spins then fails, and recover_alone calls
//    read_view() before anything else, so even a lone opener (and repair)
//    cannot open it. The coordination file "holds nothing that is not in
//    the log", so a lone opener must be able to rebuild.
// ---------------------------------------------------------------------------

fn odd_view_seq(repair: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let db = small(dir);
        let mut w = db.begin_write().unwrap();
        w.put("k", "v").unwrap();
        w.commit().unwrap();
        db.sync().unwrap();
    }
    // Exactly what a kill between the two sequence stores of write_view
    // (seal, publish_manifest) leaves behind.
    let seq = coord_u64(dir, COORD_VIEW_SEQ);
    patch(&dir.join("coord"), COORD_VIEW_SEQ, &(seq | 1).to_le_bytes());
    let db = Database::builder()
        .repair(repair)
        .open(dir)
        .expect("a lone opener must recover from a view change cut short");
    assert_eq!(db.begin_read().unwrap().get("k").unwrap(), Some(&b"v"[..]));
}

#[test]
fn a_view_change_cut_short_by_a_kill_is_finished_by_the_next_opener() {
    odd_view_seq(false);
}

#[test]
fn a_view_change_cut_short_by_a_kill_is_finished_also_with_repair() {
    odd_view_seq(true);
}

// ---------------------------------------------------------------------------
// 3. Recovery trusts the newest manifest in the directory, even one no view
//    ever published, while the live engine treats that manifest's segments
//    as garbage it may delete or overwrite (RunWriter::for_key removes
//    `seg-<next_segment_id>` before rewriting it; sweep removes unnamed
//    segments before it removes newer manifests). A flush killed between
//    `next.write()` and `publish_manifest`, followed by the next
//    maintainer's re-flush cut short by a power loss (or a full disk), leaves
//    a database that cannot be opened although the log still holds all of it.
// ---------------------------------------------------------------------------

#[test]
fn an_unpublished_manifest_goes_before_its_segment_names_are_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let image = tmp.path().join("image");
    std::fs::create_dir_all(&image).unwrap();
    let db = small(&dir);
    let coord = open_coord(&dir);
    // Keep the maintenance thread from flushing until we say so.
    ofd(&coord, LOCK_MAINT, libc::F_WRLCK);
    let mut model = BTreeMap::new();
    commit_until_sealed(&db, &mut model);
    // Let the flush run, but stop it at publish_manifest (it needs LOCK_VIEW).
    ofd(&coord, LOCK_VIEW, libc::F_WRLCK);
    ofd(&coord, LOCK_MAINT, libc::F_UNLCK);
    let manifest1 = dir.join("manifest-0000000000000001");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !manifest1.exists() {
        assert!(
            Instant::now() < deadline,
            "the flush never wrote its manifest"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        coord_u64(&dir, COORD_MANIFEST_GENERATION),
        0,
        "not published yet"
    );
    // The crash image: what is on disk if the flushing process dies now.
    copy_crash_image(&dir, &image);
    ofd(&coord, LOCK_VIEW, libc::F_UNLCK);
    drop(db);
    // The image as it is, rebooted: the unpublished manifest and its
    // segment are whole, and recovery uses them.
    let whole = tmp.path().join("whole");
    std::fs::create_dir_all(&whole).unwrap();
    for e in std::fs::read_dir(&image).unwrap().flatten() {
        sparse_copy(&e.path(), &whole.join(e.file_name()), None);
    }
    simulate_reboot(&whole);
    let db = Database::open(&whole).expect("open the crash image");
    assert_eq!(db_contents(&db), model);
    drop(db);
    // The next maintainer (same boot) re-flushes the sealed memtable from
    // the published manifest 0: next_segment_id 1. It removes the
    // unpublished manifest 1 first, durably, and only then removes
    // seg-0000000000000001.seg to write it again. Power is lost before
    // its own manifest 1 is renamed into place.
    std::fs::remove_file(image.join("manifest-0000000000000001")).unwrap();
    let mut removed = 0;
    for e in std::fs::read_dir(&image).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("seg-") {
            std::fs::remove_file(e.path()).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0);
    simulate_reboot(&image);
    // The log was never cut (nothing was published): every commit is in it.
    let db = Database::open(&image).expect("open after a crash: the log still holds every commit");
    assert_eq!(db_contents(&db), model);
    drop(db);
    // A manifest whose segment is gone (only damage does that now) is a
    // clear error naming the file, never a silent fallback.
    let damaged = tmp.path().join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    for e in std::fs::read_dir(&whole).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if common::is_log_file(&name) || name.starts_with("manifest-") {
            sparse_copy(&e.path(), &damaged.join(&name), None);
        }
    }
    match Database::open(&damaged) {
        Err(e) => assert!(e.to_string().contains("seg-"), "unclear error: {e}"),
        Ok(_) => panic!("opened with a segment missing"),
    }
}

// ---------------------------------------------------------------------------
// 4. The history floor is raised to committed_ts and never lowered, also by
//    a rebuild that lowers committed_ts (a torn, never-acknowledged tail of
//    an Eventual/None handle, which the docs allow to be lost). Afterwards
//    oldest_readable_ts() > committed_ts(): the newest commit cannot be read
//    "as of now", and once a flush publishes gc_horizon = that floor, no
//    reader (nor write transaction) can register at all until a new commit.
// ---------------------------------------------------------------------------

/// A database whose last commit was lost with its page cache: returns
/// (dir guard, the surviving commit's ts).
fn lost_unsynced_tail() -> (tempfile::TempDir, u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ts1;
    {
        let db = Database::builder()
            .durability(Durability::None)
            .open(dir)
            .unwrap();
        let mut w = db.begin_write().unwrap();
        w.put("a", "1").unwrap();
        ts1 = w.commit().unwrap();
        db.sync().unwrap();
        let mut w = db.begin_write().unwrap();
        w.put("b", "2").unwrap();
        w.commit().unwrap();
        // Anything that computes the oldest readable point (a flush, a
        // compaction, a read of the past, `scribe stat`) raises the floor.
        db.oldest_readable_ts().unwrap();
    }
    // Power loss: the second record never reached the disk, and the
    // machine rebooted (the coordination file survives, the boot id not).
    let recs = read_wal_records(dir);
    assert_eq!(recs.len(), 2);
    patch(
        &dir.join("wal"),
        recs[1].offset,
        &vec![0u8; recs[1].len as usize],
    );
    patch(&dir.join("coord"), COORD_BOOT_ID, &7u64.to_le_bytes());
    (tmp, ts1)
}

#[test]
fn after_a_lost_tail_the_newest_commit_is_readable_as_of_now() {
    let (tmp, ts1) = lost_unsynced_tail();
    let db = Database::open(tmp.path()).unwrap();
    assert_eq!(db.committed_ts(), ts1);
    let oldest = db.oldest_readable_ts().unwrap();
    assert!(
        oldest <= db.committed_ts(),
        "oldest readable {oldest} is after the newest commit {ts1}"
    );
    db.begin_read_at(ts1)
        .expect("reading the newest commit as of its own timestamp");
}

#[test]
fn after_a_lost_tail_a_compaction_locks_no_reader_out() {
    let (tmp, _) = lost_unsynced_tail();
    let db = Database::open(tmp.path()).unwrap();
    db.compact().expect("compact");
    let r = db.begin_read().expect("begin_read after a compaction");
    assert_eq!(r.get("a").unwrap(), Some(&b"1"[..]));
}

// ---------------------------------------------------------------------------
// 5. A bottom file whose tombstones are needed (an old reader still sees the
//    puts they shadow, or the retention window keeps them) stays "dense"
//    after its rewrite, so pick() chooses the same rewrite again at every
//    50 ms poll: an endless rewrite of the bottom level while the reader
//    lives (or for as long as the retention window keeps the tombstones).
// ---------------------------------------------------------------------------

#[test]
fn a_dense_bottom_file_is_not_rewritten_at_every_poll_while_a_reader_pins_it() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .durability(Durability::None)
        .memtable_size(64 << 10)
        .arena_size(1 << 20)
        .open(tmp.path())
        .unwrap();
    let key = |i: u32| format!("key-{i:05}").into_bytes();
    let mut w = db.begin_write().unwrap();
    for i in 0..400 {
        w.put(key(i), b"value").unwrap();
    }
    w.commit().unwrap();
    db.compact().unwrap();
    let old = db.begin_read().unwrap();
    let mut w = db.begin_write().unwrap();
    for i in 0..200 {
        w.delete(key(i)).unwrap();
    }
    w.commit().unwrap();
    db.compact().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = db.stats().unwrap().compactions;
    std::thread::sleep(Duration::from_secs(1));
    let after = db.stats().unwrap().compactions;
    assert_eq!(old.get(key(1)).unwrap(), Some(&b"value"[..]));
    assert!(
        after - before <= 2,
        "{} compactions in one idle second with nothing to gain",
        after - before
    );
}

// ---------------------------------------------------------------------------
// 6. flushed_ts is the newest *kept* version, not the newest commit the
//    flushed memtable holds. When the newest versions are dropped (a put
//    then a delete at the bottom), a rebuild after losing `coord` sets
//    committed_ts and hlc_last below timestamps already handed out and
//    acknowledged (design section 2: "timestamps never go backwards across
//    restarts, also when the coordination file is lost").
// ---------------------------------------------------------------------------

#[test]
fn committed_ts_stays_after_a_reboot_when_the_flush_dropped_the_newest_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let last;
    {
        let db = small(dir);
        let mut w = db.begin_write().unwrap();
        w.put("a", "1").unwrap();
        w.commit().unwrap();
        let mut w = db.begin_write().unwrap();
        w.put("k", "1").unwrap();
        w.commit().unwrap();
        let mut w = db.begin_write().unwrap();
        w.delete("k").unwrap();
        last = w.commit().unwrap();
        db.compact().unwrap();
    }
    simulate_reboot(dir);
    let db = small(dir);
    assert!(
        db.committed_ts() >= last,
        "committed_ts {} after the reboot, but {last} was acknowledged before it",
        db.committed_ts()
    );
}

// ---------------------------------------------------------------------------
// Backpressure is counted for the whole database: `scribe stat` in another
// process showed no stalls, as each handle counted only its own.
// ---------------------------------------------------------------------------

#[test]
fn stalls_behind_a_slow_flush_are_counted_for_every_handle() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let db = small(&dir);
    let observer = small(&dir);
    let coord = open_coord(&dir);
    // No flush can run while this is held, as if the maintainer were slow.
    ofd(&coord, LOCK_MAINT, libc::F_WRLCK);
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        ofd(&coord, LOCK_MAINT, libc::F_UNLCK);
        coord
    });
    let started = Instant::now();
    let mut model = BTreeMap::new();
    // Three budgets of writes: the second memtable reaches twice the budget
    // while the first still waits for its flush.
    for round in 0..200u32 {
        let mut w = db.begin_write().unwrap();
        for i in 0..10u32 {
            let k = format!("key-{:05}", (round * 10 + i) % 1000).into_bytes();
            let v = format!("{round}-{}", "s".repeat(40)).into_bytes();
            w.put(&k, &v).unwrap();
            model.insert(k, v);
        }
        w.commit().unwrap();
    }
    drop(release.join().unwrap());
    let (count, micros) = observer.stats().unwrap().stalls;
    assert!(count >= 1, "no commit waited for the flush");
    assert!(
        micros >= 100_000 && micros <= started.elapsed().as_micros() as u64,
        "waited {micros} µs"
    );
    assert_eq!(db_contents(&observer), model);
}
