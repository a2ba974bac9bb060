//! `songpei qr …`: QR sign-in from the command line.

use std::io::Read;
use std::path::{Path, PathBuf};

use songpei_core::domain::{AttendanceKind, Gps};
use songpei_core::ids::{ClassId, TraineeId};
use songpei_core::qr::{self, CardCaption, Scanned, SignInOutcome};
use songpei_core::store::SqliteDocStore;
use songpei_core::validate::{Field, Problem};

use crate::args::{Cli, QrCommand};
use crate::error::{CliError, bad, parse_day, parse_id};
use crate::key;
use crate::phone::{announce_key_file, open_phone, print_json};

fn kind(s: &str) -> Result<AttendanceKind, CliError> {
    match s.trim() {
        "in" | "签到" => Ok(AttendanceKind::SignIn),
        "out" | "签退" => Ok(AttendanceKind::SignOut),
        _ => Err(CliError::usage("--kind must be in or out")),
    }
}

fn kind_label(k: AttendanceKind) -> &'static str {
    match k {
        AttendanceKind::SignIn => "sign-in (签到)",
        AttendanceKind::SignOut => "sign-out (签退)",
    }
}

/// The text argument, or stdin for `-`.
fn text_arg(t: &str) -> Result<String, CliError> {
    if t == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(CliError::Io)?;
        Ok(s.trim().to_owned())
    } else {
        Ok(t.trim().to_owned())
    }
}

fn write_png(path: &Path, text: &str) -> Result<(), CliError> {
    let png = qr::render_png(text, 8).map_err(songpei_core::Error::from)?;
    std::fs::write(path, png).map_err(CliError::Io)
}

pub(crate) fn run(cli: &Cli, q: &QrCommand) -> Result<(), CliError> {
    let json = cli.json;
    match q {
        QrCommand::ClassCode {
            class,
            day,
            kind: k,
            png,
        } => {
            let class: ClassId = parse_id(class, Field::Class)?;
            let mut phone = open_phone(cli)?;
            let day = match day {
                Some(d) => parse_day(d, Field::Day)?,
                None => songpei_core::clock::local_date(crate::phone::clock()?.now_ms()),
            };
            let code = phone.class_code(class, day, kind(k)?)?;
            let text = code.to_text();
            if let Some(p) = png {
                write_png(p, &text)?;
            }
            if json {
                print_json(&serde_json::json!({
                    "text": text, "class": class, "day": day, "slot": code.slot,
                }))?;
            } else {
                println!("{text}");
            }
        }
        QrCommand::Respond {
            code,
            trainee,
            png,
            lat,
            lon,
            accuracy,
        } => {
            let text = text_arg(code)?;
            let trainee: Option<TraineeId> = trainee
                .as_deref()
                .map(|t| parse_id(t, Field::Trainee))
                .transpose()?;
            let mut store = trainee_store(cli)?;
            let at = qr::TraineePhoneState {
                fix: fix(*lat, *lon, *accuracy),
                uptime_ms: crate::phone::clock()?
                    .uptime()
                    .and_then(|u| u64::try_from(u.ms).ok()),
            };
            let response = qr::respond_at(&mut store, &text, trainee, at)?;
            let out = response.to_text();
            if let Some(p) = png {
                write_png(p, &out)?;
            }
            if json {
                print_json(&serde_json::json!({ "text": out, "trainee": response.trainee }))?;
            } else {
                println!("{out}");
            }
        }
        QrCommand::Scan {
            text,
            class,
            day,
            kind: k,
            lat,
            lon,
            accuracy,
        } => {
            let text = text_arg(text)?;
            let gps = fix(*lat, *lon, *accuracy);
            match qr::scan(&text).map_err(songpei_core::Error::from)? {
                Scanned::Response(_) | Scanned::Card(_) => {}
                other => return describe(json, &other),
            }
            let session = match (class, day) {
                (Some(c), Some(d)) => Some((
                    parse_id::<ClassId>(c, Field::Class)?,
                    parse_day(d, Field::Day)?,
                    kind(k)?,
                )),
                _ => None,
            };
            let mut phone = open_phone(cli)?;
            let outcome = phone.accept(&text, gps, session)?;
            report(json, &outcome)?;
        }
        QrCommand::Claim { trainee, png } => {
            let trainee: Option<TraineeId> = trainee
                .as_deref()
                .map(|t| parse_id(t, Field::Trainee))
                .transpose()?;
            let mut store = trainee_store(cli)?;
            let claim = qr::claim(&mut store, trainee)?;
            let out = claim.to_text();
            if let Some(p) = png {
                write_png(p, &out)?;
            }
            if json {
                print_json(&serde_json::json!({ "text": out, "trainee": claim.trainee }))?;
            } else {
                println!("{out}");
            }
        }
        QrCommand::Witness {
            text,
            class,
            day,
            png,
        } => {
            let text = text_arg(text)?;
            let class: ClassId = parse_id(class, Field::Class)?;
            let day = match day {
                Some(d) => parse_day(d, Field::Day)?,
                None => songpei_core::clock::local_date(crate::phone::clock()?.now_ms()),
            };
            let mut phone = open_phone(cli)?;
            let w = phone.witness(&text, class, day)?;
            let out = w.to_text();
            if let Some(p) = png {
                write_png(p, &out)?;
            }
            if json {
                print_json(&serde_json::json!({
                    "text": out, "trainee": w.claim.trainee, "class": class,
                }))?;
            } else {
                println!("{out}");
            }
        }
        QrCommand::Register { text } => {
            let text = text_arg(text)?;
            let mut phone = open_phone(cli)?;
            match phone.register_key(&text)? {
                qr::RegistrationOutcome::Registered {
                    trainee,
                    class,
                    registration,
                } => {
                    if json {
                        print_json(&serde_json::json!({
                            "registered": true, "trainee": trainee, "class": class,
                            "registration": registration,
                        }))?;
                    } else {
                        println!(
                            "Registered the phone's key to trainee {trainee} in class {class}: its \
                             sign-ins count as the trainee's own once synced."
                        );
                    }
                }
                qr::RegistrationOutcome::AlreadyRegistered { trainee, class } => {
                    if json {
                        print_json(&serde_json::json!({
                            "registered": false, "trainee": trainee, "class": class,
                        }))?;
                    } else {
                        println!("This key was already registered; nothing new was written.");
                    }
                }
            }
        }
        QrCommand::Cards {
            class,
            out,
            server,
            font,
        } => cards(cli, class, out, server.as_deref(), font.as_deref())?,
        QrCommand::Decode { image } => {
            let bytes = std::fs::read(image).map_err(CliError::Io)?;
            let texts = qr::decode_image(&bytes).map_err(songpei_core::Error::from)?;
            if json {
                print_json(&serde_json::json!({ "texts": texts }))?;
            } else {
                for t in texts {
                    println!("{t}");
                }
            }
        }
    }
    Ok(())
}

fn fix(lat: Option<f64>, lon: Option<f64>, accuracy: Option<f64>) -> Option<Gps> {
    match (lat, lon) {
        (Some(lat), Some(lon)) => Some(Gps {
            lat,
            lon,
            accuracy_m: accuracy,
        }),
        _ => None,
    }
}

/// A trainee phone's store (never enrolled), set up if new.
fn trainee_store(cli: &Cli) -> Result<SqliteDocStore, CliError> {
    std::fs::create_dir_all(&cli.data).map_err(CliError::Io)?;
    let path = key::store_path(&cli.data);
    let (k, key_file) = if path.exists() {
        (key::existing(&cli.data)?, None)
    } else {
        key::for_new_store(&cli.data)?
    };
    let store = SqliteDocStore::open(&path, &k)?;
    announce_key_file(key_file.as_deref());
    Ok(store)
}

fn describe(json: bool, s: &Scanned) -> Result<(), CliError> {
    match s {
        Scanned::KeyClaim(c) => {
            if json {
                print_json(&serde_json::json!({ "kind": "key_claim", "trainee": c.trainee }))?;
            } else {
                println!(
                    "A trainee phone's key claim for trainee {}: an instructor of the class \
                     witnesses it with `songpei qr witness`.",
                    c.trainee
                );
            }
        }
        Scanned::Witnessed(w) => {
            if json {
                print_json(&serde_json::json!({
                    "kind": "witnessed_key", "trainee": w.claim.trainee, "class": w.class,
                }))?;
            } else {
                println!(
                    "A witnessed key claim for trainee {} in class {}: file it with `songpei qr \
                     register`.",
                    w.claim.trainee, w.class
                );
            }
        }
        Scanned::ClassCode(c) => {
            if json {
                print_json(&serde_json::json!({
                    "kind": "class_code", "class": c.class, "day": c.day,
                    "sign": c.kind, "slot": c.slot, "device": c.device.to_string(),
                }))?;
            } else {
                println!(
                    "A class code for {} of class {} on {} (slot {}), shown by device {}: answer it \
                     on the trainee's phone with `songpei qr respond`.",
                    kind_label(c.kind),
                    c.class,
                    c.day,
                    c.slot,
                    c.device
                );
            }
        }
        Scanned::Enrollment { server, .. } => {
            if json {
                print_json(&serde_json::json!({ "kind": "enrollment", "server": server }))?;
            } else {
                println!("An enrollment code: use it with `songpei enroll --code`.");
            }
        }
        Scanned::Response(_) | Scanned::Card(_) => {}
    }
    Ok(())
}

fn report(json: bool, o: &SignInOutcome) -> Result<(), CliError> {
    match o {
        SignInOutcome::Recorded {
            attendance,
            trainee,
            class,
            day,
            kind,
            time_verified,
            key_registered,
        } => {
            if json {
                print_json(&serde_json::json!({
                    "recorded": true, "attendance": attendance.to_string(),
                    "trainee": trainee, "class": class, "day": day, "kind": kind,
                    "time_verified": time_verified, "key_registered": key_registered,
                }))?;
            } else {
                println!(
                    "Recorded {} of trainee {trainee} for {day}: {attendance}.",
                    kind_label(*kind)
                );
                if *key_registered == Some(false) {
                    println!(
                        "The trainee's phone key is not registered to the trainee on this phone: \
                         the sign-in waits for the district's review. Register it with an \
                         instructor of the class (`songpei qr claim`, `qr witness`, `qr register`)."
                    );
                }
                if !time_verified {
                    println!(
                        "This phone restarted since its last sync: the record is marked \
                         \"time unverified\" and is paid only after the district reviews it. Sync \
                         when you can."
                    );
                }
            }
        }
        SignInOutcome::AlreadyRecorded { trainee, class } => {
            if json {
                print_json(&serde_json::json!({
                    "recorded": false, "trainee": trainee, "class": class,
                }))?;
            } else {
                println!("Trainee {trainee} was already recorded; nothing new was written.");
            }
        }
    }
    Ok(())
}

fn cards(
    cli: &Cli,
    class: &str,
    out: &Path,
    server: Option<&str>,
    font: Option<&Path>,
) -> Result<(), CliError> {
    let class: ClassId = parse_id(class, Field::Class)?;
    let mut phone = open_phone(cli)?;
    let server = match server {
        Some(s) => s.to_owned(),
        None => phone
            .server_url()?
            .ok_or_else(|| bad(Field::Server, Problem::Missing))?,
    };
    let mut transport =
        songpei_core::sync::http::HttpTransport::new(&server, std::time::Duration::from_secs(60));
    let issued = songpei_core::sync::engine::fetch_cards(&mut phone, &mut transport, class)
        .map_err(CliError::Sync)?;
    let mut cards = Vec::new();
    for c in &issued {
        let trainee = TraineeId::from(c.trainee);
        let caption = match phone.trainee_view(trainee, false) {
            Ok(v) => CardCaption {
                name_masked: v.name,
                detail: v.id_number,
            },
            Err(_) => CardCaption {
                name_masked: String::new(),
                detail: trainee.to_string()[..8].to_owned(),
            },
        };
        cards.push((c.text.clone(), caption));
    }
    let font_bytes = match font {
        Some(p) => Some(std::fs::read(p).map_err(CliError::Io)?),
        None => qr::SYSTEM_FONTS.iter().find_map(|p| std::fs::read(p).ok()),
    };
    if font_bytes.is_none() {
        eprintln!(
            "No font with Chinese characters found (set SONGPEI_FONT): the cards are printed without names."
        );
    }
    let pages =
        qr::render_card_sheet(&cards, font_bytes.as_deref()).map_err(songpei_core::Error::from)?;
    let mut written: Vec<PathBuf> = Vec::new();
    for (i, png) in pages.iter().enumerate() {
        let path = qr::sheet_path(out, i);
        std::fs::write(&path, png).map_err(CliError::Io)?;
        written.push(path);
    }
    if cli.json {
        print_json(&serde_json::json!({
            "cards": issued.len(),
            "files": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        }))?;
    } else {
        println!(
            "{} cards on {} sheet(s): {}",
            issued.len(),
            written.len(),
            written
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
