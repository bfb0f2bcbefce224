//! The log split into files: a new file at each seal, whole files deleted
//! behind each flush, and a rebuild that replays across files and takes a
//! file that ends short of the next one's start for damage, never for a
//! torn tail.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{
    commit_round, commit_until_sealed, copy_crash_image, db_contents, is_log_file, ofd, open_coord,
    simulate_reboot, small, sparse_copy,
};
use scribedb::{Database, Durability, Error};

/// Kernel lock byte on `coord` held by the process that flushes.
const LOCK_MAINT: i64 = 3;
const FILE_HEADER: u64 = 64;

/// The log files of `dir` as (base, path), in position order.
fn log_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            is_log_file(&name).then(|| {
                let base = match name.strip_prefix("wal-") {
                    Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
                    None => 0,
                };
                (base, e.path())
            })
        })
        .collect();
    files.sort();
    files
}

/// Wait until no memtable waits for its flush.
fn settle(db: &Database) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while db.stats().unwrap().sealed_memtable {
        assert!(std::time::Instant::now() < deadline, "the flush never ran");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn each_seal_starts_a_file_and_flushed_files_are_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let db = small(tmp.path());
    let mut model = BTreeMap::new();
    let mut bases_seen = std::collections::BTreeSet::new();
    for round in 0..1500 {
        commit_round(&db, &mut model, round);
        bases_seen.extend(log_files(tmp.path()).into_iter().map(|(b, _)| b));
    }
    settle(&db);
    db.compact().unwrap();
    let stats = db.stats().unwrap();
    // Positions run on across files: far more log was written than one
    // memtable holds, and it is gone but for the current file.
    assert!(stats.wal_bytes > 40 * stats.memtable_budget, "{stats:?}");
    assert!(bases_seen.len() > 40, "{} log files seen", bases_seen.len());
    let files = log_files(tmp.path());
    assert_eq!(files.len(), 1, "only the file appended to stays: {files:?}");
    assert!(stats.wal_file_bytes < 4 << 20, "{stats:?}");
    // The file appended to begins at or below the end of the log.
    assert!(files[0].0 + FILE_HEADER <= stats.wal_bytes);
    assert_eq!(db_contents(&db), model);
    drop(db);
    simulate_reboot(tmp.path());
    let db = small(tmp.path());
    assert_eq!(db_contents(&db), model);
    // And the log goes on from where it was.
    commit_round(&db, &mut model, 5000);
    assert_eq!(db_contents(&db), model);
}

/// A crash image with the sealed memtable's file and the current one both
/// unflushed: maintenance is held off while the writer goes on past a
/// seal. Returns the image's directory and what it must hold.
fn two_file_image(tmp: &Path) -> (PathBuf, BTreeMap<Vec<u8>, Vec<u8>>) {
    let dir = tmp.join("db");
    let image = tmp.join("image");
    std::fs::create_dir_all(&image).unwrap();
    let db = small(&dir);
    let coord = open_coord(&dir);
    ofd(&coord, LOCK_MAINT, libc::F_WRLCK);
    let mut model = BTreeMap::new();
    let sealed = commit_until_sealed(&db, &mut model);
    for round in sealed..sealed + 5 {
        commit_round(&db, &mut model, round);
    }
    copy_crash_image(&dir, &image);
    ofd(&coord, LOCK_MAINT, libc::F_UNLCK);
    drop(db);
    assert_eq!(log_files(&image).len(), 2, "{:?}", log_files(&image));
    (image, model)
}

/// Copy a crash image to a fresh directory.
fn copy_image(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        sparse_copy(&e.path(), &to.join(e.file_name()), None);
    }
}

#[test]
fn a_rebuild_replays_across_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (image, model) = two_file_image(tmp.path());
    let db = small(&image);
    assert_eq!(db_contents(&db), model);
    assert_eq!(db.recovery_report().torn_tail, None);
}

#[test]
fn a_file_that_ends_short_of_the_next_is_damage_and_repair_says_what_it_drops() {
    let tmp = tempfile::tempdir().unwrap();
    let (image, model) = two_file_image(tmp.path());
    let files = log_files(&image);
    let (first, second) = (&files[0], &files[1]);
    // Zero the last record of the first file: its end no longer meets the
    // second file's start. That the second file exists proves the first
    // was durable whole, so this is never a torn tail.
    let records = common::wal_records(&common::read(&first.1));
    let last = records.last().expect("the first file holds records");
    let file_offset = last.offset;
    let len = common::read(&first.1).len() as u64 - file_offset;
    common::patch(&first.1, file_offset, &vec![0u8; len.min(4096) as usize]);
    let before = (common::read(&first.1), common::read(&second.1));
    match Database::builder()
        .durability(Durability::None)
        .memtable_size(32 << 10)
        .arena_size(1 << 20)
        .open(&image)
    {
        Err(Error::WalDamaged { file, offset, .. }) => {
            assert_eq!(file, first.1);
            assert_eq!(offset, file_offset, "an offset in the file");
        }
        other => panic!("expected WalDamaged, got {other:?}"),
    }
    assert!(
        (common::read(&first.1), common::read(&second.1)) == before,
        "a failed open changed the log"
    );
    let repaired = tmp.path().join("repaired");
    copy_image(&image, &repaired);
    let db = Database::builder()
        .durability(Durability::None)
        .memtable_size(32 << 10)
        .arena_size(1 << 20)
        .repair(true)
        .open(&repaired)
        .unwrap();
    let (at, dropped) = db.recovery_report().repaired.expect("repair reports");
    assert_eq!(at, first.0 + file_offset);
    assert!(
        dropped >= 5,
        "the second file's records are dropped: {dropped}"
    );
    assert_eq!(log_files(&repaired).len(), 1, "the second file is gone");
    let got = db_contents(&db);
    assert!(got.len() <= model.len());
    assert!(got.iter().all(|(k, _)| model.contains_key(k)));
}

#[test]
fn files_a_dead_seal_left_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let (image, model) = two_file_image(tmp.path());
    let files = log_files(&image);
    let second = &files[1];
    let end = second.0 + common::read(&second.1).len() as u64;
    // A seal that died after creating its file (header only), at a moment
    // when the log ended earlier than it does now...
    let mut header = common::read(&second.1)[..FILE_HEADER as usize].to_vec();
    let stale_base = second.0 + 64;
    header[16..24].copy_from_slice(&stale_base.to_le_bytes());
    let stale = image.join(format!("wal-{stale_base:016x}"));
    std::fs::write(&stale, &header).unwrap();
    // ... and one that died before writing the header.
    let unstarted = image.join(format!("wal-{end:016x}"));
    std::fs::write(&unstarted, b"").unwrap();
    let db = small(&image);
    assert_eq!(db_contents(&db), model);
    assert!(!stale.exists() && !unstarted.exists());
    assert_eq!(log_files(&image).len(), 2);
}

/// A value that ends exactly where the next file's records begin lies in
/// the 64 positions under that file's header: it is read from the file
/// before, by every process, and flushed.
#[test]
fn a_value_at_the_end_of_a_file_is_read_from_that_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let db = small(&dir);
    let mut model = BTreeMap::new();
    // One put per commit, a key of 11 bytes and a value of 64: the
    // payload is a multiple of 8, so the value is the last bytes of its
    // record, and at a seal the last bytes of its file.
    for round in 0..3000u32 {
        let k = format!("user{round:07}").into_bytes();
        let v = vec![(round % 251) as u8; 64];
        let mut w = db.begin_write().unwrap();
        w.put(&k, &v).unwrap();
        w.commit().unwrap();
        model.insert(k, v);
    }
    assert!(
        db.stats().unwrap().wal_bytes > 8 * (32 << 10),
        "the log went through several files"
    );
    // Another handle builds the sealed memtable's files from the listing.
    let other = small(&dir);
    assert_eq!(db_contents(&other), model);
    settle(&db);
    db.compact().unwrap();
    assert_eq!(db_contents(&db), model);
    assert!(db.check().unwrap().is_ok());
    drop(other);
    drop(db);
    simulate_reboot(&dir);
    assert_eq!(db_contents(&small(&dir)), model);
}
