//! The server on PostgreSQL, end to end: a throwaway PostgreSQL 15 from Debian's binaries, the real
//! server binary started with `SONGPEI_DATABASE_URL`, phones driven through the CLI. Everything
//! the SQLite default does for the phones and the office, it does here.

use songpei_tests::pg::Postgres;
use songpei_tests::{CliPhone, DISTRICT, ServerProcess, VILLAGE_A, VILLAGE_B, id_number};

/// Three phones record offline, sync through the server on PostgreSQL in turns (with a server
/// restart, then a PostgreSQL crash under the running server, between rounds), and converge; the server's projections, flags,
/// subsidy decisions, audit chain and monthly report come from PostgreSQL.
#[test]
fn phones_converge_through_a_server_on_postgresql_and_survive_its_restarts() {
    let pg = Postgres::start();
    let url = pg.create("songpei");
    let mut server = ServerProcess::start_on_postgres(&url);
    let phones = [CliPhone::new(), CliPhone::new(), CliPhone::new()];
    for p in &phones {
        server.enroll(p, &[VILLAGE_A, VILLAGE_B]);
    }
    let class = phones[0].class(5, &["--subsidised"]);
    let trainees: Vec<String> = (0..3)
        .map(|i| {
            let t = phones[0].trainee(
                "王秀英",
                &id_number(&format!("4508021990030712{i}")),
                &["--poverty", "lifted"],
            );
            phones[0].ok(&["enrol", &class, &t]);
            t
        })
        .collect();
    for p in &phones {
        p.sync(&server.url);
    }
    for (i, p) in phones.iter().enumerate() {
        for t in &trainees {
            let day = format!("2026-03-0{}", 2 + i);
            p.ok(&["attend", &class, t, "--day", &day, "--in"]);
        }
    }
    phones[1].ok(&["trainee", "set-phone", &trainees[0], "13911112222"]);
    phones[2].ok(&["trainee", "set-phone", &trainees[0], "13733334444"]);
    for round in 0..3 {
        for (i, p) in phones.iter().enumerate() {
            let r = p.sync(&server.url);
            // Right after PostgreSQL came back, the first request finds the old connection closed
            // and is refused with 503; the phone retries on the new one.
            let most = if round == 2 && i == 0 { 2 } else { 1 };
            assert!(r["round_trips"].as_u64().is_some_and(|n| n <= most), "{r}");
        }
        match round {
            0 => server.restart(),
            1 => {
                // PostgreSQL crashes and comes back under the running server: the server connects
                // again, and what was acknowledged is still there.
                pg.crash_and_restart();
            }
            _ => {}
        }
    }
    let first = phones[0].class_view(&class);
    for p in &phones[1..] {
        assert_eq!(p.class_view(&class), first);
    }
    assert_eq!(first["roster"].as_array().map(Vec::len), Some(3), "{first}");
    // The conflict is the same everywhere.
    let conflicts = phones[0].json(&["conflicts"]);
    assert_eq!(conflicts.as_array().map(Vec::len), Some(1), "{conflicts}");

    // What the server derived, read back from PostgreSQL through the admin commands.
    let flags = server.admin_ok(&["flags", "--json"]);
    let flags: serde_json::Value = serde_json::from_str(&flags).expect("flags json");
    // Entered by hand today for days in March: each record is outside its day, and held.
    assert_eq!(flags.as_array().map(Vec::len), Some(9), "{flags}");
    assert!(server.admin_ok(&["audit", "verify"]).contains("intact"));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let subsidised: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM p_subsidies WHERE decision = 'subsidised'",
            &[],
        )
        .expect("subsidies")
        .get(0);
    assert_eq!(subsidised, 3);
    // Every record checked once, none paid until the office reviews it.
    let (checked, paid): (i64, i64) = client
        .query_one(
            "SELECT COUNT(*), COALESCE(SUM(payable), 0)::bigint FROM attendance_checks",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .expect("checks");
    assert_eq!((checked, paid), (9, 0));

    // The monthly report from the command line, on the same database.
    let report = server.report_json("2026-03", &[]);
    assert_eq!(report["district"], DISTRICT);
    assert_eq!(
        report["places"].as_array().map(Vec::len),
        Some(3),
        "{report}"
    );
}

/// Two server replicas on one PostgreSQL database, as behind a load balancer: twenty phones record
/// attendance in one class offline, then sync at once, each through either replica at random,
/// three times over. Merges of the class on the two replicas take turns (the second finds the
/// version moved, writes nothing and answers 503; the phone sends the same request again), and a
/// replica never merges into a stale copy. At the end every phone and the database hold all
/// twenty records: nothing acknowledged is lost.
#[test]
fn twenty_phones_through_two_replicas_on_one_database_lose_nothing() {
    use rand::{Rng, SeedableRng};
    let seed = songpei_tests::seed("SONGPEI_SYNC_SEED");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let pg = Postgres::start();
    let url = pg.create("songpei");
    let one = ServerProcess::start_on_postgres(&url);
    let two = one.replica();
    let replicas = [one.url.clone(), two.url.clone()];
    let phones: Vec<CliPhone> = (0..20).map(|_| CliPhone::new()).collect();
    for p in &phones {
        one.enroll(p, &[VILLAGE_A]);
    }
    let class = phones[0].class(5, &["--subsidised"]);
    let trainees: Vec<String> = (0..4)
        .map(|i| {
            let t = phones[0].trainee("李明", &id_number(&format!("4508021985060112{i}")), &[]);
            phones[0].ok(&["enrol", &class, &t]);
            t
        })
        .collect();
    phones[0].sync(&replicas[0]);
    for p in &phones[1..] {
        p.sync(&replicas[rng.random_range(0..2)]);
    }
    // Offline, each phone records one trainee's day: 4 trainees × 5 days, twenty records.
    for (i, p) in phones.iter().enumerate() {
        let day = format!("2026-03-0{}", 2 + i / 4);
        p.ok(&["attend", &class, &trainees[i % 4], "--day", &day, "--in"]);
    }
    // Three rounds of everyone syncing at once, each phone through a replica chosen at random. A
    // sync that still fails after its retries is tried again in the next round, as a phone would.
    let mut failed = 0;
    for _ in 0..3 {
        let picks: Vec<usize> = phones.iter().map(|_| rng.random_range(0..2)).collect();
        failed += std::thread::scope(|s| {
            let runs: Vec<_> = phones
                .iter()
                .zip(&picks)
                .map(|(p, &k)| {
                    let server = &replicas[k];
                    s.spawn(move || p.run(&["sync", "--server", server]).status.success())
                })
                .collect();
            runs.into_iter()
                .map(|r| r.join().expect("sync thread"))
                .filter(|ok| !ok)
                .count()
        });
    }
    eprintln!("syncs that gave up after their retries: {failed} of 60");
    // Quiet now: each phone syncs through each replica in turn.
    for server in replicas.iter().chain(replicas.iter()) {
        for p in &phones {
            p.sync(server);
        }
    }
    let first = phones[0].class_view(&class);
    assert_eq!(
        first["attendance"].as_array().map(Vec::len),
        Some(20),
        "{first}"
    );
    for p in &phones[1..] {
        assert_eq!(p.class_view(&class), first);
    }
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let checked: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM attendance_checks WHERE class_id = $1",
            &[&class],
        )
        .expect("checks")
        .get(0);
    assert_eq!(checked, 20);
    // Both replicas answer the same for the district: the audit chain is whole.
    assert!(one.admin_ok(&["audit", "verify"]).contains("intact"));
}
