//! A small least-recently-used cache of loaded documents, so that a day of sign-ins does not reload
//! the class document for every record.

use std::collections::HashMap;

use automerge::Automerge;

use crate::ids::DocId;

#[derive(Debug)]
struct Entry {
    doc: Automerge,
    /// Chunks in the store since the last snapshot.
    chunks: usize,
    used: u64,
}

/// Loaded documents, at most `cap` of them.
#[derive(Debug)]
pub(crate) struct DocCache {
    map: HashMap<DocId, Entry>,
    tick: u64,
    cap: usize,
}

impl DocCache {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            tick: 0,
            cap: cap.max(1),
        }
    }

    pub(crate) fn contains(&self, id: DocId) -> bool {
        self.map.contains_key(&id)
    }

    pub(crate) fn insert(&mut self, id: DocId, doc: Automerge, chunks: usize) {
        if self.map.len() >= self.cap
            && !self.map.contains_key(&id)
            && let Some(oldest) = self.map.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| *k)
        {
            self.map.remove(&oldest);
        }
        self.tick += 1;
        self.map.insert(
            id,
            Entry {
                doc,
                chunks,
                used: self.tick,
            },
        );
    }

    pub(crate) fn get_mut(&mut self, id: DocId) -> Option<&mut Automerge> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(&id).map(|e| {
            e.used = tick;
            &mut e.doc
        })
    }

    pub(crate) fn get_with_chunks(&self, id: DocId) -> Option<(&Automerge, usize)> {
        self.map.get(&id).map(|e| (&e.doc, e.chunks))
    }

    pub(crate) fn note_chunk(&mut self, id: DocId) {
        if let Some(e) = self.map.get_mut(&id) {
            e.chunks += 1;
        }
    }

    pub(crate) fn reset_chunks(&mut self, id: DocId) {
        if let Some(e) = self.map.get_mut(&id) {
            e.chunks = 0;
        }
    }

    pub(crate) fn remove(&mut self, id: DocId) {
        self.map.remove(&id);
    }
}
