//! Accounts, devices and scopes against the real server: enrollment through the CLIs, villages
//! kept apart, revocation, the audit chain, forged tokens and actors, rate limits, and a
//! coordinator moved to other villages (rows C5, D2–D4, D6, A5 and J2 of the catalogue).

use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT};
use songpei_core::sync::changes::pack;
use songpei_core::sync::protocol::{
    Cursor, PROTOCOL_VERSION, Push, SyncRequest, SyncResponse, decode, encode,
};
use songpei_tests::{CliPhone, RawDevice, ServerProcess, VILLAGE_A, VILLAGE_B, id_number, post};

fn audit_actions(server: &ServerProcess) -> Vec<String> {
    server
        .database()
        .query_map("SELECT action FROM audit ORDER BY seq", &[], |r| r.get(0))
        .expect("audit rows")
}

fn request(dev: &RawDevice, villages: &[&str], pushes: Vec<Push>) -> SyncRequest {
    SyncRequest {
        version: PROTOCOL_VERSION,
        request_id: rand::random(),
        device: dev.device(),
        district: "450802".into(),
        cursors: villages
            .iter()
            .map(|v| Cursor {
                village: (*v).into(),
                seq: 0,
                tag: 0,
            })
            .collect(),
        pushes,
        max_response_bytes: 1 << 20,
        card_keys: 0,
        policy: 0,
        instructors: 0,
    }
}

/// A class document's header in `village`, written by `actor`, plus `extra` fields.
fn class_doc(
    actor: &automerge::ActorId,
    id: uuid::Uuid,
    village: &str,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut d = Automerge::new().with_actor(actor.clone());
    let mut tx = d.transaction();
    tx.put(ROOT, "kind", "class").ok();
    tx.put(ROOT, "schema", 1u64).ok();
    tx.put(ROOT, "id", id.to_string()).ok();
    tx.put(ROOT, "district", "450802").ok();
    tx.put(ROOT, "village", village).ok();
    for (k, v) in extra {
        tx.put(ROOT, *k, *v).ok();
    }
    tx.commit();
    pack(&d.save_after(&[]), &[]).expect("pack")
}

fn push(doc: uuid::Uuid, changes: Vec<u8>) -> Push {
    Push {
        doc,
        base: vec![],
        changes,
    }
}

fn enroll_sync_keep_villages_apart_revoke_and_audit(start: &dyn Fn(Option<&str>) -> ServerProcess) {
    let mut server = start(None);

    // A coordinator of village A enrolls a phone; sync works.
    let a = CliPhone::new();
    let device_a = server.enroll(&a, &[VILLAGE_A]);
    let class = a.class(3, &[]);
    let t = a.trainee("王秀英", &id_number("45080219850312002"), &[]);
    a.ok(&["enrol", &class, &t]);
    a.ok(&["attend", &class, &t, "--day", "2026-03-02", "--in"]);
    let r = a.sync(&server.url);
    assert_eq!(r["docs_pushed"], 2);
    // Another phone of village A receives the trainee: a read of personal data, audited.
    let a2 = CliPhone::new();
    server.enroll(&a2, &[VILLAGE_A]);
    assert_eq!(a2.sync(&server.url)["docs_pulled"], 2);

    // A phone of village B sees none of village A's documents...
    let b = CliPhone::new();
    server.enroll(&b, &[VILLAGE_B]);
    let r = b.sync(&server.url);
    assert_eq!(r["docs_pulled"], 0);
    assert_eq!(b.json(&["class", "list"]).as_array().map(Vec::len), Some(0));
    // ...cannot record in village A any more (its scope came from the server)...
    let refused = b.run(&[
        "class",
        "create",
        "--title",
        "x",
        "--village",
        VILLAGE_A,
        "--occupation",
        "电工",
        "--level",
        "初级工",
        "--type",
        "就业技能培训",
        "--start",
        "2026-03-02",
        "--days",
        "1",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    // ...and a device of village B that writes into village A is refused, nothing stored (D2),
    // even when the document claims a role or villages for itself (D6).
    let raw_b = server.raw_device(&[VILLAGE_B]);
    let actor_b = raw_b.phone.profile().actor.clone();
    let forged_id = uuid::Uuid::new_v4();
    let forged = class_doc(
        &actor_b,
        forged_id,
        VILLAGE_A,
        &[("role", "district_admin"), ("villages", "450802101201")],
    );
    let ans = raw_b.sync(&encode(&request(
        &raw_b,
        &[VILLAGE_B],
        vec![push(forged_id, forged)],
    )));
    assert_eq!((ans.status, ans.code.as_str()), (403, "out_of_scope"));
    // Writing into village A's existing class is refused the same way.
    let existing = class_doc(&actor_b, class.parse().expect("uuid"), VILLAGE_A, &[]);
    let ans = raw_b.sync(&encode(&request(
        &raw_b,
        &[VILLAGE_B],
        vec![push(class.parse().expect("uuid"), existing)],
    )));
    assert_eq!((ans.status, ans.code.as_str()), (403, "out_of_scope"));
    // Asking for village A's feed gets nothing of it, and the phone is told its scope (D3).
    let ans = raw_b.sync(&encode(&request(&raw_b, &[VILLAGE_A, VILLAGE_B], vec![])));
    assert_eq!(ans.status, 200);
    let resp: SyncResponse = decode(&ans.body, 1 << 20).expect("response");
    assert!(resp.docs.is_empty());
    assert_eq!(resp.cursors.len(), 1);
    assert_eq!(resp.scope, Some(vec![VILLAGE_B.to_owned()]));

    // Changes of an actor that is not the device's: 403, audited (A5).
    let stranger = automerge::ActorId::random();
    let doc = uuid::Uuid::new_v4();
    let ans = raw_b.sync(&encode(&request(
        &raw_b,
        &[VILLAGE_B],
        vec![push(doc, class_doc(&stranger, doc, VILLAGE_B, &[]))],
    )));
    assert_eq!((ans.status, ans.code.as_str()), (403, "foreign_actor"));

    // Tokens: none, forged, another device's MAC, junk (D4).
    let body = encode(&request(&raw_b, &[VILLAGE_B], vec![]));
    let url = format!("{}/v1/sync", server.url);
    assert_eq!(post(&url, &body, None).code, "missing_token");
    let mut forged_token = raw_b.token.clone();
    forged_token.insert(5, 'x');
    assert_eq!(post(&url, &body, Some(&forged_token)).code, "invalid_token");
    assert_eq!(post(&url, &body, Some("v1.e30.AAAA")).status, 401);
    // A token of device A used with device B's request: refused, not merged under A's name.
    let raw_a = server.raw_device(&[VILLAGE_A]);
    let ans = post(&url, &body, Some(&raw_a.token));
    assert_eq!((ans.status, ans.code.as_str()), (400, "bad_request"));

    // The admin revokes phone A: its next sync fails with a clear message and exit 1; its data
    // stays and can be exported (C5, audited).
    a.ok(&["attend", &class, &t, "--day", "2026-03-03", "--in"]);
    server.admin_ok(&["device", "revoke", "--device", &device_a]);
    let out = a.run(&["sync", "--server", &server.url]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("revoked"), "{err}");
    let view = a.json(&["class", "show", &class]);
    assert_eq!(
        view["attendance"].as_array().map(Vec::len),
        Some(2),
        "nothing lost"
    );
    assert!(a.ok(&["export"]).contains(&class));

    // Refusals are audited as counts per source and minute, written when the minute is over or
    // the server stops.
    server.stop();
    let refused: Vec<(String, String, String)> = server
        .audit_log()
        .into_iter()
        .filter(|(_, action, _, _)| action == "refused")
        .map(|(actor, _, subject, detail)| (actor, subject, detail))
        .collect();
    assert!(
        refused.iter().any(
            |(actor, subject, detail)| *actor == format!("device:{device_a}")
                && subject == "device_revoked"
                && detail.contains("\"count\":")
        ),
        "{refused:?}"
    );
    let actions = audit_actions(&server);
    for expected in [
        "init",
        "account_add",
        "enrollment_code",
        "enroll",
        "write",
        "read_personal",
        "refused_out_of_scope",
        "refused_foreign_actor",
        "device_revoke",
        "refused",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "no {expected} in the audit log: {actions:?}"
        );
    }

    // The chain verifies, and stops verifying once a row is altered by hand.
    let ok = server.admin(&["audit", "verify"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let conn = server.database();
    let drop_trigger = match conn.backend() {
        songpei_server::db::Backend::Sqlite => "DROP TRIGGER audit_no_update",
        songpei_server::db::Backend::Postgres => "DROP TRIGGER audit_no_update ON audit",
    };
    conn.batch(drop_trigger).expect("drop the trigger");
    conn.batch("UPDATE audit SET subject = 'someone-else' WHERE seq = 3")
        .expect("tamper");
    drop(conn);
    let broken = server.admin(&["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&broken.stdout).contains("BROKEN at entry 3"));
}

fn a_coordinator_moved_to_other_villages_loses_the_old_villages_data_at_the_next_sync(
    start: &dyn Fn(Option<&str>) -> ServerProcess,
) {
    let server = start(None);
    let a = CliPhone::new();
    server.enroll(&a, &[VILLAGE_A]);
    let class = a.class(3, &[]);
    let t = a.trainee("王秀英", &id_number("45080219850312002"), &[]);
    a.ok(&["enrol", &class, &t]);
    a.sync(&server.url);
    // Someone records in village B.
    let b = CliPhone::new();
    server.enroll(&b, &[VILLAGE_B]);
    let class_b = b.ok(&[
        "class",
        "create",
        "--title",
        "乙村电工班",
        "--village",
        VILLAGE_B,
        "--occupation",
        "电工",
        "--level",
        "初级工",
        "--type",
        "就业技能培训",
        "--start",
        "2026-03-02",
        "--days",
        "1",
    ]);
    b.sync(&server.url);

    // Phone A records one more thing offline, then its coordinator is moved to village B.
    let t2 = a.trainee("李四", &id_number("45080219900307123"), &[]);
    let username = {
        let out = server.admin_ok(&["device", "list"]);
        out.lines()
            .next()
            .expect("a device")
            .split_whitespace()
            .nth(1)
            .expect("username")
            .to_owned()
    };
    server.admin_ok(&[
        "account",
        "villages",
        "--username",
        &username,
        "--village",
        VILLAGE_B,
    ]);
    let r = a.sync(&server.url);
    // Village A's synced documents left the phone; the unsynced trainee stays for recovery;
    // village B's class arrived.
    assert!(r["docs_removed"].as_u64().unwrap_or(0) >= 2, "{r}");
    let docs = a.documents();
    assert!(!docs.contains_key(&class), "village A's class left");
    assert!(!docs.contains_key(&t), "village A's trainee left");
    assert!(docs.contains_key(&t2), "an unsynced record stays");
    assert!(docs.contains_key(&class_b), "village B's class arrived");
    assert_eq!(r["docs_held"], 1, "{r}");
    // Nothing of it is left to read: the index row went with the document.
    assert!(a.run(&["trainee", "show", &t]).status.code() != Some(0));
}

#[test]
fn requests_beyond_a_devices_rate_and_repeated_writes_outside_its_villages_get_429() {
    let server = ServerProcess::start_with_config(Some(
        "[limits]\ndevice_requests_per_minute = 20\nout_of_scope_per_hour = 2\n",
    ));
    let dev = server.raw_device(&[VILLAGE_A]);
    let body = encode(&request(&dev, &[VILLAGE_A], vec![]));
    // A burst of 5 (a quarter of 20) passes; the next is refused with Retry-After.
    let answers: Vec<u16> = (0..8).map(|_| dev.sync(&body).status).collect();
    assert!(answers[..5].iter().all(|s| *s == 200), "{answers:?}");
    let last = dev.sync(&body);
    assert_eq!((last.status, last.code.as_str()), (429, "rate_limited"));
    assert!(last.retry_after);

    // Probing other villages: after two refused writes, the device is refused outright.
    let other = server.raw_device(&[VILLAGE_A]);
    let actor = other.phone.profile().actor.clone();
    for _ in 0..2 {
        let id = uuid::Uuid::new_v4();
        let a = other.sync(&encode(&request(
            &other,
            &[VILLAGE_A],
            vec![push(id, class_doc(&actor, id, VILLAGE_B, &[]))],
        )));
        assert_eq!(a.code, "out_of_scope");
    }
    let a = other.sync(&encode(&request(&other, &[VILLAGE_A], vec![])));
    assert_eq!((a.status, a.code.as_str()), (429, "rate_limited"));
    assert!(a.retry_after);
}

/// A phone told `429` with `Retry-After` waits as asked and finishes the same sync, instead of
/// failing: the coordinator's sync goes through a busy moment.
#[test]
fn a_phone_over_its_rate_waits_as_the_server_asks_and_finishes_the_sync() {
    // A burst of 3, then one request every 5 s.
    let server =
        ServerProcess::start_with_config(Some("[limits]\ndevice_requests_per_minute = 12\n"));
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);
    let class = phone.class(2, &[]);
    let mut waited = None;
    for round in 0..10 {
        let t = phone.trainee("黄丽", &id_number(&format!("4508021990010100{round}")), &[]);
        phone.ok(&["enrol", &class, &t]);
        // Every sync succeeds (exit 0, JSON report), waits included.
        let r = phone.sync(&server.url);
        assert_eq!(r["docs_pushed"], 2, "{r}");
        if r["waits"].as_u64().unwrap_or(0) > 0 {
            waited = Some(r);
            break;
        }
    }
    let r = waited.expect("the phone went over its rate and waited");
    assert_eq!(r["waiting_secs"], serde_json::Value::Null, "{r}");
    let again = phone.sync(&server.url);
    assert_eq!(again["docs_pushed"], 0, "everything arrived: {again}");
    let other = CliPhone::new();
    server.enroll(&other, &[VILLAGE_A]);
    other.sync(&server.url);
    assert_eq!(other.class_view(&class), phone.class_view(&class));
}

fn enrollment_codes_are_single_use_and_bad_ones_are_refused(
    start: &dyn Fn(Option<&str>) -> ServerProcess,
) {
    let server = start(None);
    let code = server.enrollment_code("wang", &[VILLAGE_A]);
    let a = CliPhone::new();
    a.ok(&[
        "enroll",
        "--server",
        &server.url,
        "--code",
        &code.to_lowercase(),
    ]);
    // The same code on another phone, a made-up code: exit 1, a clear message, no enrollment.
    let b = CliPhone::new();
    for bad in [code.as_str(), "ABCD-EFGH-JKMN"] {
        let out = b.run(&["enroll", "--server", &server.url, "--code", bad]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("bad_code"));
    }
    let out = b.run(&["sync", "--server", &server.url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not enrolled"));
    // A QR PNG of a code is written.
    server.admin_ok(&[
        "account",
        "add",
        "--username",
        "li",
        "--role",
        "instructor",
        "--village",
        VILLAGE_A,
    ]);
    let png = server.data.join("li.png");
    server.admin_ok(&[
        "enroll-code",
        "--username",
        "li",
        "--qr",
        png.to_str().expect("path"),
        "--server",
        &server.url,
    ]);
    let bytes = std::fs::read(&png).expect("png");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // Admin input is checked: a bad role, an unknown village, a second init.
    let bad_role = server.admin(&[
        "account",
        "add",
        "--username",
        "x",
        "--role",
        "boss",
        "--village",
        VILLAGE_A,
    ]);
    assert_eq!(bad_role.status.code(), Some(2));
    let unknown = server.admin(&[
        "account",
        "add",
        "--username",
        "y",
        "--role",
        "coordinator",
        "--village",
        "450802101299",
    ]);
    assert_eq!(unknown.status.code(), Some(2));
    let again = server.admin(&["init", "--district", "450802", "--name", "港北区"]);
    assert_eq!(again.status.code(), Some(2));
    // Villages from CSV: all or nothing, problems by line.
    let csv = server.data.join("villages.csv");
    std::fs::write(
        &csv,
        "code,name,township\n450802102001,新村,某镇\n450802102002,后村,某镇\n",
    )
    .expect("csv");
    assert!(
        server
            .admin_ok(&["village", "import", csv.to_str().expect("path")])
            .contains("2 villages")
    );
    std::fs::write(&csv, "450802102003,好村\n99,坏村\n").expect("csv");
    let out = server.admin(&["village", "import", csv.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("line 2"));
}

#[test]
fn requests_beyond_an_addresss_rate_get_429_on_every_route() {
    let server = ServerProcess::start_with_config(Some("[limits]\nip_requests_per_minute = 8\n"));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let statuses: Vec<u16> = (0..6)
        .map(|_| {
            agent
                .get(format!("{}/healthz", server.url))
                .call()
                .expect("answer")
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(&statuses[..2], &[200, 200], "{statuses:?}");
    assert_eq!(statuses[5], 429, "{statuses:?}");
    let a = post(&format!("{}/v1/auth/challenge", server.url), b"{}", None);
    assert_eq!((a.status, a.code.as_str()), (429, "rate_limited"));
    assert!(a.retry_after);
}

songpei_tests::on_every_database!(
    enroll_sync_keep_villages_apart_revoke_and_audit,
    a_coordinator_moved_to_other_villages_loses_the_old_villages_data_at_the_next_sync,
    enrollment_codes_are_single_use_and_bad_ones_are_refused,
);
