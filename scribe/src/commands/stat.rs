//! `stat`: counts, sizes, the latest commit and who is attached, as a
//! table or as one JSON object.

use std::io::Write;

use scribedb::{timestamp, Database};
use serde::Serialize;

use super::{flush, stdout};
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
    ];
    for (name, value) in rows {
        writeln!(out, "{name:<16} {value}")?;
    }
    Ok(())
}
