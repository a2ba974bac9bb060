//! Carrying out a command.

use std::io::{BufRead, Write};
use std::sync::Arc;

use chrono::NaiveDate;
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::catalog::{
    Certificate, ClassStatus, CompletionResult, KeyGroup, Level, PovertyStatus, TrainingType,
};
use songpei_core::clock::{Clock, SystemClock};
use songpei_core::domain::{
    AttendanceKind, AttendanceMethod, Gps, HouseholdChoice, NewAttendance, NewClass, NewHousehold,
    NewTrainee, Venue,
};
use songpei_core::ids::{ClassId, HouseholdId, TraineeId};
use songpei_core::store::{ClassFilter, SqliteDocStore};
use songpei_core::validate::{Field, Invalid, Problem};
use songpei_core::{Error, ErrorKind, Phone};

use crate::args::{ClassCommand, Cli, Command, HouseholdCommand, TraineeCommand};
use crate::{key, show};

/// A failed command.
#[derive(Debug)]
pub(crate) enum CliError {
    /// From the core.
    Core(Error),
    /// The command line itself was wrong.
    Usage(String),
    /// Reading or writing files or streams failed.
    Io(std::io::Error),
    /// Sync failed.
    Sync(songpei_core::sync::engine::SyncError),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Core(e)
    }
}

impl From<Invalid> for CliError {
    fn from(e: Invalid) -> Self {
        CliError::Core(e.into())
    }
}

impl CliError {
    pub(crate) fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }

    /// 2 when the input was refused, 1 for everything else.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Core(e) if e.kind() == ErrorKind::BadInput => 2,
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            CliError::Core(e) => match e.kind() {
                ErrorKind::BadInput => "invalid",
                ErrorKind::WrongKey => "wrong_key",
                ErrorKind::StorageFull => "storage_full",
                ErrorKind::NotInitialised => "not_initialised",
                ErrorKind::Corrupt => "corrupt",
                ErrorKind::Internal => "internal",
            },
            CliError::Usage(_) => "usage",
            CliError::Io(_) => "io",
            CliError::Sync(songpei_core::sync::engine::SyncError::Transport(
                songpei_core::sync::engine::TransportError::Refused { .. },
            )) => "refused",
            CliError::Sync(_) => "sync",
        }
    }

    /// Prints the error on stderr, as text or JSON.
    pub(crate) fn report(&self, json: bool) {
        let message = match self {
            CliError::Core(e) => e.to_string(),
            CliError::Usage(m) => m.clone(),
            CliError::Io(e) => format!("file error: {e}"),
            CliError::Sync(e) => format!("sync failed: {e}"),
        };
        if json {
            let mut body = serde_json::json!({ "code": self.code(), "message": message });
            if let CliError::Core(Error::Invalid(inv)) = self
                && let Ok(serde_json::Value::Object(m)) = serde_json::to_value(inv)
                && let Some(b) = body.as_object_mut()
            {
                b.extend(m);
            }
            eprintln!("{}", serde_json::json!({ "error": body }));
        } else {
            eprintln!("error: {message}");
        }
    }
}

pub(crate) fn bad(field: Field, problem: Problem) -> CliError {
    Invalid::new(field, problem).into()
}

pub(crate) fn parse_id<T: std::str::FromStr>(s: &str, field: Field) -> Result<T, CliError> {
    s.parse().map_err(|_| bad(field, Problem::BadFormat))
}

pub(crate) fn parse_catalog<T: std::str::FromStr>(s: &str, field: Field) -> Result<T, CliError> {
    s.parse().map_err(|_| bad(field, Problem::NotInCatalog))
}

pub(crate) fn parse_day(s: &str, field: Field) -> Result<NaiveDate, CliError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| bad(field, Problem::BadFormat))
}

/// The clock: the system's, or for scripted runs and demos `SONGPEI_NOW` (RFC 3339) as the wall
/// clock and `SONGPEI_UPTIME_MS` (with `SONGPEI_BOOT_ID`) as the time since boot.
pub(crate) fn clock() -> Result<Arc<dyn Clock>, CliError> {
    let wall = match std::env::var("SONGPEI_NOW") {
        Ok(s) if !s.trim().is_empty() => Some(
            chrono::DateTime::parse_from_rfc3339(s.trim())
                .map_err(|_| CliError::usage("SONGPEI_NOW must be an RFC 3339 time"))?
                .timestamp_millis(),
        ),
        _ => None,
    };
    let uptime = match std::env::var("SONGPEI_UPTIME_MS") {
        Ok(s) if !s.trim().is_empty() => Some(songpei_core::clock::Uptime {
            ms: s
                .trim()
                .parse()
                .map_err(|_| CliError::usage("SONGPEI_UPTIME_MS must be milliseconds"))?,
            boot: std::env::var("SONGPEI_BOOT_ID").unwrap_or_else(|_| "scripted".into()),
        }),
        _ => None,
    };
    if wall.is_none() && uptime.is_none() {
        return Ok(Arc::new(SystemClock));
    }
    Ok(Arc::new(ScriptedClock { wall, uptime }))
}

/// A clock with either part set by the environment, the other the system's.
#[derive(Debug)]
struct ScriptedClock {
    wall: Option<i64>,
    uptime: Option<songpei_core::clock::Uptime>,
}

impl Clock for ScriptedClock {
    fn now_ms(&self) -> i64 {
        self.wall.unwrap_or_else(|| SystemClock.now_ms())
    }

    fn uptime(&self) -> Option<songpei_core::clock::Uptime> {
        self.uptime.clone().or_else(|| SystemClock.uptime())
    }
}

pub(crate) fn open_phone(cli: &Cli) -> Result<Phone<SqliteDocStore>, CliError> {
    let path = key::store_path(&cli.data);
    if !path.exists() {
        return Err(CliError::Core(Error::NotInitialised));
    }
    let key = key::existing(&cli.data)?;
    let store = SqliteDocStore::open(&path, &key)?;
    Ok(Phone::open(store, BlindIndexKey::derive_from_store_key(&key))?.with_clock(clock()?))
}

/// Tells where a newly created store key was written.
pub(crate) fn announce_key_file(key_file: Option<&std::path::Path>) {
    if let Some(k) = key_file {
        eprintln!(
            "Created a new store key in {}. Keep it safe: without it the store cannot be read.",
            k.display()
        );
    }
}

fn print_id(json: bool, id: impl std::fmt::Display) {
    if json {
        println!("{}", serde_json::json!({ "id": id.to_string() }));
    } else {
        println!("{id}");
    }
}

pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(|e| CliError::Io(e.into()))?;
    println!("{s}");
    Ok(())
}

pub(crate) fn run(cli: Cli) -> Result<(), CliError> {
    let json = cli.json;
    match &cli.command {
        Command::Init { district, villages } => {
            std::fs::create_dir_all(&cli.data).map_err(CliError::Io)?;
            let path = key::store_path(&cli.data);
            if path.exists() {
                return Err(CliError::Core(Error::AlreadyInitialised));
            }
            let (key, key_file) = key::for_new_store(&cli.data)?;
            let store = SqliteDocStore::open(&path, &key)?;
            let phone = match Phone::init(
                store,
                district,
                villages,
                BlindIndexKey::derive_from_store_key(&key),
            ) {
                Ok(p) => p,
                Err(e) => {
                    // Leave nothing behind for a refused init, so it can simply be run again.
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                    }
                    if let Some(k) = key_file {
                        let _ = std::fs::remove_file(k);
                    }
                    return Err(e.into());
                }
            };
            let p = phone.profile();
            announce_key_file(key_file.as_deref());
            if json {
                print_json(&serde_json::json!({
                    "device_id": p.device.to_string(),
                    "district": p.district.as_str(),
                    "villages": p.villages.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
                    "key_file": key_file.map(|k| k.display().to_string()),
                }))?;
            } else {
                println!(
                    "Store ready in {} for district {}.",
                    cli.data.display(),
                    p.district
                );
                println!("Device {}.", p.device);
            }
        }
        Command::Class(c) => class(&cli, c)?,
        Command::Trainee(t) => trainee(&cli, t)?,
        Command::Household(HouseholdCommand::Add {
            village,
            poverty,
            head,
        }) => {
            let mut phone = open_phone(&cli)?;
            let id = phone.add_household(NewHousehold {
                village: village.clone(),
                head_name: head.clone(),
                poverty_status: parse_catalog(poverty, Field::PovertyStatus)?,
            })?;
            print_id(json, id);
        }
        Command::Enrol { class, trainee } => {
            let class: ClassId = parse_id(class, Field::Class)?;
            let trainee: TraineeId = parse_id(trainee, Field::Trainee)?;
            let mut phone = open_phone(&cli)?;
            let decision = phone.enrol(class, trainee)?;
            if json {
                print_json(
                    &serde_json::json!({ "class": class, "trainee": trainee, "subsidy": decision }),
                )?;
            } else {
                println!("Enrolled. {}", show::subsidy(&decision));
            }
        }
        Command::Attend(a) => {
            let class: ClassId = parse_id(&a.class, Field::Class)?;
            let trainee: TraineeId = parse_id(&a.trainee, Field::Trainee)?;
            let day = parse_day(&a.day, Field::Day)?;
            let gps = match (a.lat, a.lon) {
                (Some(lat), Some(lon)) => Some(Gps {
                    lat,
                    lon,
                    accuracy_m: None,
                }),
                _ => None,
            };
            let mut phone = open_phone(&cli)?;
            let id = phone.record_attendance(NewAttendance {
                class,
                trainee,
                day,
                kind: if a.sign_out {
                    AttendanceKind::SignOut
                } else {
                    AttendanceKind::SignIn
                },
                method: AttendanceMethod::Hand {
                    reason: a.reason.clone(),
                },
                gps,
            })?;
            print_id(json, id);
        }
        Command::AttendBatch { reason } => attend_batch(&cli, reason)?,
        Command::Complete {
            class,
            trainee,
            result,
            certificate,
        } => {
            let class: ClassId = parse_id(class, Field::Class)?;
            let trainee: TraineeId = parse_id(trainee, Field::Trainee)?;
            let result: CompletionResult = parse_catalog(result, Field::Status)?;
            let certificate: Option<Certificate> = certificate
                .as_deref()
                .map(|c| parse_catalog(c, Field::Certificate))
                .transpose()?;
            let mut phone = open_phone(&cli)?;
            phone.complete(class, trainee, result, certificate)?;
            if json {
                print_json(
                    &serde_json::json!({ "class": class, "trainee": trainee, "result": result }),
                )?;
            } else {
                println!("Recorded: {}.", result.label_zh());
            }
        }
        Command::Conflicts => {
            let phone = open_phone(&cli)?;
            let conflicts = phone.conflicts()?;
            if json {
                print_json(&conflicts)?;
            } else {
                show::conflicts(&conflicts);
            }
        }
        Command::Export => {
            let mut phone = open_phone(&cli)?;
            print_json(&phone.export()?)?;
        }
        Command::Compact => {
            let mut phone = open_phone(&cli)?;
            let n = phone.compact_all()?;
            phone.store().vacuum()?;
            if json {
                print_json(&serde_json::json!({ "compacted": n }))?;
            } else {
                println!("Compacted {n} documents.");
            }
        }
        Command::Enroll {
            server,
            code,
            timeout,
        } => {
            let (qr_server, code) = songpei_core::sync::auth::parse_enrollment_text(code);
            let server = server
                .clone()
                .or(qr_server)
                .ok_or_else(|| bad(Field::Server, Problem::Missing))?;
            std::fs::create_dir_all(&cli.data).map_err(CliError::Io)?;
            let path = key::store_path(&cli.data);
            let (key, key_file) = if path.exists() {
                (key::existing(&cli.data)?, None)
            } else {
                key::for_new_store(&cli.data)?
            };
            let mut store = SqliteDocStore::open(&path, &key)?;
            let mut transport = songpei_core::sync::http::HttpTransport::new(
                &server,
                std::time::Duration::from_secs(*timeout),
            );
            let resp =
                songpei_core::sync::auth::enroll_with(&mut store, &mut transport, &server, &code)
                    .map_err(CliError::Sync)?;
            announce_key_file(key_file.as_deref());
            if json {
                print_json(&serde_json::json!({
                    "device_id": resp.device.to_string(),
                    "district": resp.district,
                    "role": resp.role,
                    "villages": resp.villages,
                }))?;
            } else {
                println!(
                    "Enrolled: device {} of {} ({}), {} for villages {}.",
                    resp.device,
                    resp.district_name,
                    resp.district,
                    resp.role,
                    resp.villages.join(", ")
                );
            }
        }
        Command::Sync { server, timeout } => {
            let mut phone = open_phone(&cli)?;
            let server = match server {
                Some(s) => s.clone(),
                None => phone
                    .server_url()?
                    .ok_or_else(|| bad(Field::Server, Problem::Missing))?,
            };
            let mut transport = songpei_core::sync::http::HttpTransport::new(
                &server,
                std::time::Duration::from_secs(*timeout),
            );
            let limits = songpei_core::sync::engine::SyncLimits::default();
            let mut progress = |r: &songpei_core::sync::engine::SyncReport| {
                if let Some(secs) = r.waiting_secs {
                    eprintln!(
                        "… the server is busy: waiting {secs} s before trying again ({} of {})",
                        r.waits,
                        songpei_core::sync::engine::MAX_WAITS
                    );
                } else if r.round_trips > 1 {
                    eprintln!(
                        "… {} round trips, {} documents received so far",
                        r.round_trips, r.docs_pulled
                    );
                }
            };
            let report = songpei_core::sync::engine::sync_with(
                &mut phone,
                &mut transport,
                &limits,
                &mut progress,
            )
            .map_err(CliError::Sync)?;
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "Synced in {} round trip(s): {} documents sent, {} received ({} bytes up, {} down).",
                    report.round_trips,
                    report.docs_pushed,
                    report.docs_pulled,
                    report.bytes_sent,
                    report.bytes_received
                );
                if report.docs_removed > 0 {
                    println!(
                        "{} documents of villages no longer yours left this phone.",
                        report.docs_removed
                    );
                }
                if report.docs_refused > 0 {
                    println!(
                        "{} documents from the server were refused.",
                        report.docs_refused
                    );
                }
            }
        }
        Command::Qr(q) => crate::qr::run(&cli, q)?,
        Command::Check => {
            let phone = open_phone(&cli)?;
            let ok = phone.store().integrity_check()?;
            if json {
                print_json(&serde_json::json!({ "ok": ok }))?;
            } else {
                println!(
                    "{}",
                    if ok {
                        "Store is intact."
                    } else {
                        "Store is DAMAGED."
                    }
                );
            }
            if !ok {
                return Err(CliError::Core(Error::Schema {
                    doc: ClassId::from(uuid_nil()).into(),
                    path: "integrity_check".into(),
                }));
            }
        }
    }
    Ok(())
}

fn uuid_nil() -> uuid::Uuid {
    uuid::Uuid::nil()
}

fn class(cli: &Cli, c: &ClassCommand) -> Result<(), CliError> {
    let json = cli.json;
    match c {
        ClassCommand::Create(a) => {
            let first_day = parse_day(&a.start, Field::FirstDay)?;
            if a.days == 0 || i64::from(a.days) > songpei_core::phone::MAX_CLASS_DAYS {
                return Err(bad(Field::Days, Problem::OutOfRange));
            }
            let last_day = first_day
                .checked_add_days(chrono::Days::new(u64::from(a.days) - 1))
                .ok_or(bad(Field::Days, Problem::OutOfRange))?;
            let level: Level = parse_catalog(&a.level, Field::Level)?;
            let training_type: TrainingType = parse_catalog(&a.training_type, Field::TrainingType)?;
            let venue = a.venue.as_ref().map(|name| Venue {
                name: name.clone(),
                gps: match (a.lat, a.lon) {
                    (Some(lat), Some(lon)) => Some(Gps {
                        lat,
                        lon,
                        accuracy_m: None,
                    }),
                    _ => None,
                },
            });
            let mut phone = open_phone(cli)?;
            let id = phone.create_class(NewClass {
                title: a.title.clone(),
                village: a.village.clone(),
                occupation: a.occupation.clone(),
                level,
                training_type,
                subsidised: a.subsidised,
                institution: a.institution.clone(),
                instructors: a.instructors.clone(),
                venue,
                first_day,
                last_day,
                daily_hours: a.hours,
                starts_at: a
                    .starts_at
                    .as_deref()
                    .map(|t| {
                        chrono::NaiveTime::parse_from_str(t.trim(), "%H:%M")
                            .map_err(|_| bad(Field::StartsAt, Problem::BadFormat))
                    })
                    .transpose()?,
                sign_out_required: a.sign_out_required,
                planned_size: a.planned_size,
            })?;
            print_id(json, id);
        }
        ClassCommand::List { village, status } => {
            let filter = ClassFilter {
                village: village
                    .as_deref()
                    .map(|v| {
                        songpei_core::ids::VillageCode::parse(v)
                            .ok_or(bad(Field::Village, Problem::BadFormat))
                    })
                    .transpose()?,
                statuses: status
                    .as_deref()
                    .map(|s| parse_catalog::<ClassStatus>(s, Field::Status))
                    .transpose()?
                    .into_iter()
                    .collect(),
            };
            let phone = open_phone(cli)?;
            let classes = phone.classes(&filter)?;
            if json {
                print_json(&classes)?;
            } else {
                show::class_list(&classes);
            }
        }
        ClassCommand::Show { id } => {
            let id: ClassId = parse_id(id, Field::Class)?;
            let mut phone = open_phone(cli)?;
            let view = phone.class_view(id)?;
            if json {
                print_json(&view)?;
            } else {
                show::class(&view);
            }
        }
        ClassCommand::Start { id } | ClassCommand::Close { id } | ClassCommand::Cancel { id } => {
            let to = match c {
                ClassCommand::Start { .. } => ClassStatus::Running,
                ClassCommand::Close { .. } => ClassStatus::Closed,
                _ => ClassStatus::Cancelled,
            };
            let id: ClassId = parse_id(id, Field::Class)?;
            let mut phone = open_phone(cli)?;
            phone.set_class_status(id, to)?;
            if json {
                print_json(&serde_json::json!({ "id": id, "status": to }))?;
            } else {
                println!("Class {id}: {}.", to.label_zh());
            }
        }
    }
    Ok(())
}

fn trainee(cli: &Cli, t: &TraineeCommand) -> Result<(), CliError> {
    let json = cli.json;
    match t {
        TraineeCommand::Add(a) => {
            let household = match (&a.household, &a.poverty) {
                (Some(h), _) => {
                    HouseholdChoice::Existing(parse_id::<HouseholdId>(h, Field::Household)?)
                }
                (None, Some(p)) => {
                    HouseholdChoice::New(parse_catalog::<PovertyStatus>(p, Field::PovertyStatus)?)
                }
                (None, None) => HouseholdChoice::None,
            };
            let key_groups = a
                .groups
                .iter()
                .map(|g| parse_catalog::<KeyGroup>(g, Field::KeyGroup))
                .collect::<Result<Vec<_>, _>>()?;
            let mut phone = open_phone(cli)?;
            let consent_at_ms = phone_now(&phone);
            let id = phone.add_trainee(NewTrainee {
                name: a.name.clone(),
                id_number: a.id_number.clone(),
                phone: a.phone.clone(),
                village: a.village.clone(),
                household,
                key_groups,
                training_wish: a.wish.clone(),
                consent_at_ms,
            })?;
            print_id(json, id);
        }
        TraineeCommand::Show { id, reveal } => {
            let id: TraineeId = parse_id(id, Field::Trainee)?;
            let mut phone = open_phone(cli)?;
            let view = phone.trainee_view(id, *reveal)?;
            if json {
                print_json(&view)?;
            } else {
                show::trainee(&view);
            }
        }
        TraineeCommand::Find { id_number } => {
            let phone = open_phone(cli)?;
            match phone.find_trainee(id_number)? {
                Some(id) => print_id(json, id),
                None => {
                    return Err(bad(Field::IdNumber, Problem::NotFound));
                }
            }
        }
        TraineeCommand::SetPhone { id, phone: number } => {
            let id: TraineeId = parse_id(id, Field::Trainee)?;
            let mut phone = open_phone(cli)?;
            phone.set_trainee_phone(id, Some(number))?;
            if json {
                print_json(&serde_json::json!({ "id": id }))?;
            } else {
                println!("Phone number changed.");
            }
        }
    }
    Ok(())
}

fn phone_now(_phone: &Phone<SqliteDocStore>) -> i64 {
    clock().map(|c| c.now_ms()).unwrap_or_default()
}

#[derive(serde::Deserialize)]
struct BatchLine {
    class: String,
    trainee: String,
    day: String,
    kind: String,
}

/// Records JSON lines from stdin one by one; each acknowledgement is printed only after its record
/// is durable, so a reader of stdout knows exactly what survived a crash.
fn attend_batch(cli: &Cli, reason: &str) -> Result<(), CliError> {
    let mut phone = open_phone(cli)?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut refused = 0usize;
    for (n, line) in stdin.lock().lines().enumerate() {
        let line = line.map_err(CliError::Io)?;
        if line.trim().is_empty() {
            continue;
        }
        let result = (|| -> Result<_, CliError> {
            let l: BatchLine =
                serde_json::from_str(&line).map_err(|_| CliError::usage("not a batch line"))?;
            let kind = match l.kind.as_str() {
                "in" => AttendanceKind::SignIn,
                "out" => AttendanceKind::SignOut,
                _ => return Err(CliError::usage("kind must be in or out")),
            };
            Ok(phone.record_attendance(NewAttendance {
                class: parse_id(&l.class, Field::Class)?,
                trainee: parse_id(&l.trainee, Field::Trainee)?,
                day: parse_day(&l.day, Field::Day)?,
                kind,
                method: AttendanceMethod::Hand {
                    reason: reason.to_owned(),
                },
                gps: None,
            })?)
        })();
        match result {
            Ok(id) => {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "line": n + 1, "id": id.to_string() })
                )
                .and_then(|()| out.flush())
                .map_err(CliError::Io)?;
            }
            Err(e) if e.exit_code() == 2 => {
                refused += 1;
                eprint!("line {}: ", n + 1);
                e.report(cli.json);
            }
            Err(e) => return Err(e),
        }
    }
    if refused > 0 {
        return Err(CliError::usage(format!("{refused} lines were refused")));
    }
    Ok(())
}
