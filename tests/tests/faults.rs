//! Rows G1, G2, G3 and G6 of the reliability catalogue through a fault-injecting proxy between
//! the phones and the real server on loopback (`songpei_tests::faults`): messages dropped before
//! the server sees them or after it committed, duplicated, cut halfway, delayed; and a 2G link.
//! Seeds are printed; rerun with `SONGPEI_FAULT_SEED`.

use rand::{Rng, SeedableRng};
use songpei_tests::faults::{Fault, FaultProxy, Link};
use songpei_tests::{CliPhone, ServerProcess, VILLAGE_A, id_number};

fn seed() -> u64 {
    songpei_tests::seed("SONGPEI_FAULT_SEED")
}

/// G1, G2, G3: three phones record offline and sync through a proxy that drops, duplicates, cuts
/// and delays one exchange in two at random. A sync that gives up is tried again later, as a phone
/// does at its next signal. In the end every phone holds every record exactly once, the server
/// stored each document once per change, and the audit chain is whole.
#[test]
fn phones_converge_with_nothing_lost_or_doubled_whatever_the_network_does() {
    let seed = seed();
    let server = ServerProcess::start();
    let mut plan_rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut syncs = 0;
    let proxy = FaultProxy::start(
        &server.url,
        move |_, request| {
            // Enrolment and tokens go through; syncs meet the faults: each kind once first, then
            // one sync in two at random.
            if !request.starts_with(b"POST /v1/sync ") {
                return Fault::Pass;
            }
            syncs += 1;
            let first = [
                Fault::DropRequest,
                Fault::DropResponse,
                Fault::Duplicate,
                Fault::CutResponse,
            ];
            if let Some(f) = first.get(syncs - 1) {
                return *f;
            }
            match plan_rng.random_range(0..100) {
                0..15 => Fault::DropRequest,
                15..30 => Fault::DropResponse,
                30..45 => Fault::Duplicate,
                45..55 => Fault::CutResponse,
                55..65 => Fault::Delay(plan_rng.random_range(50..400)),
                _ => Fault::Pass,
            }
        },
        None,
        seed,
    );
    let phones = [CliPhone::new(), CliPhone::new(), CliPhone::new()];
    for p in &phones {
        server.enroll(p, &[VILLAGE_A]);
    }
    let class = phones[0].class(5, &[]);
    let trainees: Vec<String> = (0..3)
        .map(|i| {
            let t = phones[0].trainee("韦小红", &id_number(&format!("4508021992040512{i}")), &[]);
            phones[0].ok(&["enrol", &class, &t]);
            t
        })
        .collect();
    phones[0].sync(&server.url);
    for p in &phones[1..] {
        p.sync(&server.url);
    }
    for (i, p) in phones.iter().enumerate() {
        for t in &trainees {
            p.ok(&[
                "attend",
                &class,
                t,
                "--day",
                &format!("2026-03-0{}", 2 + i),
                "--in",
            ]);
        }
    }
    // Five rounds of every phone syncing through the faulty network.
    let mut gave_up = 0;
    for _ in 0..5 {
        for p in &phones {
            if !p
                .run(&["sync", "--server", &proxy.url, "--timeout", "5"])
                .status
                .success()
            {
                gave_up += 1;
            }
        }
    }
    let counts = proxy.counts();
    eprintln!("faults: {counts:?}; syncs that gave up: {gave_up} of 15");
    for f in [
        Fault::DropRequest,
        Fault::DropResponse,
        Fault::Duplicate,
        Fault::CutResponse,
    ] {
        assert!(
            counts.get(&f).copied().unwrap_or(0) > 0,
            "{f:?} never happened: {counts:?}"
        );
    }
    // Then the network heals.
    for _ in 0..2 {
        for p in &phones {
            p.sync(&server.url);
        }
    }
    let views: Vec<serde_json::Value> = phones.iter().map(|p| p.class_view(&class)).collect();
    assert_eq!(
        views[0]["attendance"].as_array().map(Vec::len),
        Some(9),
        "{}",
        views[0]
    );
    assert!(views.iter().all(|v| *v == views[0]), "the phones differ");
    // The server kept one record per sign-in, and one chunk per change set it acknowledged.
    assert_eq!(server.checked_records(&class), 9);
    assert!(server.admin_ok(&["audit", "verify"]).contains("intact"));
}

/// G6: a fresh phone pulls a village over a 2G link (100 kbps, 600 ms round trip, 2% of segments
/// stalled for a retransmission) in pages; the connection breaks once in the middle of the pull,
/// and the phone goes on from the page it had, not from the start.
#[test]
fn a_slow_link_pulls_in_pages_and_a_break_resumes_from_the_last_page() {
    let seed = seed();
    let server = ServerProcess::start_with_config(Some("[limits]\nmax_response_bytes = 3000\n"));
    let coordinator = CliPhone::new();
    server.enroll(&coordinator, &[VILLAGE_A]);
    let class = coordinator.class(5, &[]);
    for i in 0..40 {
        let t = coordinator.trainee(
            "黄丽",
            &id_number(&format!("450802199101{:02}{:03}", 1 + i % 28, 100 + i)),
            &["--poverty", "lifted"],
        );
        coordinator.ok(&["enrol", &class, &t]);
    }
    coordinator.sync(&server.url);

    // The same pull on a clean, fast link: how many pages the village takes.
    let reference = CliPhone::new();
    server.enroll(&reference, &[VILLAGE_A]);
    let clean = reference.sync(&server.url);
    let docs = clean["docs_pulled"].as_u64().expect("docs");
    assert!(docs >= 81, "{clean}");

    // Over 2G, with the connection cut in the middle of the third page's answer.
    let mut syncs = 0;
    let proxy = FaultProxy::start(
        &server.url,
        move |_, request| {
            if request.starts_with(b"POST /v1/sync ") {
                syncs += 1;
                if syncs == 3 {
                    return Fault::CutResponse;
                }
            }
            Fault::Pass
        },
        Some(Link::edge()),
        seed,
    );
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);
    let started = std::time::Instant::now();
    let slow = phone.sync(&proxy.url);
    let took = started.elapsed();
    eprintln!(
        "2G pull: {slow} in {:.1} s; clean: {clean}",
        took.as_secs_f64()
    );
    assert_eq!(slow["docs_pulled"], docs, "every document arrived");
    let pages = proxy
        .log
        .lock()
        .expect("log")
        .iter()
        .filter(|(line, _)| line.starts_with("POST /v1/sync "))
        .count();
    let clean_pages = clean["round_trips"].as_u64().expect("round trips") as usize - 1;
    assert!(clean_pages >= 3, "the village takes several pages: {clean}");
    assert_eq!(
        pages,
        clean_pages + 1,
        "one page sent again after the break, the others once"
    );
    assert_eq!(
        phone.json(&["class", "show", &class])["roster"]
            .as_array()
            .map(Vec::len),
        Some(40)
    );
}

/// G2, reordering: the phone's first sync request is held in the network past the phone's
/// timeout, so the phone gives up on it and sends it again, then records more and syncs once more,
/// and only then does the held request reach the server: the oldest request arrives last. It changes nothing: each record
/// is on the server once, the phone has nothing left to push, and another phone sees the same.
#[test]
fn a_request_that_arrives_after_later_ones_changes_nothing() {
    let server = ServerProcess::start();
    let mut syncs = 0;
    let proxy = FaultProxy::start(
        &server.url,
        move |_, request| {
            if !request.starts_with(b"POST /v1/sync ") {
                return Fault::Pass;
            }
            syncs += 1;
            if syncs == 1 {
                Fault::Delay(2_500)
            } else {
                Fault::Pass
            }
        },
        None,
        seed(),
    );
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);
    let class = phone.class(5, &[]);
    let t = phone.trainee("农海燕", &id_number("45080219970707001"), &[]);
    phone.ok(&["enrol", &class, &t]);
    phone.ok(&["attend", &class, &t, "--day", "2026-03-02", "--in"]);
    // The phone gives up on the held request after a second and tries again at once.
    let sent = std::time::Instant::now();
    phone.ok(&["sync", "--server", &proxy.url, "--timeout", "1"]);
    phone.ok(&["attend", &class, &t, "--day", "2026-03-03", "--in"]);
    phone.ok(&["sync", "--server", &proxy.url]);
    assert!(
        sent.elapsed() < std::time::Duration::from_millis(2_400),
        "the later syncs were done before the held request arrived"
    );
    // The held request reaches the server now, after the later ones.
    std::thread::sleep(std::time::Duration::from_millis(3_000));
    assert_eq!(
        proxy.counts().get(&Fault::Delay(2_500)),
        Some(&1),
        "one request was held"
    );
    assert_eq!(server.checked_records(&class), 2, "each record once");
    assert_eq!(phone.sync(&server.url)["docs_pushed"], 0);
    let other = CliPhone::new();
    server.enroll(&other, &[VILLAGE_A]);
    other.sync(&server.url);
    let mine = phone.class_view(&class);
    assert_eq!(mine["attendance"].as_array().map(Vec::len), Some(2));
    assert_eq!(other.class_view(&class), mine);
    assert!(server.admin_ok(&["audit", "verify"]).contains("intact"));
}
