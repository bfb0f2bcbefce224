//! The workloads, shaped like redb's published comparison: random 24-byte
//! keys and 150-byte values from a fixed seed, a bulk load, durable writes,
//! random reads and short scans (each run twice), reads from several
//! threads, removals and sizes on disk; then several processes sharing one
//! database, for the engines that allow it.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::engines::{Access, Engine, Kind, Reader};
use crate::procs::{self, field, ChildArgs, Kid, Role};
use crate::report::{Cell, Metric, Table};
use crate::Result;

pub const KEY_LEN: usize = 24;
pub const VALUE_LEN: usize = 150;
pub const SEED: u64 = 0x5C81_BEDB_C0A4_0001;
/// Single-insert durable transactions.
pub const INDIVIDUAL_WRITES: usize = 1_000;
/// Transactions of the batch-write workload, and inserts in each.
pub const BATCHES: usize = 100;
pub const BATCH_SIZE: usize = 1_000;
/// Entries per range read.
pub const SCAN_LEN: usize = 10;
/// Thread counts of the concurrent-read rows.
pub const THREADS: [usize; 3] = [1, 2, 4];
/// Reader processes beside the writer process.
pub const READER_PROCESSES: [usize; 3] = [1, 2, 4];
/// Gets per read transaction in a reader process.
pub const GETS_PER_TXN: usize = 100;
/// The key whose value is the writer's clock just before each commit.
const CLOCK_KEY: &[u8] = b"clock";

type Key = [u8; KEY_LEN];
type Value = [u8; VALUE_LEN];

/// How much work each workload does.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Keys in the bulk load (N).
    pub keys: usize,
    /// Gets per random-read run, shared out among the threads in the
    /// concurrent-read rows (M).
    pub reads: usize,
    /// Range reads per run (M / 2).
    pub scans: usize,
    /// Length of each multi-process measurement window.
    pub window: Duration,
    /// Whether to run the multi-process workloads.
    pub multi_process: bool,
}

// ---- rows -------------------------------------------------------------------

/// A row of the results table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    BulkLoad,
    SizeAfterLoad,
    IndividualWrites,
    BatchWrites,
    RandomReads(u8),
    RangeReads(u8),
    ThreadReads(usize),
    Removals,
    SizeAfterRemovals,
    Compaction,
    SizeCompacted,
    MpReads(usize),
    MpCommits(usize),
    MpLatencyP50,
    MpLatencyP99,
}

impl Row {
    pub fn all(plan: &Plan) -> Vec<Row> {
        let mut rows = vec![
            Row::BulkLoad,
            Row::SizeAfterLoad,
            Row::IndividualWrites,
            Row::BatchWrites,
            Row::RandomReads(1),
            Row::RandomReads(2),
            Row::RangeReads(1),
            Row::RangeReads(2),
        ];
        rows.extend(THREADS.map(Row::ThreadReads));
        rows.extend([
            Row::Removals,
            Row::SizeAfterRemovals,
            Row::Compaction,
            Row::SizeCompacted,
        ]);
        if plan.multi_process {
            rows.extend(READER_PROCESSES.map(Row::MpReads));
            rows.extend(READER_PROCESSES.map(Row::MpCommits));
            rows.extend([Row::MpLatencyP50, Row::MpLatencyP99]);
        }
        rows
    }

    pub fn label(self, plan: &Plan) -> String {
        let n = count(plan.keys);
        match self {
            Row::BulkLoad => format!("bulk load ({n} keys, 1 txn)"),
            Row::SizeAfterLoad => "size after bulk load".into(),
            Row::IndividualWrites => {
                format!("individual writes ({} txns of 1)", count(INDIVIDUAL_WRITES))
            }
            Row::BatchWrites => format!("batch writes ({BATCHES} txns of {})", count(BATCH_SIZE)),
            Row::RandomReads(run) => {
                format!("random reads ({} gets, run {run})", count(plan.reads))
            }
            Row::RangeReads(run) => format!(
                "random range reads ({} scans of {SCAN_LEN}, run {run})",
                count(plan.scans)
            ),
            Row::ThreadReads(1) => format!("random reads, 1 thread ({} gets)", count(plan.reads)),
            Row::ThreadReads(t) => format!(
                "random reads, {t} threads ({} gets each)",
                count(plan.reads / t)
            ),
            Row::Removals => format!("removals ({} keys, 1 txn)", count(plan.keys / 2)),
            Row::SizeAfterRemovals => "size after writes + removals".into(),
            Row::Compaction => "compaction".into(),
            Row::SizeCompacted => "size after compaction (closed)".into(),
            Row::MpReads(1) => "MP: gets/s, 1 reader process + 1 writer".into(),
            Row::MpReads(r) => format!("MP: gets/s, {r} reader processes + 1 writer"),
            Row::MpCommits(1) => "MP: writer commits/s, beside 1 reader".into(),
            Row::MpCommits(r) => format!("MP: writer commits/s, beside {r} readers"),
            Row::MpLatencyP50 => "MP: commit-to-visible latency, median".into(),
            Row::MpLatencyP99 => "MP: commit-to-visible latency, p99".into(),
        }
    }

    /// Whether the row belongs to the multi-process workloads.
    pub fn multi_process(self) -> bool {
        matches!(
            self,
            Row::MpReads(_) | Row::MpCommits(_) | Row::MpLatencyP50 | Row::MpLatencyP99
        )
    }

    pub fn metric(self) -> Metric {
        match self {
            Row::SizeAfterLoad | Row::SizeAfterRemovals | Row::SizeCompacted => Metric::Bytes,
            Row::MpReads(_) | Row::MpCommits(_) => Metric::PerSec,
            Row::MpLatencyP50 | Row::MpLatencyP99 => Metric::Micros,
            _ => Metric::Millis,
        }
    }
}

/// `1000000` as `1,000,000`.
pub fn count(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---- data -------------------------------------------------------------------

/// Everything the workloads write and look up, drawn from the fixed seed.
pub struct Data {
    pub keys: Vec<Key>,
    pub values: Vec<Value>,
    /// Written after the load: the individual writes, then the batches.
    pub extra: Vec<(Key, Value)>,
    /// Which loaded key each random get looks up.
    pub reads: Vec<u32>,
    /// Which loaded key each range read starts at.
    pub scans: Vec<u32>,
}

fn random_key(rng: &mut StdRng) -> Key {
    let mut k = [0u8; KEY_LEN];
    rng.fill_bytes(&mut k);
    k
}

fn random_value(rng: &mut StdRng) -> Value {
    let mut v = [0u8; VALUE_LEN];
    rng.fill_bytes(&mut v);
    v
}

/// The first `n` keys drawn from the seed: the loaded keys. Child processes
/// draw them again rather than receive them.
pub fn loaded_keys(n: usize) -> (Vec<Key>, StdRng) {
    let mut rng = StdRng::seed_from_u64(SEED);
    let keys = (0..n).map(|_| random_key(&mut rng)).collect();
    (keys, rng)
}

impl Data {
    pub fn new(plan: &Plan) -> Data {
        let (keys, mut rng) = loaded_keys(plan.keys);
        let values = (0..plan.keys).map(|_| random_value(&mut rng)).collect();
        let extra = (0..INDIVIDUAL_WRITES + BATCHES * BATCH_SIZE)
            .map(|_| (random_key(&mut rng), random_value(&mut rng)))
            .collect();
        let n = plan.keys as u32;
        let reads = (0..plan.reads).map(|_| rng.random_range(0..n)).collect();
        let scans = (0..plan.scans).map(|_| rng.random_range(0..n)).collect();
        Data {
            keys,
            values,
            extra,
            reads,
            scans,
        }
    }

    fn load_pairs(&self) -> Vec<(&[u8], &[u8])> {
        self.keys
            .iter()
            .zip(&self.values)
            .map(|(k, v)| (&k[..], &v[..]))
            .collect()
    }
}

// ---- recording --------------------------------------------------------------

/// Where one engine's figures go: its column of the table, progress lines on
/// stderr, and sums that every engine must agree on.
pub struct Column<'a> {
    pub table: &'a mut Table,
    pub rows: &'a [Row],
    pub plan: &'a Plan,
    pub column: usize,
    pub kind: Kind,
    /// (what, engine) -> a figure that must be equal for all engines.
    pub checks: &'a mut BTreeMap<String, Vec<(String, u64)>>,
}

impl Column<'_> {
    fn index(&self, row: Row) -> usize {
        self.rows
            .iter()
            .position(|r| *r == row)
            .expect("row in the table")
    }

    fn record(&mut self, row: Row, value: f64) {
        let i = self.index(row);
        eprintln!(
            "  [{}] {}: {}",
            self.kind.name(),
            row.label(self.plan),
            self.table.format_value(i, value)
        );
        self.table.set(i, self.column, Cell::Value(value));
    }

    fn record_text(&mut self, row: Row, text: &str) {
        let i = self.index(row);
        eprintln!("  [{}] {}: {text}", self.kind.name(), row.label(self.plan));
        self.table.set(i, self.column, Cell::Text(text.into()));
    }

    fn record_time(&mut self, row: Row, elapsed: Duration) {
        debug_assert_eq!(row.metric(), Metric::Millis);
        self.record(row, elapsed.as_secs_f64() * 1e3);
    }

    fn check(&mut self, what: String, value: u64) {
        self.checks
            .entry(what)
            .or_default()
            .push((self.kind.name().to_string(), value));
    }
}

/// Bytes the files under `dir` occupy on disk (allocated blocks, so sparse
/// files count for what they hold).
/// A file that a background thread deletes while this looks is skipped.
pub fn disk_usage(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        if meta.is_dir() {
            match disk_usage(&entry.path()) {
                Ok(bytes) => total += bytes,
                Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(gone) => {}
                Err(e) => return Err(e),
            }
        } else {
            total += meta.blocks() * 512;
        }
    }
    Ok(total)
}

// ---- single-process workloads ----------------------------------------------

/// Sum of what a get or scan showed, so that the work cannot be skipped and
/// engines can be checked against each other.
#[derive(Default)]
struct Tally {
    entries: u64,
    bytes: u64,
    digest: u64,
}

impl Tally {
    fn value(&mut self, v: &[u8]) {
        self.entries += 1;
        self.bytes += v.len() as u64;
        self.digest = self
            .digest
            .wrapping_add(u64::from(v.first().copied().unwrap_or(0)));
    }
}

/// Random gets of `indices`, from one snapshot; an error if one is missing.
fn gets(engine: &dyn Engine, keys: &[Key], indices: &[u32]) -> Result<Tally> {
    gets_from(engine.reader()?.as_mut(), keys, indices)
}

fn gets_from(reader: &mut dyn Reader, keys: &[Key], indices: &[u32]) -> Result<Tally> {
    let mut tally = Tally::default();
    for &i in indices {
        let mut visit = |v: &[u8]| tally.value(v);
        if !reader.get(&keys[i as usize], &mut visit)? {
            return Err(format!("loaded key #{i} not found").into());
        }
    }
    Ok(tally)
}

/// Random gets of `indices` shared out among `threads` threads, each with a
/// snapshot of its own taken before the clock starts; the time from the
/// start to the last thread's end, and the gets found.
fn threaded_gets(
    engine: &dyn Engine,
    keys: &[Key],
    indices: &[u32],
    threads: usize,
) -> Result<(Duration, u64)> {
    let per_thread = indices.len() / threads;
    if per_thread == 0 {
        return Err("fewer reads than threads".into());
    }
    let parts: Vec<&[u32]> = indices.chunks(per_thread).take(threads).collect();
    let start = Barrier::new(parts.len() + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                let start = &start;
                s.spawn(move || -> Result<u64> {
                    let reader = engine.reader();
                    start.wait();
                    Ok(gets_from(reader?.as_mut(), keys, part)?.entries)
                })
            })
            .collect();
        start.wait();
        let t = Instant::now();
        let mut found = 0;
        for h in handles {
            found += h
                .join()
                .unwrap_or_else(|_| Err("reader thread panicked".into()))?;
        }
        Ok((t.elapsed(), found))
    })
}

/// Run every single-process workload on a new database in `dir`.
pub fn single_process(col: &mut Column<'_>, data: &Data, dir: &Path) -> Result<()> {
    let plan = col.plan.clone();
    let mut engine = col.kind.open(dir, Access::Exclusive)?;

    let pairs = data.load_pairs();
    let t = Instant::now();
    engine.write(&pairs)?;
    col.record_time(Row::BulkLoad, t.elapsed());
    drop(pairs);
    col.record(Row::SizeAfterLoad, disk_usage(dir)? as f64);

    let (single, batched) = data.extra.split_at(INDIVIDUAL_WRITES);
    let t = Instant::now();
    for (k, v) in single {
        engine.write(&[(&k[..], &v[..])])?;
    }
    col.record_time(Row::IndividualWrites, t.elapsed());

    let batches: Vec<Vec<(&[u8], &[u8])>> = batched
        .chunks(BATCH_SIZE)
        .map(|c| c.iter().map(|(k, v)| (&k[..], &v[..])).collect())
        .collect();
    let t = Instant::now();
    for batch in &batches {
        engine.write(batch)?;
    }
    col.record_time(Row::BatchWrites, t.elapsed());
    drop(batches);

    for run in [1, 2] {
        let t = Instant::now();
        let tally = gets(engine.as_ref(), &data.keys, &data.reads)?;
        col.record_time(Row::RandomReads(run), t.elapsed());
        col.check(format!("random reads: value bytes, run {run}"), tally.bytes);
        col.check(format!("random reads: digest, run {run}"), tally.digest);
    }

    for run in [1, 2] {
        let t = Instant::now();
        let mut reader = engine.reader()?;
        let mut tally = Tally::default();
        let mut keys = 0u64;
        for &i in &data.scans {
            let mut visit = |k: &[u8], v: &[u8]| {
                keys = keys.wrapping_add(u64::from(k[0]));
                tally.value(v);
            };
            reader.scan(&data.keys[i as usize], SCAN_LEN, &mut visit)?;
        }
        drop(reader);
        col.record_time(Row::RangeReads(run), t.elapsed());
        black_box(keys);
        col.check(format!("range reads: entries, run {run}"), tally.entries);
        col.check(format!("range reads: digest, run {run}"), tally.digest);
    }

    for threads in THREADS {
        let (elapsed, found) = threaded_gets(engine.as_ref(), &data.keys, &data.reads, threads)?;
        col.record_time(Row::ThreadReads(threads), elapsed);
        col.check(format!("{threads}-thread reads: found"), found);
    }

    let removed: Vec<&[u8]> = data.keys[..plan.keys / 2].iter().map(|k| &k[..]).collect();
    let t = Instant::now();
    engine.remove(&removed)?;
    col.record_time(Row::Removals, t.elapsed());
    drop(removed);
    col.record(Row::SizeAfterRemovals, disk_usage(dir)? as f64);

    // The removed keys are gone, the others are still there.
    {
        let mut reader = engine.reader()?;
        let mut ignore = |_: &[u8]| {};
        for (i, k) in data.keys.iter().enumerate().step_by(97) {
            let found = reader.get(k, &mut ignore)?;
            if found != (i >= plan.keys / 2) {
                return Err(format!("after removals, key #{i} found = {found}").into());
            }
        }
    }

    let t = Instant::now();
    if engine.compact()? {
        col.record_time(Row::Compaction, t.elapsed());
        // Closed first: some engines delete replaced files lazily.
        drop(engine);
        col.record(Row::SizeCompacted, disk_usage(dir)? as f64);
    } else {
        col.record_text(Row::Compaction, "n/a");
        col.record_text(Row::SizeCompacted, "n/a");
    }
    Ok(())
}

// ---- multi-process workloads ------------------------------------------------

/// Load the keys into a new database in `dir`, then run the windows: one
/// writer process beside 1, 2 and 4 reader processes, and one writer beside
/// a process polling the clock key.
pub fn multi_process(col: &mut Column<'_>, data: &Data, dir: &Path) -> Result<()> {
    let plan = col.plan.clone();
    let kind = col.kind;
    {
        let engine = kind.open(dir, Access::Exclusive)?;
        engine.write(&data.load_pairs())?;
        eprintln!(
            "  [{}] multi-process: {} keys loaded",
            kind.name(),
            count(plan.keys)
        );
    }
    let mut seed = 0u64;
    let mut spawn = |role: Role| {
        seed += 1;
        Kid::spawn(role, kind, dir, plan.keys, seed)
    };

    for readers in READER_PROCESSES {
        let mut kids = vec![spawn(Role::Writer)?];
        for _ in 0..readers {
            kids.push(spawn(Role::Reader)?);
        }
        let reports = procs::run_window(kids, plan.window)?;
        let writer = &reports[0];
        col.record(
            Row::MpCommits(readers),
            per_sec(field(writer, "commits")?, field(writer, "elapsed_ns")?),
        );
        let mut total = 0.0;
        for r in &reports[1..] {
            if field(r, "found")? != field(r, "gets")? {
                return Err(format!(
                    "a reader process missed {} of {} gets",
                    field(r, "gets")? - field(r, "found")?,
                    field(r, "gets")?
                )
                .into());
            }
            total += per_sec(field(r, "gets")?, field(r, "elapsed_ns")?);
        }
        col.record(Row::MpReads(readers), total);
    }

    let kids = vec![spawn(Role::Writer)?, spawn(Role::Latency)?];
    let reports = procs::run_window(kids, plan.window)?;
    let poller = &reports[1];
    if field(poller, "changes")? == 0 {
        return Err("the polling process saw no commit".into());
    }
    col.record(Row::MpLatencyP50, field(poller, "p50_ns")? as f64 / 1e3);
    col.record(Row::MpLatencyP99, field(poller, "p99_ns")? as f64 / 1e3);
    Ok(())
}

fn per_sec(count: u64, elapsed_ns: u64) -> f64 {
    count as f64 * 1e9 / elapsed_ns.max(1) as f64
}

/// Nearest-rank percentile of sorted samples, `p` in 0..=100.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The body of a child process.
pub fn child(args: ChildArgs) -> Result<()> {
    let access = match args.role {
        Role::Writer => Access::SharedWriter,
        Role::Reader | Role::Latency => Access::SharedReader,
    };
    let engine = args.kind.open(&args.dir, access)?;
    let keys = match args.role {
        Role::Reader | Role::Writer => loaded_keys(args.keys).0,
        Role::Latency => Vec::new(),
    };
    if args.role == Role::Reader {
        // Touch the whole database once, so that the window measures
        // steady-state reads rather than first-touch faults.
        let mut reader = engine.reader()?;
        let mut bytes = 0usize;
        let mut visit = |k: &[u8], v: &[u8]| bytes += k.len() + v.len();
        reader.scan(b"\0", usize::MAX, &mut visit)?;
        black_box(bytes);
    }
    let mut rng = StdRng::seed_from_u64(SEED ^ args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let Some(end) = procs::ready_and_wait()? else {
        return Ok(());
    };
    match args.role {
        Role::Reader => read_loop(engine.as_ref(), &keys, &mut rng, end),
        Role::Writer => write_loop(engine.as_ref(), &keys, &mut rng, end),
        Role::Latency => latency_loop(engine.as_ref(), end),
    }
}

fn read_loop(engine: &dyn Engine, keys: &[Key], rng: &mut StdRng, end: u64) -> Result<()> {
    let (mut gets, mut found) = (0u64, 0u64);
    let mut bytes = 0usize;
    let t0 = procs::now_ns();
    let mut t = t0;
    while t < end {
        let mut reader = engine.reader()?;
        for _ in 0..GETS_PER_TXN {
            let key = &keys[rng.random_range(0..keys.len())];
            let mut visit = |v: &[u8]| bytes += v.len();
            if reader.get(key, &mut visit)? {
                found += 1;
            }
        }
        drop(reader);
        gets += GETS_PER_TXN as u64;
        t = procs::now_ns();
    }
    black_box(bytes);
    procs::report(&[("gets", gets), ("found", found), ("elapsed_ns", t - t0)])
}

fn write_loop(engine: &dyn Engine, keys: &[Key], rng: &mut StdRng, end: u64) -> Result<()> {
    let mut commits = 0u64;
    let t0 = procs::now_ns();
    let mut t = t0;
    while t < end {
        let key = &keys[rng.random_range(0..keys.len())];
        let value = random_value(rng);
        let stamp = procs::now_ns().to_le_bytes();
        engine.write(&[(&key[..], &value[..]), (CLOCK_KEY, &stamp[..])])?;
        commits += 1;
        t = procs::now_ns();
    }
    procs::report(&[("commits", commits), ("elapsed_ns", t - t0)])
}

/// The clock value the writer stored, and when it was seen (read while
/// the snapshot is still open).
fn clock_value(engine: &dyn Engine) -> Result<(Option<u64>, u64)> {
    let mut reader = engine.reader()?;
    let mut value = None;
    let mut visit = |v: &[u8]| value = v.try_into().ok().map(u64::from_le_bytes);
    reader.get(CLOCK_KEY, &mut visit)?;
    Ok((value, procs::now_ns()))
}

fn latency_loop(engine: &dyn Engine, end: u64) -> Result<()> {
    let mut samples = Vec::new();
    let mut polls = 0u64;
    // The value left by earlier commits is not a change.
    let (mut last, t0) = clock_value(engine)?;
    let mut t = t0;
    while t < end {
        let (value, seen) = clock_value(engine)?;
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
    procs::report(&[
        ("polls", polls),
        ("changes", samples.len() as u64),
        ("elapsed_ns", t - t0),
        ("p50_ns", percentile(&samples, 50.0)),
        ("p99_ns", percentile(&samples, 99.0)),
    ])
}
