//! Power-loss simulation, for tests of what a machine crash can leave.
//!
//! A test starts a [`Recording`] of a directory before it creates a
//! database there. From then on `io.rs` tells this module, in the order
//! they happen, about every call that changes a file or a name in the
//! directory: writes (with their bytes), length changes, allocations,
//! punched holes, syncs of a file, syncs of the directory, creates,
//! renames and removals. The calls run while the recording's lock is held,
//! so the order recorded is the order the kernel saw.
//!
//! From that history, [`crash_image`] builds the directory a power loss
//! after any prefix of it could leave, under a model of the file system
//! (`docs/design.md`, section 8, "Crash model"):
//!
//! * a file's data and length are durable up to its last sync; since
//!   then, each 512-byte sector reaches the disk whole as it was at some
//!   moment of its own (none of the later writes to it, all of them, or
//!   those up to a point), so later writes may survive earlier ones in
//!   other sectors; changes of length survive as a prefix, in order;
//! * changes to names (creates, renames, removals) are durable once the
//!   directory was synced; before that, any prefix of them in order may
//!   have reached the disk (the metadata journal keeps their order), and a
//!   file whose name was not durable is gone;
//! * bytes written through a shared mapping (the coordination file and
//!   the arenas, which the engine treats as derived state) are not
//!   recorded: an image holds what `write` put there, which is what a
//!   reboot with none of the mapping written back leaves.
//!
//! The recording costs nothing when none is installed: one relaxed atomic
//! load per call.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// Sector size of the crash model: a sector is written whole or not at all.
pub const SECTOR: u64 = 512;

/// One recorded change, on a file id (a file, whatever its names) or a
/// name (relative to the recorded directory).
#[derive(Clone, Debug)]
pub enum Event {
    /// A file was created under `name`.
    Create {
        /// The new file.
        file: usize,
        /// Its name.
        name: String,
    },
    /// `data` was written at `offset`.
    Write {
        /// The file written.
        file: usize,
        /// Where.
        offset: u64,
        /// What.
        data: Arc<[u8]>,
    },
    /// The length was set (truncated or extended with zeros).
    SetLen {
        /// The file.
        file: usize,
        /// Its new length.
        len: u64,
    },
    /// Blocks were allocated up to `end`, extending the length to it.
    Allocate {
        /// The file.
        file: usize,
        /// End of the allocated range.
        end: u64,
    },
    /// A range was punched out: it reads as zeros.
    Punch {
        /// The file.
        file: usize,
        /// Start of the range.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// The file's data and length were made durable (`fdatasync`/`fsync`).
    Sync {
        /// The file.
        file: usize,
    },
    /// The directory was synced: every change to names so far is durable.
    SyncDir,
    /// `from` was renamed to `to`, replacing it.
    Rename {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// `name` was removed.
    Remove {
        /// The removed name.
        name: String,
    },
}

struct State {
    events: Vec<Event>,
    /// Files present when the recording began: their contents, durable.
    base: BTreeMap<String, (usize, Vec<u8>)>,
    /// The file id of each (device, inode) seen.
    ids: HashMap<(u64, u64), usize>,
    next_id: usize,
}

struct Installed {
    dir: PathBuf,
    state: Mutex<State>,
}

static RECORDINGS: RwLock<Vec<Arc<Installed>>> = RwLock::new(Vec::new());
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// A recording of one directory; dropping it stops recording.
pub struct Recording {
    installed: Arc<Installed>,
}

/// What a recording holds, to build crash images from.
#[derive(Clone, Debug)]
pub struct History {
    /// Files present when the recording began (name, file id, contents).
    pub base: Vec<(String, usize, Vec<u8>)>,
    /// Every change since, in order.
    pub events: Vec<Event>,
}

impl Recording {
    /// Start recording the changes to the files of `dir` (not of its
    /// subdirectories). Files already there are taken as durable.
    pub fn start(dir: &Path) -> std::io::Result<Recording> {
        let mut state = State {
            events: Vec::new(),
            base: BTreeMap::new(),
            ids: HashMap::new(),
            next_id: 0,
        };
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let id = state.next_id;
            state.next_id += 1;
            state.ids.insert((meta.dev(), meta.ino()), id);
            state.base.insert(name, (id, std::fs::read(entry.path())?));
        }
        let installed = Arc::new(Installed {
            dir: dir.to_path_buf(),
            state: Mutex::new(state),
        });
        RECORDINGS
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(installed.clone());
        ACTIVE.fetch_add(1, Ordering::AcqRel);
        Ok(Recording { installed })
    }

    /// How many changes are recorded so far: a crash "at" this point is
    /// one after them all. Taken under the lock, so a change in flight is
    /// either counted or not yet made.
    pub fn position(&self) -> usize {
        self.lock().events.len()
    }

    /// A copy of what is recorded so far.
    pub fn history(&self) -> History {
        let state = self.lock();
        History {
            base: state
                .base
                .iter()
                .map(|(name, (id, bytes))| (name.clone(), *id, bytes.clone()))
                .collect(),
            events: state.events.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.installed
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let mut all = RECORDINGS.write().unwrap_or_else(|p| p.into_inner());
        all.retain(|r| !Arc::ptr_eq(r, &self.installed));
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Make `call`, an I/O call on `path`, and if `path` lies in a recorded
/// directory and the call succeeds, let `note` record what it changed.
/// The recording's lock is held from before the call until it is noted,
/// so calls are recorded in the order they happen.
#[inline]
pub(crate) fn around<T, E>(
    path: &Path,
    call: impl FnOnce() -> Result<T, E>,
    note: impl FnOnce(&mut Note<'_>, &T),
) -> Result<T, E> {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return call();
    }
    around_slow(path, call, note)
}

#[cold]
fn around_slow<T, E>(
    path: &Path,
    call: impl FnOnce() -> Result<T, E>,
    note: impl FnOnce(&mut Note<'_>, &T),
) -> Result<T, E> {
    let installed = {
        let all = RECORDINGS.read().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .find(|r| path.parent() == Some(r.dir.as_path()) || path == r.dir)
            .cloned()
    };
    let Some(installed) = installed else {
        return call();
    };
    let mut state = installed.state.lock().unwrap_or_else(|p| p.into_inner());
    let result = call()?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    note(
        &mut Note {
            state: &mut state,
            name,
        },
        &result,
    );
    Ok(result)
}

/// What a recorded call changed, told to the recording.
pub(crate) struct Note<'a> {
    state: &'a mut State,
    /// The name the call was made on.
    name: String,
}

fn key(file: &File) -> (u64, u64) {
    file.metadata()
        .map(|m| (m.dev(), m.ino()))
        .unwrap_or((0, 0))
}

impl Note<'_> {
    fn id(&mut self, file: &File) -> usize {
        let state = &mut *self.state;
        *state.ids.entry(key(file)).or_insert_with(|| {
            // Every file of the directory was found at the start or seen
            // created; one that was not (made behind the engine's back)
            // gets an id of its own.
            let id = state.next_id;
            state.next_id += 1;
            id
        })
    }

    fn push(&mut self, event: Event) {
        self.state.events.push(event);
    }

    /// The file was opened; `created` if the call made it.
    pub fn opened(&mut self, file: &File, created: bool) {
        if !created {
            self.id(file);
            return;
        }
        let id = self.state.next_id;
        self.state.next_id += 1;
        // A new file may reuse the inode of a removed one: it is a new id.
        self.state.ids.insert(key(file), id);
        let name = self.name.clone();
        self.push(Event::Create { file: id, name });
    }

    /// `data` was written at `offset`.
    pub fn wrote(&mut self, file: &File, offset: u64, data: &[u8]) {
        let file = self.id(file);
        self.push(Event::Write {
            file,
            offset,
            data: data.into(),
        });
    }

    /// The length was set to `len`.
    pub fn set_len(&mut self, file: &File, len: u64) {
        let file = self.id(file);
        self.push(Event::SetLen { file, len });
    }

    /// Blocks were allocated up to `end`.
    pub fn allocated(&mut self, file: &File, end: u64) {
        let file = self.id(file);
        self.push(Event::Allocate { file, end });
    }

    /// `offset..offset + len` was punched out.
    pub fn punched(&mut self, file: &File, offset: u64, len: u64) {
        let file = self.id(file);
        self.push(Event::Punch { file, offset, len });
    }

    /// The file was synced.
    pub fn synced(&mut self, file: &File) {
        let file = self.id(file);
        self.push(Event::Sync { file });
    }

    /// The directory was synced.
    pub fn synced_dir(&mut self) {
        self.push(Event::SyncDir);
    }

    /// The name was renamed to `to`'s.
    pub fn renamed(&mut self, to: &Path) {
        let from = self.name.clone();
        let to = to
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.push(Event::Rename { from, to });
    }

    /// The name was removed.
    pub fn removed(&mut self) {
        let name = self.name.clone();
        self.push(Event::Remove { name });
    }
}

/// How the writes not yet synced fare in a crash image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Every unsynced write and name change is lost.
    SyncedOnly,
    /// Every write and name change made it to disk (what a killed process
    /// leaves).
    Everything,
    /// A random choice: each sector as it was at a moment of its own since
    /// the file's last sync (so a later write may survive an earlier one
    /// in another sector), a prefix of the unsynced length changes, and a
    /// prefix of the unsynced name changes. Seeded.
    Random(u64),
}

/// What a file looks like in the model.
#[derive(Default, Clone)]
struct Model {
    durable: Vec<u8>,
    pending: Vec<Pending>,
}

#[derive(Clone)]
enum Pending {
    Write(u64, Arc<[u8]>),
    SetLen(u64),
    Allocate(u64),
    Punch(u64, u64),
}

fn apply(bytes: &mut Vec<u8>, op: &Pending, keep_sector: &mut impl FnMut(u64) -> bool) {
    match op {
        Pending::Write(offset, data) => {
            let end = offset + data.len() as u64;
            let mut at = *offset;
            while at < end {
                let next = ((at / SECTOR + 1) * SECTOR).min(end);
                if keep_sector(at / SECTOR) {
                    if bytes.len() < next as usize {
                        bytes.resize(next as usize, 0);
                    }
                    let from = (at - offset) as usize;
                    let to = (next - offset) as usize;
                    bytes[at as usize..next as usize].copy_from_slice(&data[from..to]);
                }
                at = next;
            }
        }
        Pending::SetLen(len) => bytes.resize(*len as usize, 0),
        Pending::Allocate(end) => {
            if bytes.len() < *end as usize {
                bytes.resize(*end as usize, 0);
            }
        }
        Pending::Punch(offset, len) => {
            let from = (*offset as usize).min(bytes.len());
            let to = ((offset + len) as usize).min(bytes.len());
            bytes[from..to].fill(0);
        }
    }
}

enum NameOp {
    Link(String, usize),
    Rename(String, String),
    Remove(String),
}

fn apply_name(names: &mut BTreeMap<String, usize>, op: &NameOp) {
    match op {
        NameOp::Link(name, id) => {
            names.insert(name.clone(), *id);
        }
        NameOp::Rename(from, to) => {
            if let Some(id) = names.remove(from) {
                names.insert(to.clone(), id);
            }
        }
        NameOp::Remove(name) => {
            names.remove(name);
        }
    }
}

/// A small seeded generator, so that images are reproducible.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The files (name → contents) a crash after the first `upto` events of
/// `history` can leave, under the model in the module's documentation.
pub fn crash_image(history: &History, upto: usize, crash: Crash) -> BTreeMap<String, Vec<u8>> {
    let mut files: HashMap<usize, Model> = HashMap::new();
    let mut durable_names = BTreeMap::new();
    for (name, id, bytes) in &history.base {
        files.insert(
            *id,
            Model {
                durable: bytes.clone(),
                pending: Vec::new(),
            },
        );
        durable_names.insert(name.clone(), *id);
    }
    let mut pending_names: Vec<NameOp> = Vec::new();
    for event in &history.events[..upto.min(history.events.len())] {
        match event {
            Event::Create { file, name } => {
                files.insert(*file, Model::default());
                pending_names.push(NameOp::Link(name.clone(), *file));
            }
            Event::Write { file, offset, data } => files
                .entry(*file)
                .or_default()
                .pending
                .push(Pending::Write(*offset, data.clone())),
            Event::SetLen { file, len } => files
                .entry(*file)
                .or_default()
                .pending
                .push(Pending::SetLen(*len)),
            Event::Allocate { file, end } => files
                .entry(*file)
                .or_default()
                .pending
                .push(Pending::Allocate(*end)),
            Event::Punch { file, offset, len } => files
                .entry(*file)
                .or_default()
                .pending
                .push(Pending::Punch(*offset, *len)),
            Event::Sync { file } => {
                let model = files.entry(*file).or_default();
                for op in std::mem::take(&mut model.pending) {
                    apply(&mut model.durable, &op, &mut |_| true);
                }
            }
            Event::SyncDir => {
                for op in pending_names.drain(..) {
                    apply_name(&mut durable_names, &op);
                }
            }
            Event::Rename { from, to } => {
                pending_names.push(NameOp::Rename(from.clone(), to.clone()))
            }
            Event::Remove { name } => pending_names.push(NameOp::Remove(name.clone())),
        }
    }
    let mut rng = SplitMix(match crash {
        Crash::Random(seed) => seed,
        _ => 0,
    });
    let names_kept = match crash {
        Crash::SyncedOnly => 0,
        Crash::Everything => pending_names.len(),
        Crash::Random(_) => (rng.next() % (pending_names.len() as u64 + 1)) as usize,
    };
    for op in &pending_names[..names_kept] {
        apply_name(&mut durable_names, op);
    }
    let mut image = BTreeMap::new();
    for (name, id) in durable_names {
        let Some(model) = files.get(&id) else {
            continue;
        };
        let mut bytes = model.durable.clone();
        let n = model.pending.len();
        // Each sector reaches the disk as it was at some moment since the
        // last sync (the page cache writes back what it holds then), so
        // it keeps the writes to it up to its own cut, in order; sectors
        // are cut apart, so a later write may survive an earlier one.
        // Changes of length are journaled in order: a prefix survives.
        let (sector_cuts, length_cut) = match crash {
            Crash::SyncedOnly => (Some(0), 0),
            Crash::Everything => (Some(n), n),
            Crash::Random(_) => {
                let length_cut = (rng.next() % (n as u64 + 1)) as usize;
                match rng.next() % 4 {
                    0 => (Some(0), length_cut),
                    1 => (Some(n), length_cut),
                    _ => (None, length_cut),
                }
            }
        };
        let mut cuts: HashMap<u64, usize> = HashMap::new();
        for (j, op) in model.pending.iter().enumerate() {
            if let Pending::Write(..) = op {
                apply(&mut bytes, op, &mut |sector| {
                    let cut = sector_cuts.unwrap_or_else(|| {
                        *cuts
                            .entry(sector)
                            .or_insert_with(|| (rng.next() % (n as u64 + 1)) as usize)
                    });
                    j < cut
                });
            } else if j < length_cut {
                apply(&mut bytes, op, &mut |_| true);
            }
        }
        image.insert(name, bytes);
    }
    image
}

/// Write an image (from [`crash_image`]) into the empty directory `dir`.
pub fn write_image(image: &BTreeMap<String, Vec<u8>>, dir: &Path) -> std::io::Result<()> {
    for (name, bytes) in image {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(events: Vec<Event>) -> History {
        History {
            base: Vec::new(),
            events,
        }
    }

    fn write(file: usize, offset: u64, data: &[u8]) -> Event {
        Event::Write {
            file,
            offset,
            data: data.into(),
        }
    }

    fn create(file: usize, name: &str) -> Event {
        Event::Create {
            file,
            name: name.into(),
        }
    }

    #[test]
    fn a_name_is_durable_only_once_its_directory_is_synced() {
        let h = history(vec![
            create(0, "a"),
            write(0, 0, b"hello"),
            Event::Sync { file: 0 },
            Event::SyncDir,
            create(1, "b"),
            write(1, 0, b"world"),
            Event::Sync { file: 1 },
        ]);
        let image = crash_image(&h, h.events.len(), Crash::SyncedOnly);
        assert_eq!(image.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(image["a"], b"hello");
        let image = crash_image(&h, h.events.len(), Crash::Everything);
        assert_eq!(image["b"], b"world");
        // Before the directory sync, not even `a` is there.
        assert!(crash_image(&h, 3, Crash::SyncedOnly).is_empty());
    }

    #[test]
    fn unsynced_writes_are_lost_or_kept_by_sector() {
        let mut h = history(vec![create(0, "f"), Event::SyncDir]);
        h.events.push(write(0, 0, &[1; 1024]));
        h.events.push(Event::Sync { file: 0 });
        h.events.push(write(0, 0, &[2; 1024]));
        let n = h.events.len();
        assert_eq!(crash_image(&h, n, Crash::SyncedOnly)["f"], vec![1; 1024]);
        assert_eq!(crash_image(&h, n, Crash::Everything)["f"], vec![2; 1024]);
        let mut mixed = false;
        for seed in 0..64 {
            let f = &crash_image(&h, n, Crash::Random(seed))["f"];
            assert_eq!(f.len(), 1024);
            // Sectors are whole: each is all old or all new.
            let (a, b) = f.split_at(512);
            assert!(a.iter().all(|&x| x == a[0]) && b.iter().all(|&x| x == b[0]));
            mixed |= a[0] != b[0];
        }
        assert!(mixed, "some image keeps one sector and loses the other");
    }

    #[test]
    fn renames_keep_their_order() {
        let h = history(vec![
            create(0, "tmp"),
            write(0, 0, b"x"),
            Event::Sync { file: 0 },
            Event::Rename {
                from: "tmp".into(),
                to: "final".into(),
            },
            Event::Remove { name: "old".into() },
        ]);
        for seed in 0..32 {
            let image = crash_image(&h, h.events.len(), Crash::Random(seed));
            // Either nothing, the temporary name, or the final one.
            assert!(image.len() <= 1);
            if let Some(bytes) = image.get("final").or(image.get("tmp")) {
                assert_eq!(bytes, b"x");
            }
        }
    }
}
