//! Requests and answers of Garage's admin API v2, as Garage (2.x) spells them: camelCase JSON.
//! Only the fields the operator reads are declared; unknown fields are ignored so a newer Garage
//! stays readable.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::settings::{CorsRule, LifecycleRule, wire};

/// `GET /v2/GetClusterStatus`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Current layout version (0 before the first `ApplyClusterLayout`).
    pub layout_version: u64,
    /// Connected nodes, nodes of the layout and draining nodes.
    pub nodes: Vec<NodeStatus>,
}

/// One node of [`ClusterStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Full node id (64 hex characters).
    pub id: String,
    #[serde(default)]
    pub garage_version: Option<String>,
    /// RPC address (`ip:port`).
    #[serde(default)]
    pub addr: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    pub is_up: bool,
    #[serde(default)]
    pub last_seen_secs_ago: Option<u64>,
    /// Role in the current layout.
    #[serde(default)]
    pub role: Option<NodeRole>,
    #[serde(default)]
    pub draining: bool,
    #[serde(default)]
    pub data_partition: Option<FreeSpace>,
    #[serde(default)]
    pub metadata_partition: Option<FreeSpace>,
}

/// A node's role: zone, tags and capacity in bytes (`None`: a gateway node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRole {
    pub zone: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub capacity: Option<u64>,
}

/// Disk space of a partition, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct FreeSpace {
    pub available: u64,
    pub total: u64,
}

/// `GET /v2/GetClusterHealth`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterHealth {
    /// `healthy`, `degraded` or `unavailable`.
    pub status: String,
    pub known_nodes: u64,
    pub connected_nodes: u64,
    pub storage_nodes: u64,
    pub storage_nodes_up: u64,
    pub partitions: u64,
    pub partitions_quorum: u64,
    pub partitions_all_ok: u64,
}

impl ClusterHealth {
    /// Whether every partition has a write quorum (Garage serves reads and writes).
    pub fn is_available(&self) -> bool {
        self.status != "unavailable"
            && self.partitions > 0
            && self.partitions_quorum == self.partitions
    }
}

/// `GET /v2/GetNodeInfo?node=..`: per-node answers (`node=*` asks every node).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct MultiResponse<T> {
    /// Node id → answer.
    pub success: HashMap<String, T>,
    /// Node id → error message.
    #[serde(default)]
    pub error: HashMap<String, String>,
}

/// One node's answer to `GetNodeInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// Full node id (64 hex characters).
    pub node_id: String,
    #[serde(default)]
    pub hostname: Option<String>,
    pub garage_version: String,
    /// `lmdb`, `sqlite` or `fjall` (as Garage names it, e.g. "LMDB (using Heed crate)").
    pub db_engine: String,
    #[serde(default)]
    pub garage_features: Option<Vec<String>>,
}

/// One answer of `POST /v2/ConnectClusterNodes` (same order as the request).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ConnectResult {
    pub success: bool,
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /v2/GetClusterLayout` (also inside `UpdateClusterLayout`/`ApplyClusterLayout` answers).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterLayout {
    /// Current layout version (0: none applied yet).
    pub version: u64,
    /// Nodes with a role in the current version.
    pub roles: Vec<LayoutRole>,
    pub parameters: LayoutParameters,
    /// Size of a partition in bytes.
    #[serde(default)]
    pub partition_size: u64,
    /// Changes staged for the next version, not yet applied.
    #[serde(default)]
    pub staged_role_changes: Vec<RoleChange>,
    #[serde(default)]
    pub staged_parameters: Option<LayoutParameters>,
}

/// A node's role in the current layout.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutRole {
    pub id: String,
    pub zone: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub capacity: Option<u64>,
    #[serde(default)]
    pub stored_partitions: Option<u64>,
    #[serde(default)]
    pub usable_capacity: Option<u64>,
}

/// A staged (or requested) role change: `{"id", "remove": true}` or `{"id", "zone", "tags",
/// "capacity"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleChange {
    pub id: String,
    #[serde(flatten)]
    pub action: RoleAction,
}

/// What a [`RoleChange`] does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RoleAction {
    /// `remove: true` takes the node out of the layout.
    Remove { remove: bool },
    /// Assigns (or changes) the role.
    Update(NodeRole),
}

/// Layout computation parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutParameters {
    pub zone_redundancy: ZoneRedundancy,
}

/// In how many zones each partition must be: `{"atLeast": n}` or `"maximum"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ZoneRedundancy {
    AtLeast(usize),
    Maximum,
}

/// `POST /v2/UpdateClusterLayout` body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LayoutUpdate {
    pub roles: Vec<RoleChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<LayoutParameters>,
}

/// `POST /v2/ApplyClusterLayout` answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AppliedLayout {
    /// Garage's human-readable report of the computation (not for parsing).
    #[serde(default)]
    pub message: Vec<String>,
    pub layout: ClusterLayout,
}

/// Read/write/owner permissions of a key on a bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    #[serde(default)]
    pub read: bool,
    #[serde(default)]
    pub write: bool,
    #[serde(default)]
    pub owner: bool,
}

impl Permissions {
    /// Read only.
    pub const READ: Permissions = Permissions {
        read: true,
        write: false,
        owner: false,
    };
    /// Read and write.
    pub const READ_WRITE: Permissions = Permissions {
        read: true,
        write: true,
        owner: false,
    };
    /// Read, write and owner (bucket settings through S3: CORS, website, lifecycle).
    pub const ALL: Permissions = Permissions {
        read: true,
        write: true,
        owner: true,
    };
}

/// Bucket quotas; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quotas {
    /// Bytes.
    pub max_size: Option<u64>,
    pub max_objects: Option<u64>,
}

/// `GET /v2/GetBucketInfo` (and the answer of every bucket write).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketInfo {
    /// Bucket id (64 hex characters).
    pub id: String,
    pub created: DateTime<Utc>,
    pub global_aliases: Vec<String>,
    pub website_access: bool,
    #[serde(default)]
    pub website_config: Option<WebsiteConfig>,
    /// CORS rules, converted from Garage's XML-shaped JSON (empty: none).
    #[serde(default, deserialize_with = "wire::de_cors")]
    pub cors_rules: Vec<CorsRule>,
    /// Lifecycle rules, converted from Garage's XML-shaped JSON (empty: none).
    #[serde(default, deserialize_with = "wire::de_lifecycle")]
    pub lifecycle_rules: Vec<LifecycleRule>,
    /// Keys with permissions on the bucket.
    pub keys: Vec<BucketKey>,
    pub objects: i64,
    pub bytes: i64,
    #[serde(default)]
    pub unfinished_uploads: i64,
    #[serde(default)]
    pub unfinished_multipart_uploads: i64,
    #[serde(default)]
    pub unfinished_multipart_upload_parts: i64,
    #[serde(default)]
    pub unfinished_multipart_upload_bytes: i64,
    pub quotas: Quotas,
}

/// The website configuration of a bucket.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebsiteConfig {
    pub index_document: String,
    #[serde(default)]
    pub error_document: Option<String>,
}

/// A key with permissions on a bucket.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketKey {
    pub access_key_id: String,
    pub name: String,
    pub permissions: Permissions,
    #[serde(default)]
    pub bucket_local_aliases: Vec<String>,
}

/// Website access for [`BucketUpdate`]: enabled with an index (and error) document, or off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebsiteAccess {
    Enabled {
        index_document: String,
        error_document: Option<String>,
    },
    Disabled,
}

/// `POST /v2/UpdateBucket?id=..`: each `Some` field replaces that setting, `None` leaves it
/// as it is. An empty rule list removes the CORS or lifecycle configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketUpdate {
    pub website_access: Option<WebsiteAccess>,
    pub quotas: Option<Quotas>,
    pub cors_rules: Option<Vec<CorsRule>>,
    pub lifecycle_rules: Option<Vec<LifecycleRule>>,
}

impl BucketUpdate {
    /// Whether the update would change nothing (then it need not be sent).
    pub fn is_empty(&self) -> bool {
        self.website_access.is_none()
            && self.quotas.is_none()
            && self.cors_rules.is_none()
            && self.lifecycle_rules.is_none()
    }

    /// The JSON body Garage expects.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        if let Some(w) = &self.website_access {
            let v = match w {
                WebsiteAccess::Enabled {
                    index_document,
                    error_document,
                } => serde_json::json!({
                    "enabled": true,
                    "indexDocument": index_document,
                    "errorDocument": error_document,
                }),
                // Garage refuses documents alongside `enabled: false`.
                WebsiteAccess::Disabled => serde_json::json!({ "enabled": false }),
            };
            body.insert("websiteAccess".into(), v);
        }
        if let Some(q) = &self.quotas {
            body.insert("quotas".into(), serde_json::json!(q));
        }
        if let Some(rules) = &self.cors_rules {
            body.insert("corsRules".into(), wire::cors_json(rules));
        }
        if let Some(rules) = &self.lifecycle_rules {
            body.insert("lifecycleRules".into(), wire::lifecycle_json(rules));
        }
        serde_json::Value::Object(body)
    }
}

/// Access key permissions that are not per bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyPermissions {
    #[serde(default)]
    pub create_bucket: bool,
}

/// `GET /v2/GetKeyInfo` (and `CreateKey`'s answer). Its `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    /// Access key id (`GK` + 24 hex characters).
    pub access_key_id: String,
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
    pub name: String,
    #[serde(default)]
    pub expiration: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expired: bool,
    /// Present when asked for (`showSecretKey=true`) and on creation.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    pub permissions: KeyPermissions,
    pub buckets: Vec<KeyBucket>,
}

impl fmt::Debug for KeyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyInfo")
            .field("access_key_id", &self.access_key_id)
            .field("created", &self.created)
            .field("name", &self.name)
            .field("expiration", &self.expiration)
            .field("expired", &self.expired)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("permissions", &self.permissions)
            .field("buckets", &self.buckets)
            .finish()
    }
}

/// A bucket a key has permissions on.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyBucket {
    pub id: String,
    #[serde(default)]
    pub global_aliases: Vec<String>,
    #[serde(default)]
    pub local_aliases: Vec<String>,
    pub permissions: Permissions,
}

/// One entry of `GET /v2/ListKeys`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyListItem {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expiration: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expired: bool,
}
