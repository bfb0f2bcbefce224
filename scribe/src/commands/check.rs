//! `check`: verify every checksum and invariant of a database in use, and
//! print what was checked and each problem found, as text or as one JSON
//! object. Damage makes the command fail (exit code 2) after its report.

use std::io::Write;

use scribedb::{timestamp, CheckReport, Database};
use serde::Serialize;

use super::{flush, stdout};
use crate::error::{Error, Result};
use crate::human;

#[derive(Serialize)]
struct Report {
    path: String,
    /// Whether no problem was found.
    ok: bool,
    /// The commit the check ran at, and its UTC time (absent before the
    /// first commit).
    snapshot: u64,
    snapshot_at: Option<String>,
    manifest_generation: u64,
    segments: u64,
    segment_entries: u64,
    segment_bytes: u64,
    memtables: u64,
    memtable_versions: u64,
    log_files: u64,
    log_records: u64,
    log_bytes: u64,
    problems: Vec<Problem>,
    /// Problems found beyond those listed.
    problems_left_out: u64,
}

#[derive(Serialize)]
struct Problem {
    file: String,
    offset: u64,
    what: String,
}

impl Report {
    fn new(db: &Database, r: CheckReport) -> Report {
        Report {
            path: db.path().display().to_string(),
            ok: r.is_ok(),
            snapshot: r.snapshot,
            snapshot_at: (r.snapshot != 0).then(|| human::utc(timestamp::millis(r.snapshot))),
            manifest_generation: r.manifest_generation,
            segments: r.segments,
            segment_entries: r.segment_entries,
            segment_bytes: r.segment_bytes,
            memtables: r.memtables,
            memtable_versions: r.memtable_versions,
            log_files: r.log_files,
            log_records: r.log_records,
            log_bytes: r.log_bytes,
            problems: r
                .problems
                .into_iter()
                .map(|p| Problem {
                    file: p.file.display().to_string(),
                    offset: p.offset,
                    what: p.what,
                })
                .collect(),
            problems_left_out: r.problems_left_out,
        }
    }

    fn problem_count(&self) -> u64 {
        self.problems.len() as u64 + self.problems_left_out
    }
}

pub fn run(db: &Database, json: bool) -> Result<()> {
    let report = Report::new(db, db.check()?);
    let mut out = stdout();
    if json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(|e| Error::Output(e.into()))?;
        writeln!(out).map_err(Error::Output)?;
    } else {
        write_text(&mut out, &report).map_err(Error::Output)?;
    }
    flush(out)?;
    match report.problem_count() {
        0 => Ok(()),
        problems => Err(Error::Damaged {
            path: report.path,
            problems,
        }),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn write_text(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    let at = match &r.snapshot_at {
        Some(time) => format!("commit {} ({time})", r.snapshot),
        None => "no commit yet".to_string(),
    };
    writeln!(out, "checked {} at {at}", r.path)?;
    let manifest = match r.manifest_generation {
        0 => "none yet".to_string(),
        g => format!("generation {g}"),
    };
    let rows = [
        ("manifest", manifest),
        (
            "segments",
            format!(
                "{} ({}, {})",
                r.segments,
                plural(r.segment_entries, "entry", "entries"),
                human::bytes(r.segment_bytes)
            ),
        ),
        (
            "memtables",
            format!(
                "{} ({})",
                r.memtables,
                plural(r.memtable_versions, "version", "versions")
            ),
        ),
        (
            "log",
            format!(
                "{}, {}, {}",
                plural(r.log_files, "file", "files"),
                plural(r.log_records, "record", "records"),
                human::bytes(r.log_bytes)
            ),
        ),
    ];
    for (name, value) in rows {
        writeln!(out, "  {name:<10} {value}")?;
    }
    if r.ok {
        return writeln!(out, "no problems found");
    }
    writeln!(out, "{}:", plural(r.problem_count(), "problem", "problems"))?;
    for p in &r.problems {
        writeln!(out, "{}:{}: {}", p.file, p.offset, p.what)?;
    }
    if r.problems_left_out > 0 {
        writeln!(out, "... and {} more", r.problems_left_out)?;
    }
    Ok(())
}
