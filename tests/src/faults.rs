//! A fault-injecting HTTP proxy for the tests, between phones and the server on loopback. Each
//! request/response exchange gets a fault from the plan: passed, dropped before the server sees it,
//! answered by the server but lost on the way back, sent to the server twice, cut in the middle of
//! the response, delayed; and a link can be throttled to 2G (bandwidth, round-trip time, and loss
//! as the retransmission stalls a lossy link causes).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What happens to one exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Forwarded both ways.
    Pass,
    /// The request never reaches the server (dropped mid-sync, before any commit).
    DropRequest,
    /// The server answers, the answer is lost (after the commit).
    DropResponse,
    /// The request reaches the server twice; the phone gets the second answer.
    Duplicate,
    /// The answer stops halfway and the connection closes.
    CutResponse,
    /// Both ways delayed by this many milliseconds.
    Delay(u64),
}

/// A link's speed: bytes a second each way, one-way latency, and the share of 1,460-byte segments
/// that stall for a retransmission timeout.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// Bytes a second.
    pub bytes_per_sec: u64,
    /// One-way latency, ms.
    pub latency_ms: u64,
    /// Per mille of segments lost and sent again after `rto_ms`.
    pub loss_per_mille: u32,
    /// Retransmission timeout, ms.
    pub rto_ms: u64,
}

impl Link {
    /// A rural 2G link: 100 kbps, 600 ms round trip, 2% loss.
    pub fn edge() -> Self {
        Self {
            bytes_per_sec: 100_000 / 8,
            latency_ms: 300,
            loss_per_mille: 20,
            rto_ms: 400,
        }
    }
}

type Plan = dyn FnMut(usize, &[u8]) -> Fault + Send;

/// A running proxy. Faults applied so far are in `log`.
pub struct FaultProxy {
    /// The proxy's base URL, to give phones instead of the server's.
    pub url: String,
    /// Each exchange's request line and the fault applied.
    pub log: Arc<Mutex<Vec<(String, Fault)>>>,
}

/// Reads one HTTP/1.1 message with a Content-Length body (what the server and the phones send).
pub fn read_http(stream: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut message = Vec::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        message.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).ok()?;
    message.extend(body);
    Some(message)
}

fn send(to: &mut TcpStream, bytes: &[u8], link: Option<Link>, rng: &mut impl rand::Rng) -> bool {
    let Some(link) = link else {
        return to.write_all(bytes).is_ok();
    };
    std::thread::sleep(Duration::from_millis(link.latency_ms));
    for segment in bytes.chunks(1460) {
        if rng.random_range(0..1000) < link.loss_per_mille {
            std::thread::sleep(Duration::from_millis(link.rto_ms));
        }
        if to.write_all(segment).is_err() {
            return false;
        }
        let us = segment.len() as u64 * 1_000_000 / link.bytes_per_sec.max(1);
        std::thread::sleep(Duration::from_micros(us));
    }
    true
}

fn exchange(upstream: &str, request: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).ok()?;
    up.write_all(request).ok()?;
    read_http(&mut BufReader::new(up))
}

impl FaultProxy {
    /// Starts a proxy to `server` (`http://host:port`), deciding each exchange with `plan(n,
    /// request)`, optionally over a slow `link`. `seed` drives the link's losses.
    pub fn start(
        server: &str,
        plan: impl FnMut(usize, &[u8]) -> Fault + Send + 'static,
        link: Option<Link>,
        seed: u64,
    ) -> Self {
        use rand::SeedableRng;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = server.trim_start_matches("http://").to_owned();
        let log = Arc::new(Mutex::new(Vec::new()));
        let plan: Arc<Mutex<Box<Plan>>> = Arc::new(Mutex::new(Box::new(plan)));
        let counter = Arc::new(Mutex::new(0usize));
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for (i, conn) in listener.incoming().enumerate() {
                    let Ok(client) = conn else { continue };
                    let (log, plan, counter, upstream) =
                        (log.clone(), plan.clone(), counter.clone(), upstream.clone());
                    std::thread::spawn(move || {
                        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ i as u64);
                        let mut reader = BufReader::new(client.try_clone().expect("clone"));
                        let mut client = client;
                        while let Some(request) = read_http(&mut reader) {
                            let n = {
                                let mut c = counter.lock().expect("lock");
                                *c += 1;
                                *c
                            };
                            let fault = (plan.lock().expect("lock"))(n, &request);
                            let line = String::from_utf8_lossy(
                                request.split(|b| *b == b'\r').next().unwrap_or_default(),
                            )
                            .into_owned();
                            log.lock().expect("lock").push((line, fault));
                            if let Some(l) = link {
                                std::thread::sleep(Duration::from_millis(
                                    request.len() as u64 * 1000 / l.bytes_per_sec.max(1)
                                        + l.latency_ms,
                                ));
                            }
                            let response = match fault {
                                Fault::DropRequest => return,
                                Fault::Delay(ms) => {
                                    std::thread::sleep(Duration::from_millis(ms));
                                    let r = exchange(&upstream, &request);
                                    std::thread::sleep(Duration::from_millis(ms));
                                    r
                                }
                                Fault::Duplicate => {
                                    let _ = exchange(&upstream, &request);
                                    exchange(&upstream, &request)
                                }
                                _ => exchange(&upstream, &request),
                            };
                            let Some(response) = response else { return };
                            match fault {
                                Fault::DropResponse => return,
                                Fault::CutResponse => {
                                    let _ = client.write_all(&response[..response.len() / 2]);
                                    return;
                                }
                                _ => {
                                    if !send(&mut client, &response, link, &mut rng) {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                }
            });
        }
        Self { url, log }
    }

    /// How many exchanges got each fault.
    pub fn counts(&self) -> std::collections::BTreeMap<Fault, usize> {
        let mut m = std::collections::BTreeMap::new();
        for (_, f) in self.log.lock().expect("lock").iter() {
            *m.entry(*f).or_default() += 1;
        }
        m
    }
}
