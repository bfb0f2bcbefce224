//! Compares ScribeDB with other embedded key-value stores on the same
//! workloads and prints one markdown table.
//!
//! ```text
//! cargo run --release --manifest-path compare/Cargo.toml -- [--keys N] [--reads M]
//!     [--engines scribedb,lmdb,redb,fjall,sqlite,rocksdb] [--window-ms W]
//!     [--no-multi-process] [--out FILE] [--dir DIR]
//! cargo run --release --manifest-path compare/Cargo.toml -- --churn [--engines LIST]
//!     [--churn-keys N] [--churn-writes W] [--churn-batch B] [--churn-value V]
//!     [--churn-reader]
//! cargo run --release --manifest-path compare/Cargo.toml -- --recovery
//!     [--recovery-writes LIST]
//! ```
//!
//! The first form runs every workload and prints one table; `--churn`
//! overwrites a small key set durably for a long time and reports space and
//! write amplification; `--recovery` times ScribeDB's open after a simulated
//! power cut, against the length of the history before it.
//!
//! RocksDB is left out unless built with `--features rocksdb`, which
//! compiles RocksDB's C++ sources (long) and needs libclang for its bindings.
//! This crate is a workspace of its own, so the main workspace's builds and
//! tests never compile the engines it compares with.

mod churn;
mod cli;
mod engines;
mod procs;
mod recovery;
mod report;
mod workloads;

use std::collections::BTreeMap;
use std::time::Instant;

use report::Table;
use workloads::{Column, Data, Row};

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() {
    let result = match procs::child_args() {
        Ok(Some(args)) => workloads::child(args),
        Ok(None) => run(),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let Some(args) = cli::parse_args()? else {
        return Ok(());
    };
    let plan = &args.plan;
    let started = Instant::now();
    let parent = cli::database_parent(args.dir.clone())?;
    let fs = cli::fs_type(&parent);
    if args.mode != cli::Mode::Compare {
        let cores = std::thread::available_parallelism().map_or(0, |c| c.get());
        if fs == "tmpfs" {
            eprintln!("warning: the databases are on tmpfs, where syncing costs nothing");
        }
        return match args.mode {
            cli::Mode::Churn => churn::run(&args, &parent, &fs, cores),
            _ => recovery::run(&args, &parent, &fs, cores),
        };
    }
    let tmp = tempfile::Builder::new()
        .prefix("scribedb-compare-")
        .tempdir_in(&parent)?;
    let cores = std::thread::available_parallelism().map_or(0, |c| c.get());
    eprintln!(
        "scribedb-compare: {} keys, {} reads, engines {}; databases on {fs}, {cores} cores",
        workloads::count(plan.keys),
        workloads::count(plan.reads),
        args.engines
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(",")
    );
    if fs == "tmpfs" {
        eprintln!("warning: the databases are on tmpfs, where syncing costs nothing");
    }

    eprintln!("generating data...");
    let data = Data::new(plan);
    let rows = Row::all(plan);
    let mut table = Table::new(
        args.engines
            .iter()
            .map(|k| {
                let mark = if k.durable() { "" } else { "*" };
                format!("{}{mark}", k.name())
            })
            .collect(),
        rows.iter().map(|r| (r.label(plan), r.metric())).collect(),
    );
    let mut checks = BTreeMap::new();
    let mut notes = Vec::new();

    for (column, &kind) in args.engines.iter().enumerate() {
        let mut col = Column {
            table: &mut table,
            rows: &rows,
            plan,
            column,
            kind,
            checks: &mut checks,
        };
        eprintln!("{}: single process", kind.name());
        let dir = tmp.path().join(kind.name());
        if let Err(e) = workloads::single_process(&mut col, &data, &dir) {
            eprintln!("  [{}] failed: {e}", kind.name());
            notes.push(format!(
                "{}: a single-process workload failed: {e}",
                kind.name()
            ));
        }
        let _ = std::fs::remove_dir_all(&dir);
        if plan.multi_process && kind.multi_process() {
            eprintln!("{}: multi-process", kind.name());
            let dir = tmp.path().join(format!("{}-mp", kind.name()));
            if let Err(e) = workloads::multi_process(&mut col, &data, &dir) {
                eprintln!("  [{}] failed: {e}", kind.name());
                notes.push(format!(
                    "{}: a multi-process workload failed: {e}",
                    kind.name()
                ));
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        // What is still empty failed, or (multi-process rows of engines
        // that cannot share a database) does not apply.
        let mp_row = |i: usize| rows[i].multi_process();
        if !kind.multi_process() {
            table.fill_empty(column, mp_row, "n/a");
        }
        table.fill_empty(column, |_| true, "failed");
    }

    for (what, values) in &checks {
        if values.iter().any(|(_, v)| *v != values[0].1) {
            let list: Vec<String> = values.iter().map(|(e, v)| format!("{e} {v}")).collect();
            notes.push(format!("engines disagree on {what}: {}", list.join(", ")));
        }
    }

    let text = report::results_text(&args, &table, &notes, &fs, cores, started.elapsed());
    println!("{text}");
    std::fs::write(&args.out, &text).map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    let cwd = std::env::current_dir().unwrap_or_default();
    eprintln!(
        "done in {:.0} s; results also written to {}",
        started.elapsed().as_secs_f64(),
        args.out.strip_prefix(&cwd).unwrap_or(&args.out).display()
    );
    Ok(())
}
