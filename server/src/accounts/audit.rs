//! The audit log: append-only (triggers refuse updates and deletes) and hash-chained, so an entry
//! altered, removed or reordered by hand is found by [`verify`]. It records writes (device,
//! document, change hashes), admin actions, refusals of revoked or forging devices, and every read
//! of unmasked personal data. Entries name devices, accounts and documents by id, never a person.

use sha2::{Digest, Sha256};

use crate::args;
use crate::db::{DbError, Sealed, Sql};

/// One entry to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Who: `device:<id>`, `account:<id>` or `admin-cli`.
    pub actor: String,
    /// What, as a stable word: `write`, `read_personal`, `enroll`, `revoke`, …
    pub action: String,
    /// What it was done to (a document, device or account id).
    pub subject: String,
    /// Details as JSON.
    pub detail: String,
}

impl Entry {
    /// An entry.
    pub fn new(
        actor: impl Into<String>,
        action: &str,
        subject: impl Into<String>,
        detail: serde_json::Value,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.to_owned(),
            subject: subject.into(),
            detail: detail.to_string(),
        }
    }
}

fn entry_hash(prev: &[u8], seq: i64, at_ms: i64, e: &Entry) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at_ms.to_be_bytes());
    for field in [&e.actor, &e.action, &e.subject, &e.detail] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().to_vec()
}

/// The chain's head: how many entries, and the latest one's hash. Printed on each monthly report
/// and shown on the dashboard, so a history rebuilt by someone with write access to the database
/// no longer matches what was filed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Head {
    /// Entries in the chain.
    pub entries: i64,
    /// The latest entry's hash, hex (64 zeros for an empty log).
    pub hash: String,
}

/// The chain's head now.
pub fn head(db: &dyn Sql) -> Result<Head, DbError> {
    let last: Option<(i64, Vec<u8>)> = db.query_opt(
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (entries, hash) = last.unwrap_or((0, vec![0; 32]));
    Ok(Head {
        entries,
        hash: hex::encode(hash),
    })
}

/// Appends entries; call inside the transaction of what they record.
pub fn append(db: &dyn Sql, at_ms: i64, entries: &[Entry]) -> Result<(), DbError> {
    if entries.is_empty() {
        return Ok(());
    }
    if db.backend() == crate::db::Backend::Postgres {
        // One chain for every server on the database: appends take turns until their commit.
        db.execute("SELECT pg_advisory_xact_lock(7303011121)", &[])?;
    }
    let last: Option<(i64, Vec<u8>)> = db.query_opt(
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (mut seq, mut prev) = last.unwrap_or((0, vec![0; 32]));
    for e in entries {
        seq += 1;
        let hash = entry_hash(&prev, seq, at_ms, e);
        db.execute(
            "INSERT INTO audit (seq, at_ms, actor, action, subject, detail, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![
                seq,
                at_ms,
                &e.actor,
                &e.action,
                &e.subject,
                db.seal_text(Sealed::AuditDetail, &e.detail),
                &hash
            ],
        )?;
        prev = hash;
    }
    Ok(())
}

/// The outcome of checking the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry links to the one before.
    Intact {
        /// Entries checked.
        entries: u64,
    },
    /// The first entry whose hash does not follow (altered, or one before it removed).
    BrokenAt {
        /// Its sequence number.
        seq: i64,
    },
}

/// Walks the whole chain from the first entry.
pub fn verify(db: &dyn Sql) -> Result<Verdict, DbError> {
    let rows = db.query(
        "SELECT seq, at_ms, actor, action, subject, detail, hash FROM audit ORDER BY seq",
        &[],
    )?;
    let mut prev = vec![0u8; 32];
    for (expected_seq, r) in (1i64..).zip(&rows) {
        let seq: i64 = r.get(0)?;
        let at_ms: i64 = r.get(1)?;
        let e = Entry {
            actor: r.get(2)?,
            action: r.get(3)?,
            subject: r.get(4)?,
            detail: db.open_text(Sealed::AuditDetail, r.get(5)?)?,
        };
        let hash: Vec<u8> = r.get(6)?;
        if seq != expected_seq || entry_hash(&prev, seq, at_ms, &e) != hash {
            return Ok(Verdict::BrokenAt { seq });
        }
        prev = hash;
    }
    Ok(Verdict::Intact {
        entries: rows.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().expect("db");
        songpei_core::store::apply_migrations(&mut conn, crate::db::SQLITE_MIGRATIONS, i64::MAX)
            .expect("migrate");
        conn
    }

    fn entry(i: u32) -> Entry {
        Entry::new(
            format!("device:{i}"),
            "write",
            format!("doc-{i}"),
            serde_json::json!({"n": i}),
        )
    }

    #[test]
    fn a_chain_verifies_and_every_kind_of_tampering_is_found() {
        let conn = db();
        assert_eq!(
            verify(&conn).expect("verify"),
            Verdict::Intact { entries: 0 }
        );
        append(&conn, 1, &[entry(1), entry(2)]).expect("append");
        append(&conn, 2, &[entry(3), entry(4), entry(5)]).expect("append");
        assert_eq!(
            verify(&conn).expect("verify"),
            Verdict::Intact { entries: 5 }
        );

        // The triggers refuse edits and deletes.
        assert!(
            conn.execute("UPDATE audit SET actor = 'x' WHERE seq = 2", [])
                .is_err()
        );
        assert!(conn.execute("DELETE FROM audit WHERE seq = 2", []).is_err());

        // By hand, with the triggers dropped: an altered field, a removed entry.
        let tampered = |sql: &str| {
            let c = db();
            append(&c, 1, &[entry(1), entry(2), entry(3), entry(4)]).expect("append");
            c.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
                .expect("drop");
            c.execute(sql, []).expect("tamper");
            verify(&c).expect("verify")
        };
        assert_eq!(
            tampered("UPDATE audit SET detail = '{\"n\":9}' WHERE seq = 3"),
            Verdict::BrokenAt { seq: 3 }
        );
        assert_eq!(
            tampered("UPDATE audit SET at_ms = 7 WHERE seq = 1"),
            Verdict::BrokenAt { seq: 1 }
        );
        assert_eq!(
            tampered("DELETE FROM audit WHERE seq = 2"),
            Verdict::BrokenAt { seq: 3 }
        );
        assert_eq!(
            tampered("DELETE FROM audit WHERE seq = 1"),
            Verdict::BrokenAt { seq: 2 }
        );
    }
}
