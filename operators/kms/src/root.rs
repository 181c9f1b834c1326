//! The root key: key material is stored only wrapped by it. The root key comes from a Secret
//! created at install (this type); an HSM over PKCS#11 is the other planned source, behind the
//! same two operations.

use uuid::Uuid;

use crate::blob::{NONCE_LEN, TAG_LEN};
use crate::cipher::Material;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::Rng;

/// Format byte of wrapped material.
const WRAP_V1: u8 = 1;

/// Unwrapping failed: another root key, or edited data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("wrapped key material does not open with this root key")]
pub struct UnwrapError;

/// A root key held in memory (from the install-time Secret).
pub struct RootKey {
    material: Material,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(..)")
    }
}

fn aad(key_id: Uuid, version: u32) -> Vec<u8> {
    let mut aad = b"agility-kms-root-v1".to_vec();
    aad.extend_from_slice(key_id.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

impl RootKey {
    /// A root key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Material::from_bytes(bytes).map(|material| RootKey { material })
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.material.expose().into())
    }

    /// Wraps one key version's material; the key id and version are bound in, so wrapped
    /// material cannot be moved to another key or version.
    pub fn wrap(&self, key_id: Uuid, version: u32, material: &Material) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: material.expose(),
                    aad: &aad(key_id, version),
                },
            )
            .unwrap_or_default();
        let mut out = vec![WRAP_V1];
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Unwraps material wrapped by [`RootKey::wrap`].
    pub fn unwrap(
        &self,
        key_id: Uuid,
        version: u32,
        wrapped: &[u8],
    ) -> Result<Material, UnwrapError> {
        if wrapped.len() != 1 + NONCE_LEN + 32 + TAG_LEN || wrapped[0] != WRAP_V1 {
            return Err(UnwrapError);
        }
        let nonce = Nonce::from_slice(&wrapped[1..1 + NONCE_LEN]);
        let plain = self
            .cipher()
            .decrypt(
                nonce,
                Payload {
                    msg: &wrapped[1 + NONCE_LEN..],
                    aad: &aad(key_id, version),
                },
            )
            .map(zeroize::Zeroizing::new)
            .map_err(|_| UnwrapError)?;
        Material::from_bytes(&plain).ok_or(UnwrapError)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_unwraps_bound_to_key_and_version() {
        let root = RootKey::from_bytes(&[7; 32]).unwrap();
        let m = Material::generate();
        let id = Uuid::new_v4();
        let w = root.wrap(id, 2, &m);
        assert_ne!(
            &w[1 + NONCE_LEN..1 + NONCE_LEN + 32],
            m.expose(),
            "stored wrapped, never plain"
        );
        assert_eq!(root.unwrap(id, 2, &w).unwrap().expose(), m.expose());
        assert_eq!(root.unwrap(id, 3, &w).unwrap_err(), UnwrapError);
        assert_eq!(root.unwrap(Uuid::new_v4(), 2, &w).unwrap_err(), UnwrapError);
        let other = RootKey::from_bytes(&[8; 32]).unwrap();
        assert_eq!(other.unwrap(id, 2, &w).unwrap_err(), UnwrapError);
        assert!(RootKey::from_bytes(&[1; 16]).is_none());
    }
}
