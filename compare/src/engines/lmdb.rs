//! LMDB, through the `heed` crate.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use heed::types::Bytes;
use heed::{CommitOrAbort, CompactionOption, Database, Env, EnvOpenOptions, RoTxn, WithTls};

use super::{Access, Engine, Reader};
use crate::Result;

pub const SETTINGS: &str =
    "heed 0.23 (LMDB 0.9.70, mdb.master branch): default environment flags, so \
    no MDB_NOSYNC / MDB_NOMETASYNC / MDB_WRITEMAP / MDB_MAPASYNC: a commit writes its pages \
    and returns after fdatasync of the data file; the unnamed database; map size 64 GiB \
    (address space only). Every process opens the same environment. Compaction: \
    mdb_env_copy2 with MDB_CP_COMPACT to a new file, which then replaces the data file.";

const MAP_SIZE: usize = 64 << 30;
const DATA_FILE: &str = "data.mdb";
const COPY_DIR: &str = "compacted";

type Table = Database<'static, Bytes, Bytes>;

pub struct Lmdb {
    dir: PathBuf,
    env: Env<WithTls>,
    db: Table,
}

fn open_env(dir: &Path) -> Result<(Env<WithTls>, Table)> {
    let mut options = EnvOpenOptions::new();
    options.map_size(MAP_SIZE).max_readers(1024);
    // SAFETY: the environment's files are used by this program only, each
    // process opens it once, and nothing truncates or rewrites them while it
    // is open (compaction closes it first).
    let env = unsafe { options.open(dir)? };
    let rtxn = env.read_txn()?;
    let db = env
        .open_databases_and_commit(rtxn, |dbo, rtxn| {
            let db = dbo
                .open_database::<Bytes, Bytes>(rtxn, None)?
                .ok_or(heed::Error::Mdb(heed::MdbError::NotFound))?;
            heed::Result::Ok(CommitOrAbort::<_, ()>::Commit(db))
        })?
        .unwrap_commit();
    Ok((env, db))
}

impl Lmdb {
    pub fn open(dir: &Path, _access: Access) -> Result<Lmdb> {
        let (env, db) = open_env(dir)?;
        Ok(Lmdb {
            dir: dir.to_path_buf(),
            env,
            db,
        })
    }
}

impl Engine for Lmdb {
    fn write(&self, pairs: &[(&[u8], &[u8])]) -> Result<()> {
        self.write_timed(pairs).map(drop)
    }

    fn write_timed(&self, pairs: &[(&[u8], &[u8])]) -> Result<Duration> {
        let mut w = self.env.write_txn()?;
        for (k, v) in pairs {
            self.db.put(&mut w, k, v)?;
        }
        let t = Instant::now();
        w.commit()?;
        Ok(t.elapsed())
    }

    fn remove(&self, keys: &[&[u8]]) -> Result<()> {
        let mut w = self.env.write_txn()?;
        for k in keys {
            self.db.delete(&mut w, k)?;
        }
        w.commit()?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(LmdbReader {
            txn: self.env.read_txn()?,
            db: self.db,
        }))
    }

    fn compact(&mut self) -> Result<bool> {
        let copy_dir = self.dir.join(COPY_DIR);
        std::fs::create_dir_all(&copy_dir)?;
        let copy = copy_dir.join(DATA_FILE);
        self.env.copy_to_path(&copy, CompactionOption::Enabled)?;
        // Close the environment (an environment on the copy stands in while
        // there is none), move the compacted file in place and reopen.
        let (stand_in, _) = open_env(&copy_dir)?;
        std::mem::replace(&mut self.env, stand_in)
            .prepare_for_closing()
            .wait();
        std::fs::rename(&copy, self.dir.join(DATA_FILE))?;
        let (env, db) = open_env(&self.dir)?;
        std::mem::replace(&mut self.env, env)
            .prepare_for_closing()
            .wait();
        self.db = db;
        std::fs::remove_dir_all(&copy_dir)?;
        Ok(true)
    }
}

struct LmdbReader<'a> {
    txn: RoTxn<'a, WithTls>,
    db: Table,
}

impl Reader for LmdbReader<'_> {
    fn get(&mut self, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match self.db.get(&self.txn, key)? {
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
        let range = (Bound::Included(start), Bound::Unbounded);
        let mut n = 0;
        for kv in self.db.range(&self.txn, &range)?.take(limit) {
            let (k, v) = kv?;
            visit(k, v);
            n += 1;
        }
        Ok(n)
    }
}
