//! The root key: key material is stored only wrapped by it. It is either held in memory (from
//! the Secret created at install) or an AES key inside an HSM reached over PKCS#11, which never
//! leaves it (wrapping and unwrapping run in the HSM, AES-256-GCM). Same two operations, same
//! binding of key id and version as associated data.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::Rng;
use uuid::Uuid;

use crate::blob::{NONCE_LEN, TAG_LEN};
use crate::cipher::Material;

/// Format byte of material wrapped by an in-memory root key.
const WRAP_V1: u8 = 1;
/// Format byte of material wrapped inside a PKCS#11 token.
const WRAP_PKCS11_V1: u8 = 2;

/// Unwrapping failed: another root key, or edited data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("wrapped key material does not open with this root key")]
pub struct UnwrapError;

/// Wrapping failed (only an HSM can fail to wrap).
#[derive(Debug, thiserror::Error)]
#[error("wrapping key material: {0}")]
pub struct WrapError(String);

/// The root key.
pub struct RootKey {
    inner: Inner,
}

enum Inner {
    Memory(Material),
    Hsm(crate::pkcs11::HsmKey),
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.inner {
            Inner::Memory(_) => "RootKey(memory)",
            Inner::Hsm(_) => "RootKey(pkcs11)",
        })
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
        Material::from_bytes(bytes).map(|material| RootKey {
            inner: Inner::Memory(material),
        })
    }

    /// A root key inside an HSM.
    pub fn hsm(key: crate::pkcs11::HsmKey) -> Self {
        RootKey {
            inner: Inner::Hsm(key),
        }
    }

    /// Wraps one key version's material; the key id and version are bound in, so wrapped
    /// material cannot be moved to another key or version.
    pub fn wrap(
        &self,
        key_id: Uuid,
        version: u32,
        material: &Material,
    ) -> Result<Vec<u8>, WrapError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = aad(key_id, version);
        let (format, sealed) = match &self.inner {
            Inner::Memory(root) => {
                let sealed = Aes256Gcm::new(root.expose().into())
                    .encrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: material.expose(),
                            aad: &aad,
                        },
                    )
                    .map_err(|_| WrapError("AES-GCM".into()))?;
                (WRAP_V1, sealed)
            }
            Inner::Hsm(hsm) => (
                WRAP_PKCS11_V1,
                hsm.seal(&mut nonce, &aad, material.expose())
                    .map_err(WrapError)?,
            ),
        };
        let mut out = vec![format];
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Unwraps material wrapped by [`RootKey::wrap`] with this root key.
    pub fn unwrap(
        &self,
        key_id: Uuid,
        version: u32,
        wrapped: &[u8],
    ) -> Result<Material, UnwrapError> {
        if wrapped.len() != 1 + NONCE_LEN + 32 + TAG_LEN {
            return Err(UnwrapError);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&wrapped[1..1 + NONCE_LEN]);
        let sealed = &wrapped[1 + NONCE_LEN..];
        let aad = aad(key_id, version);
        let plain = match (&self.inner, wrapped[0]) {
            (Inner::Memory(root), WRAP_V1) => Aes256Gcm::new(root.expose().into())
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .map_err(|_| UnwrapError)?,
            (Inner::Hsm(hsm), WRAP_PKCS11_V1) => hsm
                .open(&mut nonce, &aad, sealed)
                .map_err(|_| UnwrapError)?,
            _ => return Err(UnwrapError),
        };
        let plain = zeroize::Zeroizing::new(plain);
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
        let w = root.wrap(id, 2, &m).unwrap();
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
