//! What the district decided and pays, as the last sync brought it: the district's policy table
//! and, for each class, every place's subsidy decision, payable days, days held for review and
//! allowance (docs/figures.md), kept beside the documents. The class screen shows the district's figures for every place the
//! phone holds nothing new for, and its own estimate for the others (ADR 0006).

use serde::Serialize;

use super::protocol::ClassSettlement;
use crate::error::{Error, Result};
use crate::ids::{ClassId, DocId};
use crate::phone::Phone;
use crate::store::DocStore;

pub(crate) use crate::phone::META_POLICY;
/// Prefix of a class's settlement, as the server sent it.
const META_SETTLEMENT: &str = "district.pay.";

/// The store key of a class's settlement.
pub(crate) fn settlement_key(class: uuid::Uuid) -> String {
    format!("{META_SETTLEMENT}{class}")
}

/// A value as kept in the store's metadata.
pub(crate) fn encode<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn corrupt(key: &str) -> Error {
    Error::Schema {
        doc: DocId::from(ClassId::from(uuid::Uuid::nil())),
        path: format!("meta.{key}"),
    }
}

impl<S: DocStore> Phone<S> {
    /// What the district decided and pays for the places of `class`, as of the last sync that
    /// brought it.
    pub fn district_settlement(&self, class: ClassId) -> Result<Option<ClassSettlement>> {
        let key = settlement_key(class.uuid());
        match self.store.meta(&key)? {
            None => Ok(None),
            Some(j) if j.is_empty() => Ok(None),
            Some(j) => serde_json::from_str(&j)
                .map(Some)
                .map_err(|_| corrupt(&key)),
        }
    }
}
