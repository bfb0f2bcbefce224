//! A full check of a database in use (`Database::check`).
//!
//! Reads check what they touch: a segment block the first time this
//! process reads it, a value in the log whenever it is read, the log's
//! records when recovery replays them. Damage in something nobody has read
//! lately stays unseen until someone does. The check reads everything the
//! current view holds, as it is on disk now: every record of the log from
//! the manifest's log start to its end, every block and entry of every
//! segment the manifest lists, the manifest itself, and both memtables.
//!
//! It runs beside readers and a writer and takes nothing from them: it
//! registers as a reader, whose slot pins the view's files, and takes the
//! log's end after registering. It judges only what that moment vouches
//! for. Records below that end are whole (the end moves past a record only
//! once it is written). Versions at or below the reader's snapshot belong
//! to published commits: each is in the memtable that covers its record's
//! part of the log, and the key index names it or a newer version.
//! Versions of later commits are walked and checked like any other node,
//! but nothing is concluded from their absence.
//!
//! Damage is reported, never returned: the check goes on past it as far as
//! it can, so one report lists everything wrong. An error is the check
//! itself failing, such as an I/O error.

use std::cmp::Ordering as KeyOrder;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::coord::layout::{OFF_ACTIVE_LOG_START, OFF_SEALED_LOG_END, OFF_WAL_END};
use crate::db::Inner;
use crate::error::{Error, Result};
use crate::io::{self, Open};
use crate::logfiles;
use crate::manifest::{segment_file, Manifest};
use crate::memtable::arena::{arena_file, H_KEY_INDEX, MAX_HEIGHT};
use crate::memtable::key_index::{KeyIndex, Probe};
use crate::memtable::skiplist::{check_forward, HEAD};
use crate::memtable::{Arenas, Kind, Node, SkipList};
use crate::segment::{Segment, Verify, Version};
use crate::txn::ReadTxn;
use crate::view::View;
use crate::wal::format::{
    decode_payload, parse_header, Write, FILE_BASE_AT, FILE_HEADER, FILE_MAGIC, FILE_VERSION,
    FILE_VERSIONS_ONE_FILE, RECORD_HEADER,
};

/// One thing found wrong by [`Database::check`](crate::Database::check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The damaged file.
    pub file: PathBuf,
    /// Byte offset in that file where the damage is (the start of the
    /// record, block, entry, node or field concerned).
    pub offset: u64,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.offset, self.what)
    }
}

/// What [`Database::check`](crate::Database::check) looked at, and what it
/// found wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Problems, in the order found; at most [`CheckReport::MAX_PROBLEMS`].
    pub problems: Vec<Problem>,
    /// Problems found past the first [`CheckReport::MAX_PROBLEMS`] (not
    /// listed: a badly damaged file could otherwise fill memory).
    pub problems_left_out: u64,
    /// The snapshot the check ran at: every commit up to it was checked
    /// against the memtables and the key index.
    pub snapshot: u64,
    /// Generation of the manifest checked (0: none yet).
    pub manifest_generation: u64,
    /// Segment files checked.
    pub segments: u64,
    /// Entries (versions) in those segments.
    pub segment_entries: u64,
    /// Bytes of those segments.
    pub segment_bytes: u64,
    /// Memtables checked: the current one and, if one was waiting for its
    /// flush, the sealed one.
    pub memtables: u64,
    /// Versions linked in those memtables.
    pub memtable_versions: u64,
    /// Log files read.
    pub log_files: u64,
    /// Log records read (whole or not).
    pub log_records: u64,
    /// Bytes of log positions checked: from the manifest's log start to
    /// the end of the log.
    pub log_bytes: u64,
}

impl CheckReport {
    /// Problems listed at most.
    pub const MAX_PROBLEMS: usize = 1000;

    /// Whether nothing was found wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.problems_left_out == 0
    }
}

/// Check the database `inner` has open, at the view a new reader takes.
pub(crate) fn run(inner: &Arc<Inner>) -> Result<CheckReport> {
    let txn = ReadTxn::begin(inner.clone())?;
    let view = txn.view();
    let snapshot = txn.snapshot_ts();
    // After registering: records below this end are whole, and every
    // commit up to the snapshot lies below it.
    let log_end = inner.coord.hdr(OFF_WAL_END).load(Ordering::Acquire);
    let mut c = Checker {
        dir: &inner.dir,
        coord: inner.coord.path(),
        view,
        snapshot,
        log_damaged: false,
        report: CheckReport {
            snapshot,
            manifest_generation: view.manifest.generation,
            ..CheckReport::default()
        },
    };
    c.manifest()?;
    c.segments()?;
    let mut memtables = c.memtables()?;
    c.log(log_end, &mut memtables)?;
    c.compare(&memtables);
    let report = c.report;
    drop(txn);
    Ok(report)
}

/// A memtable of the view and the part of the log its records take.
struct Memtable<'v> {
    arenas: &'v Arenas,
    /// Log positions of its records: `log_from..log_to`.
    log_from: u64,
    log_to: u64,
    /// Versions at or below the snapshot linked in it.
    at_snapshot: u64,
    /// Writes of the records at or below the snapshot in its part of the
    /// log: the same number, when nothing is wrong.
    from_log: u64,
    /// Whether its level 0 was walked to the end (else the count above is
    /// short and says nothing).
    whole: bool,
}

struct Checker<'v> {
    dir: &'v Path,
    coord: &'v Path,
    view: &'v View,
    snapshot: u64,
    /// Whether some record could not be read: the log's count of writes
    /// then says nothing about the memtables'.
    log_damaged: bool,
    report: CheckReport,
}

/// Where the chain of records in a log file stopped.
struct Stop {
    /// Log position.
    at: u64,
    /// Whether it stopped at damage, already reported.
    damaged: bool,
}

impl<'v> Checker<'v> {
    fn problem(&mut self, file: impl Into<PathBuf>, offset: u64, what: impl Into<String>) {
        if self.report.problems.len() < CheckReport::MAX_PROBLEMS {
            self.report.problems.push(Problem {
                file: file.into(),
                offset,
                what: what.into(),
            });
        } else {
            self.report.problems_left_out += 1;
        }
    }

    /// Report the damage `e` describes; any other error is the check
    /// failing, and is returned.
    fn note(&mut self, e: Error) -> Result<()> {
        match e {
            Error::Corrupted { file, offset, what } => self.problem(file, offset, what),
            Error::WalDamaged {
                file, offset, what, ..
            } => self.problem(file, offset, what),
            Error::BadMagic { file, kind } => {
                self.problem(file, 0, format!("not a ScribeDB {kind} file (bad magic)"))
            }
            // Every file of ours keeps its version right after its
            // 8-byte magic.
            Error::UnsupportedVersion {
                file,
                found,
                supported,
            } => self.problem(
                file,
                8,
                format!("format version {found}; this build reads version {supported}"),
            ),
            other => return Err(other),
        }
        Ok(())
    }

    /// The manifest file of the view, read again from disk: it must
    /// decode, and hold what this process read when it built the view (a
    /// manifest never changes once written).
    fn manifest(&mut self) -> Result<()> {
        let generation = self.view.manifest.generation;
        if generation == 0 {
            // No flush yet: no manifest, no segments.
            return Ok(());
        }
        match Manifest::read(self.dir, generation) {
            Ok(m) if m == *self.view.manifest => Ok(()),
            Ok(_) => {
                self.problem(
                    Manifest::file(self.dir, generation),
                    0,
                    "differs from what this process read from it earlier \
                     (a manifest never changes once written)",
                );
                Ok(())
            }
            Err(e) => self.note(e),
        }
    }

    /// Every segment the view's manifest lists: opened anew, so that its
    /// header, footer and block table are read as they are now.
    fn segments(&mut self) -> Result<()> {
        let view = self.view;
        let manifest = &view.manifest;
        // The last key of the previous file of a deeper level, and that
        // file: each deeper level is one sorted run.
        let mut run: Option<(u8, Vec<u8>, PathBuf)> = None;
        for s in &manifest.segments {
            let path = segment_file(self.dir, s.id);
            self.report.segments += 1;
            let seg = match Segment::open(&path, Verify::Once) {
                Ok(seg) => seg,
                Err(e) => {
                    self.note(e)?;
                    run = None;
                    continue;
                }
            };
            let m = seg.meta();
            self.report.segment_entries += m.entries;
            self.report.segment_bytes += m.size;
            let listed = (s.size, s.entries, s.live_bytes, s.min_ts, s.max_ts);
            let found = (m.size, m.entries, m.newest_put_bytes, m.min_ts, m.max_ts);
            if listed != found {
                self.problem(
                    &path,
                    0,
                    format!(
                        "segment holds {} entries in {} bytes ({} live bytes, timestamps \
                         {} to {}); manifest {} lists {} in {} ({} live bytes, {} to {})",
                        m.entries,
                        m.size,
                        m.newest_put_bytes,
                        m.min_ts,
                        m.max_ts,
                        manifest.generation,
                        s.entries,
                        s.size,
                        s.live_bytes,
                        s.min_ts,
                        s.max_ts
                    ),
                );
            }
            if s.level > 0 && m.entries > 0 {
                if let Some((level, last, prev)) = &run {
                    if *level == s.level && *last >= m.first_key {
                        let what = format!(
                            "overlaps {} at level {level}, whose files must not overlap \
                             (its first key {} is not above the other's last {})",
                            prev.display(),
                            shown(&m.first_key),
                            shown(last)
                        );
                        self.problem(&path, seg.footer_offset(), what);
                    }
                }
                run = Some((s.level, m.last_key.clone(), path.clone()));
            }
            self.segment_contents(&seg, &path)?;
        }
        Ok(())
    }

    /// Every block of a segment, then its entries in order against its
    /// offset table, hash index and footer.
    fn segment_contents(&mut self, seg: &Segment, path: &Path) -> Result<()> {
        let damaged = seg.verify_all();
        if !damaged.is_empty() {
            // Entries in a damaged block cannot be read: walking them would
            // only report the same blocks again.
            for e in damaged {
                self.note(e)?;
            }
            return Ok(());
        }
        let (start, end) = seg.data_section();
        let mut expect = start;
        let (mut prev, mut first): (Option<Version<'_>>, Option<Version<'_>>) = (None, None);
        let (mut keys, mut tombstones, mut put_bytes) = (0u64, 0u64, 0u64);
        let (mut min_ts, mut max_ts) = (u64::MAX, 0u64);
        for i in 0..seg.len() {
            let (at, v, next) = match seg.entry_located(i) {
                Ok(entry) => entry,
                Err(e) => return self.note(e),
            };
            if at != expect {
                let what = format!(
                    "offset table puts entry {i} at {at}, but the entry before it ends at \
                     {expect} (entries lie end to end)"
                );
                self.problem(path, seg.offset_table() + 8 * i as u64, what);
                return Ok(());
            }
            expect = next;
            first = first.or(Some(v));
            let new_key = match prev.map(|p| (v.key.cmp(p.key), p.ts)) {
                None | Some((KeyOrder::Greater, _)) => true,
                Some((KeyOrder::Equal, ts)) => {
                    if v.ts >= ts {
                        let what = format!(
                            "entry {i}: version {} of key {} follows version {ts} \
                             (versions of a key come newest first)",
                            v.ts,
                            shown(v.key)
                        );
                        self.problem(path, at, what);
                    }
                    false
                }
                Some((KeyOrder::Less, _)) => {
                    let what = format!(
                        "entry {i}: key {} sorts before the key of the entry before it",
                        shown(v.key)
                    );
                    self.problem(path, at, what);
                    true
                }
            };
            if v.kind == Kind::Delete {
                tombstones += 1;
            }
            min_ts = min_ts.min(v.ts);
            max_ts = max_ts.max(v.ts);
            if new_key {
                keys += 1;
                if v.kind == Kind::Put {
                    put_bytes += (v.key.len() + v.value.len()) as u64;
                }
                match seg.indexed_offset(v.key) {
                    Ok(Some(named)) if named == at => {}
                    Ok(Some(named)) => {
                        let what = format!(
                            "hash index names the entry at {named} for key {}, not its \
                             newest version at {at}",
                            shown(v.key)
                        );
                        self.problem(path, seg.index_offset(), what);
                    }
                    Ok(None) => {
                        let what = format!("hash index has no slot for key {}", shown(v.key));
                        self.problem(path, at, what);
                    }
                    Err(e) => self.note(e)?,
                }
            }
            prev = Some(v);
        }
        if expect != end {
            let what = format!("entries end at {expect}, the data section at {end}");
            self.problem(path, expect, what);
        }
        let m = seg.meta();
        if seg.len() == 0 {
            (min_ts, max_ts) = (0, 0);
        }
        if keys != m.keys {
            let what = format!("header counts {} keys, the entries hold {keys}", m.keys);
            self.problem(path, 0, what);
        }
        let key_of = |v: Option<Version<'_>>| shown(v.map_or(&[][..], |v| v.key));
        let fields = [
            (
                "tombstones",
                m.tombstones.to_string(),
                tombstones.to_string(),
            ),
            (
                "timestamps",
                format!("{} to {}", m.min_ts, m.max_ts),
                format!("{min_ts} to {max_ts}"),
            ),
            (
                "live bytes",
                m.newest_put_bytes.to_string(),
                put_bytes.to_string(),
            ),
            ("first key", shown(&m.first_key), key_of(first)),
            ("last key", shown(&m.last_key), key_of(prev)),
        ];
        for (field, says, found) in fields {
            if says != found {
                let what = format!("footer says {field} {says}, the entries hold {found}");
                self.problem(path, seg.footer_offset(), what);
            }
        }
        match seg.occupied_slots() {
            Ok(slots) if slots == keys => {}
            Ok(slots) => {
                let what = format!("hash index has {slots} occupied slots for {keys} keys");
                self.problem(path, seg.index_offset(), what);
            }
            Err(e) => self.note(e)?,
        }
        Ok(())
    }

    /// Walk both memtables of the view; returns them with the part of the
    /// log each one's records take.
    fn memtables(&mut self) -> Result<Vec<Memtable<'v>>> {
        let view = self.view;
        let fields = &view.fields;
        let mut out = Vec::new();
        if let Some(sealed) = &view.sealed {
            out.push(Memtable {
                arenas: sealed,
                log_from: view.manifest.log_start.max(FILE_HEADER as u64),
                log_to: fields.sealed_log_end,
                at_snapshot: 0,
                from_log: 0,
                whole: false,
            });
        }
        out.push(Memtable {
            arenas: &view.active,
            log_from: fields.active_log_start,
            log_to: u64::MAX,
            at_snapshot: 0,
            from_log: 0,
            whole: false,
        });
        for m in &mut out {
            self.report.memtables += 1;
            (m.at_snapshot, m.whole) = self.memtable(m.arenas)?;
        }
        Ok(out)
    }

    /// One memtable: every level of the skiplist leads forward, level 0
    /// in entry order; every node lies in its arena's used bytes and its
    /// value can be read (a value kept in the log is checked against its
    /// checksum); for every key with a version at or below the snapshot,
    /// the key index names that version or a newer one, and a read at the
    /// snapshot finds it. Returns the versions at or below the snapshot
    /// and whether level 0 was walked to its end.
    fn memtable(&mut self, arenas: &'v Arenas) -> Result<(u64, bool)> {
        let list = SkipList::new(arenas);
        for level in 1..MAX_HEIGHT {
            self.level(&list, level)?;
        }
        let index = match KeyIndex::open(arenas) {
            Ok(Some(index)) => Some(index),
            Ok(None) => {
                let path = arena_file(self.dir, arenas.generation(), 0);
                self.problem(path, H_KEY_INDEX as u64, "arena 0 names no key index table");
                None
            }
            Err(e) => {
                self.note(e)?;
                None
            }
        };
        let mut at_snapshot = 0;
        let mut cur = match list.first() {
            Ok(first) => first,
            Err(e) => {
                self.note(e)?;
                return Ok((0, false));
            }
        };
        let mut prev: Option<Node<'v>> = None;
        // The version of the current key visible at the snapshot.
        let mut visible: Option<Node<'v>> = None;
        let mut whole = true;
        while let Some(n) = cur {
            if let Some(p) = &prev {
                if let Err(e) = check_forward(p, &n) {
                    // Following the list further could go round in circles.
                    self.note(e)?;
                    whole = false;
                    break;
                }
            }
            self.report.memtable_versions += 1;
            match arenas.locate(n.ptr()) {
                Ok((arena, offset)) if offset < arena.used() => {}
                Ok((arena, _)) => {
                    let what = format!("is linked but lies past the {} bytes used", arena.used());
                    self.note(n.corrupted(&what))?;
                }
                Err(e) => self.note(e)?,
            }
            if let Err(e) = n.value() {
                self.note(e)?;
            }
            if prev.is_some_and(|p| p.key() != n.key()) {
                if let Some(v) = visible.take() {
                    self.key_index(&list, index.as_ref(), arenas, v)?;
                }
            }
            if n.ts <= self.snapshot {
                at_snapshot += 1;
                if visible.is_none() {
                    visible = Some(n);
                }
            }
            prev = Some(n);
            cur = match list.next(&n) {
                Ok(next) => next,
                Err(e) => {
                    self.note(e)?;
                    whole = false;
                    break;
                }
            };
        }
        if let Some(v) = visible {
            self.key_index(&list, index.as_ref(), arenas, v)?;
        }
        Ok((at_snapshot, whole))
    }

    /// One level above 0 of a skiplist: every link leads forward, to a
    /// node tall enough to be linked there.
    fn level(&mut self, list: &SkipList<'v>, level: usize) -> Result<()> {
        let mut x = match list.node(HEAD) {
            Ok(head) => head,
            Err(e) => return self.note(e),
        };
        let mut is_head = true;
        loop {
            let next = x.next(level);
            if next == 0 {
                return Ok(());
            }
            let n = match list.node(next) {
                Ok(n) => n,
                Err(e) => return self.note(e),
            };
            if n.height() <= level {
                let what = format!(
                    "is linked at level {level}, above its height {}",
                    n.height()
                );
                return self.note(n.corrupted(&what));
            }
            if !is_head {
                if let Err(e) = check_forward(&x, &n) {
                    return self.note(e);
                }
            }
            x = n;
            is_head = false;
        }
    }

    /// `v`, the version of its key visible at the snapshot, against the
    /// key index and a read at the snapshot. A published version is named
    /// by the index, or a newer one is (a commit in progress may have
    /// moved it on).
    fn key_index(
        &mut self,
        list: &SkipList<'v>,
        index: Option<&KeyIndex<'v>>,
        arenas: &'v Arenas,
        v: Node<'v>,
    ) -> Result<()> {
        let key = v.key();
        let about = || format!("of key {} at timestamp {}", shown(key), v.ts);
        if let Some(index) = index {
            match index.newest(arenas, key) {
                Ok(Some(Probe::Newest(named))) if named.ts >= v.ts => {}
                Ok(Some(Probe::Newest(named))) => {
                    let what = format!(
                        "of key {} at timestamp {} is what the key index names, but version \
                         {} is linked and published",
                        shown(key),
                        named.ts,
                        v.ts
                    );
                    self.note(named.corrupted(&what))?;
                }
                Ok(Some(Probe::Absent)) => {
                    let what = format!("{} has no entry in the key index", about());
                    self.note(v.corrupted(&what))?;
                }
                Ok(None) => {
                    let what = format!(
                        "{}: the key index probe found neither the key nor an empty slot",
                        about()
                    );
                    self.note(v.corrupted(&what))?;
                }
                Err(e) => self.note(e)?,
            }
        }
        match list.get(key, self.snapshot) {
            Ok(Some(found)) if found.ptr() == v.ptr() => Ok(()),
            Ok(found) => {
                let found = found.map_or("nothing".to_string(), |f| {
                    format!("the version at timestamp {}", f.ts)
                });
                let what = format!(
                    "{} is the version visible at snapshot {}, but a read finds {found}",
                    about(),
                    self.snapshot
                );
                self.note(v.corrupted(&what))
            }
            Err(e) => self.note(e),
        }
    }

    /// The log from the manifest's log start to `end`, across its files.
    fn log(&mut self, end: u64, memtables: &mut [Memtable<'v>]) -> Result<()> {
        let view = self.view;
        let fields = &view.fields;
        let start = view.manifest.log_start.max(FILE_HEADER as u64);
        self.report.log_bytes = end.saturating_sub(start);
        if start > fields.active_log_start || fields.active_log_start > end {
            let what = format!(
                "the current memtable's records begin at log position {}, outside the \
                 unflushed log ({start} to {end})",
                fields.active_log_start
            );
            self.problem(self.coord, OFF_ACTIVE_LOG_START as u64, what);
        }
        if view.sealed.is_some() && fields.sealed_log_end != fields.active_log_start {
            let what = format!(
                "the sealed memtable's records end at log position {}, but the current \
                 one's begin at {}",
                fields.sealed_log_end, fields.active_log_start
            );
            self.problem(self.coord, OFF_SEALED_LOG_END as u64, what);
        }
        let bases = logfiles::list(self.dir)?;
        let first = logfiles::holding(&bases, start);
        let Some(mut i) = first else {
            let shown = logfiles::path(self.dir, bases.first().copied().unwrap_or(0));
            let what = format!(
                "no log file holds position {start}, where the manifest says the records \
                 not yet in segments begin"
            );
            self.problem(shown, 0, what);
            self.log_damaged = true;
            return Ok(());
        };
        let mut pos = start;
        let mut last_ts = 0;
        loop {
            let base = bases[i];
            let path = logfiles::path(self.dir, base);
            self.report.log_files += 1;
            let stop = self.log_file(&path, base, pos, end, &mut last_ts, memtables)?;
            self.log_damaged |= stop.damaged;
            if stop.at >= end {
                return Ok(());
            }
            // The next file must begin where this one's records end. A
            // file beginning inside them that holds nothing was started by
            // a seal that died before naming it (commits went on here); it
            // is left over, not damage.
            let mut next = None;
            for (j, &b) in bases.iter().enumerate().skip(i + 1) {
                let begins = b + FILE_HEADER as u64;
                if begins > end {
                    break;
                }
                if begins < stop.at && self.blank(b)? {
                    continue;
                }
                next = Some(j);
                break;
            }
            let Some(j) = next else {
                if !stop.damaged {
                    let what = format!(
                        "the log's records end at position {}, but the coordination file \
                         says they reach {end}",
                        stop.at
                    );
                    self.problem(&path, stop.at - base, what);
                    self.log_damaged = true;
                }
                return Ok(());
            };
            let begins = bases[j] + FILE_HEADER as u64;
            if !stop.damaged && begins != stop.at {
                let what = if begins > stop.at {
                    format!(
                        "records missing: this file's end at position {} is not where \
                         the next log file begins ({begins})",
                        stop.at
                    )
                } else {
                    format!(
                        "records run past the start of the next log file (position \
                         {begins}) to {}",
                        stop.at
                    )
                };
                self.problem(&path, stop.at - base, what);
                self.log_damaged = true;
            }
            i = j;
            pos = begins;
        }
    }

    /// The records of one log file from position `from` on, up to `end`
    /// at most; returns where their chain stopped.
    fn log_file(
        &mut self,
        path: &Path,
        base: u64,
        from: u64,
        end: u64,
        last_ts: &mut u64,
        memtables: &mut [Memtable<'v>],
    ) -> Result<Stop> {
        let damaged = Stop {
            at: from,
            damaged: true,
        };
        let file = match io::open(path, Open::Read) {
            Ok(file) => file,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                self.problem(path, 0, "log file is missing");
                return Ok(damaged);
            }
            Err(e) => return Err(e),
        };
        let len = io::len(&file, path)?;
        if len < FILE_HEADER as u64 {
            self.problem(path, len, "log file is shorter than its header");
            return Ok(damaged);
        }
        let mut header = [0u8; FILE_HEADER];
        io::read_at(&file, path, &mut header, 0)?;
        let version = u64::from_le_bytes(header[8..16].try_into().unwrap());
        let stored_base =
            u64::from_le_bytes(header[FILE_BASE_AT..FILE_BASE_AT + 8].try_into().unwrap());
        if header[..8] != FILE_MAGIC {
            self.problem(path, 0, "not a ScribeDB write-ahead log file (bad magic)");
            return Ok(damaged);
        }
        if version != FILE_VERSION && !(base == 0 && FILE_VERSIONS_ONE_FILE.contains(&version)) {
            let what = format!("log format version {version}; this build reads {FILE_VERSION}");
            self.problem(path, 8, what);
            return Ok(damaged);
        }
        if stored_base != base {
            let what = format!(
                "log file header says its positions begin at {stored_base}, its name {base}"
            );
            self.problem(path, FILE_BASE_AT as u64, what);
        }
        // Bytes past the end of the log may be a commit being written, and
        // a seal cuts the zeros past its file's last record: only what
        // lies below the end is read.
        let limit = len.min(end.saturating_sub(base));
        let mut bytes = Chunks::new(&file, path, limit);
        let mut pos = from;
        while pos < end {
            let offset = pos - base;
            if offset + RECORD_HEADER as u64 > limit {
                break;
            }
            let head = bytes.read(offset, RECORD_HEADER)?;
            if head.iter().all(|&b| b == 0) {
                break;
            }
            let Some(h) = parse_header(head) else {
                self.problem(path, offset, "bad record header (magic, kind or checksum)");
                return Ok(Stop {
                    at: pos,
                    damaged: true,
                });
            };
            self.report.log_records += 1;
            let total = h.total_len();
            if offset + total > len {
                self.problem(path, offset, "record runs past the end of its file");
                return Ok(Stop {
                    at: pos,
                    damaged: true,
                });
            }
            if pos + total > end {
                let what = format!("record runs past the end of the log (position {end})");
                self.problem(path, offset, what);
                return Ok(Stop {
                    at: pos,
                    damaged: true,
                });
            }
            if h.ts <= *last_ts {
                let what = format!(
                    "timestamp {} does not increase (the record before has {})",
                    h.ts, *last_ts
                );
                self.problem(path, offset, what);
                self.log_damaged = true;
            }
            *last_ts = (*last_ts).max(h.ts);
            // The header vouches for the record's span, so the chain goes
            // on past a damaged payload.
            let payload = bytes.read(offset + RECORD_HEADER as u64, h.payload_len as usize)?;
            if crc32c::crc32c(payload) != h.payload_crc {
                let what = format!("payload checksum mismatch (commit {})", h.ts);
                self.problem(path, offset, what);
                self.log_damaged = true;
            } else {
                match decode_payload(payload) {
                    Err(what) => {
                        let what = format!("malformed payload (commit {}): {what}", h.ts);
                        self.problem(path, offset, what);
                        self.log_damaged = true;
                    }
                    Ok(writes) if h.ts <= self.snapshot => {
                        self.in_memtable(path, offset, pos, h.ts, &writes, memtables)?;
                    }
                    Ok(_) => {}
                }
            }
            pos += total;
        }
        Ok(Stop {
            at: pos,
            damaged: false,
        })
    }

    /// The writes of the published commit `ts`, whose record is at log
    /// position `pos` (`offset` in `path`), against the memtable whose
    /// part of the log holds it: each is a version there with its kind
    /// and value.
    fn in_memtable(
        &mut self,
        path: &Path,
        offset: u64,
        pos: u64,
        ts: u64,
        writes: &[Write<'_>],
        memtables: &mut [Memtable<'v>],
    ) -> Result<()> {
        let Some(m) = memtables
            .iter_mut()
            .find(|m| m.log_from <= pos && pos < m.log_to)
        else {
            let what = format!(
                "commit {ts} lies past the manifest's log start, but in no memtable's part \
                 of the log"
            );
            self.problem(path, offset, what);
            return Ok(());
        };
        m.from_log += writes.len() as u64;
        let list = SkipList::new(m.arenas);
        for w in writes {
            match list.seek_ge(w.key, ts) {
                Ok(Some(n)) if n.key() == w.key && n.ts == ts => {
                    if n.kind != w.kind {
                        let what = format!(
                            "of key {} at timestamp {ts} is a {:?}, its commit record a {:?}",
                            shown(w.key),
                            n.kind,
                            w.kind
                        );
                        self.note(n.corrupted(&what))?;
                    } else if w.kind == Kind::Put {
                        // An unreadable value was reported by the walk.
                        if n.value().is_ok_and(|v| v != w.value) {
                            let what = format!(
                                "of key {} at timestamp {ts} holds another value than its \
                                 commit record",
                                shown(w.key)
                            );
                            self.note(n.corrupted(&what))?;
                        }
                    }
                }
                Ok(_) => {
                    let what = format!(
                        "commit {ts} writes key {}, which its memtable (generation {}) lacks",
                        shown(w.key),
                        m.arenas.generation()
                    );
                    self.problem(path, offset, what);
                }
                Err(e) => self.note(e)?,
            }
        }
        Ok(())
    }

    /// Every version of a memtable at or below the snapshot belongs to a
    /// record in its part of the log: the counts agree when both sides
    /// were read whole.
    fn compare(&mut self, memtables: &[Memtable<'v>]) {
        if self.log_damaged {
            return;
        }
        for m in memtables.iter().filter(|m| m.whole) {
            if m.at_snapshot != m.from_log {
                let what = format!(
                    "memtable holds {} versions at or below snapshot {}, but the log's \
                     records for it write {}",
                    m.at_snapshot, self.snapshot, m.from_log
                );
                self.problem(arena_file(self.dir, m.arenas.generation(), 0), 0, what);
            }
        }
    }

    /// Whether the log file of `base` holds nothing past its header (or,
    /// shorter than a header, nothing at all). A file that is gone counts
    /// as blank: only a leftover is removed while the database is open.
    fn blank(&mut self, base: u64) -> Result<bool> {
        let path = logfiles::path(self.dir, base);
        let file = match io::open(&path, Open::Read) {
            Ok(file) => file,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(true)
            }
            Err(e) => return Err(e),
        };
        let len = io::len(&file, &path)?;
        let mut bytes = Chunks::new(&file, &path, len);
        let mut at = if len < FILE_HEADER as u64 {
            0
        } else {
            FILE_HEADER as u64
        };
        while at < len {
            let n = (len - at).min(CHUNK as u64) as usize;
            if bytes.read(at, n)?.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            at += n as u64;
        }
        Ok(true)
    }
}

/// How much of a log file is read at a time.
const CHUNK: usize = 4 << 20;

/// Reads a file in large pieces, so that walking many small records costs
/// few system calls.
struct Chunks<'f> {
    file: &'f File,
    path: &'f Path,
    len: u64,
    /// File offset of `buf[0]`, and how many bytes of `buf` hold data.
    at: u64,
    valid: usize,
    buf: Vec<u8>,
}

impl<'f> Chunks<'f> {
    fn new(file: &'f File, path: &'f Path, len: u64) -> Self {
        Chunks {
            file,
            path,
            len,
            at: 0,
            valid: 0,
            buf: Vec::new(),
        }
    }

    /// The `n` bytes at `offset`, which must lie below the length.
    fn read(&mut self, offset: u64, n: usize) -> Result<&[u8]> {
        debug_assert!(offset + n as u64 <= self.len);
        if offset < self.at || offset + n as u64 > self.at + self.valid as u64 {
            let want = (n.max(CHUNK) as u64).min(self.len - offset) as usize;
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            io::read_at(self.file, self.path, &mut self.buf[..want], offset)?;
            self.at = offset;
            self.valid = want;
        }
        let from = (offset - self.at) as usize;
        Ok(&self.buf[from..from + n])
    }
}

/// A key for a message: escaped, and cut short if long.
fn shown(key: &[u8]) -> String {
    const MAX: usize = 48;
    let head = key[..key.len().min(MAX)].escape_ascii();
    if key.len() > MAX {
        format!("\"{head}\"... ({} bytes)", key.len())
    } else {
        format!("\"{head}\"")
    }
}
