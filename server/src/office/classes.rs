//! Classes: the list, and one class's page with its roster, attendance per day with proofs and
//! flags, and what the district pays for each place (`crate::store::settlement`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::args;
use crate::callbacks::Hold;
use crate::db::{Sealed, Sql};
use crate::error::{ApiError, ErrorBody};
use crate::office::openapi::{Limits, Session as SessionRefused, Storage};
use crate::report::rule_text;
use songpei_core::doc::review::Decision;

use super::{Places, parse_day, session, with_reader};

/// Filters of the class list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ClassQuery {
    /// Village code.
    pub village: Option<String>,
    /// Status code (planned, running, closed, cancelled).
    pub status: Option<String>,
    /// Classes that end on or after this day.
    pub from: Option<String>,
    /// Classes that start on or before this day.
    pub to: Option<String>,
}

/// A class in the list.
#[derive(Serialize, ToSchema)]
pub(super) struct ClassSummary {
    class_id: String,
    title: String,
    village: String,
    village_name: String,
    township_name: String,
    occupation: String,
    status: String,
    first_day: String,
    last_day: String,
    enrolled: i64,
    open_flags: i64,
    /// A call-back denial holds the class until the office decides it.
    on_hold: bool,
}

/// The district's classes.
#[utoipa::path(get, path = "/api/v1/classes", tag = "office", security(("session" = [])),
    params(ClassQuery),
    responses(
        (status = 200, description = "The classes that match, newest first.", body = [ClassSummary]),
        (status = 400, body = ErrorBody, description = "`bad_input`: `from` or `to` is not \
            YYYY-MM-DD."),
        SessionRefused,
        Limits,
        Storage,
    ))]
pub(super) async fn classes(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ClassQuery>,
) -> Result<Json<Vec<ClassSummary>>, ApiError> {
    with_reader(&state, move |s, conn| {
        session(s, conn, &headers)?;
        let from = q
            .from
            .as_deref()
            .filter(|x| !x.is_empty())
            .map(|d| parse_day("from", d))
            .transpose()?;
        let to =
            q.to.as_deref()
                .filter(|x| !x.is_empty())
                .map(|d| parse_day("to", d))
                .transpose()?;
        let places = Places::load(conn)?;
        let rows = conn
            .query_map(
                "SELECT c.id, c.title, c.village, c.occupation, c.status, c.first_day, c.last_day,
                   (SELECT COUNT(*) FROM p_enrolments e WHERE e.class_id = c.id),
                   (SELECT COUNT(DISTINCT f.attendance_id) FROM attendance_flags f
                      WHERE f.class_id = c.id AND f.blocks_pay = 1 AND NOT EXISTS (
                        SELECT 1 FROM p_reviews r WHERE r.doc_id = c.id
                        AND r.subject = f.attendance_id)),
                   EXISTS (SELECT 1 FROM class_holds h WHERE h.class_id = c.id AND NOT EXISTS (
                        SELECT 1 FROM p_reviews r WHERE r.doc_id = c.id
                        AND r.subject = 'hold:' || h.callback_id))
                 FROM p_classes c
                 WHERE (CAST(?1 AS TEXT) IS NULL OR c.village = ?1)
                   AND (CAST(?2 AS TEXT) IS NULL OR c.status = ?2)
                   AND (CAST(?3 AS TEXT) IS NULL OR c.last_day >= ?3)
                   AND (CAST(?4 AS TEXT) IS NULL OR c.first_day <= ?4)
                 ORDER BY c.first_day DESC, c.title",
                args![
                    q.village.as_deref().filter(|x| !x.is_empty()),
                    q.status.as_deref().filter(|x| !x.is_empty()),
                    from.map(|d| d.to_string()),
                    to.map(|d| d.to_string())
                ],
                |r| {
                    let village: String = r.get(2)?;
                    Ok(ClassSummary {
                        class_id: r.get(0)?,
                        title: r.get(1)?,
                        village_name: places.village_name(&village),
                        township_name: places.township_name(&village),
                        village,
                        occupation: r.get(3)?,
                        status: r.get(4)?,
                        first_day: r.get(5)?,
                        last_day: r.get(6)?,
                        enrolled: r.get(7)?,
                        open_flags: r.get(8)?,
                        on_hold: r.get(9)?,
                    })
                },
            )?
            .into_iter()
            .collect();
        Ok(Json(rows))
    })
    .await
}

/// A class's fixed facts.
#[derive(Serialize, ToSchema)]
pub(super) struct ClassInfo {
    id: String,
    title: String,
    village: String,
    village_name: String,
    township_name: String,
    occupation: String,
    level: String,
    level_label: String,
    training_type: String,
    training_type_label: String,
    subsidised: bool,
    status: String,
    status_label: String,
    first_day: String,
    last_day: String,
    days: Vec<String>,
}

/// One trainee's day.
#[derive(Serialize, ToSchema)]
pub(super) struct TraineeDay {
    signed_in: bool,
    signed_out: bool,
    payable: bool,
    /// A record of the day waits for the district's review.
    held: bool,
}

/// A place's subsidy decision and the rule that made it.
#[derive(Serialize, ToSchema)]
pub(super) struct SubsidyView {
    decision: String,
    year: Option<i32>,
    nth: Option<i64>,
    rule: String,
}

/// One trainee of a class.
#[derive(Serialize, ToSchema)]
pub(super) struct RosterRow {
    trainee_id: String,
    name_masked: Option<String>,
    id_masked: Option<String>,
    poverty_status: Option<String>,
    poverty_label: Option<String>,
    completion: Option<String>,
    days: BTreeMap<String, TraineeDay>,
    payable_days: i64,
    /// Days with a record that waits for review.
    held_days: i64,
    allowance_fen: i64,
    subsidy: Option<SubsidyView>,
}

/// A flag on a record.
#[derive(Serialize, ToSchema)]
pub(super) struct FlagView {
    pub(super) flag: String,
    pub(super) detail: String,
    pub(super) blocks_pay: bool,
}

/// A review decision.
#[derive(Serialize, ToSchema)]
pub(super) struct ReviewView {
    decision: String,
    reason: String,
    reviewer: String,
    at_ms: i64,
}

/// One attendance record as the server checked it.
#[derive(Serialize, ToSchema)]
pub(super) struct AttendanceView {
    attendance_id: String,
    trainee_id: String,
    day: String,
    kind: String,
    method: String,
    at_ms: i64,
    corrected_ms: Option<i64>,
    proof_valid: Option<bool>,
    payable: bool,
    flags: Vec<FlagView>,
    review: Option<ReviewView>,
}

/// A register with several values.
#[derive(Serialize, ToSchema)]
pub(super) struct ConflictView {
    doc_id: String,
    path: String,
    winner: String,
    values: Vec<String>,
    review: Option<ReviewView>,
}

/// Everything the district sees of one class.
#[derive(Serialize, ToSchema)]
pub(super) struct ClassPage {
    /// `open` while a call-back denial holds the class (none of its records are paid until the
    /// office decides it in the review queue), `rejected` once the office rejected the class after
    /// a denial, `none` otherwise.
    hold: String,
    class: ClassInfo,
    trainees: Vec<RosterRow>,
    attendance: Vec<AttendanceView>,
    conflicts: Vec<ConflictView>,
}

pub(super) fn reviews_of(
    conn: &dyn Sql,
    doc: &str,
) -> Result<BTreeMap<String, ReviewView>, ApiError> {
    Ok(conn
        .query_map(
            "SELECT subject, decision, reason, reviewer, at_ms FROM p_reviews WHERE doc_id = ?1",
            args![doc],
            |r| {
                Ok((
                    r.get(0)?,
                    ReviewView {
                        decision: r.get(1)?,
                        reason: conn.open_text(Sealed::ReviewReason, r.get(2)?)?,
                        reviewer: r.get(3)?,
                        at_ms: r.get(4)?,
                    },
                ))
            },
        )?
        .into_iter()
        .collect())
}

pub(super) fn label<T: std::str::FromStr>(code: &str, f: impl Fn(&T) -> &'static str) -> String {
    code.parse::<T>()
        .map(|v| f(&v).to_owned())
        .unwrap_or_else(|_| code.to_owned())
}

/// One class: roster, attendance per day with proofs and flags, payable days, allowance, subsidy.
#[utoipa::path(get, path = "/api/v1/classes/{id}", tag = "office", security(("session" = [])),
    params(("id" = String, Path, description = "class id")),
    responses(
        (status = 200, description = "The class.", body = ClassPage),
        (status = 404, body = ErrorBody, description = "`not_found`: no such class."),
        SessionRefused,
        Limits,
        Storage,
    ))]
pub(super) async fn class_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ClassPage>, ApiError> {
    use songpei_core::catalog::{ClassStatus, Level, TrainingType};
    with_reader(&state, move |s, conn| {
        session(s, conn, &headers)?;
        let places = Places::load(conn)?;
        let row = conn
            .query_opt(
                "SELECT title, village, occupation, level, training_type, subsidised, status,
                   first_day, last_day FROM p_classes WHERE id = ?1",
                args![&id],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                        r.get::<String>(4)?,
                        r.get::<bool>(5)?,
                        r.get::<String>(6)?,
                        r.get::<String>(7)?,
                        r.get::<String>(8)?,
                    ))
                },
            )?
            .ok_or_else(|| ApiError::NotFound(format!("class {id} is not on the server")))?;
        let (title, village, occupation, level, training_type, subsidised, status, first, last) =
            row;
        let first_day = parse_day("first_day", &first)?;
        let last_day = parse_day("last_day", &last)?;
        let days: Vec<String> = first_day
            .iter_days()
            .take_while(|d| *d <= last_day)
            .take(366)
            .map(|d| d.to_string())
            .collect();
        let policy = &s.config.policy;
        let pay = crate::store::settlement::class_pay(conn, &id, policy)?
            .ok_or_else(|| ApiError::NotFound(format!("class {id} is not on the server")))?;
        let completions: BTreeMap<String, Option<String>> = conn
            .query_map(
                "SELECT trainee_id, completion FROM p_enrolments WHERE class_id = ?1",
                args![&id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .into_iter()
            .collect();
        let mut trainees = Vec::new();
        for place in pay.places {
            let person = conn.query_opt(
                "SELECT name_masked, id_masked FROM p_trainees WHERE id = ?1",
                args![&place.trainee],
                |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
            )?;
            let (name_masked, id_masked) = person.unzip();
            trainees.push(RosterRow {
                completion: completions.get(&place.trainee).cloned().flatten(),
                trainee_id: place.trainee,
                name_masked,
                id_masked,
                poverty_label: place.poverty.map(|p| p.label_zh().to_owned()),
                poverty_status: place.poverty.map(|p| p.code().to_owned()),
                // Days whose only records are held appear too, as held.
                days: place
                    .held
                    .iter()
                    .map(|d| (*d, crate::store::settlement::DayPay::default()))
                    .chain(place.days.iter().map(|(d, v)| (*d, v.clone())))
                    .map(|(d, v)| {
                        (
                            d.to_string(),
                            TraineeDay {
                                signed_in: v.signed_in,
                                signed_out: v.signed_out,
                                payable: v.payable,
                                held: place.held.contains(&d),
                            },
                        )
                    })
                    .collect(),
                payable_days: place.payable.len() as i64,
                held_days: place.held.len() as i64,
                allowance_fen: place.allowance_fen,
                subsidy: place
                    .decision_row
                    .map(|(decision, year, nth, cap, _)| SubsidyView {
                        rule: rule_text(&decision, year, nth, cap),
                        decision,
                        year: Some(year),
                        nth,
                    }),
            });
        }
        let reviews = reviews_of(conn, &id)?;
        let mut flags: BTreeMap<String, Vec<FlagView>> = BTreeMap::new();
        for (a, f) in conn.query_map(
            "SELECT attendance_id, flag, detail, blocks_pay FROM attendance_flags
             WHERE class_id = ?1",
            args![&id],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    FlagView {
                        flag: r.get(1)?,
                        detail: r.get(2)?,
                        blocks_pay: r.get(3)?,
                    },
                ))
            },
        )? {
            flags.entry(a).or_default().push(f);
        }
        let mut attendance: Vec<AttendanceView> = conn
            .query_map(
                "SELECT attendance_id, trainee_id, day, kind, method, at_ms, corrected_ms,
                   proof_valid, payable FROM attendance_checks WHERE class_id = ?1
                 ORDER BY day, COALESCE(corrected_ms, at_ms)",
                args![&id],
                |r| {
                    Ok(AttendanceView {
                        attendance_id: r.get(0)?,
                        trainee_id: r.get(1)?,
                        day: r.get(2)?,
                        kind: r.get(3)?,
                        method: r.get(4)?,
                        at_ms: r.get(5)?,
                        corrected_ms: r.get(6)?,
                        proof_valid: r.get(7)?,
                        payable: r.get(8)?,
                        flags: Vec::new(),
                        review: None,
                    })
                },
            )?
            .into_iter()
            .collect();
        let hold = crate::callbacks::hold_of(conn, &id, |s| {
            reviews.get(s).and_then(|r| Decision::parse(&r.decision))
        })?;
        let denied = crate::callbacks::denied_days(conn, &id)?;
        let mut reviews = reviews;
        for a in &mut attendance {
            a.flags = flags.remove(&a.attendance_id).unwrap_or_default();
            a.review = reviews.remove(&a.attendance_id);
            if let Some(r) = &a.review {
                a.payable = r.decision == "accepted";
            }
            let review = a
                .review
                .as_ref()
                .and_then(|r| Some((Decision::parse(&r.decision)?, r.at_ms)));
            if crate::callbacks::rejected_by_denial(&denied, &a.trainee_id, &a.day, review) {
                a.payable = false;
            }
            // A held class pays none of its records until the office decides.
            if hold != Hold::None {
                a.payable = false;
            }
        }
        let conflicts = conn
            .query_map(
                "SELECT doc_id, path, winner, vals FROM p_conflicts WHERE doc_id = ?1",
                args![&id],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        conn.open_text(Sealed::ConflictValues, r.get(3)?)?,
                    ))
                },
            )?
            .into_iter()
            .map(|(doc_id, path, winner, vals)| ConflictView {
                review: reviews.remove(&format!("conflict:{path}")),
                values: serde_json::from_str(&vals).unwrap_or_default(),
                doc_id,
                path,
                winner,
            })
            .collect();
        Ok(Json(ClassPage {
            hold: match hold {
                Hold::None => "none",
                Hold::Open => "open",
                Hold::Rejected => "rejected",
            }
            .to_owned(),
            class: ClassInfo {
                id: id.clone(),
                title,
                village_name: places.village_name(&village),
                township_name: places.township_name(&village),
                village,
                occupation,
                level_label: label::<Level>(&level, |l| l.label_zh()),
                level,
                training_type_label: label::<TrainingType>(&training_type, |t| t.label_zh()),
                training_type,
                subsidised,
                status_label: label::<ClassStatus>(&status, |c| c.label_zh()),
                status,
                first_day: first,
                last_day: last,
                days,
            },
            trainees,
            attendance,
            conflicts,
        }))
    })
    .await
}
