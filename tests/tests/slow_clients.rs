//! Row B5: many idle or slow connections. Hundreds of connections that send nothing, and dozens
//! that trickle their headers a line at a time, do not keep a phone from syncing, and the server
//! closes every one of them once `HEADER_TIMEOUT` has passed without a whole request head.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use songpei_tests::{CliPhone, ServerProcess, VILLAGE_A};

const IDLE: usize = 300;
const TRICKLING: usize = 50;

#[test]
fn idle_and_trickling_connections_are_cut_off_and_phones_still_sync() {
    let server = ServerProcess::start();
    let addr = server.url.trim_start_matches("http://").to_owned();
    let opened = Instant::now();
    let mut idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(&addr).expect("connect"))
        .collect();
    let mut trickling: Vec<TcpStream> = (0..TRICKLING)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.write_all(b"POST /v1/sync HTTP/1.1\r\nHost: songpei\r\n")
                .expect("start a request");
            s
        })
        .collect();
    // A second thread keeps the trickle going: one more header line every second.
    let trickle = {
        let mut streams: Vec<TcpStream> = trickling
            .iter()
            .map(|s| s.try_clone().expect("clone"))
            .collect();
        std::thread::spawn(move || {
            for i in 0..25 {
                std::thread::sleep(Duration::from_secs(1));
                for s in &mut streams {
                    s.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).ok();
                }
            }
        })
    };

    // Meanwhile a phone enrolls, records and syncs as usual.
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);
    let class = phone.class(5, &[]);
    let report = phone.sync(&server.url);
    assert_eq!(report["docs_pushed"], 1, "{report}");
    assert!(
        opened.elapsed() < songpei_server::HEADER_TIMEOUT,
        "the phone synced while every slow connection was still open"
    );

    // Every one of them is closed by the server soon after the header timeout.
    let deadline = songpei_server::HEADER_TIMEOUT + Duration::from_secs(10);
    let mut closed = 0;
    for s in idle.iter_mut().chain(trickling.iter_mut()) {
        let left = deadline
            .saturating_sub(opened.elapsed())
            .max(Duration::from_millis(10));
        s.set_read_timeout(Some(left)).expect("timeout");
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => closed += 1,
            // A trickling request may get an answer before the close; a reset is a close too.
            Ok(_) => {
                if matches!(s.read(&mut buf), Ok(0) | Err(_)) {
                    closed += 1;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(_) => {}
        }
    }
    let took = opened.elapsed();
    eprintln!(
        "B5: {IDLE} idle and {TRICKLING} trickling connections; a phone synced meanwhile; {closed} closed by the server within {:.1} s",
        took.as_secs_f64()
    );
    assert_eq!(closed, IDLE + TRICKLING, "every slow connection was closed");
    assert!(
        took >= songpei_server::HEADER_TIMEOUT - Duration::from_secs(1),
        "closed only after the header timeout, not before"
    );
    trickle.join().ok();
    // The server still serves.
    let again = phone.sync(&server.url);
    assert_eq!(again["docs_pushed"], 0, "{again}");
    assert!(!class.is_empty());
}
