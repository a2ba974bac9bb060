//! Trainees: lookup by ID number through the blind index (masked), audited unmasking, and a
//! person's erasure.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use songpei_core::ids::{DocId, TraineeId};
use songpei_core::validate::IdNumber;
use utoipa::ToSchema;

use crate::AppState;
use crate::accounts::AccountError;
use crate::accounts::audit::{self, Entry};
use crate::args;
use crate::error::{ApiError, ErrorBody};
use crate::office::openapi::{Limits, Session as SessionRefused, Storage};

use super::{Places, admin_only, now_ms, session, with_conn};

/// Lookup by ID number. It travels in the body of a POST, never in a URL, where proxies' access
/// logs and the browser's history would keep it.
#[derive(Deserialize, ToSchema)]
pub(super) struct TraineeQuery {
    /// The 18-digit ID number; matched through the blind index, never stored in the clear.
    pub id_number: String,
}

/// A class of a trainee.
#[derive(Serialize, ToSchema)]
pub(super) struct TraineeClass {
    class_id: String,
    title: String,
    first_day: String,
    decision: Option<String>,
}

/// A trainee found, masked.
#[derive(Serialize, ToSchema)]
pub(super) struct TraineeHit {
    trainee_id: String,
    name_masked: String,
    id_masked: String,
    village: String,
    village_name: String,
    classes: Vec<TraineeClass>,
}

/// Finds a person's trainee records, in every village, by ID number.
#[utoipa::path(post, path = "/api/v1/trainees/search", tag = "office",
    security(("session" = [])), request_body = TraineeQuery,
    responses(
        (status = 200, description = "Every trainee record of that ID number, masked.",
            body = [TraineeHit]),
        (status = 400, body = ErrorBody, description = "`bad_input`: `id_number` is not a valid \
            ID number, or the body is not JSON."),
        SessionRefused,
        Limits,
        Storage,
    ))]
pub(super) async fn trainees(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<TraineeQuery>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Vec<TraineeHit>>, ApiError> {
    let Json(q) = body.map_err(|_| ApiError::Invalid {
        field: "id_number".into(),
        message: "the body must be JSON: {\"id_number\": \"…\"}".into(),
    })?;
    with_conn(&state, move |s, conn| {
        let session = session(s, conn, &headers)?;
        let id = IdNumber::parse(&q.id_number, songpei_core::clock::local_date(now_ms()))?;
        let index = s.blind_key.index(&id).to_vec();
        let places = Places::load(conn)?;
        let hits: Vec<(String, String, String, String)> = conn
            .query_map(
                "SELECT p.id, p.name_masked, p.id_masked, p.village FROM p_trainees p
                 JOIN docs d ON d.id = p.id
                 WHERE p.blind_index = ?1 AND d.erased_at IS NULL",
                args![&index],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?
            .into_iter()
            .collect();
        audit::append(
            conn,
            now_ms(),
            &[Entry::new(
                format!("account:{}", session.username),
                "lookup_trainee",
                hits.first().map(|h| h.0.clone()).unwrap_or_default(),
                serde_json::json!({ "found": hits.len() }),
            )],
        )?;
        let mut out = Vec::new();
        for (tid, name_masked, id_masked, village) in hits {
            let classes = conn
                .query_map(
                    "SELECT c.id, c.title, c.first_day, s.decision FROM p_enrolments e
                     JOIN p_classes c ON c.id = e.class_id
                     LEFT JOIN p_subsidies s
                       ON s.class_id = e.class_id AND s.trainee_id = e.trainee_id
                     WHERE e.trainee_id = ?1 ORDER BY c.first_day",
                    args![&tid],
                    |r| {
                        Ok(TraineeClass {
                            class_id: r.get(0)?,
                            title: r.get(1)?,
                            first_day: r.get(2)?,
                            decision: r.get(3)?,
                        })
                    },
                )?
                .into_iter()
                .collect();
            out.push(TraineeHit {
                trainee_id: tid,
                name_masked,
                id_masked,
                village_name: places.village_name(&village),
                village,
                classes,
            });
        }
        Ok(Json(out))
    })
    .await
}

/// Why the personal data is needed.
#[derive(Deserialize, ToSchema)]
pub(super) struct UnmaskRequest {
    /// The reason, kept in the audit log.
    pub reason: String,
}

/// A trainee's personal data in the clear.
#[derive(Serialize, ToSchema)]
pub(super) struct Unmasked {
    name: String,
    id_number: String,
    phone: Option<String>,
}

/// The start of the China day of `ms`.
fn day_start_ms(ms: i64) -> i64 {
    use chrono::TimeZone;
    let day = songpei_core::clock::local_date(ms);
    songpei_core::clock::china()
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
        .single()
        .map_or(ms, |d| d.timestamp_millis())
}

/// Shows a trainee's name, ID number and phone in the clear; the reason goes to the audit log.
///
/// District admins only, at most `[office] unmask_per_day` a China day each.
#[utoipa::path(post, path = "/api/v1/trainees/{id}/unmask", tag = "office",
    security(("session" = [])), request_body = UnmaskRequest,
    params(("id" = String, Path, description = "trainee id")),
    responses(
        (status = 200, description = "The personal data in the clear.", body = Unmasked),
        (status = 400, body = ErrorBody, description = "`bad_input`: the reason is shorter than 4 \
            characters; `bad_request`: the body is not a reason."),
        (status = 403, body = ErrorBody, description = "`not_allowed`: district admins only."),
        (status = 404, body = ErrorBody, description = "`not_found`: no such trainee."),
        (status = 429, body = ErrorBody, description = "`rate_limited`: the account's unmaskings \
            of the day are used; `Retry-After` says when the next China day starts."),
        SessionRefused,
        Limits,
        Storage,
    ))]
pub(super) async fn unmask(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<UnmaskRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Unmasked>, ApiError> {
    let Json(req) = body.map_err(|_| ApiError::BadRequest("the body is not a reason".into()))?;
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = s.lock_store()?;
        let session = session(&s, store.conn(), &headers)?;
        // Ad-hoc unmasking is for district admins, a few times a day.
        admin_only(&session)?;
        let now = now_ms();
        let day_start = day_start_ms(now);
        let used: i64 = store.conn().query_row(
            "SELECT COUNT(*) FROM audit WHERE actor = ?1 AND action = 'read_personal'
             AND at_ms >= ?2",
            args![format!("account:{}", session.username), day_start],
            |r| r.get(0),
        )?;
        if used >= i64::from(s.config.office.unmask_per_day) {
            let tomorrow = day_start + 86_400_000;
            return Err(ApiError::RateLimited(
                u64::try_from((tomorrow - now) / 1000 + 1).unwrap_or(1),
            ));
        }
        let reason = songpei_core::validate::clean_text(&req.reason);
        if reason.chars().count() < 4 {
            return Err(ApiError::Invalid {
                field: "reason".into(),
                message: "say why the data is needed (at least 4 characters)".into(),
            });
        }
        let tid: TraineeId = id
            .parse()
            .map_err(|_| ApiError::NotFound("no such trainee".into()))?;
        let doc = store
            .doc(DocId::from(tid))?
            .ok_or_else(|| ApiError::NotFound("no such trainee".into()))?;
        let (t, _) = songpei_core::doc::trainee::read(&doc.doc, tid)
            .map_err(|_| ApiError::NotFound("no such trainee".into()))?;
        audit::append(
            store.conn(),
            now_ms(),
            &[Entry::new(
                format!("account:{}", session.username),
                "read_personal",
                id,
                serde_json::json!({ "reason": reason }),
            )],
        )?;
        Ok(Json(Unmasked {
            name: t.name.expose().to_owned(),
            id_number: t.id_number.expose().to_owned(),
            phone: t.phone.map(|p| p.expose().to_owned()),
        }))
    })
    .await
    .map_err(|_| ApiError::Internal)?
}

/// What an erasure removed.
#[derive(Serialize, ToSchema)]
pub(super) struct ErasedDocs {
    /// The documents erased: the trainee's, and their household's when no one else was in it.
    docs: Vec<String>,
}

/// Erases a trainee's personal data on request (district admins only).
///
/// The data is gone from the server now, and from every phone at its next sync. The reason is
/// kept in the audit log.
#[utoipa::path(post, path = "/api/v1/trainees/{id}/erase", tag = "office",
    security(("session" = [])), request_body = UnmaskRequest,
    params(("id" = String, Path, description = "trainee id")),
    responses(
        (status = 200, description = "Erased.", body = ErasedDocs),
        (status = 400, body = ErrorBody, description = "`bad_input`: the reason is missing or too \
            short; `bad_request`: the body is not a reason."),
        (status = 403, body = ErrorBody, description = "`not_allowed`: district admins only."),
        (status = 404, body = ErrorBody, description = "`not_found`: no such trainee."),
        SessionRefused,
        Limits,
        Storage,
    ))]
pub(super) async fn erase(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<UnmaskRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ErasedDocs>, ApiError> {
    let Json(req) = body.map_err(|_| ApiError::BadRequest("the body is not a reason".into()))?;
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = s.lock_store()?;
        let session = session(&s, store.conn(), &headers)?;
        admin_only(&session)?;
        let ids = crate::store::erasure::erase_trainee(
            &mut store,
            &id,
            &format!("account:{}", session.username),
            &req.reason,
        )
        .map_err(|e| match e {
            AccountError::Invalid { field, problem } => ApiError::Invalid {
                field: field.into(),
                message: problem.into(),
            },
            AccountError::NotFound(what) => ApiError::NotFound(format!("no such {what}")),
            other => other.into(),
        })?;
        Ok(Json(ErasedDocs {
            docs: ids.iter().map(ToString::to_string).collect(),
        }))
    })
    .await
    .map_err(|_| ApiError::Internal)?
}
