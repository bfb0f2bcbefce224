//! `dump`: every key and value of one snapshot (the newest or one of the
//! past) as JSON lines on stdout.

use std::io::{self, BufWriter};

use scribedb::Database;

use super::flush;
use super::scan::EntryWriter;
use crate::as_of::{self, AsOf};
use crate::cli::Format;
use crate::error::Result;
use crate::progress::Progress;

pub fn run(db: &Database, as_of: Option<&AsOf>) -> Result<()> {
    let mut progress = Progress::new("dumping", None);
    let mut out = BufWriter::with_capacity(128 << 10, progress.wrap_write(io::stdout().lock()));
    let txn = as_of::begin_read(db, as_of)?;
    EntryWriter::new(Format::Jsonl).write_all(&mut out, txn.iter(), Some(&mut progress))?;
    flush(out)
}
