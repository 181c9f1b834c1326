//! The ciphertext blob: a versioned, self-describing format that names the key and key version,
//! so that Decrypt needs no KeyId and rotated keys still decrypt old data.
//!
//! ```text
//! offset  size  field
//! 0       1     format version (1)
//! 1       16    key id (UUID bytes)
//! 17      4     key version (big-endian)
//! 21      12    nonce
//! 33      n+16  AES-256-GCM ciphertext and tag
//! ```
//!
//! The 33-byte header is authenticated (part of the associated data, with the encryption
//! context), so a blob whose key id or version was edited does not decrypt.

use uuid::Uuid;

/// The only format so far.
pub const FORMAT_V1: u8 = 1;
/// Header length.
pub const HEADER_LEN: usize = 33;
/// AES-GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;

/// A parsed blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// The key.
    pub key_id: Uuid,
    /// The key version that encrypted it.
    pub version: u32,
    /// The nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the tag.
    pub sealed: Vec<u8>,
}

/// Why bytes are not a blob.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlobError {
    /// Too short to hold a header and a tag.
    #[error("ciphertext too short")]
    TooShort,
    /// A format this server does not know.
    #[error("unknown ciphertext format {0}")]
    UnknownFormat(u8),
}

impl Blob {
    /// The authenticated header.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        header(self.key_id, self.version, &self.nonce)
    }

    /// Serialises the blob.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.sealed.len());
        out.extend_from_slice(&self.header());
        out.extend_from_slice(&self.sealed);
        out
    }

    /// Parses a blob.
    pub fn parse(bytes: &[u8]) -> Result<Blob, BlobError> {
        let Some(&format) = bytes.first() else {
            return Err(BlobError::TooShort);
        };
        if format != FORMAT_V1 {
            return Err(BlobError::UnknownFormat(format));
        }
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(BlobError::TooShort);
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[1..17]);
        let mut version = [0u8; 4];
        version.copy_from_slice(&bytes[17..21]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[21..HEADER_LEN]);
        Ok(Blob {
            key_id: Uuid::from_bytes(id),
            version: u32::from_be_bytes(version),
            nonce,
            sealed: bytes[HEADER_LEN..].to_vec(),
        })
    }
}

/// The header bytes for a key, version and nonce.
pub fn header(key_id: Uuid, version: u32, nonce: &[u8; NONCE_LEN]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = FORMAT_V1;
    h[1..17].copy_from_slice(key_id.as_bytes());
    h[17..21].copy_from_slice(&version.to_be_bytes());
    h[21..HEADER_LEN].copy_from_slice(nonce);
    h
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_key_and_version() {
        let b = Blob {
            key_id: Uuid::from_u128(0x1234),
            version: 7,
            nonce: [9; NONCE_LEN],
            sealed: vec![1; 20],
        };
        let bytes = b.to_bytes();
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(bytes.len(), HEADER_LEN + 20);
        assert_eq!(&bytes[17..21], &[0, 0, 0, 7]);
        assert_eq!(Blob::parse(&bytes).unwrap(), b);
    }

    #[test]
    fn rejects_short_and_unknown_formats() {
        assert_eq!(Blob::parse(&[]), Err(BlobError::TooShort));
        assert_eq!(Blob::parse(&[1; 40]), Err(BlobError::TooShort));
        assert_eq!(Blob::parse(&[2; 60]), Err(BlobError::UnknownFormat(2)));
    }
}
