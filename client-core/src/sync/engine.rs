//! The phone's side of sync, without I/O: [`Phone::prepare_sync`] turns local state into request
//! bytes; [`Phone::apply_sync_response`] applies the response and all its bookkeeping in one store
//! transaction. A transport moves the bytes in between; [`sync_with`] drives the rounds.

use automerge::{ChangeHash, ReadDoc};
use serde::Serialize;

use super::auth::{ChallengeRequest, TokenResponse};
use super::protocol::{
    AckOutcome, Cursor, PROTOCOL_VERSION, Payload, Push, SyncRequest, SyncResponse, WireError,
    decode, encode, from_wire, to_wire,
};
pub use super::transport::{SyncError, Transport, TransportError};
use crate::changes::{ChangeCaps, pack_changes, parse_changes, unpack};
use crate::error::{Error, Result};
use crate::ids::DocId;
use crate::phone::{Incoming, META_SERVER_TIME, META_SERVER_UPTIME, PendingSync, Phone};
use crate::store::{Acked, DocStore, DocWrite};

/// Limits of one request.
#[derive(Clone, Copy, Debug)]
pub struct SyncLimits {
    /// Documents pushed per request.
    pub max_pushes: usize,
    /// Uncompressed bytes of changes pushed per request (at least one document is always sent).
    pub max_push_bytes: usize,
    /// Budget for the documents in the response, uncompressed.
    pub max_response_bytes: u32,
    /// Largest response accepted, decompressed.
    pub max_response_decompressed: usize,
}

impl Default for SyncLimits {
    fn default() -> Self {
        Self {
            max_pushes: 500,
            max_push_bytes: 2 << 20,
            max_response_bytes: 2 << 20,
            max_response_decompressed: 64 << 20,
        }
    }
}

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncRound {
    /// Documents the server acknowledged as merged.
    pub docs_pushed: usize,
    /// Documents received and merged.
    pub docs_pulled: usize,
    /// Documents the server could not merge for lack of their base (pushed again next round).
    pub missing_base: usize,
    /// Documents received that were refused (out of scope or not following the schema).
    pub refused: usize,
    /// Documents removed because their village left the phone's scope.
    pub left_phone: usize,
    /// Documents of villages no longer the phone's, with changes the server would not take: kept
    /// on the phone for recovery.
    pub held: usize,
    /// Another round is needed: more to pull, to push, or to push again.
    pub more: bool,
    /// The server's clock, ms since the epoch.
    pub server_time_ms: i64,
}

/// Totals of a whole sync.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// HTTP round trips made (retries included).
    pub round_trips: usize,
    /// Request bytes sent, compressed.
    pub bytes_sent: usize,
    /// Response bytes received, compressed.
    pub bytes_received: usize,
    /// Documents pushed and acknowledged.
    pub docs_pushed: usize,
    /// Documents pulled.
    pub docs_pulled: usize,
    /// Documents refused on arrival.
    pub docs_refused: usize,
    /// Documents removed because their village left the phone's scope.
    pub docs_removed: usize,
    /// Documents of villages no longer the phone's, kept unsynced for recovery.
    pub docs_held: usize,
    /// The server's clock at the end, ms since the epoch.
    pub server_time_ms: i64,
    /// Times the sync waited because the server asked it to (`429` or `503` with `Retry-After`).
    pub waits: usize,
    /// While the sync waits: the seconds it waits for (shown as progress); `None` otherwise.
    pub waiting_secs: Option<u64>,
}

const META_CURSOR: &str = "sync.cursor.";
const META_LOCAL_TIME: &str = "sync.local_time_ms";

/// Caps on changes the server sends; generous, but no response may make the phone load without
/// bound.
const PULL_CAPS: ChangeCaps = ChangeCaps {
    max_changes: 1_000_000,
    max_ops: 50_000_000,
    max_bytes: 256 << 20,
};

impl<S: DocStore> Phone<S> {
    /// Documents with changes not yet synced whose village is no longer the phone's: the server
    /// will not take them; they stay for recovery (export).
    pub fn held_documents(&mut self) -> Result<usize> {
        let villages = self.profile().villages.clone();
        let mut held = 0;
        for id in self.store.dirty_documents()? {
            if let Some(d) = self.doc(id)?
                && crate::doc::read_header(d, id).is_ok_and(|h| !villages.contains(&h.village))
            {
                held += 1;
            }
        }
        Ok(held)
    }
}

impl<S: DocStore> Phone<S> {
    /// Builds the next sync request: changes of every document not yet acknowledged (up to the
    /// limits) and the feed cursors of the phone's villages.
    pub fn prepare_sync(&mut self, limits: &SyncLimits) -> Result<Vec<u8>> {
        let dirty = self.store.dirty_documents()?;
        let mut pushes = Vec::new();
        let mut pushed = Vec::new();
        let mut bytes = 0usize;
        let mut left_behind = 0;
        let mut waiting = std::collections::BTreeSet::new();
        let villages = self.profile().villages.clone();
        for id in dirty {
            if pushes.len() >= limits.max_pushes
                || (bytes >= limits.max_push_bytes && !pushes.is_empty())
            {
                left_behind += 1;
                continue;
            }
            let mark = self.store.sync_mark(id)?;
            let Some(d) = self.doc(id)? else { continue };
            // A document of a village the phone no longer covers stays here, unsynced.
            if crate::doc::read_header(d, id).is_ok_and(|h| !villages.contains(&h.village)) {
                continue;
            }
            // Only heads this document still has can be a base (a restored phone may not).
            let base: Vec<ChangeHash> = mark
                .acked_heads
                .into_iter()
                .filter(|h| d.get_change_by_hash(h).is_some())
                .collect();
            // Only this phone's own changes are sent: the server accepts a change only from the
            // device its actor belongs to. Changes of other phones that the server lacks (it was
            // restored from an older backup) wait for those phones to send them.
            let corrupt = |_| Error::Schema {
                doc: id,
                path: String::new(),
            };
            let mut own = parse_changes(&d.save_after(&base), ChangeCaps::NONE).map_err(corrupt)?;
            let all = own.changes.len();
            own.changes
                .retain(|c| *c.actor_id() == self.profile().actor);
            if own.changes.len() < all {
                waiting.insert(id);
                if own.changes.is_empty() {
                    continue;
                }
            }
            let heads = own.tips(&base);
            let changes = pack_changes(&own.changes, &base).map_err(corrupt)?;
            bytes += changes.len();
            pushed.push((id, heads.clone()));
            pushes.push(Push {
                doc: id.uuid(),
                base: to_wire(&base),
                changes,
            });
        }
        let mut cursors = Vec::new();
        for v in &self.profile().villages {
            // Stored as "seq:tag".
            let stored = self.store.meta(&format!("{META_CURSOR}{v}"))?;
            let (seq, tag) = stored
                .as_deref()
                .and_then(|s| s.split_once(':'))
                .and_then(|(s, t)| Some((s.parse().ok()?, t.parse().ok()?)))
                .unwrap_or((0, 0));
            cursors.push(Cursor {
                village: v.to_string(),
                seq,
                tag,
            });
        }
        let request_id: [u8; 16] = rand::random();
        let req = SyncRequest {
            version: PROTOCOL_VERSION,
            request_id,
            device: self.profile().device.uuid(),
            district: self.profile().district.to_string(),
            cursors,
            pushes,
            max_response_bytes: limits.max_response_bytes,
            card_keys: self.card_keys_version()?,
            policy: self.policy().version(),
            instructors: self.instructors()?.version,
        };
        self.pending_sync = Some(PendingSync {
            request_id,
            pushed,
            left_behind,
            waiting,
        });
        Ok(encode(&req))
    }

    /// Applies the response to the last prepared request: merges what arrived, records what the
    /// server acknowledged and the new cursors, all in one transaction.
    pub fn apply_sync_response(
        &mut self,
        bytes: &[u8],
        limits: &SyncLimits,
    ) -> Result<SyncRound, SyncError> {
        let resp: SyncResponse = decode(bytes, limits.max_response_decompressed)?;
        let pending = self
            .pending_sync
            .as_ref()
            .ok_or(SyncError::NothingPending)?;
        if resp.request_id != pending.request_id || resp.acks.len() != pending.pushed.len() {
            return Err(SyncError::Mismatch);
        }
        let pending = self.pending_sync.take().ok_or(SyncError::NothingPending)?;
        // The scope first: documents of new villages in this response must be in scope, and
        // documents of villages dropped leave the phone.
        let mut left_phone = 0;
        let mut gained = false;
        if let Some(scope) = &resp.scope {
            let before = self.profile().villages.clone();
            left_phone = self.apply_scope(scope)?;
            gained = self.profile().villages.iter().any(|v| !before.contains(v));
        }
        let mut round = SyncRound {
            left_phone,
            server_time_ms: resp.server_time_ms,
            more: resp.more || pending.left_behind > 0 || gained,
            ..SyncRound::default()
        };

        // 0. Documents erased on the server (a person's erasure) leave the phone, with whatever
        //    this phone changed in them since: the erasure wins over any edit.
        let erased: Vec<DocId> = resp
            .docs
            .iter()
            .filter(|u| u.payload == Payload::Erased)
            .map(|u| DocId::from(crate::ids::ClassId::from(u.doc)))
            .chain(
                resp.acks
                    .iter()
                    .zip(&pending.pushed)
                    .filter(|(a, _)| a.outcome == AckOutcome::Erased)
                    .map(|(_, (id, _))| *id),
            )
            .collect();
        if !erased.is_empty() {
            self.store.erase_documents(&erased)?;
            for id in &erased {
                self.cache.remove(*id);
            }
            round.left_phone += erased.len();
        }

        // 1. Merge what arrived, in memory, projecting each document while it is at hand (a
        //    response may hold more documents than the cache keeps).
        let mut merged: Vec<DocId> = Vec::new();
        let mut writes: Vec<DocWrite> = Vec::new();
        let mut acks: Vec<Acked> = Vec::new();
        let mut acked_docs = std::collections::BTreeSet::new();
        let mut incomplete = std::collections::BTreeSet::new();
        for update in resp.docs {
            let id = DocId::from(crate::ids::ClassId::from(update.doc));
            let incoming = match &update.payload {
                Payload::Erased => continue,
                Payload::Snapshot(b) => Ok(Incoming::Document(b)),
                Payload::Changes(b) => unpack(b, &[], PULL_CAPS)
                    .map(|p| Incoming::Changes(p.changes))
                    .map_err(|_| Error::Schema {
                        doc: id,
                        path: String::new(),
                    }),
            };
            let outcome = incoming.and_then(|inc| {
                let (_, chunk) = self.merge_into_cache(id, inc)?;
                // Just merged, so in the cache.
                let (d, _) = self.cache.get_with_chunks(id).ok_or(Error::Schema {
                    doc: id,
                    path: String::new(),
                })?;
                let current = d.get_heads();
                let heads: Vec<ChangeHash> = from_wire(&update.heads)
                    .into_iter()
                    .filter(|h| d.get_change_by_hash(h).is_some())
                    .collect();
                let village = crate::doc::read_header(d, id)?.village;
                let complete = heads.len() == update.heads.len();
                let write = match chunk {
                    Some(chunk) => {
                        let (index, conflicts) = self.project(id, d, true)?;
                        Some(DocWrite {
                            id,
                            chunk: Some(chunk),
                            index,
                            conflicts,
                            local: false,
                        })
                    }
                    None => None,
                };
                Ok((write, heads, current, village, complete))
            });
            match outcome {
                Ok((write, heads, current, village, complete)) => {
                    if !complete {
                        // Some changes wait for dependencies that did not come: keep this
                        // village's cursor so they are sent again.
                        incomplete.insert(village.to_string());
                    }
                    writes.extend(write);
                    acks.push(Acked {
                        id,
                        acked: heads,
                        current,
                    });
                    acked_docs.insert(id);
                    merged.push(id);
                    round.docs_pulled += 1;
                }
                Err(e) => {
                    // The server checks every document; one that still fails here is left out
                    // rather than blocking the phone's sync. It is counted in the report.
                    self.cache.remove(id);
                    tracing::warn!(doc = %id, error = %e, "refused a document from the server");
                    round.refused += 1;
                }
            }
        }

        // 2. What the server acknowledged (documents just pulled already record the server's
        //    heads, which include what was pushed).
        for (ack, (id, pushed_heads)) in resp.acks.iter().zip(&pending.pushed) {
            let id = *id;
            let acked = match ack.outcome {
                AckOutcome::Merged => {
                    round.docs_pushed += 1;
                    pushed_heads.clone()
                }
                AckOutcome::OutOfScope => {
                    round.held += 1;
                    continue;
                }
                AckOutcome::Erased => continue,
                AckOutcome::MissingBase => {
                    round.missing_base += 1;
                    round.more |= !pending.waiting.contains(&id);
                    // Push again from the heads both sides have.
                    from_wire(&ack.server_heads)
                }
            };
            if acked_docs.contains(&id) {
                continue;
            }
            let Some(d) = self.doc(id)? else { continue };
            // Record only heads the phone holds: a head it lacks could not be a base.
            let acked: Vec<ChangeHash> = acked
                .into_iter()
                .filter(|h| d.get_change_by_hash(h).is_some())
                .collect();
            acks.push(Acked {
                id,
                acked,
                current: d.get_heads(),
            });
            acked_docs.insert(id);
        }

        // A document pulled that still holds changes of this phone the server lacks (it was
        // restored from an older backup) is pushed in another round of this same sync.
        let sorted = |h: &[ChangeHash]| {
            let mut v = h.to_vec();
            v.sort();
            v
        };
        if acks.iter().any(|a| {
            sorted(&a.acked) != sorted(&a.current)
                && !pending.waiting.contains(&a.id)
                && !pending.pushed.iter().any(|(id, _)| *id == a.id)
        }) {
            round.more = true;
        }

        // 3. Merged documents, marks, cursors, server time: one transaction.
        let mut meta: Vec<(String, String)> = resp
            .cursors
            .iter()
            .filter(|c| {
                self.profile()
                    .villages
                    .iter()
                    .any(|v| v.as_str() == c.village)
            })
            .filter(|c| !incomplete.contains(&c.village))
            .map(|c| {
                (
                    format!("{META_CURSOR}{}", c.village),
                    format!("{}:{}", c.seq, c.tag),
                )
            })
            .collect();
        meta.push((META_SERVER_TIME.into(), resp.server_time_ms.to_string()));
        if let Some(up) = self.clock().uptime() {
            meta.push((META_SERVER_UPTIME.into(), up.encode()));
        }
        meta.push((META_LOCAL_TIME.into(), self.now_ms().to_string()));
        // The district's policy table and what it decided and pays for each class: kept with the
        // documents they describe, in the same transaction.
        let policy = resp.policy.as_ref().and_then(|p| p.table().map(|t| (p, t)));
        if let Some((_, table)) = &policy {
            meta.push((super::pay::META_POLICY.into(), super::pay::encode(table)));
        }
        for s in &resp.settlements {
            meta.push((super::pay::settlement_key(s.class), super::pay::encode(s)));
        }
        if let Err(e) = self.store.apply_sync(&writes, &acks, &meta) {
            for id in &merged {
                self.cache.remove(*id);
            }
            return Err(e.into());
        }
        for w in &writes {
            self.cache.note_chunk(w.id);
        }
        if let Some((_, table)) = policy {
            self.policy = table;
        }
        if let Some(keys) = &resp.card_keys {
            self.set_card_keys(keys)?;
        }
        if let Some(set) = &resp.instructors {
            self.set_instructors(set)?;
        }
        Ok(round)
    }
}

/// Times one sync waits for the server's `Retry-After` before it gives up.
pub const MAX_WAITS: usize = 5;
/// Longest `Retry-After` a sync waits for: a few seconds of a rate limit are worth waiting out
/// in the same sync; a server asking for more (out of disk, a device stopped for an hour) fails
/// the sync at once, and the coordinator syncs again later.
pub const MAX_WAIT_SECS: u64 = 10;

/// The waits of one sync for the server's `Retry-After`.
#[derive(Default)]
struct Waits {
    done: usize,
}

impl Waits {
    /// True when the server asked for a wait this sync can still afford.
    fn may_wait(&self, e: &TransportError) -> bool {
        self.done < MAX_WAITS
            && e.retry_after()
                .is_some_and(|w| w.as_secs() <= MAX_WAIT_SECS)
    }

    /// Waits as the server asked, telling `progress` first.
    fn wait(
        &mut self,
        e: &TransportError,
        transport: &mut dyn Transport,
        report: &mut SyncReport,
        progress: &mut dyn FnMut(&SyncReport),
    ) {
        let wait = e.retry_after().unwrap_or_default();
        self.done += 1;
        report.waits += 1;
        report.waiting_secs = Some(wait.as_secs());
        progress(report);
        transport.pause(wait);
        report.waiting_secs = None;
    }
}

/// Most round trips one sync may take (pages of a long first pull included).
pub const MAX_ROUNDS: usize = 200;
/// Times a round is retried with the same bytes after a retryable failure.
pub const RETRIES: usize = 3;

/// Parses a JSON answer of an auth endpoint.
fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, SyncError> {
    serde_json::from_slice(bytes).map_err(|_| SyncError::Wire(WireError::Malformed))
}

fn refused_code(e: &TransportError) -> Option<(u16, &str)> {
    match e {
        TransportError::Refused { status, code, .. } => Some((*status, code.as_str())),
        TransportError::Unreachable(_) => None,
    }
}

/// Fetches the district-signed cards of a class's trainees (`POST /v1/cards`), to print. The class
/// must have been synced.
pub fn fetch_cards<S: DocStore>(
    phone: &mut Phone<S>,
    transport: &mut dyn Transport,
    class: crate::ids::ClassId,
) -> Result<Vec<crate::sync::protocol::IssuedCard>, SyncError> {
    if !phone.is_enrolled()? {
        return Err(SyncError::NotEnrolled);
    }
    let body = serde_json::to_vec(&crate::sync::protocol::CardsRequest {
        class: class.uuid(),
    })
    .unwrap_or_default();
    let mut report = SyncReport::default();
    for attempt in 0..2 {
        let token = match phone.access_token()? {
            Some(t) if attempt == 0 => t,
            _ => renew_token(phone, transport, &mut report)?,
        };
        match transport.call_authorized("/v1/cards", &body, &token) {
            Ok(b) => {
                let resp: crate::sync::protocol::CardsResponse = json(&b)?;
                phone.set_card_keys(&resp.card_keys)?;
                return Ok(resp.cards);
            }
            Err(e) => match refused_code(&e) {
                Some((401, "device_revoked")) => return Err(SyncError::Revoked),
                Some((401, _)) if attempt == 0 => phone.forget_token()?,
                _ => return Err(e.into()),
            },
        }
    }
    Err(SyncError::NotEnrolled)
}

/// Gets a new access token: signs the challenge the phone holds, or first asks for a fresh one
/// when it holds none or the server no longer knows it.
fn renew_token<S: DocStore>(
    phone: &mut Phone<S>,
    transport: &mut dyn Transport,
    report: &mut SyncReport,
) -> Result<String, SyncError> {
    let mut waits = Waits::default();
    let mut call = |path: &str, body: Vec<u8>, report: &mut SyncReport| loop {
        report.round_trips += 1;
        report.bytes_sent += body.len();
        match transport.call(path, &body) {
            Err(e) if waits.may_wait(&e) => waits.wait(&e, transport, report, &mut |_| {}),
            r => {
                if let Ok(b) = &r {
                    report.bytes_received += b.len();
                }
                return r;
            }
        }
    };
    for fresh_challenge in [false, true] {
        if fresh_challenge {
            let req = ChallengeRequest {
                device: phone.profile().device.uuid(),
            };
            let body = serde_json::to_vec(&req).unwrap_or_default();
            match call("/v1/auth/challenge", body, report) {
                Ok(b) => phone.accept_challenge(&json(&b)?)?,
                Err(e) if refused_code(&e) == Some((401, "device_revoked")) => {
                    return Err(SyncError::Revoked);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let Some(req) = phone.token_request()? else {
            continue;
        };
        let body = serde_json::to_vec(&req).unwrap_or_default();
        match call("/v1/auth/token", body, report) {
            Ok(b) => {
                let resp: TokenResponse = json(&b)?;
                phone.accept_token(&resp)?;
                return Ok(resp.token);
            }
            Err(e) => match refused_code(&e) {
                Some((401, "device_revoked")) => return Err(SyncError::Revoked),
                Some((401, "bad_challenge")) if !fresh_challenge => {}
                _ => return Err(e.into()),
            },
        }
    }
    Err(SyncError::NotEnrolled)
}

/// Syncs until the server has everything and the phone has everything new, retrying each round
/// with the same request bytes (the server recognises a retry by its id). `progress` is told after
/// every round.
pub fn sync_with<S: DocStore>(
    phone: &mut Phone<S>,
    transport: &mut dyn Transport,
    limits: &SyncLimits,
    progress: &mut dyn FnMut(&SyncReport),
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    if !phone.is_enrolled()? {
        return Err(SyncError::NotEnrolled);
    }
    let mut token = match phone.access_token()? {
        Some(t) => t,
        None => renew_token(phone, transport, &mut report)?,
    };
    let mut waits = Waits::default();
    for _ in 0..MAX_ROUNDS {
        let body = phone.prepare_sync(limits)?;
        let mut attempt = 0;
        let mut renewed = false;
        let response = loop {
            report.round_trips += 1;
            report.bytes_sent += body.len();
            match transport.round_trip(&body, &token) {
                Ok(r) => break r,
                Err(e) if waits.may_wait(&e) => waits.wait(&e, transport, &mut report, progress),
                Err(e) if e.is_retryable() && attempt < RETRIES => attempt += 1,
                Err(e) => match refused_code(&e) {
                    Some((401, "device_revoked")) => return Err(SyncError::Revoked),
                    // Expired (or the server's clock disagrees with the phone's): renew once.
                    Some((401, _)) if !renewed => {
                        renewed = true;
                        phone.forget_token()?;
                        token = renew_token(phone, transport, &mut report)?;
                    }
                    _ => return Err(e.into()),
                },
            }
        };
        report.bytes_received += response.len();
        let round = phone.apply_sync_response(&response, limits)?;
        report.docs_pushed += round.docs_pushed;
        report.docs_pulled += round.docs_pulled;
        report.docs_refused += round.refused;
        report.docs_removed += round.left_phone;
        report.server_time_ms = round.server_time_ms;
        progress(&report);
        if !round.more {
            report.docs_held = phone.held_documents()?;
            return Ok(report);
        }
    }
    Err(SyncError::TooManyRounds(MAX_ROUNDS))
}
