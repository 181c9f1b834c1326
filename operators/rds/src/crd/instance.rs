//! `RdsInstance`: a MariaDB primary with a hot standby, optional read-only replicas.

use std::collections::BTreeMap;

use agility_core::allowlist::Allowlist;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DeletionPolicy;
use crate::{catalog, params};

/// A managed MySQL-compatible database: a primary and a hot standby on another node with
/// automatic failover behind one endpoint, plus optional read-only replicas.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "rds.agility.dev",
    version = "v1alpha1",
    kind = "RdsInstance",
    plural = "rdsinstances",
    shortname = "rds",
    category = "agility",
    namespaced,
    status = "RdsInstanceStatus",
    printcolumn = r#"{"name":"Engine","type":"string","jsonPath":".spec.engineVersion"}"#,
    printcolumn = r#"{"name":"Class","type":"string","jsonPath":".spec.instanceClass"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Primary","type":"string","jsonPath":".status.primary"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.endpoint","priority":1}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RdsInstanceSpec {
    /// The engine. Only `MariaDB` for now (MySQL 8.x later, behind the same seam). Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.engine is immutable"))]
    pub engine: Engine,

    /// The engine version. Immutable (major upgrades are a later feature).
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.engineVersion is immutable"))]
    pub engine_version: EngineVersion,

    /// An instance class code from the catalogue (docs/rds.md): CPU, memory, max connections
    /// per node.
    #[schemars(schema_with = "class_schema")]
    pub instance_class: String,

    /// The data volume of each node.
    pub storage: Storage,

    /// The HA policy: service priority and replication mode.
    #[serde(default)]
    pub ha: HaPolicy,

    /// Read-only replicas (0-5) for read scaling, each with its own endpoint, plus one balanced
    /// read-only endpoint. They follow the primary across failovers and are never promoted.
    #[serde(default)]
    #[schemars(range(min = 0, max = 5))]
    pub read_replicas: u32,

    /// Who may connect (enforced by a NetworkPolicy). Default: pods of this namespace only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowlist: Option<Allowlist>,

    /// MariaDB settings from the supported list (docs/rds.md); names not on the list — among
    /// them the locked replication, durability and fencing settings — are rejected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "parameters_schema")]
    pub parameters: BTreeMap<String, String>,

    /// The MariaDB image (default: the operator's, Debian's MariaDB 10.11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// What deleting the instance does to its volumes: `Retain` (default) keeps the PVCs.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// The engine.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// MariaDB (MySQL-compatible).
    #[default]
    MariaDB,
}

/// The engine version.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EngineVersion {
    /// MariaDB 10.11 LTS.
    #[default]
    #[serde(rename = "10.11")]
    V10_11,
}

/// The data volume.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Size per node, e.g. `20Gi`. Fixed for now: online growth is not implemented yet.
    #[schemars(regex(pattern = r"^[0-9]{1,5}(Mi|Gi|Ti)$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.storage.size cannot change yet: online storage growth is not implemented"))]
    pub size: String,
    /// The StorageClass (default: the cluster's default). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.storage.storageClassName is immutable"))]
    pub storage_class_name: Option<String>,
    /// Run a root init container (only CAP_CHOWN) that gives the volume to the mysql user, for
    /// volume plugins that ignore fsGroup (hostPath, kind's local-path). Default false: it needs
    /// a namespace that admits a root container.
    #[serde(default)]
    pub volume_permissions: bool,
}

/// Service priority × replication mode.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HaPolicy {
    /// `RPOFirst` (default: never promote a standby that may lack acknowledged transactions) or
    /// `RTOFirst` (promote at once; transactions the standby had not received are lost).
    #[serde(default)]
    pub priority: Priority,
    /// `SemiSync` (default: a commit waits for the standby; after `semiSyncTimeoutMillis` without
    /// an answer it degrades to async and returns to sync when the standby is back), `Sync`
    /// (waits without a timeout: no loss on primary failure; writes stop while the standby is
    /// away) or `Async`.
    #[serde(default)]
    pub replication: Replication,
    /// How long a SemiSync commit waits for the standby before degrading (1-300 s; default 10 s).
    #[serde(default = "default_semi_sync_timeout")]
    #[schemars(range(min = 1000, max = 300000))]
    pub semi_sync_timeout_millis: u32,
}

fn default_semi_sync_timeout() -> u32 {
    10_000
}

impl Default for HaPolicy {
    fn default() -> Self {
        HaPolicy {
            priority: Priority::default(),
            replication: Replication::default(),
            semi_sync_timeout_millis: default_semi_sync_timeout(),
        }
    }
}

/// Service priority.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Priority {
    /// Lose the least data.
    #[default]
    #[serde(rename = "RPOFirst")]
    RpoFirst,
    /// Back in service fastest.
    #[serde(rename = "RTOFirst")]
    RtoFirst,
}

/// Replication mode.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Replication {
    /// The primary does not wait for the standby.
    Async,
    /// The primary waits for the standby up to a timeout, then degrades to async.
    #[default]
    SemiSync,
    /// The primary always waits for the standby.
    Sync,
}

/// Observed state.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RdsInstanceStatus {
    /// `Creating`, `Running`, `Failover`, `Degraded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Ready, Replication, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `host:port` of the read-write endpoint (follows the primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `host:port` of the balanced read-only endpoint (when there are read replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_endpoint: Option<String>,
    /// The pod that is primary now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// Every database pod and its role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeStatus>,
    /// The replication mode in force and whether semi-sync is currently acknowledging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationStatus>,
    /// The last automatic failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<FailoverStatus>,
}

/// One database pod.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Pod name.
    pub pod: String,
    /// `primary`, `standby`, `readReplica` or `unknown`.
    pub role: String,
    /// The node's GTID position (`gtid_current_pos`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    /// Replication lag in seconds (replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
}

/// Replication state.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatus {
    /// `Async`, `SemiSync` or `Sync`.
    pub mode: String,
    /// Whether the primary's commits currently wait for the standby (Rpl_semi_sync_master_status).
    pub semi_sync_active: bool,
}

/// One failover.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailoverStatus {
    /// When the standby was promoted (RFC 3339).
    pub time: String,
    /// The failed primary.
    pub from: String,
    /// The promoted standby.
    pub to: String,
    /// Why (`PrimaryUnreachable`, `PrimaryDeleted`, ...).
    pub reason: String,
    /// Whether transactions the standby had not received may have been lost (RTO-first).
    #[serde(default)]
    pub possible_data_loss: bool,
}

fn class_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "description": "An instance class code from the catalogue (docs/rds.md).",
        "enum": catalog::codes(),
    })
}

fn parameters_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // One declared property per supported name: strict field validation rejects any other name
    // at apply time ("unknown field spec.parameters.<name>"), at no CEL cost.
    let properties: serde_json::Map<String, serde_json::Value> = params::PARAMS
        .iter()
        .map(|p| {
            (
                p.name.to_owned(),
                serde_json::json!({"type": "string", "maxLength": 64, "pattern": params::pattern(p.value)}),
            )
        })
        .collect();
    schemars::json_schema!({
        "type": "object",
        "description": "Supported MariaDB settings (docs/rds.md); other names are rejected.",
        "properties": properties,
    })
}
