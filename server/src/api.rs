//! The district office's JSON API under `/api/v1`, used by the dashboard: sign-in with a district
//! account, the overview, classes, trainee lookup (masked; unmasking asks for a reason and is
//! audited), the review queue, targets and the monthly report. Each route is registered from its
//! handler's `#[utoipa::path]`, so it is described in the OpenAPI document at `/api/openapi.json`.
//!
//! Only district accounts (`district_admin`, `district_viewer`) sign in; only an admin decides
//! reviews and imports targets. The session is a cookie holding the account and an expiry under the
//! server's MAC key, `HttpOnly` and `SameSite=Strict`.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use songpei_core::doc::review::Decision;
use songpei_core::ids::{DocId, TraineeId};
use songpei_core::validate::IdNumber;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::accounts::{self, AccountError, Role};
use crate::args;
use crate::audit::{self, Entry};
use crate::db::{Sql, Transact};
use crate::error::{ApiError, ErrorBody};
use crate::openapi::{Limits, Session as SessionRefused, Storage};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "songpei_session";
/// How long a session lasts, in seconds.
const SESSION_SECS: i64 = 8 * 3600;

/// The routes of the API and their OpenAPI description. One `routes!` per path: handlers grouped in
/// one `routes!` are served on every path among them, so only the methods of one path share one.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(crate::openapi::document))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(overview))
        .routes(routes!(classes))
        .routes(routes!(class_page))
        .routes(routes!(trainees))
        .routes(routes!(unmask))
        .routes(routes!(erase))
        .routes(routes!(review_queue, review_decide))
        .routes(routes!(targets, import_targets))
        .routes(routes!(report_json))
        .routes(routes!(report_xlsx))
        .routes(routes!(report_csv))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs `f` on the blocking pool with the store's connection.
async fn with_conn<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&AppState, &dyn Sql) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let store = s.store.lock().map_err(|_| ApiError::Internal)?;
        f(&s, store.conn())
    })
    .await
    .map_err(|_| ApiError::Internal)?
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// A signed-in district account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    /// Username.
    pub username: String,
    /// Role.
    pub role: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn unb64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

fn session_mac(state: &AppState, payload: &str) -> Vec<u8> {
    crate::auth::mac(&state.token_key, &format!("web-session.{payload}"))
}

fn mint_session(state: &AppState, s: &Session) -> String {
    let payload = b64(&serde_json::to_vec(s).unwrap_or_default());
    let tag = b64(&session_mac(state, &payload));
    format!("{payload}.{tag}")
}

/// The session of a request's cookie, checked against the accounts (a removed or demoted account
/// loses its session at once).
fn session(state: &AppState, conn: &dyn Sql, headers: &HeaderMap) -> Result<Session, ApiError> {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
        .ok_or(ApiError::Unauthorized("unauthorized"))?;
    let (payload, tag) = cookie
        .split_once('.')
        .ok_or(ApiError::Unauthorized("unauthorized"))?;
    let tag = unb64(tag).ok_or(ApiError::Unauthorized("unauthorized"))?;
    let want = session_mac(state, payload);
    if !constant_eq(&tag, &want) {
        return Err(ApiError::Unauthorized("unauthorized"));
    }
    let s: Session = unb64(payload)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(ApiError::Unauthorized("unauthorized"))?;
    if s.exp <= now_ms() / 1000 {
        return Err(ApiError::Unauthorized("session_expired"));
    }
    match accounts::account_by_username(conn, &s.username) {
        Ok((_, role)) if role.code() == s.role && is_district(role) => Ok(s),
        _ => Err(ApiError::Unauthorized("unauthorized")),
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn is_district(role: Role) -> bool {
    matches!(role, Role::DistrictAdmin | Role::DistrictViewer)
}

fn admin_only(s: &Session) -> Result<(), ApiError> {
    if s.role == Role::DistrictAdmin.code() {
        Ok(())
    } else {
        Err(ApiError::NotAllowed(
            "only a district admin may do this".into(),
        ))
    }
}

/// Login request.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

/// The district.
#[derive(Serialize, ToSchema)]
pub struct DistrictInfo {
    /// Six-digit code.
    pub code: String,
    /// Name.
    pub name: String,
}

/// Who is signed in.
#[derive(Serialize, ToSchema)]
pub struct Me {
    /// Username.
    pub username: String,
    /// `district_admin` or `district_viewer`.
    pub role: String,
    /// The district.
    pub district: DistrictInfo,
}

fn district_info(conn: &dyn Sql) -> Result<DistrictInfo, ApiError> {
    let d = accounts::district(conn)?.ok_or(ApiError::NotInitialised)?;
    Ok(DistrictInfo {
        code: d.code,
        name: d.name,
    })
}

/// Signs in a district account.
#[utoipa::path(post, path = "/api/v1/login", tag = "office", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in.", body = Me,
            headers(("Set-Cookie" = String, description = "The session cookie, `songpei_session`."))),
        (status = 400, body = ErrorBody, description = "`bad_request`: the body is not a login."),
        (status = 401, body = ErrorBody, description = "`bad_credentials`."),
        (status = 403, body = ErrorBody, description = "`not_allowed`: only district accounts \
            sign in to the dashboard."),
        Limits,
        Storage,
    ))]
async fn login(
    State(state): State<AppState>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|_| ApiError::BadRequest("the body is not a login".into()))?;
    let (me, cookie) = with_conn(&state, move |s, conn| {
        let ok = accounts::check_password(conn, req.username.trim(), &req.password)?;
        let role = accounts::account_by_username(conn, req.username.trim())
            .ok()
            .map(|(_, r)| r);
        let Some(role) = role.filter(|_| ok) else {
            return Err(ApiError::Unauthorized("bad_credentials"));
        };
        if !is_district(role) {
            return Err(ApiError::NotAllowed(
                "only district accounts sign in to the dashboard".into(),
            ));
        }
        let session = Session {
            username: req.username.trim().to_owned(),
            role: role.code().to_owned(),
            exp: now_ms() / 1000 + SESSION_SECS,
        };
        audit::append(
            conn,
            now_ms(),
            &[Entry::new(
                format!("account:{}", session.username),
                "login",
                session.username.clone(),
                serde_json::json!({}),
            )],
        )?;
        Ok((
            Me {
                username: session.username.clone(),
                role: session.role.clone(),
                district: district_info(conn)?,
            },
            mint_session(s, &session),
        ))
    })
    .await?;
    let mut resp = Json(me).into_response();
    let c = format!(
        "{SESSION_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}"
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// Signs out.
#[utoipa::path(post, path = "/api/v1/logout", tag = "office",
    responses(
        (status = 204, description = "Signed out.",
            headers(("Set-Cookie" = String, description = "Clears the session cookie."))),
        Limits,
    ))]
async fn logout() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("songpei_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/v1/me", tag = "office", security(("session" = [])),
    responses((status = 200, description = "The account and its district.", body = Me),
        SessionRefused, Limits, Storage))]
async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Me>, ApiError> {
    with_conn(&state, move |s, conn| {
        let session = session(s, conn, &headers)?;
        Ok(Json(Me {
            username: session.username,
            role: session.role,
            district: district_info(conn)?,
        }))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Places

struct Places {
    villages: BTreeMap<String, (String, String)>,
    townships: BTreeMap<String, String>,
}

impl Places {
    fn load(conn: &dyn Sql) -> Result<Self, ApiError> {
        let villages = conn
            .query_map("SELECT code, name, township FROM places", &[], |r| {
                Ok((r.get(0)?, (r.get(1)?, r.get(2)?)))
            })?
            .into_iter()
            .collect();
        let townships = conn
            .query_map("SELECT code, name FROM townships", &[], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .into_iter()
            .collect();
        Ok(Self {
            villages,
            townships,
        })
    }

    fn village_name(&self, code: &str) -> String {
        self.villages
            .get(code)
            .map_or_else(|| code.to_owned(), |v| v.0.clone())
    }

    fn township_of(&self, village: &str) -> String {
        self.villages
            .get(village)
            .map_or_else(|| village.chars().take(9).collect(), |v| v.1.clone())
    }

    fn township_name(&self, village: &str) -> String {
        let t = self.township_of(village);
        self.townships.get(&t).cloned().unwrap_or(t)
    }
}

// ---------------------------------------------------------------------------------------------
// Overview

/// Query of the overview.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverviewQuery {
    /// The day to show (China time); today when absent.
    pub date: Option<String>,
}

/// A class running on the day.
#[derive(Serialize, ToSchema)]
pub struct TodayClass {
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
pub struct MonthCount {
    month: String,
    person_times: i64,
}

/// Person-times of a year against its target.
#[derive(Serialize, ToSchema)]
pub struct YearCount {
    year: i32,
    person_times: i64,
    target: Option<i64>,
    progress: Option<f64>,
}

/// A village's person-times.
#[derive(Serialize, ToSchema)]
pub struct VillageCount {
    code: String,
    name: String,
    person_times_month: i64,
    person_times_year: i64,
}

/// A township's person-times, with its villages.
#[derive(Serialize, ToSchema)]
pub struct TownshipCount {
    code: String,
    name: String,
    person_times_month: i64,
    person_times_year: i64,
    villages: Vec<VillageCount>,
}

/// Attendance of one day.
#[derive(Serialize, ToSchema)]
pub struct DayCount {
    day: String,
    signed_in: i64,
    payable: i64,
}

/// Person-times of a month with the year's running total.
#[derive(Serialize, ToSchema)]
pub struct MonthProgress {
    month: String,
    person_times: i64,
    cumulative: i64,
}

/// The overview.
#[derive(Serialize, ToSchema)]
pub struct Overview {
    date: String,
    district: DistrictInfo,
    today: Vec<TodayClass>,
    month: MonthCount,
    year: YearCount,
    by_township: Vec<TownshipCount>,
    attendance_by_day: Vec<DayCount>,
    progress_by_month: Vec<MonthProgress>,
    pending_review: i64,
}

fn parse_day(field: &str, s: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| ApiError::Invalid {
        field: field.to_owned(),
        message: "must be a date written YYYY-MM-DD".into(),
    })
}

/// The person-times counted for the district: one per completer who passed, in a closed class,
/// counted in the month of the class's last day (a class closes after its last day).
const PERSON_TIMES: &str = "SELECT c.village, substr(c.last_day, 1, 7), COUNT(*)
     FROM p_enrolments e JOIN p_classes c ON c.id = e.class_id
     WHERE c.status = 'closed' AND e.completion = 'passed' AND substr(c.last_day, 1, 4) = ?1
     GROUP BY c.village, substr(c.last_day, 1, 7)";

/// The district's target for `year`, by its code or name in the target table.
pub fn target_for(db: &dyn Sql, year: i32) -> Result<Option<i64>, ApiError> {
    let d = accounts::district(db)?.ok_or(ApiError::NotInitialised)?;
    Ok(db.query_opt(
        "SELECT person_times FROM targets WHERE year = ?1 AND region IN (?2, ?3)",
        args![year, &d.code, &d.name],
        |r| r.get(0),
    )?)
}

fn pending_count(conn: &dyn Sql) -> Result<i64, ApiError> {
    Ok(conn.query_row(
        "SELECT (SELECT COUNT(DISTINCT f.attendance_id) FROM attendance_flags f
                 WHERE f.blocks_pay = 1 AND NOT EXISTS (SELECT 1 FROM p_reviews r
                   WHERE r.doc_id = f.class_id AND r.subject = f.attendance_id))
              + (SELECT COUNT(*) FROM p_conflicts c WHERE NOT EXISTS (SELECT 1 FROM p_reviews r
                   WHERE r.doc_id = c.doc_id AND r.subject = 'conflict:' || c.path))",
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
async fn overview(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<OverviewQuery>,
) -> Result<Json<Overview>, ApiError> {
    with_conn(&state, move |s, conn| {
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
        }))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Classes

/// Filters of the class list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClassQuery {
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
pub struct ClassSummary {
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
async fn classes(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ClassQuery>,
) -> Result<Json<Vec<ClassSummary>>, ApiError> {
    with_conn(&state, move |s, conn| {
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
                        AND r.subject = f.attendance_id))
                 FROM p_classes c
                 WHERE (?1 IS NULL OR c.village = ?1) AND (?2 IS NULL OR c.status = ?2)
                   AND (?3 IS NULL OR c.last_day >= ?3) AND (?4 IS NULL OR c.first_day <= ?4)
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
pub struct ClassInfo {
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
pub struct TraineeDay {
    signed_in: bool,
    signed_out: bool,
    payable: bool,
    /// A record of the day waits for the district's review.
    held: bool,
}

/// A place's subsidy decision and the rule that made it.
#[derive(Serialize, ToSchema)]
pub struct SubsidyView {
    decision: String,
    year: Option<i32>,
    nth: Option<i64>,
    rule: String,
}

/// One trainee of a class.
#[derive(Serialize, ToSchema)]
pub struct RosterRow {
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
pub struct FlagView {
    flag: String,
    detail: String,
    blocks_pay: bool,
}

/// A review decision.
#[derive(Serialize, ToSchema)]
pub struct ReviewView {
    decision: String,
    reason: String,
    reviewer: String,
    at_ms: i64,
}

/// One attendance record as the server checked it.
#[derive(Serialize, ToSchema)]
pub struct AttendanceView {
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
pub struct ConflictView {
    doc_id: String,
    path: String,
    winner: String,
    values: Vec<String>,
    review: Option<ReviewView>,
}

/// Everything the district sees of one class.
#[derive(Serialize, ToSchema)]
pub struct ClassPage {
    class: ClassInfo,
    trainees: Vec<RosterRow>,
    attendance: Vec<AttendanceView>,
    conflicts: Vec<ConflictView>,
}

fn reviews_of(conn: &dyn Sql, doc: &str) -> Result<BTreeMap<String, ReviewView>, ApiError> {
    Ok(conn
        .query_map(
            "SELECT subject, decision, reason, reviewer, at_ms FROM p_reviews WHERE doc_id = ?1",
            args![doc],
            |r| {
                Ok((
                    r.get(0)?,
                    ReviewView {
                        decision: r.get(1)?,
                        reason: r.get(2)?,
                        reviewer: r.get(3)?,
                        at_ms: r.get(4)?,
                    },
                ))
            },
        )?
        .into_iter()
        .collect())
}

/// The rule behind a subsidy decision, in Chinese.
pub fn rule_text(decision: &str, year: i32, nth: Option<i64>, cap: Option<i64>) -> String {
    match decision {
        "subsidised" => format!(
            "{year}年第{}次补贴性培训（每人每年至多3次）",
            nth.unwrap_or(0)
        ),
        "class_not_subsidised" => "非补贴性培训班".to_owned(),
        "class_cancelled" => "培训班已取消，不予补贴".to_owned(),
        "year_cap_reached" => format!("{year}年已享受{}次补贴性培训，达到上限", cap.unwrap_or(3)),
        "same_occupation_and_level" => "同一职业（工种）同一等级已享受过补贴".to_owned(),
        other => other.to_owned(),
    }
}

fn label<T: std::str::FromStr>(code: &str, f: impl Fn(&T) -> &'static str) -> String {
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
async fn class_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ClassPage>, ApiError> {
    use songpei_core::catalog::{ClassStatus, Level, TrainingType};
    with_conn(&state, move |s, conn| {
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
        let pay = crate::settlement::class_pay(conn, &id, policy)?
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
                    .map(|d| (*d, crate::settlement::DayPay::default()))
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
        let mut reviews = reviews;
        for a in &mut attendance {
            a.flags = flags.remove(&a.attendance_id).unwrap_or_default();
            a.review = reviews.remove(&a.attendance_id);
            if let Some(r) = &a.review {
                a.payable = r.decision == "accepted";
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
                        r.get::<String>(3)?,
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

// ---------------------------------------------------------------------------------------------
// Trainees

/// Lookup by ID number. It travels in the body of a POST, never in a URL, where proxies' access
/// logs and the browser's history would keep it.
#[derive(Deserialize, ToSchema)]
pub struct TraineeQuery {
    /// The 18-digit ID number; matched through the blind index, never stored in the clear.
    pub id_number: String,
}

/// A class of a trainee.
#[derive(Serialize, ToSchema)]
pub struct TraineeClass {
    class_id: String,
    title: String,
    first_day: String,
    decision: Option<String>,
}

/// A trainee found, masked.
#[derive(Serialize, ToSchema)]
pub struct TraineeHit {
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
async fn trainees(
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
pub struct UnmaskRequest {
    /// The reason, kept in the audit log.
    pub reason: String,
}

/// A trainee's personal data in the clear.
#[derive(Serialize, ToSchema)]
pub struct Unmasked {
    name: String,
    id_number: String,
    phone: Option<String>,
}

/// Shows a trainee's name, ID number and phone in the clear; the reason goes to the audit log.
#[utoipa::path(post, path = "/api/v1/trainees/{id}/unmask", tag = "office",
    security(("session" = [])), request_body = UnmaskRequest,
    params(("id" = String, Path, description = "trainee id")),
    responses(
        (status = 200, description = "The personal data in the clear.", body = Unmasked),
        (status = 400, body = ErrorBody, description = "`bad_input`: the reason is shorter than 4 \
            characters; `bad_request`: the body is not a reason."),
        (status = 404, body = ErrorBody, description = "`not_found`: no such trainee."),
        SessionRefused,
        Limits,
        Storage,
    ))]
async fn unmask(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<UnmaskRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Unmasked>, ApiError> {
    let Json(req) = body.map_err(|_| ApiError::BadRequest("the body is not a reason".into()))?;
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = s.store.lock().map_err(|_| ApiError::Internal)?;
        let session = session(&s, store.conn(), &headers)?;
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
pub struct ErasedDocs {
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
async fn erase(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<UnmaskRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ErasedDocs>, ApiError> {
    let Json(req) = body.map_err(|_| ApiError::BadRequest("the body is not a reason".into()))?;
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = s.store.lock().map_err(|_| ApiError::Internal)?;
        let session = session(&s, store.conn(), &headers)?;
        admin_only(&session)?;
        let ids = crate::erasure::erase_trainee(
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

// ---------------------------------------------------------------------------------------------
// Review

/// Something waiting for review.
#[derive(Serialize, ToSchema)]
pub struct ReviewItem {
    /// `flag` or `conflict`.
    kind: String,
    doc_id: String,
    /// For a flag: the attendance id; for a conflict: `conflict:<path>`.
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
}

/// The review queue.
#[derive(Serialize, ToSchema)]
pub struct ReviewQueue {
    items: Vec<ReviewItem>,
}

/// Flags that hold pay and conflicts, not yet decided.
#[utoipa::path(get, path = "/api/v1/review", tag = "office", security(("session" = [])),
    responses((status = 200, description = "What waits for a decision.", body = ReviewQueue),
        SessionRefused, Limits, Storage))]
async fn review_queue(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ReviewQueue>, ApiError> {
    with_conn(&state, move |s, conn| {
        session(s, conn, &headers)?;
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
                    r.get::<String>(5)?,
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
            });
        }
        Ok(Json(ReviewQueue { items }))
    })
    .await
}

/// A decision on one review item.
#[derive(Deserialize, ToSchema)]
pub struct ReviewRequest {
    /// The document the subject belongs to.
    pub doc_id: String,
    /// The attendance id, or `conflict:<path>`.
    pub subject: String,
    /// `accepted` or `rejected`.
    pub decision: String,
    /// Why (at least 2 characters).
    pub reason: String,
}

/// Done.
#[derive(Serialize, ToSchema)]
pub struct Done {
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
        SessionRefused,
        Limits,
        Storage,
    ))]
async fn review_decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ReviewRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Done>, ApiError> {
    let Json(req) = body.map_err(|_| ApiError::BadRequest("the body is not a decision".into()))?;
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let session = {
            let store = s.store.lock().map_err(|_| ApiError::Internal)?;
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
            &s.actor,
            &crate::review::Decide {
                reviewer: &session.username,
                doc,
                subject: &req.subject,
                decision,
                reason: &req.reason,
            },
            now_ms(),
        )?;
        Ok(Json(Done { ok: true }))
    })
    .await
    .map_err(|_| ApiError::Internal)?
}

// ---------------------------------------------------------------------------------------------
// Targets

/// One target.
#[derive(Serialize, ToSchema)]
pub struct Target {
    region: String,
    year: i32,
    person_times: i64,
}

/// The imported targets.
#[utoipa::path(get, path = "/api/v1/targets", tag = "office", security(("session" = [])),
    responses((status = 200, description = "Every target, by year and region.", body = [Target]),
        SessionRefused, Limits, Storage))]
async fn targets(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<Target>>, ApiError> {
    with_conn(&state, move |s, conn| {
        session(s, conn, &headers)?;
        Ok(Json(
            conn.query_map(
                "SELECT region, year, person_times FROM targets ORDER BY year, region",
                &[],
                |r| {
                    Ok(Target {
                        region: r.get(0)?,
                        year: r.get(1)?,
                        person_times: r.get(2)?,
                    })
                },
            )?
            .into_iter()
            .collect(),
        ))
    })
    .await
}

/// How many targets were imported.
#[derive(Serialize, ToSchema)]
pub struct Imported {
    imported: usize,
}

/// Imports a target table, as CSV: all rows or none.
///
/// The table is shaped like the city's: 区域, 三年计划总目标, then one column a year such as
/// `2019年`.
#[utoipa::path(post, path = "/api/v1/targets", tag = "office", security(("session" = [])),
    request_body(content = String, content_type = "text/csv"),
    responses(
        (status = 200, description = "Every row imported.", body = Imported),
        (status = 400, description = "`bad_csv`, with every row's problem in `problems`: nothing \
            was imported. A body that is not UTF-8 is refused in plain text.",
            content((ErrorBody = "application/json"), (String = "text/plain"))),
        (status = 403, body = ErrorBody, description = "`not_allowed`: district admins only."),
        (status = 413, body = String, content_type = "text/plain", description = "The body is \
            over the server's body cap."),
        SessionRefused,
        Limits,
        Storage,
    ))]
async fn import_targets(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Result<Json<Imported>, ApiError> {
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = s.store.lock().map_err(|_| ApiError::Internal)?;
        let session = session(&s, store.conn(), &headers)?;
        admin_only(&session)?;
        let rows = parse_targets(&body)?;
        let now = now_ms();
        Transact::transaction(store.conn_mut(), |tx| -> Result<(), ApiError> {
            for (region, year, n) in &rows {
                tx.execute(
                    "INSERT INTO targets (region, year, person_times, imported_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (region, year) DO UPDATE SET
                     person_times = excluded.person_times, imported_at = excluded.imported_at",
                    args![region, *year, *n, now],
                )?;
            }
            audit::append(
                tx,
                now,
                &[Entry::new(
                    format!("account:{}", session.username),
                    "import_targets",
                    "targets",
                    serde_json::json!({ "rows": rows.len() }),
                )],
            )?;
            Ok(())
        })?;
        Ok(Json(Imported {
            imported: rows.len(),
        }))
    })
    .await
    .map_err(|_| ApiError::Internal)?
}

/// Reads a target table: a header naming 区域 and year columns (`2019年` or `2019`); the
/// three-year total column (any header with 总) is checked against the years' sum when present.
/// Rows such as 合计 are taken like any other region.
pub fn parse_targets(text: &str) -> Result<Vec<(String, i32, i64)>, ApiError> {
    use crate::accounts::CsvProblem;
    let text = text.trim_start_matches('\u{feff}');
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = rdr.records();
    let bad = |line: usize, problem: &str| ApiError::BadCsv {
        message: "the target table cannot be imported; nothing was changed".into(),
        problems: vec![CsvProblem {
            line,
            problem: problem.to_owned(),
        }],
    };
    let header = match records.next() {
        Some(Ok(h)) => h,
        _ => {
            return Err(bad(
                1,
                "the first line must be the header: 区域,三年计划总目标,2019年,…",
            ));
        }
    };
    let mut years: Vec<(usize, i32)> = Vec::new();
    let mut total_col = None;
    for (i, h) in header.iter().enumerate().skip(1) {
        let y = h.trim_end_matches('年').trim();
        if let Ok(y) = y.parse::<i32>()
            && (2000..=2100).contains(&y)
        {
            years.push((i, y));
        } else if h.contains('总') {
            total_col = Some(i);
        }
    }
    if years.is_empty() {
        return Err(bad(1, "the header names no year column such as 2019年"));
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut regions = BTreeSet::new();
    for (n, rec) in records.enumerate() {
        let line = n + 2;
        let Ok(rec) = rec else {
            problems.push(CsvProblem {
                line,
                problem: "the line cannot be read as CSV".into(),
            });
            continue;
        };
        let region = rec.get(0).unwrap_or("").trim().to_owned();
        if region.is_empty() {
            if rec.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            problems.push(CsvProblem {
                line,
                problem: "区域 is empty".into(),
            });
            continue;
        }
        if !regions.insert(region.clone()) {
            problems.push(CsvProblem {
                line,
                problem: format!("{region} appears twice"),
            });
            continue;
        }
        let mut sum = 0i64;
        let mut ok = true;
        for (col, year) in &years {
            let cell = rec.get(*col).unwrap_or("").replace(',', "");
            match cell.trim().parse::<i64>() {
                Ok(v) if (0..=100_000_000).contains(&v) => {
                    sum += v;
                    out.push((region.clone(), *year, v));
                }
                _ => {
                    ok = false;
                    problems.push(CsvProblem {
                        line,
                        problem: format!("{year}年 must be a whole number of person-times"),
                    });
                }
            }
        }
        if ok
            && let Some(c) = total_col
            && let Some(t) = rec.get(c).filter(|t| !t.trim().is_empty())
            && t.replace(',', "").trim().parse::<i64>().ok() != Some(sum)
        {
            problems.push(CsvProblem {
                line,
                problem: format!("三年计划总目标 ({t}) is not the sum of the years ({sum})"),
            });
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::BadCsv {
            message: "the target table cannot be imported; nothing was changed".into(),
            problems,
        });
    }
    if out.is_empty() {
        return Err(bad(2, "the table has no rows"));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The monthly report

/// Which report.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Six-digit district code (this server's).
    pub district: String,
    /// `YYYY-MM`.
    pub month: String,
}

async fn report_of(
    state: &AppState,
    headers: HeaderMap,
    q: ReportQuery,
) -> Result<crate::report::MonthlyReport, ApiError> {
    with_conn(state, move |s, conn| {
        let session = session(s, conn, &headers)?;
        let month = crate::report::Month::parse(&q.month)?;
        let r = crate::report::monthly(conn, &q.district, month, &s.config.policy)?;
        audit::append(
            conn,
            now_ms(),
            &[Entry::new(
                format!("account:{}", session.username),
                "report",
                r.month.clone(),
                serde_json::json!({ "district": r.district }),
            )],
        )?;
        Ok(r)
    })
    .await
}

/// The report routes' 400, in both of its forms.
const REPORT_QUERY_REFUSED: &str = "`bad_input`: `month` is not YYYY-MM, or `district` is not \
    this server's. A query without `district` or `month` is refused in plain text.";

fn download(bytes: Vec<u8>, content_type: &'static str, name: String) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    let mut resp = ([(header::CONTENT_TYPE, content_type)], bytes).into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// The monthly report (月报) as JSON.
#[utoipa::path(get, path = "/api/v1/reports/monthly", tag = "office", security(("session" = [])),
    params(ReportQuery),
    responses(
        (status = 200, description = "The report.", body = crate::report::MonthlyReport),
        (status = 400, description = REPORT_QUERY_REFUSED,
            content((ErrorBody = "application/json"), (String = "text/plain"))),
        SessionRefused,
        Limits,
        Storage,
    ))]
async fn report_json(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Result<Json<crate::report::MonthlyReport>, ApiError> {
    Ok(Json(report_of(&state, headers, q).await?))
}

/// The monthly report as an Excel workbook laid out like the official table.
#[utoipa::path(get, path = "/api/v1/reports/monthly.xlsx", tag = "office",
    security(("session" = [])), params(ReportQuery),
    responses(
        (status = 200, description = "The workbook, as an attachment.",
            content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers(("Content-Disposition" = String,
                description = "`attachment; filename=\"songpei-monthly-DISTRICT-MONTH.xlsx\"`"))),
        (status = 400, description = REPORT_QUERY_REFUSED,
            content((ErrorBody = "application/json"), (String = "text/plain"))),
        SessionRefused,
        Limits,
        Storage,
    ))]
async fn report_xlsx(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let r = report_of(&state, headers, q).await?;
    let bytes = crate::report::to_xlsx(&r)?;
    Ok(download(
        bytes,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        format!("songpei-monthly-{}-{}.xlsx", r.district, r.month),
    ))
}

/// The monthly report as CSV (UTF-8 with a byte-order mark).
#[utoipa::path(get, path = "/api/v1/reports/monthly.csv", tag = "office",
    security(("session" = [])), params(ReportQuery),
    responses(
        (status = 200, description = "The table as CSV, UTF-8 with a byte-order mark, as an \
            attachment.", body = String, content_type = "text/csv",
            headers(("Content-Disposition" = String,
                description = "`attachment; filename=\"songpei-monthly-DISTRICT-MONTH.csv\"`"))),
        (status = 400, description = REPORT_QUERY_REFUSED,
            content((ErrorBody = "application/json"), (String = "text/plain"))),
        SessionRefused,
        Limits,
        Storage,
    ))]
async fn report_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let r = report_of(&state, headers, q).await?;
    Ok(download(
        crate::report::to_csv(&r),
        "text/csv; charset=utf-8",
        format!("songpei-monthly-{}-{}.csv", r.district, r.month),
    ))
}
