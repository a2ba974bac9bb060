//! Attendance a lone coordinator cannot fake (ADR 0007), end to end through real phones and the real
//! server: a table of fraud attempts, each ending unpaid or held with the flag it should raise, and
//! the honest paths (a registered trainee phone, a card an instructor scanned too) paid with no flag.

use std::collections::{BTreeMap, BTreeSet};

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc, ScalarValue};
use chrono::{Duration, SecondsFormat, Timelike, Utc};
use songpei_core::ids::{ClassId, DeviceId, DocId, TraineeId};
use songpei_core::qr::{Code, KeyClaim, Registration, Witnessed};
use songpei_tests::{CliPhone, ServerProcess, VILLAGE_A, at, id_number, ok, refused};

/// The venue, and the coordinator's fix at it.
const VENUE: (f64, f64) = (23.1, 109.6);
/// A point `m` metres north of `from`.
fn north(from: (f64, f64), m: f64) -> (f64, f64) {
    (from.0 + (m / 6_371_000.0).to_degrees(), from.1)
}

/// Files registrations straight into the class document, as a modified app would (no check on
/// the phone), and pushes them to the server from another enrolled phone of the village.
fn file_raw(server: &ServerProcess, coord: &CliPhone, class: &str, regs: &[Registration]) {
    let class_id: ClassId = class.parse().expect("class id");
    let bytes = {
        let mut p = coord.open_core();
        p.document_bytes(DocId::from(class_id))
            .expect("read")
            .expect("class document")
    };
    let raw = server.raw_device(&[VILLAGE_A]);
    let answer = raw.push_edit(DocId::from(class_id), VILLAGE_A, &bytes, |tx| {
        let keys = match tx.get(ROOT, "keys").expect("get") {
            Some((_, id)) => id,
            None => tx.put_object(ROOT, "keys", ObjType::Map).expect("keys"),
        };
        for reg in regs {
            let id = reg.witnessed().map_or_else(|| "x".repeat(32), |w| w.id());
            let e = tx
                .put_object(&keys, id.as_str(), ObjType::Map)
                .expect("entry");
            tx.put(&e, "witnessed", ScalarValue::Bytes(reg.witnessed.clone()))
                .expect("put");
            tx.put(&e, "registrar", reg.registrar.to_string())
                .expect("put");
            tx.put(&e, "at", ScalarValue::Timestamp(reg.at_ms))
                .expect("put");
            tx.put(&e, "signature", ScalarValue::Bytes(reg.signature.clone()))
                .expect("put");
        }
    });
    assert_eq!(answer.status, 200, "{answer:?}");
}

fn witnessed(text: &str) -> Witnessed {
    match Code::parse(text) {
        Ok(Code::Witnessed(w)) => w,
        other => panic!("not a witnessed claim: {other:?}"),
    }
}

fn key_claim(text: &str) -> KeyClaim {
    match Code::parse(text) {
        Ok(Code::KeyClaim(c)) => c,
        other => panic!("not a key claim: {other:?}"),
    }
}

/// Flags and pay of every checked record of the class.
fn outcomes(server: &ServerProcess, class: &str) -> BTreeMap<String, (BTreeSet<String>, i64)> {
    let db = server.database();
    let rows: Vec<(String, i64)> = db
        .query_map(
            "SELECT attendance_id, payable FROM attendance_checks WHERE class_id = ?1",
            songpei_server::args![class],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("checks");
    let flags: Vec<(String, String)> = db
        .query_map(
            "SELECT attendance_id, flag FROM attendance_flags WHERE class_id = ?1",
            songpei_server::args![class],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("flags");
    rows.into_iter()
        .map(|(a, payable)| {
            let f = flags
                .iter()
                .filter(|(x, _)| *x == a)
                .map(|(_, f)| f.clone())
                .collect();
            (a, (f, payable))
        })
        .collect()
}

/// Why each registration of the trainee was not taken (empty: taken).
fn registration_problems(server: &ServerProcess, trainee: &str) -> Vec<Option<String>> {
    server
        .database()
        .query_map(
            "SELECT problem FROM trainee_keys WHERE trainee_id = ?1",
            songpei_server::args![trainee],
            |r| r.get(0),
        )
        .expect("trainee keys")
}

fn every_fraud_attempt_ends_unpaid_or_held_and_the_honest_paths_stay_paid(
    start: &dyn Fn(Option<&str>) -> ServerProcess,
) {
    let server = start(Some("[signin]\ncard_share_percent = 20\n"));
    // The district's accounts: a coordinator, the class's instructor (with a second phone), and
    // an instructor of the village the class does not name.
    let coord = CliPhone::new();
    server.add_account("li", "coordinator", &[VILLAGE_A]);
    let coord_device: DeviceId = server.enroll_as(&coord, "li").parse().expect("device");
    let chen = server.instructor("chen", &[VILLAGE_A]);
    let chen2 = CliPhone::new();
    let chen2_device: DeviceId = server.enroll_as(&chen2, "chen").parse().expect("device");
    let wu = CliPhone::new();
    server.add_account("wu", "instructor", &[VILLAGE_A]);
    let wu_device: DeviceId = server.enroll_as(&wu, "wu").parse().expect("device");
    ok(at(&coord, 1_000_000, None, None, &["sync"]));

    // A class today, its hours around now, naming chen.
    let local = Utc::now() + Duration::hours(8);
    let day = local.format("%Y-%m-%d").to_string();
    let start_at = format!("{:02}:00", local.hour().saturating_sub(1));
    let class = coord.ok(&[
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
        &start_at,
        "--venue",
        "村委会",
        "--lat",
        "23.1",
        "--lon",
        "109.6",
        "--subsidised",
        "--instructor-account",
        "chen",
    ]);
    let named = coord.json(&["class", "instructors", &class]);
    let chen_named = named["instructors"]
        .as_array()
        .expect("instructors")
        .iter()
        .find(|i| i["username"] == "chen")
        .expect("chen is an instructor of the village");
    assert_eq!(chen_named["named"], true, "{named}");
    let names = [
        "honest",
        "lone",
        "same",
        "unassigned",
        "replay",
        "relay",
        "card_w",
        "a1",
        "a2",
        "a3",
    ];
    let t: BTreeMap<&str, String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let id = coord.trainee(
                &format!(
                    "学员{}",
                    ["甲", "乙", "丙", "丁", "戊", "己", "庚", "辛", "壬", "癸"][i]
                ),
                &id_number(&format!("4508021990010{}12", 10 + i)),
                &["--poverty", "lifted"],
            );
            coord.ok(&["enrol", &class, &id]);
            (*n, id)
        })
        .collect();
    ok(at(&coord, 1_001_000, None, None, &["sync"]));
    for p in [&chen, &chen2, &wu] {
        ok(at(p, 1_001_000, None, None, &["sync"]));
    }

    // Honest registrations, in person: the trainee's phone shows its claim, chen witnesses it, the
    // coordinator's phone files it.
    let phone: BTreeMap<&str, CliPhone> =
        names[..6].iter().map(|n| (*n, CliPhone::new())).collect();
    let honest_claim = phone["honest"].ok(&["qr", "claim", "--trainee", &t["honest"]]);
    let honest_witnessed = chen.ok(&["qr", "witness", &honest_claim, "--class", &class]);
    let filed = coord.json(&["qr", "register", &honest_witnessed]);
    assert_eq!(filed["registered"], true, "{filed}");
    coord.register_trainee_phone(&chen, &phone["relay"], &class, &t["relay"]);

    // The honest apps refuse what the server would not take.
    let same_claim = phone["same"].ok(&["qr", "claim", "--trainee", &t["same"]]);
    let same_witnessed = chen.ok(&["qr", "witness", &same_claim, "--class", &class]);
    refused(
        chen2.run(&["qr", "register", &same_witnessed]),
        "same account",
    );
    let unassigned_claim = phone["unassigned"].ok(&["qr", "claim", "--trainee", &t["unassigned"]]);
    // An instructor the class does not name never receives it (issue 21, row 3).
    refused(
        wu.run(&["qr", "witness", &unassigned_claim, "--class", &class]),
        "class does not exist on this phone",
    );
    phone["replay"].ok(&["qr", "claim", "--trainee", &t["replay"]]);

    // Modified apps file them anyway (the coordinator's own filings reach the server first).
    ok(at(&coord, 1_050_000, None, None, &["sync"]));
    let now_ms = Utc::now().timestamp_millis();
    let class_id: ClassId = class.parse().expect("class id");
    let today = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").expect("day");
    // Witness and filing phone of one account (chen's two phones).
    let same = Registration::sign(
        &chen2.device_key(),
        witnessed(&same_witnessed).to_bytes(),
        chen2_device,
        now_ms,
    );
    // A witness the class does not name.
    let unassigned = Registration::sign(
        &coord.device_key(),
        Witnessed::sign(
            &wu.device_key(),
            key_claim(&unassigned_claim),
            class_id,
            today,
            wu_device,
        )
        .to_bytes(),
        coord_device,
        now_ms,
    );
    // The honest trainee's witnessed claim replayed for an absent trainee's spare phone.
    let mut replayed = witnessed(&honest_witnessed);
    replayed.claim = KeyClaim::sign(
        &phone["replay"].device_key(),
        t["replay"].parse::<TraineeId>().expect("trainee"),
    );
    let replay = Registration::sign(
        &coord.device_key(),
        replayed.to_bytes(),
        coord_device,
        now_ms,
    );
    file_raw(&server, &coord, &class, &[same, unassigned, replay]);

    // Sign-ins on the coordinator's phone at the venue, ten seconds apart on its clock.
    let wall = |k: i64| {
        (Utc::now() + Duration::seconds(10 * k)).to_rfc3339_opts(SecondsFormat::Millis, true)
    };
    let (lat, lon) = (VENUE.0.to_string(), VENUE.1.to_string());
    let mut record = BTreeMap::new();
    let relay_fix = north(VENUE, 5_000.0);
    for (k, name) in names[..6].iter().enumerate() {
        let up = 1_100_000 + k as i64 * 30_000;
        let code = ok(at(
            &coord,
            up,
            None,
            None,
            &["qr", "class-code", "--class", &class, "--day", &day],
        ));
        // Each trainee phone answers where it is: the relayed one 5 km away, within the window.
        let (tlat, tlon) = if *name == "relay" {
            relay_fix
        } else {
            north(VENUE, 20.0)
        };
        let response = phone[name].ok(&[
            "qr",
            "respond",
            &code,
            "--trainee",
            &t[name],
            "--lat",
            &tlat.to_string(),
            "--lon",
            &tlon.to_string(),
            "--accuracy",
            "15",
        ]);
        let w = wall(k as i64);
        let out: serde_json::Value = serde_json::from_str(&ok(at(
            &coord,
            up + 8_000,
            Some(&w),
            None,
            &[
                "--json", "qr", "scan", &response, "--lat", &lat, "--lon", &lon,
            ],
        )))
        .expect("json");
        assert_eq!(out["recorded"], true, "{name}: {out}");
        // The phone tells the coordinator at once which keys it cannot vouch for.
        let registered = matches!(*name, "honest" | "relay");
        assert_eq!(out["key_registered"], registered, "{name}: {out}");
        record.insert(*name, out["attendance"].as_str().expect("id").to_owned());
    }

    // Cards: printed through the server; the coordinator scans card_w, a1, a2 and a3, and chen
    // scans card_w too.
    let dir = tempfile::tempdir().expect("tempdir");
    let sheet = dir.path().join("cards.png");
    coord.json(&[
        "qr",
        "cards",
        "--class",
        &class,
        "--out",
        sheet.to_str().expect("path"),
    ]);
    let decoded = coord.json(&["qr", "decode", sheet.to_str().expect("path")]);
    let card_of = |trainee: &str| -> String {
        decoded["texts"]
            .as_array()
            .expect("texts")
            .iter()
            .filter_map(|x| x.as_str())
            .find(
                |x| matches!(Code::parse(x), Ok(Code::Card(c)) if c.trainee.to_string() == trainee),
            )
            .expect("a card")
            .to_owned()
    };
    for (k, name) in ["card_w", "a1", "a2", "a3"].iter().enumerate() {
        let w = wall(6 + k as i64);
        let out: serde_json::Value = serde_json::from_str(&ok(at(
            &coord,
            1_400_000 + k as i64 * 10_000,
            Some(&w),
            None,
            &[
                "--json",
                "qr",
                "scan",
                &card_of(&t[name]),
                "--class",
                &class,
                "--day",
                &day,
                "--lat",
                &lat,
                "--lon",
                &lon,
            ],
        )))
        .expect("json");
        assert_eq!(out["recorded"], true, "{name}: {out}");
        record.insert(*name, out["attendance"].as_str().expect("id").to_owned());
    }
    ok(at(&coord, 1_500_000, None, None, &["sync"]));
    // Chen's phone learns the district's card key (made when the cards were printed).
    ok(at(&chen, 1_490_000, None, None, &["sync"]));
    let chen_scan: serde_json::Value = serde_json::from_str(&ok(at(
        &chen,
        1_500_000,
        Some(&wall(11)),
        None,
        &[
            "--json",
            "qr",
            "scan",
            &card_of(&t["card_w"]),
            "--class",
            &class,
            "--day",
            &day,
            "--lat",
            &lat,
            "--lon",
            &lon,
        ],
    )))
    .expect("json");
    assert_eq!(chen_scan["recorded"], true, "{chen_scan}");
    let chen_record = chen_scan["attendance"].as_str().expect("id").to_owned();
    ok(at(&chen, 1_510_000, None, None, &["sync"]));

    // The table: every attempt and every honest path, as the server decided.
    let got = outcomes(&server, &class);
    let table: Vec<(&str, &str, &[&str], i64)> = vec![
        ("a registered trainee phone", &record["honest"], &[], 1),
        (
            "the lone coordinator's spare store",
            &record["lone"],
            &["unregistered_key"],
            0,
        ),
        (
            "a key witnessed and filed by one account",
            &record["same"],
            &["unregistered_key"],
            0,
        ),
        (
            "a key witnessed by an instructor the class does not name",
            &record["unassigned"],
            &["unregistered_key"],
            0,
        ),
        (
            "a replayed registration",
            &record["replay"],
            &["unregistered_key"],
            0,
        ),
        (
            "a class code relayed 5 km within 20 s",
            &record["relay"],
            &["relayed"],
            0,
        ),
        (
            "a card the instructor scanned too",
            &record["card_w"],
            &[],
            1,
        ),
        ("the instructor's scan of that card", &chen_record, &[], 1),
        // The share is of the trainees paid by phone (1: the held spare stores and the relay do
        // not widen it) and on cards (4): one card counts alone.
        ("a card within 20% of the sign-in", &record["a1"], &[], 1),
        (
            "a card past 20% of the sign-in",
            &record["a2"],
            &["card_unwitnessed"],
            0,
        ),
        (
            "another card past 20% of the sign-in",
            &record["a3"],
            &["card_unwitnessed"],
            0,
        ),
    ];
    for (what, id, flags, payable) in table {
        let (f, p) = got.get(id).unwrap_or_else(|| panic!("{what}: not checked"));
        let want: BTreeSet<String> = flags.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(f, &want, "{what}: flags");
        assert_eq!(*p, payable, "{what}: payable");
    }
    // Each refused registration says why.
    for (trainee, why) in [
        (
            "same",
            "the witness and the filing phone belong to the same account",
        ),
        (
            "unassigned",
            "the witness is not an instructor of this class",
        ),
        ("replay", "the witness's signature does not verify"),
    ] {
        assert_eq!(
            registration_problems(&server, &t[trainee]),
            vec![Some(why.to_owned())],
            "{trainee}"
        );
    }
    // The coordinator's phone shows what the district pays, held days apart: the honest trainee,
    // the witnessed card and the card within the share, one day each.
    ok(at(&coord, 1_600_000, None, None, &["sync"]));
    let view = coord.class_view(&class);
    let by_trainee: BTreeMap<String, (u64, u64)> = view["roster"]
        .as_array()
        .expect("roster")
        .iter()
        .map(|r| {
            (
                r["trainee_id"].as_str().expect("id").to_owned(),
                (
                    r["payable_days"].as_u64().expect("payable"),
                    r["held_days"].as_u64().expect("held"),
                ),
            )
        })
        .collect();
    for (name, paid) in [
        ("honest", true),
        ("lone", false),
        ("same", false),
        ("unassigned", false),
        ("replay", false),
        ("relay", false),
        ("card_w", true),
        ("a1", true),
        ("a2", false),
        ("a3", false),
    ] {
        let want = if paid { (1, 0) } else { (0, 1) };
        assert_eq!(by_trainee[&t[name]], want, "{name}: {view}");
    }
}

songpei_tests::on_every_database!(
    every_fraud_attempt_ends_unpaid_or_held_and_the_honest_paths_stay_paid
);
