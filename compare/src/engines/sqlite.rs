//! SQLite in WAL mode, through `rusqlite` (bundled SQLite), in two
//! configurations: `synchronous=FULL` and `synchronous=NORMAL`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{Access, Engine, Reader, CACHE_BYTES};
use crate::Result;

pub const SETTINGS_FULL: &str = "rusqlite 0.43 (bundled SQLite 3.54): `journal_mode=WAL`, \
    `synchronous=FULL`: `COMMIT` returns after the WAL is synced (fsync: the bundled build has \
    no HAVE_FDATASYNC); table `kv(key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID`; \
    `cache_size` 1 GiB per connection (each connection has its own page cache), no mmap \
    (the default), `busy_timeout` 5 s, default automatic checkpoints; writes in \
    `BEGIN IMMEDIATE` transactions through one connection; each reading thread or process \
    on a connection of its own (kept and reused), in a `BEGIN` (deferred) read transaction. \
    Compaction: `VACUUM`, then `wal_checkpoint(TRUNCATE)`.";

pub const SETTINGS_NORMAL: &str = "as sqlite-full but `synchronous=NORMAL`: `COMMIT` does \
    not sync; the WAL is synced at checkpoints only. A commit survives a crash of the \
    process but NOT a power loss or kernel crash: not durable in the sense the other \
    columns are.";

const FILE: &str = "data.sqlite";

pub struct Sqlite {
    path: PathBuf,
    full: bool,
    writer: Option<Mutex<Connection>>,
    /// Idle reading connections, reused by later readers.
    idle: Mutex<Vec<Connection>>,
}

fn connect(path: &Path, full: bool) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("SQLite refused WAL mode (journal_mode={mode})").into());
    }
    conn.pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" })?;
    conn.pragma_update(None, "cache_size", -((CACHE_BYTES >> 10) as i64))?;
    Ok(conn)
}

impl Sqlite {
    pub fn open(dir: &Path, access: Access, full: bool) -> Result<Sqlite> {
        let path = dir.join(FILE);
        let writer = match access {
            Access::SharedReader => None,
            Access::Exclusive | Access::SharedWriter => {
                let conn = connect(&path, full)?;
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS kv \
                     (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
                )?;
                Some(Mutex::new(conn))
            }
        };
        Ok(Sqlite {
            path,
            full,
            writer,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn writing<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let writer = self
            .writer
            .as_ref()
            .ok_or("this SQLite handle only reads")?;
        let mut conn = writer.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }
}

impl Engine for Sqlite {
    fn write(&self, pairs: &[(&[u8], &[u8])]) -> Result<()> {
        self.write_timed(pairs).map(drop)
    }

    fn write_timed(&self, pairs: &[(&[u8], &[u8])]) -> Result<Duration> {
        self.writing(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut put = tx.prepare_cached("INSERT OR REPLACE INTO kv VALUES (?1, ?2)")?;
                for (k, v) in pairs {
                    put.execute(params![k, v])?;
                }
            }
            let t = Instant::now();
            tx.commit()?;
            Ok(t.elapsed())
        })
    }

    fn remove(&self, keys: &[&[u8]]) -> Result<()> {
        self.writing(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut delete = tx.prepare_cached("DELETE FROM kv WHERE key = ?1")?;
                for k in keys {
                    delete.execute(params![k])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => connect(&self.path, self.full)?,
        };
        conn.execute_batch("BEGIN")?;
        Ok(Box::new(SqliteReader {
            conn: Some(conn),
            idle: &self.idle,
        }))
    }

    fn compact(&mut self) -> Result<bool> {
        // Idle readers hold no transaction, so VACUUM may run.
        self.writing(|conn| {
            conn.execute_batch("VACUUM")?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(true)
        })
    }
}

struct SqliteReader<'a> {
    conn: Option<Connection>,
    idle: &'a Mutex<Vec<Connection>>,
}

impl SqliteReader<'_> {
    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl Drop for SqliteReader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // A connection whose transaction cannot end is not reused.
            if conn.execute_batch("COMMIT").is_ok() {
                self.idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(conn);
            }
        }
    }
}

impl Reader for SqliteReader<'_> {
    fn get(&mut self, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool> {
        let mut get = self
            .conn()
            .prepare_cached("SELECT value FROM kv WHERE key = ?1")?;
        let found = get
            .query_row(params![key], |row| {
                visit(row.get_ref(0)?.as_blob()?);
                Ok(())
            })
            .optional()?;
        Ok(found.is_some())
    }

    fn scan(
        &mut self,
        start: &[u8],
        limit: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize> {
        let mut scan = self
            .conn()
            .prepare_cached("SELECT key, value FROM kv WHERE key >= ?1 ORDER BY key LIMIT ?2")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = scan.query(params![start, limit])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            visit(row.get_ref(0)?.as_blob()?, row.get_ref(1)?.as_blob()?);
            n += 1;
        }
        Ok(n)
    }
}
