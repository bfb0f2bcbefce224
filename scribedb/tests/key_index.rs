//! Point reads through the key index: every snapshot sees its own version
//! while the index grows, names newer versions, or is missing or damaged.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::os::unix::fs::FileExt;

use scribedb::{Database, Durability, Error};

/// Arena header: in arena 0, the pointer to the key index table.
const KEY_INDEX_ROOT: u64 = 56;

fn open(dir: &std::path::Path) -> Database {
    Database::builder()
        .durability(Durability::None)
        .open(dir)
        .unwrap()
}

fn arena0(dir: &std::path::Path) -> std::fs::File {
    let path = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().ends_with("-00000.arena"))
        .expect("arena 0");
    std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

#[test]
fn every_snapshot_reads_its_own_version_of_a_hot_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    // Versions 0..40 of one key, a delete every 7th, with a reader held at
    // each: old snapshots sit behind more newer versions than a read walks
    // before it falls back to a search.
    let mut readers = Vec::new();
    for v in 0..40u32 {
        let mut w = db.begin_write().unwrap();
        if v % 7 == 6 {
            w.delete(b"hot").unwrap();
        } else {
            w.put(b"hot", v.to_be_bytes()).unwrap();
        }
        w.put(format!("other{v}"), b"x").unwrap();
        w.commit().unwrap();
        readers.push((v, db.begin_read().unwrap()));
    }
    for (v, r) in &readers {
        let expected = (v % 7 != 6).then(|| v.to_be_bytes().to_vec());
        assert_eq!(
            r.get(b"hot").unwrap().map(<[u8]>::to_vec),
            expected,
            "version {v}"
        );
        // Scans that start at the key begin at its newest version too.
        let first = r.range(&b"hot"[..]..).next().unwrap().unwrap();
        match &expected {
            Some(value) => assert_eq!(first, (&b"hot"[..], &value[..])),
            None => assert_eq!(first, (&b"other0"[..], &b"x"[..])),
        }
        let after = (Bound::Excluded(&b"hot"[..]), Bound::Unbounded);
        let first = r.range::<&[u8], _>(after).next().unwrap().unwrap();
        assert_eq!(first.0, b"other0");
        let last = r.range(..=&b"hot"[..]).next_back().map(|kv| kv.unwrap().0);
        assert_eq!(last, expected.as_ref().map(|_| &b"hot"[..]));
        assert_eq!(r.get(format!("other{v}")).unwrap(), Some(&b"x"[..]));
        assert_eq!(r.get(format!("other{}", v + 1)).unwrap(), None);
    }
}

#[test]
fn reads_stay_right_while_the_index_grows_under_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut model: BTreeMap<u32, u32> = BTreeMap::new();
    let mut snapshots = Vec::new();
    // 40,000 keys in commits of growing size: the table starts at 1,024
    // slots and is rebuilt several times, by single inserts and by
    // reservations for a whole commit.
    let mut next = 0u32;
    for round in 0..12u32 {
        let n = 50 << round.min(9);
        let mut w = db.begin_write().unwrap();
        for i in 0..n {
            let k = (next + i) % 40_000;
            w.put(k.to_be_bytes(), round.to_be_bytes()).unwrap();
            model.insert(k, round);
        }
        next += n;
        w.commit().unwrap();
        snapshots.push((db.begin_read().unwrap(), model.clone()));
    }
    for (r, m) in &snapshots {
        for k in (0..40_000u32).step_by(97).chain([39_999, 40_000, 1 << 30]) {
            let got = r.get(k.to_be_bytes()).unwrap().map(<[u8]>::to_vec);
            assert_eq!(got, m.get(&k).map(|v| v.to_be_bytes().to_vec()), "key {k}");
        }
    }
    let stats = db.stats().unwrap();
    assert!(stats.versions >= 40_000, "{stats:?}");
}

#[test]
fn without_an_index_table_reads_and_writes_go_through_the_skiplist() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        let mut w = db.begin_write().unwrap();
        for i in 0..2_000u32 {
            w.put(format!("k{i}"), i.to_be_bytes()).unwrap();
        }
        w.commit().unwrap();
    }
    // A header that names no index table (damage): reads and writes go
    // through the skiplist alone. The next open reuses the arenas (same boot).
    arena0(dir.path())
        .write_all_at(&0u64.to_le_bytes(), KEY_INDEX_ROOT)
        .unwrap();
    let db = open(dir.path());
    let mut w = db.begin_write().unwrap();
    w.put(b"k5", b"new").unwrap();
    w.delete(b"k6").unwrap();
    w.put(b"added", b"a").unwrap();
    w.commit().unwrap();
    let r = db.begin_read().unwrap();
    assert_eq!(r.get(b"k5").unwrap(), Some(&b"new"[..]));
    assert_eq!(r.get(b"k6").unwrap(), None);
    assert_eq!(r.get(b"k7").unwrap(), Some(&7u32.to_be_bytes()[..]));
    assert_eq!(r.get(b"added").unwrap(), Some(&b"a"[..]));
    assert_eq!(r.get(b"missing").unwrap(), None);
}

#[test]
fn a_damaged_index_pointer_is_an_error_and_repair_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        let mut w = db.begin_write().unwrap();
        w.put(b"key", b"value").unwrap();
        w.commit().unwrap();
        db.sync().unwrap();
    }
    for bad in [u64::MAX, 8, 4096 + 3] {
        arena0(dir.path())
            .write_all_at(&bad.to_le_bytes(), KEY_INDEX_ROOT)
            .unwrap();
        let db = open(dir.path());
        match db.begin_read().unwrap().get(b"key") {
            Err(Error::Corrupted { .. }) => {}
            other => panic!("root {bad:#x}: expected a corruption error, got {other:?}"),
        }
    }
    let db = Database::builder()
        .durability(Durability::None)
        .repair(true)
        .open(dir.path())
        .unwrap();
    assert_eq!(
        db.begin_read().unwrap().get(b"key").unwrap(),
        Some(&b"value"[..])
    );
}

#[test]
fn arenas_of_an_older_format_are_rebuilt_alone_and_refused_when_shared() {
    let dir = tempfile::tempdir().unwrap();
    let holder = open(dir.path());
    let mut w = holder.begin_write().unwrap();
    w.put(b"key", [3u8; 200]).unwrap();
    w.commit().unwrap();
    // As if another process of an older release had built the arenas and
    // still had them open: a new handle refuses them, clearly.
    let version_at = 8;
    arena0(dir.path())
        .write_all_at(&1u64.to_le_bytes(), version_at)
        .unwrap();
    match Database::open(dir.path()) {
        Err(Error::UnsupportedVersion {
            found: 1,
            supported: 3,
            ..
        }) => {}
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    drop(holder);
    // Alone, the next open rebuilds them from the log.
    let db = open(dir.path());
    assert_eq!(
        db.begin_read().unwrap().get(b"key").unwrap(),
        Some(&[3u8; 200][..])
    );
    let mut version = [0u8; 8];
    arena0(dir.path())
        .read_exact_at(&mut version, version_at)
        .unwrap();
    assert_eq!(u64::from_le_bytes(version), 3);
}
