//! The review queue: flags that hold pay and conflicts, decided with a reason and written into
//! the document they are about.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use songpei_core::doc::review::Decision;
use songpei_core::ids::DocId;
use utoipa::ToSchema;

use crate::AppState;
use crate::db::Sealed;
use crate::error::{ApiError, ErrorBody};
use crate::office::openapi::{Limits, Session as SessionRefused, Storage};

use super::classes::FlagView;
use super::{Places, admin_only, now_ms, session, with_reader};

/// Something waiting for review.
#[derive(Serialize, ToSchema)]
pub(super) struct ReviewItem {
    /// `flag`, `conflict` or `hold` (a class held after a call-back denial).
    kind: String,
    doc_id: String,
    /// For a flag: the attendance id; for a conflict: `conflict:<path>`; for a held class:
    /// `hold` (accepted clears the hold; rejected rejects every record of the class).
    subject: String,
    class_id: Option<String>,
    class_title: Option<String>,
    village_name: String,
    doc_kind: Option<String>,
    trainee_id: Option<String>,
    name_masked: Option<String>,
    day: Option<String>,
    flags: Vec<FlagView>,
    path: Option<String>,
    winner: Option<String>,
    values: Vec<String>,
    /// For a held class: the call-back denials that hold it.
    denials: Vec<HoldDenial>,
}

/// A call-back denial that holds a class.
#[derive(Serialize, ToSchema)]
pub(super) struct HoldDenial {
    /// The call's id.
    callback_id: String,
    trainee_id: String,
    name_masked: Option<String>,
    /// The day the trainee denied.
    day: String,
    /// The clerk's note (district admins only).
    note: Option<String>,
    /// The clerk.
    decided_by: Option<String>,
    held_ms: i64,
}

/// The review queue.
#[derive(Serialize, ToSchema)]
pub(super) struct ReviewQueue {
    items: Vec<ReviewItem>,
}

/// Flags that hold pay, conflicts and classes held after a call-back denial, not yet decided.
#[utoipa::path(get, path = "/api/v1/review", tag = "office", security(("session" = [])),
    responses((status = 200, description = "What waits for a decision.", body = ReviewQueue),
        SessionRefused, Limits, Storage))]
pub(super) async fn review_queue(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ReviewQueue>, ApiError> {
    with_reader(&state, move |s, conn| {
        let admin = admin_only(&session(s, conn, &headers)?).is_ok();
        let places = Places::load(conn)?;
        let mut items: Vec<ReviewItem> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let rows = conn.query_map(
            "SELECT f.attendance_id, f.class_id, c.title, c.village, a.trainee_id,
                   t.name_masked, a.day, f.flag, f.detail, f.blocks_pay
                 FROM attendance_flags f
                 JOIN attendance_checks a ON a.attendance_id = f.attendance_id
                 LEFT JOIN p_classes c ON c.id = f.class_id
                 LEFT JOIN p_trainees t ON t.id = a.trainee_id
                 WHERE f.attendance_id IN (SELECT attendance_id FROM attendance_flags
                                           WHERE blocks_pay = 1)
                   AND NOT EXISTS (SELECT 1 FROM p_reviews r WHERE r.doc_id = f.class_id
                                   AND r.subject = f.attendance_id)
                 ORDER BY a.day, f.attendance_id, f.flag",
            &[],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    r.get::<String>(1)?,
                    r.get::<Option<String>>(2)?,
                    r.get::<Option<String>>(3)?,
                    r.get::<String>(4)?,
                    r.get::<Option<String>>(5)?,
                    r.get::<String>(6)?,
                    FlagView {
                        flag: r.get(7)?,
                        detail: r.get(8)?,
                        blocks_pay: r.get(9)?,
                    },
                ))
            },
        )?;
        for (aid, class, title, village, trainee, name, day, flag) in rows {
            let i = *index.entry(aid.clone()).or_insert_with(|| {
                items.push(ReviewItem {
                    kind: "flag".into(),
                    doc_id: class.clone(),
                    subject: aid.clone(),
                    class_id: Some(class.clone()),
                    class_title: title.clone(),
                    village_name: village
                        .as_deref()
                        .map(|v| places.village_name(v))
                        .unwrap_or_default(),
                    doc_kind: Some("class".into()),
                    trainee_id: Some(trainee.clone()),
                    name_masked: name.clone(),
                    day: Some(day.clone()),
                    flags: Vec::new(),
                    path: None,
                    winner: None,
                    values: Vec::new(),
                    denials: Vec::new(),
                });
                items.len() - 1
            });
            items[i].flags.push(flag);
        }
        let conflicts = conn.query_map(
            "SELECT k.doc_id, k.kind, k.village, k.path, k.winner, k.vals, c.title
                 FROM p_conflicts k LEFT JOIN p_classes c ON c.id = k.doc_id
                 WHERE NOT EXISTS (SELECT 1 FROM p_reviews r WHERE r.doc_id = k.doc_id
                                   AND r.subject = 'conflict:' || k.path)
                 ORDER BY k.village, k.doc_id, k.path",
            &[],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    r.get::<String>(1)?,
                    r.get::<String>(2)?,
                    r.get::<String>(3)?,
                    r.get::<String>(4)?,
                    conn.open_text(Sealed::ConflictValues, r.get(5)?)?,
                    r.get::<Option<String>>(6)?,
                ))
            },
        )?;
        for (doc_id, kind, village, path, winner, vals, title) in conflicts {
            items.push(ReviewItem {
                kind: "conflict".into(),
                subject: format!("conflict:{path}"),
                class_id: (kind == "class").then(|| doc_id.clone()),
                doc_id,
                class_title: title,
                village_name: places.village_name(&village),
                doc_kind: Some(kind),
                trainee_id: None,
                name_masked: None,
                day: None,
                flags: Vec::new(),
                path: Some(path),
                winner: Some(winner),
                values: serde_json::from_str(&vals).unwrap_or_default(),
                denials: Vec::new(),
            });
        }
        // Classes held after a call-back denial: subject `hold` decides them all at once.
        let holds = conn.query_map(
            "SELECT h.class_id, c.title, c.village, h.callback_id, cb.trainee_id, t.name_masked,
                    cb.day, cb.note, cb.decided_by, h.held_ms
             FROM class_holds h JOIN callbacks cb ON cb.id = h.callback_id
             LEFT JOIN p_classes c ON c.id = h.class_id
             LEFT JOIN p_trainees t ON t.id = cb.trainee_id
             WHERE NOT EXISTS (SELECT 1 FROM p_reviews r WHERE r.doc_id = h.class_id
                               AND r.subject = 'hold:' || h.callback_id)
             ORDER BY h.held_ms, h.callback_id",
            &[],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    r.get::<Option<String>>(1)?,
                    r.get::<Option<String>>(2)?,
                    HoldDenial {
                        callback_id: r.get(3)?,
                        trainee_id: r.get(4)?,
                        name_masked: r.get(5)?,
                        day: r.get(6)?,
                        note: super::callbacks::admin_note(conn, admin, r.get(7)?)?,
                        decided_by: r.get(8)?,
                        held_ms: r.get(9)?,
                    },
                ))
            },
        )?;
        let mut held: BTreeMap<String, usize> = BTreeMap::new();
        for (class, title, village, denial) in holds {
            let i = *held.entry(class.clone()).or_insert_with(|| {
                items.push(ReviewItem {
                    kind: "hold".into(),
                    doc_id: class.clone(),
                    subject: crate::callbacks::HOLD_ALL.into(),
                    class_id: Some(class.clone()),
                    class_title: title.clone(),
                    village_name: village
                        .as_deref()
                        .map(|v| places.village_name(v))
                        .unwrap_or_default(),
                    doc_kind: Some("class".into()),
                    trainee_id: None,
                    name_masked: None,
                    day: None,
                    flags: Vec::new(),
                    path: None,
                    winner: None,
                    values: Vec::new(),
                    denials: Vec::new(),
                });
                items.len() - 1
            });
            items[i].denials.push(denial);
        }
        Ok(Json(ReviewQueue { items }))
    })
    .await
}

/// A decision on one review item.
#[derive(Deserialize, ToSchema)]
pub(super) struct ReviewRequest {
    /// The document the subject belongs to.
    pub doc_id: String,
    /// The attendance id, `conflict:<path>`, or `hold` (a class held after a call-back denial).
    pub subject: String,
    /// `accepted` or `rejected`.
    pub decision: String,
    /// Why (at least 2 characters).
    pub reason: String,
    /// For the subject `hold`: the ids of the calls whose denials were decided (the item's
    /// `denials`); `409 review_changed` when the class's open holds are no longer exactly these.
    #[serde(default)]
    pub holds: Option<Vec<String>>,
}

/// Done.
#[derive(Serialize, ToSchema)]
pub(super) struct Done {
    ok: bool,
}

/// Accepts or rejects a flagged record or a conflict.
///
/// The decision is written into the document, syncs to the village's phones, and changes what is
/// paid.
#[utoipa::path(post, path = "/api/v1/review", tag = "office", security(("session" = [])),
    request_body = ReviewRequest,
    responses(
        (status = 200, description = "Decided.", body = Done),
        (status = 400, body = ErrorBody, description = "`bad_input`: the decision, document or \
            reason is not valid; `bad_request`: the body is not a decision."),
        (status = 403, body = ErrorBody, description = "`not_allowed`: district admins only."),
        (status = 404, body = ErrorBody, description = "`not_found`: the document or the subject \
            is not on the server."),
        (status = 409, body = ErrorBody, description = "`review_changed`: the class's open holds \
            are no longer the calls named in `holds`; reload the queue."),
        SessionRefused,
        Limits,
        Storage,
    ))]
pub(super) async fn review_decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ReviewRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Done>, ApiError> {
    let Json(req) = body.map_err(|_| ApiError::BadRequest("the body is not a decision".into()))?;
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let session = {
            let store = s.lock_store()?;
            session(&s, store.conn(), &headers)?
        };
        admin_only(&session)?;
        let decision = Decision::parse(&req.decision).ok_or_else(|| ApiError::Invalid {
            field: "decision".into(),
            message: "must be accepted or rejected".into(),
        })?;
        let doc: DocId = req.doc_id.parse().map_err(|_| ApiError::Invalid {
            field: "doc_id".into(),
            message: "is not a document id".into(),
        })?;
        crate::review::decide(
            &s,
            &crate::review::Decide {
                reviewer: &session.username,
                doc,
                subject: &req.subject,
                decision,
                reason: &req.reason,
                holds: req.holds.as_deref(),
            },
            now_ms(),
        )?;
        Ok(Json(Done { ok: true }))
    })
    .await
    .map_err(|_| ApiError::Internal)?
}
