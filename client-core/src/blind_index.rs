//! The blind index: a keyed hash of the normalised ID number, so that a person can be found by ID
//! number without the number being stored in the clear anywhere but their own document.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::validate::{IdNumber, PhoneNumber};

type HmacSha256 = Hmac<Sha256>;

/// Length of an index value in bytes (128 bits: collisions are out of reach for a district).
pub const BLIND_INDEX_LEN: usize = 16;

/// The secret key of a blind index. Its `Debug` hides it.
#[derive(Clone)]
pub struct BlindIndexKey([u8; 32]);

impl std::fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndexKey(…)")
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl BlindIndexKey {
    /// A key from raw bytes.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// The phone's index key, derived from its store key under its own label, so the two keys are
    /// independent yet nothing more has to be kept in the Keystore.
    pub fn derive_from_store_key(store_key: &[u8; 32]) -> Self {
        Self(hmac(store_key, b"songpei/blind-index/v1"))
    }

    /// The index value of an ID number.
    pub fn index(&self, id: &IdNumber) -> [u8; BLIND_INDEX_LEN] {
        let full = hmac(&self.0, id.expose().as_bytes());
        let mut out = [0u8; BLIND_INDEX_LEN];
        out.copy_from_slice(&full[..BLIND_INDEX_LEN]);
        out
    }

    /// The index value of a (normalised) mobile number, apart from ID numbers' by its label: the
    /// server finds one number on file for several people without keeping it in the clear.
    pub fn phone_index(&self, phone: &PhoneNumber) -> [u8; BLIND_INDEX_LEN] {
        let mut data = b"phone:".to_vec();
        data.extend_from_slice(phone.expose().as_bytes());
        let full = hmac(&self.0, &data);
        let mut out = [0u8; BLIND_INDEX_LEN];
        out.copy_from_slice(&full[..BLIND_INDEX_LEN]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_number_same_index_other_key_other_index() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
        let id = IdNumber::parse("11010519491231002X", today).expect("valid");
        let lower = IdNumber::parse("11010519491231002x", today).expect("valid");
        let k1 = BlindIndexKey::derive_from_store_key(&[1; 32]);
        let k2 = BlindIndexKey::derive_from_store_key(&[2; 32]);
        assert_eq!(k1.index(&id), k1.index(&lower));
        assert_ne!(k1.index(&id), k2.index(&id));
        assert_eq!(format!("{k1:?}"), "BlindIndexKey(…)");
        let phone = PhoneNumber::parse("138 0000 1111").expect("valid");
        let same = PhoneNumber::parse("+86 13800001111").expect("valid");
        assert_eq!(k1.phone_index(&phone), k1.phone_index(&same));
        assert_ne!(k1.phone_index(&phone), k2.phone_index(&phone));
    }
}
