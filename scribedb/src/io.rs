//! All file and mapping I/O of the engine: open, read, write, sync,
//! allocate, punch, rename, delete, list and map.
//!
//! Every system call on the database's files goes through this module, so
//! that there is one place to observe it, to give its errors their context
//! (the file and what was being done), and to inject faults and power loss
//! in tests. The kernel locks of the coordination file (`coord/lock.rs`)
//! are the one exception: they are not I/O on data.
//!
//! Mapping is `unsafe`: a mapping is only sound while the bytes it shows
//! are not changed or cut in a way the caller does not expect. Each caller
//! states why its use holds (arenas and the coordination file are shared
//! memory accessed with atomics and bounds checks; segments and the log
//! below its end are never rewritten).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapMut, MmapOptions};

use crate::error::{Error, IoContext, Result};
use crate::faults::{self, Op, Verdict};
use crate::powerloss;

/// Ask the fault plan of tests (`faults.rs`) about a call: an injected
/// failure comes back as the error the real call would give.
#[inline]
fn fault(op: Op, path: &Path, what: impl FnOnce() -> String) -> Result<()> {
    match faults::hit(op, path) {
        Verdict::Proceed => Ok(()),
        Verdict::Fail { error, .. } => Err(Error::io(what(), error)),
    }
}

/// How a file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Open {
    /// Read only; it must exist.
    Read,
    /// Read and write; it must exist.
    Write,
    /// Read and write, created if missing, kept as it is otherwise.
    Create,
    /// Read and write, created; it must not exist.
    CreateNew,
    /// Read and write, created if missing, emptied otherwise.
    Truncate,
}

pub(crate) fn open(path: &Path, how: Open) -> Result<File> {
    fault(Op::Open, path, || format!("opening {}", path.display()))?;
    let mut o = OpenOptions::new();
    o.read(true);
    match how {
        Open::Read => {}
        Open::Write => {
            o.write(true);
        }
        Open::Create => {
            o.write(true).create(true).truncate(false);
        }
        Open::CreateNew => {
            o.write(true).create_new(true);
        }
        Open::Truncate => {
            o.write(true).create(true).truncate(true);
        }
    }
    let creates = how != Open::Read && how != Open::Write;
    powerloss::around(
        path,
        || {
            let existed = creates && path.exists();
            o.open(path).map(|f| (f, existed))
        },
        |note, (f, existed)| {
            note.opened(f, creates && !existed);
            if how == Open::Truncate && *existed {
                note.set_len(f, 0);
            }
        },
    )
    .map(|(f, _)| f)
    .ctx(|| format!("opening {}", path.display()))
}

/// The length of an open file.
pub(crate) fn len(file: &File, path: &Path) -> Result<u64> {
    Ok(file
        .metadata()
        .ctx(|| format!("reading the length of {}", path.display()))?
        .len())
}

/// The length of the file at `path`; 0 if it is gone.
pub(crate) fn len_of(path: &Path) -> Result<u64> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).ctx(|| format!("reading the length of {}", path.display())),
    }
}

pub(crate) fn set_len(file: &File, path: &Path, len: u64) -> Result<()> {
    let what = || format!("setting the length of {} to {len}", path.display());
    fault(Op::SetLen, path, what)?;
    powerloss::around(path, || file.set_len(len), |n, _| n.set_len(file, len))
        .ctx(|| format!("setting the length of {} to {len}", path.display()))
}

pub(crate) fn read_at(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    fault(Op::Read, path, || {
        format!("reading {} at {offset}", path.display())
    })?;
    file.read_exact_at(buf, offset)
        .ctx(|| format!("reading {} at {offset}", path.display()))
}

pub(crate) fn write_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> Result<()> {
    if let Verdict::Fail { error, short } = faults::hit(Op::Write, path) {
        if short {
            // Part of the bytes reach the file, as a write cut short does.
            let half = &buf[..buf.len() / 2];
            let _ = powerloss::around(
                path,
                || file.write_all_at(half, offset),
                |n, _| n.wrote(file, offset, half),
            );
        }
        return Err(Error::io(
            format!("writing {} at {offset}", path.display()),
            error,
        ));
    }
    powerloss::around(
        path,
        || file.write_all_at(buf, offset),
        |n, _| n.wrote(file, offset, buf),
    )
    .ctx(|| format!("writing {} at {offset}", path.display()))
}

/// `fdatasync`: the file's data, and the metadata needed to read it.
pub(crate) fn sync_data(file: &File, path: &Path) -> Result<()> {
    fault(Op::Sync, path, || format!("syncing {}", path.display()))?;
    powerloss::around(path, || file.sync_data(), |n, _| n.synced(file))
        .ctx(|| format!("syncing {}", path.display()))
}

/// `fsync`: data and all metadata.
pub(crate) fn sync_all(file: &File, path: &Path) -> Result<()> {
    fault(Op::Sync, path, || format!("syncing {}", path.display()))?;
    powerloss::around(path, || file.sync_all(), |n, _| n.synced(file))
        .ctx(|| format!("syncing {}", path.display()))
}

/// Make the entries of directory `dir` durable (after a create, rename or
/// delete in it).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fault(Op::SyncDir, dir, || format!("syncing {}", dir.display()))?;
    powerloss::around(
        dir,
        || File::open(dir).and_then(|d| d.sync_all()),
        |n, _| n.synced_dir(),
    )
    .ctx(|| format!("syncing {}", dir.display()))
}

/// Reserve disk blocks for `offset..offset + len` (`posix_fallocate`), so
/// that writes through a mapping there cannot fail for want of space.
pub(crate) fn allocate(file: &File, path: &Path, offset: u64, len: u64) -> Result<()> {
    fault(Op::Allocate, path, || {
        format!(
            "reserving {len} bytes of {} at {offset} (is the disk full?)",
            path.display()
        )
    })?;
    // SAFETY: posix_fallocate only reads its integer arguments; the
    // descriptor is open for the life of `file`.
    let call = || match unsafe {
        libc::posix_fallocate(file.as_raw_fd(), offset as libc::off_t, len as libc::off_t)
    } {
        0 => Ok(()),
        rc => Err(std::io::Error::from_raw_os_error(rc)),
    };
    powerloss::around(path, call, |n, _| n.allocated(file, offset + len)).ctx(|| {
        format!(
            "reserving {len} bytes of {} at {offset} (is the disk full?)",
            path.display()
        )
    })
}

/// Give back the blocks of `offset..offset + len`, keeping the length; the
/// range reads as zeros. Returns false where the file system cannot.
pub(crate) fn punch_hole(file: &File, path: &Path, offset: u64, len: u64) -> Result<bool> {
    fault(Op::Punch, path, || {
        format!("giving back {len} bytes of {} at {offset}", path.display())
    })?;
    // SAFETY: fallocate only changes the file's blocks; no memory is passed.
    let call = || match unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    };
    match powerloss::around(path, call, |n, _| n.punched(file, offset, len)) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(false),
        Err(e) => Err(Error::io(
            format!("giving back {len} bytes of {} at {offset}", path.display()),
            e,
        )),
    }
}

/// Writes a file from the start, in order, through `io::write_at` (for a
/// buffered writer to stream through).
///
/// Every `WRITEBACK_STEP` bytes it asks the kernel to start writing back
/// what came before (`sync_file_range`), and waits for the step before
/// that to be written, so that a large file goes to disk as it is written,
/// with at most two steps of it dirty at a time, instead of in one burst
/// at its final sync. A file system that commits its journal for the
/// log's `fdatasync` may first write back other files' dirty data (ext4
/// in its default mode does): so a flush or compaction holds up a commit
/// by two steps of writing at most, not by the whole file.
pub(crate) struct Appender {
    file: File,
    path: PathBuf,
    pos: u64,
    /// Writing back was started up to here...
    written_back: u64,
    /// ... and is known done up to here.
    waited: u64,
}

const WRITEBACK_STEP: u64 = 8 << 20;

impl Appender {
    pub fn new(file: File, path: &Path) -> Appender {
        Appender {
            file,
            path: path.to_path_buf(),
            pos: 0,
            written_back: 0,
            waited: 0,
        }
    }

    /// The file, once every write is done.
    pub fn into_file(self) -> File {
        self.file
    }
}

impl std::io::Write for Appender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_at(&self.file, &self.path, buf, self.pos).map_err(|e| match e {
            Error::Io { source, .. } => source,
            other => std::io::Error::other(other.to_string()),
        })?;
        self.pos += buf.len() as u64;
        if self.pos - self.written_back >= WRITEBACK_STEP {
            let fd = self.file.as_raw_fd();
            // SAFETY: sync_file_range only reads its integer arguments; the
            // descriptor is open for the life of `self`. Hints: their
            // failure changes nothing (the final sync does the work).
            unsafe {
                libc::sync_file_range(
                    fd,
                    self.written_back as libc::off64_t,
                    (self.pos - self.written_back) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
                if self.written_back > self.waited {
                    libc::sync_file_range(
                        fd,
                        self.waited as libc::off64_t,
                        (self.written_back - self.waited) as libc::off64_t,
                        libc::SYNC_FILE_RANGE_WAIT_BEFORE
                            | libc::SYNC_FILE_RANGE_WRITE
                            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                    );
                }
            }
            self.waited = self.written_back;
            self.written_back = self.pos;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The whole contents of a small file, or `None` if it does not exist.
pub(crate) fn read_file(path: &Path) -> Result<Option<Vec<u8>>> {
    fault(Op::Read, path, || format!("reading {}", path.display()))?;
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Rename `from` to `to`, replacing `to` (atomic on the same file system).
pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    fault(Op::Rename, from, || {
        format!("renaming {} to {}", from.display(), to.display())
    })?;
    powerloss::around(from, || std::fs::rename(from, to), |n, _| n.renamed(to))
        .ctx(|| format!("renaming {} to {}", from.display(), to.display()))
}

/// Remove a file; a missing file is not an error. Returns whether it
/// existed.
pub(crate) fn remove(path: &Path) -> Result<bool> {
    fault(Op::Remove, path, || format!("removing {}", path.display()))?;
    match powerloss::around(path, || std::fs::remove_file(path), |n, _| n.removed()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
    }
}

/// Remove a file, ignoring every error (cleanup that is retried later).
pub(crate) fn remove_quietly(path: &Path) -> bool {
    remove(path).unwrap_or(false)
}

/// The names of the entries of `dir` (names that are not UTF-8 are left
/// out: none of ours is).
pub(crate) fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))?;
    Ok(entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            Some((name, e.path()))
        })
        .collect())
}

/// Create directory `dir` and its parents if missing.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))
}

/// Map the whole file shared and writable.
///
/// # Safety
/// Other processes may change the bytes at any time: the caller accesses
/// them only through atomics or under its own protocol, checks every
/// offset it reads from them, and never lets the file shrink under a live
/// mapping.
pub(crate) unsafe fn map_shared(file: &File, path: &Path) -> Result<MmapMut> {
    fault(Op::Map, path, || format!("mapping {}", path.display()))?;
    // SAFETY: as the caller promises.
    unsafe { MmapMut::map_mut(file) }.ctx(|| format!("mapping {}", path.display()))
}

/// Map the whole file read-only.
///
/// # Safety
/// The bytes must not change while the mapping lives (the file is
/// immutable, or only grows past what is read), and the file must not
/// shrink below what is read.
pub(crate) unsafe fn map_read(file: &File, path: &Path) -> Result<Mmap> {
    fault(Op::Map, path, || format!("mapping {}", path.display()))?;
    // SAFETY: as the caller promises.
    unsafe { Mmap::map(file) }.ctx(|| format!("mapping {}", path.display()))
}

/// Map `len` bytes of the file from `offset` read-only (the range may run
/// past the end of the file; only bytes below it may be touched).
///
/// # Safety
/// As for [`map_read`], for the bytes the caller touches.
pub(crate) unsafe fn map_read_range(
    file: &File,
    path: &Path,
    offset: u64,
    len: usize,
) -> Result<Mmap> {
    fault(Op::Map, path, || format!("mapping {}", path.display()))?;
    // SAFETY: as the caller promises.
    unsafe { MmapOptions::new().offset(offset).len(len).map(file) }
        .ctx(|| format!("mapping {}", path.display()))
}
