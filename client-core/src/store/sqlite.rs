//! The phone's encrypted store: SQLite with SQLCipher (AES-256, raw 32-byte key from the app, which
//! keeps it in Android Keystore or iOS Keychain). WAL with `synchronous=FULL`, so a write that returned
//! survives a crash or power cut; temp data in memory, so nothing leaves the encrypted file.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::{
    Acked, ClassFilter, ClassRow, DocStore, DocWrite, HouseholdRow, IndexRow, StoredDoc, SyncMark,
    TraineeRow,
};
use crate::doc::{Conflict, DocKind};
use crate::error::{Error, Result};
use crate::ids::{ClassId, DocId, HouseholdId, TraineeId, VillageCode};

/// Numbered migrations; `user_version` is the number of the last one applied.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/001_documents.sql")),
    (2, include_str!("migrations/002_sync_marks.sql")),
];

/// The schema version this build brings a store to.
pub const SCHEMA_VERSION: i64 = 2;

/// The encrypted SQLite store.
#[derive(Debug)]
pub struct SqliteDocStore {
    conn: Connection,
}

impl SqliteDocStore {
    /// Opens (or creates) the store at `path` with `key`. A wrong key is reported as
    /// [`Error::WrongKey`] before anything is written, so the file is never damaged.
    pub fn open(path: &Path, key: &[u8; 32]) -> Result<Self> {
        Self::open_at_version(path, key, SCHEMA_VERSION)
    }

    /// Opens the store and migrates it no further than `version` (for migration tests).
    #[doc(hidden)]
    pub fn open_at_version(path: &Path, key: &[u8; 32], version: i64) -> Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(key)))?;
        // Reading the schema is the first access to page 1: a wrong key fails here, before any
        // pragma below could write to the file.
        let probe: rusqlite::Result<i64> =
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0));
        match probe {
            Ok(_) => {}
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
                return Err(Error::WrongKey);
            }
            Err(e) => return Err(e.into()),
        }
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA temp_store = MEMORY;
             PRAGMA busy_timeout = 5000;",
        )?;
        let mut store = Self { conn };
        store.migrate(version)?;
        Ok(store)
    }

    fn migrate(&mut self, target: i64) -> Result<()> {
        let current: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let latest = MIGRATIONS.last().map_or(0, |m| m.0);
        if current > latest {
            return Err(Error::NewerSchema {
                found: current,
                supported: latest,
            });
        }
        apply_migrations(&mut self.conn, MIGRATIONS, target)?;
        Ok(())
    }

    /// The schema version of the open store.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Runs SQLite's integrity check and SQLCipher's page authentication check.
    pub fn integrity_check(&self) -> Result<bool> {
        let ok: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        let mut stmt = self.conn.prepare("PRAGMA cipher_integrity_check")?;
        let cipher_errors = stmt.query_map([], |r| r.get::<_, String>(0))?.count();
        Ok(ok == "ok" && cipher_errors == 0)
    }

    /// Caps the file at its current size plus `extra_pages` (`None` lifts the cap), so
    /// tests can make the store run out of room the way a full phone does.
    #[doc(hidden)]
    pub fn limit_growth(&self, extra_pages: Option<u32>) -> Result<()> {
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let max = extra_pages.map_or(i64::from(u32::MAX - 1), |e| pages + i64::from(e));
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {max}"), [], |_| Ok(()))?;
        Ok(())
    }

    /// Rewrites the file without free pages (after compaction).
    pub fn vacuum(&self) -> Result<()> {
        self.conn
            .execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }

    /// The schema as `(type, name, sql)` rows, for comparing migrated and fresh stores.
    #[doc(hidden)]
    pub fn schema_dump(&self) -> Result<Vec<(String, String, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}

/// Applies the numbered migrations above the database's `user_version`, up to `target`. Each
/// migration and its version bump commit together: an interrupted migration leaves the database at
/// the previous version, readable. Shared by the phone's store and the server's.
pub fn apply_migrations(
    conn: &mut Connection,
    migrations: &[(i64, &str)],
    target: i64,
) -> rusqlite::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (version, sql) in migrations {
        if *version <= current || *version > target {
            continue;
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}

fn text<T: std::fmt::Display>(v: T) -> String {
    v.to_string()
}

fn parse<T: std::str::FromStr>(col: usize, s: String) -> rusqlite::Result<T> {
    s.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            col,
            rusqlite::types::Type::Text,
            "stored value does not parse".into(),
        )
    })
}

fn village(col: usize, s: String) -> rusqlite::Result<VillageCode> {
    VillageCode::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            col,
            rusqlite::types::Type::Text,
            "stored village code does not parse".into(),
        )
    })
}

const CLASS_COLUMNS: &str = "id, village, title, status, occupation, level, training_type, \
                             subsidised, first_day, last_day";

fn class_row(conn: &Connection, r: &rusqlite::Row<'_>) -> rusqlite::Result<ClassRow> {
    let id: ClassId = parse(0, r.get(0)?)?;
    let mut stmt = conn.prepare_cached(
        "SELECT trainee_id FROM enrolments WHERE class_id = ?1 ORDER BY trainee_id",
    )?;
    let enrolled = stmt
        .query_map([id.to_string()], |r| parse(0, r.get(0)?))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ClassRow {
        id,
        village: village(1, r.get(1)?)?,
        title: r.get(2)?,
        status: parse(3, r.get(3)?)?,
        occupation: r.get(4)?,
        level: parse(5, r.get(5)?)?,
        training_type: parse(6, r.get(6)?)?,
        subsidised: r.get(7)?,
        first_day: parse(8, r.get(8)?)?,
        last_day: parse(9, r.get(9)?)?,
        enrolled,
    })
}

fn encode_heads(heads: &[automerge::ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn decode_heads(bytes: &[u8]) -> Result<Vec<automerge::ChangeHash>> {
    bytes
        .chunks(32)
        .map(|c| {
            automerge::ChangeHash::try_from(c).map_err(|_| Error::Schema {
                doc: DocId::from(ClassId::from(uuid::Uuid::nil())),
                path: "sync_marks.acked_heads".into(),
            })
        })
        .collect()
}

/// Appends chunks and replaces index rows of documents inside an open transaction.
fn write_docs(tx: &rusqlite::Transaction<'_>, writes: &[DocWrite]) -> Result<()> {
    for w in writes {
        let id = w.id.to_string();
        tx.execute(
            "INSERT INTO docs (id, kind, village) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
            params![id, w.index.kind().code(), w.index.village().as_str()],
        )?;
        if let Some(chunk) = &w.chunk {
            let seq: i64 = tx.query_row(
                "UPDATE docs SET next_seq = next_seq + 1 WHERE id = ?1 RETURNING next_seq - 1",
                [&id],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO chunks (doc_id, seq, data) VALUES (?1, ?2, ?3)",
                params![id, seq, chunk],
            )?;
        }
        match &w.index {
            IndexRow::Class(c) => {
                tx.execute(
                    "INSERT OR REPLACE INTO classes (id, village, title, status, occupation, \
                     level, training_type, subsidised, first_day, last_day) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        id,
                        c.village.as_str(),
                        c.title,
                        c.status.code(),
                        c.occupation,
                        c.level.code(),
                        c.training_type.code(),
                        c.subsidised,
                        text(c.first_day),
                        text(c.last_day)
                    ],
                )?;
                tx.execute("DELETE FROM enrolments WHERE class_id = ?1", [&id])?;
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO enrolments (class_id, trainee_id) VALUES (?1, ?2)",
                )?;
                for t in &c.enrolled {
                    stmt.execute(params![id, t.to_string()])?;
                }
            }
            IndexRow::Trainee(t) => {
                tx.execute(
                    "INSERT OR REPLACE INTO trainees (id, village, blind_index, name_masked, household) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        id,
                        t.village.as_str(),
                        t.blind_index,
                        t.name_masked,
                        t.household.map(text)
                    ],
                )?;
            }
            IndexRow::Household(h) => {
                tx.execute(
                    "INSERT OR REPLACE INTO households (id, village, poverty_status) VALUES (?1, ?2, ?3)",
                    params![id, h.village.as_str(), h.poverty_status.code()],
                )?;
            }
        }
        tx.execute("DELETE FROM conflicts WHERE doc_id = ?1", [&id])?;
        for c in &w.conflicts {
            tx.execute(
                "INSERT INTO conflicts (doc_id, path, kind, winner, vals) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    id,
                    c.path,
                    c.kind.code(),
                    c.winner,
                    serde_json::to_string(&c.values).unwrap_or_default()
                ],
            )?;
        }
        tx.execute(
            "INSERT INTO sync_marks (doc_id, dirty) VALUES (?1, ?2)
             ON CONFLICT (doc_id) DO UPDATE SET dirty = max(dirty, excluded.dirty)",
            params![id, w.local],
        )?;
    }
    Ok(())
}

/// Records acknowledged heads inside an open transaction (see [`DocStore::set_acked_heads`]).
fn set_meta_value(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

fn set_acked(
    conn: &Connection,
    id: DocId,
    acked: &[automerge::ChangeHash],
    current: &[automerge::ChangeHash],
) -> Result<()> {
    let mut a = acked.to_vec();
    let mut c = current.to_vec();
    a.sort();
    c.sort();
    conn.execute(
        "INSERT INTO sync_marks (doc_id, acked_heads, dirty) VALUES (?1, ?2, ?3)
         ON CONFLICT (doc_id) DO UPDATE SET acked_heads = excluded.acked_heads, dirty = excluded.dirty",
        params![id.to_string(), encode_heads(&a), a != c],
    )?;
    Ok(())
}

impl DocStore for SqliteDocStore {
    fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn set_meta(&mut self, entries: &[(&str, &str)]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (k, v) in entries {
            set_meta_value(&tx, k, v)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn load(&self, id: DocId) -> Result<Option<StoredDoc>> {
        let snapshot: Option<Option<Vec<u8>>> = self
            .conn
            .query_row(
                "SELECT snapshot FROM docs WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(snapshot) = snapshot else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM chunks WHERE doc_id = ?1 ORDER BY seq")?;
        let chunks = stmt
            .query_map([id.to_string()], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Some(StoredDoc { snapshot, chunks }))
    }

    fn write(&mut self, writes: &[DocWrite]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        write_docs(&tx, writes)?;
        tx.commit()?;
        Ok(())
    }

    fn apply_sync(
        &mut self,
        writes: &[DocWrite],
        acks: &[Acked],
        meta: &[(String, String)],
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        write_docs(&tx, writes)?;
        for a in acks {
            set_acked(&tx, a.id, &a.acked, &a.current)?;
        }
        for (k, v) in meta {
            set_meta_value(&tx, k, v)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn compact(&mut self, id: DocId, snapshot: &[u8], chunks_replaced: usize) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = id.to_string();
        tx.execute(
            "UPDATE docs SET snapshot = ?2 WHERE id = ?1",
            params![id, snapshot],
        )?;
        tx.execute(
            "DELETE FROM chunks WHERE doc_id = ?1 AND seq IN \
             (SELECT seq FROM chunks WHERE doc_id = ?1 ORDER BY seq LIMIT ?2)",
            params![id, chunks_replaced as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn documents(&self) -> Result<Vec<(DocId, DocKind)>> {
        let mut stmt = self.conn.prepare("SELECT id, kind FROM docs ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| Ok((parse(0, r.get(0)?)?, parse(1, r.get(1)?)?)))?
            .collect::<rusqlite::Result<Vec<(DocId, String)>>>()?;
        rows.into_iter()
            .map(|(id, kind)| {
                let kind = kind.parse().map_err(|()| Error::Schema {
                    doc: id,
                    path: "kind".into(),
                })?;
                Ok((id, kind))
            })
            .collect()
    }

    fn classes(&self, filter: &ClassFilter) -> Result<Vec<ClassRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CLASS_COLUMNS} FROM classes WHERE (?1 IS NULL OR village = ?1) \
             ORDER BY first_day DESC, id"
        ))?;
        let rows = stmt
            .query_map([filter.village.as_ref().map(|v| v.as_str())], |r| {
                class_row(&self.conn, r)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .filter(|c| filter.statuses.is_empty() || filter.statuses.contains(&c.status))
            .collect())
    }

    fn class_row(&self, id: ClassId) -> Result<Option<ClassRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {CLASS_COLUMNS} FROM classes WHERE id = ?1"),
                [id.to_string()],
                |r| class_row(&self.conn, r),
            )
            .optional()?)
    }

    fn trainee_rows(&self, ids: &[TraineeId]) -> Result<Vec<TraineeRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, village, blind_index, name_masked, household FROM trainees WHERE id = ?1",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = stmt
                .query_row([id.to_string()], |r| {
                    Ok(TraineeRow {
                        id: parse(0, r.get(0)?)?,
                        village: village(1, r.get(1)?)?,
                        blind_index: r.get(2)?,
                        name_masked: r.get(3)?,
                        household: r
                            .get::<_, Option<String>>(4)?
                            .map(|h| parse(4, h))
                            .transpose()?,
                    })
                })
                .optional()?;
            out.extend(row);
        }
        Ok(out)
    }

    fn trainee_by_blind_index(&self, blind_index: &[u8]) -> Result<Option<TraineeId>> {
        let id: Option<String> = self
            .conn
            .query_row(
                "SELECT id FROM trainees WHERE blind_index = ?1 ORDER BY id LIMIT 1",
                [blind_index],
                |r| r.get(0),
            )
            .optional()?;
        Ok(id.map(|s| parse(0, s)).transpose()?)
    }

    fn household_row(&self, id: HouseholdId) -> Result<Option<HouseholdRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, village, poverty_status FROM households WHERE id = ?1",
                [id.to_string()],
                |r| {
                    Ok(HouseholdRow {
                        id: parse(0, r.get(0)?)?,
                        village: village(1, r.get(1)?)?,
                        poverty_status: parse(2, r.get(2)?)?,
                    })
                },
            )
            .optional()?)
    }

    fn classes_of_trainee(&self, trainee: TraineeId) -> Result<Vec<ClassRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CLASS_COLUMNS} FROM classes WHERE id IN \
             (SELECT class_id FROM enrolments WHERE trainee_id = ?1) ORDER BY first_day, id"
        ))?;
        let rows = stmt
            .query_map([trainee.to_string()], |r| class_row(&self.conn, r))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    fn conflicts(&self) -> Result<Vec<Conflict>> {
        let mut stmt = self.conn.prepare(
            "SELECT doc_id, path, kind, winner, vals FROM conflicts ORDER BY doc_id, path",
        )?;
        let rows = stmt
            .query_map([], |r| {
                let kind: String = r.get(2)?;
                let vals: String = r.get(4)?;
                Ok((
                    parse::<DocId>(0, r.get(0)?)?,
                    r.get::<_, String>(1)?,
                    kind,
                    r.get::<_, String>(3)?,
                    vals,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(doc, path, kind, winner, vals)| {
                let bad = || Error::Schema {
                    doc,
                    path: path.clone(),
                };
                Ok(Conflict {
                    doc,
                    kind: kind.parse().map_err(|()| bad())?,
                    winner,
                    values: serde_json::from_str(&vals).map_err(|_| bad())?,
                    path: path.clone(),
                })
            })
            .collect()
    }

    fn sync_mark(&self, id: DocId) -> Result<SyncMark> {
        let row: Option<(Vec<u8>, bool)> = self
            .conn
            .query_row(
                "SELECT acked_heads, dirty FROM sync_marks WHERE doc_id = ?1",
                [id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            None => Ok(SyncMark::default()),
            Some((heads, dirty)) => Ok(SyncMark {
                acked_heads: decode_heads(&heads)?,
                dirty,
            }),
        }
    }

    fn set_acked_heads(
        &mut self,
        id: DocId,
        acked: &[automerge::ChangeHash],
        current: &[automerge::ChangeHash],
    ) -> Result<()> {
        set_acked(&self.conn, id, acked, current)
    }

    fn dirty_documents(&self) -> Result<Vec<DocId>> {
        let mut stmt = self
            .conn
            .prepare("SELECT doc_id FROM sync_marks WHERE dirty = 1 ORDER BY doc_id")?;
        let rows = stmt
            .query_map([], |r| parse(0, r.get(0)?))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    fn erase_documents(&mut self, ids: &[DocId]) -> Result<()> {
        self.conn.pragma_update(None, "secure_delete", "ON")?;
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            delete_documents(&tx, ids)?;
            tx.commit()?;
            Ok::<_, Error>(())
        })();
        self.conn.pragma_update(None, "secure_delete", "OFF")?;
        result?;
        if !ids.is_empty() {
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    fn drop_villages(
        &mut self,
        villages: &[VillageCode],
        meta: &[(String, String)],
    ) -> Result<Vec<DocId>> {
        // Deleted rows are overwritten with zeros, and the WAL is emptied after, so the personal
        // data of villages left behind does not linger in free pages.
        self.conn.pragma_update(None, "secure_delete", "ON")?;
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut ids: Vec<DocId> = Vec::new();
            {
                let mut stmt = tx.prepare(
                    "SELECT d.id FROM docs d LEFT JOIN sync_marks m ON m.doc_id = d.id \
                     WHERE d.village = ?1 AND coalesce(m.dirty, 0) = 0 ORDER BY d.id",
                )?;
                for v in villages {
                    let rows = stmt
                        .query_map([v.as_str()], |r| parse(0, r.get(0)?))?
                        .collect::<rusqlite::Result<Vec<DocId>>>()?;
                    ids.extend(rows);
                }
            }
            delete_documents(&tx, &ids)?;
            for (k, v) in meta {
                set_meta_value(&tx, k, v)?;
            }
            tx.commit()?;
            Ok::<_, Error>(ids)
        })();
        self.conn.pragma_update(None, "secure_delete", "OFF")?;
        let ids = result?;
        if !ids.is_empty() {
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(ids)
    }
}

/// Deletes documents with their index rows, conflicts, chunks and sync marks.
fn delete_documents(tx: &rusqlite::Transaction<'_>, ids: &[DocId]) -> Result<()> {
    for id in ids {
        let id = id.to_string();
        for sql in [
            "DELETE FROM conflicts WHERE doc_id = ?1",
            "DELETE FROM enrolments WHERE class_id = ?1",
            "DELETE FROM classes WHERE id = ?1",
            "DELETE FROM trainees WHERE id = ?1",
            "DELETE FROM households WHERE id = ?1",
            "DELETE FROM chunks WHERE doc_id = ?1",
            "DELETE FROM sync_marks WHERE doc_id = ?1",
            "DELETE FROM docs WHERE id = ?1",
        ] {
            tx.execute(sql, [&id])?;
        }
    }
    Ok(())
}
