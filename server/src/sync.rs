//! `POST /v1/sync`: merge what the phone pushed, then send what is new in its villages.
//!
//! Everything a request pushes is merged and checked in memory first; only when every document
//! passes (schema, scope, caps) are the chunks, feed entries, projections and the request record
//! written, in one transaction. The response is built after that commit.

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::{Automerge, ChangeHash, ReadDoc};
use sha2::{Digest, Sha256};
use songpei_core::doc;
use songpei_core::ids::{ClassId, DistrictCode, DocId, VillageCode};
use songpei_core::sync::changes::{ChangeCaps, parse_changes};
use songpei_core::sync::protocol::{
    Ack, AckOutcome, Cursor, DocUpdate, PROTOCOL_VERSION, Payload, SyncRequest, SyncResponse,
    decode, encode, from_wire, to_wire,
};

use crate::AppState;
use crate::error::ApiError;
use crate::projection;
use crate::store::{DocCommit, LoadedDoc, RequestRecord, ServerStore};

/// Most villages one phone may follow.
const MAX_CURSORS: usize = 200;
/// Feed entries read per village per request; beyond, the response says `more`.
const FEED_PAGE: usize = 5_000;

fn doc_id(u: uuid::Uuid) -> DocId {
    DocId::from(ClassId::from(u))
}

fn sorted(mut h: Vec<ChangeHash>) -> Vec<ChangeHash> {
    h.sort();
    h
}

/// Handles one sync request body; returns the response body.
pub(crate) fn handle(state: &AppState, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let limits = &state.config.limits;
    let req: SyncRequest = decode(body, limits.max_decompressed_bytes)?;
    let district = DistrictCode::parse(&req.district)
        .ok_or_else(|| ApiError::BadRequest("district is not a six-digit code".into()))?;
    if req.cursors.len() > MAX_CURSORS {
        return Err(ApiError::TooMuch(format!(
            "more than {MAX_CURSORS} villages"
        )));
    }
    let mut villages = BTreeSet::new();
    for c in &req.cursors {
        let v = VillageCode::parse(&c.village).ok_or_else(|| {
            ApiError::BadRequest("a cursor's village is not a village code".into())
        })?;
        if v.district() != district {
            return Err(ApiError::OutOfScope(
                "a village outside the district".into(),
            ));
        }
        if !villages.insert(v.to_string()) {
            return Err(ApiError::BadRequest("a village appears twice".into()));
        }
    }
    if req.pushes.len() > limits.max_docs_per_request {
        return Err(ApiError::TooMuch(format!(
            "more than {} documents in one request",
            limits.max_docs_per_request
        )));
    }
    let body_hash: [u8; 32] = Sha256::digest(body).into();
    let device = req.device.to_string();

    let mut store = state.store.lock().map_err(|_| ApiError::Internal)?;
    let acks = match store.request(&device, &req.request_id)? {
        Some((hash, _)) if hash != body_hash => return Err(ApiError::RequestIdReused),
        Some((_, acks)) => decode_acks(&acks)?,
        None => merge_pushes(state, &mut store, &req, &villages, body_hash)?,
    };
    let merged: HashMap<DocId, Vec<ChangeHash>> = req
        .pushes
        .iter()
        .zip(&acks)
        .filter(|(_, a)| a.outcome == AckOutcome::Merged)
        .map(|(p, _)| (doc_id(p.doc), from_wire(&p.heads)))
        .collect();
    let budget = req.max_response_bytes.min(limits.max_response_bytes) as usize;
    let (docs, cursors, more) = pull(&mut store, &req.cursors, &merged, budget)?;
    drop(store);
    Ok(encode(&SyncResponse {
        version: PROTOCOL_VERSION,
        request_id: req.request_id,
        server_time_ms: chrono::Utc::now().timestamp_millis(),
        acks,
        docs,
        cursors,
        more,
    }))
}

fn decode_acks(bytes: &[u8]) -> Result<Vec<Ack>, ApiError> {
    postcard::from_bytes(bytes).map_err(|_| ApiError::Internal)
}

fn merge_pushes(
    state: &AppState,
    store: &mut ServerStore,
    req: &SyncRequest,
    villages: &BTreeSet<String>,
    body_hash: [u8; 32],
) -> Result<Vec<Ack>, ApiError> {
    let mut touched = Vec::new();
    let result = merge_in_memory(state, store, req, villages, &mut touched);
    let (commits, acks) = match result {
        Ok(r) => r,
        Err(e) => {
            for id in touched {
                store.evict(id);
            }
            return Err(e);
        }
    };
    if req.pushes.is_empty() {
        return Ok(acks);
    }
    let record = RequestRecord {
        device: req.device.to_string(),
        request_id: req.request_id,
        body_hash,
        acks: postcard::to_stdvec(&acks).map_err(|_| ApiError::Internal)?,
    };
    if let Err(e) = store.commit(&commits, &record, chrono::Utc::now().timestamp_millis()) {
        for id in touched {
            store.evict(id);
        }
        return Err(e.into());
    }
    Ok(acks)
}

fn merge_in_memory(
    state: &AppState,
    store: &mut ServerStore,
    req: &SyncRequest,
    villages: &BTreeSet<String>,
    touched: &mut Vec<DocId>,
) -> Result<(Vec<DocCommit>, Vec<Ack>), ApiError> {
    let limits = &state.config.limits;
    let mut commits = Vec::new();
    let mut acks = Vec::new();
    let mut changes_left = limits.max_changes_per_request;
    let mut ops_left = limits.max_ops_per_request;
    let mut seen = HashSet::new();
    for push in &req.pushes {
        let id = doc_id(push.doc);
        if !seen.insert(id) {
            return Err(ApiError::BadRequest(format!(
                "document {id} is pushed twice"
            )));
        }
        if push.changes.len() > limits.max_push_bytes {
            return Err(ApiError::DocumentTooLarge(format!(
                "document {id} pushes more than {} bytes of changes",
                limits.max_push_bytes
            )));
        }
        let parsed = parse_changes(
            &push.changes,
            ChangeCaps {
                max_changes: changes_left,
                max_ops: ops_left,
            },
        )
        .map_err(|err| ApiError::Changes {
            doc: id.to_string(),
            err,
        })?;
        changes_left -= parsed.changes.len();
        ops_left -= parsed.ops;

        // The document as the server has it (or a new, empty one).
        let existing = store.doc(id)?.is_some();
        if existing {
            let loaded = store.doc(id)?.ok_or(ApiError::Internal)?;
            if loaded.district != req.district || !villages.contains(&loaded.village) {
                return Err(ApiError::OutOfScope(format!(
                    "document {id} belongs to a village outside this phone's"
                )));
            }
        }
        let server_heads = match store.doc(id)? {
            Some(l) => l.doc.get_heads(),
            None => Vec::new(),
        };
        // Every dependency must be on the server or in this push: otherwise the server lacks the
        // base (it was restored from an older backup) and applies nothing of this document.
        let batch: HashSet<ChangeHash> = parsed.hashes().into_iter().collect();
        let missing_base = {
            let known = |h: &ChangeHash| match store.cache_peek(id) {
                Some(l) => l.doc.get_change_by_hash(h).is_some(),
                None => false,
            };
            parsed
                .changes
                .iter()
                .flat_map(|c| c.deps().to_vec())
                .any(|d| !batch.contains(&d) && !known(&d))
                || from_wire(&push.heads)
                    .iter()
                    .any(|h| !batch.contains(h) && !known(h))
        };
        if missing_base {
            acks.push(Ack {
                doc: push.doc,
                outcome: AckOutcome::MissingBase,
                server_heads: to_wire(&server_heads),
            });
            continue;
        }
        if !existing {
            if parsed.changes.is_empty() {
                return Err(ApiError::Schema(format!("document {id} is empty")));
            }
            store.insert_new(
                id,
                LoadedDoc {
                    doc: Automerge::new(),
                    kind: songpei_core::doc::DocKind::Class,
                    district: String::new(),
                    village: String::new(),
                    ops: 0,
                    chunk_count: 0,
                },
            );
        }
        touched.push(id);
        let loaded = store.doc(id)?.ok_or(ApiError::Internal)?;
        let before = loaded.doc.get_heads();
        loaded
            .doc
            .apply_changes(parsed.changes)
            .map_err(|_| ApiError::Changes {
                doc: id.to_string(),
                err: songpei_core::sync::changes::ChangesError::Malformed,
            })?;
        let heads = loaded.doc.get_heads();
        if heads == before {
            acks.push(Ack {
                doc: push.doc,
                outcome: AckOutcome::Merged,
                server_heads: to_wire(&heads),
            });
            continue;
        }
        let header =
            doc::read_header(&loaded.doc, id).map_err(|e| ApiError::Schema(e.to_string()))?;
        if header.district.as_str() != req.district || !villages.contains(header.village.as_str()) {
            return Err(ApiError::OutOfScope(format!(
                "document {id} belongs to a village outside this phone's"
            )));
        }
        let ops = loaded.ops + parsed.ops;
        if ops > limits.max_ops_per_doc {
            return Err(ApiError::TooMuch(format!(
                "document {id} would exceed {} operations",
                limits.max_ops_per_doc
            )));
        }
        let projection = projection::project(&loaded.doc, &header, &state.blind_key)?;
        loaded.kind = header.kind;
        loaded.district = header.district.to_string();
        loaded.village = header.village.to_string();
        commits.push(DocCommit {
            id,
            kind: header.kind,
            district: header.district.to_string(),
            village: header.village.to_string(),
            chunk: loaded.doc.save_after(&before),
            heads: heads.clone(),
            ops,
            projection,
        });
        acks.push(Ack {
            doc: push.doc,
            outcome: AckOutcome::Merged,
            server_heads: to_wire(&heads),
        });
    }
    Ok((commits, acks))
}

/// Documents new to the phone since its cursors, within `budget` bytes.
fn pull(
    store: &mut ServerStore,
    cursors: &[Cursor],
    merged: &HashMap<DocId, Vec<ChangeHash>>,
    budget: usize,
) -> Result<(Vec<DocUpdate>, Vec<Cursor>, bool), ApiError> {
    let mut used = 0usize;
    let mut docs = Vec::new();
    let mut out = Vec::with_capacity(cursors.len());
    let mut more = false;
    for c in cursors {
        let head = store.feed_head(&c.village)?;
        // A cursor past the feed's end means the server was restored from an older backup:
        // start that village again from the beginning.
        let from = if c.seq > head { 0 } else { c.seq };
        if more {
            out.push(Cursor {
                village: c.village.clone(),
                seq: from,
            });
            continue;
        }
        let entries = store.feed_since(&c.village, from, FEED_PAGE)?;
        let mut seq = from;
        let mut stopped = false;
        for (id, last) in &entries {
            if used >= budget && !docs.is_empty() {
                stopped = true;
                break;
            }
            let base = match merged.get(id) {
                Some(h) => h.clone(),
                None => store.heads_at(&c.village, *id, from)?,
            };
            let Some(loaded) = store.doc(*id)? else {
                seq = *last;
                continue;
            };
            let heads = loaded.doc.get_heads();
            let base: Vec<ChangeHash> = base
                .into_iter()
                .filter(|h| loaded.doc.get_change_by_hash(h).is_some())
                .collect();
            if sorted(base.clone()) != sorted(heads.clone()) {
                let payload = if base.is_empty() {
                    Payload::Snapshot(loaded.doc.save())
                } else {
                    Payload::Changes(loaded.doc.save_after(&base))
                };
                used += match &payload {
                    Payload::Snapshot(b) | Payload::Changes(b) => b.len(),
                };
                docs.push(DocUpdate {
                    doc: id.uuid(),
                    payload,
                    heads: to_wire(&heads),
                });
            }
            seq = *last;
        }
        if stopped || entries.len() == FEED_PAGE {
            more = true;
        }
        out.push(Cursor {
            village: c.village.clone(),
            seq,
        });
    }
    Ok((docs, out, more))
}
