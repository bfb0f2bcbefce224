//! Reads of the past: the retention window, the oldest readable point, and
//! a key's kept versions.
//!
//! The retention window is a property of the database, kept in the
//! manifest (`retention_ms`), so every process reads the same one. The
//! oldest readable point is `now − retention`, or the floor published in
//! `coord.history_floor` (and kept in the manifest) if that is later, but
//! never later than the newest commit. It is raised in `coord` every time
//! it is computed, so it never moves back, whatever the wall clock does:
//! whether a read of the past succeeds never depends on whether some old
//! version happens to survive yet. Flush and compaction keep every version
//! newer than it (see `gc.rs` and `Inner::live_snapshots`).

use crate::coord::layout::{OFF_COMMITTED_TS, OFF_HISTORY_FLOOR};
use crate::coord::protocol;
use crate::db::Inner;
use crate::entry::Kind;
use crate::error::Result;
use crate::hlc;
use crate::memtable::SkipList;
use crate::view::View;

/// One kept version of a key, as `ReadTxn::versions` returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyVersion<'a> {
    /// Its commit timestamp.
    pub ts: u64,
    /// Its value, `None` for a delete.
    pub value: Option<&'a [u8]>,
}

impl Inner {
    /// The oldest timestamp a read of the past may ask for now, published
    /// (raised) in the coordination header before it is returned.
    pub fn oldest_readable(&self, view: &View) -> u64 {
        let retention = view.manifest.retention_ms;
        // The last timestamp of the millisecond `retention` before now.
        let by_time = hlc::from_millis(hlc::now_millis().saturating_sub(retention) + 1) - 1;
        // A floor above the newest commit can only come from commits a
        // rebuild dropped (never-synced ones of an `Eventual` or `None`
        // handle): the newest commit stays readable.
        protocol::raise_history_floor(
            self.coord.hdr(OFF_COMMITTED_TS),
            self.coord.hdr(OFF_HISTORY_FLOOR),
            by_time,
            view.manifest.history_floor,
        )
    }
}

impl View {
    /// The kept versions of `key` at or below `snapshot`, newest first,
    /// from every source.
    pub fn versions(&self, key: &[u8], snapshot: u64) -> Result<Vec<KeyVersion<'_>>> {
        let mut found = Vec::new();
        let mut push = |ts: u64, kind: Kind, value| {
            if ts <= snapshot {
                found.push(KeyVersion {
                    ts,
                    value: (kind == Kind::Put).then_some(value),
                });
            }
        };
        for arenas in std::iter::once(&self.active).chain(self.sealed.iter()) {
            let list = SkipList::new(arenas);
            let mut node = list.seek_key(key)?;
            while let Some(n) = node.filter(|n| n.key() == key) {
                let value = if n.kind == Kind::Put { n.value()? } else { &[] };
                push(n.ts, n.kind, value);
                node = list.next(&n)?;
            }
        }
        for seg in self.l0.iter().chain(self.runs.iter().flatten()) {
            let mut i = seg.lower_bound(key)?;
            while i < seg.len() {
                let v = seg.entry(i)?;
                if v.key != key {
                    break;
                }
                push(v.ts, v.kind, v.value);
                i += 1;
            }
        }
        // Each source is newest first and every source is newer than the
        // next, so the list is already in order.
        Ok(found)
    }
}
