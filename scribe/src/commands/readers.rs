//! `readers`: the registered read transactions of every process, and
//! reclaiming the slots of dead ones.

use std::io::Write;

use scribedb::{timestamp, Database, ReaderInfo};
use serde::Serialize;

use super::{flush, stdout};
use crate::error::{Error, Result};
use crate::human;

#[derive(Serialize)]
struct Report {
    readers: Vec<Reader>,
    /// Dead readers freed before listing; present only with `--reclaim`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reclaimed: Option<usize>,
}

#[derive(Serialize)]
struct Reader {
    slot: usize,
    pid: u64,
    snapshot: u64,
    snapshot_at: String,
    age_ms: u64,
    lag_ms: u64,
    live: bool,
}

impl From<ReaderInfo> for Reader {
    fn from(r: ReaderInfo) -> Reader {
        Reader {
            slot: r.slot,
            pid: r.pid,
            snapshot: r.snapshot,
            snapshot_at: human::utc(timestamp::millis(r.snapshot)),
            age_ms: r.age_ms,
            lag_ms: r.lag_ms,
            live: r.live,
        }
    }
}

/// List the readers; with `reclaim`, free the dead ones first and say how
/// many, so the list shows what remains.
pub fn run(db: &Database, json: bool, reclaim: bool) -> Result<()> {
    let reclaimed = reclaim.then(|| db.reclaim_dead_readers());
    let report = Report {
        readers: db.readers().into_iter().map(Reader::from).collect(),
        reclaimed,
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

fn write_table(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    if let Some(n) = report.reclaimed {
        writeln!(out, "reclaimed {n} dead reader slot(s)")?;
    }
    if report.readers.is_empty() {
        return writeln!(out, "no readers");
    }
    writeln!(
        out,
        "{:>5}  {:>8}  {:<24}  {:>8}  {:>8}  STATE",
        "SLOT", "PID", "SNAPSHOT", "AGE", "LAG"
    )?;
    for r in &report.readers {
        writeln!(
            out,
            "{:>5}  {:>8}  {:<24}  {:>8}  {:>8}  {}",
            r.slot,
            r.pid,
            r.snapshot_at,
            human::duration(r.age_ms),
            human::duration(r.lag_ms),
            if r.live { "live" } else { "dead" }
        )?;
    }
    Ok(())
}
