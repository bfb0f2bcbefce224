//! Reading a segment file through a read-only mapping.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::Mmap;

use super::format::*;
use super::SegmentMeta;
use crate::entry::{above_lower, below_upper, Kind};
use crate::error::{Error, Result};

/// One version read from a segment; the slices borrow the mapping.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Version<'a> {
    pub key: &'a [u8],
    pub ts: u64,
    pub kind: Kind,
    pub value: &'a [u8],
}

/// An open, validated segment file.
pub(crate) struct Segment {
    map: Mmap,
    path: PathBuf,
    meta: SegmentMeta,
    seed: u64,
    entries: usize,
    /// End of the data section, where the offset table starts.
    data_end: usize,
    index_off: usize,
    /// End of the index, where the block checksum table starts.
    blocks_off: usize,
    slots: usize,
    /// One bit per block (of data, offset table and index alike): its
    /// checksum has been verified in this process. Set once, never
    /// cleared: the file is never written again, so a verified block is
    /// trusted from then on. Never set with `Verify::EveryRead`.
    verified: Box<[AtomicU64]>,
    verify: Verify,
}

/// When a segment's blocks are checked against their checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// The first time this process reads each block.
    Once,
    /// At every read that touches a block.
    EveryRead,
}

impl Segment {
    /// Map `path` and validate its header, footer and block checksum table
    /// (a 4-byte checksum per 4 KiB, so about a thousandth of the file).
    /// Entries, the offset table and the index are checked block by
    /// block, the first time this process reads each block: opening never
    /// reads a section whose size grows with the number of entries.
    pub fn open(path: &Path, verify: Verify) -> Result<Segment> {
        let file = match crate::io::open(path, crate::io::Open::Read) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::corrupted(
                    path,
                    0,
                    "segment file is missing (the manifest lists it)",
                ));
            }
            other => other?,
        };
        let len = crate::io::len(&file, path)?;
        let corrupted = |offset: u64, what: String| Error::corrupted(path, offset, what);
        if len < (HEADER + FOOTER_FIXED) as u64 {
            return Err(corrupted(
                len,
                format!("segment of {len} bytes is shorter than a header and footer"),
            ));
        }
        // SAFETY: segment files are immutable once written: no process
        // writes to or truncates a finished segment, and deleting one only
        // unlinks it, which leaves existing mappings intact. The mapping is
        // read-only, and every offset read from it is checked before use.
        let map = unsafe { crate::io::map_read(&file, path) }?;
        let buf: &[u8] = &map;
        if buf.len() as u64 != len {
            return Err(corrupted(buf.len() as u64, "segment changed size".into()));
        }

        if buf[H_MAGIC..H_MAGIC + 8] != MAGIC {
            return Err(Error::BadMagic {
                file: path.to_path_buf(),
                kind: "segment",
            });
        }
        let version = le_u32(buf, H_VERSION);
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                file: path.to_path_buf(),
                found: version,
                supported: VERSION,
            });
        }
        if crc32c::crc32c(&buf[..H_CRC]) != le_u32(buf, H_CRC) {
            return Err(corrupted(
                H_CRC as u64,
                "segment header checksum mismatch".into(),
            ));
        }
        let flags = le_u32(buf, H_FLAGS);
        if flags != 0 {
            return Err(corrupted(
                H_FLAGS as u64,
                format!("unknown flags {flags:#x}"),
            ));
        }
        let seed = le_u64(buf, H_SEED);
        let entries = le_u64(buf, H_ENTRIES);
        let keys = le_u64(buf, H_KEYS);
        let data_end = le_u64(buf, H_DATA_END);
        let slots = le_u64(buf, H_SLOTS);
        let footer_len = le_u32(buf, H_FOOTER_LEN) as u64;

        // The sections must tile the file exactly.
        let bad_header =
            |at: usize, what: &str| corrupted(at as u64, format!("segment header: {what}"));
        if data_end < HEADER as u64 || data_end & 7 != 0 || data_end > MAX_DATA_END {
            return Err(bad_header(H_DATA_END, "data section end out of range"));
        }
        if entries > (data_end - HEADER as u64) / MIN_ENTRY as u64 {
            return Err(bad_header(
                H_ENTRIES,
                "more entries than fit in the data section",
            ));
        }
        if keys > entries || (keys == 0) != (entries == 0) {
            return Err(bad_header(H_KEYS, "key count does not match entry count"));
        }
        if slots != index_slots(keys) {
            return Err(bad_header(H_SLOTS, "wrong hash index capacity"));
        }
        if footer_len < FOOTER_FIXED as u64 {
            return Err(bad_header(H_FOOTER_LEN, "footer too short"));
        }
        let layout = Layout::new(data_end, entries, slots)
            .filter(|l| l.footer_off.checked_add(footer_len) == Some(len));
        let Some(layout) = layout else {
            return Err(corrupted(
                len,
                "segment size does not match its header (truncated or extended)".into(),
            ));
        };
        // Everything is inside the mapping now, so these conversions hold.
        let (data_end, index_off, blocks_off, footer_off) = (
            data_end as usize,
            layout.index_off as usize,
            layout.blocks_off as usize,
            layout.footer_off as usize,
        );
        let (entries_n, slots_n, blocks_n) =
            (entries as usize, slots as usize, layout.blocks as usize);

        // Footer.
        let footer = &buf[footer_off..];
        let crc_at = footer.len() - 4;
        if crc32c::crc32c(&footer[..crc_at]) != le_u32(footer, crc_at) {
            return Err(corrupted(
                (footer_off + crc_at) as u64,
                "segment footer checksum mismatch".into(),
            ));
        }
        let first_len = le_u32(footer, F_FIRST_KEY_LEN) as usize;
        let last_len = le_u32(footer, F_LAST_KEY_LEN) as usize;
        if FOOTER_FIXED + first_len + last_len != footer.len()
            || (entries == 0) != (first_len == 0 && last_len == 0)
        {
            return Err(corrupted(
                (footer_off + F_FIRST_KEY_LEN) as u64,
                "segment footer key lengths do not match its size".into(),
            ));
        }
        if le_u32(footer, F_ZERO) != 0 {
            return Err(corrupted(
                (footer_off + F_ZERO) as u64,
                "segment footer: reserved field is not zero".into(),
            ));
        }
        let tombstones = le_u64(footer, F_TOMBSTONES);
        if tombstones > entries {
            return Err(corrupted(
                (footer_off + F_TOMBSTONES) as u64,
                "more tombstones than entries".into(),
            ));
        }

        // The one section read whole: every later check of a block trusts
        // the checksum it finds here.
        let block_table = &buf[blocks_off..footer_off];
        if crc32c::crc32c(block_table) != le_u32(footer, F_BLOCKS_CRC) {
            return Err(corrupted(
                blocks_off as u64,
                "segment block checksum table mismatch".into(),
            ));
        }

        let keys_at = F_KEYS;
        let meta = SegmentMeta {
            size: len,
            entries,
            keys,
            tombstones,
            min_ts: le_u64(footer, F_MIN_TS),
            max_ts: le_u64(footer, F_MAX_TS),
            first_key: footer[keys_at..keys_at + first_len].to_vec(),
            last_key: footer[keys_at + first_len..keys_at + first_len + last_len].to_vec(),
            newest_put_bytes: le_u64(footer, F_NEWEST_PUT_BYTES),
        };
        Ok(Segment {
            map,
            path: path.to_path_buf(),
            meta,
            seed,
            entries: entries_n,
            data_end,
            index_off,
            blocks_off,
            slots: slots_n,
            verified: (0..blocks_n.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            verify,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many blocks this process has verified so far: what a test can
    /// see of how much of the file a read (or the open) has checked.
    #[cfg(test)]
    pub(super) fn verified_blocks(&self) -> u32 {
        self.verified
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones())
            .sum()
    }

    /// The metadata recorded in the file.
    pub fn meta(&self) -> &SegmentMeta {
        &self.meta
    }

    /// The newest version of `key` with timestamp `<= snapshot`, if any (a
    /// tombstone is returned as such).
    pub fn get(&self, key: &[u8], snapshot: u64) -> Result<Option<Version<'_>>> {
        let Some(mut e) = self.find_newest(key)? else {
            return Ok(None);
        };
        // The key's versions follow contiguously, newest first.
        loop {
            if e.ts <= snapshot {
                return Ok(Some(Version {
                    key: e.key,
                    ts: e.ts,
                    kind: e.kind,
                    value: e.value,
                }));
            }
            if e.next >= self.data_end {
                return Ok(None);
            }
            e = self.decode_at(e.next as u64)?;
            if e.key != key {
                return Ok(None);
            }
        }
    }

    /// The newest version of `key` (its entry, with its offset in `next`'s
    /// place known to the caller through `offset`), through the hash index.
    #[inline]
    fn find_newest(&self, key: &[u8]) -> Result<Option<RawEntry<'_>>> {
        self.find_newest_hashed(key, hash_key(key, self.seed))
    }

    /// Ask for the hash index slot of a key hashing to `hash` (a hint).
    fn prefetch_slot(&self, hash: u64) {
        let at = self.index_off + 8 * (hash as usize & (self.slots - 1));
        crate::prefetch::prefetch(self.map.as_ptr().wrapping_add(at));
    }

    /// Ask for the first bytes of the entry the slots name for a key
    /// hashing to `hash`, if any (a hint: the slots are read, the entry
    /// is not).
    fn prefetch_named(&self, hash: u64) {
        // The slots name what to ask for, so they are verified like any
        // other read of them; a damaged block is left for the read that
        // follows to report.
        let Ok(mut at) = self.probe_start(hash) else {
            return;
        };
        for _ in 0..8 {
            let slot = le_u64(&self.map, self.index_off + 8 * at);
            if slot == 0 {
                return;
            }
            if slot_tag_matches(slot, hash) {
                let p = self.map.as_ptr().wrapping_add(slot_offset(slot) as usize);
                for line in 0..PREFETCH_LINES {
                    crate::prefetch::prefetch(p.wrapping_add(64 * line));
                }
                return;
            }
            let Ok(next) = self.probe_next(at) else {
                return;
            };
            at = next;
        }
    }

    /// The probe of a point read. Inlined into its callers (`get` above
    /// all): left out of line, as the compiler tends to leave it, its
    /// result goes back through memory, costing a point read more than the
    /// index check does.
    #[inline(always)]
    fn find_newest_hashed(&self, key: &[u8], hash: u64) -> Result<Option<RawEntry<'_>>> {
        let mut at = self.probe_start(hash)?;
        for _ in 0..self.slots {
            // Verified: the probe checked the block on entering it.
            let slot = le_u64(&self.map, self.index_off + 8 * at);
            if slot == 0 {
                return Ok(None);
            }
            if slot_tag_matches(slot, hash) {
                let e = self.decode_at(slot_offset(slot))?;
                if e.key == key {
                    return Ok(Some(e));
                }
            }
            at = self.probe_next(at)?;
        }
        Err(Error::corrupted(
            &self.path,
            self.index_off as u64,
            "segment hash index has no empty slot",
        ))
    }

    /// The home slot of a key hashing to `hash`, its block verified.
    ///
    /// A probe checks a block when it enters it, not at every slot: slots
    /// are 8 bytes at 8-byte aligned offsets, so none straddles a block,
    /// and a probe nearly always ends in the block it started in. A point
    /// read thus pays one bit test for the index, as for each data block.
    #[inline]
    fn probe_start(&self, hash: u64) -> Result<usize> {
        let at = hash as usize & (self.slots - 1);
        self.verify_covering(self.index_off + 8 * at)?;
        Ok(at)
    }

    /// The slot a probe reads after `at`, its block verified if the probe
    /// enters a block there (a block boundary, or the wrap to slot 0).
    #[inline]
    fn probe_next(&self, at: usize) -> Result<usize> {
        let next = (at + 1) & (self.slots - 1);
        let off = self.index_off + 8 * next;
        if next == 0 || off % BLOCK == 0 {
            self.probe_enters(off)?;
        }
        Ok(next)
    }

    /// A probe entering the block holding `off`: rare (one step in 512),
    /// so kept out of line, which leaves the probe loop fewer registers
    /// to keep.
    #[cold]
    #[inline(never)]
    fn probe_enters(&self, off: usize) -> Result<()> {
        self.verify_covering(off)
    }

    /// File offset of entry `i` (`data_end` for `i == len()`), from the
    /// offset table, its block verified. Not yet checked to be an entry:
    /// [`decode_at`](Self::decode_at) does that.
    pub(super) fn offset_of(&self, i: usize) -> Result<usize> {
        self.offset_passing(i, &mut Passed::default())
    }

    /// [`offset_of`](Self::offset_of) for a scan; see [`Passed`].
    fn offset_passing(&self, i: usize, passed: &mut Passed) -> Result<usize> {
        if i >= self.entries {
            return Ok(self.data_end);
        }
        // The table follows the data, 8-byte aligned like the blocks, so
        // an entry of it lies in one block.
        let at = self.data_end + 8 * i;
        self.verify_passing(at / BLOCK, passed)?;
        Ok(le_u64(&self.map, at) as usize)
    }

    /// Number of entries (versions).
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Check the checksum of every block now, including blocks this
    /// process has verified before: a full check must judge the bytes as
    /// they are, not as they were when a read first passed them. Returns
    /// one `Corrupted` error per damaged block, naming its offset.
    pub(crate) fn verify_all(&self) -> Vec<Error> {
        let blocks = self.blocks_off.div_ceil(BLOCK);
        (0..blocks)
            .filter_map(|b| self.verify_block(b).err())
            .collect()
    }

    /// Entry `i` in sorted order with its file offset (as the offset table
    /// gives it) and the offset just past it, padding included: where the
    /// next entry must begin, the entries lying end to end.
    pub(crate) fn entry_located(&self, i: usize) -> Result<(u64, Version<'_>, u64)> {
        if i >= self.entries {
            // The error `entry` gives for an index out of range.
            return self.entry(i).map(|v| (0, v, 0));
        }
        let at = self.offset_of(i)?;
        let e = self.decode_at(at as u64)?;
        let v = Version {
            key: e.key,
            ts: e.ts,
            kind: e.kind,
            value: e.value,
        };
        Ok((at as u64, v, e.next as u64))
    }

    /// Where the data section begins and ends.
    pub(crate) fn data_section(&self) -> (u64, u64) {
        (HEADER as u64, self.data_end as u64)
    }

    /// Where the offset table begins (entry `i`'s offset is 8 `i` bytes
    /// further on).
    pub(crate) fn offset_table(&self) -> u64 {
        self.data_end as u64
    }

    /// The file offset of the entry the hash index names for `key` (its
    /// newest version), if it names one.
    pub(crate) fn indexed_offset(&self, key: &[u8]) -> Result<Option<u64>> {
        Ok(self
            .find_newest(key)?
            .map(|e| (e.next - entry_size(e.key.len(), e.value.len())) as u64))
    }

    /// Where the footer begins (it holds the counts and keys of `meta`).
    pub(crate) fn footer_offset(&self) -> u64 {
        (self.map.len() - le_u32(&self.map, H_FOOTER_LEN) as usize) as u64
    }

    /// Where the hash index begins, for messages about it.
    pub(crate) fn index_offset(&self) -> u64 {
        self.index_off as u64
    }

    /// How many slots of the hash index are occupied; every block read is
    /// verified first.
    pub(crate) fn occupied_slots(&self) -> Result<u64> {
        let mut occupied = 0;
        for i in 0..self.slots {
            let at = self.index_off + 8 * i;
            if i == 0 || at % BLOCK == 0 {
                self.verify_covering(at)?;
            }
            if le_u64(&self.map, at) != 0 {
                occupied += 1;
            }
        }
        Ok(occupied)
    }

    /// Entry `i` in sorted order, checksum verified.
    pub fn entry(&self, i: usize) -> Result<Version<'_>> {
        if i >= self.entries {
            return Err(Error::io(
                format!("reading segment {}", self.path.display()),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("entry {i} of {}", self.entries),
                ),
            ));
        }
        self.entry_passing(i, &mut Passed::default())
    }

    /// [`entry`](Self::entry) for a scan; see [`Passed`].
    fn entry_passing(&self, i: usize, passed: &mut Passed) -> Result<Version<'_>> {
        let e = self.decode_passing(self.offset_passing(i, passed)? as u64, passed)?;
        Ok(Version {
            key: e.key,
            ts: e.ts,
            kind: e.kind,
            value: e.value,
        })
    }

    /// Index of the first entry whose key is `>= key`; `len()` if none.
    pub fn lower_bound(&self, key: &[u8]) -> Result<usize> {
        self.partition_point(|k| k < key)
    }

    /// Index of the first entry whose key is `> key`; `len()` if none.
    fn upper_bound(&self, key: &[u8]) -> Result<usize> {
        self.partition_point(|k| k <= key)
    }

    /// The first entry index for whose key `before` is false (it must be
    /// true for a prefix of the entries and false for the rest).
    fn partition_point(&self, before: impl Fn(&[u8]) -> bool) -> Result<usize> {
        let (mut lo, mut hi) = (0, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if before(self.entry(mid)?.key) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// The keys visible at `snapshot` within the bounds, in order from
    /// either end: `(key, Some(value))` for a put, `(key, None)` for a
    /// tombstone. Each end finds its start when it is first asked for an
    /// item: a bound that is a key of the segment through the hash index,
    /// else by binary search.
    pub fn visible(
        &self,
        snapshot: u64,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
    ) -> SegmentIter<'_> {
        SegmentIter {
            seg: self,
            snapshot,
            lower,
            upper,
            front: None,
            ahead: None,
            back: None,
            hash: None,
            done: false,
            passed: Passed::default(),
        }
    }

    /// The first entry at or after the lower bound, decoded, if any.
    /// `hash`: the bound's hash, if known.
    fn front_start(
        &self,
        lower: &Bound<Vec<u8>>,
        hash: Option<u64>,
    ) -> Result<Option<RawEntry<'_>>> {
        let find = |k: &[u8]| match hash {
            Some(h) => self.find_newest_hashed(k, h),
            None => self.find_newest(k),
        };
        let at = |off: usize| {
            (off < self.data_end)
                .then(|| self.decode_at(off as u64))
                .transpose()
        };
        match lower {
            Bound::Unbounded => at(self.offset_of(0)?),
            Bound::Included(k) => match find(k)? {
                Some(e) => Ok(Some(e)),
                None => at(self.offset_of(self.lower_bound(k)?)?),
            },
            Bound::Excluded(k) => match find(k)? {
                Some(mut e) => loop {
                    match at(e.next)? {
                        Some(n) if n.key == k.as_slice() => e = n,
                        other => return Ok(other),
                    }
                },
                None => at(self.offset_of(self.upper_bound(k)?)?),
            },
        }
    }

    /// Index one past the last entry at or before the upper bound.
    fn back_start(&self, upper: &Bound<Vec<u8>>) -> Result<usize> {
        match upper {
            Bound::Unbounded => Ok(self.entries),
            Bound::Included(k) => self.upper_bound(k),
            Bound::Excluded(k) => self.lower_bound(k),
        }
    }

    /// Decode the entry at `offset`, verifying the checksums of the blocks
    /// it lies in unless this process has already verified them. This is
    /// the one place entry data is checked (the offset table and the index
    /// are checked where they are read: `offset_of`, `probe_start` and
    /// `probe_next`).
    #[inline]
    fn decode_at(&self, offset: u64) -> Result<RawEntry<'_>> {
        self.decode_passing(offset, &mut Passed::default())
    }

    /// [`decode_at`](Self::decode_at) for a scan, which does not check
    /// again the blocks it has just `passed`.
    #[inline]
    fn decode_passing(&self, offset: u64, passed: &mut Passed) -> Result<RawEntry<'_>> {
        let span = entry_span(&self.map, self.data_end, offset, &self.path)?;
        // An entry is at least a header long, so `end > offset`.
        for b in span.offset / BLOCK..=(span.end - 1) / BLOCK {
            self.verify_passing(b, passed)?;
        }
        decode_entry(&self.map, span, &self.path)
    }

    /// Verify the block holding file offset `at` (below `blocks_off`),
    /// unless this process has already.
    #[inline]
    fn verify_covering(&self, at: usize) -> Result<()> {
        debug_assert!(at < self.blocks_off);
        self.verify_passing(at / BLOCK, &mut Passed::default())
    }

    /// Verify block `b` unless this process has already, or the scan
    /// that `passed` it just did.
    #[inline]
    fn verify_passing(&self, b: usize, passed: &mut Passed) -> Result<()> {
        if !self.is_verified(b) && !passed.holds(b) && crate::faults::read_verification() {
            self.verify_block(b)?;
            passed.add(b);
        }
        Ok(())
    }

    #[inline]
    fn is_verified(&self, b: usize) -> bool {
        self.verified[b / 64].load(Ordering::Relaxed) & (1 << (b % 64)) != 0
    }

    /// Check block `b`'s bytes against its checksum and remember that it
    /// passed. Readers racing on one block may both compute it; either
    /// sets the bit (the bytes, being immutable, give both the same
    /// answer), so relaxed atomics suffice.
    #[cold]
    fn verify_block(&self, b: usize) -> Result<()> {
        let (start, end) = block_range(b, self.blocks_off);
        let stored = le_u32(&self.map, self.blocks_off + 4 * b);
        if crc32c::crc32c(&self.map[start..end]) != stored {
            return Err(Error::corrupted(
                &self.path,
                start as u64,
                "segment block checksum mismatch",
            ));
        }
        if self.verify == Verify::Once {
            self.verified[b / 64].fetch_or(1 << (b % 64), Ordering::Relaxed);
        }
        Ok(())
    }
}

/// The blocks a scan checked last. With `Verify::EveryRead` nothing is
/// remembered per process, and a scan, which reads neighbouring entries,
/// would check a block again for each of its entries; with this it checks
/// a block once as it passes over it. Two, for a backward scan, which
/// reads the offset table and the data in turn. Block numbers plus one;
/// 0 is none.
#[derive(Default)]
pub(crate) struct Passed([usize; 2]);

impl Passed {
    #[inline]
    fn holds(&self, b: usize) -> bool {
        self.0[0] == b + 1 || self.0[1] == b + 1
    }

    fn add(&mut self, b: usize) {
        self.0 = [b + 1, self.0[0]];
    }
}

/// Cache lines of an entry asked for ahead of a scan's first step.
const PREFETCH_LINES: usize = 4;

/// Iterator over the keys of a segment visible at a snapshot; see
/// [`Segment::visible`]. The front walks the data section by offset; the
/// back walks the offset table by index. Entries from `front` (an offset)
/// to `back` (an index) are still to be yielded, always whole keys, so the
/// two ends never cross.
pub(crate) struct SegmentIter<'a> {
    seg: &'a Segment,
    snapshot: u64,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    /// Offset of the next entry from the front, once positioned.
    front: Option<usize>,
    /// That entry, decoded (a step decodes the entry after a key's last
    /// version to see where the key ends).
    ahead: Option<RawEntry<'a>>,
    back: Option<usize>,
    /// The lower bound's hash, once computed for a prefetch.
    hash: Option<u64>,
    done: bool,
    passed: Passed,
}

/// A key and its visible value, `None` for a tombstone.
type Visible<'a> = (&'a [u8], Option<&'a [u8]>);
type Item<'a> = Result<Visible<'a>>;

impl<'a> SegmentIter<'a> {
    /// Ask for what the first forward step reads: the lower bound's hash
    /// slot (`slots`), else the entry it names. A hint only, for a merge
    /// that starts several sources at once.
    pub fn prefetch_front(&mut self, slots: bool) {
        if self.front.is_some() {
            return;
        }
        if let Bound::Included(k) | Bound::Excluded(k) = &self.lower {
            let hash = *self.hash.get_or_insert_with(|| hash_key(k, self.seg.seed));
            if slots {
                self.seg.prefetch_slot(hash);
            } else {
                self.seg.prefetch_named(hash);
            }
        }
    }

    fn item(v: &Version<'a>) -> (&'a [u8], Option<&'a [u8]>) {
        match v.kind {
            Kind::Put => (v.key, Some(v.value)),
            Kind::Delete => (v.key, None),
        }
    }

    /// Where the front stops: the back's position, once it has one.
    fn front_limit(&self) -> Result<usize> {
        self.back
            .map_or(Ok(self.seg.data_end), |b| self.seg.offset_of(b))
    }

    fn step_front(&mut self) -> Result<Option<Visible<'a>>> {
        let seg = self.seg;
        let mut next = match self.front {
            Some(_) => self.ahead.take(),
            None => seg.front_start(&self.lower, self.hash)?,
        };
        let limit = self.front_limit()?;
        loop {
            let Some(first) = next else {
                self.front = Some(seg.data_end);
                return Ok(None);
            };
            let first_at = first.next - entry_size(first.key.len(), first.value.len());
            if first_at >= limit || !below_upper(first.key, &self.upper) {
                self.front = Some(seg.data_end);
                return Ok(None);
            }
            let mut found = (first.ts <= self.snapshot).then_some(first);
            next = None;
            let mut off = first.next;
            while off < seg.data_end {
                let v = seg.decode_passing(off as u64, &mut self.passed)?;
                if v.key != first.key {
                    next = Some(v);
                    break;
                }
                if found.is_none() && v.ts <= self.snapshot {
                    found = Some(v);
                }
                off = v.next;
            }
            if let Some(v) = found {
                self.front = Some(off);
                self.ahead = next;
                let v = Version {
                    key: v.key,
                    ts: v.ts,
                    kind: v.kind,
                    value: v.value,
                };
                return Ok(Some(Self::item(&v)));
            }
        }
    }

    fn step_back(&mut self) -> Result<Option<Visible<'a>>> {
        let seg = self.seg;
        let mut i = match self.back {
            Some(i) => i,
            None => seg.back_start(&self.upper)?,
        };
        // The front has consumed everything before its offset.
        let floor = self.front.unwrap_or(0);
        loop {
            if i == 0 || seg.offset_passing(i - 1, &mut self.passed)? < floor {
                self.back = Some(i);
                return Ok(None);
            }
            let last = seg.entry_passing(i - 1, &mut self.passed)?;
            if !above_lower(last.key, &self.lower) {
                self.back = Some(0);
                return Ok(None);
            }
            // Walking back the timestamps rise: the last one seen that is
            // still within the snapshot is the newest visible.
            let mut found = (last.ts <= self.snapshot).then_some(last);
            i -= 1;
            while i > 0 && seg.offset_passing(i - 1, &mut self.passed)? >= floor {
                let v = seg.entry_passing(i - 1, &mut self.passed)?;
                if v.key != last.key {
                    break;
                }
                if v.ts <= self.snapshot {
                    found = Some(v);
                }
                i -= 1;
            }
            if let Some(v) = found {
                self.back = Some(i);
                return Ok(Some(Self::item(&v)));
            }
        }
    }

    fn finish(&mut self, r: Result<Option<Visible<'a>>>) -> Option<Item<'a>> {
        match r {
            Ok(Some(kv)) => Some(Ok(kv)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<'a> Iterator for SegmentIter<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.step_front();
        self.finish(r)
    }
}

impl DoubleEndedIterator for SegmentIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.step_back();
        self.finish(r)
    }
}
