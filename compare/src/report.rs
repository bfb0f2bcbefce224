//! The results table: rows are workloads, columns engines, each cell the
//! figure and its ratio to the best figure of the row.

use std::fmt::Write;
use std::time::Duration;

use crate::cli::Args;
use crate::engines::Kind;
use crate::workloads;

/// What a row measures, and so how its figures read and compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Wall time, in milliseconds; less is better.
    Millis,
    /// Latency, in microseconds; less is better.
    Micros,
    /// Bytes on disk; less is better.
    Bytes,
    /// Operations per second; more is better.
    PerSec,
    /// A multiple of something (amplification); less is better.
    Factor,
}

impl Metric {
    fn higher_is_better(self) -> bool {
        self == Metric::PerSec
    }

    pub fn format(self, v: f64) -> String {
        match self {
            Metric::Millis => duration_ms(v),
            Metric::Micros => duration_ms(v / 1e3),
            Metric::Bytes => {
                let mib = v / (1u64 << 20) as f64;
                if mib >= 100.0 {
                    format!("{mib:.0} MiB")
                } else {
                    format!("{mib:.1} MiB")
                }
            }
            Metric::Factor => factor(v),
            Metric::PerSec => {
                if v >= 1e6 {
                    format!("{:.2}M/s", v / 1e6)
                } else if v >= 1e4 {
                    format!("{:.0}k/s", v / 1e3)
                } else if v >= 1e3 {
                    format!("{:.1}k/s", v / 1e3)
                } else {
                    format!("{v:.0}/s")
                }
            }
        }
    }
}

/// `123x`, `12.3x`, `1.23x`.
pub fn factor(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}x")
    } else if v >= 10.0 {
        format!("{v:.1}x")
    } else {
        format!("{v:.2}x")
    }
}

/// `1234ms`, `12.3ms`, `0.45ms`, `85µs`: about three significant digits.
pub fn duration_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}ms")
    } else if ms >= 10.0 {
        format!("{ms:.1}ms")
    } else if ms >= 1.0 {
        format!("{ms:.2}ms")
    } else {
        let us = ms * 1e3;
        if us >= 10.0 {
            format!("{us:.0}µs")
        } else {
            format!("{us:.1}µs")
        }
    }
}

/// One cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Not run (yet).
    Empty,
    /// A figure in the row's metric.
    Value(f64),
    /// A word instead of a figure: "n/a", "failed".
    Text(String),
}

struct Row {
    label: String,
    metric: Metric,
    cells: Vec<Cell>,
}

/// The table: fixed rows and columns, filled in as the workloads run.
pub struct Table {
    columns: Vec<String>,
    rows: Vec<Row>,
}

impl Table {
    pub fn new(columns: Vec<String>, rows: Vec<(String, Metric)>) -> Table {
        let width = columns.len();
        Table {
            columns,
            rows: rows
                .into_iter()
                .map(|(label, metric)| Row {
                    label,
                    metric,
                    cells: vec![Cell::Empty; width],
                })
                .collect(),
        }
    }

    pub fn set(&mut self, row: usize, column: usize, cell: Cell) {
        self.rows[row].cells[column] = cell;
    }

    /// Every still-empty cell of `column` in the rows `which` picks (by
    /// index) gets `text`.
    pub fn fill_empty(&mut self, column: usize, which: impl Fn(usize) -> bool, text: &str) {
        for (i, row) in self.rows.iter_mut().enumerate() {
            if which(i) && row.cells[column] == Cell::Empty {
                row.cells[column] = Cell::Text(text.to_string());
            }
        }
    }

    /// The figure alone, for progress lines.
    pub fn format_value(&self, row: usize, v: f64) -> String {
        self.rows[row].metric.format(v)
    }

    /// For every row with figures: its label, the best column among those
    /// `among` allows, and how `column` compares with it (its ratio, 1.00
    /// when it is the best itself).
    pub fn standing(&self, column: usize, among: &[bool]) -> Vec<(String, usize, f64)> {
        let mut out = Vec::new();
        for row in &self.rows {
            let Some((best_col, best)) = best_of(row, among) else {
                continue;
            };
            if let Cell::Value(v) = row.cells[column] {
                out.push((row.label.clone(), best_col, ratio(row.metric, v, best)));
            }
        }
        out
    }

    pub fn column_name(&self, column: usize) -> &str {
        &self.columns[column]
    }

    /// The table in markdown.
    pub fn markdown(&self) -> String {
        let mut header = vec![String::new()];
        header.extend(self.columns.iter().cloned());
        let mut lines = vec![header];
        let all = vec![true; self.columns.len()];
        for row in &self.rows {
            let best = best_of(row, &all).map(|(_, b)| b);
            let mut line = vec![row.label.clone()];
            for cell in &row.cells {
                line.push(match (cell, best) {
                    (Cell::Value(v), Some(best)) => format!(
                        "{} ({:.2})",
                        row.metric.format(*v),
                        ratio(row.metric, *v, best)
                    ),
                    (Cell::Value(v), None) => row.metric.format(*v),
                    (Cell::Text(t), _) => t.clone(),
                    (Cell::Empty, _) => "-".to_string(),
                });
            }
            lines.push(line);
        }
        markdown_table(&lines)
    }
}

/// A markdown table of `lines`, the first one the header: the first column
/// left-aligned, the others right-aligned, every column padded to its width.
pub fn markdown_table(lines: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        out.push('|');
        for (c, text) in line.iter().enumerate() {
            let pad = widths[c] - text.chars().count();
            if c == 0 {
                let _ = write!(out, " {text}{} |", " ".repeat(pad));
            } else {
                let _ = write!(out, " {}{text} |", " ".repeat(pad));
            }
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            for (c, w) in widths.iter().enumerate() {
                if c == 0 {
                    let _ = write!(out, "{}|", "-".repeat(w + 2));
                } else {
                    let _ = write!(out, "{}:|", "-".repeat(w + 1));
                }
            }
            out.push('\n');
        }
    }
    out
}

/// The best figure of a row among the columns `among` allows, and its
/// column (ties go to the first column).
fn best_of(row: &Row, among: &[bool]) -> Option<(usize, f64)> {
    let mut best: Option<(usize, f64)> = None;
    for (c, cell) in row.cells.iter().enumerate() {
        if let (&Cell::Value(v), true) = (cell, among[c]) {
            let better = match best {
                None => true,
                Some((_, b)) if row.metric.higher_is_better() => v > b,
                Some((_, b)) => v < b,
            };
            if better {
                best = Some((c, v));
            }
        }
    }
    best
}

/// How many times worse than the best `v` is: 1.00 for the best itself.
fn ratio(metric: Metric, v: f64, best: f64) -> f64 {
    let r = if metric.higher_is_better() {
        best / v
    } else {
        v / best
    };
    if r.is_finite() {
        r
    } else {
        1.0
    }
}

// ---- the results file -------------------------------------------------------

/// The command that produced these results, as it would be typed.
pub fn command_line(args: &Args) -> String {
    let features = if cfg!(feature = "rocksdb") {
        " --features rocksdb"
    } else {
        ""
    };
    let mut command =
        format!("cargo run --release{features} --manifest-path compare/Cargo.toml --");
    for arg in &args.given {
        command.push(' ');
        command.push_str(arg);
    }
    command.trim_end_matches(" --").to_string()
}

pub fn results_text(
    args: &Args,
    table: &Table,
    notes: &[String],
    fs: &str,
    cores: usize,
    elapsed: Duration,
) -> String {
    let plan = &args.plan;
    let command = command_line(args);
    let mut s = String::new();
    s.push_str("# ScribeDB compared with other embedded key-value stores\n\n");
    s.push_str(&format!("```text\n{command}\n```\n\n"));
    s.push_str(&format!(
        "{} keys of {} random bytes with values of {} random bytes (fixed seed); \
         {} random gets per read run, {} range reads of {} entries; \
         databases on {fs}; {cores} cores; run time {:.0} s.\n\n",
        workloads::count(plan.keys),
        workloads::KEY_LEN,
        workloads::VALUE_LEN,
        workloads::count(plan.reads),
        workloads::count(plan.scans),
        workloads::SCAN_LEN,
        elapsed.as_secs_f64(),
    ));
    s.push_str(&table.markdown());
    s.push('\n');
    if args.engines.iter().any(|k| !k.durable()) {
        s.push_str(
            "\\* not durable: a commit that has returned can be lost in a power loss or \
             kernel crash (see the settings below).\n\n",
        );
    }
    s.push_str(
        "Each cell: the figure, and in parentheses how many times worse than the best of \
         its row it is (1.00 = best; 2.00 = twice the time, size or latency, or half the \
         throughput). Every write transaction is committed durably unless the engine's \
         settings below say otherwise; each row runs after the rows above it on the same \
         database. Sizes are allocated blocks of every file of the database. n/a: the \
         engine has no such operation, or cannot share a database between processes.\n\n",
    );
    if plan.multi_process {
        s.push_str(&format!(
            "MP rows: separate processes on one database, each window {:.1} s. One writer \
             process commits transactions of 2 puts (a random loaded key, and the clock key \
             holding CLOCK_MONOTONIC nanoseconds taken just before the commit) back to back, \
             while 1, 2 or 4 reader processes do random gets of loaded keys, {} per read \
             transaction (each reader scans the whole database once before its window). \
             gets/s is the readers' sum. Latency: a separate window with the writer and one \
             process that polls the clock key (a new read transaction per poll) and takes \
             its clock minus the stored one at each new value.\n\n",
            plan.window.as_secs_f64(),
            workloads::GETS_PER_TXN,
        ));
    }
    s.push_str("## Engine settings\n\n");
    for kind in &args.engines {
        s.push_str(&format!("- **{}**: {}\n", kind.name(), kind.settings()));
    }
    if !notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for note in notes {
            s.push_str(&format!("- {note}\n"));
        }
    }
    if let Some(column) = args.engines.iter().position(|k| *k == Kind::ScribeDb) {
        s.push_str(&standing_text(args, table, column));
    }
    s
}

/// The rows in which `column` (scribedb) is not the best: against every
/// engine, and against the durable ones where a non-durable one is best.
fn standing_text(args: &Args, table: &Table, column: usize) -> String {
    let all = vec![true; args.engines.len()];
    let durable: Vec<bool> = args.engines.iter().map(|k| k.durable()).collect();
    let overall = table.standing(column, &all);
    let among_durable = table.standing(column, &durable);
    let mut lines = Vec::new();
    for ((label, best, ratio), (_, best_durable, ratio_durable)) in
        overall.iter().zip(&among_durable)
    {
        if *best == column || *ratio <= 1.0 {
            continue;
        }
        let mut line = format!(
            "- {label}: {} is best, scribedb {ratio:.2}x",
            table.column_name(*best)
        );
        if !durable[*best] {
            if *best_durable == column || *ratio_durable <= 1.0 {
                line.push_str("; scribedb is best of the durable engines");
            } else {
                line.push_str(&format!(
                    "; of the durable engines {} is best, scribedb {ratio_durable:.2}x",
                    table.column_name(*best_durable)
                ));
            }
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return "\nscribedb is best in every row.\n".into();
    }
    format!(
        "\n## Rows where scribedb is not the best\n\n{}\n",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_point_at_the_best() {
        let mut t = Table::new(
            vec!["a".into(), "b".into(), "c".into()],
            vec![
                ("time".into(), Metric::Millis),
                ("rate".into(), Metric::PerSec),
            ],
        );
        t.set(0, 0, Cell::Value(2000.0));
        t.set(0, 1, Cell::Value(1000.0));
        t.set(0, 2, Cell::Text("n/a".into()));
        t.set(1, 0, Cell::Value(500.0));
        t.set(1, 1, Cell::Value(1000.0));
        let md = t.markdown();
        assert!(md.contains("2000ms (2.00)"), "{md}");
        assert!(md.contains("1000ms (1.00)"), "{md}");
        assert!(md.contains("1.0k/s (1.00)"), "{md}");
        assert!(md.contains("500/s (2.00)"), "{md}");
        assert!(md.contains("n/a"), "{md}");
        let all = [true; 3];
        let standing = t.standing(0, &all);
        assert_eq!(standing.len(), 2);
        assert!(standing.iter().all(|(_, best, r)| *best == 1 && *r == 2.0));
        assert!(t.standing(1, &all).iter().all(|(_, best, _)| *best == 1));
        let standing = t.standing(0, &[true, false, true]);
        assert!(standing.iter().all(|(_, best, r)| *best == 0 && *r == 1.0));
    }

    #[test]
    fn figures_keep_three_digits() {
        assert_eq!(duration_ms(1234.4), "1234ms");
        assert_eq!(duration_ms(12.34), "12.3ms");
        assert_eq!(duration_ms(0.085), "85µs");
        assert_eq!(Metric::Bytes.format((171u64 << 20) as f64), "171 MiB");
        assert_eq!(Metric::PerSec.format(1_234_567.0), "1.23M/s");
    }
}
