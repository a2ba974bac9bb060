//! The phone a command works on: its store opened with its key and the clock, and the printing of
//! results.

use std::sync::Arc;

use songpei_core::blind_index::BlindIndexKey;
use songpei_core::clock::{Clock, SystemClock};
use songpei_core::store::SqliteDocStore;
use songpei_core::{Error, Phone};

use crate::args::Cli;
use crate::error::CliError;
use crate::key;

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

pub(crate) fn print_id(json: bool, id: impl std::fmt::Display) {
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

pub(crate) fn phone_now(_phone: &Phone<SqliteDocStore>) -> i64 {
    clock().map(|c| c.now_ms()).unwrap_or_default()
}
