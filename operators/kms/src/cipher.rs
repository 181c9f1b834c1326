//! AES-256-GCM under a key version: the encryption context is associated data, the nonce comes
//! from the OS CSPRNG for every message (96 bits; a key version should see fewer than 2^32
//! encryptions, which rotation keeps far away), and the blob header is authenticated too.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::Rng;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::blob::{self, Blob, NONCE_LEN};

/// Plaintext size limit of Encrypt (the modelled suite's and AWS's 4 KB).
pub const MAX_PLAINTEXT: usize = 4096;

/// Key material of one key version (256 bits, wiped on drop).
#[derive(Clone)]
pub struct Material(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Material(..)")
    }
}

impl Material {
    /// New material from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(k.as_mut());
        Material(k)
    }

    /// Material from 32 bytes (unwrapped from storage).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Material(Zeroizing::new(arr)))
    }

    /// The raw bytes (only for wrapping).
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.as_ref().into())
    }
}

/// Crypto failures (deliberately vague: no oracle for attackers).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CipherError {
    /// Authentication failed: wrong key, wrong context or tampered data.
    #[error("the ciphertext, key or encryption context is wrong")]
    Invalid,
    /// The blob could not be read.
    #[error(transparent)]
    Blob(#[from] blob::BlobError),
}

/// The encryption context as bytes: pairs sorted by key, each length-prefixed, so that
/// `{"a":"bc"}` and `{"ab":"c"}` differ and map order never matters.
pub fn context_bytes(context: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in context {
        for s in [k, v] {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

fn aad(header: &[u8], context: &BTreeMap<String, String>) -> Vec<u8> {
    let mut aad = b"agility-kms-v1".to_vec();
    aad.extend_from_slice(header);
    aad.extend_from_slice(&context_bytes(context));
    aad
}

/// Encrypts `plaintext` under `material` (key `key_id`, version `version`).
pub fn seal(
    material: &Material,
    key_id: Uuid,
    version: u32,
    plaintext: &[u8],
    context: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let header = blob::header(key_id, version, &nonce);
    let sealed = material
        .cipher()
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad(&header, context),
            },
        )
        // AES-GCM encryption fails only for messages beyond 64 GiB; callers cap at 4 KiB.
        .unwrap_or_default();
    Blob {
        key_id,
        version,
        nonce,
        sealed,
    }
    .to_bytes()
}

/// Decrypts a parsed blob with the material of its key version.
pub fn open(
    material: &Material,
    blob: &Blob,
    context: &BTreeMap<String, String>,
) -> Result<Zeroizing<Vec<u8>>, CipherError> {
    material
        .cipher()
        .decrypt(
            Nonce::from_slice(&blob.nonce),
            Payload {
                msg: &blob.sealed,
                aad: &aad(&blob.header(), context),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CipherError::Invalid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn seals_and_opens_with_the_same_context() {
        let m = Material::generate();
        let id = Uuid::new_v4();
        let c = ctx(&[("tenant", "shop"), ("purpose", "orders")]);
        let bytes = seal(&m, id, 3, b"hello", &c);
        let blob = Blob::parse(&bytes).unwrap();
        assert_eq!((blob.key_id, blob.version), (id, 3));
        assert_eq!(open(&m, &blob, &c).unwrap().as_slice(), b"hello");
    }

    #[test]
    fn wrong_context_key_or_tampering_fails() {
        let m = Material::generate();
        let id = Uuid::new_v4();
        let c = ctx(&[("tenant", "shop")]);
        let bytes = seal(&m, id, 1, b"secret", &c);
        let blob = Blob::parse(&bytes).unwrap();
        assert_eq!(
            open(&m, &blob, &ctx(&[("tenant", "other")])),
            Err(CipherError::Invalid)
        );
        assert_eq!(open(&m, &blob, &ctx(&[])), Err(CipherError::Invalid));
        assert_eq!(
            open(&Material::generate(), &blob, &c),
            Err(CipherError::Invalid)
        );
        let mut edited = bytes.clone();
        edited[20] ^= 1; // the key version in the header
        assert_eq!(
            open(&m, &Blob::parse(&edited).unwrap(), &c),
            Err(CipherError::Invalid)
        );
        let mut flipped = bytes;
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            open(&m, &Blob::parse(&flipped).unwrap(), &c),
            Err(CipherError::Invalid)
        );
    }

    #[test]
    fn context_encoding_is_unambiguous_and_order_free() {
        assert_ne!(
            context_bytes(&ctx(&[("a", "bc")])),
            context_bytes(&ctx(&[("ab", "c")]))
        );
        let one = ctx(&[("x", "1"), ("y", "2")]);
        let two = ctx(&[("y", "2"), ("x", "1")]);
        assert_eq!(context_bytes(&one), context_bytes(&two));
    }

    #[test]
    fn nonces_differ_for_every_message() {
        let m = Material::generate();
        let id = Uuid::new_v4();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let b = Blob::parse(&seal(&m, id, 1, b"x", &BTreeMap::new())).unwrap();
            assert!(seen.insert(b.nonce), "a nonce repeated");
        }
    }
}
