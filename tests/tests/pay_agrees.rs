//! The phone, the dashboard and the report agree to the fen (issue: one number, everywhere), end to
//! end through two real phones and the real server, on SQLite and on PostgreSQL.
//!
//! Two coordinators in two villages; 韦春燕 (脱贫户) is registered in both, 覃丽 (监测户) in village A
//! only. The allowance rate rises from 5,000 to 6,000 fen a day on 2026-03-04, in the middle of A1.
//! Every record is entered by hand, so each waits for the district's review until it is accepted.
//!
//! | class | village | dates          | occupation · level  | notes                          |
//! |-------|---------|----------------|---------------------|--------------------------------|
//! | A1    | A       | 03-02 … 03-06  | 中式烹调师 · 初级工 | subsidised, closed             |
//! | B1    | B       | 03-09 … 03-11  | 电工 · 初级工       | subsidised, sign-out required, |
//! |       |         |                |                     | 03-11 without sign-out, closed |
//! | A2    | A       | 03-16 … 03-18  | 养老护理员 · 初级工 | subsidised, never closed       |
//! | B3    | B       | 03-19 … 03-20  | 农村电商 · 专项能力 | subsidised, cancelled          |
//! | B2    | B       | 03-23 … 03-24  | 育婴员 · 初级工     | subsidised, closed             |
//! | A3    | A       | 04-06 … 04-07  | 中式烹调师 · 初级工 | subsidised again, closed       |
//! | A4    | A       | 04-13 … 04-14  | 电工 · 中级工       | not subsidised                 |
//!
//! What the district pays, worked out by hand (5,000 fen a day before 03-04, 6,000 from then on):
//! - A1: 韦春燕 and 覃丽 each 5 days: 2 × 5,000 + 3 × 6,000 = 28,000 (1st subsidised class of each).
//! - B1: 韦春燕 2 payable days (the third lacks its sign-out): 2 × 6,000 = 12,000 (her 2nd).
//! - A2: 韦春燕 3 days = 18,000 (her 3rd); 覃丽 2 days = 12,000 (her 2nd).
//! - B3: cancelled: 0, and it uses no place of the yearly cap.
//! - B2: 韦春燕's 4th subsidised class of 2026: over the cap, 0 for 2 days attended.
//! - A3: 覃丽 had 中式烹调师 · 初级工 subsidised in A1: 0 for 2 days.
//! - A4: not a subsidised class: 0 for 2 days, though 覃丽's household is 监测户.
//!
//! March: 28,000 × 2 + 12,000 + 18,000 + 12,000 = 98,000 fen over 10 + 2 + 3 + 2 = 17 days, to 2
//! people (5 places: 韦春燕 counted once across her two registrations). April: nothing paid.

use std::collections::BTreeMap;

use serde_json::Value;
use songpei_tests::{CliPhone, Office, ServerProcess, VILLAGE_A, VILLAGE_B, id_number};

const POLICY: &str = "[[policy]]\neffective_from = \"2019-01-01\"\nallowance_fen_per_day = 5000\nmax_subsidised_per_year = 3\n\
                      [[policy]]\neffective_from = \"2026-03-04\"\nallowance_fen_per_day = 6000\nmax_subsidised_per_year = 3\n";

/// Plans a class; returns its id.
fn class(
    phone: &CliPhone,
    village: &str,
    start: &str,
    days: u32,
    occupation: &str,
    level: &str,
    extra: &[&str],
) -> String {
    let days = days.to_string();
    let title = format!("{occupation}培训班");
    let mut args = vec![
        "class",
        "create",
        "--title",
        &title,
        "--village",
        village,
        "--occupation",
        occupation,
        "--level",
        level,
        "--type",
        "就业技能培训",
        "--start",
        start,
        "--days",
        &days,
    ];
    args.extend_from_slice(extra);
    phone.ok(&args)
}

fn attend(phone: &CliPhone, class: &str, trainee: &str, days: &[&str], kind: &str) {
    for day in days {
        phone.ok(&["attend", class, trainee, "--day", day, kind]);
    }
}

/// A place's figures: decision, payable days, allowance in fen.
type Figures = (&'static str, i64, i64);

fn place<'a>(view: &'a Value, key: &str, trainee: &str) -> &'a Value {
    view[key]
        .as_array()
        .expect("roster")
        .iter()
        .find(|r| r["trainee_id"] == trainee)
        .unwrap_or_else(|| panic!("{trainee} not in {view}"))
}

fn phone_figures(view: &Value, trainee: &str) -> (String, Figures) {
    let r = place(view, "roster", trainee);
    let decision = r["subsidy"]["decision"].as_str().expect("decision");
    (
        r["decided_by"].as_str().expect("decided_by").to_owned(),
        (
            leak(decision),
            r["payable_days"].as_i64().expect("days"),
            r["allowance_fen"].as_i64().expect("fen"),
        ),
    )
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn a_phone_the_dashboard_and_the_report_agree_to_the_fen(
    start: &dyn Fn(Option<&str>) -> ServerProcess,
) {
    let server = start(Some(POLICY));
    let office = Office::sign_in(&server);
    let a = CliPhone::new();
    server.enroll(&a, &[VILLAGE_A]);
    let b = CliPhone::new();
    server.enroll(&b, &[VILLAGE_B]);

    let wei_id = id_number("45080219880405002");
    let wei_a = a.trainee("韦春燕", &wei_id, &["--poverty", "脱贫户"]);
    let qin = a.trainee(
        "覃丽",
        &id_number("45080219900707004"),
        &["--poverty", "监测户"],
    );
    let wei_b = b.ok(&[
        "trainee",
        "add",
        "--name",
        "韦春燕",
        "--id-number",
        &wei_id,
        "--village",
        VILLAGE_B,
        "--poverty",
        "脱贫户",
    ]);

    let sub = ["--subsidised"];
    let a1 = class(&a, VILLAGE_A, "2026-03-02", 5, "中式烹调师", "初级工", &sub);
    let a2 = class(&a, VILLAGE_A, "2026-03-16", 3, "养老护理员", "初级工", &sub);
    let a3 = class(&a, VILLAGE_A, "2026-04-06", 2, "中式烹调师", "初级工", &sub);
    let a4 = class(&a, VILLAGE_A, "2026-04-13", 2, "电工", "中级工", &[]);
    let b1 = class(
        &b,
        VILLAGE_B,
        "2026-03-09",
        3,
        "电工",
        "初级工",
        &["--subsidised", "--sign-out-required"],
    );
    let b3 = class(&b, VILLAGE_B, "2026-03-19", 2, "农村电商", "专项能力", &sub);
    let b2 = class(&b, VILLAGE_B, "2026-03-23", 2, "育婴员", "初级工", &sub);

    for (c, t) in [(&a1, &wei_a), (&a1, &qin), (&a2, &wei_a), (&a2, &qin)] {
        a.ok(&["enrol", c, t]);
    }
    for c in [&a3, &a4] {
        a.ok(&["enrol", c, &qin]);
    }
    for c in [&b1, &b3, &b2] {
        b.ok(&["enrol", c, &wei_b]);
    }
    let a1_days = [
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
        "2026-03-05",
        "2026-03-06",
    ];
    attend(&a, &a1, &wei_a, &a1_days, "--in");
    attend(&a, &a1, &qin, &a1_days, "--in");
    attend(
        &a,
        &a2,
        &wei_a,
        &["2026-03-16", "2026-03-17", "2026-03-18"],
        "--in",
    );
    attend(&a, &a2, &qin, &["2026-03-16", "2026-03-17"], "--in");
    attend(&a, &a3, &qin, &["2026-04-06", "2026-04-07"], "--in");
    attend(&a, &a4, &qin, &["2026-04-13", "2026-04-14"], "--in");
    let b1_days = ["2026-03-09", "2026-03-10", "2026-03-11"];
    attend(&b, &b1, &wei_b, &b1_days, "--in");
    attend(&b, &b1, &wei_b, &b1_days[..2], "--out");
    attend(&b, &b2, &wei_b, &["2026-03-23", "2026-03-24"], "--in");
    b.ok(&["class", "cancel", &b3]);
    for (phone, c, trainees) in [
        (&a, &a1, vec![&wei_a, &qin]),
        (&a, &a3, vec![&qin]),
        (&b, &b1, vec![&wei_b]),
        (&b, &b2, vec![&wei_b]),
    ] {
        for t in trainees {
            phone.ok(&["complete", c, t, "--result", "passed"]);
        }
        phone.ok(&["class", "close", c]);
    }

    // Before any sync, each phone shows its own estimate, by the rules and the rates it knows: on
    // phone B, B2 is 韦春燕's 2nd subsidised class, 2 days at the default 5,000 fen; A4 pays
    // nothing, as it is not a subsidised class.
    let before = b.json(&["class", "show", &b2]);
    assert_eq!(
        phone_figures(&before, &wei_b),
        ("phone".into(), ("subsidised", 2, 10_000)),
        "{before}"
    );
    let before = a.json(&["class", "show", &a4]);
    assert_eq!(
        phone_figures(&before, &qin),
        ("phone".into(), ("class_not_subsidised", 2, 0)),
    );

    // Both phones sync (A again, for what B's records changed in A's classes). Every record was
    // entered by hand, so the district holds each for review: the phones show the places as the
    // district's, held, paying nothing yet.
    a.sync(&server.url);
    b.sync(&server.url);
    a.sync(&server.url);
    let held = a.json(&["class", "show", &a1]);
    let r = place(&held, "roster", &wei_a);
    assert_eq!(r["decided_by"], "district", "{r}");
    assert_eq!(
        (r["held_days"].as_i64(), r["allowance_fen"].as_i64()),
        (Some(5), Some(0)),
        "{r}"
    );
    let held = b.json(&["class", "show", &b2]);
    assert_eq!(
        phone_figures(&held, &wei_b),
        ("district".into(), ("year_cap_reached", 0, 0)),
        "{held}"
    );

    // The office accepts every record; the phones sync again.
    let accepted: usize = [&a1, &a2, &a3, &a4, &b1, &b2, &b3]
        .iter()
        .map(|c| office.accept_all(c))
        .sum();
    assert_eq!(accepted, 10 + 5 + 2 + 2 + 5 + 2, "records accepted");
    a.sync(&server.url);
    b.sync(&server.url);

    // Every place, as worked out by hand in the module's comment.
    let expected: Vec<(&CliPhone, &str, &str, Figures)> = vec![
        (&a, &a1, &wei_a, ("subsidised", 5, 28_000)),
        (&a, &a1, &qin, ("subsidised", 5, 28_000)),
        (&b, &b1, &wei_b, ("subsidised", 2, 12_000)),
        (&a, &a2, &wei_a, ("subsidised", 3, 18_000)),
        (&a, &a2, &qin, ("subsidised", 2, 12_000)),
        (&b, &b3, &wei_b, ("class_cancelled", 0, 0)),
        (&b, &b2, &wei_b, ("year_cap_reached", 2, 0)),
        (&a, &a3, &qin, ("same_occupation_and_level", 2, 0)),
        (&a, &a4, &qin, ("class_not_subsidised", 2, 0)),
    ];
    let reports: BTreeMap<&str, Value> = ["2026-03", "2026-04"]
        .into_iter()
        .map(|m| (m, office.report(m)))
        .collect();
    for (phone, c, t, figures) in &expected {
        let view = phone.json(&["class", "show", c]);
        assert_eq!(
            phone_figures(&view, t),
            ("district".into(), *figures),
            "phone, class {c}: {view}"
        );
        let page = office.get(&format!("/api/v1/classes/{c}"));
        let row = place(&page, "trainees", t);
        assert_eq!(
            (
                row["subsidy"]["decision"].as_str().expect("decision"),
                row["payable_days"].as_i64().expect("days"),
                row["allowance_fen"].as_i64().expect("fen"),
            ),
            *figures,
            "dashboard, class {c}: {row}"
        );
        // Each class lies in one month: the report's detail of that month holds the place.
        let month = &view["first_day"].as_str().expect("first day")[..7];
        let detail = reports[month]["places"]
            .as_array()
            .expect("places")
            .iter()
            .find(|p| p["class_id"] == **c && p["trainee_id"] == **t)
            .unwrap_or_else(|| panic!("class {c} not in the {month} report"));
        assert_eq!(
            (
                detail["decision"].as_str().expect("decision"),
                detail["payable_days"].as_i64().expect("days"),
                detail["allowance_fen"].as_i64().expect("fen"),
            ),
            *figures,
            "report, class {c}: {detail}"
        );
    }
    // The cancelled class says so in the report's detail.
    let cancelled = reports["2026-03"]["places"]
        .as_array()
        .expect("places")
        .iter()
        .find(|p| p["class_id"] == b3.as_str())
        .expect("B3 in March");
    assert_eq!(cancelled["rule"], "培训班已取消，不予补贴", "{cancelled}");

    // The month's totals: 人数 counts people, not places or registrations.
    let march = &reports["2026-03"]["allowance"];
    assert_eq!(
        (
            march["total_fen"].as_i64(),
            march["payable_days"].as_i64(),
            march["trainees"].as_i64()
        ),
        (Some(98_000), Some(17), Some(2)),
        "{march}"
    );
    let april = &reports["2026-04"]["allowance"];
    assert_eq!(
        (april["total_fen"].as_i64(), april["trainees"].as_i64()),
        (Some(0), Some(0)),
        "{april}"
    );
    // Person-times: passed in a class closed that month (A1 2, B1 1, B2 1; A3 1 in April).
    assert_eq!(reports["2026-03"]["person_times"]["total"], 4);
    assert_eq!(reports["2026-04"]["person_times"]["total"], 1);

    // The phone holds the district's rates: a record the district has not seen yet makes the
    // place an estimate again, at 6,000 fen a day for 2026-03-18 (5,000 before the table came).
    a.ok(&["attend", &a2, &qin, "--day", "2026-03-18", "--in"]);
    let view = a.json(&["class", "show", &a2]);
    assert_eq!(
        phone_figures(&view, &qin),
        ("phone".into(), ("subsidised", 3, 18_000)),
        "{view}"
    );
    // The other place of the class is still the district's.
    assert_eq!(phone_figures(&view, &wei_a).0, "district");
}

/// The district raises the allowance from 5,000 to 6,000 fen a day from 2026-03-03 and restarts its
/// server: a phone that syncs with nothing new of its own receives the new table and the district's
/// new figures for a class it synced before. 3 days: 5,000 + 6,000 + 6,000 = 17,000 fen.
fn a_new_rate_reaches_phones_that_have_nothing_new(start: &dyn Fn(Option<&str>) -> ServerProcess) {
    let mut server = start(None);
    let office = Office::sign_in(&server);
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);
    let c = class(
        &phone,
        VILLAGE_A,
        "2026-03-02",
        3,
        "电工",
        "初级工",
        &["--subsidised"],
    );
    let t = phone.trainee(
        "罗美玲",
        &id_number("45080219920202008"),
        &["--poverty", "监测户"],
    );
    phone.ok(&["enrol", &c, &t]);
    attend(
        &phone,
        &c,
        &t,
        &["2026-03-02", "2026-03-03", "2026-03-04"],
        "--in",
    );
    phone.sync(&server.url);
    assert_eq!(office.accept_all(&c), 3);
    phone.sync(&server.url);
    let view = phone.json(&["class", "show", &c]);
    assert_eq!(
        phone_figures(&view, &t),
        ("district".into(), ("subsidised", 3, 15_000)),
        "{view}"
    );

    server.restart_with_config(
        "[[policy]]\neffective_from = \"2019-01-01\"\nallowance_fen_per_day = 5000\nmax_subsidised_per_year = 3\n\
         [[policy]]\neffective_from = \"2026-03-03\"\nallowance_fen_per_day = 6000\nmax_subsidised_per_year = 3\n",
    );
    let office = Office::sign_in_again(&server, office);
    let r = phone.sync(&server.url);
    assert_eq!(r["docs_pushed"], 0, "{r}");
    let view = phone.json(&["class", "show", &c]);
    assert_eq!(
        phone_figures(&view, &t),
        ("district".into(), ("subsidised", 3, 17_000)),
        "{view}"
    );
    let page = office.get(&format!("/api/v1/classes/{c}"));
    assert_eq!(place(&page, "trainees", &t)["allowance_fen"], 17_000);
    assert_eq!(office.report("2026-03")["allowance"]["total_fen"], 17_000);
}

songpei_tests::on_every_database!(
    a_phone_the_dashboard_and_the_report_agree_to_the_fen,
    a_new_rate_reaches_phones_that_have_nothing_new,
);
