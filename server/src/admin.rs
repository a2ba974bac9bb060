//! `songpei-server admin …`: the district admin's commands, run on the server machine against its
//! data folder (while the server runs or not). Every change is audited.

use std::path::Path;

use crate::accounts::audit::{self, Verdict};
use crate::accounts::{self, AccountError, Role};
use crate::store::{ServerStore, StoreLocation};

/// What an admin command printed, and whether it succeeded.
#[derive(Debug)]
pub struct Outcome {
    /// Lines for standard output.
    pub out: String,
    /// Exit code: 0 done, 1 failed (a broken audit chain), 2 bad input.
    pub code: u8,
}

impl Outcome {
    fn ok(out: String) -> Self {
        Self { out, code: 0 }
    }
}

/// An admin command that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Bad input or a refused operation.
    #[error("{0}")]
    Account(#[from] AccountError),
    /// The data folder could not be opened or written.
    #[error("{0}")]
    Io(String),
}

impl AdminError {
    /// Exit code: 2 for bad input, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Account(AccountError::Db(_)) | AdminError::Io(_) => 1,
            AdminError::Account(_) => 2,
        }
    }
}

fn open(at: &StoreLocation) -> Result<ServerStore, AdminError> {
    at.open(1).map_err(AdminError::Io)
}

/// `admin init`: sets up the district and prints the admin's one-time password.
pub fn init(at: &StoreLocation, district: &str, name: &str) -> Result<Outcome, AdminError> {
    let mut store = open(at)?;
    let password = accounts::init(store.conn_mut(), district, name)?;
    Ok(Outcome::ok(format!(
        "district {district} set up.\nadmin account: admin\nadmin password (shown once, write it down): {password}\n"
    )))
}

/// `admin village add`.
pub fn village_add(
    at: &StoreLocation,
    code: &str,
    name: &str,
    township_name: Option<&str>,
) -> Result<Outcome, AdminError> {
    let store = open(at)?;
    accounts::add_village(store.conn(), code, name, township_name)?;
    Ok(Outcome::ok(format!("village {} added\n", code.trim())))
}

/// `admin village import FILE.csv`: all rows or none.
pub fn village_import(at: &StoreLocation, file: &Path) -> Result<Outcome, AdminError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| AdminError::Io(format!("cannot read {}: {e}", file.display())))?;
    let mut store = open(at)?;
    match accounts::import_villages(store.conn_mut(), &text)? {
        Ok(n) => Ok(Outcome::ok(format!("{n} villages imported\n"))),
        Err(problems) => {
            let mut out = String::from("nothing imported:\n");
            for p in problems.iter().take(50) {
                out.push_str(&format!("  line {}: {}\n", p.line, p.problem));
            }
            if problems.len() > 50 {
                out.push_str(&format!("  … and {} more\n", problems.len() - 50));
            }
            Ok(Outcome { out, code: 2 })
        }
    }
}

/// `admin account add`.
pub fn account_add(
    at: &StoreLocation,
    username: &str,
    role: &str,
    villages: &[String],
) -> Result<Outcome, AdminError> {
    let role = Role::parse(role).ok_or(AccountError::Invalid {
        field: "role",
        problem: "must be district_admin, district_viewer, coordinator or instructor",
    })?;
    let mut store = open(at)?;
    let (id, password) = accounts::add_account(store.conn_mut(), username, role, villages)?;
    let mut out = format!(
        "account {} ({}) added: {id}\n",
        username.trim(),
        role.code()
    );
    if let Some(p) = password {
        out.push_str(&format!("password (shown once): {p}\n"));
    }
    Ok(Outcome::ok(out))
}

/// `admin account villages`: replaces a coordinator's or instructor's villages.
pub fn account_villages(
    at: &StoreLocation,
    username: &str,
    villages: &[String],
) -> Result<Outcome, AdminError> {
    let mut store = open(at)?;
    accounts::set_villages(store.conn_mut(), username, villages)?;
    Ok(Outcome::ok(format!(
        "villages of {} are now {}\n",
        username.trim(),
        villages.join(", ")
    )))
}

/// `admin account reset-password`: a new one-time password; the account's sessions end.
pub fn reset_password(at: &StoreLocation, username: &str) -> Result<Outcome, AdminError> {
    let mut store = open(at)?;
    let password = accounts::reset_password(store.conn_mut(), username)?;
    Ok(Outcome::ok(format!(
        "password of {} reset; its dashboard sessions ended\npassword (shown once): {password}\n",
        username.trim()
    )))
}

/// `admin enroll-code`: a one-time code for a coordinator's phone, and optionally its QR code as a
/// PNG. The QR holds `songpei-enroll:<server>#<code>` (or just the code without `--server`).
pub fn enroll_code(
    at: &StoreLocation,
    username: &str,
    qr: Option<&Path>,
    server: Option<&str>,
) -> Result<Outcome, AdminError> {
    let store = open(at)?;
    let code = accounts::issue_enrollment_code(store.conn(), username)?;
    let expires = chrono::DateTime::from_timestamp_millis(code.expires_at_ms)
        .map(|t| {
            t.with_timezone(&songpei_core::clock::china())
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default();
    let mut out = format!(
        "enrollment code for {}: {}\nvalid until {expires} (China time), once\n",
        username.trim(),
        code.code
    );
    if let Some(path) = qr {
        let text = match server {
            Some(s) => format!("songpei-enroll:{}#{}", s.trim_end_matches('/'), code.code),
            None => code.code.clone(),
        };
        write_qr_png(&text, path)?;
        out.push_str(&format!("QR code written to {}\n", path.display()));
    }
    Ok(Outcome::ok(out))
}

/// Renders `text` as a QR code PNG, scaled for printing and phone cameras.
pub fn write_qr_png(text: &str, path: &Path) -> Result<(), AdminError> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| AdminError::Io(format!("cannot make the QR code: {e}")))?;
    let image = code
        .render::<image::Luma<u8>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    image
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| AdminError::Io(format!("cannot write {}: {e}", path.display())))
}

/// `admin device list`.
pub fn device_list(at: &StoreLocation) -> Result<Outcome, AdminError> {
    let store = open(at)?;
    let rows = accounts::devices(store.conn()).map_err(AccountError::from)?;
    let mut out = String::new();
    for d in rows {
        out.push_str(&format!(
            "{}  {}  {}\n",
            d.id,
            d.username,
            if d.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            }
        ));
    }
    Ok(Outcome::ok(out))
}

/// `admin device revoke`.
pub fn device_revoke(at: &StoreLocation, device: &str) -> Result<Outcome, AdminError> {
    let mut store = open(at)?;
    accounts::revoke_device(store.conn_mut(), device)?;
    Ok(Outcome::ok(format!(
        "device {} revoked: its next request is refused\n",
        device.trim()
    )))
}

/// `admin erase-trainee`.
pub fn erase_trainee(
    at: &StoreLocation,
    trainee: &str,
    reason: &str,
) -> Result<Outcome, AdminError> {
    let mut store = open(at)?;
    let ids = crate::store::erasure::erase_trainee(&mut store, trainee, "admin-cli", reason)?;
    Ok(Outcome::ok(format!(
        "erased {} document(s) of trainee {}: gone from the server, and from each phone at its next sync\n",
        ids.len(),
        trainee.trim()
    )))
}

/// `admin audit verify`: exit 0 when the chain is intact, 1 with the first broken entry.
pub fn audit_verify(at: &StoreLocation) -> Result<Outcome, AdminError> {
    let store = open(at)?;
    match audit::verify(store.conn()).map_err(AccountError::from)? {
        Verdict::Intact { entries } => Ok(Outcome::ok(format!(
            "audit log intact: {entries} entries\n"
        ))),
        Verdict::BrokenAt { seq } => Ok(Outcome {
            out: format!(
                "audit log BROKEN at entry {seq}: it or an entry before it was altered or removed\n"
            ),
            code: 1,
        }),
    }
}

/// `admin database rekey`: encrypts the database again under the key in `new_key_file` (64 hex
/// characters), then puts that key where the server reads its key from, keeping the old key
/// beside it (`….old`) for the backups made under it. Every server on the database must be
/// stopped first.
pub fn database_rekey(at: &StoreLocation, new_key_file: &Path) -> Result<Outcome, AdminError> {
    let new = crate::DbKey::read(new_key_file).map_err(|_| {
        AdminError::Account(AccountError::Invalid {
            field: "new-key-file",
            problem: "cannot be read, or does not hold 64 hex characters",
        })
    })?;
    let mut store = open(at)?;
    let resealed = store.rekey(&new).map_err(AccountError::from)?;
    drop(store);
    let mut out = match at.database_url {
        Some(_) => {
            format!("the PostgreSQL database's {resealed} sealed values are under the new key\n")
        }
        None => "the database is encrypted under the new key\n".to_owned(),
    };
    match crate::DbKey::file_of(&at.data) {
        Some(file) => {
            let old = file.with_extension("key.old");
            std::fs::copy(&file, &old)
                .and_then(|_| new.write_to(&file))
                .map_err(|e| {
                    AdminError::Io(format!("cannot replace the key {}: {e}", file.display()))
                })?;
            out.push_str(&format!(
                "the new key is in {}; the old one, for backups made before, in {}\n",
                file.display(),
                old.display()
            ));
        }
        None => out.push_str("set SONGPEI_DB_KEY to the new key before the next start\n"),
    }
    Ok(Outcome::ok(out))
}

/// `admin callbacks verify`: draws the call-back sample again under the key in `key_file` (the
/// data folder's `callback.key` by default) and compares it with the call list. Exit 0 when every
/// drawn trainee-day is on the list and every day listed as drawn is drawn, 1 otherwise. The rate
/// is `rate` (0–1), or else the rate the latest call was drawn at.
pub fn callbacks_verify(
    at: &StoreLocation,
    key_file: Option<&Path>,
    rate: Option<f64>,
) -> Result<Outcome, AdminError> {
    let bad = |problem| {
        AdminError::Account(AccountError::Invalid {
            field: "key-file",
            problem,
        })
    };
    let path = key_file.map_or_else(
        || at.data.join(crate::state::CALLBACK_KEY_FILE),
        Path::to_path_buf,
    );
    let text = std::fs::read_to_string(&path)
        .map_err(|e| AdminError::Io(format!("cannot read {}: {e}", path.display())))?;
    let key: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("is not 64 hex characters"))?;
    if let Some(r) = rate
        && !(0.0..=1.0).contains(&r)
    {
        return Err(AdminError::Account(AccountError::Invalid {
            field: "rate",
            problem: "is not between 0 and 1",
        }));
    }
    let store = open(at)?;
    let per_million = match rate {
        Some(r) => (r * 1_000_000.0).round() as u32,
        None => store
            .conn()
            .query_opt(
                "SELECT per_million FROM callbacks ORDER BY selected_ms DESC, id LIMIT 1",
                &[],
                |r| r.get::<i64>(0),
            )
            .map_err(AccountError::from)?
            .map_or(50_000, |p| p.clamp(0, 1_000_000) as u32),
    };
    let sampler = crate::callbacks::Sampler::new(key, per_million);
    let (drawn, missing, unexplained) =
        crate::callbacks::verify(store.conn(), &sampler).map_err(AccountError::from)?;
    let mut out = format!(
        "{drawn} payable trainee-day(s) drawn at {:.4} by this key
",
        f64::from(per_million) / 1_000_000.0
    );
    for (class, trainee, day) in &missing {
        out.push_str(&format!(
            "drawn but not on the call list: class {class}, trainee {trainee}, {day}
"
        ));
    }
    for (class, trainee, day) in &unexplained {
        out.push_str(&format!(
            "on the call list as drawn but not drawn by this key: class {class}, trainee {trainee}, {day}
"
        ));
    }
    if missing.is_empty() && unexplained.is_empty() {
        out.push_str(
            "the call list matches the sample
",
        );
        Ok(Outcome::ok(out))
    } else {
        out.push_str(
            "the call list does NOT match the sample drawn by this key
",
        );
        Ok(Outcome { out, code: 1 })
    }
}

/// `admin flags`: the attendance records flagged for review, of one class or all.
pub fn flags(at: &StoreLocation, class: Option<&str>, json: bool) -> Result<Outcome, AdminError> {
    let store = open(at)?;
    let rows =
        crate::attendance::flags(store.conn(), class.map(str::trim)).map_err(AccountError::from)?;
    if json {
        return Ok(Outcome::ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&rows).map_err(|e| AdminError::Io(e.to_string()))?
        )));
    }
    let mut out = String::new();
    for f in &rows {
        out.push_str(&format!(
            "{}  {}  {:<20} {}{}\n",
            f.class,
            f.attendance,
            f.flag,
            f.detail,
            if f.blocks_pay { "" } else { " (informational)" }
        ));
    }
    out.push_str(&format!("{} flags\n", rows.len()));
    Ok(Outcome::ok(out))
}

/// `admin card-key rotate`: withdraws the card key in use; cards it signed stop working once phones
/// sync.
pub fn card_key_rotate(at: &StoreLocation) -> Result<Outcome, AdminError> {
    let mut store = open(at)?;
    let id =
        crate::attendance::rotate_card_key(store.conn_mut(), chrono::Utc::now().timestamp_millis())
            .map_err(AccountError::from)?;
    Ok(Outcome::ok(format!(
        "card key {id} is now in use; cards signed before are refused once phones sync\n"
    )))
}

/// `admin cards`: the trainee cards of a class on A4 sheets, names masked.
pub fn cards(
    at: &StoreLocation,
    class: &str,
    out: &Path,
    font: Option<&Path>,
) -> Result<Outcome, AdminError> {
    let store = open(at)?;
    let conn = store.conn();
    let district = accounts::district(conn)
        .map_err(AccountError::from)?
        .ok_or(AccountError::NotInitialised)?;
    let district = songpei_core::ids::DistrictCode::parse(&district.code)
        .ok_or(AccountError::NotInitialised)?;
    let roster = crate::attendance::roster(conn, class.trim()).map_err(AccountError::from)?;
    if roster.is_empty() {
        return Err(AdminError::Io(format!(
            "class {} has no trainees on the server (has the phone synced?)",
            class.trim()
        )));
    }
    let now = chrono::Utc::now().timestamp_millis();
    let ids: Vec<_> = roster.iter().map(|(t, _)| *t).collect();
    let cards =
        crate::attendance::sign_cards(conn, &district, &ids, now).map_err(AccountError::from)?;
    audit::append(
        conn,
        now,
        &[audit::Entry::new(
            "admin",
            "issue_cards",
            class.trim().to_owned(),
            serde_json::json!({ "cards": cards.len() }),
        )],
    )
    .map_err(AccountError::from)?;
    let captioned: Vec<(String, songpei_core::qr::CardCaption)> = cards
        .iter()
        .zip(&roster)
        .map(|(c, (t, name))| {
            (
                c.to_text(),
                songpei_core::qr::CardCaption {
                    name_masked: name.clone(),
                    detail: t.to_string()[..8].to_owned(),
                },
            )
        })
        .collect();
    let font_bytes = match font {
        Some(p) => {
            Some(std::fs::read(p).map_err(|e| AdminError::Io(format!("{}: {e}", p.display())))?)
        }
        None => songpei_core::qr::SYSTEM_FONTS
            .iter()
            .find_map(|p| std::fs::read(p).ok()),
    };
    let pages = songpei_core::qr::render_card_sheet(&captioned, font_bytes.as_deref())
        .map_err(|e| AdminError::Io(e.to_string()))?;
    let mut files = Vec::new();
    for (i, png) in pages.iter().enumerate() {
        let path = songpei_core::qr::sheet_path(out, i);
        std::fs::write(&path, png)
            .map_err(|e| AdminError::Io(format!("cannot write {}: {e}", path.display())))?;
        files.push(path.display().to_string());
    }
    Ok(Outcome::ok(format!(
        "{} cards on {} sheet(s): {}\n",
        cards.len(),
        files.len(),
        files.join(", ")
    )))
}
