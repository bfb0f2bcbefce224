//! `load`: put the records of a JSON-lines stream (the format of `dump`),
//! in one transaction or in batches.
//!
//! A batch is parsed completely before the writer role is taken, so a slow
//! or stalled input never blocks other writers, and a bad line in a batch
//! aborts it before anything of it is written.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use scribedb::{Database, MAX_KEY_LEN, MAX_VALUE_LEN};

use crate::error::{Error, Result};
use crate::jsonl;
use crate::progress::Progress;

/// What a load has committed so far.
#[derive(Default)]
struct Committed {
    records: u64,
    transactions: u64,
}

/// Load `input` ("-" for stdin), committing every `batch` records, or once
/// at the end without it.
pub fn run(db: &Database, input: &Path, batch: Option<u64>) -> Result<()> {
    let mut committed = Committed::default();
    match load(db, input, batch, &mut committed) {
        Ok(()) => {
            eprintln!(
                "loaded {} records in {} transaction(s)",
                committed.records, committed.transactions
            );
            Ok(())
        }
        Err(cause) => Err(Error::LoadAborted {
            cause: Box::new(cause),
            committed: committed.records,
        }),
    }
}

fn load(db: &Database, input: &Path, batch: Option<u64>, committed: &mut Committed) -> Result<()> {
    let (source, name, size) = open_input(input)?;
    let mut progress = Progress::new("loading", size);
    let mut reader = BufReader::with_capacity(256 << 10, progress.wrap_read(source));
    let batch = batch.unwrap_or(u64::MAX);
    let mut pending = Vec::new();
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| Error::Input {
                name: name.clone(),
                source,
            })?;
        if read == 0 {
            break;
        }
        line_no += 1;
        if jsonl::is_blank(&line) {
            continue;
        }
        let record = jsonl::parse_record(&line)
            .and_then(check_limits)
            .map_err(|why| Error::BadRecord { line: line_no, why })?;
        pending.push(record);
        progress.record();
        if pending.len() as u64 >= batch {
            commit(db, &mut pending, committed, &mut progress)?;
        }
    }
    if !pending.is_empty() {
        commit(db, &mut pending, committed, &mut progress)?;
    }
    Ok(())
}

/// The input stream, its name for messages, and its size if known.
fn open_input(path: &Path) -> Result<(Box<dyn Read>, String, Option<u64>)> {
    if path.as_os_str() == "-" {
        return Ok((Box::new(io::stdin().lock()), "stdin".into(), None));
    }
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| Error::Input {
        name: name.clone(),
        source,
    })?;
    let size = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    Ok((Box::new(file), name, size))
}

/// Reject what the database would, while the line number is known.
fn check_limits((key, value): (Vec<u8>, Vec<u8>)) -> Result<(Vec<u8>, Vec<u8>), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(format!(
            "key of {} bytes: keys are 1 to {MAX_KEY_LEN} bytes",
            key.len()
        ));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(format!(
            "value of {} bytes: the limit is {MAX_VALUE_LEN} bytes",
            value.len()
        ));
    }
    Ok((key, value))
}

/// Put and commit the pending records in one transaction. The records are
/// handed over one by one, so they are not held twice in memory.
fn commit(
    db: &Database,
    pending: &mut Vec<(Vec<u8>, Vec<u8>)>,
    committed: &mut Committed,
    progress: &mut Progress,
) -> Result<()> {
    let count = pending.len() as u64;
    progress.set_phase("committing");
    let mut txn = db.begin_write()?;
    for (key, value) in pending.drain(..) {
        txn.put(key, value)?;
    }
    txn.commit()?;
    progress.set_phase("");
    committed.records += count;
    committed.transactions += 1;
    Ok(())
}
