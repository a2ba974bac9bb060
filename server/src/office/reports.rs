//! The monthly report over HTTP: JSON, the Excel workbook and CSV.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::accounts::audit::{self, Entry};
use crate::error::{ApiError, ErrorBody};
use crate::office::openapi::{Limits, Session as SessionRefused, Storage};

use super::{now_ms, session, with_conn};

/// Which report.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ReportQuery {
    /// Six-digit district code (this server's).
    pub district: String,
    /// `YYYY-MM`.
    pub month: String,
}

pub(super) async fn report_of(
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
pub(super) const REPORT_QUERY_REFUSED: &str = "`bad_input`: `month` is not YYYY-MM, or `district` is not \
    this server's. A query without `district` or `month` is refused in plain text.";

pub(super) fn download(bytes: Vec<u8>, content_type: &'static str, name: String) -> Response {
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
pub(super) async fn report_json(
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
pub(super) async fn report_xlsx(
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
pub(super) async fn report_csv(
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
