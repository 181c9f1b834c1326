//! Where a key lives between restarts: one Secret per key in the KMS namespace, written only by
//! the KMS service. It holds the key's identity (key id, the namespace and name of its `Cmk`),
//! its versions with creation dates, the material of each version wrapped by the root key, and
//! a pending deletion date once its `Cmk` is gone. A `Cmk` re-created under the same name while
//! the deletion is pending adopts the key again (so reverting a GitOps deletion brings the same
//! key back). Parsing and building are pure.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crd::KeyVersion;

/// Label of every material Secret (selects them for the watch).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Its value.
pub const COMPONENT_MATERIAL: &str = "kms-key-material";
/// Label with the key id.
pub const KEY_ID_LABEL: &str = "kms.agility.dev/key-id";
/// Annotation: the record (identity, versions, dates) as JSON.
pub const RECORD_ANNOTATION: &str = "kms.agility.dev/record";

/// The Secret name of a key.
pub fn secret_name(key_id: Uuid) -> String {
    format!("kms-key-{key_id}")
}

/// A key's persistent record (the Secret's annotation; the material is in the data).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyIdentity {
    /// The key id.
    pub key_id: Uuid,
    /// The namespace of the `Cmk`.
    pub namespace: String,
    /// The name of the `Cmk`.
    pub name: String,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Who created it (the field manager that created the `Cmk`).
    pub creator: String,
    /// Versions and their creation dates.
    pub versions: Vec<KeyVersion>,
    /// The pending window in force (days).
    pub window_days: u32,
    /// Set once the `Cmk` is gone: when the material is destroyed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<String>,
    /// The last on-demand rotation request honoured (the `Cmk`'s rotate annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_token: Option<String>,
    /// The `Cmk` spec last seen, to re-create the object when a deletion is cancelled through
    /// the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<serde_json::Value>,
}

/// The record and the wrapped material per version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    /// Identity, versions, dates.
    pub identity: KeyIdentity,
    /// Wrapped material by version.
    pub wrapped: BTreeMap<u32, Vec<u8>>,
}

fn version_key(v: u32) -> String {
    format!("v{v}")
}

impl StoredKey {
    /// Reads a material Secret; None when it is not one of ours or is damaged.
    pub fn from_secret(s: &Secret) -> Option<StoredKey> {
        let record = s.metadata.annotations.as_ref()?.get(RECORD_ANNOTATION)?;
        let identity: KeyIdentity = serde_json::from_str(record).ok()?;
        let data = s.data.as_ref()?;
        let mut wrapped = BTreeMap::new();
        for v in &identity.versions {
            let bytes = data.get(&version_key(v.version))?;
            wrapped.insert(v.version, bytes.0.clone());
        }
        Some(StoredKey { identity, wrapped })
    }

    /// The Secret in `namespace` (the KMS namespace).
    pub fn to_secret(&self, namespace: &str) -> Secret {
        let record = serde_json::to_string(&self.identity).unwrap_or_default();
        Secret {
            metadata: ObjectMeta {
                name: Some(secret_name(self.identity.key_id)),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([
                    ("app.kubernetes.io/part-of".to_owned(), "agility".to_owned()),
                    (COMPONENT_LABEL.to_owned(), COMPONENT_MATERIAL.to_owned()),
                    (KEY_ID_LABEL.to_owned(), self.identity.key_id.to_string()),
                ])),
                annotations: Some(BTreeMap::from([(RECORD_ANNOTATION.to_owned(), record)])),
                ..Default::default()
            },
            type_: Some("kms.agility.dev/key-material".into()),
            data: Some(
                self.wrapped
                    .iter()
                    .map(|(v, w)| (version_key(*v), ByteString(w.clone())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    /// The current (newest) version.
    pub fn current_version(&self) -> u32 {
        self.identity.versions.last().map_or(0, |v| v.version)
    }
}

/// Wrapped material for display in logs: a short fingerprint, never the bytes.
pub fn fingerprint(wrapped: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(wrapped);
    B64.encode(&d[..6])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stored() -> StoredKey {
        StoredKey {
            identity: KeyIdentity {
                key_id: Uuid::from_u128(7),
                namespace: "shop".into(),
                name: "orders".into(),
                created: "2026-12-01T00:00:00Z".into(),
                creator: "kubectl".into(),
                versions: vec![
                    KeyVersion {
                        version: 1,
                        created: "2026-12-01T00:00:00Z".into(),
                    },
                    KeyVersion {
                        version: 2,
                        created: "2027-03-01T00:00:00Z".into(),
                    },
                ],
                window_days: 30,
                deletion_date: None,
                rotate_token: None,
                spec: None,
            },
            wrapped: BTreeMap::from([(1, vec![1; 61]), (2, vec![2; 61])]),
        }
    }

    #[test]
    fn round_trips_through_a_secret() {
        let k = stored();
        let s = k.to_secret("agility-system");
        assert_eq!(
            s.metadata.name.as_deref(),
            Some("kms-key-00000000-0000-0000-0000-000000000007")
        );
        assert_eq!(s.data.as_ref().unwrap().len(), 2);
        assert_eq!(StoredKey::from_secret(&s).unwrap(), k);
        assert_eq!(k.current_version(), 2);
    }

    #[test]
    fn a_missing_version_makes_the_record_unusable() {
        let mut s = stored().to_secret("agility-system");
        s.data.as_mut().unwrap().remove("v2");
        assert!(StoredKey::from_secret(&s).is_none());
    }
}
