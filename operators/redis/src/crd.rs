//! The `RedisInstance` kind (group `redis.agility.dev`). Validation lives in the schema where it
//! can (enums, ranges, CEL for cross-field and immutable rules) so bad input fails at apply time.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::params;

/// API group.
pub const GROUP: &str = "redis.agility.dev";

/// A managed Redis: the standard edition (master + replica with automatic failover), its
/// single-node cache variant, or the cluster edition (shards of master + replica).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "redis.agility.dev",
    version = "v1alpha1",
    kind = "RedisInstance",
    plural = "redisinstances",
    shortname = "redis",
    category = "agility",
    namespaced,
    status = "RedisInstanceStatus",
    printcolumn = r#"{"name":"Edition","type":"string","jsonPath":".spec.edition"}"#,
    printcolumn = r#"{"name":"Class","type":"string","jsonPath":".status.class.code","priority":1}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Master","type":"string","jsonPath":".status.currentMaster"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.endpoint","priority":1}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.instanceClass) || has(self.resources)").message("set spec.instanceClass or spec.resources"),
    validation = Rule::new("!has(self.shards) || self.edition == 'cluster'").message("spec.shards applies to the cluster edition only"),
    validation = Rule::new("self.edition != 'cache' || !has(self.persistence) || (!self.persistence.appendOnly && !has(self.persistence.storage))").message("the cache edition keeps no data: persistence.appendOnly must be false and persistence.storage unset"),
    validation = Rule::new("!has(self.instanceClass) || self.edition != 'cluster' || self.instanceClass.startsWith('redis.sharding.') || self.instanceClass.startsWith('redis.logic.sharding.drredismdb')").message("edition cluster needs a cluster class (redis.sharding.* or redis.logic.sharding.drredismdb*)"),
    validation = Rule::new("!has(self.instanceClass) || self.edition == 'cluster' || !(self.instanceClass.startsWith('redis.sharding.') || self.instanceClass.startsWith('redis.logic.sharding.drredismdb'))").message("cluster classes need edition cluster"),
    validation = Rule::new("(has(self.tls) && self.tls.enabled) == (has(oldSelf.tls) && oldSelf.tls.enabled)").message("spec.tls.enabled cannot change after creation: plaintext and TLS nodes cannot replicate from each other (create a new instance and migrate)"),
)]
pub struct RedisInstanceSpec {
    /// `standard` (master + replica, automatic failover), `cache` (one node, no persistence) or
    /// `cluster` (shards of master + replica, Redis Cluster protocol). Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.edition is immutable"))]
    pub edition: Edition,

    /// An instance class code from the catalogue (docs/redis.md): sets memory, CPU and
    /// connections. Changing it resizes online (replicas first, then a switchover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "class_schema")]
    pub instance_class: Option<String>,

    /// Explicit per-node resources instead of (or overriding) the class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<NodeResources>,

    /// Shards of the cluster edition (classes with a fixed shard count ignore it). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3, max = 64))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.shards is immutable"))]
    pub shards: Option<u32>,

    /// The Redis image (default: the operator's, Debian's redis-server 7.0). A change rolls the
    /// pods replicas first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Where the password comes from. Default: generated from a CSPRNG into the connection Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,

    /// TLS on the Redis port (replication and the cluster bus too). Default: off. Fixed at
    /// creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,

    /// Who may connect (enforced by a NetworkPolicy). Default: pods of this namespace only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowlist: Option<Allowlist>,

    /// Persistence. Default: AOF with `appendfsync everysec` on the pod's own volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,

    /// Eviction policy when memory is full.
    #[serde(default)]
    pub maxmemory_policy: MaxmemoryPolicy,

    /// Further Redis settings from the supported list (docs/redis.md); names not on the list are
    /// rejected. Online where Redis allows it (CONFIG SET), otherwise by a rolling restart.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "parameters_schema")]
    pub parameters: BTreeMap<String, String>,

    /// Monitoring: the redis_exporter sidecar, ServiceMonitor and PrometheusRule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Monitoring>,

    /// What deleting the instance does to its volumes: `Retain` (default) keeps the PVCs.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// The edition.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Edition {
    /// Master + replica with automatic failover.
    #[default]
    Standard,
    /// One node, no replica, no persistence.
    Cache,
    /// Shards of master + replica.
    Cluster,
}

/// Explicit per-node resources.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeResources {
    /// Memory for the data set (`maxmemory`), e.g. `256Mi`. The container limit adds headroom.
    #[schemars(regex(pattern = r"^[0-9]+(Ki|Mi|Gi)$"))]
    pub memory: String,
    /// CPU cores, e.g. `500m` or `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"))]
    pub cpu: Option<String>,
    /// `maxclients`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 160000))]
    pub max_clients: Option<u32>,
}

/// A key in a Secret of the instance's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key (default `password`).
    #[serde(default = "default_password_key")]
    pub key: String,
}

fn default_password_key() -> String {
    "password".into()
}

/// TLS settings.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.secretName) || self.enabled").message("spec.tls.secretName needs spec.tls.enabled: true"))]
pub struct Tls {
    /// Serve TLS only: the Redis port speaks TLS, plaintext is closed; replication and the
    /// cluster bus use TLS too. Clients authenticate with the password (no client certificates).
    #[serde(default)]
    pub enabled: bool,
    /// A Secret of this namespace with `tls.crt`, `tls.key` and `ca.crt` (e.g. from
    /// cert-manager). Its certificate must name `*.<name>-nodes.<namespace>.svc` (the operator
    /// verifies each node by that name) and the endpoint host `<name>.<namespace>.svc`. Default:
    /// issued by the operator from a CA of the instance's own, renewed 30 days before expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
}

pub use agility_core::allowlist::{Allowlist, Peer};

fn yes() -> bool {
    true
}

/// Persistence settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Persistence {
    /// AOF on (default true).
    #[serde(default = "yes")]
    pub append_only: bool,
    /// `appendfsync` (default everysec).
    #[serde(default)]
    pub append_fsync: AppendFsync,
    /// A PersistentVolumeClaim per node; without it data lives in an emptyDir, which survives
    /// container restarts and failovers (the replica has it) but not the loss of every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            append_only: true,
            append_fsync: AppendFsync::Everysec,
            storage: None,
        }
    }
}

/// `appendfsync`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AppendFsync {
    /// fsync after every write.
    Always,
    /// fsync once per second.
    #[default]
    Everysec,
    /// Leave it to the OS.
    No,
}

/// A volume claim per node.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Size, e.g. `10Gi`.
    #[schemars(regex(pattern = r"^[0-9]+(Mi|Gi|Ti)$"))]
    pub size: String,
    /// The StorageClass (default: the cluster's default). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("persistence.storage.storageClassName is immutable"))]
    pub storage_class_name: Option<String>,
}

/// `maxmemory-policy`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MaxmemoryPolicy {
    /// Evict least recently used keys with an expiry (the modelled suite's default).
    #[default]
    VolatileLru,
    /// Evict least recently used keys.
    AllkeysLru,
    /// Evict least frequently used keys with an expiry.
    VolatileLfu,
    /// Evict least frequently used keys.
    AllkeysLfu,
    /// Evict random keys with an expiry.
    VolatileRandom,
    /// Evict random keys.
    AllkeysRandom,
    /// Evict keys with the nearest expiry.
    VolatileTtl,
    /// Refuse writes when full.
    Noeviction,
}

impl MaxmemoryPolicy {
    /// The redis.conf spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MaxmemoryPolicy::VolatileLru => "volatile-lru",
            MaxmemoryPolicy::AllkeysLru => "allkeys-lru",
            MaxmemoryPolicy::VolatileLfu => "volatile-lfu",
            MaxmemoryPolicy::AllkeysLfu => "allkeys-lfu",
            MaxmemoryPolicy::VolatileRandom => "volatile-random",
            MaxmemoryPolicy::AllkeysRandom => "allkeys-random",
            MaxmemoryPolicy::VolatileTtl => "volatile-ttl",
            MaxmemoryPolicy::Noeviction => "noeviction",
        }
    }
}

/// Monitoring settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Monitoring {
    /// The redis_exporter sidecar on port 9121 (default true).
    #[serde(default = "yes")]
    pub exporter: bool,
    /// A ServiceMonitor for the exporter (needs the Prometheus Operator CRDs when the operator
    /// starts; reported in the Monitoring condition otherwise).
    #[serde(default)]
    pub service_monitor: bool,
    /// A PrometheusRule with the instance's alerts (same requirement).
    #[serde(default)]
    pub prometheus_rule: bool,
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            exporter: true,
            service_monitor: false,
            prometheus_rule: false,
        }
    }
}

/// What deletion does to volumes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep the PersistentVolumeClaims.
    #[default]
    Retain,
    /// Delete them with the instance.
    Delete,
}

/// Observed state.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisInstanceStatus {
    /// `Creating`, `Running`, `Failover`, `Updating`, `Degraded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Ready, Progressing, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `host:port` of the endpoint that follows the master (cluster edition: a seed node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The Secret with `host`, `port`, `endpoint`, `password`, `uri` (and `tls`, `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_secret: Option<String>,
    /// The pod that is master now (standard/cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_master: Option<String>,
    /// Every data pod and its role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeStatus>,
    /// The resolved class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ClassStatus>,
    /// Replication lag of the slowest replica, whole seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_lag_seconds: Option<i64>,
    /// The last automatic failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<FailoverStatus>,
    /// Cluster edition: the shard map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
    /// Backups (reserved for the Bucket product; always empty for now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,
}

/// One data pod.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Pod name.
    pub pod: String,
    /// `master`, `replica` or `unknown`.
    pub role: String,
    /// Shard index (cluster edition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
}

/// The resolved class.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClassStatus {
    /// The class code, or `custom` for explicit resources.
    pub code: String,
    /// maxmemory per node.
    pub memory: String,
    /// CPU per node.
    pub cpu: String,
    /// maxclients per node.
    pub max_clients: u32,
    /// The class's bandwidth in MB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_mbps: Option<u32>,
    /// Whether bandwidth is enforced: `PodAnnotations` (kubernetes.io/*-bandwidth, honoured only
    /// when the CNI chain has the bandwidth plugin) or `NotEnforced`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_enforcement: Option<String>,
}

/// One failover.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailoverStatus {
    /// When the new master was promoted (RFC 3339).
    pub time: String,
    /// The failed master.
    pub from: String,
    /// The promoted replica.
    pub to: String,
    /// Why (`MasterUnreachable`, `MasterDeleted`, ...).
    pub reason: String,
}

/// The cluster edition's shard map.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// `ok` or `fail` (CLUSTER INFO cluster_state).
    pub state: String,
    /// Shards with their slot ranges and master.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardStatus>,
    /// The single-endpoint proxy of the modelled suite is not implemented yet: clients must be
    /// cluster-aware.
    pub proxy: String,
}

/// One shard.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// Shard index.
    pub index: u32,
    /// Slot ranges, e.g. `0-5460`.
    pub slots: String,
    /// The master pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
}

/// Reserved for backups to object storage (the Bucket product).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// The last successful backup (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful: Option<String>,
}

fn class_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "description": "An instance class code from the catalogue (docs/redis.md).",
        "enum": catalog::codes(),
    })
}

fn parameters_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // One declared property per supported name: strict field validation (kubectl's default)
    // rejects any other name at apply time ("unknown field spec.parameters.<name>"), at no CEL
    // cost.
    let properties: serde_json::Map<String, serde_json::Value> = params::names()
        .into_iter()
        .map(|n| {
            (
                n.to_owned(),
                serde_json::json!({"type": "string", "maxLength": 256}),
            )
        })
        .collect();
    schemars::json_schema!({
        "type": "object",
        "description": "Supported Redis settings (docs/redis.md); other names are rejected.",
        "properties": properties,
    })
}

impl RedisInstanceSpec {
    /// The persistence settings in force (cache: none).
    pub fn persistence_or_default(&self) -> Option<Persistence> {
        match self.edition {
            Edition::Cache => None,
            _ => Some(self.persistence.clone().unwrap_or_default()),
        }
    }

    /// Whether the instance serves TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.enabled)
    }

    /// The monitoring settings in force.
    pub fn monitoring_or_default(&self) -> Monitoring {
        self.monitoring.clone().unwrap_or_default()
    }
}
