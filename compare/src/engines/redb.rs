//! redb.

use std::path::Path;
use std::time::{Duration, Instant};

use redb::{
    ConcurrencyMode, Database, ReadOnlyDatabase, ReadOnlyTable, ReadableDatabase, TableDefinition,
};

use super::{Access, Engine, Reader, CACHE_BYTES};
use crate::Result;

pub const SETTINGS: &str = "redb 4.6: `Durability::Immediate` (the default): `commit` returns \
    after fdatasync; 1-phase commit with checksums and no quick-repair (the defaults); \
    cache 1 GiB (the default); one table of `&[u8]` keys and values. Multi-process: \
    `ConcurrencyMode::SingleWriter`, the writer opened read-write and the readers read-only; \
    these modes always commit in 2 phases. Compaction: `Database::compact`.";

const FILE: &str = "data.redb";
const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

enum Handle {
    ReadWrite(Database),
    ReadOnly(ReadOnlyDatabase),
}

pub struct Redb {
    handle: Handle,
}

impl Redb {
    pub fn open(dir: &Path, access: Access) -> Result<Redb> {
        let path = dir.join(FILE);
        let mut builder = Database::builder();
        builder.set_cache_size(CACHE_BYTES);
        if access != Access::Exclusive {
            builder.set_concurrency_mode(ConcurrencyMode::SingleWriter);
        }
        let handle = match access {
            Access::SharedReader => Handle::ReadOnly(builder.open_read_only(&path)?),
            Access::Exclusive | Access::SharedWriter => {
                let db = builder.create(&path)?;
                // Create the table, so that readers always find it.
                let w = db.begin_write()?;
                w.open_table(TABLE)?;
                w.commit()?;
                Handle::ReadWrite(db)
            }
        };
        Ok(Redb { handle })
    }

    fn db(&self) -> Result<&Database> {
        match &self.handle {
            Handle::ReadWrite(db) => Ok(db),
            Handle::ReadOnly(_) => Err("this redb handle is read-only".into()),
        }
    }
}

impl Engine for Redb {
    fn write(&self, pairs: &[(&[u8], &[u8])]) -> Result<()> {
        self.write_timed(pairs).map(drop)
    }

    fn write_timed(&self, pairs: &[(&[u8], &[u8])]) -> Result<Duration> {
        let w = self.db()?.begin_write()?;
        {
            let mut table = w.open_table(TABLE)?;
            for (k, v) in pairs {
                table.insert(*k, *v)?;
            }
        }
        let t = Instant::now();
        w.commit()?;
        Ok(t.elapsed())
    }

    fn remove(&self, keys: &[&[u8]]) -> Result<()> {
        let w = self.db()?.begin_write()?;
        {
            let mut table = w.open_table(TABLE)?;
            for k in keys {
                table.remove(*k)?;
            }
        }
        w.commit()?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        let txn = match &self.handle {
            Handle::ReadWrite(db) => db.begin_read()?,
            Handle::ReadOnly(db) => db.begin_read()?,
        };
        Ok(Box::new(RedbReader(txn.open_table(TABLE)?)))
    }

    fn compact(&mut self) -> Result<bool> {
        match &mut self.handle {
            Handle::ReadWrite(db) => {
                db.compact()?;
                Ok(true)
            }
            Handle::ReadOnly(_) => Ok(false),
        }
    }
}

struct RedbReader(ReadOnlyTable<&'static [u8], &'static [u8]>);

impl Reader for RedbReader {
    fn get(&mut self, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match self.0.get(key)? {
            Some(v) => {
                visit(v.value());
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
        for kv in self.0.range(start..)?.take(limit) {
            let (k, v) = kv?;
            visit(k.value(), v.value());
            n += 1;
        }
        Ok(n)
    }
}
