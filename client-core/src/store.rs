//! The phone's store, behind the [`DocStore`] seam.
//!
//! A store keeps, per document, a snapshot plus the incremental chunks appended since, and beside
//! them the index rows that queries use (classes by village and status, trainees by blind index,
//! enrolments, conflicts). A [`Write`] appends chunks and replaces index rows of one or more
//! documents in one transaction, so a query never sees a chunk without its rows or the reverse.
//! Compaction swaps a document's chunks for one snapshot atomically.
//!
//! [`SqliteDocStore`] is the encrypted store on the phone; [`MemoryDocStore`] is a real in-memory
//! implementation for tests and tools. Both pass the same conformance suite.

mod memory;
mod sqlite;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod sqlite_tests;

use chrono::NaiveDate;
use serde::Serialize;

pub use memory::MemoryDocStore;
pub use sqlite::{SCHEMA_VERSION, SqliteDocStore, apply_migrations};

use crate::catalog::{ClassStatus, Level, PovertyStatus, TrainingType};
use crate::doc::{Conflict, DocKind};
use crate::error::Result;
use crate::ids::{ClassId, DocId, HouseholdId, TraineeId, VillageCode};

/// A document as stored: its last snapshot and the chunks appended after it, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredDoc {
    /// Full save, if the document was ever compacted.
    pub snapshot: Option<Vec<u8>>,
    /// Incremental chunks since the snapshot, oldest first.
    pub chunks: Vec<Vec<u8>>,
}

/// The index row of a class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassRow {
    /// Id.
    pub id: ClassId,
    /// Village.
    pub village: VillageCode,
    /// Title.
    pub title: String,
    /// Status.
    pub status: ClassStatus,
    /// Occupation.
    pub occupation: String,
    /// Level.
    pub level: Level,
    /// Training type.
    pub training_type: TrainingType,
    /// Subsidised.
    pub subsidised: bool,
    /// First day.
    pub first_day: NaiveDate,
    /// Last day.
    pub last_day: NaiveDate,
    /// Trainees enrolled.
    pub enrolled: Vec<TraineeId>,
}

/// The index row of a trainee: no plaintext personal data but the masked name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraineeRow {
    /// Id.
    pub id: TraineeId,
    /// Village.
    pub village: VillageCode,
    /// Keyed hash of the ID number.
    pub blind_index: Vec<u8>,
    /// Masked name for lists.
    pub name_masked: String,
    /// Household.
    pub household: Option<HouseholdId>,
}

/// The index row of a household.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HouseholdRow {
    /// Id.
    pub id: HouseholdId,
    /// Village.
    pub village: VillageCode,
    /// Poverty status.
    pub poverty_status: PovertyStatus,
}

/// The index rows one document projects to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum IndexRow {
    /// A class document.
    Class(ClassRow),
    /// A trainee document.
    Trainee(TraineeRow),
    /// A household document.
    Household(HouseholdRow),
}

impl IndexRow {
    /// The kind of document the row belongs to.
    pub fn kind(&self) -> DocKind {
        match self {
            IndexRow::Class(_) => DocKind::Class,
            IndexRow::Trainee(_) => DocKind::Trainee,
            IndexRow::Household(_) => DocKind::Household,
        }
    }

    /// The village of the document.
    pub fn village(&self) -> &VillageCode {
        match self {
            IndexRow::Class(r) => &r.village,
            IndexRow::Trainee(r) => &r.village,
            IndexRow::Household(r) => &r.village,
        }
    }
}

/// What one write does to one document.
#[derive(Clone, Debug)]
pub struct DocWrite {
    /// Document.
    pub id: DocId,
    /// Chunk to append (automerge incremental save); `None` when only the index changes.
    pub chunk: Option<Vec<u8>>,
    /// The document's index rows after the write, replacing the old ones.
    pub index: IndexRow,
    /// The document's conflicts after the write, replacing the old ones.
    pub conflicts: Vec<Conflict>,
    /// True when the change was made on this phone and must be sent to the server.
    pub local: bool,
}

/// Filter for class lists.
#[derive(Clone, Debug, Default)]
pub struct ClassFilter {
    /// Only this village.
    pub village: Option<VillageCode>,
    /// Only these statuses (all when empty).
    pub statuses: Vec<ClassStatus>,
}

/// Sync bookkeeping of one document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncMark {
    /// Heads the server last acknowledged (empty: never synced).
    pub acked_heads: Vec<automerge::ChangeHash>,
    /// Local changes not yet acknowledged.
    pub dirty: bool,
}

/// Heads the server acknowledged for one document, with the document's current heads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acked {
    /// Document.
    pub id: DocId,
    /// Heads the server is known to have.
    pub acked: Vec<automerge::ChangeHash>,
    /// The document's heads on the phone.
    pub current: Vec<automerge::ChangeHash>,
}

/// The storage seam of the phone.
pub trait DocStore: Send {
    /// A profile value.
    fn meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets profile values, all in one transaction.
    fn set_meta(&mut self, entries: &[(&str, &str)]) -> Result<()>;
    /// A document's snapshot and chunks, or `None` if it is not stored.
    fn load(&self, id: DocId) -> Result<Option<StoredDoc>>;
    /// Applies the writes atomically: all or nothing, durable when it returns.
    fn write(&mut self, writes: &[DocWrite]) -> Result<()>;
    /// Applies a sync response atomically: merged documents, acknowledged heads, and profile values
    /// (cursors, server time).
    fn apply_sync(
        &mut self,
        writes: &[DocWrite],
        acks: &[Acked],
        meta: &[(String, String)],
    ) -> Result<()>;
    /// Replaces the document's snapshot and its first `chunks_replaced` chunks with `snapshot`,
    /// atomically.
    fn compact(&mut self, id: DocId, snapshot: &[u8], chunks_replaced: usize) -> Result<()>;
    /// Ids and kinds of every stored document.
    fn documents(&self) -> Result<Vec<(DocId, DocKind)>>;
    /// Class rows, newest first day first.
    fn classes(&self, filter: &ClassFilter) -> Result<Vec<ClassRow>>;
    /// The class row of one class.
    fn class_row(&self, id: ClassId) -> Result<Option<ClassRow>>;
    /// The trainee rows of these trainees (missing ones are left out).
    fn trainee_rows(&self, ids: &[TraineeId]) -> Result<Vec<TraineeRow>>;
    /// The trainee whose ID number has this blind index.
    fn trainee_by_blind_index(&self, blind_index: &[u8]) -> Result<Option<TraineeId>>;
    /// The household row.
    fn household_row(&self, id: HouseholdId) -> Result<Option<HouseholdRow>>;
    /// Classes the trainee is enrolled in.
    fn classes_of_trainee(&self, trainee: TraineeId) -> Result<Vec<ClassRow>>;
    /// Every open conflict.
    fn conflicts(&self) -> Result<Vec<Conflict>>;
    /// Sync bookkeeping of a document.
    fn sync_mark(&self, id: DocId) -> Result<SyncMark>;
    /// Records the heads the server acknowledged; clears `dirty` when they are `current`.
    fn set_acked_heads(
        &mut self,
        id: DocId,
        acked: &[automerge::ChangeHash],
        current: &[automerge::ChangeHash],
    ) -> Result<()>;
    /// Documents with local changes not yet acknowledged.
    fn dirty_documents(&self) -> Result<Vec<DocId>>;
    /// Removes these documents whatever their state (a person's erasure, which wins over any local
    /// change), in one transaction. Their bytes are overwritten, not just unlinked.
    fn erase_documents(&mut self, ids: &[DocId]) -> Result<()>;
    /// Removes every document of these villages — except those with local changes not yet
    /// acknowledged, which stay for recovery — and sets `meta`, in one transaction. Returns the
    /// documents removed. Their bytes are overwritten, not just unlinked.
    fn drop_villages(
        &mut self,
        villages: &[VillageCode],
        meta: &[(String, String)],
    ) -> Result<Vec<DocId>>;
}
