//! Enrollment, access tokens and their checks.
//!
//! A token is `v1.<payload>.<mac>`: the payload (device, district, audience, expiry) in base64url
//! JSON, and an HMAC-SHA256 over it with the server's token key. Tokens live 15 minutes. Every
//! request also reloads the device, so a revocation takes effect on the very next request, whatever
//! tokens the device still holds.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use songpei_core::device::{ENROLL_PURPOSE, TOKEN_PURPOSE, valid_public_key, verify};
use songpei_core::sync::auth::{
    ChallengeRequest, ChallengeResponse, EnrollRequest, EnrollResponse, TokenRequest,
    TokenResponse, b64, unb64,
};

use crate::AppState;
use crate::accounts::refusals::Refusal;
use crate::accounts::{self, DeviceGrant, EnrollRefusal};
use crate::app::Peer;
use crate::error::ApiError;

/// Lifetime of an access token.
pub(crate) const TOKEN_LIFETIME_S: i64 = 15 * 60;
/// The audience of tokens for phones.
const AUDIENCE: &str = "songpei-sync";

#[derive(Serialize, Deserialize)]
struct Claims {
    /// Device.
    dev: String,
    /// District.
    dist: String,
    /// Audience.
    aud: String,
    /// Expiry, seconds since the epoch.
    exp: i64,
}

pub(crate) use crate::state::mac;

/// Mints a token for `device` valid until `exp` (seconds since the epoch).
pub(crate) fn mint(key: &[u8; 32], device: &str, district: &str, exp: i64) -> String {
    let claims = Claims {
        dev: device.to_owned(),
        dist: district.to_owned(),
        aud: AUDIENCE.to_owned(),
        exp,
    };
    let payload = b64(&serde_json::to_vec(&claims).unwrap_or_default());
    let tag = b64(&mac(key, &payload));
    format!("v1.{payload}.{tag}")
}

/// Checks a token's MAC, audience, district and expiry; returns its device.
pub(crate) fn check(
    key: &[u8; 32],
    token: &str,
    district: &str,
    now_s: i64,
) -> Result<String, ApiError> {
    let mut parts = token.split('.');
    let (Some("v1"), Some(payload), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ApiError::Unauthorized("invalid_token"));
    };
    let tag = unb64(tag).ok_or(ApiError::Unauthorized("invalid_token"))?;
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(payload.as_bytes());
    m.verify_slice(&tag)
        .map_err(|_| ApiError::Unauthorized("invalid_token"))?;
    let claims: Claims = unb64(payload)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(ApiError::Unauthorized("invalid_token"))?;
    if claims.aud != AUDIENCE || claims.dist != district {
        return Err(ApiError::Unauthorized("invalid_token"));
    }
    if claims.exp <= now_s {
        return Err(ApiError::Unauthorized("token_expired"));
    }
    Ok(claims.dev)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The device behind a request's bearer token, checked against the database: a revoked device is
/// refused (and the refusal audited) whatever token it shows.
pub(crate) fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<DeviceGrant, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized("missing_token"))?;
    let store = state.lock_store()?;
    let conn = store.conn();
    let district = accounts::district(conn)?
        .ok_or(ApiError::Unauthorized("invalid_token"))?
        .code;
    let device = check(&state.token_key, token, &district, now_ms() / 1000)?;
    let grant = accounts::device(conn, &device)?.ok_or(ApiError::Unauthorized("invalid_token"))?;
    refuse_if_revoked(state, &grant)?;
    Ok(grant)
}

/// Refuses a revoked device with 401 `device_revoked`, counted for the audit (per device and
/// minute: a withdrawn phone retrying all day is a count, not a flood of entries).
fn refuse_if_revoked(state: &AppState, grant: &DeviceGrant) -> Result<(), ApiError> {
    if grant.revoked_at.is_none() {
        return Ok(());
    }
    state.refusals.note(
        &format!("device:{}", grant.device),
        Refusal::DeviceRevoked,
        now_ms(),
    );
    Err(ApiError::Unauthorized("device_revoked"))
}

fn bad_request(what: &str) -> ApiError {
    ApiError::BadRequest(format!("{what} is not valid"))
}

/// Registers a phone with a one-time enrollment code.
///
/// The server binds the phone's device id, public key and automerge actor to the coordinator's
/// account, and gives the first challenge to sign for a token.
#[utoipa::path(post, path = "/v1/enroll", tag = "phones",
    request_body = EnrollRequest,
    responses(
        (status = 200, description = "Enrolled.", body = EnrollResponse),
        (status = 400, body = crate::error::ErrorBody, description = "`bad_request`: the body is \
            not an enrollment request, or one of its fields is not valid."),
        (status = 401, body = crate::error::ErrorBody, description = "`bad_code`: the code is \
            unknown, used or expired; `bad_signature`: the signature does not match."),
        (status = 409, body = crate::error::ErrorBody, description = "`device_taken`: the device \
            id or actor is registered to another device."),
        crate::office::openapi::Limits,
        crate::office::openapi::Storage,
    ))]
pub(crate) async fn enroll_handler(
    State(state): State<AppState>,
    peer: Option<axum::Extension<Peer>>,
    body: Result<Json<EnrollRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let peer = peer.map_or(Peer(None), |p| p.0);
    let Json(req) =
        body.map_err(|_| ApiError::BadRequest("the body is not an enrollment request".into()))?;
    let public_key = unb64(&req.public_key)
        .filter(|k| valid_public_key(k))
        .ok_or_else(|| bad_request("public_key"))?;
    let signature = unb64(&req.signature).ok_or_else(|| bad_request("signature"))?;
    let actor = hex::decode(&req.actor)
        .ok()
        .filter(|a| !a.is_empty() && a.len() <= 32)
        .ok_or_else(|| bad_request("actor"))?;
    if req.code.len() > 64 {
        return Err(bad_request("code"));
    }
    let code = req.code.trim().to_owned();
    let signed = verify(
        &public_key,
        ENROLL_PURPOSE,
        &[code.as_bytes(), req.device.as_bytes(), &public_key, &actor],
        &signature,
    );
    if !signed {
        return Err(ApiError::Unauthorized("bad_signature"));
    }
    let s = state.clone();
    let device = req.device.to_string();
    tokio::task::spawn_blocking(move || {
        let mut store = s.lock_store()?;
        let district =
            accounts::district(store.conn())?.ok_or(ApiError::Unauthorized("bad_code"))?;
        match accounts::enroll(store.conn_mut(), &code, &device, &public_key, &actor)? {
            Ok(grant) => Ok(Json(EnrollResponse {
                device: req.device,
                district: district.code,
                district_name: district.name,
                role: grant.role.code().to_owned(),
                villages: grant.villages.into_iter().collect(),
                challenge: b64(&accounts::new_challenge(
                    &s.token_key,
                    &device,
                    accounts::challenge_time(store.conn(), &device, now_ms())?,
                )),
            })),
            Err(EnrollRefusal::BadCode) => {
                s.refusals.note(&peer.source(), Refusal::BadCode, now_ms());
                Err(ApiError::Unauthorized("bad_code"))
            }
            Err(EnrollRefusal::BadSignature) => Err(ApiError::Unauthorized("bad_signature")),
            Err(EnrollRefusal::Taken) => Err(ApiError::Conflict("device_taken")),
        }
    })
    .await
    .map_err(|_| ApiError::Internal)?
}

/// A new challenge for a device that lost its own.
///
/// It is only useful to the holder of the device key.
#[utoipa::path(post, path = "/v1/auth/challenge", tag = "phones",
    request_body = ChallengeRequest,
    responses(
        (status = 200, description = "A fresh challenge.", body = ChallengeResponse),
        (status = 400, body = crate::error::ErrorBody, description = "`bad_request`: the body is \
            not a challenge request."),
        (status = 401, body = crate::error::ErrorBody, description = "`unknown_device`: the \
            device is not enrolled; `device_revoked`: the district withdrew it."),
        crate::office::openapi::Limits,
        crate::office::openapi::Storage,
    ))]
pub(crate) async fn challenge_handler(
    State(state): State<AppState>,
    body: Result<Json<ChallengeRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ChallengeResponse>, ApiError> {
    let Json(req) =
        body.map_err(|_| ApiError::BadRequest("the body is not a challenge request".into()))?;
    tokio::task::spawn_blocking(move || {
        let store = state.lock_store()?;
        let device = req.device.to_string();
        let grant = accounts::device(store.conn(), &device)?
            .ok_or(ApiError::Unauthorized("unknown_device"))?;
        refuse_if_revoked(&state, &grant)?;
        let made = accounts::challenge_time(store.conn(), &device, now_ms())?;
        let challenge = accounts::new_challenge(&state.token_key, &device, made);
        Ok(Json(ChallengeResponse {
            challenge: b64(&challenge),
        }))
    })
    .await
    .map_err(|_| ApiError::Internal)?
}

/// An access token for a signature over the device's current challenge.
///
/// The answer carries the challenge for the next one.
#[utoipa::path(post, path = "/v1/auth/token", tag = "phones",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "An access token.", body = TokenResponse),
        (status = 400, body = crate::error::ErrorBody, description = "`bad_request`: the body is \
            not a token request, or its challenge or signature is not base64url."),
        (status = 401, body = crate::error::ErrorBody, description = "`unknown_device`, \
            `device_revoked`, `bad_signature`, `bad_challenge`: ask for a new challenge or \
            enroll again."),
        crate::office::openapi::Limits,
        crate::office::openapi::Storage,
    ))]
pub(crate) async fn token_handler(
    State(state): State<AppState>,
    body: Result<Json<TokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<TokenResponse>, ApiError> {
    let Json(req) =
        body.map_err(|_| ApiError::BadRequest("the body is not a token request".into()))?;
    let challenge = unb64(&req.challenge).ok_or_else(|| bad_request("challenge"))?;
    let signature = unb64(&req.signature).ok_or_else(|| bad_request("signature"))?;
    let device = req.device.to_string();
    tokio::task::spawn_blocking(move || token(&state, &req, &device, &challenge, &signature))
        .await
        .map_err(|_| ApiError::Internal)?
}

fn token(
    state: &AppState,
    req: &TokenRequest,
    device: &str,
    challenge: &[u8],
    signature: &[u8],
) -> Result<Json<TokenResponse>, ApiError> {
    let store = state.lock_store()?;
    let conn = store.conn();
    let grant = accounts::device(conn, device)?.ok_or(ApiError::Unauthorized("unknown_device"))?;
    let now = now_ms();
    refuse_if_revoked(state, &grant)?;
    if !verify(
        &grant.public_key,
        TOKEN_PURPOSE,
        &[req.device.as_bytes(), challenge],
        signature,
    ) {
        return Err(ApiError::Unauthorized("bad_signature"));
    }
    if !accounts::take_challenge(conn, &state.token_key, device, challenge, now)? {
        return Err(ApiError::Unauthorized("bad_challenge"));
    }
    let next = accounts::new_challenge(
        &state.token_key,
        device,
        accounts::challenge_time(conn, device, now)?,
    );
    let token = mint(
        &state.token_key,
        device,
        &grant.district,
        now / 1000 + TOKEN_LIFETIME_S,
    );
    Ok(Json(TokenResponse {
        token,
        expires_in_s: TOKEN_LIFETIME_S as u64,
        next_challenge: b64(&next),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_for_mac_audience_district_and_expiry() {
        let key = [7u8; 32];
        let t = mint(&key, "dev-1", "450802", 1_000);
        assert_eq!(check(&key, &t, "450802", 999).expect("valid"), "dev-1");
        let code = |r: Result<String, ApiError>| match r {
            Err(ApiError::Unauthorized(c)) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(check(&key, &t, "450802", 1_000)), "token_expired");
        assert_eq!(code(check(&key, &t, "450803", 999)), "invalid_token");
        assert_eq!(code(check(&[8; 32], &t, "450802", 999)), "invalid_token");
        // Another audience, signed with the right key.
        let other = {
            let claims = Claims {
                dev: "dev-1".into(),
                dist: "450802".into(),
                aud: "songpei-dashboard".into(),
                exp: 1_000,
            };
            let payload = b64(&serde_json::to_vec(&claims).expect("json"));
            format!("v1.{payload}.{}", b64(&mac(&key, &payload)))
        };
        assert_eq!(code(check(&key, &other, "450802", 999)), "invalid_token");
        // Forged payload with the old MAC; a flipped character; junk.
        let parts: Vec<&str> = t.split('.').collect();
        let forged_payload = b64(&serde_json::to_vec(&Claims {
            dev: "dev-2".into(),
            dist: "450802".into(),
            aud: AUDIENCE.into(),
            exp: 1_000,
        })
        .expect("json"));
        let forged = format!("v1.{forged_payload}.{}", parts[2]);
        assert_eq!(code(check(&key, &forged, "450802", 999)), "invalid_token");
        let mut flipped = t.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("utf8");
        assert_eq!(code(check(&key, &flipped, "450802", 999)), "invalid_token");
        for junk in ["", "v1", "v1..", "v2.a.b", "v1.a.b.c", "Bearer x"] {
            assert_eq!(
                code(check(&key, junk, "450802", 999)),
                "invalid_token",
                "{junk:?}"
            );
        }
    }
}
