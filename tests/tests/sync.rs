//! Sync end to end: the real server on a loopback port, phones driven through the CLI.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use songpei_tests::faults::read_http;
use songpei_tests::{CliPhone, ServerProcess, VILLAGE_A, VILLAGE_B, id_number};

fn three_phones_record_offline_and_converge_through_the_server(
    start: &dyn Fn(Option<&str>) -> ServerProcess,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(songpei_tests::seed("SONGPEI_SYNC_SEED"));
    let mut server = start(None);
    let phones = [CliPhone::new(), CliPhone::new(), CliPhone::new()];
    for p in &phones {
        server.enroll(p, &[VILLAGE_A, VILLAGE_B]);
    }

    // Phone 0 plans the class and registers the trainees; everyone syncs to learn them.
    let class = phones[0].class(5, &["--sign-out-required"]);
    let trainees: Vec<String> = (0..4)
        .map(|i| {
            let t = phones[0].trainee(
                "王秀英",
                &id_number(&format!("4508021990030712{i}")),
                &["--phone", "13812345678", "--poverty", "lifted"],
            );
            phones[0].ok(&["enrol", &class, &t]);
            t
        })
        .collect();
    for p in &phones {
        p.sync(&server.url);
    }
    assert_eq!(
        phones[2].json(&["class", "list"]).as_array().map(Vec::len),
        Some(1)
    );

    // Offline: each phone takes attendance; phones 1 and 2 change the same trainee's number.
    for (i, p) in phones.iter().enumerate() {
        for t in &trainees {
            let day = format!("2026-03-0{}", 2 + i);
            p.ok(&["attend", &class, t, "--day", &day, "--in"]);
            p.ok(&["attend", &class, t, "--day", &day, "--out"]);
        }
    }
    phones[1].ok(&["trainee", "set-phone", &trainees[0], "13911112222"]);
    phones[2].ok(&["trainee", "set-phone", &trainees[0], "13733334444"]);

    // Sync in random orders; the server restarts half-way through.
    let mut order: Vec<usize> = (0..3).collect();
    for round in 0..3 {
        order.shuffle(&mut rng);
        for &i in &order {
            let r = phones[i].sync(&server.url);
            assert_eq!(r["round_trips"], 1, "one round trip when it fits one page");
        }
        if round == 0 {
            server.restart();
        }
    }

    // Converged: the same documents, the same class, the conflict visible everywhere.
    let docs0 = phones[0].documents();
    for p in &phones[1..] {
        assert_eq!(p.documents(), docs0, "replicas differ");
        assert_eq!(p.class_view(&class), phones[0].class_view(&class));
    }
    let view = phones[0].json(&["class", "show", &class]);
    assert_eq!(view["attendance"].as_array().map(Vec::len), Some(3 * 4 * 2));
    // Entered by hand after the fact, every record waits for the district's review: after the
    // sync each phone shows the district's figures, three days held and nothing paid yet.
    for r in view["roster"].as_array().expect("roster") {
        assert_eq!(r["decided_by"], "district", "{r}");
        assert_eq!(r["held_days"], 3, "{r}");
        assert_eq!(r["payable_days"], 0, "{r}");
        assert_eq!(r["allowance_fen"], 0, "{r}");
    }
    let mut winners = Vec::new();
    for p in &phones {
        let conflicts = p.json(&["conflicts"]);
        let c = conflicts
            .as_array()
            .expect("array")
            .iter()
            .find(|c| c["path"] == "phone" && c["doc"] == trainees[0].as_str())
            .unwrap_or_else(|| panic!("conflict not visible: {conflicts}"))
            .clone();
        assert_eq!(c["values"].as_array().map(Vec::len), Some(2));
        winners.push(c["winner"].clone());
    }
    assert!(
        winners.windows(2).all(|w| w[0] == w[1]),
        "same winner everywhere"
    );

    // Nothing new: one round trip, a few dozen bytes each way.
    let idle = phones[0].sync(&server.url);
    assert_eq!(idle["round_trips"], 1);
    assert_eq!(idle["docs_pushed"], 0);
    assert_eq!(idle["docs_pulled"], 0);
    let bytes =
        idle["bytes_sent"].as_u64().unwrap_or(0) + idle["bytes_received"].as_u64().unwrap_or(0);
    assert!(bytes <= 300, "an idle sync cost {bytes} bytes");

    // A server that crashes (SIGKILL) keeps everything it acknowledged.
    phones[0].ok(&[
        "attend",
        &class,
        &trainees[1],
        "--day",
        "2026-03-06",
        "--in",
    ]);
    phones[0].sync(&server.url);
    server.crash_and_restart();
    let fresh = CliPhone::new();
    server.enroll(&fresh, &[VILLAGE_A, VILLAGE_B]);
    fresh.sync(&server.url);
    let fresh_view = fresh.json(&["class", "show", &class]);
    assert_eq!(
        fresh_view["attendance"].as_array().map(Vec::len),
        Some(3 * 4 * 2 + 1)
    );
}

/// A loopback proxy that forwards one HTTP exchange at a time; on the first sync it lets the server
/// commit, then kills the server, restarts it, and drops the response, as if the server had died
/// between its commit and its answer.
struct LossyProxy {
    addr: String,
    responses: Arc<Mutex<Vec<Vec<u8>>>>,
}

fn body_of(message: &[u8]) -> &[u8] {
    let at = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 4);
    &message[at..]
}

impl LossyProxy {
    fn start(server: Arc<Mutex<ServerProcess>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = format!("http://{}", listener.local_addr().expect("addr"));
        let responses = Arc::new(Mutex::new(Vec::new()));
        let seen = responses.clone();
        std::thread::spawn(move || {
            let mut syncs = 0;
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                let mut reader = BufReader::new(client.try_clone().expect("clone"));
                let Some(request) = read_http(&mut reader) else {
                    continue;
                };
                let upstream = server.lock().expect("lock").url.clone();
                let host = upstream.trim_start_matches("http://").to_owned();
                let mut up = TcpStream::connect(&host).expect("connect to server");
                up.write_all(&request).expect("forward");
                let mut up_reader = BufReader::new(up);
                let Some(response) = read_http(&mut up_reader) else {
                    continue;
                };
                let is_sync = request.starts_with(b"POST /v1/sync ");
                if is_sync {
                    seen.lock().expect("lock").push(body_of(&response).to_vec());
                    syncs += 1;
                }
                if is_sync && syncs == 1 {
                    // Committed, answered — and lost: the server dies before the phone hears.
                    server.lock().expect("lock").crash_and_restart();
                    drop(client);
                    continue;
                }
                let mut client = client;
                client.write_all(&response).ok();
            }
        });
        Self { addr, responses }
    }
}

#[test]
fn a_response_lost_after_commit_is_retried_with_the_same_acks_and_no_duplicate() {
    let server = Arc::new(Mutex::new(ServerProcess::start()));
    let proxy = LossyProxy::start(server.clone());
    let phone = CliPhone::new();
    server
        .lock()
        .expect("lock")
        .enroll(&phone, &[VILLAGE_A, VILLAGE_B]);
    let class = phone.class(3, &[]);
    let t = phone.trainee("李四", &id_number("45080219900307123"), &[]);
    phone.ok(&["enrol", &class, &t]);
    phone.ok(&["attend", &class, &t, "--day", "2026-03-02", "--in"]);

    let report = phone.sync(&proxy.addr);
    assert_eq!(
        report["round_trips"], 3,
        "a token, then the sync whose response was lost, retried once"
    );
    let responses = proxy.responses.lock().expect("lock").clone();
    assert_eq!(responses.len(), 2);
    let decode = |b: &[u8]| {
        songpei_core::sync::protocol::decode::<songpei_core::sync::protocol::SyncResponse>(
            b,
            1 << 26,
        )
        .expect("a sync response")
    };
    let (first, retry) = (decode(&responses[0]), decode(&responses[1]));
    assert_eq!(
        first.request_id, retry.request_id,
        "the retry is the same request"
    );
    assert_eq!(first.acks, retry.acks, "the same acks");
    assert_eq!(first.acks.len(), 2, "class and trainee");

    // No duplicate: the server stored each document once, and a second phone sees one record.
    let other = CliPhone::new();
    server
        .lock()
        .expect("lock")
        .enroll(&other, &[VILLAGE_A, VILLAGE_B]);
    let url = server.lock().expect("lock").url.clone();
    other.sync(&url);
    let view = other.json(&["class", "show", &class]);
    assert_eq!(view["attendance"].as_array().map(Vec::len), Some(1));
    let again = phone.sync(&url);
    assert_eq!(again["docs_pushed"], 0, "nothing left to push");
    // The proxy thread keeps a handle; stop the server here so no process outlives the test.
    server.lock().expect("lock").kill();
}

songpei_tests::on_every_database!(three_phones_record_offline_and_converge_through_the_server);
