//! `songpei class …`: plan, list, show, close and cancel classes.

use songpei_core::catalog::{ClassStatus, Level, TrainingType};
use songpei_core::domain::{Gps, NewClass, Venue};
use songpei_core::ids::ClassId;
use songpei_core::store::ClassFilter;
use songpei_core::validate::{Field, Problem};

use crate::args::{ClassCommand, Cli};
use crate::error::{CliError, bad, parse_catalog, parse_day, parse_id};
use crate::phone::{open_phone, print_id, print_json};
use crate::show;

pub(crate) fn run(cli: &Cli, c: &ClassCommand) -> Result<(), CliError> {
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
                instructor_accounts: a.instructor_accounts.clone(),
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
        ClassCommand::Instructors { id, accounts } => {
            let id: ClassId = parse_id(id, Field::Class)?;
            let mut phone = open_phone(cli)?;
            if !accounts.is_empty() {
                phone.set_class_instructors(id, accounts)?;
            }
            let named = phone.class_instructor_accounts(id)?;
            let known = phone.instructors()?;
            if json {
                let list: Vec<_> = known
                    .instructors
                    .iter()
                    .map(|i| {
                        serde_json::json!({
                            "account": i.account, "username": i.username,
                            "villages": i.villages, "named": named.contains(&i.account),
                        })
                    })
                    .collect();
                print_json(&serde_json::json!({ "class": id, "instructors": list }))?;
            } else if known.instructors.is_empty() {
                println!("No instructor accounts are known to this phone yet: sync first.");
            } else {
                for i in &known.instructors {
                    let mark = if named.contains(&i.account) {
                        "named by this class"
                    } else {
                        "-"
                    };
                    println!("{}\t{}\t{mark}", i.username, i.villages.join(","));
                }
            }
        }
    }
    Ok(())
}
