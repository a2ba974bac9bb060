//! `songpei attend-batch`: many records from JSON lines, each acknowledged once durable.

use std::io::{BufRead, Write};

use songpei_core::domain::{AttendanceKind, AttendanceMethod, NewAttendance};
use songpei_core::validate::Field;

use crate::args::Cli;
use crate::error::{CliError, parse_day, parse_id};
use crate::phone::open_phone;

#[derive(serde::Deserialize)]
struct BatchLine {
    class: String,
    trainee: String,
    day: String,
    kind: String,
}

/// Records JSON lines from stdin one by one; each acknowledgement is printed only after its record
/// is durable, so a reader of stdout knows exactly what survived a crash.
pub(crate) fn batch(cli: &Cli, reason: &str) -> Result<(), CliError> {
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
