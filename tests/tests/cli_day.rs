//! A day in a village through the CLI: plan a class, register trainees, enrol, take attendance,
//! read back payable days and allowances; refusals exit 2, name the field and change nothing.

use songpei_tests::{CliPhone, VILLAGE_A, VILLAGE_B, contains, folder_bytes, id_number};

const NAMES: [&str; 3] = ["张秀英", "李建国", "买买提·艾力"];

fn ids() -> [String; 3] {
    [
        id_number("45080219850312002"),
        id_number("45080219900701001"),
        id_number("45080219771120004"),
    ]
}

fn roster_entry<'a>(view: &'a serde_json::Value, trainee: &str) -> &'a serde_json::Value {
    view["roster"]
        .as_array()
        .expect("roster is an array")
        .iter()
        .find(|r| r["trainee_id"] == trainee)
        .expect("trainee on the roster")
}

#[test]
fn five_day_class_pays_the_poverty_household_trainee_for_two_full_days() {
    let phone = CliPhone::new();
    let class = phone.class(5, &["--subsidised", "--sign-out-required"]);
    let ids = ids();
    let poor = phone.trainee(
        NAMES[0],
        &ids[0],
        &["--phone", "13812345678", "--poverty", "脱贫户"],
    );
    let other = phone.trainee(NAMES[1], &ids[1], &["--phone", "13912345678"]);
    let third = phone.trainee(NAMES[2], &ids[2], &["--poverty", "ordinary"]);
    for t in [&poor, &other, &third] {
        phone.ok(&["enrol", &class, t]);
        for day in ["2026-03-02", "2026-03-03"] {
            phone.ok(&["attend", &class, t, "--day", day, "--in"]);
            phone.ok(&["attend", &class, t, "--day", day, "--out"]);
        }
    }
    // A sign-in without a sign-out on day 3 does not count where sign-out is required.
    phone.ok(&["attend", &class, &poor, "--day", "2026-03-04", "--in"]);

    let view = phone.json(&["class", "show", &class]);
    assert_eq!(view["id"], class.as_str());
    assert_eq!(
        view["status"], "running",
        "the first attendance starts the class"
    );
    let p = roster_entry(&view, &poor);
    assert_eq!(p["payable_days"], 2);
    assert_eq!(p["allowance_fen"], 10_000);
    for t in [&other, &third] {
        let e = roster_entry(&view, t);
        assert_eq!(e["payable_days"], 2);
        assert_eq!(e["allowance_fen"], 0);
    }
    assert_eq!(view["allowance_total_fen"], 10_000);
    assert_eq!(view["roster"].as_array().map(Vec::len), Some(3));

    // The masked name is shown, never the full one.
    let shown = phone.ok(&["class", "show", &class]);
    assert!(shown.contains("张**"));
    assert!(!shown.contains(NAMES[0]));

    // Closing the class keeps the figures and refuses further attendance.
    phone.ok(&["class", "close", &class]);
    let out = phone.run(&["attend", &class, &poor, "--day", "2026-03-05", "--in"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("class"));
    let closed = phone.json(&["class", "show", &class]);
    assert_eq!(closed["status"], "closed");
    assert_eq!(roster_entry(&closed, &poor)["allowance_fen"], 10_000);

    // Lists and lookups.
    let list = phone.json(&[
        "class",
        "list",
        "--village",
        VILLAGE_A,
        "--status",
        "closed",
    ]);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let empty = phone.json(&["class", "list", "--village", VILLAGE_B]);
    assert_eq!(empty.as_array().map(Vec::len), Some(0));
    let found = phone.json(&["trainee", "find", "--id-number", &ids[0].to_lowercase()]);
    assert_eq!(found["id"], poor.as_str());
    let t = phone.json(&["trainee", "show", &poor]);
    assert_eq!(t["poverty_status"], "lifted");
    assert_eq!(t["sex"], "female");
    assert_eq!(t["birth_date"], "1985-03-12");
    assert_ne!(t["id_number"], ids[0].as_str(), "masked by default");
    let revealed = phone.json(&["trainee", "show", &poor, "--reveal"]);
    assert_eq!(revealed["id_number"], ids[0].as_str());

    // The store file holds no plaintext name, ID number or phone number.
    let bytes = folder_bytes(&phone.data);
    for secret in NAMES
        .iter()
        .map(|n| n.to_string())
        .chain(ids.iter().cloned())
    {
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "plaintext found in the store"
        );
    }
    assert!(!contains(&bytes, b"13812345678"));
    // …but the export (the coordinator's own backup) does.
    let export = phone.ok(&["export"]);
    assert!(export.contains(NAMES[0]) && export.contains(&ids[0]));
}

#[test]
fn wrong_check_digit_exits_2_names_the_field_and_changes_nothing() {
    let phone = CliPhone::new();
    let class = phone.class(5, &[]);
    let before_file = std::fs::read(phone.store_file()).expect("store file");
    let before_export = phone.ok(&["export"]);
    let mut bad = id_number("45080219850312002");
    let last = bad.pop().unwrap_or('0');
    bad.push(if last == '7' { '8' } else { '7' });

    let out = phone.run(&[
        "trainee",
        "add",
        "--name",
        "张三",
        "--id-number",
        &bad,
        "--village",
        VILLAGE_A,
        "--poverty",
        "lifted",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("id_number"), "message names the field: {err}");
    assert!(!err.contains(&bad), "message does not repeat the number");

    let out = phone.run(&[
        "--json",
        "trainee",
        "add",
        "--name",
        "张三",
        "--id-number",
        &bad,
        "--village",
        VILLAGE_A,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).expect("JSON error");
    assert_eq!(err["error"]["code"], "invalid");
    assert_eq!(err["error"]["field"], "id_number");
    assert_eq!(err["error"]["problem"], "bad_check_digit");

    assert_eq!(
        phone.ok(&["export"]),
        before_export,
        "no document was written"
    );
    assert_eq!(
        std::fs::read(phone.store_file()).expect("store file"),
        before_file
    );
    let view = phone.json(&["class", "show", &class]);
    assert_eq!(view["roster"].as_array().map(Vec::len), Some(0));
}

/// Every refusal of the CLI: the exit code, the field named, and nothing written.
#[test]
fn refusals_table() {
    let phone = CliPhone::new();
    let class = phone.class(3, &["--sign-out-required"]);
    let t = phone.trainee("王芳", &id_number("45080219920215002"), &[]);
    let other = phone.trainee("赵强", &id_number("45080219880808001"), &[]);
    phone.ok(&["enrol", &class, &t]);
    let existing = id_number("45080219920215002");
    let fifteen = "450802920215002";
    let fresh = id_number("45080219900101123");
    let rows: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "15-digit ID number",
            vec![
                "trainee",
                "add",
                "--name",
                "甲",
                "--id-number",
                fifteen,
                "--village",
                VILLAGE_A,
            ],
            "id_number",
        ),
        (
            "impossible birth date",
            vec![
                "trainee",
                "add",
                "--name",
                "甲",
                "--id-number",
                "450802194902301234",
                "--village",
                VILLAGE_A,
            ],
            "id_number",
        ),
        (
            "already registered",
            vec![
                "trainee",
                "add",
                "--name",
                "甲",
                "--id-number",
                &existing,
                "--village",
                VILLAGE_A,
            ],
            "id_number",
        ),
        (
            "bad phone",
            vec![
                "trainee",
                "add",
                "--name",
                "甲",
                "--id-number",
                &fresh,
                "--phone",
                "12345",
                "--village",
                VILLAGE_A,
            ],
            "phone",
        ),
        (
            "emoji name",
            vec![
                "trainee",
                "add",
                "--name",
                "甲😀",
                "--id-number",
                &fresh,
                "--village",
                VILLAGE_A,
            ],
            "name",
        ),
        (
            "village not on this phone",
            vec![
                "trainee",
                "add",
                "--name",
                "甲",
                "--id-number",
                &fresh,
                "--village",
                "450802101299",
            ],
            "village",
        ),
        (
            "unknown poverty status",
            vec![
                "trainee",
                "add",
                "--name",
                "甲",
                "--id-number",
                &fresh,
                "--village",
                VILLAGE_A,
                "--poverty",
                "rich",
            ],
            "poverty_status",
        ),
        (
            "unknown level",
            vec![
                "class",
                "create",
                "--title",
                "x",
                "--village",
                VILLAGE_A,
                "--occupation",
                "电工",
                "--level",
                "wizard",
                "--type",
                "employment_skills",
                "--start",
                "2026-03-02",
                "--days",
                "2",
            ],
            "level",
        ),
        (
            "zero days",
            vec![
                "class",
                "create",
                "--title",
                "x",
                "--village",
                VILLAGE_A,
                "--occupation",
                "电工",
                "--level",
                "junior",
                "--type",
                "employment_skills",
                "--start",
                "2026-03-02",
                "--days",
                "0",
            ],
            "days",
        ),
        (
            "bad start date",
            vec![
                "class",
                "create",
                "--title",
                "x",
                "--village",
                VILLAGE_A,
                "--occupation",
                "电工",
                "--level",
                "junior",
                "--type",
                "employment_skills",
                "--start",
                "2026-02-30",
                "--days",
                "2",
            ],
            "first_day",
        ),
        (
            "not enrolled",
            vec!["attend", &class, &other, "--day", "2026-03-02", "--in"],
            "trainee",
        ),
        (
            "not a training day",
            vec!["attend", &class, &t, "--day", "2026-03-09", "--in"],
            "day",
        ),
        (
            "unknown class",
            vec![
                "attend",
                "8d0b2b3e-9f5c-4a8e-9a57-0e6a2f1c0b11",
                &t,
                "--day",
                "2026-03-02",
                "--in",
            ],
            "class",
        ),
        (
            "malformed class id",
            vec!["enrol", "not-an-id", &t],
            "class",
        ),
    ];
    let before = phone.ok(&["export"]);
    for (what, args, field) in rows {
        let mut all = vec!["--json"];
        all.extend(args);
        let out = phone.run(&all);
        assert_eq!(out.status.code(), Some(2), "row '{what}': exit code");
        let err: serde_json::Value = serde_json::from_slice(&out.stderr)
            .unwrap_or_else(|_| panic!("row '{what}': JSON error on stderr"));
        assert_eq!(err["error"]["field"], field, "row '{what}': field");
        assert_eq!(
            phone.ok(&["export"]),
            before,
            "row '{what}': nothing written"
        );
    }
}

#[test]
fn store_refuses_a_wrong_key_and_keeps_the_file() {
    let phone = CliPhone::new();
    phone.class(2, &[]);
    let before = std::fs::read(phone.store_file()).expect("store file");
    let out = phone
        .command(&["class", "list"])
        .env("SONGPEI_KEY", "00".repeat(32))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key"));
    assert_eq!(
        std::fs::read(phone.store_file()).expect("store file"),
        before
    );
    assert_eq!(
        phone.json(&["class", "list"]).as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn init_without_a_key_makes_a_key_file_and_later_commands_use_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("p");
    let bin = songpei_tests::binary("songpei");
    let out = std::process::Command::new(&bin)
        .args(["--data"])
        .arg(&data)
        .args(["init", "--district", "450802", "--village", VILLAGE_A])
        .env_remove("SONGPEI_KEY")
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("store.key"));
    let key = std::fs::read_to_string(data.join("store.key")).expect("key file");
    assert_eq!(key.trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("store.key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key file readable by its owner only");
    }
    let list = std::process::Command::new(&bin)
        .arg("--data")
        .arg(&data)
        .args(["class", "list"])
        .env_remove("SONGPEI_KEY")
        .output()
        .expect("run");
    assert!(list.status.success());
    // A second init is refused.
    let again = std::process::Command::new(&bin)
        .arg("--data")
        .arg(&data)
        .args(["init", "--district", "450802", "--village", VILLAGE_A])
        .env_remove("SONGPEI_KEY")
        .output()
        .expect("run");
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn editing_on_one_phone_replaces_the_value_without_a_conflict() {
    let phone = CliPhone::new();
    let t = phone.trainee(
        "王芳",
        &id_number("45080219920215002"),
        &["--phone", "13812345678"],
    );
    phone.ok(&["trainee", "set-phone", &t, "13912345678"]);
    let v = phone.json(&["trainee", "show", &t, "--reveal"]);
    assert_eq!(v["phone"], "13912345678");
    assert_eq!(phone.json(&["conflicts"]).as_array().map(Vec::len), Some(0));
}
