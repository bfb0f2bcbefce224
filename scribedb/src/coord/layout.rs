//! Byte layout of the coordination file.
//!
//! ```text
//! offset 0                  4096                4096 + 64·P
//! ┌─────────────────────────┬───────────────────┬──────────────────────┐
//! │ header (one page)       │ P process slots   │ R reader slots       │
//! │ magic, version, clock,  │ 64 bytes each     │ 64 bytes each        │
//! │ timestamps, WAL marks…  │                   │                      │
//! └─────────────────────────┴───────────────────┴──────────────────────┘
//! ```
//!
//! Every header field is a little-endian `u64` at an 8-byte aligned offset
//! and is accessed as an atomic. Each offset is built from the previous one.
//! Lock bytes (see `lock.rs`) are a separate name space: they are ranges of
//! the file that are locked, never read or written.

/// `b"SCRBCOOR"`.
pub const MAGIC: [u8; 8] = *b"SCRBCOOR";
/// Version of this layout. Bump on any incompatible change. Version 2:
/// the view names the log file appended to (`ACTIVE_LOG_BASE`). Version 3:
/// commit notification (`COMMIT_SEQ`, `COMMIT_WAITERS`), which a process
/// of an earlier build would not bump, leaving waiters asleep.
pub const FORMAT_VERSION: u64 = 3;
/// Written to `INIT_STATE` last, once the file is fully initialised.
pub const INIT_READY: u64 = 0x5245_4144_5921; // "READY!"

const F: usize = 8;
pub const OFF_MAGIC: usize = 0;
pub const OFF_VERSION: usize = OFF_MAGIC + F;
pub const OFF_MAX_READERS: usize = OFF_VERSION + F;
pub const OFF_MAX_PROCS: usize = OFF_MAX_READERS + F;
pub const OFF_INIT_STATE: usize = OFF_MAX_PROCS + F;
/// Hash of the kernel boot id under which the version store was built.
pub const OFF_BOOT_ID: usize = OFF_INIT_STATE + F;
/// Incremented whenever the version store is rebuilt from the WAL.
pub const OFF_EPOCH: usize = OFF_BOOT_ID + F;
/// Last timestamp handed out by the hybrid logical clock.
pub const OFF_HLC_LAST: usize = OFF_EPOCH + F;
/// Newest commit visible to readers.
pub const OFF_COMMITTED_TS: usize = OFF_HLC_LAST + F;
/// Newest commit fully inserted into the version store (visible to writers).
pub const OFF_WRITTEN_TS: usize = OFF_COMMITTED_TS + F;
/// Timestamp of a commit whose WAL append or insertion is under way; 0 if none.
pub const OFF_COMMIT_IN_PROGRESS: usize = OFF_WRITTEN_TS + F;
/// WAL offset at which the commit in progress writes its record.
pub const OFF_COMMIT_WAL_START: usize = OFF_COMMIT_IN_PROGRESS + F;
/// End of the last whole WAL record.
pub const OFF_WAL_END: usize = OFF_COMMIT_WAL_START + F;
/// WAL offset known to be durable.
pub const OFF_WAL_SYNCED: usize = OFF_WAL_END + F;
/// Generation of the current version-store arenas.
pub const OFF_MEM_GENERATION: usize = OFF_WAL_SYNCED + F;
/// Number of arenas in the current generation.
pub const OFF_ARENA_COUNT: usize = OFF_MEM_GENERATION + F;
/// Pid of the writer-role holder (diagnostic only; the lock is the truth).
pub const OFF_WRITER_PID: usize = OFF_ARENA_COUNT + F;
/// Wall-clock milliseconds when the writer role was taken.
pub const OFF_WRITER_SINCE: usize = OFF_WRITER_PID + F;
/// Oldest snapshot that garbage collection promised to keep.
pub const OFF_GC_HORIZON: usize = OFF_WRITER_SINCE + F;
/// Number of versions in the version store.
pub const OFF_VERSION_COUNT: usize = OFF_GC_HORIZON + F;
/// Generation of the manifest of sorted segments (0: none yet).
pub const OFF_MANIFEST_GENERATION: usize = OFF_VERSION_COUNT + F;
/// `version_count` before the commit in progress inserted anything.
pub const OFF_COMMIT_VERSION_BASE: usize = OFF_MANIFEST_GENERATION + F;
/// Sequence number of the view of the store (which arenas and which
/// manifest make up the database): odd while a view change is being
/// written, +2 for each change. Fields it guards: `MEM_GENERATION`,
/// `ARENA_COUNT`, `SEALED_GENERATION`, `SEALED_LOG_END`, `ACTIVE_LOG_START`,
/// `ACTIVE_LOG_BASE`, `MANIFEST_GENERATION`.
pub const OFF_VIEW_SEQ: usize = OFF_COMMIT_VERSION_BASE + F;
/// Arena generation of the sealed memtable waiting to be flushed (0: none).
pub const OFF_SEALED_GENERATION: usize = OFF_VIEW_SEQ + F;
/// Log position where the sealed memtable's records end.
pub const OFF_SEALED_LOG_END: usize = OFF_SEALED_GENERATION + F;
/// Log position where the current memtable's records begin.
pub const OFF_ACTIVE_LOG_START: usize = OFF_SEALED_LOG_END + F;
/// Base position of the log file commits are appended to (`logfiles.rs`).
pub const OFF_ACTIVE_LOG_BASE: usize = OFF_ACTIVE_LOG_START + F;
/// Oldest view a reader registering now may rely on: files retired before
/// it may be deleted once no live reader names an older view.
pub const OFF_VIEW_FLOOR: usize = OFF_ACTIVE_LOG_BASE + F;
/// Oldest timestamp a read as of a past time may ask for; never decreases
/// (also kept in the manifest).
pub const OFF_HISTORY_FLOOR: usize = OFF_VIEW_FLOOR + F;
/// The view being written, stored whole before `VIEW_SEQ` turns odd, so
/// that whoever next holds `LOCK_VIEW` can finish a change whose writer
/// died half way: mem_generation, arena_count, sealed_generation,
/// sealed_log_end, active_log_start, active_log_base, manifest_generation.
pub const OFF_VIEW_NEXT: usize = OFF_HISTORY_FLOOR + F;
pub const VIEW_FIELDS: usize = 7;
/// Commits (in any process) that waited for a flush, and the
/// microseconds they waited in all (diagnostics).
pub const OFF_STALLS: usize = OFF_VIEW_NEXT + VIEW_FIELDS * F;
pub const OFF_STALL_MICROS: usize = OFF_STALLS + F;
/// Flushes that failed (in any process): a commit waiting for a flush
/// stops waiting when it moves.
pub const OFF_FLUSH_FAILURES: usize = OFF_STALL_MICROS + F;
/// A sequence bumped each time `COMMITTED_TS` rises; its low 32 bits
/// are the futex word that threads waiting for a commit, in any process,
/// sleep on (`coord/notify.rs`).
pub const OFF_COMMIT_SEQ: usize = OFF_FLUSH_FAILURES + F;
/// Threads (in any process) asleep on `COMMIT_SEQ`: a publisher makes the
/// wake-up call only when there are some.
pub const OFF_COMMIT_WAITERS: usize = OFF_COMMIT_SEQ + F;
/// End of the used header fields.
pub const HEADER_USED: usize = OFF_COMMIT_WAITERS + F;

pub const HEADER_SIZE: usize = 4096;
pub const SLOT_SIZE: usize = 64;

// Process slot fields.
/// Incremented each time the slot is claimed; reader slots record it.
pub const PROC_GENERATION: usize = 0;
pub const PROC_PID: usize = PROC_GENERATION + F;
pub const PROC_ATTACHED_MS: usize = PROC_PID + F;

// Reader slot fields.
/// 0 when free, else `owner_tag(process slot, generation)`.
pub const READER_OWNER: usize = 0;
pub const READER_SNAPSHOT: usize = READER_OWNER + F;
pub const READER_STARTED_MS: usize = READER_SNAPSHOT + F;
pub const READER_PID: usize = READER_STARTED_MS + F;
/// The view sequence number the reader reads (pins its files).
pub const READER_VIEW: usize = READER_PID + F;
/// The manifest generation of that view (diagnostics: what it pins).
pub const READER_MANIFEST: usize = READER_VIEW + F;

/// Upper bounds accepted from the file, so a corrupt header cannot make us
/// map or scan absurd sizes.
pub const LIMIT_READERS: u64 = 1 << 20;
pub const LIMIT_PROCS: u64 = 1 << 14;

// Lock bytes.
/// Shared by every open handle; exclusive while creating or recovering.
pub const LOCK_OPEN: u64 = 0;
/// Exclusive while a write transaction exists.
pub const LOCK_WRITER: u64 = 1;
/// Exclusive while the view (the fields `VIEW_SEQ` guards) changes, and
/// while files that no view names are deleted.
pub const LOCK_VIEW: u64 = 2;
/// Exclusive for the process that runs flushes and compactions.
pub const LOCK_MAINT: u64 = 3;
/// `LOCK_PROC_BASE + i` is held exclusively by the owner of process slot `i`.
pub const LOCK_PROC_BASE: u64 = 1 << 20;

pub const fn file_size(max_procs: usize, max_readers: usize) -> usize {
    HEADER_SIZE + SLOT_SIZE * (max_procs + max_readers)
}

pub const fn proc_slot_offset(i: usize) -> usize {
    HEADER_SIZE + SLOT_SIZE * i
}

pub const fn reader_slot_offset(max_procs: usize, i: usize) -> usize {
    HEADER_SIZE + SLOT_SIZE * (max_procs + i)
}

/// Reader-slot owner tag: process slot index and that slot's generation.
pub const fn owner_tag(proc_slot: usize, generation: u64) -> u64 {
    (generation << 16) | (proc_slot as u64 + 1)
}

/// Inverse of [`owner_tag`]: `(process slot, generation)`.
pub const fn split_owner_tag(tag: u64) -> (usize, u64) {
    (((tag & 0xffff) as usize).wrapping_sub(1), tag >> 16)
}

const _: () = assert!(HEADER_USED <= HEADER_SIZE);
