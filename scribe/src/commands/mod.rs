//! Dispatch of subcommands, and what they share: opening the database the
//! right way for reading or writing, decoding byte-string arguments, and
//! buffered stdout.

mod check;
mod compact;
mod dump;
mod kv;
mod load;
mod readers;
mod retention;
mod scan;
mod stat;

use std::ffi::OsStr;
use std::io::{self, BufWriter, StdoutLock, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use scribedb::{Builder, Database, Durability, Stats};

use crate::as_of;
use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::escape;

/// Run the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let args = ArgDecoder {
        escaped: cli.escaped,
    };
    let opener = Opener {
        durability: cli.durability.into(),
        repair: cli.repair,
        create_anywhere: cli.create,
    };
    match cli.command {
        Command::Put { db, key, value } => kv::put(
            &opener.create(&db)?,
            &args.decode("key", &key)?,
            &args.decode("value", &value)?,
        ),
        Command::Get { db, key, as_of } => kv::get(
            &opener.existing(&db)?,
            &args.decode("key", &key)?,
            as_of.as_ref(),
        ),
        Command::Del { db, key } => kv::del(&opener.existing(&db)?, &args.decode("key", &key)?),
        Command::Scan(scan) => {
            let bounds = scan::Bounds::new(
                args.decode_optional("prefix", scan.prefix.as_deref())?
                    .as_deref(),
                args.decode_optional("start", scan.start.as_deref())?
                    .as_deref(),
                args.decode_optional("end", scan.end.as_deref())?.as_deref(),
            );
            let db = opener.existing(&scan.db)?;
            let txn = as_of::begin_read(&db, scan.as_of.as_ref())?;
            scan::run(&txn, &bounds, scan.reverse, scan.limit, scan.format)
        }
        Command::Dump { db, as_of } => dump::run(&opener.existing(&db)?, as_of.as_ref()),
        Command::Load { db, input, batch } => load::run(&opener.create(&db)?, &input, batch),
        Command::Stat { db, json } => stat::run(&opener.existing(&db)?, json),
        Command::Compact { db } => compact::run(&opener.existing(&db)?),
        Command::Check { db, json } => check::run(&opener.existing(&db)?, json),
        Command::Readers { db, json, reclaim } => {
            readers::run(&opener.existing(&db)?, json, reclaim)
        }
        Command::Retention { db, window } => retention::run(&opener, &db, window),
    }
}

/// Opens databases with the options of the command line.
struct Opener {
    durability: Durability,
    /// `--repair`: cut a damaged log and say what was dropped.
    repair: bool,
    /// `--create`: a new database may go into a directory with other files.
    create_anywhere: bool,
}

impl Opener {
    /// Open for writing, creating the database if missing, but not in a
    /// directory that holds other files (unless `--create`).
    fn create(&self, path: &Path) -> Result<Database> {
        if !self.create_anywhere && foreign_files(path) {
            return Err(Error::NotEmpty {
                path: path.display().to_string(),
            });
        }
        self.opened(self.builder().open(path)?)
    }

    /// Open a database that must already exist: reading a path with a typo,
    /// or some other directory, must not leave a new database behind.
    fn existing(&self, path: &Path) -> Result<Database> {
        self.opened(self.existing_builder().open(path)?)
    }

    /// The options of `existing`, for a command to add its own.
    fn existing_builder(&self) -> Builder {
        self.builder().create(false)
    }

    fn builder(&self) -> Builder {
        Database::builder()
            .durability(self.durability)
            .repair(self.repair)
    }

    /// Say on stderr what opening had to give up (a torn tail, or what
    /// `--repair` cut), so that it is never silent.
    fn opened(&self, db: Database) -> Result<Database> {
        let report = db.recovery_report();
        if let Some(why) = &report.coord_rebuilt {
            eprintln!(
                "scribe: the coordination file was damaged ({why}); it and the memtable \
                 were rebuilt from the log"
            );
        }
        if let Some((at, dropped)) = report.repaired {
            eprintln!(
                "scribe: repaired the log: cut at position {at}, dropping {dropped} intact \
                 commit record(s) after the damage"
            );
        }
        if let Some((at, bytes)) = report.torn_tail {
            eprintln!(
                "scribe: the log ended in a torn record at position {at} (an unacknowledged \
                 commit): {bytes} bytes cleared"
            );
            if report.torn_records > 0 {
                eprintln!(
                    "scribe: {} later record(s) went with it: they were written after it \
                     and never synced, and a machine crash kept them but not it",
                    report.torn_records
                );
            }
        }
        Ok(db)
    }
}

/// Whether `path` is an existing directory with files that are not a
/// database's.
fn foreign_files(path: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(path) else {
        return false;
    };
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let ours = |n: &str| n == "coord" || n == "wal" || n.starts_with("wal-");
    !names.is_empty() && !names.iter().any(|n| ours(n))
}

/// Turns byte-string arguments (keys, values, range bounds) into bytes.
struct ArgDecoder {
    /// Whether arguments use the escapes of `escape`; otherwise they are
    /// taken byte for byte.
    escaped: bool,
}

impl ArgDecoder {
    fn decode(&self, what: &'static str, arg: &OsStr) -> Result<Vec<u8>> {
        let raw = arg.as_bytes();
        if !self.escaped {
            return Ok(raw.to_vec());
        }
        escape::unescape(raw).map_err(|why| Error::BadArgument { what, why })
    }

    fn decode_optional(&self, what: &'static str, arg: Option<&OsStr>) -> Result<Option<Vec<u8>>> {
        arg.map(|arg| self.decode(what, arg)).transpose()
    }
}

/// Bytes of log records not yet in segments: the part of the log that is
/// not cut, which recovery would replay.
fn live_log(stats: &Stats) -> u64 {
    stats.wal_bytes.saturating_sub(stats.log_start)
}

/// Buffered stdout for a command's output.
fn stdout() -> BufWriter<StdoutLock<'static>> {
    BufWriter::with_capacity(128 << 10, io::stdout().lock())
}

/// Flush a command's output, reporting a failure to write it.
fn flush(mut out: impl Write) -> Result<()> {
    out.flush().map_err(Error::Output)
}
