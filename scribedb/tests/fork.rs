//! A handle inherited through `fork()` refuses to work in the child
//! (`Error::Forked`), and dropping it there leaves the parent's reader
//! slots, writer role and process slot alone; the child opens the
//! database itself and works normally.
//!
//! The fork happens in a child process of the test (the test binary re-run
//! with `SCRIBEDB_CHILD`), which runs one test thread, so that the forked
//! grandchild does not inherit the harness's other threads.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use scribedb::{Database, Error};

fn run_child(role: &str, db: &Path) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env("SCRIBEDB_CHILD", role)
        .env("SCRIBEDB_CHILD_DB", db)
        .output()
        .expect("running a child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("child ok"),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_inherited_handle_refuses_to_work_and_leaves_the_parent_alone() {
    let dir = tempfile::tempdir().unwrap();
    run_child("forker", dir.path());
}

/// Checks done in the forked grandchild; its exit code says which failed.
fn in_grandchild(path: &Path, db: Database, r: scribedb::ReadTxn, w: scribedb::WriteTxn) -> i32 {
    let forked = |e: &Error| matches!(e, Error::Forked { .. });
    if !db.begin_read().is_err_and(|e| forked(&e)) {
        return 10;
    }
    if !db.begin_write().is_err_and(|e| forked(&e)) {
        return 11;
    }
    if !r.get("k").is_err_and(|e| forked(&e)) {
        return 12;
    }
    if !r
        .iter()
        .next()
        .is_some_and(|kv| kv.is_err_and(|e| forked(&e)))
    {
        return 13;
    }
    if !db
        .wait_for_commit(0, Duration::ZERO)
        .is_err_and(|e| forked(&e))
    {
        return 14;
    }
    if db.reclaim_dead_readers() != 0 {
        return 15;
    }
    // Dropping the copies must not release the parent's slot, role or
    // process slot.
    drop(w);
    drop(r);
    drop(db);
    // Its own handle works.
    let Ok(own) = Database::builder()
        .writer_timeout(Duration::from_millis(10))
        .open(path)
    else {
        return 20;
    };
    match own
        .begin_read()
        .map(|r| r.get("k").map(|v| v.map(<[u8]>::to_vec)))
    {
        Ok(Ok(Some(v))) if v == b"1" => {}
        _ => return 21,
    }
    // The parent still holds the writer role.
    if !matches!(own.begin_write(), Err(Error::WriterBusy { .. })) {
        return 22;
    }
    0
}

#[test]
fn child_entry() {
    let Ok(role) = std::env::var("SCRIBEDB_CHILD") else {
        return;
    };
    assert_eq!(role, "forker");
    let path = std::path::PathBuf::from(std::env::var("SCRIBEDB_CHILD_DB").unwrap());
    let db = Database::open(&path).unwrap();
    let mut w = db.begin_write().unwrap();
    w.put("k", "1").unwrap();
    w.commit().unwrap();
    let r = db.begin_read().unwrap();
    let w = db.begin_write().unwrap();
    let slots = |db: &Database| {
        db.readers()
            .iter()
            .map(|s| (s.slot, s.pid, s.snapshot, s.live))
            .collect::<Vec<_>>()
    };
    let slots_before = slots(&db);
    // SAFETY: fork in a process whose only other thread is the harness's
    // main thread, blocked waiting for this test; the child runs only the
    // checks above and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = in_grandchild(&path, db, r, w);
        // SAFETY: ends the forked child without running the parent's
        // exit handlers or the harness.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked child failed its check {}",
        libc::WEXITSTATUS(status)
    );
    // The parent's reader slot, snapshot and writer role survived.
    assert_eq!(slots(&db), slots_before);
    assert!(slots_before.iter().all(|s| s.3));
    assert_eq!(r.get("k").unwrap(), Some(&b"1"[..]));
    let other = Database::builder()
        .writer_timeout(Duration::from_millis(10))
        .open(&path)
        .unwrap();
    assert!(matches!(other.begin_write(), Err(Error::WriterBusy { .. })));
    let mut w = w;
    w.put("k", "2").unwrap();
    w.commit().unwrap();
    drop(r);
    assert_eq!(
        other.begin_read().unwrap().get("k").unwrap(),
        Some(&b"2"[..])
    );
    println!("child ok");
}
