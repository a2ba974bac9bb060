//! Row G9: the server's disk fills up. The server runs with every file it writes capped a little
//! above its database's size (RLIMIT_FSIZE, so a write past the cap fails as on a full disk). A
//! phone keeps recording and syncing until a sync is refused: the refusal is `503 unavailable`, the
//! phone keeps what it could not push, and the server keeps serving what it has. With space back,
//! the phone's next sync delivers everything, the database passes its integrity check, and the
//! server holds every record exactly once.

use songpei_tests::{CliPhone, ServerProcess, VILLAGE_A, id_number};

#[test]
fn a_full_disk_is_answered_503_and_nothing_acknowledged_is_lost() {
    let mut server = ServerProcess::start();
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);
    let class = phone.class(5, &[]);
    let trainees: Vec<String> = (0..3)
        .map(|i| {
            let t = phone.trainee("罗春燕", &id_number(&format!("4508021996060600{i}")), &[]);
            phone.ok(&["enrol", &class, &t]);
            t
        })
        .collect();
    phone.sync(&server.url);
    // Stopped, the server leaves one database file (the WAL is checkpointed into it).
    server.stop();
    let db_kb = std::fs::metadata(server.data.join("songpei-server.db"))
        .expect("database file")
        .len()
        / 1024;
    server.restart_with_file_size_limit(Some(db_kb + 192));

    let mut recorded = 0;
    let mut answered = 0;
    let mut refusal = None;
    for round in 0..300 {
        let day = format!("2026-03-0{}", 2 + round % 5);
        phone.ok(&[
            "attend",
            &class,
            &trainees[round % 3],
            "--day",
            &day,
            "--in",
        ]);
        recorded += 1;
        let out = phone.run(&["sync", "--server", &server.url]);
        if out.status.success() {
            answered += 1;
        } else {
            refusal = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    let refusal = refusal.expect("the disk never filled up");
    eprintln!("G9: {answered} syncs answered before the disk was full; then: {refusal}");
    assert!(
        refusal.contains("503") && refusal.contains("unavailable"),
        "a full disk is a 503: {refusal}"
    );
    // The server is still up, and the phone's store is whole.
    let health = ureq::get(format!("{}/healthz", server.url))
        .call()
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    phone.ok(&["check"]);

    // Space comes back.
    server.restart_with_file_size_limit(None);
    phone.sync(&server.url);
    assert_eq!(
        phone.sync(&server.url)["docs_pushed"],
        0,
        "nothing left to push"
    );
    let integrity: String = server
        .database()
        .query_row("PRAGMA integrity_check", songpei_server::args![], |r| {
            r.get(0)
        })
        .expect("integrity check");
    assert_eq!(integrity, "ok");
    assert_eq!(
        server.checked_records(&class),
        recorded,
        "every record, once"
    );
    let fresh = CliPhone::new();
    server.enroll(&fresh, &[VILLAGE_A]);
    fresh.sync(&server.url);
    assert_eq!(
        fresh.class_view(&class)["attendance"]
            .as_array()
            .map(Vec::len),
        Some(recorded as usize)
    );
}
