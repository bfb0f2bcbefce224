//! The one error type of the crate.
//!
//! Every variant is something a caller can act on; none is detected by
//! matching on its text.

use std::path::PathBuf;

/// Result alias used throughout ScribeDB.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in ScribeDB.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another write transaction (in this or another process) held the writer
    /// role for longer than the configured writer timeout.
    #[error("writer role is busy: held by {holder}")]
    WriterBusy {
        /// Who holds the role, e.g. `pid 1234 since 2.1s`.
        holder: String,
    },

    /// Every reader slot of the coordination file is taken by a live reader.
    #[error("all {max} reader slots are in use by live read transactions")]
    ReadersFull {
        /// The number of reader slots the database was created with.
        max: u32,
    },

    /// Every process slot of the coordination file is taken by a live handle.
    #[error("all {max} process slots are in use by open database handles")]
    ProcessesFull {
        /// The number of process slots.
        max: u32,
    },

    /// The key is empty or longer than the maximum.
    #[error("key of {len} bytes is not allowed: keys are 1 to {max} bytes")]
    KeyTooLarge {
        /// Length of the rejected key.
        len: usize,
        /// Largest accepted key length.
        max: usize,
    },

    /// The value is longer than the maximum.
    #[error("value of {len} bytes is too large: the limit is {max} bytes")]
    ValueTooLarge {
        /// Length of the rejected value.
        len: usize,
        /// Largest accepted value length.
        max: usize,
    },

    /// A file is damaged: what is wrong, and where.
    #[error("{file}: corrupted at offset {offset}: {what}")]
    Corrupted {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        what: String,
    },

    /// The write-ahead log is damaged before its tail, so committed data
    /// would be lost by cutting it. Opening with `repair(true)` drops the
    /// damaged record and everything after it.
    #[error(
        "{file}: write-ahead log damaged at offset {offset} ({what}); {records_after} valid \
         commit record(s) follow the damage. Nothing was changed. Open with repair to cut \
         the log at this offset and drop them."
    )]
    WalDamaged {
        /// The log file.
        file: PathBuf,
        /// Offset in that file of the first damaged record.
        offset: u64,
        /// What is wrong with it.
        what: String,
        /// Number of intact records found after the damage.
        records_after: u64,
    },

    /// The file was written by a newer (or unknown) format version.
    #[error(
        "{file}: format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Version this build understands.
        supported: u32,
    },

    /// Opening without `create`: the path is not an existing database.
    #[error("{path}: {why}")]
    NotADatabase {
        /// The path given.
        path: PathBuf,
        /// What is missing.
        why: &'static str,
    },

    /// The file is not a ScribeDB file of the expected kind.
    #[error("{file}: not a ScribeDB {kind} file (bad magic)")]
    BadMagic {
        /// The file.
        file: PathBuf,
        /// Which kind of file was expected.
        kind: &'static str,
    },

    /// A previous write failed in a way that leaves the in-memory state
    /// uncertain (for example an fsync error). Reopen the database; recovery
    /// replays what is durable.
    #[error("database handle is poisoned by an earlier write failure: {0}; reopen it")]
    Poisoned(String),

    /// The commit's record was written to the log, but making it durable
    /// (the log's sync) or inserting it failed, so whether it is part of
    /// the database is not known to this handle: it is if its record
    /// survives. The handle is poisoned. To find out, reopen the database
    /// and read what the commit wrote; do not blindly retry a commit that
    /// is not idempotent. Every other commit error means the commit is
    /// absent, now and after any reopen.
    #[error(
        "the outcome of commit {ts} is unknown: {why}; reopen the database and read \
         its keys to learn whether it happened before retrying"
    )]
    CommitOutcomeUnknown {
        /// The timestamp the commit would have.
        ts: u64,
        /// What failed.
        why: String,
    },

    /// A read as of a past moment asked for history that is no longer kept:
    /// the oldest readable timestamp is `oldest` (see
    /// `Builder::retention`).
    #[error(
        "history before timestamp {oldest} is not kept (asked for {requested}); \
         a longer retention window keeps more"
    )]
    HistoryUnavailable {
        /// The timestamp asked for.
        requested: u64,
        /// The oldest timestamp that can be read now.
        oldest: u64,
    },

    /// The handle was opened by the parent of this process, before a
    /// `fork()`: a child must open the database itself (in each worker,
    /// after the fork). A handle used from a forked child would act as its
    /// parent (whose locks the child shares), so it refuses to work and,
    /// when dropped in the child, leaves the shared state alone.
    #[error(
        "this database handle was opened by process {opened_by} before a fork; \
         open the database in each worker process, after the fork"
    )]
    Forked {
        /// The process that opened the handle.
        opened_by: u64,
    },

    /// An option of the builder is out of range.
    #[error("invalid option {option}: {why}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// What is wrong with its value.
        why: String,
    },

    /// An I/O error from the operating system.
    #[error("{context}: {source}")]
    Io {
        /// What ScribeDB was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn corrupted(
        file: impl Into<PathBuf>,
        offset: u64,
        what: impl Into<String>,
    ) -> Self {
        Error::Corrupted {
            file: file.into(),
            offset,
            what: what.into(),
        }
    }
}

/// Attach a context string to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}
