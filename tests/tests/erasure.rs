//! Row J3: a person's erasure, end to end. Two phones hold a trainee; one of them has edited the
//! trainee offline. The district erases the trainee: the server empties the documents at once;
//! each phone removes its copy at its next sync, the edit included, and the edit's push does not
//! bring the data back. The class, its attendance and the other trainee are untouched; the audit
//! keeps the event and none of the data; on SQLite no byte of the name, ID number or phone numbers
//! is in the server's files (encrypted, ADR 0009), nor left in its database's rows.

use songpei_tests::{CliPhone, ServerProcess, VILLAGE_A, contains, folder_bytes, id_number};

const NAME: &str = "覃秀梅";
const PHONE: &str = "13712345678";
const NEW_PHONE: &str = "13900001111";

fn count(server: &ServerProcess, sql: &str, id: &str) -> i64 {
    server
        .database()
        .query_row(sql, songpei_server::args![id], |r| r.get(0))
        .expect("count")
}

/// The accounting of the monthly report of March 2026: totals, and each place (class, trainee id,
/// decision, household status, payable days, allowance) without the masked identity.
fn report(server: &ServerProcess) -> serde_json::Value {
    let r = server.report_json("2026-03", &[]);
    let mut places: Vec<serde_json::Value> = r["places"].as_array().cloned().unwrap_or_default();
    for p in &mut places {
        if let Some(p) = p.as_object_mut() {
            p.remove("name_masked");
            p.remove("id_masked");
        }
    }
    places.sort_by_key(|p| p["trainee_id"].to_string());
    serde_json::json!({
        "allowance": r["allowance"],
        "person_times": r["person_times"],
        "subsidy": r["subsidy"],
        "places": places,
    })
}

fn a_trainee_is_erased_from_the_server_and_every_phone(
    start: &dyn Fn(Option<&str>) -> ServerProcess,
) {
    let mut server = start(None);
    let on_sqlite = server.database_url().is_none();
    let a = CliPhone::new();
    server.enroll(&a, &[VILLAGE_A]);
    let b = CliPhone::new();
    server.enroll(&b, &[VILLAGE_A]);
    let id = id_number("45080219880808123");
    let class = a.class(5, &[]);
    let t = a.trainee(NAME, &id, &["--phone", PHONE, "--poverty", "lifted"]);
    let kept = a.trainee("黄丽", &id_number("45080219900101456"), &[]);
    for x in [&t, &kept] {
        a.ok(&["enrol", &class, x]);
        a.ok(&["attend", &class, x, "--day", "2026-03-02", "--in"]);
    }
    a.sync(&server.url);
    b.sync(&server.url);
    assert!(b.ok(&["trainee", "show", &t]).contains(&t));
    // B changes the phone number offline; the change is not pushed yet.
    b.ok(&["trainee", "set-phone", &t, NEW_PHONE]);
    if on_sqlite {
        server.stop();
        // The files are encrypted (ADR 0009): the name is in no file, but in the database's rows.
        assert!(!contains(&folder_bytes(&server.data), NAME.as_bytes()));
        assert!(
            contains(&server.plain_database(), NAME.as_bytes()),
            "the name is in the server's database before the erasure (else the check below proves nothing)"
        );
        server.restart();
    }

    // Bad requests change nothing and name their field.
    for (args, field) in [
        (vec!["--trainee", t.as_str(), "--reason", "删"], "reason"),
        (
            vec!["--trainee", "not-an-id", "--reason", "本人申请删除"],
            "trainee",
        ),
    ] {
        let mut all = vec!["erase-trainee"];
        all.extend(args);
        let out = server.admin(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(field),
            "{all:?}"
        );
    }
    assert_eq!(
        count(&server, "SELECT COUNT(*) FROM p_trainees WHERE id = ?1", &t),
        1
    );

    let report_before = report(&server);
    let said = server.admin_ok(&[
        "erase-trainee",
        "--trainee",
        &t,
        "--reason",
        "本人书面申请删除个人信息",
    ]);
    assert!(
        said.contains("erased 2 document(s)"),
        "trainee and household: {said}"
    );
    let again = server.admin(&["erase-trainee", "--trainee", &t, "--reason", "再次申请删除"]);
    assert_eq!(again.status.code(), Some(2), "erased already");

    // The server at once: emptied, the projected row scrubbed, no conflict; the other trainee
    // stays.
    let check_server = |server: &ServerProcess| {
        assert_eq!(
            count(
                server,
                "SELECT COUNT(*) FROM docs WHERE id = ?1 AND erased_at IS NOT NULL AND snapshot IS NULL",
                &t
            ),
            1
        );
        assert_eq!(
            count(server, "SELECT COUNT(*) FROM chunks WHERE doc_id = ?1", &t),
            0
        );
        assert_eq!(
            count(
                server,
                "SELECT COUNT(*) FROM p_trainees WHERE id = ?1 AND name_masked = '（已删除）'
                 AND phone_masked IS NULL AND birth_year IS NULL",
                &t
            ),
            1,
            "the projected row keeps nothing that identifies her"
        );
        assert_eq!(
            count(
                server,
                "SELECT COUNT(*) FROM p_trainees WHERE id = ?1",
                &kept
            ),
            1
        );
        assert_eq!(
            count(
                server,
                "SELECT COUNT(*) FROM p_conflicts WHERE doc_id = ?1",
                &t
            ),
            0
        );
    };
    check_server(&server);
    assert_eq!(
        report(&server),
        report_before,
        "the monthly report (person-times, allowance) is the same"
    );

    // A, which has no change of its own to the trainee, removes it at its next sync.
    let r = a.sync(&server.url);
    assert!(r["docs_removed"].as_u64() >= Some(2), "{r}");
    assert!(!a.run(&["trainee", "show", &t]).status.success());
    assert!(
        !a.run(&["trainee", "find", "--id-number", &id])
            .status
            .success()
    );
    // B's offline edit is refused and B removes its copy too.
    let r = b.sync(&server.url);
    assert!(r["docs_removed"].as_u64() >= Some(2), "{r}");
    assert!(!b.run(&["trainee", "show", &t]).status.success());
    assert_eq!(
        b.sync(&server.url)["docs_pushed"],
        0,
        "nothing left to push"
    );
    check_server(&server);

    // The class and its attendance stay, the other trainee too; a new phone gets nothing erased.
    let view = a.class_view(&class);
    assert_eq!(
        view["attendance"].as_array().map(Vec::len),
        Some(2),
        "{view}"
    );
    assert_eq!(b.class_view(&class)["attendance"], view["attendance"]);
    assert!(a.ok(&["trainee", "show", &kept]).contains(&kept));
    let c = CliPhone::new();
    server.enroll(&c, &[VILLAGE_A]);
    c.sync(&server.url);
    assert!(!c.run(&["trainee", "show", &t]).status.success());
    assert!(c.ok(&["trainee", "show", &kept]).contains(&kept));
    for p in [&a, &b, &c] {
        let docs = p.documents();
        assert!(!docs.contains_key(&t), "the trainee's document is gone");
        let all = serde_json::to_string(&docs).expect("json");
        for secret in [NAME, id.as_str(), PHONE, NEW_PHONE] {
            assert!(!all.contains(secret), "a phone still holds {secret}");
        }
        p.ok(&["check"]);
    }

    // The audit keeps who erased what and why, and none of the data.
    let audit: Vec<String> = server
        .audit_log()
        .into_iter()
        .map(|(actor, action, subject, detail)| format!("{actor} {action} {subject} {detail}"))
        .collect();
    assert!(
        audit
            .iter()
            .any(|l| l.contains("erase_personal") && l.contains(&t) && l.contains("本人书面申请")),
        "the erasure is audited"
    );
    for l in &audit {
        for secret in [NAME, id.as_str(), PHONE, NEW_PHONE] {
            assert!(!l.contains(secret), "the audit holds personal data: {l}");
        }
    }
    assert!(server.admin_ok(&["audit", "verify"]).contains("intact"));

    if on_sqlite {
        server.stop();
        let bytes = server.plain_database();
        for secret in [NAME, id.as_str(), PHONE, NEW_PHONE] {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{secret} is still in the server's database"
            );
        }
        assert!(
            contains(&bytes, "黄丽".as_bytes()),
            "the other trainee is kept"
        );
    }
}

songpei_tests::on_every_database!(a_trainee_is_erased_from_the_server_and_every_phone);
