//! 电话回访, call-back sampling (ADR 0008): the office calls a sample of trainees and asks whether
//! they were there.
//!
//! - **Selection.** Each payable trainee-day is drawn once, when it first becomes payable: the
//!   first eight bytes of HMAC-SHA256 under the server's call-back key (`callback.key` in the data
//!   folder) over the class, trainee and day, read as a fraction of 2^64, select it when below the
//!   configured rate (`[callbacks] rate`, 0.05 by default). A coordinator cannot tell which days
//!   will be called; an auditor given the key recomputes the same sample
//!   (`songpei-server admin callbacks verify`). A trainee-day with a record the office accepted
//!   after a flag is always called.
//! - **Outcomes.** The clerk records each attempt: `confirmed`, `denied`, or `unreachable` (no
//!   answer); the third unanswered attempt closes the call as 联系不上.
//! - **Denials.** A denial rejects every record of that trainee-day (a review decision written into
//!   the class document, as the office's own change) and holds the class: none of its records
//!   count until the office decides the review subject `hold:<call id>` — accepted clears the hold,
//!   rejected rejects the class's records. The clerk's note stays on the server: the reason written
//!   into the document (which the coordinator's phone receives) names the call, not what the
//!   trainee said.

use std::collections::{BTreeMap, BTreeSet};

use songpei_core::doc::review::Decision;

use crate::args;
use crate::db::{DbError, Sql};

/// Why a trainee-day is on the call list: drawn by the keyed hash.
pub(crate) const SAMPLE: &str = "sample";
/// Why a trainee-day is on the call list: a record of it was accepted after a flag.
pub(crate) const FLAG_ACCEPTED: &str = "flag_accepted";
/// Unanswered attempts that close a call as unreachable.
pub(crate) const MAX_ATTEMPTS: i64 = 3;
/// The review subject of a class held after a denial: `hold:<call id>`.
pub(crate) const HOLD_PREFIX: &str = "hold:";
/// The review subject that decides every open hold of a class at once.
pub(crate) const HOLD_ALL: &str = "hold";
/// Longest note kept, in characters.
pub(crate) const NOTE_MAX_CHARS: usize = 500;

/// How trainee-days are drawn for a call: the server's call-back key and the rate in parts per
/// million.
#[derive(Clone)]
pub struct Sampler {
    key: [u8; 32],
    per_million: u32,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("per_million", &self.per_million)
            .finish_non_exhaustive()
    }
}

impl Default for Sampler {
    /// Calls no one (a store opened without the server's key: tests and admin commands).
    fn default() -> Self {
        Self {
            key: [0; 32],
            per_million: 0,
        }
    }
}

impl Sampler {
    /// A sampler under `key` at `per_million` (capped at one million: every day).
    pub fn new(key: [u8; 32], per_million: u32) -> Self {
        Self {
            key,
            per_million: per_million.min(1_000_000),
        }
    }

    /// The rate, in parts per million.
    pub fn per_million(&self) -> u32 {
        self.per_million
    }

    /// The draw of a trainee-day: a number below 2^64 that no one without the key can predict.
    pub fn draw(&self, class: &str, trainee: &str, day: &str) -> u64 {
        use hmac::{Hmac, Mac};
        let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes any key length");
        for part in ["songpei callback v1", class, trainee, day] {
            m.update(&(part.len() as u32).to_be_bytes());
            m.update(part.as_bytes());
        }
        let d = m.finalize().into_bytes();
        u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    /// Whether the trainee-day is drawn at this sampler's rate.
    pub fn selects(&self, class: &str, trainee: &str, day: &str) -> bool {
        selected_at(self.draw(class, trainee, day), self.per_million)
    }
}

/// Whether `draw` (a fraction of 2^64) falls below `per_million` parts per million.
pub(crate) fn selected_at(draw: u64, per_million: u32) -> bool {
    ((u128::from(draw) * 1_000_000) >> 64) < u128::from(per_million)
}

/// Puts the payable trainee-days of a class on the call list when drawn (or accepted after a
/// flag); a day already on the list stays as it is. Called in the merge transaction.
pub(crate) fn select(
    tx: &dyn Sql,
    sampler: &Sampler,
    class: &str,
    village: &str,
    days: &BTreeMap<(String, String), bool>,
    now_ms: i64,
) -> Result<(), DbError> {
    if days.is_empty() {
        return Ok(());
    }
    let listed: BTreeSet<(String, String)> = tx
        .query_map(
            "SELECT trainee_id, day FROM callbacks WHERE class_id = ?1",
            args![class],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .into_iter()
        .collect();
    for ((trainee, day), accepted_after_flag) in days {
        if listed.contains(&(trainee.clone(), day.clone())) {
            continue;
        }
        let reason = if *accepted_after_flag {
            FLAG_ACCEPTED
        } else if sampler.selects(class, trainee, day) {
            SAMPLE
        } else {
            continue;
        };
        tx.execute(
            "INSERT INTO callbacks (id, class_id, village, trainee_id, day, reason, per_million,
             selected_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
            args![
                hex::encode(rand::random::<[u8; 8]>()),
                class,
                village,
                trainee,
                day,
                reason,
                sampler.per_million,
                now_ms
            ],
        )?;
    }
    Ok(())
}

/// Draws every payable trainee-day not on the call list — days made payable before call-backs
/// existed, or before the rate was raised — so that the list is what the key draws at the current
/// rate. Returns how many were put on the list.
pub(crate) fn draw_unlisted(
    tx: &dyn Sql,
    sampler: &Sampler,
    now_ms: i64,
) -> Result<usize, DbError> {
    let mut by_class: BTreeMap<(String, String), BTreeMap<(String, String), bool>> =
        BTreeMap::new();
    for (class, village, trainee, day) in tx.query_map(
        &format!("SELECT a.class_id, c.village, a.trainee_id, a.day FROM {PAYABLE_DAYS}"),
        &[],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
            ))
        },
    )? {
        by_class
            .entry((class, village))
            .or_default()
            .insert((trainee, day), false);
    }
    let before: i64 = tx.query_row("SELECT COUNT(*) FROM callbacks", &[], |r| r.get(0))?;
    for ((class, village), days) in &by_class {
        select(tx, sampler, class, village, days, now_ms)?;
    }
    let after: i64 = tx.query_row("SELECT COUNT(*) FROM callbacks", &[], |r| r.get(0))?;
    Ok(usize::try_from(after - before).unwrap_or(0))
}

/// The payable trainee-days within their class's days (the population drawn from), as a `FROM`
/// clause over `p_attendance_days a` and `p_classes c`.
const PAYABLE_DAYS: &str = "p_attendance_days a JOIN p_classes c ON c.id = a.class_id
     WHERE a.payable = 1 AND a.day >= c.first_day AND a.day <= c.last_day";

/// Whether a class is held after a denial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    /// No hold, or every hold cleared.
    None,
    /// A denial waits for the office: none of the class's records count.
    Open,
    /// The office rejected the class's records after a denial.
    Rejected,
}

/// The hold of `class`, given how the office decided each review subject.
pub(crate) fn hold_of(
    db: &dyn Sql,
    class: &str,
    decision: impl Fn(&str) -> Option<Decision>,
) -> Result<Hold, DbError> {
    let holds: Vec<String> = db.query_map(
        "SELECT callback_id FROM class_holds WHERE class_id = ?1",
        args![class],
        |r| r.get(0),
    )?;
    let mut hold = Hold::None;
    for id in holds {
        match decision(&format!("{HOLD_PREFIX}{id}")) {
            None => return Ok(Hold::Open),
            Some(Decision::Rejected) => hold = Hold::Rejected,
            Some(Decision::Accepted) => {}
        }
    }
    Ok(hold)
}

/// The trainee-days of `class` a trainee denied on a call, with when the denial was recorded.
pub(crate) fn denied_days(
    db: &dyn Sql,
    class: &str,
) -> Result<BTreeMap<(String, String), i64>, DbError> {
    Ok(db
        .query_map(
            "SELECT trainee_id, day, decided_ms FROM callbacks
             WHERE class_id = ?1 AND outcome = 'denied'",
            args![class],
            |r| {
                Ok((
                    (r.get(0)?, r.get(1)?),
                    r.get::<Option<i64>>(2)?.unwrap_or(0),
                ))
            },
        )?
        .into_iter()
        .collect())
}

/// Whether a record of `trainee` on `day` is rejected by a denial: every record of a denied
/// trainee-day — those that arrive later too — unless the office accepted that record itself after
/// the denial. `review` is the record's own decision and its time.
pub(crate) fn rejected_by_denial(
    denied: &BTreeMap<(String, String), i64>,
    trainee: &str,
    day: &str,
    review: Option<(Decision, i64)>,
) -> bool {
    match denied.get(&(trainee.to_owned(), day.to_owned())) {
        None => false,
        Some(at) => !matches!(review, Some((Decision::Accepted, r)) if r > *at),
    }
}

/// A trainee-day: class, trainee, day.
pub(crate) type Day = (String, String, String);

/// The trainee-days the sampler draws now, against the call list: what an auditor holding the
/// key checks. Returns (drawn, drawn but not listed, listed as drawn but not drawn).
pub(crate) fn verify(
    db: &dyn Sql,
    sampler: &Sampler,
) -> Result<(usize, Vec<Day>, Vec<Day>), DbError> {
    let listed: BTreeMap<Day, (String, u32)> = db
        .query_map(
            "SELECT class_id, trainee_id, day, reason, per_million FROM callbacks",
            &[],
            |r| {
                Ok((
                    (r.get(0)?, r.get(1)?, r.get(2)?),
                    (r.get(3)?, r.get::<i64>(4)?.clamp(0, 1_000_000) as u32),
                ))
            },
        )?
        .into_iter()
        .collect();
    let payable: Vec<Day> = db.query_map(
        &format!("SELECT a.class_id, a.trainee_id, a.day FROM {PAYABLE_DAYS}"),
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut drawn = 0;
    let mut missing = Vec::new();
    for d in payable {
        if sampler.selects(&d.0, &d.1, &d.2) {
            drawn += 1;
            if !listed.contains_key(&d) {
                missing.push(d);
            }
        }
    }
    let mut unexplained = Vec::new();
    for (d, (reason, per_million)) in &listed {
        if reason == SAMPLE && !selected_at(sampler.draw(&d.0, &d.1, &d.2), *per_million) {
            unexplained.push(d.clone());
        }
    }
    Ok((drawn, missing, unexplained))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: usize) -> Vec<(String, String, String)> {
        (0..n)
            .map(|i| {
                (
                    format!("class-{}", i % 7),
                    format!("trainee-{i}"),
                    format!("2026-12-{:02}", 1 + i % 28),
                )
            })
            .collect()
    }

    /// Classes running through December 2026 (projections only: foreign keys off).
    fn classes(store: &crate::ServerStore, ids: &[&str]) {
        store
            .conn()
            .batch("PRAGMA foreign_keys = OFF")
            .expect("pragma");
        for c in ids {
            store
                .conn()
                .execute(
                    "INSERT INTO p_classes (id, district, village, title, status, occupation,
                     level, training_type, subsidised, first_day, last_day, sign_out_required)
                     VALUES (?1, '450802', '450802101201', 't', 'running', 'o', 'junior',
                     'employment_skills', 1, '2026-12-01', '2026-12-28', 0)",
                    args![*c],
                )
                .expect("class");
        }
    }

    fn sample(s: &Sampler, days: &[(String, String, String)]) -> Vec<usize> {
        days.iter()
            .enumerate()
            .filter(|(_, d)| s.selects(&d.0, &d.1, &d.2))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn the_sample_is_reproducible_from_the_key_and_differs_without_it() {
        let days = days(4_000);
        let a = Sampler::new([7; 32], 50_000);
        let again = Sampler::new([7; 32], 50_000);
        let other = Sampler::new([8; 32], 50_000);
        let picked = sample(&a, &days);
        assert_eq!(
            picked,
            sample(&again, &days),
            "the same key draws the same days"
        );
        let guessed = sample(&other, &days);
        assert_ne!(picked, guessed, "another key draws other days");
        let both = picked.iter().filter(|i| guessed.contains(i)).count();
        // Independent draws at 5 % overlap on about 5 % of the picks.
        assert!(
            both * 4 < picked.len(),
            "{both} of {} in common",
            picked.len()
        );
        // The rate holds: 5 % of 4,000 is 200, well within ±60.
        assert!((140..=260).contains(&picked.len()), "{}", picked.len());
    }

    #[test]
    fn rates_at_the_ends_select_none_or_all_and_parts_of_the_day_matter() {
        let days = days(500);
        assert!(sample(&Sampler::new([1; 32], 0), &days).is_empty());
        assert_eq!(sample(&Sampler::new([1; 32], 1_000_000), &days).len(), 500);
        assert_eq!(sample(&Sampler::new([1; 32], 5_000_000), &days).len(), 500);
        let s = Sampler::new([1; 32], 500_000);
        // Moving a separator between fields changes the draw (each part is length-prefixed).
        assert_ne!(s.draw("ab", "c", "d"), s.draw("a", "bc", "d"));
        assert!(selected_at(0, 1));
        assert!(!selected_at(u64::MAX, 999_999));
        assert!(selected_at(u64::MAX, 1_000_000));
    }

    #[test]
    fn days_payable_before_call_backs_or_a_raised_rate_are_drawn_once_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = crate::ServerStore::open(dir.path(), 4, &crate::DbKey::from_bytes([7; 32]))
            .expect("store");
        classes(&store, &["c0", "c1"]);
        for (i, (_, trainee, day)) in days(200).into_iter().enumerate() {
            store
                .conn()
                .execute(
                    "INSERT INTO p_attendance_days (class_id, trainee_id, day, signed_in,
                     signed_out, payable) VALUES (?1, ?2, ?3, 1, 0, 1)",
                    args![format!("c{}", i % 2), &trainee, &day],
                )
                .expect("day");
        }
        let count = |store: &crate::ServerStore| -> i64 {
            store
                .conn()
                .query_row("SELECT COUNT(*) FROM callbacks", &[], |r| r.get(0))
                .expect("count")
        };
        for (rate, again) in [(100_000, false), (100_000, true), (300_000, false)] {
            let sampler = Sampler::new([9; 32], rate);
            store.set_sampler(sampler.clone());
            let before = count(&store);
            let drawn = store.draw_callbacks(1).expect("draw");
            assert_eq!(count(&store) - before, drawn as i64);
            if again {
                assert_eq!(drawn, 0, "a rate is drawn at once");
            } else {
                assert!(drawn > 0, "rate {rate}");
            }
            let (n, missing, unexplained) = verify(store.conn(), &sampler).expect("verify");
            assert_eq!((missing.len(), unexplained.len()), (0, 0), "rate {rate}");
            assert_eq!(n as i64, count(&store), "rate {rate}");
        }
    }

    #[test]
    fn the_call_list_is_what_the_key_draws_and_an_auditor_without_it_cannot_match_it() {
        use crate::db::Transact;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = crate::ServerStore::open(dir.path(), 4, &crate::DbKey::from_bytes([7; 32]))
            .expect("store");
        // Projections without their classes.
        classes(&store, &["c0", "c1", "c2"]);
        let sampler = Sampler::new([42; 32], 200_000);
        // 3 classes × 20 trainees × 3 days, every day payable; one day accepted after a flag.
        let mut by_class: BTreeMap<String, BTreeMap<(String, String), bool>> = BTreeMap::new();
        for (i, (_, trainee, day)) in days(180).into_iter().enumerate() {
            let class = format!("c{}", i % 3);
            store
                .conn()
                .execute(
                    "INSERT INTO p_attendance_days (class_id, trainee_id, day, signed_in,
                     signed_out, payable) VALUES (?1, ?2, ?3, 1, 0, 1)",
                    args![&class, &trainee, &day],
                )
                .expect("day");
            by_class
                .entry(class)
                .or_default()
                .insert((trainee, day), i == 7);
        }
        store
            .conn_mut()
            .transaction(|tx| -> Result<(), DbError> {
                for (class, days) in &by_class {
                    select(tx, &sampler, class, "450802101201", days, 1)?;
                    // Drawn again (a later merge), nothing is listed twice.
                    select(tx, &sampler, class, "450802101201", days, 2)?;
                }
                Ok(())
            })
            .expect("select");
        let listed: Vec<(String, String, String, String)> = store
            .conn()
            .query_map(
                "SELECT class_id, trainee_id, day, reason FROM callbacks
                 ORDER BY class_id, trainee_id, day",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("list");
        let mut want: Vec<(String, String, String, String)> = Vec::new();
        for (class, days) in &by_class {
            for ((trainee, day), accepted) in days {
                let reason = if *accepted {
                    FLAG_ACCEPTED
                } else if sampler.selects(class, trainee, day) {
                    SAMPLE
                } else {
                    continue;
                };
                want.push((
                    class.clone(),
                    trainee.clone(),
                    day.clone(),
                    reason.to_owned(),
                ));
            }
        }
        want.sort();
        assert_eq!(listed, want);
        assert!((20..=60).contains(&listed.len()), "{}", listed.len());
        // The auditor with the key draws the same days; with another key, not.
        let (drawn, missing, unexplained) = verify(store.conn(), &sampler).expect("verify");
        assert_eq!((missing.len(), unexplained.len()), (0, 0));
        let drawn_by_key = by_class
            .iter()
            .flat_map(|(c, days)| days.keys().map(move |(t, d)| (c, t, d)))
            .filter(|(c, t, d)| sampler.selects(c, t, d))
            .count();
        assert_eq!(drawn, drawn_by_key);
        let (_, missing, unexplained) =
            verify(store.conn(), &Sampler::new([43; 32], 200_000)).expect("verify");
        assert!(!missing.is_empty() && !unexplained.is_empty());
    }
}
