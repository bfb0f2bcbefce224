//! The coordination file: one small memory-mapped file per database that
//! every process opening the database shares.
//!
//! It owns the header (clock, commit timestamps, WAL marks, version-store
//! generation, writer identity), the table of process slots and the table of
//! reader slots (layout in `layout.rs`), and the kernel locks that tie them
//! to live processes (`lock.rs`).
//!
//! Invariants:
//! * The file is initialised only by an opener holding `LOCK_OPEN`
//!   exclusively, and `INIT_STATE` is written last, so creation is race-free.
//! * A process slot `i` is live exactly while some open file description
//!   holds `LOCK_PROC_BASE + i`; the kernel drops that lock when its process
//!   dies, whatever the signal. PIDs are stored for diagnostics only.
//! * A reader slot is live while its owner tag names a live process slot of
//!   the same generation; a dead one may be freed by anyone with a CAS from
//!   the dead tag, which can never clobber a new owner.
//! * Everything read from the mapping is untrusted: sizes are validated
//!   against fixed limits and the file length before use.

pub(crate) mod layout;
pub(crate) mod lock;
#[cfg(all(test, loom))]
mod models;
mod notify;
pub(crate) mod protocol;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapMut;

use crate::error::{Error, IoContext, Result};
use crate::io::{self, Open};
use layout::*;
use lock::Kind;
use protocol::{Bounds, CommitWords, ReaderWords};

/// The mapped coordination file of one database handle.
pub(crate) struct Coord {
    path: PathBuf,
    file: File,
    map: MmapMut,
    max_procs: usize,
    max_readers: usize,
    /// The in-process half of `LOCK_VIEW`: a kernel lock does not exclude
    /// the threads of its own process.
    view_lock: std::sync::Mutex<()>,
    /// Why an opener that was alone replaced a file it could not use (a
    /// damaged header): the version store must then be rebuilt.
    replaced: Option<String>,
}

/// Holds `LOCK_VIEW` (both halves) until dropped.
pub(crate) struct ViewLock<'c> {
    coord: &'c Coord,
    _local: std::sync::MutexGuard<'c, ()>,
}

impl Drop for ViewLock<'_> {
    fn drop(&mut self) {
        let _ = lock::unlock(&self.coord.file, LOCK_VIEW);
    }
}

/// How `Coord::open` left the open lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attach {
    /// No other handle has the database open: the caller holds the open lock
    /// exclusively, may repair or rebuild anything, and must call
    /// [`Coord::share`] when done.
    Alone,
    /// Other handles are attached; the open lock is held shared.
    Shared,
}

/// A snapshot of one reader slot, for diagnostics.
#[derive(Clone, Debug)]
pub(crate) struct ReaderSlotInfo {
    pub slot: usize,
    pub owner: u64,
    pub snapshot: u64,
    pub started_ms: u64,
    pub pid: u64,
    pub view: u64,
    pub manifest: u64,
}

/// Where the published view fields live, in `ViewFields` order.
const OFF_MEM_GENERATION_FIELDS: [usize; VIEW_FIELDS] = [
    OFF_MEM_GENERATION,
    OFF_ARENA_COUNT,
    OFF_SEALED_GENERATION,
    OFF_SEALED_LOG_END,
    OFF_ACTIVE_LOG_START,
    OFF_ACTIVE_LOG_BASE,
    OFF_MANIFEST_GENERATION,
];
/// Where the view being written is stored first.
const OFF_VIEW_NEXT_FIELDS: [usize; VIEW_FIELDS] = {
    let mut a = [0; VIEW_FIELDS];
    let mut i = 0;
    while i < VIEW_FIELDS {
        a[i] = OFF_VIEW_NEXT + 8 * i;
        i += 1;
    }
    a
};

/// The fields of the coordination header that make up the view of the
/// store, read and written together under `OFF_VIEW_SEQ`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ViewFields {
    pub seq: u64,
    pub mem_generation: u64,
    pub arena_count: u64,
    pub sealed_generation: u64,
    pub sealed_log_end: u64,
    pub active_log_start: u64,
    /// Base of the log file commits are appended to.
    pub active_log_base: u64,
    pub manifest_generation: u64,
}

impl Coord {
    /// Open (creating if needed) the coordination file at `path`.
    pub fn open(path: &Path, max_readers: u32, max_procs: u32) -> Result<(Coord, Attach)> {
        Self::open_derived(path, max_readers, max_procs, false)
    }

    /// [`Coord::open`] for a database that already exists (it has a log),
    /// when `derived`: the file then holds nothing that is not in the
    /// durable files, so an opener that is alone replaces a file it cannot
    /// use (a damaged magic, version, size or state) with a fresh one
    /// instead of failing, and says why in [`Coord::replaced`].
    pub fn open_derived(
        path: &Path,
        max_readers: u32,
        max_procs: u32,
        derived: bool,
    ) -> Result<(Coord, Attach)> {
        let file = io::open(path, Open::Create)?;
        let lock_err = |e| Error::io(format!("locking {}", path.display()), e);
        loop {
            let attach = if lock::try_lock(&file, LOCK_OPEN, Kind::Exclusive).map_err(lock_err)? {
                Attach::Alone
            } else {
                // Someone is attached, or is creating/recovering: wait for a
                // shared lock, which is granted once no one holds it exclusively.
                lock::lock_wait(&file, LOCK_OPEN, Kind::Shared).map_err(lock_err)?;
                Attach::Shared
            };
            let len = io::len(&file, path)?;
            let mut ready = len >= HEADER_SIZE as u64
                && read_u64_at(&file, path, OFF_INIT_STATE)? == INIT_READY;
            if ready && attach == Attach::Alone && older_layout(&file, path)? {
                // Derived state only, and no one else is attached: an
                // earlier release's layout is replaced, and the version
                // store rebuilt from the log.
                ready = false;
            }
            let mut replaced = None;
            if attach == Attach::Alone && derived && len > 0 {
                let unusable = match ready {
                    true => validate(&file, path).err().map(|e| e.to_string()),
                    false => check_foreign(&file, path, len)
                        .err()
                        .map(|e| e.to_string())
                        .or_else(|| {
                            (len >= HEADER_SIZE as u64
                                && !older_layout(&file, path).unwrap_or(false))
                            .then(|| format!("{}: not marked initialised", path.display()))
                        }),
                };
                if let Some(why) = unusable {
                    // Derived state, and no one else is attached: start
                    // afresh, as if the file had been removed.
                    io::set_len(&file, path, 0)?;
                    replaced = Some(why);
                    ready = false;
                }
            }
            if !ready {
                if attach == Attach::Shared {
                    // The creator died before finishing; retry, possibly as creator.
                    lock::unlock(&file, LOCK_OPEN).map_err(lock_err)?;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                if replaced.is_none() {
                    check_foreign(&file, path, len)?;
                }
                initialize(&file, path, max_readers as u64, max_procs as u64)?;
            }
            let (procs, readers) = validate(&file, path)?;
            let coord = if attach == Attach::Alone && readers != max_readers as u64 {
                // No one else is attached: resize the slot tables to the
                // requested reader count.
                initialize(&file, path, max_readers as u64, procs)?;
                Coord::map(path, file, procs, max_readers as u64)?
            } else {
                Coord::map(path, file, procs, readers)?
            };
            if attach == Attach::Alone {
                coord.clear_slots();
            }
            let coord = Coord { replaced, ..coord };
            return Ok((coord, attach));
        }
    }

    fn map(path: &Path, file: File, procs: u64, readers: u64) -> Result<Coord> {
        // SAFETY: the file is shared with other processes by design; all
        // access to the mapping goes through atomics at validated offsets,
        // and the file is only resized by an opener that holds the open lock
        // exclusively, which excludes every other mapping.
        let map = unsafe { io::map_shared(&file, path) }?;
        if map.len() < file_size(procs as usize, readers as usize) {
            return Err(Error::corrupted(
                path,
                map.len() as u64,
                "coordination file truncated",
            ));
        }
        Ok(Coord {
            path: path.to_path_buf(),
            file,
            map,
            max_procs: procs as usize,
            max_readers: readers as usize,
            view_lock: std::sync::Mutex::new(()),
            replaced: None,
        })
    }

    /// Downgrade the exclusive open lock of [`Attach::Alone`] to shared.
    /// Whether this handle is the only one open: it converts its shared
    /// open lock to exclusive if no one else holds it (and keeps it so:
    /// only for a handle that is closing, whose descriptor goes next).
    pub fn last_one_closing(&self) -> bool {
        lock::try_lock(&self.file, LOCK_OPEN, Kind::Exclusive).unwrap_or(false)
    }

    pub fn share(&self) -> Result<()> {
        lock::try_lock(&self.file, LOCK_OPEN, Kind::Shared)
            .ctx(|| format!("locking {}", self.path.display()))
            .map(|_| ())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why this (alone) opener replaced the file, if it did: the header
    /// it found was damaged.
    pub fn replaced(&self) -> Option<&str> {
        self.replaced.as_deref()
    }

    pub fn max_readers(&self) -> usize {
        self.max_readers
    }

    pub fn max_procs(&self) -> usize {
        self.max_procs
    }

    fn atomic(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.map.len());
        // SAFETY: the offset is in bounds and 8-byte aligned (the mapping is
        // page aligned), the mapping lives as long as `self`, and every
        // access to these bytes, in any process, is atomic.
        unsafe { &*(self.map.as_ptr().add(offset) as *const AtomicU64) }
    }

    /// A header field (`layout::OFF_*`).
    pub fn hdr(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset < HEADER_USED);
        self.atomic(offset)
    }

    fn proc_field(&self, slot: usize, field: usize) -> &AtomicU64 {
        assert!(slot < self.max_procs);
        self.atomic(proc_slot_offset(slot) + field)
    }

    fn reader_field(&self, slot: usize, field: usize) -> &AtomicU64 {
        assert!(slot < self.max_readers);
        self.atomic(reader_slot_offset(self.max_procs, slot) + field)
    }

    /// Zero every slot; only while holding the open lock exclusively.
    fn clear_slots(&self) {
        for slot in 0..self.max_readers {
            self.reader_field(slot, READER_OWNER)
                .store(0, Ordering::SeqCst);
        }
    }

    // ---- writer role -------------------------------------------------

    /// Try to take the cross-process writer lock.
    pub fn try_lock_writer(&self) -> Result<bool> {
        lock::try_lock(&self.file, LOCK_WRITER, Kind::Exclusive)
            .ctx(|| format!("locking {}", self.path.display()))
    }

    pub fn unlock_writer(&self) -> Result<()> {
        lock::unlock(&self.file, LOCK_WRITER).ctx(|| format!("unlocking {}", self.path.display()))
    }

    /// Whether another handle (in any process) holds the writer role.
    pub fn writer_held_elsewhere(&self) -> bool {
        lock::held_by_other(&self.file, LOCK_WRITER).unwrap_or(true)
    }

    // ---- process slots ----------------------------------------------

    /// Claim a free process slot for this handle: `(slot, generation)`.
    pub fn claim_process_slot(&self, pid: u64, now_ms: u64) -> Result<(usize, u64)> {
        for slot in 0..self.max_procs {
            let got = lock::try_lock(&self.file, LOCK_PROC_BASE + slot as u64, Kind::Exclusive)
                .ctx(|| format!("locking {}", self.path.display()))?;
            if got {
                let generation = self
                    .proc_field(slot, PROC_GENERATION)
                    .fetch_add(1, Ordering::SeqCst)
                    .wrapping_add(1);
                self.proc_field(slot, PROC_PID)
                    .store(pid, Ordering::Relaxed);
                self.proc_field(slot, PROC_ATTACHED_MS)
                    .store(now_ms, Ordering::Relaxed);
                return Ok((slot, generation));
            }
        }
        Err(Error::ProcessesFull {
            max: self.max_procs as u32,
        })
    }

    pub fn release_process_slot(&self, slot: usize) {
        self.proc_field(slot, PROC_PID).store(0, Ordering::Relaxed);
        let _ = lock::unlock(&self.file, LOCK_PROC_BASE + slot as u64);
    }

    /// Whether process slot `slot` is held, at generation `generation`, by a
    /// live handle other than this one.
    pub fn other_process_alive(&self, slot: usize, generation: u64) -> bool {
        if slot >= self.max_procs
            || self
                .proc_field(slot, PROC_GENERATION)
                .load(Ordering::SeqCst)
                != generation
        {
            return false;
        }
        // An error from the kernel counts as alive: never reclaim on doubt.
        lock::held_by_other(&self.file, LOCK_PROC_BASE + slot as u64).unwrap_or(true)
    }

    /// Process slots currently held by live handles other than this one.
    pub fn attached_processes(&self) -> Vec<(usize, u64, u64)> {
        (0..self.max_procs)
            .filter(|&s| {
                lock::held_by_other(&self.file, LOCK_PROC_BASE + s as u64).unwrap_or(false)
            })
            .map(|s| {
                (
                    s,
                    self.proc_field(s, PROC_PID).load(Ordering::Relaxed),
                    self.proc_field(s, PROC_ATTACHED_MS).load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    // ---- reader slots -----------------------------------------------

    /// Claim a free reader slot for `owner`, scanning from `hint`.
    pub fn claim_reader_slot(&self, owner: u64, hint: usize) -> Option<usize> {
        protocol::claim_slot(self.max_readers, hint, owner, |slot| {
            self.reader_field(slot, READER_OWNER)
        })
    }

    fn reader_words(&self, slot: usize) -> ReaderWords<'_, AtomicU64> {
        ReaderWords {
            owner: self.reader_field(slot, READER_OWNER),
            snapshot: self.reader_field(slot, READER_SNAPSHOT),
            view: self.reader_field(slot, READER_VIEW),
        }
    }

    /// Register the snapshot and view of a claimed reader slot, and check
    /// them against the GC horizon (unless `check_horizon` is false), the
    /// view floor and the current view: whether the registration holds
    /// (`protocol::register`).
    #[allow(clippy::too_many_arguments)]
    pub fn register_reader(
        &self,
        slot: usize,
        snapshot: u64,
        view: u64,
        manifest: u64,
        started_ms: u64,
        pid: u64,
        check_horizon: bool,
    ) -> bool {
        // Diagnostics only.
        self.reader_field(slot, READER_STARTED_MS)
            .store(started_ms, Ordering::Relaxed);
        self.reader_field(slot, READER_PID)
            .store(pid, Ordering::Relaxed);
        self.reader_field(slot, READER_MANIFEST)
            .store(manifest, Ordering::Relaxed);
        let bounds = Bounds {
            gc_horizon: self.hdr(OFF_GC_HORIZON),
            view_floor: self.hdr(OFF_VIEW_FLOOR),
            view_seq: self.hdr(OFF_VIEW_SEQ),
        };
        protocol::register(
            self.reader_field(slot, READER_SNAPSHOT),
            self.reader_field(slot, READER_VIEW),
            &bounds,
            snapshot,
            view,
            check_horizon,
        )
    }

    /// The header words of the commit protocol.
    pub fn commit_words(&self) -> CommitWords<'_, AtomicU64> {
        CommitWords {
            commit_in_progress: self.hdr(OFF_COMMIT_IN_PROGRESS),
            commit_wal_start: self.hdr(OFF_COMMIT_WAL_START),
            commit_version_base: self.hdr(OFF_COMMIT_VERSION_BASE),
            version_count: self.hdr(OFF_VERSION_COUNT),
            wal_end: self.hdr(OFF_WAL_END),
            written_ts: self.hdr(OFF_WRITTEN_TS),
        }
    }

    // ---- view -------------------------------------------------------

    /// A consistent copy of the fields `OFF_VIEW_SEQ` guards. Spins while a
    /// change is being written (a few stores, made with `LOCK_VIEW` held);
    /// gives up after a bound, as a corrupt header could leave it odd.
    pub fn read_view(&self) -> Result<ViewFields> {
        let started = std::time::Instant::now();
        let mut spins = 0u32;
        loop {
            let seq = self.hdr(OFF_VIEW_SEQ).load(Ordering::SeqCst);
            if seq % 2 == 0 {
                let fields = self.view_fields(seq, OFF_MEM_GENERATION_FIELDS);
                if self.hdr(OFF_VIEW_SEQ).load(Ordering::SeqCst) == seq {
                    return Ok(fields);
                }
                continue;
            }
            // A change is being written: a few stores, unless its writer
            // died half way. Then whoever takes the view lock finishes it.
            spins += 1;
            if spins < 1000 {
                std::hint::spin_loop();
                continue;
            }
            if let Some(_lock) = self.try_lock_view()? {
                continue;
            }
            if started.elapsed() > std::time::Duration::from_secs(30) {
                return Err(Error::corrupted(
                    &self.path,
                    OFF_VIEW_SEQ as u64,
                    "a change of the view has been under way for 30 s while its writer \
                     holds the view lock",
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The view fields at `base` (the published ones, or the next ones).
    fn view_fields(&self, seq: u64, base: [usize; VIEW_FIELDS]) -> ViewFields {
        let f = |i: usize| self.hdr(base[i]).load(Ordering::SeqCst);
        ViewFields {
            seq,
            mem_generation: f(0),
            arena_count: f(1),
            sealed_generation: f(2),
            sealed_log_end: f(3),
            active_log_start: f(4),
            active_log_base: f(5),
            manifest_generation: f(6),
        }
    }

    fn store_view_fields(&self, v: &ViewFields, base: [usize; VIEW_FIELDS]) {
        let values = [
            v.mem_generation,
            v.arena_count,
            v.sealed_generation,
            v.sealed_log_end,
            v.active_log_start,
            v.active_log_base,
            v.manifest_generation,
        ];
        for (off, value) in base.into_iter().zip(values) {
            self.hdr(off).store(value, Ordering::SeqCst);
        }
    }

    /// Store a new view: the whole of it beside the published one, then
    /// sequence odd, the fields, sequence even again. Only with `LOCK_VIEW`
    /// held, or while alone.
    pub fn write_view(&self, v: &ViewFields) -> u64 {
        self.store_view_fields(v, OFF_VIEW_NEXT_FIELDS);
        let seq = self.hdr(OFF_VIEW_SEQ).load(Ordering::SeqCst) | 1;
        self.hdr(OFF_VIEW_SEQ).store(seq, Ordering::SeqCst);
        self.store_view_fields(v, OFF_MEM_GENERATION_FIELDS);
        // The file is untrusted: a sequence at the end of the range wraps
        // rather than overflowing (views compare sequences for equality).
        let even = seq.wrapping_add(1);
        self.hdr(OFF_VIEW_SEQ).store(even, Ordering::SeqCst);
        even
    }

    /// Finish a view change whose writer died between turning the sequence
    /// odd and even (the next view was stored whole before). With
    /// `LOCK_VIEW` held, or while alone.
    fn finish_view_change(&self) {
        let seq = self.hdr(OFF_VIEW_SEQ).load(Ordering::SeqCst);
        if seq % 2 == 1 {
            let next = self.view_fields(seq, OFF_VIEW_NEXT_FIELDS);
            self.store_view_fields(&next, OFF_MEM_GENERATION_FIELDS);
            self.hdr(OFF_VIEW_SEQ)
                .store(seq.wrapping_add(1), Ordering::SeqCst);
        }
    }

    /// Take `LOCK_VIEW` if it is free, finishing a change its last holder
    /// left half done.
    fn try_lock_view(&self) -> Result<Option<ViewLock<'_>>> {
        let Ok(local) = self.view_lock.try_lock() else {
            return Ok(None);
        };
        let got = lock::try_lock(&self.file, LOCK_VIEW, Kind::Exclusive)
            .ctx(|| format!("locking {}", self.path.display()))?;
        if !got {
            return Ok(None);
        }
        self.finish_view_change();
        Ok(Some(ViewLock {
            coord: self,
            _local: local,
        }))
    }

    /// Take `LOCK_VIEW`, waiting for it: first from this process's other
    /// threads, then from other processes.
    pub fn lock_view(&self) -> Result<ViewLock<'_>> {
        let local = self.view_lock.lock().unwrap_or_else(|p| p.into_inner());
        lock::lock_wait(&self.file, LOCK_VIEW, Kind::Exclusive)
            .ctx(|| format!("locking {}", self.path.display()))?;
        self.finish_view_change();
        Ok(ViewLock {
            coord: self,
            _local: local,
        })
    }

    /// Try to take the maintenance role (flushes and compactions).
    pub fn try_lock_maint(&self) -> Result<bool> {
        lock::try_lock(&self.file, LOCK_MAINT, Kind::Exclusive)
            .ctx(|| format!("locking {}", self.path.display()))
    }

    /// Take the maintenance role, waiting for another process's job.
    pub fn lock_maint_wait(&self) -> Result<()> {
        lock::lock_wait(&self.file, LOCK_MAINT, Kind::Exclusive)
            .ctx(|| format!("locking {}", self.path.display()))
    }

    pub fn unlock_maint(&self) {
        let _ = lock::unlock(&self.file, LOCK_MAINT);
    }

    pub fn release_reader_slot(&self, slot: usize, owner: u64) {
        protocol::free_slot(self.reader_field(slot, READER_OWNER), owner);
    }

    /// Every claimed reader slot.
    pub fn reader_slots(&self) -> Vec<ReaderSlotInfo> {
        (0..self.max_readers)
            .filter_map(|slot| {
                let (owner, snapshot, view) = protocol::read_slot(&self.reader_words(slot))?;
                Some(ReaderSlotInfo {
                    slot,
                    owner,
                    snapshot,
                    started_ms: self
                        .reader_field(slot, READER_STARTED_MS)
                        .load(Ordering::Relaxed),
                    pid: self.reader_field(slot, READER_PID).load(Ordering::Relaxed),
                    view,
                    manifest: self
                        .reader_field(slot, READER_MANIFEST)
                        .load(Ordering::Relaxed),
                })
            })
            .collect()
    }

    /// Free a reader slot known to belong to a dead process.
    pub fn reclaim_reader_slot(&self, slot: usize, dead_owner: u64) -> bool {
        protocol::free_slot(self.reader_field(slot, READER_OWNER), dead_owner)
    }
}

fn read_u64_at(file: &File, path: &Path, offset: usize) -> Result<u64> {
    let mut buf = [0u8; 8];
    io::read_at(file, path, &mut buf, offset as u64)?;
    Ok(u64::from_le_bytes(buf))
}

/// Refuse to initialise over a file that is not a half-created coordination
/// file: a foreign one, or ours cut short.
fn check_foreign(file: &File, path: &Path, len: u64) -> Result<()> {
    if len < 8 {
        return Ok(());
    }
    let magic = read_u64_at(file, path, OFF_MAGIC)?.to_le_bytes();
    if magic == MAGIC && len < HEADER_SIZE as u64 {
        // Creation sizes the file before writing the magic, so a short file
        // that carries it was cut short after the fact.
        Err(Error::corrupted(
            path,
            len,
            format!(
                "coordination file truncated to {len} bytes; it holds no data of its own: \
                 close every handle, then remove it to rebuild it from the log"
            ),
        ))
    } else if magic == [0; 8] || magic == MAGIC {
        Ok(())
    } else {
        Err(Error::BadMagic {
            file: path.to_path_buf(),
            kind: "coordination",
        })
    }
}

/// Write a fresh header and empty slot tables. Caller holds the open lock
/// exclusively. `INIT_STATE` is written last.
fn initialize(file: &File, path: &Path, readers: u64, procs: u64) -> Result<()> {
    if readers == 0 || readers > LIMIT_READERS {
        return Err(Error::InvalidOption {
            option: "max_readers",
            why: format!("{readers} is not between 1 and {LIMIT_READERS}"),
        });
    }
    if procs == 0 || procs > LIMIT_PROCS {
        return Err(Error::InvalidOption {
            option: "max_processes",
            why: format!("{procs} is not between 1 and {LIMIT_PROCS}"),
        });
    }
    // Keep clock and commit state if the header already holds it (a resize).
    let mut header = vec![0u8; HEADER_SIZE];
    let len = io::len(file, path)?;
    if len >= HEADER_SIZE as u64
        && read_u64_at(file, path, OFF_INIT_STATE)? == INIT_READY
        && read_u64_at(file, path, OFF_VERSION)? == FORMAT_VERSION
    {
        io::read_at(file, path, &mut header, 0)?;
    }
    let put = |h: &mut [u8], off: usize, v: u64| h[off..off + 8].copy_from_slice(&v.to_le_bytes());
    header[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&MAGIC);
    put(&mut header, OFF_VERSION, FORMAT_VERSION);
    put(&mut header, OFF_MAX_READERS, readers);
    put(&mut header, OFF_MAX_PROCS, procs);
    put(&mut header, OFF_INIT_STATE, 0);
    io::set_len(file, path, 0)?;
    let size = file_size(procs as usize, readers as usize);
    io::set_len(file, path, size as u64)?;
    // Back the whole mapping with blocks now: a write through the mapping
    // to a hole on a full disk would be a SIGBUS, not an error.
    io::allocate(file, path, 0, size as u64)?;
    io::write_at(file, path, &header, 0)?;
    io::write_at(file, path, &INIT_READY.to_le_bytes(), OFF_INIT_STATE as u64)?;
    Ok(())
}

/// Whether the file is ours, fully initialised, in a layout older than
/// this release's.
fn older_layout(file: &File, path: &Path) -> Result<bool> {
    let magic = read_u64_at(file, path, OFF_MAGIC)?.to_le_bytes();
    Ok(magic == MAGIC && read_u64_at(file, path, OFF_VERSION)? < FORMAT_VERSION)
}

/// Check magic, version and sizes; return `(max_procs, max_readers)`.
fn validate(file: &File, path: &Path) -> Result<(u64, u64)> {
    let magic = read_u64_at(file, path, OFF_MAGIC)?.to_le_bytes();
    if magic != MAGIC {
        return Err(Error::BadMagic {
            file: path.to_path_buf(),
            kind: "coordination",
        });
    }
    let version = read_u64_at(file, path, OFF_VERSION)?;
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            file: path.to_path_buf(),
            found: version.min(u32::MAX as u64) as u32,
            supported: FORMAT_VERSION as u32,
        });
    }
    let readers = read_u64_at(file, path, OFF_MAX_READERS)?;
    let procs = read_u64_at(file, path, OFF_MAX_PROCS)?;
    // It holds nothing that is not in the durable files.
    const WHAT_TO_DO: &str = "close every handle, then remove it to rebuild it from the log";
    if readers == 0 || readers > LIMIT_READERS || procs == 0 || procs > LIMIT_PROCS {
        return Err(Error::corrupted(
            path,
            OFF_MAX_READERS as u64,
            format!("slot counts out of range; {WHAT_TO_DO}"),
        ));
    }
    // Creation sizes the file exactly: any other length is damage (a
    // damaged slot count would misplace every slot).
    let need = file_size(procs as usize, readers as usize) as u64;
    let len = io::len(file, path)?;
    if len != need {
        return Err(Error::corrupted(
            path,
            len,
            format!(
                "coordination file of {len} bytes, expected {need} for its slot counts; \
                 {WHAT_TO_DO}"
            ),
        ));
    }
    Ok((procs, readers))
}

/// A 64-bit hash of the kernel's boot id, or 0 when it cannot be read.
/// Mapped files survive process crashes but not a reboot; a changed boot id
/// tells an opener that the version store may hold torn pages.
pub(crate) fn boot_id() -> u64 {
    std::fs::read("/proc/sys/kernel/random/boot_id")
        .map(|b| {
            b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| {
                (h ^ c as u64).wrapping_mul(0x100_0000_01b3)
            }) | 1
        })
        .unwrap_or(0)
}
