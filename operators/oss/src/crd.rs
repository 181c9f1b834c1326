//! The object-storage kinds (group `oss.agility.dev`): `ObjectStore` (a Garage cluster the operator
//! runs), `Bucket` (a bucket with its access key and connection Secret) and `BucketAccess` (a
//! further application's key on a bucket). Validation lives in the schema where it can, so bad
//! input fails at `kubectl apply`.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group.
pub const GROUP: &str = "oss.agility.dev";

/// Buckets one namespace may own (the suite's "100 buckets per owner").
pub const MAX_BUCKETS_PER_NAMESPACE: usize = 100;

/// Lifecycle rules one bucket may carry.
pub const MAX_LIFECYCLE_RULES: usize = 1000;

/// A Garage storage cluster: a StatefulSet of Garage nodes with their volumes, the layout kept by
/// the operator through Garage's admin API, the S3 gateway that enforces what Garage does not,
/// and the S3 and website Services.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "oss.agility.dev",
    version = "v1alpha1",
    kind = "ObjectStore",
    plural = "objectstores",
    shortname = "ostore",
    category = "agility",
    namespaced,
    status = "ObjectStoreStatus",
    printcolumn = r#"{"name":"Nodes","type":"string","jsonPath":".status.nodes"}"#,
    printcolumn = r#"{"name":"RF","type":"integer","jsonPath":".spec.replicationFactor"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"S3","type":"string","jsonPath":".status.s3Endpoint","priority":1}"#,
    printcolumn = r#"{"name":"Default","type":"boolean","jsonPath":".spec.default","priority":1}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.replicationFactor <= self.nodes").message("spec.replicationFactor cannot exceed spec.nodes: every copy needs its own node"),
)]
pub struct ObjectStoreSpec {
    /// Garage nodes (pods, each with its own volume). At least `replicationFactor`.
    #[serde(default = "default_nodes")]
    #[schemars(range(min = 1, max = 32))]
    pub nodes: i32,

    /// Copies of every object, each on a different node: 3 (the product's default) or 1 for a
    /// single-node development cluster. Fixed at creation (Garage cannot change it in place).
    #[serde(default = "default_replication_factor")]
    #[schemars(range(min = 1, max = 3))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.replicationFactor is immutable"))]
    pub replication_factor: i32,

    /// Each node's volume.
    #[serde(default)]
    pub storage: StoreStorage,

    /// The S3 region clients sign for (default `agility`).
    #[serde(default = "default_region")]
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"))]
    pub region: String,

    /// Use this store for Buckets that name none. At most one store in the cluster should say so.
    #[serde(default)]
    pub default: bool,

    /// TLS on the S3 and website endpoints (the gateway terminates it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<StoreTls>,

    /// Gateway replicas in front of the S3 endpoint (default 2).
    #[serde(default = "default_gateway_replicas")]
    #[schemars(range(min = 1, max = 16))]
    pub gateway_replicas: i32,

    /// Resources of each Garage node (default: requests 100m CPU / 256Mi, limit 1Gi memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// The Garage image (default: the operator's, Garage 2.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

fn default_nodes() -> i32 {
    3
}
fn default_replication_factor() -> i32 {
    3
}
fn default_region() -> String {
    "agility".into()
}
fn default_gateway_replicas() -> i32 {
    2
}

/// A node's volume.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoreStorage {
    /// Capacity per node (the layout gives each node this capacity). Immutable for now: a
    /// StatefulSet's claim templates cannot change, and growing the claims in place is not
    /// implemented yet.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.storage.size is immutable (volume expansion is not supported yet)"))]
    pub size: Quantity,
    /// StorageClass of the volumes (default: the cluster's default). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.storage.storageClassName is immutable"))]
    pub storage_class_name: Option<String>,
    /// Give the volume to Garage's user (65532) with a root init container before Garage
    /// starts: for volume types that ignore `fsGroup`, such as hostPath and local PVs on bare
    /// metal. Off by default (the init container runs as root with CAP_CHOWN only).
    #[serde(default)]
    pub volume_permissions: bool,
}

impl Default for StoreStorage {
    fn default() -> Self {
        StoreStorage {
            size: Quantity("10Gi".into()),
            storage_class_name: None,
            volume_permissions: false,
        }
    }
}

/// TLS of a store's endpoints.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.secretName) || self.enabled").message("spec.tls.secretName needs spec.tls.enabled: true"),
    validation = Rule::new("!self.enabled || has(self.secretName)").message("spec.tls.enabled needs spec.tls.secretName (a Secret with tls.crt and tls.key, e.g. from cert-manager): the operator does not issue store certificates yet"),
)]
pub struct StoreTls {
    /// Serve HTTPS on the S3 and website endpoints.
    #[serde(default)]
    pub enabled: bool,
    /// A Secret of the store's namespace with `tls.crt` and `tls.key` (e.g. from cert-manager)
    /// naming the endpoint hosts (`<name>.<namespace>.svc`, `<name>-web.<namespace>.svc` and
    /// `*.web.<name>.<namespace>.svc`). Required with `enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
}

/// What the operator observed of a store.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreStatus {
    /// `Pending`, `Running` or `Degraded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Nodes up / wanted, e.g. `3/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<String>,
    /// The applied Garage layout version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout_version: Option<i64>,
    /// The S3 endpoint URL inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    /// The website endpoint URL inside the cluster (Host: `<bucket>.<websiteDomain>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website_endpoint: Option<String>,
    /// The domain website buckets are served under (`<bucket>.<websiteDomain>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website_domain: Option<String>,
    /// The region clients sign for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: layout applied, every node up, gateway available.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A bucket in an ObjectStore with an access key of its own, written to a connection Secret
/// (`endpoint`, `region`, `bucket`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, and the COSI
/// `COSI_S3_*` keys).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "oss.agility.dev",
    version = "v1alpha1",
    kind = "Bucket",
    plural = "buckets",
    shortname = "bkt",
    category = "agility",
    namespaced,
    status = "BucketStatus",
    printcolumn = r#"{"name":"Bucket","type":"string","jsonPath":".status.bucketName"}"#,
    printcolumn = r#"{"name":"ACL","type":"string","jsonPath":".spec.acl"}"#,
    printcolumn = r#"{"name":"Store","type":"string","jsonPath":".status.store","priority":1}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".status.secretName","priority":1}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.bucketName) == has(oldSelf.bucketName) && (!has(self.bucketName) || self.bucketName == oldSelf.bucketName)").message("spec.bucketName is immutable: a bucket cannot be renamed"),
    validation = Rule::new("!self.forceDelete || self.deletionPolicy == 'Delete'").message("spec.forceDelete needs spec.deletionPolicy: Delete"),
)]
pub struct BucketSpec {
    /// The store (default: the ObjectStore with `spec.default: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreRef>,

    /// The bucket's name in the store, unique there: 3–63 characters of lowercase letters,
    /// digits, `-` and `.`, starting and ending with a letter or digit. Default: generated
    /// (`<namespace>-<name>-<random>`), shown in status. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    #[x_kube(
        validation = Rule::new("!self.contains('..')").message("spec.bucketName cannot contain '..'"),
        validation = Rule::new("!self.matches('^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$')").message("spec.bucketName cannot look like an IP address"),
    )]
    pub bucket_name: Option<String>,

    /// Who may use the bucket without a key on the S3 endpoint: `private` (default),
    /// `public-read` (anonymous GET/HEAD/list) or `public-read-write` (anonymous writes too).
    #[serde(default)]
    pub acl: Acl,

    /// Static website hosting on the website endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<Website>,

    /// CORS rules answered on the S3 and website endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub cors: Vec<CorsRule>,

    /// Lifecycle rules (at most 1,000), applied by Garage's daily lifecycle pass (midnight UTC).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub lifecycle: Vec<LifecycleRule>,

    /// Limits on the bucket's content: writes over them are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<BucketQuota>,

    /// Referer anti-leech for anonymous and presigned-URL requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referer: Option<RefererRules>,

    /// What deleting this resource does: `Retain` (default) keeps the bucket and its objects in
    /// the store (a new Bucket with the same `bucketName` in this namespace adopts it); `Delete`
    /// deletes the bucket, which must be empty unless `forceDelete`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// With `deletionPolicy: Delete`, delete every object (and abort unfinished multipart
    /// uploads) first. Cannot be undone.
    #[serde(default)]
    pub force_delete: bool,

    /// The connection Secret's name (default `<name>-s3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
}

/// Names an ObjectStore.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoreRef {
    /// The ObjectStore's name.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Its namespace (default: the Bucket's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A bucket ACL.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Acl {
    /// Only keys granted on the bucket.
    #[default]
    #[serde(rename = "private")]
    Private,
    /// Anyone may read objects and list the bucket.
    #[serde(rename = "public-read")]
    PublicRead,
    /// Anyone may read, write and delete objects.
    #[serde(rename = "public-read-write")]
    PublicReadWrite,
}

/// Static website hosting.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Website {
    /// Served for `/` and every key ending in `/` (default `index.html`).
    #[serde(default = "default_index")]
    #[schemars(length(min = 1, max = 1024))]
    pub index_document: String,
    /// Served with status 404 when a key does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub error_document: Option<String>,
}

fn default_index() -> String {
    "index.html".into()
}

/// An HTTP method CORS can allow.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum CorsMethod {
    Get,
    Put,
    Post,
    Delete,
    Head,
}

impl CorsMethod {
    /// The method as S3 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CorsMethod::Get => "GET",
            CorsMethod::Put => "PUT",
            CorsMethod::Post => "POST",
            CorsMethod::Delete => "DELETE",
            CorsMethod::Head => "HEAD",
        }
    }
}

/// One CORS rule.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CorsRule {
    /// Origins (`*` wildcards allowed), at least one.
    #[schemars(length(min = 1, max = 100))]
    pub allowed_origins: Vec<String>,
    /// Methods, at least one.
    #[schemars(length(min = 1, max = 5))]
    pub allowed_methods: Vec<CorsMethod>,
    /// Request headers a preflight may ask for (`*` allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may expose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache the preflight answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub max_age_seconds: Option<i64>,
}

/// One lifecycle rule.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.expiration) || has(self.abortIncompleteMultipartUploadDays)").message("a lifecycle rule needs expiration or abortIncompleteMultipartUploadDays"),
)]
pub struct LifecycleRule {
    /// The rule's ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub id: Option<String>,
    /// Only keys starting with this prefix (default: every key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub prefix: Option<String>,
    /// Whether the rule applies (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// When objects expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Expiration>,
    /// Abort multipart uploads unfinished this many days after they started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub abort_incomplete_multipart_upload_days: Option<i64>,
}

fn yes() -> bool {
    true
}

/// An expiration: after `days` or on `date`, exactly one.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.days) != has(self.date)").message("an expiration sets exactly one of days and date"))]
pub struct Expiration {
    /// Days after an object was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub days: Option<i64>,
    /// A date (`YYYY-MM-DD`, midnight UTC) from which matching objects expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"))]
    pub date: Option<String>,
}

/// Content limits.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BucketQuota {
    /// Total size of the objects, e.g. `10Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<Quantity>,
    /// Number of objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_objects: Option<i64>,
}

/// Referer anti-leech.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RefererRules {
    /// Allowed Referer values; `*` matches any run of characters and `?` one character, e.g.
    /// `https://*.example.com/*`. Matching is case-insensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub allowed: Vec<String>,
    /// Whether requests without a Referer are allowed (default true).
    #[serde(default = "yes")]
    pub allow_empty: bool,
}

/// What deleting a Bucket does to the stored bucket.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep the bucket and its objects.
    #[default]
    Retain,
    /// Delete the bucket.
    Delete,
}

/// What the operator observed of a bucket.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BucketStatus {
    /// The bucket's name in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_name: Option<String>,
    /// Garage's bucket id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_id: Option<String>,
    /// The store, `<namespace>/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The access key id in the connection Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The connection Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The website URL (with `spec.website`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website_url: Option<String>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, and `SettingsEnforced` (False lists any setting that has no effect).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Another application's key on a Bucket of the same namespace, written to its own Secret.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "oss.agility.dev",
    version = "v1alpha1",
    kind = "BucketAccess",
    plural = "bucketaccesses",
    shortname = "bktaccess",
    category = "agility",
    namespaced,
    status = "BucketAccessStatus",
    printcolumn = r#"{"name":"Bucket","type":"string","jsonPath":".spec.bucket"}"#,
    printcolumn = r#"{"name":"Access","type":"string","jsonPath":".spec.access"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".status.secretName"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BucketAccessSpec {
    /// The Bucket resource (same namespace). Immutable.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.bucket is immutable"))]
    pub bucket: String,
    /// `ReadOnly` (GET/HEAD/list) or `ReadWrite`.
    pub access: AccessLevel,
    /// The Secret's name (default `<name>-s3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
}

/// What a BucketAccess key may do.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccessLevel {
    /// Read and list.
    #[default]
    ReadOnly,
    /// Read, list, write and delete.
    ReadWrite,
}

/// What the operator observed of a BucketAccess.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BucketAccessStatus {
    /// The access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
