//! Recovery by an opener that is alone: reuse the memtables when they are
//! known good, else rebuild the memtable from the log behind the last
//! flush (docs/design.md, section 8).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::coord::layout::*;
use crate::coord::{self, Coord, ViewFields};
use crate::error::Result;
use crate::logfiles;
use crate::logview::{LogFile, LogSet};
use crate::maint;
use crate::manifest::Manifest;
use crate::memtable::{Arenas, Inserter, SkipList, SpreadEntry, StoredValue};
use crate::view::View;
use crate::wal::format::FILE_HEADER;
use crate::wal::{RecoveryReport, Wal};

/// A seed for a new generation's key index hash, different in every
/// generation and unknown in advance.
pub(crate) fn index_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id())
}

/// Run while the open lock is held exclusively: reuse the version store
/// when it is known good, otherwise rebuild it from the log behind the
/// last flush.
pub(crate) fn recover_alone(
    dir: &Path,
    coord: &Coord,
    wal: &Wal,
    repair: bool,
    arena_size: usize,
) -> Result<(View, RecoveryReport)> {
    let hdr = |off| coord.hdr(off);
    let fields = coord.read_view()?;
    let boot = coord::boot_id();
    let reusable = !repair
        && boot != 0
        && fields.mem_generation != 0
        && hdr(OFF_BOOT_ID).load(Ordering::Acquire) == boot
        && wal.within(
            fields.active_log_base,
            hdr(OFF_WAL_END).load(Ordering::Acquire),
        )?
        && fields.arena_count >= 1;
    if reusable {
        // Same boot: the mapped files hold exactly what the last process
        // left, and an unfinished commit is completed by the next writer.
        // Arenas of another format do not open, and are rebuilt below.
        let view = View::load(dir, fields, arena_size, None);
        if let Some(view) = view.ok().filter(|v| v.active.get(0).is_ok()) {
            hdr(OFF_WRITER_PID).store(0, Ordering::Release);
            // No one else is attached, so no reader needs what the view
            // does not name: what earlier handles retired, or what their
            // crashed jobs left, goes now.
            maint::remove_unnamed(dir, &view);
            wal.release_below(view.manifest.log_start, fields.active_log_base)?;
            return Ok((view, RecoveryReport::default()));
        }
    }
    // Until the rebuild is complete, nothing here may be reused: a crash in
    // the middle leaves a header that names the old generation with the new
    // generation's arena count.
    hdr(OFF_BOOT_ID).store(0, Ordering::SeqCst);
    // The segments hold everything below the manifest's log start; only
    // the log since the last flush is replayed. A manifest written by a
    // flush that died before publishing it is whole (it is renamed into
    // place only once synced), and its segment is durable: it is used.
    let manifest = Manifest::latest(dir)?.unwrap_or_default();
    // Before anything could map them.
    maint::remove_unlisted_segments(dir, &manifest);
    let log_start = manifest.log_start.max(FILE_HEADER as u64);
    let next_gen = fields.mem_generation.max(fields.sealed_generation) + 1;
    // Inserting reads no value: the arenas learn which log files hold
    // their values once the replay has settled that.
    let arenas = Arenas::new(dir, next_gen, arena_size, LogSet::empty());
    let count = std::sync::atomic::AtomicU64::new(0);
    SkipList::init(&arenas, &count, index_seed())?;
    let mut versions = 0u64;
    // Evidence of how far the log was durable, if the coordination file
    // survived (a fresh one says 0): damage below it is never a torn tail.
    let durable_end = hdr(OFF_WAL_SYNCED).load(Ordering::Acquire);
    let (report, replayed) =
        wal.recover(log_start, durable_end, repair, |ts, payload_at, writes| {
            let mut ins = Inserter::new(&arenas, &count, ts)?;
            ins.reserve(writes.len())?;
            let entries = writes.iter().map(|w| SpreadEntry {
                key: w.key,
                kind: w.kind,
                value: StoredValue::choose(w.value, payload_at + w.value_at),
            });
            ins.insert_all(ts, versions, writes.len() as u64, entries)?;
            versions += writes.len() as u64;
            Ok(())
        })?;
    let active_base = *replayed.last().expect("recovery replays at least one file");
    drop(arenas);
    let files = replayed
        .iter()
        .map(|&b| LogFile::open(&logfiles::path(dir, b), b).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let arenas = Arc::new(Arenas::new(
        dir,
        next_gen,
        arena_size,
        Arc::new(LogSet::new(files)),
    ));
    let last = report.last_ts.max(manifest.flushed_ts);
    hdr(OFF_HLC_LAST).fetch_max(last, Ordering::AcqRel);
    for off in [OFF_COMMITTED_TS, OFF_WRITTEN_TS] {
        hdr(off).store(last, Ordering::Release);
    }
    for off in [OFF_WAL_END, OFF_WAL_SYNCED] {
        hdr(off).store(report.wal_end, Ordering::Release);
    }
    hdr(OFF_VERSION_COUNT).store(versions, Ordering::Release);
    hdr(OFF_COMMIT_IN_PROGRESS).store(0, Ordering::Release);
    hdr(OFF_GC_HORIZON).store(0, Ordering::Release);
    hdr(OFF_VIEW_FLOOR).store(0, Ordering::Release);
    // Never above the newest commit that survived (a lost tail of
    // never-synced commits lowers it).
    let floor = hdr(OFF_HISTORY_FLOOR)
        .load(Ordering::Acquire)
        .max(manifest.history_floor)
        .min(last);
    hdr(OFF_HISTORY_FLOOR).store(floor, Ordering::Release);
    hdr(OFF_WRITER_PID).store(0, Ordering::Release);
    hdr(OFF_EPOCH).fetch_add(1, Ordering::AcqRel);
    let fields = ViewFields {
        seq: 0,
        mem_generation: next_gen,
        arena_count: count.load(Ordering::Acquire),
        sealed_generation: 0,
        sealed_log_end: 0,
        active_log_start: log_start,
        active_log_base: active_base,
        manifest_generation: manifest.generation,
    };
    let seq = coord.write_view(&fields);
    // Last: from here on the version store may be reused.
    hdr(OFF_BOOT_ID).store(boot, Ordering::SeqCst);
    let view = View {
        fields: ViewFields { seq, ..fields },
        active: arenas,
        sealed: None,
        l0: Vec::new(),
        runs: Vec::new(),
        manifest: Arc::new(Manifest::default()),
    };
    let view = View::load(dir, view.fields, arena_size, Some(&view))?;
    maint::remove_unnamed(dir, &view);
    wal.release_below(log_start, active_base)?;
    Ok((view, report))
}
