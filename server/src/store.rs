//! The server's storage on its embedded SQLite: documents as a snapshot plus appended change chunks,
//! the change feed (one monotonic sequence per village), the requests already applied, and the
//! report projections. Loaded documents live in a cache bounded by count, so memory does not grow
//! with the number of stored documents.

use std::num::NonZeroUsize;
use std::path::Path;

pub use at_rest::DbKey;
use automerge::{Automerge, ChangeHash};
use lru::LruCache;
use songpei_core::doc::DocKind;
use songpei_core::ids::DocId;

use crate::args;
use crate::db::{Db, DbError, Sealed, Sql, Transact};
mod at_rest;
mod readers;
pub(crate) use readers::Readers;
pub mod erasure;
pub(crate) mod feed;
pub(crate) mod projection;
pub(crate) mod settlement;

pub(crate) use feed::encode_heads;
use feed::{append_feed, touch};
use projection::Projection;

/// `kind, district, village, snapshot, ops, chunk_count, next_seq` of a stored document.
type DocRow = (String, String, String, Option<Vec<u8>>, i64, i64, i64);

/// A loaded document and what the server keeps beside it.
#[derive(Debug)]
pub(crate) struct LoadedDoc {
    pub(crate) doc: Automerge,
    pub(crate) kind: DocKind,
    pub(crate) district: String,
    pub(crate) village: String,
    pub(crate) ops: u64,
    pub(crate) chunk_count: u64,
    /// The stored version this copy holds (`docs.next_seq`: one more for every commit; 0 for a
    /// document not stored yet).
    pub(crate) version: u64,
}

/// One document's part of a commit.
#[derive(Debug)]
pub(crate) struct DocCommit {
    /// Hashes of the changes pushed, for the audit log.
    pub(crate) hashes: Vec<ChangeHash>,
    pub(crate) id: DocId,
    pub(crate) kind: DocKind,
    pub(crate) district: String,
    pub(crate) village: String,
    /// Changes new to the server.
    pub(crate) chunk: Vec<u8>,
    pub(crate) heads: Vec<ChangeHash>,
    pub(crate) ops: u64,
    pub(crate) projection: Projection,
    /// The stored version the merge started from: the commit fails as [`DbError::Stale`] if
    /// another server committed the document meanwhile.
    pub(crate) version: u64,
}

/// A request already applied: its body hash and encoded acknowledgements.
pub(crate) type AppliedRequest = ([u8; 32], Vec<u8>);

/// A request to remember, so a retry is answered the same way.
#[derive(Debug)]
pub(crate) struct RequestRecord {
    pub(crate) device: String,
    pub(crate) request_id: [u8; 16],
    pub(crate) body_hash: [u8; 32],
    pub(crate) acks: Vec<u8>,
}

/// The server store.
pub struct ServerStore {
    db: Db,
    cache: LruCache<DocId, LoadedDoc>,
    /// The allowance rates and caps the subsidy decisions are made by.
    policy: songpei_core::rules::PolicyTable,
    signin: crate::config::SigninRules,
    sampler: crate::callbacks::Sampler,
    /// The SQLite database's folder and key, for readers beside this writer (none on PostgreSQL).
    sqlite_at: Option<(std::path::PathBuf, DbKey)>,
}

impl std::fmt::Debug for ServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStore")
            .field("cached", &self.cache.len())
            .finish()
    }
}

/// Where the server keeps its data: the data folder (keys, and the SQLite database) and, when it
/// runs on PostgreSQL, the database's URL.
#[derive(Clone, Debug, Default)]
pub struct StoreLocation {
    /// The data folder.
    pub data: std::path::PathBuf,
    /// `postgres://…`, when the database is PostgreSQL.
    pub database_url: Option<String>,
}

impl StoreLocation {
    /// Where a resolved configuration keeps the data.
    pub fn of(config: &crate::Config) -> Self {
        Self {
            data: config.data.clone(),
            database_url: config.database_url.clone(),
        }
    }

    /// Opens the store there.
    pub fn open(&self, cache_docs: usize) -> Result<ServerStore, String> {
        match &self.database_url {
            Some(url) => ServerStore::open_postgres(url, cache_docs, &self.data),
            None => {
                let key = DbKey::resolve(&self.data)?;
                ServerStore::open(&self.data, cache_docs, &key)
                    .map_err(|e| format!("cannot open the database: {e}"))
            }
        }
    }
}

impl ServerStore {
    /// Opens (or creates) the store in `dir`, encrypted under `key` (a plain database is
    /// encrypted in place), keeping at most `cache_docs` documents loaded. The folder and its
    /// files are made private to the server's user.
    pub fn open(dir: &Path, cache_docs: usize, key: &DbKey) -> Result<Self, DbError> {
        let io = |what: &str, e: std::io::Error| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("{what}: {e}")),
            )
        };
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create the data folder", e))?;
        at_rest::privatise(dir).map_err(|e| io("cannot make the data folder private", e))?;
        let mut conn = at_rest::open(dir, key)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;
             PRAGMA secure_delete = ON;
             PRAGMA cache_size = -32768;",
        )?;
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        crate::db::refuse_newer_schema(found, crate::db::SQLITE_MIGRATIONS)?;
        songpei_core::store::apply_migrations(&mut conn, crate::db::SQLITE_MIGRATIONS, i64::MAX)?;
        Ok(Self {
            sqlite_at: Some((dir.to_path_buf(), key.clone())),
            ..Self::with(Db::Sqlite(conn), cache_docs)
        })
    }

    /// Opens the store in a PostgreSQL database (`postgres://user@host:port/db`), bringing its
    /// schema up to date and sealing its personal data under the database key found for the data
    /// folder `data` (made there for a database never sealed; ADR 0009).
    pub fn open_postgres(url: &str, cache_docs: usize, data: &Path) -> Result<Self, String> {
        let fail = |e: DbError| format!("cannot open the PostgreSQL database: {e}");
        let mut client = crate::db::connect_postgres(url).map_err(fail)?;
        crate::db::migrate_postgres(&mut client).map_err(fail)?;
        let unkeyed = crate::db::Pg::new(client);
        let sealed = crate::db::key_check(&unkeyed, None)
            .map_err(fail)?
            .is_some();
        let key = DbKey::resolve_for(data, sealed, "the PostgreSQL database")?;
        Self::open_postgres_with(url, cache_docs, unkeyed.into_inner(), &key)
    }

    /// Opens the store on a connected, migrated PostgreSQL `client`, sealing under `key`.
    pub fn open_postgres_with(
        url: &str,
        cache_docs: usize,
        client: ::postgres::Client,
        key: &DbKey,
    ) -> Result<Self, String> {
        let mut pg = crate::db::Pg::sealed(client, key.sealer());
        let n = crate::db::seal_in_place(&mut pg)
            .map_err(|e| format!("cannot open the PostgreSQL database: {e}"))?;
        if n > 0 {
            tracing::info!(values = n, "sealed the database's personal data in place");
        }
        Ok(Self::with(
            Db::Postgres(Box::new(pg), url.to_owned()),
            cache_docs,
        ))
    }

    fn with(db: Db, cache_docs: usize) -> Self {
        Self {
            db,
            cache: LruCache::new(NonZeroUsize::new(cache_docs.max(1)).unwrap_or(NonZeroUsize::MIN)),
            policy: songpei_core::rules::PolicyTable::default(),
            signin: crate::config::SigninRules::default(),
            sampler: crate::callbacks::Sampler::default(),
            sqlite_at: None,
        }
    }

    /// `n` connections reading the SQLite database beside this writer; none on PostgreSQL.
    pub(crate) fn readers(&self, n: usize) -> Result<Option<Readers>, DbError> {
        self.sqlite_at
            .as_ref()
            .map(|(dir, key)| Readers::open(dir, key, n))
            .transpose()
    }

    /// Sets the policy table that subsidy decisions are made by from now on.
    pub fn set_policy(&mut self, policy: songpei_core::rules::PolicyTable) {
        self.policy = policy;
    }

    /// Sets how trainee-days are drawn for a call-back from now on.
    pub fn set_sampler(&mut self, sampler: crate::callbacks::Sampler) {
        self.sampler = sampler;
    }

    /// Draws, at the sampler's rate, the payable trainee-days never drawn at it (all of them after
    /// an upgrade; those below a raised rate), once per rate. Returns how many went on the call
    /// list.
    pub fn draw_callbacks(&mut self, now_ms: i64) -> Result<usize, DbError> {
        let sampler = &self.sampler;
        let rate = sampler.per_million().to_string();
        self.db.transaction(|tx| -> Result<usize, DbError> {
            let stored: Option<String> = tx.query_opt(
                "SELECT value FROM server_settings WHERE key = 'callbacks_drawn_per_million'",
                &[],
                |r| r.get(0),
            )?;
            if stored.as_deref() == Some(rate.as_str()) {
                return Ok(0);
            }
            let n = crate::callbacks::draw_unlisted(tx, sampler, now_ms)?;
            tx.execute(
                "INSERT INTO server_settings (key, value)
                 VALUES ('callbacks_drawn_per_million', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                args![&rate],
            )?;
            Ok(n)
        })
    }

    /// Sets how sign-ins are taken from now on.
    pub fn set_signin(&mut self, signin: crate::config::SigninRules) {
        self.signin = signin;
    }

    /// Serves by `policy` from now on. When its version is not the one the stored decisions were
    /// made by (a rate or cap changed in the configuration), every person's places are decided
    /// again and every class gets a feed entry, so each phone receives the district's new
    /// figures at its next sync; all in one transaction.
    pub fn apply_policy(
        &mut self,
        policy: songpei_core::rules::PolicyTable,
    ) -> Result<(), DbError> {
        let version = policy.version().to_string();
        self.policy = policy;
        let policy = &self.policy;
        self.db.transaction(|tx| -> Result<(), DbError> {
            let stored: Option<String> = tx.query_opt(
                "SELECT value FROM server_settings WHERE key = 'policy_version'",
                &[],
                |r| r.get(0),
            )?;
            if stored.as_deref() == Some(version.as_str()) {
                return Ok(());
            }
            let mut people: std::collections::BTreeSet<Vec<u8>> = std::collections::BTreeSet::new();
            people.extend(
                tx.query_map("SELECT DISTINCT person FROM p_subsidies", &[], |r| r.get(0))?,
            );
            people.extend(tx.query_map(
                "SELECT DISTINCT blind_index FROM p_trainees",
                &[],
                |r| r.get(0),
            )?);
            let mut touched = std::collections::BTreeSet::new();
            for person in people {
                projection::decide_person(tx, &person, policy, &mut touched)?;
            }
            let classes: Vec<String> =
                tx.query_map("SELECT id FROM p_classes", &[], |r| r.get(0))?;
            touch(tx, &classes.into_iter().collect())?;
            tx.execute(
                "INSERT INTO server_settings (key, value) VALUES ('policy_version', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                args![&version],
            )?;
            Ok(())
        })
    }

    /// The policy table served.
    pub fn policy(&self) -> &songpei_core::rules::PolicyTable {
        &self.policy
    }

    /// The database connection, for the account and audit tables.
    pub fn conn(&self) -> &dyn Sql {
        &self.db
    }

    /// Encrypts the database again under `new` (key rotation): SQLite's every page by SQLCipher,
    /// PostgreSQL's sealed columns value by value, old row versions removed. Every server on the
    /// database must be stopped first. How many values were sealed again (0 on SQLite).
    pub fn rekey(&mut self, new: &DbKey) -> Result<u64, DbError> {
        self.cache.clear();
        match &mut self.db {
            Db::Sqlite(conn) => {
                conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
                DbKey::rekey(conn, new)?;
                Ok(0)
            }
            Db::Postgres(pg, _) => crate::db::reseal(pg, new.sealer()),
        }
    }

    /// The database connection, for transactions over the account tables.
    pub fn conn_mut(&mut self) -> &mut Db {
        &mut self.db
    }

    /// The document, loaded into the cache if stored.
    pub(crate) fn doc(&mut self, id: DocId) -> Result<Option<&mut LoadedDoc>, DbError> {
        // Other servers on the same PostgreSQL database may have committed the document since it
        // was cached: a copy of an older version is loaded again.
        if self.db.backend() == crate::db::Backend::Postgres
            && let Some(cached) = self.cache.peek(&id).map(|l| l.version)
            && cached > 0
        {
            let stored: Option<i64> = self.conn().query_opt(
                "SELECT next_seq FROM docs WHERE id = ?1",
                args![id.to_string()],
                |r| r.get(0),
            )?;
            if stored != Some(cached as i64) {
                self.cache.pop(&id);
            }
        }
        if !self.cache.contains(&id) {
            let Some(loaded) = self.load(id)? else {
                return Ok(None);
            };
            self.cache.put(id, loaded);
        }
        Ok(self.cache.get_mut(&id))
    }

    fn load(&self, id: DocId) -> Result<Option<LoadedDoc>, DbError> {
        let row: Option<DocRow> = self.conn().query_opt(
            "SELECT kind, district, village, snapshot, ops, chunk_count, next_seq FROM docs
             WHERE id = ?1 AND erased_at IS NULL",
            args![id.to_string()],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )?;
        let Some((kind, district, village, snapshot, ops, chunk_count, next_seq)) = row else {
            return Ok(None);
        };
        let snapshot: Option<Vec<u8>> = snapshot
            .map(|s| self.conn().open(Sealed::Snapshot, s))
            .transpose()?;
        let corrupt = || DbError::Corrupt("a stored document does not load");
        let chunks = self.conn().query_map(
            "SELECT data FROM chunks WHERE doc_id = ?1 ORDER BY seq",
            args![id.to_string()],
            |r| self.conn().open(Sealed::Chunk, r.get(0)?),
        )?;
        let doc = songpei_core::contain::contained(|| {
            let mut doc = match snapshot {
                Some(s) => Automerge::load(&s)?,
                None => Automerge::new(),
            };
            for c in chunks {
                doc.load_incremental(&c)?;
            }
            Ok::<_, automerge::AutomergeError>(doc)
        })
        .ok()
        .and_then(Result::ok)
        .ok_or_else(corrupt)?;
        Ok(Some(LoadedDoc {
            doc,
            kind: kind.parse().map_err(|()| corrupt())?,
            district,
            village,
            ops: u64::try_from(ops).unwrap_or(0),
            chunk_count: u64::try_from(chunk_count).unwrap_or(0),
            version: u64::try_from(next_seq).unwrap_or(0),
        }))
    }

    /// The cached document, without checking it against the database: for a document [`Self::doc`]
    /// loaded or checked earlier in the same request.
    pub(crate) fn cached(&mut self, id: DocId) -> Option<&mut LoadedDoc> {
        self.cache.get_mut(&id)
    }

    /// The cached document, without loading or reordering.
    pub(crate) fn cache_peek(&self, id: DocId) -> Option<&LoadedDoc> {
        self.cache.peek(&id)
    }

    /// Puts a new document into the cache (it is stored by the next commit).
    pub(crate) fn insert_new(&mut self, id: DocId, loaded: LoadedDoc) {
        self.cache.put(id, loaded);
    }

    /// Drops a document from the cache (after a refused or failed merge).
    pub(crate) fn evict(&mut self, id: DocId) {
        self.cache.pop(&id);
    }

    /// The request already applied under this id: its body hash and encoded acknowledgements.
    pub(crate) fn request(
        &self,
        device: &str,
        request_id: &[u8; 16],
    ) -> Result<Option<AppliedRequest>, DbError> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self.conn().query_opt(
            "SELECT body_hash, acks FROM requests WHERE device = ?1 AND request_id = ?2",
            args![device, &request_id[..]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(row.map(|(h, a)| {
            let mut hash = [0u8; 32];
            if h.len() == 32 {
                hash.copy_from_slice(&h);
            }
            (hash, a)
        }))
    }

    /// Whether the document was erased (see [`Self::erase`]).
    pub(crate) fn is_erased(&self, id: DocId) -> Result<bool, DbError> {
        Ok(self
            .conn()
            .query_opt(
                "SELECT 1 FROM docs WHERE id = ?1 AND erased_at IS NOT NULL",
                args![id.to_string()],
                |r| r.get::<i64>(0),
            )?
            .is_some())
    }

    /// Erases documents: their content, chunks and conflicts go, and a trainee's projected row
    /// keeps nothing that identifies the person. The document's row stays (emptied, with the time)
    /// so that pushes of it are refused and phones learn of it from a new feed entry. What the
    /// subsidy accounting needs stays under the random id: the household's poverty status (the
    /// allowance of days already recorded) and the blind index (the yearly cap on subsidised
    /// places, which counts a person across villages). The audit entries go in the same
    /// transaction. On SQLite the freed pages are zeroed and the WAL emptied after, so the data
    /// does not linger in the files.
    pub(crate) fn erase(
        &mut self,
        ids: &[DocId],
        audit: &[crate::accounts::audit::Entry],
        now_ms: i64,
    ) -> Result<(), DbError> {
        let empty = encode_heads(&[]);
        self.db.transaction(|tx| -> Result<(), DbError> {
            for id in ids {
                let id = id.to_string();
                let village: String = tx.query_row(
                    // The version moves on, so another server's cached copy is found stale.
                    "UPDATE docs SET snapshot = NULL, heads = ?2, ops = 0, chunk_count = 0,
                     next_seq = next_seq + 1, erased_at = ?3
                     WHERE id = ?1 RETURNING village",
                    args![&id, &empty, now_ms],
                    |r| r.get(0),
                )?;
                for sql in [
                    "DELETE FROM chunks WHERE doc_id = ?1",
                    "DELETE FROM p_conflicts WHERE doc_id = ?1",
                    "UPDATE p_trainees SET name_masked = '（已删除）', id_masked = '（已删除）',
                     phone_masked = NULL, phone_index = NULL, sex = NULL, birth_year = NULL,
                     key_groups = '[]' WHERE id = ?1",
                    // What a clerk noted on a call may name the person.
                    "UPDATE callbacks SET note = NULL WHERE trainee_id = ?1",
                    "UPDATE callback_attempts SET note = '' WHERE callback_id IN
                     (SELECT id FROM callbacks WHERE trainee_id = ?1)",
                ] {
                    tx.execute(sql, args![&id])?;
                }
                // No one can call a person erased: their open calls close as `erased`.
                tx.execute(
                    "UPDATE callbacks SET outcome = 'erased', decided_by = 'erasure',
                     decided_ms = ?2 WHERE trainee_id = ?1 AND outcome IS NULL",
                    args![&id, now_ms],
                )?;
                append_feed(tx, &village, &id, &empty)?;
            }
            crate::accounts::audit::append(tx, now_ms, audit)
        })?;
        for id in ids {
            self.evict(*id);
        }
        if let Db::Sqlite(conn) = &self.db {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(DbError::from)?;
        }
        Ok(())
    }

    /// Writes every merged document, its feed entry and projection, and the request record (none
    /// for the server's own changes), in one transaction. Nothing is acknowledged before this
    /// returns.
    pub(crate) fn commit(
        &mut self,
        docs: &[DocCommit],
        request: Option<&RequestRecord>,
        audit: &[crate::accounts::audit::Entry],
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.commit_with(docs, request, audit, now_ms, &|_| Ok(()))
    }

    /// [`Self::commit`], running `pre` first in the same transaction: rows the projections read
    /// (a class's hold after a call-back denial).
    pub(crate) fn commit_with(
        &mut self,
        docs: &[DocCommit],
        request: Option<&RequestRecord>,
        audit: &[crate::accounts::audit::Entry],
        now_ms: i64,
        pre: &dyn Fn(&dyn Sql) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        let rules = projection::Rules {
            policy: &self.policy,
            signin: &self.signin,
            sampler: &self.sampler,
        };
        self.db.transaction(|tx| -> Result<(), DbError> {
            pre(tx)?;
            // Classes whose pay changed without their document changing.
            let mut touched = std::collections::BTreeSet::new();
            for d in docs {
                let id = d.id.to_string();
                let heads = encode_heads(&d.heads);
                tx.execute(
                    "INSERT INTO docs (id, kind, district, village, heads, ops)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) DO UPDATE SET heads = excluded.heads, ops = excluded.ops",
                    args![&id, d.kind.code(), &d.district, &d.village, &heads, d.ops],
                )?;
                // The row stays locked to the commit: two servers merging one document take turns,
                // and the second finds the version moved and writes nothing.
                let seq: i64 = tx.query_row(
                    "UPDATE docs SET next_seq = next_seq + 1, chunk_count = chunk_count + 1
                     WHERE id = ?1 RETURNING next_seq - 1",
                    args![&id],
                    |r| r.get(0),
                )?;
                if seq != d.version as i64 {
                    return Err(DbError::Stale(id));
                }
                tx.execute(
                    "INSERT INTO chunks (doc_id, seq, data) VALUES (?1, ?2, ?3)",
                    args![&id, seq, tx.seal(Sealed::Chunk, &d.chunk)],
                )?;
                append_feed(tx, &d.village, &id, &heads)?;
                projection::write(tx, &d.projection, now_ms, &rules, &mut touched)?;
            }
            for d in docs {
                touched.remove(&d.id.to_string());
            }
            touch(tx, &touched)?;
            if let Some(request) = request {
                tx.execute(
                    "INSERT INTO requests (device, request_id, body_hash, acks, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    args![
                        &request.device,
                        &request.request_id[..],
                        &request.body_hash[..],
                        &request.acks,
                        now_ms
                    ],
                )?;
            }
            crate::accounts::audit::append(tx, now_ms, audit)
        })?;
        for d in docs {
            if let Some(l) = self.cache.get_mut(&d.id) {
                l.chunk_count += 1;
                l.ops = d.ops;
                l.version = d.version + 1;
            }
        }
        Ok(())
    }

    /// Compacts up to `limit` documents with at least `min_chunks` chunks: each one's full save
    /// replaces its snapshot and chunks in one transaction. Returns how many were compacted.
    pub fn compact(&mut self, min_chunks: u64, limit: usize) -> Result<usize, DbError> {
        let ids: Vec<String> = self.conn().query_map(
            "SELECT id FROM docs WHERE chunk_count >= ?1 ORDER BY chunk_count DESC LIMIT ?2",
            args![min_chunks, limit],
            |r| r.get(0),
        )?;
        let mut n = 0;
        for id in ids {
            let Ok(doc_id) = id.parse::<DocId>() else {
                continue;
            };
            let Some(loaded) = self.doc(doc_id)? else {
                continue;
            };
            let snapshot = loaded.doc.save();
            let version = loaded.version;
            // Only if no other server committed the document since it was loaded: the snapshot
            // holds exactly the chunks below `version`.
            let done = self.db.transaction(|tx| -> Result<bool, DbError> {
                let n = tx.execute(
                    "UPDATE docs SET snapshot = ?2, chunk_count = 0 WHERE id = ?1 AND next_seq = ?3",
                    args![&id, tx.seal(Sealed::Snapshot, &snapshot), version],
                )?;
                if n == 1 {
                    tx.execute(
                        "DELETE FROM chunks WHERE doc_id = ?1 AND seq < ?2",
                        args![&id, version],
                    )?;
                }
                Ok(n == 1)
            })?;
            if !done {
                self.cache.pop(&doc_id);
                continue;
            }
            if let Some(l) = self.cache.get_mut(&doc_id) {
                l.chunk_count = 0;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Forgets applied requests older than `max_age_ms`: a phone retries within minutes, and the
    /// merge is idempotent anyway, so old records only take room.
    pub fn prune_requests(&mut self, now_ms: i64, max_age_ms: i64) -> Result<u64, DbError> {
        self.db.execute(
            "DELETE FROM requests WHERE created_at < ?1",
            args![now_ms.saturating_sub(max_age_ms)],
        )
    }

    /// Number of stored documents.
    pub fn document_count(&self) -> Result<u64, DbError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM docs", &[], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Number of documents held in memory.
    pub fn cached_documents(&self) -> usize {
        self.cache.len()
    }
}
