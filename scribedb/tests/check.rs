//! `Database::check`: clean databases check clean with the right counts,
//! a flipped byte in a segment, the log or a manifest is reported with its
//! file and offset, and a check beside a writer and readers finds nothing.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::small;
use scribedb::{CheckReport, Database};

/// A value of `len` bytes that differs from key to key: values of 64
/// bytes or more are kept in the log, shorter ones in the memtable.
fn value(i: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// Commit `n` keys from `first` on, every fifth value long, every
/// seventh key deleted; returns the versions written.
fn commit_batch(db: &Database, first: u64, n: u64) -> u64 {
    let mut w = db.begin_write().unwrap();
    for i in first..first + n {
        let key = format!("key-{:08}", i % 5000);
        if i % 7 == 3 {
            w.delete(key.as_bytes()).unwrap();
        } else {
            let len = if i % 5 == 0 { 150 } else { 20 };
            w.put(key.as_bytes(), value(i, len)).unwrap();
        }
    }
    w.commit().unwrap();
    n
}

#[track_caller]
fn assert_clean(report: &CheckReport) {
    assert!(
        report.is_ok(),
        "problems found in a clean database:\n{}",
        report
            .problems
            .iter()
            .map(|p| format!("  {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_clean_database_checks_clean_with_the_right_counts() {
    let dir = tempfile::tempdir().unwrap();
    let db = small(dir.path());

    // An empty database.
    let report = db.check().unwrap();
    assert_clean(&report);
    assert_eq!(
        (
            report.log_records,
            report.memtable_versions,
            report.segments
        ),
        (0, 0, 0)
    );
    assert_eq!((report.manifest_generation, report.memtables), (0, 1));

    // A few commits, all in the memtable.
    for c in 0..10 {
        commit_batch(&db, c * 3, 3);
    }
    let stats = db.stats().unwrap();
    assert!(!stats.sealed_memtable && stats.segments == 0, "{stats:?}");
    let report = db.check().unwrap();
    assert_clean(&report);
    assert_eq!(report.log_records, 10);
    assert_eq!(report.log_files, 1);
    assert_eq!(report.memtable_versions, 30);
    assert_eq!(report.log_bytes, stats.wal_bytes - stats.log_start);
    assert_eq!(report.snapshot, db.committed_ts());

    // Large commits seal the memtable; right after one, the sealed
    // memtable is most likely still waiting for its flush.
    let mut next = 30;
    let mut saw_sealed = false;
    for _ in 0..40 {
        next += commit_batch(&db, next, 1500);
        let report = db.check().unwrap();
        assert_clean(&report);
        saw_sealed |= report.memtables == 2;
        if saw_sealed && report.segments >= 2 {
            break;
        }
    }
    assert!(saw_sealed, "no check ran while a sealed memtable waited");
    let report = db.check().unwrap();
    assert_clean(&report);
    assert!(
        report.segments > 0 && report.segment_entries > 0,
        "{report:?}"
    );

    // Everything merged into one run, then a few commits on top.
    db.compact().unwrap();
    let mut versions = 0;
    for c in 0..6 {
        versions += commit_batch(&db, next + c * 4, 4);
    }
    let stats = db.stats().unwrap();
    let report = db.check().unwrap();
    assert_clean(&report);
    assert_eq!(report.memtables, 1);
    assert_eq!(report.log_records, 6);
    assert_eq!(report.memtable_versions, versions);
    assert_eq!(report.segments, stats.segments as u64);
    assert_eq!(report.segment_bytes, stats.level_bytes.iter().sum::<u64>());
    assert_eq!(
        report.segment_entries + report.memtable_versions,
        stats.versions
    );
    assert_eq!(report.manifest_generation, stats.manifest_generation);
    assert_eq!(report.log_bytes, stats.wal_bytes - stats.log_start);
}

/// Copy every file of database `src` into a new directory `dst`.
fn copy_db(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        common::sparse_copy(&entry.path(), &dst.join(entry.file_name()), None);
    }
}

/// Files of `dir` whose names satisfy `pred`, sorted by name.
fn files(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| pred(p.file_name().unwrap().to_str().unwrap()))
        .collect();
    out.sort();
    out
}

fn flip(path: &Path, at: u64) {
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
    f.sync_all().unwrap();
}

/// The problems of `report` that name `file`, all of them printed if
/// there is none.
#[track_caller]
fn naming<'r>(report: &'r CheckReport, file: &Path) -> Vec<&'r scribedb::Problem> {
    let found: Vec<_> = report.problems.iter().filter(|p| p.file == file).collect();
    assert!(
        !found.is_empty(),
        "no problem names {}; found {:#?}",
        file.display(),
        report.problems
    );
    found
}

/// A closed database with segments and, in its current log file,
/// records not yet flushed.
fn damaged_later() -> tempfile::TempDir {
    let base = tempfile::tempdir().unwrap();
    {
        let db = small(base.path());
        let mut next = 0;
        for _ in 0..8 {
            next += commit_batch(&db, next, 1500);
        }
        db.compact().unwrap();
        for _ in 0..5 {
            next += commit_batch(&db, next, 10);
        }
        assert_clean(&db.check().unwrap());
    }
    base
}

#[test]
fn damage_is_reported_with_its_file_and_offset() {
    let base = damaged_later();
    let work = tempfile::tempdir().unwrap();

    // A byte inside a data block of a segment.
    let dir = work.path().join("segment");
    copy_db(base.path(), &dir);
    let seg = files(&dir, |n| n.ends_with(".seg"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a segment");
    let mut head = [0u8; 8];
    std::fs::File::open(&seg)
        .unwrap()
        .read_exact_at(&mut head, 40)
        .unwrap();
    let data_end = u64::from_le_bytes(head);
    let at = 64 + (data_end - 64) / 2;
    flip(&seg, at);
    let db = Database::open(&dir).unwrap();
    let report = db.check().unwrap();
    assert!(!report.is_ok());
    let found = naming(&report, &seg);
    assert!(
        found.iter().any(|p| p.offset <= at && at - p.offset < 4096),
        "no problem at the block holding {at}: {found:#?}"
    );
    drop(db);

    // A byte inside a log record whose commit is only in the memtable.
    let dir = work.path().join("log");
    copy_db(base.path(), &dir);
    let log = files(&dir, common::is_log_file).pop().expect("a log file");
    let records = common::wal_records(&std::fs::read(&log).unwrap());
    let record = records.last().expect("records not yet flushed").clone();
    let at = record.offset + common::RECORD_HEADER as u64 + record.payload_len / 2;
    flip(&log, at);
    // Same boot and the coordination file kept: the memtable is reused
    // and the log is not scanned, so the database opens.
    let db = Database::open(&dir).unwrap();
    let report = db.check().unwrap();
    assert!(!report.is_ok());
    let found = naming(&report, &log);
    assert!(
        found.iter().any(|p| p.offset == record.offset),
        "no problem at the record at {}: {found:#?}",
        record.offset
    );
    drop(db);

    // The current memtable's arena 0 names no key index: reads fall back
    // to searching the skiplist, so only a check sees it.
    let dir = work.path().join("arena");
    copy_db(base.path(), &dir);
    let arena = files(&dir, |n| {
        n.starts_with("mem-") && n.ends_with("-00000.arena")
    })
    .pop()
    .expect("an arena");
    let db = Database::open(&dir).unwrap();
    let f = std::fs::File::options().write(true).open(&arena).unwrap();
    f.write_all_at(&0u64.to_le_bytes(), 56).unwrap();
    let report = db.check().unwrap();
    assert!(!report.is_ok());
    let found = naming(&report, &arena);
    assert!(found.iter().any(|p| p.offset == 56), "{found:#?}");
    drop(db);

    // A byte inside the current manifest, damaged while the database is
    // open (which read it when it opened).
    let dir = work.path().join("manifest");
    copy_db(base.path(), &dir);
    let db = Database::open(&dir).unwrap();
    let manifest = files(&dir, |n| n.starts_with("manifest-") && !n.ends_with(".tmp"))
        .pop()
        .expect("a manifest");
    let len = std::fs::metadata(&manifest).unwrap().len();
    flip(&manifest, 30);
    let report = db.check().unwrap();
    assert!(!report.is_ok());
    let found = naming(&report, &manifest);
    assert!(found.iter().all(|p| p.offset < len), "{found:#?}");
    drop(db);
    // Opened afresh, it is refused, naming the file.
    let e = Database::open(&dir).unwrap_err().to_string();
    let name = manifest.file_name().unwrap().to_str().unwrap();
    assert!(e.contains(name), "{e}");
}

#[test]
fn a_check_beside_a_writer_and_readers_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(small(dir.path()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 0;
            let mut commits = 0u64;
            while !stop.load(Ordering::Relaxed) || commits < 200 {
                let n = if commits % 10 == 0 { 400 } else { 8 };
                next += commit_batch(&db, next, n);
                commits += 1;
            }
            commits
        })
    };
    let reader = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = db.begin_read().unwrap();
                for i in (0..5000).step_by(97) {
                    r.get(format!("key-{i:08}")).unwrap();
                }
                for kv in r.prefix("key-0000").take(50) {
                    kv.unwrap();
                    reads += 1;
                }
            }
            reads
        })
    };
    let mut checks = 0;
    let mut sealed = 0;
    let started = std::time::Instant::now();
    while checks < 30 || started.elapsed().as_secs() < 2 {
        let report = db.check().unwrap();
        assert_clean(&report);
        sealed += (report.memtables == 2) as u32;
        checks += 1;
        if started.elapsed().as_secs() > 20 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let commits = writer.join().unwrap();
    reader.join().unwrap();
    assert!(commits >= 200);
    let report = db.check().unwrap();
    assert_clean(&report);
    assert!(report.segments > 0, "{report:?}");
    eprintln!("{checks} checks beside {commits} commits, {sealed} with a sealed memtable");
}
