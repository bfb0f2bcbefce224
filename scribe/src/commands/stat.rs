//! `stat`: counts, sizes, the latest commit and who is attached, as a
//! table or as one JSON object.

use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use scribedb::{timestamp, Database};
use serde::Serialize;

use super::{flush, live_log, stdout};
use crate::error::{Error, Result};
use crate::human;

#[derive(Serialize)]
struct Report {
    path: String,
    keys: u64,
    versions: u64,
    data_bytes: u64,
    arenas: u64,
    arena_bytes: u64,
    wal_bytes: u64,
    wal_file_bytes: u64,
    committed_ts: u64,
    /// UTC time of the latest commit; absent before the first one.
    committed_at: Option<String>,
    epoch: u64,
    readers: usize,
    max_readers: usize,
    /// Open database handles, this command's included.
    processes: usize,
    max_processes: usize,
    writer: Option<Writer>,
    oldest_snapshot: u64,
    oldest_snapshot_at: Option<String>,
    /// Bytes the current memtable uses, and this handle's budget for it.
    memtable_bytes: u64,
    memtable_budget: u64,
    /// Whether a sealed memtable is waiting for (or in) its flush.
    sealed_memtable: bool,
    /// Segment files in all, and their bytes per level (index = level).
    segments: usize,
    level_bytes: Vec<u64>,
    /// Log offset below which the log is cut.
    log_start: u64,
    /// Bytes of log records not yet in segments: `wal_bytes - log_start`.
    live_wal_bytes: u64,
    manifest_generation: u64,
    /// Bytes the files of the database directory take on disk (allocated
    /// blocks, so preallocated space counts and holes do not).
    disk_bytes: u64,
    /// `disk_bytes / data_bytes`; absent when there is no live data.
    space_amplification: Option<f64>,
    /// The last failure of a background flush or compaction, if any.
    maintenance_error: Option<String>,
    /// Segments in level 0, and the count of them that starts a compaction.
    level0_segments: usize,
    compaction_trigger: usize,
    /// Bytes of segment files a compaction would merge now (0 if none is
    /// due).
    pending_compaction_bytes: u64,
    /// The retention window stored with the database, in milliseconds.
    retention_ms: u64,
    /// The oldest timestamp `--as-of` can read now, and its UTC time
    /// (absent before the first commit).
    oldest_readable_ts: u64,
    oldest_readable_at: Option<String>,
    /// The live reader that keeps the most retired segment bytes, if any.
    most_pinning_reader: Option<PinningReader>,
    /// Commits of this command's own handle that waited for a flush.
    stalls: Stalls,
}

#[derive(Serialize)]
struct PinningReader {
    slot: usize,
    pid: u64,
    pinned_bytes: u64,
}

#[derive(Serialize)]
struct Stalls {
    count: u64,
    micros: u64,
}

#[derive(Serialize)]
struct Writer {
    pid: u64,
    since_ms: u64,
    since: String,
}

/// The UTC time of a commit timestamp; `None` for 0, "no commit".
fn ts_time(ts: u64) -> Option<String> {
    (ts != 0).then(|| human::utc(timestamp::millis(ts)))
}

pub fn run(db: &Database, json: bool) -> Result<()> {
    let stats = db.stats()?;
    let disk_bytes = disk_usage(db.path())?;
    let live_wal_bytes = live_log(&stats);
    let report = Report {
        path: db.path().display().to_string(),
        keys: stats.keys,
        versions: stats.versions,
        data_bytes: stats.data_bytes,
        arenas: stats.arenas,
        arena_bytes: stats.arena_bytes,
        wal_bytes: stats.wal_bytes,
        wal_file_bytes: stats.wal_file_bytes,
        committed_ts: stats.committed_ts,
        committed_at: ts_time(stats.committed_ts),
        epoch: stats.epoch,
        readers: stats.readers,
        max_readers: stats.max_readers,
        processes: stats.processes,
        max_processes: stats.max_processes,
        writer: stats.writer.map(|w| Writer {
            pid: w.pid,
            since_ms: w.since_ms,
            since: human::utc(w.since_ms),
        }),
        oldest_snapshot: stats.oldest_snapshot,
        oldest_snapshot_at: ts_time(stats.oldest_snapshot),
        memtable_bytes: stats.memtable_bytes,
        memtable_budget: stats.memtable_budget,
        sealed_memtable: stats.sealed_memtable,
        segments: stats.segments,
        live_wal_bytes,
        level_bytes: stats.level_bytes,
        log_start: stats.log_start,
        manifest_generation: stats.manifest_generation,
        disk_bytes,
        space_amplification: (stats.data_bytes != 0)
            .then(|| disk_bytes as f64 / stats.data_bytes as f64),
        maintenance_error: stats.maintenance_error,
        level0_segments: stats.level0_segments,
        compaction_trigger: stats.compaction_trigger,
        pending_compaction_bytes: stats.pending_compaction_bytes,
        retention_ms: stats.retention_ms,
        oldest_readable_ts: stats.oldest_readable_ts,
        oldest_readable_at: ts_time(stats.oldest_readable_ts),
        most_pinning_reader: stats.most_pinning_reader.map(|(slot, pid, pinned_bytes)| {
            PinningReader {
                slot,
                pid,
                pinned_bytes,
            }
        }),
        stalls: Stalls {
            count: stats.stalls.0,
            micros: stats.stalls.1,
        },
    };
    let mut out = stdout();
    if json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(|e| Error::Output(e.into()))?;
        writeln!(out).map_err(Error::Output)?;
    } else {
        write_table(&mut out, &report).map_err(Error::Output)?;
    }
    flush(out)
}

fn write_table(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    let at = |ts: u64, time: &Option<String>| match time {
        Some(time) => format!("{ts} ({time})"),
        None => "none".to_string(),
    };
    let writer = match &r.writer {
        Some(w) => {
            let held = timestamp::now_millis().saturating_sub(w.since_ms);
            format!(
                "pid {} since {} ({})",
                w.pid,
                w.since,
                human::duration(held)
            )
        }
        None => "none".to_string(),
    };
    let rows = [
        ("path", r.path.clone()),
        ("keys", r.keys.to_string()),
        ("versions", r.versions.to_string()),
        (
            "data",
            format!("{} ({} bytes)", human::bytes(r.data_bytes), r.data_bytes),
        ),
        (
            "arenas",
            format!("{}, {} used", r.arenas, human::bytes(r.arena_bytes)),
        ),
        (
            "wal",
            format!(
                "{} of records in a {} file",
                human::bytes(r.wal_bytes),
                human::bytes(r.wal_file_bytes)
            ),
        ),
        ("committed", at(r.committed_ts, &r.committed_at)),
        ("epoch", r.epoch.to_string()),
        (
            "readers",
            format!("{} of {} slots", r.readers, r.max_readers),
        ),
        (
            "processes",
            format!("{} of {} (this one included)", r.processes, r.max_processes),
        ),
        ("writer", writer),
        ("gc horizon", at(r.oldest_snapshot, &r.oldest_snapshot_at)),
        (
            "memtable",
            format!(
                "{} of {}",
                human::bytes(r.memtable_bytes),
                human::bytes(r.memtable_budget)
            ),
        ),
        (
            "sealed memtable",
            if r.sealed_memtable {
                "waiting for its flush".to_string()
            } else {
                "none".to_string()
            },
        ),
        ("segments", segments(r.segments, &r.level_bytes)),
        (
            "level 0",
            format!(
                "{} segment(s), compaction at {}",
                r.level0_segments, r.compaction_trigger
            ),
        ),
        (
            "compaction due",
            match r.pending_compaction_bytes {
                0 => "none".to_string(),
                n => format!("{} to merge", human::bytes(n)),
            },
        ),
        (
            "live wal",
            format!(
                "{} of records in a {} file, cut below offset {}",
                human::bytes(r.live_wal_bytes),
                human::bytes(r.wal_file_bytes),
                r.log_start
            ),
        ),
        ("manifest", format!("generation {}", r.manifest_generation)),
        (
            "retention",
            match r.retention_ms {
                0 => "none".to_string(),
                ms => human::exact_duration(ms),
            },
        ),
        (
            "oldest readable",
            at(r.oldest_readable_ts, &r.oldest_readable_at),
        ),
        (
            "most pinning",
            match &r.most_pinning_reader {
                Some(p) => format!(
                    "slot {}, pid {}, {}",
                    p.slot,
                    p.pid,
                    human::bytes(p.pinned_bytes)
                ),
                None => "none".to_string(),
            },
        ),
        ("stalls", stalls(&r.stalls)),
        (
            "on disk",
            format!(
                "{}, space amplification {}",
                human::bytes(r.disk_bytes),
                amplification(r.space_amplification)
            ),
        ),
        (
            "maintenance",
            match &r.maintenance_error {
                Some(e) => format!("failing (retried): {e}"),
                None => "ok".to_string(),
            },
        ),
    ];
    for (name, value) in rows {
        writeln!(out, "{name:<16} {value}")?;
    }
    Ok(())
}

/// `3: L0 1.2 MiB, L1 4.0 MiB`, or `none`.
fn segments(count: usize, level_bytes: &[u64]) -> String {
    if count == 0 {
        return "none".to_string();
    }
    let levels: Vec<String> = level_bytes
        .iter()
        .enumerate()
        .filter(|&(_, &bytes)| bytes != 0)
        .map(|(level, &bytes)| format!("L{level} {}", human::bytes(bytes)))
        .collect();
    format!("{count}: {}", levels.join(", "))
}

/// `3, 12.5ms in all`, or `none`.
fn stalls(s: &Stalls) -> String {
    if s.count == 0 {
        return "none".to_string();
    }
    let total = if s.micros < 1000 {
        format!("{}us", s.micros)
    } else {
        human::duration(s.micros / 1000)
    };
    format!("{}, {total} in all", s.count)
}

/// `2.1x`, or `-` without live data to compare with.
fn amplification(ratio: Option<f64>) -> String {
    match ratio {
        Some(ratio) => format!("{ratio:.1}x"),
        None => "-".to_string(),
    }
}

/// Bytes allocated on disk to the files under `dir`. Files that vanish
/// while we look (a compaction removing segments) are skipped.
fn disk_usage(dir: &Path) -> Result<u64> {
    let error = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Files { path, source }
    };
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Err(e) if gone(&e) => continue,
            entries => entries.map_err(error(&dir))?,
        };
        for entry in entries {
            let entry = entry.map_err(error(&dir))?;
            let meta = match entry.metadata() {
                Err(e) if gone(&e) => continue,
                meta => meta.map_err(error(&entry.path()))?,
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total = total.saturating_add(meta.blocks().saturating_mul(512));
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_and_amplification_renderings() {
        assert_eq!(segments(0, &[]), "none");
        assert_eq!(segments(1, &[0, 2048]), "1: L1 2.0 KiB");
        assert_eq!(segments(3, &[512, 0, 3 << 20]), "3: L0 512 B, L2 3.0 MiB");
        assert_eq!(amplification(None), "-");
        assert_eq!(amplification(Some(2.125)), "2.1x");
        let s = |count, micros| stalls(&Stalls { count, micros });
        assert_eq!(s(0, 0), "none");
        assert_eq!(s(1, 250), "1, 250us in all");
        assert_eq!(s(3, 12_345_000), "3, 12.3s in all");
    }

    #[test]
    fn disk_usage_counts_allocated_blocks_below_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(disk_usage(dir.path()).unwrap(), 0);
        let write = |name: &str, len: usize| {
            let mut file = std::fs::File::create(dir.path().join(name)).unwrap();
            file.write_all(&vec![7u8; len]).unwrap();
            file.sync_all().unwrap();
        };
        write("a", 10_000);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        write("sub/b", 5_000);
        // What a file takes depends on the file system (compression,
        // block size), but written and synced data takes something.
        let used = disk_usage(dir.path()).unwrap();
        assert!(used > 0, "{used}");
        // A sparse file takes no blocks for its hole.
        let sparse = std::fs::File::create(dir.path().join("sparse")).unwrap();
        sparse.set_len(64 << 20).unwrap();
        assert!(disk_usage(dir.path()).unwrap() < used + (1 << 20));
        assert!(disk_usage(&dir.path().join("absent")).is_ok());
    }
}
