//! fjall, an LSM tree.

use std::path::Path;
use std::time::{Duration, Instant};

use fjall::{
    KeyspaceCreateOptions, PersistMode, Readable, SingleWriterTxDatabase, SingleWriterTxKeyspace,
    Snapshot,
};

use super::{Access, Engine, Reader, CACHE_BYTES};
use crate::Result;

pub const SETTINGS: &str = "fjall 3.1: `SingleWriterTxDatabase`, each write transaction \
    committed with `durability(Some(PersistMode::SyncData))`, so `commit` returns after \
    fdatasync of the journal; block cache 1 GiB (default 32 MiB); one keyspace with default \
    options (LZ4, leveled compaction, background flushes and compactions). Single process \
    only. Compaction: memtable flush, then a major compaction. Sizes include the active \
    journal, which keeps data already flushed to tables until the journal is rotated.";

pub struct Fjall {
    db: SingleWriterTxDatabase,
    keyspace: SingleWriterTxKeyspace,
}

impl Fjall {
    pub fn open(dir: &Path, access: Access) -> Result<Fjall> {
        if access != Access::Exclusive {
            return Err("fjall is used by one process at a time".into());
        }
        let db = SingleWriterTxDatabase::builder(dir)
            .cache_size(CACHE_BYTES as u64)
            .open()?;
        let keyspace = db.keyspace("kv", KeyspaceCreateOptions::default)?;
        Ok(Fjall { db, keyspace })
    }
}

impl Engine for Fjall {
    fn write(&self, pairs: &[(&[u8], &[u8])]) -> Result<()> {
        self.write_timed(pairs).map(drop)
    }

    fn write_timed(&self, pairs: &[(&[u8], &[u8])]) -> Result<Duration> {
        let mut w = self.db.write_tx().durability(Some(PersistMode::SyncData));
        for (k, v) in pairs {
            w.insert(&self.keyspace, *k, *v);
        }
        let t = Instant::now();
        w.commit()?;
        Ok(t.elapsed())
    }

    fn remove(&self, keys: &[&[u8]]) -> Result<()> {
        let mut w = self.db.write_tx().durability(Some(PersistMode::SyncData));
        for k in keys {
            w.remove(&self.keyspace, *k);
        }
        w.commit()?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(FjallReader {
            snapshot: self.db.read_tx(),
            keyspace: &self.keyspace,
        }))
    }

    fn compact(&mut self) -> Result<bool> {
        let keyspace = self.keyspace.inner();
        keyspace.rotate_memtable_and_wait()?;
        keyspace.major_compact()?;
        Ok(true)
    }
}

struct FjallReader<'a> {
    snapshot: Snapshot,
    keyspace: &'a SingleWriterTxKeyspace,
}

impl Reader for FjallReader<'_> {
    fn get(&mut self, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match self.snapshot.get(self.keyspace.inner(), key)? {
            Some(v) => {
                visit(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn scan(
        &mut self,
        start: &[u8],
        limit: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize> {
        let mut n = 0;
        for guard in self
            .snapshot
            .range(self.keyspace.inner(), start..)
            .take(limit)
        {
            let (k, v) = guard.into_inner()?;
            visit(&k, &v);
            n += 1;
        }
        Ok(n)
    }
}
