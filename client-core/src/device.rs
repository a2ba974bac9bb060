//! The phone's device key: a P-256 key pair made on the phone at enrollment, whose public half the
//! district server binds to the device. The phone proves it holds the key by signing the server's
//! challenges; nothing on the phone is a long-lived bearer secret.
//!
//! P-256 rather than Ed25519: it is the curve the iOS Secure Enclave and Android StrongBox sign
//! with, so an app can later keep the key in secure hardware and sign through the FFI with the same
//! verification on the server. Signatures are ECDSA over SHA-256, deterministic (RFC 6979), 64
//! bytes; public keys travel as 33-byte compressed SEC1 points. Every signed message starts with a
//! purpose label, so a signature made for one purpose is never valid for another.

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

use automerge::ActorId;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::error::{Error, Result};
use crate::ids::{DeviceId, DocId};
use crate::store::DocStore;

/// Purpose label of an enrollment signature.
pub const ENROLL_PURPOSE: &[u8] = b"songpei/v1/enroll\0";
/// Purpose label of a token request's signature.
pub const TOKEN_PURPOSE: &[u8] = b"songpei/v1/token\0";

/// A device's signing key.
#[derive(Clone)]
pub struct DeviceKey(SigningKey);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DeviceKey").field(&"…").finish()
    }
}

impl DeviceKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Self {
        loop {
            // Almost every 32-byte string is a valid scalar; the loop ends at once in practice.
            if let Ok(k) = SigningKey::from_bytes(&rand::random::<[u8; 32]>().into()) {
                return Self(k);
            }
        }
    }

    /// The key from its 32-byte secret scalar.
    pub fn from_secret(bytes: &[u8]) -> Option<Self> {
        SigningKey::from_slice(bytes).ok().map(Self)
    }

    /// The 32-byte secret scalar, for the encrypted store.
    pub fn secret(&self) -> [u8; 32] {
        self.0.to_bytes().into()
    }

    /// The public key, compressed SEC1 (33 bytes).
    pub fn public_key(&self) -> Vec<u8> {
        self.0
            .verifying_key()
            .to_encoded_point(true)
            .as_bytes()
            .to_vec()
    }

    /// Signs `purpose ‖ parts…`, each part prefixed by its length.
    pub fn sign(&self, purpose: &[u8], parts: &[&[u8]]) -> [u8; 64] {
        let sig: Signature = self.0.sign(&signed_message(purpose, parts));
        sig.to_bytes().into()
    }
}

fn signed_message(purpose: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut msg = purpose.to_vec();
    for p in parts {
        msg.extend_from_slice(&(p.len() as u32).to_be_bytes());
        msg.extend_from_slice(p);
    }
    msg
}

/// Checks that a 33-byte compressed public key is a point on the curve.
pub fn valid_public_key(public_key: &[u8]) -> bool {
    VerifyingKey::from_sec1_bytes(public_key).is_ok()
}

/// Verifies a signature made by [`DeviceKey::sign`].
pub fn verify(public_key: &[u8], purpose: &[u8], parts: &[&[u8]], signature: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_sec1_bytes(public_key) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(signature) else {
        return false;
    };
    key.verify(&signed_message(purpose, parts), &sig).is_ok()
}

/// Where the phone keeps its device id, its automerge actor and its device key.
pub(crate) const META_DEVICE: &str = "device_id";
pub(crate) const META_ACTOR: &str = "actor_id";
const META_KEY: &str = "device_key";

fn corrupt(key: &str) -> Error {
    Error::Schema {
        doc: DocId::from(crate::ids::ClassId::from(uuid::Uuid::nil())),
        path: format!("meta.{key}"),
    }
}

/// Encodes bytes as the messages do.
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decodes bytes as the messages carry them.
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    B64.decode(text).ok()
}

/// The phone's device id and actor, made and stored on first use.
pub(crate) fn identity<S: DocStore>(store: &mut S) -> Result<(DeviceId, ActorId)> {
    match (store.meta(META_DEVICE)?, store.meta(META_ACTOR)?) {
        (Some(d), Some(a)) => Ok((
            d.parse().map_err(|_| corrupt(META_DEVICE))?,
            hex::decode(a)
                .map(ActorId::from)
                .map_err(|_| corrupt(META_ACTOR))?,
        )),
        _ => {
            let device = DeviceId::random();
            let actor = ActorId::random();
            store.set_meta(&[
                (META_DEVICE, &device.to_string()),
                (META_ACTOR, &actor.to_hex_string()),
            ])?;
            Ok((device, actor))
        }
    }
}

pub(crate) fn device_key<S: DocStore>(store: &S) -> Result<Option<DeviceKey>> {
    store
        .meta(META_KEY)?
        .map(|k| {
            hex::decode(k)
                .ok()
                .and_then(|b| DeviceKey::from_secret(&b))
                .ok_or_else(|| corrupt(META_KEY))
        })
        .transpose()
}

/// The device key, made and stored first if the phone has none yet.
pub(crate) fn device_key_or_new<S: DocStore>(store: &mut S) -> Result<DeviceKey> {
    if let Some(k) = device_key(store)? {
        return Ok(k);
    }
    let k = DeviceKey::generate();
    store.set_meta(&[(META_KEY, &hex::encode(k.secret()))])?;
    Ok(k)
}

/// Splits what a coordinator typed or scanned: a bare code, or the enrollment QR's text
/// `songpei-enroll:<server>#<code>`. Returns the server (if the QR named one) and the code.
pub fn parse_enrollment_text(text: &str) -> (Option<String>, String) {
    match text.trim().strip_prefix("songpei-enroll:") {
        Some(rest) => match rest.rsplit_once('#') {
            Some((server, code)) => (Some(server.to_owned()), code.to_owned()),
            None => (None, rest.to_owned()),
        },
        None => (None, text.trim().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_refuses_what_differs() {
        let k = DeviceKey::generate();
        let pk = k.public_key();
        assert_eq!(pk.len(), 33);
        assert!(valid_public_key(&pk));
        let sig = k.sign(TOKEN_PURPOSE, &[b"device", b"challenge"]);
        assert!(verify(&pk, TOKEN_PURPOSE, &[b"device", b"challenge"], &sig));
        // Another purpose, other parts, parts split differently, a flipped bit, another key.
        assert!(!verify(
            &pk,
            ENROLL_PURPOSE,
            &[b"device", b"challenge"],
            &sig
        ));
        assert!(!verify(
            &pk,
            TOKEN_PURPOSE,
            &[b"device", b"challengE"],
            &sig
        ));
        assert!(!verify(
            &pk,
            TOKEN_PURPOSE,
            &[b"devicec", b"hallenge"],
            &sig
        ));
        for i in 0..sig.len() * 8 {
            let mut s = sig;
            s[i / 8] ^= 1 << (i % 8);
            assert!(
                !verify(&pk, TOKEN_PURPOSE, &[b"device", b"challenge"], &s),
                "bit {i}"
            );
        }
        let other = DeviceKey::generate();
        assert!(!verify(
            &other.public_key(),
            TOKEN_PURPOSE,
            &[b"device", b"challenge"],
            &sig
        ));
        // The secret round-trips; garbage is no key.
        let again = DeviceKey::from_secret(&k.secret()).expect("secret");
        assert_eq!(again.public_key(), pk);
        assert!(DeviceKey::from_secret(&[0; 32]).is_none());
        // Not a point: a bad prefix byte, a key cut short, an x with no point on the curve.
        assert!(!valid_public_key(&[9; 33]));
        assert!(!valid_public_key(&pk[..32]));
        assert!(
            (0u8..=255).any(|x| !valid_public_key(&[[2].as_slice(), &[x; 32]].concat())),
            "some x coordinates have no point"
        );
        assert!(!verify(b"short", TOKEN_PURPOSE, &[], &sig));
        assert!(!verify(&pk, TOKEN_PURPOSE, &[], &sig[..63]));
    }
}
