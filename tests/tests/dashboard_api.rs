//! The district office's JSON API end to end, against the real server on a socket with a CLI phone:
//! sign-in and roles, the overview's person-times against an imported target, the class page's
//! payable days and allowance, a flag accepted with a reason (written into the class document,
//! paid, and synced back to the phone), a conflict decided, trainee lookup and audited unmasking,
//! targets refused row by row, and the OpenAPI description.

use songpei_tests::{CliPhone, ServerProcess, VILLAGE_A, id_number};

/// A browser-like client that keeps the session cookie.
struct Browser {
    agent: ureq::Agent,
    base: String,
    cookie: Option<String>,
}

struct Reply {
    status: u16,
    json: serde_json::Value,
    headers: Vec<(String, String)>,
}

impl Browser {
    fn new(base: &str) -> Self {
        Self {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
            base: base.to_owned(),
            cookie: None,
        }
    }

    fn finish(&mut self, resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut resp = resp.expect("server answers");
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        for (k, v) in &headers {
            if k == "set-cookie" {
                let pair = v.split(';').next().unwrap_or("").to_owned();
                self.cookie = pair
                    .split_once('=')
                    .filter(|(_, val)| !val.is_empty())
                    .map(|_| pair.clone());
            }
        }
        let body = resp.body_mut().read_to_vec().unwrap_or_default();
        if status >= 400 {
            songpei_tests::keep_log("http", &body);
        }
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        Reply {
            status,
            json,
            headers,
        }
    }

    fn get(&mut self, path: &str) -> Reply {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", c);
        }
        let r = req.call();
        self.finish(r)
    }

    fn bytes(&mut self, path: &str) -> Vec<u8> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", c);
        }
        let mut resp = req.call().expect("server answers");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        resp.body_mut()
            .with_config()
            .limit(50_000_000)
            .read_to_vec()
            .expect("body")
    }

    fn post(&mut self, path: &str, content_type: &str, body: &str) -> Reply {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", content_type);
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", c);
        }
        let r = req.send(body.as_bytes());
        self.finish(r)
    }

    fn json(&mut self, path: &str, body: serde_json::Value) -> Reply {
        self.post(path, "application/json", &body.to_string())
    }

    fn login(&mut self, username: &str, password: &str) -> Reply {
        self.json(
            "/api/v1/login",
            serde_json::json!({"username": username, "password": password}),
        )
    }
}

fn account(server: &ServerProcess, username: &str, role: &str) -> String {
    let out = server.admin_ok(&["account", "add", "--username", username, "--role", role]);
    out.lines()
        .find_map(|l| l.strip_prefix("password (shown once): "))
        .unwrap_or_else(|| panic!("no password in {out}"))
        .trim()
        .to_owned()
}

fn audit_actions(server: &ServerProcess) -> Vec<(String, String, String)> {
    server
        .audit_log()
        .into_iter()
        .map(|(actor, action, _, detail)| (actor, action, detail))
        .collect()
}

fn the_district_office_reviews_pays_and_reports_through_the_api(
    start: &dyn Fn(Option<&str>) -> ServerProcess,
) {
    let server = start(None);
    let admin_pw = account(&server, "office", "district_admin");
    let viewer_pw = account(&server, "reader", "district_viewer");
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);

    // A three-day subsidised class from 2026-03-02 with two trainees, one from a 脱贫户 household.
    let class = phone.class(3, &["--subsidised"]);
    let poor_id = id_number("45080219850312002");
    let poor = phone.trainee("张秀英", &poor_id, &["--poverty", "脱贫户"]);
    let other = phone.trainee("李明", &id_number("45080219900101001"), &[]);
    for t in [&poor, &other] {
        phone.ok(&["enrol", &class, t]);
    }
    phone.ok(&["sync"]);
    // Entered by hand today for days in March: the server flags each as outside the class's hours,
    // and holds its pay until the district decides.
    for day in ["2026-03-02", "2026-03-03"] {
        for t in [&poor, &other] {
            phone.ok(&["attend", &class, t, "--day", day, "--in"]);
        }
    }
    phone.ok(&["complete", &class, &poor, "--result", "passed"]);
    phone.ok(&["complete", &class, &other, "--result", "failed"]);
    phone.ok(&["class", "close", &class]);
    phone.ok(&["sync"]);

    let mut b = Browser::new(&server.url);
    // Signing in: wrong password, a coordinator, then the admin.
    assert_eq!(b.get("/api/v1/overview").status, 401);
    let bad = b.login("office", "not-the-password");
    assert_eq!(
        (bad.status, bad.json["code"].as_str()),
        (401, Some("bad_credentials"))
    );
    let ok = b.login("office", &admin_pw);
    assert_eq!(ok.status, 200, "{}", ok.json);
    assert_eq!(ok.json["role"], "district_admin");
    assert_eq!(ok.json["district"]["code"], "450802");
    let cookie = ok
        .headers
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.clone())
        .expect("cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert_eq!(b.get("/api/v1/me").json["username"], "office");

    // Targets: a table shaped like the city's, one bad row refuses the whole upload.
    let bad_csv = "区域,三年计划总目标,2019年,2020年,2021年\n港北区,19200,4800,7200,7200\n平南县,24000,6000,九千,9000\n";
    let r = b.post("/api/v1/targets", "text/csv", bad_csv);
    assert_eq!(
        (r.status, r.json["code"].as_str()),
        (400, Some("bad_csv")),
        "{}",
        r.json
    );
    assert_eq!(r.json["problems"][0]["row"], 3, "{}", r.json);
    assert_eq!(b.get("/api/v1/targets").json, serde_json::json!([]));
    let csv = "区域,三年计划总目标,2024年,2025年,2026年\n港北区,30,10,10,10\n合计,60,20,20,20\n";
    let r = b.post("/api/v1/targets", "text/csv", csv);
    assert_eq!(r.json["imported"], 6, "{}", r.json);

    // The overview on the class's last day: one person-time (the trainee who passed), against the
    // year's target of 10.
    let o = b.get("/api/v1/overview?date=2026-03-04").json;
    assert_eq!(o["month"]["person_times"], 1, "{o}");
    assert_eq!(o["year"]["person_times"], 1, "{o}");
    assert_eq!(o["year"]["target"], 10, "{o}");
    assert_eq!(o["year"]["progress"], 0.1, "{o}");
    assert_eq!(o["today"][0]["class_id"], class.as_str(), "{o}");
    assert_eq!(o["today"][0]["enrolled"], 2, "{o}");
    assert_eq!(
        o["by_township"][0]["villages"][0]["person_times_year"], 1,
        "{o}"
    );
    assert_eq!(o["pending_review"], 4, "{o}");
    assert_eq!(o["attendance_by_day"].as_array().map(Vec::len), Some(30));
    let bad_day = b.get("/api/v1/overview?date=2026-13-01");
    assert_eq!(bad_day.json["field"], "date", "{}", bad_day.json);

    // The class page: four records held, nothing payable yet; the subsidy decided for both.
    let page = b.get(&format!("/api/v1/classes/{class}")).json;
    assert_eq!(
        page["class"]["days"].as_array().map(Vec::len),
        Some(3),
        "{page}"
    );
    let row = |page: &serde_json::Value, t: &str| {
        page["trainees"]
            .as_array()
            .expect("trainees")
            .iter()
            .find(|r| r["trainee_id"] == t)
            .cloned()
            .expect("trainee row")
    };
    let p = row(&page, &poor);
    assert_eq!(p["name_masked"], "张**", "{p}");
    assert_eq!(p["payable_days"], 0, "{p}");
    assert_eq!(p["subsidy"]["decision"], "subsidised", "{p}");
    assert_eq!(p["poverty_status"], "lifted", "{p}");
    assert!(
        !page.to_string().contains(&poor_id),
        "an ID number in the clear"
    );
    let held: Vec<String> = page["attendance"]
        .as_array()
        .expect("attendance")
        .iter()
        .filter(|a| a["trainee_id"] == poor.as_str())
        .map(|a| {
            assert_eq!(a["flags"][0]["flag"], "outside_hours", "{a}");
            assert_eq!(a["payable"], false, "{a}");
            a["attendance_id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(held.len(), 2);

    // The review queue holds the four records; a viewer may look but not decide.
    let q = b.get("/api/v1/review").json;
    assert_eq!(q["items"].as_array().map(Vec::len), Some(4), "{q}");
    let mut v = Browser::new(&server.url);
    assert_eq!(v.login("reader", &viewer_pw).status, 200);
    let denied = v.json(
        "/api/v1/review",
        serde_json::json!({"doc_id": class, "subject": held[0], "decision": "accepted", "reason": "核实无误"}),
    );
    assert_eq!(
        (denied.status, denied.json["code"].as_str()),
        (403, Some("not_allowed"))
    );
    // Each rule of a decision, refused with the field it names.
    for (body, field) in [
        (
            serde_json::json!({"doc_id": class, "subject": held[0], "decision": "maybe", "reason": "核实无误"}),
            "decision",
        ),
        (
            serde_json::json!({"doc_id": class, "subject": held[0], "decision": "accepted", "reason": " "}),
            "reason",
        ),
        (
            serde_json::json!({"doc_id": "x", "subject": held[0], "decision": "accepted", "reason": "核实无误"}),
            "doc_id",
        ),
        (
            serde_json::json!({"doc_id": class, "subject": "nothing", "decision": "accepted", "reason": "核实无误"}),
            "subject",
        ),
    ] {
        let r = b.json("/api/v1/review", body.clone());
        assert_eq!(
            (r.status, r.json["field"].as_str()),
            (400, Some(field)),
            "{body} → {}",
            r.json
        );
    }
    // Accept both of the poor trainee's days, with a reason: they are paid, 2 × 50 yuan.
    for a in &held {
        let r = b.json(
            "/api/v1/review",
            serde_json::json!({"doc_id": class, "subject": a, "decision": "accepted", "reason": "补录，村委会签到表为证"}),
        );
        assert_eq!(r.status, 200, "{}", r.json);
    }
    let page = b.get(&format!("/api/v1/classes/{class}")).json;
    let p = row(&page, &poor);
    assert_eq!(
        (p["payable_days"].clone(), p["allowance_fen"].clone()),
        (2.into(), 10_000.into()),
        "{p}"
    );
    let reviewed = page["attendance"]
        .as_array()
        .expect("attendance")
        .iter()
        .find(|a| a["attendance_id"] == held[0].as_str())
        .cloned()
        .expect("record");
    assert_eq!(reviewed["review"]["decision"], "accepted", "{reviewed}");
    assert_eq!(reviewed["review"]["reviewer"], "office", "{reviewed}");
    assert_eq!(reviewed["payable"], true, "{reviewed}");
    assert_eq!(
        b.get("/api/v1/review").json["items"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // The decision is in the class document: the phone gets it on its next sync.
    phone.ok(&["sync"]);
    let docs = phone.json(&["export"]);
    let text = docs.to_string();
    assert!(
        text.contains("补录，村委会签到表为证"),
        "the review did not reach the phone"
    );

    // Trainee lookup by ID number is masked; unmasking needs a reason and is audited.
    let hits = b
        .json(
            "/api/v1/trainees/search",
            serde_json::json!({"id_number": poor_id}),
        )
        .json;
    assert_eq!(hits[0]["trainee_id"], poor.as_str(), "{hits}");
    assert_eq!(hits[0]["classes"][0]["decision"], "subsidised", "{hits}");
    assert!(!hits.to_string().contains(&poor_id));
    let wrong_check = format!(
        "{}{}",
        &poor_id[..17],
        if poor_id.ends_with('0') { '1' } else { '0' }
    );
    let bad_id = b.json(
        "/api/v1/trainees/search",
        serde_json::json!({"id_number": wrong_check}),
    );
    assert_eq!(bad_id.json["field"], "id_number", "{}", bad_id.json);
    let no_reason = b.json(
        &format!("/api/v1/trainees/{poor}/unmask"),
        serde_json::json!({"reason": "看"}),
    );
    assert_eq!(
        (no_reason.status, no_reason.json["field"].as_str()),
        (400, Some("reason"))
    );
    let clear = b.json(
        &format!("/api/v1/trainees/{poor}/unmask"),
        serde_json::json!({"reason": "核对生活费发放名单"}),
    );
    assert_eq!(clear.json["id_number"], poor_id.as_str(), "{}", clear.json);
    assert_eq!(clear.json["name"], "张秀英");
    let audit = audit_actions(&server);
    assert!(
        audit
            .iter()
            .any(|(actor, action, detail)| actor == "account:office"
                && action == "read_personal"
                && detail.contains("核对生活费发放名单"))
    );
    assert!(audit.iter().filter(|(_, a, _)| a == "review").count() == 2);
    assert!(
        !audit
            .iter()
            .any(|(_, _, d)| d.contains(&poor_id) || d.contains("张秀英")),
        "personal data in the audit log"
    );

    // The monthly report of March 2026, figured by hand:
    // - person-times: the class closed on 2026-03-04 with one trainee passed, one failed → 1, of
    //   type 就业技能培训, occupation 中式烹调师, from a 脱贫户 household;
    // - allowance: the poor trainee's two accepted days × 50 yuan = 100.00 yuan (10,000 fen); the
    //   other trainee's days are still held, and that household is not poor anyway;
    // - subsidy: the one counted place is subsidised (the person's first in 2026);
    // - progress: 1 of the year's target of 10.
    let r = b
        .get("/api/v1/reports/monthly?district=450802&month=2026-03")
        .json;
    assert_eq!(r["person_times"]["total"], 1, "{r}");
    assert_eq!(
        r["person_times"]["by_training_type"][0]["label"], "就业技能培训",
        "{r}"
    );
    assert_eq!(
        r["person_times"]["by_occupation"][0]["code"], "中式烹调师",
        "{r}"
    );
    assert_eq!(r["person_times"]["poverty_households"], 1, "{r}");
    assert_eq!(r["allowance"]["total_fen"], 10_000, "{r}");
    assert_eq!(r["allowance"]["payable_days"], 2, "{r}");
    assert_eq!(r["subsidy"][0]["decision"], "subsidised", "{r}");
    assert_eq!(r["subsidy"][0]["places"], 1, "{r}");
    assert_eq!(r["progress"]["cumulative"], 1, "{r}");
    assert_eq!(r["progress"]["target"], 10, "{r}");
    assert_eq!(r["places"].as_array().map(Vec::len), Some(2), "{r}");
    assert!(
        !r.to_string().contains(&poor_id),
        "an ID number in the clear"
    );
    let bad_month = b.get("/api/v1/reports/monthly?district=450802&month=2026-3");
    assert_eq!(bad_month.json["field"], "month", "{}", bad_month.json);
    let other = b.get("/api/v1/reports/monthly?district=450803&month=2026-03");
    assert_eq!(other.json["field"], "district", "{}", other.json);

    // The same as a workbook, read back.
    let xlsx = b.bytes("/api/v1/reports/monthly.xlsx?district=450802&month=2026-03");
    assert!(xlsx.starts_with(b"PK"), "not an xlsx");
    let mut wb = calamine::Xlsx::new(std::io::Cursor::new(xlsx)).expect("xlsx");
    use calamine::Reader;
    let sheet = wb.worksheet_range("月报").expect("sheet 月报");
    let cell = |r: u32, c: u32| {
        sheet
            .get_value((r, c))
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    assert_eq!(cell(0, 0), "港北区职业技能培训月报（2026年3月）");
    assert_eq!(
        (cell(3, 0), cell(3, 1), cell(3, 2)),
        ("项目".into(), "指标".into(), "数值".into())
    );
    let find = |section: &str, item: &str| {
        (4..sheet.height() as u32)
            .find(|r| cell(*r, 0) == section && cell(*r, 1) == item)
            .map(|r| cell(r, 2))
    };
    assert_eq!(find("培训人次", "合计").as_deref(), Some("1"));
    assert_eq!(find("生活费补贴", "金额（元）").as_deref(), Some("100"));
    assert_eq!(find("年度目标进度", "年度目标").as_deref(), Some("10"));
    let detail = wb.worksheet_range("明细").expect("sheet 明细");
    assert_eq!(detail.height(), 3, "a header and two places");
    assert_eq!(
        detail.get_value((0, 9)).map(|v| v.to_string()).as_deref(),
        Some("判定依据")
    );

    // As CSV, parsed back.
    let csv_bytes = b.bytes("/api/v1/reports/monthly.csv?district=450802&month=2026-03");
    assert!(
        csv_bytes.starts_with(b"\xEF\xBB\xBF"),
        "no byte-order mark for Excel"
    );
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&csv_bytes[3..]);
    let rows: Vec<Vec<String>> = rdr
        .records()
        .map(|r| r.expect("csv").iter().map(str::to_owned).collect())
        .collect();
    assert!(
        rows.iter()
            .any(|r| r == &["生活费补贴", "金额（元）", "100"]),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|r| r == &["培训人次", "合计", "1"]),
        "{rows:?}"
    );

    // And from the command line, on the server's data folder.
    let out_dir = tempfile::tempdir().expect("tempdir");
    let file = out_dir.path().join("march.xlsx");
    let cli = server.report(&[
        "--month",
        "2026-03",
        "--format",
        "xlsx",
        "--out",
        &file.to_string_lossy(),
    ]);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(std::fs::read(&file).expect("file").starts_with(b"PK"));
    let cli = server.report(&["--month", "March", "--out", "x.xlsx"]);
    assert_eq!(cli.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&cli.stderr).contains("month"));

    // Signing out ends the session.
    assert_eq!(b.post("/api/v1/logout", "application/json", "").status, 204);
    assert_eq!(b.get("/api/v1/me").status, 401);

    // The OpenAPI description lists every route: the office's, the reports, the phones' and the
    // health check, with the content types they answer.
    let api = Browser::new(&server.url).get("/api/openapi.json").json;
    for (method, path) in [
        ("post", "/api/v1/login"),
        ("get", "/api/v1/overview"),
        ("get", "/api/v1/classes/{id}"),
        ("get", "/api/v1/review"),
        ("post", "/api/v1/review"),
        ("get", "/api/v1/targets"),
        ("post", "/api/v1/targets"),
        ("get", "/api/v1/reports/monthly"),
        ("get", "/api/v1/reports/monthly.xlsx"),
        ("get", "/api/v1/reports/monthly.csv"),
        ("get", "/healthz"),
        ("post", "/v1/sync"),
        ("post", "/v1/enroll"),
        ("post", "/v1/auth/challenge"),
        ("post", "/v1/auth/token"),
        ("post", "/v1/cards"),
        ("get", "/office/"),
    ] {
        assert!(
            api["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI description"
        );
    }
    let ok = |method: &str, path: &str| &api["paths"][path][method]["responses"]["200"]["content"];
    assert!(
        ok("get", "/api/v1/reports/monthly.xlsx")
            ["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"]
            .is_object()
    );
    assert!(ok("get", "/api/v1/reports/monthly.csv")["text/csv"].is_object());
    assert!(ok("post", "/v1/sync")["application/vnd.songpei.sync.v1+postcard"].is_object());
    assert!(ok("post", "/v1/enroll")["application/json"].is_object());
    assert!(
        api["paths"]["/v1/sync"]["post"]["responses"]["429"]["headers"]["Retry-After"].is_object()
    );
    assert!(api["components"]["schemas"]["ErrorBody"].is_object());
    assert!(api["components"]["schemas"]["MonthlyReport"].is_object());
}

fn a_conflict_between_two_phones_waits_for_review_and_leaves_the_queue_once_decided(
    start: &dyn Fn(Option<&str>) -> ServerProcess,
) {
    let server = start(None);
    let admin_pw = account(&server, "office", "district_admin");
    let a = CliPhone::new();
    let b = CliPhone::new();
    server.enroll(&a, &[VILLAGE_A]);
    server.enroll(&b, &[VILLAGE_A]);
    let t = a.trainee(
        "张秀英",
        &id_number("45080219850312002"),
        &["--phone", "13812345678"],
    );
    a.ok(&["sync"]);
    b.ok(&["sync"]);
    // Offline, both change the trainee's phone number.
    a.ok(&["trainee", "set-phone", &t, "13911112222"]);
    b.ok(&["trainee", "set-phone", &t, "13733334444"]);
    a.ok(&["sync"]);
    b.ok(&["sync"]);

    let mut web = Browser::new(&server.url);
    assert_eq!(web.login("office", &admin_pw).status, 200);
    let q = web.get("/api/v1/review").json;
    let items = q["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1, "{q}");
    let item = &items[0];
    assert_eq!(item["kind"], "conflict", "{item}");
    assert_eq!(item["doc_kind"], "trainee", "{item}");
    assert_eq!(item["path"], "phone", "{item}");
    // Phone numbers are personal: the queue shows them masked.
    assert!(
        !q.to_string().contains("13911112222") && !q.to_string().contains("13733334444"),
        "{q}"
    );
    assert_eq!(item["values"].as_array().map(Vec::len), Some(2), "{item}");
    assert_eq!(web.get("/api/v1/overview").json["pending_review"], 1);

    let r = web.json(
        "/api/v1/review",
        serde_json::json!({
            "doc_id": item["doc_id"], "subject": item["subject"],
            "decision": "accepted", "reason": "已电话核实，以新号码为准"
        }),
    );
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(
        web.get("/api/v1/review").json["items"],
        serde_json::json!([])
    );
    assert_eq!(web.get("/api/v1/overview").json["pending_review"], 0);
    // The decision travels to both phones with the trainee's document.
    for phone in [&a, &b] {
        phone.ok(&["sync"]);
        assert!(
            phone
                .json(&["export"])
                .to_string()
                .contains("已电话核实，以新号码为准")
        );
    }
}

/// Row I5: the allowance rate changes in the middle of a class (here from 50 to 60 yuan a day on
/// 2026-03-04, set in the server's `[[policy]]` table); each day is paid at the rate in force that
/// day. A 脱贫户 trainee attends all five days, 2026-03-02 to 03-06:
///   03-02, 03-03 at 5,000 fen + 03-04, 03-05, 03-06 at 6,000 fen = 10,000 + 18,000 = 28,000 fen.
/// The class page, the monthly report over HTTP and the report from the command line all say so.
fn i5_a_rate_changed_mid_class_pays_each_day_at_the_rate_of_that_day(
    start: &dyn Fn(Option<&str>) -> ServerProcess,
) {
    let policy = "[[policy]]\neffective_from = \"2019-01-01\"\nallowance_fen_per_day = 5000\nmax_subsidised_per_year = 3\n\
                  [[policy]]\neffective_from = \"2026-03-04\"\nallowance_fen_per_day = 6000\nmax_subsidised_per_year = 3\n";
    let server = start(Some(policy));
    let pw = account(&server, "office", "district_admin");
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);
    let class = phone.class(5, &["--subsidised"]);
    let poor = phone.trainee(
        "张秀英",
        &id_number("45080219850312002"),
        &["--poverty", "脱贫户"],
    );
    phone.ok(&["enrol", &class, &poor]);
    phone.ok(&["sync"]);
    let days = [
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
        "2026-03-05",
        "2026-03-06",
    ];
    for day in days {
        phone.ok(&["attend", &class, &poor, "--day", day, "--in"]);
    }
    phone.ok(&["sync"]);
    // Entered by hand after the fact, each day waits for review; the office accepts all five.
    let mut b = Browser::new(&server.url);
    assert_eq!(b.login("office", &pw).status, 200);
    let page = b.get(&format!("/api/v1/classes/{class}")).json;
    let records: Vec<String> = page["attendance"]
        .as_array()
        .expect("attendance")
        .iter()
        .map(|a| a["attendance_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(records.len(), 5, "{page}");
    for a in &records {
        let r = b.json(
            "/api/v1/review",
            serde_json::json!({"doc_id": class, "subject": a, "decision": "accepted", "reason": "村委会签到表为证"}),
        );
        assert_eq!(r.status, 200, "{}", r.json);
    }
    let page = b.get(&format!("/api/v1/classes/{class}")).json;
    let row = &page["trainees"][0];
    assert_eq!(row["payable_days"], 5, "{row}");
    assert_eq!(row["allowance_fen"], 28_000, "{row}");
    let r = b
        .get(&format!(
            "/api/v1/reports/monthly?district={}&month=2026-03",
            songpei_tests::DISTRICT
        ))
        .json;
    assert_eq!(r["allowance"]["total_fen"], 28_000, "{r}");
    assert_eq!(r["allowance"]["payable_days"], 5, "{r}");

    // The report from the command line reads the same table from the configuration.
    let config = server.data.join("policy.toml");
    std::fs::write(&config, policy).expect("config");
    let cli = server.report_json("2026-03", &["--config", &config.to_string_lossy()]);
    assert_eq!(cli["allowance"]["total_fen"], 28_000, "{cli}");
}

/// Row J3 over the office API: only a district admin erases, with a reason; afterwards the ID
/// number finds no one, and a second erasure finds nothing to erase. (`tests/tests/erasure.rs`
/// follows an erasure through the phones.)
fn the_office_erases_a_trainee_over_the_api(start: &dyn Fn(Option<&str>) -> ServerProcess) {
    let server = start(None);
    let admin_pw = account(&server, "office", "district_admin");
    let viewer_pw = account(&server, "reader", "district_viewer");
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);
    let id = id_number("45080219870707001");
    let t = phone.trainee("蒙桂兰", &id, &["--poverty", "脱贫户"]);
    phone.ok(&["sync"]);
    let path = format!("/api/v1/trainees/{t}/erase");
    let mut viewer = Browser::new(&server.url);
    assert_eq!(viewer.login("reader", &viewer_pw).status, 200);
    let r = viewer.json(&path, serde_json::json!({"reason": "本人申请删除"}));
    assert_eq!(r.status, 403, "{}", r.json);
    let mut b = Browser::new(&server.url);
    assert_eq!(b.login("office", &admin_pw).status, 200);
    let r = b.json(&path, serde_json::json!({"reason": "删"}));
    assert_eq!(
        (r.status, r.json["field"].as_str()),
        (400, Some("reason")),
        "{}",
        r.json
    );
    let r = b.json(
        "/api/v1/trainees/search",
        serde_json::json!({"id_number": id}),
    );
    assert_eq!(r.json.as_array().map(Vec::len), Some(1), "found before");
    let r = b.json(
        &path,
        serde_json::json!({"reason": "本人书面申请删除个人信息"}),
    );
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(
        r.json["docs"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.json
    );
    let r = b.json(
        "/api/v1/trainees/search",
        serde_json::json!({"id_number": id}),
    );
    assert_eq!(r.json, serde_json::json!([]), "the ID number finds no one");
    let r = b.json(
        &path,
        serde_json::json!({"reason": "本人书面申请删除个人信息"}),
    );
    assert_eq!(r.status, 404, "{}", r.json);
    let r = b.json(
        &format!("/api/v1/trainees/{t}/unmask"),
        serde_json::json!({"reason": "核对生活费补贴发放名单"}),
    );
    assert_eq!(r.status, 404, "nothing to unmask: {}", r.json);
    assert!(
        audit_actions(&server)
            .iter()
            .any(|(actor, action, detail)| actor == "account:office"
                && action == "erase_personal"
                && detail.contains(&t)),
        "audited"
    );
}

songpei_tests::on_every_database!(
    the_office_erases_a_trainee_over_the_api,
    the_district_office_reviews_pays_and_reports_through_the_api,
    a_conflict_between_two_phones_waits_for_review_and_leaves_the_queue_once_decided,
    i5_a_rate_changed_mid_class_pays_each_day_at_the_rate_of_that_day,
);
