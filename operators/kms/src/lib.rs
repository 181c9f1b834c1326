//! `agility-kms`: the KMS product. [`crd`] (the `Cmk` kind), [`cipher`] and [`blob`] (AES-256-GCM
//! envelope encryption with a versioned ciphertext format), [`root`] (key material wrapped by
//! the root key), [`keyring`] (the keys a replica serves and their state rules), [`sigv4`]
//! (request authentication), [`authz`] (which access key may use which key) and [`api`] (the
//! AWS-KMS-compatible operations). See docs/kms.md.

pub mod api;
pub mod authz;
pub mod blob;
pub mod cipher;
pub mod crd;
pub mod error;
pub mod keyring;
pub mod root;
pub mod service;
pub mod sigv4;
