//! Per-coordinator signals: for each coordinator account, the share of its records that look like
//! the known abuses, against the district's median. A signal is not a finding: it says where to
//! look (and whom to call back first). Definitions in docs/figures.md.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::args;
use crate::db::{DbError, Sql};
use crate::error::{ApiError, ErrorBody};
use crate::office::openapi::{Limits, Session as SessionRefused, Storage};
use crate::report::Month;

use super::{Places, session, with_reader};

/// The signals, in the order the dashboard shows them: code, label, what it counts.
pub(crate) const SIGNALS: &[(&str, &str, &str)] = &[
    (
        "card_share",
        "刷卡签到占比",
        "该协管员记录的签到中，用签到卡（而非学员手机扫码）的比例。卡可以由协管员一人代刷，比例越高越需要核实。",
    ),
    (
        "unregistered_key",
        "未登记手机签到占比",
        "扫码签到中，学员手机密钥未经讲师当面见证登记的比例（标记 unregistered_key）。",
    ),
    (
        "relayed",
        "异地应答占比",
        "扫码签到中，学员手机应答位置离出示签到码的手机超过 1 公里的比例（标记 relayed），可能是签到码被转发。",
    ),
    (
        "fresh_keys",
        "当天新密钥占比",
        "该协管员签到中出现的学员手机密钥里，第一次被系统见到（登记或应答）就是它第一次应答当天的比例。比例高说明学员手机多为临时新装。",
    ),
    (
        "shared_phone",
        "共用号码学员占比",
        "该协管员签到的学员中，登记的手机号码同时登记在其他人名下的比例。号码若是协管员自己的或同一人的，电话回访就问不到学员本人。",
    ),
    (
        "held",
        "待审记录占比",
        "该协管员的记录中，因任一拦截支付的标记而待审的比例。",
    ),
    (
        "denials",
        "回访否认占比",
        "已有结果的电话回访中，学员否认当天参训的比例。",
    ),
];

/// A share at least this many times the median, and this much above it, is marked unusual.
const UNUSUAL_TIMES: f64 = 2.0;
const UNUSUAL_MARGIN: f64 = 0.05;

/// Which period.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SignalQuery {
    /// `YYYY-MM`: only records of training days in that month; all records when absent.
    pub month: Option<String>,
}

/// One signal's definition.
#[derive(Serialize, ToSchema)]
pub(super) struct SignalInfo {
    code: String,
    /// Its name in Chinese.
    label: String,
    /// What it counts, in Chinese.
    explanation: String,
    /// The median share over coordinators with anything to count; `null` when none has.
    median: Option<f64>,
}

/// One coordinator's value of one signal.
#[derive(Serialize, ToSchema)]
pub(super) struct SignalValue {
    code: String,
    /// What counts.
    count: i64,
    /// Out of.
    of: i64,
    /// count / of; `null` when there is nothing to count.
    share: Option<f64>,
    /// share / median; `null` when either is missing or the median is 0.
    times_median: Option<f64>,
    /// At least twice the median and 5 points above it.
    unusual: bool,
}

/// One coordinator's signals.
#[derive(Serialize, ToSchema)]
pub(super) struct CoordinatorSignals {
    /// The account's login name.
    account: String,
    /// Its villages' names.
    villages: Vec<String>,
    /// Attendance records it took.
    records: i64,
    /// In the order of `signals`.
    values: Vec<SignalValue>,
}

/// The signals page.
#[derive(Serialize, ToSchema)]
pub(super) struct Signals {
    /// The month asked for, if any.
    month: Option<String>,
    /// A share at least this many times the median (and 5 points above it) is unusual.
    unusual_times: f64,
    signals: Vec<SignalInfo>,
    coordinators: Vec<CoordinatorSignals>,
}

/// Per-coordinator signals against the district's median.
#[utoipa::path(get, path = "/api/v1/signals", tag = "office", security(("session" = [])),
    params(SignalQuery),
    responses(
        (status = 200, description = "Every coordinator's signals.", body = Signals),
        (status = 400, body = ErrorBody, description = "`bad_input`: `month` is not YYYY-MM."),
        SessionRefused, Limits, Storage,
    ))]
pub(super) async fn signals(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SignalQuery>,
) -> Result<Json<Signals>, ApiError> {
    with_reader(&state, move |s, conn| {
        session(s, conn, &headers)?;
        let month = q
            .month
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .map(Month::parse)
            .transpose()?
            .map(|m| m.key());
        let places = Places::load(conn)?;
        Ok(Json(compute(conn, month, &places)?))
    })
    .await
}

/// (count, of) by account, for one signal.
type Counts = BTreeMap<String, (i64, i64)>;

fn compute(conn: &dyn Sql, month: Option<String>, places: &Places) -> Result<Signals, DbError> {
    let accounts: Vec<(String, String)> = conn.query_map(
        "SELECT id, username FROM accounts WHERE role = 'coordinator' ORDER BY username",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut villages: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (account, village) in conn.query_map(
        "SELECT account_id, village FROM account_villages ORDER BY village",
        &[],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )? {
        villages
            .entry(account)
            .or_default()
            .push(places.village_name(&village));
    }
    let m = month.as_deref();
    let in_month = "(CAST(?1 AS TEXT) IS NULL OR substr(a.day, 1, 7) = ?1)";
    // Records by method.
    let mut records: BTreeMap<String, i64> = BTreeMap::new();
    let mut card: Counts = BTreeMap::new();
    let mut qr_of: BTreeMap<String, i64> = BTreeMap::new();
    for (account, method, n) in conn.query_map(
        &format!(
            "SELECT d.account_id, a.method, COUNT(*) FROM attendance_checks a
             JOIN devices d ON d.id = a.device WHERE {in_month}
             GROUP BY d.account_id, a.method"
        ),
        args![m],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?)),
    )? {
        *records.entry(account.clone()).or_default() += n;
        if method == "card" {
            card.entry(account.clone()).or_default().0 += n;
        }
        if method == "qr" {
            *qr_of.entry(account).or_default() += n;
        }
    }
    for (account, n) in &records {
        card.entry(account.clone()).or_default().1 = *n;
    }
    // Flags.
    let mut flagged: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (account, flag, n) in conn.query_map(
        &format!(
            "SELECT d.account_id, f.flag, COUNT(DISTINCT f.attendance_id) FROM attendance_flags f
             JOIN attendance_checks a ON a.attendance_id = f.attendance_id
             JOIN devices d ON d.id = a.device
             WHERE f.flag IN ('unregistered_key', 'relayed') AND {in_month}
             GROUP BY d.account_id, f.flag"
        ),
        args![m],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?)),
    )? {
        flagged.insert((account, flag), n);
    }
    let of_qr = |flag: &str| -> Counts {
        qr_of
            .iter()
            .map(|(a, n)| {
                let c = flagged.get(&(a.clone(), flag.to_owned())).copied();
                (a.clone(), (c.unwrap_or(0), *n))
            })
            .collect()
    };
    let held: Counts = {
        let n: BTreeMap<String, i64> = conn
            .query_map(
                &format!(
                    "SELECT d.account_id, COUNT(*) FROM attendance_checks a
                     JOIN devices d ON d.id = a.device
                     WHERE {in_month} AND EXISTS (SELECT 1 FROM attendance_flags f
                       WHERE f.attendance_id = a.attendance_id AND f.blocks_pay = 1)
                     GROUP BY d.account_id"
                ),
                args![m],
                |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
            )?
            .into_iter()
            .collect();
        records
            .iter()
            .map(|(a, of)| (a.clone(), (n.get(a).copied().unwrap_or(0), *of)))
            .collect()
    };
    // Keys first seen the day they first answer.
    let first_answer: BTreeMap<String, i64> = conn
        .query_map(
            "SELECT responder, MIN(at_ms) FROM attendance_checks WHERE responder IS NOT NULL
             GROUP BY responder",
            &[],
            |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
        )?
        .into_iter()
        .collect();
    let first_registered: BTreeMap<String, i64> = conn
        .query_map(
            "SELECT responder, MIN(registered_ms) FROM trainee_keys GROUP BY responder",
            &[],
            |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
        )?
        .into_iter()
        .collect();
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (account, responder) in conn.query_map(
        &format!(
            "SELECT DISTINCT d.account_id, a.responder FROM attendance_checks a
             JOIN devices d ON d.id = a.device WHERE a.responder IS NOT NULL AND {in_month}"
        ),
        args![m],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )? {
        keys.entry(account).or_default().insert(responder);
    }
    let day = songpei_core::clock::local_date;
    let fresh: Counts = keys
        .iter()
        .map(|(a, ks)| {
            let n = ks
                .iter()
                .filter(|k| {
                    let Some(answer) = first_answer.get(*k).copied() else {
                        return false;
                    };
                    let seen = first_registered
                        .get(*k)
                        .map_or(answer, |r| (*r).min(answer));
                    day(seen) == day(answer)
                })
                .count() as i64;
            (a.clone(), (n, ks.len() as i64))
        })
        .collect();
    // Trainees whose number is on file for another person too.
    let shared: Counts = conn
        .query_map(
            &format!(
                "SELECT d.account_id, COUNT(DISTINCT a.trainee_id),
                        COUNT(DISTINCT CASE WHEN EXISTS (
                            SELECT 1 FROM p_trainees t JOIN p_trainees o
                              ON o.phone_index = t.phone_index AND o.blind_index <> t.blind_index
                            WHERE t.id = a.trainee_id) THEN a.trainee_id END)
                 FROM attendance_checks a JOIN devices d ON d.id = a.device
                 WHERE {in_month} GROUP BY d.account_id"
            ),
            args![m],
            |r| Ok((r.get::<String>(0)?, (r.get::<i64>(2)?, r.get::<i64>(1)?))),
        )?
        .into_iter()
        .collect();
    // Call-back denials, by the accounts whose records the trainee-day holds.
    let mut denials: Counts = BTreeMap::new();
    for (account, outcome) in conn.query_map(
        "SELECT DISTINCT d.account_id, cb.id, cb.outcome FROM callbacks cb
         JOIN attendance_checks a ON a.class_id = cb.class_id AND a.trainee_id = cb.trainee_id
              AND a.day = cb.day
         JOIN devices d ON d.id = a.device
         WHERE cb.outcome IS NOT NULL AND (CAST(?1 AS TEXT) IS NULL OR substr(cb.day, 1, 7) = ?1)",
        args![m],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(2)?)),
    )? {
        let e = denials.entry(account).or_default();
        e.1 += 1;
        if outcome == "denied" {
            e.0 += 1;
        }
    }
    let by_code: BTreeMap<&str, Counts> = [
        ("card_share", card),
        ("unregistered_key", of_qr("unregistered_key")),
        ("relayed", of_qr("relayed")),
        ("fresh_keys", fresh),
        ("shared_phone", shared),
        ("held", held),
        ("denials", denials),
    ]
    .into_iter()
    .collect();
    let share = |c: Option<&(i64, i64)>| c.filter(|c| c.1 > 0).map(|c| c.0 as f64 / c.1 as f64);
    let mut infos = Vec::new();
    let mut medians = Vec::new();
    for (code, label, explanation) in SIGNALS {
        let counts = &by_code[code];
        let shares: Vec<f64> = accounts
            .iter()
            .filter_map(|(a, _)| share(counts.get(a)))
            .collect();
        let med = median(shares);
        medians.push(med);
        infos.push(SignalInfo {
            code: (*code).to_owned(),
            label: (*label).to_owned(),
            explanation: (*explanation).to_owned(),
            median: med,
        });
    }
    let coordinators = accounts
        .iter()
        .map(|(a, username)| CoordinatorSignals {
            account: username.clone(),
            villages: villages.get(a).cloned().unwrap_or_default(),
            records: records.get(a).copied().unwrap_or(0),
            values: SIGNALS
                .iter()
                .zip(&medians)
                .map(|((code, _, _), med)| {
                    let c = by_code[code].get(a).copied().unwrap_or((0, 0));
                    let sh = share(Some(&c));
                    let times = sh.zip(*med).filter(|(_, m)| *m > 0.0).map(|(s, m)| s / m);
                    SignalValue {
                        code: (*code).to_owned(),
                        count: c.0,
                        of: c.1,
                        share: sh,
                        times_median: times,
                        unusual: unusual(sh, *med),
                    }
                })
                .collect(),
        })
        .collect();
    Ok(Signals {
        month,
        unusual_times: UNUSUAL_TIMES,
        signals: infos,
        coordinators,
    })
}

/// The median of `v`; the mean of the middle two for an even count.
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn unusual(share: Option<f64>, median: Option<f64>) -> bool {
    match (share, median) {
        (Some(s), Some(m)) => s >= UNUSUAL_TIMES * m && s - m >= UNUSUAL_MARGIN,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_the_unusual_mark() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![0.3]), Some(0.3));
        assert_eq!(median(vec![0.4, 0.1, 0.2]), Some(0.2));
        assert_eq!(median(vec![0.4, 0.1, 0.2, 0.3]), Some(0.25));
        // (share, median, unusual)
        for (s, m, want) in [
            (Some(0.5), Some(0.1), true),
            (Some(0.2), Some(0.1), true),
            (Some(0.19), Some(0.1), false),
            // Twice a tiny median is not yet unusual: 5 points above it are needed.
            (Some(0.02), Some(0.01), false),
            (Some(0.06), Some(0.0), true),
            (Some(0.04), Some(0.0), false),
            (None, Some(0.1), false),
            (Some(0.9), None, false),
        ] {
            assert_eq!(unusual(s, m), want, "{s:?} vs {m:?}");
        }
    }
}
