//! The engines under comparison, behind one small interface.
//!
//! Every engine stores byte keys and byte values in one ordered table, makes
//! each write transaction durable before `write` returns (unless its settings
//! say otherwise), and reads from a consistent snapshot.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::Result;

mod fjall;
mod lmdb;
mod redb;
#[cfg(feature = "rocksdb")]
mod rocksdb;
mod scribedb;
mod sqlite;

/// How a process opens a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The only process using the database (the single-process workloads).
    Exclusive,
    /// The one writing process among several.
    SharedWriter,
    /// A reading process beside a writing one.
    SharedReader,
}

/// One open database.
pub trait Engine: Sync {
    /// Put every pair in one transaction and commit it.
    fn write(&self, pairs: &[(&[u8], &[u8])]) -> Result<()>;

    /// As `write`; how long the commit call itself took (the puts before
    /// it not counted, where the engine has a separate commit call).
    fn write_timed(&self, pairs: &[(&[u8], &[u8])]) -> Result<Duration> {
        let t = Instant::now();
        self.write(pairs)?;
        Ok(t.elapsed())
    }

    /// Delete every key in one transaction and commit it.
    fn remove(&self, keys: &[&[u8]]) -> Result<()>;

    /// A read snapshot. Each thread takes its own.
    fn reader(&self) -> Result<Box<dyn Reader + '_>>;

    /// Compact the database if the engine can; `false` when it cannot.
    fn compact(&mut self) -> Result<bool>;
}

/// A consistent read view.
pub trait Reader {
    /// Look `key` up and show its value to `visit`; whether it was found.
    fn get(&mut self, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool>;

    /// Show up to `limit` entries from `start` on, in key order, to `visit`;
    /// how many there were.
    fn scan(
        &mut self,
        start: &[u8],
        limit: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize>;
}

/// The engines (and configurations) this program knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ScribeDb,
    Lmdb,
    Redb,
    Fjall,
    SqliteFull,
    SqliteNormal,
    RocksDb,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::ScribeDb,
        Kind::Lmdb,
        Kind::Redb,
        Kind::Fjall,
        Kind::SqliteFull,
        Kind::SqliteNormal,
        Kind::RocksDb,
    ];

    /// The column heading, also the name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ScribeDb => "scribedb",
            Kind::Lmdb => "lmdb",
            Kind::Redb => "redb",
            Kind::Fjall => "fjall",
            Kind::SqliteFull => "sqlite-full",
            Kind::SqliteNormal => "sqlite-normal",
            Kind::RocksDb => "rocksdb",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this build contains the engine.
    pub fn compiled(self) -> bool {
        self != Kind::RocksDb || cfg!(feature = "rocksdb")
    }

    /// Whether several processes can use one database at once, one writing
    /// while the others read its commits.
    pub fn multi_process(self) -> bool {
        matches!(
            self,
            Kind::ScribeDb | Kind::Lmdb | Kind::Redb | Kind::SqliteFull | Kind::SqliteNormal
        )
    }

    /// Whether a commit survives a power loss once it has returned.
    pub fn durable(self) -> bool {
        self != Kind::SqliteNormal
    }

    /// The crate and version it is reached through, and how it is set up.
    pub fn settings(self) -> &'static str {
        match self {
            Kind::ScribeDb => scribedb::SETTINGS,
            Kind::Lmdb => lmdb::SETTINGS,
            Kind::Redb => redb::SETTINGS,
            Kind::Fjall => fjall::SETTINGS,
            Kind::SqliteFull => sqlite::SETTINGS_FULL,
            Kind::SqliteNormal => sqlite::SETTINGS_NORMAL,
            Kind::RocksDb => ROCKSDB_SETTINGS,
        }
    }

    /// Open (creating if needed) the database in directory `dir`.
    pub fn open(self, dir: &Path, access: Access) -> Result<Box<dyn Engine>> {
        std::fs::create_dir_all(dir)?;
        Ok(match self {
            Kind::ScribeDb => Box::new(scribedb::ScribeDb::open(dir, access)?),
            Kind::Lmdb => Box::new(lmdb::Lmdb::open(dir, access)?),
            Kind::Redb => Box::new(self::redb::Redb::open(dir, access)?),
            Kind::Fjall => Box::new(self::fjall::Fjall::open(dir, access)?),
            Kind::SqliteFull => Box::new(sqlite::Sqlite::open(dir, access, true)?),
            Kind::SqliteNormal => Box::new(sqlite::Sqlite::open(dir, access, false)?),
            Kind::RocksDb => open_rocksdb(dir, access)?,
        })
    }
}

#[cfg(feature = "rocksdb")]
const ROCKSDB_SETTINGS: &str = self::rocksdb::SETTINGS;
#[cfg(not(feature = "rocksdb"))]
const ROCKSDB_SETTINGS: &str = "not built (enable the `rocksdb` cargo feature)";

#[cfg(feature = "rocksdb")]
fn open_rocksdb(dir: &Path, access: Access) -> Result<Box<dyn Engine>> {
    Ok(Box::new(self::rocksdb::RocksDb::open(dir, access)?))
}

#[cfg(not(feature = "rocksdb"))]
fn open_rocksdb(_dir: &Path, _access: Access) -> Result<Box<dyn Engine>> {
    Err("this build has no RocksDB: rebuild with `--features rocksdb`".into())
}

/// The cache given to engines that keep their own (all but the ones that
/// read through a memory map of their files).
pub const CACHE_BYTES: usize = 1 << 30;
