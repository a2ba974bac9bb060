//! The household document.
//!
//! ```text
//! { kind: "household", schema, id, district, village, head_name?, poverty_status,
//!   members: { trainee_id: true } }
//! ```

use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT};

use super::{Header, Reader, Shown, as_str, ensure_map, put_if_changed, write_header};
use crate::catalog::PovertyStatus;
use crate::doc::{Conflict, DocKind};
use crate::domain::Household;
use crate::error::Result;
use crate::ids::{DocId, HouseholdId, TraineeId};
use crate::validate::PersonName;

/// Writes a new household document.
pub(crate) fn create(tx: &mut impl Transactable, h: &Household) -> Result<()> {
    write_header(
        tx,
        &Header {
            id: h.id.into(),
            kind: DocKind::Household,
            district: h.district.clone(),
            village: h.village.clone(),
        },
    )?;
    if let Some(n) = &h.head_name {
        tx.put(ROOT, "head_name", n.expose())?;
    }
    tx.put(ROOT, "poverty_status", h.poverty_status.code())?;
    let members = tx.put_object(ROOT, "members", automerge::ObjType::Map)?;
    for m in &h.members {
        tx.put(&members, m.to_string().as_str(), true)?;
    }
    Ok(())
}

/// Adds a member.
pub(crate) fn add_member(tx: &mut impl Transactable, trainee: TraineeId) -> Result<()> {
    let members = ensure_map(tx, &ROOT, "members")?;
    let key = trainee.to_string();
    if tx.get(&members, key.as_str())?.is_none() {
        tx.put(&members, key.as_str(), true)?;
    }
    Ok(())
}

/// Sets the poverty status.
pub(crate) fn set_poverty_status(tx: &mut impl Transactable, s: PovertyStatus) -> Result<()> {
    put_if_changed(tx, &ROOT, "poverty_status", s.code())
}

fn mask_name(s: &str) -> String {
    PersonName::from_stored(s.to_owned()).masked()
}

/// Reads a household document, with the conflicts it holds.
pub fn read(doc: &Automerge, id: HouseholdId) -> Result<(Household, Vec<Conflict>)> {
    let header = super::read_header(doc, id.into())?;
    let mut r = Reader::new(doc, DocId::from(id), DocKind::Household);
    if header.kind != DocKind::Household {
        return Err(r.schema_error("kind"));
    }
    let head_name = r
        .opt(
            &ROOT,
            "head_name",
            "head_name",
            as_str,
            Shown::Masked(mask_name),
        )?
        .map(PersonName::from_stored);
    let poverty_status: PovertyStatus = r.req_code(&ROOT, "poverty_status", "poverty_status")?;
    let members = r.set(&ROOT, "members", "members")?;
    Ok((
        Household {
            id,
            district: header.district,
            village: header.village,
            head_name,
            poverty_status,
            members,
        },
        r.conflicts,
    ))
}
