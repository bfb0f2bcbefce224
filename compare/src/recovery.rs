//! `--recovery`: how long ScribeDB takes to open after a power cut, against
//! the length of the history written before it. Opening rebuilds the
//! memtable from the log behind the last flush, so the time should depend
//! on the memtable budget, not on how much was ever written.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use scribedb::{Database, Durability};

use crate::cli::Args;
use crate::report::{self, Metric};
use crate::workloads::{count, disk_usage, loaded_keys, KEY_LEN, SEED, VALUE_LEN};
use crate::Result;

/// Live keys.
const KEYS: usize = 10_000;
/// Writes per commit.
const BATCH: usize = 1_000;
/// Reopens per history length (each after deleting the files again).
const TRIALS: usize = 3;
/// The coordination file, which a reboot loses (it describes the running
/// processes and the memtable shared in memory).
const COORD_FILE: &str = "coord";

/// Delete what does not survive a reboot: the coordination file and the
/// memtable's arenas. The names of the files deleted.
fn simulate_reboot(dir: &Path) -> Result<Vec<String>> {
    let mut gone = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name == COORD_FILE || (name.starts_with("mem-") && name.ends_with(".arena")) {
            std::fs::remove_file(dir.join(&name))?;
            gone.push(name);
        }
    }
    if !gone.iter().any(|n| n == COORD_FILE) {
        return Err(format!("no {COORD_FILE:?} file in the database directory").into());
    }
    Ok(gone)
}

struct Trial {
    /// `Database::open` alone.
    open: Duration,
    /// Open, one read transaction and one get.
    total: Duration,
    records: u64,
    arenas_deleted: usize,
}

struct Outcome {
    writes: usize,
    fill: Duration,
    disk: u64,
    segments: usize,
    log_bytes: u64,
    trials: Vec<Trial>,
}

fn one(writes: usize, dir: &Path) -> Result<Outcome> {
    let (keys, mut rng) = loaded_keys(KEYS);
    let mut values: Vec<[u8; VALUE_LEN]> = (0..KEYS)
        .map(|_| {
            let mut v = [0u8; VALUE_LEN];
            rng.fill_bytes(&mut v);
            v
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(SEED ^ 0x2EC0_7E27_0000_0001);
    let t = Instant::now();
    {
        let db = Database::builder().durability(Durability::None).open(dir)?;
        let mut w = db.begin_write()?;
        for (k, v) in keys.iter().zip(&values) {
            w.put(k, v)?;
        }
        w.commit()?;
        let mut done = 0;
        let mut last_report = Instant::now();
        while done < writes {
            let n = BATCH.min(writes - done);
            let mut w = db.begin_write()?;
            for _ in 0..n {
                let i = rng.random_range(0..KEYS);
                rng.fill_bytes(&mut values[i]);
                w.put(keys[i], values[i])?;
            }
            w.commit()?;
            done += n;
            if last_report.elapsed() >= Duration::from_secs(10) {
                eprintln!("  {} of {} writes", count(done), count(writes));
                last_report = Instant::now();
            }
        }
    }
    let fill = t.elapsed();

    let mut trials = Vec::new();
    let mut disk = 0;
    let mut segments = 0;
    let mut log_bytes = 0;
    for trial in 0..TRIALS {
        let gone = simulate_reboot(dir)?;
        if trial == 0 {
            disk = disk_usage(dir)?;
        }
        let probe = trial * 7919 % KEYS;
        let t = Instant::now();
        let db = Database::open(dir)?;
        let open = t.elapsed();
        let r = db.begin_read()?;
        let found = r.get(keys[probe])?.map(|v| v.to_vec());
        let total = t.elapsed();
        if found.as_deref() != Some(&values[probe][..]) {
            return Err(format!("after the reopen, key #{probe} has a stale value").into());
        }
        // Everything else survived too.
        for (i, k) in keys.iter().enumerate() {
            if r.get(k)? != Some(&values[i][..]) {
                return Err(format!("after the reopen, key #{i} has a stale value").into());
            }
        }
        drop(r);
        let records = db.recovery_report().records;
        if trial == 0 {
            let stats = db.stats()?;
            segments = stats.segments;
            log_bytes = stats.wal_bytes.saturating_sub(stats.log_start);
        }
        drop(db);
        eprintln!(
            "  reopen {}: open {}, open + read {}, {} log records replayed, {} files deleted",
            trial + 1,
            report::duration_ms(open.as_secs_f64() * 1e3),
            report::duration_ms(total.as_secs_f64() * 1e3),
            count(records as usize),
            gone.len()
        );
        trials.push(Trial {
            open,
            total,
            records,
            arenas_deleted: gone.len() - 1,
        });
    }
    Ok(Outcome {
        writes,
        fill,
        disk,
        segments,
        log_bytes,
        trials,
    })
}

fn ms(d: Duration) -> String {
    report::duration_ms(d.as_secs_f64() * 1e3)
}

pub fn run(args: &Args, parent: &Path, fs: &str, cores: usize) -> Result<()> {
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("scribedb-recovery-")
        .tempdir_in(parent)?;
    eprintln!(
        "scribedb-compare --recovery: history lengths {}; databases on {fs}, {cores} cores",
        args.recovery_writes
            .iter()
            .map(|&w| count(w))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut lines = vec![[
        "writes before the power cut",
        "open (median)",
        "open + begin_read + get (median)",
        "open + read, each reopen",
        "log records replayed",
        "open per record replayed",
        "bytes on disk",
        "log behind the last flush",
        "segments",
        "arenas deleted",
        "fill time",
    ]
    .map(String::from)
    .to_vec()];
    let mut notes = Vec::new();
    for &writes in &args.recovery_writes {
        eprintln!("history of {} writes", count(writes));
        let dir = tmp.path().join(format!("w{writes}"));
        std::fs::create_dir_all(&dir)?;
        match one(writes, &dir) {
            Ok(o) => {
                let mut open: Vec<Duration> = o.trials.iter().map(|t| t.open).collect();
                let mut total: Vec<Duration> = o.trials.iter().map(|t| t.total).collect();
                open.sort();
                total.sort();
                let records: Vec<String> =
                    o.trials.iter().map(|t| count(t.records as usize)).collect();
                let records = if records.iter().all(|r| *r == records[0]) {
                    records[0].clone()
                } else {
                    records.join(" / ")
                };
                let arenas: Vec<String> = o
                    .trials
                    .iter()
                    .map(|t| t.arenas_deleted.to_string())
                    .collect();
                lines.push(vec![
                    count(o.writes),
                    ms(open[open.len() / 2]),
                    ms(total[total.len() / 2]),
                    o.trials
                        .iter()
                        .map(|t| ms(t.total))
                        .collect::<Vec<_>>()
                        .join(" / "),
                    records,
                    match o.trials[0].records {
                        0 => "-".into(),
                        n => {
                            report::duration_ms(open[open.len() / 2].as_secs_f64() * 1e3 / n as f64)
                        }
                    },
                    Metric::Bytes.format(o.disk as f64),
                    Metric::Bytes.format(o.log_bytes as f64),
                    o.segments.to_string(),
                    arenas.join(" / "),
                    format!("{:.1} s", o.fill.as_secs_f64()),
                ]);
            }
            Err(e) => {
                eprintln!("  failed: {e}");
                notes.push(format!("{} writes: failed: {e}", count(writes)));
                let mut line = vec![count(writes)];
                line.extend((1..lines[0].len()).map(|_| "failed".to_string()));
                lines.push(line);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    let mut s = String::new();
    s.push_str("# Recovery: ScribeDB's open time after a power cut\n\n");
    s.push_str(&format!("```text\n{}\n```\n\n", report::command_line(args)));
    s.push_str(&format!(
        "Settings: per history length, a fresh database (default options: a 64 MiB memtable \
         budget, background flushes and compactions); {} keys of {KEY_LEN} random bytes with \
         values of {VALUE_LEN} random bytes loaded in one commit, then overwritten at random \
         (fresh random values) in commits of {} writes with `Durability::None` until the \
         history length is reached (the load not counted), and the handle closed. A reboot \
         is then simulated by deleting the coordination file (`{COORD_FILE}`) and every \
         memtable arena (`mem-*.arena`), so that the next open rebuilds the memtable from \
         the log behind the last flush. Timed: `Database::open` (default options), then \
         `begin_read` and one `get`. Then, untimed, every key is read and checked against \
         its last value. This is done {TRIALS} times per history length (deleting the files \
         again before each reopen); the table gives the median and each reopen. The files \
         are in the page cache (nothing drops it), so this is the CPU and system-call cost \
         of recovery, not cold reads. Bytes on disk: allocated blocks of every file, after \
         the deletion, before the first reopen. Log behind the last flush (the part replayed: `wal_bytes − log_start`) and \
         segments: `Database::stats` after the first reopen. Databases on {fs}; {cores} cores; run time {:.0} s.\n\n",
        count(KEYS),
        count(BATCH),
        started.elapsed().as_secs_f64(),
    ));
    s.push_str(&report::markdown_table(&lines));
    s.push_str(&format!(
        "\nlog records replayed: `Database::recovery_report().records`, one record per \
         commit of {} writes.\n\n",
        count(BATCH)
    ));
    if !notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for note in notes {
            s.push_str(&format!("- {note}\n"));
        }
    }
    println!("{s}");
    std::fs::write(&args.out, &s).map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    eprintln!(
        "done in {:.0} s; results also written to {}",
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
