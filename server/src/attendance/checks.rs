//! The checks every attendance record meets when it arrives, in the merge transaction: its proof
//! checked again, its time corrected, and the flags that hold it for review (see the table in
//! `attendance`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::cards::card_key_set;
use super::witness;
use crate::args;
use crate::config::SigninRules;
use crate::db::{DbError, Sql};
use chrono::{NaiveDate, NaiveTime, TimeZone};
use serde::Serialize;
use songpei_core::clock::china;
use songpei_core::domain::{Attendance, AttendanceMethod, Class, Gps};
use songpei_core::qr::{CardScan, Code, RESPONSE_WINDOW_MS, Signer};

/// A trainee phone may answer for this many trainees a day (a couple sharing a phone).
const MAX_TRAINEES_PER_PHONE: i64 = 2;
/// A fix further than this from the venue (plus the fix's accuracy) is flagged.
const VENUE_RADIUS_M: f64 = 1_000.0;
/// Fastest plausible travel between venues.
const TRAVEL_KMH: f64 = 60.0;
/// Between two villages without venue fixes, at least this long.
const MIN_TRAVEL_MS: i64 = 20 * 60 * 1000;
/// Five sign-ins on one phone within this time are faster than a queue moves (one per 2 s).
const QUEUE_WINDOW_MS: i64 = 8_000;
const QUEUE_COUNT: i64 = 5;
/// Sign-ins this long before the start or after the end of the day's hours are flagged.
const HOURS_MARGIN_MS: i64 = 60 * 60 * 1000;
/// Without a start time, a training day runs from 06:00 to 22:00.
const DEFAULT_START: (u32, u32) = (6, 0);
const DEFAULT_HOURS: f64 = 16.0;
/// A response whose phone's fix is further than this from the recording phone's (or the venue's)
/// fix, plus both fixes' accuracy, was made elsewhere: its class code was relayed.
const RELAY_RADIUS_M: f64 = 1_000.0;
/// The most of a fix's claimed accuracy that widens the radius.
const MAX_SLACK_M: f64 = 500.0;
/// A clock this far off is noted.
const CLOCK_MISMATCH_MS: i64 = 10 * 60 * 1000;

/// One flag on one record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Flag {
    /// The attendance record.
    pub attendance: String,
    /// Its class.
    pub class: String,
    /// The flag's code.
    pub flag: String,
    /// What was found, without personal data.
    pub detail: String,
    /// Whether the record waits for review before it is paid.
    pub blocks_pay: bool,
}

/// Flags, optionally of one class, oldest first.
pub(crate) fn flags(db: &dyn Sql, class: Option<&str>) -> Result<Vec<Flag>, DbError> {
    db.query_map(
        "SELECT attendance_id, class_id, flag, detail, blocks_pay FROM attendance_flags
         WHERE CAST(?1 AS TEXT) IS NULL OR class_id = ?1 ORDER BY created_at, attendance_id, flag",
        args![class],
        |r| {
            Ok(Flag {
                attendance: r.get(0)?,
                class: r.get(1)?,
                flag: r.get(2)?,
                detail: r.get(3)?,
                blocks_pay: r.get(4)?,
            })
        },
    )
}

/// A checked record as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Checked {
    /// The record.
    pub attendance: String,
    /// How it was taken.
    pub method: String,
    /// Whether its proof verified (`None`: entered by hand, no proof).
    pub proof_valid: Option<bool>,
    /// The phone's clock corrected by its offset to the server's, when known.
    pub corrected_ms: Option<i64>,
    /// Whether it counts for pay now.
    pub payable: bool,
}

#[cfg(test)]
/// The checked records of a class.
pub(crate) fn checked(db: &dyn Sql, class: &str) -> Result<Vec<Checked>, DbError> {
    db.query_map(
        "SELECT attendance_id, method, proof_valid, corrected_ms, payable FROM attendance_checks
         WHERE class_id = ?1 ORDER BY at_ms, attendance_id",
        args![class],
        |r| {
            Ok(Checked {
                attendance: r.get(0)?,
                method: r.get(1)?,
                proof_valid: r.get(2)?,
                corrected_ms: r.get(3)?,
                payable: r.get(4)?,
            })
        },
    )
}

/// The outcome of checking a record's proof.
struct Proof {
    valid: Option<bool>,
    problem: Option<String>,
    responder: Option<String>,
    hash: Option<Vec<u8>>,
    /// A response's own fix and time since boot.
    fix: Option<Gps>,
    uptime_ms: Option<u64>,
    /// A card's fingerprint.
    card_hash: Option<Vec<u8>>,
}

/// Public keys looked up while checking one class.
#[derive(Default)]
pub(super) struct Keys {
    devices: HashMap<String, Option<Vec<u8>>>,
    signers: HashMap<String, Option<Signer>>,
    cards: Option<BTreeMap<u32, (Vec<u8>, bool)>>,
}

impl Keys {
    /// An enrolled, not withdrawn phone with its account's role and villages.
    pub(super) fn signer(&mut self, db: &dyn Sql, id: &str) -> Result<Option<Signer>, DbError> {
        if let Some(s) = self.signers.get(id) {
            return Ok(s.clone());
        }
        let row: Option<(Vec<u8>, String, String)> = db.query_opt(
            "SELECT d.public_key, d.account_id, a.role FROM devices d
             JOIN accounts a ON a.id = d.account_id WHERE d.id = ?1 AND d.revoked_at IS NULL",
            args![id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let signer = match row {
            None => None,
            Some((public_key, account, role)) => {
                let villages: Vec<String> = db.query_map(
                    "SELECT village FROM account_villages WHERE account_id = ?1",
                    args![&account],
                    |r| r.get(0),
                )?;
                Some(Signer {
                    account,
                    public_key,
                    instructor: role == "instructor",
                    villages: villages.into_iter().collect(),
                })
            }
        };
        self.signers.insert(id.to_owned(), signer.clone());
        Ok(signer)
    }

    fn device(&mut self, db: &dyn Sql, id: &str) -> Result<Option<Vec<u8>>, DbError> {
        if let Some(k) = self.devices.get(id) {
            return Ok(k.clone());
        }
        let k: Option<Vec<u8>> = db.query_opt(
            "SELECT public_key FROM devices WHERE id = ?1",
            args![id],
            |r| r.get(0),
        )?;
        self.devices.insert(id.to_owned(), k.clone());
        Ok(k)
    }

    fn card(&mut self, db: &dyn Sql, id: u32) -> Result<Option<(Vec<u8>, bool)>, DbError> {
        if self.cards.is_none() {
            let set = card_key_set(db)?;
            self.cards = Some(
                set.keys
                    .into_iter()
                    .map(|k| (k.id, (k.public_key, k.revoked)))
                    .collect(),
            );
        }
        Ok(self.cards.as_ref().and_then(|c| c.get(&id).cloned()))
    }
}

fn proof(db: &dyn Sql, keys: &mut Keys, class: &Class, a: &Attendance) -> Result<Proof, DbError> {
    let bad = |why: &str| Proof {
        valid: Some(false),
        problem: Some(why.to_owned()),
        responder: None,
        hash: None,
        fix: None,
        uptime_ms: None,
        card_hash: None,
    };
    match &a.method {
        AttendanceMethod::Hand { .. } => Ok(Proof {
            valid: None,
            problem: None,
            responder: None,
            hash: None,
            fix: None,
            uptime_ms: None,
            card_hash: None,
        }),
        AttendanceMethod::Other { code } => Ok(bad(&format!("method '{code}' is unknown"))),
        AttendanceMethod::Qr {
            code,
            response,
            code_age_ms,
        } => {
            let Ok(Code::ClassCode(c)) = Code::from_bytes(code) else {
                return Ok(bad("the class code cannot be read"));
            };
            let Ok(Code::Response(r)) = Code::from_bytes(response) else {
                return Ok(bad("the response cannot be read"));
            };
            let responder = r.responder();
            let hash = r.id().to_vec();
            let problem = if !c.verifies() {
                Some("the class code's signature does not verify")
            } else if c.class != class.id || c.day != a.day || c.kind != a.kind {
                Some("the class code is for another class, day or sign-in")
            } else if c.device != a.device {
                Some("the class code was shown by another phone than the recording one")
            } else if keys.device(db, &c.device.to_string())?.as_deref() != Some(&c.public_key[..])
            {
                Some("the class code was not signed by the recording phone's enrolled key")
            } else if !r.verifies() {
                Some("the response's signature does not verify")
            } else if r.code_hash != c.hash() {
                Some("the response answers another class code")
            } else if r.trainee != a.trainee {
                Some("the response is for another trainee")
            } else if r.public_key == c.public_key {
                Some("the response was signed by the coordinator's own phone")
            } else if !(0..=RESPONSE_WINDOW_MS).contains(code_age_ms) {
                Some("the response was taken outside the 20-second window")
            } else {
                None
            };
            Ok(Proof {
                valid: Some(problem.is_none()),
                problem: problem.map(str::to_owned),
                responder: Some(responder),
                hash: Some(hash),
                fix: r.fix,
                uptime_ms: r.uptime_ms,
                card_hash: None,
            })
        }
        AttendanceMethod::Card { card, signature } => {
            let Ok(Code::Card(c)) = Code::from_bytes(card) else {
                return Ok(bad("the card cannot be read"));
            };
            let scan = CardScan {
                card,
                class: class.id,
                day: a.day,
                kind: a.kind,
                at_ms: a.at_ms,
                gps: a.gps,
            };
            let problem = if c.district != class.district {
                Some("the card belongs to another district")
            } else if c.trainee != a.trainee {
                Some("the card is another trainee's")
            } else {
                match keys.card(db, c.key_id)? {
                    None => Some("the card was signed by an unknown district key"),
                    Some((_, true)) => Some("the card was signed by a withdrawn district key"),
                    Some((pk, false)) if !c.verifies_with(&pk) => {
                        Some("the card's signature does not verify")
                    }
                    Some(_) => match keys.device(db, &a.device.to_string())? {
                        Some(pk) if scan.verifies(&pk, signature) => None,
                        _ => Some("the coordinator's signature over the scan does not verify"),
                    },
                }
            };
            Ok(Proof {
                valid: Some(problem.is_none()),
                problem: problem.map(str::to_owned),
                responder: None,
                hash: None,
                fix: None,
                uptime_ms: None,
                card_hash: Some(sha256(card)),
            })
        }
    }
}

fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

pub(super) fn distance_m(a: Gps, b: Gps) -> f64 {
    // Haversine on a sphere of the Earth's mean radius: metres of error over a few kilometres.
    let r = 6_371_000.0;
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dla = la2 - la1;
    let dlo = (b.lon - a.lon).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * r * h.sqrt().asin()
}

/// The instant of a local time on a day, ms since the epoch.
fn local_ms(day: NaiveDate, t: NaiveTime) -> Option<i64> {
    china()
        .from_local_datetime(&day.and_time(t))
        .single()
        .map(|d| d.timestamp_millis())
}

/// Checks the records of `class` the server has not seen before, and writes what it found. Called
/// in the transaction that merged them. Returns the ids of records that do not count for pay.
pub(crate) fn check_class(
    tx: &dyn Sql,
    class: &Class,
    now_ms: i64,
    rules: &SigninRules,
) -> Result<BTreeSet<String>, DbError> {
    let id = class.id.to_string();
    let seen: BTreeSet<String> = tx
        .query_map(
            "SELECT attendance_id FROM attendance_checks WHERE class_id = ?1",
            args![&id],
            |r| r.get(0),
        )?
        .into_iter()
        .collect();
    let mut new: Vec<&Attendance> = class
        .attendance
        .values()
        .filter(|a| !seen.contains(&a.id.to_string()))
        .collect();
    new.sort_by_key(|a| (a.at_ms, a.id));
    let venue = class.venue.as_ref().and_then(|v| v.gps);
    let mut keys = Keys::default();
    // Keys registered in this document count for its records that arrive with them.
    let registered = witness::file_registrations(tx, class, &mut keys, now_ms)?;
    let mut days: BTreeSet<(String, &'static str)> = BTreeSet::new();
    for a in new {
        days.insert((a.day.to_string(), a.kind.code()));
        let p = proof(tx, &mut keys, class, a)?;
        let corrected = a.corrected_ms();
        let aid = a.id.to_string();
        let trainee = a.trainee.to_string();
        let day = a.day.to_string();
        let mut flags: Vec<(&str, String, bool)> = Vec::new();
        if let Some(why) = &p.problem {
            flags.push(("invalid_proof", why.clone(), true));
        }
        if let (Some(true), Some(r)) = (p.valid, &p.responder)
            && let Some(why) = witness::unregistered(tx, &trainee, r)?
        {
            flags.push(("unregistered_key", why, true));
        }
        // A response made far from the phone that showed its class code: the code was relayed.
        let reference = a.gps.or(venue);
        let responder_distance = p.fix.zip(reference).map(|(f, r)| distance_m(f, r));
        if let (Some(d), Some(f), Some(r)) = (responder_distance, p.fix, reference) {
            let slack = f.accuracy_m.unwrap_or(0.0).clamp(0.0, MAX_SLACK_M)
                + r.accuracy_m.unwrap_or(0.0).clamp(0.0, MAX_SLACK_M);
            if d > RELAY_RADIUS_M + slack {
                flags.push((
                    "relayed",
                    format!(
                        "the trainee's phone answered {:.1} km from the phone that showed the code",
                        d / 1000.0
                    ),
                    true,
                ));
            }
        }
        if let Some(h) = &p.hash {
            // One trainee response proves one sign-in. Which copy is the real one cannot be told
            // from the records, so every record holding it waits for review.
            let earlier: Vec<String> = tx.query_map(
                "SELECT attendance_id FROM attendance_checks WHERE proof_hash = ?1",
                args![h],
                |r| r.get(0),
            )?;
            if !earlier.is_empty() {
                flags.push((
                    "replayed",
                    "this trainee response also proves another record".into(),
                    true,
                ));
                for e in &earlier {
                    tx.execute(
                        "INSERT INTO attendance_flags (attendance_id, class_id, flag,
                         detail, blocks_pay, created_at)
                         SELECT attendance_id, class_id, 'replayed', ?2, 1, ?3
                         FROM attendance_checks WHERE attendance_id = ?1
                         ON CONFLICT DO NOTHING",
                        args![
                            e,
                            "this record's trainee response was replayed in another record",
                            now_ms
                        ],
                    )?;
                    tx.execute(
                        "UPDATE attendance_checks SET payable = 0 WHERE attendance_id = ?1",
                        args![e],
                    )?;
                }
            }
        }
        match (corrected, a.clock_offset_ms) {
            (None, _) => flags.push((
                "time_unverified",
                "the phone restarted since its last sync, so its clock could not be checked".into(),
                true,
            )),
            (Some(t), Some(off)) => {
                if off.abs() > CLOCK_MISMATCH_MS {
                    flags.push((
                        "clock_mismatch",
                        format!("the phone's clock was {} minutes off", off.abs() / 60_000),
                        false,
                    ));
                }
                let start = class
                    .starts_at
                    .or_else(|| NaiveTime::from_hms_opt(DEFAULT_START.0, DEFAULT_START.1, 0));
                let hours = if class.starts_at.is_some() {
                    class.daily_hours.unwrap_or(8.0)
                } else {
                    DEFAULT_HOURS
                };
                if songpei_core::clock::local_date(t) != a.day {
                    flags.push((
                        "outside_hours",
                        "the corrected time is not on the training day".into(),
                        true,
                    ));
                } else if let Some(s) = start.and_then(|s| local_ms(a.day, s)) {
                    let end = s + (hours * 3_600_000.0) as i64;
                    if t < s - HOURS_MARGIN_MS || t > end + HOURS_MARGIN_MS {
                        flags.push((
                            "outside_hours",
                            "the corrected time is more than an hour outside the class's hours"
                                .into(),
                            true,
                        ));
                    }
                }
                if let Some(f) = two_venues(tx, class, venue, &trainee, &day, t)? {
                    flags.push(("two_venues", f, true));
                }
            }
            (Some(_), None) => {}
        }
        if let (Some(fix), Some(v)) = (a.gps, venue) {
            let d = distance_m(fix, v);
            if d > VENUE_RADIUS_M + fix.accuracy_m.unwrap_or(0.0).clamp(0.0, 5_000.0) {
                flags.push((
                    "far_from_venue",
                    format!("the fix was {:.1} km from the venue", d / 1000.0),
                    true,
                ));
            }
        }
        let proof_valid = p.valid;
        let venue_lat = venue.map(|v| v.lat);
        let venue_lon = venue.map(|v| v.lon);
        tx.execute(
            "INSERT INTO attendance_checks (attendance_id, class_id, village, trainee_id, day, kind,
             method, device, responder, at_ms, offset_ms, corrected_ms, received_ms, venue_lat,
             venue_lon, proof_valid, proof_hash, payable, responder_distance_m,
             responder_uptime_ms, card_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, 1,
             ?18, ?19, ?20)",
            args![
                &aid,
                &id,
                class.village.as_str(),
                &trainee,
                &day,
                a.kind.code(),
                method_code(&a.method),
                a.device.to_string(),
                p.responder.clone(),
                a.at_ms,
                a.clock_offset_ms,
                corrected,
                now_ms,
                venue_lat,
                venue_lon,
                proof_valid,
                p.hash.clone(),
                responder_distance,
                p.uptime_ms.and_then(|u| i64::try_from(u).ok()),
                p.card_hash.clone(),
            ],
        )?;
        if let Some(r) = &p.responder {
            let n: i64 = tx.query_row(
                "SELECT COUNT(DISTINCT trainee_id) FROM attendance_checks
                 WHERE responder = ?1 AND day = ?2",
                args![r, &day],
                |r| r.get(0),
            )?;
            if n > MAX_TRAINEES_PER_PHONE {
                flags.push((
                    "phone_many_trainees",
                    format!("one trainee phone answered for {n} trainees that day"),
                    true,
                ));
            }
        }
        if !matches!(a.method, AttendanceMethod::Hand { .. }) {
            let n: i64 = tx.query_row(
                "SELECT COUNT(*) FROM attendance_checks WHERE device = ?1 AND class_id = ?2
                 AND day = ?3 AND method != 'hand' AND at_ms BETWEEN ?4 AND ?5",
                args![
                    a.device.to_string(),
                    &id,
                    &day,
                    a.at_ms - QUEUE_WINDOW_MS,
                    a.at_ms
                ],
                |r| r.get(0),
            )?;
            if n >= QUEUE_COUNT {
                flags.push((
                    "too_fast",
                    format!(
                        "{n} sign-ins within {} s on one phone",
                        QUEUE_WINDOW_MS / 1000
                    ),
                    true,
                ));
            }
        }
        let blocks = flags.iter().any(|(_, _, b)| *b);
        if blocks {
            tx.execute(
                "UPDATE attendance_checks SET payable = 0 WHERE attendance_id = ?1",
                args![&aid],
            )?;
        }
        for (flag, detail, b) in &flags {
            tx.execute(
                "INSERT INTO attendance_flags (attendance_id, class_id, flag, detail,
                 blocks_pay, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                args![&aid, &id, *flag, detail, *b, now_ms],
            )?;
        }
    }
    witness::lift_registered(tx, &id, &registered, &mut days)?;
    witness::cards(tx, class, &mut keys, &days, rules, now_ms)?;
    Ok(tx
        .query_map(
            "SELECT attendance_id FROM attendance_checks WHERE class_id = ?1 AND payable = 0",
            args![&id],
            |r| r.get(0),
        )?
        .into_iter()
        .collect())
}

fn method_code(m: &AttendanceMethod) -> &str {
    match m {
        AttendanceMethod::Hand { .. } => "hand",
        AttendanceMethod::Qr { .. } => "qr",
        AttendanceMethod::Card { .. } => "card",
        AttendanceMethod::Other { code } => code,
    }
}

/// The same person (by trainee id, or by the blind index of the ID number across villages) signed
/// in at another class's venue too close in time to have travelled.
fn two_venues(
    tx: &dyn Sql,
    class: &Class,
    venue: Option<Gps>,
    trainee: &str,
    day: &str,
    t: i64,
) -> Result<Option<String>, DbError> {
    let others = tx.query_map(
        "SELECT c.class_id, c.village, c.corrected_ms, c.venue_lat, c.venue_lon
         FROM attendance_checks c
         WHERE c.day = ?2 AND c.class_id != ?3 AND c.corrected_ms IS NOT NULL
           AND (c.trainee_id = ?1 OR c.trainee_id IN (
                SELECT o.id FROM p_trainees o JOIN p_trainees me ON me.blind_index = o.blind_index
                WHERE me.id = ?1))",
        args![trainee, day, class.id.to_string()],
        |r| {
            Ok((
                r.get::<String>(1)?,
                r.get::<i64>(2)?,
                r.get::<Option<f64>>(3)?,
                r.get::<Option<f64>>(4)?,
            ))
        },
    )?;
    for (village, other_t, lat, lon) in others {
        let gap = (t - other_t).abs();
        let other_venue = lat.zip(lon).map(|(lat, lon)| Gps {
            lat,
            lon,
            accuracy_m: None,
        });
        let needed = match (venue, other_venue) {
            (Some(a), Some(b)) => {
                let d = distance_m(a, b);
                if d < VENUE_RADIUS_M {
                    continue;
                }
                (d / 1000.0 / TRAVEL_KMH * 3_600_000.0) as i64
            }
            _ if village != class.village.as_str() => MIN_TRAVEL_MS,
            _ => continue,
        };
        if gap < needed {
            return Ok(Some(format!(
                "signed in at another class's venue {} minutes apart; travel needs at least {}",
                gap / 60_000,
                needed / 60_000
            )));
        }
    }
    Ok(None)
}
