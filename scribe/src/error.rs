//! The errors of the tool and the exit code each maps to.

use std::fmt;
use std::io;

use crate::{escape, human};

/// Result alias for the tool.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a command can fail with.
#[derive(Debug)]
pub enum Error {
    /// From the database library.
    Db(scribedb::Error),
    /// `get` found no such key: the only error with exit code 1.
    KeyNotFound(Vec<u8>),
    /// A command-line argument that clap cannot check, such as a bad escape.
    BadArgument { what: &'static str, why: String },
    /// A line of `load` input that is not a valid record.
    BadRecord { line: u64, why: String },
    /// Reading or opening an input file.
    Input { name: String, source: io::Error },
    /// Writing to stdout.
    Output(io::Error),
    /// Looking at the files of the database directory ourselves (`stat`
    /// sums their sizes on disk).
    Files { path: String, source: io::Error },
    /// A load stopped early; says how much of it was committed.
    LoadAborted { cause: Box<Error>, committed: u64 },
    /// `put` or `load` would create a database in a directory that holds
    /// other files.
    NotEmpty { path: String },
    /// `check` found damage (its report lists it).
    Damaged { path: String, problems: u64 },
    /// A read as of a moment older than the database keeps (`--as-of`).
    HistoryUnavailable {
        requested: u64,
        oldest: u64,
        /// The retention window stored with the database.
        retention_ms: u64,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::KeyNotFound(_) => 1,
            _ => 2,
        }
    }

    /// Whether stdout was closed by its reader, which is not worth reporting.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            Error::Output(e) => e.kind() == io::ErrorKind::BrokenPipe,
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Db(e) => e.fmt(f),
            Error::KeyNotFound(key) => write!(f, "key not found: {}", escape::escape(key)),
            Error::BadArgument { what, why } => write!(f, "bad {what}: {why}"),
            Error::BadRecord { line, why } => write!(f, "line {line}: {why}"),
            Error::Input { name, source } => write!(f, "reading {name}: {source}"),
            Error::Output(e) => write!(f, "writing output: {e}"),
            Error::Files { path, source } => write!(f, "reading {path}: {source}"),
            Error::NotEmpty { path } => write!(
                f,
                "{path} is a directory with other files in it, not a ScribeDB database; \
                 give --create to make a database there anyway"
            ),
            Error::Damaged { path, problems: 1 } => write!(f, "{path}: 1 problem found"),
            Error::Damaged { path, problems } => write!(f, "{path}: {problems} problems found"),
            Error::LoadAborted {
                cause,
                committed: 0,
            } => write!(f, "{cause}; nothing was loaded"),
            Error::LoadAborted { cause, committed } => write!(
                f,
                "{cause}; the {committed} records before it were already committed"
            ),
            Error::HistoryUnavailable {
                requested,
                oldest,
                retention_ms,
            } => {
                let at = |ts: u64| human::utc(scribedb::timestamp::millis(ts));
                write!(
                    f,
                    "cannot read as of timestamp {requested} ({}): history before \
                     timestamp {oldest} ({}) is not kept ",
                    at(*requested),
                    at(*oldest)
                )?;
                match retention_ms {
                    0 => write!(
                        f,
                        "(no retention window; `scribe retention DB DURATION` sets one)"
                    ),
                    ms => write!(
                        f,
                        "(retention window {}; nothing from before the window was last \
                         set or lengthened is kept either)",
                        human::exact_duration(*ms)
                    ),
                }
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Db(e) => Some(e),
            Error::Input { source, .. } | Error::Output(source) | Error::Files { source, .. } => {
                Some(source)
            }
            Error::LoadAborted { cause, .. } => Some(cause.as_ref()),
            _ => None,
        }
    }
}

impl From<scribedb::Error> for Error {
    fn from(e: scribedb::Error) -> Self {
        Error::Db(e)
    }
}
