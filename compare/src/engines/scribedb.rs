//! ScribeDB, the database under test.

use std::path::Path;
use std::time::{Duration, Instant};

use scribedb::{Database, Durability, ReadTxn};

use super::{Access, Engine, Reader};
use crate::Result;

pub const SETTINGS: &str = "scribedb (this repository): `Durability::Immediate` (the default): \
    `commit` returns after fdatasync of the write-ahead log, and readers see a commit once it \
    is durable; otherwise default options (a 64 MiB memtable, flushed into segment files in \
    the background; leveled compaction, level 0 into level 1 at 4 files). Every process \
    opens the same directory. Compaction: `Database::compact` (flush, then merge every \
    segment). Sizes include the log's zeroed space ahead of its end (up to 32 MiB), the \
    memtable's arenas (reserved 1 MiB at first, then up to 8 MiB at a time) and files that \
    readers still pin.";

pub struct ScribeDb {
    db: Database,
}

impl ScribeDb {
    pub fn open(dir: &Path, _access: Access) -> Result<ScribeDb> {
        // Every handle may read and write; the writer role is taken per
        // transaction.
        let db = Database::builder()
            .durability(Durability::Immediate)
            .open(dir)?;
        Ok(ScribeDb { db })
    }
}

impl Engine for ScribeDb {
    fn write(&self, pairs: &[(&[u8], &[u8])]) -> Result<()> {
        self.write_timed(pairs).map(drop)
    }

    fn write_timed(&self, pairs: &[(&[u8], &[u8])]) -> Result<Duration> {
        let mut w = self.db.begin_write()?;
        for (k, v) in pairs {
            w.put(k, v)?;
        }
        let t = Instant::now();
        w.commit()?;
        Ok(t.elapsed())
    }

    fn remove(&self, keys: &[&[u8]]) -> Result<()> {
        let mut w = self.db.begin_write()?;
        for k in keys {
            w.delete(k)?;
        }
        w.commit()?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(ScribeReader(self.db.begin_read()?)))
    }

    fn compact(&mut self) -> Result<bool> {
        self.db.compact()?;
        Ok(true)
    }
}

struct ScribeReader(ReadTxn);

impl Reader for ScribeReader {
    fn get(&mut self, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match self.0.get(key)? {
            Some(v) => {
                visit(v);
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
        for kv in self.0.range(start..).take(limit) {
            let (k, v) = kv?;
            visit(k, v);
            n += 1;
        }
        Ok(n)
    }
}
