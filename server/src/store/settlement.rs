//! What the district decided and pays for every place of a class: the subsidy decision, the
//! payable days, the days held for review and the living allowance (docs/figures.md). One
//! computation, from the projections, for the dashboard's class page, for the phones (sent with
//! every sync that brings the class's feed entry; ADR 0006) and, month by month, for the report.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use songpei_core::catalog::{ClassStatus, Level, PovertyStatus};
use songpei_core::rules::{self, PayBasis, PolicyTable, SubsidyDecision};
use songpei_core::sync::protocol::{ClassSettlement, PlaceSettlement, WireDecision, day_bitmap};

use crate::args;
use crate::callbacks::{self, Hold};
use crate::db::{DbError, Sql};
use songpei_core::doc::review::Decision;

/// One trainee's day as the district counts it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DayPay {
    pub signed_in: bool,
    pub signed_out: bool,
    pub payable: bool,
}

/// What the district decided and pays for one place.
#[derive(Clone, Debug)]
pub(crate) struct PlacePay {
    pub trainee: String,
    /// The decision as stored: code, year, nth, cap (for the rule's text); `None` while undecided.
    pub decision_row: Option<DecisionRow>,
    pub decision: Option<SubsidyDecision>,
    pub poverty: Option<PovertyStatus>,
    /// Attendance records of the place the district holds.
    pub records: u32,
    pub days: BTreeMap<NaiveDate, DayPay>,
    pub payable: BTreeSet<NaiveDate>,
    /// Days with a record that waits for the district's review.
    pub held: BTreeSet<NaiveDate>,
    pub allowance_fen: i64,
}

/// A stored decision: code, year, nth, cap, earlier class.
pub(crate) type DecisionRow = (String, i32, Option<i64>, Option<i64>, Option<String>);

/// The decision a stored row stands for.
pub(crate) fn decision_of(row: &DecisionRow) -> Option<SubsidyDecision> {
    let (code, year, nth, cap, earlier) = row;
    let n = |v: &Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    Some(match code.as_str() {
        "subsidised" => SubsidyDecision::Subsidised {
            year: *year,
            nth: n(nth)?,
        },
        "class_not_subsidised" => SubsidyDecision::ClassNotSubsidised,
        "class_cancelled" => SubsidyDecision::ClassCancelled,
        "year_cap_reached" => SubsidyDecision::YearCapReached {
            year: *year,
            cap: n(cap).unwrap_or(3),
        },
        "same_occupation_and_level" => SubsidyDecision::SameOccupationAndLevel {
            earlier: earlier.as_deref()?.parse().ok()?,
        },
        _ => return None,
    })
}

/// What the district decided and pays for every place of one class.
#[derive(Clone, Debug)]
pub(crate) struct ClassPay {
    pub class: String,
    pub first_day: NaiveDate,
    pub basis: PayBasis,
    pub places: Vec<PlacePay>,
}

impl ClassPay {
    /// The form phones receive.
    pub(crate) fn to_wire(&self) -> Option<ClassSettlement> {
        Some(ClassSettlement {
            class: self.class.parse().ok()?,
            basis: self.basis.check(),
            places: self
                .places
                .iter()
                .filter_map(|p| {
                    Some(PlaceSettlement {
                        trainee: p.trainee.parse().ok()?,
                        decision: p.decision.as_ref().map(WireDecision::from),
                        poverty: p.poverty.map(|s| s.code().to_owned()),
                        records: p.records,
                        payable: day_bitmap(self.first_day, &p.payable),
                        held: day_bitmap(self.first_day, &p.held),
                        allowance_fen: p.allowance_fen,
                        name_masked: None,
                        id_masked: None,
                    })
                })
                .collect(),
        })
    }
}

/// The pay of every place of `class` as the projections hold it; `None` for a class the server
/// does not have (or whose row does not read).
pub(crate) fn class_pay(
    conn: &dyn Sql,
    class: &str,
    policy: &PolicyTable,
) -> Result<Option<ClassPay>, DbError> {
    type Row = (bool, String, String, String, String, String, bool);
    let row: Option<Row> = conn.query_opt(
        "SELECT subsidised, occupation, level, first_day, last_day, status, sign_out_required
         FROM p_classes WHERE id = ?1",
        args![class],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        },
    )?;
    let Some((subsidised, occupation, level, first, last, status, sign_out_required)) = row else {
        return Ok(None);
    };
    let (Ok(level), Ok(first_day), Ok(last_day), Ok(status)) = (
        level.parse::<Level>(),
        first.parse::<NaiveDate>(),
        last.parse::<NaiveDate>(),
        status.parse::<ClassStatus>(),
    ) else {
        return Ok(None);
    };
    let basis = PayBasis {
        subsidised,
        occupation_key: songpei_core::validate::clean_text(&occupation).to_lowercase(),
        level,
        first_day,
        last_day,
        status,
        sign_out_required,
    };
    let roster: Vec<(String, Option<String>)> = conn.query_map(
        "SELECT e.trainee_id, h.poverty_status FROM p_enrolments e
         LEFT JOIN p_trainees t ON t.id = e.trainee_id
         LEFT JOIN p_households h ON h.id = t.household
         WHERE e.class_id = ?1 ORDER BY e.trainee_id",
        args![class],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut days: BTreeMap<String, BTreeMap<NaiveDate, DayPay>> = BTreeMap::new();
    for (t, day, signed_in, signed_out, payable) in conn.query_map(
        "SELECT trainee_id, day, signed_in, signed_out, payable FROM p_attendance_days
         WHERE class_id = ?1",
        args![class],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<bool>(2)?,
                r.get::<bool>(3)?,
                r.get::<bool>(4)?,
            ))
        },
    )? {
        if let Ok(day) = day.parse() {
            days.entry(t).or_default().insert(
                day,
                DayPay {
                    signed_in,
                    signed_out,
                    payable,
                },
            );
        }
    }
    let mut decisions: BTreeMap<String, DecisionRow> = conn
        .query_map(
            "SELECT trainee_id, decision, year, nth, cap, earlier_class FROM p_subsidies
             WHERE class_id = ?1",
            args![class],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
                ))
            },
        )?
        .into_iter()
        .collect();
    let reviewed: BTreeMap<String, (Option<Decision>, i64)> = conn
        .query_map(
            "SELECT subject, decision, at_ms FROM p_reviews WHERE doc_id = ?1",
            args![class],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    (Decision::parse(&r.get::<String>(1)?), r.get::<i64>(2)?),
                ))
            },
        )?
        .into_iter()
        .collect();
    // After a call-back denial every record not rejected waits for the office.
    let hold = callbacks::hold_of(conn, class, |s| reviewed.get(s).and_then(|r| r.0))?;
    let denied = callbacks::denied_days(conn, class)?;
    let mut records: BTreeMap<String, u32> = BTreeMap::new();
    let mut held: BTreeMap<String, BTreeSet<NaiveDate>> = BTreeMap::new();
    for (id, t, day, payable) in conn.query_map(
        "SELECT attendance_id, trainee_id, day, payable FROM attendance_checks WHERE class_id = ?1",
        args![class],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<bool>(3)?,
            ))
        },
    )? {
        *records.entry(t.clone()).or_default() += 1;
        let review = reviewed.get(&id).and_then(|(d, at)| d.map(|d| (d, *at)));
        let waits = match (hold, review) {
            (_, Some((Decision::Rejected, _))) => false,
            _ if callbacks::rejected_by_denial(&denied, &t, &day, review) => false,
            (Hold::Open, _) => true,
            (Hold::Rejected, _) => false,
            (Hold::None, decided) => !payable && decided.is_none(),
        };
        if waits && let Ok(day) = day.parse() {
            held.entry(t).or_default().insert(day);
        }
    }
    let mut places = Vec::with_capacity(roster.len());
    for (t, poverty) in roster {
        let poverty = poverty.and_then(|p| p.parse::<PovertyStatus>().ok());
        let days = days.remove(&t).unwrap_or_default();
        let payable: BTreeSet<NaiveDate> = days
            .iter()
            .filter(|(_, d)| d.payable)
            .map(|(d, _)| *d)
            .collect();
        // A day paid anyway (another record of it counts) is not held.
        let held: BTreeSet<NaiveDate> = held
            .remove(&t)
            .unwrap_or_default()
            .into_iter()
            .filter(|d| !payable.contains(d) && basis.first_day <= *d && *d <= basis.last_day)
            .collect();
        let decision_row = decisions.remove(&t);
        let decision = decision_row.as_ref().and_then(decision_of);
        let allowance_fen = decision.as_ref().map_or(0, |d| {
            rules::place_allowance_fen(d, &payable, poverty, policy)
        });
        places.push(PlacePay {
            records: records.get(&t).copied().unwrap_or(0),
            trainee: t,
            decision_row,
            decision,
            poverty,
            days,
            payable,
            held,
            allowance_fen,
        });
    }
    Ok(Some(ClassPay {
        class: class.to_owned(),
        first_day,
        basis,
        places,
    }))
}
