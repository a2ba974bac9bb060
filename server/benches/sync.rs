//! Sync benchmark: the real server binary on loopback, phones of the real core, and the reference
//! automerge-repo server side by side. Prints one table; run with
//! `cargo bench -p songpei-server --bench sync` (add `-- --no-reference` to skip the Node side).
//!
//! (a) a phone holding 1,000 documents syncs with nothing new;
//! (b) a day's upload: one class, 50 new trainees, 50 sign-ins and 50 sign-outs;
//! (c) a fresh phone pulls one village: 20 classes, 500 trainees;
//! (d) server CPU time and memory growth per uploaded realistic class document, over 1,000;
//! (e) (d) against the reference automerge-repo sync server, with our/their ratios.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ROOT, ScalarValue};
use chrono::NaiveDate;
use songpei_core::Phone;
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::catalog::{Level, PovertyStatus, TrainingType};
use songpei_core::clock::FixedClock;
use songpei_core::domain::{
    AttendanceKind, AttendanceMethod, HouseholdChoice, NewAttendance, NewClass, NewTrainee,
};
use songpei_core::ids::{ClassId, TraineeId};
use songpei_core::store::{DocStore, MemoryDocStore};
use songpei_core::sync::engine::{SyncLimits, SyncReport, sync_with};
use songpei_core::sync::http::HttpTransport;
use songpei_core::sync::protocol::{Cursor, PROTOCOL_VERSION, Push, SyncRequest, encode};
use songpei_core::validate::check_char;

const DISTRICT: &str = "450802";
const VILLAGE_A: &str = "450802101201";
const VILLAGE_B: &str = "450802101202";
const VILLAGE_C: &str = "450802101203";

struct Server {
    child: Child,
    url: String,
    pid: u32,
    data: std::path::PathBuf,
    /// `postgres://…` when the server runs on PostgreSQL.
    database_url: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn admin(data: &Path, database_url: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_songpei-server"));
    cmd.arg("admin").arg("--data").arg(data).args(args);
    if let Some(u) = database_url {
        cmd.env("SONGPEI_DATABASE_URL", u);
    }
    let out = cmd.output().expect("admin");
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start_server(data: &Path) -> Server {
    start_server_on(data, None, true)
}

/// A server on `data`'s keys and SQLite, or on a PostgreSQL database; `init` sets up the district
/// (a further replica of a database set up already passes `false`).
fn start_server_on(data: &Path, database_url: Option<&str>, init: bool) -> Server {
    std::fs::create_dir_all(data).expect("data folder");
    if init {
        admin(
            data,
            database_url,
            &["init", "--district", DISTRICT, "--name", "港北区"],
        );
        for v in [VILLAGE_A, VILLAGE_B, VILLAGE_C] {
            admin(
                data,
                database_url,
                &["village", "add", "--code", v, "--name", "村"],
            );
        }
    }
    // One bench phone pushes a thousand documents in a minute: above a field phone's rate.
    let config = data.join("bench.toml");
    // The login flood of (g) comes through "the proxy" on this machine, from 100 addresses.
    std::fs::write(
        &config,
        "trusted_proxies = [\"127.0.0.1\"]\n[limits]\ndevice_requests_per_minute = 100000\n",
    )
    .expect("config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_songpei-server"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .arg("--config")
        .arg(&config)
        .env("SONGPEI_LOG", "error")
        .stdout(Stdio::piped());
    if let Some(u) = database_url {
        cmd.env("SONGPEI_DATABASE_URL", u);
    }
    let mut child = cmd.spawn().expect("start server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address line");
    let url = line.trim().trim_start_matches("listening on ").to_owned();
    let pid = child.id();
    Server {
        child,
        url,
        pid,
        data: data.to_path_buf(),
        database_url: database_url.map(str::to_owned),
    }
}

/// A phone enrolled with `server` as a new coordinator of `villages`.
fn phone(server: &Server, villages: &[&str]) -> Phone<MemoryDocStore> {
    let username = format!("c{}", rand::random::<u32>());
    let mut args = vec![
        "account",
        "add",
        "--username",
        &username,
        "--role",
        "coordinator",
    ];
    for v in villages {
        args.extend(["--village", v]);
    }
    let db = server.database_url.as_deref();
    admin(&server.data, db, &args);
    let out = admin(&server.data, db, &["enroll-code", "--username", &username]);
    let code = out
        .lines()
        .find_map(|l| l.split(": ").nth(1).filter(|c| c.len() == 14))
        .expect("code")
        .to_owned();
    let mut store = MemoryDocStore::new();
    let mut t = HttpTransport::new(&server.url, Duration::from_secs(30));
    songpei_core::sync::auth::enroll_with(&mut store, &mut t, &server.url, &code).expect("enroll");
    Phone::open(store, BlindIndexKey::from_bytes(rand::random()))
        .expect("open")
        .with_clock(Arc::new(FixedClock::at(1_772_409_600_000)))
}

/// A fresh token for an enrolled phone.
fn token(p: &mut Phone<MemoryDocStore>, url: &str) -> String {
    use songpei_core::sync::engine::Transport;
    let req = p.token_request().expect("request").expect("challenge");
    let mut t = HttpTransport::new(url, Duration::from_secs(30));
    let answer = t
        .call("/v1/auth/token", &serde_json::to_vec(&req).expect("json"))
        .expect("token");
    let resp: songpei_core::sync::auth::TokenResponse =
        serde_json::from_slice(&answer).expect("token");
    p.accept_token(&resp).expect("keep");
    resp.token
}

fn sync(p: &mut Phone<MemoryDocStore>, url: &str) -> SyncReport {
    let mut t = HttpTransport::new(url, Duration::from_secs(120));
    sync_with(p, &mut t, &SyncLimits::default(), &mut |_| {}).expect("sync")
}

fn id_number(n: usize) -> String {
    let first17 = format!(
        "450802{}{:02}{:02}{:03}",
        1960 + n % 40,
        1 + n % 12,
        1 + n % 28,
        n % 1000
    );
    format!("{first17}{}", check_char(&first17).expect("17 digits"))
}

fn day(n: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("date") + chrono::Days::new(n)
}

fn new_class(p: &mut Phone<MemoryDocStore>, village: &str, n: usize) -> ClassId {
    p.create_class(NewClass {
        title: format!("第{n}期 中式烹调师培训班"),
        village: village.into(),
        occupation: "中式烹调师".into(),
        level: Level::Junior,
        training_type: TrainingType::EmploymentSkills,
        subsidised: true,
        institution: Some("港北区职业技能培训学校".into()),
        instructors: vec!["陈师傅".into()],
        instructor_accounts: vec![],
        venue: None,
        first_day: day(0),
        last_day: day(4),
        daily_hours: Some(6.0),
        starts_at: None,
        sign_out_required: true,
        planned_size: Some(50),
    })
    .expect("class")
}

fn new_trainee(p: &mut Phone<MemoryDocStore>, village: &str, n: usize) -> TraineeId {
    p.add_trainee(NewTrainee {
        name: "王秀英".into(),
        id_number: id_number(n),
        phone: Some(format!("138{:08}", n)),
        village: village.into(),
        household: if n.is_multiple_of(3) {
            HouseholdChoice::New(PovertyStatus::Lifted)
        } else {
            HouseholdChoice::None
        },
        key_groups: vec![],
        training_wish: None,
        consent_at_ms: 1_772_409_600_000,
    })
    .expect("trainee")
}

fn attend(p: &mut Phone<MemoryDocStore>, c: ClassId, t: TraineeId, d: u64, kind: AttendanceKind) {
    p.record_attendance(NewAttendance {
        class: c,
        trainee: t,
        day: day(d),
        kind,
        method: AttendanceMethod::Hand {
            reason: "签到表".into(),
        },
        gps: None,
    })
    .expect("attendance");
}

fn gzip(bytes: &[u8]) -> usize {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip").len()
}

/// A realistic class document as a phone builds it: created in one change, then 50 enrolments and
/// 50 sign-ins as 100 further changes. Returns its id and its changes, packed for the wire.
fn realistic_class(village: &str, actor: &automerge::ActorId) -> (uuid::Uuid, Vec<u8>) {
    let id = uuid::Uuid::new_v4();
    let device = uuid::Uuid::new_v4().to_string();
    let mut d = Automerge::new().with_actor(actor.clone());
    let ts = ScalarValue::Timestamp(1_772_409_600_000);
    let mut tx = d.transaction();
    let put = |tx: &mut automerge::transaction::Transaction<'_>,
               o: &automerge::ObjId,
               k: &str,
               v: ScalarValue| {
        tx.put(o, k, v).expect("put");
    };
    put(&mut tx, &ROOT, "kind", "class".into());
    put(&mut tx, &ROOT, "schema", ScalarValue::Uint(1));
    put(&mut tx, &ROOT, "id", id.to_string().into());
    put(&mut tx, &ROOT, "district", DISTRICT.into());
    put(&mut tx, &ROOT, "village", village.into());
    put(&mut tx, &ROOT, "created_at", ts.clone());
    put(&mut tx, &ROOT, "created_by", device.clone().into());
    let info = tx.put_object(ROOT, "info", ObjType::Map).expect("info");
    put(
        &mut tx,
        &info,
        "title",
        "2026年第3期 中式烹调师培训班".into(),
    );
    put(&mut tx, &info, "occupation", "中式烹调师".into());
    put(&mut tx, &info, "level", "junior".into());
    put(&mut tx, &info, "training_type", "employment_skills".into());
    put(&mut tx, &info, "subsidised", true.into());
    put(
        &mut tx,
        &info,
        "institution",
        "港北区职业技能培训学校".into(),
    );
    let instructors = tx
        .put_object(&info, "instructors", ObjType::Map)
        .expect("map");
    put(&mut tx, &instructors, "陈师傅", true.into());
    put(&mut tx, &info, "first_day", "2026-03-02".into());
    put(&mut tx, &info, "last_day", "2026-03-06".into());
    put(&mut tx, &info, "daily_hours", 6.0.into());
    put(&mut tx, &info, "sign_out_required", true.into());
    put(&mut tx, &info, "planned_size", ScalarValue::Uint(50));
    put(&mut tx, &ROOT, "status", "running".into());
    let roster = tx.put_object(ROOT, "roster", ObjType::Map).expect("roster");
    let attendance = tx
        .put_object(ROOT, "attendance", ObjType::Map)
        .expect("attendance");
    tx.put_object(ROOT, "completion", ObjType::Map)
        .expect("completion");
    tx.commit();
    let trainees: Vec<String> = (0..50).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for t in &trainees {
        let mut tx = d.transaction();
        let e = tx
            .put_object(&roster, t.as_str(), ObjType::Map)
            .expect("entry");
        put(&mut tx, &e, "enrolled_at", ts.clone());
        put(&mut tx, &e, "by", device.clone().into());
        tx.commit();
    }
    for t in &trainees {
        let mut tx = d.transaction();
        let a = tx
            .put_object(
                &attendance,
                uuid::Uuid::new_v4().to_string().as_str(),
                ObjType::Map,
            )
            .expect("record");
        put(&mut tx, &a, "trainee", t.clone().into());
        put(&mut tx, &a, "day", "2026-03-02".into());
        put(&mut tx, &a, "kind", "in".into());
        put(&mut tx, &a, "at", ts.clone());
        put(&mut tx, &a, "device", device.clone().into());
        put(&mut tx, &a, "method", "hand".into());
        put(&mut tx, &a, "reason", "签到表".into());
        tx.commit();
    }
    let packed = songpei_core::sync::changes::pack(&d.save_after(&[]), &[]).expect("pack");
    (id, packed)
}

fn push_all(
    url: &str,
    docs: &[(uuid::Uuid, Vec<u8>)],
    village: &str,
    device: uuid::Uuid,
    token: &str,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    for batch in docs.chunks(20) {
        let req = SyncRequest {
            version: PROTOCOL_VERSION,
            request_id: rand::random(),
            device,
            district: DISTRICT.into(),
            cursors: vec![Cursor {
                village: village.into(),
                seq: 0,
                tag: 0,
            }],
            pushes: batch
                .iter()
                .map(|(id, changes)| Push {
                    doc: *id,
                    base: vec![],
                    changes: changes.clone(),
                })
                .collect(),
            max_response_bytes: 0,
            card_keys: 0,
            policy: 0,
            instructors: 0,
        };
        let resp = agent
            .post(format!("{url}/v1/sync"))
            .header("Authorization", format!("Bearer {token}"))
            .send(&encode(&req)[..])
            .expect("push");
        assert_eq!(resp.status().as_u16(), 200);
    }
}

fn cpu_ms(pid: u32) -> f64 {
    cpu_ms_of(pid).expect("the process's CPU time")
}

/// CPU time of a process (user and system), ms; `None` when it is gone.
fn cpu_ms_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let hz: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    Some(ticks * 1000.0 / hz)
}

fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits until the server has been idle for a moment, so deferred work is counted.
fn settled(pid: u32) -> (f64, f64) {
    let mut last = cpu_ms(pid);
    for _ in 0..60 {
        std::thread::sleep(Duration::from_millis(300));
        let now = cpu_ms(pid);
        if now - last <= 10.0 {
            break;
        }
        last = now;
    }
    (cpu_ms(pid), rss_kib(pid))
}

struct Row(String, String, String);

/// CPU time of every PostgreSQL process, ms.
fn postgres_cpu_ms() -> f64 {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim() == "postgres")
                })
                .filter_map(cpu_ms_of)
                .sum()
        })
        .unwrap_or(0.0)
}

/// `PUSHERS` phones push `n` realistic class documents between them, all at once, through
/// `replicas` servers on SQLite or on one PostgreSQL database: documents merged a second, and CPU
/// per document of the servers and of PostgreSQL.
fn throughput(
    name: &str,
    pg: &songpei_tests::pg::Postgres,
    on_pg: bool,
    replicas: usize,
    n: usize,
) -> (Row, f64, Option<f64>) {
    const PUSHERS: usize = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let url = on_pg.then(|| pg.create(&format!("bench_{}", rand::random::<u32>())));
    let first = start_server_on(&data, url.as_deref(), true);
    let mut servers = vec![first];
    for _ in 1..replicas {
        servers.push(start_server_on(&data, url.as_deref(), false));
    }
    // Phones of three villages: merges of one village take turns on its feed, as they must.
    type Work = (
        String,
        &'static str,
        uuid::Uuid,
        String,
        Vec<(uuid::Uuid, Vec<u8>)>,
    );
    let work: Vec<Work> = (0..PUSHERS)
        .map(|i| {
            let server = &servers[i % replicas];
            let village = [VILLAGE_A, VILLAGE_B, VILLAGE_C][i % 3];
            let mut p = phone(&servers[0], &[village]);
            let device = p.profile().device.uuid();
            let actor = p.profile().actor.clone();
            let tok = token(&mut p, &server.url);
            let docs = (0..n / PUSHERS)
                .map(|_| realistic_class(village, &actor))
                .collect();
            (server.url.clone(), village, device, tok, docs)
        })
        .collect();
    let cpu = |servers: &[Server]| servers.iter().map(|s| cpu_ms(s.pid)).sum::<f64>();
    let (server0, pg0) = (cpu(&servers), postgres_cpu_ms());
    let t = Instant::now();
    std::thread::scope(|s| {
        for (url, village, device, tok, docs) in &work {
            s.spawn(move || push_all(url, docs, village, *device, tok));
        }
    });
    let wall = t.elapsed().as_secs_f64();
    let merged = (n / PUSHERS * PUSHERS) as f64;
    let server_ms = (cpu(&servers) - server0) / merged;
    let pg_cpu = on_pg.then(|| (postgres_cpu_ms() - pg0) / merged);
    let pg_ms = pg_cpu.map_or_else(String::new, |ms| format!(", PostgreSQL {ms:.2} ms CPU/doc"));
    let per_s = merged / wall;
    (
        Row(
            format!("(f) {PUSHERS} phones pushing {merged} class documents at once: {name}"),
            format!("{per_s:.0} docs/s; servers {server_ms:.2} ms CPU/doc{pg_ms}"),
            "sizing".into(),
        ),
        per_s,
        pg_cpu,
    )
}

/// The 99th percentile of `ms`.
fn p99(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    let i = ((ms.len() as f64) * 0.99).ceil() as usize;
    ms.get(i.saturating_sub(1)).copied().unwrap_or(f64::NAN)
}

/// Milliseconds of each of `n` syncs of `p`, each pushing one new trainee.
fn timed_syncs(p: &mut Phone<MemoryDocStore>, url: &str, n: usize, from: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            new_trainee(p, VILLAGE_A, from + i);
            let t = Instant::now();
            sync(p, url);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

/// (g) Sync latency, quiet and while strangers flood the dashboard's login: wrong passwords for
/// the district's admin and for unknown usernames, from 100 addresses behind the trusted proxy,
/// `per_s` a second. The p99 of each, and the flood's achieved rate.
fn latency_under_flood(server: &Server, per_s: usize) -> (f64, f64, f64) {
    const SYNCS: usize = 100;
    const FLOODERS: usize = 4;
    let mut p = phone(server, &[VILLAGE_A]);
    sync(&mut p, &server.url);
    let quiet = p99(timed_syncs(&mut p, &server.url, SYNCS, 50_000));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let flood = std::thread::scope(|scope| {
        for f in 0..FLOODERS {
            let (stop, sent, url) = (&stop, &sent, &server.url);
            scope.spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let every = Duration::from_secs_f64(FLOODERS as f64 / per_s as f64);
                let mut next = Instant::now();
                let mut i = f;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let user = if i % 2 == 0 {
                        "admin".to_owned()
                    } else {
                        format!("u{i}")
                    };
                    let _ = agent
                        .post(format!("{url}/api/v1/login"))
                        .header("Content-Type", "application/json")
                        .header("X-Forwarded-For", format!("198.51.100.{}", i % 100 + 1))
                        .send(format!(r#"{{"username":"{user}","password":"guess"}}"#));
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    i += FLOODERS;
                    next += every;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            });
        }
        // Let the flood reach its rate, then sync under it.
        std::thread::sleep(Duration::from_secs(1));
        let ms = timed_syncs(&mut p, &server.url, SYNCS, 60_000);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        ms
    });
    let rate =
        sent.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    (quiet, p99(flood), rate)
}

/// Where the figures go: `target/bench/sync.json` (or under `CARGO_TARGET_DIR`).
fn figures_file() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("bench/sync.json")
}

fn main() {
    let with_reference = !std::env::args().any(|a| a == "--no-reference");
    let n_docs: usize = std::env::var("SONGPEI_BENCH_DOCS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut rows: Vec<Row> = Vec::new();
    // The same figures for machines: target/bench/sync.json. Those not measured stay null.
    let mut figures = serde_json::json!({
        "docs": n_docs,
        "samod_cpu_ms_per_doc": null,
        "samod_rss_kib_per_doc": null,
        "reference_cpu_ms_per_doc": null,
        "reference_rss_kib_per_doc": null,
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_server(&dir.path().join("server"));

    // (a) 1,000 documents, nothing new.
    let mut a = phone(&server, &[VILLAGE_A]);
    for i in 0..10 {
        new_class(&mut a, VILLAGE_A, i);
    }
    for i in 0..990 {
        let _ = new_trainee(&mut a, VILLAGE_A, i);
    }
    let docs_held = a.store().documents().expect("docs").len();
    sync(&mut a, &server.url);
    let idle = sync(&mut a, &server.url);
    figures["idle_sync_round_trips"] = idle.round_trips.into();
    figures["idle_sync_bytes"] = (idle.bytes_sent + idle.bytes_received).into();
    rows.push(Row(
        format!("(a) idle sync, phone holding {docs_held} documents"),
        format!(
            "{} round trip, {} B ({} up, {} down)",
            idle.round_trips,
            idle.bytes_sent + idle.bytes_received,
            idle.bytes_sent,
            idle.bytes_received
        ),
        "1 round trip, ≤ 300 B".into(),
    ));

    // (b) A day's upload on a phone that already holds the village.
    let mut b = phone(&server, &[VILLAGE_A]);
    sync(&mut b, &server.url);
    let class = new_class(&mut b, VILLAGE_A, 99);
    let trainees: Vec<TraineeId> = (0..50)
        .map(|i| new_trainee(&mut b, VILLAGE_A, 5_000 + i))
        .collect();
    for t in &trainees {
        b.enrol(class, *t).expect("enrol");
    }
    for t in &trainees {
        attend(&mut b, class, *t, 0, AttendanceKind::SignIn);
    }
    for t in &trainees {
        attend(&mut b, class, *t, 0, AttendanceKind::SignOut);
    }
    let changed: Vec<_> = b.store().dirty_documents().expect("dirty");
    let export = b.export().expect("export");
    let json: Vec<&songpei_core::query::ExportedDoc> =
        export.iter().filter(|d| changed.contains(&d.id)).collect();
    let json_bytes =
        serde_json::to_vec(&json.iter().map(|d| &d.content).collect::<Vec<_>>()).expect("json");
    let gz = gzip(&json_bytes);
    let day_sync = sync(&mut b, &server.url);
    figures["day_upload_round_trips"] = day_sync.round_trips.into();
    figures["day_upload_bytes"] = day_sync.bytes_sent.into();
    figures["day_upload_gzip_json_bytes"] = gz.into();
    rows.push(Row(
        format!(
            "(b) a day's upload ({} documents: 1 class, 50 trainees, their households)",
            changed.len()
        ),
        format!(
            "{} round trip, {} B up, {} B down; gzip(JSON) {} B; ratio {:.2}",
            day_sync.round_trips,
            day_sync.bytes_sent,
            day_sync.bytes_received,
            gz,
            day_sync.bytes_sent as f64 / gz as f64
        ),
        "1 round trip, ≤ gzip(JSON)".into(),
    ));

    // (c) A fresh phone pulls one village: 20 classes, 500 trainees (25 a class, 5 days attended).
    let mut seed = phone(&server, &[VILLAGE_B]);
    for c in 0..20 {
        let class = new_class(&mut seed, VILLAGE_B, c);
        for i in 0..25 {
            let t = new_trainee(&mut seed, VILLAGE_B, 10_000 + c * 25 + i);
            seed.enrol(class, t).expect("enrol");
            for d in 0..5 {
                attend(&mut seed, class, t, d, AttendanceKind::SignIn);
                attend(&mut seed, class, t, d, AttendanceKind::SignOut);
            }
        }
    }
    sync(&mut seed, &server.url);
    let mut fresh = phone(&server, &[VILLAGE_B]);
    let t = Instant::now();
    let pull = sync(&mut fresh, &server.url);
    let took = t.elapsed();
    figures["fresh_pull_bytes"] = pull.bytes_received.into();
    figures["fresh_pull_round_trips"] = pull.round_trips.into();
    rows.push(Row(
        format!(
            "(c) fresh phone pulls a village ({} documents)",
            pull.docs_pulled
        ),
        format!(
            "{} round trips, {} B down, {} B up, {:.2} s",
            pull.round_trips,
            pull.bytes_received,
            pull.bytes_sent,
            took.as_secs_f64()
        ),
        "report".into(),
    ));
    // (g) Sync latency under a login flood.
    let (quiet, flood, rate) = latency_under_flood(&server, 100);
    rows.push(Row(
        "(g) sync p99 (100 syncs, each pushing a trainee), quiet / under a login flood".into(),
        format!(
            "{quiet:.1} ms / {flood:.1} ms ({:.2}×); flood {rate:.0} wrong logins/s from 100 addresses",
            flood / quiet
        ),
        "under the flood ≤ 1.5× quiet".into(),
    ));
    figures["sync_p99_quiet_ms"] = quiet.into();
    figures["sync_p99_flood_ms"] = flood.into();
    figures["login_flood_per_s"] = rate.into();
    drop(server);

    // (d) Server CPU and memory per uploaded realistic class document.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let server = start_server(&dir2.path().join("server"));
    let mut pusher = phone(&server, &[VILLAGE_C]);
    let device = pusher.profile().device.uuid();
    let actor = pusher.profile().actor.clone();
    let docs: Vec<_> = (0..n_docs + 20)
        .map(|_| realistic_class(VILLAGE_C, &actor))
        .collect();
    let bytes_per_doc = docs.iter().map(|d| d.1.len()).sum::<usize>() / docs.len();
    let tok = token(&mut pusher, &server.url);
    push_all(&server.url, &docs[..20], VILLAGE_C, device, &tok);
    let (cpu0, rss0) = settled(server.pid);
    let t = Instant::now();
    push_all(&server.url, &docs[20..], VILLAGE_C, device, &tok);
    let wall = t.elapsed();
    let (cpu1, rss1) = settled(server.pid);
    let ours_cpu = (cpu1 - cpu0) / n_docs as f64;
    let ours_mem = (rss1 - rss0) / n_docs as f64;
    figures["server_cpu_ms_per_doc"] = ours_cpu.into();
    figures["server_rss_kib_per_doc"] = ours_mem.into();
    rows.push(Row(
        format!("(d) songpei-server: {n_docs} realistic class documents ({bytes_per_doc} B of changes each)"),
        format!(
            "{ours_cpu:.2} ms CPU/doc, {ours_mem:.1} KiB RSS growth/doc ({rss0:.0} → {rss1:.0} KiB), {:.1} s",
            wall.as_secs_f64()
        ),
        "≤ 1/20 of the reference".into(),
    ));
    drop(server);

    // (e) The reference automerge-repo server, same workload shape, same run.
    if with_reference {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/reference/run.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(n_docs.to_string())
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let line = String::from_utf8_lossy(&o.stdout);
                let last = line
                    .lines()
                    .rev()
                    .find(|l| l.trim_start().starts_with('{'))
                    .unwrap_or("{}");
                let v: serde_json::Value = serde_json::from_str(last).unwrap_or_default();
                let their_cpu = v["server_cpu_ms_per_doc"].as_f64().unwrap_or(f64::NAN);
                let their_mem = v["server_rss_growth_kib_per_doc"]
                    .as_f64()
                    .unwrap_or(f64::NAN);
                figures["reference_cpu_ms_per_doc"] = their_cpu.into();
                figures["reference_rss_kib_per_doc"] = their_mem.into();
                rows.push(Row(
                    format!("(e) automerge-repo 2.5 sync server (Node): {n_docs} documents"),
                    format!("{their_cpu:.2} ms CPU/doc, {their_mem:.1} KiB RSS growth/doc"),
                    "reference".into(),
                ));
                rows.push(Row(
                    "(e) ratio ours / reference".into(),
                    format!(
                        "CPU {:.3} (1/{:.0}), memory {:.3} (1/{:.0})",
                        ours_cpu / their_cpu,
                        their_cpu / ours_cpu,
                        ours_mem / their_mem,
                        their_mem / ours_mem.max(0.001)
                    ),
                    "≤ 0.05 each".into(),
                ));
            }
            Ok(o) => rows.push(Row(
                "(e) reference".into(),
                format!(
                    "failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                ),
                String::new(),
            )),
            Err(e) => rows.push(Row(
                "(e) reference".into(),
                format!("not run: {e}"),
                String::new(),
            )),
        }
    }

    // (f) Merge throughput on each database: phones pushing at once, through one server or two.
    let pg = songpei_tests::pg::Postgres::start();
    for (name, key, on_pg, replicas) in [
        ("SQLite, 1 server", "sqlite", false, 1),
        ("PostgreSQL, 1 server", "pg1", true, 1),
        ("PostgreSQL, 2 servers", "pg2", true, 2),
    ] {
        let (row, per_s, pg_ms) = throughput(name, &pg, on_pg, replicas, n_docs);
        rows.push(row);
        figures[format!("{key}_docs_per_s")] = per_s.into();
        if key == "pg1" {
            figures["pg_cpu_ms_per_doc"] = pg_ms.into();
        }
    }
    drop(pg);
    let file = figures_file();
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).expect("target/bench");
    }
    std::fs::write(&file, serde_json::to_vec_pretty(&figures).expect("figures"))
        .expect("write the figures");

    let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(10);
    let w1 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(10);
    println!(
        "| {:<w0$} | {:<w1$} | target |",
        "sync benchmark", "measured"
    );
    println!("|-{:-<w0$}-|-{:-<w1$}-|--------|", "", "");
    for Row(a, b, c) in rows {
        println!("| {a:<w0$} | {b:<w1$} | {c} |");
    }
}
