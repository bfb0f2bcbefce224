//! Damaged version-store files give errors, never a crash or a hang.

use std::os::unix::fs::FileExt;

use scribedb::{Database, Durability, Error};

fn arena0(dir: &std::path::Path) -> std::fs::File {
    let path = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("-00000.arena")
        })
        .expect("arena 0");
    std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

fn u64_at(f: &std::fs::File, off: u64) -> u64 {
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, off).unwrap();
    u64::from_le_bytes(b)
}

fn filled(dir: &std::path::Path, n: u32) {
    let db = Database::builder()
        .durability(Durability::None)
        .open(dir)
        .unwrap();
    let mut w = db.begin_write().unwrap();
    for i in 0..n {
        w.put(format!("key{i:05}"), b"v").unwrap();
    }
    w.commit().unwrap();
}

#[test]
fn corrupt_arena_fill_mark_is_an_error_not_a_wild_write() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 10);
    // Arena header: `used` is the u64 at offset 40.
    arena0(dir.path())
        .write_all_at(&(u64::MAX - 15).to_le_bytes(), 40)
        .unwrap();
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(
        db.begin_read().unwrap().get(b"key00003").unwrap(),
        Some(&b"v"[..])
    );
    let mut w = db.begin_write().unwrap();
    w.put(b"more", b"x").unwrap();
    match w.commit() {
        Err(Error::Corrupted { what, .. }) => assert!(what.contains("used"), "{what}"),
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

#[test]
fn a_cycle_in_the_skiplist_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 50);
    let f = arena0(dir.path());
    // The head node sits at offset 64; its level-0 tower entry (pointer,
    // then key prefix) starts 24 bytes in. Point the first real node's
    // level-0 link back at itself.
    let first = u64_at(&f, 64 + 24);
    assert!(first != 0 && first >> 48 == 0, "first node in arena 0");
    f.write_all_at(&first.to_le_bytes(), first + 24).unwrap();
    let db = Database::open(dir.path()).unwrap();
    let r = db.begin_read().unwrap();
    let scanned: Vec<_> = r.iter().take(1000).collect();
    assert!(scanned.len() < 1000, "the scan ran around the cycle");
    assert!(
        matches!(scanned.last(), Some(Err(Error::Corrupted { .. }))),
        "{scanned:?}"
    );
    // Point reads end too: found through the upper levels, or an error.
    for i in 0..50 {
        match r.get(format!("key{i:05}")) {
            Ok(Some(v)) => assert_eq!(v, b"v"),
            Err(Error::Corrupted { .. }) => {}
            other => panic!("key{i:05}: {other:?}"),
        }
    }
}
