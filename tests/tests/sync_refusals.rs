//! Bad sync bodies against the real server: each is refused with its HTTP status and stable code,
//! nothing is persisted, and the server goes on serving other phones.

use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT};
use songpei_core::sync::changes::pack;
use songpei_core::sync::protocol::{
    Cursor, PROTOCOL_VERSION, Push, SyncRequest, SyncResponse, compress, decode, encode,
};
use songpei_tests::{CliPhone, RawDevice, ServerProcess, VILLAGE_A, VILLAGE_B};

const CONFIG: &str = "
[limits]
max_body_bytes = 262144
max_decompressed_bytes = 1048576
max_docs_per_request = 5
max_changes_per_request = 50
max_ops_per_request = 2000
max_push_bytes = 131072
max_ops_per_doc = 100000
max_response_bytes = 1048576
";

fn request(dev: &RawDevice, pushes: Vec<Push>) -> SyncRequest {
    SyncRequest {
        version: PROTOCOL_VERSION,
        request_id: rand::random(),
        device: dev.device(),
        district: "450802".into(),
        cursors: vec![Cursor {
            village: VILLAGE_A.into(),
            seq: 0,
            tag: 0,
        }],
        pushes,
        max_response_bytes: 1 << 20,
        card_keys: 0,
        policy: 0,
        instructors: 0,
    }
}

/// The changes of a valid new class document in `village`, made by `dev`'s phone.
fn class_changes(dev: &mut RawDevice, village: &str) -> (uuid::Uuid, Vec<u8>) {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).expect("date");
    let id = dev
        .phone
        .create_class(songpei_tests::electricians_class(village, day, day))
        .expect("class");
    let bytes = dev
        .phone
        .document_bytes(id.into())
        .expect("read")
        .expect("stored");
    let doc = Automerge::load(&bytes).expect("load");
    (id.uuid(), doc.save_after(&[]))
}

/// A push of raw change chunks, packed as a phone sends them.
fn push(doc: uuid::Uuid, chunks: Vec<u8>) -> Push {
    push_packed(doc, pack(&chunks, &[]).expect("valid chunks"))
}

/// A push of bytes as they are.
fn push_packed(doc: uuid::Uuid, changes: Vec<u8>) -> Push {
    Push {
        doc,
        base: vec![],
        changes,
    }
}

/// A raw automerge document built by `f` as `actor`, as changes.
fn raw_doc(
    actor: &automerge::ActorId,
    f: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
) -> Vec<u8> {
    let mut d = Automerge::new().with_actor(actor.clone());
    let mut tx = d.transaction();
    f(&mut tx);
    tx.commit();
    d.save_after(&[])
}

fn stored_documents(server: &ServerProcess) -> i64 {
    let conn = server.sqlite();
    conn.query_row("SELECT count(*) FROM docs", [], |r| r.get(0))
        .expect("count")
}

#[test]
fn bad_bodies_are_refused_with_a_stable_code_and_nothing_is_kept() {
    let server = ServerProcess::start_with_config(Some(CONFIG));
    let url = server.url.clone();
    let mut dev = server.raw_device(&[VILLAGE_A]);
    let actor = dev.phone.profile().actor.clone();
    let (good_id, good_changes) = class_changes(&mut dev, VILLAGE_A);
    let other_village_id = uuid::Uuid::from_u128(9);
    let other_village_changes = raw_doc(&actor, |tx| {
        tx.put(ROOT, "kind", "class").ok();
        tx.put(ROOT, "schema", 1u64).ok();
        tx.put(ROOT, "id", other_village_id.to_string()).ok();
        tx.put(ROOT, "district", "450802").ok();
        tx.put(ROOT, "village", VILLAGE_B).ok();
    });
    let foreign_actor = raw_doc(&automerge::ActorId::random(), |tx| {
        tx.put(ROOT, "kind", "class").ok();
    });
    let zstd = |b: &[u8]| compress(b);
    let uid = || uuid::Uuid::new_v4();

    let reused = request(&dev, vec![push(good_id, good_changes.clone())]);
    let mut reused_other = reused.clone();
    reused_other.pushes.clear();

    let wrong_types = raw_doc(&actor, |tx| {
        let id = uuid::Uuid::from_u128(7).to_string();
        tx.put(ROOT, "kind", "class").ok();
        tx.put(ROOT, "schema", 1u64).ok();
        tx.put(ROOT, "id", id).ok();
        tx.put(ROOT, "district", "450802").ok();
        tx.put(ROOT, "village", VILLAGE_A).ok();
        let info = tx
            .put_object(ROOT, "info", automerge::ObjType::Map)
            .expect("map");
        tx.put(&info, "title", 42i64).ok();
    });
    let unknown_kind = raw_doc(&actor, |tx| {
        tx.put(ROOT, "kind", "spaceship").ok();
        tx.put(ROOT, "schema", 1u64).ok();
        tx.put(ROOT, "id", uuid::Uuid::from_u128(8).to_string())
            .ok();
        tx.put(ROOT, "district", "450802").ok();
        tx.put(ROOT, "village", VILLAGE_A).ok();
    });
    let many_ops = raw_doc(&actor, |tx| {
        let list = tx
            .put_object(ROOT, "items", automerge::ObjType::List)
            .expect("list");
        for i in 0..3_000 {
            tx.insert(&list, i, i as i64).ok();
        }
    });
    let huge_text = raw_doc(&actor, |tx| {
        tx.put(ROOT, "kind", "x".repeat(200_000)).ok();
    });
    let mut bad_version = postcard_bytes(&request(&dev, vec![]));
    bad_version[0] = 2;
    let incompressible: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut bad_district = request(&dev, vec![]);
    bad_district.district = "45080".into();
    let mut foreign_village = request(&dev, vec![]);
    foreign_village.cursors[0].village = "110105001001".into();

    let rows: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty body", vec![], 400, "empty_body"),
        (
            "random bytes",
            b"\x01\x02not a sync body".to_vec(),
            415,
            "not_compressed",
        ),
        (
            "zstd of garbage",
            zstd(b"\xff\xff\xff\xff\xff\xff"),
            400,
            "malformed_body",
        ),
        (
            "decompression bomb",
            zstd(&vec![0u8; 16 << 20]),
            413,
            "decompressed_too_large",
        ),
        ("body over the cap", incompressible, 413, "body_too_large"),
        (
            "another protocol version",
            zstd(&bad_version),
            400,
            "unsupported_version",
        ),
        ("bad district", encode(&bad_district), 400, "bad_request"),
        (
            "a cursor of a village outside the device's: answered as having nothing",
            encode(&foreign_village),
            200,
            "",
        ),
        (
            "malformed changes",
            encode(&request(
                &dev,
                vec![push_packed(uid(), b"not automerge".to_vec())],
            )),
            400,
            "malformed_changes",
        ),
        (
            "truncated changes",
            encode(&request(
                &dev,
                vec![push_packed(good_id, {
                    let p = pack(&good_changes, &[]).expect("pack");
                    p[..p.len() - 3].to_vec()
                })],
            )),
            400,
            "malformed_changes",
        ),
        (
            "a whole document instead of changes",
            encode(&request(
                &dev,
                vec![push_packed(
                    good_id,
                    Automerge::load(&good_changes).expect("load").save(),
                )],
            )),
            400,
            "malformed_changes",
        ),
        (
            "references that unpack beyond the per-document cap",
            encode(&request(
                &dev,
                vec![push_packed(good_id, {
                    let mut p = pack(&good_changes, &[]).expect("pack");
                    // A second change naming the first as its dependency 100,000 times: 100 KB sent,
                    // 3.2 MB if rebuilt.
                    p.extend([0xa0, 0x8d, 0x06]);
                    p.extend(std::iter::repeat_n(1u8, 100_000));
                    p
                })],
            )),
            413,
            "document_too_large",
        ),
        (
            "a body without its checksum",
            zstd::bulk::compress(&postcard_bytes(&reused), 3).expect("compress"),
            400,
            "malformed_body",
        ),
        (
            "document outside the phone's villages",
            encode(&request(
                &dev,
                vec![push(other_village_id, other_village_changes)],
            )),
            403,
            "out_of_scope",
        ),
        (
            "unknown document kind",
            encode(&request(
                &dev,
                vec![push(uuid::Uuid::from_u128(8), unknown_kind)],
            )),
            422,
            "schema_violation",
        ),
        (
            "wrong value types",
            encode(&request(
                &dev,
                vec![push(uuid::Uuid::from_u128(7), wrong_types)],
            )),
            422,
            "schema_violation",
        ),
        (
            "document id differs from its content",
            encode(&request(&dev, vec![push(uid(), good_changes.clone())])),
            422,
            "schema_violation",
        ),
        (
            "too many operations",
            encode(&request(&dev, vec![push(uid(), many_ops)])),
            429,
            "too_many_ops",
        ),
        (
            "one huge text",
            encode(&request(&dev, vec![push(uid(), huge_text)])),
            413,
            "document_too_large",
        ),
        (
            "too many documents",
            encode(&request(
                &dev,
                (0..6).map(|_| push(uid(), vec![])).collect(),
            )),
            429,
            "too_much_in_one_request",
        ),
        (
            "changes of an actor that is not this device's",
            encode(&request(&dev, vec![push(uid(), foreign_actor)])),
            403,
            "foreign_actor",
        ),
        (
            "document pushed twice (the first alone is valid)",
            encode(&request(
                &dev,
                vec![
                    push(good_id, good_changes.clone()),
                    push(good_id, good_changes.clone()),
                ],
            )),
            400,
            "bad_request",
        ),
    ];
    for (what, body, status, code) in rows {
        let a = dev.sync(&body);
        assert_eq!((a.status, a.code.as_str()), (status, code), "row '{what}'");
        if status == 429 {
            assert!(a.retry_after, "row '{what}': Retry-After");
        }
        assert_eq!(stored_documents(&server), 0, "row '{what}': nothing stored");
    }

    // A request id used again with other content is refused; the same content is a retry.
    let first = dev.sync(&encode(&reused));
    assert_eq!(first.status, 200);
    let same = dev.sync(&encode(&reused));
    assert_eq!(same.status, 200, "a retry of the same request");
    let conflict = dev.sync(&encode(&reused_other));
    assert_eq!(
        (conflict.status, conflict.code.as_str()),
        (409, "request_id_reused")
    );
    assert_eq!(stored_documents(&server), 1);

    // The server still serves phones.
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A, VILLAGE_B]);
    let r = phone.sync(&url);
    assert_eq!(r["docs_pulled"], 1);
    let health = ureq::get(format!("{url}/healthz")).call().expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
}

#[test]
fn a_response_decodes_and_carries_the_server_time() {
    let server = ServerProcess::start();
    let dev = server.raw_device(&[VILLAGE_A]);
    let req = request(&dev, vec![]);
    let a = dev.sync(&encode(&req));
    assert_eq!(a.status, 200);
    let r: SyncResponse = decode(&a.body, 1 << 20).expect("a response");
    assert_eq!(r.request_id, req.request_id);
    let now = chrono::Utc::now().timestamp_millis();
    assert!((r.server_time_ms - now).abs() < 60_000);
    assert_eq!(r.cursors.len(), 1);
    assert!(!r.more);
    assert_eq!(r.scope, None, "the phone follows exactly its villages");
}

fn postcard_bytes(r: &SyncRequest) -> Vec<u8> {
    // encode() is postcard then zstd: undo the zstd to get at the version field.
    zstd_decompress(&encode(r))
}

fn zstd_decompress(b: &[u8]) -> Vec<u8> {
    zstd::bulk::decompress(b, 1 << 20).expect("decompress")
}

/// POSTs JSON over a plain socket, not minding a server that answers (and closes) before it has
/// read the whole body; returns the status and the response body.
fn raw_post(url: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(url.trim_start_matches("http://")).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: songpei\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body));
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.as_bytes().to_vec())
        .unwrap_or_default();
    (status, body)
}

/// Row A11: JSON bodies nested 100,000 deep, with numbers of 10,000 digits, or sent under another
/// content type, get a 4xx with a code on every JSON route that takes a body; the server stays up.
#[test]
fn deeply_nested_and_huge_json_is_refused_and_the_server_stays_up() {
    let server = ServerProcess::start();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!(
        "{{\"reason\":{}1{}}}",
        "{\"a\":".repeat(50_000),
        "}".repeat(50_000)
    );
    let huge = format!("{{\"code\":{}}}", "9".repeat(10_000));
    for path in [
        "/v1/enroll",
        "/v1/auth/token",
        "/v1/cards",
        "/api/v1/login",
        "/api/v1/trainees/search",
        "/api/v1/review",
    ] {
        for body in [
            deep.as_str(),
            deep_object.as_str(),
            huge.as_str(),
            "\u{0}not json",
        ] {
            let (status, answer) = raw_post(&server.url, path, body.as_bytes());
            let code = serde_json::from_slice::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_owned))
                .unwrap_or_default();
            assert!(
                (400..500).contains(&status) && !code.is_empty(),
                "{path}: {status} {}",
                String::from_utf8_lossy(&answer)
            );
        }
    }
    let health = ureq::get(format!("{}/healthz", server.url))
        .call()
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200, "the server is still up");
}

/// Row D6: a coordinator's phone writes a role and a scope into a document it may write. Whatever
/// becomes of that document, the device gains nothing: its writes to another village are still
/// refused, the office API does not take its token, and its account is as it was.
#[test]
fn a_role_or_scope_written_in_a_document_gives_no_authority() {
    use automerge::transaction::Transactable;
    let server = ServerProcess::start();
    let mut dev = server.raw_device(&[VILLAGE_A]);
    let actor = dev.phone.profile().actor.clone();
    let (id, _) = class_changes(&mut dev, VILLAGE_A);
    let bytes = dev
        .phone
        .document_bytes(songpei_core::ids::DocId::from(
            songpei_core::ids::ClassId::from(id),
        ))
        .expect("read")
        .expect("stored");
    let mut doc = Automerge::load(&bytes)
        .expect("load")
        .with_actor(actor.clone());
    let mut tx = doc.transaction();
    tx.put(ROOT, "role", "district_admin").ok();
    tx.put(ROOT, "villages", VILLAGE_B).ok();
    tx.put(ROOT, "scope", "450802").ok();
    tx.commit();
    let claimed = dev.sync(&encode(&request(&dev, vec![push(id, doc.save_after(&[]))])));
    eprintln!(
        "D6: the document with a role and a scope was answered {} {}",
        claimed.status, claimed.code
    );
    assert_ne!(claimed.status, 500);

    let other = uuid::Uuid::new_v4();
    let other_changes = raw_doc(&actor, |tx| {
        tx.put(ROOT, "kind", "class").ok();
        tx.put(ROOT, "schema", 1u64).ok();
        tx.put(ROOT, "id", other.to_string()).ok();
        tx.put(ROOT, "district", "450802").ok();
        tx.put(ROOT, "village", VILLAGE_B).ok();
    });
    let refused = dev.sync(&encode(&request(&dev, vec![push(other, other_changes)])));
    assert_eq!(
        (refused.status, refused.code.as_str()),
        (403, "out_of_scope"),
        "still no writes to another village"
    );
    let office = ureq::Agent::from(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
    .get(format!("{}/api/v1/overview", server.url))
    .header("Authorization", format!("Bearer {}", dev.token))
    .call()
    .expect("answer");
    assert_eq!(
        office.status().as_u16(),
        401,
        "the office API does not take a device token"
    );
    let role: String = server
        .database()
        .query_row(
            "SELECT a.role FROM accounts a JOIN devices d ON d.account_id = a.id WHERE d.id = ?1",
            songpei_server::args![dev.device().to_string()],
            |r| r.get(0),
        )
        .expect("role");
    assert_eq!(role, "coordinator");
}
