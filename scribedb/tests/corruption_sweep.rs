//! Random bit flips in every kind of durable file (a log file, a segment,
//! the manifest), 1, 8 or 64 at a time. Each cell (kind × flips) is tried
//! three ways:
//!
//! * **same boot**: every handle closed, the damaged file and the
//!   coordination file damaged too (bits anywhere in it, or, in every other
//!   trial, only in the header's fields), then a plain reopen that reuses
//!   the memtable;
//! * **reboot**: every handle closed, the coordination file and the
//!   memtable removed (as a reboot leaves them), then a reopen;
//! * **with reader**: a child process has the database open and reads
//!   every key in a loop (point reads and a scan) while the bits flip in
//!   place under it (in every other trial in the coordination file too),
//!   until it is told to stop;
//! * **every read**: the same, with a reader that checks a segment block's
//!   checksum at every read (`Builder::verify_every_read`).
//!
//! The only outcomes allowed: the right data, or a clear error at open or
//! at the read that touches the damage (it names a file of the database;
//! one about the coordination file also says what to do). Losing the last
//! commit alone is allowed when the flips fell in its record and nothing
//! else says it was there (as a torn write would leave it): after a
//! reboot, or when the flips also destroyed the coordination file's record
//! of the durable end. Never a wrong answer (an older snapshot without an
//! error is one), a panic, a signal or a hang. The table of outcomes is
//! printed at the end (`--nocapture`).
//!
//! Known limitation: reads are served from the mappings without a copy,
//! and by default a segment block is checked once per process. Bytes
//! changed in place under a reader after that check (bits flipped with the
//! file mapped) can reach it as a wrong answer. With every read checked,
//! only a change in the moment between a read's check and the reader's
//! use of the borrowed bytes can (the same holds for a value kept in the
//! log, checked at every read in either mode). Those trials are counted
//! in the table (WRONG) and fail the test only with
//! `SCRIBEDB_SWEEP_STRICT_READER` set; every other outcome of a reader
//! trial (a signal, a hang, an unclear error) fails it always.
//!
//! `SCRIBEDB_SWEEP_TRIALS` sets the trials per cell and way (default 3);
//! `SCRIBEDB_SWEEP_SEED` replays the choice of files and bits (the timing
//! of flips under a reader is not replayed).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use scribedb::{Database, Durability};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// The child reads the database in the directory this names.
const CHILD_ENV: &str = "SCRIBEDB_SWEEP_CHILD_DIR";
/// Set for a child that checks every read.
const CHILD_EVERY_READ_ENV: &str = "SCRIBEDB_SWEEP_CHILD_EVERY_READ";

/// Bytes of the coordination file's header that hold its fields
/// (design §3: 39 little-endian `u64`s).
const HEADER_FIELDS: u64 = 312;
/// Where the header keeps the durable end of the log (`wal_synced`).
const OFF_WAL_SYNCED: u64 = 104;

fn open(dir: &Path) -> scribedb::Result<Database> {
    builder().open(dir)
}

fn builder() -> scribedb::Builder {
    Database::builder()
        .durability(Durability::Immediate)
        .memtable_size(32 << 10)
        .arena_size(1 << 20)
}

/// The commits the database is built from, in order: enough for segments
/// and unflushed log records, short values in the memtable and long ones
/// in the log. A few small commits last, so that the file appended to
/// holds records (a seal at the last big commit would leave it with a
/// header only).
fn commits() -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    for round in 0..120u32 {
        out.push(
            (0..10u32)
                .map(|i| {
                    let k = format!("key-{:03}", (round * 7 + i * 13) % 300).into_bytes();
                    let pad = "x".repeat(((round + i) % 3 * 60) as usize);
                    (k, format!("{round}.{i}.{pad}").into_bytes())
                })
                .collect(),
        );
    }
    for i in 0..3u32 {
        let v = format!("tail {i} {}", "t".repeat(70));
        out.push(vec![(format!("tail-{i}").into_bytes(), v.into_bytes())]);
    }
    out
}

/// The state after every commit, and after all but the last.
fn models() -> (Model, Model) {
    let mut model = Model::new();
    let mut before_last = Model::new();
    for commit in commits() {
        before_last = model.clone();
        model.extend(commit);
    }
    (model, before_last)
}

/// The state after each prefix of [`commits`], the whole last.
fn prefix_models() -> Vec<Model> {
    let mut out = vec![Model::new()];
    for commit in commits() {
        let mut next = out.last().unwrap().clone();
        next.extend(commit);
        out.push(next);
    }
    out
}

/// How many records at the end of the log file `original` (undamaged)
/// have a flipped byte, counted back from the last until one has none.
fn damaged_tail(original: &Path, flipped: &[u64]) -> usize {
    let records = common::wal_records(&std::fs::read(original).unwrap());
    records
        .iter()
        .rev()
        .take_while(|r| {
            flipped
                .iter()
                .any(|&at| (r.offset..r.offset + r.len).contains(&at))
        })
        .count()
}

/// If the database in `dir` now holds the state after a prefix of the
/// commits short of all of them, how many it lost at the end.
fn lost_tail(dir: &Path, prefixes: &[Model]) -> Option<usize> {
    let db = open(dir).ok()?;
    let r = db.begin_read().ok()?;
    let seen: Model = r
        .iter()
        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<Result<_, _>>()
        .ok()?;
    let n = prefixes.len() - 1;
    (0..n).rev().find(|&k| prefixes[k] == seen).map(|k| n - k)
}

/// A closed database holding [`commits`].
fn build(dir: &Path) {
    let db = open(dir).unwrap();
    for commit in commits() {
        let mut w = db.begin_write().unwrap();
        for (k, v) in &commit {
            w.put(k, v).unwrap();
        }
        w.commit().unwrap();
    }
}

fn files(dir: &Path, kind: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            match kind {
                "log" => common::is_log_file(&n),
                "segment" => n.starts_with("seg-"),
                "manifest" => n.starts_with("manifest-"),
                _ => unreachable!(),
            }
        })
        .collect();
    out.sort();
    out
}

/// The length of `path` up to its last byte that is not zero: a log file
/// is preallocated with zeros past its last record.
fn used_len(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    bytes.iter().rposition(|&b| b != 0).map_or(1, |i| i + 1) as u64
}

/// Flip one random bit in `path`, in place, at a byte below `below`;
/// returns the byte's offset.
fn flip_one(path: &Path, below: u64, rng: &mut impl Rng) -> u64 {
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let at = rng.random_range(0..below);
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 1 << rng.random_range(0..8);
    f.write_all_at(&b, at).unwrap();
    at
}

/// Where the flips in the coordination file go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CoordFlips {
    None,
    /// Anywhere: header page and slot tables.
    Anywhere,
    /// Only in the header's fields.
    Fields,
}

impl CoordFlips {
    fn apply(self, dir: &Path, flips: usize, rng: &mut impl Rng) -> Vec<u64> {
        let coord = dir.join("coord");
        let below = match self {
            CoordFlips::None => return Vec::new(),
            CoordFlips::Anywhere => std::fs::metadata(&coord).unwrap().len(),
            CoordFlips::Fields => HEADER_FIELDS,
        };
        (0..flips).map(|_| flip_one(&coord, below, rng)).collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Way {
    SameBoot,
    Reboot,
    WithReader,
    EveryRead,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Correct,
    OpenError,
    ReadError,
    LastCommitLost,
    Wrong,
    /// A panic, a signal or a hang.
    Crash,
}

const OUTCOMES: [(Outcome, &str); 6] = [
    (Outcome::Correct, "correct"),
    (Outcome::OpenError, "err@open"),
    (Outcome::ReadError, "err@read"),
    (Outcome::LastCommitLost, "last lost"),
    (Outcome::Wrong, "WRONG"),
    (Outcome::Crash, "CRASH"),
];

/// Whether an error is clear: it names a file of the database, and one
/// about the coordination file (derived state) says what to do.
fn clear(e: &str, dir: &Path) -> bool {
    let names_file = e.contains(&*dir.to_string_lossy());
    let about_coord = e.contains(&*dir.join("coord").to_string_lossy());
    let says_what = ["remove", "repair", "reopen", "close every handle"]
        .iter()
        .any(|w| e.contains(w));
    names_file && (!about_coord || says_what)
}

/// Reopen and read everything: the scan, then a point read of every key
/// (another path: hash index, key index), which must agree with it.
fn observe(dir: &Path, keys: &[Vec<u8>]) -> Result<Model, (Outcome, String)> {
    let db = open(dir).map_err(|e| (Outcome::OpenError, e.to_string()))?;
    let read_err = |e: scribedb::Error| (Outcome::ReadError, e.to_string());
    let r = db.begin_read().map_err(read_err)?;
    let mut seen = Model::new();
    for kv in r.iter() {
        let (k, v) = kv.map_err(read_err)?;
        seen.insert(k.to_vec(), v.to_vec());
    }
    for k in keys {
        let got = r.get(k).map_err(read_err)?;
        if got != seen.get(k).map(|v| &v[..]) {
            return Err((
                Outcome::Wrong,
                format!(
                    "get({}) disagrees with the scan",
                    String::from_utf8_lossy(k)
                ),
            ));
        }
    }
    Ok(seen)
}

fn differing(model: &Model, seen: &Model) -> usize {
    model
        .iter()
        .filter(|(k, v)| seen.get(*k) != Some(v))
        .count()
        + seen.keys().filter(|k| !model.contains_key(*k)).count()
}

/// One trial of the same-boot or reboot way, on a damaged copy in `dir`.
fn closed_trial(
    dir: &Path,
    way: Way,
    durable_end_hit: bool,
    model: &Model,
    before_last: &Model,
) -> (Outcome, Option<String>) {
    let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
    match std::panic::catch_unwind(|| observe(dir, &keys)) {
        Err(_) => (Outcome::Crash, Some("panic".into())),
        Ok(Err((Outcome::Wrong, why))) => (Outcome::Wrong, Some(why)),
        Ok(Err((outcome, e))) if clear(&e, dir) => (outcome, None),
        Ok(Err((outcome, e))) => (outcome, Some(format!("unclear error: {e}"))),
        Ok(Ok(seen)) if &seen == model => (Outcome::Correct, None),
        // The last commit's record damaged, and nothing left to say it
        // was durable: indistinguishable from a torn write.
        Ok(Ok(seen)) if &seen == before_last && (way == Way::Reboot || durable_end_hit) => {
            (Outcome::LastCommitLost, None)
        }
        Ok(Ok(seen)) => (
            Outcome::Wrong,
            Some(format!("{} keys differ", differing(model, &seen))),
        ),
    }
}

/// One trial with a reader attached: flip `flips` bits in `victim` (and in
/// the coordination file) under a child that reads everything in a loop.
fn reader_trial(
    dir: &Path,
    victim: &Path,
    flips: usize,
    coord: CoordFlips,
    every_read: bool,
    rng: &mut impl Rng,
) -> (Outcome, Option<String>) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    if every_read {
        command.env(CHILD_EVERY_READ_ENV, "1");
    }
    let mut child = command
        .args([
            "--exact",
            "sweep_child",
            "--nocapture",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut s);
        s
    });
    let mut output = Vec::new();
    let limit = Duration::from_secs(60);
    let started = Instant::now();
    // Wait until the child has the database open and has read it once.
    let ready = loop {
        match lines.recv_timeout(limit.saturating_sub(started.elapsed())) {
            Ok(line) if line.contains("sweep-ready") => break true,
            Ok(line) => output.push(line),
            Err(_) => break false,
        }
    };
    if ready {
        let used = used_len(victim);
        let coord_below = match coord {
            CoordFlips::Anywhere => std::fs::metadata(dir.join("coord")).unwrap().len(),
            _ => HEADER_FIELDS,
        };
        // Spread the flips over about 100 ms of reading.
        let pause = Duration::from_micros(100_000 / flips as u64);
        for _ in 0..flips {
            flip_one(victim, used, rng);
            if coord != CoordFlips::None {
                flip_one(&dir.join("coord"), coord_below, rng);
            }
            std::thread::sleep(pause);
        }
        // Reads over the damage, then stop.
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stdin);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    output.extend(lines.try_iter());
    // The stdout thread may still hold a line or two.
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        output.push(line);
    }
    let stderr = errs.join().unwrap_or_default();
    let tail = || {
        let mut s = output.join("\n");
        s.push('\n');
        s.push_str(&stderr);
        s.chars()
            .rev()
            .take(2000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<String>()
    };
    let Some(status) = status else {
        return (Outcome::Crash, Some(format!("reader hung\n{}", tail())));
    };
    if !status.success() {
        let how = match status.signal() {
            Some(sig) => format!("reader killed by signal {sig}"),
            None => format!("reader exited with {status}"),
        };
        return (Outcome::Crash, Some(format!("{how}\n{}", tail())));
    }
    if let Some(wrong) = output.iter().find(|l| l.contains("sweep-wrong")) {
        return (Outcome::Wrong, Some(wrong.clone()));
    }
    if let Some(unclear) = output.iter().find(|l| l.contains("sweep-unclear")) {
        return (Outcome::ReadError, Some(unclear.clone()));
    }
    let Some(done) = output.iter().find(|l| l.contains("sweep-done")) else {
        return (
            Outcome::Crash,
            Some(format!("reader said nothing\n{}", tail())),
        );
    };
    let errors: u64 = done
        .split("errors=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if errors > 0 {
        (Outcome::ReadError, None)
    } else {
        (Outcome::Correct, None)
    }
}

/// The reader process: open the database, read everything until stdin
/// closes, and report (on stdout) how many reads failed and every read that
/// gave a wrong answer.
#[test]
#[ignore = "run as a child process by the sweep"]
fn sweep_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let (model, _) = models();
    let every_read = std::env::var_os(CHILD_EVERY_READ_ENV).is_some();
    let db = builder()
        .verify_every_read(every_read)
        .open(&dir)
        .expect("the reader opens the database before any damage");
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = stop.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
        stopper.store(true, Ordering::SeqCst);
    });
    let errors = AtomicU64::new(0);
    let mut rounds = 0u64;
    let mut wrong = 0u64;
    let mut report = |what: String| {
        if wrong < 5 {
            common::say(&format!("sweep-wrong {what}")).unwrap();
        }
        wrong += 1;
    };
    let failed = |e: scribedb::Error| {
        let e = e.to_string();
        if !clear(&e, &dir) {
            common::say(&format!("sweep-unclear {e}")).unwrap();
        }
        errors.fetch_add(1, Ordering::Relaxed);
    };
    let started = Instant::now();
    loop {
        match db.begin_read() {
            Err(e) => failed(e),
            Ok(r) => {
                let mut seen = Model::new();
                let mut whole = true;
                for kv in r.iter() {
                    match kv {
                        Ok((k, v)) => {
                            seen.insert(k.to_vec(), v.to_vec());
                        }
                        Err(e) => {
                            failed(e);
                            whole = false;
                            break;
                        }
                    }
                }
                if whole && seen != model {
                    report(format!("scan: {} keys differ", differing(&model, &seen)));
                } else if !whole {
                    // What the scan gave before the error must be right.
                    if let Some((k, v)) = seen.iter().find(|(k, v)| model.get(*k) != Some(v)) {
                        report(format!(
                            "scan gave {} = {:?} before failing",
                            String::from_utf8_lossy(k),
                            String::from_utf8_lossy(v)
                        ));
                    }
                }
                for (k, v) in &model {
                    match r.get(k) {
                        Ok(Some(got)) if got == &v[..] => {}
                        Ok(got) => report(format!(
                            "get({}) = {:?}",
                            String::from_utf8_lossy(k),
                            got.map(|g| String::from_utf8_lossy(g).into_owned())
                        )),
                        Err(e) => failed(e),
                    }
                }
            }
        }
        rounds += 1;
        if rounds == 1 {
            common::say("sweep-ready").unwrap();
        }
        if stop.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    common::say(&format!(
        "sweep-done rounds={rounds} errors={} wrong={wrong}",
        errors.load(Ordering::Relaxed)
    ))
    .unwrap();
}

#[test]
fn bit_flips_give_the_right_data_or_a_clear_error() {
    let seed: u64 = std::env::var("SCRIBEDB_SWEEP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    let trials: u32 = std::env::var("SCRIBEDB_SWEEP_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let strict = std::env::var_os("SCRIBEDB_SWEEP_STRICT_READER").is_some();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    build(&base);
    let (model, before_last) = models();
    let prefixes = prefix_models();
    // A trial that takes this long has hung: say so rather than wait.
    let trial_started = Arc::new(AtomicU64::new(u64::MAX));
    let watched = trial_started.clone();
    let epoch = Instant::now();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        let at = watched.load(Ordering::SeqCst);
        if at != u64::MAX && epoch.elapsed().as_secs() > at + 300 {
            eprintln!("seed {seed}: HANG: a trial has run for 300 s");
            std::process::abort();
        }
    });
    let mut table: BTreeMap<(&str, usize, Way), [u32; 6]> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut n = 0;
    for kind in ["log", "segment", "manifest"] {
        for flips in [1usize, 8, 64] {
            for way in [Way::SameBoot, Way::Reboot, Way::WithReader, Way::EveryRead] {
                for trial in 0..trials {
                    n += 1;
                    trial_started.store(epoch.elapsed().as_secs(), Ordering::SeqCst);
                    let dir = tmp.path().join(format!("t{n}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    for e in std::fs::read_dir(&base).unwrap().flatten() {
                        common::sparse_copy(&e.path(), &dir.join(e.file_name()), None);
                    }
                    let candidates = files(&dir, kind);
                    assert!(!candidates.is_empty(), "no {kind} file to damage");
                    let victim = candidates[rng.random_range(0..candidates.len())].clone();
                    let coord = match (way, trial % 2) {
                        (Way::Reboot, _) => CoordFlips::None,
                        (Way::SameBoot, 0) => CoordFlips::Anywhere,
                        (Way::SameBoot, _) => CoordFlips::Fields,
                        (Way::WithReader | Way::EveryRead, 0) => CoordFlips::None,
                        (Way::WithReader | Way::EveryRead, _) => CoordFlips::Anywhere,
                    };
                    let reader = matches!(way, Way::WithReader | Way::EveryRead);
                    let (outcome, problem) = if reader {
                        let every_read = way == Way::EveryRead;
                        reader_trial(&dir, &victim, flips, coord, every_read, &mut rng)
                    } else {
                        let used = used_len(&victim);
                        let flipped: Vec<u64> = (0..flips)
                            .map(|_| flip_one(&victim, used, &mut rng))
                            .collect();
                        let hit = coord.apply(&dir, flips, &mut rng);
                        // Flips in the durable end, or in what makes the
                        // header unreadable (magic, version, sizes, state).
                        let durable_end_hit = hit.iter().any(|&at| {
                            at < 40 || (OFF_WAL_SYNCED..OFF_WAL_SYNCED + 8).contains(&at)
                        });
                        if way == Way::Reboot {
                            common::simulate_reboot(&dir);
                        }
                        let last_file = files(&dir, "log").last() == Some(&victim);
                        let tail_hit = match (kind, last_file) {
                            ("log", true) => {
                                damaged_tail(&base.join(victim.file_name().unwrap()), &flipped)
                            }
                            _ => 0,
                        };
                        let (outcome, problem) =
                            closed_trial(&dir, way, durable_end_hit, &model, &before_last);
                        // Commits lost at the end of the log, every one of
                        // whose records was damaged, with nothing intact
                        // after them: after a reboot nothing tells them from
                        // a torn tail of commits never synced.
                        let lost = lost_tail(&dir, &prefixes);
                        match lost {
                            Some(k)
                                if outcome == Outcome::Wrong
                                    && k <= tail_hit
                                    && (way == Way::Reboot || durable_end_hit) =>
                            {
                                (Outcome::LastCommitLost, None)
                            }
                            _ => (outcome, problem),
                        }
                    };
                    let row = table.entry((kind, flips, way)).or_insert([0; 6]);
                    row[OUTCOMES.iter().position(|(o, _)| *o == outcome).unwrap()] += 1;
                    // Known limitation (see the module doc): bytes changed in
                    // place under a reader after it checked them.
                    let known = reader && outcome == Outcome::Wrong && !strict;
                    if let Some(problem) = problem.filter(|_| !known) {
                        failures.push(format!(
                            "{kind} {flips} flips {way:?} coord {coord:?} ({}): {outcome:?}: {problem}",
                            victim.file_name().unwrap().to_string_lossy()
                        ));
                    }
                    std::fs::remove_dir_all(&dir).unwrap();
                }
            }
        }
    }
    trial_started.store(u64::MAX, Ordering::SeqCst);
    eprintln!("seed {seed}, {trials} trials per row:");
    let mut header = format!("  {:8} {:>5} {:11}", "file", "flips", "way");
    for (_, name) in OUTCOMES {
        header.push_str(&format!(" {name:>9}"));
    }
    eprintln!("{header}");
    for ((kind, flips, way), counts) in &table {
        let mut line = format!("  {kind:8} {flips:>5} {:11}", format!("{way:?}"));
        for c in counts {
            line.push_str(&format!(" {c:>9}"));
        }
        eprintln!("{line}");
    }
    for f in failures.iter().take(20) {
        eprintln!("FAILED: {f}");
    }
    assert!(
        failures.is_empty(),
        "seed {seed}: {} trials failed (first: {})",
        failures.len(),
        failures[0]
    );
}
