//! RocksDB, through the `rocksdb` crate (built only with the `rocksdb`
//! cargo feature: it compiles RocksDB's C++ sources).

use std::path::Path;

use rocksdb::{BlockBasedOptions, Cache, Options, Snapshot, WriteBatch, WriteOptions, DB};

use super::{Access, Engine, Reader, CACHE_BYTES};
use crate::Result;

pub const SETTINGS: &str = "rocksdb 0.25 (RocksDB 11.8): each transaction is one `WriteBatch` \
    written with `WriteOptions::set_sync(true)`, so the write returns after the WAL is synced \
    (fdatasync; `use_fsync` false, the default); block cache 1 GiB LRU; otherwise default \
    options (no compression library compiled in, so no compression). Reads from a snapshot. \
    Single process here. Compaction: `compact_range` over all keys.";

pub struct RocksDb {
    db: DB,
}

impl RocksDb {
    pub fn open(dir: &Path, access: Access) -> Result<RocksDb> {
        if access != Access::Exclusive {
            return Err("RocksDB is used by one process at a time here".into());
        }
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&Cache::new_lru_cache(CACHE_BYTES));
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_block_based_table_factory(&table);
        Ok(RocksDb {
            db: DB::open(&options, dir)?,
        })
    }

    fn commit(&self, batch: WriteBatch) -> Result<()> {
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db.write_opt(batch, &sync)?;
        Ok(())
    }
}

impl Engine for RocksDb {
    fn write(&self, pairs: &[(&[u8], &[u8])]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (k, v) in pairs {
            batch.put(k, v);
        }
        self.commit(batch)
    }

    fn remove(&self, keys: &[&[u8]]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for k in keys {
            batch.delete(k);
        }
        self.commit(batch)
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(RocksReader(self.db.snapshot())))
    }

    fn compact(&mut self) -> Result<bool> {
        self.db.compact_range::<&[u8], &[u8]>(None, None);
        Ok(true)
    }
}

struct RocksReader<'a>(Snapshot<'a>);

impl Reader for RocksReader<'_> {
    fn get(&mut self, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match self.0.get_pinned(key)? {
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
        let mut it = self.0.raw_iterator();
        it.seek(start);
        let mut n = 0;
        while n < limit {
            match (it.key(), it.value()) {
                (Some(k), Some(v)) => visit(k, v),
                _ => break,
            }
            n += 1;
            it.next();
        }
        it.status()?;
        Ok(n)
    }
}
