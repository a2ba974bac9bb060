//! The rules against hand-computed cases, one per row I1–I5 of the reliability catalogue.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::*;
use crate::domain::{Attendance, Enrolment};
use crate::ids::{AttendanceId, DeviceId, DistrictCode, VillageCode};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or(NaiveDate::MIN)
}

fn class(first: &str, last: &str, sign_out_required: bool) -> Class {
    Class {
        id: ClassId::random(),
        district: DistrictCode::parse("450802").unwrap_or_else(|| unreachable!()),
        village: VillageCode::parse("450802101201").unwrap_or_else(|| unreachable!()),
        title: "t".into(),
        occupation: "中式烹调师".into(),
        level: Level::Junior,
        training_type: crate::catalog::TrainingType::EmploymentSkills,
        subsidised: true,
        institution: None,
        instructors: Default::default(),
        instructor_accounts: Default::default(),
        venue: None,
        first_day: d(first),
        last_day: d(last),
        daily_hours: None,
        starts_at: None,
        sign_out_required,
        planned_size: None,
        status: ClassStatus::Running,
        roster: BTreeMap::new(),
        attendance: BTreeMap::new(),
        completion: BTreeMap::new(),
        registrations: BTreeMap::new(),
    }
}

fn enrol(c: &mut Class, t: TraineeId) {
    c.roster.insert(
        t,
        Enrolment {
            trainee: t,
            enrolled_at_ms: 0,
        },
    );
}

fn attend(c: &mut Class, t: TraineeId, day: &str, kind: AttendanceKind) {
    let id = AttendanceId::random();
    c.attendance.insert(
        id,
        Attendance {
            id,
            trainee: t,
            day: d(day),
            kind,
            at_ms: 0,
            clock_offset_ms: Some(0),
            device: DeviceId::random(),
            method: AttendanceMethod::Hand {
                reason: "test".into(),
            },
            gps: None,
        },
    );
}

#[test]
fn i3_five_payable_days_pay_25000_fen_to_poverty_households_only() {
    let mut c = class("2026-03-02", "2026-03-06", true);
    let t = TraineeId::random();
    enrol(&mut c, t);
    for day in [
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
        "2026-03-05",
        "2026-03-06",
    ] {
        attend(&mut c, t, day, AttendanceKind::SignIn);
        attend(&mut c, t, day, AttendanceKind::SignOut);
    }
    let days = payable_days(&c, t);
    assert_eq!(days.len(), 5);
    let p = PolicyTable::default();
    assert_eq!(
        allowance_fen(&days, Some(PovertyStatus::Lifted), &p),
        25_000
    );
    assert_eq!(
        allowance_fen(&days, Some(PovertyStatus::Monitored), &p),
        25_000
    );
    assert_eq!(allowance_fen(&days, Some(PovertyStatus::Dibao), &p), 0);
    assert_eq!(allowance_fen(&days, Some(PovertyStatus::Ordinary), &p), 0);
    assert_eq!(allowance_fen(&days, None, &p), 0);
}

#[test]
fn i4_sign_in_without_sign_out_is_not_payable_when_required() {
    let t = TraineeId::random();
    for (required, expected) in [(true, 1), (false, 2)] {
        let mut c = class("2026-03-02", "2026-03-06", required);
        enrol(&mut c, t);
        attend(&mut c, t, "2026-03-02", AttendanceKind::SignIn);
        attend(&mut c, t, "2026-03-02", AttendanceKind::SignOut);
        attend(&mut c, t, "2026-03-03", AttendanceKind::SignIn);
        // A sign-out alone never makes a day payable.
        attend(&mut c, t, "2026-03-04", AttendanceKind::SignOut);
        assert_eq!(
            payable_days(&c, t).len(),
            expected,
            "sign-out required: {required}"
        );
    }
}

#[test]
fn attendance_outside_roster_or_days_or_of_unknown_method_does_not_count() {
    let mut c = class("2026-03-02", "2026-03-03", false);
    let enrolled = TraineeId::random();
    let stranger = TraineeId::random();
    enrol(&mut c, enrolled);
    attend(&mut c, stranger, "2026-03-02", AttendanceKind::SignIn);
    attend(&mut c, enrolled, "2026-03-09", AttendanceKind::SignIn);
    let id = AttendanceId::random();
    c.attendance.insert(
        id,
        Attendance {
            id,
            trainee: enrolled,
            day: d("2026-03-02"),
            kind: AttendanceKind::SignIn,
            at_ms: 0,
            clock_offset_ms: Some(0),
            device: DeviceId::random(),
            method: AttendanceMethod::Other {
                code: "future".into(),
            },
            gps: None,
        },
    );
    assert!(payable_days(&c, stranger).is_empty());
    assert!(payable_days(&c, enrolled).is_empty());
    // Two sign-ins on one day are one payable day.
    attend(&mut c, enrolled, "2026-03-03", AttendanceKind::SignIn);
    attend(&mut c, enrolled, "2026-03-03", AttendanceKind::SignIn);
    assert_eq!(payable_days(&c, enrolled).len(), 1);
}

#[test]
fn i5_each_day_judged_by_the_rate_in_force_that_day() {
    let p = PolicyTable::new(vec![
        Policy {
            effective_from: d("2026-03-04"),
            allowance_fen_per_day: 6_000,
            max_subsidised_per_year: 3,
        },
        Policy {
            effective_from: d("2019-01-01"),
            allowance_fen_per_day: 5_000,
            max_subsidised_per_year: 3,
        },
    ]);
    let days = ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"]
        .map(d)
        .into_iter()
        .collect();
    // 2 days at 50 yuan, 2 at 60 yuan.
    assert_eq!(
        allowance_fen(&days, Some(PovertyStatus::Lifted), &p),
        22_000
    );
}

fn facts(first: &str, occupation: &str, level: Level, subsidised: bool) -> SubsidyFacts {
    SubsidyFacts {
        class: ClassId::random(),
        subsidised,
        occupation: occupation.into(),
        level,
        first_day: d(first),
        status: ClassStatus::Running,
    }
}

#[test]
fn i1_fourth_subsidised_class_in_a_year_is_not_subsidised() {
    let classes = vec![
        facts("2026-05-01", "电工", Level::Junior, true),
        facts("2026-01-10", "中式烹调师", Level::Junior, true),
        facts("2026-03-01", "养老护理员", Level::Junior, true),
        facts("2026-09-01", "育婴员", Level::Junior, true),
        facts("2027-01-05", "农村电商", Level::Junior, true),
    ];
    let out = decide_subsidies(&classes, &PolicyTable::default());
    let subsidised: Vec<_> = classes
        .iter()
        .filter(|c| out[&c.class].is_subsidised())
        .map(|c| c.occupation.as_str())
        .collect();
    // The three earliest of 2026 and the one of 2027.
    assert_eq!(subsidised, ["电工", "中式烹调师", "养老护理员", "农村电商"]);
    assert_eq!(
        out[&classes[3].class],
        SubsidyDecision::YearCapReached { year: 2026, cap: 3 }
    );
}

#[test]
fn i2_same_occupation_and_level_is_subsidised_once() {
    let first = facts("2025-04-01", "电工", Level::Junior, true);
    let again = facts("2026-04-01", " 电工 ", Level::Junior, true);
    let higher = facts("2026-06-01", "电工", Level::Intermediate, true);
    let free = facts("2026-07-01", "茶艺师", Level::Junior, false);
    let out = decide_subsidies(
        &[again.clone(), first.clone(), higher.clone(), free.clone()],
        &PolicyTable::default(),
    );
    assert!(out[&first.class].is_subsidised());
    assert_eq!(
        out[&again.class],
        SubsidyDecision::SameOccupationAndLevel {
            earlier: first.class
        }
    );
    assert!(out[&higher.class].is_subsidised());
    assert_eq!(out[&free.class], SubsidyDecision::ClassNotSubsidised);
}

#[test]
fn cancelled_classes_do_not_use_the_cap() {
    let mut cancelled = facts("2026-01-01", "电工", Level::Junior, true);
    cancelled.status = ClassStatus::Cancelled;
    let mut classes = vec![cancelled.clone()];
    for (i, occ) in ["a", "b", "c"].iter().enumerate() {
        classes.push(facts(
            &format!("2026-0{}-01", i + 2),
            occ,
            Level::Junior,
            true,
        ));
    }
    let out = decide_subsidies(&classes, &PolicyTable::default());
    assert_eq!(out[&cancelled.class], SubsidyDecision::ClassCancelled);
    assert_eq!(out.values().filter(|d| d.is_subsidised()).count(), 3);
}

#[test]
fn a_place_is_paid_only_when_subsidised() {
    let days: BTreeSet<NaiveDate> = ["2026-03-02", "2026-03-03"]
        .iter()
        .map(|d| d.parse().expect("day"))
        .collect();
    let policy = PolicyTable::default();
    let lifted = Some(PovertyStatus::Lifted);
    let cases = [
        (
            SubsidyDecision::Subsidised { year: 2026, nth: 1 },
            lifted,
            10_000,
        ),
        (
            SubsidyDecision::Subsidised { year: 2026, nth: 1 },
            Some(PovertyStatus::Ordinary),
            0,
        ),
        (SubsidyDecision::ClassNotSubsidised, lifted, 0),
        (SubsidyDecision::ClassCancelled, lifted, 0),
        (
            SubsidyDecision::YearCapReached { year: 2026, cap: 3 },
            lifted,
            0,
        ),
    ];
    for (decision, poverty, fen) in cases {
        assert_eq!(
            place_allowance_fen(&decision, &days, poverty, &policy),
            fen,
            "{decision:?} {poverty:?}"
        );
    }
}

#[test]
fn a_policy_tables_version_follows_its_values() {
    let a = PolicyTable::default();
    let mut entries = a.entries().to_vec();
    assert_eq!(a.version(), PolicyTable::new(entries.clone()).version());
    entries[0].allowance_fen_per_day = 6_000;
    assert_ne!(a.version(), PolicyTable::new(entries).version());
    assert_ne!(a.version(), 0);
}
