//! `POST /v1/sync`: merge what the phone pushed, then send what is new in its villages.
//!
//! Everything a request pushes is merged and checked in memory first; only when every document
//! passes (schema, scope, caps) are the chunks, feed entries, projections and the request record
//! written, in one transaction. The response is built after that commit.

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::{Automerge, ChangeHash, ReadDoc};
use sha2::{Digest, Sha256};
use songpei_core::doc::{self, DocKind, review};
use songpei_core::ids::{ClassId, DistrictCode, DocId, VillageCode};
use songpei_core::sync::changes::{ChangeCaps, pack, unpack};
use songpei_core::sync::protocol::{
    Ack, AckOutcome, ClassSettlement, Cursor, DocUpdate, PROTOCOL_VERSION, Payload, PolicySet,
    SyncRequest, SyncResponse, decode, encode, from_wire, to_wire,
};

use crate::AppState;
use crate::accounts::audit::{self, Entry};
use crate::accounts::{self, DeviceGrant};
use crate::error::ApiError;
use crate::store::projection;
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

/// Handles one sync request body from an authenticated device; returns the response body.
pub(crate) fn handle(
    state: &AppState,
    grant: &DeviceGrant,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let started = std::time::Instant::now();
    let limits = &state.config.limits;
    let req: SyncRequest = decode(body, limits.max_decompressed_bytes)?;
    if req.device.to_string() != grant.device {
        return Err(ApiError::BadRequest(
            "the request's device is not the token's".into(),
        ));
    }
    let district = DistrictCode::parse(&req.district)
        .ok_or_else(|| ApiError::BadRequest("district is not a six-digit code".into()))?;
    if district.as_str() != grant.district {
        return Err(ApiError::OutOfScope("another district".into()));
    }
    if req.cursors.len() > MAX_CURSORS {
        return Err(ApiError::TooMuch(format!(
            "more than {MAX_CURSORS} villages"
        )));
    }
    let mut asked = BTreeSet::new();
    for c in &req.cursors {
        if VillageCode::parse(&c.village).is_none() {
            return Err(ApiError::BadRequest(
                "a cursor's village is not a village code".into(),
            ));
        }
        if !asked.insert(c.village.clone()) {
            return Err(ApiError::BadRequest("a village appears twice".into()));
        }
    }
    // The device's villages come from the server's records only. Cursors of other villages are
    // answered as if those villages had nothing; villages the phone does not follow yet start
    // from the beginning, and the response tells the phone its scope.
    let villages = &grant.villages;
    let mut cursors: Vec<Cursor> = req
        .cursors
        .iter()
        .filter(|c| villages.contains(&c.village))
        .cloned()
        .collect();
    for v in villages {
        if !asked.contains(v) {
            cursors.push(Cursor {
                village: v.clone(),
                seq: 0,
                tag: 0,
            });
        }
    }
    let scope = (asked != *villages).then(|| villages.iter().cloned().collect());
    if req.pushes.len() > limits.max_docs_per_request {
        return Err(ApiError::TooMuch(format!(
            "more than {} documents in one request",
            limits.max_docs_per_request
        )));
    }
    let body_hash: [u8; 32] = Sha256::digest(body).into();
    let device = req.device.to_string();

    let mut store = state.lock_store()?;
    // An instructor's phone that synced before instructors were kept from personal data (or while
    // its account was a coordinator's) may hold trainee and household documents: each of them is
    // sent marked erased, so they leave the phone, until the phone shows it has the answer.
    let purge =
        grant.role == accounts::Role::Instructor && instructor_purge(store.conn(), &device, &req)?;
    let (acks, phone_heads, fresh) = match store.request(&device, &req.request_id)? {
        Some((hash, _)) if hash != body_hash => return Err(ApiError::RequestIdReused),
        Some((_, acks)) => (decode_acks(&acks)?, pushed_heads(&req), false),
        None => match merge_pushes(state, &mut store, grant, &req, &asked, body_hash) {
            Ok((acks, heads)) => (acks, heads, true),
            Err(e) => {
                refused(state, &store, grant, &e);
                return Err(e);
            }
        },
    };
    // What each merged push left the phone with: the base for what is new to it.
    let merged: HashMap<DocId, Vec<ChangeHash>> = req
        .pushes
        .iter()
        .zip(&acks)
        .filter(|(_, a)| a.outcome == AckOutcome::Merged)
        .filter_map(|(p, _)| {
            let id = doc_id(p.doc);
            phone_heads.get(&id).map(|h| (id, h.clone()))
        })
        .collect();
    let budget = req.max_response_bytes.min(limits.max_response_bytes) as usize;
    let PullPage {
        mut docs,
        settlements,
        cursors,
        more,
        personal,
    } = pull(
        &mut store,
        &cursors,
        &merged,
        budget,
        (grant.role == accounts::Role::Instructor).then_some(grant.account.as_str()),
    )?;
    if purge {
        docs.extend(
            personal_docs(store.conn(), villages)?
                .into_iter()
                .map(|id| DocUpdate {
                    doc: id,
                    payload: Payload::Erased,
                    heads: Vec::new(),
                }),
        );
        // The phone has the answer once a request with another id arrives (a lost answer is asked
        // for again under the same id).
        store.conn().execute(
            "UPDATE devices SET instructor_purge_request = ?2 WHERE id = ?1",
            crate::args![&device, &req.request_id[..]],
        )?;
    }
    let keys = crate::attendance::card_key_set(store.conn())?;
    let card_keys = (keys.version != req.card_keys).then_some(keys);
    let policy = (store.policy().version() != req.policy).then(|| PolicySet::of(store.policy()));
    let instructors = crate::accounts::instructors_of(store.conn(), villages)?;
    let instructors = (instructors.version != req.instructors).then_some(instructors);
    if !personal.is_empty() {
        // Phones receive trainees' and households' personal data in full: every such read is
        // audited.
        audit::append(
            store.conn(),
            chrono::Utc::now().timestamp_millis(),
            &[Entry::new(
                format!("device:{}", grant.device),
                "read_personal",
                grant.account.clone(),
                serde_json::json!({"docs": personal}),
            )],
        )?;
    }
    drop(store);
    // A retry's stored acks were counted when they were merged.
    let merged_docs = if fresh {
        acks.iter()
            .filter(|a| a.outcome == AckOutcome::Merged)
            .count()
    } else {
        0
    };
    let out = encode(&SyncResponse {
        version: PROTOCOL_VERSION,
        request_id: req.request_id,
        server_time_ms: chrono::Utc::now().timestamp_millis(),
        acks,
        docs,
        cursors,
        more,
        scope,
        card_keys,
        policy,
        instructors,
        settlements,
    });
    metrics::counter!("songpei_docs_merged_total").increment(merged_docs as u64);
    metrics::counter!("songpei_sync_bytes_in_total").increment(body.len() as u64);
    metrics::counter!("songpei_sync_bytes_out_total").increment(out.len() as u64);
    metrics::histogram!("songpei_sync_seconds").record(started.elapsed().as_secs_f64());
    Ok(out)
}

/// A pushed document of a village outside the device's. When the phone still follows that village
/// (its cursors say so), its villages were changed since it last synced: the document is not
/// merged, and the phone keeps it for recovery. Otherwise the device writes where it never
/// worked, and the whole request is refused. Both are audited and count as probes.
fn out_of_scope(
    state: &AppState,
    store: &ServerStore,
    grant: &DeviceGrant,
    asked: &BTreeSet<String>,
    village: &str,
    id: DocId,
) -> Result<(), ApiError> {
    let e = ApiError::OutOfScope(format!(
        "document {id} belongs to a village outside this phone's"
    ));
    if asked.contains(village) {
        refused(state, store, grant, &e);
        Ok(())
    } else {
        Err(e)
    }
}

/// Audits a refusal a district office should see (forged actors, other villages, roles), and
/// counts writes outside the device's villages against its rate.
fn refused(state: &AppState, store: &ServerStore, grant: &DeviceGrant, e: &ApiError) {
    let action = match e {
        ApiError::ForeignActor(_) => "refused_foreign_actor",
        ApiError::OutOfScope(_) => {
            state.rate.out_of_scope(&grant.device);
            "refused_out_of_scope"
        }
        ApiError::NotAllowed(_) => "refused_role",
        _ => return,
    };
    let entry = Entry::new(
        format!("device:{}", grant.device),
        action,
        grant.account.clone(),
        serde_json::json!({"code": e.code()}),
    );
    if let Err(err) = audit::append(
        store.conn(),
        chrono::Utc::now().timestamp_millis(),
        &[entry],
    ) {
        tracing::error!(error = %err, "could not audit a refusal");
    }
}

/// The phone's heads after each push of a request already applied (a retry): parsed again, as the
/// merge that parsed them the first time is not repeated.
fn pushed_heads(req: &SyncRequest) -> PhoneHeads {
    req.pushes
        .iter()
        .filter_map(|p| {
            let base = from_wire(&p.base);
            let parsed = unpack(&p.changes, &base, ChangeCaps::NONE).ok()?;
            Some((doc_id(p.doc), parsed.tips(&base)))
        })
        .collect()
}

/// The phone's heads per pushed document after its push.
type PhoneHeads = HashMap<DocId, Vec<ChangeHash>>;

/// Acks and the phone's heads per document.
type Merge = (Vec<Ack>, PhoneHeads);

fn decode_acks(bytes: &[u8]) -> Result<Vec<Ack>, ApiError> {
    postcard::from_bytes(bytes).map_err(|_| ApiError::Internal)
}

fn merge_pushes(
    state: &AppState,
    store: &mut ServerStore,
    grant: &DeviceGrant,
    req: &SyncRequest,
    asked: &BTreeSet<String>,
    body_hash: [u8; 32],
) -> Result<Merge, ApiError> {
    let mut touched = Vec::new();
    // automerge can panic on crafted changes, in applying them or later in reading or saving the
    // document: contained, the request is refused and every document it touched is evicted.
    let result = songpei_core::contain::contained(|| {
        merge_in_memory(state, store, grant, req, asked, &mut touched)
    })
    .unwrap_or_else(|_| {
        Err(ApiError::Changes {
            doc: touched.last().map(ToString::to_string).unwrap_or_default(),
            err: songpei_core::sync::changes::ChangesError::Malformed,
        })
    });
    let (commits, acks, phone_heads) = match result {
        Ok(r) => r,
        Err(e) => {
            for id in touched {
                store.evict(id);
            }
            return Err(e);
        }
    };
    if req.pushes.is_empty() {
        return Ok((acks, phone_heads));
    }
    let record = RequestRecord {
        device: req.device.to_string(),
        request_id: req.request_id,
        body_hash,
        acks: postcard::to_stdvec(&acks).map_err(|_| ApiError::Internal)?,
    };
    let audit: Vec<Entry> = commits
        .iter()
        .map(|c| {
            Entry::new(
                format!("device:{}", grant.device),
                "write",
                c.id.to_string(),
                serde_json::json!({"changes": c.hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>()}),
            )
        })
        .collect();
    if let Err(e) = store.commit(
        &commits,
        Some(&record),
        &audit,
        chrono::Utc::now().timestamp_millis(),
    ) {
        for id in touched {
            store.evict(id);
        }
        return Err(e.into());
    }
    Ok((acks, phone_heads))
}

fn merge_in_memory(
    state: &AppState,
    store: &mut ServerStore,
    grant: &DeviceGrant,
    req: &SyncRequest,
    asked: &BTreeSet<String>,
    touched: &mut Vec<DocId>,
) -> Result<(Vec<DocCommit>, Vec<Ack>, PhoneHeads), ApiError> {
    let limits = &state.config.limits;
    let mut commits = Vec::new();
    let mut acks = Vec::new();
    let mut phone_heads = HashMap::new();
    let mut changes_left = limits.max_changes_per_request;
    let mut ops_left = limits.max_ops_per_request;
    let mut seen = HashSet::new();
    let villages = &grant.villages;
    let mut actors: HashMap<Vec<u8>, bool> = HashMap::new();
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
        let base = from_wire(&push.base);
        let parsed = unpack(
            &push.changes,
            &base,
            ChangeCaps {
                max_changes: changes_left,
                max_ops: ops_left,
                max_bytes: limits.max_push_bytes,
            },
        )
        .map_err(|err| ApiError::Changes {
            doc: id.to_string(),
            err,
        })?;
        changes_left -= parsed.changes.len();
        ops_left -= parsed.ops;
        let tips = parsed.tips(&base);
        // Every change must be the sending device's own: its actors were bound at enrollment.
        for change in &parsed.changes {
            let actor = change.actor_id().to_bytes().to_vec();
            let own = match actors.get(&actor) {
                Some(own) => *own,
                None => {
                    let own = accounts::actor_of(store.conn(), &actor)?.as_deref()
                        == Some(grant.device.as_str());
                    actors.insert(actor, own);
                    own
                }
            };
            if !own {
                return Err(ApiError::ForeignActor(id.to_string()));
            }
        }

        // The document as the server has it (or a new, empty one), loaded once per request: a copy
        // another server changed meanwhile is reloaded here, not at every use below.
        let stored = store
            .doc(id)?
            .map(|l| (l.district.clone(), l.village.clone(), l.doc.get_heads()));
        let existing = stored.is_some();
        if !existing && store.is_erased(id)? {
            // Erased on the server: nothing of it comes back; the phone removes its copy.
            acks.push(Ack {
                outcome: AckOutcome::Erased,
                server_heads: Vec::new(),
            });
            continue;
        }
        if let Some((district, village, _)) = &stored
            && (*district != req.district || !villages.contains(village))
        {
            out_of_scope(state, store, grant, asked, village, id)?;
            acks.push(Ack {
                outcome: AckOutcome::OutOfScope,
                server_heads: Vec::new(),
            });
            continue;
        }
        let server_heads = stored.map(|(_, _, heads)| heads).unwrap_or_default();
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
                || base.iter().any(|h| !known(h))
        };
        if missing_base {
            acks.push(Ack {
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
                    version: 0,
                },
            );
        }
        touched.push(id);
        let loaded = store.cached(id).ok_or(ApiError::Internal)?;
        let before = loaded.doc.get_heads();
        // The district office's decisions are written by the server alone (ADR 0008).
        let reviews_before = if existing {
            review::read(&loaded.doc, id).map_err(|e| ApiError::Schema(e.to_string()))?
        } else {
            Default::default()
        };
        loaded
            .doc
            .apply_changes(parsed.changes)
            .map_err(|_| ApiError::Changes {
                doc: id.to_string(),
                err: songpei_core::sync::changes::ChangesError::Malformed,
            })?;
        let heads = loaded.doc.get_heads();
        if heads == before {
            acks.push(merged_ack(&tips, &heads));
            phone_heads.insert(id, tips);
            continue;
        }
        let header =
            doc::read_header(&loaded.doc, id).map_err(|e| ApiError::Schema(e.to_string()))?;
        if header.district.as_str() != req.district || !villages.contains(header.village.as_str()) {
            // What was applied in memory goes: the document is loaded afresh when next needed.
            store.evict(id);
            out_of_scope(state, store, grant, asked, header.village.as_str(), id)?;
            acks.push(Ack {
                outcome: AckOutcome::OutOfScope,
                server_heads: Vec::new(),
            });
            continue;
        }
        if !grant.role.may_write(header.kind) {
            return Err(ApiError::NotAllowed(format!(
                "a {} may not write {} documents",
                grant.role.code(),
                header.kind.code()
            )));
        }
        if review::read(&loaded.doc, id).map_err(|e| ApiError::Schema(e.to_string()))?
            != reviews_before
        {
            return Err(ApiError::NotAllowed(format!(
                "document {id}: review decisions are the district office's; a phone may not \
                 write them"
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
        let hashes = batch.iter().copied().collect();
        commits.push(DocCommit {
            hashes,
            id,
            kind: header.kind,
            district: header.district.to_string(),
            village: header.village.to_string(),
            chunk: loaded.doc.save_after(&before),
            heads: heads.clone(),
            ops,
            projection,
            version: loaded.version,
        });
        acks.push(merged_ack(&tips, &heads));
        phone_heads.insert(id, tips);
    }
    Ok((commits, acks, phone_heads))
}

/// The ack of a merged push. The server's heads are left out when they are the pushed heads (the
/// common case): 32 incompressible bytes a document saved on every upload.
fn merged_ack(phone_heads: &[ChangeHash], heads: &[ChangeHash]) -> Ack {
    let same = sorted(phone_heads.to_vec()) == sorted(heads.to_vec());
    Ack {
        outcome: AckOutcome::Merged,
        server_heads: if same { Vec::new() } else { to_wire(heads) },
    }
}

/// Whether this sync of an instructor's device is sent every trainee and household document of
/// its villages marked erased. Until the device shows it received that answer (a later request
/// under another id), it is; a device that never synced (every cursor at 0) holds none, and is
/// done at once.
fn instructor_purge(
    db: &dyn crate::db::Sql,
    device: &str,
    req: &SyncRequest,
) -> Result<bool, ApiError> {
    let row: Option<(Option<i64>, Option<Vec<u8>>)> = db.query_opt(
        "SELECT instructor_reset_ms, instructor_purge_request FROM devices WHERE id = ?1",
        crate::args![device],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let Some((None, sent)) = row else {
        return Ok(false);
    };
    let never_synced = sent.is_none() && req.cursors.iter().all(|c| c.seq == 0);
    let received = sent.is_some_and(|id| id != req.request_id);
    if never_synced || received {
        db.execute(
            "UPDATE devices SET instructor_reset_ms = ?2 WHERE id = ?1",
            crate::args![device, chrono::Utc::now().timestamp_millis()],
        )?;
        return Ok(false);
    }
    Ok(true)
}

/// Every trainee and household document of `villages`.
fn personal_docs(
    db: &dyn crate::db::Sql,
    villages: &BTreeSet<String>,
) -> Result<Vec<uuid::Uuid>, ApiError> {
    let mut out = Vec::new();
    for v in villages {
        let ids: Vec<String> = db.query_map(
            "SELECT id FROM docs WHERE village = ?1 AND kind IN ('trainee', 'household')",
            crate::args![v],
            |r| r.get(0),
        )?;
        out.extend(ids.iter().filter_map(|id| id.parse::<uuid::Uuid>().ok()));
    }
    Ok(out)
}

/// Documents new to the phone since its cursors, within `budget` bytes.
fn pull(
    store: &mut ServerStore,
    cursors: &[Cursor],
    merged: &HashMap<DocId, Vec<ChangeHash>>,
    budget: usize,
    instructor: Option<&str>,
) -> Result<PullPage, ApiError> {
    let mut used = 0usize;
    let mut personal = Vec::new();
    let mut docs = Vec::new();
    let mut settlements = Vec::new();
    let mut out = Vec::with_capacity(cursors.len());
    let mut more = false;
    for c in cursors {
        // A cursor whose entry is gone or different means the server was restored from an older
        // backup (and may have handed the number to another entry): start that village again.
        let from = if c.seq != 0 && store.feed_tag(&c.village, c.seq)? == Some(c.tag) {
            c.seq
        } else {
            0
        };
        if more {
            out.push(Cursor {
                village: c.village.clone(),
                seq: from,
                tag: if from == 0 { 0 } else { c.tag },
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
                if store.is_erased(*id)? {
                    docs.push(DocUpdate {
                        doc: id.uuid(),
                        payload: Payload::Erased,
                        heads: Vec::new(),
                    });
                }
                seq = *last;
                continue;
            };
            let heads = loaded.doc.get_heads();
            let is_class = loaded.kind == DocKind::Class;
            // An instructor's phone gets the classes that name its account, and no trainee or
            // household document: it checks faces against a masked roster. Which of a class's
            // versions it holds is not known (it may never have had the class), so it gets the
            // whole class.
            let base = match instructor {
                None => base,
                Some(account) => {
                    let named = is_class
                        && doc::class::read(&loaded.doc, ClassId::from(id.uuid()))
                            .is_ok_and(|(c, _)| c.instructor_accounts.iter().any(|a| a == account));
                    if !named {
                        seq = *last;
                        continue;
                    }
                    merged.get(id).cloned().unwrap_or_default()
                }
            };
            let base: Vec<ChangeHash> = base
                .into_iter()
                .filter(|h| loaded.doc.get_change_by_hash(h).is_some())
                .collect();
            if sorted(base.clone()) != sorted(heads.clone()) {
                let payload = if base.is_empty() {
                    Payload::Snapshot(loaded.doc.save())
                } else {
                    Payload::Changes(
                        pack(&loaded.doc.save_after(&base), &[]).map_err(|_| ApiError::Internal)?,
                    )
                };
                used += match &payload {
                    Payload::Snapshot(b) | Payload::Changes(b) => b.len(),
                    Payload::Erased => 0,
                };
                if matches!(loaded.kind, DocKind::Trainee | DocKind::Household) {
                    personal.push(id.to_string());
                }
                docs.push(DocUpdate {
                    doc: id.uuid(),
                    payload,
                    heads: to_wire(&heads),
                });
            }
            if is_class {
                // What the district pays for the class as of now, whether or not its document
                // changed (a decision across villages, a rate, a review gives it a feed entry).
                let pay = crate::store::settlement::class_pay(
                    store.conn(),
                    &id.to_string(),
                    store.policy(),
                )?;
                if let Some(mut s) = pay.as_ref().and_then(|p| p.to_wire()) {
                    if instructor.is_some() {
                        masked_roster(store.conn(), &mut s)?;
                    }
                    used += SETTLEMENT_BYTES * (1 + s.places.len());
                    settlements.push(s);
                }
            }
            seq = *last;
        }
        if stopped || entries.len() == FEED_PAGE {
            more = true;
        }
        let tag = if seq == 0 {
            0
        } else {
            store.feed_tag(&c.village, seq)?.unwrap_or(0)
        };
        out.push(Cursor {
            village: c.village.clone(),
            seq,
            tag,
        });
    }
    Ok(PullPage {
        docs,
        settlements,
        cursors: out,
        more,
        personal,
    })
}

/// Puts each place's masked name and ID number into a class's settlement, for an instructor.
fn masked_roster(conn: &dyn crate::db::Sql, s: &mut ClassSettlement) -> Result<(), ApiError> {
    for p in &mut s.places {
        let row: Option<(String, String)> = conn.query_opt(
            "SELECT name_masked, id_masked FROM p_trainees WHERE id = ?1",
            crate::args![p.trainee.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if let Some((name, id)) = row {
            p.name_masked = Some(name);
            p.id_masked = Some(id);
        }
    }
    Ok(())
}

/// About the bytes of one place's settlement, counted against the response's budget.
const SETTLEMENT_BYTES: usize = 40;

/// What one pull sends.
struct PullPage {
    docs: Vec<DocUpdate>,
    settlements: Vec<ClassSettlement>,
    cursors: Vec<Cursor>,
    more: bool,
    /// Ids of the personal documents sent.
    personal: Vec<String>,
}

#[cfg(test)]
mod tests;
