//! A real in-memory store: the same semantics as the SQLite store, without durability. For tests,
//! tools and the server's short-lived merges.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Acked, ClassFilter, ClassRow, DocStore, DocWrite, HouseholdRow, IndexRow, StoredDoc, SyncMark,
    TraineeRow,
};
use crate::doc::{Conflict, DocKind};
use crate::error::Result;
use crate::ids::{ClassId, DocId, HouseholdId, TraineeId, VillageCode};

#[derive(Clone, Debug, Default)]
struct Entry {
    kind: Option<DocKind>,
    doc: StoredDoc,
    index: Option<IndexRow>,
    conflicts: Vec<Conflict>,
    mark: SyncMark,
}

/// The in-memory store.
#[derive(Clone, Debug, Default)]
pub struct MemoryDocStore {
    meta: BTreeMap<String, String>,
    docs: BTreeMap<DocId, Entry>,
}

impl MemoryDocStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn class_rows(&self) -> impl Iterator<Item = &ClassRow> {
        self.docs.values().filter_map(|e| match &e.index {
            Some(IndexRow::Class(c)) => Some(c),
            _ => None,
        })
    }
}

impl DocStore for MemoryDocStore {
    fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self.meta.get(key).cloned())
    }

    fn set_meta(&mut self, entries: &[(&str, &str)]) -> Result<()> {
        for (k, v) in entries {
            self.meta.insert((*k).to_owned(), (*v).to_owned());
        }
        Ok(())
    }

    fn load(&self, id: DocId) -> Result<Option<StoredDoc>> {
        Ok(self.docs.get(&id).map(|e| e.doc.clone()))
    }

    fn write(&mut self, writes: &[DocWrite]) -> Result<()> {
        for w in writes {
            let e = self.docs.entry(w.id).or_default();
            e.kind.get_or_insert(w.index.kind());
            if let Some(chunk) = &w.chunk {
                e.doc.chunks.push(chunk.clone());
            }
            e.index = Some(w.index.clone());
            e.conflicts = w.conflicts.clone();
            e.mark.dirty |= w.local;
        }
        Ok(())
    }

    fn apply_sync(
        &mut self,
        writes: &[DocWrite],
        acks: &[Acked],
        meta: &[(String, String)],
    ) -> Result<()> {
        self.write(writes)?;
        for a in acks {
            self.set_acked_heads(a.id, &a.acked, &a.current)?;
        }
        for (k, v) in meta {
            self.meta.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    fn compact(&mut self, id: DocId, snapshot: &[u8], chunks_replaced: usize) -> Result<()> {
        if let Some(e) = self.docs.get_mut(&id) {
            e.doc.snapshot = Some(snapshot.to_vec());
            let n = chunks_replaced.min(e.doc.chunks.len());
            e.doc.chunks.drain(..n);
        }
        Ok(())
    }

    fn documents(&self) -> Result<Vec<(DocId, DocKind)>> {
        Ok(self
            .docs
            .iter()
            .filter_map(|(id, e)| e.kind.map(|k| (*id, k)))
            .collect())
    }

    fn classes(&self, filter: &ClassFilter) -> Result<Vec<ClassRow>> {
        let mut rows: Vec<ClassRow> = self
            .class_rows()
            .filter(|c| filter.village.as_ref().is_none_or(|v| &c.village == v))
            .filter(|c| filter.statuses.is_empty() || filter.statuses.contains(&c.status))
            .cloned()
            .collect();
        rows.sort_by(|a, b| {
            b.first_day
                .cmp(&a.first_day)
                .then(a.id.to_string().cmp(&b.id.to_string()))
        });
        for r in &mut rows {
            r.enrolled.sort_by_key(|t| t.to_string());
        }
        Ok(rows)
    }

    fn class_row(&self, id: ClassId) -> Result<Option<ClassRow>> {
        Ok(
            match self
                .docs
                .get(&DocId::from(id))
                .and_then(|e| e.index.as_ref())
            {
                Some(IndexRow::Class(c)) => {
                    let mut c = c.clone();
                    c.enrolled.sort_by_key(|t| t.to_string());
                    Some(c)
                }
                _ => None,
            },
        )
    }

    fn trainee_rows(&self, ids: &[TraineeId]) -> Result<Vec<TraineeRow>> {
        Ok(ids
            .iter()
            .filter_map(|id| {
                match self
                    .docs
                    .get(&DocId::from(*id))
                    .and_then(|e| e.index.as_ref())
                {
                    Some(IndexRow::Trainee(t)) => Some(t.clone()),
                    _ => None,
                }
            })
            .collect())
    }

    fn trainee_by_blind_index(&self, blind_index: &[u8]) -> Result<Option<TraineeId>> {
        Ok(self
            .docs
            .values()
            .filter_map(|e| match &e.index {
                Some(IndexRow::Trainee(t)) if t.blind_index == blind_index => Some(t.id),
                _ => None,
            })
            .min_by_key(|id| id.to_string()))
    }

    fn household_row(&self, id: HouseholdId) -> Result<Option<HouseholdRow>> {
        Ok(
            match self
                .docs
                .get(&DocId::from(id))
                .and_then(|e| e.index.as_ref())
            {
                Some(IndexRow::Household(h)) => Some(h.clone()),
                _ => None,
            },
        )
    }

    fn classes_of_trainee(&self, trainee: TraineeId) -> Result<Vec<ClassRow>> {
        let mut rows: Vec<ClassRow> = self
            .class_rows()
            .filter(|c| c.enrolled.contains(&trainee))
            .cloned()
            .collect();
        rows.sort_by(|a, b| {
            a.first_day
                .cmp(&b.first_day)
                .then(a.id.to_string().cmp(&b.id.to_string()))
        });
        for r in &mut rows {
            r.enrolled.sort_by_key(|t| t.to_string());
        }
        Ok(rows)
    }

    fn conflicts(&self) -> Result<Vec<Conflict>> {
        let mut out: Vec<Conflict> = self
            .docs
            .values()
            .flat_map(|e| e.conflicts.clone())
            .collect();
        out.sort_by(|a, b| (a.doc.to_string(), &a.path).cmp(&(b.doc.to_string(), &b.path)));
        Ok(out)
    }

    fn sync_mark(&self, id: DocId) -> Result<SyncMark> {
        Ok(self
            .docs
            .get(&id)
            .map(|e| e.mark.clone())
            .unwrap_or_default())
    }

    fn set_acked_heads(
        &mut self,
        id: DocId,
        acked: &[automerge::ChangeHash],
        current: &[automerge::ChangeHash],
    ) -> Result<()> {
        let a: BTreeSet<_> = acked.iter().collect();
        let c: BTreeSet<_> = current.iter().collect();
        // Only stored documents have marks (the SQLite store refuses the others by foreign key);
        // an entry made here would turn up as an empty document in `load`.
        let Some(e) = self.docs.get_mut(&id) else {
            return Ok(());
        };
        let mut sorted = acked.to_vec();
        sorted.sort();
        e.mark = SyncMark {
            acked_heads: sorted,
            dirty: a != c,
        };
        Ok(())
    }

    fn dirty_documents(&self) -> Result<Vec<DocId>> {
        let mut ids: Vec<DocId> = self
            .docs
            .iter()
            .filter(|(_, e)| e.mark.dirty)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_by_key(|id| id.to_string());
        Ok(ids)
    }

    fn erase_documents(&mut self, ids: &[DocId]) -> Result<()> {
        for id in ids {
            self.docs.remove(id);
        }
        Ok(())
    }

    fn drop_villages(
        &mut self,
        villages: &[VillageCode],
        meta: &[(String, String)],
    ) -> Result<Vec<DocId>> {
        let mut ids: Vec<DocId> = self
            .docs
            .iter()
            .filter(|(_, e)| {
                !e.mark.dirty
                    && e.index
                        .as_ref()
                        .is_some_and(|i| villages.contains(i.village()))
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort_by_key(|id| id.to_string());
        for id in &ids {
            self.docs.remove(id);
        }
        for (k, v) in meta {
            self.meta.insert(k.clone(), v.clone());
        }
        Ok(ids)
    }
}
