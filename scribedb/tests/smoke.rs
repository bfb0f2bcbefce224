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
