//! Writing a segment file: entries streamed through a buffer, then the
//! offset table, the hash index, the block checksums of all three, the
//! footer and finally the header.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::format::*;
use super::SegmentMeta;
use crate::entry::Kind;
use crate::error::{Error, IoContext, Result};

/// Write buffer size: large, so that entries reach the file in big writes.
const BUFFER: usize = 1 << 20;

/// Writes one segment file. Versions must be added in (key ascending,
/// timestamp descending) order. Dropping the writer before
/// [`finish`](SegmentWriter::finish) removes the file.
pub(crate) struct SegmentWriter {
    path: PathBuf,
    out: Option<BufWriter<crate::io::Appender>>,
    seed: u64,
    /// Bytes written so far (the offset of the next entry).
    pos: u64,
    /// Offset of every entry, in order.
    offsets: Vec<u64>,
    /// Per key: its hash and the offset of its newest version.
    newest: Vec<(u64, u64)>,
    first_key: Vec<u8>,
    last_key: Vec<u8>,
    last_ts: u64,
    tombstones: u64,
    min_ts: u64,
    max_ts: u64,
    newest_put_bytes: u64,
    /// Checksums of the finished blocks (of data, offset table and index),
    /// and the running checksum of the current one.
    block_crcs: Vec<u32>,
    block_crc: u32,
    /// A write failed: the file is in an unknown state and only dropping
    /// the writer (which removes it) is left.
    failed: bool,
}

impl SegmentWriter {
    /// Create `path` (it must not exist) and start writing.
    pub fn create(path: &Path) -> Result<SegmentWriter> {
        let file = crate::io::open(path, crate::io::Open::CreateNew)?;
        let mut w = SegmentWriter {
            path: path.to_path_buf(),
            out: Some(BufWriter::with_capacity(
                BUFFER,
                crate::io::Appender::new(file, path),
            )),
            seed: RandomState::new().hash_one(0x5E67_5EED_u64),
            pos: 0,
            offsets: Vec::new(),
            newest: Vec::new(),
            first_key: Vec::new(),
            last_key: Vec::new(),
            last_ts: 0,
            tombstones: 0,
            min_ts: u64::MAX,
            max_ts: 0,
            newest_put_bytes: 0,
            block_crcs: Vec::new(),
            block_crc: 0,
            failed: false,
        };
        // The header is written last, once everything it describes is known.
        w.write(&[0u8; HEADER])?;
        Ok(w)
    }

    /// Append one version. Versions come in (key ascending, timestamp
    /// descending) order with no duplicate (key, timestamp); keys are not
    /// empty, and a tombstone has an empty value.
    pub fn add(&mut self, key: &[u8], ts: u64, kind: Kind, value: &[u8]) -> Result<()> {
        self.check_usable()?;
        let new_key = match self.last_key.as_slice().cmp(key) {
            _ if self.offsets.is_empty() => true,
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal if ts < self.last_ts => false,
            _ => return Err(self.invalid("version added out of (key, timestamp) order")),
        };
        if kind == Kind::Delete && !value.is_empty() {
            return Err(self.invalid("a tombstone cannot have a value"));
        }
        if key.is_empty() {
            return Err(self.invalid("empty key"));
        }
        if key.len() > MAX_KEY_LEN || u32::try_from(value.len()).is_err() {
            return Err(self.invalid("key or value too large for a segment"));
        }
        let size = entry_size(key.len(), value.len()) as u64;
        if self.pos + size > MAX_DATA_END {
            return Err(self.invalid("segment data section too large"));
        }

        let offset = self.pos;
        let head = encode_entry_head(key, ts, kind, value);
        self.write_covered(&head)?;
        self.write_covered(key)?;
        self.write_covered(value)?;
        let pad = (size as usize) - (E_KEY + key.len() + value.len());
        self.write_covered(&[0u8; 8][..pad])?;

        if new_key {
            self.newest.push((hash_key(key, self.seed), offset));
            if kind == Kind::Put {
                self.newest_put_bytes += (key.len() + value.len()) as u64;
            }
            if self.offsets.is_empty() {
                self.first_key = key.to_vec();
            }
            self.last_key.clear();
            self.last_key.extend_from_slice(key);
        }
        self.offsets.push(offset);
        self.last_ts = ts;
        if kind == Kind::Delete {
            self.tombstones += 1;
        }
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.pos
    }

    /// Entries added so far.
    pub fn entries(&self) -> u64 {
        self.offsets.len() as u64
    }

    /// Write the offset table, the index, the block checksums, the footer
    /// and the header, sync the file's data, and return its metadata.
    pub fn finish(mut self) -> Result<SegmentMeta> {
        self.check_usable()?;
        let data_end = self.pos;
        let entries = self.entries();
        let keys = self.newest.len() as u64;

        // Offset table: it and the index go through the block checksums
        // like the data, so that readers verify them a block at a time.
        let offsets = std::mem::take(&mut self.offsets);
        for chunk in offsets.chunks(4096) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|o| o.to_le_bytes()).collect();
            self.write_covered(&bytes)?;
        }
        drop(offsets);

        // Hash index: linear probing from each key's home slot.
        let slots = index_slots(keys);
        let mask = slots - 1;
        let mut index = vec![0u64; slots as usize];
        for &(hash, offset) in &self.newest {
            let mut at = hash & mask;
            while index[at as usize] != 0 {
                at = (at + 1) & mask;
            }
            index[at as usize] = make_slot(hash, offset);
        }
        for chunk in index.chunks(4096) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
            self.write_covered(&bytes)?;
        }
        drop(index);

        // Block checksums: the last, partial block too (the index is never
        // empty, so there is at least one block).
        let blocks_off = self.pos;
        if blocks_off % BLOCK as u64 != 0 {
            self.block_crcs.push(self.block_crc);
        }
        let blocks = std::mem::take(&mut self.block_crcs);
        debug_assert_eq!(
            Layout::new(data_end, entries, slots).map(|l| (l.blocks_off, l.blocks)),
            Some((blocks_off, blocks.len() as u64))
        );
        let mut bytes: Vec<u8> = blocks.iter().flat_map(|c| c.to_le_bytes()).collect();
        bytes.resize(block_table_len(blocks.len() as u64) as usize, 0);
        let blocks_crc = crc32c::crc32c(&bytes);
        self.write(&bytes)?;
        drop((blocks, bytes));

        // Footer.
        let (min_ts, max_ts) = if entries == 0 {
            (0, 0)
        } else {
            (self.min_ts, self.max_ts)
        };
        let mut footer = Vec::with_capacity(FOOTER_FIXED + self.first_key.len() * 2);
        footer.extend_from_slice(&blocks_crc.to_le_bytes());
        footer.extend_from_slice(&0u32.to_le_bytes());
        footer.extend_from_slice(&self.tombstones.to_le_bytes());
        footer.extend_from_slice(&min_ts.to_le_bytes());
        footer.extend_from_slice(&max_ts.to_le_bytes());
        footer.extend_from_slice(&self.newest_put_bytes.to_le_bytes());
        footer.extend_from_slice(&(self.first_key.len() as u32).to_le_bytes());
        footer.extend_from_slice(&(self.last_key.len() as u32).to_le_bytes());
        debug_assert_eq!(footer.len(), F_KEYS);
        footer.extend_from_slice(&self.first_key);
        footer.extend_from_slice(&self.last_key);
        let crc = crc32c::crc32c(&footer);
        footer.extend_from_slice(&crc.to_le_bytes());
        let footer_len = u32::try_from(footer.len())
            .map_err(|_| self.invalid("first and last keys too large for the footer"))?;
        self.write(&footer)?;

        // Header, then make it all durable.
        let mut header = [0u8; HEADER];
        header[H_MAGIC..H_MAGIC + 8].copy_from_slice(&MAGIC);
        header[H_VERSION..H_VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
        header[H_SEED..H_SEED + 8].copy_from_slice(&self.seed.to_le_bytes());
        header[H_ENTRIES..H_ENTRIES + 8].copy_from_slice(&entries.to_le_bytes());
        header[H_KEYS..H_KEYS + 8].copy_from_slice(&keys.to_le_bytes());
        header[H_DATA_END..H_DATA_END + 8].copy_from_slice(&data_end.to_le_bytes());
        header[H_SLOTS..H_SLOTS + 8].copy_from_slice(&slots.to_le_bytes());
        header[H_FOOTER_LEN..H_FOOTER_LEN + 4].copy_from_slice(&footer_len.to_le_bytes());
        let crc = crc32c::crc32c(&header[..H_CRC]);
        header[H_CRC..H_CRC + 4].copy_from_slice(&crc.to_le_bytes());

        let path = self.path.clone();
        let ctx = || format!("writing segment {}", path.display());
        let out = self.out.take().expect("a usable writer has its output");
        self.failed = true; // until the file is complete and synced
        let file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx(ctx)?
            .into_file();
        crate::io::write_at(&file, &path, &header, 0)?;
        crate::io::sync_data(&file, &path)?;
        self.failed = false;

        Ok(SegmentMeta {
            size: self.pos,
            entries,
            keys,
            tombstones: self.tombstones,
            min_ts,
            max_ts,
            first_key: std::mem::take(&mut self.first_key),
            last_key: std::mem::take(&mut self.last_key),
            newest_put_bytes: self.newest_put_bytes,
        })
    }

    /// Write bytes the blocks cover (data, offset table, index), adding
    /// them to the block checksums.
    fn write_covered(&mut self, mut bytes: &[u8]) -> Result<()> {
        let start = self.pos;
        self.write(bytes)?;
        let mut pos = start as usize;
        while !bytes.is_empty() {
            let room = BLOCK - pos % BLOCK;
            let n = room.min(bytes.len());
            self.block_crc = crc32c::crc32c_append(self.block_crc, &bytes[..n]);
            (pos, bytes) = (pos + n, &bytes[n..]);
            if n == room {
                self.block_crcs.push(self.block_crc);
                self.block_crc = 0;
            }
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let out = self.out.as_mut().expect("a usable writer has its output");
        if let Err(e) = out.write_all(bytes) {
            self.failed = true;
            return Err(Error::io(
                format!("writing segment {}", self.path.display()),
                e,
            ));
        }
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed || self.out.is_none() {
            return Err(self.invalid("an earlier write to this segment failed"));
        }
        Ok(())
    }

    fn invalid(&self, what: &str) -> Error {
        Error::io(
            format!("writing segment {}", self.path.display()),
            io::Error::new(io::ErrorKind::InvalidInput, what),
        )
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        // A finished writer has taken `out` and cleared `failed`.
        if self.out.is_some() || self.failed {
            drop(self.out.take());
            crate::io::remove_quietly(&self.path);
        }
    }
}
