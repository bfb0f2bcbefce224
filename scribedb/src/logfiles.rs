//! Names of the log's files.
//!
//! The log is one sequence of positions split into files: a file holds the
//! records of positions `base + 64..`, up to where the next file's begin.
//! The writer starts a new file each time it seals a memtable, so a flushed
//! memtable's records go with its whole file. The first file, base 0, is
//! `wal`; every later one is `wal-<base as 16 hex digits>`, so that names
//! sort in position order.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::io;

/// Name of the log file whose positions begin at `base`.
pub fn name(base: u64) -> String {
    if base == 0 {
        "wal".to_string()
    } else {
        format!("wal-{base:016x}")
    }
}

pub fn path(dir: &Path, base: u64) -> PathBuf {
    dir.join(name(base))
}

/// Where the log file at `path` is made before it is renamed into place.
pub fn temporary(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Whether `name` is a log file being made (left by a seal that died).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with("wal") && name.ends_with(".tmp")
}

/// The base of the log file called `name`, if it is one.
pub fn parse(name: &str) -> Option<u64> {
    if name == "wal" {
        return Some(0);
    }
    let hex = name.strip_prefix("wal-").filter(|h| h.len() == 16)?;
    // A base must leave room for positions past it.
    u64::from_str_radix(hex, 16)
        .ok()
        .filter(|&b| b != 0 && b <= u64::MAX / 2)
}

/// The bases of the log files in `dir`, in position order.
pub fn list(dir: &Path) -> Result<Vec<u64>> {
    let mut bases: Vec<u64> = io::list(dir)?
        .iter()
        .filter_map(|(name, _)| parse(name))
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

/// Bytes of a log file's header: its records begin this far past its base.
pub const HEADER: u64 = 64;

/// Where the records of the file of `base` begin.
pub fn records_start(base: u64) -> u64 {
    base.saturating_add(HEADER)
}

/// The index in `bases` (sorted) of the file whose records hold position
/// `pos`. Positions `b..b + 64` of a file of base `b` are its header in
/// the file, but the last bytes of the previous file's records in the
/// log: a file holds the positions from where its records begin.
pub fn holding(bases: &[u64], pos: u64) -> Option<usize> {
    bases
        .partition_point(|&b| records_start(b) <= pos)
        .checked_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_in_position_order() {
        for base in [0u64, 64, 1 << 40, u64::MAX / 2] {
            assert_eq!(parse(&name(base)), Some(base));
        }
        assert_eq!(parse(&name(u64::MAX)), None);
        assert_eq!(parse("wal-0000000000000000"), None);
        assert_eq!(parse("wal-12"), None);
        assert_eq!(parse("wal.tmp"), None);
        let mut names: Vec<String> = [1u64 << 33, 0, 4096, 1 << 20].map(name).to_vec();
        names.sort();
        let bases: Vec<u64> = names.iter().filter_map(|n| parse(n)).collect();
        assert_eq!(bases, [0, 4096, 1 << 20, 1 << 33]);
        assert_eq!(holding(&bases, 64), Some(0));
        assert_eq!(holding(&bases, 5000), Some(1));
        assert_eq!(holding(&bases, u64::MAX), Some(3));
        assert_eq!(holding(&[64], 10), None);
        // The 64 positions under a file's header belong to the file before.
        assert_eq!(holding(&bases, 4096), Some(0));
        assert_eq!(holding(&bases, 4096 + 63), Some(0));
        assert_eq!(holding(&bases, 4096 + 64), Some(1));
    }
}
