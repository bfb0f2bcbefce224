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
}

impl Opener {
    /// Open for writing, creating the database if missing.
    fn create(&self, path: &Path) -> Result<Database> {
        Ok(Database::builder().durability(self.durability).open(path)?)
    }

    /// Open a database that must already exist: reading a path with a typo,
    /// or some other directory, must not leave a new database behind.
    fn existing(&self, path: &Path) -> Result<Database> {
        Ok(self.existing_builder().open(path)?)
    }

    /// The options of `existing`, for a command to add its own.
    fn existing_builder(&self) -> Builder {
        Database::builder()
            .durability(self.durability)
            .create(false)
    }
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
