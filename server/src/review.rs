//! The district office's review decisions. A decision is written as the server's own change into the
//! document it is about ([`songpei_core::doc::review`]): it is stored, fed to the village's phones
//! and projected like any phone's change, in one transaction with its audit entry.

use automerge::ReadDoc;
use songpei_core::doc::review::{self, CONFLICT_PREFIX, Decision, Review};
use songpei_core::doc::{self};
use songpei_core::ids::DocId;

use crate::AppState;
use crate::accounts::audit::Entry;
use crate::args;
use crate::callbacks;
use crate::db::{DbError, Sql};
use crate::error::ApiError;
use crate::store::DocCommit;
use crate::store::ServerStore;
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
    /// For the subject `hold`: the calls whose denials the reviewer saw; refused when the class's
    /// open holds are not exactly these (another denial arrived meanwhile).
    pub holds: Option<&'a [String]>,
}

/// Records a decision as the server's own change. The subject `hold` decides every
/// open hold of the class at once (see [`crate::callbacks`]).
pub(crate) fn decide(state: &AppState, d: &Decide<'_>, now_ms: i64) -> Result<(), ApiError> {
    let (reviewer, doc_id, subject, decision) = (d.reviewer, d.doc, d.subject, d.decision);
    let review = Review::new(decision, d.reason, reviewer, now_ms)?;
    let mut store = state.lock_store()?;
    let id = doc_id.to_string();
    let subjects: Vec<String> = if subject == callbacks::HOLD_ALL {
        let open: Vec<String> = store.conn().query_map(
            "SELECT h.callback_id FROM class_holds h WHERE h.class_id = ?1
             AND NOT EXISTS (SELECT 1 FROM p_reviews r WHERE r.doc_id = h.class_id
                             AND r.subject = 'hold:' || h.callback_id)
             ORDER BY h.callback_id",
            args![&id],
            |r| r.get(0),
        )?;
        let seen = d.holds.ok_or_else(|| ApiError::Invalid {
            field: "holds".into(),
            message: "name the calls whose denials were decided".into(),
        })?;
        let seen: std::collections::BTreeSet<&str> = seen.iter().map(|s| s.trim()).collect();
        if !open.is_empty() && seen != open.iter().map(String::as_str).collect() {
            return Err(ApiError::Conflict("review_changed"));
        }
        open.into_iter()
            .map(|c| format!("{}{c}", callbacks::HOLD_PREFIX))
            .collect()
    } else {
        let known = if let Some(path) = subject.strip_prefix(CONFLICT_PREFIX) {
            store.conn().query_opt(
                "SELECT 1 FROM p_conflicts WHERE doc_id = ?1 AND path = ?2",
                args![&id, path],
                |_| Ok(()),
            )?
        } else if let Some(call) = subject.strip_prefix(callbacks::HOLD_PREFIX) {
            store.conn().query_opt(
                "SELECT 1 FROM class_holds WHERE class_id = ?1 AND callback_id = ?2",
                args![&id, call],
                |_| Ok(()),
            )?
        } else {
            store.conn().query_opt(
                "SELECT 1 FROM attendance_checks WHERE class_id = ?1 AND attendance_id = ?2",
                args![&id, subject],
                |_| Ok(()),
            )?
        };
        known.map(|()| vec![subject.to_owned()]).unwrap_or_default()
    };
    if subjects.is_empty() {
        return Err(ApiError::Invalid {
            field: "subject".into(),
            message: "names no flagged record, conflict or held class of this document".into(),
        });
    }
    let audit = Entry::new(
        format!("account:{reviewer}"),
        "review",
        id,
        serde_json::json!({ "subject": subject, "decision": decision.code() }),
    );
    let reviews: Vec<(String, Review)> =
        subjects.into_iter().map(|s| (s, review.clone())).collect();
    write(
        &mut store,
        state,
        doc_id,
        &reviews,
        &[audit],
        &|_| Ok(()),
        now_ms,
    )
}

/// Writes `reviews` into document `doc_id` as one change by the server's actor, and commits it
/// with `audit`, running `pre` first in the same transaction (rows the projection reads).
pub(crate) fn write(
    store: &mut ServerStore,
    state: &AppState,
    doc_id: DocId,
    reviews: &[(String, Review)],
    audit: &[Entry],
    pre: &dyn Fn(&dyn Sql) -> Result<(), DbError>,
    now_ms: i64,
) -> Result<(), ApiError> {
    let id = doc_id.to_string();
    let commit = {
        let loaded = store
            .doc(doc_id)?
            .ok_or_else(|| ApiError::NotFound(format!("document {id} is not on the server")))?;
        let before = loaded.doc.get_heads();
        loaded.doc.set_actor(state.actor.clone());
        let mut tx = loaded.doc.transaction();
        for (subject, review) in reviews {
            review::put(&mut tx, subject, review).map_err(|_| ApiError::Internal)?;
        }
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
    if let Err(e) = store.commit_with(&[commit], None, audit, now_ms, pre) {
        store.evict(doc_id);
        return Err(e.into());
    }
    Ok(())
}
