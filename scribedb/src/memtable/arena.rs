//! Arena files: the shared memory in which the version store lives.
//!
//! ```text
//! arena file  mem-<generation>-<index>.arena
//! ┌──────────────────────────────┬────────┬────────┬─────┬───────────────┐
//! │ header (64 B)                │ node   │ node   │ ... │ unused (zero) │
//! │ magic, version, generation,  │        │        │     │               │
//! │ index, size, used            │        │        │     │               │
//! └──────────────────────────────┴────────┴────────┴─────┴───────────────┘
//! ```
//!
//! An arena is append-only: the single writer bumps `used` and writes a node
//! into space no reader can reach yet; the node becomes reachable only when
//! the skiplist links it with a release store. Nodes are 8-byte aligned.
//!
//! A node pointer is a `u64`: arena index in the high 16 bits, byte offset in
//! the low 48; 0 is null. Every pointer read from shared memory is checked
//! against the arena's length before it is followed, so a corrupt file yields
//! an error, never undefined behaviour. This module holds all of the unsafe
//! code of the version store.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use memmap2::MmapMut;

use super::fence::FenceCache;
pub use crate::entry::Kind;
use crate::error::{Error, Result};
use crate::io::{self, Open};
use crate::logview::{LogSet, LOG_VALUE_MIN};

pub const ARENA_MAGIC: [u8; 8] = *b"SCRBAREN";
/// Version 2 added the key index (`H_KEY_INDEX`) and values kept in the
/// log; version 3 the checksum of a value kept in the log, beside its
/// length. Arenas are derived state: those of another version are rebuilt
/// from the log, never read.
pub const ARENA_VERSION: u64 = 3;
pub const ARENA_HEADER: usize = 64;
const H_MAGIC: usize = 0;
const H_VERSION: usize = H_MAGIC + 8;
const H_GENERATION: usize = H_VERSION + 8;
const H_INDEX: usize = H_GENERATION + 8;
const H_SIZE: usize = H_INDEX + 8;
const H_USED: usize = H_SIZE + 8;
/// Bytes from the start backed by allocated blocks: the mapping is written
/// only below this, so a full disk is an error at allocation, not a SIGBUS.
const H_ALLOCATED: usize = H_USED + 8;
/// In arena 0 only: pointer to the current key index table (0: none).
pub const H_KEY_INDEX: usize = H_ALLOCATED + 8;
/// Granularity of block allocation: it starts at 1 MiB and doubles with
/// what is allocated up to this, so that an idle memtable (one just started,
/// or a small database) takes little disk, and a busy one few calls.
const ALLOC_CHUNK: usize = 8 << 20;

/// Most arenas one generation may chain.
pub const MAX_ARENAS: usize = 4096;
/// Largest arena: the key index packs offsets into 36 bits.
pub const MAX_ARENA_SIZE: usize = 1 << 36;
const OFFSET_BITS: u32 = 48;

// Node layout.
const N_KEY_LEN: usize = 0; // u32
const N_HEIGHT: usize = N_KEY_LEN + 4; // u8
const N_KIND: usize = N_HEIGHT + 1; // u8
const N_FLAGS: usize = N_KIND + 1; // u8
const N_TS: usize = 8; // u64
/// u32 value length, then (a value in the log) the crc32c of the value.
const N_VALUE_LEN: usize = N_TS + 8;
const N_VALUE_CRC: usize = N_VALUE_LEN + 4;
const N_TOWER: usize = N_VALUE_LEN + 8; // TOWER_ENTRY × height
/// A tower entry: successor pointer, then the successor's key prefix.
const TOWER_ENTRY: usize = 16;
pub const MAX_HEIGHT: usize = 24;

/// Node flag: the value lives in the log; the node's value bytes are the
/// value's log position (u64).
const FLAG_VALUE_IN_LOG: u8 = 1;

/// Where a node's value is kept.
#[derive(Clone, Copy)]
pub enum StoredValue<'v> {
    /// In the node.
    Inline(&'v [u8]),
    /// In the log: `len` bytes at log position `offset`, whose crc32c is
    /// `crc` (computed from the bytes the commit wrote, or from a record
    /// whose checksum held).
    InLog { offset: u64, len: u64, crc: u32 },
}

impl<'v> StoredValue<'v> {
    /// `value`, which the log holds at `offset`: in the log if it is long
    /// enough to be worth a reference, else inline.
    pub fn choose(value: &'v [u8], offset: u64) -> Self {
        if value.len() >= LOG_VALUE_MIN {
            StoredValue::InLog {
                offset,
                len: value.len() as u64,
                crc: crc32c::crc32c(value),
            }
        } else {
            StoredValue::Inline(value)
        }
    }
}

/// The first 8 bytes of `key` as a big-endian integer, zero-padded: if
/// `key_prefix(a) > key_prefix(b)` then `a > b`.
#[inline]
pub fn key_prefix(key: &[u8]) -> u64 {
    match key.first_chunk::<8>() {
        // One load: the common case, and the one on every search step.
        Some(head) => u64::from_be_bytes(*head),
        None => {
            let mut b = [0u8; 8];
            b[..key.len()].copy_from_slice(key);
            u64::from_be_bytes(b)
        }
    }
}

/// Key order, deciding by the 8-byte prefixes when they differ (most
/// neighbouring keys do), so that only ties compare the rest.
#[inline]
pub fn cmp_keys(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    key_prefix(a).cmp(&key_prefix(b)).then_with(|| a.cmp(b))
}

pub const fn make_ptr(index: usize, offset: usize) -> u64 {
    ((index as u64) << OFFSET_BITS) | offset as u64
}

pub fn split_ptr(ptr: u64) -> (usize, usize) {
    (
        (ptr >> OFFSET_BITS) as usize,
        (ptr & ((1 << OFFSET_BITS) - 1)) as usize,
    )
}

/// Bytes a node with this shape occupies, 8-byte aligned.
pub fn node_size(height: usize, key_len: usize, value_len: usize) -> usize {
    (N_TOWER + TOWER_ENTRY * height + key_len + value_len + 7) & !7
}

pub fn arena_file(dir: &Path, generation: u64, index: usize) -> PathBuf {
    dir.join(format!("mem-{generation:016x}-{index:05}.arena"))
}

/// The most arena bytes a version of a key of `key_len` bytes and a value
/// of `value_len` bytes (`None` for a delete) can take.
pub fn version_bytes_bound(key_len: usize, value_len: Option<usize>) -> usize {
    let stored = match value_len {
        Some(n) if n >= LOG_VALUE_MIN => 8,
        Some(n) => n,
        None => 0,
    };
    node_size(MAX_HEIGHT, key_len, stored)
}

/// One mapped arena file.
pub struct Arena {
    map: MmapMut,
    path: PathBuf,
    file: File,
}

/// Bytes allocated when an arena is created: the first step of `reserve`.
const FIRST_ALLOC: usize = 1 << 20;

impl Arena {
    fn create(path: &Path, generation: u64, index: usize, size: usize) -> Result<Arena> {
        let file = io::open(path, Open::Truncate)?;
        io::set_len(&file, path, size as u64)?;
        // Blocks for the header before the mapping is touched at all: a
        // fault on a page no block backs is SIGBUS when the disk is full
        // (and tmpfs allocates even on a read fault).
        let first = FIRST_ALLOC.min(size);
        io::allocate(&file, path, 0, first as u64)?;
        let arena = Arena::map(path, file)?;
        arena
            .atomic(H_ALLOCATED)
            .store(first as u64, Ordering::Release);
        arena.put_u64(H_VERSION, ARENA_VERSION);
        arena.put_u64(H_GENERATION, generation);
        arena.put_u64(H_INDEX, index as u64);
        arena.put_u64(H_SIZE, size as u64);
        arena
            .atomic(H_USED)
            .store(ARENA_HEADER as u64, Ordering::Release);
        arena.put_bytes(H_MAGIC, &ARENA_MAGIC);
        Ok(arena)
    }

    fn open(path: &Path, generation: u64, index: usize) -> Result<Arena> {
        let file = io::open(path, Open::Write)?;
        let arena = Arena::map(path, file)?;
        let corrupt = |what: &str| Error::corrupted(path, 0, what.to_string());
        if arena.map.len() < ARENA_HEADER || arena.map[..8] != ARENA_MAGIC {
            return Err(Error::BadMagic {
                file: path.to_path_buf(),
                kind: "arena",
            });
        }
        let version = arena.get_u64(H_VERSION);
        if version != ARENA_VERSION {
            return Err(Error::UnsupportedVersion {
                file: path.to_path_buf(),
                found: version.min(u32::MAX as u64) as u32,
                supported: ARENA_VERSION as u32,
            });
        }
        if arena.get_u64(H_GENERATION) != generation || arena.get_u64(H_INDEX) != index as u64 {
            return Err(corrupt("arena belongs to another generation or index"));
        }
        if arena.get_u64(H_SIZE) != arena.map.len() as u64 {
            return Err(corrupt("arena size does not match its file"));
        }
        Ok(arena)
    }

    fn map(path: &Path, file: File) -> Result<Arena> {
        // SAFETY: arena files are shared between processes by design. Bytes
        // of a published node are never written again; the header's `used`
        // field is accessed atomically; unpublished space is written only by
        // the single writer. Readers bounds-check every access.
        let map = unsafe { io::map_shared(&file, path) }?;
        // Ask for 2 MiB mappings where the kernel can give them: fewer TLB
        // misses on a search (about 8% faster gets measured on 1M keys).
        // Only advice; failure changes nothing.
        let _ = map.advise(memmap2::Advice::HugePage);
        Ok(Arena {
            map,
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn atomic(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset.checked_add(8).is_some_and(|e| e <= self.map.len()));
        // SAFETY: in bounds and 8-byte aligned (the mapping is page aligned);
        // lives as long as `self`; these words are only accessed atomically.
        unsafe { &*(self.map.as_ptr().add(offset) as *const AtomicU64) }
    }

    fn get_u64(&self, offset: usize) -> u64 {
        u64::from_le_bytes(self.map[offset..offset + 8].try_into().unwrap())
    }

    fn put_u64(&self, offset: usize, v: u64) {
        self.put_bytes(offset, &v.to_le_bytes());
    }

    /// Write bytes into space that no reader can reach.
    fn put_bytes(&self, offset: usize, bytes: &[u8]) {
        assert!(offset
            .checked_add(bytes.len())
            .is_some_and(|end| end <= self.map.len()));
        // SAFETY: in bounds (checked above). Callers only write into space
        // past every published node (fresh allocations or a new header), so
        // no other reference to these bytes exists in any process.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.map.as_ptr().add(offset) as *mut u8,
                bytes.len(),
            );
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Zero `len` bytes at `offset`, in space returned by
    /// [`Arenas::alloc`] and not yet published (writer only).
    pub fn zero_unpublished(&self, offset: usize, len: usize) {
        const ZEROS: [u8; 4096] = [0; 4096];
        let mut at = offset;
        while at < offset + len {
            let n = (offset + len - at).min(ZEROS.len());
            self.put_bytes(at, &ZEROS[..n]);
            at += n;
        }
    }

    /// A corruption error pointing into this arena.
    pub fn corrupted(&self, offset: usize, what: String) -> Error {
        Error::corrupted(&self.path, offset as u64, what)
    }

    /// Make sure blocks back the first `end` bytes (writer only).
    fn reserve(&self, end: usize) -> Result<()> {
        let allocated = self.atomic(H_ALLOCATED).load(Ordering::Acquire) as usize;
        if end <= allocated {
            return Ok(());
        }
        let from = allocated.min(end);
        let step = allocated.clamp(FIRST_ALLOC, ALLOC_CHUNK);
        let to = end.div_ceil(step).saturating_mul(step).min(self.len());
        if end > to {
            return Err(Error::corrupted(
                &self.path,
                end as u64,
                "allocation past the arena",
            ));
        }
        io::allocate(&self.file, &self.path, from as u64, (to - from) as u64)?;
        self.atomic(H_ALLOCATED).store(to as u64, Ordering::Release);
        Ok(())
    }

    pub fn used(&self) -> usize {
        self.atomic(H_USED).load(Ordering::Acquire) as usize
    }
}

/// A node read from an arena, with every field bounds-checked.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    arena: &'a Arena,
    log: &'a LogSet,
    index: usize,
    offset: usize,
    height: usize,
    key_len: usize,
    value_len: usize,
    /// crc32c of a value kept in the log.
    value_crc: u32,
    in_log: bool,
    pub ts: u64,
    pub kind: Kind,
}

impl<'a> Node<'a> {
    /// The pointer that names this node.
    pub fn ptr(&self) -> u64 {
        make_ptr(self.index, self.offset)
    }

    /// Levels this node is linked at.
    pub fn height(&self) -> usize {
        self.height
    }

    fn tower_offset(&self, level: usize) -> usize {
        self.offset + N_TOWER + TOWER_ENTRY * level
    }

    /// The successor at `level` (0 if none or above this node's height).
    pub fn next(&self, level: usize) -> u64 {
        self.next_with_prefix(level).0
    }

    /// The successor at `level` and a lower bound of its key prefix (see
    /// [`key_prefix`]): the prefix is loaded after the pointer, and a
    /// concurrent link only ever lowers it, so it never exceeds the prefix
    /// of the node the returned pointer names.
    pub fn next_with_prefix(&self, level: usize) -> (u64, u64) {
        if level >= self.height {
            return (0, 0);
        }
        let at = self.tower_offset(level);
        let ptr = self.arena.atomic(at).load(Ordering::Acquire);
        let prefix = self.arena.atomic(at + 8).load(Ordering::Relaxed);
        (ptr, prefix)
    }

    /// Link `ptr`, whose key prefix is `prefix`, as successor at `level`.
    /// The prefix is stored first; the pointer with release ordering, so a
    /// reader that loads the pointer sees the whole node and the prefix.
    pub fn set_next(&self, level: usize, ptr: u64, prefix: u64) {
        assert!(level < self.height);
        let at = self.tower_offset(level);
        self.arena.atomic(at + 8).store(prefix, Ordering::Relaxed);
        self.arena.atomic(at).store(ptr, Ordering::Release);
    }

    /// A corruption error pointing at this node.
    pub fn corrupted(&self, what: &str) -> crate::error::Error {
        Error::corrupted(&self.arena.path, self.offset as u64, format!("node {what}"))
    }

    pub fn key(&self) -> &'a [u8] {
        let start = self.tower_offset(self.height);
        &self.arena.map[start..start + self.key_len]
    }

    /// Ask for the value kept in the log, ahead of reading it (a value
    /// kept in the node is already at hand).
    #[inline]
    pub fn prefetch_value(&self) {
        if self.in_log {
            let start = self.tower_offset(self.height) + self.key_len;
            self.log.prefetch(self.arena.get_u64(start));
        }
    }

    /// The value: from the node, or through the log view.
    pub fn value(&self) -> Result<&'a [u8]> {
        let start = self.tower_offset(self.height) + self.key_len;
        if self.in_log {
            let pos = self.arena.get_u64(start);
            let value = self.log.slice(pos, self.value_len as u64)?;
            // The log's bytes are checked against the checksum the node
            // took from the commit (cheap next to a cache miss: a few
            // nanoseconds per hundred bytes), so damage on disk is an error
            // naming the file and position, never a wrong value.
            if crate::faults::read_verification() && crc32c::crc32c(value) != self.value_crc {
                return Err(self.log.damaged(pos, "value checksum mismatch"));
            }
            return Ok(value);
        }
        Ok(&self.arena.map[start..start + self.value_len])
    }
}

/// The arenas of one version-store generation, mapped lazily per process.
pub struct Arenas {
    dir: PathBuf,
    generation: u64,
    default_size: usize,
    maps: Box<[OnceLock<Arena>]>,
    /// Where nodes whose values live in the log read them.
    log: std::sync::Arc<LogSet>,
    /// This process's sample of the skiplist, for searches.
    fences: FenceCache,
}

impl Arenas {
    pub fn new(
        dir: &Path,
        generation: u64,
        default_size: usize,
        log: std::sync::Arc<LogSet>,
    ) -> Arenas {
        Arenas {
            dir: dir.to_path_buf(),
            generation,
            default_size,
            maps: (0..MAX_ARENAS).map(|_| OnceLock::new()).collect(),
            log,
            fences: FenceCache::default(),
        }
    }

    /// The log files this memtable's values lie in.
    pub fn log(&self) -> &std::sync::Arc<LogSet> {
        &self.log
    }

    /// Create arena `index` (the writer only).
    pub fn create(&self, index: usize, min_size: usize) -> Result<&Arena> {
        if index >= MAX_ARENAS {
            return Err(Error::io(
                "growing the version store",
                std::io::Error::new(std::io::ErrorKind::OutOfMemory, "too many arenas"),
            ));
        }
        let size = self.default_size.max(min_size + ARENA_HEADER);
        let size = (size + 4095) & !4095;
        if size > MAX_ARENA_SIZE {
            return Err(Error::io(
                "growing the version store",
                std::io::Error::new(
                    std::io::ErrorKind::OutOfMemory,
                    format!("an arena of {size} bytes is larger than {MAX_ARENA_SIZE}"),
                ),
            ));
        }
        let arena = Arena::create(
            &arena_file(&self.dir, self.generation, index),
            self.generation,
            index,
            size,
        )?;
        let _ = self.maps[index].set(arena);
        Ok(self.maps[index].get().expect("just set"))
    }

    /// Make sure blocks back the next `bytes` of the last of `count`
    /// arenas (as far as it reaches), so that a commit whose nodes take at
    /// most that much finds its space allocated: asked before the commit's
    /// log record is written, a full disk fails the commit cleanly instead
    /// of halfway. Nodes past the end of the arena go into a new one, which
    /// is reserved when it is created. Writer only.
    pub fn reserve_for(&self, count: usize, bytes: usize) -> Result<()> {
        let Some(last) = count.checked_sub(1) else {
            return Ok(());
        };
        let arena = self.get(last)?;
        let used = arena.used();
        if used < ARENA_HEADER || used % 8 != 0 || used > arena.len() {
            return Err(arena.corrupted(H_USED, format!("used = {used}")));
        }
        arena.reserve(used.saturating_add(bytes).min(arena.len()))
    }

    /// Arena `index`, mapping it on first use.
    pub fn get(&self, index: usize) -> Result<&Arena> {
        let slot = self.maps.get(index).ok_or_else(|| {
            Error::corrupted(
                &self.dir,
                index as u64,
                format!("arena index {index} out of range"),
            )
        })?;
        if let Some(arena) = slot.get() {
            return Ok(arena);
        }
        let arena = Arena::open(
            &arena_file(&self.dir, self.generation, index),
            self.generation,
            index,
        )?;
        let _ = slot.set(arena);
        Ok(slot.get().expect("just set"))
    }

    /// Read the node at `ptr`, checking that it lies wholly inside its arena.
    pub fn node(&self, ptr: u64) -> Result<Node<'_>> {
        let (index, offset) = split_ptr(ptr);
        let arena = self.get(index)?;
        let bad = |what: &str| Error::corrupted(&arena.path, offset as u64, format!("node {what}"));
        if offset % 8 != 0 || offset < ARENA_HEADER || offset + N_TOWER > arena.len() {
            return Err(bad("pointer out of bounds"));
        }
        let m = &arena.map;
        let key_len = u32::from_le_bytes(
            m[offset + N_KEY_LEN..offset + N_KEY_LEN + 4]
                .try_into()
                .unwrap(),
        ) as usize;
        let height = m[offset + N_HEIGHT] as usize;
        let Some(kind) = Kind::from_code(m[offset + N_KIND]) else {
            return Err(bad("has an unknown kind"));
        };
        let in_log = match m[offset + N_FLAGS] {
            0 => false,
            FLAG_VALUE_IN_LOG => true,
            _ => return Err(bad("has unknown flags")),
        };
        let ts = arena.get_u64(offset + N_TS);
        let value_len = u32::from_le_bytes(
            m[offset + N_VALUE_LEN..offset + N_VALUE_LEN + 4]
                .try_into()
                .unwrap(),
        ) as u64;
        let value_crc = u32::from_le_bytes(
            m[offset + N_VALUE_CRC..offset + N_VALUE_CRC + 4]
                .try_into()
                .unwrap(),
        );
        if height == 0 || height > MAX_HEIGHT {
            return Err(bad("has an invalid height"));
        }
        let stored_len = if in_log { 8 } else { value_len };
        let end = (stored_len as usize)
            .checked_add(key_len)
            .and_then(|n| n.checked_add(offset + N_TOWER + TOWER_ENTRY * height))
            .filter(|&end| end <= arena.len() && value_len <= usize::MAX as u64);
        if end.is_none() {
            return Err(bad("extends past the end of its arena"));
        }
        Ok(Node {
            arena,
            log: &self.log,
            index,
            offset,
            height,
            key_len,
            value_len: value_len as usize,
            value_crc,
            in_log,
            ts,
            kind,
        })
    }

    /// Ask for the first two cache lines of the node `ptr` (its header,
    /// tower start and usually its key), if its arena is mapped here. A hint
    /// only: nothing is read, so an unchecked pointer is harmless.
    #[inline]
    pub fn prefetch_node(&self, ptr: u64) {
        let (index, offset) = split_ptr(ptr);
        if let Some(arena) = self.maps.get(index).and_then(OnceLock::get) {
            let at = arena.map.as_ptr().wrapping_add(offset);
            crate::prefetch::prefetch(at);
            crate::prefetch::prefetch(at.wrapping_add(64));
        }
    }

    /// The arena a pointer names and the offset in it (not checked
    /// against the arena's length).
    pub fn locate(&self, ptr: u64) -> Result<(&Arena, usize)> {
        let (index, offset) = split_ptr(ptr);
        Ok((self.get(index)?, offset))
    }

    /// The word of arena 0 that points to the current key index table.
    pub fn key_index_root(&self) -> Result<&AtomicU64> {
        Ok(self.get(0)?.atomic(H_KEY_INDEX))
    }

    /// Allocate `size` bytes aligned to `align` (a power of two, at least
    /// 8) at the end of the last arena, or in a new arena if it does not
    /// fit. `count` is the number of arenas that exist; returns the
    /// pointer and the new count. The space is backed by blocks but its
    /// content is unspecified: a writer that died may have left bytes
    /// there. Writer only.
    pub fn alloc(&self, count: usize, size: usize, align: usize) -> Result<(u64, usize)> {
        debug_assert!(align.is_power_of_two() && align >= 8);
        let (mut index, mut arena) = match count {
            0 => (0, self.create(0, size + align)?),
            n => (n - 1, self.get(n - 1)?),
        };
        let used = arena.used();
        if used < ARENA_HEADER || used % 8 != 0 || used > arena.len() {
            return Err(arena.corrupted(H_USED, format!("used = {used}")));
        }
        let mut offset = (used + align - 1) & !(align - 1);
        if offset.checked_add(size).is_none_or(|end| end > arena.len()) {
            index += 1;
            arena = self.create(index, size + align)?;
            offset = (arena.used() + align - 1) & !(align - 1);
        }
        arena.reserve(offset + size)?;
        arena
            .atomic(H_USED)
            .store((offset + size) as u64, Ordering::Release);
        Ok((make_ptr(index, offset), index + 1))
    }

    /// Append a node to the last arena (creating one if needed) and return
    /// its pointer; the node is not linked. `count` is the number of arenas
    /// that exist; returns the new count too. Writer only.
    pub fn append(
        &self,
        count: usize,
        height: usize,
        kind: Kind,
        ts: u64,
        key: &[u8],
        value: StoredValue<'_>,
    ) -> Result<(u64, usize)> {
        let (flags, value_len, crc, offset_bytes);
        let stored: &[u8] = match value {
            StoredValue::Inline(v) => {
                (flags, value_len, crc) = (0, v.len() as u32, 0);
                v
            }
            StoredValue::InLog {
                offset,
                len,
                crc: value_crc,
            } => {
                // Value lengths are bounded by `MAX_VALUE_LEN` (< 4 GiB).
                (flags, value_len, crc) = (FLAG_VALUE_IN_LOG, len as u32, value_crc);
                offset_bytes = offset.to_le_bytes();
                &offset_bytes
            }
        };
        let size = node_size(height, key.len(), stored.len());
        let (ptr, count) = self.alloc(count, size, 8)?;
        let (arena, offset) = self.locate(ptr)?;
        let mut head = [0u8; N_TOWER];
        head[N_KEY_LEN..N_KEY_LEN + 4].copy_from_slice(&(key.len() as u32).to_le_bytes());
        head[N_HEIGHT] = height as u8;
        head[N_KIND] = kind as u8;
        head[N_FLAGS] = flags;
        head[N_TS..N_TS + 8].copy_from_slice(&ts.to_le_bytes());
        head[N_VALUE_LEN..N_VALUE_LEN + 4].copy_from_slice(&value_len.to_le_bytes());
        head[N_VALUE_CRC..N_VALUE_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        arena.put_bytes(offset, &head);
        let tower = TOWER_ENTRY * height;
        arena.put_bytes(offset + N_TOWER, &[0u8; TOWER_ENTRY * MAX_HEIGHT][..tower]);
        arena.put_bytes(offset + N_TOWER + tower, key);
        arena.put_bytes(offset + N_TOWER + tower + key.len(), stored);
        Ok((ptr, count))
    }

    /// Bytes used across the first `count` arenas, and their total size.
    pub fn usage(&self, count: usize) -> Result<(u64, u64)> {
        let mut used = 0;
        let mut size = 0;
        for i in 0..count {
            let a = self.get(i)?;
            used += a.used() as u64;
            size += a.len() as u64;
        }
        Ok((used, size))
    }

    /// This process's fences of the skiplist in these arenas.
    pub fn fences(&self) -> &FenceCache {
        &self.fences
    }

    /// The generation these arenas belong to.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Remove the arena files of every generation for which `keep` is false;
    /// returns how many files went.
    pub fn remove_generations(dir: &Path, keep: impl Fn(u64) -> bool) -> usize {
        let Ok(entries) = io::list(dir) else {
            return 0;
        };
        let mut removed = 0;
        for (name, path) in entries {
            let generation = name
                .strip_prefix("mem-")
                .and_then(|r| r.strip_suffix(".arena"))
                .and_then(|r| r.split_once('-'))
                .and_then(|(g, _)| u64::from_str_radix(g, 16).ok());
            if generation.is_some_and(|g| !keep(g)) && io::remove_quietly(&path) {
                removed += 1;
            }
        }
        removed
    }
}
