//! `put`, `get` and `del`: one key at a time, one transaction each.

use std::io::Write;

use scribedb::Database;

use super::{flush, stdout};
use crate::as_of::{self, AsOf};
use crate::error::{Error, Result};

pub fn put(db: &Database, key: &[u8], value: &[u8]) -> Result<()> {
    let mut txn = db.begin_write()?;
    txn.put(key, value)?;
    txn.commit()?;
    Ok(())
}

/// Write the value exactly as stored: no newline, no escaping.
pub fn get(db: &Database, key: &[u8], as_of: Option<&AsOf>) -> Result<()> {
    let txn = as_of::begin_read(db, as_of)?;
    let value = txn
        .get(key)?
        .ok_or_else(|| Error::KeyNotFound(key.to_vec()))?;
    let mut out = stdout();
    out.write_all(value).map_err(Error::Output)?;
    flush(out)
}

pub fn del(db: &Database, key: &[u8]) -> Result<()> {
    let mut txn = db.begin_write()?;
    txn.delete(key)?;
    txn.commit()?;
    Ok(())
}
