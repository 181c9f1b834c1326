//! The AWS-KMS-compatible JSON API (`X-Amz-Target: TrentService.<Op>`, JSON 1.1 bodies with
//! base64 blobs): request parsing, authorisation per key, the cryptography through the
//! [`Keyring`], and the response in AWS's shapes. Pure: management operations come back as a
//! [`Mutation`] that the server writes to the `Cmk` object, the single source of truth.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::authz::{Grant, Operation};
use crate::crd::KeyState;
use crate::error::KmsError;
use crate::keyring::{Decrypted, KeyRecord, Keyring, alias_arn};

/// The only algorithm of symmetric keys, by its AWS name.
const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";

/// A change of key state to write to the key's `Cmk` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// `spec.enabled`.
    SetEnabled(bool),
    /// Schedule the destruction of the material after `window_days`.
    ScheduleDeletion {
        /// Pending window (7–30).
        window_days: u32,
    },
    /// Cancel a scheduled deletion (the key returns Disabled, as in AWS).
    CancelDeletion,
}

/// A state change of one key, for the server to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The `Cmk`'s namespace.
    pub namespace: String,
    /// The `Cmk`'s name.
    pub name: String,
    /// The key.
    pub key_id: uuid::Uuid,
    /// What changes.
    pub mutation: Mutation,
}

impl Change {
    fn of(key: &KeyRecord, mutation: Mutation) -> Self {
        Change {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            key_id: key.key_id,
            mutation,
        }
    }
}

/// What one request did, for the response, the audit line and the server.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The JSON response body.
    pub body: Value,
    /// The key used (ARN), when the operation named one.
    pub key: Option<String>,
    /// The key version used, for cryptographic operations.
    pub version: Option<u32>,
    /// A state change to write, for management operations.
    pub mutation: Option<Change>,
}

impl Reply {
    fn new(body: Value, key: Option<&KeyRecord>, version: Option<u32>) -> Self {
        Reply {
            body,
            key: key.map(|k| k.arn.clone()),
            version,
            mutation: None,
        }
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, KmsError> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| KmsError::Serialization(format!("bad request body: {e}")))
}

fn b64(field: &str, v: &str) -> Result<Vec<u8>, KmsError> {
    B64.decode(v)
        .map_err(|_| KmsError::Serialization(format!("{field} is not base64")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyOnly {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptReq {
    key_id: String,
    plaintext: String,
    #[serde(default)]
    encryption_context: BTreeMap<String, String>,
    #[serde(default)]
    encryption_algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptReq {
    ciphertext_blob: String,
    #[serde(default)]
    encryption_context: BTreeMap<String, String>,
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    encryption_algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReEncryptReq {
    ciphertext_blob: String,
    #[serde(default)]
    source_encryption_context: BTreeMap<String, String>,
    #[serde(default)]
    source_key_id: Option<String>,
    destination_key_id: String,
    #[serde(default)]
    destination_encryption_context: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DataKeyReq {
    key_id: String,
    #[serde(default)]
    key_spec: Option<String>,
    #[serde(default)]
    number_of_bytes: Option<usize>,
    #[serde(default)]
    encryption_context: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListReq {
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleReq {
    key_id: String,
    #[serde(default)]
    pending_window_in_days: Option<u32>,
}

fn check_algorithm(a: Option<&str>) -> Result<(), KmsError> {
    match a {
        None | Some(SYMMETRIC_DEFAULT) => Ok(()),
        Some(other) => Err(KmsError::Validation(format!(
            "EncryptionAlgorithm {other} is not supported by symmetric keys"
        ))),
    }
}

/// Resolves and authorises the key a request names.
fn key_for(
    ring: &Keyring,
    grant: &Grant,
    op: Operation,
    key_ref: &str,
) -> Result<std::sync::Arc<KeyRecord>, KmsError> {
    let key = ring.resolve(key_ref, grant.home_namespace())?;
    grant.check(op, &key)?;
    Ok(key)
}

fn metadata(k: &KeyRecord) -> Value {
    let mut m = json!({
        "AWSAccountId": k.namespace,
        "KeyId": k.key_id.to_string(),
        "Arn": k.arn,
        "CreationDate": k.created,
        "Enabled": k.state == KeyState::Enabled,
        "Description": k.description,
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": match k.state {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        },
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": SYMMETRIC_DEFAULT,
        "KeySpec": SYMMETRIC_DEFAULT,
        "EncryptionAlgorithms": [SYMMETRIC_DEFAULT],
        "MultiRegion": false,
    });
    if let Some(d) = k.deletion {
        m["DeletionDate"] = json!(d);
    }
    m
}

/// Pages of `items` after `marker` (the last item of the previous page).
fn page<T: Clone>(
    items: &[(String, T)],
    limit: Option<usize>,
    marker: Option<&str>,
) -> Result<(Vec<T>, Option<String>), KmsError> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(KmsError::Validation(
            "Limit must be between 1 and 1000".into(),
        ));
    }
    let start = match marker {
        None => 0,
        Some(m) => items
            .iter()
            .position(|(k, _)| k.as_str() > m)
            .unwrap_or(items.len()),
    };
    let rest = &items[start..];
    let taken: Vec<T> = rest.iter().take(limit).map(|(_, v)| v.clone()).collect();
    let next = (rest.len() > limit).then(|| rest[limit - 1].0.clone());
    Ok((taken, next))
}

fn listing(field: &str, (items, next): (Vec<Value>, Option<String>)) -> Value {
    let mut v = json!({ field: items, "Truncated": next.is_some() });
    if let Some(n) = next {
        v["NextMarker"] = json!(n);
    }
    v
}

/// Handles one request of `grant` (already authenticated). `now` is seconds since the epoch.
pub fn handle(
    op: Operation,
    body: &[u8],
    grant: &Grant,
    ring: &Keyring,
    now: i64,
) -> Result<Reply, KmsError> {
    if !grant.allows(op) {
        return Err(KmsError::AccessDenied(format!(
            "{} is not authorized to perform: kms:{}",
            grant.principal,
            op.name()
        )));
    }
    match op {
        Operation::Encrypt => {
            let r: EncryptReq = parse(body)?;
            check_algorithm(r.encryption_algorithm.as_deref())?;
            let key = key_for(ring, grant, op, &r.key_id)?;
            let plaintext = zeroize::Zeroizing::new(b64("Plaintext", &r.plaintext)?);
            let blob = ring.encrypt(&key, &plaintext, &r.encryption_context)?;
            Ok(Reply::new(
                json!({"CiphertextBlob": B64.encode(blob), "KeyId": key.arn, "EncryptionAlgorithm": SYMMETRIC_DEFAULT}),
                Some(&key),
                Some(key.current_version),
            ))
        }
        Operation::Decrypt => {
            let r: DecryptReq = parse(body)?;
            check_algorithm(r.encryption_algorithm.as_deref())?;
            let expected = match &r.key_id {
                Some(k) => Some(key_for(ring, grant, op, k)?),
                None => None,
            };
            let blob = b64("CiphertextBlob", &r.ciphertext_blob)?;
            let d = decrypt_authorised(
                ring,
                grant,
                op,
                &blob,
                &r.encryption_context,
                expected.as_deref(),
            )?;
            Ok(Reply::new(
                json!({"KeyId": d.key.arn, "Plaintext": B64.encode(d.plaintext.as_slice()), "EncryptionAlgorithm": SYMMETRIC_DEFAULT}),
                Some(&d.key),
                Some(d.version),
            ))
        }
        Operation::ReEncrypt => {
            let r: ReEncryptReq = parse(body)?;
            let expected = match &r.source_key_id {
                Some(k) => Some(key_for(ring, grant, Operation::Decrypt, k)?),
                None => None,
            };
            let blob = b64("CiphertextBlob", &r.ciphertext_blob)?;
            let source = decrypt_authorised(
                ring,
                grant,
                op,
                &blob,
                &r.source_encryption_context,
                expected.as_deref(),
            )?;
            let dest = key_for(ring, grant, op, &r.destination_key_id)?;
            let out = ring.encrypt(&dest, &source.plaintext, &r.destination_encryption_context)?;
            Ok(Reply::new(
                json!({
                    "CiphertextBlob": B64.encode(out),
                    "SourceKeyId": source.key.arn,
                    "KeyId": dest.arn,
                    "SourceEncryptionAlgorithm": SYMMETRIC_DEFAULT,
                    "DestinationEncryptionAlgorithm": SYMMETRIC_DEFAULT,
                }),
                Some(&dest),
                Some(dest.current_version),
            ))
        }
        Operation::GenerateDataKey | Operation::GenerateDataKeyWithoutPlaintext => {
            let r: DataKeyReq = parse(body)?;
            let bytes = match (r.key_spec.as_deref(), r.number_of_bytes) {
                (Some("AES_256"), None) => 32,
                (Some("AES_128"), None) => 16,
                (None, Some(n)) => n,
                (Some(s), None) => {
                    return Err(KmsError::Validation(format!(
                        "KeySpec {s} is not AES_256 or AES_128"
                    )));
                }
                (None, None) => {
                    return Err(KmsError::Validation(
                        "Please specify either number of bytes or key spec.".into(),
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(KmsError::Validation(
                        "Please specify either number of bytes or key spec, not both.".into(),
                    ));
                }
            };
            let key = key_for(ring, grant, op, &r.key_id)?;
            let dk = ring.generate_data_key(&key, bytes, &r.encryption_context)?;
            let mut body = json!({"CiphertextBlob": B64.encode(&dk.ciphertext), "KeyId": key.arn});
            if op == Operation::GenerateDataKey {
                body["Plaintext"] = json!(B64.encode(dk.plaintext.as_slice()));
            }
            Ok(Reply::new(body, Some(&key), Some(key.current_version)))
        }
        Operation::DescribeKey => {
            let r: KeyOnly = parse(body)?;
            let key = key_for(ring, grant, op, &r.key_id)?;
            Ok(Reply::new(
                json!({"KeyMetadata": metadata(&key)}),
                Some(&key),
                None,
            ))
        }
        Operation::ListKeys => {
            let r: ListReq = parse(body)?;
            let items: Vec<(String, Value)> = ring
                .keys()
                .into_iter()
                .filter(|k| grant.sees(k))
                .map(|k| {
                    (
                        k.key_id.to_string(),
                        json!({"KeyId": k.key_id.to_string(), "KeyArn": k.arn}),
                    )
                })
                .collect();
            Ok(Reply::new(
                listing("Keys", page(&items, r.limit, r.marker.as_deref())?),
                None,
                None,
            ))
        }
        Operation::ListAliases => {
            let r: ListReq = parse(body)?;
            let only = match &r.key_id {
                Some(k) => Some(key_for(ring, grant, op, k)?.key_id),
                None => None,
            };
            let mut items: Vec<(String, Value)> = ring
                .keys()
                .into_iter()
                .filter(|k| grant.sees(k) && only.is_none_or(|id| id == k.key_id))
                .flat_map(|k| {
                    k.aliases
                        .iter()
                        .map(|a| {
                            (
                                format!("{}/{a}", k.namespace),
                                json!({"AliasName": a, "AliasArn": alias_arn(&k.namespace, a), "TargetKeyId": k.key_id.to_string()}),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Reply::new(
                listing("Aliases", page(&items, r.limit, r.marker.as_deref())?),
                None,
                None,
            ))
        }
        Operation::GetKeyRotationStatus => {
            let r: KeyOnly = parse(body)?;
            let key = key_for(ring, grant, op, &r.key_id)?;
            let mut body = json!({"KeyRotationEnabled": key.rotation_enabled, "KeyId": key.arn});
            if let Some(p) = key.rotation_period_days {
                body["RotationPeriodInDays"] = json!(p);
            }
            Ok(Reply::new(body, Some(&key), None))
        }
        Operation::EnableKey | Operation::DisableKey => {
            let r: KeyOnly = parse(body)?;
            let key = key_for(ring, grant, op, &r.key_id)?;
            if key.state == KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!(
                    "{} is pending deletion.",
                    key.arn
                )));
            }
            let mut reply = Reply::new(json!({}), Some(&key), None);
            reply.mutation = Some(Change::of(
                &key,
                Mutation::SetEnabled(op == Operation::EnableKey),
            ));
            Ok(reply)
        }
        Operation::ScheduleKeyDeletion => {
            let r: ScheduleReq = parse(body)?;
            let window = r.pending_window_in_days.unwrap_or(30);
            if !(7..=30).contains(&window) {
                return Err(KmsError::Validation(
                    "PendingWindowInDays must be between 7 and 30".into(),
                ));
            }
            let key = key_for(ring, grant, op, &r.key_id)?;
            if key.state == KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!(
                    "{} is pending deletion.",
                    key.arn
                )));
            }
            let deletion = now + i64::from(window) * 86_400;
            let mut reply = Reply::new(
                json!({"KeyId": key.arn, "DeletionDate": deletion, "KeyState": "PendingDeletion", "PendingWindowInDays": window}),
                Some(&key),
                None,
            );
            reply.mutation = Some(Change::of(
                &key,
                Mutation::ScheduleDeletion {
                    window_days: window,
                },
            ));
            Ok(reply)
        }
        Operation::CancelKeyDeletion => {
            let r: KeyOnly = parse(body)?;
            let key = key_for(ring, grant, op, &r.key_id)?;
            if key.state != KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!(
                    "{} is not pending deletion.",
                    key.arn
                )));
            }
            let mut reply = Reply::new(json!({"KeyId": key.arn}), Some(&key), None);
            reply.mutation = Some(Change::of(&key, Mutation::CancelDeletion));
            Ok(reply)
        }
    }
}

/// Decrypts after checking that the caller may decrypt with the blob's key.
fn decrypt_authorised(
    ring: &Keyring,
    grant: &Grant,
    op: Operation,
    blob: &[u8],
    context: &BTreeMap<String, String>,
    expected: Option<&KeyRecord>,
) -> Result<Decrypted, KmsError> {
    let owner = crate::blob::Blob::parse(blob)
        .ok()
        .and_then(|b| ring.get(b.key_id))
        .ok_or(KmsError::InvalidCiphertext)?;
    // Authorisation before any decryption: no oracle on keys the caller may not use.
    grant.check(op, &owner).map_err(|e| match e {
        KmsError::NotFound(_) => KmsError::InvalidCiphertext,
        other => other,
    })?;
    ring.decrypt(blob, context, expected)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::keyring::fixtures::record;

    fn grant(ns: &str, ops: Option<&[Operation]>) -> Grant {
        Grant {
            principal: format!("{ns}/app"),
            namespaces: [ns.to_owned()].into(),
            keys: None,
            operations: ops.map(|o| o.iter().copied().collect()),
        }
    }

    fn call(op: Operation, body: Value, g: &Grant, ring: &Keyring) -> Result<Reply, KmsError> {
        handle(op, body.to_string().as_bytes(), g, ring, 1_780_000_000)
    }

    #[test]
    fn encrypt_then_decrypt_by_alias_with_context() {
        let k = record("shop", "alias/orders");
        let ring = Keyring::new([k.clone()]);
        let g = grant("shop", None);
        let enc = call(
            Operation::Encrypt,
            json!({"KeyId": "alias/orders", "Plaintext": B64.encode(b"hello"), "EncryptionContext": {"order": "42"}}),
            &g,
            &ring,
        )
        .unwrap();
        assert_eq!(enc.body["KeyId"], k.arn);
        assert_eq!(enc.version, Some(1));
        let blob = enc.body["CiphertextBlob"].as_str().unwrap();
        let dec = call(
            Operation::Decrypt,
            json!({"CiphertextBlob": blob, "EncryptionContext": {"order": "42"}}),
            &g,
            &ring,
        )
        .unwrap();
        assert_eq!(
            B64.decode(dec.body["Plaintext"].as_str().unwrap()).unwrap(),
            b"hello"
        );
        let wrong = call(
            Operation::Decrypt,
            json!({"CiphertextBlob": blob}),
            &g,
            &ring,
        );
        assert_eq!(wrong.unwrap_err().code(), "InvalidCiphertextException");
    }

    #[test]
    fn another_namespace_cannot_use_or_see_the_key() {
        let k = record("shop", "alias/orders");
        let ring = Keyring::new([k.clone()]);
        let blob = call(
            Operation::Encrypt,
            json!({"KeyId": k.key_id.to_string(), "Plaintext": B64.encode(b"x")}),
            &grant("shop", None),
            &ring,
        )
        .unwrap()
        .body["CiphertextBlob"]
            .clone();
        let intruder = grant("other", None);
        let e = call(
            Operation::Encrypt,
            json!({"KeyId": k.key_id.to_string(), "Plaintext": B64.encode(b"x")}),
            &intruder,
            &ring,
        );
        assert_eq!(e.unwrap_err().code(), "NotFoundException");
        let d = call(
            Operation::Decrypt,
            json!({"CiphertextBlob": blob}),
            &intruder,
            &ring,
        );
        assert_eq!(d.unwrap_err().code(), "InvalidCiphertextException");
        let list = call(Operation::ListKeys, json!({}), &intruder, &ring).unwrap();
        assert_eq!(list.body["Keys"], json!([]));
    }

    #[test]
    fn data_keys_and_the_plaintext_free_variant() {
        let k = record("shop", "alias/orders");
        let ring = Keyring::new([k]);
        let g = grant("shop", None);
        let dk = call(
            Operation::GenerateDataKey,
            json!({"KeyId": "alias/orders", "KeySpec": "AES_256"}),
            &g,
            &ring,
        )
        .unwrap();
        let plain = B64.decode(dk.body["Plaintext"].as_str().unwrap()).unwrap();
        assert_eq!(plain.len(), 32);
        let back = call(
            Operation::Decrypt,
            json!({"CiphertextBlob": dk.body["CiphertextBlob"]}),
            &g,
            &ring,
        )
        .unwrap();
        assert_eq!(
            B64.decode(back.body["Plaintext"].as_str().unwrap())
                .unwrap(),
            plain
        );
        let np = call(
            Operation::GenerateDataKeyWithoutPlaintext,
            json!({"KeyId": "alias/orders", "NumberOfBytes": 16}),
            &g,
            &ring,
        )
        .unwrap();
        assert!(np.body.get("Plaintext").is_none());
        let bad = call(
            Operation::GenerateDataKey,
            json!({"KeyId": "alias/orders"}),
            &g,
            &ring,
        );
        assert_eq!(bad.unwrap_err().code(), "ValidationException");
    }

    #[test]
    fn reencrypt_moves_data_between_keys() {
        let a = record("shop", "alias/a");
        let b = record("shop", "alias/b");
        let ring = Keyring::new([a.clone(), b.clone()]);
        let g = grant(
            "shop",
            Some(&[Operation::Encrypt, Operation::Decrypt, Operation::ReEncrypt]),
        );
        let blob = call(
            Operation::Encrypt,
            json!({"KeyId": "alias/a", "Plaintext": B64.encode(b"moved")}),
            &g,
            &ring,
        )
        .unwrap()
        .body["CiphertextBlob"]
            .clone();
        let re = call(
            Operation::ReEncrypt,
            json!({"CiphertextBlob": blob, "DestinationKeyId": "alias/b", "DestinationEncryptionContext": {"v": "2"}}),
            &g,
            &ring,
        )
        .unwrap();
        assert_eq!(re.body["SourceKeyId"], a.arn);
        assert_eq!(re.body["KeyId"], b.arn);
        let dec = call(
            Operation::Decrypt,
            json!({"CiphertextBlob": re.body["CiphertextBlob"], "EncryptionContext": {"v": "2"}}),
            &g,
            &ring,
        )
        .unwrap();
        assert_eq!(dec.body["KeyId"], b.arn);
    }

    #[test]
    fn management_calls_become_mutations_of_the_cmk() {
        let k = record("shop", "alias/orders");
        let ring = Keyring::new([k.clone()]);
        let admin = grant("shop", Some(&Operation::ALL));
        let r = call(
            Operation::DisableKey,
            json!({"KeyId": "alias/orders"}),
            &admin,
            &ring,
        )
        .unwrap();
        let m = r.mutation.unwrap();
        assert_eq!(
            (m.namespace.as_str(), m.name.as_str(), m.key_id),
            ("shop", "orders", k.key_id)
        );
        assert_eq!(m.mutation, Mutation::SetEnabled(false));
        let s = call(
            Operation::ScheduleKeyDeletion,
            json!({"KeyId": "alias/orders", "PendingWindowInDays": 7}),
            &admin,
            &ring,
        )
        .unwrap();
        assert_eq!(s.body["DeletionDate"], json!(1_780_000_000 + 7 * 86_400));
        assert_eq!(
            s.mutation.unwrap().mutation,
            Mutation::ScheduleDeletion { window_days: 7 }
        );
        let short = call(
            Operation::ScheduleKeyDeletion,
            json!({"KeyId": "alias/orders", "PendingWindowInDays": 6}),
            &admin,
            &ring,
        );
        assert_eq!(short.unwrap_err().code(), "ValidationException");
        let cancel = call(
            Operation::CancelKeyDeletion,
            json!({"KeyId": "alias/orders"}),
            &admin,
            &ring,
        );
        assert_eq!(cancel.unwrap_err().code(), "KMSInvalidStateException");
        let user = grant("shop", None);
        let denied = call(
            Operation::DisableKey,
            json!({"KeyId": "alias/orders"}),
            &user,
            &ring,
        );
        assert_eq!(denied.unwrap_err().code(), "AccessDeniedException");
    }

    #[test]
    fn describe_and_rotation_status_use_aws_shapes() {
        let mut k = record("shop", "alias/orders");
        k.rotation_enabled = true;
        k.rotation_period_days = Some(90);
        let ring = Keyring::new([k.clone()]);
        let g = grant("shop", None);
        let d = call(Operation::DescribeKey, json!({"KeyId": k.arn}), &g, &ring).unwrap();
        let m = &d.body["KeyMetadata"];
        assert_eq!(m["KeyId"], k.key_id.to_string());
        assert_eq!(m["KeyState"], "Enabled");
        assert_eq!(m["KeyUsage"], "ENCRYPT_DECRYPT");
        let r = call(
            Operation::GetKeyRotationStatus,
            json!({"KeyId": "alias/orders"}),
            &g,
            &ring,
        )
        .unwrap();
        assert_eq!(r.body["KeyRotationEnabled"], true);
        assert_eq!(r.body["RotationPeriodInDays"], 90);
        let aliases = call(Operation::ListAliases, json!({}), &g, &ring).unwrap();
        assert_eq!(aliases.body["Aliases"][0]["AliasName"], "alias/orders");
        assert_eq!(
            call(Operation::DescribeKey, json!({"Key": 1}), &g, &ring)
                .unwrap_err()
                .code(),
            "SerializationException"
        );
    }

    #[test]
    fn listing_pages_with_markers() {
        let ring = Keyring::new((0..5).map(|i| record("shop", &format!("alias/k{i}"))));
        let g = grant("shop", None);
        let first = call(Operation::ListKeys, json!({"Limit": 2}), &g, &ring).unwrap();
        assert_eq!(first.body["Truncated"], true);
        let mut seen: Vec<Value> = first.body["Keys"].as_array().unwrap().clone();
        let mut marker = first.body["NextMarker"].clone();
        while marker.is_string() {
            let next = call(
                Operation::ListKeys,
                json!({"Limit": 2, "Marker": marker}),
                &g,
                &ring,
            )
            .unwrap();
            seen.extend(next.body["Keys"].as_array().unwrap().iter().cloned());
            marker = next.body.get("NextMarker").cloned().unwrap_or(Value::Null);
        }
        assert_eq!(seen.len(), 5);
    }
}
