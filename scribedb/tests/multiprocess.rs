//! Many processes on one database: snapshot consistency under a writer that
//! is killed at random moments, reader slots of killed processes, slot
//! exhaustion, and the writer role across processes.
//!
//! The test binary re-runs itself as the child processes: `child_entry`
//! reads its role from `SCRIBEDB_CHILD` and is a no-op without it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use scribedb::{Database, Durability, Error};

const ACCOUNTS: u64 = 100;
const START_BALANCE: u64 = 1_000;
const TOTAL: u64 = ACCOUNTS * START_BALANCE;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn account(i: u64) -> Vec<u8> {
    format!("acct:{i:03}").into_bytes()
}

/// Balances are stored as 8 little-endian bytes followed by filler, so that
/// commits take long enough for kills to land inside them.
fn balance_value(balance: u64, filler: usize) -> Vec<u8> {
    let mut v = balance.to_le_bytes().to_vec();
    v.resize(8 + filler, 0xab);
    v
}

fn balance_of(value: &[u8]) -> u64 {
    u64::from_le_bytes(value[..8].try_into().expect("balance value too short"))
}

fn create_bank(path: &Path) {
    let db = Database::open(path).unwrap();
    let mut w = db.begin_write().unwrap();
    for i in 0..ACCOUNTS {
        w.put(account(i), balance_value(START_BALANCE, 0)).unwrap();
    }
    w.commit().unwrap();
}

/// Check the invariant in one snapshot, two ways: a prefix scan and point
/// gets. Returns the snapshot timestamp.
fn check_bank(db: &Database) -> Result<u64, String> {
    let r = db.begin_read().map_err(|e| e.to_string())?;
    let mut scanned = 0u64;
    let mut n = 0;
    for kv in r.prefix(b"acct:") {
        let (_, v) = kv.map_err(|e| e.to_string())?;
        scanned += balance_of(v);
        n += 1;
    }
    let mut got = 0u64;
    for i in 0..ACCOUNTS {
        got += balance_of(
            r.get(account(i))
                .map_err(|e| e.to_string())?
                .ok_or("account missing")?,
        );
    }
    if n != ACCOUNTS || scanned != TOTAL || got != TOTAL {
        return Err(format!(
            "broken invariant at snapshot {}: {n} accounts, scan sum {scanned}, get sum {got}, want {TOTAL}",
            r.snapshot_ts()
        ));
    }
    Ok(r.snapshot_ts())
}

// ---- child processes ------------------------------------------------------

struct Kid {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Kid {
    fn spawn(role: &str, db: &Path, extra: &[(&str, String)]) -> Kid {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env("SCRIBEDB_CHILD", role)
            .env("SCRIBEDB_CHILD_DB", db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawning child");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Kid {
            child,
            stdin,
            lines,
        }
    }

    /// The next line the child printed that starts with `tag`, minus it.
    fn expect(&mut self, tag: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("reading child output");
            // The test harness may print "test child_entry ... " before
            // the child's first line.
            if let Some(at) = line.find(tag) {
                return line[at + tag.len()..].trim().to_string();
            }
            assert!(!line.contains("FAIL"), "child failed: {line}");
        }
        panic!("child exited before printing {tag:?}");
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn kill(self) {
        drop(self);
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ok(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        let _ = self.child.kill();
        assert!(status.success(), "child exited with {status}");
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        // A failed test must not leave children running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn out(line: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").unwrap();
    stdout.flush().unwrap();
}

fn wait_for_line() {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn child_entry() {
    let Ok(role) = std::env::var("SCRIBEDB_CHILD") else {
        return;
    };
    let path = std::path::PathBuf::from(std::env::var("SCRIBEDB_CHILD_DB").unwrap());
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    match role.as_str() {
        "transfer-writer" => {
            let db = Database::builder()
                .writer_timeout(Duration::from_secs(30))
                .durability(match var("DURABILITY").as_str() {
                    "none" => Durability::None,
                    _ => Durability::Immediate,
                })
                .open(&path)
                .unwrap();
            let started = Instant::now();
            let w = db.begin_write().unwrap();
            out(format_args!(
                "took-writer {}",
                started.elapsed().as_micros()
            ));
            drop(w);
            let mut rng = rand::rngs::StdRng::seed_from_u64(std::process::id() as u64);
            let limit: u64 = var("COMMITS").parse().unwrap_or(u64::MAX);
            let mut n = 0;
            while n < limit {
                let mut w = db.begin_write().unwrap();
                if rng.random_ratio(1, 4) {
                    // Rewrite every account with a big filler: a long commit.
                    let shift = rng.random_range(0..ACCOUNTS);
                    let balances: Vec<u64> = (0..ACCOUNTS)
                        .map(|i| balance_of(w.get(account(i)).unwrap().unwrap()))
                        .collect();
                    for i in 0..ACCOUNTS {
                        let b = balances[((i + shift) % ACCOUNTS) as usize];
                        w.put(account(i), balance_value(b, 4096)).unwrap();
                    }
                } else {
                    let a = rng.random_range(0..ACCOUNTS);
                    let b = (a + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
                    let ba = balance_of(w.get(account(a)).unwrap().unwrap());
                    let bb = balance_of(w.get(account(b)).unwrap().unwrap());
                    let amount = rng.random_range(0..=ba);
                    w.put(account(a), balance_value(ba - amount, 0)).unwrap();
                    w.put(account(b), balance_value(bb + amount, 0)).unwrap();
                }
                w.commit().unwrap();
                n += 1;
            }
            out(format_args!("done {n}"));
        }
        "bank-reader" => {
            let db = Database::open(&path).unwrap();
            let until = Instant::now() + Duration::from_millis(var("MILLIS").parse().unwrap());
            let (mut checks, mut last, mut distinct) = (0u64, 0u64, 0u64);
            out(format_args!("ready"));
            while Instant::now() < until {
                match check_bank(&db) {
                    Ok(ts) if ts < last => {
                        out(format_args!(
                            "FAIL snapshot went backwards: {ts} after {last}"
                        ));
                        std::process::exit(3);
                    }
                    Ok(ts) => {
                        distinct += (ts != last) as u64;
                        last = ts;
                        checks += 1;
                    }
                    Err(e) => {
                        out(format_args!("FAIL {e}"));
                        std::process::exit(3);
                    }
                }
            }
            out(format_args!("checked {checks} {distinct}"));
        }
        "hold-readers" => {
            // Open N read transactions, report their snapshot, then hold them
            // until told to drop them (a line on stdin) or killed.
            let db = Database::open(&path).unwrap();
            let n: usize = var("READERS").parse().unwrap();
            let txns: Vec<_> = (0..n).map(|_| db.begin_read().unwrap()).collect();
            out(format_args!("holding {}", txns[0].snapshot_ts()));
            wait_for_line();
            drop(txns);
            out(format_args!("released"));
            wait_for_line();
        }
        "hold-writer" => {
            let db = Database::open(&path).unwrap();
            let mut w = db.begin_write().unwrap();
            w.put(b"held-by", std::process::id().to_string()).unwrap();
            out(format_args!("holding"));
            wait_for_line();
            let ts = w.commit().unwrap();
            out(format_args!("committed {ts}"));
            wait_for_line();
        }
        "fill-disk" => {
            // A process whose files may not grow past a limit sees the disk
            // as full: growing the log fails with EFBIG.
            // SAFETY: plain system calls on this process's own limits.
            unsafe {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let limit = libc::rlimit {
                    rlim_cur: 40 << 20,
                    rlim_max: 40 << 20,
                };
                assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
            }
            let db = Database::open(&path).unwrap();
            let value = vec![7u8; 1 << 20];
            for i in 0u32.. {
                let mut w = db.begin_write().unwrap();
                w.put(format!("big{i:04}"), &value).unwrap();
                match w.commit() {
                    Ok(_) => out(format_args!("acked {i}")),
                    Err(e) => {
                        out(format_args!("error {i} {e}"));
                        // Reads still work, and later commits fail the same way.
                        assert!(db.begin_read().unwrap().get(b"big0000").unwrap().is_some());
                        let mut w = db.begin_write().unwrap();
                        w.put(b"one-more", &value).unwrap();
                        assert!(w.commit().is_err());
                        out(format_args!("still-readable"));
                        break;
                    }
                }
            }
        }
        "repair-open" => {
            // Rebuilds the version store from the log; killed part way.
            let db = Database::builder()
                .repair(true)
                .arena_size(1 << 20)
                .open(&path)
                .unwrap();
            out(format_args!("opened {}", db.recovery_report().records));
        }
        other => panic!("unknown child role {other}"),
    }
}

// ---- tests ----------------------------------------------------------------

#[test]
fn readers_in_many_processes_always_see_whole_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    create_bank(&path);
    let readers = env_count("SCRIBEDB_MP_READERS", 8);
    let millis = env_count("SCRIBEDB_MP_MILLIS", 3000).to_string();
    let writer = Kid::spawn("transfer-writer", &path, &[("DURABILITY", "none".into())]);
    let mut kids: Vec<Kid> = (0..readers)
        .map(|_| Kid::spawn("bank-reader", &path, &[("MILLIS", millis.clone())]))
        .collect();
    for kid in &mut kids {
        kid.expect("ready");
    }
    for mut kid in kids {
        let report = kid.expect("checked");
        let mut it = report.split(' ').map(|x| x.parse::<u64>().unwrap());
        let (checks, distinct) = (it.next().unwrap(), it.next().unwrap());
        assert!(checks > 10, "reader made only {checks} checks");
        assert!(
            distinct > 2,
            "reader saw only {distinct} snapshots: commits not visible across processes"
        );
        kid.wait_ok();
    }
    writer.kill();
    check_bank(&Database::open(&path).unwrap()).unwrap();
}

#[test]
fn killed_writers_leave_nothing_stuck_or_half_visible() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    create_bank(&path);
    let kills = env_count("SCRIBEDB_WRITER_KILLS", 20);
    let millis = (kills as u64 * 120 + 1000).to_string();
    let mut readers: Vec<Kid> = (0..2)
        .map(|_| Kid::spawn("bank-reader", &path, &[("MILLIS", millis.clone())]))
        .collect();
    for r in &mut readers {
        r.expect("ready");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut worst_takeover = 0u128;
    for _ in 0..kills {
        let mut writer = Kid::spawn("transfer-writer", &path, &[]);
        // Time for the new writer to get the role after the previous one was
        // killed: the kernel must have freed it at once.
        let took: u128 = writer.expect("took-writer").parse().unwrap();
        worst_takeover = worst_takeover.max(took);
        std::thread::sleep(Duration::from_millis(rng.random_range(5..60)));
        writer.kill();
    }
    println!("{kills} writer kills; slowest takeover of the writer role: {worst_takeover} µs");
    assert!(
        worst_takeover < 2_000_000,
        "a new writer waited {worst_takeover} µs for the role of a killed one"
    );
    for mut r in readers {
        r.expect("checked");
        r.wait_ok();
    }
    // The version store is consistent for a fresh process and after a rebuild.
    let db = Database::open(&path).unwrap();
    check_bank(&db).unwrap();
    let mut w = db.begin_write().unwrap();
    w.put(b"after", b"kills").unwrap();
    w.commit().unwrap();
    check_bank(&db).unwrap();
}

#[test]
fn slots_of_killed_readers_are_reclaimed_and_the_horizon_advances() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Database::open(&path).unwrap();
    let commit = |v: &str| {
        let mut w = db.begin_write().unwrap();
        w.put(b"k", v).unwrap();
        w.commit().unwrap()
    };
    let first = commit("1");
    let mut old = Kid::spawn("hold-readers", &path, &[("READERS", "3".into())]);
    let mut live = Kid::spawn("hold-readers", &path, &[("READERS", "1".into())]);
    assert_eq!(old.expect("holding").parse::<u64>().unwrap(), first);
    assert_eq!(live.expect("holding").parse::<u64>().unwrap(), first);
    let latest = commit("2");
    assert!(latest > first);
    assert_eq!(db.oldest_snapshot(), first);
    let readers = db.readers();
    assert_eq!(readers.len(), 4);
    assert!(readers.iter().all(|r| r.live && r.snapshot == first));
    assert_eq!(
        readers.iter().filter(|r| r.pid == old.pid() as u64).count(),
        3
    );

    old.kill();
    // Still pinned by the live reader, however old it is.
    assert_eq!(db.oldest_snapshot(), first);
    let readers = db.readers();
    assert_eq!(
        readers.len(),
        1,
        "dead slots were reclaimed by the horizon computation"
    );
    assert!(readers[0].live);
    assert_eq!(db.reclaim_dead_readers(), 0);

    live.say("drop");
    live.expect("released");
    assert_eq!(
        db.oldest_snapshot(),
        latest,
        "horizon advances once the last old reader is gone"
    );
    live.kill();
}

#[test]
fn a_thousand_readers_across_processes_then_readers_full_then_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Database::builder().max_readers(1000).open(&path).unwrap();
    let mut w = db.begin_write().unwrap();
    w.put(b"k", b"v").unwrap();
    w.commit().unwrap();
    let mut kids: Vec<Kid> = (0..4)
        .map(|_| Kid::spawn("hold-readers", &path, &[("READERS", "250".into())]))
        .collect();
    for kid in &mut kids {
        kid.expect("holding");
    }
    assert_eq!(db.readers().len(), 1000);
    let started = Instant::now();
    match db.begin_read() {
        Err(Error::ReadersFull { max }) => assert_eq!(max, 1000),
        other => panic!("expected ReadersFull, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "ReadersFull must not wait"
    );

    // A live process releasing its slots makes them reusable...
    kids[0].say("drop");
    kids[0].expect("released");
    let mine: Vec<_> = (0..250).map(|_| db.begin_read().unwrap()).collect();
    assert!(matches!(db.begin_read(), Err(Error::ReadersFull { .. })));
    // ...and so does a killed one, without any explicit call.
    kids.remove(1).kill();
    let more: Vec<_> = (0..250).map(|_| db.begin_read().unwrap()).collect();
    assert_eq!(more[0].get(b"k").unwrap(), Some(&b"v"[..]));
    assert!(matches!(db.begin_read(), Err(Error::ReadersFull { .. })));
    drop((mine, more));
    for kid in kids {
        kid.kill();
    }
}

#[test]
fn writer_role_across_processes_waits_names_the_holder_and_survives_death() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Database::builder()
        .writer_timeout(Duration::from_millis(200))
        .open(&path)
        .unwrap();
    let mut holder = Kid::spawn("hold-writer", &path, &[]);
    holder.expect("holding");
    let started = Instant::now();
    match db.begin_write() {
        Err(Error::WriterBusy { holder: who }) => {
            assert!(
                who.contains(&holder.pid().to_string()),
                "holder {who:?} does not name the pid"
            );
        }
        other => panic!("expected WriterBusy, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert_eq!(db.writer().unwrap().pid, holder.pid() as u64);
    // Once the holder commits, the role is ours and we see its commit.
    holder.say("commit");
    holder.expect("committed");
    let w = db.begin_write().unwrap();
    assert_eq!(
        w.get(b"held-by").unwrap(),
        Some(holder.pid().to_string().as_bytes())
    );
    drop(w);
    assert!(db.writer().is_none());
    holder.kill();

    // A holder that dies frees the role at once, and its writes vanish.
    let mut holder = Kid::spawn("hold-writer", &path, &[]);
    holder.expect("holding");
    let pid = holder.pid().to_string();
    holder.kill();
    let started = Instant::now();
    let w = db.begin_write().unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(180),
        "the role of a dead holder is free at once"
    );
    assert_ne!(w.get(b"held-by").unwrap(), Some(pid.as_bytes()));
}

#[test]
fn two_handles_in_one_process_keep_their_own_locks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let a = Database::builder()
        .writer_timeout(Duration::from_millis(50))
        .open(&path)
        .unwrap();
    let b = Database::builder()
        .writer_timeout(Duration::from_millis(50))
        .open(&path)
        .unwrap();
    let mut w = a.begin_write().unwrap();
    w.put(b"x", b"1").unwrap();
    assert!(matches!(b.begin_write(), Err(Error::WriterBusy { .. })));
    w.commit().unwrap();
    let rb = b.begin_read().unwrap();
    assert_eq!(rb.get(b"x").unwrap(), Some(&b"1"[..]));

    // Closing handle a must not drop b's locks: another process sees b's
    // reader as live and b's handle as attached.
    drop(a);
    let mut kid = Kid::spawn("hold-readers", &path, &[("READERS", "1".into())]);
    kid.expect("holding");
    let readers = b.readers();
    assert_eq!(readers.len(), 2);
    assert!(readers.iter().all(|r| r.live), "{readers:?}");
    assert_eq!(b.stats().unwrap().processes, 2);
    kid.kill();
    assert_eq!(b.reclaim_dead_readers(), 1);
    assert_eq!(rb.get(b"x").unwrap(), Some(&b"1"[..]));
    let mut w = b.begin_write().unwrap();
    w.put(b"x", b"2").unwrap();
    w.commit().unwrap();
}

#[test]
fn a_rebuild_killed_part_way_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let n = 20_000u32;
    {
        let db = Database::builder()
            .durability(Durability::None)
            .arena_size(1 << 20)
            .open(&path)
            .unwrap();
        for chunk in 0..4 {
            let mut w = db.begin_write().unwrap();
            for i in (chunk * n / 4)..((chunk + 1) * n / 4) {
                w.put(format!("key{i:06}"), vec![b'v'; 300]).unwrap();
            }
            w.commit().unwrap();
        }
        db.sync().unwrap();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for _ in 0..env_count("SCRIBEDB_REBUILD_KILLS", 6) {
        let kid = Kid::spawn("repair-open", &path, &[]);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..80)));
        kid.kill();
        // A plain open after the killed rebuild, and writes that need new
        // arenas, must keep every key.
        let db = Database::builder().arena_size(1 << 20).open(&path).unwrap();
        let mut w = db.begin_write().unwrap();
        for i in 0..4000 {
            w.put(format!("new{i:06}"), vec![b'n'; 300]).unwrap();
        }
        w.commit().unwrap();
        let r = db.begin_read().unwrap();
        assert_eq!(r.prefix(b"key").count(), n as usize);
        for i in (0..n).step_by(97) {
            assert_eq!(
                r.get(format!("key{i:06}")).unwrap().map(<[u8]>::len),
                Some(300)
            );
        }
        drop(r);
        let mut w = db.begin_write().unwrap();
        for i in 0..4000 {
            w.delete(format!("new{i:06}")).unwrap();
        }
        w.commit().unwrap();
    }
}

#[test]
fn a_full_disk_fails_commits_cleanly_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(Database::open(&path).unwrap());
    let mut kid = Kid::spawn("fill-disk", &path, &[]);
    let mut acked = Vec::new();
    let error = loop {
        // (The first line may follow the harness's "test child_entry ... ".)
        let line = kid.expect("");
        if let Some(at) = line.find("acked ") {
            acked.push(line[at + 6..].parse::<u32>().unwrap());
        } else if let Some(at) = line.find("error ") {
            break line[at + 6..].to_string();
        }
    };
    assert!(
        acked.len() >= 10,
        "only {} commits before the limit",
        acked.len()
    );
    assert!(
        error.contains("File too large") || error.contains("too large"),
        "{error}"
    );
    kid.expect("still-readable");
    kid.wait_ok();
    // Every acknowledged commit is there, also after a rebuild from the log,
    // and with the limit gone the database takes commits again.
    for repair in [false, true] {
        let db = Database::builder().repair(repair).open(&path).unwrap();
        let r = db.begin_read().unwrap();
        for i in &acked {
            assert_eq!(
                r.get(format!("big{i:04}")).unwrap().map(<[u8]>::len),
                Some(1 << 20)
            );
        }
        assert_eq!(r.prefix(b"big").count(), acked.len());
        assert_eq!(r.get(b"one-more").unwrap(), None);
        drop(r);
        let mut w = db.begin_write().unwrap();
        w.put(b"after", b"space").unwrap();
        w.commit().unwrap();
    }
}
