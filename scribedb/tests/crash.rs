//! Process-kill crash tests. The test binary runs itself as a child process
//! (see `crash_child_entry`) that commits in a loop and reports each
//! acknowledged commit on stdout; the parent kills it with SIGKILL at random
//! moments and checks what a reopened database holds.
//!
//! Every commit `i` sets the eight group keys to the same value (derived from
//! `i`) and the counter key to `i`, so a partially applied commit shows up as
//! a group that is not uniform.
//!
//! `SCRIBEDB_CRASH_KILLS` sets the number of kills (default 20) and
//! `SCRIBEDB_CRASH_SEED` the seed of the parent's random choices.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::child::{max_tagged, test_command, ChildProc};
use rand::Rng;
use scribedb::{Database, Durability};

/// Set in the environment of a child: its role.
const CHILD_ENV: &str = "SCRIBEDB_CRASH_CHILD";
const DIR_ENV: &str = "SCRIBEDB_CRASH_DIR";
const THREADS_ENV: &str = "SCRIBEDB_CRASH_THREADS";
const HOLD_READER_ENV: &str = "SCRIBEDB_CRASH_HOLD_READER";
const GROUP: usize = 8;
/// A child gives up after this long even if nobody kills it.
const CHILD_DEADLINE: Duration = Duration::from_secs(120);
/// Commits made by a takeover child.
const TAKEOVER_COMMITS: u64 = 3;

fn group_key(j: usize) -> Vec<u8> {
    format!("g{j}").into_bytes()
}

/// The value every group key gets in commit `i`, `len` (at least 16) bytes
/// long: `i` at both ends, a byte derived from `i` in between.
fn group_value(i: u64, len: usize) -> Vec<u8> {
    let len = len.max(16);
    let mut v = vec![(i % 251) as u8 + 1; len];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v[len - 8..].copy_from_slice(&i.to_le_bytes());
    v
}

/// Check that a state is the result of whole commits: the counter and all
/// group keys agree, and there is nothing else. Returns the commit number
/// (0 for the empty database).
fn check_state(items: Vec<(Vec<u8>, Vec<u8>)>) -> Result<u64, String> {
    if items.is_empty() {
        return Ok(0);
    }
    let find = |k: &[u8]| items.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let counter = find(b"counter").ok_or_else(|| format!("no counter in {} keys", items.len()))?;
    let i = u64::from_le_bytes(
        counter[..]
            .try_into()
            .map_err(|_| format!("counter of {} bytes", counter.len()))?,
    );
    let first = find(&group_key(0)).ok_or("group key 0 missing")?;
    for j in 0..GROUP {
        let v = find(&group_key(j)).ok_or_else(|| format!("group key {j} missing at {i}"))?;
        if v.len() < 16 || v.len() != first.len() {
            return Err(format!(
                "group key {j}: length {} vs {}",
                v.len(),
                first.len()
            ));
        }
        let of = u64::from_le_bytes(v[..8].try_into().unwrap());
        if of != i || *v != group_value(i, v.len()) {
            return Err(format!(
                "partial commit visible: counter {i}, group key {j} holds commit {of}"
            ));
        }
    }
    if items.len() != GROUP + 1 {
        return Err(format!("{} keys, expected {}", items.len(), GROUP + 1));
    }
    Ok(i)
}

fn read_state(db: &Database) -> Result<u64, String> {
    let r = db.begin_read().map_err(|e| format!("begin_read: {e}"))?;
    let mut items = Vec::new();
    for kv in r.iter() {
        let (k, v) = kv.map_err(|e| format!("iterating: {e}"))?;
        items.push((k.to_vec(), v.to_vec()));
    }
    check_state(items)
}

fn write_state(w: &scribedb::WriteTxn) -> Result<u64, String> {
    let mut items = Vec::new();
    for kv in w.iter() {
        let (k, v) = kv.map_err(|e| format!("iterating: {e}"))?;
        items.push((k.to_vec(), v.to_vec()));
    }
    check_state(items)
}

// ---------------------------------------------------------------------------
// The child side

/// Entry point of the child processes; does nothing in a normal test run.
#[test]
#[ignore = "run by the crash tests as a child process"]
fn crash_child_entry() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(DIR_ENV).expect("database directory"));
    let result = match role.as_str() {
        "writer" => child_writer(&dir),
        "takeover" => child_takeover(&dir),
        other => Err(format!("unknown role {other}")),
    };
    if let Err(e) = result {
        let _ = common::say(&format!("ERROR {e}"));
        std::process::exit(3);
    }
}

fn io(e: std::io::Error) -> String {
    format!("stdout: {e}")
}

/// Commit forever (until killed) from one or more threads.
fn child_writer(dir: &Path) -> Result<(), String> {
    let threads: usize = std::env::var(THREADS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let db = Database::builder()
        .durability(Durability::Immediate)
        .writer_timeout(Duration::from_secs(30))
        .open(dir)
        .map_err(|e| format!("open: {e}"))?;
    // A read transaction left registered when the process dies.
    let reader = match std::env::var(HOLD_READER_ENV) {
        Ok(_) => Some(db.begin_read().map_err(|e| format!("begin_read: {e}"))?),
        Err(_) => None,
    };
    common::say("READY").map_err(io)?;
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                if let Err(e) = commit_loop(&db, start) {
                    let _ = common::say(&format!("ERROR {e}"));
                    std::process::exit(3);
                }
            });
        }
    });
    drop(reader);
    Ok(())
}

fn commit_loop(db: &Database, start: Instant) -> Result<(), String> {
    let mut rng = rand::rng();
    while start.elapsed() < CHILD_DEADLINE {
        let mut w = db.begin_write().map_err(|e| format!("begin_write: {e}"))?;
        let i = write_state(&w)? + 1;
        // Mostly small commits; some of 32 KiB or 512 KiB, which take a
        // while to write, insert and sync.
        let len = match rng.random_range(0..10) {
            0 => 64 << 10,
            1 | 2 => 4 << 10,
            _ => 16,
        };
        let value = group_value(i, len);
        for j in 0..GROUP {
            w.put(group_key(j), &value)
                .map_err(|e| format!("put: {e}"))?;
        }
        w.put(b"counter", i.to_le_bytes())
            .map_err(|e| format!("put: {e}"))?;
        common::say(&format!("TRY {i}")).map_err(io)?;
        w.commit().map_err(|e| format!("commit {i}: {e}"))?;
        common::say(&format!("ACK {i}")).map_err(io)?;
    }
    Ok(())
}

/// Take the writer role after a writer was killed, report how long that
/// took and what the writer sees, then commit a few times and exit.
fn child_takeover(dir: &Path) -> Result<(), String> {
    let db = Database::builder()
        .durability(Durability::Immediate)
        .writer_timeout(Duration::from_secs(10))
        .open(dir)
        .map_err(|e| format!("open: {e}"))?;
    let t = Instant::now();
    let w = db.begin_write().map_err(|e| format!("begin_write: {e}"))?;
    common::say(&format!("BEGIN_WRITE_MS {}", t.elapsed().as_millis())).map_err(io)?;
    let seen = write_state(&w)?;
    common::say(&format!("SEEN {seen}")).map_err(io)?;
    w.abort();
    for _ in 0..TAKEOVER_COMMITS {
        let mut w = db.begin_write().map_err(|e| format!("begin_write: {e}"))?;
        let i = write_state(&w)? + 1;
        let value = group_value(i, 100);
        for j in 0..GROUP {
            w.put(group_key(j), &value)
                .map_err(|e| format!("put: {e}"))?;
        }
        w.put(b"counter", i.to_le_bytes())
            .map_err(|e| format!("put: {e}"))?;
        w.commit().map_err(|e| format!("commit: {e}"))?;
        common::say(&format!("ACK {i}")).map_err(io)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The parent side

/// Start a child in `role` on the database `dir`, with `envs` added to its
/// environment.
fn spawn_child(role: &str, dir: &Path, envs: &[(&str, String)]) -> ChildProc {
    let mut cmd = test_command("crash_child_entry");
    cmd.env(CHILD_ENV, role)
        .env(DIR_ENV, dir)
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    ChildProc::spawn(&mut cmd)
}

fn errors(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.starts_with("ERROR")).collect()
}

fn kills() -> usize {
    std::env::var("SCRIBEDB_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// A generator of the parents' random choices, seeded from `SCRIBEDB_CRASH_SEED`.
fn seeded_rng(test: &str) -> rand::rngs::StdRng {
    common::seeded_rng("SCRIBEDB_CRASH_SEED", test)
}

/// Reboot a copy of the log (the original stays as it is) and return the
/// state recovered from it.
fn state_after_reboot(
    db_dir: &Path,
    scratch: &Path,
) -> Result<(u64, scribedb::RecoveryReport), String> {
    let copy = scratch.join("reboot-copy");
    let _ = std::fs::remove_dir_all(&copy);
    common::copy_wal(db_dir, &copy, None);
    let db = Database::open(&copy).map_err(|e| format!("open after reboot: {e}"))?;
    let state = read_state(&db).map_err(|e| format!("after reboot: {e}"))?;
    let report = db.recovery_report().clone();
    drop(db);
    std::fs::remove_dir_all(&copy).map_err(|e| e.to_string())?;
    Ok((state, report))
}

#[test]
fn sigkill_never_loses_or_tears_a_commit() {
    let mut rng = seeded_rng("sigkill_never_loses_or_tears_a_commit");
    let tmp = tempfile::tempdir().unwrap();
    let db_dir = tmp.path().join("db");
    let mut acked = 0u64;
    let mut tried = 0u64;
    let mut in_flight_kills = 0;
    let mut idle_kills = 0;
    let rounds = kills();
    for round in 0..rounds {
        let threads = rng.random_range(1..=3usize);
        let mut envs = vec![(THREADS_ENV, threads.to_string())];
        if rng.random_bool(0.5) {
            envs.push((HOLD_READER_ENV, "1".to_string()));
        }
        let mut child = spawn_child("writer", &db_dir, &envs);
        let mut lines = child
            .wait_for("READY", Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        std::thread::sleep(Duration::from_micros(rng.random_range(0..=30_000)));
        lines.extend(
            child
                .kill()
                .unwrap_or_else(|e| panic!("round {round}: {e}")),
        );
        assert!(
            errors(&lines).is_empty(),
            "round {round}: child reported {:?}",
            errors(&lines)
        );
        let round_acked = max_tagged(&lines, "ACK ");
        let round_tried = max_tagged(&lines, "TRY ");
        if round_tried > round_acked {
            in_flight_kills += 1;
        }
        if round_tried.is_none() {
            idle_kills += 1;
        }
        acked = acked.max(round_acked.unwrap_or(0));
        tried = tried.max(round_tried.unwrap_or(0));
        let ctx = format!("round {round} ({threads} threads, acked {acked}, tried {tried})");

        // Same boot: the version store is reused as the child left it.
        let db = Database::open(&db_dir).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
        let seen = read_state(&db).unwrap_or_else(|e| panic!("{ctx}: reader: {e}"));
        assert!(
            seen >= acked,
            "{ctx}: acknowledged commit lost: reader sees {seen}"
        );
        assert!(seen <= tried, "{ctx}: reader sees {seen}, never tried");
        // A new writer takes over at once and finishes what the dead one left.
        let t = Instant::now();
        let w = db
            .begin_write()
            .unwrap_or_else(|e| panic!("{ctx}: begin_write: {e}"));
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{ctx}: begin_write took {:?}",
            t.elapsed()
        );
        let written = write_state(&w).unwrap_or_else(|e| panic!("{ctx}: writer view: {e}"));
        assert!(
            written >= seen && written <= tried,
            "{ctx}: writer sees {written}, reader {seen}"
        );
        w.abort();
        db.sync().unwrap();
        let published = read_state(&db).unwrap_or_else(|e| panic!("{ctx}: after sync: {e}"));
        assert_eq!(published, written, "{ctx}: state after sync");
        drop(db);

        // A reboot now recovers exactly that state from the log.
        let (rebooted, report) =
            state_after_reboot(&db_dir, tmp.path()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(rebooted, written, "{ctx}: state after reboot ({report:?})");
        assert_eq!(report.repaired, None, "{ctx}");
        assert_eq!(
            report.torn_tail, None,
            "{ctx}: the log was left with a torn tail"
        );
        // Now and then reboot for real, so that the next child starts from
        // a rebuilt version store.
        if round % 5 == 4 {
            common::simulate_reboot(&db_dir);
            let db = Database::open(&db_dir).unwrap();
            assert_eq!(read_state(&db).unwrap(), written, "{ctx}: after reboot");
        }
    }
    eprintln!(
        "{rounds} kills, {acked} commits acknowledged, {in_flight_kills} kills with a commit \
         in flight, {idle_kills} before the first commit"
    );
    assert!(acked > 0, "no commit was ever acknowledged");
}

#[test]
fn new_writer_takes_over_from_a_killed_one() {
    let mut rng = seeded_rng("new_writer_takes_over_from_a_killed_one");
    let tmp = tempfile::tempdir().unwrap();
    let db_dir = tmp.path().join("db");
    // This handle stays open throughout: children attach to the live shared
    // state instead of recovering it, so the takeover path does the work.
    let holder = Database::open(&db_dir).unwrap();
    let first = holder.begin_read().unwrap();
    let mut acked = 0u64;
    let rounds = (kills() / 4).max(3);
    for round in 0..rounds {
        let threads = rng.random_range(1..=3usize);
        let envs = [
            (THREADS_ENV, threads.to_string()),
            (HOLD_READER_ENV, "1".to_string()),
        ];
        let mut a = spawn_child("writer", &db_dir, &envs);
        let a_pid = a.id() as u64;
        let mut lines = a
            .wait_for("READY", Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        // Let it commit a little (a few acknowledgements), then kill it at
        // a random moment.
        let more = a
            .wait_for("ACK ", Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        lines.extend(more);
        std::thread::sleep(Duration::from_micros(rng.random_range(0..=30_000)));
        lines.extend(a.kill().unwrap_or_else(|e| panic!("round {round}: {e}")));
        assert!(
            errors(&lines).is_empty(),
            "round {round}: {:?}",
            errors(&lines)
        );
        acked = acked.max(max_tagged(&lines, "ACK ").unwrap_or(0));
        let ctx = format!("round {round} ({threads} threads, acked {acked})");

        // The writer role died with its holder.
        assert_eq!(holder.writer(), None, "{ctx}: writer role still held");
        // So did its read transaction: listed as dead, then reclaimed.
        let dead: Vec<_> = holder
            .readers()
            .into_iter()
            .filter(|r| r.pid == a_pid)
            .collect();
        assert!(
            !dead.is_empty(),
            "{ctx}: the dead child's reader is not listed"
        );
        assert!(
            dead.iter().all(|r| !r.live),
            "{ctx}: dead reader shown live: {dead:?}"
        );
        assert!(holder.reclaim_dead_readers() >= dead.len(), "{ctx}");
        assert!(
            holder.readers().iter().all(|r| r.pid != a_pid),
            "{ctx}: dead reader not reclaimed"
        );
        let visible = read_state(&holder).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert!(visible >= acked, "{ctx}: holder sees {visible}");

        // A second process takes the writer role without waiting.
        let b = spawn_child("takeover", &db_dir, &[]);
        let out = b
            .finish(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{ctx}: takeover child: {e}"));
        assert!(errors(&out).is_empty(), "{ctx}: {:?}", errors(&out));
        let ms = max_tagged(&out, "BEGIN_WRITE_MS ").expect("no BEGIN_WRITE_MS");
        assert!(
            ms < 2000,
            "{ctx}: begin_write waited {ms} ms for a dead writer"
        );
        let seen = max_tagged(&out, "SEEN ").expect("no SEEN");
        assert!(seen >= acked, "{ctx}: new writer sees {seen}");
        let last = max_tagged(&out, "ACK ").expect("no ACK from the takeover child");
        assert_eq!(last, seen + TAKEOVER_COMMITS, "{ctx}: takeover commits");
        assert_eq!(
            read_state(&holder).unwrap(),
            last,
            "{ctx}: holder after takeover"
        );
        acked = last;
    }
    // The first snapshot never moved.
    assert!(common::contents(&first).is_empty());
    drop(first);
    drop(holder);
    let (rebooted, report) = state_after_reboot(&db_dir, tmp.path()).unwrap();
    assert_eq!(rebooted, acked, "after reboot: {report:?}");
}

// ---------------------------------------------------------------------------
// Deaths at exact points of the commit protocol, staged by hand: the log and
// the coordination header are left as a committer killed at that point
// leaves them (header offsets from the documented layout).

const HLC_LAST: u64 = 56;
const COMMITTED_TS: u64 = 64;
const WRITTEN_TS: u64 = 72;
const COMMIT_IN_PROGRESS: u64 = 80;
const COMMIT_WAL_START: u64 = 88;
const WAL_END: u64 = 96;

fn coord_u64(dir: &Path, offset: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(dir.join("coord")).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, offset).unwrap();
    u64::from_le_bytes(b)
}

fn set_coord_u64(dir: &Path, offset: u64, v: u64) {
    common::patch(&dir.join("coord"), offset, &v.to_le_bytes());
}

fn contents_of(db: &Database) -> Vec<(Vec<u8>, Vec<u8>)> {
    common::db_contents(db).into_iter().collect()
}

fn kv(items: &[(&[u8], &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
    items
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// Two commits, closed; returns the end of the log and the last timestamp.
fn two_commits(dir: &Path) -> (u64, u64) {
    let db = Database::open(dir).unwrap();
    let mut w = db.begin_write().unwrap();
    w.put(b"a", b"1").unwrap();
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    w.put(b"b", b"2").unwrap();
    let ts = w.commit().unwrap();
    drop(db);
    let last = common::read_wal_records(dir).pop().unwrap();
    let end = last.offset + last.len;
    assert_eq!(coord_u64(dir, WAL_END), end, "layout: wal_end");
    assert_eq!(coord_u64(dir, COMMITTED_TS), ts, "layout: committed_ts");
    assert_eq!(coord_u64(dir, WRITTEN_TS), ts, "layout: written_ts");
    (end, ts)
}

/// Killed while writing its record: part of the record is in the log past
/// `wal_end`, `commit_in_progress` is set. The next writer must clear the
/// partial record; nobody ever sees the commit.
#[test]
fn writer_killed_while_appending_its_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (end, ts2) = two_commits(dir);
    let ts = coord_u64(dir, HLC_LAST) + 1;
    let rec = common::build_record(ts, end, &[(b"a", None), (b"c", Some(b"3"))]);
    common::patch(&dir.join("wal"), end, &rec[..rec.len() / 2 + 3]);
    set_coord_u64(dir, HLC_LAST, ts);
    set_coord_u64(dir, COMMIT_WAL_START, end);
    set_coord_u64(dir, COMMIT_IN_PROGRESS, ts);

    let db = Database::open(dir).unwrap();
    let before = kv(&[(b"a", b"1"), (b"b", b"2")]);
    assert_eq!(contents_of(&db), before);
    let w = db.begin_write().unwrap();
    assert_eq!(w.snapshot_ts(), ts2);
    assert_eq!(w.get(b"c").unwrap(), None);
    w.abort();
    assert_eq!(coord_u64(dir, COMMIT_IN_PROGRESS), 0);
    let wal = common::read(&dir.join("wal"));
    assert!(
        wal[end as usize..end as usize + rec.len()]
            .iter()
            .all(|&b| b == 0),
        "the partial record was left in the log"
    );
    assert_eq!(contents_of(&db), before);
    let mut w = db.begin_write().unwrap();
    w.put(b"d", b"4").unwrap();
    assert!(w.commit().unwrap() > ts, "timestamp reused");
    drop(db);

    common::simulate_reboot(dir);
    let db = Database::open(dir).unwrap();
    let report = db.recovery_report();
    assert_eq!(
        (report.records, report.torn_tail, report.repaired),
        (3, None, None)
    );
    assert_eq!(
        contents_of(&db),
        kv(&[(b"a", b"1"), (b"b", b"2"), (b"d", b"4")])
    );
}

/// Killed after its record was whole in the log, before its versions were
/// in the version store. The next writer must finish the commit from the
/// record and publish it.
#[test]
fn writer_killed_after_appending_before_inserting() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (end, ts2) = two_commits(dir);
    let ts = coord_u64(dir, HLC_LAST) + 1;
    let rec = common::build_record(ts, end, &[(b"a", None), (b"c", Some(b"3"))]);
    common::patch(&dir.join("wal"), end, &rec);
    set_coord_u64(dir, HLC_LAST, ts);
    set_coord_u64(dir, COMMIT_WAL_START, end);
    set_coord_u64(dir, COMMIT_IN_PROGRESS, ts);
    set_coord_u64(dir, WAL_END, end + rec.len() as u64);

    let db = Database::open(dir).unwrap();
    let epoch = db.stats().unwrap().epoch;
    // Not visible before a writer finishes it.
    assert_eq!(db.committed_ts(), ts2);
    assert_eq!(contents_of(&db), kv(&[(b"a", b"1"), (b"b", b"2")]));
    let w = db.begin_write().unwrap();
    assert_eq!(w.snapshot_ts(), ts);
    assert_eq!(w.get(b"c").unwrap(), Some(&b"3"[..]));
    assert_eq!(w.get(b"a").unwrap(), None);
    w.abort();
    assert_eq!(db.committed_ts(), ts, "the finished commit is published");
    assert_eq!(contents_of(&db), kv(&[(b"b", b"2"), (b"c", b"3")]));
    assert_eq!(db.stats().unwrap().epoch, epoch + 1);
    assert_eq!(coord_u64(dir, COMMIT_IN_PROGRESS), 0);
    drop(db);

    common::simulate_reboot(dir);
    let db = Database::open(dir).unwrap();
    assert_eq!(db.recovery_report().records, 3);
    assert_eq!(contents_of(&db), kv(&[(b"b", b"2"), (b"c", b"3")]));
}

/// Killed after its commit was whole in the version store, before it was
/// published: the next opener (alone, or joining a live handle) publishes
/// it, so readers need not wait for another commit.
#[test]
fn committer_killed_before_publishing() {
    for join_live_handle in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (_, ts2) = two_commits(dir);
        let db = Database::open(dir).unwrap();
        let mut w = db.begin_write().unwrap();
        w.put(b"c", b"3").unwrap();
        let ts3 = w.commit().unwrap();
        if !join_live_handle {
            drop(db);
        }
        set_coord_u64(dir, COMMITTED_TS, ts2);
        let other = Database::open(dir).unwrap();
        assert_eq!(other.committed_ts(), ts3, "join={join_live_handle}");
        assert_eq!(
            contents_of(&other),
            kv(&[(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]),
            "join={join_live_handle}"
        );
    }
}

/// Killed after all its versions were inserted (and counted), before it
/// marked the commit written: the next writer finds every version already
/// there, publishes the commit, and the store's figures match a rebuild.
#[test]
fn writer_killed_after_inserting_before_marking_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (end, ts2) = two_commits(dir);
    let db = Database::open(dir).unwrap();
    let mut w = db.begin_write().unwrap();
    w.delete(b"a").unwrap();
    w.put(b"c", b"3").unwrap();
    let ts3 = w.commit().unwrap();
    drop(db);
    // Undo what the last steps of the commit did.
    set_coord_u64(dir, WRITTEN_TS, ts2);
    set_coord_u64(dir, COMMITTED_TS, ts2);
    set_coord_u64(dir, COMMIT_WAL_START, end);
    set_coord_u64(dir, COMMIT_IN_PROGRESS, ts3);

    let db = Database::open(dir).unwrap();
    assert_eq!(contents_of(&db), kv(&[(b"a", b"1"), (b"b", b"2")]));
    let w = db.begin_write().unwrap();
    assert_eq!(w.snapshot_ts(), ts3);
    w.abort();
    let after = kv(&[(b"b", b"2"), (b"c", b"3")]);
    assert_eq!(contents_of(&db), after);
    // Each version once: a reverse scan (one search per step) agrees.
    let r = db.begin_read().unwrap();
    let rev: Vec<_> = r.iter().rev().map(|kv| kv.unwrap().0.to_vec()).collect();
    assert_eq!(rev, vec![b"c".to_vec(), b"b".to_vec()]);
    drop(r);
    let versions = db.stats().unwrap().versions;
    drop(db);

    common::simulate_reboot(dir);
    let db = Database::open(dir).unwrap();
    assert_eq!(contents_of(&db), after);
    assert_eq!(
        versions,
        db.stats().unwrap().versions,
        "version count after finishing the dead commit differs from a rebuild's"
    );
}
