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
    phone.class(5, &[]);
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
}

/// Row B1 with a chunked body: one that never ends is cut off by the request timeout (408), and one
/// that runs past the body cap (64 KiB here) is refused with 413 while it is still being sent, and
/// the server stops reading it.
#[test]
fn chunked_bodies_without_end_or_past_the_cap_are_refused() {
    let server = ServerProcess::start_with_config(Some(
        "request_timeout_secs = 2\n[limits]\nmax_body_bytes = 65536\n",
    ));
    let dev = server.raw_device(&[VILLAGE_A]);
    let addr = server.url.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: songpei\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/vnd.songpei.sync.v1+postcard\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        dev.token
    );
    let status_of = |s: &mut TcpStream| -> String {
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    };

    // Never ends: one chunk, then silence.
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(b"400\r\n").expect("chunk size");
    s.write_all(&[0u8; 0x400]).expect("chunk");
    s.write_all(b"\r\n").expect("chunk end");
    let t = Instant::now();
    let status = status_of(&mut s);
    assert!(status.contains(" 408 "), "{status}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "cut off by the timeout"
    );

    // Past the cap: chunks keep coming; the answer comes while they do.
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(head.as_bytes()).expect("head");
    let mut sent = 0usize;
    let chunk = [7u8; 0x1000];
    // The kernel's buffers take a few MiB whatever the server does (the sender's and the
    // receiver's, at most the third figure of each sysctl); past them, writes fail once the server
    // has answered and closed. A server reading on would take the whole loop.
    let buffers: usize = ["/proc/sys/net/ipv4/tcp_wmem", "/proc/sys/net/ipv4/tcp_rmem"]
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
                .unwrap_or(8 << 20)
        })
        .sum();
    let bound = buffers + (1 << 20);
    while sent < 2 * bound {
        let ok = s.write_all(b"1000\r\n").is_ok()
            && s.write_all(&chunk).is_ok()
            && s.write_all(b"\r\n").is_ok();
        if !ok {
            break;
        }
        sent += chunk.len();
    }
    let status = status_of(&mut s);
    eprintln!("B1: a chunked body was refused with '{status}' after {sent} bytes were sent");
    assert!(status.contains(" 413 "), "{status}");
    assert!(
        sent < bound,
        "the server stopped reading: {sent} bytes sent, the kernel's buffers hold {buffers}"
    );
}
