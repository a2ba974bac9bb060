//! Carrying out a command: one function per command family, in `run/`.

use songpei_core::blind_index::BlindIndexKey;
use songpei_core::catalog::{Certificate, CompletionResult};
use songpei_core::domain::{AttendanceKind, AttendanceMethod, Gps, NewAttendance, NewHousehold};
use songpei_core::ids::{ClassId, TraineeId};
use songpei_core::store::SqliteDocStore;
use songpei_core::validate::Field;
use songpei_core::{Error, Phone};

use crate::args::{Cli, Command, HouseholdCommand};
use crate::error::{CliError, parse_catalog, parse_day, parse_id};
use crate::phone::{announce_key_file, open_phone, print_id, print_json};
use crate::{key, show};

mod attend;
mod class;
mod network;
mod trainee;

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
        Command::Class(c) => class::run(&cli, c)?,
        Command::Trainee(t) => trainee::run(&cli, t)?,
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
        Command::AttendBatch { reason } => attend::batch(&cli, reason)?,
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
        } => network::enroll(&cli, server.as_deref(), code, *timeout)?,
        Command::Sync { server, timeout } => network::sync(&cli, server.as_deref(), *timeout)?,
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
