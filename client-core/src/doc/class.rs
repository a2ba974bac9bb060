//! The class document: the class's plan, its status, its roster, every attendance fact and every
//! completion.
//!
//! ```text
//! { kind: "class", schema, id, district, village, created_at, created_by,
//!   info:       { title, occupation, level, training_type, subsidised, institution?,
//!                 instructors: { name: true }, instructor_accounts?: { account_id: true },
//!                 venue?: { name, lat?, lon? }, first_day, last_day,
//!                 daily_hours?, starts_at?: "HH:MM", sign_out_required, planned_size? },
//!   status:     "planned" | "running" | "closed" | "cancelled",
//!   roster:     { trainee_id: { enrolled_at, by } },
//!   attendance: { attendance_id: { trainee, day, kind, at, offset? | time_unverified, device,
//!                 method: "hand" | "qr" | "card", reason?, code?, response?, code_age_ms?,
//!                 card?, signature?, gps? } },
//!   completion: { trainee_id: { result, certificate?, at, by } },
//!   keys?:      { registration_id: { witnessed, registrar, at, signature } } }
//! ```
//!
//! `keys` holds the trainee phone keys registered in this class (see `qr::keys`), filed once under
//! the id of their witnessed claim and never edited.
//!
//! The status register is read as the furthest state among its concurrent values (see
//! [`ClassStatus::rank`]): a close never loses to a concurrent start, so it is not reported as a
//! conflict. Attendance facts are written once under fresh ids and never edited, so they cannot
//! conflict.

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjId, ROOT, ReadDoc, ScalarValue, Value};

use super::{
    Header, Reader, Shown, as_bool, as_bytes, as_date, as_f64, as_ms, as_str, as_u64, ensure_map,
    put_if_changed, write_header,
};
use crate::catalog::ClassStatus;
use crate::doc::{Conflict, DocKind};
use crate::domain::{
    Attendance, AttendanceKind, AttendanceMethod, Class, Completion, Enrolment, Gps, Venue,
};
use crate::error::Result;
use crate::ids::{ClassId, DeviceId, DocId, TraineeId};

/// Writes a new class document.
pub(crate) fn create(
    tx: &mut impl Transactable,
    class: &Class,
    device: DeviceId,
    now_ms: i64,
) -> Result<()> {
    write_header(
        tx,
        &Header {
            id: class.id.into(),
            kind: DocKind::Class,
            district: class.district.clone(),
            village: class.village.clone(),
        },
    )?;
    tx.put(ROOT, "created_at", ScalarValue::Timestamp(now_ms))?;
    tx.put(ROOT, "created_by", device.to_string())?;
    let info = tx.put_object(ROOT, "info", automerge::ObjType::Map)?;
    tx.put(&info, "title", class.title.as_str())?;
    tx.put(&info, "occupation", class.occupation.as_str())?;
    tx.put(&info, "level", class.level.code())?;
    tx.put(&info, "training_type", class.training_type.code())?;
    tx.put(&info, "subsidised", class.subsidised)?;
    if let Some(inst) = &class.institution {
        tx.put(&info, "institution", inst.as_str())?;
    }
    let instructors = tx.put_object(&info, "instructors", automerge::ObjType::Map)?;
    for name in &class.instructors {
        tx.put(&instructors, name.as_str(), true)?;
    }
    if !class.instructor_accounts.is_empty() {
        let accounts = tx.put_object(&info, "instructor_accounts", automerge::ObjType::Map)?;
        for a in &class.instructor_accounts {
            tx.put(&accounts, a.as_str(), true)?;
        }
    }
    if let Some(venue) = &class.venue {
        let v = tx.put_object(&info, "venue", automerge::ObjType::Map)?;
        tx.put(&v, "name", venue.name.as_str())?;
        if let Some(gps) = venue.gps {
            write_gps(tx, &v, gps)?;
        }
    }
    tx.put(&info, "first_day", class.first_day.to_string())?;
    tx.put(&info, "last_day", class.last_day.to_string())?;
    if let Some(h) = class.daily_hours {
        tx.put(&info, "daily_hours", h)?;
    }
    if let Some(t) = class.starts_at {
        tx.put(&info, "starts_at", t.format("%H:%M").to_string())?;
    }
    tx.put(&info, "sign_out_required", class.sign_out_required)?;
    if let Some(n) = class.planned_size {
        tx.put(&info, "planned_size", u64::from(n))?;
    }
    tx.put(ROOT, "status", class.status.code())?;
    tx.put_object(ROOT, "roster", automerge::ObjType::Map)?;
    tx.put_object(ROOT, "attendance", automerge::ObjType::Map)?;
    tx.put_object(ROOT, "completion", automerge::ObjType::Map)?;
    Ok(())
}

fn write_gps(tx: &mut impl Transactable, obj: &ObjId, gps: Gps) -> Result<()> {
    tx.put(obj, "lat", gps.lat)?;
    tx.put(obj, "lon", gps.lon)?;
    if let Some(acc) = gps.accuracy_m {
        tx.put(obj, "accuracy_m", acc)?;
    }
    Ok(())
}

/// Sets the status register (callers check that the move is forward).
pub(crate) fn set_status(tx: &mut impl Transactable, status: ClassStatus) -> Result<()> {
    put_if_changed(tx, &ROOT, "status", status.code())
}

/// Makes the instructor accounts the class names exactly `accounts`.
pub(crate) fn set_instructor_accounts(
    tx: &mut impl Transactable,
    accounts: &std::collections::BTreeSet<String>,
) -> Result<()> {
    let info = ensure_map(tx, &ROOT, "info")?;
    let map = ensure_map(tx, &info, "instructor_accounts")?;
    let present: Vec<String> = tx.keys(&map).collect();
    for k in &present {
        if !accounts.contains(k) {
            tx.delete(&map, k.as_str())?;
        }
    }
    for a in accounts {
        if !present.contains(a) {
            tx.put(&map, a.as_str(), true)?;
        }
    }
    Ok(())
}

/// Files a trainee key registration under `id`; filing one already there writes nothing.
pub(crate) fn add_registration(
    tx: &mut impl Transactable,
    id: &str,
    reg: &crate::qr::Registration,
) -> Result<()> {
    let keys = ensure_map(tx, &ROOT, "keys")?;
    if tx.get(&keys, id)?.is_some() {
        return Ok(());
    }
    let entry = tx.put_object(&keys, id, automerge::ObjType::Map)?;
    tx.put(
        &entry,
        "witnessed",
        ScalarValue::Bytes(reg.witnessed.clone()),
    )?;
    tx.put(&entry, "registrar", reg.registrar.to_string())?;
    tx.put(&entry, "at", ScalarValue::Timestamp(reg.at_ms))?;
    tx.put(
        &entry,
        "signature",
        ScalarValue::Bytes(reg.signature.clone()),
    )?;
    Ok(())
}

/// Adds a trainee to the roster; re-enrolling an enrolled trainee writes nothing.
pub(crate) fn enrol(
    tx: &mut impl Transactable,
    trainee: TraineeId,
    device: DeviceId,
    now_ms: i64,
) -> Result<()> {
    let roster = ensure_map(tx, &ROOT, "roster")?;
    let key = trainee.to_string();
    if tx.get(&roster, key.as_str())?.is_some() {
        return Ok(());
    }
    let entry = tx.put_object(&roster, key.as_str(), automerge::ObjType::Map)?;
    tx.put(&entry, "enrolled_at", ScalarValue::Timestamp(now_ms))?;
    tx.put(&entry, "by", device.to_string())?;
    Ok(())
}

/// Adds one attendance fact.
pub(crate) fn add_attendance(tx: &mut impl Transactable, a: &Attendance) -> Result<()> {
    let all = ensure_map(tx, &ROOT, "attendance")?;
    let rec = tx.put_object(&all, a.id.to_string().as_str(), automerge::ObjType::Map)?;
    tx.put(&rec, "trainee", a.trainee.to_string())?;
    tx.put(&rec, "day", a.day.to_string())?;
    tx.put(&rec, "kind", a.kind.code())?;
    tx.put(&rec, "at", ScalarValue::Timestamp(a.at_ms))?;
    match a.clock_offset_ms {
        Some(o) => tx.put(&rec, "offset", o)?,
        None => tx.put(&rec, "time_unverified", true)?,
    }
    tx.put(&rec, "device", a.device.to_string())?;
    match &a.method {
        AttendanceMethod::Hand { reason } => {
            tx.put(&rec, "method", "hand")?;
            tx.put(&rec, "reason", reason.as_str())?;
        }
        AttendanceMethod::Qr {
            code,
            response,
            code_age_ms,
        } => {
            tx.put(&rec, "method", "qr")?;
            tx.put(&rec, "code", ScalarValue::Bytes(code.clone()))?;
            tx.put(&rec, "response", ScalarValue::Bytes(response.clone()))?;
            tx.put(&rec, "code_age_ms", *code_age_ms)?;
        }
        AttendanceMethod::Card { card, signature } => {
            tx.put(&rec, "method", "card")?;
            tx.put(&rec, "card", ScalarValue::Bytes(card.clone()))?;
            tx.put(&rec, "signature", ScalarValue::Bytes(signature.clone()))?;
        }
        AttendanceMethod::Other { code } => {
            tx.put(&rec, "method", code.as_str())?;
        }
    }
    if let Some(gps) = a.gps {
        let g = tx.put_object(&rec, "gps", automerge::ObjType::Map)?;
        write_gps(tx, &g, gps)?;
    }
    Ok(())
}

/// Records (or re-records) a trainee's completion.
pub(crate) fn complete(
    tx: &mut impl Transactable,
    trainee: TraineeId,
    c: &Completion,
    device: DeviceId,
) -> Result<()> {
    let all = ensure_map(tx, &ROOT, "completion")?;
    let entry = ensure_map(tx, &all, trainee.to_string().as_str())?;
    put_if_changed(tx, &entry, "result", c.result.code())?;
    match c.certificate {
        Some(cert) => put_if_changed(tx, &entry, "certificate", cert.code())?,
        None => {
            if tx.get(&entry, "certificate")?.is_some() {
                tx.delete(&entry, "certificate")?;
            }
        }
    }
    tx.put(&entry, "at", ScalarValue::Timestamp(c.at_ms))?;
    tx.put(&entry, "by", device.to_string())?;
    Ok(())
}

/// Reads a whole class document, with the conflicts it holds.
pub fn read(doc: &Automerge, id: ClassId) -> Result<(Class, Vec<Conflict>)> {
    read_parts(doc, id, true)
}

/// Reads a class document without its attendance facts: what the index needs after a local write,
/// at a cost that does not grow with the attendance taken.
pub fn read_plan(doc: &Automerge, id: ClassId) -> Result<(Class, Vec<Conflict>)> {
    read_parts(doc, id, false)
}

fn read_parts(
    doc: &Automerge,
    id: ClassId,
    with_attendance: bool,
) -> Result<(Class, Vec<Conflict>)> {
    let header = super::read_header(doc, id.into())?;
    let mut r = Reader::new(doc, DocId::from(id), DocKind::Class);
    if header.kind != DocKind::Class {
        return Err(r.schema_error("kind"));
    }
    let info = r.req_map(&ROOT, "info", "info")?;
    let title = r.req_str(&info, "title", "info.title")?;
    let occupation = r.req_str(&info, "occupation", "info.occupation")?;
    let level = r.req_code(&info, "level", "info.level")?;
    let training_type = r.req_code(&info, "training_type", "info.training_type")?;
    let subsidised = r.req(&info, "subsidised", "info.subsidised", as_bool)?;
    let institution = r.opt(
        &info,
        "institution",
        "info.institution",
        as_str,
        Shown::Plain,
    )?;
    let instructors = r.set(&info, "instructors", "info.instructors")?;
    let instructor_accounts = r.set(&info, "instructor_accounts", "info.instructor_accounts")?;
    let venue = match r.map(&info, "venue", "info.venue")? {
        None => None,
        Some(v) => Some(Venue {
            name: r.req_str(&v, "name", "info.venue.name")?,
            gps: read_gps(&mut r, &v, "info.venue")?,
        }),
    };
    let first_day = r.req(&info, "first_day", "info.first_day", as_date)?;
    let last_day = r.req(&info, "last_day", "info.last_day", as_date)?;
    if last_day < first_day {
        return Err(r.schema_error("info.last_day"));
    }
    let daily_hours = r.opt(
        &info,
        "daily_hours",
        "info.daily_hours",
        as_f64,
        Shown::Plain,
    )?;
    let starts_at = r
        .opt(&info, "starts_at", "info.starts_at", as_str, Shown::Plain)?
        .map(|t| {
            chrono::NaiveTime::parse_from_str(&t, "%H:%M")
                .map_err(|_| r.schema_error("info.starts_at"))
        })
        .transpose()?;
    let sign_out_required = r.req(
        &info,
        "sign_out_required",
        "info.sign_out_required",
        as_bool,
    )?;
    let planned_size = r
        .opt(
            &info,
            "planned_size",
            "info.planned_size",
            as_u64,
            Shown::Plain,
        )?
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let status = read_status(&r, doc)?;

    let mut roster = std::collections::BTreeMap::new();
    let roster_obj = r.req_map(&ROOT, "roster", "roster")?;
    for key in r.keys(&roster_obj) {
        let path = format!("roster.{key}");
        let trainee: TraineeId = key.parse().map_err(|_| r.schema_error(&path))?;
        let entry = r.req_map(&roster_obj, &key, &path)?;
        let enrolled_at_ms = r.req(&entry, "enrolled_at", &format!("{path}.enrolled_at"), as_ms)?;
        roster.insert(
            trainee,
            Enrolment {
                trainee,
                enrolled_at_ms,
            },
        );
    }

    let mut attendance = std::collections::BTreeMap::new();
    let att_obj = r.req_map(&ROOT, "attendance", "attendance")?;
    let att_keys = if with_attendance {
        r.keys(&att_obj)
    } else {
        Vec::new()
    };
    for key in att_keys {
        let path = format!("attendance.{key}");
        let id = key.parse().map_err(|_| r.schema_error(&path))?;
        let rec = r.req_map(&att_obj, &key, &path)?;
        let a = read_attendance(&mut r, &rec, id, &path)?;
        attendance.insert(id, a);
    }

    let mut completion = std::collections::BTreeMap::new();
    let comp_obj = r.req_map(&ROOT, "completion", "completion")?;
    for key in r.keys(&comp_obj) {
        let path = format!("completion.{key}");
        let trainee: TraineeId = key.parse().map_err(|_| r.schema_error(&path))?;
        let entry = r.req_map(&comp_obj, &key, &path)?;
        let c = Completion {
            result: r.req_code(&entry, "result", &format!("{path}.result"))?,
            certificate: r
                .opt(
                    &entry,
                    "certificate",
                    &format!("{path}.certificate"),
                    as_str,
                    Shown::Plain,
                )?
                .map(|c| c.parse().map_err(|_| r.schema_error(&path)))
                .transpose()?,
            at_ms: r.req(&entry, "at", &format!("{path}.at"), as_ms)?,
        };
        completion.insert(trainee, c);
    }

    let mut registrations = std::collections::BTreeMap::new();
    if let Some(keys) = r.map(&ROOT, "keys", "keys")? {
        for key in r.keys(&keys) {
            let path = format!("keys.{key}");
            let entry = r.req_map(&keys, &key, &path)?;
            let f = r.record(&entry, &path)?;
            let reg = crate::qr::Registration {
                witnessed: f.req("witnessed", as_bytes)?,
                registrar: f.parsed("registrar")?,
                at_ms: f.req("at", as_ms)?,
                signature: f.req("signature", as_bytes)?,
            };
            registrations.insert(key, reg);
        }
    }

    let class = Class {
        id,
        district: header.district,
        village: header.village,
        title,
        occupation,
        level,
        training_type,
        subsidised,
        institution,
        instructors,
        instructor_accounts,
        venue,
        first_day,
        last_day,
        daily_hours,
        starts_at,
        sign_out_required,
        planned_size,
        status,
        roster,
        attendance,
        completion,
        registrations,
    };
    Ok((class, r.conflicts))
}

fn read_gps(r: &mut Reader<'_>, obj: &ObjId, path: &str) -> Result<Option<Gps>> {
    let lat = r.opt(obj, "lat", &format!("{path}.lat"), as_f64, Shown::Plain)?;
    let lon = r.opt(obj, "lon", &format!("{path}.lon"), as_f64, Shown::Plain)?;
    let accuracy_m = r.opt(
        obj,
        "accuracy_m",
        &format!("{path}.accuracy_m"),
        as_f64,
        Shown::Plain,
    )?;
    match (lat, lon) {
        (Some(lat), Some(lon))
            if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
        {
            Ok(Some(Gps {
                lat,
                lon,
                accuracy_m,
            }))
        }
        (None, None) => Ok(None),
        _ => Err(r.schema_error(path)),
    }
}

fn read_attendance(
    r: &mut Reader<'_>,
    rec: &ObjId,
    id: crate::ids::AttendanceId,
    path: &str,
) -> Result<Attendance> {
    let f = r.record(rec, path)?;
    let trainee = f.parsed("trainee")?;
    let day = f.req("day", as_date)?;
    let kind = match f.req("kind", as_str)?.as_str() {
        "in" => AttendanceKind::SignIn,
        "out" => AttendanceKind::SignOut,
        _ => return Err(r.schema_error(&format!("{path}.kind"))),
    };
    let at_ms = f.req("at", as_ms)?;
    let clock_offset_ms = f.opt("offset", as_ms)?;
    let device = f.parsed("device")?;
    let method = match f.req("method", as_str)?.as_str() {
        "hand" => AttendanceMethod::Hand {
            reason: f.opt("reason", as_str)?.unwrap_or_default(),
        },
        "qr" => AttendanceMethod::Qr {
            code: f.req("code", as_bytes)?,
            response: f.req("response", as_bytes)?,
            code_age_ms: f.req("code_age_ms", as_ms)?,
        },
        "card" => AttendanceMethod::Card {
            card: f.req("card", as_bytes)?,
            signature: f.req("signature", as_bytes)?,
        },
        other => AttendanceMethod::Other {
            code: other.to_owned(),
        },
    };
    let gps = match f.map("gps")? {
        Some(g) => read_gps(r, &g, &format!("{path}.gps"))?,
        None => None,
    };
    Ok(Attendance {
        id,
        trainee,
        day,
        kind,
        at_ms,
        clock_offset_ms,
        device,
        method,
        gps,
    })
}

/// The furthest status among the register's concurrent values.
fn read_status(r: &Reader<'_>, doc: &Automerge) -> Result<ClassStatus> {
    let mut best: Option<ClassStatus> = None;
    for (v, _) in doc.get_all(ROOT, "status")? {
        let s = match &v {
            Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Str(t) => t.parse::<ClassStatus>().ok(),
                _ => None,
            },
            Value::Object(_) => None,
        }
        .ok_or_else(|| r.schema_error("status"))?;
        if best.is_none_or(|b| s.rank() > b.rank()) {
            best = Some(s);
        }
    }
    best.ok_or_else(|| r.schema_error("status"))
}
