//! Multi-process benchmarks: point-read throughput of several reader
//! processes while one writer process commits, commit-to-visible latency
//! across processes, and the cost of beginning a read transaction.
//!
//! ```text
//! cargo bench -p scribedb --bench multiprocess
//! SCRIBEDB_BENCH_KEYS=200000 cargo bench -p scribedb --bench multiprocess
//! ```
//!
//! The number of keys comes from `SCRIBEDB_BENCH_KEYS` (default 1,000,000),
//! the length of each measurement window from `SCRIBEDB_BENCH_WINDOW_MS`
//! (default 3000). Keys are 24 random bytes, values 150 random bytes, from
//! a fixed seed. The program prints a table and never asserts on timings.
//! When it is run without `--bench` (as `cargo test --all-targets` does), it
//! runs a quick smoke pass over a small database instead.
//!
//! The program re-runs itself as the child processes: `SCRIBEDB_BENCH_ROLE`
//! selects the role. A child opens the database, prints `ready`, waits for
//! `go <start> <end>` on stdin (times in CLOCK_MONOTONIC nanoseconds, which
//! every process on the machine shares), works from `start` to `end`, and
//! prints `result name=value ...`. Children are killed when the parent drops
//! them, whether it finished or failed.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scribedb::{Database, Durability};

#[path = "support/mod.rs"]
mod support;
use support::*;

const DEFAULT_KEYS: usize = 1_000_000;
const DEFAULT_WINDOW_MS: u64 = 3_000;
/// Reader processes in the throughput section.
const READER_COUNTS: [usize; 3] = [1, 2, 4];
/// Point gets per read transaction in the throughput section.
const GETS_PER_TXN: u64 = 100;
/// The key whose value is the writer's clock just before each commit.
const CLOCK_KEY: &[u8] = b"clock";
/// Time between sending `go` and the start of a window, so that every child
/// has read its line before the clock starts.
const GO_DELAY: Duration = Duration::from_millis(50);

const ROLE_VAR: &str = "SCRIBEDB_BENCH_ROLE";
const DB_VAR: &str = "SCRIBEDB_BENCH_CHILD_DB";
const KEYS_VAR: &str = "SCRIBEDB_BENCH_CHILD_KEYS";
const DURABILITY_VAR: &str = "SCRIBEDB_BENCH_CHILD_DURABILITY";
const SEED_VAR: &str = "SCRIBEDB_BENCH_CHILD_SEED";

/// How much work each section does.
struct Plan {
    keys: usize,
    /// Length of each multi-process measurement window.
    window: Duration,
    /// Iterations of the begin_read loops (per thread).
    txn_loops: usize,
}

fn env_number(name: &str) -> BenchResult<Option<u64>> {
    match std::env::var(name) {
        Ok(s) => {
            let digits: String = s.chars().filter(|c| !matches!(c, '_' | ',')).collect();
            let v = digits
                .trim()
                .parse::<u64>()
                .map_err(|e| format!("{name}={s:?}: {e}"))?;
            Ok(Some(v.max(1)))
        }
        Err(_) => Ok(None),
    }
}

impl Plan {
    fn new(full: bool) -> BenchResult<Plan> {
        let keys = env_number("SCRIBEDB_BENCH_KEYS")?.map(|k| k as usize);
        let window_ms = env_number("SCRIBEDB_BENCH_WINDOW_MS")?;
        Ok(if full {
            Plan {
                keys: keys.unwrap_or(DEFAULT_KEYS),
                window: Duration::from_millis(window_ms.unwrap_or(DEFAULT_WINDOW_MS)),
                txn_loops: 1_000_000,
            }
        } else {
            Plan {
                keys: keys.unwrap_or(2_000).min(20_000),
                window: Duration::from_millis(window_ms.unwrap_or(150).min(500)),
                txn_loops: 20_000,
            }
        })
    }
}

// ---- clock ----------------------------------------------------------------

fn clock_ns(clock: libc::clockid_t) -> u64 {
    // SAFETY: an all-zero timespec is a valid value of a plain C struct.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid, writable timespec for the call to fill in.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime({clock}) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the
/// machine, unlike `Instant`, which cannot be sent to another process.
fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CPU time this process has used (all threads), in nanoseconds.
fn process_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time the calling thread has used, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn sleep_until_ns(t: u64) {
    let now = now_ns();
    if t > now {
        std::thread::sleep(Duration::from_nanos(t - now));
    }
}

// ---- output ---------------------------------------------------------------

fn per_sec(count: u64, elapsed_ns: u64) -> f64 {
    count as f64 * 1e9 / elapsed_ns.max(1) as f64
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// One line of the reader-throughput table.
fn throughput_row(cols: [&str; 9]) {
    let [a, b, c, d, e, f, g, h, i] = cols;
    println!("  {a:>7} {b:>13} {c:>13} {d:>7} {e:>11} {f:>13} {g:>16} {h:>11} {i:>13}");
}

/// Nearest-rank percentile of sorted samples, `p` in 0..=100.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---- data -----------------------------------------------------------------

/// The loaded keys: the first `n` keys drawn from the fixed seed. Children
/// regenerate them instead of receiving them.
fn loaded_keys(n: usize) -> (Vec<Key>, StdRng) {
    let mut rng = StdRng::seed_from_u64(SEED);
    let keys = (0..n).map(|_| random_key(&mut rng)).collect();
    (keys, rng)
}

fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Immediate => "immediate",
        Durability::Eventual => "eventual",
        Durability::None => "none",
    }
}

fn parse_durability(s: &str) -> BenchResult<Durability> {
    Ok(match s {
        "immediate" => Durability::Immediate,
        "eventual" => Durability::Eventual,
        "none" => Durability::None,
        other => return Err(format!("unknown durability {other:?}").into()),
    })
}

// ---- child processes: parent side -----------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Random point gets, a fresh read transaction every `GETS_PER_TXN`.
    Reader,
    /// Single-key durable commits plus the clock key, back to back.
    Writer,
    /// Polls the clock key and measures how old each new value is.
    Latency,
    /// Single-key commits plus the clock key, one every `PACE`, so that a
    /// waiter is asleep when each lands.
    PacedWriter,
    /// Sleeps in `wait_for_commit`, and measures how old the clock key is
    /// when it wakes.
    Waiter,
}

/// Time between the paced writer's commits.
const PACE: Duration = Duration::from_millis(2);

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Latency => "latency",
            Role::PacedWriter => "paced-writer",
            Role::Waiter => "waiter",
        }
    }

    fn parse(s: &str) -> BenchResult<Role> {
        Ok(match s {
            "reader" => Role::Reader,
            "writer" => Role::Writer,
            "latency" => Role::Latency,
            "paced-writer" => Role::PacedWriter,
            "waiter" => Role::Waiter,
            other => return Err(format!("unknown child role {other:?}").into()),
        })
    }
}

/// The figures a child reports.
type Report = HashMap<String, u64>;

fn field(report: &Report, name: &str) -> BenchResult<u64> {
    report
        .get(name)
        .copied()
        .ok_or_else(|| format!("child report lacks {name:?}").into())
}

/// A child process, killed and reaped when dropped.
struct Kid {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Kid {
    fn spawn(
        role: Role,
        db: &Path,
        keys: usize,
        durability: Durability,
        seed: u64,
    ) -> BenchResult<Kid> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(ROLE_VAR, role.name())
            .env(DB_VAR, db)
            .env(KEYS_VAR, keys.to_string())
            .env(DURABILITY_VAR, durability_name(durability))
            .env(SEED_VAR, seed.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        Ok(Kid {
            name: format!("{} {}", role.name(), child.id()),
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The rest of the next line the child prints that starts with `tag`.
    fn expect(&mut self, tag: &str) -> BenchResult<String> {
        for line in self.lines.by_ref() {
            if let Some(rest) = line?.strip_prefix(tag) {
                return Ok(rest.trim().to_string());
            }
        }
        Err(format!("child {} exited before printing {tag:?}", self.name).into())
    }

    fn say(&mut self, line: &str) -> BenchResult {
        let stdin = self.stdin.as_mut().ok_or("child stdin closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Wait for the child to exit on its own; an error unless it succeeded.
    fn finish(mut self) -> BenchResult {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("child {} exited with {status}", self.name).into());
        }
        Ok(())
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        // Never leave a child running, whatever path got us here.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run one measurement window: wait until every child is ready, start them
/// all on the same clock, collect their reports and let them exit.
fn run_window(mut kids: Vec<Kid>, window: Duration) -> BenchResult<Vec<Report>> {
    for kid in &mut kids {
        kid.expect("ready")?;
    }
    let start = now_ns() + GO_DELAY.as_nanos() as u64;
    let end = start + window.as_nanos() as u64;
    for kid in &mut kids {
        kid.say(&format!("go {start} {end}"))?;
    }
    let mut reports = Vec::with_capacity(kids.len());
    for kid in &mut kids {
        let line = kid.expect("result")?;
        let mut report = Report::new();
        for pair in line.split_whitespace() {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("bad report field {pair:?} from {}", kid.name))?;
            report.insert(k.to_string(), v.parse()?);
        }
        reports.push(report);
    }
    for kid in kids {
        kid.finish()?;
    }
    Ok(reports)
}

// ---- child processes: child side ------------------------------------------

fn child_var(name: &str) -> BenchResult<String> {
    std::env::var(name).map_err(|e| format!("{name}: {e}").into())
}

fn say(line: std::fmt::Arguments<'_>) -> BenchResult {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

fn say_result(fields: &[(&str, u64)]) -> BenchResult {
    let text: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    say(format_args!("result {}", text.join(" ")))
}

/// Map every page of the version store into this process, so the window
/// measures steady-state reads rather than first-touch page faults.
fn warm_up(db: &Database) -> BenchResult {
    let r = db.begin_read()?;
    let mut bytes = 0usize;
    for kv in r.iter() {
        let (k, v) = kv?;
        bytes += k.len() + v.len();
    }
    black_box(bytes);
    Ok(())
}

fn child_main(role: &str) -> BenchResult {
    let role = Role::parse(role)?;
    let path = PathBuf::from(child_var(DB_VAR)?);
    let n: usize = child_var(KEYS_VAR)?.parse()?;
    let durability = parse_durability(&child_var(DURABILITY_VAR)?)?;
    let seed: u64 = child_var(SEED_VAR)?.parse()?;
    let db = open(&path, durability)?;
    let keys = match role {
        Role::Reader | Role::Writer | Role::PacedWriter => {
            warm_up(&db)?;
            loaded_keys(n).0
        }
        Role::Latency | Role::Waiter => Vec::new(),
    };
    let mut rng = StdRng::seed_from_u64(SEED ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    say(format_args!("ready"))?;

    let mut line = String::new();
    if std::io::stdin().read_line(&mut line)? == 0 {
        return Ok(()); // The parent went away before the window.
    }
    let mut words = line.split_whitespace();
    let (start, end) = match (words.next(), words.next(), words.next()) {
        (Some("go"), Some(s), Some(e)) => (s.parse::<u64>()?, e.parse::<u64>()?),
        _ => return Err(format!("expected `go <start> <end>`, got {line:?}").into()),
    };
    sleep_until_ns(start);
    match role {
        Role::Reader => read_loop(&db, &keys, &mut rng, end),
        Role::Writer => write_loop(&db, &keys, &mut rng, end, None),
        Role::PacedWriter => write_loop(&db, &keys, &mut rng, end, Some(PACE)),
        Role::Latency => latency_loop(&db, end),
        Role::Waiter => wait_loop(&db, end),
    }
}

fn read_loop(db: &Database, keys: &[Key], rng: &mut StdRng, end: u64) -> BenchResult {
    let (mut gets, mut found, mut txns) = (0u64, 0u64, 0u64);
    let cpu0 = process_cpu_ns();
    let t0 = now_ns();
    let mut t = t0;
    while t < end {
        let r = db.begin_read()?;
        for _ in 0..GETS_PER_TXN {
            let key = &keys[rng.random_range(0..keys.len())];
            if let Some(v) = r.get(key)? {
                found += 1;
                black_box(v);
            }
        }
        drop(r);
        gets += GETS_PER_TXN;
        txns += 1;
        t = now_ns();
    }
    say_result(&[
        ("gets", gets),
        ("found", found),
        ("txns", txns),
        ("elapsed_ns", t - t0),
        ("cpu_ns", process_cpu_ns() - cpu0),
    ])
}

fn write_loop(
    db: &Database,
    keys: &[Key],
    rng: &mut StdRng,
    end: u64,
    pace: Option<Duration>,
) -> BenchResult {
    // Time from the clock stamp to the return of commit(): the writer's part
    // of the commit-to-visible latency.
    let mut commit_ns = Vec::new();
    let cpu0 = process_cpu_ns();
    let t0 = now_ns();
    let mut t = t0;
    while t < end {
        let key = &keys[rng.random_range(0..keys.len())];
        let value = random_value(rng);
        let mut w = db.begin_write()?;
        w.put(key, value)?;
        let stamp = now_ns();
        w.put(CLOCK_KEY, stamp.to_le_bytes())?;
        w.commit()?;
        t = now_ns();
        commit_ns.push(t - stamp);
        if let Some(pace) = pace {
            sleep_until_ns(stamp + pace.as_nanos() as u64);
        }
    }
    let cpu = process_cpu_ns() - cpu0;
    let commits = commit_ns.len() as u64;
    commit_ns.sort_unstable();
    say_result(&[
        ("commits", commits),
        ("elapsed_ns", t - t0),
        ("cpu_ns", cpu),
        ("commit_p50_ns", percentile(&commit_ns, 50.0)),
        ("commit_p99_ns", percentile(&commit_ns, 99.0)),
    ])
}

fn clock_value(db: &Database) -> BenchResult<(Option<u64>, u64)> {
    let r = db.begin_read()?;
    let value = match r.get(CLOCK_KEY)? {
        Some(v) => {
            Some(u64::from_le_bytes(v.try_into().map_err(|_| {
                format!("clock value has {} bytes, not 8", v.len())
            })?))
        }
        None => None,
    };
    // Read the clock while the transaction is still open: this is the
    // moment the value was seen.
    Ok((value, now_ns()))
}

fn latency_loop(db: &Database, end: u64) -> BenchResult {
    let mut samples = Vec::new();
    let mut polls = 0u64;
    // The value left by earlier commits is not a change.
    let (mut last, t0) = clock_value(db)?;
    let mut t = t0;
    while t < end {
        let (value, seen) = clock_value(db)?;
        polls += 1;
        t = seen;
        if value != last {
            if let Some(stamp) = value {
                samples.push(seen.saturating_sub(stamp));
            }
            last = value;
        }
    }
    samples.sort_unstable();
    say_result(&[
        ("polls", polls),
        ("changes", samples.len() as u64),
        ("elapsed_ns", t - t0),
        ("p50_ns", percentile(&samples, 50.0)),
        ("p99_ns", percentile(&samples, 99.0)),
        ("max_ns", samples.last().copied().unwrap_or(0)),
    ])
}

fn wait_loop(db: &Database, end: u64) -> BenchResult {
    let mut samples = Vec::new();
    let (mut last, t0) = clock_value(db)?;
    let mut seen = db.committed_ts();
    let mut t = t0;
    while t < end {
        let left = Duration::from_nanos(end.saturating_sub(t));
        let Some(ts) = db.wait_for_commit(seen, left)? else {
            break;
        };
        let woke = now_ns();
        seen = ts;
        let (value, _) = clock_value(db)?;
        if value != last {
            if let Some(stamp) = value {
                samples.push(woke.saturating_sub(stamp));
            }
            last = value;
        }
        t = now_ns();
    }
    samples.sort_unstable();
    say_result(&[
        ("wakes", samples.len() as u64),
        ("elapsed_ns", t - t0),
        ("p50_ns", percentile(&samples, 50.0)),
        ("p99_ns", percentile(&samples, 99.0)),
        ("max_ns", samples.last().copied().unwrap_or(0)),
    ])
}

// ---- main -----------------------------------------------------------------

fn main() -> BenchResult {
    if let Ok(role) = std::env::var(ROLE_VAR) {
        return child_main(&role);
    }
    let run_start = Instant::now();
    let full = std::env::args().any(|a| a == "--bench");
    let plan = Plan::new(full)?;
    let n = plan.keys;
    let cores = std::thread::available_parallelism().map_or(0, |c| c.get());

    println!("ScribeDB multi-process benchmark");
    println!(
        "  cores: {cores}   keys (N): {}   key: {KEY_LEN} B   value: {VALUE_LEN} B   seed: {SEED:#x}",
        fmt_num(n as f64, 0)
    );
    println!(
        "  measurement window: {} s per configuration; every child process scans the whole",
        fmt_num(plan.window.as_secs_f64(), 2)
    );
    println!("  database once before its window, to map the version store");
    if !full {
        println!("  quick smoke run (not started with --bench): tiny sizes, figures meaningless");
    }

    let (keys, mut rng) = loaded_keys(n);
    let values: Vec<Value> = (0..n).map(|_| random_value(&mut rng)).collect();
    let tmp = tempfile::Builder::new()
        .prefix("scribedb-bench-mp-")
        .tempdir()?;
    let db_path = tmp.path().join("db");
    // This handle stays open for the whole run, so children attach to a
    // shared database instead of recovering it.
    let db = open(&db_path, Durability::Immediate)?;

    // 1. Load.
    section("1. load: N puts in one write transaction (Durability::Immediate)");
    {
        let start = Instant::now();
        let mut w = db.begin_write()?;
        for (k, v) in keys.iter().zip(&values) {
            w.put(k, v)?;
        }
        w.commit()?;
        let total = start.elapsed();
        row("total", total.as_secs_f64(), 3, "s");
        row(
            "throughput",
            n as f64 / total.as_secs_f64().max(1e-12),
            0,
            "keys/s",
        );
    }
    drop(values);

    // 2. Reader processes next to one writer process.
    section(&format!(
        "2. R reader processes doing random point gets (a fresh read transaction every {GETS_PER_TXN})"
    ));
    println!(
        "   while ONE writer process commits 1 random key + the clock key (Durability::Immediate)"
    );
    throughput_row([
        "readers",
        "total gets/s",
        "gets/s/reader",
        "scaling",
        "reader CPUs",
        "gets/CPU-s",
        "writer commits/s",
        "writer CPUs",
        "commit p50 µs",
    ]);
    let mut single_reader_rate = None;
    let mut seed = 0u64;
    for readers in std::iter::once(0).chain(READER_COUNTS) {
        let mut kids = Vec::with_capacity(readers + 1);
        seed += 1;
        kids.push(Kid::spawn(
            Role::Writer,
            &db_path,
            n,
            Durability::Immediate,
            seed,
        )?);
        for _ in 0..readers {
            seed += 1;
            kids.push(Kid::spawn(
                Role::Reader,
                &db_path,
                n,
                Durability::Immediate,
                seed,
            )?);
        }
        let reports = run_window(kids, plan.window)?;
        let writer = &reports[0];
        let writer_elapsed = field(writer, "elapsed_ns")?;
        let commit_rate = per_sec(field(writer, "commits")?, writer_elapsed);
        let writer_cpus = field(writer, "cpu_ns")? as f64 / writer_elapsed.max(1) as f64;
        let commit_p50 = us(field(writer, "commit_p50_ns")?);
        let (mut total, mut reader_cpus, mut misses) = (0.0, 0.0, 0u64);
        let (mut all_gets, mut all_cpu_ns) = (0u64, 0u64);
        for r in &reports[1..] {
            let (gets, elapsed, cpu) = (
                field(r, "gets")?,
                field(r, "elapsed_ns")?,
                field(r, "cpu_ns")?,
            );
            total += per_sec(gets, elapsed);
            reader_cpus += cpu as f64 / elapsed.max(1) as f64;
            misses += gets - field(r, "found")?;
            all_gets += gets;
            all_cpu_ns += cpu;
        }
        let writer_columns = [
            fmt_num(commit_rate, 0),
            fmt_num(writer_cpus, 2),
            fmt_num(commit_p50, 1),
        ];
        let [wc, wu, wp] = writer_columns.each_ref().map(String::as_str);
        if readers == 0 {
            throughput_row(["0", "-", "-", "-", "-", "-", wc, wu, wp]);
            continue;
        }
        let base = *single_reader_rate.get_or_insert(total);
        let reader_columns = [
            readers.to_string(),
            fmt_num(total, 0),
            fmt_num(total / readers as f64, 0),
            format!("{}x", fmt_num(total / base, 2)),
            fmt_num(reader_cpus, 2),
            fmt_num(per_sec(all_gets, all_cpu_ns), 0),
        ];
        let [r0, r1, r2, r3, r4, r5] = reader_columns.each_ref().map(String::as_str);
        throughput_row([r0, r1, r2, r3, r4, r5, wc, wu, wp]);
        if misses > 0 {
            note(&format!("{misses} gets did not find their key"));
        }
    }
    note("CPUs: CPU time used in the window / window length, summed over processes");
    note("gets/CPU-s: gets per second of reader CPU time, flat while reads scale with CPUs");
    note(&format!(
        "{cores} cores, shared by the writer, the readers and whatever else the machine runs"
    ));

    // 3. Commit-to-visible latency.
    section("3. commit-to-visible latency: one reader process polls begin_read + get(\"clock\")");
    println!(
        "   while ONE writer process commits back to back; latency = reader's clock - writer's"
    );
    println!("   clock stamped just before commit()");
    println!(
        "  {:>10} {:>10} {:>10} {:>10} {:>10} {:>12} {:>11} {:>14}",
        "writer",
        "median µs",
        "p99 µs",
        "max µs",
        "changes",
        "polls/s",
        "commits/s",
        "commit p50 µs"
    );
    for durability in [Durability::Immediate, Durability::None] {
        seed += 1;
        let writer = Kid::spawn(Role::Writer, &db_path, n, durability, seed)?;
        seed += 1;
        let poller = Kid::spawn(Role::Latency, &db_path, n, durability, seed)?;
        let reports = run_window(vec![writer, poller], plan.window)?;
        let (w, p) = (&reports[0], &reports[1]);
        println!(
            "  {:>10} {:>10} {:>10} {:>10} {:>10} {:>12} {:>11} {:>14}",
            durability_name(durability),
            fmt_num(us(field(p, "p50_ns")?), 1),
            fmt_num(us(field(p, "p99_ns")?), 1),
            fmt_num(us(field(p, "max_ns")?), 1),
            fmt_num(field(p, "changes")? as f64, 0),
            fmt_num(per_sec(field(p, "polls")?, field(p, "elapsed_ns")?), 0),
            fmt_num(per_sec(field(w, "commits")?, field(w, "elapsed_ns")?), 0),
            fmt_num(us(field(w, "commit_p50_ns")?), 1),
        );
    }
    note("immediate: latency includes the fsync; none: publication only");
    note("changes < commits when the writer commits faster than the reader polls");

    // 3b. Commit-to-wake latency.
    section(&format!(
        "3b. commit-to-wake latency: one process sleeps in wait_for_commit while ONE writer \
         process commits every {} ms",
        PACE.as_millis()
    ));
    println!("   latency = waiter's clock on waking - writer's clock stamped just before commit()");
    println!(
        "  {:>10} {:>10} {:>10} {:>10} {:>10} {:>14} {:>18}",
        "writer", "median µs", "p99 µs", "max µs", "wakes", "commit p50 µs", "beyond commit µs"
    );
    for durability in [Durability::None, Durability::Immediate] {
        seed += 1;
        let writer = Kid::spawn(Role::PacedWriter, &db_path, n, durability, seed)?;
        seed += 1;
        let waiter = Kid::spawn(Role::Waiter, &db_path, n, durability, seed)?;
        let reports = run_window(vec![writer, waiter], plan.window)?;
        let (w, p) = (&reports[0], &reports[1]);
        let p50 = field(p, "p50_ns")?;
        let commit_p50 = field(w, "commit_p50_ns")?;
        println!(
            "  {:>10} {:>10} {:>10} {:>10} {:>10} {:>14} {:>18}",
            durability_name(durability),
            fmt_num(us(p50), 1),
            fmt_num(us(field(p, "p99_ns")?), 1),
            fmt_num(us(field(p, "max_ns")?), 1),
            fmt_num(field(p, "wakes")? as f64, 0),
            fmt_num(us(commit_p50), 1),
            fmt_num(us(p50.saturating_sub(commit_p50)), 1),
        );
    }
    note("beyond commit: median wake latency - median time for commit() to return");

    // 4. begin_read + drop.
    section(&format!(
        "4. begin_read + drop, {} iterations per thread, no writer",
        fmt_num(plan.txn_loops as f64, 0)
    ));
    {
        let loops = plan.txn_loops;
        let cpu0 = thread_cpu_ns();
        let start = Instant::now();
        for _ in 0..loops {
            black_box(db.begin_read()?);
        }
        let wall = start.elapsed();
        let cpu = Duration::from_nanos(thread_cpu_ns() - cpu0);
        row("1 thread, wall", ns_per(wall, loops), 1, "ns/iter");
        row("1 thread, CPU time", ns_per(cpu, loops), 1, "ns/iter");
        note("aim: under 200 ns; CPU time below wall time means the thread waited for a CPU");

        let second = open(&db_path, Durability::Immediate)?;
        for (label, handles) in [
            ("2 threads, one shared handle", [&db, &db]),
            ("2 threads, a handle each", [&db, &second]),
        ] {
            let (per_thread, wall) = concurrent_begin_read(handles, loops)?;
            let threads = per_thread.len() as f64;
            let mean = per_thread.iter().map(|t| t.0).sum::<f64>() / threads;
            let cpu = per_thread.iter().map(|t| t.0 * t.1).sum::<f64>() / threads;
            row(&format!("{label}: per thread, wall"), mean, 1, "ns/iter");
            row(&format!("{label}: per thread, CPU time"), cpu, 1, "ns/iter");
            row(
                &format!("{label}: together"),
                (2 * loops) as f64 / wall.as_secs_f64().max(1e-12) / 1e6,
                2,
                "M txns/s",
            );
        }
    }

    drop(db);
    println!();
    println!("total run time: {:.1} s", run_start.elapsed().as_secs_f64());
    Ok(())
}

/// begin_read + drop `loops` times on each handle, one thread per handle,
/// started together. Returns each thread's ns/iter and share of a CPU (its
/// CPU time over its wall time), and the time from the first thread's start
/// to the last one's end.
fn concurrent_begin_read(
    handles: [&Database; 2],
    loops: usize,
) -> BenchResult<(Vec<(f64, f64)>, Duration)> {
    let barrier = Barrier::new(handles.len());
    let runs: Vec<BenchResult<(Instant, Instant, u64)>> = std::thread::scope(|s| {
        let threads: Vec<_> = handles
            .iter()
            .map(|&db| {
                let barrier = &barrier;
                s.spawn(move || -> BenchResult<(Instant, Instant, u64)> {
                    barrier.wait();
                    let cpu0 = thread_cpu_ns();
                    let start = Instant::now();
                    for _ in 0..loops {
                        black_box(db.begin_read()?);
                    }
                    let end = Instant::now();
                    Ok((start, end, thread_cpu_ns() - cpu0))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("benchmark thread panicked"))
            .collect()
    });
    let mut per_thread = Vec::with_capacity(runs.len());
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for run in runs {
        let (start, end, cpu) = run?;
        let wall = end - start;
        per_thread.push((
            ns_per(wall, loops),
            cpu as f64 / wall.as_nanos().max(1) as f64,
        ));
        first = Some(first.map_or(start, |f| f.min(start)));
        last = Some(last.map_or(end, |l| l.max(end)));
    }
    let span = match (first, last) {
        (Some(f), Some(l)) => l - f,
        _ => Duration::ZERO,
    };
    Ok((per_thread, span))
}
