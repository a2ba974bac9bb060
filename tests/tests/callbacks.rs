//! 电话回访 end to end (ADR 0008), through a real phone and the real server on SQLite and on
//! PostgreSQL: every payable trainee-day is on the call list at rate 1 (drawn, or accepted after a
//! flag), oldest first; the number is disclosed only for an open call and audited with its
//! purpose; confirmations, three unanswered attempts and denials close calls; a denial rejects the
//! day and holds the class — the phone's view, the dashboard's class page and the report stop
//! paying it — until the office clears the hold (the other days pay again) or rejects the class
//! (nothing pays). The report gives the month's call-back figures, the signals page the
//! coordinator's shares, and the auditor's verify command finds the list drawn by the server's key.

use std::collections::BTreeMap;

use chrono::{Duration, SecondsFormat, Timelike, Utc};
use serde_json::{Value, json};
use songpei_core::doc::review::{Decision, Review};
use songpei_tests::{CliPhone, Office, ServerProcess, VILLAGE_A, at, id_number, ok};

/// A place's (payable days, held days, allowance in fen) on the phone, after a sync.
fn on_phone(phone: &CliPhone, class: &str, trainee: &str) -> (i64, i64, i64) {
    let v = phone.json(&["class", "show", class]);
    let r = v["roster"]
        .as_array()
        .expect("roster")
        .iter()
        .find(|r| r["trainee_id"] == trainee)
        .unwrap_or_else(|| panic!("{trainee} not in {v}"));
    assert_eq!(r["decided_by"], "district", "{r}");
    (
        r["payable_days"].as_i64().expect("days"),
        r["held_days"].as_i64().expect("held"),
        r["allowance_fen"].as_i64().expect("fen"),
    )
}

/// The allowance of the months `months` in the report, summed.
fn report_fen(office: &Office, months: &[String]) -> i64 {
    months
        .iter()
        .map(|m| {
            office.report(m)["allowance"]["total_fen"]
                .as_i64()
                .expect("fen")
        })
        .sum()
}

/// The open call list, as (trainee, day, reason, attempts) by call id, in the list's order.
fn open_calls(office: &Office) -> Vec<(String, String, String, String, i64)> {
    office.get("/api/v1/callbacks")["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().expect("id").to_owned(),
                c["trainee_id"].as_str().expect("trainee").to_owned(),
                c["day"].as_str().expect("day").to_owned(),
                c["reason"].as_str().expect("reason").to_owned(),
                c["attempts"].as_i64().expect("attempts"),
            )
        })
        .collect()
}

fn outcome(office: &Office, id: &str, outcome: &str, note: &str) -> Value {
    office.post(
        &format!("/api/v1/callbacks/{id}"),
        json!({"outcome": outcome, "note": note}),
    )
}

fn a_denial_holds_the_class_until_the_office_decides_on_every_face(
    start: &dyn Fn(Option<&str>) -> ServerProcess,
) {
    // Near China's midnight the day would turn under the sign-ins below: begin after it.
    let to_midnight =
        86_400 - i64::from((Utc::now() + Duration::hours(8)).num_seconds_from_midnight());
    if to_midnight < 120 {
        std::thread::sleep(std::time::Duration::from_secs(to_midnight as u64 + 2));
    }
    let server = start(Some("[callbacks]\nrate = 1.0\n"));
    let office = Office::sign_in(&server);
    let viewer = Office::sign_in_as(&server, "clerk2", "district_viewer");
    let coord = CliPhone::new();
    server.add_account("li", "coordinator", &[VILLAGE_A]);
    server.enroll_as(&coord, "li");
    server.add_account("zhao", "coordinator", &[VILLAGE_A]);
    // The phone's clock: uptime 1,000,000 ms at t0, when it syncs; every record within 60 s.
    let t0 = Utc::now();
    ok(at(&coord, 1_000_000, None, None, &["sync"]));
    let wall = |up: i64| {
        (t0 + Duration::milliseconds(up - 1_000_000)).to_rfc3339_opts(SecondsFormat::Millis, true)
    };

    // A three-day class from yesterday, its hours around now; three trainees of 脱贫户.
    let local = Utc::now() + Duration::hours(8);
    let today = local.format("%Y-%m-%d").to_string();
    let yesterday = (local - Duration::days(1)).format("%Y-%m-%d").to_string();
    let start_at = format!("{:02}:00", local.hour().saturating_sub(1));
    let class = coord.class_titled(
        "大湾村电工培训班",
        &yesterday,
        3,
        &["--hours", "8", "--starts-at", &start_at, "--subsidised"],
    );
    // 黄伟's number on file is 韦春燕's: a call to it reaches her, not him.
    let phones = ["13800001111", "13800002222", "13800001111"];
    let t: Vec<String> = ["韦春燕", "覃丽", "黄伟"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let id = coord.trainee(
                name,
                &id_number(&format!("4508021990010{}12", 10 + i)),
                &["--poverty", "lifted", "--phone", phones[i]],
            );
            coord.ok(&["enrol", &class, &id]);
            id
        })
        .collect();
    let (a, b, c) = (&t[0], &t[1], &t[2]);
    // Today's sign-ins, by hand on a phone whose clock the server knows: paid with no review.
    // Yesterday's, entered today: outside their day, held, then accepted by the office.
    for (k, who) in [a, b, c].into_iter().enumerate() {
        let up = 1_010_000 + k as i64 * 10_000;
        ok(at(
            &coord,
            up,
            Some(&wall(up)),
            None,
            &["attend", &class, who, "--day", &today, "--in"],
        ));
    }
    for (k, who) in [a, b].into_iter().enumerate() {
        let up = 1_040_000 + k as i64 * 10_000;
        ok(at(
            &coord,
            up,
            Some(&wall(up)),
            None,
            &["attend", &class, who, "--day", &yesterday, "--in"],
        ));
    }
    ok(at(&coord, 1_060_000, None, None, &["sync"]));
    assert_eq!(office.accept_all(&class), 2, "yesterday's two records wait");
    coord.sync(&server.url);
    let months: Vec<String> = {
        let mut m = vec![yesterday[..7].to_owned(), today[..7].to_owned()];
        m.dedup();
        m
    };
    assert_eq!(on_phone(&coord, &class, a), (2, 0, 10_000));
    assert_eq!(report_fen(&office, &months), 25_000);

    // Every payable trainee-day is on the list, oldest first: yesterday's accepted after a flag,
    // today's drawn.
    let calls = open_calls(&office);
    let days: Vec<&str> = calls.iter().map(|c| c.2.as_str()).collect();
    assert_eq!(
        days,
        [&yesterday, &yesterday, &today, &today, &today],
        "{calls:?}"
    );
    for (_, who, day, reason, attempts) in &calls {
        let want = if *day == yesterday {
            "flag_accepted"
        } else {
            "sample"
        };
        assert_eq!((reason.as_str(), *attempts), (want, 0), "{who} {day}");
    }
    let call = |who: &str, day: &str| -> String {
        calls
            .iter()
            .find(|c| c.1 == who && c.2 == day)
            .map(|c| c.0.clone())
            .unwrap_or_else(|| panic!("no call for {who} on {day}: {calls:?}"))
    };
    // The list shows the number masked.
    let listed = office.get("/api/v1/callbacks");
    assert!(
        listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["phone_masked"].as_str().is_some_and(|p| p.contains('*'))),
        "{listed}"
    );
    assert!(!listed.to_string().contains(phones[0]), "{listed}");
    for i in listed["items"].as_array().expect("items") {
        let shared = i64::from(i["trainee_id"] != b.as_str());
        assert_eq!(i["phone_shared_with"], shared, "{i}");
    }

    // The number, disclosed for one open call and audited with its purpose.
    let a_yesterday = call(a, &yesterday);
    let disclosed = office.post(
        &format!("/api/v1/callbacks/{a_yesterday}/phone"),
        json!(null),
    );
    assert_eq!(disclosed["phone"], phones[0], "{disclosed}");
    let audit = office.get("/api/v1/audit?action=disclose_phone");
    let entry = &audit.as_array().expect("entries")[0];
    assert_eq!(entry["actor"], "account:office", "{entry}");
    assert_eq!(entry["subject"], a.as_str(), "{entry}");
    assert_eq!(entry["detail"]["purpose"], "callback", "{entry}");
    assert_eq!(entry["detail"]["callback"], a_yesterday.as_str(), "{entry}");
    assert!(!audit.to_string().contains(phones[0]), "{audit}");

    // What a request may not do: a row per rule.
    let b_today = call(b, &today);
    let long = "很".repeat(501);
    for (who, method, path, body, status, code, field) in [
        (
            &office,
            "POST",
            format!("/api/v1/callbacks/{b_today}"),
            r#"{"outcome": "maybe"}"#.to_owned(),
            400,
            "bad_input",
            Some("outcome"),
        ),
        (
            &office,
            "POST",
            format!("/api/v1/callbacks/{b_today}"),
            json!({"outcome": "confirmed", "note": long}).to_string(),
            400,
            "bad_input",
            Some("note"),
        ),
        (
            &office,
            "POST",
            format!("/api/v1/callbacks/{b_today}"),
            "not json".to_owned(),
            400,
            "bad_request",
            None,
        ),
        (
            &office,
            "POST",
            "/api/v1/callbacks/0123456789abcdef".to_owned(),
            r#"{"outcome": "confirmed"}"#.to_owned(),
            404,
            "not_found",
            None,
        ),
        (
            &viewer,
            "POST",
            format!("/api/v1/callbacks/{b_today}"),
            r#"{"outcome": "confirmed"}"#.to_owned(),
            403,
            "not_allowed",
            None,
        ),
        (
            &viewer,
            "POST",
            format!("/api/v1/callbacks/{b_today}/phone"),
            String::new(),
            403,
            "not_allowed",
            None,
        ),
        (
            &viewer,
            "GET",
            "/api/v1/audit".to_owned(),
            String::new(),
            403,
            "not_allowed",
            None,
        ),
        (
            &office,
            "GET",
            "/api/v1/callbacks?status=all".to_owned(),
            String::new(),
            400,
            "bad_input",
            Some("status"),
        ),
        (
            &office,
            "GET",
            "/api/v1/signals?month=2026-13".to_owned(),
            String::new(),
            400,
            "bad_input",
            Some("month"),
        ),
    ] {
        let (got, v) = who.call(method, &path, Some(&body));
        assert_eq!(
            (got, v["code"].as_str()),
            (status, Some(code)),
            "{path} {body:.40}: {v}"
        );
        if let Some(f) = field {
            assert_eq!(v["field"], f, "{path}: {v}");
        }
    }
    // The viewer reads the list all the same.
    assert_eq!(
        viewer.get("/api/v1/callbacks")["items"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );

    // 确认 closes a call; a closed call takes no more outcomes and discloses nothing.
    let b_yesterday = call(b, &yesterday);
    let r = outcome(&office, &b_yesterday, "confirmed", "本人确认参加");
    assert_eq!(
        (r["closed_as"].as_str(), r["attempts"].as_i64()),
        (Some("confirmed"), Some(1))
    );
    let (status, v) = office.call(
        "POST",
        &format!("/api/v1/callbacks/{b_yesterday}"),
        Some(r#"{"outcome": "denied"}"#),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("callback_closed")),
        "{v}"
    );
    let (status, v) = office.call(
        "POST",
        &format!("/api/v1/callbacks/{b_yesterday}/phone"),
        None,
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("callback_closed")),
        "{v}"
    );
    // 联系不上: open after one and two unanswered attempts, closed after the third.
    for n in 1..=3 {
        let r = outcome(&office, &b_today, "unreachable", "无人接听");
        let want = (n == 3).then_some("unreachable");
        assert_eq!(
            (r["closed_as"].as_str(), r["attempts"].as_i64()),
            (want, Some(n))
        );
        let still_open = open_calls(&office).iter().any(|c| c.0 == b_today);
        assert_eq!(still_open, n < 3, "after attempt {n}");
    }
    // Nothing of that changed what is paid.
    assert_eq!(report_fen(&office, &months), 25_000);

    // 否认: the day is rejected and the class held.
    let r = outcome(&office, &a_yesterday, "denied", "本人说那天在外地打工");
    assert_eq!(r["closed_as"], "denied", "{r}");
    let queue = office.get("/api/v1/review");
    let held: Vec<&Value> = queue["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["kind"] == "hold")
        .collect();
    assert_eq!(held.len(), 1, "{queue}");
    assert_eq!(held[0]["doc_id"], class.as_str());
    assert_eq!(held[0]["subject"], "hold");
    assert_eq!(held[0]["denials"][0]["day"], yesterday.as_str());
    assert_eq!(held[0]["denials"][0]["trainee_id"], a.as_str());
    // The overview counts it among what waits for review.
    let pending = office.get("/api/v1/overview")["pending_review"]
        .as_i64()
        .expect("pending");
    assert_eq!(pending, 1, "the held class, and nothing else");
    coord.sync(&server.url);
    // On the phone: a's denied day neither paid nor held, her other day held; b's and c's held.
    assert_eq!(on_phone(&coord, &class, a), (0, 1, 0));
    assert_eq!(on_phone(&coord, &class, b), (0, 2, 0));
    assert_eq!(on_phone(&coord, &class, c), (0, 1, 0));
    assert_eq!(report_fen(&office, &months), 0);
    let page = office.get(&format!("/api/v1/classes/{class}"));
    assert!(
        !page.to_string().contains("在外地打工"),
        "the note stays off the class: {page}"
    );
    assert_eq!(page["hold"], "open");
    assert!(
        page["attendance"]
            .as_array()
            .expect("records")
            .iter()
            .all(|r| r["payable"] == false),
        "no record of a held class is paid: {page}"
    );
    let list = office.get("/api/v1/classes");
    assert_eq!(list[0]["on_hold"], true, "{list}");
    // The coordinator's phone holds the rejection, naming the call but not what the trainee said.
    let doc = coord.documents();
    let reviews = doc[&class]["content"]["reviews"].to_string();
    assert!(reviews.contains(&a_yesterday), "{reviews}");
    assert!(!reviews.contains("在外地打工"), "{reviews}");

    // A modified app cannot decide for the office: neither clear the hold nor accept the denied
    // records itself. The push is refused whole.
    let class_doc: songpei_core::ids::DocId = class
        .parse::<songpei_core::ids::ClassId>()
        .expect("class id")
        .into();
    let bytes = coord
        .open_core()
        .document_bytes(class_doc)
        .expect("read")
        .expect("class document");
    let raw = server.raw_device(&[VILLAGE_A]);
    let records: Vec<String> = page["attendance"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["trainee_id"] == a.as_str() && r["day"] == yesterday.as_str())
        .map(|r| r["attendance_id"].as_str().expect("id").to_owned())
        .collect();
    for subject in [format!("hold:{a_yesterday}"), records[0].clone()] {
        let review = Review::new(Decision::Accepted, "本人已确认", "office", 1).expect("review");
        let answer = raw.push_edit(class_doc, VILLAGE_A, &bytes, |tx| {
            songpei_core::doc::review::put(tx, &subject, &review).expect("put");
        });
        assert_eq!(
            (answer.status, answer.code.as_str()),
            (403, "not_allowed"),
            "{subject}"
        );
    }
    coord.sync(&server.url);
    assert_eq!(on_phone(&coord, &class, a), (0, 1, 0));
    assert_eq!(report_fen(&office, &months), 0);

    // The office decides the class for the denials it saw; a decision naming others is refused.
    let clear = |holds: Value| -> (u16, Value) {
        office.call(
            "POST",
            "/api/v1/review",
            Some(
                &json!({"doc_id": class, "subject": "hold", "decision": "accepted",
                        "reason": "其他学员回访均确认", "holds": holds})
                .to_string(),
            ),
        )
    };
    let (status, v) = clear(Value::Null);
    assert_eq!((status, v["field"].as_str()), (400, Some("holds")), "{v}");
    let (status, v) = clear(json!([a_yesterday, "0123456789abcdef"]));
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("review_changed")),
        "{v}"
    );
    // The office clears the class: the other days pay again; the denied one never.
    let (status, v) = clear(json!([a_yesterday]));
    assert_eq!(status, 200, "{v}");
    assert!(
        !office.get("/api/v1/review")["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["kind"] == "hold")
    );
    coord.sync(&server.url);
    assert_eq!(on_phone(&coord, &class, a), (1, 0, 5_000));
    assert_eq!(on_phone(&coord, &class, b), (2, 0, 10_000));
    assert_eq!(on_phone(&coord, &class, c), (1, 0, 5_000));
    assert_eq!(report_fen(&office, &months), 20_000);
    // Another record of the denied day, arriving later from the phone, does not pay it either.
    ok(at(
        &coord,
        1_070_000,
        Some(&wall(1_070_000)),
        None,
        &["attend", &class, a, "--day", &yesterday, "--in"],
    ));
    ok(at(&coord, 1_080_000, None, None, &["sync"]));
    coord.sync(&server.url);
    assert_eq!(on_phone(&coord, &class, a), (1, 0, 5_000));
    assert_eq!(report_fen(&office, &months), 20_000);
    let pay = office.get(&format!("/api/v1/classes/{class}"));
    let dashboard_fen: i64 = pay["trainees"]
        .as_array()
        .expect("roster")
        .iter()
        .map(|r| r["allowance_fen"].as_i64().expect("fen"))
        .sum();
    assert_eq!(dashboard_fen, 20_000, "{pay}");

    // The month's call-back figures.
    let mut figures: BTreeMap<&str, i64> = BTreeMap::new();
    let mut by_village: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for m in &months {
        let r = office.report(m);
        for k in [
            "trainee_days",
            "called",
            "decided",
            "confirmed",
            "denied",
            "unreachable",
        ] {
            *figures.entry(k).or_default() += r["callbacks"][k].as_i64().expect(k);
        }
        for v in r["callbacks"]["by_village"].as_array().expect("villages") {
            let e = by_village
                .entry(v["village_name"].as_str().expect("name").to_owned())
                .or_default();
            e.0 += v["called"].as_i64().expect("called");
            e.1 += v["denied"].as_i64().expect("denied");
        }
    }
    assert_eq!(
        figures,
        BTreeMap::from([
            ("trainee_days", 5),
            ("called", 5),
            ("decided", 3),
            ("confirmed", 1),
            ("denied", 1),
            ("unreachable", 1),
        ])
    );
    assert_eq!(by_village.values().copied().collect::<Vec<_>>(), [(5, 1)]);
    if months.len() == 1 {
        let r = office.report(&months[0]);
        assert_eq!(r["callbacks"]["rate"], 1.0);
        let conf = r["callbacks"]["confirmation_rate"].as_f64().expect("rate");
        assert!((conf - 1.0 / 3.0).abs() < 1e-9, "{conf}");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("month.csv");
        let done = server.report(&[
            "--month",
            &months[0],
            "--format",
            "csv",
            "--out",
            file.to_str().expect("path"),
        ]);
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        let csv = std::fs::read_to_string(&file).expect("csv");
        assert!(csv.contains("电话回访,确认率（%）,33.3"), "{csv}");
    }

    // A second denial holds the class again; the office rejects it: nothing pays, nothing waits.
    let c_today = call(c, &today);
    outcome(&office, &c_today, "denied", "本人否认");
    office.post(
        "/api/v1/review",
        json!({"doc_id": class, "subject": "hold", "decision": "rejected",
               "reason": "两名学员否认参训，全班不予计发", "holds": [c_today]}),
    );
    coord.sync(&server.url);
    for who in [a, b, c] {
        assert_eq!(on_phone(&coord, &class, who), (0, 0, 0), "{who}");
    }
    assert_eq!(report_fen(&office, &months), 0);

    // The coordinator's signals: 2 denials of 4 calls with an outcome; 3 of 6 records held; no
    // cards; 2 of 3 trainees with a number on file for someone else too; zhao, with no records,
    // has nothing to count.
    let signals = office.get("/api/v1/signals");
    let codes: Vec<&str> = signals["signals"]
        .as_array()
        .expect("signals")
        .iter()
        .map(|s| s["code"].as_str().expect("code"))
        .collect();
    assert_eq!(
        codes,
        [
            "card_share",
            "unregistered_key",
            "relayed",
            "fresh_keys",
            "shared_phone",
            "held",
            "denials"
        ]
    );
    assert!(
        signals["signals"]
            .as_array()
            .expect("signals")
            .iter()
            .all(|s| s["explanation"]
                .as_str()
                .is_some_and(|e| e.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)))),
        "every signal is explained in Chinese: {signals}"
    );
    let row = |name: &str| -> BTreeMap<String, (i64, i64)> {
        signals["coordinators"]
            .as_array()
            .expect("coordinators")
            .iter()
            .find(|r| r["account"] == name)
            .unwrap_or_else(|| panic!("{name}: {signals}"))["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| {
                (
                    v["code"].as_str().expect("code").to_owned(),
                    (
                        v["count"].as_i64().expect("count"),
                        v["of"].as_i64().expect("of"),
                    ),
                )
            })
            .collect()
    };
    let li = row("li");
    assert_eq!(li["denials"], (2, 4), "{signals}");
    assert_eq!(li["held"], (3, 6), "{signals}");
    assert_eq!(li["card_share"], (0, 6), "{signals}");
    assert_eq!(li["shared_phone"], (2, 3), "{signals}");
    assert!(row("zhao").values().all(|v| *v == (0, 0)), "{signals}");
    let denials = &signals["signals"][6];
    assert_eq!(
        denials["median"], 0.5,
        "the median over coordinators with calls: {denials}"
    );

    // An erasure keeps the calls (under the trainee's random id) but not what the clerk noted.
    office.post(
        &format!("/api/v1/trainees/{a}/erase"),
        json!({"reason": "本人申请删除个人信息"}),
    );
    let notes: Vec<Option<String>> = server
        .database()
        .query_map(
            "SELECT note FROM callbacks WHERE trainee_id = ?1",
            songpei_server::args![a.as_str()],
            |r| r.get(0),
        )
        .expect("notes");
    assert_eq!(notes, [None, None], "{notes:?}");
    let attempts: Vec<String> = server
        .database()
        .query_map(
            "SELECT a.note FROM callback_attempts a JOIN callbacks c ON c.id = a.callback_id
             WHERE c.trainee_id = ?1",
            songpei_server::args![a.as_str()],
            |r| r.get(0),
        )
        .expect("notes");
    assert!(
        !attempts.is_empty() && attempts.iter().all(String::is_empty),
        "{attempts:?}"
    );
    // Her open call cannot be made any more: it closes as erased, outside the outcomes counted.
    assert!(open_calls(&office).iter().all(|c| c.1 != *a));
    let closed = office.get("/api/v1/callbacks?status=closed");
    let erased: Vec<&Value> = closed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["outcome"] == "erased")
        .collect();
    assert_eq!(erased.len(), 1, "{closed}");
    assert_eq!(erased[0]["day"], today.as_str());
    let decided: i64 = months
        .iter()
        .map(|m| {
            office.report(m)["callbacks"]["decided"]
                .as_i64()
                .expect("decided")
        })
        .sum();
    assert_eq!(decided, 4, "confirmed, unreachable and two denials");

    // The auditor, with the server's key, finds the list the key draws.
    let out = server.admin(&["callbacks", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("the call list matches the sample"), "{text}");
}

songpei_tests::on_every_database!(a_denial_holds_the_class_until_the_office_decides_on_every_face);
