//! `Database::wait_for_commit`: a waiter in any process wakes when a
//! commit newer than the one it names is visible, times out when none
//! comes, and is neither woken falsely nor stuck when the writer dies
//! mid-transaction; the next writer's commit wakes it.
//!
//! The test binary re-runs itself as the child processes: `child_entry`
//! reads its role from `SCRIBEDB_CHILD` and is a no-op without it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scribedb::{Database, Durability};

fn spawn(
    role: &str,
    db: &Path,
    after: u64,
) -> (Child, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env("SCRIBEDB_CHILD", role)
        .env("SCRIBEDB_CHILD_DB", db)
        .env("SCRIBEDB_CHILD_AFTER", after.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning a child");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// The next line the child printed that starts with `tag`, minus it.
fn expect(lines: &mut impl Iterator<Item = std::io::Result<String>>, tag: &str) -> String {
    for line in lines {
        let line = line.expect("reading the child's output");
        if let Some(at) = line.find(tag) {
            return line[at + tag.len()..].trim().to_string();
        }
    }
    panic!("the child ended before printing {tag:?}");
}

fn commit(db: &Database, key: &str) -> u64 {
    let mut w = db.begin_write().unwrap();
    w.put(key, "v").unwrap();
    w.commit().unwrap()
}

#[test]
fn a_waiter_in_this_process_wakes_on_a_commit_and_times_out_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .durability(Durability::None)
        .open(dir.path())
        .unwrap();
    let first = commit(&db, "a");
    // Already past: returns at once.
    assert_eq!(db.wait_for_commit(0, Duration::ZERO).unwrap(), Some(first));
    // Nothing newer: times out, after about the timeout.
    let started = Instant::now();
    assert_eq!(
        db.wait_for_commit(first, Duration::from_millis(50))
            .unwrap(),
        None
    );
    assert!(started.elapsed() >= Duration::from_millis(50));
    std::thread::scope(|s| {
        let waiter = s.spawn(|| db.wait_for_commit(first, Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(30));
        let second = commit(&db, "b");
        let woke = waiter.join().unwrap().unwrap();
        assert_eq!(woke, Some(second));
    });
}

#[test]
fn waiters_in_other_processes_wake_on_each_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .durability(Durability::Immediate)
        .open(dir.path())
        .unwrap();
    let mut last = commit(&db, "start");
    let mut kids: Vec<_> = (0..3).map(|_| spawn("waiter", dir.path(), last)).collect();
    for (_, lines) in kids.iter_mut() {
        assert_eq!(expect(lines, "waiting"), "");
    }
    for round in 0..5 {
        last = commit(&db, &format!("k{round}"));
        for (_, lines) in kids.iter_mut() {
            let woke: u64 = expect(lines, "woke").parse().unwrap();
            assert_eq!(woke, last, "round {round}");
        }
    }
    for (mut child, _) in kids {
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }
}

#[test]
fn a_writer_that_dies_mid_transaction_wakes_no_one_and_blocks_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let before = commit(&db, "start");
    let (mut writer, mut lines) = spawn("doomed-writer", dir.path(), 0);
    assert_eq!(expect(&mut lines, "holding"), "");
    std::thread::scope(|s| {
        let waiter = s.spawn(|| db.wait_for_commit(before, Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(50));
        writer.kill().unwrap();
        writer.wait().unwrap();
        // The dead writer's transaction never became visible: the waiter
        // sleeps on until a real commit.
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !waiter.is_finished(),
            "woken by a commit that did not happen"
        );
        let after = commit(&db, "after");
        assert_eq!(waiter.join().unwrap().unwrap(), Some(after));
    });
    let r = db.begin_read().unwrap();
    assert_eq!(r.get("doomed").unwrap(), None);
}

#[test]
fn child_entry() {
    let Ok(role) = std::env::var("SCRIBEDB_CHILD") else {
        return;
    };
    let path = std::path::PathBuf::from(std::env::var("SCRIBEDB_CHILD_DB").unwrap());
    let mut out = std::io::stdout();
    match role.as_str() {
        "waiter" => {
            let db = Database::open(&path).unwrap();
            let mut after: u64 = std::env::var("SCRIBEDB_CHILD_AFTER")
                .unwrap()
                .parse()
                .unwrap();
            writeln!(out, "waiting").unwrap();
            out.flush().unwrap();
            for _ in 0..5 {
                let ts = db
                    .wait_for_commit(after, Duration::from_secs(30))
                    .unwrap()
                    .expect("a commit within 30 s");
                writeln!(out, "woke {ts}").unwrap();
                out.flush().unwrap();
                after = ts;
            }
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        "doomed-writer" => {
            let db = Database::open(&path).unwrap();
            let mut w = db.begin_write().unwrap();
            w.put("doomed", "never").unwrap();
            writeln!(out, "holding").unwrap();
            out.flush().unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown role {other}"),
    }
}
