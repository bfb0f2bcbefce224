//! Which versions a flush or a compaction keeps.
//!
//! Definitions: `N` is the committed timestamp read when the set of live
//! snapshots was taken (any reader registering later has a snapshot of at
//! least `N`, see `Inner::live_snapshots`); `P` is the set of live
//! snapshots plus `N`. A snapshot `p` sees, for each key, the newest version
//! with `ts <= p`.
//!
//! Rule: of one key's versions (newest first), keep
//! * every version newer than `N` (commits no snapshot was counted for);
//! * a version `v` at or below `N` exactly when some `p` in `P` has
//!   `v.ts <= p < ts of the next newer version` (the version `p` sees);
//! * and, when the output is the bottom of the store (no older source can
//!   hold the key), drop tombstones from the old end of what is kept: with
//!   nothing older, a snapshot that would see the tombstone sees no value
//!   either way.
//!
//! Proof sketch: every snapshot in `P` sees, among the kept versions, the
//! same version as among all of them, since that version is kept and every
//! version between it and the snapshot is newer than the snapshot. A
//! snapshot `s > N` not in `P` sees the newest version at or below `s`: all
//! versions above `N` are kept, and the newest at or below `N` is kept for
//! `N` itself.

use crate::entry::Kind;

/// The snapshots a flush or compaction must serve.
#[derive(Clone, Debug, Default)]
pub(crate) struct Horizon {
    /// Live snapshots and `newest`, ascending, deduplicated.
    points: Vec<u64>,
    /// `N`: every version above it is kept.
    newest: u64,
}

impl Horizon {
    pub fn new(mut snapshots: Vec<u64>, newest: u64) -> Horizon {
        snapshots.push(newest);
        snapshots.sort_unstable();
        snapshots.dedup();
        Horizon {
            points: snapshots,
            newest,
        }
    }

    /// The point above which every version is kept.
    pub fn newest(&self) -> u64 {
        self.newest
    }

    /// Whether the version at `ts` is kept, given the timestamp of the next
    /// newer version of the same key (`None` for the newest).
    pub fn keeps(&self, ts: u64, newer: Option<u64>) -> bool {
        if ts > self.newest {
            return true;
        }
        // The smallest point at or above ts.
        let i = self.points.partition_point(|&p| p < ts);
        match (self.points.get(i), newer) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(&p), Some(n)) => p < n,
        }
    }
}

/// Filters the versions of one key at a time, newest first, as `Horizon`
/// says; at the bottom of the store, tombstones at the old end are held back
/// until a put older than them shows they are needed.
pub(crate) struct KeyFilter<'h> {
    horizon: &'h Horizon,
    bottom: bool,
    newer: Option<u64>,
}

impl<'h> KeyFilter<'h> {
    pub fn new(horizon: &'h Horizon, bottom: bool) -> Self {
        KeyFilter {
            horizon,
            bottom,
            newer: None,
        }
    }

    /// The kept versions of one key, given all of its versions newest first
    /// as `(ts, kind, item)`.
    pub fn key_versions<T>(&mut self, versions: Vec<(u64, Kind, T)>) -> Vec<(u64, Kind, T)> {
        self.newer = None;
        let mut kept = Vec::with_capacity(versions.len().min(4));
        for (ts, kind, item) in versions {
            if self.horizon.keeps(ts, self.newer) {
                kept.push((ts, kind, item));
            }
            self.newer = Some(ts);
        }
        if self.bottom {
            while kept.last().is_some_and(|(_, k, _)| *k == Kind::Delete) {
                kept.pop();
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What snapshot `s` sees among `versions` (newest first).
    fn seen(versions: &[(u64, Kind, u64)], s: u64) -> Option<u64> {
        versions
            .iter()
            .find(|(ts, _, _)| *ts <= s)
            .filter(|(_, k, _)| *k == Kind::Put)
            .map(|(_, _, v)| *v)
    }

    #[test]
    fn one_old_reader_pins_one_version() {
        let h = Horizon::new(vec![15], 100);
        let versions: Vec<_> = (1..=10).rev().map(|i| (i * 10, Kind::Put, i)).collect();
        let kept = KeyFilter::new(&h, true).key_versions(versions);
        // 100 sees 100, 15 sees 10.
        assert_eq!(kept, vec![(100, Kind::Put, 10), (10, Kind::Put, 1)]);
    }

    #[test]
    fn versions_above_the_horizon_are_all_kept() {
        let h = Horizon::new(vec![], 50);
        let versions = vec![(70, Kind::Put, 3), (60, Kind::Put, 2), (40, Kind::Put, 1)];
        let kept = KeyFilter::new(&h, true).key_versions(versions);
        assert_eq!(kept.len(), 3);
    }

    #[test]
    fn tombstones_go_at_the_bottom_only() {
        let h = Horizon::new(vec![], 50);
        let versions = vec![(40, Kind::Delete, 0), (30, Kind::Put, 1)];
        let kept = KeyFilter::new(&h, true).key_versions(versions.clone());
        assert!(kept.is_empty());
        let kept = KeyFilter::new(&h, false).key_versions(versions);
        assert_eq!(kept, vec![(40, Kind::Delete, 0)]);
    }

    proptest! {
        // Under Miri: a few cases, and no failure file (no file system).
        #![proptest_config(if cfg!(miri) {
            ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(8) }
        } else {
            ProptestConfig::default()
        })]
        /// Every snapshot in the horizon, and every one above `newest`, sees
        /// the same value after filtering.
        #[test]
        fn filtering_preserves_every_served_snapshot(
            mut tss in proptest::collection::btree_set(1u64..200, 1..20),
            kinds in proptest::collection::vec(any::<bool>(), 20),
            snaps in proptest::collection::vec(1u64..200, 0..5),
            newest in 1u64..200,
            bottom in any::<bool>(),
        ) {
            let tss: Vec<u64> = std::mem::take(&mut tss).into_iter().rev().collect();
            let versions: Vec<(u64, Kind, u64)> = tss.iter().zip(&kinds).map(|(&ts, &put)| {
                (ts, if put { Kind::Put } else { Kind::Delete }, ts * 7)
            }).collect();
            let snaps: Vec<u64> = snaps.into_iter().filter(|&s| s <= newest).collect();
            let h = Horizon::new(snaps.clone(), newest);
            let kept = KeyFilter::new(&h, bottom).key_versions(versions.clone());
            let mut check: Vec<u64> = snaps;
            check.push(newest);
            check.extend(newest..210);
            for s in check {
                if bottom {
                    prop_assert_eq!(seen(&kept, s), seen(&versions, s), "snapshot {}", s);
                } else {
                    // Not the bottom: a kept tombstone still hides older data.
                    let find = |v: &[(u64, Kind, u64)]| v.iter().find(|(ts, _, _)| *ts <= s).map(|x| (x.1, x.2));
                    prop_assert_eq!(find(&kept), find(&versions), "snapshot {}", s);
                }
            }
        }
    }
}
