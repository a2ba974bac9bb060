//! The district, its townships and villages, and accounts with their roles and villages; enrolled
//! devices (`devices`), the hash-chained audit log (`audit`) and a person's erasure (`erasure`).
//! Authority comes only from these tables: nothing written inside a document grants a role or a
//! village.

use std::collections::BTreeSet;

use crate::args;
use crate::db::{DbError, Sql, Transact};
use argon2::password_hash::{PasswordHasher, SaltString};
use songpei_core::ids::{DistrictCode, VillageCode};

use audit::Entry;

pub mod audit;
mod devices;
pub mod logins;
pub(crate) mod refusals;

pub use crate::error::CsvProblem;
pub use devices::{
    DeviceGrant, DeviceRow, EnrollRefusal, EnrollmentCode, actor_of, challenge_time, device,
    devices, enroll, issue_enrollment_code, new_challenge, normalise_code, revoke_device,
    take_challenge,
};

/// How long an enrollment code stays valid.
pub const ENROLLMENT_VALID_MS: i64 = 24 * 3600 * 1000;
/// How long a device's challenge stays valid: a phone may stay offline for weeks.
pub const CHALLENGE_VALID_MS: i64 = 60 * 24 * 3600 * 1000;
/// Alphabet of enrollment codes (Crockford's base 32: no I, L, O or U to misread).
const CODE_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// What an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages the district: villages, accounts, devices, targets, catalogs.
    DistrictAdmin,
    /// Reads the district's records and reports.
    DistrictViewer,
    /// Records classes, trainees and households of their villages.
    Coordinator,
    /// Records attendance in classes of their villages.
    Instructor,
}

impl Role {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Role::DistrictAdmin => "district_admin",
            Role::DistrictViewer => "district_viewer",
            Role::Coordinator => "coordinator",
            Role::Instructor => "instructor",
        }
    }

    /// Parses a code.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Role::DistrictAdmin,
            Role::DistrictViewer,
            Role::Coordinator,
            Role::Instructor,
        ]
        .into_iter()
        .find(|r| r.code() == s)
    }

    /// Whether a phone of this role may write documents of `kind`. Catalogs and targets are the
    /// district's, written on the server, never by a phone.
    pub fn may_write(self, kind: songpei_core::doc::DocKind) -> bool {
        use songpei_core::doc::DocKind;
        match self {
            Role::Coordinator => {
                matches!(kind, DocKind::Class | DocKind::Trainee | DocKind::Household)
            }
            Role::Instructor => kind == DocKind::Class,
            Role::DistrictAdmin | Role::DistrictViewer => false,
        }
    }

    /// Whether the role works in villages (and so needs at least one).
    pub fn in_villages(self) -> bool {
        matches!(self, Role::Coordinator | Role::Instructor)
    }
}

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A field is not valid.
    #[error("{field}: {problem}")]
    Invalid {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// The district was set up already.
    #[error("the district is set up already")]
    AlreadyInitialised,
    /// No district yet.
    #[error("no district yet: run `songpei-server admin init --district CODE --name NAME`")]
    NotInitialised,
    /// Not found.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Exists already.
    #[error("{0} exists already")]
    Exists(&'static str),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] DbError),
}

impl From<AccountError> for crate::ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Db(e) => e.into(),
            AccountError::NotInitialised => crate::ApiError::NotInitialised,
            other => crate::ApiError::BadRequest(other.to_string()),
        }
    }
}

fn invalid(field: &'static str, problem: &'static str) -> AccountError {
    AccountError::Invalid { field, problem }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The district this server serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct District {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
}

/// The district, if set up.
pub fn district(db: &dyn Sql) -> Result<Option<District>, DbError> {
    db.query_opt("SELECT code, name FROM district LIMIT 1", &[], |r| {
        Ok(District {
            code: r.get(0)?,
            name: r.get(1)?,
        })
    })
}

/// A random password of 16 characters from the code alphabet.
fn random_secret(len: usize) -> String {
    (0..len)
        .map(|_| CODE_ALPHABET[rand::random_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|_| invalid("password", "cannot be hashed"))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| invalid("password", "cannot be hashed"))
}

/// An account's password hash (`None` for an unknown username or an account without one); the
/// check itself is [`logins::Logins::check`], outside any database lock.
pub fn password_hash(db: &dyn Sql, username: &str) -> Result<Option<String>, DbError> {
    let hash: Option<Option<String>> = db.query_opt(
        "SELECT password_hash FROM accounts WHERE username = ?1",
        args![username],
        |r| r.get(0),
    )?;
    Ok(hash.flatten())
}

/// Sets up the district with its admin account; returns the admin's one-time password.
pub fn init(db: &mut impl Transact, code: &str, name: &str) -> Result<String, AccountError> {
    let code = DistrictCode::parse(code).ok_or(invalid("district", "is not a six-digit code"))?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 40 {
        return Err(invalid("name", "must be 1 to 40 characters"));
    }
    db.transaction(|tx| {
        if district(tx)?.is_some() {
            return Err(AccountError::AlreadyInitialised);
        }
        let password = random_secret(16);
        let hash = hash_password(&password)?;
        let now = now_ms();
        tx.execute(
            "INSERT INTO district (code, name, created_at) VALUES (?1, ?2, ?3)",
            args![code.as_str(), name, now],
        )?;
        let admin_id = uuid::Uuid::new_v4().to_string();
        tx.execute(
            "INSERT INTO accounts (id, username, role, password_hash, created_at) VALUES (?1, 'admin', ?2, ?3, ?4)",
            args![&admin_id, Role::DistrictAdmin.code(), hash, now],
        )?;
        audit::append(
            tx,
            now,
            &[Entry::new(
                "admin-cli",
                "init",
                code.as_str(),
                serde_json::json!({"admin": admin_id}),
            )],
        )?;
        Ok(password)
    })
}

fn require_district(db: &dyn Sql) -> Result<District, AccountError> {
    district(db)?.ok_or(AccountError::NotInitialised)
}

fn check_place_name(name: &str) -> Result<&str, AccountError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 40 || name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "must be 1 to 40 characters without control characters",
        ));
    }
    Ok(name)
}

/// Adds (or renames) a village; its township is the first nine digits of its code, created when
/// new (named `township_name`, or after its code until renamed).
pub fn add_village(
    db: &dyn Sql,
    code: &str,
    name: &str,
    township_name: Option<&str>,
) -> Result<(), AccountError> {
    let district = require_district(db)?;
    let v =
        VillageCode::parse(code.trim()).ok_or(invalid("code", "is not a 12-digit village code"))?;
    if v.district().as_str() != district.code {
        return Err(invalid("code", "is not in this district"));
    }
    let name = check_place_name(name)?;
    let township = &v.as_str()[..9];
    match township_name {
        Some(t) => {
            let t = check_place_name(t)?;
            db.execute(
                "INSERT INTO townships (code, name) VALUES (?1, ?2)
                 ON CONFLICT (code) DO UPDATE SET name = excluded.name",
                args![township, t],
            )?;
        }
        None => {
            db.execute(
                "INSERT INTO townships (code, name) VALUES (?1, ?1) ON CONFLICT (code) DO NOTHING",
                args![township],
            )?;
        }
    }
    db.execute(
        "INSERT INTO places (code, name, township) VALUES (?1, ?2, ?3)
         ON CONFLICT (code) DO UPDATE SET name = excluded.name",
        args![v.as_str(), name, township],
    )?;
    audit::append(
        db,
        now_ms(),
        &[Entry::new(
            "admin-cli",
            "village_add",
            v.as_str(),
            serde_json::json!({}),
        )],
    )?;
    Ok(())
}

/// Imports villages from CSV text (`code,name[,township name]`, an optional header line): all rows
/// or none. Returns the number of villages imported, or every problem found.
pub fn import_villages(
    db: &mut impl Transact,
    csv: &str,
) -> Result<Result<usize, Vec<CsvProblem>>, AccountError> {
    require_district(db)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 1;
        let record = match record {
            Ok(r) => r,
            Err(_) => {
                problems.push(CsvProblem {
                    line,
                    problem: "not valid CSV".into(),
                });
                continue;
            }
        };
        let code = record.get(0).unwrap_or("");
        if line == 1
            && VillageCode::parse(code).is_none()
            && !code.chars().any(|c| c.is_ascii_digit())
        {
            continue; // a header line
        }
        if record.len() < 2 || record.len() > 3 {
            problems.push(CsvProblem {
                line,
                problem: "expected code,name[,township name]".into(),
            });
            continue;
        }
        rows.push((
            line,
            code.to_owned(),
            record[1].to_owned(),
            record.get(2).map(str::to_owned),
        ));
    }
    if rows.len() > 100_000 {
        return Ok(Err(vec![CsvProblem {
            line: 0,
            problem: "more than 100,000 villages".into(),
        }]));
    }
    /// Why the import's transaction is rolled back.
    enum Undo {
        Failed(AccountError),
        Problems(Vec<CsvProblem>),
    }
    impl From<DbError> for Undo {
        fn from(e: DbError) -> Self {
            Undo::Failed(e.into())
        }
    }
    let done = db.transaction(|tx| {
        let mut count = 0;
        for (line, code, name, township) in &rows {
            match add_village(
                tx,
                code,
                name,
                township.as_deref().filter(|t| !t.is_empty()),
            ) {
                Ok(()) => count += 1,
                Err(AccountError::Invalid { field, problem }) => problems.push(CsvProblem {
                    line: *line,
                    problem: format!("{field} {problem}"),
                }),
                Err(e) => return Err(Undo::Failed(e)),
            }
        }
        if !problems.is_empty() {
            return Err(Undo::Problems(std::mem::take(&mut problems)));
        }
        Ok(count)
    });
    match done {
        Ok(count) => Ok(Ok(count)),
        Err(Undo::Problems(p)) => Ok(Err(p)),
        Err(Undo::Failed(e)) => Err(e),
    }
}

fn check_villages(db: &dyn Sql, villages: &[String]) -> Result<BTreeSet<String>, AccountError> {
    let mut set = BTreeSet::new();
    for v in villages {
        let known = db
            .query_opt(
                "SELECT 1 FROM places WHERE code = ?1",
                args![v.trim()],
                |_| Ok(()),
            )?
            .is_some();
        if !known {
            return Err(invalid(
                "village",
                "is not a village of this district (add it first)",
            ));
        }
        set.insert(v.trim().to_owned());
    }
    Ok(set)
}

fn check_username(username: &str) -> Result<&str, AccountError> {
    let u = username.trim();
    if u.is_empty()
        || u.len() > 32
        || !u
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(invalid(
            "username",
            "must be 1 to 32 letters, digits, '.', '_' or '-'",
        ));
    }
    Ok(u)
}

/// Creates an account; district roles get a one-time password (returned), village roles sign in
/// with their phones only.
pub fn add_account(
    db: &mut impl Transact,
    username: &str,
    role: Role,
    villages: &[String],
) -> Result<(String, Option<String>), AccountError> {
    require_district(db)?;
    let username = check_username(username)?;
    if role.in_villages() && villages.is_empty() {
        return Err(invalid(
            "village",
            "a coordinator or instructor needs at least one",
        ));
    }
    if !role.in_villages() && !villages.is_empty() {
        return Err(invalid(
            "village",
            "district accounts cover the whole district",
        ));
    }
    db.transaction(|tx| {
        let set = check_villages(tx, villages)?;
        let exists = tx
            .query_opt(
                "SELECT 1 FROM accounts WHERE username = ?1",
                args![username],
                |_| Ok(()),
            )?
            .is_some();
        if exists {
            return Err(AccountError::Exists("account"));
        }
        let (password, hash) = if role.in_villages() {
            (None, None)
        } else {
            let p = random_secret(16);
            let h = hash_password(&p)?;
            (Some(p), Some(h))
        };
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        tx.execute(
            "INSERT INTO accounts (id, username, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            args![&id, username, role.code(), hash, now],
        )?;
        write_villages(tx, &id, &set)?;
        audit::append(
            tx,
            now,
            &[Entry::new(
                "admin-cli",
                "account_add",
                id.clone(),
                serde_json::json!({"role": role.code(), "villages": set}),
            )],
        )?;
        Ok((id, password))
    })
}

/// Replaces the villages of a coordinator or instructor. Their phones follow at the next sync:
/// documents of villages dropped leave the phones.
pub fn set_villages(
    db: &mut impl Transact,
    username: &str,
    villages: &[String],
) -> Result<(), AccountError> {
    db.transaction(|tx| {
        let (id, role) = account_by_username(tx, username)?;
        if !role.in_villages() || villages.is_empty() {
            return Err(invalid(
                "village",
                "only coordinators and instructors have villages, at least one",
            ));
        }
        let set = check_villages(tx, villages)?;
        write_villages(tx, &id, &set)?;
        end_sessions(tx, &id)?;
        audit::append(
            tx,
            now_ms(),
            &[Entry::new(
                "admin-cli",
                "account_villages",
                id,
                serde_json::json!({"villages": set}),
            )],
        )?;
        Ok(())
    })
}

/// Ends every dashboard session of an account (its password, role or villages changed).
pub(crate) fn end_sessions(db: &dyn Sql, account: &str) -> Result<(), DbError> {
    db.execute(
        "DELETE FROM office_sessions WHERE account_id = ?1",
        args![account],
    )?;
    Ok(())
}

/// Gives a district account a new one-time password (returned) and ends its sessions.
pub fn reset_password(db: &mut impl Transact, username: &str) -> Result<String, AccountError> {
    db.transaction(|tx| {
        let (id, role) = account_by_username(tx, username)?;
        if role.in_villages() {
            return Err(invalid(
                "username",
                "coordinators and instructors sign in with their phones, not a password",
            ));
        }
        let password = random_secret(16);
        tx.execute(
            "UPDATE accounts SET password_hash = ?2 WHERE id = ?1",
            args![&id, hash_password(&password)?],
        )?;
        end_sessions(tx, &id)?;
        audit::append(
            tx,
            now_ms(),
            &[Entry::new(
                "admin-cli",
                "password_reset",
                id,
                serde_json::json!({}),
            )],
        )?;
        Ok(password)
    })
}

/// Replaces an account's villages.
fn write_villages(db: &dyn Sql, account: &str, villages: &BTreeSet<String>) -> Result<(), DbError> {
    db.execute(
        "DELETE FROM account_villages WHERE account_id = ?1",
        args![account],
    )?;
    for v in villages {
        db.execute(
            "INSERT INTO account_villages (account_id, village) VALUES (?1, ?2)",
            args![account, v],
        )?;
    }
    Ok(())
}

pub(crate) fn account_by_username(
    db: &dyn Sql,
    username: &str,
) -> Result<(String, Role), AccountError> {
    let row: Option<(String, String)> = db.query_opt(
        "SELECT id, role FROM accounts WHERE username = ?1",
        args![username.trim()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (id, role) = row.ok_or(AccountError::NotFound("account"))?;
    Ok((
        id,
        Role::parse(&role).ok_or(AccountError::NotFound("role"))?,
    ))
}

/// The instructors of `villages` with their enrolled phones, as phones of those villages learn them
/// at sync: who may witness a trainee's key and co-sign a card scan in a class that names them.
pub(crate) fn instructors_of(
    db: &dyn Sql,
    villages: &BTreeSet<String>,
) -> Result<songpei_core::sync::protocol::InstructorSet, DbError> {
    use songpei_core::sync::protocol::{Instructor, InstructorDevice, InstructorSet};
    let rows: Vec<(String, String, String)> = db.query_map(
        "SELECT a.id, a.username, v.village FROM accounts a
         JOIN account_villages v ON v.account_id = a.id
         WHERE a.role = 'instructor' ORDER BY a.id, v.village",
        args![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut by_account: std::collections::BTreeMap<String, Instructor> = Default::default();
    for (id, username, village) in rows {
        let i = by_account.entry(id.clone()).or_insert_with(|| Instructor {
            account: id,
            username,
            villages: Vec::new(),
            devices: Vec::new(),
        });
        i.villages.push(village);
    }
    by_account.retain(|_, i| i.villages.iter().any(|v| villages.contains(v)));
    let devices: Vec<(String, String, Vec<u8>)> = db.query_map(
        "SELECT d.account_id, d.id, d.public_key FROM devices d
         JOIN accounts a ON a.id = d.account_id
         WHERE a.role = 'instructor' AND d.revoked_at IS NULL ORDER BY d.id",
        args![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    for (account, id, public_key) in devices {
        if let (Some(i), Ok(id)) = (by_account.get_mut(&account), id.parse()) {
            i.devices.push(InstructorDevice { id, public_key });
        }
    }
    Ok(InstructorSet::new(by_account.into_values().collect()))
}
