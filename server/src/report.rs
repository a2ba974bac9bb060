//! The monthly report (月报) of a district: person-times by training type, key group, occupation and
//! township; poverty-household trainees; the living allowance; subsidised places and the rule that
//! decided each; progress against the year's target. As data (JSON), CSV and an Excel workbook laid
//! out like the official table.
//!
//! Definitions:
//! - A **person-time** (人次) of month M is a trainee who passed (`completion = passed`) in a class
//!   that is closed and whose last day falls in M: a district counts a class when it closes, from
//!   those who completed it.
//! - The **living allowance** of month M is paid for each payable day in M of a trainee whose
//!   household is 脱贫户 or 监测户 and whose place is subsidised, at the rate in force that day.
//! - Every figure is traceable: the report lists each place (class and trainee, masked) that
//!   counts, with its subsidy decision, the rule behind it, its payable days and allowance.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use songpei_core::catalog::{KeyGroup, PovertyStatus, TrainingType};
use songpei_core::rules::PolicyTable;
use utoipa::ToSchema;

use crate::accounts;
use crate::args;
use crate::db::Sql;

mod csv;
mod layout;
mod rules;
mod xlsx;

pub(crate) use csv::to_csv;
use rules::decision_label;
pub(crate) use rules::rule_text;
pub(crate) use xlsx::to_xlsx;
pub use xlsx::write_file;

/// A calendar month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Month {
    /// Year.
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
}

impl Month {
    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Result<Self, ReportError> {
        let bad = || ReportError::Invalid {
            field: "month",
            message: "must be a month written YYYY-MM, e.g. 2026-03".into(),
        };
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(2000..=2100).contains(&year) || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Self { year, month })
    }

    /// `YYYY-MM`.
    pub fn key(&self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// Why a report cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A request field is not valid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The district asked for is not this server's.
    #[error("district {0} is not served here")]
    OtherDistrict(String),
    /// The server has no district yet.
    #[error("the server has no district yet")]
    NotInitialised,
    /// The workbook could not be written.
    #[error("the workbook could not be written")]
    Workbook,
    /// Storage failed.
    #[error("storage: {0}")]
    Db(#[from] crate::db::DbError),
}

impl From<ReportError> for crate::ApiError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Invalid { field, message } => crate::ApiError::Invalid {
                field: field.to_owned(),
                message,
            },
            ReportError::OtherDistrict(_) => crate::ApiError::Invalid {
                field: "district".into(),
                message: e.to_string(),
            },
            ReportError::NotInitialised => crate::ApiError::NotInitialised,
            ReportError::Workbook => crate::ApiError::Internal,
            ReportError::Db(e) => e.into(),
        }
    }
}

/// A row of a breakdown.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CountRow {
    /// Code (training type, key group, township code) or the occupation as typed.
    pub code: String,
    /// Label in Chinese.
    pub label: String,
    /// Person-times.
    pub person_times: i64,
}

/// The month's person-times.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PersonTimes {
    /// All.
    pub total: i64,
    /// By training type.
    pub by_training_type: Vec<CountRow>,
    /// By key group (a trainee in several groups counts in each; `none` for none).
    pub by_key_group: Vec<CountRow>,
    /// By occupation.
    pub by_occupation: Vec<CountRow>,
    /// By township.
    pub by_township: Vec<CountRow>,
    /// Of trainees from 脱贫户 or 监测户 households.
    pub poverty_households: i64,
}

/// The month's living allowance.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Allowance {
    /// 人数: distinct people paid in the month (one person registered in two villages, or paid in
    /// two classes, is one), matched by the blind index of the ID number. Does not add up across
    /// months or townships.
    pub trainees: i64,
    /// Payable days paid.
    pub payable_days: i64,
    /// Total, in fen.
    pub total_fen: i64,
    /// Total, in yuan.
    pub total_yuan: f64,
}

/// Places by subsidy decision.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DecisionCount {
    /// `subsidised`, `class_not_subsidised`, `year_cap_reached`, `same_occupation_and_level`.
    pub decision: String,
    /// Label in Chinese.
    pub label: String,
    /// Places.
    pub places: i64,
}

/// One place that counts in the report, with everything its figures come from.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Place {
    /// Class.
    pub class_id: String,
    /// Class title.
    pub class_title: String,
    /// Township name.
    pub township: String,
    /// Training type label.
    pub training_type: String,
    /// Occupation.
    pub occupation: String,
    /// Trainee.
    pub trainee_id: String,
    /// Masked name.
    pub name_masked: String,
    /// Masked ID number.
    pub id_masked: String,
    /// Household status label, if known.
    pub household: String,
    /// Counted as a person-time this month (passed, in a class closed this month).
    pub counted: bool,
    /// Subsidy decision.
    pub decision: String,
    /// The rule that decided.
    pub rule: String,
    /// Payable days this month.
    pub payable_days: i64,
    /// Allowance this month, in fen.
    pub allowance_fen: i64,
}

/// Progress against the year's target.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Progress {
    /// Year.
    pub year: i32,
    /// Person-times from 1 January to the end of the month.
    pub cumulative: i64,
    /// The year's target, if imported.
    pub target: Option<i64>,
    /// cumulative / target.
    pub fraction: Option<f64>,
}

/// 电话回访 of the month's training days (docs/figures.md).
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct CallbackFigures {
    /// Trainee-days of the month that were payable when checked: payable now, or on the call list.
    pub trainee_days: i64,
    /// Of them, on the call list.
    pub called: i64,
    /// called / trainee_days; `null` without trainee-days.
    pub rate: Option<f64>,
    /// Calls with an outcome.
    pub decided: i64,
    /// 确认.
    pub confirmed: i64,
    /// 否认.
    pub denied: i64,
    /// 联系不上 (three unanswered attempts).
    pub unreachable: i64,
    /// confirmed / decided; `null` before any outcome.
    pub confirmation_rate: Option<f64>,
    /// Calls and denials by village, for every village with a call this month.
    pub by_village: Vec<VillageCallbacks>,
}

/// One village's calls of the month.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct VillageCallbacks {
    /// Village code.
    pub village: String,
    /// Village name.
    pub village_name: String,
    /// Calls.
    pub called: i64,
    /// Denials.
    pub denied: i64,
}

/// The monthly report.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MonthlyReport {
    /// District code.
    pub district: String,
    /// District name.
    pub district_name: String,
    /// `YYYY-MM`.
    pub month: String,
    /// When made (ms since the epoch).
    pub generated_at_ms: i64,
    /// Person-times.
    pub person_times: PersonTimes,
    /// Living allowance.
    pub allowance: Allowance,
    /// Places by subsidy decision.
    pub subsidy: Vec<DecisionCount>,
    /// Progress against the year's target.
    pub progress: Progress,
    /// Call-backs of the month's training days.
    pub callbacks: CallbackFigures,
    /// The audit chain's head when the report was made.
    pub audit_head: crate::accounts::audit::Head,
    /// Every place behind the figures.
    pub places: Vec<Place>,
}

struct PlaceRow {
    class_id: String,
    title: String,
    village: String,
    training_type: String,
    occupation: String,
    status: String,
    last_day: String,
    trainee: String,
    completion: Option<String>,
    name_masked: Option<String>,
    id_masked: Option<String>,
    key_groups: Option<String>,
    poverty: Option<String>,
    /// The person: the blind index of the ID number, or the trainee id while the trainee's
    /// record has not arrived.
    person: Vec<u8>,
    decision: Option<crate::store::settlement::DecisionRow>,
}

/// Makes the report of `district` for `month`.
pub(crate) fn monthly(
    conn: &dyn Sql,
    district: &str,
    month: Month,
    policy: &PolicyTable,
) -> Result<MonthlyReport, ReportError> {
    let d = accounts::district(conn)?.ok_or(ReportError::NotInitialised)?;
    if d.code != district.trim() {
        return Err(ReportError::OtherDistrict(district.trim().to_owned()));
    }
    let key = month.key();
    let townships: BTreeMap<String, String> = conn
        .query_map("SELECT code, name FROM townships", &[], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .into_iter()
        .collect();
    let village_township: BTreeMap<String, String> = conn
        .query_map("SELECT code, township FROM places", &[], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .into_iter()
        .collect();
    // Every place of a class that closed this month, or with attendance days this month.
    let rows: Vec<PlaceRow> = conn.query_map(
        "SELECT c.id, c.title, c.village, c.training_type, c.occupation, c.status, c.last_day,
               e.trainee_id, e.completion, t.name_masked, t.id_masked, t.key_groups,
               h.poverty_status, s.decision, s.year, s.nth, s.cap, s.earlier_class, t.blind_index
             FROM p_enrolments e JOIN p_classes c ON c.id = e.class_id
             LEFT JOIN p_trainees t ON t.id = e.trainee_id
             LEFT JOIN p_households h ON h.id = t.household
             LEFT JOIN p_subsidies s ON s.class_id = e.class_id AND s.trainee_id = e.trainee_id
             WHERE c.district = ?1 AND (substr(c.last_day, 1, 7) = ?2 OR EXISTS (
               SELECT 1 FROM p_attendance_days a WHERE a.class_id = c.id
               AND a.trainee_id = e.trainee_id AND substr(a.day, 1, 7) = ?2))
             ORDER BY c.first_day, c.id, t.id_masked, e.trainee_id",
        args![&d.code, &key],
        |r| {
            let decision: Option<String> = r.get(13)?;
            let trainee_bytes = r.get::<String>(7)?.into_bytes();
            Ok(PlaceRow {
                class_id: r.get(0)?,
                title: r.get(1)?,
                village: r.get(2)?,
                training_type: r.get(3)?,
                occupation: r.get(4)?,
                status: r.get(5)?,
                last_day: r.get(6)?,
                trainee: r.get(7)?,
                completion: r.get(8)?,
                name_masked: r.get(9)?,
                id_masked: r.get(10)?,
                key_groups: r.get(11)?,
                poverty: r.get(12)?,
                person: r
                    .get::<Option<Vec<u8>>>(18)?
                    .unwrap_or_else(|| trainee_bytes.clone()),
                decision: match decision {
                    Some(dc) => Some((dc, r.get(14)?, r.get(15)?, r.get(16)?, r.get(17)?)),
                    None => None,
                },
            })
        },
    )?;
    let mut by_type: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_group: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_occupation: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_township: BTreeMap<String, i64> = BTreeMap::new();
    let mut decisions: BTreeMap<String, i64> = BTreeMap::new();
    let (mut total, mut poor, mut paid_days, mut paid_fen) = (0, 0, 0, 0);
    let mut paid_people: std::collections::BTreeSet<Vec<u8>> = std::collections::BTreeSet::new();
    let mut places = Vec::new();
    for p in rows {
        let poverty = p
            .poverty
            .as_deref()
            .and_then(|s| s.parse::<PovertyStatus>().ok());
        let is_poor = poverty.is_some_and(|s| s.gets_living_allowance());
        let counted = p.status == "closed"
            && p.completion.as_deref() == Some("passed")
            && p.last_day.starts_with(&key);
        let township = village_township
            .get(&p.village)
            .cloned()
            .unwrap_or_else(|| p.village.chars().take(9).collect());
        if counted {
            total += 1;
            *by_type.entry(p.training_type.clone()).or_default() += 1;
            *by_occupation.entry(p.occupation.clone()).or_default() += 1;
            *by_township.entry(township.clone()).or_default() += 1;
            let groups: Vec<&str> = p
                .key_groups
                .as_deref()
                .unwrap_or("")
                .split(',')
                .filter(|g| !g.is_empty())
                .collect();
            if groups.is_empty() {
                *by_group.entry("none".into()).or_default() += 1;
            }
            for g in groups {
                *by_group.entry(g.to_owned()).or_default() += 1;
            }
            if is_poor {
                poor += 1;
            }
        }
        let days: std::collections::BTreeSet<NaiveDate> = conn
            .query_map(
                "SELECT day FROM p_attendance_days WHERE class_id = ?1 AND trainee_id = ?2
                 AND payable = 1 AND substr(day, 1, 7) = ?3",
                args![&p.class_id, &p.trainee, &key],
                |r| r.get::<String>(0),
            )?
            .into_iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        let fen = p
            .decision
            .as_ref()
            .and_then(crate::store::settlement::decision_of)
            .map_or(0, |d| {
                songpei_core::rules::place_allowance_fen(&d, &days, poverty, policy)
            });
        if fen > 0 {
            paid_people.insert(p.person.clone());
            paid_days += days.len() as i64;
            paid_fen += fen;
        }
        let (decision, rule) = match &p.decision {
            Some((dc, year, nth, cap, _)) => (dc.clone(), rule_text(dc, *year, *nth, *cap)),
            None => ("undecided".to_owned(), "学员档案尚未同步".to_owned()),
        };
        if counted {
            *decisions.entry(decision.clone()).or_default() += 1;
        }
        places.push(Place {
            class_id: p.class_id,
            class_title: p.title,
            township: townships.get(&township).cloned().unwrap_or(township),
            training_type: p
                .training_type
                .parse::<TrainingType>()
                .map(|t| t.label_zh().to_owned())
                .unwrap_or(p.training_type),
            occupation: p.occupation,
            trainee_id: p.trainee,
            name_masked: p.name_masked.unwrap_or_default(),
            id_masked: p.id_masked.unwrap_or_default(),
            household: poverty.map(|s| s.label_zh().to_owned()).unwrap_or_default(),
            counted,
            decision,
            rule,
            payable_days: days.len() as i64,
            allowance_fen: fen,
        });
    }
    let rows_of = |m: BTreeMap<String, i64>, label: &dyn Fn(&str) -> String| {
        m.into_iter()
            .map(|(code, n)| CountRow {
                label: label(&code),
                code,
                person_times: n,
            })
            .collect::<Vec<_>>()
    };
    let cumulative: i64 = conn.query_row(
        "SELECT COUNT(*) FROM p_enrolments e JOIN p_classes c ON c.id = e.class_id
         WHERE c.district = ?1 AND c.status = 'closed' AND e.completion = 'passed'
           AND c.last_day >= ?2 AND substr(c.last_day, 1, 7) <= ?3",
        args![&d.code, format!("{:04}-01-01", month.year), &key],
        |r| r.get(0),
    )?;
    let target = target_for(conn, month.year).map_err(|_| ReportError::NotInitialised)?;
    let callbacks = callback_figures(conn, &d.code, &key)?;
    let audit_head = crate::accounts::audit::head(conn)?;
    Ok(MonthlyReport {
        district: d.code,
        district_name: d.name,
        month: key,
        generated_at_ms: chrono::Utc::now().timestamp_millis(),
        person_times: PersonTimes {
            total,
            by_training_type: rows_of(by_type, &|c| {
                c.parse::<TrainingType>()
                    .map(|t| t.label_zh().to_owned())
                    .unwrap_or_else(|_| c.to_owned())
            }),
            by_key_group: rows_of(by_group, &|c| {
                if c == "none" {
                    "无".to_owned()
                } else {
                    c.parse::<KeyGroup>()
                        .map(|g| g.label_zh().to_owned())
                        .unwrap_or_else(|_| c.to_owned())
                }
            }),
            by_occupation: rows_of(by_occupation, &|c| c.to_owned()),
            by_township: rows_of(by_township, &|c| {
                townships.get(c).cloned().unwrap_or_else(|| c.to_owned())
            }),
            poverty_households: poor,
        },
        allowance: Allowance {
            trainees: paid_people.len() as i64,
            payable_days: paid_days,
            total_fen: paid_fen,
            total_yuan: paid_fen as f64 / 100.0,
        },
        subsidy: [
            "subsidised",
            "class_not_subsidised",
            "year_cap_reached",
            "same_occupation_and_level",
            "class_cancelled",
        ]
        .iter()
        .map(|d| DecisionCount {
            decision: (*d).to_owned(),
            label: decision_label(d).to_owned(),
            places: decisions.get(*d).copied().unwrap_or(0),
        })
        .collect(),
        progress: Progress {
            year: month.year,
            cumulative,
            fraction: target
                .filter(|t| *t > 0)
                .map(|t| cumulative as f64 / t as f64),
            target,
        },
        callbacks,
        audit_head,
        places,
    })
}

/// The call-back figures of the training days of month `key`.
fn callback_figures(
    conn: &dyn Sql,
    district: &str,
    key: &str,
) -> Result<CallbackFigures, crate::db::DbError> {
    // Payable now, or — in a class a denial holds or had rejected — signed in; within the class's
    // days. Days on the call list that no longer pay are added below.
    let payable: i64 = conn.query_row(
        "SELECT COUNT(*) FROM p_attendance_days a JOIN p_classes c ON c.id = a.class_id
         WHERE c.district = ?1 AND substr(a.day, 1, 7) = ?2
           AND a.day >= c.first_day AND a.day <= c.last_day
           AND (a.payable = 1 OR (a.signed_in = 1
             AND EXISTS (SELECT 1 FROM class_holds h WHERE h.class_id = a.class_id
               AND NOT EXISTS (SELECT 1 FROM p_reviews r WHERE r.doc_id = h.class_id
                 AND r.subject = 'hold:' || h.callback_id AND r.decision = 'accepted'))
             AND NOT EXISTS (SELECT 1 FROM callbacks cb WHERE cb.class_id = a.class_id
               AND cb.trainee_id = a.trainee_id AND cb.day = a.day)))",
        args![district, key],
        |r| r.get(0),
    )?;
    let names: BTreeMap<String, String> = conn
        .query_map("SELECT code, name FROM places", &[], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .into_iter()
        .collect();
    let mut f = CallbackFigures::default();
    let mut not_payable = 0;
    let mut villages: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (village, outcome, still_payable) in conn.query_map(
        "SELECT cb.village, cb.outcome, EXISTS (SELECT 1 FROM p_attendance_days a
                WHERE a.class_id = cb.class_id AND a.trainee_id = cb.trainee_id
                AND a.day = cb.day AND a.payable = 1)
         FROM callbacks cb JOIN p_classes c ON c.id = cb.class_id
         WHERE c.district = ?1 AND substr(cb.day, 1, 7) = ?2",
        args![district, key],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<Option<String>>(1)?,
                r.get::<bool>(2)?,
            ))
        },
    )? {
        f.called += 1;
        if !still_payable {
            not_payable += 1;
        }
        let v = villages.entry(village).or_default();
        v.0 += 1;
        match outcome.as_deref() {
            Some("confirmed") => f.confirmed += 1,
            Some("denied") => {
                f.denied += 1;
                v.1 += 1;
            }
            Some("unreachable") => f.unreachable += 1,
            _ => {}
        }
    }
    f.trainee_days = payable + not_payable;
    f.decided = f.confirmed + f.denied + f.unreachable;
    f.rate = (f.trainee_days > 0).then(|| f.called as f64 / f.trainee_days as f64);
    f.confirmation_rate = (f.decided > 0).then(|| f.confirmed as f64 / f.decided as f64);
    f.by_village = villages
        .into_iter()
        .map(|(village, (called, denied))| VillageCallbacks {
            village_name: names
                .get(&village)
                .cloned()
                .unwrap_or_else(|| village.clone()),
            village,
            called,
            denied,
        })
        .collect();
    Ok(f)
}

/// The district's target for `year`, by its code or name in the target table.
pub(crate) fn target_for(db: &dyn Sql, year: i32) -> Result<Option<i64>, crate::ApiError> {
    let d = accounts::district(db)?.ok_or(crate::ApiError::NotInitialised)?;
    Ok(db.query_opt(
        "SELECT person_times FROM targets WHERE year = ?1 AND region IN (?2, ?3)",
        args![year, &d.code, &d.name],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_bad_ones_name_the_field() {
        assert_eq!(
            Month::parse("2026-03").ok(),
            Some(Month {
                year: 2026,
                month: 3
            })
        );
        assert_eq!(
            Month::parse(" 2026-12 ").map(|m| m.key()).ok(),
            Some("2026-12".into())
        );
        for bad in [
            "", "2026", "2026-3", "2026-13", "2026-00", "26-03", "1999-01", "2026/03", "abcd-ef",
        ] {
            match Month::parse(bad) {
                Err(ReportError::Invalid { field, .. }) => assert_eq!(field, "month", "{bad:?}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
