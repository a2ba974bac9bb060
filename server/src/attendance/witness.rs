//! Who vouches for a record besides the phone that took it (ADR 0007): the trainee phone keys
//! registered to their trainees in person, and an instructor's scan of the same card.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use songpei_core::domain::Class;
use songpei_core::qr::{Signer, registration_problem};

use super::checks::Keys;
use crate::args;
use crate::config::SigninRules;
use crate::db::{DbError, Sql};

/// Checks the registrations in `class` the server has not seen, and keeps what it found. Returns
/// the (trainee, responder) keys newly registered.
pub(super) fn file_registrations(
    tx: &dyn Sql,
    class: &Class,
    keys: &mut Keys,
    now_ms: i64,
) -> Result<BTreeSet<(String, String)>, DbError> {
    let mut registered = BTreeSet::new();
    if class.registrations.is_empty() {
        return Ok(registered);
    }
    let id = class.id.to_string();
    let seen: BTreeSet<String> = tx
        .query_map(
            "SELECT registration_id FROM trainee_keys WHERE class_id = ?1",
            args![&id],
            |r| r.get(0),
        )?
        .into_iter()
        .collect();
    for (rid, reg) in &class.registrations {
        if seen.contains(rid) {
            continue;
        }
        let w = reg.witnessed();
        let mut known: HashMap<_, Option<Signer>> = HashMap::new();
        for d in [w.as_ref().map(|w| w.witness), Some(reg.registrar)]
            .into_iter()
            .flatten()
        {
            let s = keys.signer(tx, &d.to_string())?;
            known.insert(d, s);
        }
        let mut problem = registration_problem(reg, class, |d| known.get(&d).cloned().flatten())
            .err()
            .map(str::to_owned);
        if problem.is_none() && w.as_ref().is_some_and(|w| &w.id() != rid) {
            problem = Some("the registration is filed under another claim's id".into());
        }
        let (trainee, responder, witness) = match &w {
            Some(w) => (
                w.claim.trainee.to_string(),
                w.claim.responder(),
                w.witness.to_string(),
            ),
            None => (String::new(), String::new(), String::new()),
        };
        tx.execute(
            "INSERT INTO trainee_keys (registration_id, class_id, trainee_id, responder, witness,
             registrar, registered_ms, received_ms, valid, problem)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
            args![
                rid,
                &id,
                &trainee,
                &responder,
                &witness,
                reg.registrar.to_string(),
                reg.at_ms,
                now_ms,
                problem.is_none(),
                problem.clone()
            ],
        )?;
        if problem.is_none() {
            registered.insert((trainee, responder));
        }
    }
    Ok(registered)
}

/// Why a response's key does not count as the trainee's own, or `None` when it is registered.
pub(super) fn unregistered(
    tx: &dyn Sql,
    trainee: &str,
    responder: &str,
) -> Result<Option<String>, DbError> {
    let rows: Vec<(bool, Option<String>)> = tx.query_map(
        "SELECT valid, problem FROM trainee_keys WHERE trainee_id = ?1 AND responder = ?2",
        args![trainee, responder],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if rows.iter().any(|(valid, _)| *valid) {
        return Ok(None);
    }
    Ok(Some(match rows.into_iter().find_map(|(_, p)| p) {
        Some(p) => format!(
            "the answering phone's key is not registered to this trainee: its registration was \
             not taken ({p})"
        ),
        None => "the answering phone's key is not registered to this trainee".into(),
    }))
}

/// Sets a record's pay from its flags: held while any flag that blocks pay remains.
fn refresh_payable(tx: &dyn Sql, attendance: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE attendance_checks SET payable = CASE WHEN EXISTS (
             SELECT 1 FROM attendance_flags f WHERE f.attendance_id = ?1 AND f.blocks_pay = 1)
         THEN 0 ELSE 1 END WHERE attendance_id = ?1",
        args![attendance],
    )?;
    Ok(())
}

/// Records of the class held only for a key registered since: no longer held for it. Adds their
/// sign-ins (day and kind) to `days`, whose card share they widen.
pub(super) fn lift_registered(
    tx: &dyn Sql,
    class: &str,
    registered: &BTreeSet<(String, String)>,
    days: &mut BTreeSet<(String, &'static str)>,
) -> Result<(), DbError> {
    for (trainee, responder) in registered {
        let held: Vec<(String, String, String)> = tx.query_map(
            "SELECT c.attendance_id, c.day, c.kind FROM attendance_checks c
             JOIN attendance_flags f
             ON f.attendance_id = c.attendance_id AND f.flag = 'unregistered_key'
             WHERE c.class_id = ?1 AND c.trainee_id = ?2 AND c.responder = ?3",
            args![class, trainee, responder],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        for (a, day, kind) in held {
            days.insert((day, if kind == "out" { "out" } else { "in" }));
            tx.execute(
                "DELETE FROM attendance_flags WHERE attendance_id = ?1 AND flag = 'unregistered_key'",
                args![&a],
            )?;
            refresh_payable(tx, &a)?;
        }
    }
    Ok(())
}

/// A checked record of a sign-in: id, trainee, method, device, card fingerprint, payable.
type SignInRow = (String, String, String, String, Option<Vec<u8>>, bool);

/// One card sign-in as checked.
struct CardRow {
    attendance: String,
    trainee: String,
    device: String,
    card: Vec<u8>,
}

/// Decides again, for each sign-in (day and kind) of `days`, which card sign-ins wait for review:
/// a card scan counts at once when a phone of another account scanned the same card for the same
/// sign-in and one of the two is an instructor the class names; otherwise only within
/// `card_share_percent` of the sign-in's trainees paid by phone or on cards, first scanned first;
/// the rest are held (`card_unwitnessed`) until the district reviews them or a co-signature
/// arrives.
pub(super) fn cards(
    tx: &dyn Sql,
    class: &Class,
    keys: &mut Keys,
    days: &BTreeSet<(String, &'static str)>,
    rules: &SigninRules,
    now_ms: i64,
) -> Result<(), DbError> {
    let id = class.id.to_string();
    for (day, kind) in days {
        let rows: Vec<SignInRow> = tx.query_map(
            "SELECT attendance_id, trainee_id, method, device, card_hash, payable
             FROM attendance_checks WHERE class_id = ?1 AND day = ?2 AND kind = ?3
             AND proof_valid = 1 ORDER BY at_ms, attendance_id",
            args![&id, day, *kind],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )?;
        // The share is of the trainees the sign-in pays by phone, plus the cards themselves: held
        // phone records (a spare store's, say) do not widen it.
        let signed_in: BTreeSet<&str> = rows
            .iter()
            .filter(|r| r.2 == "card" || r.5)
            .map(|r| r.1.as_str())
            .collect();
        let cards: Vec<CardRow> = rows
            .iter()
            .filter(|r| r.2 == "card")
            .filter_map(|r| {
                Some(CardRow {
                    attendance: r.0.clone(),
                    trainee: r.1.clone(),
                    device: r.3.clone(),
                    card: r.4.clone()?,
                })
            })
            .collect();
        if cards.is_empty() {
            continue;
        }
        let mut account: BTreeMap<&str, Option<Signer>> = BTreeMap::new();
        for c in &cards {
            if !account.contains_key(c.device.as_str()) {
                let s = keys.signer(tx, &c.device)?;
                account.insert(&c.device, s);
            }
        }
        let assigned = |s: &Signer| {
            s.instructor
                && class.instructor_accounts.contains(&s.account)
                && s.villages.contains(class.village.as_str())
        };
        let witnessed = |c: &CardRow| {
            let Some(Some(me)) = account.get(c.device.as_str()) else {
                return false;
            };
            cards.iter().any(|o| {
                let Some(Some(other)) = account.get(o.device.as_str()) else {
                    return false;
                };
                o.trainee == c.trainee
                    && o.card == c.card
                    && other.account != me.account
                    && (assigned(me) || assigned(other))
            })
        };
        let mut unwitnessed: Vec<&str> = Vec::new();
        let mut hold: BTreeSet<&str> = BTreeSet::new();
        let allowed = signed_in.len() * rules.card_share_percent as usize / 100;
        for c in &cards {
            if witnessed(c) {
                continue;
            }
            if !unwitnessed.contains(&c.trainee.as_str()) {
                unwitnessed.push(&c.trainee);
            }
            if unwitnessed
                .iter()
                .position(|t| *t == c.trainee)
                .is_some_and(|i| i >= allowed)
            {
                hold.insert(&c.attendance);
            }
        }
        let flagged: BTreeSet<String> = tx
            .query_map(
                "SELECT f.attendance_id FROM attendance_flags f JOIN attendance_checks c
                 ON c.attendance_id = f.attendance_id
                 WHERE f.class_id = ?1 AND f.flag = 'card_unwitnessed' AND c.day = ?2
                 AND c.kind = ?3",
                args![&id, day, *kind],
                |r| r.get(0),
            )?
            .into_iter()
            .collect();
        for c in &cards {
            let a = c.attendance.as_str();
            match (hold.contains(a), flagged.contains(a)) {
                (true, false) => {
                    tx.execute(
                        "INSERT INTO attendance_flags (attendance_id, class_id, flag, detail,
                         blocks_pay, created_at) VALUES (?1, ?2, 'card_unwitnessed', ?3, 1, ?4)
                         ON CONFLICT DO NOTHING",
                        args![
                            a,
                            &id,
                            format!(
                                "a card sign-in no instructor of the class scanned too, past the \
                                 {}% of the sign-in's trainees that may sign in so",
                                rules.card_share_percent
                            ),
                            now_ms
                        ],
                    )?;
                    refresh_payable(tx, a)?;
                }
                (false, true) => {
                    tx.execute(
                        "DELETE FROM attendance_flags WHERE attendance_id = ?1
                         AND flag = 'card_unwitnessed'",
                        args![a],
                    )?;
                    refresh_payable(tx, a)?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}
