//! `songpei trainee …`: register, change and look up trainees.

use songpei_core::catalog::{KeyGroup, PovertyStatus};
use songpei_core::domain::{HouseholdChoice, NewTrainee};
use songpei_core::ids::{HouseholdId, TraineeId};
use songpei_core::validate::{Field, Problem};

use crate::args::{Cli, TraineeCommand};
use crate::error::{CliError, bad, parse_catalog, parse_id};
use crate::phone::{open_phone, phone_now, print_id, print_json};
use crate::show;

pub(crate) fn run(cli: &Cli, t: &TraineeCommand) -> Result<(), CliError> {
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
