//! What an outside probe found (issue 21), each row end to end against a real server on SQLite and
//! on PostgreSQL: the CSV read back with a formula for a class title; sessions that end at logout,
//! on a password reset and when idle, `Secure` behind an HTTPS public URL; cross-site and
//! form-encoded posts refused; refusals audited as counts; ad-hoc unmasking for admins under a
//! daily cap; the audit chain's head on the report and the overview; an instructor's phone with
//! its classes only, masked rosters and no personal data.

use songpei_tests::{CliPhone, DISTRICT, Office, ServerProcess, VILLAGE_A, id_number};

const CONFIG: &str = "[office]\npublic_url = \"https://songpei.example.cn\"\nunmask_per_day = 2\n";
const FORMULA: &str = "=HYPERLINK(\"http://evil.example/x\",\"点我\")";

fn every_row_of_the_probe_holds(start: &dyn Fn(Option<&str>) -> ServerProcess) {
    let mut server = start(Some(CONFIG));
    let office = Office::sign_in(&server);
    let viewer = Office::sign_in_as(&server, "clerk", "district_viewer");
    for part in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(
            office.login_cookie.contains(part),
            "{part}: {}",
            office.login_cookie
        );
    }

    // A class whose title is a formula, with a trainee signed in by hand, synced.
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);
    let class = phone.class_titled(FORMULA, "2026-03-02", 2, &["--subsidised"]);
    let trainee = phone.trainee(
        "韦春燕",
        &id_number("45080219880405002"),
        &["--poverty", "lifted", "--phone", "13800001111"],
    );
    phone.ok(&["enrol", &class, &trainee]);
    phone.ok(&["attend", &class, &trainee, "--day", "2026-03-02", "--in"]);
    phone.sync(&server.url);

    // Row 2: the CSV holds the title as text, never as a formula Excel would run.
    let csv = office.raw(
        "GET",
        &format!("/api/v1/reports/monthly.csv?district={DISTRICT}&month=2026-03"),
        None,
        b"",
        &[],
    );
    assert_eq!(csv.status, 200);
    assert!(csv.text.contains("'=HYPERLINK("), "{}", csv.text);
    for line in csv.text.lines() {
        let line = line.trim_start_matches('\u{feff}');
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "a cell Excel would run: {line}"
            );
        }
    }

    // Row 8: the audit chain's head on the report and the overview, as the database holds it.
    let head_of = |entries: i64| -> String {
        let hash: Vec<u8> = server
            .database()
            .query_row(
                "SELECT hash FROM audit WHERE seq = ?1",
                songpei_server::args![entries],
                |r| r.get(0),
            )
            .expect("the entry");
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let report = office.report("2026-03");
    let entries = report["audit_head"]["entries"].as_i64().expect("entries");
    assert!(entries > 0);
    assert_eq!(report["audit_head"]["hash"], head_of(entries).as_str());
    assert!(
        csv.text.contains("审计链：共 "),
        "the CSV ends with the chain's head: {}",
        csv.text
    );
    let overview = office.get("/api/v1/overview");
    let now = overview["audit_head"]["entries"].as_i64().expect("entries");
    assert_eq!(overview["audit_head"]["hash"], head_of(now).as_str());

    // Row 7: ad-hoc unmasking is for admins, twice a day here.
    let unmask = |who: &Office| {
        who.raw(
            "POST",
            &format!("/api/v1/trainees/{trainee}/unmask"),
            Some("application/json"),
            br#"{"reason": "core check of the roster"}"#,
            &[],
        )
    };
    let refused = unmask(&viewer);
    assert_eq!(
        (refused.status, refused.code()),
        (403, "not_allowed".into())
    );
    for _ in 0..2 {
        let ok = unmask(&office);
        assert_eq!(ok.status, 200, "{}", ok.text);
        assert!(ok.text.contains("13800001111"));
    }
    let capped = unmask(&office);
    assert_eq!(
        (capped.status, capped.code()),
        (429, "rate_limited".into()),
        "{}",
        capped.text
    );
    let wait: u64 = capped
        .retry_after
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After");
    assert!((1..=86_400).contains(&wait), "{wait}");

    // Row 5: a page of another site cannot post to the office's API; targets are CSV, capped.
    let csv_body = "区域,三年计划总目标,2026年\n港北区,1000,1000\n";
    let evil = [("Origin", "https://evil.example")];
    for (content_type, body, headers, status, code) in [
        (
            Some("application/x-www-form-urlencoded"),
            "a=1".to_owned(),
            &evil[..],
            403,
            "cross_site_request",
        ),
        (
            Some("text/csv"),
            csv_body.to_owned(),
            &evil[..],
            403,
            "cross_site_request",
        ),
        (
            Some("text/csv"),
            csv_body.to_owned(),
            &[("Sec-Fetch-Site", "cross-site")][..],
            403,
            "cross_site_request",
        ),
        (
            Some("application/x-www-form-urlencoded"),
            "a=1".to_owned(),
            &[][..],
            415,
            "unsupported_media_type",
        ),
        (
            Some("text/csv"),
            format!("{csv_body}{}", "港南区,1,1\n".repeat(30_000)),
            &[][..],
            413,
            "body_too_large",
        ),
        (
            Some("text/csv; charset=utf-8"),
            csv_body.to_owned(),
            &[("Origin", "https://songpei.example.cn")][..],
            200,
            "",
        ),
    ] {
        let r = office.raw(
            "POST",
            "/api/v1/targets",
            content_type,
            body.as_bytes(),
            headers,
        );
        assert_eq!(
            (r.status, r.code()),
            (status, code.to_owned()),
            "{content_type:?} {headers:?}: {}",
            r.text
        );
    }
    // Reading stays open to any page's links; a cross-site logout or review is refused too.
    let r = office.raw("GET", "/api/v1/me", None, b"", &evil);
    assert_eq!(r.status, 200);
    let r = office.raw(
        "POST",
        "/api/v1/review",
        Some("application/json"),
        b"{}",
        &evil,
    );
    assert_eq!((r.status, r.code()), (403, "cross_site_request".into()));

    // Row 4: a session ends at logout (the cookie replayed signs no one in), when its account's
    // password is reset, and when idle.
    let second = Office::sign_in_as(&server, "clerk2", "district_viewer");
    assert_eq!(office.logout(), 204);
    let replay = office.raw("GET", "/api/v1/me", None, b"", &[]);
    assert_eq!((replay.status, replay.code()), (401, "unauthorized".into()));
    assert_eq!(second.raw("GET", "/api/v1/me", None, b"", &[]).status, 200);
    server.admin_ok(&["account", "reset-password", "--username", "clerk2"]);
    assert_eq!(second.raw("GET", "/api/v1/me", None, b"", &[]).status, 401);
    assert_eq!(viewer.raw("GET", "/api/v1/me", None, b"", &[]).status, 200);
    server
        .database()
        .execute(
            "UPDATE office_sessions SET last_seen_ms = last_seen_ms - 3600001",
            &[],
        )
        .expect("age the sessions");
    let idle = viewer.raw("GET", "/api/v1/me", None, b"", &[]);
    assert_eq!((idle.status, idle.code()), (401, "session_expired".into()));
    // The database keeps only the tokens' hashes.
    let tokens: Vec<Vec<u8>> = server
        .database()
        .query_map("SELECT token_hash FROM office_sessions", &[], |r| r.get(0))
        .expect("sessions");
    let cookie = viewer
        .login_cookie
        .split(';')
        .next()
        .and_then(|c| c.split_once('='))
        .map(|(_, v)| v.to_owned())
        .expect("token");
    assert!(
        tokens
            .iter()
            .all(|t| !songpei_tests::contains(t, cookie.as_bytes()))
    );

    // Row 6: refusals are audited as counts per source and minute.
    for _ in 0..3 {
        let r = ureq_login(&server.url, "office", "wrong password");
        assert_eq!(r, 401);
    }
    let stranger = CliPhone::new();
    for _ in 0..2 {
        let out = stranger.run(&["enroll", "--server", &server.url, "--code", "WRONGCODE1"]);
        assert!(!out.status.success());
    }
    server.stop();
    let refused: Vec<(String, String, i64)> = server
        .audit_log()
        .into_iter()
        .filter(|(_, action, _, _)| action == "refused")
        .map(|(actor, _, subject, detail)| {
            let v: serde_json::Value = serde_json::from_str(&detail).unwrap_or_default();
            (actor, subject, v["count"].as_i64().unwrap_or(0))
        })
        .collect();
    let count = |kind: &str| -> i64 {
        refused
            .iter()
            .filter(|(actor, subject, _)| actor.starts_with("address:") && subject == kind)
            .map(|r| r.2)
            .sum()
    };
    assert_eq!(count("bad_credentials"), 3, "{refused:?}");
    assert_eq!(count("bad_code"), 2, "{refused:?}");
    assert!(
        refused.len() <= 4,
        "a handful of entries, not one per refusal: {refused:?}"
    );
}

/// Row 3: an instructor's phone gets the classes that name it, with masked rosters, and no
/// trainee or household document; it still witnesses a trainee's key for its class.
fn an_instructor_gets_its_classes_with_masked_rosters_and_no_personal_data(
    start: &dyn Fn(Option<&str>) -> ServerProcess,
) {
    let server = start(None);
    let coord = CliPhone::new();
    server.add_account("li", "coordinator", &[VILLAGE_A]);
    server.enroll_as(&coord, "li");
    let chen = server.instructor("chen", &[VILLAGE_A]);
    coord.sync(&server.url);
    let named = coord.class_titled(
        "陈老师的电工班",
        "2026-03-02",
        2,
        &["--instructor-account", "chen"],
    );
    let other = coord.class_titled("别的电工班", "2026-03-02", 2, &[]);
    let id = id_number("45080219880405002");
    let t = coord.trainee(
        "韦春燕",
        &id,
        &["--poverty", "lifted", "--phone", "13877001234"],
    );
    for c in [&named, &other] {
        coord.ok(&["enrol", c, &t]);
    }
    coord.sync(&server.url);
    chen.sync(&server.url);

    // Its store holds the one class and nothing personal.
    let docs = chen.documents();
    assert!(docs.contains_key(&named), "{:?}", docs.keys());
    assert!(
        !docs.contains_key(&other),
        "a class that does not name chen"
    );
    assert!(!docs.contains_key(&t), "no trainee document");
    let all = serde_json::to_string(&docs).expect("json");
    for secret in [id.as_str(), "韦春燕", "13877001234"] {
        assert!(!all.contains(secret), "{secret} on the instructor's phone");
    }
    // The roster is masked: the name's first character and the ID number's ends.
    let view = chen.json(&["class", "show", &named]);
    let row = &view["roster"][0];
    assert_eq!(row["name_masked"], "韦**", "{view}");
    let masked = row["id_masked"].as_str().expect("masked ID number");
    assert!(
        masked.contains('*') && masked.ends_with(&id[14..]),
        "{masked}"
    );
    assert!(!view.to_string().contains(&id));
    // It still witnesses a trainee's phone key in person for its class.
    let trainee_phone = CliPhone::new();
    coord.register_trainee_phone(&chen, &trainee_phone, &named, &t);

    // A phone that received trainee and household documents before (an instructor's from an
    // earlier release; here, while its account was a coordinator's) loses them at its first sync
    // as an instructor's, and keeps nothing personal after.
    let wang = CliPhone::new();
    server.add_account("wang", "coordinator", &[VILLAGE_A]);
    server.enroll_as(&wang, "wang");
    wang.sync(&server.url);
    let before = wang.documents();
    assert!(
        before.contains_key(&t),
        "a coordinator's phone holds the trainee"
    );
    assert!(serde_json::to_string(&before).expect("json").contains(&id));
    server
        .database()
        .execute(
            "UPDATE accounts SET role = 'instructor' WHERE username = 'wang'",
            &[],
        )
        .expect("the account becomes an instructor's");
    wang.sync(&server.url);
    wang.sync(&server.url);
    let after = wang.documents();
    assert!(!after.contains_key(&t), "{:?}", after.keys());
    let all = serde_json::to_string(&after).expect("json");
    for secret in [id.as_str(), "韦春燕", "13877001234"] {
        assert!(!all.contains(secret), "{secret} still on the phone");
    }
}

/// A login with a password; its status.
fn ureq_login(url: &str, username: &str, password: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .post(format!("{url}/api/v1/login"))
        .header("Content-Type", "application/json")
        .send(serde_json::json!({"username": username, "password": password}).to_string())
        .expect("answer")
        .status()
        .as_u16()
}

songpei_tests::on_every_database!(
    every_row_of_the_probe_holds,
    an_instructor_gets_its_classes_with_masked_rosters_and_no_personal_data
);
