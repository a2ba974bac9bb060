//! QR sign-in end to end through the CLIs and the real server: flow A between a coordinator's and a
//! trainee's phone offline, codes refused when stale or altered, printed cards that decode back to
//! their trainees, flow B, a withdrawn card key (D1), a phone clock two years ahead (E1), a phone
//! restarted since its last sync (E3), and a modified app whose replayed and forged proofs the
//! server keeps but flags (C4, D1).

use std::collections::BTreeSet;

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use chrono::{Duration, Timelike, Utc};
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::ids::{ClassId, DocId};
use songpei_core::qr::Code;
use songpei_core::store::SqliteDocStore;
use songpei_core::sync::changes::pack;
use songpei_core::sync::protocol::{Cursor, PROTOCOL_VERSION, Push, SyncRequest, encode, to_wire};
use songpei_tests::{CliPhone, ServerProcess, VILLAGE_A, at, id_number, ok, refused};

fn flags(server: &ServerProcess, class: &str) -> Vec<serde_json::Value> {
    let out = server.admin_ok(&["flags", "--class", class, "--json"]);
    serde_json::from_str::<serde_json::Value>(&out)
        .expect("flags JSON")
        .as_array()
        .expect("array")
        .clone()
}

fn flags_of(all: &[serde_json::Value], attendance: &str) -> BTreeSet<String> {
    all.iter()
        .filter(|f| f["attendance"] == attendance)
        .map(|f| f["flag"].as_str().expect("flag").to_owned())
        .collect()
}

/// The class's records as the server checked them.
fn checks(server: &ServerProcess, class: &str) -> Vec<(String, String, Option<i64>, i64)> {
    server
        .database()
        .query_map(
            "SELECT attendance_id, method, proof_valid, payable FROM attendance_checks
             WHERE class_id = ?1 ORDER BY at_ms",
            songpei_server::args![class],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("rows")
}

/// The checked row of one record.
fn row_of(
    checked: &[(String, String, Option<i64>, i64)],
    id: &str,
) -> (String, String, Option<i64>, i64) {
    checked
        .iter()
        .find(|r| r.0 == id)
        .cloned()
        .expect("checked")
}

/// An instructor of village A with a phone, known to `coord` (which syncs to learn of them).
fn instructor(server: &ServerProcess, coord: &CliPhone) -> (CliPhone, String) {
    let name = format!("i{}", rand::random::<u32>());
    let phone = server.instructor(&name, &[VILLAGE_A]);
    ok(at(coord, 500, None, None, &["sync"]));
    (phone, name)
}

/// A class held today (China time) in village A, its hours around now, at a venue with a fix,
/// naming `instructor`'s account.
fn class_today(phone: &CliPhone, instructor: &str) -> (String, String) {
    let local = Utc::now() + Duration::hours(8);
    let day = local.format("%Y-%m-%d").to_string();
    let start = format!("{:02}:00", local.hour().saturating_sub(1));
    let id = phone.ok(&[
        "class",
        "create",
        "--title",
        "大湾村电工培训班",
        "--village",
        VILLAGE_A,
        "--occupation",
        "电工",
        "--level",
        "初级工",
        "--type",
        "就业技能培训",
        "--start",
        &day,
        "--days",
        "3",
        "--hours",
        "8",
        "--starts-at",
        &start,
        "--venue",
        "村委会",
        "--lat",
        "23.1",
        "--lon",
        "109.6",
        "--instructor-account",
        instructor,
    ]);
    (id, day)
}

fn flow_a_offline_cards_and_the_server_checks_every_proof(
    start: &dyn Fn(Option<&str>) -> ServerProcess,
) {
    // Every card scan counts alone here (ADR 0007's share is tested in `fraud`): this is about the
    // proofs.
    let server = start(Some("[signin]\ncard_share_percent = 100\n"));
    let coord = CliPhone::new();
    server.enroll(&coord, &[VILLAGE_A]);
    let (chen, chen_name) = instructor(&server, &coord);
    let (class, day) = class_today(&coord, &chen_name);
    let names = ["张三", "李四", "王五", "赵六"];
    let trainees: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let t = coord.trainee(n, &id_number(&format!("4508021990010{}12", 10 + i)), &[]);
            coord.ok(&["enrol", &class, &t]);
            t
        })
        .collect();
    // The coordinator syncs once: the server's time and the district's card keys arrive.
    ok(at(&coord, 1_000_000, None, None, &["sync"]));
    // The trainee's phone key is registered to the trainee in person.
    ok(at(&chen, 1, None, None, &["sync"]));
    let trainee_phone = CliPhone::new();
    coord.register_trainee_phone(&chen, &trainee_phone, &class, &trainees[0]);

    // Flow A, offline: nothing below talks to the server.
    let code = ok(at(
        &coord,
        1_010_000,
        None,
        None,
        &["qr", "class-code", "--class", &class, "--day", &day],
    ));
    assert!(code.starts_with("SP:"), "{code}");
    let response = ok(at(
        &trainee_phone,
        5,
        None,
        None,
        &["qr", "respond", &code, "--trainee", &trainees[0]],
    ));
    let scanned: serde_json::Value = serde_json::from_str(&ok(at(
        &coord,
        1_025_000,
        None,
        None,
        &["--json", "qr", "scan", &response],
    )))
    .expect("json");
    assert_eq!(scanned["recorded"], true, "{scanned}");
    assert_eq!(scanned["trainee"], trainees[0].as_str());
    assert_eq!(scanned["time_verified"], true);
    let legit = scanned["attendance"].as_str().expect("id").to_owned();
    // The same response again writes nothing new.
    let again: serde_json::Value = serde_json::from_str(&ok(at(
        &coord,
        1_026_000,
        None,
        None,
        &["--json", "qr", "scan", &response],
    )))
    .expect("json");
    assert_eq!(again["recorded"], false);

    // A response 21 s after its class code was shown is refused, with the reason.
    let code2 = ok(at(
        &coord,
        1_100_000,
        None,
        None,
        &["qr", "class-code", "--class", &class, "--day", &day],
    ));
    let late = ok(at(
        &trainee_phone,
        9,
        None,
        None,
        &["qr", "respond", &code2, "--trainee", &trainees[1]],
    ));
    refused(
        at(&coord, 1_121_000, None, None, &["qr", "scan", &late]),
        "came 21 s after its class code was shown",
    );
    // A class code or a response with one character changed is refused, with the reason.
    let altered = change_one_char(&code2);
    refused(
        at(
            &trainee_phone,
            10,
            None,
            None,
            &["qr", "respond", &altered, "--trainee", &trainees[1]],
        ),
        "signature does not verify",
    );
    refused(
        at(
            &coord,
            1_101_000,
            None,
            None,
            &["qr", "scan", &change_one_char(&late)],
        ),
        "the code was altered or forged",
    );
    // A response to a class code another phone showed is not this phone's to take.
    let other = CliPhone::new();
    server.enroll(&other, &[VILLAGE_A]);
    ok(at(&other, 1, None, None, &["sync"]));
    let foreign = ok(at(
        &other,
        2,
        None,
        None,
        &["qr", "class-code", "--class", &class, "--day", &day],
    ));
    let foreign_resp = ok(at(
        &trainee_phone,
        11,
        None,
        None,
        &["qr", "respond", &foreign],
    ));
    refused(
        at(
            &coord,
            1_101_000,
            None,
            None,
            &["qr", "scan", &foreign_resp],
        ),
        "did not show",
    );

    // Cards: printed through the server, every card decodes back to its trainee.
    let dir = tempfile::tempdir().expect("tempdir");
    let sheet = dir.path().join("cards.png");
    let printed = coord.json(&[
        "qr",
        "cards",
        "--class",
        &class,
        "--out",
        sheet.to_str().expect("path"),
    ]);
    assert_eq!(printed["cards"], 4, "{printed}");
    let decoded = coord.json(&["qr", "decode", sheet.to_str().expect("path")]);
    let texts: Vec<String> = decoded["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .map(|t| t.as_str().expect("text").to_owned())
        .collect();
    let on_cards: BTreeSet<String> = texts
        .iter()
        .map(|t| match Code::parse(t) {
            Ok(Code::Card(c)) => c.trainee.to_string(),
            other => panic!("not a card: {other:?}"),
        })
        .collect();
    assert_eq!(on_cards, trainees.iter().cloned().collect::<BTreeSet<_>>());
    let card_of = |t: &str| {
        texts
            .iter()
            .find(|x| matches!(Code::parse(x), Ok(Code::Card(c)) if c.trainee.to_string() == t))
            .expect("card")
            .clone()
    };

    // Flow B: the coordinator scans trainee 2's card during the sign-in of the last class code.
    let b: serde_json::Value = serde_json::from_str(&ok(at(
        &coord,
        1_130_000,
        None,
        None,
        &[
            "--json",
            "qr",
            "scan",
            &card_of(&trainees[1]),
            "--lat",
            "23.1001",
            "--lon",
            "109.6001",
        ],
    )))
    .expect("json");
    assert_eq!(b["recorded"], true, "{b}");
    let card_record = b["attendance"].as_str().expect("id").to_owned();

    // E3: after a restart (another boot), a card scan is kept but marked "time unverified". (Its
    // wall time is half a minute on, as a queue moves: five scans within 8 s would be flagged.)
    let later = (Utc::now() + Duration::seconds(30)).to_rfc3339();
    let e3: serde_json::Value = serde_json::from_str(&ok(at(
        &coord,
        50,
        Some(&later),
        Some("boot-b"),
        &[
            "--json",
            "qr",
            "scan",
            &card_of(&trainees[2]),
            "--class",
            &class,
            "--day",
            &day,
        ],
    )))
    .expect("json");
    assert_eq!(e3["time_verified"], false, "{e3}");
    let unverified = e3["attendance"].as_str().expect("id").to_owned();

    // After sync the server holds every proof, checked again.
    ok(at(&coord, 55, None, Some("boot-b"), &["sync"]));
    let all = flags(&server, &class);
    assert!(flags_of(&all, &legit).is_empty(), "{all:?}");
    assert!(flags_of(&all, &card_record).is_empty(), "{all:?}");
    assert_eq!(
        flags_of(&all, &unverified),
        BTreeSet::from(["time_unverified".to_owned()])
    );
    let checked = checks(&server, &class);
    let row = |id: &str| row_of(&checked, id);
    assert_eq!(row(&legit), (legit.clone(), "qr".into(), Some(1), 1));
    assert_eq!(
        row(&card_record),
        (card_record.clone(), "card".into(), Some(1), 1)
    );
    assert_eq!(
        row(&unverified).3,
        0,
        "unverified time is not paid before review"
    );

    // A modified phone adds two records carrying trainee 1's proof: one replayed as is, one with
    // the response's signature altered.
    let (replayed, forged, malformed) = forge_records(&server, &coord, &class, &legit);
    let all = flags(&server, &class);
    assert!(flags_of(&all, &replayed).contains("replayed"), "{all:?}");
    assert!(flags_of(&all, &forged).contains("invalid_proof"), "{all:?}");
    let detail = |id: &str, flag: &str| {
        all.iter()
            .find(|f| f["attendance"] == id && f["flag"] == flag)
            .map(|f| f["detail"].as_str().expect("detail").to_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        detail(&forged, "invalid_proof"),
        "the response's signature does not verify"
    );
    assert_eq!(
        detail(&malformed, "invalid_proof"),
        "the class code cannot be read",
        "{all:?}"
    );
    // Which copy of a replayed response is the real one cannot be told: both wait for review.
    assert_eq!(
        flags_of(&all, &legit),
        BTreeSet::from(["replayed".to_owned()])
    );
    let checked = checks(&server, &class);
    let row = |id: &str| row_of(&checked, id);
    assert_eq!(row(&forged).2, Some(0), "the forged proof does not verify");
    assert_eq!(row(&forged).3, 0);
    assert_eq!(row(&replayed).3, 0);
    assert_eq!(row(&legit).3, 0);
    assert_eq!(row(&malformed).2, Some(0));

    // D1: the district withdraws its card key; once the phone syncs, old cards are refused.
    server.admin_ok(&["card-key", "rotate"]);
    ok(at(&coord, 70, None, Some("boot-b"), &["sync"]));
    refused(
        at(
            &coord,
            80,
            None,
            Some("boot-b"),
            &[
                "qr",
                "scan",
                &card_of(&trainees[3]),
                "--class",
                &class,
                "--day",
                &day,
            ],
        ),
        "withdrawn district key",
    );
}

/// E1: a coordinator's phone whose clock is two years ahead still runs flow A (freshness is on the
/// time since boot), and the server corrects its record's time by the offset seen at sync.
#[test]
fn a_phone_clock_two_years_ahead_is_corrected() {
    let server = ServerProcess::start();
    let coord = CliPhone::new();
    server.enroll(&coord, &[VILLAGE_A]);
    let (chen, chen_name) = instructor(&server, &coord);
    let (class, day) = class_today(&coord, &chen_name);
    let t = coord.trainee("钱七", &id_number("45080219900101321"), &[]);
    coord.ok(&["enrol", &class, &t]);
    let ahead = (Utc::now() + Duration::days(730)).to_rfc3339();
    ok(at(&coord, 5_000, Some(&ahead), None, &["sync"]));
    ok(at(&chen, 1, None, None, &["sync"]));
    let trainee_phone = CliPhone::new();
    coord.register_trainee_phone(&chen, &trainee_phone, &class, &t);
    let code = ok(at(
        &coord,
        6_000,
        Some(&ahead),
        None,
        &["qr", "class-code", "--class", &class, "--day", &day],
    ));
    let resp = ok(at(
        &trainee_phone,
        1,
        None,
        None,
        &["qr", "respond", &code, "--trainee", &t],
    ));
    let rec: serde_json::Value = serde_json::from_str(&ok(at(
        &coord,
        12_000,
        Some(&ahead),
        None,
        &["--json", "qr", "scan", &resp],
    )))
    .expect("json");
    assert_eq!(rec["time_verified"], true);
    let id = rec["attendance"].as_str().expect("id").to_owned();
    ok(at(&coord, 13_000, Some(&ahead), None, &["sync"]));
    let all = flags(&server, &class);
    assert_eq!(
        flags_of(&all, &id),
        BTreeSet::from(["clock_mismatch".to_owned()]),
        "only the informational flag: {all:?}"
    );
    let (at_ms, corrected, payable): (i64, i64, i64) = server
        .database()
        .query_row(
            "SELECT at_ms, corrected_ms, payable FROM attendance_checks WHERE attendance_id = ?1",
            songpei_server::args![&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("row");
    let now = Utc::now().timestamp_millis();
    assert!(
        at_ms - now > 700 * 86_400_000,
        "the phone's own clock is kept"
    );
    assert!(
        (corrected - now).abs() < 120_000,
        "corrected to the server's time"
    );
    assert_eq!(payable, 1);
}

fn change_one_char(text: &str) -> String {
    // A character in the middle of the base45 body, replaced by another of the alphabet.
    let mut chars: Vec<char> = text.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// A modified app on another enrolled phone of the village takes the class document from the
/// coordinator's store and adds three attendance records copied from `source`: one exact (a
/// replay), one with a bit of the response's signature flipped, one whose class code has a trailing
/// byte (A8), and pushes them. Returns their ids.
fn forge_records(
    server: &ServerProcess,
    phone: &CliPhone,
    class: &str,
    source: &str,
) -> (String, String, String) {
    let key: [u8; 32] = hex_to_key(&phone.key);
    let store = SqliteDocStore::open(&phone.store_file(), &key).expect("open store");
    let mut p = songpei_core::Phone::open(store, BlindIndexKey::derive_from_store_key(&key))
        .expect("open phone");
    let class_id: ClassId = class.parse().expect("class id");
    let doc_id = DocId::from(class_id);
    let bytes = p.document_bytes(doc_id).expect("read").expect("doc");
    drop(p);
    let raw = server.raw_device(&[VILLAGE_A]);
    let mut doc = Automerge::load(&bytes).expect("load");
    doc.set_actor(raw.phone.profile().actor.clone());
    let base = doc.get_heads();
    let replay = uuid::Uuid::new_v4().to_string();
    let forged = uuid::Uuid::new_v4().to_string();
    let malformed = uuid::Uuid::new_v4().to_string();
    {
        let (_, att) = doc
            .get(ROOT, "attendance")
            .expect("get")
            .expect("attendance");
        let (_, src) = doc.get(&att, source).expect("get").expect("source record");
        let fields: Vec<(String, ScalarValue)> = doc
            .keys(&src)
            .filter_map(|k| match doc.get(&src, k.as_str()) {
                Ok(Some((Value::Scalar(s), _))) => Some((k.clone(), s.into_owned())),
                _ => None,
            })
            .collect();
        let mut tx = doc.transaction();
        for (id, tamper) in [(&replay, 0), (&forged, 1), (&malformed, 2)] {
            let rec = tx
                .put_object(&att, id.as_str(), ObjType::Map)
                .expect("record");
            for (k, v) in &fields {
                let v = match (k.as_str(), v, tamper) {
                    ("response", ScalarValue::Bytes(b), 1) => {
                        let mut b = b.clone();
                        let last = b.len() - 1;
                        b[last] ^= 1;
                        ScalarValue::Bytes(b)
                    }
                    ("code", ScalarValue::Bytes(b), 2) => {
                        let mut b = b.clone();
                        b.push(0);
                        ScalarValue::Bytes(b)
                    }
                    _ => v.clone(),
                };
                tx.put(&rec, k.as_str(), v).expect("put");
            }
        }
        tx.commit();
    }
    let changes = pack(&doc.save_after(&base), &base).expect("pack");
    let req = SyncRequest {
        version: PROTOCOL_VERSION,
        request_id: rand::random(),
        device: raw.device(),
        district: "450802".into(),
        cursors: vec![Cursor {
            village: VILLAGE_A.into(),
            seq: 0,
            tag: 0,
        }],
        pushes: vec![Push {
            doc: class_id.uuid(),
            base: to_wire(&base),
            changes,
        }],
        max_response_bytes: 1 << 20,
        card_keys: 0,
        policy: 0,
        instructors: 0,
    };
    let answer = raw.sync(&encode(&req));
    assert_eq!(answer.status, 200, "{answer:?}");
    (replay, forged, malformed)
}

fn hex_to_key(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

songpei_tests::on_every_database!(flow_a_offline_cards_and_the_server_checks_every_proof);
