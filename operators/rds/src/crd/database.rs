//! `RdsDatabase`: a database (schema) of an RdsInstance.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DeletionPolicy;

/// A database of an RdsInstance with its character set and collation.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "rds.agility.dev",
    version = "v1alpha1",
    kind = "RdsDatabase",
    plural = "rdsdatabases",
    shortname = "rdsdb",
    category = "agility",
    namespaced,
    status = "RdsDatabaseStatus",
    printcolumn = r#"{"name":"Instance","type":"string","jsonPath":".spec.instanceName"}"#,
    printcolumn = r#"{"name":"Database","type":"string","jsonPath":".spec.name"}"#,
    printcolumn = r#"{"name":"Charset","type":"string","jsonPath":".spec.characterSet"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.collation) || self.collation.startsWith(self.characterSet + '_')").message("spec.collation must belong to spec.characterSet (e.g. utf8mb4_general_ci)"),
)]
pub struct RdsDatabaseSpec {
    /// The RdsInstance (same namespace). Immutable.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.instanceName is immutable"))]
    pub instance_name: String,

    /// The database name: lowercase letters, digits and underscores, starting with a letter,
    /// at most 64; system schemas are reserved. Immutable.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]{0,63}$"))]
    #[x_kube(
        validation = Rule::new("self == oldSelf").message("spec.name is immutable"),
        validation = Rule::new("!(self in ['mysql', 'information_schema', 'performance_schema', 'sys', 'test']) && !self.startsWith('agility_')").message("this database name is reserved for the system"),
    )]
    pub name: String,

    /// Character set (default `utf8mb4`).
    #[serde(default)]
    pub character_set: CharacterSet,

    /// Collation (default: the character set's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9_]{1,64}$"))]
    pub collation: Option<String>,

    /// What deleting the RdsDatabase does: `Retain` (default) keeps the database and its data;
    /// `Delete` drops it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// A note for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub description: Option<String>,
}

/// Supported character sets.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CharacterSet {
    /// 4-byte UTF-8 (default).
    #[default]
    Utf8mb4,
    /// 3-byte UTF-8.
    Utf8mb3,
    /// Latin-1.
    Latin1,
    /// GBK (Simplified Chinese).
    Gbk,
    /// ASCII.
    Ascii,
}

impl CharacterSet {
    /// The MariaDB spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CharacterSet::Utf8mb4 => "utf8mb4",
            CharacterSet::Utf8mb3 => "utf8mb3",
            CharacterSet::Latin1 => "latin1",
            CharacterSet::Gbk => "gbk",
            CharacterSet::Ascii => "ascii",
        }
    }
}

/// Observed state.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RdsDatabaseStatus {
    /// Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
