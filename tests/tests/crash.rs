//! Crash safety (F1): SIGKILL the CLI again and again in the middle of a stream of durable
//! attendance writes. After every kill the store opens, passes its integrity checks, and holds every
//! record whose acknowledgement reached stdout.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use songpei_tests::{CliPhone, id_number};

/// Kills per run; each costs a process start and a few dozen fsyncs.
const KILLS: usize = 100;

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
    const ROUNDS: usize = 40;
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
