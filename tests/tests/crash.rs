//! Crash safety at scale, seeded (`SONGPEI_CRASH_SEED` replays a run): hundreds of SIGKILLs of the
//! phone during durable attendance writes (F1) and during syncs (F3), and of the server while phones
//! sync (F1 and G3 on the server). After every kill the store opens and passes its checks; in the
//! end nothing acknowledged is lost and nothing is doubled.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use songpei_tests::{CliPhone, id_number};

/// Kills per run; each costs a process start and a few dozen fsyncs.
const KILLS: usize = 300;

#[test]
fn sigkill_during_attendance_writes_loses_no_acknowledged_record() {
    let seed = songpei_tests::seed("SONGPEI_CRASH_SEED");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let phone = CliPhone::new();
    let class = phone.class(5, &["--sign-out-required"]);
    let trainees: Vec<String> = (0..3)
        .map(|i| {
            let t = phone.trainee("王芳", &id_number(&format!("4508021992021500{i}")), &[]);
            phone.ok(&["enrol", &class, &t]);
            t
        })
        .collect();
    let lines: Vec<String> = (0..400)
        .map(|i| {
            let day = format!("2026-03-0{}", 2 + (i % 5));
            let kind = if i % 2 == 0 { "in" } else { "out" };
            serde_json::json!({
                "class": class, "trainee": trainees[i % 3], "day": day, "kind": kind
            })
            .to_string()
        })
        .collect();

    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut kills_mid_stream = 0;
    for round in 0..KILLS {
        let mut child = phone
            .command(&["attend-batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().expect("stdin");
        let feed = lines.clone();
        let writer = std::thread::spawn(move || {
            for l in feed {
                if writeln!(stdin, "{l}").is_err() {
                    break;
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (first_ack, first_ack_seen) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut ids = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: serde_json::Value = serde_json::from_str(&line).expect("ack is JSON");
                ids.push(v["id"].as_str().expect("ack has an id").to_owned());
                if ids.len() == 1 {
                    first_ack.send(()).ok();
                }
            }
            ids
        });
        // Kill at a random moment once writes are flowing: anywhere within the next few records.
        first_ack_seen
            .recv_timeout(Duration::from_secs(20))
            .expect("the batch acknowledged a first record");
        let wait = Duration::from_micros(rng.random_range(0..40_000));
        let start = Instant::now();
        while start.elapsed() < wait {
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let still_running = child.try_wait().expect("try_wait").is_none();
        child.kill().ok(); // SIGKILL
        child.wait().expect("wait");
        let ids = reader.join().expect("reader");
        writer.join().ok();
        if still_running && !ids.is_empty() {
            kills_mid_stream += 1;
        }
        acked.extend(ids);

        let check = phone.json(&["check"]);
        assert_eq!(
            check["ok"], true,
            "round {round}: integrity check (seed {seed})"
        );
    }

    // Every acknowledged record is in the class document.
    let export: serde_json::Value = serde_json::from_str(&phone.ok(&["export"])).expect("export");
    let stored: BTreeSet<String> = export
        .as_array()
        .expect("array")
        .iter()
        .filter(|d| d["kind"] == "class")
        .flat_map(|d| {
            d["content"]["attendance"]
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost (seed {seed})",
        lost.len()
    );
    assert!(!acked.is_empty(), "the runs acknowledged records");
    assert!(
        kills_mid_stream >= KILLS * 9 / 10,
        "most kills should land mid-stream, got {kills_mid_stream} of {KILLS} (seed {seed})"
    );
    eprintln!(
        "{KILLS} kills ({kills_mid_stream} mid-stream), {} records acknowledged, {} stored, 0 lost",
        acked.len(),
        stored.len()
    );
    // The class still reads and computes.
    let view = phone.json(&["class", "show", &class]);
    assert_eq!(view["roster"].as_array().map(Vec::len), Some(3));
}

/// F3: SIGKILL the phone in the middle of syncing, round after round, at a random moment: before
/// the request leaves, while the server merges, after the server committed but before the phone
/// marked what it sent. After every kill the store opens and passes its check; in the end the
/// server holds every record exactly once, and a second phone sees what the first one has.
#[test]
fn sigkill_during_sync_loses_nothing_and_doubles_nothing() {
    let seed = songpei_tests::seed("SONGPEI_CRASH_SEED");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let server = songpei_tests::ServerProcess::start();
    let phone = CliPhone::new();
    server.enroll(&phone, &[songpei_tests::VILLAGE_A]);
    let class = phone.class(5, &[]);
    let trainees: Vec<String> = (0..3)
        .map(|i| {
            let t = phone.trainee("陆燕", &id_number(&format!("4508021993030300{i}")), &[]);
            phone.ok(&["enrol", &class, &t]);
            t
        })
        .collect();
    phone.sync(&server.url);
    const ROUNDS: usize = 150;
    let mut killed_mid_sync = 0;
    for round in 0..ROUNDS {
        let day = format!("2026-03-0{}", 2 + round % 5);
        let kind = if (round / 5) % 2 == 0 {
            "--in"
        } else {
            "--out"
        };
        phone.ok(&["attend", &class, &trainees[round % 3], "--day", &day, kind]);
        let mut child = phone
            .command(&["sync", "--server", &server.url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sync");
        std::thread::sleep(Duration::from_millis(rng.random_range(0..80)));
        if child.try_wait().expect("wait").is_none() {
            killed_mid_sync += 1;
        }
        child.kill().ok();
        child.wait().ok();
        phone.ok(&["check"]);
    }
    eprintln!("{killed_mid_sync} of {ROUNDS} syncs were killed before they finished");
    assert!(killed_mid_sync > 0, "no sync was interrupted");
    phone.sync(&server.url);
    let again = phone.sync(&server.url);
    assert_eq!(again["docs_pushed"], 0, "nothing left to push: {again}");
    let other = CliPhone::new();
    server.enroll(&other, &[songpei_tests::VILLAGE_A]);
    other.sync(&server.url);
    let mine = phone.class_view(&class);
    assert_eq!(mine["attendance"].as_array().map(Vec::len), Some(ROUNDS));
    assert_eq!(other.class_view(&class), mine);
    assert_eq!(
        server.checked_records(&class),
        ROUNDS as i64,
        "each record checked once"
    );
}

/// The server SIGKILLed 200 times while two phones sync, at a random moment of each round:
/// before a request arrives, while it merges, after it committed but before the answer left. Each
/// round both phones record a sign-in first. In the end, with the server left running, both phones
/// finish syncing, and the server and a new phone hold every record exactly once.
#[test]
fn sigkill_of_the_server_while_phones_sync_loses_nothing_and_doubles_nothing() {
    let seed = songpei_tests::seed("SONGPEI_CRASH_SEED");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Compaction every second (a class document has 16 chunks after 16 rounds), so kills also land
    // while the server compacts (F7 on the server).
    let mut server =
        songpei_tests::ServerProcess::start_with_config(Some("compact_every_secs = 1"));
    const KILLS: usize = 200;
    let phones: Vec<(CliPhone, String, Vec<String>)> = (0..2)
        .map(|p| {
            let phone = CliPhone::new();
            server.enroll(&phone, &[songpei_tests::VILLAGE_A]);
            let class = phone.class(5, &[]);
            let trainees: Vec<String> = (0..2)
                .map(|i| {
                    let t =
                        phone.trainee("陆燕", &id_number(&format!("450802199404040{p}{i}")), &[]);
                    phone.ok(&["enrol", &class, &t]);
                    t
                })
                .collect();
            phone.sync(&server.url);
            (phone, class, trainees)
        })
        .collect();
    let mut answered = 0;
    let mut cut = 0;
    for round in 0..KILLS {
        let day = format!("2026-03-0{}", 2 + round % 5);
        let syncs: Vec<_> = phones
            .iter()
            .map(|(phone, class, trainees)| {
                phone.ok(&["attend", class, &trainees[round % 2], "--day", &day, "--in"]);
                phone
                    .command(&["sync", "--server", &server.url, "--timeout", "5"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn sync")
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..120)));
        server.kill();
        for mut child in syncs {
            if child.wait().expect("wait").success() {
                answered += 1;
            } else {
                cut += 1;
            }
        }
        server.crash_and_restart();
    }
    eprintln!(
        "{KILLS} server kills; {answered} syncs answered before the kill, {cut} cut off (seed {seed})"
    );
    assert!(cut > 0, "no sync was cut off by a kill (seed {seed})");
    for (phone, _, _) in &phones {
        phone.sync(&server.url);
        let again = phone.sync(&server.url);
        assert_eq!(again["docs_pushed"], 0, "nothing left to push: {again}");
        phone.ok(&["check"]);
    }
    let other = CliPhone::new();
    server.enroll(&other, &[songpei_tests::VILLAGE_A]);
    other.sync(&server.url);
    for (phone, class, _) in &phones {
        let mine = phone.class_view(class);
        assert_eq!(
            mine["attendance"].as_array().map(Vec::len),
            Some(KILLS),
            "every record on its phone (seed {seed})"
        );
        assert_eq!(other.class_view(class), mine, "seed {seed}");
        assert_eq!(
            server.checked_records(class),
            KILLS as i64,
            "each record checked once (seed {seed})"
        );
    }
}

/// F7: SIGKILL the phone while it compacts its documents (each into one snapshot, then the old
/// chunks go, then the file is vacuumed), round after round with new records in between. After
/// every kill the store passes its check and holds exactly what it held before.
#[test]
fn sigkill_during_compaction_keeps_the_store_whole() {
    let seed = songpei_tests::seed("SONGPEI_CRASH_SEED");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let phone = CliPhone::new();
    let class = phone.class(5, &[]);
    let trainees: Vec<String> = (0..3)
        .map(|i| {
            let t = phone.trainee("韦丽", &id_number(&format!("4508021995050500{i}")), &[]);
            phone.ok(&["enrol", &class, &t]);
            t
        })
        .collect();
    const ROUNDS: usize = 60;
    let mut killed = 0;
    for round in 0..ROUNDS {
        for (i, trainee) in trainees.iter().enumerate() {
            let day = format!("2026-03-0{}", 2 + (round + i) % 5);
            phone.ok(&["attend", &class, trainee, "--day", &day, "--in"]);
        }
        let before = phone.documents();
        let mut child = phone
            .command(&["compact"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn compact");
        std::thread::sleep(Duration::from_micros(rng.random_range(0..60_000)));
        if child.try_wait().expect("wait").is_none() {
            killed += 1;
        }
        child.kill().ok();
        child.wait().ok();
        let check = phone.json(&["check"]);
        assert_eq!(check["ok"], true, "round {round}: integrity (seed {seed})");
        assert_eq!(
            phone.documents(),
            before,
            "round {round}: the documents changed (seed {seed})"
        );
    }
    eprintln!("{killed} of {ROUNDS} compactions were killed before they finished (seed {seed})");
    assert!(killed > 0, "no compaction was interrupted (seed {seed})");
    assert_eq!(
        phone.class_view(&class)["attendance"]
            .as_array()
            .map(Vec::len),
        Some(ROUNDS * 3)
    );
}
