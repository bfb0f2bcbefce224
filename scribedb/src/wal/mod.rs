//! The write-ahead log: the durable record of every commit.
//!
//! One file, `wal`, preallocated with zeros in chunks so that a commit's
//! `fdatasync` overwrites blocks in place instead of growing the file. The
//! end of the log is where the record chain stops checking out, not the file
//! length (format in `format.rs`).
//!
//! Durability is shared: a committer that needs its record durable either
//! runs one `fdatasync` for everything written so far (the leader) or waits
//! for the leader's to cover it (group commit). After a sync the leader
//! raises the durable offset and the published commit timestamp in the
//! coordination header; both only grow.

pub(crate) mod format;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::coord::layout::{OFF_COMMITTED_TS, OFF_WAL_END, OFF_WAL_SYNCED, OFF_WRITTEN_TS};
use crate::coord::Coord;
use crate::error::{Error, Result};
use crate::io::{self, Open};
use format::*;

/// Granularity of preallocation.
const CHUNK: u64 = 16 << 20;

/// What recovery found at the end of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whole commit records replayed.
    pub records: u64,
    /// Timestamp of the last replayed commit (0 if none).
    pub last_ts: u64,
    /// Offset of the end of the last whole record.
    pub wal_end: u64,
    /// A torn record at the tail (an unacknowledged commit) was cut off:
    /// `(offset, bytes cleared)`.
    pub torn_tail: Option<(u64, u64)>,
    /// Repair cut the log at damage: `(offset, intact records dropped)`.
    pub repaired: Option<(u64, u64)>,
}

/// Size of the buffer through which records are written.
const WRITE_BUFFER: usize = 1 << 20;

/// Writes a record through a bounded buffer; remembers the first error.
struct Chunked<'w> {
    wal: &'w Wal,
    pos: u64,
    buf: Vec<u8>,
    error: Option<Error>,
}

impl<'w> Chunked<'w> {
    fn new(wal: &'w Wal, at: u64, total: u64) -> Self {
        Chunked {
            wal,
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
            self.error = io::write_at(&self.wal.file, &self.wal.path, bytes, self.pos).err();
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
            self.error = io::write_at(&self.wal.file, &self.wal.path, bytes, at).err();
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

/// The write-ahead log file of one handle.
pub(crate) struct Wal {
    path: PathBuf,
    file: File,
    /// Length of the file as last seen; only ever grows.
    allocated: Mutex<u64>,
    /// Whether a group-commit leader is syncing right now (this process).
    syncing: Mutex<bool>,
    synced: Condvar,
    /// Set by the first failed sync. The kernel reports a writeback error
    /// once per open file, so a later sync "succeeding" proves nothing: after
    /// a failure no sync of this handle is trusted again.
    sync_failure: OnceLock<String>,
    /// The log below this offset has been cut (this handle's knowledge).
    cut: Mutex<u64>,
}

impl Wal {
    /// Open the log, creating it with a header when missing or empty.
    /// Creation happens only while the open lock is held exclusively.
    pub fn open(path: &Path) -> Result<Wal> {
        let file = io::open(path, Open::Create)?;
        let len = io::len(&file, path)?;
        if len == 0 {
            let mut header = [0u8; FILE_HEADER];
            header[..8].copy_from_slice(&FILE_MAGIC);
            header[8..16].copy_from_slice(&FILE_VERSION.to_le_bytes());
            io::write_at(&file, path, &header, 0)?;
            io::sync_all(&file, path)?;
            // Make the new directory entry durable too.
            if let Some(dir) = path.parent() {
                io::sync_dir(dir)?;
            }
        } else {
            let mut header = [0u8; FILE_HEADER];
            if len < FILE_HEADER as u64 {
                return Err(Error::corrupted(
                    path,
                    len,
                    "log file shorter than its header",
                ));
            }
            io::read_at(&file, path, &mut header, 0)?;
            if header[..8] != FILE_MAGIC {
                return Err(Error::BadMagic {
                    file: path.to_path_buf(),
                    kind: "write-ahead log",
                });
            }
            let version = u64::from_le_bytes(header[8..16].try_into().unwrap());
            if version == FILE_VERSION_NO_SEGMENTS {
                // From here on the log may be cut below a flush, which a
                // build that knows nothing of segments must not read.
                io::write_at(&file, path, &FILE_VERSION.to_le_bytes(), 8)?;
                io::sync_data(&file, path)?;
            } else if version != FILE_VERSION {
                return Err(Error::UnsupportedVersion {
                    file: path.to_path_buf(),
                    found: version.min(u32::MAX as u64) as u32,
                    supported: FILE_VERSION as u32,
                });
            }
        }
        let allocated = io::len(&file, path)?;
        Ok(Wal {
            path: path.to_path_buf(),
            file,
            allocated: Mutex::new(allocated),
            syncing: Mutex::new(false),
            synced: Condvar::new(),
            sync_failure: OnceLock::new(),
            cut: Mutex::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `offset` lies within the file. Answered from the length last
    /// seen (the file only grows) without a system call when it can be.
    pub fn within(&self, offset: u64) -> Result<bool> {
        let allocated = *self.allocated.lock().unwrap_or_else(|p| p.into_inner());
        Ok(offset <= allocated || offset <= self.file_len()?)
    }

    /// Current length of the file on disk.
    pub fn file_len(&self) -> Result<u64> {
        io::len(&self.file, &self.path)
    }

    /// Append the commit record of `writes` at offset `at` (the current end
    /// of the log); returns the new end. Writer role only. Nothing is durable
    /// until a sync.
    ///
    /// The header goes first, holding the payload's length (`payload_len`,
    /// which the caller knows from totals over its writes), so a record cut
    /// short by a crash has an intact header and its span is known to
    /// recovery. The payload is copied through a small buffer, never built
    /// whole in memory, and checksummed on the way; its checksum, which the
    /// header's own checksum does not cover, is filled in last (in the
    /// buffer when the record fits in it). One pass over the writes.
    pub fn append<'a>(
        &self,
        at: u64,
        ts: u64,
        synced_mark: u64,
        count: u64,
        payload_len: u64,
        writes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<u64> {
        let total = RECORD_HEADER as u64 + payload_len.next_multiple_of(8);
        let end = at + total;
        if end > crate::entry::MAX_LOG_LEN {
            return Err(Error::io(
                format!("appending to {}", self.path.display()),
                std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    format!("the log would pass {} bytes", crate::entry::MAX_LOG_LEN),
                ),
            ));
        }
        self.preallocate(end)?;
        let mut out = Chunked::new(self, at, total);
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
            let _ = self.write_zeros(at, end);
            return Err(Error::corrupted(
                &self.path,
                at,
                format!("commit of {written} payload bytes announced {payload_len}"),
            ));
        }
        out.put(&[0u8; 8][..(total - RECORD_HEADER as u64 - payload_len) as usize]);
        out.patch(at + PAYLOAD_CRC_AT as u64, &crc.to_le_bytes());
        out.finish().inspect_err(|_| {
            // Best effort: leave no part of the record behind to be probed
            // by a later recovery (the space is allocated, so overwriting it
            // rarely fails).
            let _ = self.write_zeros(at, end);
        })?;
        Ok(end)
    }

    /// Make sure real zero blocks exist up to at least `end`.
    fn preallocate(&self, end: u64) -> Result<()> {
        let mut allocated = self.allocated.lock().unwrap_or_else(|p| p.into_inner());
        if end <= *allocated {
            return Ok(());
        }
        *allocated = self.file_len()?;
        if end <= *allocated {
            return Ok(());
        }
        // The record itself fills [allocated, end); zero the rest.
        let target = end.div_ceil(CHUNK) * CHUNK + CHUNK;
        if self.write_zeros(end.max(*allocated), target).is_err() {
            // Only the slack ahead of the record failed (a nearly full
            // disk): give back the zeros just written, so that the space
            // they took is there for the record, whose own write says
            // whether this commit fits. Nothing refers past the old length.
            // The log stays valid without slack: its end is found by
            // checksum, and the end of the file ends it too.
            let before = *allocated;
            io::set_len(&self.file, &self.path, before)?;
            *allocated = self.file_len()?;
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

    /// Read `len` bytes at `at`.
    pub fn read_at(&self, at: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len as usize];
        io::read_at(&self.file, &self.path, &mut buf, at)?;
        Ok(buf)
    }

    /// Zero whatever part of a record a dead writer wrote at `at` (the end
    /// of the log) so it can never be mistaken for a commit.
    pub fn clear_partial(&self, at: u64) -> Result<()> {
        let len = self.file_len()?;
        if at >= len {
            return Ok(());
        }
        let head = self.read_at(at, (RECORD_HEADER as u64).min(len - at))?;
        let span = parse_header(&head).map_or(RECORD_HEADER as u64, |h| h.total_len());
        self.write_zeros(at, (at + span).min(len))
    }

    /// Give back the disk blocks of the log below `offset` (whole pages
    /// past the header), whose records are all in segments now. The file
    /// keeps its length and offsets; the range reads as zeros. File systems
    /// that cannot punch holes keep the blocks.
    pub fn cut_below(&self, offset: u64) -> Result<()> {
        const PAGE: u64 = 4096;
        let to = offset / PAGE * PAGE;
        let mut cut = self.cut.lock().unwrap_or_else(|p| p.into_inner());
        let from = (*cut).max(PAGE);
        if to <= from {
            return Ok(());
        }
        io::punch_hole(&self.file, &self.path, from, to - from)?;
        *cut = to;
        Ok(())
    }

    /// Give back the disk blocks of the log in `from..to` (whole pages
    /// inside it): the records of one flushed memtable, which no reader
    /// needs any more.
    pub fn punch(&self, from: u64, to: u64) -> Result<()> {
        const PAGE: u64 = 4096;
        let (from, to) = (from.div_ceil(PAGE).max(1) * PAGE, to / PAGE * PAGE);
        if to > from {
            io::punch_hole(&self.file, &self.path, from, to - from)?;
        }
        Ok(())
    }

    /// Give back the preallocated zeros past `end` (the last handle is
    /// closing, so no one else maps the file): a closed database does not
    /// keep tens of MiB of slack. The next commit preallocates again.
    pub fn trim_after(&self, end: u64) -> Result<()> {
        let to = end.div_ceil(4096) * 4096;
        if to < self.file_len()? {
            io::set_len(&self.file, &self.path, to)?;
            *self.allocated.lock().unwrap_or_else(|p| p.into_inner()) = to;
        }
        Ok(())
    }

    /// Why syncing failed once, if it did.
    pub fn sync_failure(&self) -> Option<&str> {
        self.sync_failure.get().map(String::as_str)
    }

    /// `fdatasync` the log. After one failure, every later call fails too.
    pub fn sync(&self) -> Result<()> {
        if let Some(why) = self.sync_failure.get() {
            return Err(Error::Poisoned(why.clone()));
        }
        io::sync_data(&self.file, &self.path).inspect_err(|e| {
            let _ = self
                .sync_failure
                .set(format!("syncing the write-ahead log failed: {e}"));
        })
    }

    /// Sync everything written so far and publish it: raise the durable
    /// offset and the committed timestamp.
    pub fn sync_and_publish(&self, coord: &Coord) -> Result<()> {
        // Read the written timestamp before the end offset: the writer stores
        // them in the opposite order, so the sync covers the record of `ts`.
        let ts = coord.hdr(OFF_WRITTEN_TS).load(Ordering::Acquire);
        let end = coord.hdr(OFF_WAL_END).load(Ordering::Acquire);
        self.sync()?;
        coord.hdr(OFF_WAL_SYNCED).fetch_max(end, Ordering::AcqRel);
        coord.hdr(OFF_COMMITTED_TS).fetch_max(ts, Ordering::AcqRel);
        Ok(())
    }

    /// Return once the log is durable up to offset `end` (group commit).
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

    /// Scan the log from the start, calling `apply` for each whole record in
    /// order (with its timestamp and the log offset of its payload), and
    /// settle its tail:
    /// * a torn last record (one no later durable record vouches for) is
    ///   cleared and reported;
    /// * damage that a later record proves was once durable is an error,
    ///   unless `repair`, which cuts the log there and reports what it drops.
    ///
    /// Runs only while the open lock is held exclusively.
    pub fn recover(
        &self,
        start: u64,
        repair: bool,
        mut apply: impl FnMut(u64, u64, Vec<Write<'_>>) -> Result<()>,
    ) -> Result<RecoveryReport> {
        let len = self.file_len()?;
        // SAFETY: the file is not written by anyone while we hold the open
        // lock exclusively; the mapping is dropped before we write to it,
        // and only bytes below the length read first are touched.
        let map = unsafe { io::map_read(&self.file, &self.path) }?;
        let bytes = &map[..len as usize];
        let mut report = RecoveryReport::default();
        if start < FILE_HEADER as u64 || start > len {
            return Err(Error::corrupted(
                &self.path,
                start,
                format!(
                    "the manifest says unflushed records begin at offset {start}, \
                     but the log is {len} bytes long"
                ),
            ));
        }
        let mut pos = start;
        let mut last_ts = 0;
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
            if h.ts <= last_ts {
                break Some("timestamp does not increase");
            }
            let payload = &rest[RECORD_HEADER..RECORD_HEADER + h.payload_len as usize];
            if crc32c::crc32c(payload) != h.payload_crc {
                break Some("payload checksum mismatch");
            }
            let Ok(writes) = decode_payload(payload) else {
                break Some("malformed payload");
            };
            apply(h.ts, pos + RECORD_HEADER as u64, writes)?;
            last_ts = h.ts;
            report.records += 1;
            pos += h.total_len();
        };
        report.last_ts = last_ts;
        report.wal_end = pos;

        // Look past the end for records that prove the log went on.
        let mut vouching = 0u64;
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
                    vouching += (h.synced_mark > pos) as u64;
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
        let clear_to = leftover_end.max(last_nonzero);
        drop(map);

        if vouching > 0 {
            let what = damage.unwrap_or("records missing (zeroed block)");
            if !repair {
                return Err(Error::WalDamaged {
                    file: self.path.clone(),
                    offset: pos,
                    what: what.to_string(),
                    records_after: vouching,
                });
            }
            report.repaired = Some((pos, vouching));
        } else if clear_to > pos {
            report.torn_tail = Some((pos, clear_to - pos));
        }
        if clear_to > pos {
            self.write_zeros(pos, clear_to)?;
        }
        self.sync()?;
        Ok(report)
    }
}
