//! ScribeDB: an embedded, transactional key-value database that many
//! processes on one machine share. Any number of them read, one writes at a
//! time, and nobody waits.
//!
//! ```no_run
//! # fn main() -> scribedb::Result<()> {
//! let db = scribedb::Database::open("my.db")?;
//! let mut w = db.begin_write()?;
//! w.put(b"hello", b"world")?;
//! let ts = w.commit()?;
//!
//! let r = db.begin_read()?;
//! assert!(r.snapshot_ts() >= ts);
//! assert_eq!(r.get(b"hello")?, Some(&b"world"[..]));
//! for kv in r.prefix(b"he") {
//!     let (key, value) = kv?;
//!     println!("{key:?} = {value:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! See `docs/design.md` in the repository for the file formats, the commit
//! protocol and recovery.

#![warn(missing_docs)]

mod check;
mod commit;
mod coord;
mod db;
mod entry;
mod error;
#[doc(hidden)]
pub mod faults;
mod fork;
#[doc(hidden)]
pub mod fuzzing;
mod gc;
mod history;
mod hlc;
mod io;
mod logfiles;
mod logview;
mod maint;
mod manifest;
mod memtable;
mod merge;
#[doc(hidden)]
pub mod powerloss;
mod prefetch;
mod recovery;
mod segment;
mod txn;
mod view;
mod wal;
mod write_buffer;

pub use check::{CheckReport, Problem};
pub use db::{
    Builder, Database, Durability, ReaderInfo, Stats, WriterInfo, MAX_KEY_LEN, MAX_VALUE_LEN,
};
pub use error::{Error, Result};
pub use history::KeyVersion;
pub use txn::{Range, ReadTxn, WriteRange, WriteTxn};
pub use wal::RecoveryReport;

// The README's examples are compiled as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Commit timestamps: 48 bits of wall-clock milliseconds, 16 of counter.
pub mod timestamp {
    pub use crate::hlc::{from_millis, millis, now_millis};
}
