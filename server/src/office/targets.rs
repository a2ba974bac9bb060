//! The yearly targets: read, and imported from the city's target table (CSV), all rows or none.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::accounts::audit::{self, Entry};
use crate::args;
use crate::db::Transact;
use crate::error::{ApiError, ErrorBody};
use crate::office::openapi::{Limits, Session as SessionRefused, Storage};

use super::{admin_only, now_ms, session, with_reader};

/// One target.
#[derive(Serialize, ToSchema)]
pub(super) struct Target {
    region: String,
    year: i32,
    person_times: i64,
}

/// The imported targets.
#[utoipa::path(get, path = "/api/v1/targets", tag = "office", security(("session" = [])),
    responses((status = 200, description = "Every target, by year and region.", body = [Target]),
        SessionRefused, Limits, Storage))]
pub(super) async fn targets(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<Target>>, ApiError> {
    with_reader(&state, move |s, conn| {
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
pub(super) struct Imported {
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
        (status = 413, description = "The body is over `[office] max_targets_bytes` \
            (`body_too_large`) or the server's body cap (plain text).",
            content((ErrorBody = "application/json"), (String = "text/plain"))),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: the body is \
            not `text/csv`."),
        SessionRefused,
        Limits,
        Storage,
    ))]
pub(super) async fn import_targets(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Result<Json<Imported>, ApiError> {
    let csv = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/csv"));
    if !csv {
        return Err(ApiError::UnsupportedMediaType(
            "a target table is sent as text/csv".into(),
        ));
    }
    let max = state.config.office.max_targets_bytes;
    if body.len() > max {
        return Err(ApiError::BodyTooLarge(max));
    }
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = s.lock_store()?;
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
