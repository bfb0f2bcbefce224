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
    /// The view sequence number it reads.
    view: u64,
    /// The manifest generation of that view.
    manifest_generation: u64,
    /// Bytes of segment files kept for it that the current view no longer
    /// names.
    pinned_bytes: u64,
    /// Whether it is the live reader that keeps the most such bytes (at
    /// most one is, and none when no reader keeps any).
    most_pinning: bool,
}

impl Reader {
    fn new(r: ReaderInfo, most_pinning: Option<usize>) -> Reader {
        Reader {
            slot: r.slot,
            pid: r.pid,
            snapshot: r.snapshot,
            snapshot_at: human::utc(timestamp::millis(r.snapshot)),
            age_ms: r.age_ms,
            lag_ms: r.lag_ms,
            live: r.live,
            view: r.view,
            manifest_generation: r.manifest_generation,
            pinned_bytes: r.pinned_bytes,
            most_pinning: most_pinning == Some(r.slot),
        }
    }
}

/// The slot of the live reader that pins the most bytes, if any pins some:
/// the reader `stat` names.
fn most_pinning(readers: &[ReaderInfo]) -> Option<usize> {
    readers
        .iter()
        .filter(|r| r.live && r.pinned_bytes > 0)
        .max_by_key(|r| r.pinned_bytes)
        .map(|r| r.slot)
}

/// List the readers; with `reclaim`, free the dead ones first and say how
/// many, so the list shows what remains.
pub fn run(db: &Database, json: bool, reclaim: bool) -> Result<()> {
    let reclaimed = reclaim.then(|| db.reclaim_dead_readers());
    let readers = db.readers();
    let most = most_pinning(&readers);
    let report = Report {
        readers: readers.into_iter().map(|r| Reader::new(r, most)).collect(),
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
        "{:>5}  {:>8}  {:<24}  {:>8}  {:>8}  {:>6}  {:>8}  {:>10}  STATE",
        "SLOT", "PID", "SNAPSHOT", "AGE", "LAG", "VIEW", "MANIFEST", "PINNED"
    )?;
    for r in &report.readers {
        writeln!(
            out,
            "{:>5}  {:>8}  {:<24}  {:>8}  {:>8}  {:>6}  {:>8}  {:>10}  {}{}",
            r.slot,
            r.pid,
            r.snapshot_at,
            human::duration(r.age_ms),
            human::duration(r.lag_ms),
            r.view,
            r.manifest_generation,
            human::bytes(r.pinned_bytes),
            if r.live { "live" } else { "dead" },
            if r.most_pinning {
                ", pins the most"
            } else {
                ""
            }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(slot: usize, live: bool, pinned_bytes: u64) -> ReaderInfo {
        ReaderInfo {
            slot,
            pid: 100 + slot as u64,
            snapshot: timestamp::from_millis(1_796_126_400_000),
            age_ms: 5,
            lag_ms: 0,
            live,
            view: 7,
            manifest_generation: 3,
            pinned_bytes,
        }
    }

    #[test]
    fn the_live_reader_pinning_the_most_is_marked() {
        assert_eq!(most_pinning(&[]), None);
        assert_eq!(most_pinning(&[info(0, true, 0), info(1, true, 0)]), None);
        let readers = [info(0, true, 10), info(1, false, 99), info(2, true, 20)];
        assert_eq!(most_pinning(&readers), Some(2));
    }

    #[test]
    fn json_and_table_show_view_manifest_and_pinned_bytes() {
        let readers = vec![info(0, true, 0), info(4, true, 3 << 20)];
        let most = most_pinning(&readers);
        let report = Report {
            readers: readers.into_iter().map(|r| Reader::new(r, most)).collect(),
            reclaimed: None,
        };
        let json = serde_json::to_value(&report).unwrap();
        let pinning = &json["readers"][1];
        assert_eq!(pinning["view"], 7);
        assert_eq!(pinning["manifest_generation"], 3);
        assert_eq!(pinning["pinned_bytes"], 3 << 20);
        assert_eq!(pinning["most_pinning"], true);
        assert_eq!(json["readers"][0]["most_pinning"], false);

        let mut table = Vec::new();
        write_table(&mut table, &report).unwrap();
        let table = String::from_utf8(table).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].contains("VIEW") && lines[0].contains("PINNED"),
            "{table}"
        );
        assert!(
            lines[1].contains("0 B") && lines[1].ends_with("live"),
            "{table}"
        );
        assert!(
            lines[2].contains("3.0 MiB") && lines[2].ends_with("live, pins the most"),
            "{table}"
        );
    }
}
