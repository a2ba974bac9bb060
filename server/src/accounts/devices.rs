//! Devices: one-time enrollment codes, enrolled devices with their keys, actors and villages
//! (the grant a token stands for), sign-in challenges, and revocation (ADR 0003).

use std::collections::BTreeSet;

use crate::args;
use crate::db::{DbError, Sql, Transact};
use sha2::{Digest, Sha256};

use super::{
    AccountError, CHALLENGE_VALID_MS, ENROLLMENT_VALID_MS, Role, account_by_username, district,
    invalid, now_ms, random_secret,
};
use crate::accounts::audit::{self, Entry};

/// Normalises a typed enrollment code: upper case, without spaces or dashes, with the letters
/// people confuse mapped as Crockford's base 32 does.
pub fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        })
        .collect()
}

fn code_hash(code: &str) -> Vec<u8> {
    Sha256::digest(normalise_code(code).as_bytes()).to_vec()
}

/// A one-time enrollment code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollmentCode {
    /// The code as shown: `XXXX-XXXX-XXXX` (60 random bits).
    pub code: String,
    /// When it stops working, ms since the epoch.
    pub expires_at_ms: i64,
}

/// Issues an enrollment code for a coordinator or instructor. Only its hash is kept.
pub fn issue_enrollment_code(db: &dyn Sql, username: &str) -> Result<EnrollmentCode, AccountError> {
    let (id, role) = account_by_username(db, username)?;
    if !role.in_villages() {
        return Err(invalid(
            "username",
            "only coordinators and instructors enroll phones",
        ));
    }
    let raw = random_secret(12);
    let code = format!("{}-{}-{}", &raw[..4], &raw[4..8], &raw[8..]);
    let now = now_ms();
    let expires_at_ms = now + ENROLLMENT_VALID_MS;
    db.execute(
        "INSERT INTO enrollment_codes (code_hash, account_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        args![code_hash(&code), &id, now, expires_at_ms],
    )?;
    audit::append(
        db,
        now,
        &[Entry::new(
            "admin-cli",
            "enrollment_code",
            id,
            serde_json::json!({"expires_at": expires_at_ms}),
        )],
    )?;
    Ok(EnrollmentCode {
        code,
        expires_at_ms,
    })
}

/// A device and what it may do, as loaded for each request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceGrant {
    /// Device id.
    pub device: String,
    /// Its account.
    pub account: String,
    /// The account's role.
    pub role: Role,
    /// The district.
    pub district: String,
    /// The account's villages.
    pub villages: BTreeSet<String>,
    /// Revoked, ms since the epoch.
    pub revoked_at: Option<i64>,
    /// Public key, compressed SEC1.
    pub public_key: Vec<u8>,
}

/// Loads a device with its account's role and villages.
pub fn device(db: &dyn Sql, device: &str) -> Result<Option<DeviceGrant>, DbError> {
    let row: Option<(String, String, Option<i64>, Vec<u8>)> = db.query_opt(
        "SELECT d.account_id, a.role, d.revoked_at, d.public_key
         FROM devices d JOIN accounts a ON a.id = d.account_id WHERE d.id = ?1",
        args![device],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let Some((account, role, revoked_at, public_key)) = row else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&role) else {
        return Ok(None);
    };
    let district = district(db)?.map(|d| d.code).unwrap_or_default();
    let villages: BTreeSet<String> = db
        .query_map(
            "SELECT village FROM account_villages WHERE account_id = ?1",
            args![&account],
            |r| r.get(0),
        )?
        .into_iter()
        .collect();
    Ok(Some(DeviceGrant {
        device: device.to_owned(),
        account,
        role,
        district,
        villages,
        revoked_at,
        public_key,
    }))
}

/// Whether the actor belongs to the device.
pub fn actor_of(db: &dyn Sql, actor: &[u8]) -> Result<Option<String>, DbError> {
    db.query_opt(
        "SELECT device_id FROM device_actors WHERE actor = ?1",
        args![actor],
        |r| r.get(0),
    )
}

/// Why an enrollment was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnrollRefusal {
    /// Unknown, used or expired code.
    BadCode,
    /// The signature does not match the public key.
    BadSignature,
    /// The device id or actor is registered to another device already.
    Taken,
}

/// Registers a device with an enrollment code. A retry by the same device with the same key
/// (its first answer was lost) succeeds again.
pub fn enroll(
    db: &mut impl Transact,
    code: &str,
    device: &str,
    public_key: &[u8],
    actor: &[u8],
) -> Result<Result<DeviceGrant, EnrollRefusal>, AccountError> {
    // A refusal writes nothing, so committing it is the same as rolling back.
    db.transaction(|tx| {
        let now = now_ms();
        let row: Option<(String, i64, Option<String>)> = tx.query_opt(
            "SELECT account_id, expires_at, used_by FROM enrollment_codes WHERE code_hash = ?1",
            args![code_hash(code)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let Some((account, expires_at, used_by)) = row else {
            return Ok(Err(EnrollRefusal::BadCode));
        };
        if expires_at < now {
            return Ok(Err(EnrollRefusal::BadCode));
        }
        match used_by {
            Some(d) if d == device => {
                let same_key = tx
                    .query_opt(
                        "SELECT public_key = ?2 FROM devices WHERE id = ?1",
                        args![device, public_key],
                        |r| r.get::<bool>(0),
                    )?
                    .unwrap_or(false);
                if !same_key {
                    return Ok(Err(EnrollRefusal::BadCode));
                }
            }
            Some(_) => return Ok(Err(EnrollRefusal::BadCode)),
            None => {
                let taken = tx
                    .query_opt("SELECT 1 FROM devices WHERE id = ?1", args![device], |_| {
                        Ok(())
                    })?
                    .is_some();
                let actor_taken = actor_of(tx, actor)?.is_some_and(|d| d != device);
                if taken || actor_taken {
                    return Ok(Err(EnrollRefusal::Taken));
                }
                tx.execute(
                    "INSERT INTO devices (id, account_id, public_key, created_at) VALUES (?1, ?2, ?3, ?4)",
                    args![device, &account, public_key, now],
                )?;
                tx.execute(
                    "INSERT INTO device_actors (actor, device_id) VALUES (?1, ?2)",
                    args![actor, device],
                )?;
                tx.execute(
                    "UPDATE enrollment_codes SET used_by = ?2 WHERE code_hash = ?1",
                    args![code_hash(code), device],
                )?;
                audit::append(
                    tx,
                    now,
                    &[Entry::new(
                        format!("device:{device}"),
                        "enroll",
                        account.clone(),
                        serde_json::json!({"actor": hex::encode(actor)}),
                    )],
                )?;
            }
        }
        let grant = self::device(tx, device)?.ok_or(AccountError::NotFound("device"))?;
        Ok(Ok(grant))
    })
}

/// What a challenge's MAC is computed over, after its domain: the device, then the challenge's
/// first 16 bytes (when it was made, a random part).
const CHALLENGE_DOMAIN: &[u8] = b"songpei challenge v1";

fn challenge_mac(key: &[u8; 32], device: &str, head: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(CHALLENGE_DOMAIN);
    mac.update(&(device.len() as u64).to_be_bytes());
    mac.update(device.as_bytes());
    mac.update(head);
    mac
}

/// A challenge for `device`, made at `made_ms`: the time (8 bytes), 8 random bytes and a MAC
/// under the server's token key. Nothing is stored: asking for challenges (anyone can, knowing a
/// device id) evicts none, and every one the device holds stays good until it uses a later one or
/// it expires. See [`take_challenge`].
pub fn new_challenge(key: &[u8; 32], device: &str, made_ms: i64) -> Vec<u8> {
    let mut c = Vec::with_capacity(32);
    c.extend_from_slice(&made_ms.to_be_bytes());
    c.extend_from_slice(&rand::random::<[u8; 8]>());
    let tag = hmac::Mac::finalize(challenge_mac(key, device, &c)).into_bytes();
    c.extend_from_slice(&tag[..16]);
    c
}

/// When a challenge may be made for `device` now: not before the last one it used, so a server
/// whose clock is behind another's still makes challenges the device can use.
pub fn challenge_time(db: &dyn Sql, device: &str, now: i64) -> Result<i64, DbError> {
    let used: Option<Option<i64>> = db.query_opt(
        "SELECT challenge_used_ms FROM devices WHERE id = ?1",
        args![device],
        |r| r.get(0),
    )?;
    Ok(used.flatten().map_or(now, |u| now.max(u + 1)))
}

/// Uses `challenge` for `device` if the server made it for that device, it has not expired, and
/// it was made after the last challenge the device used (so none is used twice). Whether it was.
pub fn take_challenge(
    db: &dyn Sql,
    key: &[u8; 32],
    device: &str,
    challenge: &[u8],
    now: i64,
) -> Result<bool, DbError> {
    let Some((head, tag)) = challenge.split_at_checked(16) else {
        return Ok(false);
    };
    // Compared in constant time.
    let genuine = tag.len() == 16
        && hmac::Mac::verify_truncated_left(challenge_mac(key, device, head), tag).is_ok();
    let made = i64::from_be_bytes(head[..8].try_into().unwrap_or_default());
    if !genuine || made.saturating_add(CHALLENGE_VALID_MS) < now {
        return Ok(false);
    }
    let n = db.execute(
        "UPDATE devices SET challenge_used_ms = ?2
         WHERE id = ?1 AND (challenge_used_ms IS NULL OR challenge_used_ms < ?2)",
        args![device, made],
    )?;
    Ok(n == 1)
}

/// A device as listed for the admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    /// Device id.
    pub id: String,
    /// Account username.
    pub username: String,
    /// Enrolled, ms since the epoch.
    pub created_at: i64,
    /// Revoked, ms since the epoch.
    pub revoked_at: Option<i64>,
}

/// Every device.
pub fn devices(db: &dyn Sql) -> Result<Vec<DeviceRow>, DbError> {
    db.query_map(
        "SELECT d.id, a.username, d.created_at, d.revoked_at FROM devices d
         JOIN accounts a ON a.id = d.account_id ORDER BY d.created_at, d.id",
        &[],
        |r| {
            Ok(DeviceRow {
                id: r.get(0)?,
                username: r.get(1)?,
                created_at: r.get(2)?,
                revoked_at: r.get(3)?,
            })
        },
    )
}

/// Revokes a device at once: its next request is refused.
pub fn revoke_device(db: &mut impl Transact, device: &str) -> Result<(), AccountError> {
    let device = device.trim();
    db.transaction(|tx| {
        let now = now_ms();
        let n = tx.execute(
            "UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            args![device, now],
        )?;
        if n == 0 {
            let exists = tx
                .query_opt("SELECT 1 FROM devices WHERE id = ?1", args![device], |_| {
                    Ok(())
                })?
                .is_some();
            return Err(if exists {
                AccountError::Exists("revocation")
            } else {
                AccountError::NotFound("device")
            });
        }
        audit::append(
            tx,
            now,
            &[Entry::new(
                "admin-cli",
                "device_revoke",
                device,
                serde_json::json!({}),
            )],
        )?;
        Ok(())
    })
}
