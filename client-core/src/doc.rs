//! The automerge documents that hold the records, and how they are read back.
//!
//! One document per class (roster, attendance, completion: maps keyed by id, never lists of records),
//! one per trainee (the personal data, so it can be purged on its own) and one per household. Every
//! document's root carries `kind`, `schema`, `id`, `district` and `village`, written once at creation.
//! Writers touch only the keys that change (automerge writes cost ~20× more since 0.7). Readers check
//! every value's type and report each register that holds more than one concurrent value as a
//! [`Conflict`], so no value is ever dropped silently.

pub mod class;
pub mod household;
pub mod review;
pub mod trainee;

use std::fmt;
use std::str::FromStr;

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ids::{DistrictCode, DocId, VillageCode};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u64 = 1;

/// What a document holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    /// A training class with its roster, attendance and completions.
    Class,
    /// One trainee's personal data.
    Trainee,
    /// One household.
    Household,
}

impl DocKind {
    /// The code in the document root and the store.
    pub fn code(&self) -> &'static str {
        match self {
            DocKind::Class => "class",
            DocKind::Trainee => "trainee",
            DocKind::Household => "household",
        }
    }
}

impl FromStr for DocKind {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        match s {
            "class" => Ok(DocKind::Class),
            "trainee" => Ok(DocKind::Trainee),
            "household" => Ok(DocKind::Household),
            _ => Err(()),
        }
    }
}

impl fmt::Display for DocKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A register that holds more than one concurrent value. Every replica sees the same winner; the
/// other values stay until someone writes the register again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// Document.
    pub doc: DocId,
    /// What the document holds.
    pub kind: DocKind,
    /// Path of the register, e.g. `phone` or `completion.<trainee>.result`.
    pub path: String,
    /// The value every replica shows (masked where the field is personal).
    pub winner: String,
    /// All values, winner included (masked where personal).
    pub values: Vec<String>,
}

/// The fixed head of every document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Id.
    pub id: DocId,
    /// Kind.
    pub kind: DocKind,
    /// District.
    pub district: DistrictCode,
    /// Village.
    pub village: VillageCode,
}

/// Writes the fixed head of a new document.
pub(crate) fn write_header(tx: &mut impl Transactable, h: &Header) -> Result<()> {
    tx.put(ROOT, "kind", h.kind.code())?;
    tx.put(ROOT, "schema", SCHEMA_VERSION)?;
    tx.put(ROOT, "id", h.id.to_string())?;
    tx.put(ROOT, "district", h.district.as_str())?;
    tx.put(ROOT, "village", h.village.as_str())?;
    Ok(())
}

/// Reads and checks the fixed head of a document. `expected` is the id it is stored under.
pub fn read_header(doc: &Automerge, expected: DocId) -> Result<Header> {
    let mut r = Reader::new(doc, expected, DocKind::Class);
    let bad = |path: &str| Error::Schema {
        doc: expected,
        path: path.to_owned(),
    };
    let kind = r
        .req_str(&ROOT, "kind", "kind")?
        .parse::<DocKind>()
        .map_err(|()| bad("kind"))?;
    let schema = r.req(&ROOT, "schema", "schema", as_u64)?;
    if schema == 0 || schema > SCHEMA_VERSION {
        return Err(bad("schema"));
    }
    let id = r
        .req_str(&ROOT, "id", "id")?
        .parse::<DocId>()
        .map_err(|_| bad("id"))?;
    if id != expected {
        return Err(bad("id"));
    }
    let district = DistrictCode::parse(&r.req_str(&ROOT, "district", "district")?)
        .ok_or_else(|| bad("district"))?;
    let village = VillageCode::parse(&r.req_str(&ROOT, "village", "village")?)
        .ok_or_else(|| bad("village"))?;
    if village.district() != district {
        return Err(bad("village"));
    }
    if let Some(c) = r.conflicts.first() {
        // The head is written once; two values mean two documents claim the same id.
        return Err(bad(&c.path));
    }
    Ok(Header {
        id,
        kind,
        district,
        village,
    })
}

/// Whether a field's values are shown masked in conflicts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Shown {
    /// Shown as stored.
    Plain,
    /// A name, ID number or phone number: masked by the given function.
    Masked(fn(&str) -> String),
}

/// Reads typed values out of a document, collecting conflicts and failing on schema errors.
pub(crate) struct Reader<'a> {
    doc: &'a Automerge,
    id: DocId,
    kind: DocKind,
    pub(crate) conflicts: Vec<Conflict>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(doc: &'a Automerge, id: DocId, kind: DocKind) -> Self {
        Self {
            doc,
            id,
            kind,
            conflicts: Vec::new(),
        }
    }

    pub(crate) fn schema_error(&self, path: &str) -> Error {
        Error::Schema {
            doc: self.id,
            path: path.to_owned(),
        }
    }

    /// The map object at `key`, if present.
    pub(crate) fn map(&self, obj: &ObjId, key: &str, path: &str) -> Result<Option<ObjId>> {
        match self.doc.get(obj, key)? {
            None => Ok(None),
            Some((Value::Object(ObjType::Map), id)) => Ok(Some(id)),
            Some(_) => Err(self.schema_error(path)),
        }
    }

    /// The map object at `key`, which must be present.
    pub(crate) fn req_map(&self, obj: &ObjId, key: &str, path: &str) -> Result<ObjId> {
        self.map(obj, key, path)?
            .ok_or_else(|| self.schema_error(path))
    }

    /// Keys of a map, in order.
    pub(crate) fn keys(&self, obj: &ObjId) -> Vec<String> {
        self.doc.keys(obj).collect()
    }

    /// A register's value converted by `conv`, noting a conflict when it holds several.
    pub(crate) fn opt<T>(
        &mut self,
        obj: &ObjId,
        key: &str,
        path: &str,
        conv: fn(&ScalarValue) -> Option<T>,
        shown: Shown,
    ) -> Result<Option<T>> {
        let all = self.doc.get_all(obj, key)?;
        if all.is_empty() {
            return Ok(None);
        }
        // (stored value as text, value as shown)
        let mut values = Vec::with_capacity(all.len());
        for (v, _) in &all {
            match v {
                Value::Scalar(s) if matches!(s.as_ref(), ScalarValue::Null) => {
                    values.push(("∅".to_owned(), "∅".to_owned()))
                }
                Value::Scalar(s) => {
                    conv(s).ok_or_else(|| self.schema_error(path))?;
                    values.push((show(s, Shown::Plain), show(s, shown)));
                }
                Value::Object(_) => return Err(self.schema_error(path)),
            }
        }
        let winner = match self.doc.get(obj, key)? {
            Some((Value::Scalar(s), _)) => s.into_owned(),
            _ => return Err(self.schema_error(path)),
        };
        if all.len() > 1 {
            // Distinct by the stored value, not the masked one: two phone numbers that differ only
            // in the hidden digits are still two values.
            values.sort();
            values.dedup_by(|a, b| a.0 == b.0);
            if values.len() > 1 {
                let mut shown_values: Vec<String> = values.into_iter().map(|(_, s)| s).collect();
                shown_values.sort();
                self.conflicts.push(Conflict {
                    doc: self.id,
                    kind: self.kind,
                    path: path.to_owned(),
                    winner: show(&winner, shown),
                    values: shown_values,
                });
            }
        }
        if matches!(winner, ScalarValue::Null) {
            return Ok(None);
        }
        Ok(conv(&winner))
    }

    /// A register that must be present.
    pub(crate) fn req<T>(
        &mut self,
        obj: &ObjId,
        key: &str,
        path: &str,
        conv: fn(&ScalarValue) -> Option<T>,
    ) -> Result<T> {
        self.opt(obj, key, path, conv, Shown::Plain)?
            .ok_or_else(|| self.schema_error(path))
    }

    /// A text register that must be present.
    pub(crate) fn req_str(&mut self, obj: &ObjId, key: &str, path: &str) -> Result<String> {
        self.req(obj, key, path, as_str)
    }

    /// A register holding a catalog code.
    pub(crate) fn req_code<T: FromStr>(&mut self, obj: &ObjId, key: &str, path: &str) -> Result<T> {
        self.req_str(obj, key, path)?
            .parse()
            .map_err(|_| self.schema_error(path))
    }

    /// Every key of a small map read in one pass (much cheaper than one look-up per key). Keys that
    /// hold concurrent values are read again through [`Reader::opt`] so their conflicts are kept.
    pub(crate) fn record(&mut self, obj: &ObjId, path: &str) -> Result<Record> {
        let mut fields = std::collections::BTreeMap::new();
        let mut conflicted = Vec::new();
        for item in self.doc.map_range(obj, ..) {
            if item.conflict {
                conflicted.push(item.key.to_string());
            }
            let id = matches!(item.value, automerge::ValueRef::Object(_)).then(|| item.id());
            let v = match (item.value.into_value(), id) {
                (Value::Object(t), Some(id)) => RecordValue::Object(t, id),
                (Value::Object(_), None) => continue,
                (Value::Scalar(s), _) => match s.into_owned() {
                    ScalarValue::Null => continue,
                    s => RecordValue::Scalar(s),
                },
            };
            fields.insert(item.key.to_string(), v);
        }
        for key in conflicted {
            let p = format!("{path}.{key}");
            match self.opt(obj, &key, &p, |s| Some(s.clone()), Shown::Plain)? {
                Some(s) => {
                    fields.insert(key, RecordValue::Scalar(s));
                }
                None => {
                    fields.remove(&key);
                }
            }
        }
        Ok(Record {
            fields,
            doc: self.id,
            path: path.to_owned(),
        })
    }

    /// The keys of a map used as a set (`key → true`), each parsed.
    pub(crate) fn set<T: FromStr + Ord>(
        &self,
        obj: &ObjId,
        key: &str,
        path: &str,
    ) -> Result<std::collections::BTreeSet<T>> {
        let Some(m) = self.map(obj, key, path)? else {
            return Ok(Default::default());
        };
        self.keys(&m)
            .iter()
            .map(|k| k.parse().map_err(|_| self.schema_error(path)))
            .collect()
    }
}

/// One value of a [`Record`].
pub(crate) enum RecordValue {
    Scalar(ScalarValue),
    Object(ObjType, ObjId),
}

/// A map read in one pass, with typed getters that fail with the field's path.
pub(crate) struct Record {
    fields: std::collections::BTreeMap<String, RecordValue>,
    doc: DocId,
    path: String,
}

impl Record {
    fn error(&self, key: &str) -> Error {
        Error::Schema {
            doc: self.doc,
            path: format!("{}.{key}", self.path),
        }
    }

    /// An optional scalar converted by `conv`.
    pub(crate) fn opt<T>(
        &self,
        key: &str,
        conv: fn(&ScalarValue) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.fields.get(key) {
            None => Ok(None),
            Some(RecordValue::Scalar(s)) => conv(s).map(Some).ok_or_else(|| self.error(key)),
            Some(RecordValue::Object(..)) => Err(self.error(key)),
        }
    }

    /// A required scalar converted by `conv`.
    pub(crate) fn req<T>(&self, key: &str, conv: fn(&ScalarValue) -> Option<T>) -> Result<T> {
        self.opt(key, conv)?.ok_or_else(|| self.error(key))
    }

    /// A required text parsed with `FromStr`.
    pub(crate) fn parsed<T: FromStr>(&self, key: &str) -> Result<T> {
        self.req(key, as_str)?.parse().map_err(|_| self.error(key))
    }

    /// An optional nested map.
    pub(crate) fn map(&self, key: &str) -> Result<Option<ObjId>> {
        match self.fields.get(key) {
            None => Ok(None),
            Some(RecordValue::Object(ObjType::Map, id)) => Ok(Some(id.clone())),
            Some(_) => Err(self.error(key)),
        }
    }
}

fn show(s: &ScalarValue, shown: Shown) -> String {
    let plain = match s {
        ScalarValue::Str(t) => t.to_string(),
        other => other.to_string(),
    };
    match shown {
        Shown::Plain => plain,
        Shown::Masked(mask) => mask(&plain),
    }
}

pub(crate) fn as_str(s: &ScalarValue) -> Option<String> {
    match s {
        ScalarValue::Str(t) => Some(t.to_string()),
        _ => None,
    }
}

pub(crate) fn as_bytes(s: &ScalarValue) -> Option<Vec<u8>> {
    match s {
        ScalarValue::Bytes(b) => Some(b.clone()),
        _ => None,
    }
}

pub(crate) fn as_bool(s: &ScalarValue) -> Option<bool> {
    match s {
        ScalarValue::Boolean(b) => Some(*b),
        _ => None,
    }
}

pub(crate) fn as_u64(s: &ScalarValue) -> Option<u64> {
    match s {
        ScalarValue::Uint(n) => Some(*n),
        ScalarValue::Int(n) => u64::try_from(*n).ok(),
        ScalarValue::F64(f) if f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15 => Some(*f as u64),
        _ => None,
    }
}

pub(crate) fn as_f64(s: &ScalarValue) -> Option<f64> {
    match s {
        ScalarValue::F64(f) if f.is_finite() => Some(*f),
        ScalarValue::Int(n) => Some(*n as f64),
        ScalarValue::Uint(n) => Some(*n as f64),
        _ => None,
    }
}

/// Milliseconds since the epoch, written as a timestamp (or by another client as an integer).
pub(crate) fn as_ms(s: &ScalarValue) -> Option<i64> {
    match s {
        ScalarValue::Timestamp(t) | ScalarValue::Int(t) => Some(*t),
        ScalarValue::Uint(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}

pub(crate) fn as_date(s: &ScalarValue) -> Option<chrono::NaiveDate> {
    match s {
        ScalarValue::Str(t) => chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok(),
        _ => None,
    }
}

/// Puts a value only when it differs from what the register holds (and the register holds no
/// conflict), so that re-saving a form writes nothing.
pub(crate) fn put_if_changed<V: Into<ScalarValue>>(
    tx: &mut impl Transactable,
    obj: &ObjId,
    key: &str,
    value: V,
) -> Result<()> {
    let value = value.into();
    let all = tx.get_all(obj, key)?;
    let same = all.len() == 1 && matches!(&all[0].0, Value::Scalar(s) if s.as_ref() == &value);
    if !same {
        tx.put(obj, key, value)?;
    }
    Ok(())
}

/// The map object at `key` of `obj` inside a transaction, created when missing.
pub(crate) fn ensure_map(tx: &mut impl Transactable, obj: &ObjId, key: &str) -> Result<ObjId> {
    match tx.get(obj, key)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Ok(tx.put_object(obj, key, ObjType::Map)?),
    }
}

/// Every document as plain JSON, for export and inspection.
pub fn to_json(doc: &Automerge) -> serde_json::Value {
    serde_json::to_value(automerge::AutoSerde::from(doc)).unwrap_or(serde_json::Value::Null)
}
