//! 电话回访: the call list, the number disclosed for one call (audited, purpose-bound), and each
//! call's outcome (see [`crate::callbacks`]).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use songpei_core::ids::{DocId, TraineeId};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::accounts::audit::{self, Entry};
use crate::args;
use crate::callbacks::{MAX_ATTEMPTS, NOTE_MAX_CHARS};
use crate::db::{DbError, Sealed, Sql, Transact};
use crate::error::{ApiError, ErrorBody};
use crate::office::openapi::{Limits, Session as SessionRefused, Storage};
use songpei_core::doc::review::{Decision, Review};

use super::{Places, admin_only, now_ms, session, with_reader};

/// Which calls.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CallQuery {
    /// `open` (the default: calls still to make, the 1,000 oldest first) or `closed` (calls with
    /// an outcome, most recent first, at most 200).
    pub status: Option<String>,
}

/// A trainee-day to call.
#[derive(Serialize, ToSchema)]
pub(super) struct CallItem {
    /// The call's id.
    id: String,
    class_id: String,
    class_title: Option<String>,
    village: String,
    village_name: String,
    township_name: String,
    trainee_id: String,
    name_masked: Option<String>,
    /// The phone number on file, masked; `null` when the trainee gave none.
    phone_masked: Option<String>,
    /// Other people with the same number on file: a call to it may not reach this trainee (or
    /// reach the coordinator).
    phone_shared_with: i64,
    /// The training day asked about.
    day: String,
    /// `sample` (drawn) or `flag_accepted` (a record of the day was accepted after a flag).
    reason: String,
    selected_ms: i64,
    /// Attempts so far (three unanswered close the call as `unreachable`).
    attempts: i64,
    /// `confirmed`, `denied` or `unreachable` once closed (`erased`: the person's data was erased
    /// before the call, which no longer counts among outcomes).
    outcome: Option<String>,
    /// The clerk's note of the last attempt (district admins only).
    note: Option<String>,
    decided_by: Option<String>,
    decided_ms: Option<i64>,
}

/// The call list.
#[derive(Serialize, ToSchema)]
pub(super) struct CallList {
    items: Vec<CallItem>,
}

/// The call list: open calls oldest first, or the latest closed ones.
#[utoipa::path(get, path = "/api/v1/callbacks", tag = "office", security(("session" = [])),
    params(CallQuery),
    responses(
        (status = 200, description = "The calls.", body = CallList),
        (status = 400, body = ErrorBody, description = "`bad_input`: `status` is not `open` or \
            `closed`."),
        SessionRefused, Limits, Storage,
    ))]
pub(super) async fn call_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallQuery>,
) -> Result<Json<CallList>, ApiError> {
    with_reader(&state, move |s, conn| {
        // What a trainee told the clerk is for the office's admins.
        let admin = admin_only(&session(s, conn, &headers)?).is_ok();
        let open = match q.status.as_deref().unwrap_or("open") {
            "open" => true,
            "closed" => false,
            _ => {
                return Err(ApiError::Invalid {
                    field: "status".into(),
                    message: "must be open or closed".into(),
                });
            }
        };
        let places = Places::load(conn)?;
        let sql = format!(
            "SELECT cb.id, cb.class_id, c.title, cb.village, cb.trainee_id, t.name_masked,
                    t.phone_masked, cb.day, cb.reason, cb.selected_ms, cb.attempts, cb.outcome,
                    cb.note, cb.decided_by, cb.decided_ms,
                    (SELECT COUNT(DISTINCT o.blind_index) FROM p_trainees o
                     WHERE o.phone_index = t.phone_index AND o.blind_index <> t.blind_index)
             FROM callbacks cb
             LEFT JOIN p_classes c ON c.id = cb.class_id
             LEFT JOIN p_trainees t ON t.id = cb.trainee_id
             WHERE {}",
            if open {
                "cb.outcome IS NULL ORDER BY cb.day, cb.selected_ms, cb.id LIMIT 1000"
            } else {
                "cb.outcome IS NOT NULL ORDER BY cb.decided_ms DESC, cb.id LIMIT 200"
            }
        );
        let items = conn.query_map(&sql, &[], |r| {
            let village: String = r.get(3)?;
            Ok(CallItem {
                id: r.get(0)?,
                class_id: r.get(1)?,
                class_title: r.get(2)?,
                village_name: places.village_name(&village),
                township_name: places.township_name(&village),
                village,
                trainee_id: r.get(4)?,
                name_masked: r.get(5)?,
                phone_masked: r.get(6)?,
                day: r.get(7)?,
                reason: r.get(8)?,
                selected_ms: r.get(9)?,
                attempts: r.get(10)?,
                outcome: r.get(11)?,
                note: admin_note(conn, admin, r.get(12)?)?,
                decided_by: r.get(13)?,
                decided_ms: r.get(14)?,
                phone_shared_with: r.get(15)?,
            })
        })?;
        Ok(Json(CallList { items }))
    })
    .await
}

/// What the clerk found on one attempt.
#[derive(Deserialize, ToSchema)]
pub(super) struct OutcomeRequest {
    /// `confirmed` (确认), `denied` (否认) or `unreachable` (联系不上: no answer this time; the
    /// third closes the call).
    pub outcome: String,
    /// The clerk's note (at most 500 characters; stays on the server).
    #[serde(default)]
    pub note: String,
}

/// The call after the attempt.
#[derive(Serialize, ToSchema)]
pub(super) struct OutcomeRecorded {
    id: String,
    /// Attempts so far.
    attempts: i64,
    /// The outcome the call was closed with; `null` while it stays open.
    closed_as: Option<String>,
}

/// Records one attempt on a call.
///
/// A denial rejects every record of the trainee-day and holds the class: none of its records
/// count until the office decides the class in the review queue.
#[utoipa::path(post, path = "/api/v1/callbacks/{id}", tag = "office", security(("session" = [])),
    params(("id" = String, Path, description = "the call's id")),
    request_body = OutcomeRequest,
    responses(
        (status = 200, description = "Recorded.", body = OutcomeRecorded),
        (status = 400, body = ErrorBody, description = "`bad_input`: `outcome` is not one of the \
            three, or `note` is too long; `bad_request`: the body is not an outcome."),
        (status = 403, body = ErrorBody, description = "`not_allowed`: district admins only."),
        (status = 404, body = ErrorBody, description = "`not_found`: no such call."),
        (status = 409, body = ErrorBody, description = "`callback_closed`: the call already has \
            an outcome."),
        SessionRefused, Limits, Storage,
    ))]
pub(super) async fn record_outcome(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<OutcomeRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<OutcomeRecorded>, ApiError> {
    let Json(req) = body.map_err(|_| {
        ApiError::BadRequest(
            "the body is not an outcome: {\"outcome\": \"confirmed\", \"note\": \"…\"}".into(),
        )
    })?;
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let session = {
            let store = s.lock_store()?;
            session(&s, store.conn(), &headers)?
        };
        admin_only(&session)?;
        let outcome = Outcome::parse(req.outcome.trim()).ok_or_else(|| ApiError::Invalid {
            field: "outcome".into(),
            message: "must be confirmed, denied or unreachable".into(),
        })?;
        let r = record(&s, &id, outcome, &req.note, &session.username, now_ms())?;
        Ok(Json(OutcomeRecorded {
            id,
            attempts: r.attempts,
            closed_as: r.closed_as.map(str::to_owned),
        }))
    })
    .await
    .map_err(|_| ApiError::Internal)?
}

/// The number to call.
#[derive(Serialize, ToSchema)]
pub(super) struct CallNumber {
    /// The call's id.
    id: String,
    /// The trainee's phone number in the clear; `null` when none is on file.
    phone: Option<String>,
}

/// Discloses the trainee's phone number for this call, and for nothing else.
///
/// Only while the call is open; each disclosure is kept in the audit log with its purpose
/// (`callback`) and the call's id.
#[utoipa::path(post, path = "/api/v1/callbacks/{id}/phone", tag = "office",
    security(("session" = [])),
    params(("id" = String, Path, description = "the call's id")),
    responses(
        (status = 200, description = "The number.", body = CallNumber),
        (status = 403, body = ErrorBody, description = "`not_allowed`: district admins only."),
        (status = 404, body = ErrorBody, description = "`not_found`: no such call, or the \
            trainee's record is not on the server."),
        (status = 409, body = ErrorBody, description = "`callback_closed`: the call already has \
            an outcome; the number is no longer disclosed for it."),
        SessionRefused, Limits, Storage,
    ))]
pub(super) async fn disclose_phone(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<CallNumber>, ApiError> {
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = s.lock_store()?;
        let session = session(&s, store.conn(), &headers)?;
        admin_only(&session)?;
        let row: Option<(String, Option<String>)> = store.conn().query_opt(
            "SELECT trainee_id, outcome FROM callbacks WHERE id = ?1",
            args![&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (trainee, outcome) = row.ok_or_else(|| ApiError::NotFound("no such call".into()))?;
        if outcome.is_some() {
            return Err(ApiError::Conflict("callback_closed"));
        }
        let tid: TraineeId = trainee.parse().map_err(|_| ApiError::Internal)?;
        let doc = store.doc(DocId::from(tid))?.ok_or_else(|| {
            ApiError::NotFound("the trainee's record is not on the server".into())
        })?;
        let (t, _) = songpei_core::doc::trainee::read(&doc.doc, tid)
            .map_err(|_| ApiError::NotFound("the trainee's record is not on the server".into()))?;
        let phone = t.phone.map(|p| p.expose().to_owned());
        audit::append(
            store.conn(),
            now_ms(),
            &[Entry::new(
                format!("account:{}", session.username),
                "disclose_phone",
                trainee,
                serde_json::json!({ "purpose": "callback", "callback": id }),
            )],
        )?;
        Ok(Json(CallNumber { id, phone }))
    })
    .await
    .map_err(|_| ApiError::Internal)?
}

/// Which audit entries.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Only this action (`read_personal`, `disclose_phone`, `callback`, `review`, …).
    pub action: Option<String>,
    /// At most this many, newest first (default 100, at most 1,000).
    pub limit: Option<u32>,
}

/// One audit entry.
#[derive(Serialize, ToSchema)]
pub(super) struct AuditItem {
    seq: i64,
    at_ms: i64,
    /// `device:<id>`, `account:<name>` or `admin-cli`.
    actor: String,
    action: String,
    /// A document, device, account or trainee id.
    subject: String,
    /// Details (for a disclosure: its purpose and the call).
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

/// The audit log's latest entries (district admins only).
#[utoipa::path(get, path = "/api/v1/audit", tag = "office", security(("session" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "Entries, newest first.", body = [AuditItem]),
        (status = 403, body = ErrorBody, description = "`not_allowed`: district admins only."),
        SessionRefused, Limits, Storage,
    ))]
pub(super) async fn audit_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditItem>>, ApiError> {
    with_reader(&state, move |s, conn| {
        let session = session(s, conn, &headers)?;
        admin_only(&session)?;
        let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
        let action = q.action.filter(|a| !a.trim().is_empty());
        let items = conn.query_map(
            "SELECT seq, at_ms, actor, action, subject, detail FROM audit
             WHERE CAST(?1 AS TEXT) IS NULL OR action = ?1 ORDER BY seq DESC LIMIT ?2",
            args![action, i64::from(limit)],
            |r| {
                let detail = conn.open_text(Sealed::AuditDetail, r.get(5)?)?;
                Ok(AuditItem {
                    seq: r.get(0)?,
                    at_ms: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    subject: r.get(4)?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            },
        )?;
        Ok(Json(items))
    })
    .await
}

/// A call's note as `admin` may read it: opened for a district admin, left out for anyone else.
pub(super) fn admin_note(
    conn: &dyn Sql,
    admin: bool,
    stored: Option<String>,
) -> Result<Option<String>, DbError> {
    match stored {
        Some(n) if admin => conn.open_text(Sealed::CallbackNote, n).map(Some),
        _ => Ok(None),
    }
}

/// What a clerk found on a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// 确认: the trainee was there.
    Confirmed,
    /// 否认: the trainee says they were not.
    Denied,
    /// 联系不上: no answer this time.
    Unreachable,
}

impl Outcome {
    /// Parses the API's word.
    fn parse(s: &str) -> Option<Self> {
        match s {
            "confirmed" => Some(Self::Confirmed),
            "denied" => Some(Self::Denied),
            "unreachable" => Some(Self::Unreachable),
            _ => None,
        }
    }

    /// The stored word.
    fn code(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Denied => "denied",
            Self::Unreachable => "unreachable",
        }
    }
}

/// A call as the office sees it after an outcome is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Recorded {
    /// The outcome the call was closed with; `None` while it stays open (an unanswered attempt
    /// before the third).
    pub closed_as: Option<&'static str>,
    /// Attempts so far.
    pub attempts: i64,
}

struct OpenCall {
    class: String,
    trainee: String,
    day: String,
    attempts: i64,
    outcome: Option<String>,
}

fn open_call(db: &dyn Sql, id: &str) -> Result<OpenCall, ApiError> {
    let row = db.query_opt(
        "SELECT class_id, trainee_id, day, attempts, outcome FROM callbacks WHERE id = ?1",
        args![id],
        |r| {
            Ok(OpenCall {
                class: r.get(0)?,
                trainee: r.get(1)?,
                day: r.get(2)?,
                attempts: r.get(3)?,
                outcome: r.get(4)?,
            })
        },
    )?;
    let call = row.ok_or_else(|| ApiError::NotFound("no such call-back".into()))?;
    if call.outcome.is_some() {
        return Err(ApiError::Conflict("callback_closed"));
    }
    Ok(call)
}

/// Records an attempt on call `id` by `account`, with the clerk's `note`.
fn record(
    state: &AppState,
    id: &str,
    outcome: Outcome,
    note: &str,
    account: &str,
    now_ms: i64,
) -> Result<Recorded, ApiError> {
    let note = songpei_core::validate::clean_text(note);
    if note.chars().count() > NOTE_MAX_CHARS {
        return Err(ApiError::Invalid {
            field: "note".into(),
            message: format!("is longer than {NOTE_MAX_CHARS} characters"),
        });
    }
    let mut store = state.lock_store()?;
    let call = open_call(store.conn(), id)?;
    let attempts = call.attempts + 1;
    let closed_as = match outcome {
        Outcome::Unreachable if attempts < MAX_ATTEMPTS => None,
        o => Some(o.code()),
    };
    let audit = Entry::new(
        format!("account:{account}"),
        "callback",
        id.to_owned(),
        serde_json::json!({ "outcome": outcome.code(), "attempt": attempts,
            "closed": closed_as.is_some() }),
    );
    let write = |tx: &dyn Sql| -> Result<(), DbError> {
        // Only an open call moves on: two clerks recording at once cannot both close it.
        let n = tx.execute(
            "UPDATE callbacks SET attempts = ?2, outcome = ?3, note = ?4, decided_by = ?5,
             decided_ms = ?6 WHERE id = ?1 AND outcome IS NULL AND attempts = ?7",
            args![
                id,
                attempts,
                closed_as,
                tx.seal_text(Sealed::CallbackNote, &note),
                closed_as.map(|_| account),
                closed_as.map(|_| now_ms),
                call.attempts
            ],
        )?;
        if n != 1 {
            return Err(DbError::Stale(id.to_owned()));
        }
        tx.execute(
            "INSERT INTO callback_attempts (callback_id, n, outcome, note, account, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![
                id,
                attempts,
                outcome.code(),
                tx.seal_text(Sealed::AttemptNote, &note),
                account,
                now_ms
            ],
        )?;
        if outcome == Outcome::Denied {
            tx.execute(
                "INSERT INTO class_holds (callback_id, class_id, held_ms) VALUES (?1, ?2, ?3)",
                args![id, &call.class, now_ms],
            )?;
        }
        Ok(())
    };
    let stale = |e: DbError| match e {
        DbError::Stale(_) => ApiError::Conflict("callback_closed"),
        e => e.into(),
    };
    if outcome != Outcome::Denied {
        store
            .conn_mut()
            .transaction(|tx| -> Result<(), DbError> {
                write(tx)?;
                crate::accounts::audit::append(tx, now_ms, std::slice::from_ref(&audit))
            })
            .map_err(stale)?;
        return Ok(Recorded {
            closed_as,
            attempts,
        });
    }
    // A denial: every record of the trainee-day rejected, in the class document, with the hold.
    let doc: DocId = call.class.parse().map_err(|_| ApiError::Internal)?;
    let records: Vec<String> = store.conn().query_map(
        "SELECT attendance_id FROM attendance_checks WHERE class_id = ?1 AND trainee_id = ?2
         AND day = ?3 ORDER BY attendance_id",
        args![&call.class, &call.trainee, &call.day],
        |r| r.get(0),
    )?;
    let review = Review::new(
        Decision::Rejected,
        &format!("电话回访否认（回访编号 {id}）"),
        account,
        now_ms,
    )?;
    let reviews: Vec<(String, Review)> = records.into_iter().map(|a| (a, review.clone())).collect();
    crate::review::write(&mut store, state, doc, &reviews, &[audit], &write, now_ms)?;
    Ok(Recorded {
        closed_as,
        attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_parse_from_the_api_words_only() {
        for o in [Outcome::Confirmed, Outcome::Denied, Outcome::Unreachable] {
            assert_eq!(Outcome::parse(o.code()), Some(o));
        }
        for bad in ["", "Confirmed", "yes", "denied ", "确认"] {
            assert_eq!(Outcome::parse(bad), None, "{bad:?}");
        }
    }
}
