//! `RdsAccount`: a database account of an RdsInstance with its connection Secret.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DeletionPolicy;
use crate::grants::AccountRole;

/// An account of an RdsInstance: a normal account with per-database roles, or the instance's one
/// privileged account (custom grants; cannot be turned back into a normal account).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "rds.agility.dev",
    version = "v1alpha1",
    kind = "RdsAccount",
    plural = "rdsaccounts",
    shortname = "rdsaccount",
    category = "agility",
    namespaced,
    status = "RdsAccountStatus",
    printcolumn = r#"{"name":"Instance","type":"string","jsonPath":".spec.instanceName"}"#,
    printcolumn = r#"{"name":"User","type":"string","jsonPath":".spec.username"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type != 'Privileged' || size(self.privileges) == 0").message("a Privileged account has custom grants: spec.privileges applies to Normal accounts only"),
)]
pub struct RdsAccountSpec {
    /// The RdsInstance (same namespace). Immutable.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.instanceName is immutable"))]
    pub instance_name: String,

    /// The MySQL user name: 2-32 lowercase letters, digits and underscores, starting with a
    /// letter; `root` and the `agility_` prefix are reserved. Immutable.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]{1,31}$"))]
    #[x_kube(
        validation = Rule::new("self == oldSelf").message("spec.username is immutable"),
        validation = Rule::new("!self.startsWith('agility_') && !(self in ['root', 'mysql', 'mariadb_sys', 'public'])").message("this user name is reserved for the system"),
    )]
    pub username: String,

    /// `Normal` (default) or `Privileged`. Once Privileged, it stays Privileged; one per instance.
    #[serde(default, rename = "type")]
    #[x_kube(validation = Rule::new("oldSelf != 'Privileged' || self == 'Privileged'").message("a Privileged account cannot be turned back into a Normal account"))]
    pub account_type: AccountType,

    /// Per-database roles of a Normal account (at most 100).
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub privileges: Vec<DatabasePrivilege>,

    /// Where the password comes from (key `password`). Default: generated from a CSPRNG and kept
    /// in the connection Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub password_secret_name: Option<String>,

    /// What deleting the RdsAccount does: `Delete` (default) drops the user; `Retain` keeps it.
    #[serde(default = "drop_by_default")]
    pub deletion_policy: DeletionPolicy,

    /// A note for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub description: Option<String>,
}

fn drop_by_default() -> DeletionPolicy {
    DeletionPolicy::Delete
}

/// The account type.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccountType {
    /// Grants managed through `spec.privileges`.
    #[default]
    Normal,
    /// Global DBA grants WITH GRANT OPTION (never the privileges that could turn off the
    /// fencing, stop the server or touch replication).
    Privileged,
}

/// A role on one database.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DatabasePrivilege {
    /// The database name (as in RdsDatabase).
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]{0,63}$"))]
    pub database: String,
    /// `ReadWrite`, `ReadOnly`, `DDLOnly` or `DMLOnly`.
    pub role: AccountRole,
}

/// Observed state.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RdsAccountStatus {
    /// Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Secret with host, port, username, password, database, jdbcUrl, uri and dsn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_secret: Option<String>,
}
