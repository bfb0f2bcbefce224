//! `--churn`: a small set of live keys overwritten at random, durably, for
//! a long time. What it shows is whether an engine's disk use stays bounded
//! (space amplification), how many bytes reach storage per byte committed
//! (write amplification) and what the commits cost.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::cli::{Args, ChurnPlan};
use crate::engines::{Access, Kind, Reader};
use crate::report::{self, Cell, Metric, Table};
use crate::workloads::{count, disk_usage, loaded_keys, KEY_LEN, SEED};
use crate::Result;

/// Points at which the disk use is reported, in tenths of the writes.
const TENTHS: usize = 10;
/// Points at which it is sampled for the peak, in hundredths.
const HUNDREDTHS: usize = 100;

/// One run: an engine, and whether a reader is held open mid-run.
#[derive(Clone, Copy, Debug)]
struct Run {
    kind: Kind,
    reader: bool,
}

impl Run {
    fn name(self) -> String {
        if self.reader {
            format!("{}+reader", self.kind.name())
        } else {
            self.kind.name().to_string()
        }
    }
}

// ---- what the kernel counted ------------------------------------------------

/// This process's storage I/O counters (every thread, living or exited).
#[derive(Clone, Copy, Debug, Default)]
struct ProcIo {
    /// Bytes this process caused to be sent to storage (counted when a
    /// page is dirtied, or at direct I/O).
    write_bytes: u64,
    /// Of those, bytes whose pages were truncated or deleted before they
    /// were written back.
    cancelled_write_bytes: u64,
    /// Bytes passed to write system calls, cached or not.
    wchar: u64,
}

fn proc_io() -> Result<ProcIo> {
    let text = std::fs::read_to_string("/proc/self/io")
        .map_err(|e| format!("reading /proc/self/io: {e}"))?;
    let mut io = ProcIo::default();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value: u64 = value.trim().parse()?;
        match name.trim() {
            "write_bytes" => io.write_bytes = value,
            "cancelled_write_bytes" => io.cancelled_write_bytes = value,
            "wchar" => io.wchar = value,
            _ => {}
        }
    }
    Ok(io)
}

impl ProcIo {
    fn since(self, start: ProcIo) -> ProcIo {
        ProcIo {
            write_bytes: self.write_bytes.saturating_sub(start.write_bytes),
            cancelled_write_bytes: self
                .cancelled_write_bytes
                .saturating_sub(start.cancelled_write_bytes),
            wchar: self.wchar.saturating_sub(start.wchar),
        }
    }
}

/// The block device holding `dir`'s statistics file, if the kernel shows
/// one for it (not for overlay or network file systems).
fn device_stat_file(dir: &Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).ok()?.dev();
    // The encoding of dev_t on Linux.
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
    let path = std::path::PathBuf::from(format!("/sys/dev/block/{major}:{minor}/stat"));
    path.exists().then_some(path)
}

/// Bytes written to the device so far (its whole traffic: every process,
/// and the file system's own journal).
fn device_written(stat: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(stat).ok()?;
    // The seventh field is sectors written, in units of 512 bytes.
    let sectors: u64 = text.split_whitespace().nth(6)?.parse().ok()?;
    Some(sectors * 512)
}

/// How many bytes of `write_bytes` the kernel counts for one 100-byte write
/// into a clean, cached part of a file that was written sequentially: 4096
/// where the page cache holds 4 KiB pages, more where it holds larger
/// folios (it counts a whole folio when it is dirtied).
fn write_bytes_per_small_write(dir: &Path) -> Result<u64> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    const WRITES: u64 = 16;
    const SPACING: u64 = 512 << 10;
    let path = dir.join("write-probe");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    f.write_all(&vec![0u8; (WRITES * SPACING) as usize])?;
    f.sync_all()?;
    let before = proc_io()?.write_bytes;
    for i in 0..WRITES {
        f.write_at(&[1u8; 100], i * SPACING + 1000)?;
    }
    let after = proc_io()?.write_bytes;
    f.sync_data()?;
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(after.saturating_sub(before) / WRITES)
}

/// The device's write rate while this program writes nothing, over `span`.
fn idle_device_rate(stat: &Path, span: Duration) -> Option<f64> {
    let start = device_written(stat)?;
    std::thread::sleep(span);
    let end = device_written(stat)?;
    Some(end.saturating_sub(start) as f64 / span.as_secs_f64())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// What the environment did to the measurements.
struct Conditions {
    per_small_write: Option<u64>,
    idle_device: Option<f64>,
    load_before: String,
    load_after: String,
}

// ---- one run ------------------------------------------------------------------

/// The state after the load and at every tenth of the writes.
#[derive(Clone, Copy, Debug)]
struct Sample {
    writes: usize,
    disk: u64,
    /// Process write_bytes since the churn started.
    written: u64,
}

struct Outcome {
    load: Duration,
    samples: Vec<Sample>,
    /// The most bytes on disk seen, sampled at every 1% of the writes.
    peak: u64,
    elapsed: Duration,
    /// Per-commit latency in nanoseconds, sorted.
    latencies: Vec<u64>,
    io: ProcIo,
    device: Option<u64>,
    closed_disk: u64,
    close: Duration,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The snapshot a mid-run reader holds, and what it saw of one key.
struct Held<'a> {
    reader: Box<dyn Reader + 'a>,
    key: usize,
    seen: Vec<u8>,
}

fn value_of(reader: &mut dyn Reader, key: &[u8]) -> Result<Vec<u8>> {
    let mut out = None;
    let mut visit = |v: &[u8]| out = Some(v.to_vec());
    reader.get(key, &mut visit)?;
    out.ok_or_else(|| "a loaded key is missing".into())
}

fn churn_one(run: Run, plan: &ChurnPlan, dir: &Path) -> Result<Outcome> {
    let name = run.name();
    let (keys, mut rng) = loaded_keys(plan.keys);
    let mut values: Vec<Vec<u8>> = (0..plan.keys)
        .map(|_| {
            let mut v = vec![0u8; plan.value];
            rng.fill_bytes(&mut v);
            v
        })
        .collect();
    // The overwrites draw from a stream of their own, the same for every
    // engine.
    let mut rng = StdRng::seed_from_u64(SEED ^ 0xC4_0A2E_0000_0001);
    let device_stat = device_stat_file(dir);

    let engine = run.kind.open(dir, Access::Exclusive)?;
    let t = Instant::now();
    {
        let pairs: Vec<(&[u8], &[u8])> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (&k[..], &v[..]))
            .collect();
        engine.write(&pairs)?;
    }
    let load = t.elapsed();
    let mut samples = vec![Sample {
        writes: 0,
        disk: disk_usage(dir)?,
        written: 0,
    }];
    eprintln!(
        "  [{name}] loaded {} keys in {}; {} on disk",
        count(plan.keys),
        report::duration_ms(load.as_secs_f64() * 1e3),
        Metric::Bytes.format(samples[0].disk as f64)
    );

    let io0 = proc_io()?;
    let dev0 = device_stat.as_deref().and_then(device_written);
    let mut latencies = Vec::with_capacity(plan.writes / plan.batch + 1);
    let mut idx = vec![0usize; plan.batch];
    let mut buf = vec![0u8; plan.batch * plan.value];
    let mut held: Option<Held<'_>> = None;
    let mut reader_done = false;
    let mut next_tenth = 1;
    let mut next_hundredth = 1;
    let mut peak = samples[0].disk;
    let mut done = 0;
    let mut elapsed = Duration::ZERO;
    let mut t = Instant::now();
    while done < plan.writes {
        let n = plan.batch.min(plan.writes - done);
        rng.fill_bytes(&mut buf[..n * plan.value]);
        for i in idx.iter_mut().take(n) {
            *i = rng.random_range(0..plan.keys);
        }
        let pairs: Vec<(&[u8], &[u8])> = idx[..n]
            .iter()
            .zip(buf.chunks(plan.value))
            .map(|(&i, v)| (&keys[i][..], v))
            .collect();
        let took = engine.write_timed(&pairs)?;
        latencies.push(took.as_nanos() as u64);
        for (&i, v) in idx[..n].iter().zip(buf.chunks(plan.value)) {
            values[i].copy_from_slice(v);
        }
        done += n;

        if run.reader && !reader_done {
            if held.is_none() && done >= plan.writes / 4 {
                let mut reader = engine.reader()?;
                let key = idx[0];
                let seen = value_of(reader.as_mut(), &keys[key])?;
                if seen != values[key] {
                    return Err("the new reader does not see the last commit".into());
                }
                eprintln!(
                    "  [{name}] read transaction opened at {} writes",
                    count(done)
                );
                held = Some(Held { reader, key, seen });
            } else if done >= plan.writes / 2 {
                if let Some(mut h) = held.take() {
                    let now = value_of(h.reader.as_mut(), &keys[h.key])?;
                    if now != h.seen {
                        return Err("the held snapshot changed under its reader".into());
                    }
                    drop(h);
                    eprintln!(
                        "  [{name}] read transaction closed at {} writes",
                        count(done)
                    );
                    reader_done = true;
                }
            }
        }

        if done * HUNDREDTHS >= next_hundredth * plan.writes {
            while done * HUNDREDTHS >= next_hundredth * plan.writes {
                next_hundredth += 1;
            }
            // The sampling is left out of the time.
            elapsed += t.elapsed();
            let disk = disk_usage(dir)?;
            peak = peak.max(disk);
            if done * TENTHS < next_tenth * plan.writes {
                t = Instant::now();
                continue;
            }
            let sample = Sample {
                writes: done,
                disk,
                written: proc_io()?.since(io0).write_bytes,
            };
            eprintln!(
                "  [{name}] {:>3}%: {} writes, {} on disk, {} written, {:.0} s",
                next_tenth * 100 / TENTHS,
                count(done),
                Metric::Bytes.format(sample.disk as f64),
                Metric::Bytes.format(sample.written as f64),
                elapsed.as_secs_f64()
            );
            samples.push(sample);
            while done * TENTHS >= next_tenth * plan.writes {
                next_tenth += 1;
            }
            t = Instant::now();
        }
    }
    elapsed += t.elapsed();
    let io = proc_io()?.since(io0);
    drop(held);
    let device = match (device_stat.as_deref().and_then(device_written), dev0) {
        (Some(now), Some(start)) => Some(now.saturating_sub(start)),
        _ => None,
    };

    // Every key holds its last value.
    {
        let mut reader = engine.reader()?;
        for (i, k) in keys.iter().enumerate() {
            if value_of(reader.as_mut(), k)? != values[i] {
                return Err(format!("after the churn, key #{i} has a stale value").into());
            }
        }
    }
    let t = Instant::now();
    drop(engine);
    let close = t.elapsed();
    let closed_disk = disk_usage(dir)?;
    latencies.sort_unstable();
    Ok(Outcome {
        load,
        peak,
        samples,
        elapsed,
        latencies,
        io,
        device,
        closed_disk,
        close,
    })
}

// ---- the results ----------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Line {
    Load,
    Elapsed,
    Rate,
    P50,
    P99,
    Max,
    Written,
    WriteAmp,
    Cancelled,
    WriteCalls,
    WriteCallAmp,
    Device,
    DeviceAmp,
    End,
    EndAmp,
    Peak,
    PeakAmp,
    Close,
    Closed,
}

const LINES: [Line; 19] = [
    Line::Load,
    Line::Elapsed,
    Line::Rate,
    Line::P50,
    Line::P99,
    Line::Max,
    Line::Written,
    Line::WriteAmp,
    Line::Cancelled,
    Line::WriteCalls,
    Line::WriteCallAmp,
    Line::Device,
    Line::DeviceAmp,
    Line::End,
    Line::EndAmp,
    Line::Peak,
    Line::PeakAmp,
    Line::Close,
    Line::Closed,
];

impl Line {
    fn label(self, plan: &ChurnPlan) -> String {
        match self {
            Line::Load => format!("load ({} keys, 1 txn)", count(plan.keys)),
            Line::Elapsed => format!(
                "churn: total time ({} writes, {} commits)",
                count(plan.writes),
                count(plan.writes.div_ceil(plan.batch))
            ),
            Line::Rate => "churn: writes/s".into(),
            Line::P50 => "commit latency, p50".into(),
            Line::P99 => "commit latency, p99".into(),
            Line::Max => "commit latency, max".into(),
            Line::Written => "bytes written to storage (process write_bytes)".into(),
            Line::WriteAmp => "write amplification (write_bytes ÷ bytes committed)".into(),
            Line::Cancelled => "of which cancelled (cancelled_write_bytes)".into(),
            Line::WriteCalls => "bytes passed to write calls (wchar)".into(),
            Line::WriteCallAmp => "write-call amplification (wchar ÷ bytes committed)".into(),
            Line::Device => "device: bytes written (whole device)".into(),
            Line::DeviceAmp => "device write amplification".into(),
            Line::End => "size at the end (open)".into(),
            Line::EndAmp => "space amplification at the end".into(),
            Line::Peak => "peak size (sampled at every 1% of the writes)".into(),
            Line::PeakAmp => "peak space amplification".into(),
            Line::Close => "close".into(),
            Line::Closed => "size after close".into(),
        }
    }

    fn metric(self) -> Metric {
        match self {
            Line::Load | Line::Elapsed | Line::Close => Metric::Millis,
            Line::Rate => Metric::PerSec,
            Line::P50 | Line::P99 | Line::Max => Metric::Micros,
            Line::Written
            | Line::Cancelled
            | Line::WriteCalls
            | Line::Device
            | Line::End
            | Line::Peak
            | Line::Closed => Metric::Bytes,
            Line::WriteAmp
            | Line::WriteCallAmp
            | Line::DeviceAmp
            | Line::EndAmp
            | Line::PeakAmp => Metric::Factor,
        }
    }

    fn value(self, o: &Outcome, plan: &ChurnPlan, live: f64, committed: f64) -> Option<f64> {
        let peak = o.peak as f64;
        let end = o.samples.last().map_or(0, |s| s.disk) as f64;
        Some(match self {
            Line::Load => o.load.as_secs_f64() * 1e3,
            Line::Elapsed => o.elapsed.as_secs_f64() * 1e3,
            Line::Rate => plan.writes as f64 / o.elapsed.as_secs_f64().max(1e-9),
            Line::P50 => percentile(&o.latencies, 50.0) as f64 / 1e3,
            Line::P99 => percentile(&o.latencies, 99.0) as f64 / 1e3,
            Line::Max => o.latencies.last().copied().unwrap_or(0) as f64 / 1e3,
            Line::Written => o.io.write_bytes as f64,
            Line::WriteAmp => o.io.write_bytes as f64 / committed,
            Line::Cancelled => o.io.cancelled_write_bytes as f64,
            Line::WriteCalls => o.io.wchar as f64,
            Line::WriteCallAmp => o.io.wchar as f64 / committed,
            Line::Device => o.device? as f64,
            Line::DeviceAmp => o.device? as f64 / committed,
            Line::End => end,
            Line::EndAmp => end / live,
            Line::Peak => peak,
            Line::PeakAmp => peak / live,
            Line::Close => o.close.as_secs_f64() * 1e3,
            Line::Closed => o.closed_disk as f64,
        })
    }
}

pub fn run(args: &Args, parent: &Path, fs: &str, cores: usize) -> Result<()> {
    let plan = &args.churn;
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("scribedb-churn-")
        .tempdir_in(parent)?;
    let mut runs: Vec<Run> = Vec::new();
    for &kind in &args.engines {
        runs.push(Run {
            kind,
            reader: false,
        });
        if plan.reader && kind == Kind::ScribeDb {
            runs.push(Run { kind, reader: true });
        }
    }
    if plan.reader && !args.engines.contains(&Kind::ScribeDb) {
        return Err("--churn-reader runs ScribeDB: add scribedb to --engines".into());
    }
    let record = (KEY_LEN + plan.value) as f64;
    let live = plan.keys as f64 * record;
    let committed = plan.writes as f64 * record;
    eprintln!(
        "scribedb-compare --churn: {} keys, {} writes in commits of {}, values of {} bytes; \
         runs {}; databases on {fs}, {cores} cores",
        count(plan.keys),
        count(plan.writes),
        count(plan.batch),
        plan.value,
        runs.iter().map(|r| r.name()).collect::<Vec<_>>().join(",")
    );

    let per_small_write = write_bytes_per_small_write(tmp.path()).ok();
    let idle_device = device_stat_file(tmp.path())
        .and_then(|stat| idle_device_rate(&stat, Duration::from_secs(5)));
    let load_before = load_average();
    let mut outcomes: Vec<Option<Outcome>> = Vec::new();
    let mut notes = Vec::new();
    for &run in &runs {
        eprintln!("{}: churn", run.name());
        let dir = tmp.path().join(run.name());
        std::fs::create_dir_all(&dir)?;
        match churn_one(run, plan, &dir) {
            Ok(o) => outcomes.push(Some(o)),
            Err(e) => {
                eprintln!("  [{}] failed: {e}", run.name());
                notes.push(format!("{}: the run failed: {e}", run.name()));
                outcomes.push(None);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    // Disk use as the writes go.
    let names: Vec<String> = runs.iter().map(|r| r.name()).collect();
    let mut header = vec!["writes done".to_string()];
    header.extend(names.iter().cloned());
    let mut space = vec![header.clone()];
    let mut amp = vec![header];
    for tenth in 0..=TENTHS {
        let label = if tenth == 0 {
            "0 (after the load)".to_string()
        } else {
            format!(
                "{} ({}%)",
                count(plan.writes * tenth / TENTHS),
                tenth * 100 / TENTHS
            )
        };
        let mut s_line = vec![label.clone()];
        let mut a_line = vec![label];
        for o in &outcomes {
            match o.as_ref().and_then(|o| o.samples.get(tenth)) {
                Some(s) => {
                    s_line.push(format!(
                        "{} ({})",
                        Metric::Bytes.format(s.disk as f64),
                        report::factor(s.disk as f64 / live)
                    ));
                    a_line.push(if s.writes == 0 {
                        "-".into()
                    } else {
                        report::factor(s.written as f64 / (s.writes as f64 * record))
                    });
                }
                None => {
                    s_line.push("failed".into());
                    a_line.push("failed".into());
                }
            }
        }
        space.push(s_line);
        amp.push(a_line);
    }

    let mut summary = Table::new(
        names.clone(),
        LINES.iter().map(|l| (l.label(plan), l.metric())).collect(),
    );
    for (c, o) in outcomes.iter().enumerate() {
        for (r, line) in LINES.iter().enumerate() {
            let cell = match o {
                None => Cell::Text("failed".into()),
                Some(o) => match line.value(o, plan, live, committed) {
                    Some(v) => Cell::Value(v),
                    None => Cell::Text("n/a".into()),
                },
            };
            summary.set(r, c, cell);
        }
    }

    let conditions = Conditions {
        per_small_write,
        idle_device,
        load_before,
        load_after: load_average(),
    };
    let text = results_text(
        args,
        &runs,
        &space,
        &amp,
        &summary,
        &conditions,
        &notes,
        fs,
        cores,
        started.elapsed(),
    );
    println!("{text}");
    std::fs::write(&args.out, &text).map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    eprintln!(
        "done in {:.0} s; results also written to {}",
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn results_text(
    args: &Args,
    runs: &[Run],
    space: &[Vec<String>],
    amp: &[Vec<String>],
    summary: &Table,
    conditions: &Conditions,
    notes: &[String],
    fs: &str,
    cores: usize,
    elapsed: Duration,
) -> String {
    let plan = &args.churn;
    let record = KEY_LEN + plan.value;
    let mut s = String::new();
    s.push_str("# Churn: random overwrites of a small set of live keys\n\n");
    s.push_str(&format!("```text\n{}\n```\n\n", report::command_line(args)));
    s.push_str(&format!(
        "Settings: {} live keys of {KEY_LEN} random bytes with values of {} random bytes \
         (fixed seeds, the same for every engine), loaded in one transaction; then {} \
         overwrites of keys drawn uniformly at random, with fresh random values, in commits of \
         {} writes ({} commits), each committed durably (the engine settings below). Live \
         data: {} keys × {record} bytes = {}; bytes committed by the churn: {} writes × \
         {record} bytes = {}. One fresh database per run, one after the other in one process; \
         databases on {fs}; {cores} cores; run time {:.0} s.\n\n",
        count(plan.keys),
        plan.value,
        count(plan.writes),
        count(plan.batch),
        count(plan.writes.div_ceil(plan.batch)),
        count(plan.keys),
        Metric::Bytes.format((plan.keys * record) as f64),
        count(plan.writes),
        Metric::Bytes.format((plan.writes * record) as f64),
        elapsed.as_secs_f64(),
    ));
    if runs.iter().any(|r| r.reader) {
        s.push_str(&format!(
            "{}+reader: the same run, with one read transaction opened when {} writes are \
             done (25%) and closed at {} (50%); it reads one key when opened and again \
             before it is closed, and must see the same value.\n\n",
            Kind::ScribeDb.name(),
            count(plan.writes / 4),
            count(plan.writes / 2),
        ));
    }
    s.push_str(
        "## Bytes on disk as the writes go\n\nAllocated blocks (st_blocks × 512) of every \
         file under the database directory, sampled after the load and after every tenth \
         of the writes (the sampling is not timed); in parentheses the space amplification: \
         that ÷ live data.\n\n",
    );
    s.push_str(&report::markdown_table(space));
    s.push_str(
        "\n## Write amplification so far\n\nThe process's `write_bytes` (/proc/self/io) \
         since the churn began ÷ bytes committed since then, at the same points.\n\n",
    );
    s.push_str(&report::markdown_table(amp));
    s.push_str("\n## At the end\n\n");
    s.push_str(&summary.markdown());
    s.push_str(
        "\nEach cell: the figure, and in parentheses how many times worse than the best of \
         its row it is (1.00 = best). Commit latency: the commit call alone (`commit()` of \
         the write transaction; the puts before it are not counted), one sample per commit. \
         Total time and writes/s: the churn loop, puts and commits, without the sampling. \
         write_bytes counts the whole process, background threads included (flushes, \
         compactions, journal and log writes), from the moment a page is dirtied, so pages \
         rewritten before write-back count again and pages of files deleted before \
         write-back count too (those are in cancelled_write_bytes); it does not count the \
         file system's own journal. wchar: bytes passed to write system calls over the \
         churn, exact for what goes through them, but blind to pages written through memory \
         maps (ScribeDB's memtable arenas are memory-mapped files). The device rows are the \
         block device's sectors-written counter over the churn: the whole machine's traffic, \
         the file system's journal and other processes included, so an upper bound. Size at the end: the last sample, database open; \
         size after close: after the handle is dropped. After each run every key is read \
         back and checked against its last value.\n\n",
    );
    s.push_str("## Measurement conditions\n\n");
    match conditions.per_small_write {
        Some(n) => s.push_str(&format!(
            "- A probe before the runs: one 100-byte write into a clean, cached region of a \
             file written sequentially raised `write_bytes` by {n} bytes{}.\n",
            if n > 4096 {
                ": the page cache here holds folios larger than 4 KiB and the kernel counts a \
                 whole folio when it is dirtied, so `write_bytes` overstates small scattered \
                 writes (in place, or to memory-mapped files) many times over; the device \
                 rows and `wchar` bound the real traffic"
            } else {
                " (one page)"
            }
        )),
        None => s.push_str("- The `write_bytes` probe before the runs failed.\n"),
    }
    match conditions.idle_device {
        Some(rate) => s.push_str(&format!(
            "- The device took {}/s of writes from other processes during 5 s before the runs, \
             while this program wrote nothing; the device rows include such traffic.\n",
            Metric::Bytes.format(rate)
        )),
        None => s.push_str("- No block-device counters for the database directory.\n"),
    }
    s.push_str(&format!(
        "- Load average (1, 5, 15 min) before the runs {}, after {}: other processes on the \
         machine share its {cores} cores and its disk, and latencies move with them.\n\n",
        conditions.load_before, conditions.load_after
    ));
    s.push_str("## Engine settings\n\n");
    let mut seen = Vec::new();
    for run in runs {
        if !seen.contains(&run.kind) {
            seen.push(run.kind);
            s.push_str(&format!(
                "- **{}**: {}\n",
                run.kind.name(),
                run.kind.settings()
            ));
        }
    }
    if !notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for note in notes {
            s.push_str(&format!("- {note}\n"));
        }
    }
    s
}
