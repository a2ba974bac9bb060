//! Connections that read the server's SQLite beside its one writer: the database is in WAL mode,
//! so a reader sees the last committed state and never waits for a merge, and a merge never waits
//! for a reader. The office's pages read through them; everything that writes more than one
//! statement goes through the store, whose connection is the only writer.
//!
//! A reader may still run a single-statement write (a dashboard session seen again, or ended):
//! SQLite takes the write lock for that statement alone, waiting (`busy_timeout`) for a merge in
//! progress.
//!
//! The pool is a few connections behind a mutex and a condition variable, written here because
//! the pooling crates for rusqlite pin other rusqlite releases than the SQLCipher build this
//! workspace links.

use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use rusqlite::{Connection, OpenFlags};

use super::at_rest::{DB_FILE, DbKey};
use crate::db::{DbError, Sql};

/// Readers of the server's SQLite.
pub(crate) struct Readers {
    idle: Mutex<Vec<Connection>>,
    freed: Condvar,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Readers(…)")
    }
}

impl Readers {
    /// `n` readers of the database in `dir` (opened, migrated and keyed by the store first).
    pub(crate) fn open(dir: &Path, key: &DbKey, n: usize) -> Result<Self, DbError> {
        let conns = (0..n.max(1))
            .map(|_| {
                let conn = Connection::open_with_flags(
                    dir.join(DB_FILE),
                    OpenFlags::SQLITE_OPEN_READ_WRITE,
                )?;
                key.apply(&conn)?;
                conn.execute_batch(
                    "PRAGMA foreign_keys = ON;
                     PRAGMA busy_timeout = 5000;
                     PRAGMA cache_size = -16384;",
                )?;
                Ok(conn)
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok(Self {
            idle: Mutex::new(conns),
            freed: Condvar::new(),
        })
    }

    /// Runs `f` on a reader, waiting for one to be free (`songpei_reader_wait_seconds`).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&dyn Sql) -> T) -> Result<T, DbError> {
        let started = Instant::now();
        let conn = {
            let mut idle = self
                .idle
                .lock()
                .map_err(|_| DbError::Corrupt("a reader panicked"))?;
            loop {
                if let Some(c) = idle.pop() {
                    break c;
                }
                idle = self
                    .freed
                    .wait(idle)
                    .map_err(|_| DbError::Corrupt("a reader panicked"))?;
            }
        };
        metrics::histogram!("songpei_reader_wait_seconds").record(started.elapsed().as_secs_f64());
        // Given back even if `f` panics, so the pool never shrinks.
        struct Back<'a>(&'a Readers, Option<Connection>);
        impl Drop for Back<'_> {
            fn drop(&mut self) {
                if let (Some(c), Ok(mut idle)) = (self.1.take(), self.0.idle.lock()) {
                    // Never back inside a transaction (a closure that failed or panicked in one).
                    if !c.is_autocommit() {
                        let _ = c.execute_batch("ROLLBACK");
                    }
                    idle.push(c);
                    self.0.freed.notify_one();
                }
            }
        }
        let back = Back(self, Some(conn));
        let out = f(back
            .1
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken above")));
        drop(back);
        Ok(out)
    }
}
