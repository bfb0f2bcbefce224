use scribedb::{Database, Durability, Error};

#[test]
fn put_get_scan_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let db = Database::open(&path).unwrap();
        let mut w = db.begin_write().unwrap();
        w.put(b"b", b"2").unwrap();
        w.put(b"a", b"1").unwrap();
        w.put(b"c", b"").unwrap();
        assert_eq!(w.get(b"a").unwrap(), Some(&b"1"[..]));
        let ts = w.commit().unwrap();
        let r = db.begin_read().unwrap();
        assert_eq!(r.snapshot_ts(), ts);
        assert_eq!(r.get(b"a").unwrap(), Some(&b"1"[..]));
        assert_eq!(r.get(b"c").unwrap(), Some(&b""[..]));
        assert_eq!(r.get(b"d").unwrap(), None);
        let keys: Vec<_> = r.iter().map(|kv| kv.unwrap().0.to_vec()).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        let rev: Vec<_> = r.iter().rev().map(|kv| kv.unwrap().0.to_vec()).collect();
        assert_eq!(rev, vec![b"c".to_vec(), b"b".to_vec(), b"a".to_vec()]);
        let mut w = db.begin_write().unwrap();
        w.delete(b"b").unwrap();
        w.put(b"a", b"one").unwrap();
        let got: Vec<_> = w.iter().map(|kv| kv.unwrap().0.to_vec()).collect();
        assert_eq!(got, vec![b"a".to_vec(), b"c".to_vec()]);
        w.commit().unwrap();
        // The old snapshot is unchanged.
        assert_eq!(r.get(b"b").unwrap(), Some(&b"2"[..]));
        assert_eq!(r.get(b"a").unwrap(), Some(&b"1"[..]));
        let r2 = db.begin_read().unwrap();
        assert_eq!(r2.get(b"b").unwrap(), None);
        assert_eq!(r2.get(b"a").unwrap(), Some(&b"one"[..]));
    }
    // Reopen (reuse path), then force a rebuild from the WAL via repair.
    for repair in [false, true] {
        let db = Database::builder().repair(repair).open(&path).unwrap();
        let r = db.begin_read().unwrap();
        assert_eq!(r.get(b"a").unwrap(), Some(&b"one"[..]), "repair={repair}");
        assert_eq!(r.get(b"b").unwrap(), None);
        assert_eq!(r.get(b"c").unwrap(), Some(&b""[..]));
    }
}

#[test]
fn writer_is_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .writer_timeout(std::time::Duration::from_millis(50))
        .durability(Durability::None)
        .open(dir.path())
        .unwrap();
    let w = db.begin_write().unwrap();
    match db.begin_write() {
        Err(Error::WriterBusy { holder }) => assert!(holder.contains("pid"), "{holder}"),
        other => panic!("expected WriterBusy, got {other:?}"),
    }
    let db2 = Database::builder()
        .writer_timeout(std::time::Duration::from_millis(50))
        .open(dir.path())
        .unwrap();
    assert!(matches!(db2.begin_write(), Err(Error::WriterBusy { .. })));
    drop(w);
    db2.begin_write().unwrap().commit().unwrap();
}

/// Reverse iteration works in batches jumping back through high skiplist
/// levels; it must agree with forward iteration over many keys, versions,
/// bounds and snapshots.
#[test]
fn reverse_scans_match_forward_scans_over_many_versions() {
    use std::ops::Bound;
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .durability(Durability::None)
        .open(dir.path())
        .unwrap();
    let key = |i: u32| format!("k{:05}", i * 7 % 3001).into_bytes();
    let mut snapshots = Vec::new();
    for round in 0..4u32 {
        let mut w = db.begin_write().unwrap();
        for i in 0..3001 {
            match (i + round) % 5 {
                0 => w.delete(key(i)).unwrap(),
                1 if round > 0 => {}
                _ => w.put(key(i), format!("{round}-{i}")).unwrap(),
            }
        }
        w.commit().unwrap();
        snapshots.push(db.begin_read().unwrap());
    }
    let bounds = [
        (Bound::Unbounded, Bound::Unbounded),
        (
            Bound::Included(b"k00100".to_vec()),
            Bound::Excluded(b"k02000".to_vec()),
        ),
        (
            Bound::Excluded(b"k00017".to_vec()),
            Bound::Included(b"k00018".to_vec()),
        ),
        (Bound::Included(b"k02990".to_vec()), Bound::Unbounded),
        (Bound::Unbounded, Bound::Excluded(b"k00003".to_vec())),
    ];
    for r in &snapshots {
        for b in &bounds {
            let fwd: Vec<_> = r
                .range::<Vec<u8>, _>(b.clone())
                .map(|kv| kv.unwrap())
                .collect();
            let mut rev: Vec<_> = r
                .range::<Vec<u8>, _>(b.clone())
                .rev()
                .map(|kv| kv.unwrap())
                .collect();
            rev.reverse();
            assert_eq!(fwd, rev, "bounds {b:?} at {}", r.snapshot_ts());
            // Meeting in the middle yields each key once.
            let mut it = r.range::<Vec<u8>, _>(b.clone());
            let mut met = Vec::new();
            loop {
                match (it.next(), it.next_back()) {
                    (None, None) => break,
                    (f, b) => met.extend(f.into_iter().chain(b).map(|kv| kv.unwrap())),
                }
            }
            met.sort();
            assert_eq!(met, fwd);
        }
    }
    assert!(snapshots[0].iter().count() > 2000);
}

#[test]
fn open_without_create_refuses_what_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let opts = || Database::builder().create(false);
    assert!(matches!(
        opts().open(&missing),
        Err(Error::NotADatabase { .. })
    ));
    assert!(!missing.exists(), "nothing may be created");
    // An ordinary directory is not a database either, and stays untouched.
    assert!(matches!(
        opts().open(dir.path()),
        Err(Error::NotADatabase { .. })
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    Database::open(&missing).unwrap();
    opts().open(&missing).unwrap();
}

#[test]
fn stats_report_slot_capacity_and_use() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .max_readers(50)
        .open(dir.path())
        .unwrap();
    let r = db.begin_read().unwrap();
    let s = db.stats().unwrap();
    assert_eq!((s.readers, s.max_readers), (1, 50));
    assert_eq!((s.processes, s.max_processes), (1, 256));
    drop(r);
}

/// Large `Immediate` commits start their sync while their versions are
/// inserted; small ones from another handle and thread commit between
/// them. Every commit is whole and visible when `commit` returns, none
/// before, and all survive a reopen.
#[test]
fn large_immediate_commits_beside_small_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let open = || {
        Database::builder()
            .durability(Durability::Immediate)
            .open(&path)
            .unwrap()
    };
    {
        let big = open();
        let small = open();
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..40u32 {
                    let mut w = small.begin_write().unwrap();
                    w.put(format!("small{i:03}"), i.to_be_bytes()).unwrap();
                    let ts = w.commit().unwrap();
                    let r = small.begin_read().unwrap();
                    assert!(r.snapshot_ts() >= ts);
                    assert_eq!(
                        r.get(format!("small{i:03}")).unwrap(),
                        Some(&i.to_be_bytes()[..])
                    );
                }
            });
            for c in 0..15u32 {
                let before = big.begin_read().unwrap();
                let mut w = big.begin_write().unwrap();
                for k in 0..300u32 {
                    w.put(format!("big{c:02}-{k:04}"), vec![c as u8; 100])
                        .unwrap();
                }
                let ts = w.commit().unwrap();
                assert!(before.get(format!("big{c:02}-0000")).unwrap().is_none());
                let r = big.begin_read().unwrap();
                assert!(r.snapshot_ts() >= ts);
                let n = r.prefix(format!("big{c:02}-")).count();
                assert_eq!(n, 300, "commit {c} is whole once it returns");
            }
        });
    }
    let db = open();
    let r = db.begin_read().unwrap();
    assert_eq!(r.prefix(b"big").count(), 15 * 300);
    assert_eq!(r.prefix(b"small").count(), 40);
}

#[test]
fn out_of_range_slot_counts_are_invalid_options() {
    let dir = tempfile::tempdir().unwrap();
    for (readers, procs, option) in [(0, 256, "max_readers"), (1024, 0, "max_processes")] {
        match scribedb::Database::builder()
            .max_readers(readers)
            .max_processes(procs)
            .open(dir.path().join(format!("{readers}-{procs}")))
        {
            Err(scribedb::Error::InvalidOption { option: got, why }) => {
                assert_eq!(got, option);
                assert!(why.contains("between"), "{why}");
            }
            other => panic!("expected InvalidOption, got {other:?}"),
        }
    }
}

#[test]
fn a_memtable_budget_past_what_a_log_file_holds_is_an_invalid_option() {
    let dir = tempfile::tempdir().unwrap();
    match scribedb::Database::builder()
        .memtable_size(2 << 40)
        .open(dir.path())
    {
        Err(scribedb::Error::InvalidOption { option, why }) => {
            assert_eq!(option, "memtable_size");
            assert!(why.contains("1 TiB"), "{why}");
        }
        other => panic!("expected InvalidOption, got {other:?}"),
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing was created"
    );
}

#[test]
fn the_last_handle_to_close_gives_back_the_log_slack() {
    let dir = tempfile::tempdir().unwrap();
    let db = scribedb::Database::open(dir.path()).unwrap();
    let second = scribedb::Database::open(dir.path()).unwrap();
    let mut w = db.begin_write().unwrap();
    w.put(b"k", [7u8; 1000]).unwrap();
    w.commit().unwrap();
    let end = db.stats().unwrap().wal_bytes;
    let wal = dir.path().join("wal");
    let len = || std::fs::metadata(&wal).unwrap().len();
    // The first step of preallocation is 1 MiB.
    assert!(len() >= 1 << 20, "commits run over preallocated zeros");
    drop(db);
    assert!(len() >= 1 << 20, "another handle is open: the slack stays");
    drop(second);
    assert!(len() <= end.div_ceil(4096) * 4096, "{} bytes left", len());
    let db = scribedb::Database::open(dir.path()).unwrap();
    assert_eq!(
        db.begin_read().unwrap().get(b"k").unwrap(),
        Some(&[7u8; 1000][..])
    );
}

/// Keys overwritten hundreds of times since the last flush: scans pass
/// over their version chains with searches, and still see exactly their
/// snapshot, forward and backward, for old readers and new.
#[test]
fn scans_over_long_version_chains_see_their_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .durability(scribedb::Durability::None)
        .open(dir.path())
        .unwrap();
    let key = |i: u32| format!("key-{i:03}");
    let mut readers = Vec::new();
    let mut states = Vec::new();
    let mut model = std::collections::BTreeMap::new();
    for round in 0..300u32 {
        let mut w = db.begin_write().unwrap();
        for i in 0..40u32 {
            // Some keys deleted in some rounds; every third key only
            // written in early rounds, so its newest version is old.
            if i % 3 == 0 && round > 20 {
                continue;
            }
            if (i + round) % 7 == 0 {
                w.delete(key(i)).unwrap();
                model.remove(&key(i));
            } else {
                let v = format!("{round}-{i}");
                w.put(key(i), &v).unwrap();
                model.insert(key(i), v);
            }
        }
        w.commit().unwrap();
        if round % 50 == 5 || round == 299 {
            readers.push(db.begin_read().unwrap());
            states.push(model.clone());
        }
    }
    for (r, state) in readers.iter().zip(&states) {
        let expected: Vec<(Vec<u8>, Vec<u8>)> = state
            .iter()
            .map(|(k, v)| (k.clone().into_bytes(), v.clone().into_bytes()))
            .collect();
        let forward: Vec<(Vec<u8>, Vec<u8>)> = r
            .iter()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect();
        assert_eq!(forward, expected);
        let mut backward: Vec<(Vec<u8>, Vec<u8>)> = r
            .iter()
            .rev()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect();
        backward.reverse();
        assert_eq!(backward, expected);
        let part: Vec<Vec<u8>> = r
            .range("key-010".."key-020")
            .map(|kv| kv.unwrap().0.to_vec())
            .collect();
        let want: Vec<Vec<u8>> = state
            .range("key-010".to_string().."key-020".to_string())
            .map(|(k, _)| k.clone().into_bytes())
            .collect();
        assert_eq!(part, want);
    }
}
