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
use crate::memtable::arena::MAX_ARENAS;
use crate::memtable::{Arenas, Inserter, SkipList, SpreadEntry, StoredValue};
use crate::segment::Verify;
use crate::view::View;
use crate::wal::format::{parse_header, RecordHeader, FILE_HEADER, MAX_PAYLOAD, RECORD_HEADER};
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
///
/// The report also says why the coordination file's header was found
/// damaged and rebuilt, if it was (section 3): replaced whole when it
/// could not be used, or found inconsistent with the durable files before
/// reuse.
pub(crate) fn recover_alone(
    dir: &Path,
    coord: &Coord,
    wal: &Wal,
    repair: bool,
    arena_size: usize,
    verify: Verify,
) -> Result<(View, RecoveryReport)> {
    let hdr = |off| coord.hdr(off);
    let mut fields = coord.read_view()?;
    let boot = coord::boot_id();
    let mut damage = coord.replaced().map(str::to_string);
    // A log end outside the file named is damage; the file named may not
    // even exist.
    let wal_end_within = wal
        .within(
            fields.active_log_base,
            hdr(OFF_WAL_END).load(Ordering::Acquire),
        )
        .unwrap_or(false);
    let reusable = damage.is_none()
        && !repair
        && boot != 0
        && fields.mem_generation != 0
        && hdr(OFF_BOOT_ID).load(Ordering::Acquire) == boot
        && wal_end_within
        && fields.arena_count >= 1;
    if reusable {
        // Same boot: the mapped files hold exactly what the last process
        // left, and an unfinished commit is completed by the next writer.
        // Arenas of another format do not open, and are rebuilt below.
        let view = View::load(dir, fields, arena_size, verify, None);
        let view = match view.ok().filter(|v| v.active.get(0).is_ok()) {
            // Checked against the durable files before anything relies
            // on it: damage found here rebuilds, as a lost file would.
            Some(view) => match inconsistency(dir, coord, wal, &view)? {
                None => Some(view),
                Some(why) => {
                    damage = Some(format!("{}: {why}", coord.path().display()));
                    None
                }
            },
            None => None,
        };
        if let Some(view) = view {
            hdr(OFF_WRITER_PID).store(0, Ordering::Release);
            // No one else is attached, so no reader needs what the view
            // does not name: what earlier handles retired, or what their
            // crashed jobs left, goes now.
            maint::remove_unnamed(dir, &view);
            wal.release_below(view.manifest.log_start, fields.active_log_base)?;
            return Ok((view, RecoveryReport::default()));
        }
    }
    // The durable end the header kept is evidence that a damaged last
    // record is not a torn write (nor a log cut short); it is kept unless
    // it cannot be true (past the header's own end of the log). Damage
    // elsewhere in the header is forgotten as a lost file would be.
    let synced = hdr(OFF_WAL_SYNCED).load(Ordering::Acquire);
    let plausible = synced <= hdr(OFF_WAL_END).load(Ordering::Acquire);
    if damage.is_some() {
        for off in (OFF_BOOT_ID..HEADER_USED).step_by(8) {
            hdr(off).store(0, Ordering::SeqCst);
        }
        fields = coord.read_view()?;
    }
    hdr(OFF_WAL_SYNCED).store(if plausible { synced } else { 0 }, Ordering::SeqCst);
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
    // Above every generation in the directory too: a damaged or lost
    // header does not know them.
    let next_gen = fields
        .mem_generation
        .max(fields.sealed_generation)
        .max(newest_arena_generation(dir)?)
        .saturating_add(1);
    // The old arenas are of no use from here on (the replay rebuilds all
    // they held), and on a full disk their blocks are what the new ones
    // need: they go before anything is allocated. No one else is attached.
    Arenas::remove_generations(dir, |_| false);
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
    let view = View::load(dir, view.fields, arena_size, verify, Some(&view))?;
    maint::remove_unnamed(dir, &view);
    wal.release_below(log_start, active_base)?;
    Ok((
        view,
        RecoveryReport {
            coord_rebuilt: damage,
            ..report
        },
    ))
}

/// The newest arena generation with a file in `dir` (0 if none).
fn newest_arena_generation(dir: &Path) -> Result<u64> {
    Ok(crate::io::list(dir)?
        .iter()
        .filter_map(|(name, _)| arena_name(name).map(|(g, _)| g))
        .max()
        .unwrap_or(0))
}

/// `(generation, index)` of an arena file's name.
fn arena_name(name: &str) -> Option<(u64, u64)> {
    let (g, i) = name
        .strip_prefix("mem-")?
        .strip_suffix(".arena")?
        .split_once('-')?;
    Some((u64::from_str_radix(g, 16).ok()?, i.parse().ok()?))
}

/// What an opener that is alone finds wrong with the header it is about
/// to reuse, checked against the files (section 3): the fields that
/// order commits, the view against the arena, log and manifest files
/// present, and the end of the log and the newest commit against the
/// records of the file appended to (a walk of its record headers, which
/// reads that file's part of the log once; its payloads are checked when
/// read, as always). `None` when everything agrees.
fn inconsistency(dir: &Path, coord: &Coord, wal: &Wal, view: &View) -> Result<Option<String>> {
    let h = |off| coord.hdr(off).load(Ordering::Acquire);
    let f = &view.fields;
    let (committed, written, hlc) = (h(OFF_COMMITTED_TS), h(OFF_WRITTEN_TS), h(OFF_HLC_LAST));
    let (wal_end, synced) = (h(OFF_WAL_END), h(OFF_WAL_SYNCED));
    let in_progress = h(OFF_COMMIT_IN_PROGRESS);
    macro_rules! bad {
        ($($arg:tt)*) => {
            return Ok(Some(format!($($arg)*)))
        };
    }
    // committed_ts ≤ written_ts ≤ hlc_last (invariant 1); a committed_ts
    // below written_ts is a committer that died before publishing, which
    // the opener publishes.
    if committed > written || written > hlc {
        bad!("committed_ts {committed}, written_ts {written} and hlc_last {hlc} out of order");
    }
    if synced > wal_end {
        bad!("wal_synced {synced} is past wal_end {wal_end}");
    }
    for (name, value, limit) in [
        ("gc_horizon", h(OFF_GC_HORIZON), committed),
        ("history_floor", h(OFF_HISTORY_FLOOR), committed),
        ("view_floor", h(OFF_VIEW_FLOOR), f.seq),
    ] {
        if value > limit {
            bad!("{name} {value} is past {limit}");
        }
    }
    if in_progress != 0 {
        let start = h(OFF_COMMIT_WAL_START);
        if in_progress <= written
            || in_progress > hlc
            || start > wal_end
            || wal_end - start > RECORD_HEADER as u64 + MAX_PAYLOAD
            || h(OFF_COMMIT_VERSION_BASE) > h(OFF_VERSION_COUNT)
        {
            bad!("commit_in_progress {in_progress} (log {start}..{wal_end}) is not plausible");
        }
    }
    // The view against the files.
    if f.sealed_generation >= f.mem_generation || f.arena_count > MAX_ARENAS as u64 {
        bad!(
            "mem_generation {}, sealed_generation {}, arena_count {} are not plausible",
            f.mem_generation,
            f.sealed_generation,
            f.arena_count
        );
    }
    let mut arenas = Vec::new();
    let mut sealed_arenas = 0;
    let mut newest_manifest = 0;
    for (name, _) in crate::io::list(dir)? {
        match arena_name(&name) {
            Some((g, i)) if g == f.mem_generation => arenas.push(i),
            Some((g, _)) if g == f.sealed_generation => sealed_arenas += 1,
            _ => {}
        }
        let manifest = name.strip_prefix("manifest-").filter(|g| g.len() == 16);
        if let Some(g) = manifest.and_then(|g| u64::from_str_radix(g, 16).ok()) {
            newest_manifest = newest_manifest.max(g);
        }
    }
    arenas.sort_unstable();
    if !arenas.iter().copied().eq(0..f.arena_count) {
        bad!(
            "arena_count {} does not match the {} arena files of generation {}",
            f.arena_count,
            arenas.len(),
            f.mem_generation
        );
    }
    if f.sealed_generation != 0 && sealed_arenas == 0 {
        bad!(
            "sealed generation {} has no arena files",
            f.sealed_generation
        );
    }
    // A manifest newer than the published one is a dead job's; a rebuild
    // uses it (its segments are whole) and so is right either way.
    if f.manifest_generation != newest_manifest {
        bad!(
            "manifest_generation {} is not the newest manifest ({newest_manifest})",
            f.manifest_generation
        );
    }
    let bases = logfiles::list(dir)?;
    if bases.last() != Some(&f.active_log_base) {
        bad!(
            "active_log_base {} is not the last log file",
            f.active_log_base
        );
    }
    let log_start = view.manifest.log_start.max(FILE_HEADER as u64);
    let file_start = logfiles::records_start(f.active_log_base);
    let starts_ok = match f.sealed_generation {
        0 => f.active_log_start == log_start,
        _ => f.sealed_log_end == f.active_log_start && log_start < f.active_log_start,
    };
    if !starts_ok || f.active_log_start > file_start.max(log_start) || wal_end < file_start {
        bad!(
            "log positions do not agree: manifest log start {log_start}, sealed log end {}, \
             active log start {}, file start {file_start}, wal_end {wal_end}",
            f.sealed_log_end,
            f.active_log_start
        );
    }
    // Walk the records of the file appended to: they must end exactly at
    // wal_end, the log must not go on past it (but for the record of a
    // commit in progress), and the newest (but that one) is written_ts.
    let base = f.active_log_base;
    let from = file_start.max(f.active_log_start);
    let mut last = None;
    let mut newest = None;
    let mut pos = from;
    let mut chunk = (0u64, Vec::new());
    while pos < wal_end {
        let header = read_header(wal, base, pos, wal_end, &mut chunk)?;
        let Some(header) = header.filter(|h| last.is_none_or(|t| h.ts > t)) else {
            bad!("no record at log position {pos}, below wal_end {wal_end}");
        };
        last = Some(header.ts);
        // The record of a commit in progress (its writer died) is whole
        // below wal_end once appended, before written_ts is raised.
        if header.ts != in_progress {
            newest = Some(header.ts);
        }
        pos = pos.saturating_add(header.total_len());
    }
    if pos != wal_end {
        bad!("the last record ends at log position {pos}, past wal_end {wal_end}");
    }
    let past_end = wal_end.saturating_add(RECORD_HEADER as u64);
    if wal.within(base, past_end)? {
        let next = wal.read_at(base, wal_end, RECORD_HEADER as u64)?;
        if let Some(next) = parse_header(&next) {
            if last.is_none_or(|t| next.ts > t) && next.ts != in_progress {
                bad!("the log goes on past wal_end {wal_end}");
            }
        }
    }
    match newest {
        Some(ts) if ts != written => {
            bad!("written_ts {written} is not the newest record's timestamp {ts}")
        }
        // No record in this file: the newest commit is in segments, or
        // in the file before (walked the same way at a rebuild).
        None if f.sealed_generation == 0
            && from == f.active_log_start
            && written != view.manifest.flushed_ts =>
        {
            bad!(
                "written_ts {written} is not the manifest's flushed_ts {}",
                view.manifest.flushed_ts
            )
        }
        _ => {}
    }
    Ok(None)
}

/// The record header at log position `pos` of the file of `base`, read
/// through `chunk` (a window of the file kept between calls, so that a
/// walk over small records reads the file once); `None` if not a valid
/// header or not wholly below `end`.
fn read_header(
    wal: &Wal,
    base: u64,
    pos: u64,
    end: u64,
    chunk: &mut (u64, Vec<u8>),
) -> Result<Option<RecordHeader>> {
    const WINDOW: u64 = 1 << 20;
    let need = RECORD_HEADER as u64;
    if end - pos < need {
        return Ok(None);
    }
    let (at, bytes) = chunk;
    if pos < *at || pos + need > *at + bytes.len() as u64 {
        *bytes = wal.read_at(base, pos, WINDOW.min(end - pos))?;
        *at = pos;
    }
    let off = (pos - *at) as usize;
    Ok(parse_header(&bytes[off..]).filter(|h| h.total_len() <= end - pos))
}
