//! The command-line grammar: subcommands, their arguments and defaults.
//! Parsing only; what the commands do lives in `commands`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::as_of::{self, AsOf};

/// The help of `--as-of`, shared by `get`, `scan` and `dump`.
const AS_OF_HELP: &str = "\
Read the state as of WHEN instead of the newest commit. WHEN is one of:
  a commit timestamp: only digits, as stat and readers print them
    (committed_ts, snapshot), e.g. 115366400000000000;
  an RFC 3339 time: anything with a - or a :, with Z or an offset and
    optional fractional seconds, e.g. 2026-12-01T12:00:00Z or
    2026-12-01T13:00:00.250+01:00;
  a duration before now: anything else, e.g. 250ms, 90s, 10m, 1h30m.
The state is every commit at or before that moment; a moment after the
newest commit reads the newest. Moments older than the retention window
(see `scribe retention`) are an error.";

/// Inspect and edit ScribeDB databases. A database is a directory.
#[derive(Debug, Parser)]
#[command(name = "scribe", version)]
pub struct Cli {
    /// When put, del and load return: immediate = after the log is synced
    /// to disk; eventual = at once, synced in the background shortly after;
    /// none = at once, syncing left to the operating system.
    #[arg(long, global = true, value_enum, default_value_t = DurabilityArg::Immediate)]
    pub durability: DurabilityArg,

    /// Read KEY, VALUE, --prefix, --start and --end with the escapes that
    /// `scan --format tsv` writes: \xNN, \t, \n and \\. Without it they are
    /// taken byte for byte.
    #[arg(short = 'e', long, global = true)]
    pub escaped: bool,

    /// Open a database whose log is damaged by cutting the log at the
    /// damage: the commits from there on are dropped, and what was dropped
    /// is printed to stderr. Without it such a database refuses to open.
    #[arg(long, global = true)]
    pub repair: bool,

    /// Let put and load create a database in a directory that already
    /// holds other files. Without it they refuse, so that a mistyped path
    /// does not fill a folder with database files.
    #[arg(long, global = true)]
    pub create: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set KEY to VALUE.
    Put {
        /// Database directory (created if missing).
        db: PathBuf,
        key: OsString,
        value: OsString,
    },
    /// Write the value of KEY to stdout, byte for byte (exit code 1 if
    /// there is no such key).
    Get {
        /// Database directory.
        db: PathBuf,
        key: OsString,
        /// Read the state as of WHEN: a timestamp, an RFC 3339 time or a
        /// duration ago (see --help).
        #[arg(long, value_name = "WHEN", value_parser = as_of::parse, long_help = AS_OF_HELP)]
        as_of: Option<AsOf>,
    },
    /// Remove KEY (succeeds if it does not exist).
    Del {
        /// Database directory.
        db: PathBuf,
        key: OsString,
    },
    /// List keys and values in key order.
    Scan(ScanArgs),
    /// Write every key and value as JSON lines to stdout (see `load`).
    Dump {
        /// Database directory.
        db: PathBuf,
        /// Read the state as of WHEN: a timestamp, an RFC 3339 time or a
        /// duration ago (see --help).
        #[arg(long, value_name = "WHEN", value_parser = as_of::parse, long_help = AS_OF_HELP)]
        as_of: Option<AsOf>,
    },
    /// Read JSON lines as written by `dump` and put every record. Existing
    /// keys not in the input are kept.
    Load {
        /// Database directory (created if missing).
        db: PathBuf,
        /// Input file, or - for stdin.
        input: PathBuf,
        /// Commit every N records instead of once at the end. Without it
        /// the load is all or nothing.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        batch: Option<u64>,
    },
    /// Show counts, sizes, the latest commit and who is attached.
    Stat {
        /// Database directory.
        db: PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Merge the memtable and every segment into one sorted run now.
    ///
    /// Versions that no reader can see any more are dropped, and the log
    /// behind the flushed memtable is cut. Prints a one-line summary of the
    /// segments and the log before and after to stderr.
    Compact {
        /// Database directory.
        db: PathBuf,
    },
    /// Verify every checksum and invariant of the database now.
    ///
    /// Reads every record of the log not yet in segments, every block and
    /// entry of every segment, the manifest and the memtables, beside
    /// readers and a writer, without blocking them. Prints what it checked
    /// and each problem as FILE:OFFSET: WHAT; exits with 2 if it found any.
    Check {
        /// Database directory.
        db: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the registered read transactions of all processes.
    Readers {
        /// Database directory.
        db: PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// First free the slots of readers whose process has died.
        #[arg(long)]
        reclaim: bool,
    },
    /// Print the retention window, or set it to DURATION.
    ///
    /// Versions newer than now minus the window are kept, so that --as-of
    /// can read any moment within it. The window is stored with the
    /// database: setting it changes it for every process. History from
    /// before a longer window was set is not brought back.
    Retention {
        /// Database directory.
        db: PathBuf,
        /// New window, e.g. 1h, 30m, 7days or 1h30m; 0 keeps no history.
        #[arg(value_name = "DURATION", value_parser = as_of::parse_retention)]
        window: Option<Duration>,
    },
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Database directory.
    pub db: PathBuf,
    /// Only keys starting with P.
    #[arg(long, value_name = "P")]
    pub prefix: Option<OsString>,
    /// Only keys at or after S.
    #[arg(long, value_name = "S")]
    pub start: Option<OsString>,
    /// Only keys before E.
    #[arg(long, value_name = "E")]
    pub end: Option<OsString>,
    /// Descending key order.
    #[arg(long)]
    pub reverse: bool,
    /// Stop after N keys.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// tsv: key<TAB>value with \xNN, \t, \n and \\ escapes; jsonl: as `dump`.
    #[arg(long, value_enum, default_value_t = Format::Tsv)]
    pub format: Format,
    /// Read the state as of WHEN: a timestamp, an RFC 3339 time or a
    /// duration ago (see --help).
    #[arg(long, value_name = "WHEN", value_parser = as_of::parse, long_help = AS_OF_HELP)]
    pub as_of: Option<AsOf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Tsv,
    Jsonl,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    Immediate,
    Eventual,
    None,
}

impl From<DurabilityArg> for scribedb::Durability {
    fn from(d: DurabilityArg) -> Self {
        match d {
            DurabilityArg::Immediate => scribedb::Durability::Immediate,
            DurabilityArg::Eventual => scribedb::Durability::Eventual,
            DurabilityArg::None => scribedb::Durability::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }
}
