//! The district office's review decisions. A decision is written as the server's own change into the
//! document it is about ([`songpei_core::doc::review`]): it is stored, fed to the village's phones
//! and projected like any phone's change, in one transaction with its audit entry.

use automerge::{ActorId, ReadDoc};
use songpei_core::doc::review::{self, CONFLICT_PREFIX, Decision, Review};
use songpei_core::doc::{self};
use songpei_core::ids::DocId;

use crate::AppState;
use crate::accounts::audit::Entry;
use crate::args;
use crate::error::ApiError;
use crate::store::DocCommit;
use crate::store::projection;

/// One decision to record.
#[derive(Clone, Debug)]
pub(crate) struct Decide<'a> {
    /// The district account deciding.
    pub reviewer: &'a str,
    /// The document the subject belongs to.
    pub doc: DocId,
    /// An attendance id, or `conflict:<path>`.
    pub subject: &'a str,
    /// Accept or reject.
    pub decision: Decision,
    /// Why.
    pub reason: &'a str,
}

/// Records a decision as a change by `actor` (the server's own).
pub(crate) fn decide(
    state: &AppState,
    actor: &ActorId,
    d: &Decide<'_>,
    now_ms: i64,
) -> Result<(), ApiError> {
    let (reviewer, doc_id, subject, decision) = (d.reviewer, d.doc, d.subject, d.decision);
    let review = Review::new(decision, d.reason, reviewer, now_ms)?;
    let mut store = state.store.lock().map_err(|_| ApiError::Internal)?;
    let id = doc_id.to_string();
    let known: bool = if let Some(path) = subject.strip_prefix(CONFLICT_PREFIX) {
        store
            .conn()
            .query_opt(
                "SELECT 1 FROM p_conflicts WHERE doc_id = ?1 AND path = ?2",
                args![&id, path],
                |_| Ok(()),
            )?
            .is_some()
    } else {
        store
            .conn()
            .query_opt(
                "SELECT 1 FROM attendance_checks WHERE class_id = ?1 AND attendance_id = ?2",
                args![&id, subject],
                |_| Ok(()),
            )?
            .is_some()
    };
    if !known {
        return Err(ApiError::Invalid {
            field: "subject".into(),
            message: "names no flagged record or conflict of this document".into(),
        });
    }
    let commit = {
        let loaded = store
            .doc(doc_id)?
            .ok_or_else(|| ApiError::NotFound(format!("document {id} is not on the server")))?;
        let before = loaded.doc.get_heads();
        loaded.doc.set_actor(actor.clone());
        let mut tx = loaded.doc.transaction();
        review::put(&mut tx, subject, &review).map_err(|_| ApiError::Internal)?;
        let (hash, _) = tx.commit();
        let ops = hash
            .and_then(|h| loaded.doc.get_change_by_hash(&h))
            .map_or(0, |c| c.len() as u64);
        let header = doc::read_header(&loaded.doc, doc_id).map_err(|_| ApiError::Internal)?;
        let projection = projection::project(&loaded.doc, &header, &state.blind_key);
        let projection = match projection {
            Ok(p) => p,
            Err(e) => {
                store.evict(doc_id);
                return Err(e);
            }
        };
        let loaded = store.doc(doc_id)?.ok_or(ApiError::Internal)?;
        DocCommit {
            hashes: hash.into_iter().collect(),
            id: doc_id,
            kind: header.kind,
            district: header.district.to_string(),
            village: header.village.to_string(),
            chunk: loaded.doc.save_after(&before),
            heads: loaded.doc.get_heads(),
            ops: loaded.ops + ops,
            projection,
            version: loaded.version,
        }
    };
    let audit = Entry::new(
        format!("account:{reviewer}"),
        "review",
        id,
        serde_json::json!({ "subject": subject, "decision": decision.code() }),
    );
    if let Err(e) = store.commit(&[commit], None, &[audit], now_ms) {
        store.evict(doc_id);
        return Err(e.into());
    }
    Ok(())
}
