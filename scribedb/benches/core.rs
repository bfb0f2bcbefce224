//! Core benchmarks: bulk load, point reads, read-transaction overhead,
//! scans, commit latency (next to the disk's raw sync rate), group commit,
//! batch writes and unsynced commits.
//!
//! ```text
//! cargo bench -p scribedb --bench core
//! SCRIBEDB_BENCH_KEYS=200000 cargo bench -p scribedb --bench core
//! ```
//!
//! The number of keys comes from `SCRIBEDB_BENCH_KEYS` (default 1,000,000).
//! Keys are 24 random bytes, values 150 random bytes, from a fixed seed. The
//! program prints a table and never asserts on timings. When it is run
//! without `--bench` (as `cargo test --all-targets` does), it runs a quick
//! smoke pass over a small database instead.

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use scribedb::{Database, Durability};

#[path = "support/mod.rs"]
mod support;
use support::*;

const DEFAULT_KEYS: usize = 1_000_000;
const SYNC_BLOCK: usize = 4096;
const GROUP_THREADS: usize = 4;
const RANGE_LEN: usize = 10;

/// How much work each section does. Sections that touch the disk stop early
/// when their time budget runs out, and say so.
struct Plan {
    keys: usize,
    /// Iterations of the begin_read loops.
    txn_loops: usize,
    range_scans: usize,
    commits: usize,
    sync_ops: usize,
    group_commits_per_thread: usize,
    batches: usize,
    batch_size: usize,
    unsynced_commits: usize,
    /// Time budget of each section that syncs (or may be slow).
    budget: Duration,
}

impl Plan {
    fn new(full: bool) -> BenchResult<Plan> {
        let from_env = match std::env::var("SCRIBEDB_BENCH_KEYS") {
            Ok(s) => {
                let digits: String = s.chars().filter(|c| !matches!(c, '_' | ',')).collect();
                Some(
                    digits
                        .trim()
                        .parse::<usize>()
                        .map_err(|e| format!("SCRIBEDB_BENCH_KEYS={s:?}: {e}"))?
                        .max(1),
                )
            }
            Err(_) => None,
        };
        Ok(if full {
            let keys = from_env.unwrap_or(DEFAULT_KEYS);
            Plan {
                keys,
                txn_loops: keys.clamp(10_000, 1_000_000),
                range_scans: 200_000,
                commits: 2_000,
                sync_ops: 2_000,
                group_commits_per_thread: 1_000,
                batches: 100,
                batch_size: 1_000,
                unsynced_commits: 100_000,
                budget: Duration::from_secs(10),
            }
        } else {
            Plan {
                keys: from_env.unwrap_or(2_000).min(20_000),
                txn_loops: 2_000,
                range_scans: 1_000,
                commits: 20,
                sync_ops: 20,
                group_commits_per_thread: 10,
                batches: 3,
                batch_size: 100,
                unsynced_commits: 200,
                budget: Duration::from_secs(2),
            }
        })
    }
}

// ---- output ---------------------------------------------------------------

fn per_sec(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-12)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Latencies of individual operations.
struct Latencies {
    sorted: Vec<Duration>,
}

impl Latencies {
    fn new(mut samples: Vec<Duration>) -> Latencies {
        samples.sort_unstable();
        Latencies { sorted: samples }
    }

    fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Nearest-rank percentile, `p` in 0..=100.
    fn percentile(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    fn median(&self) -> Duration {
        self.percentile(50.0)
    }

    fn mean(&self) -> Duration {
        let total: Duration = self.sorted.iter().sum();
        total / self.sorted.len().max(1) as u32
    }
}

/// Run `op` up to `max_ops` times, stopping early once `budget` has passed.
/// Returns each call's latency and the wall time of the whole loop.
fn timed_ops(
    max_ops: usize,
    budget: Duration,
    mut op: impl FnMut(usize) -> BenchResult,
) -> BenchResult<(Latencies, Duration)> {
    let mut samples = Vec::with_capacity(max_ops);
    let start = Instant::now();
    for i in 0..max_ops {
        let t = Instant::now();
        op(i)?;
        samples.push(t.elapsed());
        if start.elapsed() >= budget {
            break;
        }
    }
    Ok((Latencies::new(samples), start.elapsed()))
}

fn capped_note(done: usize, planned: usize, budget: Duration) {
    if done < planned {
        note(&format!(
            "stopped after {done} of {planned} operations: time budget of {} s",
            budget.as_secs()
        ));
    }
}

// ---- data -----------------------------------------------------------------

/// Commit one fresh key per iteration; returns the latencies.
fn single_key_commits(
    db: &Database,
    rng: &mut StdRng,
    max_ops: usize,
    budget: Duration,
) -> BenchResult<(Latencies, Duration)> {
    timed_ops(max_ops, budget, |_| {
        let (k, v) = (random_key(rng), random_value(rng));
        let mut w = db.begin_write()?;
        w.put(k, v)?;
        w.commit()?;
        Ok(())
    })
}

// ---- main -----------------------------------------------------------------

/// Gets (in `order`) and a full scan of the database at `path`, each
/// value copied out, best of three with the read path's checksums off,
/// on (each segment block checked once per process, the default) and on
/// at every read (`Builder::verify_every_read`), in turn, each on a handle
/// opened fresh (so segment blocks start unverified).
fn verification_cost(path: &Path, keys: &[Key], order: &[usize], what: &str) -> BenchResult {
    const MODES: [&str; 3] = ["checksums off", "checked once", "every read"];
    let mut best = [(Duration::MAX, Duration::MAX); 3];
    for round in 0..3 * MODES.len() {
        let mode = round % MODES.len();
        scribedb::faults::set_read_verification(mode != 0);
        let handle = Database::builder()
            .durability(Durability::Immediate)
            .verify_every_read(mode == 2)
            .open(path)?;
        let r = handle.begin_read()?;
        // Every value is copied out, as a caller that uses it reads it:
        // the checksum's own cost is then measured, not the cache misses
        // of bytes nobody else would have touched.
        let mut buf = Vec::with_capacity(VALUE_LEN);
        let start = Instant::now();
        for &i in order {
            if let Some(v) = r.get(keys[i])? {
                buf.clear();
                buf.extend_from_slice(v);
                black_box(&buf);
            }
        }
        let gets = start.elapsed();
        let start = Instant::now();
        for kv in r.iter() {
            let (_, v) = kv?;
            buf.clear();
            buf.extend_from_slice(v);
            black_box(&buf);
        }
        let scan = start.elapsed();
        let b = &mut best[mode];
        *b = (b.0.min(gets), b.1.min(scan));
    }
    scribedb::faults::set_read_verification(true);
    let n = order.len();
    for (mode, (gets, scan)) in MODES.iter().zip(best) {
        row(
            &format!("{what}, {mode}: point gets"),
            per_sec(n, gets),
            0,
            "gets/s",
        );
        row(
            &format!("{what}, {mode}: full scan"),
            per_sec(keys.len(), scan),
            0,
            "keys/s",
        );
    }
    let off = best[0];
    for (mode, (gets, scan)) in MODES.iter().zip(best).skip(1) {
        row(
            &format!("{what}: gets, time {mode} / checksums off"),
            gets.as_secs_f64() / off.0.as_secs_f64(),
            3,
            "x",
        );
        row(
            &format!("{what}: scan, time {mode} / checksums off"),
            scan.as_secs_f64() / off.1.as_secs_f64(),
            3,
            "x",
        );
    }
    Ok(())
}

fn main() -> BenchResult {
    let run_start = Instant::now();
    let full = std::env::args().any(|a| a == "--bench");
    let plan = Plan::new(full)?;
    let n = plan.keys;
    let cores = std::thread::available_parallelism().map_or(0, |c| c.get());

    println!("ScribeDB core benchmark");
    println!(
        "  cores: {cores}   keys (N): {}   key: {KEY_LEN} B   value: {VALUE_LEN} B   seed: {SEED:#x}",
        fmt_num(n as f64, 0)
    );
    println!(
        "  sections that sync stop early after {} s each (noted where that happens)",
        plan.budget.as_secs()
    );
    if !full {
        println!("  quick smoke run (not started with --bench): tiny sizes, figures meaningless");
    }

    let mut rng = StdRng::seed_from_u64(SEED);
    let keys: Vec<Key> = (0..n).map(|_| random_key(&mut rng)).collect();
    let values: Vec<Value> = (0..n).map(|_| random_value(&mut rng)).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);

    let tmp = tempfile::Builder::new()
        .prefix("scribedb-bench-")
        .tempdir()?;
    let db_path = tmp.path().join("db");
    let db = open(&db_path, Durability::Immediate)?;

    // 1. Bulk load.
    section("1. bulk load: N puts in one write transaction (Durability::Immediate)");
    let start = Instant::now();
    let mut w = db.begin_write()?;
    for (k, v) in keys.iter().zip(&values) {
        w.put(k, v)?;
    }
    let buffered = start.elapsed();
    w.commit()?;
    let total = start.elapsed();
    row("total", total.as_secs_f64(), 3, "s");
    row("throughput", per_sec(n, total), 0, "keys/s");
    row(
        "data rate (key + value bytes)",
        (n * (KEY_LEN + VALUE_LEN)) as f64 / 1e6 / total.as_secs_f64(),
        1,
        "MB/s",
    );
    row(
        "  of which put() calls (buffering)",
        buffered.as_secs_f64(),
        3,
        "s",
    );
    row(
        "  of which commit()",
        (total - buffered).as_secs_f64(),
        3,
        "s",
    );

    // 2. Point gets in one read transaction.
    section("2. point get, random order, all in ONE read transaction");
    {
        let r = db.begin_read()?;
        for run in 1..=2 {
            let start = Instant::now();
            let mut found = 0usize;
            for &i in &order {
                if let Some(v) = r.get(keys[i])? {
                    found += 1;
                    black_box(v);
                }
            }
            let elapsed = start.elapsed();
            row(
                &format!("run {run}: latency"),
                ns_per(elapsed, n),
                1,
                "ns/get",
            );
            row(
                &format!("run {run}: throughput"),
                per_sec(n, elapsed),
                0,
                "gets/s",
            );
            if found != n {
                note(&format!("only {found} of {n} keys found"));
            }
        }
    }

    // 2b. What the read path's checksums cost.
    section("2b. read-path verification: the same gets and a full scan with checksums off, checked once, and checked at every read");
    {
        let stats = db.stats()?;
        note(&format!(
            "this database: {} segments (blocks verified once per process), memtable {} MiB",
            stats.segments,
            stats.memtable_bytes >> 20
        ));
        verification_cost(&db_path, &keys, &order, "segments")?;
        // A database small enough to stay in its memtable: values of
        // 64 bytes or more live in the log and are checked on every read.
        let small = (n / 5).max(1);
        let mem_path = tmp.path().join("memtable-only");
        {
            let mem = open(&mem_path, Durability::None)?;
            let mut w = mem.begin_write()?;
            for i in 0..small {
                w.put(keys[i], values[i])?;
            }
            w.commit()?;
            note(&format!(
                "a second database of {} keys: {} segments, memtable {} MiB (values in the log)",
                fmt_num(small as f64, 0),
                mem.stats()?.segments,
                mem.stats()?.memtable_bytes >> 20
            ));
        }
        let mem_order: Vec<usize> = order.iter().copied().filter(|&i| i < small).collect();
        verification_cost(&mem_path, &keys[..small], &mem_order, "memtable")?;
        note("best of three runs each, alternating; each run on a handle opened fresh");
    }

    // 3. Read-transaction overhead.
    section("3. read transaction overhead");
    {
        let loops = plan.txn_loops;
        let start = Instant::now();
        for j in 0..loops {
            let r = db.begin_read()?;
            black_box(r.get(keys[order[j % n]])?.map(|v| v.len()));
            drop(r);
        }
        let with_get = start.elapsed();
        let start = Instant::now();
        for _ in 0..loops {
            black_box(db.begin_read()?);
        }
        let bare = start.elapsed();
        row(
            "begin_read + one get + drop",
            ns_per(with_get, loops),
            1,
            "ns/iter",
        );
        row("begin_read + drop", ns_per(bare, loops), 1, "ns/iter");
        note(&format!("{} iterations each", fmt_num(loops as f64, 0)));
    }

    // 4. Scans.
    section("4. scans");
    {
        let r = db.begin_read()?;
        let start = Instant::now();
        let (mut count, mut bytes) = (0usize, 0usize);
        for kv in r.iter() {
            let (k, v) = kv?;
            count += 1;
            bytes += k.len() + v.len();
            black_box((k, v));
        }
        let elapsed = start.elapsed();
        row("full forward scan", per_sec(count, elapsed), 0, "keys/s");
        row(
            "full forward scan (key + value bytes)",
            bytes as f64 / 1e6 / elapsed.as_secs_f64(),
            1,
            "MB/s",
        );
        row("full forward scan: total", millis(elapsed), 1, "ms");
        if count != n {
            note(&format!("forward scan saw {count} keys, expected {n}"));
        }

        let want = (n / 10).max(1);
        let start = Instant::now();
        let mut count = 0usize;
        for kv in r.iter().rev().take(want) {
            black_box(kv?);
            count += 1;
        }
        let elapsed = start.elapsed();
        row(
            "reverse scan of the last 10% of keys",
            per_sec(count, elapsed),
            0,
            "keys/s",
        );
        row("reverse scan: per key", ns_per(elapsed, count), 1, "ns/key");
        if count != want {
            note(&format!("reverse scan saw {count} keys, expected {want}"));
        }
    }

    // 5. Short range scans.
    section(&format!(
        "5. range scans of {RANGE_LEN} entries from {} random start keys (one read transaction)",
        fmt_num(plan.range_scans as f64, 0)
    ));
    {
        let r = db.begin_read()?;
        let starts: Vec<Key> = (0..plan.range_scans)
            .map(|_| random_key(&mut rng))
            .collect();
        let start = Instant::now();
        let mut entries = 0usize;
        for s in &starts {
            for kv in r.range(s.as_slice()..).take(RANGE_LEN) {
                black_box(kv?);
                entries += 1;
            }
        }
        let elapsed = start.elapsed();
        row("throughput", per_sec(starts.len(), elapsed), 0, "scans/s");
        row("latency", ns_per(elapsed, starts.len()), 1, "ns/scan");
        row(
            "entries per scan (average)",
            entries as f64 / starts.len().max(1) as f64,
            2,
            "entries",
        );
    }

    // 6. Single-key commits next to the raw sync rate of the disk.
    section(&format!(
        "6. {} single-key commits into the loaded database (Durability::Immediate) vs raw fdatasync",
        fmt_num(plan.commits as f64, 0)
    ));
    let (raw_append, raw_overwrite) = raw_sync_rates(tmp.path(), &plan, &mut rng)?;
    let (lat, wall) = single_key_commits(&db, &mut rng, plan.commits, plan.budget)?;
    let commit_rate = per_sec(lat.len(), wall);
    row("scribedb commit: throughput", commit_rate, 0, "commits/s");
    row("scribedb commit: median", micros(lat.median()), 1, "µs");
    row(
        "scribedb commit: p99",
        micros(lat.percentile(99.0)),
        1,
        "µs",
    );
    capped_note(lat.len(), plan.commits, plan.budget);
    row(
        "ratio: commit rate / raw in-place sync rate (b)",
        commit_rate / raw_overwrite,
        2,
        "x",
    );
    row(
        "ratio: commit rate / raw append sync rate (a)",
        commit_rate / raw_append,
        2,
        "x",
    );
    // The disk's speed drifts between the runs above; alternating one raw
    // in-place sync and one commit compares them at the same moments.
    let (raw, ours) = interleaved_commits(&db, tmp.path(), &mut rng, plan.commits.min(1000))?;
    row(
        "interleaved: raw in-place sync median",
        micros(raw.median()),
        1,
        "µs",
    );
    row(
        "interleaved: scribedb commit median",
        micros(ours.median()),
        1,
        "µs",
    );
    row(
        "interleaved: raw sync median / commit median",
        raw.median().as_secs_f64() / ours.median().as_secs_f64().max(1e-12),
        2,
        "x",
    );

    // 7. Group commit.
    section(&format!(
        "7. group commit: {GROUP_THREADS} threads x {} single-key Immediate commits, one handle",
        fmt_num(plan.group_commits_per_thread as f64, 0)
    ));
    {
        let per_thread = plan.group_commits_per_thread;
        let start = Instant::now();
        let results: Vec<BenchResult<Vec<Duration>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..GROUP_THREADS)
                .map(|t| {
                    let db = &db;
                    let budget = plan.budget;
                    s.spawn(move || -> BenchResult<Vec<Duration>> {
                        let mut rng = StdRng::seed_from_u64(SEED ^ (0x100 + t as u64));
                        let (lat, _) = single_key_commits(db, &mut rng, per_thread, budget)?;
                        Ok(lat.sorted)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("benchmark thread panicked"))
                .collect()
        });
        let wall = start.elapsed();
        let mut all = Vec::new();
        for r in results {
            all.extend(r?);
        }
        let lat = Latencies::new(all);
        let group_rate = per_sec(lat.len(), wall);
        row("total throughput", group_rate, 0, "commits/s");
        row("per-commit median", micros(lat.median()), 1, "µs");
        row("per-commit p99", micros(lat.percentile(99.0)), 1, "µs");
        row(
            "speed-up over one thread (section 6)",
            group_rate / commit_rate,
            2,
            "x",
        );
        row(
            "commits per raw in-place sync (b)",
            group_rate / raw_overwrite,
            2,
            "x",
        );
        note("above 1 means commits share syncs");
        capped_note(lat.len(), per_thread * GROUP_THREADS, plan.budget);
    }

    // 8. Batch writes.
    section(&format!(
        "8. batch writes: {} transactions of {} random inserts into the loaded database",
        plan.batches, plan.batch_size
    ));
    {
        let batches: Vec<Vec<(Key, Value)>> = (0..plan.batches)
            .map(|_| {
                (0..plan.batch_size)
                    .map(|_| (random_key(&mut rng), random_value(&mut rng)))
                    .collect()
            })
            .collect();
        let (lat, wall) = timed_ops(batches.len(), plan.budget, |i| {
            let mut w = db.begin_write()?;
            for (k, v) in &batches[i] {
                w.put(k, v)?;
            }
            w.commit()?;
            Ok(())
        })?;
        row("mean", millis(lat.mean()), 3, "ms/txn");
        row("median", millis(lat.median()), 3, "ms/txn");
        row("p99", millis(lat.percentile(99.0)), 3, "ms/txn");
        row(
            "insert throughput",
            per_sec(lat.len() * plan.batch_size, wall),
            0,
            "keys/s",
        );
        capped_note(lat.len(), batches.len(), plan.budget);
    }

    // 9. Unsynced commits.
    section(&format!(
        "9. {} single-key commits, Durability::None (second handle, same database)",
        fmt_num(plan.unsynced_commits as f64, 0)
    ));
    {
        let unsynced = open(&db_path, Durability::None)?;
        let (lat, wall) =
            single_key_commits(&unsynced, &mut rng, plan.unsynced_commits, plan.budget)?;
        let rate = per_sec(lat.len(), wall);
        row("throughput", rate, 0, "commits/s");
        row("median", micros(lat.median()), 2, "µs");
        row("p99", micros(lat.percentile(99.0)), 2, "µs");
        row(
            "speed-up over Immediate (section 6)",
            rate / commit_rate,
            1,
            "x",
        );
        capped_note(lat.len(), plan.unsynced_commits, plan.budget);
    }

    drop(db);
    println!();
    println!("total run time: {:.1} s", run_start.elapsed().as_secs_f64());
    Ok(())
}

/// Raw `fdatasync` rates of the disk holding `dir`, in operations per
/// second: (a) appending 4 KiB to a growing file, (b) overwriting 4 KiB
/// blocks in place in a file whose blocks were written with zeros first.
/// `ops` rounds of: overwrite 4 KiB in place in a preallocated file and
/// fdatasync it, then commit one key. Returns both latency sets.
fn interleaved_commits(
    db: &Database,
    dir: &Path,
    rng: &mut StdRng,
    ops: usize,
) -> BenchResult<(Latencies, Latencies)> {
    let path = dir.join("raw-interleaved");
    let f = zero_filled(&path, ops * SYNC_BLOCK)?;
    let mut block = vec![0u8; SYNC_BLOCK];
    rng.fill_bytes(&mut block);
    let (mut raw, mut ours) = (Vec::with_capacity(ops), Vec::with_capacity(ops));
    for i in 0..ops {
        let start = Instant::now();
        f.write_all_at(&block, (i * SYNC_BLOCK) as u64)?;
        f.sync_data()?;
        raw.push(start.elapsed());
        let (k, v) = (random_key(rng), random_value(rng));
        let start = Instant::now();
        let mut w = db.begin_write()?;
        w.put(k, v)?;
        w.commit()?;
        ours.push(start.elapsed());
    }
    drop(f);
    std::fs::remove_file(&path)?;
    Ok((Latencies::new(raw), Latencies::new(ours)))
}

/// A new file of `len` zero bytes, written and synced: overwriting it in
/// place needs no block allocation.
fn zero_filled(path: &Path, len: usize) -> BenchResult<File> {
    let f = File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    let zeros = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < len {
        let chunk = (len - pos).min(zeros.len());
        f.write_all_at(&zeros[..chunk], pos as u64)?;
        pos += chunk;
    }
    f.sync_all()?;
    Ok(f)
}

/// Print the median and rate rows of a raw sync run; returns the rate.
fn sync_rows(label: &str, lat: &Latencies, wall: Duration, plan: &Plan) -> f64 {
    let rate = per_sec(lat.len(), wall);
    row(&format!("{label}: median"), micros(lat.median()), 1, "µs");
    row(&format!("{label}: rate"), rate, 0, "ops/s");
    capped_note(lat.len(), plan.sync_ops, plan.budget);
    rate
}

fn raw_sync_rates(dir: &Path, plan: &Plan, rng: &mut StdRng) -> BenchResult<(f64, f64)> {
    let mut block = vec![0u8; SYNC_BLOCK];
    rng.fill_bytes(&mut block);
    let ops = plan.sync_ops;

    let path = dir.join("raw-append");
    let mut f = File::options()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    f.sync_all()?;
    let (lat, wall) = timed_ops(ops, plan.budget, |_| {
        f.write_all(&block)?;
        f.sync_data()?;
        Ok(())
    })?;
    let append_rate = sync_rows("raw (a) append 4 KiB + fdatasync", &lat, wall, plan);
    drop(f);
    std::fs::remove_file(&path)?;

    let path = dir.join("raw-overwrite");
    let f = zero_filled(&path, ops * SYNC_BLOCK)?;
    let (lat, wall) = timed_ops(ops, plan.budget, |i| {
        f.write_all_at(&block, (i * SYNC_BLOCK) as u64)?;
        f.sync_data()?;
        Ok(())
    })?;
    let overwrite_rate = sync_rows(
        "raw (b) overwrite 4 KiB in place + fdatasync",
        &lat,
        wall,
        plan,
    );
    drop(f);
    std::fs::remove_file(&path)?;
    Ok((append_rate, overwrite_rate))
}
