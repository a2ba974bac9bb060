//! Typed rows projected from a document for the district's reports, written in the same transaction
//! as the merge that changed it. Personal data is reduced to a blind index and masks.

use std::collections::{BTreeMap, BTreeSet};

use automerge::Automerge;
use chrono::Datelike;
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::doc::review::{self, Decision, Review};
use songpei_core::doc::{self, Conflict, DocKind, Header};
use songpei_core::rules;

use crate::args;
use crate::callbacks;
use crate::db::{DbError, Sealed, Sql};
use crate::error::ApiError;

/// The rows of one document: its own, and the review decisions and conflicts it holds.
#[derive(Debug)]
pub(crate) struct Projection {
    doc: String,
    kind: DocKind,
    village: String,
    rows: Rows,
    reviews: BTreeMap<String, Review>,
    conflicts: Vec<Conflict>,
}

#[derive(Debug)]
enum Rows {
    Class(ClassRows),
    Trainee(TraineeRow),
    Household(HouseholdRow),
}

#[derive(Debug)]
pub(crate) struct ClassRows {
    id: String,
    district: String,
    village: String,
    title: String,
    status: &'static str,
    occupation: String,
    level: &'static str,
    training_type: &'static str,
    subsidised: bool,
    first_day: String,
    last_day: String,
    sign_out_required: bool,
    enrolments: Vec<(String, Option<&'static str>)>,
    /// The class as read: its attendance records are checked, and its days computed, when the
    /// rows are written.
    class: Box<songpei_core::domain::Class>,
}

#[derive(Debug)]
pub(crate) struct TraineeRow {
    id: String,
    district: String,
    village: String,
    blind_index: Vec<u8>,
    name_masked: String,
    id_masked: String,
    phone_masked: Option<String>,
    phone_index: Option<Vec<u8>>,
    sex: Option<&'static str>,
    birth_year: Option<i32>,
    household: Option<String>,
    key_groups: String,
}

#[derive(Debug)]
pub(crate) struct HouseholdRow {
    id: String,
    district: String,
    village: String,
    poverty_status: &'static str,
}

fn schema(e: songpei_core::Error) -> ApiError {
    ApiError::Schema(e.to_string())
}

/// Reads the whole document (every value checked against the schema) and projects it.
pub(crate) fn project(
    d: &Automerge,
    header: &Header,
    key: &BlindIndexKey,
) -> Result<Projection, ApiError> {
    let id = header.id.uuid();
    let reviews = review::read(d, header.id).map_err(schema)?;
    let (rows, conflicts) = match header.kind {
        DocKind::Class => {
            let (c, conflicts) = doc::class::read(d, id.into()).map_err(schema)?;
            let rows = Rows::Class(ClassRows {
                id: c.id.to_string(),
                district: c.district.to_string(),
                village: c.village.to_string(),
                status: c.status.code(),
                level: c.level.code(),
                training_type: c.training_type.code(),
                subsidised: c.subsidised,
                first_day: c.first_day.to_string(),
                last_day: c.last_day.to_string(),
                sign_out_required: c.sign_out_required,
                enrolments: c
                    .roster
                    .keys()
                    .map(|t| (t.to_string(), c.completion.get(t).map(|x| x.result.code())))
                    .collect(),
                title: c.title.clone(),
                occupation: c.occupation.clone(),
                class: Box::new(c),
            });
            (rows, conflicts)
        }
        DocKind::Trainee => {
            let (t, conflicts) = doc::trainee::read(d, id.into()).map_err(schema)?;
            let rows = Rows::Trainee(TraineeRow {
                id: t.id.to_string(),
                district: t.district.to_string(),
                village: t.village.to_string(),
                blind_index: key.index(&t.id_number).to_vec(),
                name_masked: t.name.masked(),
                id_masked: t.id_number.masked(),
                phone_masked: t.phone.as_ref().map(|p| p.masked()),
                phone_index: t.phone.as_ref().map(|p| key.phone_index(p).to_vec()),
                sex: t.sex().map(|s| match s {
                    songpei_core::validate::Sex::Male => "male",
                    songpei_core::validate::Sex::Female => "female",
                }),
                birth_year: t.birth_date().map(|b| b.year()),
                household: t.household.map(|h| h.to_string()),
                key_groups: t
                    .key_groups
                    .iter()
                    .map(|g| g.code())
                    .collect::<Vec<_>>()
                    .join(","),
            });
            (rows, conflicts)
        }
        DocKind::Household => {
            let (h, conflicts) = doc::household::read(d, id.into()).map_err(schema)?;
            let rows = Rows::Household(HouseholdRow {
                id: h.id.to_string(),
                district: h.district.to_string(),
                village: h.village.to_string(),
                poverty_status: h.poverty_status.code(),
            });
            (rows, conflicts)
        }
    };
    Ok(Projection {
        doc: header.id.to_string(),
        kind: header.kind,
        village: header.village.to_string(),
        rows,
        reviews,
        conflicts,
    })
}

/// What projections are written by: the policy table, the sign-in rules and the call-back
/// sampler.
pub(crate) struct Rules<'a> {
    pub policy: &'a rules::PolicyTable,
    pub signin: &'a crate::config::SigninRules,
    pub sampler: &'a crate::callbacks::Sampler,
}

/// Replaces the document's rows. A class's new attendance records are checked first
/// ([`crate::attendance::check_class`]); records that fail or wait for review do not count for pay
/// until the district accepts them, and records the district rejects never count. Classes whose
/// pay changed without their own document changing (a person's places decided again across
/// villages, a household's status, a trainee's household) are added to `touched`.
pub(crate) fn write(
    tx: &dyn Sql,
    p: &Projection,
    now_ms: i64,
    rules: &Rules<'_>,
    touched: &mut BTreeSet<String>,
) -> Result<(), DbError> {
    let policy = rules.policy;
    write_reviews(tx, p)?;
    match &p.rows {
        Rows::Class(c) => {
            let mut held = crate::attendance::check_class(tx, &c.class, now_ms, rules.signin)?;
            for (subject, r) in &p.reviews {
                match r.decision {
                    Decision::Accepted => held.remove(subject),
                    Decision::Rejected => held.insert(subject.clone()),
                };
            }
            // A trainee-day denied on a call never pays, whatever record of it arrives later.
            let denied = callbacks::denied_days(tx, &c.id)?;
            if !denied.is_empty() {
                for a in c.class.attendance.values() {
                    let id = a.id.to_string();
                    let review = p.reviews.get(&id).map(|r| (r.decision, r.at_ms));
                    let (t, d) = (a.trainee.to_string(), a.day.to_string());
                    if callbacks::rejected_by_denial(&denied, &t, &d, review) {
                        held.insert(id);
                    }
                }
            }
            // A class held after a call-back denial pays nothing until the office decides.
            let hold = callbacks::hold_of(tx, &c.id, |s| p.reviews.get(s).map(|r| r.decision))?;
            if hold != callbacks::Hold::None {
                held.extend(c.class.attendance.keys().map(ToString::to_string));
            }
            let by_day = songpei_core::rules::attendance_by_day_where(&c.class, |a| {
                !held.contains(&a.id.to_string())
            });
            let before = subsidy_facts(tx, &c.id)?;
            tx.execute(
                "INSERT INTO p_classes (id, district, village, title, status, occupation, \
                 level, training_type, subsidised, first_day, last_day, sign_out_required) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT (id) DO UPDATE SET district = excluded.district, \
                 village = excluded.village, title = excluded.title, status = excluded.status, \
                 occupation = excluded.occupation, level = excluded.level, \
                 training_type = excluded.training_type, subsidised = excluded.subsidised, \
                 first_day = excluded.first_day, last_day = excluded.last_day, \
                 sign_out_required = excluded.sign_out_required",
                args![
                    &c.id,
                    &c.district,
                    &c.village,
                    &c.title,
                    c.status,
                    &c.occupation,
                    c.level,
                    c.training_type,
                    c.subsidised,
                    &c.first_day,
                    &c.last_day,
                    c.sign_out_required
                ],
            )?;
            tx.execute("DELETE FROM p_enrolments WHERE class_id = ?1", args![&c.id])?;
            for (t, completion) in &c.enrolments {
                tx.execute(
                    "INSERT INTO p_enrolments (class_id, trainee_id, completion) VALUES (?1, ?2, ?3)",
                    args![&c.id, t, *completion],
                )?;
            }
            tx.execute(
                "DELETE FROM p_attendance_days WHERE class_id = ?1",
                args![&c.id],
            )?;
            for (t, per_day) in &by_day {
                for (day, d) in per_day {
                    tx.execute(
                        "INSERT INTO p_attendance_days (class_id, trainee_id, day, signed_in, \
                         signed_out, payable) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        args![
                            &c.id,
                            t.to_string(),
                            day.to_string(),
                            d.signed_in,
                            d.signed_out,
                            d.payable
                        ],
                    )?;
                }
            }
            // Payable trainee-days go to the call list when drawn, or when a record of theirs was
            // accepted after a flag.
            let accepted: BTreeSet<(String, String)> = c
                .class
                .attendance
                .values()
                .filter(|a| {
                    p.reviews
                        .get(&a.id.to_string())
                        .is_some_and(|r| r.decision == Decision::Accepted)
                })
                .map(|a| (a.trainee.to_string(), a.day.to_string()))
                .collect();
            let payable: BTreeMap<(String, String), bool> = by_day
                .iter()
                .flat_map(|(t, days)| {
                    days.iter()
                        .filter(|(day, d)| {
                            d.payable && c.class.first_day <= **day && **day <= c.class.last_day
                        })
                        .map(move |(day, _)| (t.to_string(), day.to_string()))
                })
                .map(|k| {
                    let a = accepted.contains(&k);
                    (k, a)
                })
                .collect();
            callbacks::select(tx, rules.sampler, &c.id, &c.village, &payable, now_ms)?;
            let roster: BTreeSet<String> = c.enrolments.iter().map(|(t, _)| t.clone()).collect();
            let decided: BTreeSet<String> = tx
                .query_map(
                    "SELECT trainee_id FROM p_subsidies WHERE class_id = ?1",
                    args![&c.id],
                    |r| r.get(0),
                )?
                .into_iter()
                .collect();
            if before != subsidy_facts(tx, &c.id)? || roster != decided {
                let mut people: BTreeSet<Vec<u8>> = BTreeSet::new();
                for t in roster.iter().chain(decided.iter()) {
                    people.insert(person_of(tx, t)?);
                }
                for person in people {
                    decide_person(tx, &person, policy, touched)?;
                }
            }
        }
        Rows::Trainee(t) => {
            let before: Option<(Vec<u8>, Option<String>)> = tx.query_opt(
                "SELECT blind_index, household FROM p_trainees WHERE id = ?1",
                args![&t.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let (old, old_household) = before.unzip();
            if old_household.flatten() != t.household {
                // Another household, another poverty status: the trainee's places pay anew.
                touched.extend(tx.query_map(
                    "SELECT class_id FROM p_enrolments WHERE trainee_id = ?1",
                    args![&t.id],
                    |r| r.get(0),
                )?);
            }
            tx.execute(
                "INSERT INTO p_trainees (id, district, village, blind_index, name_masked, \
                 id_masked, phone_masked, sex, birth_year, household, key_groups, phone_index) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT (id) DO UPDATE SET district = excluded.district, \
                 village = excluded.village, blind_index = excluded.blind_index, \
                 name_masked = excluded.name_masked, id_masked = excluded.id_masked, \
                 phone_masked = excluded.phone_masked, phone_index = excluded.phone_index, \
                 sex = excluded.sex, \
                 birth_year = excluded.birth_year, household = excluded.household, \
                 key_groups = excluded.key_groups",
                args![
                    &t.id,
                    &t.district,
                    &t.village,
                    &t.blind_index,
                    &t.name_masked,
                    &t.id_masked,
                    t.phone_masked.as_deref(),
                    t.sex,
                    t.birth_year,
                    t.household.as_deref(),
                    &t.key_groups,
                    t.phone_index.clone()
                ],
            )?;
            if old.as_deref() != Some(&t.blind_index[..]) {
                // The person behind this trainee is known now, or changed (a corrected ID number):
                // decide the one it was, then the one it is (whose trainees include this one, so
                // rows kept under the trainee id alone go too).
                if let Some(old) = old {
                    decide_person(tx, &old, policy, touched)?;
                }
                decide_person(tx, &t.blind_index, policy, touched)?;
            }
        }
        Rows::Household(h) => {
            let old: Option<String> = tx.query_opt(
                "SELECT poverty_status FROM p_households WHERE id = ?1",
                args![&h.id],
                |r| r.get(0),
            )?;
            if old.as_deref() != Some(h.poverty_status) {
                touched.extend(tx.query_map(
                    "SELECT DISTINCT e.class_id FROM p_enrolments e
                     JOIN p_trainees t ON t.id = e.trainee_id WHERE t.household = ?1",
                    args![&h.id],
                    |r| r.get(0),
                )?);
            }
            tx.execute(
                "INSERT INTO p_households (id, district, village, poverty_status) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (id) DO UPDATE SET district = excluded.district, \
                 village = excluded.village, poverty_status = excluded.poverty_status",
                args![&h.id, &h.district, &h.village, h.poverty_status],
            )?;
        }
    }
    Ok(())
}

/// Replaces the document's review decisions and conflicts.
fn write_reviews(tx: &dyn Sql, p: &Projection) -> Result<(), DbError> {
    tx.execute("DELETE FROM p_reviews WHERE doc_id = ?1", args![&p.doc])?;
    for (subject, r) in &p.reviews {
        tx.execute(
            "INSERT INTO p_reviews (doc_id, subject, decision, reason, reviewer, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![
                &p.doc,
                subject,
                r.decision.code(),
                tx.seal_text(Sealed::ReviewReason, &r.reason),
                &r.reviewer,
                r.at_ms
            ],
        )?;
    }
    tx.execute("DELETE FROM p_conflicts WHERE doc_id = ?1", args![&p.doc])?;
    for c in &p.conflicts {
        let values = serde_json::to_string(&c.values).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT INTO p_conflicts (doc_id, kind, village, path, winner, vals)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (doc_id, path) DO UPDATE SET kind = excluded.kind,
             village = excluded.village, winner = excluded.winner, vals = excluded.vals",
            args![
                &p.doc,
                p.kind.code(),
                &p.village,
                &c.path,
                &c.winner,
                tx.seal_text(Sealed::ConflictValues, &values)
            ],
        )?;
    }
    Ok(())
}

/// Subsidised, occupation, level, first day and status of a projected class.
type ClassFacts = (bool, String, String, String, String);

/// What the subsidy rules read of a class, as projected, to tell whether it changed.
fn subsidy_facts(tx: &dyn Sql, class: &str) -> Result<Option<ClassFacts>, DbError> {
    tx.query_opt(
        "SELECT subsidised, occupation, level, first_day, status FROM p_classes WHERE id = ?1",
        args![class],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )
}

/// The person a trainee record stands for: the blind index of the ID number once the trainee's
/// document has arrived, else the trainee id's bytes (the record then stands for itself).
fn person_of(tx: &dyn Sql, trainee: &str) -> Result<Vec<u8>, DbError> {
    Ok(tx
        .query_opt(
            "SELECT blind_index FROM p_trainees WHERE id = ?1",
            args![trainee],
            |r| r.get(0),
        )?
        .unwrap_or_else(|| trainee.as_bytes().to_vec()))
}

/// Decides again every place of one person, across villages, and replaces their rows. The rows
/// are deleted before any is written, so the unique indexes of `p_subsidies` see only the new
/// decisions; a decision that would break them (a fourth subsidised class in a year, an occupation
/// and level subsidised twice) fails the merge's transaction instead of being stored.
pub(crate) fn decide_person(
    tx: &dyn Sql,
    person: &[u8],
    policy: &rules::PolicyTable,
    touched: &mut BTreeSet<String>,
) -> Result<(), DbError> {
    let mut trainees: Vec<String> = tx.query_map(
        "SELECT id FROM p_trainees WHERE blind_index = ?1",
        args![person],
        |r| r.get(0),
    )?;
    if trainees.is_empty()
        && let Ok(own) = std::str::from_utf8(person)
    {
        trainees.push(own.to_owned());
    }
    let mut places: Vec<(String, String, rules::SubsidyFacts)> = Vec::new();
    for t in &trainees {
        let rows = tx.query_map(
            "SELECT c.id, c.subsidised, c.occupation, c.level, c.first_day, c.status
             FROM p_enrolments e JOIN p_classes c ON c.id = e.class_id WHERE e.trainee_id = ?1",
            args![t],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    r.get::<bool>(1)?,
                    r.get::<String>(2)?,
                    r.get::<String>(3)?,
                    r.get::<String>(4)?,
                    r.get::<String>(5)?,
                ))
            },
        )?;
        for row in rows {
            let (class, subsidised, occupation, level, first_day, status) = row;
            let (Ok(id), Ok(level), Ok(first_day), Ok(status)) = (
                class.parse(),
                level.parse(),
                first_day.parse(),
                status.parse(),
            ) else {
                continue;
            };
            places.push((
                class,
                t.clone(),
                rules::SubsidyFacts {
                    class: id,
                    subsidised,
                    occupation,
                    level,
                    first_day,
                    status,
                },
            ));
        }
    }
    let rows_of = |tx: &dyn Sql| -> Result<BTreeSet<StoredDecision>, DbError> {
        let mut out = BTreeSet::new();
        out.extend(tx.query_map(
            "SELECT class_id, trainee_id, decision, nth, cap, earlier_class FROM p_subsidies
             WHERE person = ?1",
            args![person],
            stored_decision,
        )?);
        for t in &trainees {
            out.extend(tx.query_map(
                "SELECT class_id, trainee_id, decision, nth, cap, earlier_class FROM p_subsidies
                 WHERE trainee_id = ?1",
                args![t],
                stored_decision,
            )?);
        }
        Ok(out)
    };
    let before = rows_of(tx)?;
    tx.execute("DELETE FROM p_subsidies WHERE person = ?1", args![person])?;
    for t in &trainees {
        tx.execute("DELETE FROM p_subsidies WHERE trainee_id = ?1", args![t])?;
    }
    let facts: Vec<rules::SubsidyFacts> = places
        .iter()
        .map(|(_, _, f)| (f.class, f.clone()))
        .collect::<BTreeMap<_, _>>()
        .into_values()
        .collect();
    let decisions = rules::decide_subsidies(&facts, policy);
    let insert = "INSERT INTO p_subsidies (class_id, trainee_id, person, year, occupation_key,
         level, decision, nth, cap, earlier_class) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (class_id, trainee_id) DO UPDATE SET person = excluded.person,
         year = excluded.year, occupation_key = excluded.occupation_key, level = excluded.level,
         decision = excluded.decision, nth = excluded.nth, cap = excluded.cap,
         earlier_class = excluded.earlier_class";
    let mut seen = BTreeSet::new();
    for (class, trainee, f) in &places {
        let Some(d) = decisions.get(&f.class) else {
            continue;
        };
        // One person registered twice and enrolled twice in one class: the second place is the
        // same training, so it is not subsidised again.
        let again = rules::SubsidyDecision::SameOccupationAndLevel { earlier: f.class };
        let d = if seen.insert(f.class) { d } else { &again };
        let (code, nth, cap, earlier) = match d {
            rules::SubsidyDecision::ClassNotSubsidised => {
                ("class_not_subsidised", None, None, None)
            }
            rules::SubsidyDecision::ClassCancelled => ("class_cancelled", None, None, None),
            rules::SubsidyDecision::Subsidised { nth, .. } => {
                ("subsidised", Some(*nth), None, None)
            }
            rules::SubsidyDecision::YearCapReached { cap, .. } => {
                ("year_cap_reached", None, Some(*cap), None)
            }
            rules::SubsidyDecision::SameOccupationAndLevel { earlier } => (
                "same_occupation_and_level",
                None,
                None,
                Some(earlier.to_string()),
            ),
        };
        tx.execute(
            insert,
            args![
                class,
                trainee,
                person,
                f.first_day.year(),
                f.occupation_key(),
                f.level.code(),
                code,
                nth,
                cap,
                earlier
            ],
        )?;
    }
    // Places decided otherwise than before: their classes pay anew.
    let after = rows_of(tx)?;
    touched.extend(
        before
            .symmetric_difference(&after)
            .map(|(class, ..)| class.clone()),
    );
    Ok(())
}

/// A stored decision: class, trainee, decision, nth, cap, earlier class.
type StoredDecision = (
    String,
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn stored_decision(r: &crate::db::Row) -> Result<StoredDecision, DbError> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}
