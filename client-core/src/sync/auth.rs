//! Enrollment and access tokens, the phone's side.
//!
//! A district admin gives a coordinator a one-time enrollment code. The phone makes its device key
//! ([`crate::device`]), keeps it in the encrypted store *before* it registers, and sends the public
//! key with its device id and automerge actor, signed, so the server binds all three to the
//! coordinator's account. From then on the phone gets access tokens of at most 15 minutes by signing
//! a challenge the server gave it; each token answer carries the challenge for the next one, so
//! renewing costs one round trip. No long-lived bearer secret is ever on the phone.
//!
//! These messages are JSON: they are rare and small, and a district's tools can read them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::device::{ENROLL_PURPOSE, TOKEN_PURPOSE, device_key, device_key_or_new, identity};
pub use crate::device::{b64, parse_enrollment_text, unb64};
use crate::error::{Error, Result};
use crate::ids::{DistrictCode, DocId, VillageCode};
use crate::phone::{META_DEVICE, META_DISTRICT, META_VILLAGES, Phone};
use crate::store::DocStore;
use crate::validate::{Field, Invalid, Problem};

const META_SERVER: &str = "server_url";
const META_ENROLLED: &str = "enrolled";
const META_CHALLENGE: &str = "auth.challenge";
const META_TOKEN: &str = "auth.token";
const META_TOKEN_UNTIL: &str = "auth.token_until_ms";
/// A token is renewed this long before the server would refuse it.
const TOKEN_MARGIN_MS: i64 = 60_000;

/// `POST /v1/enroll`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollRequest {
    /// The one-time enrollment code, as typed or scanned.
    pub code: String,
    /// The phone's device id.
    pub device: Uuid,
    /// The device's public key, compressed SEC1, base64url.
    pub public_key: String,
    /// The automerge actor of the phone's changes, hex.
    pub actor: String,
    /// Signature over the code, device, public key and actor, base64url.
    pub signature: String,
}

/// The answer to an enrollment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollResponse {
    /// The device id, as registered.
    pub device: Uuid,
    /// District code.
    pub district: String,
    /// District name.
    pub district_name: String,
    /// The account's role.
    pub role: String,
    /// The villages the device may read and write.
    pub villages: Vec<String>,
    /// The first challenge to sign for a token, base64url.
    pub challenge: String,
}

/// `POST /v1/auth/token`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    /// The device.
    pub device: Uuid,
    /// The challenge the server gave, base64url.
    pub challenge: String,
    /// Signature over the device and challenge, base64url.
    pub signature: String,
}

/// An access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// Bearer token for `Authorization`.
    pub token: String,
    /// Seconds it stays valid (at most 900).
    pub expires_in_s: u64,
    /// The challenge to sign for the next token, base64url.
    pub next_challenge: String,
}

/// `POST /v1/auth/challenge`: a fresh challenge when the phone lost its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChallengeRequest {
    /// The device.
    pub device: Uuid,
}

/// A fresh challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChallengeResponse {
    /// The challenge, base64url.
    pub challenge: String,
}

fn corrupt(key: &str) -> Error {
    Error::Schema {
        doc: DocId::from(crate::ids::ClassId::from(Uuid::nil())),
        path: format!("meta.{key}"),
    }
}

/// Builds the enrollment request for `code`. The device key is made and stored first, so a phone
/// that crashes after the server registered it still holds the key the server knows.
pub fn enroll_request<S: DocStore>(store: &mut S, code: &str) -> Result<EnrollRequest> {
    let code = code.trim();
    if code.is_empty() || code.len() > 64 {
        return Err(Invalid::new(Field::EnrollmentCode, Problem::BadFormat).into());
    }
    let (device, actor) = identity(store)?;
    let key = device_key_or_new(store)?;
    let public_key = key.public_key();
    let signature = key.sign(
        ENROLL_PURPOSE,
        &[
            code.as_bytes(),
            device.uuid().as_bytes(),
            &public_key,
            actor.to_bytes(),
        ],
    );
    Ok(EnrollRequest {
        code: code.to_owned(),
        device: device.uuid(),
        public_key: b64(&public_key),
        actor: actor.to_hex_string(),
        signature: b64(&signature),
    })
}

/// Records a successful enrollment: the district, the villages the server granted, the server and
/// the first challenge. Documents of villages the phone covered before and no longer does are
/// removed, unless they hold changes not yet synced.
pub fn finish_enrollment<S: DocStore>(
    store: &mut S,
    server: &str,
    resp: &EnrollResponse,
) -> Result<()> {
    let district = DistrictCode::parse(&resp.district)
        .ok_or(Invalid::new(Field::District, Problem::BadFormat))?;
    let villages = parse_villages(&resp.villages, &district)?;
    let (device, _) = identity(store)?;
    if device.uuid() != resp.device {
        return Err(corrupt(META_DEVICE));
    }
    let before: Vec<VillageCode> = store
        .meta(META_VILLAGES)?
        .map(|v| {
            v.split(',')
                .filter_map(VillageCode::parse)
                .filter(|v| !villages.contains(v))
                .collect()
        })
        .unwrap_or_default();
    let meta: Vec<(String, String)> = [
        (META_DISTRICT, district.as_str().to_owned()),
        (META_VILLAGES, join(&villages)),
        (META_SERVER, server.to_owned()),
        (META_ENROLLED, "1".to_owned()),
        (META_CHALLENGE, resp.challenge.clone()),
        (META_TOKEN, String::new()),
        (META_TOKEN_UNTIL, "0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    store.drop_villages(&before, &meta)?;
    Ok(())
}

fn parse_villages(
    raw: &[String],
    district: &DistrictCode,
) -> Result<std::collections::BTreeSet<VillageCode>> {
    raw.iter()
        .map(|v| {
            VillageCode::parse(v)
                .filter(|v| v.district() == *district)
                .ok_or_else(|| Invalid::new(Field::Village, Problem::BadFormat).into())
        })
        .collect()
}

fn join(villages: &std::collections::BTreeSet<VillageCode>) -> String {
    villages
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

impl<S: DocStore> Phone<S> {
    /// True once the phone has been enrolled with a district server.
    pub fn is_enrolled(&self) -> Result<bool> {
        Ok(self.store.meta(META_ENROLLED)?.as_deref() == Some("1")
            && device_key(&self.store)?.is_some())
    }

    /// The server the phone enrolled with.
    pub fn server_url(&self) -> Result<Option<String>> {
        self.store.meta(META_SERVER)
    }

    /// The access token, if one is held and not about to expire by the phone's clock.
    pub fn access_token(&self) -> Result<Option<String>> {
        let token = self.store.meta(META_TOKEN)?.filter(|t| !t.is_empty());
        let until: i64 = self
            .store
            .meta(META_TOKEN_UNTIL)?
            .and_then(|u| u.parse().ok())
            .unwrap_or(0);
        Ok(token.filter(|_| self.now_ms() < until))
    }

    /// Drops the access token (the server refused it).
    pub fn forget_token(&mut self) -> Result<()> {
        self.store
            .set_meta(&[(META_TOKEN, ""), (META_TOKEN_UNTIL, "0")])
    }

    /// The signed request for a token, or `None` when the phone holds no challenge.
    pub fn token_request(&self) -> Result<Option<TokenRequest>> {
        let Some(key) = device_key(&self.store)? else {
            return Ok(None);
        };
        let Some(challenge) = self.store.meta(META_CHALLENGE)?.filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let raw = unb64(&challenge).ok_or_else(|| corrupt(META_CHALLENGE))?;
        let device = self.profile().device.uuid();
        let signature = key.sign(TOKEN_PURPOSE, &[device.as_bytes(), &raw]);
        Ok(Some(TokenRequest {
            device,
            challenge,
            signature: b64(&signature),
        }))
    }

    /// Keeps a token and the challenge for the next one.
    pub fn accept_token(&mut self, resp: &TokenResponse) -> Result<()> {
        let lifetime_ms = i64::try_from(resp.expires_in_s.min(900)).unwrap_or(0) * 1000;
        let until = self.now_ms() + lifetime_ms - TOKEN_MARGIN_MS;
        self.store.set_meta(&[
            (META_TOKEN, &resp.token),
            (META_TOKEN_UNTIL, &until.to_string()),
            (META_CHALLENGE, &resp.next_challenge),
        ])
    }

    /// Keeps a fresh challenge.
    pub fn accept_challenge(&mut self, resp: &ChallengeResponse) -> Result<()> {
        self.store
            .set_meta(&[(META_CHALLENGE, &resp.challenge), (META_TOKEN, "")])
    }

    /// Applies the scope the server granted: the villages the phone follows from now on.
    /// Documents of villages it no longer covers leave the phone, except those holding changes not
    /// yet synced, which stay for recovery. Returns how many documents left.
    pub(crate) fn apply_scope(&mut self, raw: &[String]) -> Result<usize> {
        let district = self.profile().district.clone();
        let villages = parse_villages(raw, &district)?;
        let dropped: Vec<VillageCode> = self
            .profile()
            .villages
            .iter()
            .filter(|v| !villages.contains(*v))
            .cloned()
            .collect();
        let meta = vec![(META_VILLAGES.to_owned(), join(&villages))];
        let removed = self.store.drop_villages(&dropped, &meta)?;
        for id in &removed {
            self.cache.remove(*id);
        }
        self.set_villages(villages);
        Ok(removed.len())
    }
}

/// Enrolls the phone whose store is `store` with `server`: registers its device key and actor, and
/// records the district and villages granted.
pub fn enroll_with<S: DocStore>(
    store: &mut S,
    transport: &mut dyn super::transport::Transport,
    server: &str,
    code: &str,
) -> std::result::Result<EnrollResponse, super::transport::SyncError> {
    let req = enroll_request(store, code)?;
    let body = serde_json::to_vec(&req).unwrap_or_default();
    let answer = transport.call("/v1/enroll", &body)?;
    let resp: EnrollResponse = serde_json::from_slice(&answer)
        .map_err(|_| super::transport::SyncError::Wire(super::protocol::WireError::Malformed))?;
    finish_enrollment(store, server, &resp)?;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryDocStore;

    #[test]
    fn enrollment_text_is_a_code_or_the_qr_form() {
        assert_eq!(
            parse_enrollment_text(" ABCD-EFGH-JKMN "),
            (None, "ABCD-EFGH-JKMN".to_owned())
        );
        assert_eq!(
            parse_enrollment_text("songpei-enroll:http://10.0.0.2:8080#ABCD-EFGH-JKMN"),
            (
                Some("http://10.0.0.2:8080".to_owned()),
                "ABCD-EFGH-JKMN".to_owned()
            )
        );
    }

    #[test]
    fn the_key_is_kept_before_registering_and_signs_what_the_server_checks() {
        let mut store = MemoryDocStore::new();
        let req = enroll_request(&mut store, "ABCD-EFGH-JKMN").expect("request");
        let again = enroll_request(&mut store, "ABCD-EFGH-JKMN").expect("again");
        assert_eq!(req.public_key, again.public_key, "one key per phone");
        assert_eq!(req.device, again.device);
        let pk = unb64(&req.public_key).expect("b64");
        let actor = hex::decode(&req.actor).expect("hex");
        assert!(crate::device::verify(
            &pk,
            ENROLL_PURPOSE,
            &[b"ABCD-EFGH-JKMN", req.device.as_bytes(), &pk, &actor],
            &unb64(&req.signature).expect("b64"),
        ));
        assert_eq!(
            enroll_request(&mut store, "  ")
                .err()
                .map(|e| e.to_string()),
            Some(Error::from(Invalid::new(Field::EnrollmentCode, Problem::BadFormat)).to_string())
        );
    }
}
