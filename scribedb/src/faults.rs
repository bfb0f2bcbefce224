//! Injected I/O faults, for tests of how the engine fails.
//!
//! A test installs a [`Plan`] for one directory: the `n`th call of a kind
//! of I/O on a file in it (counted from the installation) fails with the
//! error the plan names, once or from then on, and a failing write may
//! first write part of its bytes (a short write). Every file and mapping
//! operation of the engine goes through `io.rs`, which asks this module
//! first; without a plan that costs one relaxed atomic load.
//!
//! Plans are per directory, so tests that run in parallel threads of one
//! process do not see each other's faults, while the engine's own threads
//! (maintenance, background sync) see the faults of the database they work
//! on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

static VERIFY_READS: AtomicBool = AtomicBool::new(true);

/// Turn the checksum checks of the read path (values in the log, segment
/// blocks) off or on again, in this process: only for benchmarks that
/// measure what the checks cost, never for real use.
pub fn set_read_verification(on: bool) {
    VERIFY_READS.store(on, Ordering::Relaxed);
}

/// Whether reads verify checksums (always, unless a benchmark said not).
#[inline]
pub(crate) fn read_verification() -> bool {
    VERIFY_READS.load(Ordering::Relaxed)
}

/// A kind of I/O call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Opening or creating a file.
    Open,
    /// `pread`.
    Read,
    /// `pwrite`.
    Write,
    /// `fdatasync` or `fsync` of a file.
    Sync,
    /// `fsync` of a directory.
    SyncDir,
    /// `posix_fallocate`.
    Allocate,
    /// `ftruncate`.
    SetLen,
    /// Punching a hole.
    Punch,
    /// `rename`.
    Rename,
    /// `unlink`.
    Remove,
    /// `mmap`.
    Map,
}

impl Op {
    /// Every kind, for tests that pick one at random.
    pub const ALL: [Op; 11] = [
        Op::Open,
        Op::Read,
        Op::Write,
        Op::Sync,
        Op::SyncDir,
        Op::Allocate,
        Op::SetLen,
        Op::Punch,
        Op::Rename,
        Op::Remove,
        Op::Map,
    ];
}

/// One fault of a plan.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The kind of call that fails.
    pub op: Op,
    /// Which call of that kind fails first (1 is the first after the plan
    /// is installed).
    pub nth: u64,
    /// The `errno` it fails with (`libc::EIO`, `libc::ENOSPC`, ...).
    pub errno: i32,
    /// Every later call of the kind fails too (a dead disk, a full one);
    /// otherwise only that one does, and the next succeeds, as a sync may
    /// "succeed" after a failed one that lost the data.
    pub sticky: bool,
    /// A failing write first writes the first half of its bytes.
    pub short: bool,
}

/// What happened to one injected fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    /// The kind of call.
    pub op: Op,
    /// The file it was on.
    pub path: PathBuf,
}

struct Installed {
    dir: PathBuf,
    faults: Vec<Fault>,
    calls: Mutex<HashMap<Op, u64>>,
    fired: Mutex<Vec<Fired>>,
}

static PLANS: RwLock<Vec<Arc<Installed>>> = RwLock::new(Vec::new());
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// An installed plan; dropping it removes the plan.
pub struct Plan {
    installed: Arc<Installed>,
}

impl Plan {
    /// Install `faults` for the files under `dir`.
    pub fn install(dir: &Path, faults: Vec<Fault>) -> Plan {
        let installed = Arc::new(Installed {
            dir: dir.to_path_buf(),
            faults,
            calls: Mutex::new(HashMap::new()),
            fired: Mutex::new(Vec::new()),
        });
        PLANS
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(installed.clone());
        ACTIVE.fetch_add(1, Ordering::AcqRel);
        Plan { installed }
    }

    /// The faults injected so far, in order.
    pub fn fired(&self) -> Vec<Fired> {
        self.installed
            .fired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Calls of `op` under the directory since the plan was installed.
    pub fn calls(&self, op: Op) -> u64 {
        let calls = self.installed.calls.lock();
        let calls = calls.unwrap_or_else(|p| p.into_inner());
        calls.get(&op).copied().unwrap_or(0)
    }
}

impl Drop for Plan {
    fn drop(&mut self) {
        let mut plans = PLANS.write().unwrap_or_else(|p| p.into_inner());
        plans.retain(|p| !Arc::ptr_eq(p, &self.installed));
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What `io.rs` does with a call.
pub(crate) enum Verdict {
    Proceed,
    /// Fail with this error; a write first writes its first half if
    /// `short`.
    Fail {
        error: std::io::Error,
        short: bool,
    },
}

/// Count a call of `op` on `path` and say whether it fails.
#[inline]
pub(crate) fn hit(op: Op, path: &Path) -> Verdict {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return Verdict::Proceed;
    }
    hit_slow(op, path)
}

#[cold]
fn hit_slow(op: Op, path: &Path) -> Verdict {
    let plans = PLANS.read().unwrap_or_else(|p| p.into_inner());
    for plan in plans.iter().filter(|p| path.starts_with(&p.dir)) {
        let n = {
            let mut calls = plan.calls.lock().unwrap_or_else(|p| p.into_inner());
            let n = calls.entry(op).or_insert(0);
            *n += 1;
            *n
        };
        let fault = plan
            .faults
            .iter()
            .find(|f| f.op == op && (n == f.nth || (f.sticky && n > f.nth)));
        if let Some(f) = fault {
            plan.fired
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Fired {
                    op,
                    path: path.to_path_buf(),
                });
            return Verdict::Fail {
                error: std::io::Error::from_raw_os_error(f.errno),
                short: f.short,
            };
        }
    }
    Verdict::Proceed
}
