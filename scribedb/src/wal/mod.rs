//! The write-ahead log: the durable record of every commit.
//!
//! A sequence of positions split into files (`logfiles.rs`): the writer
//! starts a new file at each seal of a memtable, so the records of a
//! flushed memtable go with their whole file, and no file or position runs
//! out over the database's life. Each file is preallocated with zeros in
//! chunks so that a commit's `fdatasync` overwrites blocks in place instead
//! of growing the file. The end of the log is where the record chain stops
//! checking out, not the file length (format in `format.rs`).
//!
//! Durability is shared: a committer that needs its record durable either
//! runs one `fdatasync` for everything written so far (the leader) or waits
//! for the leader's to cover it (group commit). After a sync the leader
//! raises the durable position and the published commit timestamp in the
//! coordination header; both only grow. A file is synced whole before the
//! writer moves on to the next one, so a sync of the file being appended
//! to covers every position below the end it read.

pub(crate) mod format;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::coord::layout::{OFF_COMMITTED_TS, OFF_WAL_END, OFF_WAL_SYNCED, OFF_WRITTEN_TS};
use crate::coord::Coord;
use crate::error::{Error, Result};
use crate::io::{self, Open};
use crate::logfiles;
use format::*;

/// Largest granularity of preallocation (smaller for a small memtable
/// budget, whose files are small).
const MAX_CHUNK: u64 = 16 << 20;

/// What recovery found at the end of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whole commit records replayed.
    pub records: u64,
    /// Timestamp of the last replayed commit (0 if none).
    pub last_ts: u64,
    /// Log position of the end of the last whole record.
    pub wal_end: u64,
    /// A torn record at the tail (an unacknowledged commit) was cut off:
    /// `(position, bytes cleared)`.
    pub torn_tail: Option<(u64, u64)>,
    /// Intact records past the torn one that went with it: a machine
    /// crash kept them but lost part of it, which can only happen while
    /// none of them was durable (their commits were acknowledged without
    /// a sync, or not at all).
    pub torn_records: u64,
    /// Repair cut the log at damage: `(position, intact records dropped)`.
    pub repaired: Option<(u64, u64)>,
    /// Why opening found the coordination file damaged (a header it could
    /// not use, or one that disagreed with the durable files) and rebuilt
    /// it and the memtable from the log, as after its loss; `None` if it
    /// did not. Only an opener that is alone does this (design section 3).
    pub coord_rebuilt: Option<String>,
}

/// Size of the buffer through which records are written.
const WRITE_BUFFER: usize = 1 << 20;

/// Writes a record through a bounded buffer; remembers the first error.
struct Chunked<'w> {
    file: &'w WalFile,
    /// File offset (not log position) of the next byte.
    pos: u64,
    buf: Vec<u8>,
    error: Option<Error>,
}

impl<'w> Chunked<'w> {
    fn new(file: &'w WalFile, at: u64, total: u64) -> Self {
        Chunked {
            file,
            pos: at,
            buf: Vec::with_capacity((total as usize).min(WRITE_BUFFER)),
            error: None,
        }
    }

    fn put(&mut self, piece: &[u8]) {
        if self.buf.len() + piece.len() > WRITE_BUFFER {
            self.flush();
        }
        if piece.len() > WRITE_BUFFER {
            self.write(piece);
        } else {
            self.buf.extend_from_slice(piece);
        }
    }

    fn flush(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.write(&buf);
        self.buf = buf;
        self.buf.clear();
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.error.is_none() && !bytes.is_empty() {
            self.error = io::write_at(&self.file.file, &self.file.path, bytes, self.pos).err();
        }
        self.pos += bytes.len() as u64;
    }

    /// Overwrite bytes at file offset `at`, already put: in the buffer if
    /// they are still there, else in the file.
    fn patch(&mut self, at: u64, bytes: &[u8]) {
        if at >= self.pos {
            let from = (at - self.pos) as usize;
            self.buf[from..from + bytes.len()].copy_from_slice(bytes);
        } else if self.error.is_none() {
            self.error = io::write_at(&self.file.file, &self.file.path, bytes, at).err();
        }
    }

    fn finish(mut self) -> Result<()> {
        self.flush();
        match self.error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// One file of the log, opened for writing. Offsets here are file
/// offsets; the log position of offset `o` is `base + o`.
struct WalFile {
    base: u64,
    path: PathBuf,
    file: File,
    /// Granularity of preallocation.
    chunk: u64,
    /// Length of the file as last seen; only ever grows.
    allocated: Mutex<u64>,
}

impl WalFile {
    /// Open the log file of `base` in `dir`; with `create`, create it
    /// (empty but for its header, durably) when it is missing or empty.
    fn open(dir: &Path, base: u64, create: bool, chunk: u64) -> Result<WalFile> {
        let path = logfiles::path(dir, base);
        let file = io::open(&path, if create { Open::Create } else { Open::Write })?;
        let len = io::len(&file, &path)?;
        if len == 0 && create {
            write_file_header(&file, &path, base)?;
            io::sync_all(&file, &path)?;
            // Make the new directory entry durable too.
            io::sync_dir(dir)?;
        } else {
            check_file_header(&file, &path, base, len)?;
        }
        let allocated = io::len(&file, &path)?;
        Ok(WalFile {
            base,
            path,
            file,
            chunk,
            allocated: Mutex::new(allocated),
        })
    }

    fn len(&self) -> Result<u64> {
        io::len(&self.file, &self.path)
    }

    /// File offset of log position `pos`, which must lie past the header.
    fn offset(&self, pos: u64) -> Result<u64> {
        pos.checked_sub(self.base)
            .filter(|&o| o >= FILE_HEADER as u64)
            .ok_or_else(|| {
                Error::corrupted(
                    &self.path,
                    pos,
                    format!("log position {pos} lies before this file's records"),
                )
            })
    }

    /// Make sure real zero blocks exist up to at least file offset `end`.
    fn preallocate(&self, end: u64) -> Result<()> {
        let mut allocated = self.allocated.lock().unwrap_or_else(|p| p.into_inner());
        if end <= *allocated {
            return Ok(());
        }
        *allocated = self.len()?;
        if end <= *allocated {
            return Ok(());
        }
        // The record itself fills [allocated, end); zero the rest. The
        // step grows with the file, from 1 MiB up to the chunk, so that
        // the first commit into a new file (one per seal) does not write
        // and sync the whole chunk.
        let step = (*allocated).clamp(1 << 20, self.chunk);
        let target = end.div_ceil(step) * step + step;
        if self.write_zeros(end.max(*allocated), target).is_err() {
            // Only the slack ahead of the record failed (a nearly full
            // disk): give back the zeros just written, so that the space
            // they took is there for the record, whose own write says
            // whether this commit fits. Nothing refers past the old length.
            // The log stays valid without slack: its end is found by
            // checksum, and the end of the file ends it too.
            let before = *allocated;
            io::set_len(&self.file, &self.path, before)?;
            *allocated = self.len()?;
            return Ok(());
        }
        *allocated = target;
        Ok(())
    }

    fn write_zeros(&self, from: u64, to: u64) -> Result<()> {
        let zeros = vec![0u8; 1 << 20];
        let mut pos = from;
        while pos < to {
            let n = (to - pos).min(zeros.len() as u64) as usize;
            io::write_at(&self.file, &self.path, &zeros[..n], pos)?;
            pos += n as u64;
        }
        Ok(())
    }

    /// Give back the disk blocks of file offsets `from..to` (whole pages
    /// inside it, past the header). The file keeps its length and offsets;
    /// the range reads as zeros. File systems that cannot punch holes keep
    /// the blocks.
    fn punch(&self, from: u64, to: u64) -> Result<()> {
        const PAGE: u64 = 4096;
        let (from, to) = (from.div_ceil(PAGE).max(1) * PAGE, to / PAGE * PAGE);
        if to > from {
            io::punch_hole(&self.file, &self.path, from, to - from)?;
        }
        Ok(())
    }
}

fn write_file_header(file: &File, path: &Path, base: u64) -> Result<()> {
    let mut header = [0u8; FILE_HEADER];
    header[..8].copy_from_slice(&FILE_MAGIC);
    header[8..16].copy_from_slice(&FILE_VERSION.to_le_bytes());
    header[FILE_BASE_AT..FILE_BASE_AT + 8].copy_from_slice(&base.to_le_bytes());
    io::write_at(file, path, &header, 0)
}

/// Check the header of the log file of `base`, `len` bytes long; a
/// one-file log of an earlier version is upgraded in place.
fn check_file_header(file: &File, path: &Path, base: u64, len: u64) -> Result<()> {
    let mut header = [0u8; FILE_HEADER];
    if len < FILE_HEADER as u64 {
        return Err(Error::corrupted(
            path,
            len,
            "log file shorter than its header",
        ));
    }
    io::read_at(file, path, &mut header, 0)?;
    if header[..8] != FILE_MAGIC {
        return Err(Error::BadMagic {
            file: path.to_path_buf(),
            kind: "write-ahead log",
        });
    }
    let version = u64::from_le_bytes(header[8..16].try_into().unwrap());
    let stored_base =
        u64::from_le_bytes(header[FILE_BASE_AT..FILE_BASE_AT + 8].try_into().unwrap());
    if base == 0 && FILE_VERSIONS_ONE_FILE.contains(&version) && stored_base == 0 {
        // From here on the log may be cut below a flush and continued in
        // further files, which a build that knows neither must not read.
        io::write_at(file, path, &FILE_VERSION.to_le_bytes(), 8)?;
        io::sync_data(file, path)?;
    } else if version != FILE_VERSION {
        return Err(Error::UnsupportedVersion {
            file: path.to_path_buf(),
            found: version.min(u32::MAX as u64) as u32,
            supported: FILE_VERSION as u32,
        });
    } else if stored_base != base {
        return Err(Error::corrupted(
            path,
            FILE_BASE_AT as u64,
            format!("log file header says its positions begin at {stored_base}, its name {base}"),
        ));
    }
    Ok(())
}

/// The write-ahead log of one handle.
pub(crate) struct Wal {
    dir: PathBuf,
    /// Granularity of preallocation.
    chunk: u64,
    /// The file last appended to or synced: the one commits go to, except
    /// for a moment around a seal. Opened on first use.
    current: Mutex<Option<Arc<WalFile>>>,
    /// Whether a group-commit leader is syncing right now (this process).
    syncing: Mutex<bool>,
    synced: Condvar,
    /// Set by the first failed sync. The kernel reports a writeback error
    /// once per open file, so a later sync "succeeding" proves nothing: after
    /// a failure no sync of this handle is trusted again.
    sync_failure: OnceLock<String>,
    /// Positions below this have been given back (this handle's knowledge).
    released: Mutex<u64>,
}

impl Wal {
    /// Open the log in `dir`, creating its first file when the directory
    /// has none. Creation happens only while the open lock is held
    /// exclusively (a new database). A file holds about one memtable's
    /// records, `memtable_size` bytes at most; files are preallocated in
    /// chunks of half that (1 to 16 MiB).
    pub fn open(dir: &Path, memtable_size: u64) -> Result<Wal> {
        let chunk = (memtable_size / 2)
            .clamp(1 << 20, MAX_CHUNK)
            .next_multiple_of(1 << 20);
        // A new database, or one whose creation stopped before the first
        // file had its header: an empty `wal` and no manifest (a log cut
        // short of what the coordination file saw durable is still found
        // by recovery; a partial header is an error naming the file).
        let bases = logfiles::list(dir)?;
        let no_manifest = || -> Result<bool> {
            Ok(!io::list(dir)?
                .iter()
                .any(|(n, _)| n.starts_with("manifest-")))
        };
        let fresh = bases.is_empty()
            || (bases == [0] && io::len_of(&logfiles::path(dir, 0))? == 0 && no_manifest()?);
        let first = match fresh {
            true => Some(Arc::new(WalFile::open(dir, 0, true, chunk)?)),
            false => None,
        };
        Ok(Wal {
            dir: dir.to_path_buf(),
            chunk,
            current: Mutex::new(first),
            syncing: Mutex::new(false),
            synced: Condvar::new(),
            sync_failure: OnceLock::new(),
            released: Mutex::new(0),
        })
    }

    /// The log file of `base`, opened once and kept while it is current.
    fn file(&self, base: u64) -> Result<Arc<WalFile>> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match &*current {
            Some(file) if file.base == base => Ok(file.clone()),
            _ => {
                let file = Arc::new(WalFile::open(&self.dir, base, false, self.chunk)?);
                *current = Some(file.clone());
                Ok(file)
            }
        }
    }

    /// Path of the log file of `base` (for messages).
    pub fn path(&self, base: u64) -> PathBuf {
        logfiles::path(&self.dir, base)
    }

    /// Whether position `pos` lies within the file of `base`, past its
    /// header. Answered from the length last seen (the file only grows)
    /// without a system call when it can be.
    pub fn within(&self, base: u64, pos: u64) -> Result<bool> {
        let file = self.file(base)?;
        let Ok(offset) = file.offset(pos) else {
            return Ok(false);
        };
        let allocated = *file.allocated.lock().unwrap_or_else(|p| p.into_inner());
        Ok(offset <= allocated || offset <= file.len()?)
    }

    /// Bytes the log's files take, by their lengths.
    pub fn bytes_on_disk(&self) -> Result<u64> {
        let mut total = 0;
        for base in logfiles::list(&self.dir)? {
            total += io::len_of(&logfiles::path(&self.dir, base))?;
        }
        Ok(total)
    }

    /// Close the file kept open if it lies before `active_base` (the writer
    /// has moved on): once flushed it is deleted, and an open descriptor
    /// would keep its blocks.
    pub fn forget_below(&self, active_base: u64) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|f| f.base < active_base) {
            *current = None;
        }
    }

    /// Append the commit record of `writes` at position `at` (the current
    /// end of the log) in the file of `base`; returns the new end. Writer
    /// role only. Nothing is durable until a sync.
    ///
    /// The header goes first, holding the payload's length (`payload_len`,
    /// which the caller knows from totals over its writes), so a record cut
    /// short by a crash has an intact header and its span is known to
    /// recovery. The payload is copied through a small buffer, never built
    /// whole in memory, and checksummed on the way; its checksum, which the
    /// header's own checksum does not cover, is filled in last (in the
    /// buffer when the record fits in it). One pass over the writes.
    #[allow(clippy::too_many_arguments)]
    pub fn append<'a>(
        &self,
        base: u64,
        at: u64,
        ts: u64,
        synced_mark: u64,
        count: u64,
        payload_len: u64,
        writes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<u64> {
        let file = self.file(base)?;
        let offset = file.offset(at)?;
        let total = RECORD_HEADER as u64 + payload_len.next_multiple_of(8);
        let end = offset + total;
        if end > crate::entry::MAX_LOG_LEN {
            return Err(Error::io(
                format!("appending to {}", file.path.display()),
                std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    format!(
                        "the log file would pass {} bytes",
                        crate::entry::MAX_LOG_LEN
                    ),
                ),
            ));
        }
        file.preallocate(end)?;
        let mut out = Chunked::new(&file, offset, total);
        out.put(&record_header(payload_len, ts, synced_mark, 0));
        let (mut crc, mut written) = (0u32, 0u64);
        payload_pieces(count, writes, |piece| {
            crc = crc32c::crc32c_append(crc, piece);
            written += piece.len() as u64;
            out.put(piece);
        });
        if written != payload_len {
            // The totals did not match the writes: never leave a record
            // whose header lies about its span.
            let _ = out.finish();
            let _ = file.write_zeros(offset, end);
            return Err(Error::corrupted(
                &file.path,
                offset,
                format!("commit of {written} payload bytes announced {payload_len}"),
            ));
        }
        out.put(&[0u8; 8][..(total - RECORD_HEADER as u64 - payload_len) as usize]);
        out.patch(offset + PAYLOAD_CRC_AT as u64, &crc.to_le_bytes());
        out.finish().inspect_err(|_| {
            // Best effort: leave no part of the record behind to be probed
            // by a later recovery (the space is allocated, so overwriting it
            // rarely fails).
            let _ = file.write_zeros(offset, end);
        })?;
        Ok(at + total)
    }

    /// Start the next file of the log at position `end` (the end of the
    /// last record, all of it synced): the file of base `end - 64`, empty
    /// but for its header, durably. Files past `from_base` (the file being
    /// appended to) are what a seal that died left; they go first. Returns
    /// the new base. Writer role and view lock held.
    pub fn start_file(&self, from_base: u64, end: u64) -> Result<u64> {
        let Some(base) = end.checked_sub(FILE_HEADER as u64) else {
            return Err(Error::corrupted(
                self.path(from_base),
                0,
                format!("log end {end} lies before the first record"),
            ));
        };
        if base <= from_base {
            // No record in the file yet: it stays the one appended to.
            return Ok(from_base);
        }
        for stale in logfiles::list(&self.dir)? {
            if stale > from_base {
                io::remove(&logfiles::path(&self.dir, stale))?;
            }
        }
        // The file left behind keeps no preallocated zeros: nothing is
        // appended to it again, and no reader touches bytes past its last
        // record.
        self.trim_after(from_base, end)?;
        // Made whole under a temporary name and renamed into place, so a
        // failed write (or a crash) never leaves a log file without its
        // header.
        let path = logfiles::path(&self.dir, base);
        let tmp = logfiles::temporary(&path);
        let made = (|| {
            let f = io::open(&tmp, Open::Truncate)?;
            write_file_header(&f, &tmp, base)?;
            io::sync_all(&f, &tmp)?;
            io::rename(&tmp, &path)?;
            io::sync_dir(&self.dir)
        })();
        if let Err(e) = made {
            io::remove_quietly(&tmp);
            return Err(e);
        }
        let file = WalFile::open(&self.dir, base, false, self.chunk)?;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(file));
        Ok(base)
    }

    /// Read `len` bytes at position `at` of the file of `base`.
    pub fn read_at(&self, base: u64, at: u64, len: u64) -> Result<Vec<u8>> {
        let file = self.file(base)?;
        let mut buf = vec![0u8; len as usize];
        io::read_at(&file.file, &file.path, &mut buf, file.offset(at)?)?;
        Ok(buf)
    }

    /// Zero whatever part of a record a dead writer wrote at position `at`
    /// (the end of the log, in the file of `base`) so it can never be
    /// mistaken for a commit.
    pub fn clear_partial(&self, base: u64, at: u64) -> Result<()> {
        let file = self.file(base)?;
        let offset = file.offset(at)?;
        let len = file.len()?;
        if offset >= len {
            return Ok(());
        }
        let head = self.read_at(base, at, (RECORD_HEADER as u64).min(len - offset))?;
        let span = parse_header(&head).map_or(RECORD_HEADER as u64, |h| h.total_len());
        file.write_zeros(offset, (offset + span).min(len))
    }

    /// Give back the log's positions in `from..to`, whose records are in
    /// segments now and which no reader needs any more: a file all of
    /// whose records lie there is deleted, the part of one that also
    /// holds other records is punched out. The file of `active_base`
    /// (appended to) stays.
    pub fn release(&self, from: u64, to: u64, active_base: u64) -> Result<()> {
        let bases = logfiles::list(&self.dir)?;
        for (i, &base) in bases.iter().enumerate() {
            if base >= active_base {
                break;
            }
            let start = base + FILE_HEADER as u64;
            // Where the next file's records begin, this one's end.
            let end = bases
                .get(i + 1)
                .map_or(u64::MAX, |b| b + FILE_HEADER as u64);
            if end <= from || start >= to {
                continue;
            }
            let path = logfiles::path(&self.dir, base);
            if from <= start && end <= to {
                io::remove_quietly(&path);
                continue;
            }
            let file = WalFile::open(&self.dir, base, false, self.chunk)?;
            file.punch(from.max(start) - base, to.min(end) - base)?;
        }
        Ok(())
    }

    /// Give back every position below `to` (no reader needs any of them).
    pub fn release_below(&self, to: u64, active_base: u64) -> Result<()> {
        let mut released = self.released.lock().unwrap_or_else(|p| p.into_inner());
        if to <= *released {
            return Ok(());
        }
        self.release(0, to, active_base)?;
        *released = to;
        Ok(())
    }

    /// Give back the preallocated zeros past position `end` of the file of
    /// `base` (the last handle is closing, so no one else maps the file): a
    /// closed database does not keep tens of MiB of slack. The next commit
    /// preallocates again.
    pub fn trim_after(&self, base: u64, end: u64) -> Result<()> {
        let file = self.file(base)?;
        let to = file.offset(end)?.div_ceil(4096) * 4096;
        if to < file.len()? {
            io::set_len(&file.file, &file.path, to)?;
            *file.allocated.lock().unwrap_or_else(|p| p.into_inner()) = to;
        }
        Ok(())
    }

    /// Why syncing failed once, if it did.
    pub fn sync_failure(&self) -> Option<&str> {
        self.sync_failure.get().map(String::as_str)
    }

    /// `fdatasync` the log file of `base`. After one failure, every later
    /// call fails too.
    fn sync(&self, base: u64) -> Result<()> {
        if let Some(why) = self.sync_failure.get() {
            return Err(Error::Poisoned(why.clone()));
        }
        let file = self.file(base)?;
        io::sync_data(&file.file, &file.path).inspect_err(|e| {
            let _ = self
                .sync_failure
                .set(format!("syncing the write-ahead log failed: {e}"));
        })
    }

    /// Sync everything written so far and publish it: raise the durable
    /// position and the committed timestamp.
    pub fn sync_and_publish(&self, coord: &Coord) -> Result<()> {
        // Read the written timestamp before the end, and the end before the
        // file appended to: the writer stores them in the opposite order (a
        // new file is named in the view before anything is appended to it),
        // so the sync covers the record of `ts`. An end that lies in an
        // earlier file was synced before the writer left that file.
        let ts = coord.hdr(OFF_WRITTEN_TS).load(Ordering::Acquire);
        let end = coord.hdr(OFF_WAL_END).load(Ordering::Acquire);
        let base = coord.read_view()?.active_log_base;
        if end > logfiles::records_start(base) {
            if let Err(e) = self.sync(base) {
                // A file the writer has left since (and a flush deleted)
                // was synced whole before it was left: only a failure of
                // the sync itself, or of the current file, counts.
                let moved = coord.read_view()?.active_log_base != base;
                if !moved || self.sync_failure.get().is_some() {
                    return Err(e);
                }
            }
        }
        coord.hdr(OFF_WAL_SYNCED).fetch_max(end, Ordering::AcqRel);
        coord.hdr(OFF_COMMITTED_TS).fetch_max(ts, Ordering::AcqRel);
        coord.notify_commit();
        Ok(())
    }

    /// Return once the log is durable up to position `end` (group commit).
    pub fn wait_durable(&self, coord: &Coord, end: u64) -> Result<()> {
        let published = || coord.hdr(OFF_WAL_SYNCED).load(Ordering::Acquire) >= end;
        let mut syncing = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if published() {
                return Ok(());
            }
            if !*syncing {
                *syncing = true;
                drop(syncing);
                let result = self.sync_and_publish(coord);
                syncing = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
                *syncing = false;
                self.synced.notify_all();
                result?;
            } else {
                // A leader in this process is syncing; a leader in another
                // process may publish us too, hence the timeout.
                syncing = self
                    .synced
                    .wait_timeout(syncing, Duration::from_millis(1))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    }

    /// Replay the log from position `start` to its end, across its files,
    /// calling `apply` for each whole record in order (with its timestamp
    /// and the log position of its payload), and settle its tail:
    /// * a torn last record is cleared and reported, but only when nothing
    ///   says the log went on: no intact record after it, no later file,
    ///   and `durable_end` (the durable end the coordination file kept, 0
    ///   if it was lost) not past it;
    /// * anything else is damage: an error, unless `repair`, which cuts the
    ///   log there and reports what it drops. A later file is proof too:
    ///   the writer moves on to a new file only once the one before is
    ///   durable whole, so a file must end exactly where the next begins.
    ///
    /// Returns the report and the bases of the files replayed, in order;
    /// commits are appended to the last from now on. Runs only while the
    /// open lock is held exclusively.
    pub fn recover(
        &self,
        start: u64,
        durable_end: u64,
        repair: bool,
        mut apply: impl FnMut(u64, u64, Vec<Write<'_>>) -> Result<()>,
    ) -> Result<(RecoveryReport, Vec<u64>)> {
        let mut bases = logfiles::list(&self.dir)?;
        let Some(first) = logfiles::holding(&bases, start) else {
            let shown = bases.first().copied().unwrap_or(0);
            return Err(Error::corrupted(
                self.path(shown),
                start,
                format!(
                    "the manifest says unflushed records begin at log position {start}, \
                     but no log file holds it"
                ),
            ));
        };
        bases.drain(..first);
        // A last file shorter than its header never held anything.
        while bases.len() > 1 && self.unstarted(*bases.last().unwrap())? {
            io::remove(&logfiles::path(&self.dir, bases.pop().unwrap()))?;
        }
        let mut report = RecoveryReport::default();
        let mut last_ts = 0;
        let mut pos = start;
        let mut i = 0;
        while i < bases.len() {
            let file = WalFile::open(&self.dir, bases[i], false, self.chunk)?;
            let scan = scan_file(&file, pos, &mut last_ts, &mut apply)?;
            report.records += scan.records;
            report.wal_end = scan.end;
            let Some(&next) = bases.get(i + 1) else {
                settle_last(&file, &scan, durable_end, repair, &mut report)?;
                break;
            };
            let next_start = logfiles::records_start(next);
            // A seal trims the file it leaves right after its last record,
            // so bytes past the end of a file that is not the last are
            // themselves evidence of damage.
            let clean_end = scan.vouching == 0 && scan.clear_to <= scan.end;
            if scan.end == next_start && clean_end {
                pos = next_start;
                i += 1;
                continue;
            }
            if scan.end >= next_start && i + 2 == bases.len() && self.blank(next)? {
                // A seal that died after starting the next file, before
                // anything was appended to it; commits went on here.
                io::remove(&logfiles::path(&self.dir, next))?;
                bases.pop();
                settle_last(&file, &scan, durable_end, repair, &mut report)?;
                break;
            }
            let later: u64 = bases[i + 1..]
                .iter()
                .map(|&b| self.count_records(b))
                .sum::<Result<u64>>()?;
            let what = match scan.damage {
                Some(what) if scan.end <= next_start => what,
                _ if scan.end < next_start => "records missing before the next log file",
                _ if scan.end == next_start => {
                    "bytes past the end of a file the next one continues"
                }
                _ => "records run past the start of the next log file",
            };
            if !repair {
                return Err(Error::WalDamaged {
                    file: file.path.clone(),
                    offset: scan.end - file.base,
                    what: format!("{what} (log position {})", scan.end),
                    records_after: scan.vouching + later,
                });
            }
            file.write_zeros(scan.end - file.base, scan.clear_to - file.base)?;
            io::sync_data(&file.file, &file.path)?;
            for &b in &bases[i + 1..] {
                io::remove(&logfiles::path(&self.dir, b))?;
            }
            io::sync_dir(&self.dir)?;
            bases.truncate(i + 1);
            report.repaired = Some((scan.end, scan.vouching + later));
            break;
        }
        report.last_ts = last_ts;
        Ok((report, bases))
    }

    /// Whether the file of `base` is shorter than a header: it can hold no
    /// record (a build that created log files in place could leave one).
    fn unstarted(&self, base: u64) -> Result<bool> {
        Ok(io::len_of(&logfiles::path(&self.dir, base))? < FILE_HEADER as u64)
    }

    /// Whether the file of `base` holds nothing but its header and zeros.
    fn blank(&self, base: u64) -> Result<bool> {
        let file = WalFile::open(&self.dir, base, false, self.chunk)?;
        let len = file.len()?;
        // SAFETY: as in `scan_file`: no one writes the log meanwhile, and
        // only bytes below the length read first are touched.
        let map = unsafe { io::map_read(&file.file, &file.path) }?;
        Ok(map[FILE_HEADER..len as usize].iter().all(|&b| b == 0))
    }

    /// Whole records in the file of `base` (for what a repair drops).
    fn count_records(&self, base: u64) -> Result<u64> {
        let file = WalFile::open(&self.dir, base, false, self.chunk)?;
        let mut ts = 0;
        let scan = scan_file(&file, base + FILE_HEADER as u64, &mut ts, &mut |_, _, _| {
            Ok(())
        })?;
        Ok(scan.records + scan.vouching)
    }
}

/// What a scan of one log file found.
struct FileScan {
    records: u64,
    /// Position of the end of the last whole record.
    end: u64,
    /// What stopped the chain of records before the zeros, if anything.
    damage: Option<&'static str>,
    /// Intact records past the end: the log went on after it.
    vouching: u64,
    /// The largest durable mark those records carry: the bytes below it
    /// were durable when one of them was written.
    vouched_synced: u64,
    /// Some sector of what should be the record at the end holds nothing
    /// at all from there on: a write lost in a crash, not a changed bit.
    lost_write: bool,
    /// Position up to which bytes past the end are not zero.
    clear_to: u64,
}

/// Scan the records of `file` from position `from`, applying each whole
/// one, and look past the end for records that prove the log went on.
fn scan_file(
    file: &WalFile,
    from: u64,
    last_ts: &mut u64,
    apply: &mut impl FnMut(u64, u64, Vec<Write<'_>>) -> Result<()>,
) -> Result<FileScan> {
    let len = file.len()?;
    // SAFETY: the file is not written by anyone while we hold the open
    // lock exclusively; the mapping is dropped before we write to it, and
    // only bytes below the length read first are touched.
    let map = unsafe { io::map_read(&file.file, &file.path) }?;
    let bytes = &map[..len as usize];
    let start = file.offset(from)?;
    if start > len {
        return Err(Error::corrupted(
            &file.path,
            from,
            format!(
                "the manifest says unflushed records begin at log position {from}, \
                 but this log file ends at {}",
                file.base + len
            ),
        ));
    }
    let mut pos = start;
    let mut records = 0;
    let damage: Option<&'static str> = loop {
        let rest = &bytes[pos as usize..];
        if rest.len() < RECORD_HEADER || rest[..RECORD_HEADER].iter().all(|&b| b == 0) {
            break None;
        }
        let Some(h) = parse_header(rest) else {
            break Some("bad record header");
        };
        if h.total_len() > rest.len() as u64 {
            break Some("record runs past the end of the file");
        }
        if h.ts <= *last_ts {
            break Some("timestamp does not increase");
        }
        let payload = &rest[RECORD_HEADER..RECORD_HEADER + h.payload_len as usize];
        if crc32c::crc32c(payload) != h.payload_crc {
            break Some("payload checksum mismatch");
        }
        let Ok(writes) = decode_payload(payload) else {
            break Some("malformed payload");
        };
        apply(h.ts, file.base + pos + RECORD_HEADER as u64, writes)?;
        *last_ts = h.ts;
        records += 1;
        pos += h.total_len();
    };
    let end = file.base + pos;

    // Look past the end for records that prove the log went on.
    let mut vouching = 0u64;
    let mut vouched_synced = 0u64;
    let mut leftover_end = pos;
    // A torn record whose header survived is skipped whole, and so is
    // every intact header found, so bytes inside a payload (a value may
    // well contain a log record) are never taken for a record.
    let mut probe = match parse_header(&bytes[pos as usize..]) {
        Some(h) if damage.is_some() => pos + h.total_len().max(8),
        _ => pos + 8,
    };
    while probe + RECORD_HEADER as u64 <= len {
        let rest = &bytes[probe as usize..];
        match parse_header(rest) {
            Some(h) if h.total_len() <= rest.len() as u64 => {
                // Whether or not its writer knew the damage durable: a
                // record is only ever appended at the end, so one past
                // the end was written after the bytes there. Its commit
                // is newer than the last one replayed; a record image
                // inside a torn record's payload (a value may hold one)
                // rarely is.
                if h.ts > *last_ts {
                    vouching += 1;
                    vouched_synced = vouched_synced.max(h.synced_mark);
                }
                leftover_end = leftover_end.max(probe + h.total_len());
                probe += h.total_len();
            }
            Some(h) => {
                leftover_end = leftover_end.max(len.min(probe + h.total_len()));
                probe += 8;
            }
            None => probe += 8,
        }
    }
    let last_nonzero = bytes[pos as usize..]
        .iter()
        .rposition(|&b| b != 0)
        .map_or(pos, |i| pos + i as u64 + 1);
    let span = match parse_header(&bytes[pos as usize..]) {
        Some(h) => h.total_len().min(len - pos),
        None => (RECORD_HEADER as u64).min(len - pos),
    };
    Ok(FileScan {
        records,
        end,
        damage,
        vouching,
        vouched_synced,
        lost_write: lost_write(bytes, pos, span),
        clear_to: file.base + leftover_end.max(last_nonzero),
    })
}

/// Whether bytes `at..at + span` of a log file (what should be one
/// record) show a write lost in a crash: a 512-byte sector overlapping them
/// that holds only zeros from `at` (or its own start) to its end. The log
/// is written into zeroed space and a sector reaches the disk whole or not
/// at all, so a lost sector still reads zero past the records that were
/// in it before; a flipped bit never clears a sector, and a record that
/// really was written has its header's magic and checksums in it.
fn lost_write(bytes: &[u8], at: u64, span: u64) -> bool {
    const SECTOR: u64 = 512;
    let len = bytes.len() as u64;
    let mut sector = at / SECTOR * SECTOR;
    while sector < at + span && sector < len {
        let from = sector.max(at) as usize;
        let to = (sector + SECTOR).min(len) as usize;
        if bytes[from..to].iter().all(|&b| b == 0) {
            return true;
        }
        sector += SECTOR;
    }
    false
}

/// Settle the tail of the last file of the log after its scan: clear a
/// torn record, or (with `repair`) cut damage that later records or the
/// durable end vouch for.
///
/// Intact records past the end normally prove damage: records are only
/// appended, so they were written after the bytes at the end. A machine
/// crash is the one other way to get there: writes not yet synced reach
/// the disk in any order, sector by sector. That is what happened when
/// none of the later records says the end was durable when it was written
/// (`synced_mark`), and the end shows a lost sector rather than changed
/// bits (`lost_write`); then the tail, later records included, was never
/// durable and is cleared like a torn record.
fn settle_last(
    file: &WalFile,
    scan: &FileScan,
    durable_end: u64,
    repair: bool,
    report: &mut RecoveryReport,
) -> Result<()> {
    let short_of_durable = scan.end < durable_end;
    let crash_reordered = scan.vouching > 0 && scan.vouched_synced <= scan.end && scan.lost_write;
    if (scan.vouching > 0 && !crash_reordered) || short_of_durable {
        let what = match scan.damage {
            Some(what) => what.to_string(),
            None if short_of_durable && scan.vouching == 0 => format!(
                "the log ends at position {} but was durable to {durable_end} \
                 (the file was cut short or zeroed)",
                scan.end
            ),
            None => "records missing (zeroed block)".to_string(),
        };
        if !repair {
            return Err(Error::WalDamaged {
                file: file.path.clone(),
                offset: scan.end - file.base,
                what: format!("{what} (log position {})", scan.end),
                records_after: scan.vouching,
            });
        }
        report.repaired = Some((scan.end, scan.vouching));
    } else if scan.clear_to > scan.end {
        report.torn_tail = Some((scan.end, scan.clear_to - scan.end));
        report.torn_records = scan.vouching;
    }
    if scan.clear_to > scan.end {
        file.write_zeros(scan.end - file.base, scan.clear_to - file.base)?;
    }
    io::sync_data(&file.file, &file.path)
}
