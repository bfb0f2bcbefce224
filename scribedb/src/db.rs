//! `Database`: options, opening, the writer role, reader registration,
//! views and diagnostics. The commit protocol lives in `commit.rs`,
//! recovery in `recovery.rs`, transactions in `txn.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::check::CheckReport;
use crate::coord::layout::*;
use crate::coord::{protocol, Attach, Coord};
use crate::error::{Error, IoContext, Result};
use crate::gc::Horizon;
use crate::hlc;
use crate::logfiles;
use crate::maint::{self, Maintenance};
use crate::manifest::Manifest;
use crate::recovery;
use crate::segment::Verify;
use crate::txn::{ReadTxn, WriteTxn};
use crate::view::View;
use crate::wal::format::FILE_HEADER;
use crate::wal::{RecoveryReport, Wal};

pub use crate::entry::{MAX_KEY_LEN, MAX_VALUE_LEN};

const COORD_FILE: &str = "coord";
const DEFAULT_ARENA_SIZE: usize = 128 << 20;
/// Default memtable budget: arena bytes plus the log bytes its values use.
pub const DEFAULT_MEMTABLE_SIZE: u64 = 64 << 20;
const EVENTUAL_SYNC_INTERVAL: Duration = Duration::from_millis(50);

/// When a commit is durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `commit` returns after the WAL is synced to disk (group commit shares
    /// the sync between overlapping committers). Readers see a commit only
    /// once it is durable.
    #[default]
    Immediate,
    /// `commit` returns and publishes at once; a background thread syncs the
    /// WAL every few tens of milliseconds. A crash of the machine can lose
    /// the last commits; a crash of the process cannot.
    Eventual,
    /// Never sync. A crash of the process loses nothing; a crash of the
    /// machine can lose anything not yet written back by the kernel.
    None,
}

/// Options for opening a database.
#[derive(Clone, Debug)]
pub struct Builder {
    durability: Durability,
    max_readers: u32,
    max_processes: u32,
    writer_timeout: Duration,
    repair: bool,
    create: bool,
    arena_size: usize,
    memtable_size: u64,
    retention: Option<Duration>,
    verify: Verify,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            durability: Durability::Immediate,
            max_readers: 1024,
            max_processes: 256,
            writer_timeout: Duration::from_secs(5),
            repair: false,
            create: true,
            arena_size: DEFAULT_ARENA_SIZE,
            memtable_size: DEFAULT_MEMTABLE_SIZE,
            retention: None,
            verify: Verify::Once,
        }
    }
}

impl Builder {
    /// Durability of this handle's commits (default `Immediate`).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Number of reader slots, shared by all processes (default 1024). Takes
    /// effect when no other handle has the database open.
    pub fn max_readers(mut self, n: u32) -> Self {
        self.max_readers = n;
        self
    }

    /// Number of process slots: handles open at once (default 256). Fixed
    /// when the coordination file is created.
    pub fn max_processes(mut self, n: u32) -> Self {
        self.max_processes = n;
        self
    }

    /// How long `begin_write` waits for the writer role (default 5 s).
    pub fn writer_timeout(mut self, timeout: Duration) -> Self {
        self.writer_timeout = timeout;
        self
    }

    /// Cut the write-ahead log at damage instead of refusing to open. What
    /// was dropped is in [`Database::recovery_report`].
    pub fn repair(mut self, repair: bool) -> Self {
        self.repair = repair;
        self
    }

    /// Whether `open` creates a missing database (default true). With
    /// `false`, opening anything but an existing database fails with
    /// `Error::NotADatabase` and creates nothing.
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Size of each version-store arena file (default 128 MiB, sparse).
    pub fn arena_size(mut self, bytes: usize) -> Self {
        self.arena_size = bytes.max(1 << 16);
        self
    }

    /// Memtable budget (default 64 MiB): once the memtable's arena bytes
    /// plus the log bytes of its values pass it, the memtable is sealed and
    /// flushed into a segment file in the background, and its log file is
    /// deleted. A commit waits for a flush only when the memtable reaches
    /// twice the budget while the previous one is still being flushed.
    /// At least 16 KiB (smaller values are raised); more than 1 TiB is
    /// refused at open with [`Error::InvalidOption`].
    pub fn memtable_size(mut self, bytes: u64) -> Self {
        self.memtable_size = bytes.max(16 << 10);
        self
    }

    /// Keep every version newer than now minus `window` (default 0), so
    /// that [`Database::begin_read_at`] and [`Database::begin_read_as_of`]
    /// can read any moment within it. A property of the database, kept in
    /// its manifest: setting it changes it for every process, and a handle
    /// that does not set it uses the stored one. Whole milliseconds, at most
    /// 100 years.
    pub fn retention(mut self, window: Duration) -> Self {
        self.retention = Some(window);
        self
    }

    /// Check a segment block's checksum at every read that touches it
    /// (default false: the first time this process reads the block).
    ///
    /// Reads are served from the file's mapping without a copy, so a block
    /// checked once is trusted for the life of the handle. Bytes that
    /// change after that check, in a page the kernel evicted and read
    /// again from a failing disk or in a file something else wrote into,
    /// would reach the caller unchecked. With this set they are an error
    /// at the next read that touches them, except in the moment between a
    /// read's check and the caller's use of the borrowed bytes (for a
    /// scan, while the entries merged ahead of it wait). Costs a checksum
    /// of each 4 KiB block a get touches: gets from a segment took 3.6
    /// times as long as unchecked ones in the core benchmark's section
    /// 2b; a scan checks a block once as it passes over it, and took 1.05
    /// to 1.6 times as long. Values kept in the log are checked at
    /// every read either way. A property of this handle, not of the
    /// database.
    pub fn verify_every_read(mut self, on: bool) -> Self {
        self.verify = if on { Verify::EveryRead } else { Verify::Once };
        self
    }

    /// Open the database in directory `path`, creating it if missing.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Database> {
        Database::open_with(path.as_ref(), self)
    }
}

/// Who holds the writer role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterInfo {
    /// Process id of the holder.
    pub pid: u64,
    /// When it took the role, in wall-clock milliseconds since the epoch.
    pub since_ms: u64,
}

/// One registered read transaction, in any process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderInfo {
    /// Index of the reader slot.
    pub slot: usize,
    /// Process id that registered it.
    pub pid: u64,
    /// Its snapshot timestamp.
    pub snapshot: u64,
    /// Milliseconds since it began.
    pub age_ms: u64,
    /// How far behind the latest commit its snapshot is, in milliseconds.
    pub lag_ms: u64,
    /// Whether its process is alive (dead ones are reclaimed automatically).
    pub live: bool,
    /// The view sequence number it reads: files retired after that view
    /// are kept for it.
    pub view: u64,
    /// The manifest generation of that view.
    pub manifest_generation: u64,
    /// Bytes of segment files it keeps that the current view no longer
    /// names (0 when it reads the current manifest).
    pub pinned_bytes: u64,
}

/// Figures about a database, for `scribe stat`.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Live keys at the latest commit.
    pub keys: u64,
    /// Versions stored (puts and deletes): in the current memtable and in
    /// segments (a sealed memtable's are not counted).
    pub versions: u64,
    /// Bytes of key and value data in live keys.
    pub data_bytes: u64,
    /// Arena files in the current generation.
    pub arenas: u64,
    /// Bytes used in those arenas.
    pub arena_bytes: u64,
    /// Log position of the end of the last record: bytes of log written
    /// over the database's life (`wal_bytes - log_start` are not yet in
    /// segments).
    pub wal_bytes: u64,
    /// Bytes of the log's files, preallocation included.
    pub wal_file_bytes: u64,
    /// Newest commit visible to readers.
    pub committed_ts: u64,
    /// Number of times the version store was rebuilt or repaired.
    pub epoch: u64,
    /// Reader slots in use (live, or dead and not yet reclaimed).
    pub readers: usize,
    /// Reader slots in all.
    pub max_readers: usize,
    /// Database handles open (all processes).
    pub processes: usize,
    /// Process slots in all: handles that may be open at once.
    pub max_processes: usize,
    /// Who holds the writer role, if anyone.
    pub writer: Option<WriterInfo>,
    /// Oldest snapshot any live reader holds (or the committed timestamp).
    pub oldest_snapshot: u64,
    /// Bytes the current memtable uses: arena bytes plus the log bytes of
    /// its records.
    pub memtable_bytes: u64,
    /// The memtable budget of this handle.
    pub memtable_budget: u64,
    /// Whether a sealed memtable is waiting for (or in) its flush.
    pub sealed_memtable: bool,
    /// Segment files in the current manifest.
    pub segments: usize,
    /// Bytes of segment files per level (index 0 is level 0).
    pub level_bytes: Vec<u64>,
    /// Log position where records not yet in segments begin: the log
    /// below it is deleted once no reader needs it.
    pub log_start: u64,
    /// Generation of the current manifest.
    pub manifest_generation: u64,
    /// The last failure of a background flush or compaction in this
    /// process, if any (they are retried).
    pub maintenance_error: Option<String>,
    /// Segments in level 0 (flushed, not yet compacted).
    pub level0_segments: usize,
    /// Level 0 segments that start a compaction.
    pub compaction_trigger: usize,
    /// Bytes of segment files a compaction would merge now (0 if none is
    /// due).
    pub pending_compaction_bytes: u64,
    /// The retention window stored with the database, in milliseconds.
    pub retention_ms: u64,
    /// The oldest timestamp a read of the past can ask for.
    pub oldest_readable_ts: u64,
    /// The reader that keeps the most retired segment bytes: `(slot, pid,
    /// bytes)`.
    pub most_pinning_reader: Option<(usize, u64, u64)>,
    /// Commits (of every process, since the coordination file was made)
    /// that waited for a flush, and how long in all (microseconds).
    pub stalls: (u64, u64),
    /// Bytes of segment files this handle's flushes wrote.
    pub bytes_flushed: u64,
    /// Bytes of segment files this handle's compactions wrote.
    pub bytes_compacted: u64,
    /// Compactions this handle ran (moves without a rewrite included).
    pub compactions: u64,
}

/// A handle on an open database. Cheap to share between threads
/// (`Database` is `Send + Sync`); open one per process, or several.
pub struct Database {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The fork generation of the process that opened the handle
    /// (`fork.rs`).
    fork_generation: u64,
    pub dir: PathBuf,
    pub durability: Durability,
    writer_timeout: Duration,
    pub coord: Coord,
    pub wal: Wal,
    pub arena_size: usize,
    /// How often segment blocks are checked (`Builder::verify_every_read`).
    verify: Verify,
    pub memtable_size: u64,
    /// The view this process built last.
    view: ArcSwap<View>,
    /// One view is built at a time in this process.
    view_build: Mutex<()>,
    pub maint: Maintenance,
    flusher: Flusher,
    /// This handle's own `Arc`, for starting its maintenance thread.
    self_ref: OnceLock<Weak<Inner>>,
    /// The last maintenance failure (a full disk, say), for diagnostics.
    maint_error: Mutex<Option<String>>,
    pub pid: u64,
    proc_slot: usize,
    pub owner_tag: u64,
    /// In-process half of the writer role (the other half is a file lock).
    writer_busy: Mutex<bool>,
    writer_free: Condvar,
    /// Set when a failed write leaves this handle's view uncertain.
    poison: OnceLock<String>,
    report: RecoveryReport,
}

impl Database {
    /// Open the database in directory `path` with default options, creating
    /// it if missing.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Builder::default().open(path)
    }

    /// Options for opening a database.
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn open_with(dir: &Path, opts: Builder) -> Result<Database> {
        const MAX_RETENTION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        if opts.retention.is_some_and(|r| r > MAX_RETENTION) {
            return Err(Error::InvalidOption {
                option: "retention",
                why: "longer than 100 years".to_string(),
            });
        }
        // A log file holds one memtable's records and must stay within
        // what a file's read windows cover.
        const MAX_MEMTABLE: u64 = 1 << 40;
        if opts.memtable_size > MAX_MEMTABLE {
            return Err(Error::InvalidOption {
                option: "memtable_size",
                why: format!("{} bytes is more than 1 TiB", opts.memtable_size),
            });
        }
        if !opts.create {
            // Every database has its log from the moment it is created.
            let why = if !dir.is_dir() {
                "no such database directory"
            } else if logfiles::list(dir).map_or(true, |files| files.is_empty()) {
                "not a ScribeDB database (it has no write-ahead log)"
            } else {
                ""
            };
            if !why.is_empty() {
                return Err(Error::NotADatabase {
                    path: dir.to_path_buf(),
                    why,
                });
            }
        }
        crate::io::create_dir(dir)?;
        // A database that exists has its log: its coordination file is
        // derived state, which an opener that is alone may replace.
        let exists = logfiles::list(dir).is_ok_and(|files| !files.is_empty());
        let (coord, attach) = Coord::open_derived(
            &dir.join(COORD_FILE),
            opts.max_readers,
            opts.max_processes,
            exists,
        )?;
        let wal = Wal::open(dir, opts.memtable_size)?;
        let (view, report) = match attach {
            Attach::Alone => {
                // No one else is attached, so no one waits for a commit: a
                // count left by a waiter that was killed is cleared.
                coord.hdr(OFF_COMMIT_WAITERS).store(0, Ordering::Release);
                let r = recovery::recover_alone(
                    dir,
                    &coord,
                    &wal,
                    opts.repair,
                    opts.arena_size,
                    opts.verify,
                );
                coord.share()?;
                r?
            }
            Attach::Shared => {
                let view = View::load(dir, coord.read_view()?, opts.arena_size, opts.verify, None)?;
                // Fails here, not at the first read, if the version store
                // in use was built by a release with another arena format
                // (still open in another process).
                view.active.get(0)?;
                (view, RecoveryReport::default())
            }
        };
        // A committer that died after inserting its commit but before
        // publishing it leaves readers behind the writers; make what is
        // written durable and publish it, so no reader waits for the next
        // commit to see it.
        let written = coord.hdr(OFF_WRITTEN_TS).load(Ordering::Acquire);
        if written > coord.hdr(OFF_COMMITTED_TS).load(Ordering::Acquire) {
            wal.sync_and_publish(&coord)?;
        }
        let pid = std::process::id() as u64;
        let (proc_slot, proc_generation) = coord.claim_process_slot(pid, hlc::now_millis())?;
        let inner = Arc::new(Inner {
            fork_generation: crate::fork::generation(),
            dir: dir.to_path_buf(),
            durability: opts.durability,
            writer_timeout: opts.writer_timeout,
            owner_tag: owner_tag(proc_slot, proc_generation),
            coord,
            wal,
            arena_size: opts.arena_size,
            verify: opts.verify,
            memtable_size: opts.memtable_size,
            view: ArcSwap::from_pointee(view),
            view_build: Mutex::new(()),
            maint: Maintenance::default(),
            flusher: Flusher::default(),
            self_ref: OnceLock::new(),
            maint_error: Mutex::new(None),
            pid,
            proc_slot,
            writer_busy: Mutex::new(false),
            writer_free: Condvar::new(),
            poison: OnceLock::new(),
            report,
        });
        let _ = inner.self_ref.set(Arc::downgrade(&inner));
        if inner.durability == Durability::Eventual {
            Flusher::start(&inner)?;
        }
        // A sealed memtable nobody is flushing (its process exited or
        // died): this handle takes it on.
        if inner.coord.read_view()?.sealed_generation != 0 {
            inner.start_maintenance();
        }
        let db = Database { inner };
        if let Some(window) = opts.retention {
            db.inner.set_retention(window.as_millis() as u64)?;
        }
        Ok(db)
    }

    /// Begin the write transaction, waiting up to the writer timeout for the
    /// writer role (held by at most one transaction across all processes).
    pub fn begin_write(&self) -> Result<WriteTxn> {
        let snapshot = self.inner.acquire_writer()?;
        WriteTxn::new(self.inner.clone(), snapshot)
    }

    /// Begin a read transaction on the latest published commit. Lock-free:
    /// a few atomic operations on shared memory.
    pub fn begin_read(&self) -> Result<ReadTxn> {
        ReadTxn::begin(self.inner.clone())
    }

    /// Begin a read transaction on the state committed at or before
    /// timestamp `ts`: exactly the commits with a timestamp up to `ts`. A
    /// future timestamp reads the newest commit. Below the oldest readable
    /// point ([`Database::oldest_readable_ts`]) it fails with
    /// `Error::HistoryUnavailable`, never with a wrong answer.
    pub fn begin_read_at(&self, ts: u64) -> Result<ReadTxn> {
        ReadTxn::begin_at(self.inner.clone(), crate::txn::At::Past(ts))
    }

    /// Begin a read transaction on the state committed at or before the
    /// wall-clock moment `time` (to the millisecond).
    pub fn begin_read_as_of(&self, time: std::time::SystemTime) -> Result<ReadTxn> {
        let ms = time
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        // The last timestamp of that millisecond.
        let ts = hlc::from_millis(ms + 1).saturating_sub(1);
        self.begin_read_at(ts)
    }

    /// The oldest timestamp [`Database::begin_read_at`] can read now: now
    /// minus the retention window, or the stored floor if later, but never
    /// after the newest commit. It never moves back.
    pub fn oldest_readable_ts(&self) -> Result<u64> {
        Ok(self.inner.oldest_readable(&*self.inner.current_view()?))
    }

    /// The retention window stored with the database.
    pub fn retention(&self) -> Result<Duration> {
        Ok(Duration::from_millis(
            self.inner.current_view()?.manifest.retention_ms,
        ))
    }

    /// Newest commit visible to new readers.
    pub fn committed_ts(&self) -> u64 {
        self.inner
            .coord
            .hdr(OFF_COMMITTED_TS)
            .load(Ordering::Acquire)
    }

    /// Wait until a commit newer than `after_ts` is visible (made by any
    /// process) and return the newest committed timestamp, or `None` once
    /// `timeout` has passed (`None`: no limit). Waiting sleeps on a futex
    /// in the coordination file, which every commit's publication wakes:
    /// no polling, and no cost to commits while no one waits.
    ///
    /// ```no_run
    /// # fn main() -> scribedb::Result<()> {
    /// # let db = scribedb::Database::open("my.db")?;
    /// let mut seen = db.committed_ts();
    /// while let Some(ts) = db.wait_for_commit(seen, std::time::Duration::from_secs(1))? {
    ///     // ... read what changed since `seen` ...
    ///     seen = ts;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn wait_for_commit(
        &self,
        after_ts: u64,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Option<u64>> {
        self.inner.check_fork()?;
        Ok(self.inner.coord.wait_commit_past(after_ts, timeout.into()))
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// What recovery did when this handle opened the database (empty when
    /// another handle was already attached).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// Who holds the writer role, if anyone (this or another process).
    pub fn writer(&self) -> Option<WriterInfo> {
        self.inner.writer_info()
    }

    /// Every registered read transaction, across processes (write
    /// transactions hold one too, at the writer's snapshot).
    pub fn readers(&self) -> Vec<ReaderInfo> {
        let now = hlc::now_millis();
        let committed_ms = hlc::millis(self.committed_ts());
        let current = self.inner.current_view().ok();
        let mut pinned_by_generation = std::collections::HashMap::new();
        self.inner
            .coord
            .reader_slots()
            .into_iter()
            .map(|r| {
                let pinned_bytes =
                    *pinned_by_generation
                        .entry(r.manifest)
                        .or_insert_with(|| match &current {
                            Some(v) if v.manifest.generation != r.manifest && r.manifest != 0 => {
                                // The manifest stays until no reader names it.
                                Manifest::read(&self.inner.dir, r.manifest)
                                    .map(|old| {
                                        old.segments
                                            .iter()
                                            .filter(|s| {
                                                !v.manifest.segments.iter().any(|c| c.id == s.id)
                                            })
                                            .map(|s| s.size)
                                            .sum()
                                    })
                                    .unwrap_or(0)
                            }
                            _ => 0,
                        });
                ReaderInfo {
                    slot: r.slot,
                    pid: r.pid,
                    snapshot: r.snapshot,
                    age_ms: now.saturating_sub(r.started_ms),
                    lag_ms: committed_ms.saturating_sub(hlc::millis(r.snapshot)),
                    live: self.inner.owner_alive(r.owner),
                    view: r.view,
                    manifest_generation: r.manifest,
                    pinned_bytes,
                }
            })
            .collect()
    }

    /// Free the reader slots of dead processes now; returns how many.
    /// (This also happens automatically whenever slots run short and when
    /// the oldest snapshot is computed.)
    pub fn reclaim_dead_readers(&self) -> usize {
        self.inner.reclaim_dead_readers()
    }

    /// The oldest snapshot held by any live reader in any process, or the
    /// committed timestamp when there is none. Versions older than what this
    /// snapshot sees may be discarded; a reader registering concurrently
    /// either is counted or re-reads a newer snapshot.
    pub fn oldest_snapshot(&self) -> u64 {
        self.inner.oldest_snapshot()
    }

    /// Counts and sizes; walks every key, so it costs a full scan.
    pub fn stats(&self) -> Result<Stats> {
        let inner = &self.inner;
        let hdr = |off| inner.coord.hdr(off).load(Ordering::Acquire);
        let txn = self.begin_read()?;
        let (mut keys, mut data_bytes) = (0, 0);
        for kv in txn.iter() {
            let (k, v) = kv?;
            keys += 1;
            data_bytes += (k.len() + v.len()) as u64;
        }
        drop(txn);
        let view = inner.current_view()?;
        let arenas = view.fields.arena_count;
        let (arena_bytes, _) = view.active.usage(arenas as usize)?;
        let wal_end = hdr(OFF_WAL_END);
        let levels = view.manifest.level_sizes();
        let segments = view.manifest.segments.len();
        Ok(Stats {
            keys,
            versions: hdr(OFF_VERSION_COUNT)
                + view
                    .manifest
                    .segments
                    .iter()
                    .map(|s| s.entries)
                    .sum::<u64>(),
            data_bytes,
            arenas,
            arena_bytes,
            wal_bytes: hdr(OFF_WAL_END),
            wal_file_bytes: inner.wal.bytes_on_disk()?,
            committed_ts: hdr(OFF_COMMITTED_TS),
            epoch: hdr(OFF_EPOCH),
            readers: inner.coord.reader_slots().len(),
            max_readers: inner.coord.max_readers(),
            processes: inner.coord.attached_processes().len() + 1,
            max_processes: inner.coord.max_procs(),
            writer: inner.writer_info(),
            oldest_snapshot: self.oldest_snapshot(),
            memtable_bytes: arena_bytes + wal_end.saturating_sub(view.fields.active_log_start),
            memtable_budget: inner.memtable_size,
            sealed_memtable: view.sealed.is_some(),
            segments,
            level_bytes: levels,
            log_start: view.manifest.log_start.max(FILE_HEADER as u64),
            manifest_generation: view.manifest.generation,
            maintenance_error: inner
                .maint_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            level0_segments: view.l0.len(),
            compaction_trigger: maint::L0_COMPACTION_TRIGGER,
            pending_compaction_bytes: if view.l0.len() >= maint::L0_COMPACTION_TRIGGER {
                view.manifest.segments.iter().map(|s| s.size).sum()
            } else {
                0
            },
            retention_ms: view.manifest.retention_ms,
            oldest_readable_ts: inner.oldest_readable(&view),
            most_pinning_reader: self
                .readers()
                .into_iter()
                .filter(|r| r.live && r.pinned_bytes > 0)
                .max_by_key(|r| r.pinned_bytes)
                .map(|r| (r.slot, r.pid, r.pinned_bytes)),
            stalls: (hdr(OFF_STALLS), hdr(OFF_STALL_MICROS)),
            bytes_flushed: inner.maint.flushed_bytes.load(Ordering::Relaxed),
            bytes_compacted: inner.maint.compacted_bytes.load(Ordering::Relaxed),
            compactions: inner.maint.compactions.load(Ordering::Relaxed),
        })
    }

    /// Flush the memtable and merge every segment into one sorted run now,
    /// dropping every version no live snapshot can see. Waits for a
    /// flush or compaction another process runs.
    pub fn compact(&self) -> Result<()> {
        let inner = &self.inner;
        inner.check_poison()?;
        // Seal the memtable (under the writer role) so that it is flushed;
        // twice, as a memtable sealed earlier may still wait for its flush
        // the first time.
        for last in [false, true] {
            let w = self.begin_write()?;
            let sealed = inner.seal(&*inner.current_view()?);
            drop(w);
            sealed?;
            inner.maintain_once(true, last)?;
        }
        Ok(())
    }

    /// Check the whole database as it is on disk now: every checksum of
    /// the log from the manifest's log start to its end, of every segment
    /// the manifest lists and of the manifest itself, and the structure
    /// of the memtables and of the segments' entries and indexes (see
    /// [`CheckReport`]). It runs beside readers and a writer, in any
    /// process, as a reader does: it takes none of the database's locks
    /// and never the writer role, so it keeps no one waiting, and the
    /// files it reads are kept for it until it returns.
    ///
    /// Damage found is listed in the report, with its file and offset;
    /// `Err` means the check itself failed (an I/O error, say).
    pub fn check(&self) -> Result<CheckReport> {
        crate::check::run(&self.inner)
    }

    /// Sync the write-ahead log now and publish everything written
    /// (useful with `Durability::Eventual` or `None`).
    pub fn sync(&self) -> Result<()> {
        self.inner.check_poison()?;
        self.inner.wal.sync_and_publish(&self.inner.coord)
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if self.inner.forked() {
            // A copy in a forked child: its threads are not here to join,
            // and its locks and slots are the parent's. Leave it all.
            std::mem::forget(Arc::clone(&self.inner));
            return;
        }
        // A flush this handle owes finishes before the handle goes, and
        // no thread of its own keeps it open after `drop` returns.
        self.inner.maint.stop();
        self.inner.flusher.stop();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.durability == Durability::Eventual && self.poison.get().is_none() {
            let _ = self.wal.sync_and_publish(&self.coord);
        }
        // The last handle to close gives back the log's slack. Not while a
        // commit is unfinished (its writer died): the next writer reads the
        // record past the end.
        if self.poison.get().is_none()
            && self
                .coord
                .hdr(OFF_COMMIT_IN_PROGRESS)
                .load(Ordering::Acquire)
                == 0
            && self.coord.last_one_closing()
        {
            let end = self.coord.hdr(OFF_WAL_END).load(Ordering::Acquire);
            if let Ok(view) = self.coord.read_view() {
                let _ = self.wal.trim_after(view.active_log_base, end);
            }
        }
        self.coord.release_process_slot(self.proc_slot);
    }
}

/// The background sync thread of an `Eventual` handle. It holds the
/// handle only while it syncs, and the handle's `Database` stops it before
/// going, so the handle is closed (locks and slots released) when `drop`
/// returns.
#[derive(Default)]
pub(crate) struct Flusher {
    stop: Mutex<bool>,
    stopped: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Flusher {
    fn start(inner: &Arc<Inner>) -> Result<()> {
        let weak = Arc::downgrade(inner);
        let handle = std::thread::Builder::new()
            .name("scribedb-flush".into())
            .spawn(move || loop {
                {
                    let Some(inner) = weak.upgrade() else { return };
                    let f = &inner.flusher;
                    let stop = f.stop.lock().unwrap_or_else(|p| p.into_inner());
                    let (stop, _) = f
                        .stopped
                        .wait_timeout_while(stop, EVENTUAL_SYNC_INTERVAL, |stop| !*stop)
                        .unwrap_or_else(|p| p.into_inner());
                    if *stop {
                        return;
                    }
                }
                let Some(inner) = weak.upgrade() else { return };
                let c = &inner.coord;
                if c.hdr(OFF_WAL_SYNCED).load(Ordering::Acquire)
                    < c.hdr(OFF_WAL_END).load(Ordering::Acquire)
                {
                    if let Err(e) = inner.wal.sync_and_publish(c) {
                        inner.set_poison(format!("background sync failed: {e}"));
                        return;
                    }
                }
            })
            .ctx(|| "starting the background sync thread".to_string())?;
        *inner
            .flusher
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(())
    }

    /// Stop the thread and wait for it (not from the thread itself).
    fn stop(&self) {
        *self.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.stopped.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

impl Inner {
    /// Whether this is a copy of the handle in a child forked after it
    /// was opened.
    #[inline]
    pub fn forked(&self) -> bool {
        crate::fork::since(self.fork_generation)
    }

    /// `Error::Forked` in a forked child.
    #[inline]
    pub fn check_fork(&self) -> Result<()> {
        if self.forked() {
            return Err(Error::Forked {
                opened_by: self.pid,
            });
        }
        Ok(())
    }

    pub fn check_poison(&self) -> Result<()> {
        self.check_fork()?;
        match self
            .poison
            .get()
            .map(String::as_str)
            .or(self.wal.sync_failure())
        {
            Some(why) => Err(Error::Poisoned(why.to_string())),
            None => Ok(()),
        }
    }

    pub fn set_poison(&self, why: String) {
        let _ = self.poison.set(why);
    }

    fn writer_info(&self) -> Option<WriterInfo> {
        let held_here = *self.writer_busy.lock().unwrap_or_else(|p| p.into_inner());
        (held_here || self.coord.writer_held_elsewhere()).then(|| WriterInfo {
            pid: self.coord.hdr(OFF_WRITER_PID).load(Ordering::Acquire),
            since_ms: self.coord.hdr(OFF_WRITER_SINCE).load(Ordering::Acquire),
        })
    }

    fn busy_error(&self) -> Error {
        let holder = match self.writer_info() {
            Some(w) if w.pid != 0 => {
                let secs = hlc::now_millis().saturating_sub(w.since_ms) as f64 / 1000.0;
                let whose = if w.pid == self.pid {
                    " (this process)"
                } else {
                    ""
                };
                format!("pid {}{whose}, for {secs:.1}s", w.pid)
            }
            _ => "another handle".to_string(),
        };
        Error::WriterBusy { holder }
    }

    /// Take the writer role (in-process flag, then the cross-process lock)
    /// and return the writer's snapshot: every commit written so far.
    fn acquire_writer(&self) -> Result<u64> {
        self.check_poison()?;
        let deadline = Instant::now() + self.writer_timeout;
        {
            let mut busy = self.writer_busy.lock().unwrap_or_else(|p| p.into_inner());
            while *busy {
                let now = Instant::now();
                if now >= deadline {
                    drop(busy);
                    return Err(self.busy_error());
                }
                busy = self
                    .writer_free
                    .wait_timeout(busy, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            *busy = true;
        }
        let mut backoff = Duration::from_micros(20);
        loop {
            match self.coord.try_lock_writer() {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    self.release_writer_flag();
                    return Err(e);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                self.release_writer_flag();
                return Err(self.busy_error());
            }
            std::thread::sleep(backoff.min(deadline - now));
            backoff = (backoff * 2).min(Duration::from_millis(2));
        }
        self.coord
            .hdr(OFF_WRITER_PID)
            .store(self.pid, Ordering::Release);
        self.coord
            .hdr(OFF_WRITER_SINCE)
            .store(hlc::now_millis(), Ordering::Release);
        if let Err(e) = self.finish_dead_commit() {
            self.release_writer();
            return Err(e);
        }
        // A handle that writes keeps the store tidy: flushes, compactions
        // and the deletion of what no reader needs any more.
        self.start_maintenance();
        Ok(self.coord.hdr(OFF_WRITTEN_TS).load(Ordering::Acquire))
    }

    fn release_writer_flag(&self) {
        *self.writer_busy.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.writer_free.notify_one();
    }

    /// Give up the writer role.
    pub fn release_writer(&self) {
        self.coord.hdr(OFF_WRITER_PID).store(0, Ordering::Release);
        let _ = self.coord.unlock_writer();
        self.release_writer_flag();
    }

    /// Start this handle's maintenance thread if it is not running.
    pub fn start_maintenance(&self) {
        if let Some(weak) = self.self_ref.get() {
            self.maint.ensure_started(weak.clone());
        }
    }

    pub fn note_maintenance_error(&self, why: String) {
        *self.maint_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    /// The current view, built anew only when the view sequence moved.
    pub fn current_view(&self) -> Result<Arc<View>> {
        let seq = self.coord.hdr(OFF_VIEW_SEQ).load(Ordering::SeqCst);
        let cached = self.view.load_full();
        if cached.fields.seq == seq {
            return Ok(cached);
        }
        let _building = self.view_build.lock().unwrap_or_else(|p| p.into_inner());
        let mut tries = 0;
        loop {
            let fields = self.coord.read_view()?;
            let cached = self.view.load_full();
            if cached.fields.seq == fields.seq {
                return Ok(cached);
            }
            match View::load(
                &self.dir,
                fields,
                self.arena_size,
                self.verify,
                Some(&cached),
            ) {
                Ok(view) => {
                    let view = Arc::new(view);
                    self.view.store(view.clone());
                    self.wal.forget_below(fields.active_log_base);
                    return Ok(view);
                }
                // The files of a view that has just been replaced may be
                // gone already; the next view names what exists.
                Err(_)
                    if tries < 100
                        && self.coord.hdr(OFF_VIEW_SEQ).load(Ordering::SeqCst) != fields.seq =>
                {
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The live snapshots for a flush or compaction: every snapshot a live
    /// reader holds, and the committed timestamp `N`, published as the
    /// horizon between two scans of the slots, so that a reader registering
    /// meanwhile either shows up in the second scan or sees the horizon and
    /// takes a snapshot of at least `N` (see `ReadTxn::begin`).
    pub fn live_snapshots(&self, view: &View) -> Horizon {
        // Versions newer than the oldest readable point are all kept, so
        // that reads of the past within the retention window see them. The
        // point is raised in the header before the slots are scanned (see
        // `ReadTxn::begin_at`).
        let newest = self.oldest_readable(view);
        let scan = |out: &mut Vec<u64>| {
            for r in self.coord.reader_slots() {
                if self.owner_alive(r.owner) {
                    out.push(r.snapshot);
                } else {
                    self.coord.reclaim_reader_slot(r.slot, r.owner);
                }
            }
        };
        let mut snapshots = Vec::new();
        protocol::publish_between_scans(
            self.coord.hdr(OFF_GC_HORIZON),
            || scan(&mut snapshots),
            |_| newest,
        );
        snapshots.retain(|&s| s <= newest);
        Horizon::new(snapshots, newest)
    }

    /// The oldest view a live reader in any process reads (the current
    /// view's sequence when there is none), published as the floor between
    /// two scans as `live_snapshots` does for snapshots: a reader that
    /// registers an older view after the first scan sees the floor and
    /// takes the current view instead.
    pub fn view_floor(&self) -> u64 {
        self.live_views().0
    }

    /// The floor as `view_floor` computes it, and every view a live reader
    /// reads (from both scans). A reader registering meanwhile is in the
    /// second scan, or finds the view changed when it checks after its
    /// store, and takes the current one (`ReadTxn::begin_at`).
    pub fn live_views(&self) -> (u64, Vec<u64>) {
        let current = self.coord.hdr(OFF_VIEW_SEQ).load(Ordering::SeqCst) & !1;
        let mut views = Vec::new();
        let scan = || {
            let mut floor = current;
            for r in self.coord.reader_slots() {
                if self.owner_alive(r.owner) {
                    floor = floor.min(r.view);
                    views.push(r.view);
                }
            }
            floor
        };
        let (first, second) =
            protocol::publish_between_scans(self.coord.hdr(OFF_VIEW_FLOOR), scan, |&first| first);
        let floor = first.min(second);
        views.sort_unstable();
        views.dedup();
        (floor, views)
    }

    /// Whether the process that owns reader-slot tag `owner` is alive.
    fn owner_alive(&self, owner: u64) -> bool {
        let (slot, generation) = split_owner_tag(owner);
        if slot == self.proc_slot {
            return owner == self.owner_tag;
        }
        self.coord.other_process_alive(slot, generation)
    }

    pub fn reclaim_dead_readers(&self) -> usize {
        // A forked child shares the parent's locks, so every slot of the
        // parent would look dead to it.
        if self.forked() {
            return 0;
        }
        self.coord
            .reader_slots()
            .into_iter()
            .filter(|r| {
                !self.owner_alive(r.owner) && self.coord.reclaim_reader_slot(r.slot, r.owner)
            })
            .count()
    }

    /// The oldest snapshot of a live reader (or the committed timestamp),
    /// without publishing anything: for heuristics only.
    pub fn oldest_snapshot_seen(&self) -> u64 {
        let committed = self.coord.hdr(OFF_COMMITTED_TS).load(Ordering::SeqCst);
        self.coord
            .reader_slots()
            .into_iter()
            .filter(|r| self.owner_alive(r.owner))
            .map(|r| r.snapshot)
            .fold(committed, u64::min)
    }

    fn oldest_snapshot(&self) -> u64 {
        let scan = || {
            let committed = self.coord.hdr(OFF_COMMITTED_TS).load(Ordering::SeqCst);
            self.coord
                .reader_slots()
                .into_iter()
                .filter(|r| {
                    let live = self.owner_alive(r.owner);
                    if !live {
                        self.coord.reclaim_reader_slot(r.slot, r.owner);
                    }
                    live
                })
                .map(|r| r.snapshot)
                .fold(committed, u64::min)
        };
        // Publish the horizon, then scan again: a reader that registered
        // after the first scan either shows up in the second or sees the
        // published horizon and moves its snapshot up (see ReadTxn::begin).
        let (first, second) =
            protocol::publish_between_scans(self.coord.hdr(OFF_GC_HORIZON), scan, |&first| first);
        first.min(second)
    }
}
