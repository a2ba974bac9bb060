//! The trainee document: one person's personal data, kept apart from the classes so that it can be
//! purged on its own.
//!
//! ```text
//! { kind: "trainee", schema, id, district, village, created_at, created_by,
//!   name, id_number, phone?, household?, key_groups: { code: true }, training_wish?, consent_at }
//! ```
//!
//! Sex and birth date are not stored: they are read from the ID number.

use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT, ScalarValue};

use super::{Header, Reader, Shown, as_ms, as_str, ensure_map, put_if_changed, write_header};
use crate::doc::{Conflict, DocKind};
use crate::domain::Trainee;
use crate::error::Result;
use crate::ids::{DeviceId, DocId, TraineeId};
use crate::validate::{IdNumber, PersonName, PhoneNumber};

/// Writes a new trainee document.
pub(crate) fn create(
    tx: &mut impl Transactable,
    t: &Trainee,
    device: DeviceId,
    now_ms: i64,
) -> Result<()> {
    write_header(
        tx,
        &Header {
            id: t.id.into(),
            kind: DocKind::Trainee,
            district: t.district.clone(),
            village: t.village.clone(),
        },
    )?;
    tx.put(ROOT, "created_at", ScalarValue::Timestamp(now_ms))?;
    tx.put(ROOT, "created_by", device.to_string())?;
    tx.put(ROOT, "name", t.name.expose())?;
    tx.put(ROOT, "id_number", t.id_number.expose())?;
    if let Some(p) = &t.phone {
        tx.put(ROOT, "phone", p.expose())?;
    }
    if let Some(h) = t.household {
        tx.put(ROOT, "household", h.to_string())?;
    }
    let groups = tx.put_object(ROOT, "key_groups", automerge::ObjType::Map)?;
    for g in &t.key_groups {
        tx.put(&groups, g.code(), true)?;
    }
    if let Some(w) = &t.training_wish {
        tx.put(ROOT, "training_wish", w.as_str())?;
    }
    tx.put(ROOT, "consent_at", ScalarValue::Timestamp(t.consent_at_ms))?;
    Ok(())
}

/// Sets (or clears) the phone number.
pub(crate) fn set_phone(tx: &mut impl Transactable, phone: Option<&PhoneNumber>) -> Result<()> {
    match phone {
        Some(p) => put_if_changed(tx, &ROOT, "phone", p.expose()),
        None => put_if_changed(tx, &ROOT, "phone", ScalarValue::Null),
    }
}

/// Adds key groups (a set: concurrent additions on two phones merge).
pub(crate) fn add_key_groups(
    tx: &mut impl Transactable,
    groups: &[crate::catalog::KeyGroup],
) -> Result<()> {
    let obj = ensure_map(tx, &ROOT, "key_groups")?;
    for g in groups {
        if tx.get(&obj, g.code())?.is_none() {
            tx.put(&obj, g.code(), true)?;
        }
    }
    Ok(())
}

fn mask_name(s: &str) -> String {
    PersonName::from_stored(s.to_owned()).masked()
}
fn mask_id(s: &str) -> String {
    IdNumber::from_stored(s.to_owned()).masked()
}
fn mask_phone(s: &str) -> String {
    PhoneNumber::from_stored(s.to_owned()).masked()
}

/// Reads a trainee document, with the conflicts it holds (personal values masked).
pub fn read(doc: &Automerge, id: TraineeId) -> Result<(Trainee, Vec<Conflict>)> {
    let header = super::read_header(doc, id.into())?;
    let mut r = Reader::new(doc, DocId::from(id), DocKind::Trainee);
    if header.kind != DocKind::Trainee {
        return Err(r.schema_error("kind"));
    }
    let name = r
        .opt(&ROOT, "name", "name", as_str, Shown::Masked(mask_name))?
        .ok_or_else(|| r.schema_error("name"))?;
    let id_number = r
        .opt(
            &ROOT,
            "id_number",
            "id_number",
            as_str,
            Shown::Masked(mask_id),
        )?
        .ok_or_else(|| r.schema_error("id_number"))?;
    let phone = r.opt(&ROOT, "phone", "phone", as_str, Shown::Masked(mask_phone))?;
    let household = r
        .opt(&ROOT, "household", "household", as_str, Shown::Plain)?
        .map(|h| h.parse().map_err(|_| r.schema_error("household")))
        .transpose()?;
    let key_groups = r.set(&ROOT, "key_groups", "key_groups")?;
    let training_wish = r.opt(
        &ROOT,
        "training_wish",
        "training_wish",
        as_str,
        Shown::Plain,
    )?;
    let consent_at_ms = r.req(&ROOT, "consent_at", "consent_at", as_ms)?;
    let t = Trainee {
        id,
        district: header.district,
        village: header.village,
        name: PersonName::from_stored(name),
        id_number: IdNumber::from_stored(id_number),
        phone: phone.map(PhoneNumber::from_stored),
        household,
        key_groups,
        training_wish,
        consent_at_ms,
    };
    Ok((t, r.conflicts))
}
