//! Columns sealed on PostgreSQL (ADR 0009): PostgreSQL has no page encryption, so what may name a
//! person — the documents' snapshots and change chunks, conflict values, review reasons, call-back
//! notes and audit details — is written as XChaCha20-Poly1305 under a key derived from the
//! server's database key, and opened on reading. On SQLite the whole file is encrypted by
//! SQLCipher, and these columns are written as they are.
//!
//! A sealed value is `MAGIC ‖ nonce (24 random bytes) ‖ ciphertext and tag`, with the column's
//! name as associated data (a value moved to another column does not open); in a text column it
//! is that, base64, after [`TEXT_PREFIX`].

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::postgres::MIGRATION_LOCK;
use super::{DbError, Pg, Sql, Transact, Value};

/// The first bytes of every sealed value (and the version of the format).
const MAGIC: &[u8; 4] = b"spS1";
/// The start of a sealed value in a text column.
pub(super) const TEXT_PREFIX: &str = "spS1:";
const NONCE: usize = 24;

/// A sealed column: its table, the columns that find a row, and the column itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sealed {
    /// `docs.snapshot`: a document's saved state.
    Snapshot,
    /// `chunks.data`: changes appended since the snapshot.
    Chunk,
    /// `server_settings.value` of the key check: a known text sealed under the key, so a server
    /// started with another key stops before reading anything.
    KeyCheck,
    /// `p_conflicts.vals`: a register's concurrent values.
    ConflictValues,
    /// `p_reviews.reason`: the office's reason for a decision.
    ReviewReason,
    /// `callbacks.note`: the clerk's note of the last attempt.
    CallbackNote,
    /// `callback_attempts.note`: the clerk's note of each attempt.
    AttemptNote,
    /// `audit.detail`: what an audited action was about (reasons for unmasking, …).
    AuditDetail,
}

impl Sealed {
    /// Every sealed column.
    pub const ALL: [Sealed; 7] = [
        Sealed::Snapshot,
        Sealed::Chunk,
        Sealed::ConflictValues,
        Sealed::ReviewReason,
        Sealed::CallbackNote,
        Sealed::AttemptNote,
        Sealed::AuditDetail,
    ];

    /// `table.column`, the associated data of its values.
    pub fn name(self) -> &'static str {
        match self {
            Sealed::Snapshot => "docs.snapshot",
            Sealed::KeyCheck => "server_settings.value",
            Sealed::Chunk => "chunks.data",
            Sealed::ConflictValues => "p_conflicts.vals",
            Sealed::ReviewReason => "p_reviews.reason",
            Sealed::CallbackNote => "callbacks.note",
            Sealed::AttemptNote => "callback_attempts.note",
            Sealed::AuditDetail => "audit.detail",
        }
    }

    /// The table.
    pub fn table(self) -> &'static str {
        self.name().split_once('.').map_or("", |(t, _)| t)
    }

    /// The column.
    pub fn column(self) -> &'static str {
        self.name().split_once('.').map_or("", |(_, c)| c)
    }

    /// The columns of the table's primary key.
    pub fn key(self) -> &'static [&'static str] {
        match self {
            Sealed::Snapshot | Sealed::CallbackNote => &["id"],
            Sealed::Chunk => &["doc_id", "seq"],
            Sealed::ConflictValues => &["doc_id", "path"],
            Sealed::ReviewReason => &["doc_id", "subject"],
            Sealed::AttemptNote => &["callback_id", "n"],
            Sealed::AuditDetail => &["seq"],
            Sealed::KeyCheck => &["key"],
        }
    }

    /// Whether the column holds text (else bytes).
    pub fn is_text(self) -> bool {
        !matches!(self, Sealed::Snapshot | Sealed::Chunk)
    }
}

/// Seals and opens values under one key.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(…)")
    }
}

impl Sealer {
    /// The sealer of a database key: the cipher's key is HKDF-SHA256 of it, so the same key never
    /// serves two purposes.
    pub fn new(db_key: &[u8; 32]) -> Self {
        let mut key = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(None, db_key)
            .expand(b"songpei sealed columns v1", &mut key)
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// `plain` sealed for `column`.
    pub fn seal(&self, column: Sealed, plain: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: column.name().as_bytes(),
                },
            )
            .unwrap_or_else(|_| unreachable!("encryption of a slice in memory does not fail"));
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// `plain` sealed for a text `column`.
    pub fn seal_text(&self, column: Sealed, plain: &str) -> String {
        let sealed = self.seal(column, plain.as_bytes());
        format!(
            "{TEXT_PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&sealed[MAGIC.len()..])
        )
    }

    /// The value `sealed` for `column` held; [`DbError::Corrupt`] when it is not sealed, or not
    /// under this key, or was altered or moved from another column.
    pub fn open(&self, column: Sealed, sealed: &[u8]) -> Result<Vec<u8>, DbError> {
        let body = sealed
            .strip_prefix(MAGIC.as_slice())
            .filter(|b| b.len() >= NONCE)
            .ok_or(DbError::Corrupt(
                "a sealed column holds a value that is not sealed",
            ))?;
        let (nonce, ciphertext) = body.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce
            .try_into()
            .map_err(|_| DbError::Corrupt("a sealed column holds a value that is not sealed"))?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: column.name().as_bytes(),
                },
            )
            .map_err(|_| DbError::Corrupt("a sealed value does not open under the database key"))
    }

    /// The text `sealed` for a text `column` held.
    pub fn open_text(&self, column: Sealed, sealed: &str) -> Result<String, DbError> {
        let body = sealed
            .strip_prefix(TEXT_PREFIX)
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(b)
                    .ok()
            })
            .ok_or(DbError::Corrupt(
                "a sealed column holds a value that is not sealed",
            ))?;
        let mut bytes = Vec::with_capacity(MAGIC.len() + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&body);
        String::from_utf8(self.open(column, &bytes)?)
            .map_err(|_| DbError::Corrupt("a sealed text is not UTF-8"))
    }
}

/// The key check's row in `server_settings`.
const KEY_CHECK: &str = "sealed_key_check";
/// What the key check holds, sealed.
const KEY_CHECK_TEXT: &str = "songpei";
/// Rows read at a time while rewriting a column.
const BATCH: i64 = 256;

/// Whether the database's sealed columns are sealed (a key check is stored), and whether `sealer`
/// opens them: `None` for a database never sealed.
pub fn key_check(db: &dyn Sql, sealer: Option<&Sealer>) -> Result<Option<bool>, DbError> {
    let stored: Option<String> = db.query_opt(
        "SELECT value FROM server_settings WHERE key = ?1",
        args![KEY_CHECK],
        |r| r.get(0),
    )?;
    Ok(stored.map(|v| {
        sealer.is_some_and(|s| {
            s.open_text(Sealed::KeyCheck, &v)
                .is_ok_and(|t| t == KEY_CHECK_TEXT)
        })
    }))
}

/// Rewrites every value of the sealed columns as `rewrite` returns it (`None` leaves a value), a
/// batch of rows at a time in primary-key order, then stores `sealer`'s key check; how many
/// values were rewritten. Run inside one transaction: all of it is rewritten, or none.
fn rewrite_all(
    tx: &dyn Sql,
    sealer: &Sealer,
    mut rewrite: impl FnMut(Sealed, &Value) -> Result<Option<Value>, DbError>,
) -> Result<u64, DbError> {
    let mut rewritten = 0;
    // The audit log refuses updates; this rewrite keeps every entry's content (and so its hash).
    tx.batch("ALTER TABLE audit DISABLE TRIGGER audit_no_update")?;
    for column in Sealed::ALL {
        let key = column.key();
        let keys = key.join(", ");
        let first = format!(
            "SELECT {keys}, {c} FROM {t} ORDER BY {keys} LIMIT {BATCH}",
            c = column.column(),
            t = column.table()
        );
        let placeholders: Vec<String> = (1..=key.len()).map(|i| format!("?{i}")).collect();
        let next = format!(
            "SELECT {keys}, {c} FROM {t} WHERE ({keys}) > ({p}) ORDER BY {keys} LIMIT {BATCH}",
            c = column.column(),
            t = column.table(),
            p = placeholders.join(", ")
        );
        let update = format!(
            "UPDATE {t} SET {c} = ?{n} WHERE {w}",
            c = column.column(),
            t = column.table(),
            n = key.len() + 1,
            w = key
                .iter()
                .zip(&placeholders)
                .map(|(k, p)| format!("{k} = {p}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        );
        let mut rows = tx.query(&first, &[])?;
        while let Some(last) = rows.last() {
            let last_key = last.0[..key.len()].to_vec();
            for row in &rows {
                let value = &row.0[key.len()];
                if let Some(new) = rewrite(column, value)? {
                    let mut params = row.0[..key.len()].to_vec();
                    params.push(new);
                    tx.execute(&update, &params)?;
                    rewritten += 1;
                }
            }
            rows = tx.query(&next, &last_key)?;
        }
    }
    tx.batch("ALTER TABLE audit ENABLE TRIGGER audit_no_update")?;
    tx.execute(
        "INSERT INTO server_settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        args![
            KEY_CHECK,
            sealer.seal_text(Sealed::KeyCheck, KEY_CHECK_TEXT)
        ],
    )?;
    // The old row versions are still in the tables' files: vacuumed after the commit, and again
    // at the next start if that is cut short.
    tx.execute(
        "INSERT INTO server_settings (key, value) VALUES (?1, '1')
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        args![VACUUM_PENDING],
    )?;
    Ok(rewritten)
}

/// Set while the sealed columns' tables still hold old row versions to vacuum.
const VACUUM_PENDING: &str = "sealed_vacuum_pending";

/// Vacuums the sealed columns' tables if a rewrite left them to vacuum. A failure is reported and
/// left for the next start: the values are sealed already, only old row versions remain.
fn vacuum_if_pending(client: &mut postgres::Client) {
    let pending = client
        .query_opt(
            "SELECT 1 FROM server_settings WHERE key = $1",
            &[&VACUUM_PENDING],
        )
        .map(|r| r.is_some());
    let done = match pending {
        Ok(false) => return,
        Ok(true) => vacuum_full(client).and_then(|()| {
            client.execute(
                "DELETE FROM server_settings WHERE key = $1",
                &[&VACUUM_PENDING],
            )?;
            Ok(())
        }),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = done {
        tracing::warn!(error = %e, "old row versions of sealed columns are left to vacuum at the next start");
    }
}

/// The tables of the sealed columns, for `VACUUM FULL`: rewritten rows leave their old versions
/// in the table's pages until then.
fn vacuum_full(client: &mut postgres::Client) -> Result<(), DbError> {
    let mut tables: Vec<&str> = Sealed::ALL.iter().map(|c| c.table()).collect();
    tables.dedup();
    // ANALYZE too: the planner's statistics keep sample values of each column.
    client.batch_execute(&format!("VACUUM FULL ANALYZE {}", tables.join(", ")))?;
    // The statistics' old row versions, where the server's role may (PostgreSQL skips it with a
    // warning otherwise). Older WAL segments hold the plain rows until they are recycled; a
    // checkpoint lets them go (it needs the pg_checkpoint role or a superuser: without it, they
    // go at the next one).
    let _ = client.batch_execute("VACUUM FULL pg_catalog.pg_statistic");
    let _ = client.batch_execute("CHECKPOINT");
    Ok(())
}

/// Seals a PostgreSQL database in place under `pg`'s sealer, once: every value of the sealed
/// columns written by an earlier release is rewritten sealed, in one transaction under the
/// migration lock (replicas starting together seal it once), and the old row versions are then
/// removed by `VACUUM FULL`. Refuses a database sealed under another key. How many values were
/// sealed (0 when it already was).
pub fn seal_in_place(pg: &mut Pg<postgres::Client>) -> Result<u64, DbError> {
    let sealer = pg
        .sealer
        .clone()
        .ok_or_else(|| DbError::Config("sealing needs the database key".into()))?;
    let sealed = pg.transaction(|tx| -> Result<u64, DbError> {
        tx.execute("SELECT pg_advisory_xact_lock(?1)", args![MIGRATION_LOCK])?;
        match key_check(tx, Some(&sealer))? {
            Some(true) => Ok(0),
            Some(false) => Err(DbError::Config(
                "the PostgreSQL database is sealed under another key than the server's: give \
                 its key in SONGPEI_DB_KEY_FILE or SONGPEI_DB_KEY"
                    .into(),
            )),
            None => rewrite_all(tx, &sealer, |column, value| {
                Ok(match value {
                    Value::Blob(b) => Some(Value::Blob(sealer.seal(column, b))),
                    Value::Text(t) => Some(Value::Text(sealer.seal_text(column, t))),
                    _ => None,
                })
            }),
        }
    })?;
    vacuum_if_pending(pg.client.get_mut());
    Ok(sealed)
}

/// Seals every sealed value again under `new` (key rotation), in one transaction; the old row
/// versions are then removed. The values must open under `pg`'s sealer, the current key. How many
/// values were rewritten.
pub fn reseal(pg: &mut Pg<postgres::Client>, new: Sealer) -> Result<u64, DbError> {
    let old = pg
        .sealer
        .clone()
        .ok_or_else(|| DbError::Config("rekeying needs the current database key".into()))?;
    let n = pg.transaction(|tx| -> Result<u64, DbError> {
        tx.execute("SELECT pg_advisory_xact_lock(?1)", args![MIGRATION_LOCK])?;
        if key_check(tx, Some(&old))? != Some(true) {
            return Err(DbError::Config(
                "the current key does not open the PostgreSQL database".into(),
            ));
        }
        rewrite_all(tx, &new, |column, value| {
            Ok(match value {
                Value::Blob(b) => Some(Value::Blob(new.seal(column, &old.open(column, b)?))),
                // Erasure blanks a note in place.
                Value::Text(t) if t.is_empty() => None,
                Value::Text(t) => Some(Value::Text(
                    new.seal_text(column, &old.open_text(column, t)?),
                )),
                _ => None,
            })
        })
    })?;
    pg.sealer = Some(std::sync::Arc::new(new));
    vacuum_if_pending(pg.client.get_mut());
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_under_its_key_and_in_its_column() {
        let s = Sealer::new(&[7; 32]);
        let sealed = s.seal(Sealed::Snapshot, "韦春燕".as_bytes());
        assert!(!sealed.windows(9).any(|w| w == "韦春燕".as_bytes()));
        assert_eq!(
            s.open(Sealed::Snapshot, &sealed).expect("open"),
            "韦春燕".as_bytes()
        );
        assert!(s.open(Sealed::Chunk, &sealed).is_err(), "another column");
        assert!(
            Sealer::new(&[8; 32])
                .open(Sealed::Snapshot, &sealed)
                .is_err(),
            "another key"
        );
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(s.open(Sealed::Snapshot, &altered).is_err(), "altered");
        assert!(s.open(Sealed::Snapshot, b"plain").is_err(), "never sealed");
        assert_ne!(
            s.seal(Sealed::Snapshot, b"x"),
            s.seal(Sealed::Snapshot, b"x"),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn a_text_round_trips_and_reads_as_text() {
        let s = Sealer::new(&[7; 32]);
        let sealed = s.seal_text(Sealed::ReviewReason, "核实：韦春燕本人到场");
        assert!(sealed.starts_with(TEXT_PREFIX) && sealed.is_ascii());
        assert_eq!(
            s.open_text(Sealed::ReviewReason, &sealed).expect("open"),
            "核实：韦春燕本人到场"
        );
        assert!(s.open_text(Sealed::ReviewReason, "核实").is_err());
    }
}
