//! Shared files edited behind our back: damage gives errors, never a crash
//! or a hang, and reader liveness follows kernel locks, never pids.

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

/// Offsets of the coordination file (docs/design.md, section 3), for a
/// database created with the default 256 process slots.
const PROC_SLOTS: u64 = 256;
fn proc_slot(i: u64) -> u64 {
    4096 + 64 * i
}
fn reader_slot(i: u64) -> u64 {
    4096 + 64 * (PROC_SLOTS + i)
}
fn owner_tag(proc_slot: u64, generation: u64) -> u64 {
    (generation << 16) | (proc_slot + 1)
}

#[test]
fn reader_liveness_follows_the_kernel_lock_not_the_pid() {
    let dir = tempfile::tempdir().unwrap();
    let a = Database::open(dir.path()).unwrap();
    let b = Database::open(dir.path()).unwrap();
    let mut w = a.begin_write().unwrap();
    w.put(b"k", b"v").unwrap();
    w.commit().unwrap();
    let coord = std::fs::File::options()
        .read(true)
        .write(true)
        .open(dir.path().join("coord"))
        .unwrap();
    let put = |off: u64, v: u64| coord.write_all_at(&v.to_le_bytes(), off).unwrap();
    let me = std::process::id() as u64;

    // A slot whose process slot nobody holds is dead, even though its pid
    // is alive (a reused pid, or a pid from another namespace).
    put(reader_slot(500) + 8, 1);
    put(reader_slot(500) + 24, me);
    put(reader_slot(500), owner_tag(200, 1));
    // A slot of a live handle (b's process slot, at its generation) is live,
    // whatever pid it names.
    let b_slot = (0..PROC_SLOTS)
        .find(|&i| u64_at(&coord, proc_slot(i) + 8) == me && i != 0)
        .expect("second handle's process slot");
    let b_generation = u64_at(&coord, proc_slot(b_slot));
    put(reader_slot(501) + 8, 1);
    put(reader_slot(501) + 24, 4_000_000_000);
    put(reader_slot(501), owner_tag(b_slot, b_generation));
    // A slot naming a live process slot at an older generation belongs to a
    // process that died before the slot was claimed again: dead.
    put(reader_slot(502) + 8, 1);
    put(reader_slot(502) + 24, me);
    put(reader_slot(502), owner_tag(b_slot, b_generation - 1));

    let readers = a.readers();
    let live = |slot: usize| readers.iter().find(|r| r.slot == slot).map(|r| r.live);
    assert_eq!(live(500), Some(false));
    assert_eq!(live(501), Some(true));
    assert_eq!(live(502), Some(false));
    assert_eq!(a.reclaim_dead_readers(), 2);
    assert_eq!(a.readers().len(), 1);
    assert_eq!(a.oldest_snapshot(), 1, "the live reader pins the horizon");
    // Once b closes, its reader is dead too.
    drop(b);
    assert_eq!(a.reclaim_dead_readers(), 1);
    assert!(a.readers().is_empty());
}

#[test]
fn a_damaged_reference_to_a_value_in_the_log_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let key = b"needle-key-for-a-log-value";
    {
        let db = Database::builder()
            .durability(Durability::None)
            .open(dir.path())
            .unwrap();
        let mut w = db.begin_write().unwrap();
        w.put(key, [7u8; 100]).unwrap();
        w.put(b"small", b"inline").unwrap();
        w.commit().unwrap();
        db.sync().unwrap();
    }
    // The node holds the key, then the value's log offset (u64).
    let f = arena0(dir.path());
    let mut bytes = vec![0u8; 1 << 20];
    let n = f.read_at(&mut bytes, 0).unwrap();
    let at = bytes[..n]
        .windows(key.len())
        .position(|w| w == key)
        .expect("the key is in arena 0") as u64
        + key.len() as u64;
    let offset = u64_at(&f, at);
    assert!(offset > 64, "a log offset: {offset}");
    f.write_all_at(&(1u64 << 50).to_le_bytes(), at).unwrap();
    let db = Database::open(dir.path()).unwrap();
    let r = db.begin_read().unwrap();
    match r.get(key) {
        Err(Error::Corrupted { what, .. }) => assert!(what.contains("value"), "{what}"),
        other => panic!("expected a corruption error, got {other:?}"),
    }
    assert_eq!(r.get(b"small").unwrap(), Some(&b"inline"[..]));
    drop(r);
    drop(db);
    // The log still holds the value: a rebuild restores the reference.
    let db = Database::builder().repair(true).open(dir.path()).unwrap();
    assert_eq!(
        db.begin_read().unwrap().get(key).unwrap(),
        Some(&[7u8; 100][..])
    );
}

/// Values of 64 bytes or more are read from the log: a bit flipped there
/// on disk is an error naming the log file, never a wrong value, by get,
/// scan or a flush alike.
#[test]
fn a_flipped_bit_in_a_value_in_the_log_is_an_error_not_a_wrong_value() {
    let dir = tempfile::tempdir().unwrap();
    let value: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
    {
        let db = Database::builder()
            .durability(Durability::None)
            .open(dir.path())
            .unwrap();
        let mut w = db.begin_write().unwrap();
        w.put(b"long", &value).unwrap();
        w.put(b"other", [1u8; 80]).unwrap();
        w.commit().unwrap();
        db.sync().unwrap();
    }
    let wal = dir.path().join("wal");
    let bytes = std::fs::read(&wal).unwrap();
    let at = bytes
        .windows(value.len())
        .position(|w| w == value)
        .expect("the value is in the log");
    let f = std::fs::File::options().write(true).open(&wal).unwrap();
    f.write_all_at(&[bytes[at + 50] ^ 0x10], (at + 50) as u64)
        .unwrap();
    // Same boot: the memtable is reused, no scan of the log happens.
    let db = Database::open(dir.path()).unwrap();
    let r = db.begin_read().unwrap();
    let names_the_log = |e: &Error| match e {
        Error::Corrupted { file, what, .. } => file.ends_with("wal") && what.contains("checksum"),
        _ => false,
    };
    match r.get(b"long") {
        Err(e) => assert!(names_the_log(&e), "unclear error: {e:?}"),
        Ok(v) => panic!("served {v:?}"),
    }
    assert_eq!(r.get(b"other").unwrap(), Some(&[1u8; 80][..]));
    let scanned: Vec<_> = r.iter().collect();
    assert!(
        scanned
            .iter()
            .any(|kv| kv.as_ref().is_err_and(names_the_log)),
        "the scan served the damaged value: {scanned:?}"
    );
    drop(r);
    // A flush copies values out of the log: it fails rather than write
    // the damage into a segment.
    assert!(db.compact().is_err(), "the flush carried the damage on");
}

/// A segment block changed in place while a handle has it mapped and has
/// already checked it: with `verify_every_read` the next get and scan
/// over it fail naming the segment, and the rest of the file still reads.
#[test]
fn verify_every_read_catches_a_segment_changed_after_its_first_check() {
    let dir = tempfile::tempdir().unwrap();
    let value = |i: u32| format!("value {i:05} {}", "x".repeat(120)).into_bytes();
    {
        let db = Database::open(dir.path()).unwrap();
        let mut w = db.begin_write().unwrap();
        for i in 0..2_000u32 {
            w.put(format!("key{i:05}"), value(i)).unwrap();
        }
        w.commit().unwrap();
        db.compact().unwrap();
    }
    let db = Database::builder()
        .verify_every_read(true)
        .open(dir.path())
        .unwrap();
    assert!(db.stats().unwrap().segments >= 1);
    let r = db.begin_read().unwrap();
    assert_eq!(
        r.iter().count(),
        2_000,
        "read whole once: every block checked"
    );
    assert_eq!(r.get(b"key01000").unwrap(), Some(&value(1000)[..]));
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a segment file");
    let bytes = std::fs::read(&seg).unwrap();
    let at = bytes
        .windows(11)
        .position(|w| w == b"value 01000")
        .expect("the value is in the segment");
    let f = std::fs::File::options().write(true).open(&seg).unwrap();
    f.write_all_at(b"V", at as u64).unwrap();
    let names_the_segment = |e: &Error| match e {
        Error::Corrupted { file, what, .. } => file == &seg && what.contains("checksum"),
        _ => false,
    };
    match r.get(b"key01000") {
        Err(e) => assert!(names_the_segment(&e), "unclear error: {e:?}"),
        Ok(v) => panic!("served {:?}", v.map(String::from_utf8_lossy)),
    }
    let scanned: Vec<_> = r.iter().collect();
    assert!(
        scanned
            .iter()
            .any(|kv| kv.as_ref().is_err_and(names_the_segment)),
        "the scan served the changed block"
    );
    assert_eq!(r.get(b"key00000").unwrap(), Some(&value(0)[..]));
}
