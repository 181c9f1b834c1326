//! The `Cmk` kind (group `kms.agility.dev`): a customer master key. Its spec is the desired
//! state (description, usage, enabled, rotation, aliases, deletion window); status reports the
//! key id, state, dates and versions. Key material never appears here: it is kept wrapped by the
//! root key, readable only by the KMS service.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group.
pub const GROUP: &str = "kms.agility.dev";
/// Keys per namespace (the modelled suite's per-department limit).
pub const MAX_KEYS_PER_NAMESPACE: usize = 200;

/// A customer master key.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kms.agility.dev",
    version = "v1alpha1",
    kind = "Cmk",
    plural = "cmks",
    shortname = "cmk",
    category = "agility",
    namespaced,
    status = "CmkStatus",
    printcolumn = r#"{"name":"KeyId","type":"string","jsonPath":".status.keyId"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.keyState"}"#,
    printcolumn = r#"{"name":"Usage","type":"string","jsonPath":".spec.keyUsage","priority":1}"#,
    printcolumn = r#"{"name":"Version","type":"integer","jsonPath":".status.currentVersion","priority":1}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.keyUsage != 'ENCRYPT_DECRYPT' || self.keySpec == 'AES_256'").message("keyUsage ENCRYPT_DECRYPT needs keySpec AES_256"),
    validation = Rule::new("self.keySpec == oldSelf.keySpec && self.keyUsage == oldSelf.keyUsage").message("spec.keySpec and spec.keyUsage are immutable"),
)]
pub struct CmkSpec {
    /// What the key is for (shown by DescribeKey).
    #[serde(default)]
    #[schemars(length(max = 8192))]
    pub description: String,
    /// `ENCRYPT_DECRYPT` (symmetric). Sign/verify usages come with asymmetric key specs.
    #[serde(default)]
    pub key_usage: KeyUsage,
    /// `AES_256`. Immutable.
    #[serde(default)]
    pub key_spec: KeySpec,
    /// A disabled key neither encrypts nor decrypts until it is enabled again (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Automatic rotation: a new key version every `periodDays`; old versions still decrypt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// Aliases (`alias/<name>`), unique in the namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub aliases: Vec<Alias>,
    /// Days between deleting the object and destroying the material (7–30, default 30).
    #[serde(default = "default_window")]
    #[schemars(range(min = 7, max = 30))]
    pub pending_window_in_days: u32,
}

fn yes() -> bool {
    true
}

fn default_window() -> u32 {
    30
}

/// An alias name, `alias/` followed by letters, digits, `/`, `_` or `-`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(transparent)]
pub struct Alias(
    #[schemars(regex(pattern = r"^alias/[a-zA-Z0-9/_-]{1,250}$"))]
    #[schemars(length(max = 256))]
    pub String,
);

/// Key usage.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyUsage {
    /// Symmetric encryption and decryption.
    #[default]
    #[serde(rename = "ENCRYPT_DECRYPT")]
    EncryptDecrypt,
}

/// Key spec (material type).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeySpec {
    /// AES-256-GCM.
    #[default]
    #[serde(rename = "AES_256")]
    Aes256,
}

/// Automatic rotation.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Rotate automatically (default true when the block is present).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Days between rotations (1–2560; the modelled suite and AWS use 90–2560, shorter periods
    /// serve tests).
    #[schemars(range(min = 1, max = 2560))]
    pub period_days: u32,
}

/// `Enabled`, `Disabled` or `PendingDeletion`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyState {
    /// Usable.
    #[default]
    Enabled,
    /// Refuses every cryptographic operation.
    Disabled,
    /// Deleted; the material is destroyed at `deletionDate` unless the deletion is cancelled.
    PendingDeletion,
}

/// One key version.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyVersion {
    /// 1, 2, ...
    pub version: u32,
    /// When it was created (RFC 3339).
    pub created: String,
}

/// Observed state.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CmkStatus {
    /// Ready and Progressing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The key id (UUID), stable for the key's life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The resource name, `arn:agility:kms:local:<namespace>:key/<keyId>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The key state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_state: Option<KeyState>,
    /// Creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
    /// When the material will be destroyed (PendingDeletion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<String>,
    /// The last rotation (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_date: Option<String>,
    /// The next automatic rotation (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<String>,
    /// The version new ciphertexts use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u32>,
    /// Every version; old ones still decrypt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_versions: Vec<KeyVersion>,
    /// Who created the key (the user that created the object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// Where the material comes from: `AGILITY_KMS` (generated by the service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn schema_has_ranges_enums_and_category() {
        let crd = serde_json::to_value(Cmk::crd()).unwrap();
        assert_eq!(crd["spec"]["names"]["categories"][0], "agility");
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let window = &spec["properties"]["pendingWindowInDays"];
        assert_eq!(
            (window["minimum"].as_f64(), window["maximum"].as_f64()),
            (Some(7.0), Some(30.0))
        );
        assert_eq!(spec["properties"]["keySpec"]["enum"][0], "AES_256");
        let rules = spec["x-kubernetes-validations"].as_array().unwrap();
        assert!(
            rules
                .iter()
                .any(|r| r["message"] == "spec.keySpec and spec.keyUsage are immutable")
        );
    }

    #[test]
    fn defaults_are_enabled_and_thirty_days() {
        let s: CmkSpec = serde_yaml::from_str("description: orders").unwrap();
        assert!(s.enabled);
        assert_eq!(s.pending_window_in_days, 30);
        assert_eq!(s.key_spec, KeySpec::Aes256);
    }
}
