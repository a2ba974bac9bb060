//! The overview: classes running on a day, person-times by township and village against the
//! year's target, sign-ins per day, and what waits for review.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::args;
use crate::db::Sql;
use crate::error::{ApiError, ErrorBody};
use crate::office::openapi::{Limits, Session as SessionRefused, Storage};
use crate::report::target_for;

use super::sessions::DistrictInfo;
use super::{Places, district_info, now_ms, session, with_reader};

/// Query of the overview.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct OverviewQuery {
    /// The day to show (China time); today when absent.
    pub date: Option<String>,
}

/// A class running on the day.
#[derive(Serialize, ToSchema)]
pub(super) struct TodayClass {
    class_id: String,
    title: String,
    village: String,
    village_name: String,
    township_name: String,
    status: String,
    enrolled: i64,
    signed_in_today: i64,
    first_day: String,
    last_day: String,
}

/// Person-times of a month.
#[derive(Serialize, ToSchema)]
pub(super) struct MonthCount {
    month: String,
    person_times: i64,
}

/// Person-times of a year against its target.
#[derive(Serialize, ToSchema)]
pub(super) struct YearCount {
    year: i32,
    person_times: i64,
    target: Option<i64>,
    progress: Option<f64>,
}

/// A village's person-times.
#[derive(Serialize, ToSchema)]
pub(super) struct VillageCount {
    code: String,
    name: String,
    person_times_month: i64,
    person_times_year: i64,
}

/// A township's person-times, with its villages.
#[derive(Serialize, ToSchema)]
pub(super) struct TownshipCount {
    code: String,
    name: String,
    person_times_month: i64,
    person_times_year: i64,
    villages: Vec<VillageCount>,
}

/// Attendance of one day.
#[derive(Serialize, ToSchema)]
pub(super) struct DayCount {
    day: String,
    signed_in: i64,
    payable: i64,
}

/// Person-times of a month with the year's running total.
#[derive(Serialize, ToSchema)]
pub(super) struct MonthProgress {
    month: String,
    person_times: i64,
    cumulative: i64,
}

/// The overview.
#[derive(Serialize, ToSchema)]
pub(super) struct Overview {
    date: String,
    district: DistrictInfo,
    today: Vec<TodayClass>,
    month: MonthCount,
    year: YearCount,
    by_township: Vec<TownshipCount>,
    attendance_by_day: Vec<DayCount>,
    progress_by_month: Vec<MonthProgress>,
    pending_review: i64,
    /// The audit chain's head now (as printed on each monthly report).
    audit_head: crate::accounts::audit::Head,
}

pub(super) fn parse_day(field: &str, s: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| ApiError::Invalid {
        field: field.to_owned(),
        message: "must be a date written YYYY-MM-DD".into(),
    })
}

/// The person-times counted for the district: one per completer who passed, in a closed class,
/// counted in the month of the class's last day (a class closes after its last day).
pub(super) const PERSON_TIMES: &str = "SELECT c.village, substr(c.last_day, 1, 7), COUNT(*)
     FROM p_enrolments e JOIN p_classes c ON c.id = e.class_id
     WHERE c.status = 'closed' AND e.completion = 'passed' AND substr(c.last_day, 1, 4) = ?1
     GROUP BY c.village, substr(c.last_day, 1, 7)";

pub(super) fn pending_count(conn: &dyn Sql) -> Result<i64, ApiError> {
    Ok(conn.query_row(
        "SELECT (SELECT COUNT(DISTINCT f.attendance_id) FROM attendance_flags f
                 WHERE f.blocks_pay = 1 AND NOT EXISTS (SELECT 1 FROM p_reviews r
                   WHERE r.doc_id = f.class_id AND r.subject = f.attendance_id))
              + (SELECT COUNT(*) FROM p_conflicts c WHERE NOT EXISTS (SELECT 1 FROM p_reviews r
                   WHERE r.doc_id = c.doc_id AND r.subject = 'conflict:' || c.path))
              + (SELECT COUNT(DISTINCT h.class_id) FROM class_holds h WHERE NOT EXISTS (
                   SELECT 1 FROM p_reviews r
                   WHERE r.doc_id = h.class_id AND r.subject = 'hold:' || h.callback_id))",
        &[],
        |r| r.get(0),
    )?)
}

/// What the district sees first: today's classes, person-times against target, attendance.
#[utoipa::path(get, path = "/api/v1/overview", tag = "office", security(("session" = [])),
    params(OverviewQuery),
    responses(
        (status = 200, description = "The overview of the day.", body = Overview),
        (status = 400, body = ErrorBody, description = "`bad_input`: `date` is not YYYY-MM-DD."),
        SessionRefused,
        Limits,
        Storage,
    ))]
pub(super) async fn overview(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<OverviewQuery>,
) -> Result<Json<Overview>, ApiError> {
    with_reader(&state, move |s, conn| {
        session(s, conn, &headers)?;
        let date = match &q.date {
            Some(d) => parse_day("date", d)?,
            None => songpei_core::clock::local_date(now_ms()),
        };
        let places = Places::load(conn)?;
        let day = date.to_string();
        let today = conn
            .query_map(
                "SELECT c.id, c.title, c.village, c.status, c.first_day, c.last_day,
                   (SELECT COUNT(*) FROM p_enrolments e WHERE e.class_id = c.id),
                   (SELECT COUNT(*) FROM p_attendance_days a WHERE a.class_id = c.id
                      AND a.day = ?1 AND a.signed_in = 1)
                 FROM p_classes c
                 WHERE c.first_day <= ?1 AND c.last_day >= ?1 AND c.status != 'cancelled'
                 ORDER BY c.village, c.title",
                args![&day],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                        r.get::<String>(4)?,
                        r.get::<String>(5)?,
                        r.get::<i64>(6)?,
                        r.get::<i64>(7)?,
                    ))
                },
            )?
            .into_iter()
            .map(
                |(id, title, village, status, first, last, enrolled, signed)| TodayClass {
                    class_id: id,
                    title,
                    village_name: places.village_name(&village),
                    township_name: places.township_name(&village),
                    village,
                    status,
                    enrolled,
                    signed_in_today: signed,
                    first_day: first,
                    last_day: last,
                },
            )
            .collect();
        let year = date.year();
        let month = format!("{:04}-{:02}", year, date.month());
        // (village, month) -> person-times
        let counts: Vec<(String, String, i64)> = conn
            .query_map(PERSON_TIMES, args![year.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .into_iter()
            .collect();
        let mut by_village: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut by_month: BTreeMap<String, i64> = BTreeMap::new();
        for (village, m, n) in &counts {
            if *m > month {
                continue;
            }
            let e = by_village.entry(village.clone()).or_default();
            e.1 += n;
            if *m == month {
                e.0 += n;
            }
            *by_month.entry(m.clone()).or_default() += n;
        }
        for v in places.villages.keys() {
            by_village.entry(v.clone()).or_default();
        }
        let mut townships: BTreeMap<String, TownshipCount> = BTreeMap::new();
        for (v, (m, y)) in &by_village {
            let t = places.township_of(v);
            let entry = townships.entry(t.clone()).or_insert_with(|| TownshipCount {
                name: places
                    .townships
                    .get(&t)
                    .cloned()
                    .unwrap_or_else(|| t.clone()),
                code: t.clone(),
                person_times_month: 0,
                person_times_year: 0,
                villages: Vec::new(),
            });
            entry.person_times_month += m;
            entry.person_times_year += y;
            entry.villages.push(VillageCount {
                code: v.clone(),
                name: places.village_name(v),
                person_times_month: *m,
                person_times_year: *y,
            });
        }
        let year_total: i64 = by_month.values().sum();
        let target = target_for(conn, year)?;
        let mut cumulative = 0;
        let progress_by_month = (1..=date.month())
            .map(|m| {
                let key = format!("{year:04}-{m:02}");
                let n = by_month.get(&key).copied().unwrap_or(0);
                cumulative += n;
                MonthProgress {
                    month: key,
                    person_times: n,
                    cumulative,
                }
            })
            .collect();
        let from = (date - chrono::Days::new(29)).to_string();
        let per_day: BTreeMap<String, (i64, i64)> = conn
            .query_map(
                "SELECT day, SUM(signed_in), SUM(payable) FROM p_attendance_days
                 WHERE day BETWEEN ?1 AND ?2 GROUP BY day",
                args![&from, &day],
                |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))),
            )?
            .into_iter()
            .collect();
        let attendance_by_day = (0..30)
            .rev()
            .map(|back| {
                let d = (date - chrono::Days::new(back)).to_string();
                let (signed_in, payable) = per_day.get(&d).copied().unwrap_or((0, 0));
                DayCount {
                    day: d,
                    signed_in,
                    payable,
                }
            })
            .collect();
        Ok(Json(Overview {
            date: day,
            district: district_info(conn)?,
            today,
            month: MonthCount {
                person_times: by_month.get(&month).copied().unwrap_or(0),
                month,
            },
            year: YearCount {
                year,
                person_times: year_total,
                progress: target
                    .filter(|t| *t > 0)
                    .map(|t| year_total as f64 / t as f64),
                target,
            },
            by_township: townships.into_values().collect(),
            attendance_by_day,
            progress_by_month,
            pending_review: pending_count(conn)?,
            audit_head: crate::accounts::audit::head(conn)?,
        }))
    })
    .await
}
