//! Row H5: 1,000 simulated phones sync at once with one server on loopback. Each is a real
//! `songpei-core` phone (in-memory store) enrolled with the server as a coordinator of one of 250
//! villages, four phones to a village, all four working on their village's class. At eight in the
//! morning every phone records a sign-in and all 1,000 sync in the same instant.
//!
//! Printed: the sync latency (p50, p99, max), throughput, and the server's peak memory. Asserted:
//! every sync succeeds, nothing is lost or doubled (the server checked exactly one record per phone),
//! phones of a village end with the same class, and the server's peak memory stays bounded.
//! `SONGPEI_LOAD_PHONES` sets another number of phones.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use songpei_core::Phone;
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::catalog::PovertyStatus;
use songpei_core::clock::FixedClock;
use songpei_core::domain::{
    AttendanceKind, AttendanceMethod, HouseholdChoice, NewAttendance, NewTrainee,
};
use songpei_core::ids::{ClassId, TraineeId};
use songpei_core::store::MemoryDocStore;
use songpei_core::sync::engine::{SyncLimits, SyncReport, sync_with};
use songpei_core::sync::http::HttpTransport;
use songpei_server::accounts::{self, Role};
use songpei_tests::{ServerProcess, electricians_class, id_number};

type MemPhone = Phone<MemoryDocStore>;

/// Phones to a village.
const PER_VILLAGE: usize = 4;
/// 2026-03-02 08:00 in Beijing.
const NOW_MS: i64 = 1_772_409_600_000;
/// The server's peak memory must stay under this (resident set, high-water mark).
const MEMORY_BOUND_MB: u64 = 1024;

fn village(v: usize) -> String {
    format!("450802{:03}{:03}", 300 + v / 100, 100 + v % 100)
}

fn day(n: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("date") + chrono::Days::new(n)
}

fn transport(url: &str) -> HttpTransport {
    HttpTransport::new(url, Duration::from_secs(120))
}

/// Runs `f` over `items` on `threads` threads, keeping the order.
fn in_parallel<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let chunk = items.len().div_ceil(threads).max(1);
    let mut items = items;
    let mut parts = Vec::new();
    while !items.is_empty() {
        let rest = items.split_off(chunk.min(items.len()));
        parts.push(std::mem::replace(&mut items, rest));
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| s.spawn(|| part.into_iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    })
}

/// The village's class with two trainees, made on its first phone.
fn a_class(p: &mut MemPhone, v: usize) -> (ClassId, [TraineeId; 2]) {
    let class = p
        .create_class(electricians_class(&village(v), day(0), day(4)))
        .expect("class");
    let trainees = [0, 1].map(|i| {
        let t = p
            .add_trainee(NewTrainee {
                name: "黄秀英".into(),
                id_number: id_number(&format!(
                    "450802{}{:03}",
                    (day(0) - chrono::Days::new(9_000 + v as u64)).format("%Y%m%d"),
                    100 + i
                )),
                phone: None,
                village: village(v),
                household: HouseholdChoice::New(PovertyStatus::Lifted),
                key_groups: vec![],
                training_wish: None,
                consent_at_ms: NOW_MS,
            })
            .expect("trainee");
        p.enrol(class, t).expect("enrol");
        t
    });
    (class, trainees)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn peak_rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

#[test]
fn a_thousand_phones_sync_at_once_and_nothing_is_lost() {
    let phones_n: usize = std::env::var("SONGPEI_LOAD_PHONES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let villages_n = phones_n.div_ceil(PER_VILLAGE);
    // All phones come from 127.0.0.1: the per-address cap is lifted as it would be for a carrier's
    // shared address.
    let server =
        ServerProcess::start_with_config(Some("[limits]\nip_requests_per_minute = 100000000\n"));

    // Villages and coordinators, written straight into the server's database.
    let setup = Instant::now();
    let codes: Vec<(usize, String)> = {
        let mut db = server.sqlite();
        db.busy_timeout(Duration::from_secs(30))
            .expect("busy timeout");
        db.pragma_update(None, "synchronous", "OFF")
            .expect("pragma");
        for v in 0..villages_n {
            accounts::add_village(&db, &village(v), &format!("村{v}"), Some("测试镇"))
                .expect("village");
        }
        (0..phones_n)
            .map(|p| {
                let name = format!("load{p}");
                accounts::add_account(
                    &mut db,
                    &name,
                    Role::Coordinator,
                    &[village(p / PER_VILLAGE)],
                )
                .expect("account");
                let code = accounts::issue_enrollment_code(&db, &name).expect("code");
                (p, code.code)
            })
            .collect()
    };
    let url = server.url.clone();
    let mut phones: Vec<MemPhone> = in_parallel(codes, 8, |(p, code)| {
        let mut store = MemoryDocStore::new();
        songpei_core::sync::auth::enroll_with(&mut store, &mut transport(&url), &url, &code)
            .unwrap_or_else(|e| panic!("enroll phone {p}: {e}"));
        Phone::open(store, BlindIndexKey::from_bytes([1; 32]))
            .expect("open")
            .with_clock(Arc::new(FixedClock::at(NOW_MS + p as i64)))
    });
    // The first phone of each village plans its class and syncs; then every phone syncs once and
    // so holds its village's class.
    let classes: Vec<(ClassId, [TraineeId; 2])> = phones
        .iter_mut()
        .step_by(PER_VILLAGE)
        .enumerate()
        .map(|(v, p)| a_class(p, v))
        .collect();
    let limits = SyncLimits::default();
    let sync = |p: &mut MemPhone| -> Result<SyncReport, String> {
        sync_with(p, &mut transport(&url), &limits, &mut |_| {}).map_err(|e| e.to_string())
    };
    let phones: Vec<(usize, MemPhone)> =
        in_parallel(phones.into_iter().enumerate().collect(), 8, |(i, mut p)| {
            if i % PER_VILLAGE == 0 {
                sync(&mut p).expect("first sync");
            }
            (i, p)
        });
    let mut phones = in_parallel(phones, 8, |(_, mut p)| {
        sync(&mut p).expect("setup sync");
        p
    });
    let setup_s = setup.elapsed().as_secs_f64();

    // Eight o'clock: every phone records a sign-in, then all sync at once.
    for (i, p) in phones.iter_mut().enumerate() {
        let (class, trainees) = classes[i / PER_VILLAGE];
        p.record_attendance(NewAttendance {
            class,
            trainee: trainees[i % 2],
            day: day((i % PER_VILLAGE / 2) as u64),
            kind: AttendanceKind::SignIn,
            method: AttendanceMethod::Hand {
                reason: "点名".into(),
            },
            gps: None,
        })
        .expect("record");
    }
    let rss_before = peak_rss_mb(server.pid());
    let barrier = Barrier::new(phones.len());
    let started = Instant::now();
    let results: Vec<(MemPhone, Duration, Result<SyncReport, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = phones
            .into_iter()
            .map(|mut p| {
                let barrier = &barrier;
                let sync = &sync;
                s.spawn(move || {
                    barrier.wait();
                    let t = Instant::now();
                    let r = sync(&mut p);
                    (p, t.elapsed(), r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("phone"))
            .collect()
    });
    let wall = started.elapsed();
    let peak_mb = peak_rss_mb(server.pid());

    let failures: Vec<&String> = results
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().err())
        .collect();
    let mut latencies: Vec<Duration> = results.iter().map(|(_, d, _)| *d).collect();
    latencies.sort();
    let round_trips: usize = results
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().ok().map(|r| r.round_trips))
        .sum();
    let bytes: usize = results
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().ok().map(|r| r.bytes_sent + r.bytes_received))
        .sum();
    eprintln!(
        "H5: {phones_n} phones in {villages_n} villages (setup {setup_s:.0} s)\n\
         | phones | syncs ok | failed | wall s | syncs/s | round trips | KiB moved | p50 ms | p99 ms | max ms | server peak RSS MB (before) |\n\
         | {phones_n} | {} | {} | {:.1} | {:.1} | {round_trips} | {} | {} | {} | {} | {peak_mb} ({rss_before}) |",
        results.len() - failures.len(),
        failures.len(),
        wall.as_secs_f64(),
        results.len() as f64 / wall.as_secs_f64(),
        bytes / 1024,
        percentile(&latencies, 0.5).as_millis(),
        percentile(&latencies, 0.99).as_millis(),
        latencies.last().map_or(0, Duration::as_millis),
    );
    assert!(
        failures.is_empty(),
        "{} syncs failed, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        peak_mb < MEMORY_BOUND_MB,
        "the server's peak memory was {peak_mb} MB"
    );

    // Nothing lost or doubled: one checked record per phone, and after one more round every phone
    // of a village holds the same class with all four records.
    let mut phones: Vec<MemPhone> = results.into_iter().map(|(p, _, _)| p).collect();
    let checked: i64 = classes
        .iter()
        .map(|(c, _)| server.checked_records(&c.uuid().to_string()))
        .sum();
    assert_eq!(checked, phones_n as i64, "one checked record per phone");
    let mut phones_after = in_parallel(std::mem::take(&mut phones), 8, |mut p| {
        let r = sync(&mut p).expect("sync after");
        assert_eq!(r.docs_pushed, 0, "nothing left to push");
        p
    });
    for (v, (class, _)) in classes.iter().enumerate() {
        let views: Vec<serde_json::Value> = phones_after
            [v * PER_VILLAGE..((v + 1) * PER_VILLAGE).min(phones_n)]
            .iter_mut()
            .map(|p| serde_json::to_value(p.class_view(*class).expect("view")).expect("json"))
            .collect();
        let in_village = views.len();
        assert_eq!(
            views[0]["attendance"].as_array().map(Vec::len),
            Some(in_village),
            "village {v}: every phone's record"
        );
        assert!(
            views.iter().all(|x| *x == views[0]),
            "village {v}: phones agree"
        );
    }
}
