//! The coordinator's phone: every operation and query of the offline record, over a [`DocStore`].
//!
//! Each operation validates first, then changes the documents it touches in memory, then writes the
//! new chunks with the documents' index rows in one store transaction. If the store refuses (disk
//! full, say), the in-memory copies are dropped and reloaded from the store, so memory never runs
//! ahead of what is durable.

pub(crate) mod cache;
mod ops;

pub use ops::MAX_CLASS_DAYS;
pub(crate) use ops::check_gps;

use std::collections::BTreeSet;
use std::sync::Arc;

use automerge::{ActorId, Automerge, ChangeHash};

use crate::blind_index::BlindIndexKey;
use crate::clock::{Clock, SystemClock};
use crate::contain::contained;
use crate::doc::{self, Conflict, DocKind};
use crate::error::{Error, Result};
use crate::ids::{DeviceId, DistrictCode, DocId, VillageCode};
use crate::rules::PolicyTable;
use crate::store::{ClassRow, DocStore, DocWrite, HouseholdRow, IndexRow, TraineeRow};
use crate::validate::{Field, Invalid, Problem};

pub(crate) use cache::DocCache;

/// Chunks a document may gather before it is compacted into one snapshot.
pub const COMPACT_AFTER_CHUNKS: usize = 64;

pub(crate) const META_DISTRICT: &str = "district";
pub(crate) const META_VILLAGES: &str = "villages";
pub(crate) use crate::device::{META_ACTOR, META_DEVICE};

/// Who this phone is and what it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The district the phone works in.
    pub district: DistrictCode,
    /// The villages it records for.
    pub villages: BTreeSet<VillageCode>,
    /// The device id.
    pub device: DeviceId,
    /// The automerge actor of this phone's changes.
    pub actor: ActorId,
}

/// The offline record on one phone.
#[derive(Debug)]
pub struct Phone<S: DocStore> {
    pub(crate) store: S,
    profile: Profile,
    blind_key: BlindIndexKey,
    clock: Arc<dyn Clock>,
    pub(crate) policy: PolicyTable,
    pub(crate) cache: DocCache,
    pub(crate) pending_sync: Option<PendingSync>,
}

/// Content of a document received from elsewhere.
pub(crate) enum Incoming<'a> {
    /// A whole document in automerge's save format (or concatenated change chunks).
    Document(&'a [u8]),
    /// Parsed changes.
    Changes(Vec<automerge::Change>),
}

/// The result of merging a document received from elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// The document.
    pub id: DocId,
    /// What it holds.
    pub kind: DocKind,
    /// Whether anything new arrived.
    pub changed: bool,
    /// The document's heads after the merge.
    pub heads: Vec<ChangeHash>,
}

impl<S: DocStore> Phone<S> {
    /// Sets up a new phone for `district` and its `villages`, with a fresh device id and actor.
    pub fn init(
        mut store: S,
        district: &str,
        villages: &[String],
        blind_key: BlindIndexKey,
    ) -> Result<Self> {
        if store.meta(META_DISTRICT)?.is_some() {
            return Err(Error::AlreadyInitialised);
        }
        let district = DistrictCode::parse(district)
            .ok_or(Invalid::new(Field::District, Problem::BadFormat))?;
        if villages.is_empty() {
            return Err(Invalid::new(Field::Village, Problem::Missing).into());
        }
        let mut set = BTreeSet::new();
        for v in villages {
            let v =
                VillageCode::parse(v).ok_or(Invalid::new(Field::Village, Problem::BadFormat))?;
            if v.district() != district {
                return Err(Invalid::new(Field::Village, Problem::NotInScope).into());
            }
            set.insert(v);
        }
        // An identity made for enrollment before the phone was set up is kept.
        let (device, actor) = crate::device::identity(&mut store)?;
        let villages_text = set.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(",");
        store.set_meta(&[
            (META_DISTRICT, district.as_str()),
            (META_VILLAGES, &villages_text),
            (META_DEVICE, &device.to_string()),
            (META_ACTOR, &actor.to_hex_string()),
        ])?;
        Self::open(store, blind_key)
    }

    /// Opens a phone that was set up before.
    pub fn open(store: S, blind_key: BlindIndexKey) -> Result<Self> {
        let corrupt = |path: &str| Error::Schema {
            doc: DocId::from(crate::ids::ClassId::from(uuid::Uuid::nil())),
            path: format!("meta.{path}"),
        };
        let Some(device) = store.meta(META_DEVICE)? else {
            return Err(Error::NotInitialised);
        };
        let device = device.parse().map_err(|_| corrupt(META_DEVICE))?;
        let district = store
            .meta(META_DISTRICT)?
            .and_then(|d| DistrictCode::parse(&d))
            .ok_or_else(|| corrupt(META_DISTRICT))?;
        let villages = store
            .meta(META_VILLAGES)?
            .ok_or_else(|| corrupt(META_VILLAGES))?
            .split(',')
            .map(|v| VillageCode::parse(v).ok_or_else(|| corrupt(META_VILLAGES)))
            .collect::<Result<_>>()?;
        let actor = store
            .meta(META_ACTOR)?
            .and_then(|a| hex::decode(a).ok())
            .map(ActorId::from)
            .ok_or_else(|| corrupt(META_ACTOR))?;
        let policy = stored_policy(&store)?.unwrap_or_default();
        Ok(Self {
            store,
            profile: Profile {
                district,
                villages,
                device,
                actor,
            },
            blind_key,
            clock: Arc::new(SystemClock),
            policy,
            cache: DocCache::new(32),
            pending_sync: None,
        })
    }

    /// Replaces the clock (tests, scripted demos).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the policy table.
    pub fn with_policy(mut self, policy: PolicyTable) -> Self {
        self.policy = policy;
        self
    }

    /// Who this phone is.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Sets the villages the phone covers (the store was updated by the caller).
    pub(crate) fn set_villages(&mut self, villages: BTreeSet<VillageCode>) {
        self.profile.villages = villages;
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The policy values in use.
    pub fn policy(&self) -> &PolicyTable {
        &self.policy
    }

    /// Gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// The blind index of an ID number under this phone's key.
    pub(crate) fn blind_index_of(&self, id: &crate::validate::IdNumber) -> Vec<u8> {
        self.blind_key.index(id).to_vec()
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Server time minus this phone's clock: the server time seen at the last sync, carried forward
    /// on the time since boot. `None` when the phone restarted since, or never synced.
    pub fn clock_offset_ms(&self) -> Result<Option<i64>> {
        let seen = server_time_seen(&self.store)?;
        let (Some((server_ms, at)), Some(now)) = (seen, self.clock.uptime()) else {
            return Ok(None);
        };
        Ok(now
            .since(&at)
            .map(|elapsed| server_ms.saturating_add(elapsed) - self.now_ms()))
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(crate) fn today(&self) -> chrono::NaiveDate {
        self.clock.today()
    }

    /// Checks that a village code is well formed and one of this phone's villages.
    pub(crate) fn village_in_scope(&self, raw: &str) -> Result<VillageCode> {
        let v = VillageCode::parse(raw).ok_or(Invalid::new(Field::Village, Problem::BadFormat))?;
        if !self.profile.villages.contains(&v) {
            return Err(Invalid::new(Field::Village, Problem::NotInScope).into());
        }
        Ok(v)
    }

    /// The document, loaded from the cache or the store.
    pub(crate) fn doc(&mut self, id: DocId) -> Result<Option<&mut Automerge>> {
        if !self.cache.contains(id) {
            let Some(stored) = self.store.load(id)? else {
                return Ok(None);
            };
            let mut d = contained(|| -> Result<Automerge> {
                let mut d = match &stored.snapshot {
                    Some(s) => Automerge::load(s)?,
                    None => Automerge::new(),
                };
                for chunk in &stored.chunks {
                    d.load_incremental(chunk)?;
                }
                Ok(d)
            })??;
            d.set_actor(self.profile.actor.clone());
            self.cache.insert(id, d, stored.chunks.len());
        }
        Ok(self.cache.get_mut(id))
    }

    /// Reads a document's index rows and conflicts from its current state. `full` also checks
    /// every attendance fact against the schema (needed for documents from elsewhere; this phone's
    /// own writes are well-formed by construction).
    pub(crate) fn project(
        &self,
        id: DocId,
        d: &Automerge,
        full: bool,
    ) -> Result<(IndexRow, Vec<Conflict>)> {
        let header = doc::read_header(d, id)?;
        Ok(match header.kind {
            DocKind::Class => {
                let class_id = header.id.uuid().into();
                let (c, conflicts) = if full {
                    doc::class::read(d, class_id)?
                } else {
                    doc::class::read_plan(d, class_id)?
                };
                let row = ClassRow {
                    id: c.id,
                    village: c.village,
                    title: c.title,
                    status: c.status,
                    occupation: c.occupation,
                    level: c.level,
                    training_type: c.training_type,
                    subsidised: c.subsidised,
                    first_day: c.first_day,
                    last_day: c.last_day,
                    enrolled: c.roster.keys().copied().collect(),
                };
                (IndexRow::Class(row), conflicts)
            }
            DocKind::Trainee => {
                let (t, conflicts) = doc::trainee::read(d, header.id.uuid().into())?;
                let row = TraineeRow {
                    id: t.id,
                    village: t.village,
                    blind_index: self.blind_key.index(&t.id_number).to_vec(),
                    name_masked: t.name.masked(),
                    household: t.household,
                };
                (IndexRow::Trainee(row), conflicts)
            }
            DocKind::Household => {
                let (h, conflicts) = doc::household::read(d, header.id.uuid().into())?;
                let row = HouseholdRow {
                    id: h.id,
                    village: h.village,
                    poverty_status: h.poverty_status,
                };
                (IndexRow::Household(row), conflicts)
            }
        })
    }

    /// Applies `f` to a document in one automerge transaction and returns the chunk it produced,
    /// or `None` when `f` changed nothing. The document must exist (or be new in the cache).
    pub(crate) fn change<T>(
        &mut self,
        id: DocId,
        f: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<T>,
    ) -> Result<(T, Option<Vec<u8>>)> {
        let d = self
            .doc(id)?
            .ok_or(Invalid::new(Field::Class, Problem::NotFound))?;
        let before = d.get_heads();
        let mut tx = d.transaction();
        match f(&mut tx) {
            Ok(out) => {
                let (hash, _) = tx.commit();
                let chunk = hash.map(|_| d.save_after(&before));
                Ok((out, chunk))
            }
            Err(e) => {
                tx.rollback();
                Err(e)
            }
        }
    }

    /// Creates a new document in the cache by running `f` on it; returns its first chunk.
    pub(crate) fn create(
        &mut self,
        id: DocId,
        f: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<()>,
    ) -> Result<Vec<u8>> {
        let mut d = Automerge::new().with_actor(self.profile.actor.clone());
        let mut tx = d.transaction();
        f(&mut tx)?;
        tx.commit();
        let chunk = d.save_after(&[]);
        // Counted as zero chunks: the first write appends it.
        self.cache.insert(id, d, 0);
        Ok(chunk)
    }

    /// Writes the chunks of the given documents with their fresh index rows, atomically. On
    /// failure the documents are dropped from the cache so that memory matches the store.
    pub(crate) fn commit(
        &mut self,
        changes: Vec<(DocId, Option<Vec<u8>>)>,
        local: bool,
    ) -> Result<()> {
        let result = self.commit_inner(&changes, local);
        if result.is_err() {
            for (id, _) in &changes {
                self.cache.remove(*id);
            }
        }
        result
    }

    fn commit_inner(&mut self, changes: &[(DocId, Option<Vec<u8>>)], local: bool) -> Result<()> {
        let mut writes = Vec::with_capacity(changes.len());
        for (id, chunk) in changes {
            let (d, _) = self
                .cache
                .get_with_chunks(*id)
                .ok_or(Invalid::new(Field::Class, Problem::NotFound))?;
            let (index, conflicts) = self.project(*id, d, !local)?;
            writes.push(DocWrite {
                id: *id,
                chunk: chunk.clone(),
                index,
                conflicts,
                local,
            });
        }
        self.store.write(&writes)?;
        for (id, chunk) in changes {
            if chunk.is_some() {
                self.cache.note_chunk(*id);
            }
            self.compact_if_due(*id);
        }
        Ok(())
    }

    fn compact_if_due(&mut self, id: DocId) {
        let Some((d, chunks)) = self.cache.get_with_chunks(id) else {
            return;
        };
        if chunks < COMPACT_AFTER_CHUNKS {
            return;
        }
        let snapshot = d.save();
        match self.store.compact(id, &snapshot, chunks) {
            Ok(()) => self.cache.reset_chunks(id),
            // The chunks are still there and still load; compaction is retried on a later write.
            Err(e) => tracing::warn!(doc = %id, error = %e, "compaction failed"),
        }
    }

    /// Compacts every document into one snapshot each.
    pub fn compact_all(&mut self) -> Result<usize> {
        let ids: Vec<DocId> = self
            .store
            .documents()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut n = 0;
        for id in ids {
            let Some(stored) = self.store.load(id)? else {
                continue;
            };
            if stored.chunks.is_empty() {
                continue;
            }
            let Some(d) = self.doc(id)? else { continue };
            let snapshot = d.save();
            self.store.compact(id, &snapshot, stored.chunks.len())?;
            self.cache.reset_chunks(id);
            n += 1;
        }
        Ok(n)
    }

    /// The whole document as automerge bytes, to hand to another replica.
    pub fn document_bytes(&mut self, id: DocId) -> Result<Option<Vec<u8>>> {
        Ok(self.doc(id)?.map(|d| d.save()))
    }

    /// The document's current heads.
    pub fn heads(&mut self, id: DocId) -> Result<Option<Vec<ChangeHash>>> {
        Ok(self.doc(id)?.map(|d| d.get_heads()))
    }

    /// Merges a document (full save or changes) received from another replica. The result must
    /// follow the schema and lie in this phone's villages, or nothing is written.
    pub fn merge_document(&mut self, id: DocId, bytes: &[u8]) -> Result<Merged> {
        let (kind, chunk) = self.merge_into_cache(id, Incoming::Document(bytes))?;
        let changed = chunk.is_some();
        if changed {
            self.commit(vec![(id, chunk)], false)?;
        }
        let heads = self.doc(id)?.map(|d| d.get_heads()).unwrap_or_default();
        Ok(Merged {
            id,
            kind,
            changed,
            heads,
        })
    }

    /// Merges incoming content into the cached document (creating it if new) and checks the result
    /// against the schema and this phone's scope. Returns the document's kind and the chunk of
    /// what was new, or `None` when nothing was. On any error the cached copy is dropped, so memory
    /// again matches the store; the caller commits.
    pub(crate) fn merge_into_cache(
        &mut self,
        id: DocId,
        incoming: Incoming<'_>,
    ) -> Result<(DocKind, Option<Vec<u8>>)> {
        // automerge can panic on crafted input, in loading it or later in saving what it loaded:
        // the whole merge is contained, and on a panic the half-merged copy goes with the cache.
        let result = contained(|| self.merge_into_cache_inner(id, incoming))
            .unwrap_or_else(|p| Err(p.into()));
        if result.is_err() {
            self.cache.remove(id);
        }
        result
    }

    fn merge_into_cache_inner(
        &mut self,
        id: DocId,
        incoming: Incoming<'_>,
    ) -> Result<(DocKind, Option<Vec<u8>>)> {
        let empty = Error::Schema {
            doc: id,
            path: String::new(),
        };
        // Change chunks (any chunk but a whole document's) are parsed and screened like pushed
        // changes before automerge applies them.
        let incoming = match incoming {
            Incoming::Document(b) if b.get(8).is_some_and(|t| *t != 0) => Incoming::Changes(
                crate::changes::parse_changes(b, crate::changes::ChangeCaps::NONE)
                    .map_err(|_| Error::Schema {
                        doc: id,
                        path: String::new(),
                    })?
                    .changes,
            ),
            other => other,
        };
        let chunk = match (incoming, self.doc(id)?) {
            (Incoming::Document([]), _) => return Err(empty),
            (Incoming::Document(b), Some(d)) => {
                let before = d.get_heads();
                // `merge` returns the heads after the merge, not the changes it added: compare
                // heads to learn whether anything arrived.
                let mut other = Automerge::load(b)?;
                d.merge(&mut other)?;
                (d.get_heads() != before).then(|| d.save_after(&before))
            }
            (Incoming::Changes(changes), Some(d)) => {
                // Changes apply to the document they extend; any whose dependencies are missing
                // are held back by automerge and do not show in the heads.
                let before = d.get_heads();
                d.apply_changes(changes)?;
                (d.get_heads() != before).then(|| d.save_after(&before))
            }
            (incoming, None) => {
                let mut d = match incoming {
                    Incoming::Document(b) => Automerge::load(b)?,
                    Incoming::Changes(changes) => {
                        let mut d = Automerge::new();
                        d.apply_changes(changes)?;
                        d
                    }
                };
                if d.get_heads().is_empty() {
                    return Err(empty);
                }
                d.set_actor(self.profile.actor.clone());
                let chunk = d.save_after(&[]);
                self.cache.insert(id, d, 0);
                Some(chunk)
            }
        };
        let d = self.doc(id)?.ok_or(empty)?;
        let header = doc::read_header(d, id)?;
        if header.district != self.profile.district
            || !self.profile.villages.contains(&header.village)
        {
            return Err(Invalid::new(Field::Village, Problem::NotInScope).into());
        }
        Ok((header.kind, chunk))
    }
}

/// What a prepared request pushed, kept until its response arrives.
#[derive(Clone, Debug)]
pub(crate) struct PendingSync {
    pub(crate) request_id: [u8; 16],
    /// Documents pushed, in order, with the heads pushed.
    pub(crate) pushed: Vec<(DocId, Vec<ChangeHash>)>,
    /// Dirty documents left for a later round.
    pub(crate) left_behind: usize,
    /// Documents holding other phones' changes the server may lack: a missing base for these is
    /// not pushed again in this sync.
    pub(crate) waiting: std::collections::BTreeSet<DocId>,
}

/// Where the phone keeps the server time seen at its last sync.
pub(crate) const META_SERVER_TIME: &str = "sync.server_time_ms";
/// The time since boot when the server time above was received.
pub(crate) const META_SERVER_UPTIME: &str = "sync.server_uptime";

/// The server time seen at the last sync, and the time since boot when it was received.
pub(crate) fn server_time_seen<S: DocStore>(
    store: &S,
) -> Result<Option<(i64, crate::clock::Uptime)>> {
    let ms = store
        .meta(META_SERVER_TIME)?
        .and_then(|m| m.parse::<i64>().ok());
    let up = store
        .meta(META_SERVER_UPTIME)?
        .and_then(|u| crate::clock::Uptime::decode(&u));
    Ok(ms.zip(up))
}

/// Where the phone keeps the district's policy table, as the last sync brought it.
pub(crate) const META_POLICY: &str = "district.policy";

/// The district's policy table kept in `store`, if a sync brought one.
fn stored_policy<S: DocStore>(store: &S) -> Result<Option<PolicyTable>> {
    match store.meta(META_POLICY)? {
        None => Ok(None),
        Some(j) => serde_json::from_str::<PolicyTable>(&j)
            .map(Some)
            .map_err(|_| Error::Schema {
                doc: crate::ids::DocId::from(crate::ids::ClassId::from(uuid::Uuid::nil())),
                path: format!("meta.{META_POLICY}"),
            }),
    }
}
