//! The view of the store: which memtables and which segment files hold the
//! database at one moment, as every process sees it.
//!
//! The coordination header names the view (`ViewFields`, under the view
//! sequence number): the current memtable's arena generation, a sealed
//! memtable waiting for its flush, and the manifest generation that lists
//! the segments. Each process keeps the view it built last and builds a new
//! one only when the sequence number moves, reusing the mappings of every
//! memtable and segment the two views share; so a process reads each
//! manifest generation once, and a reader whose view is current takes it
//! without a system call.
//!
//! Sources, newest first: the memtable, the sealed memtable, level 0
//! segments (newest first), then each deeper level, a run of segments that
//! do not overlap, in key order. A key's visible version is the first one
//! found in that order.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use crate::coord::ViewFields;
use crate::error::{Error, Result};
use crate::logfiles;
use crate::logview::{LogFile, LogSet};
use crate::manifest::{segment_file, Manifest};
use crate::memtable::{Arenas, Kind, SkipList, VisibleIter};
use crate::merge::{Ends, MergeIter, Source};
use crate::segment::{Segment, Verify};
use crate::wal::format::FILE_HEADER;

pub(crate) struct View {
    pub fields: ViewFields,
    pub active: Arc<Arenas>,
    pub sealed: Option<Arc<Arenas>>,
    pub manifest: Arc<Manifest>,
    /// Level 0 segments, newest first.
    pub l0: Vec<Arc<Segment>>,
    /// Deeper levels (index 0 is level 1), each in key order.
    pub runs: Vec<Vec<Arc<Segment>>>,
}

impl View {
    /// Build the view `fields` names, reusing what `prev` has mapped.
    pub fn load(
        dir: &Path,
        fields: ViewFields,
        arena_size: usize,
        verify: Verify,
        prev: Option<&View>,
    ) -> Result<View> {
        let manifest = match prev {
            Some(p) if p.manifest.generation == fields.manifest_generation => p.manifest.clone(),
            _ if fields.manifest_generation == 0 => Arc::new(Manifest::default()),
            _ => Arc::new(Manifest::read(dir, fields.manifest_generation)?),
        };
        let prev_arenas = || {
            prev.into_iter()
                .flat_map(|p| std::iter::once(&p.active).chain(&p.sealed))
        };
        let arenas = |generation: u64, from: u64, to: Option<u64>| -> Result<Arc<Arenas>> {
            if let Some(a) = prev_arenas().find(|a| a.generation() == generation) {
                return Ok(a.clone());
            }
            let known = prev_arenas().flat_map(|a| a.log().files());
            let log = log_set(dir, from, to, fields.active_log_base, known)?;
            Ok(Arc::new(Arenas::new(dir, generation, arena_size, log)))
        };
        // The sealed memtable's records run from the manifest's log start
        // to the sealed end; the current one's from its start on.
        let active = arenas(fields.mem_generation, fields.active_log_start, None)?;
        let sealed = match fields.sealed_generation {
            0 => None,
            g => Some(arenas(g, manifest.log_start, Some(fields.sealed_log_end))?),
        };
        let mut l0 = Vec::new();
        let mut runs: Vec<Vec<Arc<Segment>>> = Vec::new();
        for s in &manifest.segments {
            let path = segment_file(dir, s.id);
            let known = prev.and_then(|p| {
                p.l0.iter()
                    .chain(p.runs.iter().flatten())
                    .find(|seg| seg.path() == path)
            });
            let seg = match known {
                Some(seg) => seg.clone(),
                None => {
                    let seg = Segment::open(&path, verify)?;
                    // The file must be the one the manifest describes.
                    let m = seg.meta();
                    if m.size != s.size || m.entries != s.entries {
                        return Err(Error::corrupted(
                            &path,
                            0,
                            format!(
                                "segment holds {} entries in {} bytes; manifest {} lists {} in {}",
                                m.entries, m.size, manifest.generation, s.entries, s.size
                            ),
                        ));
                    }
                    Arc::new(seg)
                }
            };
            if s.level == 0 {
                l0.push(seg);
            } else {
                let level = s.level as usize;
                if runs.len() < level {
                    runs.resize_with(level, Vec::new);
                }
                runs[level - 1].push(seg);
            }
        }
        Ok(View {
            fields,
            active,
            sealed,
            manifest,
            l0,
            runs,
        })
    }

    /// Whether the memtable is the only source (the common case of a small
    /// database, read without merging).
    pub fn memtable_only(&self) -> bool {
        self.sealed.is_none() && self.l0.is_empty() && self.runs.iter().all(Vec::is_empty)
    }

    /// The value of `key` at `snapshot`.
    pub fn get(&self, key: &[u8], snapshot: u64) -> Result<Option<&[u8]>> {
        for arenas in std::iter::once(&self.active).chain(self.sealed.iter()) {
            if let Some(node) = SkipList::new(arenas).get(key, snapshot)? {
                return match node.kind {
                    Kind::Put => node.value().map(Some),
                    Kind::Delete => Ok(None),
                };
            }
        }
        // A level 0 file whose key range misses the key cannot hold it (the
        // files of one large flush split the key space).
        let in_range = |s: &&Arc<Segment>| {
            let m = s.meta();
            m.first_key.as_slice() <= key && key <= m.last_key.as_slice()
        };
        for seg in self
            .l0
            .iter()
            .filter(in_range)
            .chain(self.runs.iter().filter_map(|r| find_in_run(r, key)))
        {
            if let Some(v) = seg.get(key, snapshot)? {
                return Ok(match v.kind {
                    Kind::Put => Some(v.value),
                    Kind::Delete => None,
                });
            }
        }
        Ok(None)
    }

    /// Keys visible at `snapshot` within the bounds, in order.
    pub fn scan(&self, snapshot: u64, lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>) -> Scan<'_> {
        if self.memtable_only() {
            return Scan::Memtable(VisibleIter::new(
                SkipList::new(&self.active),
                snapshot,
                false,
                lower,
                upper,
            ));
        }
        let mems = std::iter::once(&self.active).chain(self.sealed.iter());
        let segs = self.l0.iter().chain(
            self.runs
                .iter()
                .flat_map(|run| run.iter().filter(|s| overlaps(s, &lower, &upper))),
        );
        let mut sources = Vec::with_capacity(2 + self.l0.len() + self.runs.len());
        for arenas in mems {
            sources.push(Ends::new(Source::Memtable(VisibleIter::new(
                SkipList::new(arenas),
                snapshot,
                true,
                lower.clone(),
                upper.clone(),
            ))));
        }
        for seg in segs {
            sources.push(Ends::new(Source::Segment(seg.visible(
                snapshot,
                lower.clone(),
                upper.clone(),
            ))));
        }
        Scan::Merged(MergeIter::new(sources))
    }
}

/// The log files that hold positions `from..to` (`to` open: through the
/// file of `last_base`, the one appended to), reusing those of `known`.
/// The common case, a memtable whose records all lie in the file it
/// started, needs no listing of the directory.
fn log_set<'k>(
    dir: &Path,
    from: u64,
    to: Option<u64>,
    last_base: u64,
    known: impl Iterator<Item = &'k Arc<LogFile>> + Clone,
) -> Result<Arc<LogSet>> {
    let from = from.max(FILE_HEADER as u64);
    let bases = if to.is_none() && from == last_base + FILE_HEADER as u64 {
        vec![last_base]
    } else {
        let all = logfiles::list(dir)?;
        let last = match to {
            // The file holding the last byte of the range.
            Some(to) => logfiles::holding(&all, to.saturating_sub(1).max(from)),
            None => all.iter().rposition(|&b| b <= last_base),
        };
        let first = logfiles::holding(&all, from);
        match (first, last) {
            (Some(first), Some(last)) if first <= last => all[first..=last].to_vec(),
            _ => {
                return Err(Error::corrupted(
                    logfiles::path(dir, last_base),
                    from,
                    "no log file holds the memtable's records",
                ))
            }
        }
    };
    let files = bases
        .into_iter()
        .map(|base| match known.clone().find(|f| f.base() == base) {
            Some(f) => Ok(f.clone()),
            None => LogFile::open(&logfiles::path(dir, base), base).map(Arc::new),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(LogSet::new(files)))
}

/// The segment of a run (in key order, not overlapping) that may hold `key`.
fn find_in_run<'r>(run: &'r [Arc<Segment>], key: &[u8]) -> Option<&'r Arc<Segment>> {
    let i = run.partition_point(|s| s.meta().last_key.as_slice() < key);
    run.get(i).filter(|s| s.meta().first_key.as_slice() <= key)
}

/// Whether a segment's keys may fall within the bounds.
fn overlaps(seg: &Segment, lower: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>) -> bool {
    let m = seg.meta();
    if m.entries == 0 {
        return false;
    }
    let above = match lower {
        Bound::Included(l) => m.last_key >= *l,
        Bound::Excluded(l) => m.last_key > *l,
        Bound::Unbounded => true,
    };
    let below = match upper {
        Bound::Included(u) => m.first_key <= *u,
        Bound::Excluded(u) => m.first_key < *u,
        Bound::Unbounded => true,
    };
    above && below
}

/// The keys of a scan: straight from the memtable when it is the only
/// source, else merged.
// The memtable variant is the common one and stays inline: boxing it would
// cost an allocation per scan.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Scan<'a> {
    Memtable(VisibleIter<'a>),
    Merged(MergeIter<'a>),
}

impl<'a> Iterator for Scan<'a> {
    type Item = Result<(&'a [u8], &'a [u8])>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Scan::Memtable(it) => it.next().map(|r| r.map(|(k, v)| (k, v.unwrap_or(&[])))),
            Scan::Merged(it) => it.next(),
        }
    }
}

impl DoubleEndedIterator for Scan<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Scan::Memtable(it) => it
                .next_back()
                .map(|r| r.map(|(k, v)| (k, v.unwrap_or(&[])))),
            Scan::Merged(it) => it.next_back(),
        }
    }
}
