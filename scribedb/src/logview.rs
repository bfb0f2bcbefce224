//! A read-only view of the log, through which readers in any process take
//! the values the version store keeps only in the log.
//!
//! Values of [`LOG_VALUE_MIN`] bytes or more are not copied into the
//! arenas: a node holds the log position of the value inside its commit's
//! record instead. The record is durable data that is never rewritten, so
//! the value is stored once, and a commit writes it once.
//!
//! The log is split into files (`logfiles.rs`); a memtable's records lie
//! in one file, or in a few after a rebuild, and its arenas hold a
//! [`LogSet`] of exactly those files, so a file's mappings go when the
//! last memtable that needs it does.
//!
//! A file is mapped in windows of 1 GiB, each mapping reaching
//! [`MAX_VALUE_LEN`] further, so that a value that starts in a window ends
//! inside its mapping. A mapping may run past the end of the file; only
//! bytes below the file length are ever touched: every slice is checked
//! against the length last seen, refreshed from the file when a slice goes
//! past it. While handles are open a file never shrinks below a length
//! anyone has seen with records in it (only zeros a commit just wrote
//! ahead of its own record are given back, on a full disk; the last handle
//! to close trims the slack), so a length once seen stays valid for every
//! value a node refers to. Files (or, in a file shared by several
//! memtables, ranges) whose memtable was flushed are deleted (punched
//! out), but only once no reader's view refers to them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use memmap2::Mmap;

use crate::entry::{MAX_LOG_LEN, MAX_VALUE_LEN};
use crate::error::{Error, Result};
use crate::io::{self, Open};

/// Values at least this long live only in the log.
pub const LOG_VALUE_MIN: usize = 64;

const WINDOW_SHIFT: u32 = 30;
/// Bytes a window's mapping covers: its own gigabyte and the longest value
/// that can start in it.
const SPAN: u64 = (1 << WINDOW_SHIFT) + MAX_VALUE_LEN as u64;
/// Windows a file can map: a file of up to 4 TiB.
const MAX_WINDOWS: usize = 4096;
/// The windows cover the longest log file (`MAX_LOG_LEN`).
const _: () = assert!((MAX_WINDOWS as u64) << WINDOW_SHIFT >= MAX_LOG_LEN);

/// The log files one memtable's values lie in, in position order.
pub struct LogSet {
    files: Vec<Arc<LogFile>>,
}

impl LogSet {
    /// `files` in position order.
    pub fn new(files: Vec<Arc<LogFile>>) -> LogSet {
        debug_assert!(files.windows(2).all(|w| w[0].base < w[1].base));
        LogSet { files }
    }

    /// A set of no files, for a memtable that is only being initialised.
    pub fn empty() -> Arc<LogSet> {
        Arc::new(LogSet { files: Vec::new() })
    }

    pub fn files(&self) -> &[Arc<LogFile>] {
        &self.files
    }

    /// The file whose records hold `pos` (positions under a file's header
    /// are the end of the previous file's records: `logfiles::holding`).
    #[inline]
    fn holding(&self, pos: u64) -> Option<&LogFile> {
        match &self.files[..] {
            [only] => Some(only),
            files => {
                let i = files
                    .partition_point(|f| crate::logfiles::records_start(f.base) <= pos)
                    .checked_sub(1)?;
                Some(&files[i])
            }
        }
    }

    /// The `len` bytes at log position `pos`.
    #[inline]
    pub fn slice(&self, pos: u64, len: u64) -> Result<&[u8]> {
        match self.holding(pos) {
            Some(file) => file.slice(pos, len),
            None => Err(Error::corrupted(
                self.files.first().map_or(Path::new("wal"), |f| &f.path),
                pos,
                "value reference lies before the memtable's log",
            )),
        }
    }

    /// A corruption error at log position `pos`, naming its file.
    pub fn damaged(&self, pos: u64, what: &str) -> Error {
        match self.holding(pos) {
            Some(f) => Error::corrupted(
                &f.path,
                pos - f.base,
                format!("{what} (log position {pos})"),
            ),
            None => Error::corrupted(Path::new("wal"), pos, what.to_string()),
        }
    }

    /// Ask for the first cache lines of the value at `pos` (a hint only).
    #[inline]
    pub fn prefetch(&self, pos: u64) {
        if let Some(file) = self.holding(pos) {
            file.prefetch(pos);
        }
    }
}

/// One log file, mapped read-only, addressed by log position.
pub struct LogFile {
    /// Log position of the file's first byte.
    base: u64,
    file: File,
    path: PathBuf,
    /// File length last seen: bytes below it exist.
    known_len: AtomicU64,
    windows: Box<[OnceLock<Mmap>]>,
}

impl LogFile {
    /// Open the log file at `path`, whose positions begin at `base`.
    pub fn open(path: &Path, base: u64) -> Result<LogFile> {
        let file = io::open(path, Open::Read)?;
        Ok(LogFile {
            base,
            file,
            path: path.to_path_buf(),
            known_len: AtomicU64::new(0),
            windows: (0..MAX_WINDOWS).map(|_| OnceLock::new()).collect(),
        })
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    /// The `len` bytes at log position `pos`.
    pub fn slice(&self, pos: u64, len: u64) -> Result<&[u8]> {
        let bad = |what: &str| Error::corrupted(&self.path, pos, format!("value {what}"));
        let offset = pos
            .checked_sub(self.base)
            .ok_or_else(|| bad("reference lies before its log file"))?;
        let end = offset
            .checked_add(len)
            .filter(|_| len <= MAX_VALUE_LEN as u64)
            .ok_or_else(|| bad("reference is out of range"))?;
        if end > self.known_len.load(Ordering::Acquire) {
            let now = io::len(&self.file, &self.path)?;
            self.known_len.fetch_max(now, Ordering::AcqRel);
            if end > now {
                return Err(bad("reference runs past the end of the log"));
            }
        }
        if len == 0 {
            return Ok(&[]);
        }
        let window = (offset >> WINDOW_SHIFT) as usize;
        let from = (window as u64) << WINDOW_SHIFT;
        let map = self
            .window(window)
            .ok_or_else(|| bad("lies past the largest log file"))??;
        Ok(&map[(offset - from) as usize..(end - from) as usize])
    }

    /// Ask for the first cache lines of the value at log position `pos`,
    /// if its window is mapped here. A hint only: nothing is read, so an
    /// unchecked position is harmless.
    #[inline]
    pub fn prefetch(&self, pos: u64) {
        let offset = pos.wrapping_sub(self.base);
        let window = (offset >> WINDOW_SHIFT) as usize;
        if let Some(map) = self.windows.get(window).and_then(OnceLock::get) {
            let at = (offset - ((window as u64) << WINDOW_SHIFT)) as usize;
            let p = map.as_ptr().wrapping_add(at);
            crate::prefetch::prefetch(p);
            crate::prefetch::prefetch(p.wrapping_add(64));
        }
    }

    fn window(&self, window: usize) -> Option<Result<&Mmap>> {
        let slot = self.windows.get(window)?;
        if let Some(map) = slot.get() {
            return Some(Ok(map));
        }
        // SAFETY: a read-only shared mapping of the log. Bytes below the
        // file length that a node refers to belong to whole commit records,
        // which nothing ever rewrites; only bytes below the known length
        // are read (checked in `slice`). While handles are open the file
        // never shrinks below a byte a node refers to (only zeros just
        // written ahead of a record are cut on a full disk), and punched
        // ranges keep the length and read as zeros.
        let map = unsafe {
            io::map_read_range(
                &self.file,
                &self.path,
                (window as u64) << WINDOW_SHIFT,
                SPAN as usize,
            )
        };
        match map {
            Ok(map) => {
                let _ = slot.set(map);
                Some(Ok(slot.get().expect("just set")))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn slices_are_checked_against_the_file_and_may_cross_windows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let file = File::create(&path).unwrap();
        file.write_all_at(b"start", 0).unwrap();
        let view = LogFile::open(&path, 0).unwrap();
        assert_eq!(view.slice(0, 5).unwrap(), b"start");
        assert_eq!(view.slice(5, 0).unwrap(), b"");
        // Past the end: an error, never a touch of the mapping.
        assert!(matches!(view.slice(3, 5), Err(Error::Corrupted { .. })));
        assert!(matches!(
            view.slice(u64::MAX - 2, 5),
            Err(Error::Corrupted { .. })
        ));
        assert!(matches!(
            view.slice(0, MAX_VALUE_LEN as u64 + 1),
            Err(Error::Corrupted { .. })
        ));
        // The file grows (sparse): a value across the first window's end
        // is read whole from the first window's mapping.
        let boundary = 1u64 << WINDOW_SHIFT;
        file.write_all_at(b"across the boundary", boundary - 6)
            .unwrap();
        assert_eq!(
            view.slice(boundary - 6, 19).unwrap(),
            b"across the boundary"
        );
        assert_eq!(view.slice(boundary + 4, 5).unwrap(), b" boun");
        assert_eq!(view.slice(0, 5).unwrap(), b"start");
    }

    #[test]
    fn positions_are_resolved_to_the_file_that_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        File::create(&a)
            .unwrap()
            .write_all_at(b"first file", 64)
            .unwrap();
        File::create(&b)
            .unwrap()
            .write_all_at(b"second file", 64)
            .unwrap();
        let set = LogSet::new(vec![
            Arc::new(LogFile::open(&a, 0).unwrap()),
            Arc::new(LogFile::open(&b, 1000).unwrap()),
        ]);
        assert_eq!(set.slice(70, 4).unwrap(), b"file");
        assert_eq!(set.slice(1064, 6).unwrap(), b"second");
        // A reference past a file's end fails, also when a later file
        // exists: values never span files.
        assert!(matches!(set.slice(72, 5), Err(Error::Corrupted { .. })));
        let later = LogSet::new(vec![Arc::new(LogFile::open(&b, 1000).unwrap())]);
        assert!(matches!(later.slice(6, 4), Err(Error::Corrupted { .. })));
        assert!(matches!(later.slice(999, 2), Err(Error::Corrupted { .. })));
        // Positions under the second file's header are the first file's.
        assert!(matches!(set.slice(1000, 4), Err(Error::Corrupted { .. })));
    }
}
