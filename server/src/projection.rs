//! Typed rows projected from a document for the district's reports, written in the same transaction
//! as the merge that changed it. Personal data is reduced to a blind index and masks.

use automerge::Automerge;
use chrono::Datelike;
use rusqlite::{Transaction, params};
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::doc::{self, DocKind, Header};
use songpei_core::rules;

use crate::error::ApiError;

/// The rows of one document.
#[derive(Debug)]
pub(crate) enum Projection {
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
    Ok(match header.kind {
        DocKind::Class => {
            let (c, _) = doc::class::read(d, id.into()).map_err(schema)?;
            Projection::Class(ClassRows {
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
            })
        }
        DocKind::Trainee => {
            let (t, _) = doc::trainee::read(d, id.into()).map_err(schema)?;
            Projection::Trainee(TraineeRow {
                id: t.id.to_string(),
                district: t.district.to_string(),
                village: t.village.to_string(),
                blind_index: key.index(&t.id_number).to_vec(),
                name_masked: t.name.masked(),
                id_masked: t.id_number.masked(),
                phone_masked: t.phone.as_ref().map(|p| p.masked()),
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
            })
        }
        DocKind::Household => {
            let (h, _) = doc::household::read(d, id.into()).map_err(schema)?;
            Projection::Household(HouseholdRow {
                id: h.id.to_string(),
                district: h.district.to_string(),
                village: h.village.to_string(),
                poverty_status: h.poverty_status.code(),
            })
        }
    })
}

/// Replaces the document's rows. A class's new attendance records are checked first
/// ([`crate::signin::check_class`]); records that fail or wait for review do not count for pay.
pub(crate) fn write(tx: &Transaction<'_>, p: &Projection, now_ms: i64) -> rusqlite::Result<()> {
    match p {
        Projection::Class(c) => {
            let held = crate::signin::check_class(tx, &c.class, now_ms)?;
            let by_day =
                rules::attendance_by_day_where(&c.class, |a| !held.contains(&a.id.to_string()));
            tx.execute(
                "INSERT OR REPLACE INTO p_classes (id, district, village, title, status, occupation, \
                 level, training_type, subsidised, first_day, last_day, sign_out_required) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    c.id,
                    c.district,
                    c.village,
                    c.title,
                    c.status,
                    c.occupation,
                    c.level,
                    c.training_type,
                    c.subsidised,
                    c.first_day,
                    c.last_day,
                    c.sign_out_required
                ],
            )?;
            tx.execute("DELETE FROM p_enrolments WHERE class_id = ?1", [&c.id])?;
            let mut e = tx.prepare_cached(
                "INSERT INTO p_enrolments (class_id, trainee_id, completion) VALUES (?1, ?2, ?3)",
            )?;
            for (t, completion) in &c.enrolments {
                e.execute(params![c.id, t, completion])?;
            }
            tx.execute("DELETE FROM p_attendance_days WHERE class_id = ?1", [&c.id])?;
            let mut a = tx.prepare_cached(
                "INSERT INTO p_attendance_days (class_id, trainee_id, day, signed_in, signed_out, payable) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (t, per_day) in &by_day {
                for (day, d) in per_day {
                    a.execute(params![
                        c.id,
                        t.to_string(),
                        day.to_string(),
                        d.signed_in,
                        d.signed_out,
                        d.payable
                    ])?;
                }
            }
        }
        Projection::Trainee(t) => {
            tx.execute(
                "INSERT OR REPLACE INTO p_trainees (id, district, village, blind_index, name_masked, \
                 id_masked, phone_masked, sex, birth_year, household, key_groups) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    t.id,
                    t.district,
                    t.village,
                    t.blind_index,
                    t.name_masked,
                    t.id_masked,
                    t.phone_masked,
                    t.sex,
                    t.birth_year,
                    t.household,
                    t.key_groups
                ],
            )?;
        }
        Projection::Household(h) => {
            tx.execute(
                "INSERT OR REPLACE INTO p_households (id, district, village, poverty_status) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![h.id, h.district, h.village, h.poverty_status],
            )?;
        }
    }
    Ok(())
}
