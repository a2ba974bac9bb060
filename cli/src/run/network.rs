//! `enroll` and `sync`: the commands that reach the district's server.

use songpei_core::store::SqliteDocStore;
use songpei_core::validate::{Field, Problem};

use crate::args::Cli;
use crate::error::{CliError, bad};
use crate::key;
use crate::phone::{announce_key_file, open_phone, print_json};

/// `songpei enroll`: registers this phone with the district server.
pub(crate) fn enroll(
    cli: &Cli,
    server: Option<&str>,
    code: &str,
    timeout: u64,
) -> Result<(), CliError> {
    let json = cli.json;

    let (qr_server, code) = songpei_core::sync::auth::parse_enrollment_text(code);
    let server = server
        .map(str::to_owned)
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
        std::time::Duration::from_secs(timeout),
    );
    let resp = songpei_core::sync::auth::enroll_with(&mut store, &mut transport, &server, &code)
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
    Ok(())
}

/// `songpei sync`: pushes what the server lacks and pulls what is new, as many rounds as needed.
pub(crate) fn sync(cli: &Cli, server: Option<&str>, timeout: u64) -> Result<(), CliError> {
    let json = cli.json;

    let mut phone = open_phone(cli)?;
    let server = match server {
        Some(s) => s.to_owned(),
        None => phone
            .server_url()?
            .ok_or_else(|| bad(Field::Server, Problem::Missing))?,
    };
    let mut transport = songpei_core::sync::http::HttpTransport::new(
        &server,
        std::time::Duration::from_secs(timeout),
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
    let report =
        songpei_core::sync::engine::sync_with(&mut phone, &mut transport, &limits, &mut progress)
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
    Ok(())
}
