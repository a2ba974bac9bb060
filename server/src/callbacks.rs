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

use songpei_core::doc::review::{Decision, Review};
use songpei_core::ids::DocId;

use crate::AppState;
use crate::accounts::audit::Entry;
use crate::args;
use crate::db::{DbError, Sql};
use crate::error::ApiError;

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

/// What a clerk found on a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 确认: the trainee was there.
    Confirmed,
    /// 否认: the trainee says they were not.
    Denied,
    /// 联系不上: no answer this time.
    Unreachable,
}

impl Outcome {
    /// Parses the API's word.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "confirmed" => Some(Self::Confirmed),
            "denied" => Some(Self::Denied),
            "unreachable" => Some(Self::Unreachable),
            _ => None,
        }
    }

    /// The stored word.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Denied => "denied",
            Self::Unreachable => "unreachable",
        }
    }
}

/// A call as the office sees it after an outcome is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Recorded {
    /// The outcome the call was closed with; `None` while it stays open (an unanswered attempt
    /// before the third).
    pub closed_as: Option<&'static str>,
    /// Attempts so far.
    pub attempts: i64,
}

struct OpenCall {
    class: String,
    trainee: String,
    day: String,
    attempts: i64,
    outcome: Option<String>,
}

fn open_call(db: &dyn Sql, id: &str) -> Result<OpenCall, ApiError> {
    let row = db.query_opt(
        "SELECT class_id, trainee_id, day, attempts, outcome FROM callbacks WHERE id = ?1",
        args![id],
        |r| {
            Ok(OpenCall {
                class: r.get(0)?,
                trainee: r.get(1)?,
                day: r.get(2)?,
                attempts: r.get(3)?,
                outcome: r.get(4)?,
            })
        },
    )?;
    let call = row.ok_or_else(|| ApiError::NotFound("no such call-back".into()))?;
    if call.outcome.is_some() {
        return Err(ApiError::Conflict("callback_closed"));
    }
    Ok(call)
}

/// Records an attempt on call `id` by `account`, with the clerk's `note`.
pub(crate) fn record(
    state: &AppState,
    id: &str,
    outcome: Outcome,
    note: &str,
    account: &str,
    now_ms: i64,
) -> Result<Recorded, ApiError> {
    let note = songpei_core::validate::clean_text(note);
    if note.chars().count() > NOTE_MAX_CHARS {
        return Err(ApiError::Invalid {
            field: "note".into(),
            message: format!("is longer than {NOTE_MAX_CHARS} characters"),
        });
    }
    let mut store = state.store.lock().map_err(|_| ApiError::Internal)?;
    let call = open_call(store.conn(), id)?;
    let attempts = call.attempts + 1;
    let closed_as = match outcome {
        Outcome::Unreachable if attempts < MAX_ATTEMPTS => None,
        o => Some(o.code()),
    };
    let audit = Entry::new(
        format!("account:{account}"),
        "callback",
        id.to_owned(),
        serde_json::json!({ "outcome": outcome.code(), "attempt": attempts,
            "closed": closed_as.is_some() }),
    );
    let write = |tx: &dyn Sql| -> Result<(), DbError> {
        // Only an open call moves on: two clerks recording at once cannot both close it.
        let n = tx.execute(
            "UPDATE callbacks SET attempts = ?2, outcome = ?3, note = ?4, decided_by = ?5,
             decided_ms = ?6 WHERE id = ?1 AND outcome IS NULL AND attempts = ?7",
            args![
                id,
                attempts,
                closed_as,
                &note,
                closed_as.map(|_| account),
                closed_as.map(|_| now_ms),
                call.attempts
            ],
        )?;
        if n != 1 {
            return Err(DbError::Stale(id.to_owned()));
        }
        tx.execute(
            "INSERT INTO callback_attempts (callback_id, n, outcome, note, account, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![id, attempts, outcome.code(), &note, account, now_ms],
        )?;
        if outcome == Outcome::Denied {
            tx.execute(
                "INSERT INTO class_holds (callback_id, class_id, held_ms) VALUES (?1, ?2, ?3)",
                args![id, &call.class, now_ms],
            )?;
        }
        Ok(())
    };
    let stale = |e: DbError| match e {
        DbError::Stale(_) => ApiError::Conflict("callback_closed"),
        e => e.into(),
    };
    if outcome != Outcome::Denied {
        use crate::db::Transact;
        store
            .conn_mut()
            .transaction(|tx| -> Result<(), DbError> {
                write(tx)?;
                crate::accounts::audit::append(tx, now_ms, std::slice::from_ref(&audit))
            })
            .map_err(stale)?;
        return Ok(Recorded {
            closed_as,
            attempts,
        });
    }
    // A denial: every record of the trainee-day rejected, in the class document, with the hold.
    let doc: DocId = call.class.parse().map_err(|_| ApiError::Internal)?;
    let records: Vec<String> = store.conn().query_map(
        "SELECT attendance_id FROM attendance_checks WHERE class_id = ?1 AND trainee_id = ?2
         AND day = ?3 ORDER BY attendance_id",
        args![&call.class, &call.trainee, &call.day],
        |r| r.get(0),
    )?;
    let review = Review::new(
        Decision::Rejected,
        &format!("电话回访否认（回访编号 {id}）"),
        account,
        now_ms,
    )?;
    let reviews: Vec<(String, Review)> = records.into_iter().map(|a| (a, review.clone())).collect();
    crate::review::write(&mut store, state, doc, &reviews, &[audit], &write, now_ms)?;
    Ok(Recorded {
        closed_as,
        attempts,
    })
}

/// The trainee-days the sampler draws now, against the call list: what an auditor holding the
/// key checks. Returns (drawn, drawn but not listed, listed as drawn but not drawn).
pub(crate) fn verify(
    db: &dyn Sql,
    sampler: &Sampler,
) -> Result<
    (
        usize,
        Vec<(String, String, String)>,
        Vec<(String, String, String)>,
    ),
    DbError,
> {
    type Day = (String, String, String);
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
        "SELECT class_id, trainee_id, day FROM p_attendance_days WHERE payable = 1",
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
    fn the_call_list_is_what_the_key_draws_and_an_auditor_without_it_cannot_match_it() {
        use crate::db::Transact;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = crate::ServerStore::open(dir.path(), 4).expect("store");
        // Projections without their classes.
        store
            .conn()
            .batch("PRAGMA foreign_keys = OFF")
            .expect("pragma");
        let sampler = Sampler::new([42; 32], 200_000);
        // 3 classes × 20 trainees × 3 days, every day payable; one day accepted after a flag.
        let mut by_class: BTreeMap<String, BTreeMap<(String, String), bool>> = BTreeMap::new();
        for (i, (class, trainee, day)) in days(180).into_iter().enumerate() {
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

    #[test]
    fn outcomes_parse_from_the_api_words_only() {
        for o in [Outcome::Confirmed, Outcome::Denied, Outcome::Unreachable] {
            assert_eq!(Outcome::parse(o.code()), Some(o));
        }
        for bad in ["", "Confirmed", "yes", "denied ", "确认"] {
            assert_eq!(Outcome::parse(bad), None, "{bad:?}");
        }
    }
}
