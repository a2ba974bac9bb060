//! The rules the numbers must obey, computed the same way on the phone and on the server.
//!
//! - A **payable day** is a training day with a sign-in and, where the class requires it, a
//!   sign-out.
//! - The **living allowance** of a place is paid for each payable day to a trainee whose household
//!   is 脱贫户 or 监测户 and whose place is subsidised (the allowance is paid during free training),
//!   at the rate in force on that day (50 yuan = 5,000 fen since 2019; document 001).
//! - A person gets at most **three subsidised classes a calendar year**, and the same occupation at
//!   the same level is subsidised **once** (document 003).
//!
//! Policy values are data with the date they take effect, so a change mid-class judges each day by
//! the value in force that day.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::catalog::{ClassStatus, Level, PovertyStatus};
use crate::domain::{AttendanceKind, AttendanceMethod, Class};
use crate::ids::{ClassId, TraineeId};
use crate::validate::clean_text;

/// Policy values in force from a date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// First day these values apply.
    pub effective_from: NaiveDate,
    /// Living allowance per payable day, in fen.
    pub allowance_fen_per_day: i64,
    /// Subsidised classes a person may have in a calendar year.
    pub max_subsidised_per_year: u32,
}

/// Policy values over time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyTable {
    entries: Vec<Policy>,
}

impl Default for PolicyTable {
    /// The values of the seed documents: 50 yuan a day (001), three subsidised classes a year (003).
    fn default() -> Self {
        Self::new(vec![Policy {
            effective_from: NaiveDate::from_ymd_opt(2019, 1, 1).unwrap_or(NaiveDate::MIN),
            allowance_fen_per_day: 5_000,
            max_subsidised_per_year: 3,
        }])
    }
}

impl PolicyTable {
    /// A table from entries in any order.
    pub fn new(mut entries: Vec<Policy>) -> Self {
        entries.sort_by_key(|p| p.effective_from);
        Self { entries }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[Policy] {
        &self.entries
    }

    /// A check of the table's values: the same on every phone and server that holds the same
    /// entries, never 0 (which stands for "no table" in the sync protocol).
    pub fn version(&self) -> u32 {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for p in &self.entries {
            h.update(format!(
                "{}|{}|{};",
                p.effective_from, p.allowance_fen_per_day, p.max_subsidised_per_year
            ));
        }
        let d = h.finalize();
        u32::from_be_bytes([d[0], d[1], d[2], d[3]]).max(1)
    }

    /// The values in force on `day`; before the first entry, the first entry's values.
    pub fn in_force(&self, day: NaiveDate) -> Option<&Policy> {
        self.entries
            .iter()
            .rev()
            .find(|p| p.effective_from <= day)
            .or_else(|| self.entries.first())
    }
}

/// One trainee's attendance on one training day.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DayAttendance {
    /// Signed in.
    pub signed_in: bool,
    /// Signed out.
    pub signed_out: bool,
    /// Counts for pay.
    pub payable: bool,
}

/// Attendance per trainee per training day, and the days that count.
pub fn attendance_by_day(class: &Class) -> BTreeMap<TraineeId, BTreeMap<NaiveDate, DayAttendance>> {
    attendance_by_day_where(class, |_| true)
}

/// [`attendance_by_day`] counting only the records `keep` accepts: the server leaves out records
/// whose proofs failed or that wait for review.
pub fn attendance_by_day_where(
    class: &Class,
    keep: impl Fn(&crate::domain::Attendance) -> bool,
) -> BTreeMap<TraineeId, BTreeMap<NaiveDate, DayAttendance>> {
    let mut out: BTreeMap<TraineeId, BTreeMap<NaiveDate, DayAttendance>> = BTreeMap::new();
    for a in class.attendance.values() {
        if !class.roster.contains_key(&a.trainee) || !class.is_training_day(a.day) || !keep(a) {
            continue;
        }
        if matches!(a.method, AttendanceMethod::Other { .. }) {
            // A method this build cannot verify is kept but not paid.
            continue;
        }
        let d = out.entry(a.trainee).or_default().entry(a.day).or_default();
        match a.kind {
            AttendanceKind::SignIn => d.signed_in = true,
            AttendanceKind::SignOut => d.signed_out = true,
        }
    }
    for days in out.values_mut() {
        for d in days.values_mut() {
            d.payable = d.signed_in && (d.signed_out || !class.sign_out_required);
        }
    }
    out
}

/// The payable days of one trainee in a class.
pub fn payable_days(class: &Class, trainee: TraineeId) -> BTreeSet<NaiveDate> {
    attendance_by_day(class)
        .remove(&trainee)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, d)| d.payable)
        .map(|(day, _)| day)
        .collect()
}

/// The living allowance in fen for payable `days`, given the trainee's household status.
pub fn allowance_fen(
    days: &BTreeSet<NaiveDate>,
    poverty: Option<PovertyStatus>,
    policy: &PolicyTable,
) -> i64 {
    if !poverty.is_some_and(|p| p.gets_living_allowance()) {
        return 0;
    }
    days.iter()
        .filter_map(|d| policy.in_force(*d))
        .map(|p| p.allowance_fen_per_day)
        .sum()
}

/// The living allowance of one place, in fen: [`allowance_fen`] for the payable `days` when the
/// place is subsidised, else nothing. This is the figure the district pays (docs/figures.md).
pub fn place_allowance_fen(
    decision: &SubsidyDecision,
    days: &BTreeSet<NaiveDate>,
    poverty: Option<PovertyStatus>,
    policy: &PolicyTable,
) -> i64 {
    if decision.is_subsidised() {
        allowance_fen(days, poverty, policy)
    } else {
        0
    }
}

/// The facts of a class that the district's pay for its places depends on: a check over them
/// tells a phone whether the district decided on the class as the phone has it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayBasis {
    /// Subsidised class.
    pub subsidised: bool,
    /// Occupation, as compared by the rules ([`SubsidyFacts::occupation_key`]).
    pub occupation_key: String,
    /// Level.
    pub level: Level,
    /// First day.
    pub first_day: NaiveDate,
    /// Last day.
    pub last_day: NaiveDate,
    /// Status.
    pub status: ClassStatus,
    /// Days need a sign-out.
    pub sign_out_required: bool,
}

impl PayBasis {
    /// The basis of a class as read.
    pub fn of(class: &Class) -> Self {
        Self {
            subsidised: class.subsidised,
            occupation_key: SubsidyFacts::of(class).occupation_key(),
            level: class.level,
            first_day: class.first_day,
            last_day: class.last_day,
            status: class.status,
            sign_out_required: class.sign_out_required,
        }
    }

    /// The check: the first four bytes of SHA-256 over the facts.
    pub fn check(&self) -> u32 {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.subsidised,
            self.occupation_key,
            self.level.code(),
            self.first_day,
            self.last_day,
            self.status.code(),
            self.sign_out_required
        ));
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }
}

/// What the subsidy rules need of a class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubsidyFacts {
    /// Class.
    pub class: ClassId,
    /// Whether the class is subsidised at all.
    pub subsidised: bool,
    /// Occupation, as typed.
    pub occupation: String,
    /// Level.
    pub level: Level,
    /// First training day (its year is the class's year).
    pub first_day: NaiveDate,
    /// Status (cancelled classes do not count).
    pub status: ClassStatus,
}

impl SubsidyFacts {
    /// The facts of a class.
    pub fn of(class: &Class) -> Self {
        Self {
            class: class.id,
            subsidised: class.subsidised,
            occupation: class.occupation.clone(),
            level: class.level,
            first_day: class.first_day,
            status: class.status,
        }
    }

    /// The occupation as compared by the once-per-occupation-and-level rule: cleaned, lower case.
    pub fn occupation_key(&self) -> String {
        clean_text(&self.occupation).to_lowercase()
    }

    /// Order in which a person's classes claim the subsidy: by first day, then id.
    fn order(&self) -> (NaiveDate, ClassId) {
        (self.first_day, self.class)
    }
}

/// Whether one person's place in one class is subsidised, and the rule that decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum SubsidyDecision {
    /// The class is not a subsidised class.
    ClassNotSubsidised,
    /// Subsidised: the `nth` subsidised class of the person in `year`.
    Subsidised {
        /// Calendar year.
        year: i32,
        /// 1-based position among the year's subsidised classes.
        nth: u32,
    },
    /// Not subsidised: the person already has the year's maximum.
    YearCapReached {
        /// Calendar year.
        year: i32,
        /// The cap.
        cap: u32,
    },
    /// Not subsidised: the person already had this occupation at this level subsidised.
    SameOccupationAndLevel {
        /// The class that was subsidised.
        earlier: ClassId,
    },
    /// Not subsidised: the class was cancelled (it counts for no one's yearly cap).
    ClassCancelled,
}

impl SubsidyDecision {
    /// True if the place is subsidised.
    pub fn is_subsidised(&self) -> bool {
        matches!(self, SubsidyDecision::Subsidised { .. })
    }
}

/// Decides every class of one person at once: walks the person's classes in order, granting the
/// subsidy while the rules allow. `classes` are all classes the person is enrolled in, wherever.
pub fn decide_subsidies(
    classes: &[SubsidyFacts],
    policy: &PolicyTable,
) -> BTreeMap<ClassId, SubsidyDecision> {
    let mut ordered: Vec<&SubsidyFacts> = classes
        .iter()
        .filter(|c| c.status != ClassStatus::Cancelled)
        .collect();
    ordered.sort_by_key(|c| c.order());
    let mut per_year: BTreeMap<i32, u32> = BTreeMap::new();
    let mut granted: BTreeMap<(String, Level), ClassId> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for c in ordered {
        let decision = if !c.subsidised {
            SubsidyDecision::ClassNotSubsidised
        } else if let Some(earlier) = granted.get(&(c.occupation_key(), c.level)) {
            SubsidyDecision::SameOccupationAndLevel { earlier: *earlier }
        } else {
            let year = c.first_day.year();
            let cap = policy
                .in_force(c.first_day)
                .map_or(0, |p| p.max_subsidised_per_year);
            let used = per_year.entry(year).or_default();
            if *used >= cap {
                SubsidyDecision::YearCapReached { year, cap }
            } else {
                *used += 1;
                granted.insert((c.occupation_key(), c.level), c.class);
                SubsidyDecision::Subsidised { year, nth: *used }
            }
        };
        out.insert(c.class, decision);
    }
    for c in classes
        .iter()
        .filter(|c| c.status == ClassStatus::Cancelled)
    {
        out.insert(c.class, SubsidyDecision::ClassCancelled);
    }
    out
}

#[cfg(test)]
mod tests;
