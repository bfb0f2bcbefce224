//! `compact`: flush the memtable and merge every segment into one sorted
//! run now, then say on stderr what it did to the segments and the log.

use std::io::{self, Write};

use scribedb::{Database, Stats};

use super::live_log;
use crate::error::Result;
use crate::human;

pub fn run(db: &Database) -> Result<()> {
    let before = db.stats()?;
    db.compact()?;
    let after = db.stats()?;
    // The compaction is done: a closed stderr is no reason to fail it.
    let _ = writeln!(io::stderr(), "compacted: {}", summary(&before, &after));
    Ok(())
}

/// `3 segments (12.3 MiB) -> 1 segment (4.1 MiB), log 1.2 MiB -> 96 B`.
fn summary(before: &Stats, after: &Stats) -> String {
    format!(
        "{} -> {}, log {} -> {}",
        segments(before),
        segments(after),
        human::bytes(live_log(before)),
        human::bytes(live_log(after)),
    )
}

fn segments(stats: &Stats) -> String {
    let bytes: u64 = stats.level_bytes.iter().sum();
    let noun = if stats.segments == 1 {
        "segment"
    } else {
        "segments"
    };
    format!("{} {noun} ({})", stats.segments, human::bytes(bytes))
}
