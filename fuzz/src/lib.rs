//! The fuzz targets: every decoder that sees bytes from outside, each as a function that must
//! return, whatever the bytes, without a panic. libFuzzer drives them through `fuzz/libfuzzer`
//! (`scripts/fuzz`); `tests/corpus.rs` replays the kept corpus and every input that once crashed.
//!
//! Targets that take several shapes of input read a first byte that picks the shape, so that the
//! fuzzer reaches past the outer layers (zstd, postcard) into the checks behind them.
//!
//! A panic anywhere, including inside the server's request handlers, is a crash: libFuzzer's panic
//! hook aborts on it, and the server answers 500 only when something failed that should not, which
//! the targets also treat as a crash.

use std::sync::{Arc, Mutex, OnceLock};

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use songpei_core::Phone;
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::catalog::{Level, PovertyStatus, TrainingType};
use songpei_core::clock::FixedClock;
use songpei_core::domain::{
    AttendanceKind, AttendanceMethod, HouseholdChoice, NewAttendance, NewClass, NewTrainee,
};
use songpei_core::ids::{ClassId, DocId, TraineeId};
use songpei_core::store::MemoryDocStore;
use songpei_core::sync::changes::{ChangeCaps, parse_changes, unpack};
use songpei_core::sync::engine::{SyncLimits, sync_with};
use songpei_core::sync::protocol::{
    Ack, AckOutcome, Push, SyncRequest, SyncResponse, compress, decode,
};
use songpei_core::validate::check_char;
use songpei_server::Loopback;
use songpei_server::accounts::{self, Role};
use songpei_server::{AppState, Config, Limits};

/// The district of the fuzzing world.
const DISTRICT: &str = "450802";
/// Its one village.
const VILLAGE: &str = "450802101201";
/// 2026-03-02 08:00 in Beijing.
const NOW_MS: i64 = 1_772_409_600_000;

/// A fuzz target: takes any bytes, must not panic.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus folder and libFuzzer binary carry.
pub const TARGETS: &[(&str, Target)] = &[
    ("sync_request", sync_request),
    ("sync_response", sync_response),
    ("document", document),
    ("changes", changes),
    ("qr_text", qr_text),
    ("csv_import", csv_import),
];

/// A server with one district, one village and one enrolled coordinator's phone, made once per
/// process.
struct World {
    _dir: tempfile::TempDir,
    state: AppState,
    /// The enrolled phone's access token and device id.
    token: Mutex<String>,
    device: uuid::Uuid,
    /// The enrolled phone, which seeds use to make real requests.
    phone: Mutex<Phone<MemoryDocStore>>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| make_world().unwrap_or_else(|e| panic!("the fuzzing world: {e}")))
}

fn make_world() -> Result<World, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let state = AppState::open(Config {
        data: dir.path().join("data"),
        limits: Limits {
            // Every input is a request of the same device: rate limits would turn all but the
            // first few into 429s and hide the code behind them.
            device_requests_per_minute: u32::MAX,
            ip_requests_per_minute: u32::MAX,
            out_of_scope_per_hour: u32::MAX,
            ..Limits::default()
        },
        ..Config::default()
    })?;
    let code = {
        let mut store = state.store.lock().map_err(|e| e.to_string())?;
        accounts::init(store.conn_mut(), DISTRICT, "港北区").map_err(|e| e.to_string())?;
        accounts::add_village(store.conn(), VILLAGE, "某村", None).map_err(|e| e.to_string())?;
        accounts::add_account(
            store.conn_mut(),
            "fuzz",
            Role::Coordinator,
            &[VILLAGE.to_owned()],
        )
        .map_err(|e| e.to_string())?;
        accounts::issue_enrollment_code(store.conn(), "fuzz").map_err(|e| e.to_string())?
    };
    let mut store = MemoryDocStore::new();
    songpei_core::sync::auth::enroll_with(
        &mut store,
        &mut Loopback(&state),
        "loopback",
        &code.code,
    )
    .map_err(|e| e.to_string())?;
    let mut phone = Phone::open(store, BlindIndexKey::from_bytes([3; 32]))
        .map_err(|e| e.to_string())?
        .with_clock(Arc::new(FixedClock::at(NOW_MS)));
    sync_with(
        &mut phone,
        &mut Loopback(&state),
        &SyncLimits::default(),
        &mut |_| {},
    )
    .map_err(|e| e.to_string())?;
    let token = phone
        .access_token()
        .map_err(|e| e.to_string())?
        .ok_or("no token after the first sync")?;
    let device = phone.profile().device.uuid();
    Ok(World {
        _dir: dir,
        state,
        token: Mutex::new(token),
        device,
        phone: Mutex::new(phone),
    })
}

impl World {
    /// POSTs a sync body with the enrolled phone's token; a 500 is a crash.
    fn sync(&self, body: &[u8]) -> Option<(u16, Vec<u8>)> {
        let post = || {
            let token = self.token.lock().map(|t| t.clone()).unwrap_or_default();
            Loopback(&self.state).post("/v1/sync", body, Some(&token))
        };
        let mut answer = post();
        // Tokens live 15 minutes, and a long fuzz run outlives them: a new one, and again.
        if matches!(answer, Some((401, _)))
            && let Some(fresh) = self.fresh_token()
            && let Ok(mut token) = self.token.lock()
        {
            *token = fresh;
            drop(token);
            answer = post();
        }
        if let Some((status, body)) = &answer {
            assert_ne!(
                *status,
                500,
                "the server failed on a sync body: {}",
                String::from_utf8_lossy(body)
            );
        }
        answer
    }

    /// A new access token for the enrolled phone.
    fn fresh_token(&self) -> Option<String> {
        let mut phone = self.phone.lock().ok()?;
        phone.forget_token().ok()?;
        sync_with(
            &mut phone,
            &mut Loopback(&self.state),
            &SyncLimits::default(),
            &mut |_| {},
        )
        .ok()?;
        phone.access_token().ok()?
    }
}

fn day(n: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default() + chrono::Days::new(n)
}

/// A fresh phone of the world's village (not enrolled), for phone-side targets.
fn bare_phone() -> Option<Phone<MemoryDocStore>> {
    Some(
        Phone::init(
            MemoryDocStore::new(),
            DISTRICT,
            &[VILLAGE.to_owned()],
            BlindIndexKey::from_bytes([3; 32]),
        )
        .ok()?
        .with_clock(Arc::new(FixedClock::at(NOW_MS))),
    )
}

/// A class with one enrolled poverty-household trainee and one sign-in, on `p`.
fn a_class(p: &mut Phone<MemoryDocStore>, n: u32) -> Option<(ClassId, TraineeId)> {
    let class = p
        .create_class(NewClass {
            title: "电工培训班".into(),
            village: VILLAGE.into(),
            occupation: "电工".into(),
            level: Level::Junior,
            training_type: TrainingType::EmploymentSkills,
            subsidised: true,
            institution: None,
            instructors: vec![],
            instructor_accounts: vec![],
            venue: None,
            first_day: day(0),
            last_day: day(4),
            daily_hours: None,
            starts_at: None,
            sign_out_required: false,
            planned_size: None,
        })
        .ok()?;
    let first17 = format!("450802199003{:02}123", n % 28 + 1);
    let id_number = format!("{first17}{}", check_char(&first17)?);
    let trainee = p
        .add_trainee(NewTrainee {
            name: "黄秀英".into(),
            id_number,
            phone: Some("13712345678".into()),
            village: VILLAGE.into(),
            household: HouseholdChoice::New(PovertyStatus::Lifted),
            key_groups: vec![],
            training_wish: None,
            consent_at_ms: NOW_MS,
        })
        .ok()?;
    p.enrol(class, trainee).ok()?;
    p.record_attendance(NewAttendance {
        class,
        trainee,
        day: day(0),
        kind: AttendanceKind::SignIn,
        method: AttendanceMethod::Hand {
            reason: "点名".into(),
        },
        gps: None,
    })
    .ok()?;
    Some((class, trainee))
}

/// `POST /v1/sync` as the server sees it, through the whole router and into the store.
///
/// First byte: 0, the rest is the body as sent; 1, the rest is the message before compression (its
/// device and district are set to the enrolled phone's, so the checks behind them are reached);
/// 2, the rest is the wire-form changes of one pushed document.
pub fn sync_request(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let w = world();
    let body = match mode % 3 {
        0 => rest.to_vec(),
        1 => {
            let Ok(mut req) = postcard::from_bytes::<SyncRequest>(rest) else {
                // Not a message: sent compressed as it is, for the decoder's own refusals.
                w.sync(&compress(rest));
                return;
            };
            req.device = w.device;
            req.district = DISTRICT.to_owned();
            compress(&postcard::to_stdvec(&req).unwrap_or_default())
        }
        _ => {
            let id = uuid::Uuid::from_bytes(*rest.first_chunk::<16>().unwrap_or(&[0; 16]));
            let mut request_id = [0u8; 16];
            request_id.copy_from_slice(&Sha256::digest(rest)[..16]);
            let req = SyncRequest {
                version: songpei_core::sync::protocol::PROTOCOL_VERSION,
                request_id,
                device: w.device,
                district: DISTRICT.to_owned(),
                cursors: vec![],
                pushes: vec![Push {
                    doc: id,
                    base: vec![],
                    changes: rest.get(16..).unwrap_or_default().to_vec(),
                }],
                max_response_bytes: 1 << 16,
                card_keys: 0,
                policy: 0,
                instructors: 0,
            };
            compress(&postcard::to_stdvec(&req).unwrap_or_default())
        }
    };
    w.sync(&body);
}

/// A sync response as a phone takes it in, after a request of one pushed class.
///
/// First byte: 0, the rest is the body as received; 1, the rest is the message before compression,
/// its request id and acknowledgement count set to the request's so the documents it carries are
/// merged.
pub fn sync_response(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some(mut p) = bare_phone() else { return };
    if a_class(&mut p, 1).is_none() {
        return;
    }
    let limits = SyncLimits::default();
    let Ok(request) = p.prepare_sync(&limits) else {
        return;
    };
    let body = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let Ok(mut resp) = postcard::from_bytes::<SyncResponse>(rest) else {
            let _ = p.apply_sync_response(&compress(rest), &limits);
            return;
        };
        let Ok(req) = decode::<SyncRequest>(&request, 64 << 20) else {
            return;
        };
        resp.request_id = req.request_id;
        let first = resp.acks.first().cloned().unwrap_or(Ack {
            outcome: AckOutcome::Merged,
            server_heads: vec![],
        });
        resp.acks.resize(req.pushes.len(), first);
        compress(&postcard::to_stdvec(&resp).unwrap_or_default())
    };
    let _ = p.apply_sync_response(&body, &limits);
}

/// A whole document (or concatenated change chunks) received from another replica and merged on
/// a phone: the first 16 bytes are the document's id, the rest its bytes.
pub fn document(data: &[u8]) {
    let Some((id, bytes)) = data.split_first_chunk::<16>() else {
        return;
    };
    let id = DocId::from(ClassId::from(uuid::Uuid::from_bytes(*id)));
    let Some(mut p) = bare_phone() else { return };
    let _ = p.merge_document(id, bytes);
}

/// Changes in the wire form (first byte even) or as automerge's raw change chunks (odd), as the
/// server reads a push; what parses is merged on a phone as a document.
pub fn changes(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let caps = ChangeCaps {
        max_changes: 10_000,
        max_ops: 1_000_000,
        max_bytes: 2 << 20,
    };
    let parsed = if mode % 2 == 0 {
        unpack(rest, &[], caps)
    } else {
        parse_changes(rest, caps)
    };
    let Ok(parsed) = parsed else { return };
    let _ = parsed.tips(&[]);
    let raw: Vec<u8> = parsed
        .changes
        .iter()
        .flat_map(|c| c.raw_bytes().to_vec())
        .collect();
    let Some(mut p) = bare_phone() else { return };
    let id = DocId::from(ClassId::from(uuid::Uuid::from_u128(u128::from(mode))));
    let _ = p.merge_document(id, &raw);
}

/// A scanned QR text: read, and taken by a coordinator's phone that is showing a class code.
pub fn qr_text(data: &[u8]) {
    let _ = songpei_core::qr::Code::from_bytes(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = songpei_core::qr::scan(text);
    let Some(mut p) = bare_phone() else { return };
    let Some((class, _)) = a_class(&mut p, 1) else {
        return;
    };
    let _ = p.accept(text, None, Some((class, day(0), AttendanceKind::SignIn)));
}

/// A CSV import: the target table (first byte even) or the village list (odd), all rows or none.
pub fn csv_import(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if mode % 2 == 0 {
        let _ = songpei_server::parse_targets(&text);
    } else {
        let w = world();
        let Ok(mut store) = w.state.store.lock() else {
            return;
        };
        let _ = accounts::import_villages(store.conn_mut(), &text);
    }
}

/// A seed input: its target, its name, its bytes.
pub type Seed = (&'static str, String, Vec<u8>);

/// Seed inputs for every target, made by real phones and a real server: what the kept corpus
/// starts from (`cargo run -p songpei-fuzz --bin fuzz-seeds`).
pub fn seeds() -> Result<Vec<Seed>, String> {
    let mut out = Vec::new();
    let w = world();
    let mut p = w.phone.lock().map_err(|e| e.to_string())?;
    let (class, trainee) = a_class(&mut p, 7).ok_or("a class on the enrolled phone")?;
    let limits = SyncLimits::default();
    let body = p.prepare_sync(&limits).map_err(|e| e.to_string())?;
    let raw = zstd::decode_all(body.as_slice()).map_err(|e| e.to_string())?;
    let req: SyncRequest = decode(&body, 64 << 20).map_err(|e| e.to_string())?;
    out.push(("sync_request", "body".into(), [&[0u8][..], &body].concat()));
    out.push((
        "sync_request",
        "message".into(),
        [&[1u8][..], &raw].concat(),
    ));
    for (i, push) in req.pushes.iter().enumerate() {
        let seed = [&[2u8][..], push.doc.as_bytes(), &push.changes].concat();
        out.push(("sync_request", format!("push-{i}"), seed));
        out.push((
            "changes",
            format!("wire-{i}"),
            [&[0u8][..], &push.changes].concat(),
        ));
    }
    let (status, answer) = w.sync(&body).ok_or("the seed sync")?;
    if status != 200 {
        return Err(format!("the seed sync was refused: {status}"));
    }
    let answer_raw = zstd::decode_all(answer.as_slice()).map_err(|e| e.to_string())?;
    out.push((
        "sync_response",
        "body".into(),
        [&[0u8][..], &answer].concat(),
    ));
    out.push((
        "sync_response",
        "message".into(),
        [&[1u8][..], &answer_raw].concat(),
    ));
    p.apply_sync_response(&answer, &limits)
        .map_err(|e| e.to_string())?;
    // A request from the start of every feed, so the response carries whole documents.
    let pull = SyncRequest {
        request_id: [9; 16],
        cursors: vec![],
        pushes: vec![],
        card_keys: 0,
        policy: 0,
        instructors: 0,
        ..req
    };
    let pull = compress(&postcard::to_stdvec(&pull).map_err(|e| e.to_string())?);
    let (status, answer) = w.sync(&pull).ok_or("the seed pull")?;
    if status != 200 {
        return Err(format!("the seed pull was refused: {status}"));
    }
    let answer_raw = zstd::decode_all(answer.as_slice()).map_err(|e| e.to_string())?;
    out.push((
        "sync_response",
        "pull".into(),
        [&[0u8][..], &answer].concat(),
    ));
    out.push((
        "sync_response",
        "pull-message".into(),
        [&[1u8][..], &answer_raw].concat(),
    ));
    for (name, id) in [
        ("class", DocId::from(class)),
        ("trainee", DocId::from(trainee)),
    ] {
        let bytes = p
            .document_bytes(id)
            .map_err(|e| e.to_string())?
            .ok_or("the document")?;
        out.push((
            "document",
            name.into(),
            [id.uuid().as_bytes(), &bytes[..]].concat(),
        ));
        let doc = automerge::Automerge::load(&bytes).map_err(|e| e.to_string())?;
        let chunks: Vec<u8> = doc
            .get_changes(&[])
            .iter()
            .flat_map(|c| c.raw_bytes().to_vec())
            .collect();
        out.push((
            "changes",
            format!("raw-{name}"),
            [&[1u8][..], &chunks].concat(),
        ));
    }
    let code = p
        .class_code(class, day(0), AttendanceKind::SignIn)
        .map_err(|e| e.to_string())?
        .to_text();
    out.push(("qr_text", "class-code".into(), code.clone().into_bytes()));
    let mut trainee_phone = bare_phone().ok_or("a trainee's phone")?;
    let response = trainee_phone
        .respond(&code, Some(trainee))
        .map_err(|e| e.to_string())?
        .to_text();
    out.push(("qr_text", "response".into(), response.into_bytes()));
    let token = w.token.lock().map(|t| t.clone()).unwrap_or_default();
    let cards_request = serde_json::json!({ "class": class.uuid() }).to_string();
    let (status, cards) = Loopback(&w.state)
        .post("/v1/cards", cards_request.as_bytes(), Some(&token))
        .ok_or("the cards request")?;
    if status != 200 {
        return Err(format!("the cards request was refused: {status}"));
    }
    let cards: songpei_core::sync::protocol::CardsResponse =
        serde_json::from_slice(&cards).map_err(|e| e.to_string())?;
    for (i, card) in cards.cards.iter().enumerate() {
        out.push((
            "qr_text",
            format!("card-{i}"),
            card.text.clone().into_bytes(),
        ));
    }
    out.push((
        "qr_text",
        "enrollment".into(),
        b"songpei-enroll:https://sp.example.cn/?code=ABCD-EFGH".to_vec(),
    ));
    out.push((
        "csv_import",
        "targets".into(),
        "\0区域,三年计划总目标,2019年,2020年,2021年\n港北区,300,100,100,100\n合计,300,100,100,100\n"
            .as_bytes()
            .to_vec(),
    ));
    out.push((
        "csv_import",
        "villages".into(),
        "\u{1}code,name,township\n450802101202,二村,某镇\n450802102201,三村,另一镇\n"
            .as_bytes()
            .to_vec(),
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_token_is_replaced_and_the_request_sent_again() {
        let w = world();
        *w.token.lock().expect("token") = "expired".into();
        let req = SyncRequest {
            version: songpei_core::sync::protocol::PROTOCOL_VERSION,
            request_id: [5; 16],
            device: w.device,
            district: DISTRICT.to_owned(),
            cursors: vec![],
            pushes: vec![],
            max_response_bytes: 1 << 16,
            card_keys: 0,
            policy: 0,
            instructors: 0,
        };
        let body = compress(&postcard::to_stdvec(&req).expect("encode"));
        let (status, _) = w.sync(&body).expect("an answer");
        assert_eq!(status, 200);
        assert_ne!(*w.token.lock().expect("token"), "expired");
    }
}
