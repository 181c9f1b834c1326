//! Disk kinds: `NodeDisk` (one physical disk, published by its node's agent) and `DiskPool` (an
//! LVM volume group with a thin pool on every selected node, built from eligible disks).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One physical disk of one node. Named stably from its WWN or serial (never `sdX`, which can
/// change across boots); published and refreshed by the node's agent. A disk that vanishes keeps
/// its object, marked `present: false`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "node.agility.dev",
    version = "v1alpha1",
    kind = "NodeDisk",
    plural = "nodedisks",
    shortname = "ndisk",
    category = "agility",
    status = "NodeDiskStatus",
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.nodeName"}"#,
    printcolumn = r#"{"name":"Path","type":"string","jsonPath":".status.path"}"#,
    printcolumn = r#"{"name":"Size","type":"string","jsonPath":".status.size"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".status.type"}"#,
    printcolumn = r#"{"name":"Eligible","type":"boolean","jsonPath":".status.eligible"}"#,
    printcolumn = r#"{"name":"Present","type":"boolean","jsonPath":".status.present"}"#,
    printcolumn = r#"{"name":"Pool","type":"string","jsonPath":".status.pool","priority":1}"#,
    printcolumn = r#"{"name":"Reasons","type":"string","jsonPath":".status.ineligibleReasons","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NodeDiskSpec {
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.nodeName is immutable"))]
    pub node_name: String,
}

/// What the agent found out about a disk.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeDiskStatus {
    /// False once the disk is no longer found on its node.
    #[serde(default)]
    pub present: bool,
    /// Kernel device path at the last discovery (may change across boots).
    #[serde(default)]
    pub path: String,
    /// Stable links under /dev/disk (empty without udev).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_id: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_path: Vec<String>,
    #[serde(default)]
    pub size_bytes: u64,
    /// Size for people (e.g. `100Gi`).
    #[serde(default)]
    pub size: String,
    /// HDD, SSD, NVMe or Loop.
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub rotational: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wwn: Option<String>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionStatus>,
    /// Signatures found on the whole device (filesystem, RAID, LVM PV, partition table).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_points: Vec<String>,
    /// Devices built on this one (device-mapper, md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<String>,
    /// The LVM volume group the disk belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_group: Option<String>,
    /// SMART overall health (PASSED or FAILED), when smartctl is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart_health: Option<String>,
    #[serde(default)]
    pub eligible: bool,
    /// Why the disk may not join a pool (Mounted, HasPartitions, HasSignature, ReadOnly, OsDisk,
    /// InOtherVolumeGroup, TooSmall, ProbeFailed, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ineligible_reasons: Vec<String>,
    /// Human-readable details of the verdict (e.g. the probe error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The DiskPool the disk belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Time>,
    /// The refresh annotation value last honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_for: Option<String>,
}

/// A partition of a disk.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PartitionStatus {
    pub name: String,
    pub size_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_points: Vec<String>,
}

/// Local disks of the selected nodes gathered into an LVM volume group with a thin pool per node,
/// for the block storage product to carve volumes from. Only eligible disks join.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "node.agility.dev",
    version = "v1alpha1",
    kind = "DiskPool",
    plural = "diskpools",
    shortname = "dpool",
    category = "agility",
    status = "DiskPoolStatus",
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".status.readyNodes"}"#,
    printcolumn = r#"{"name":"Capacity","type":"string","jsonPath":".status.capacity"}"#,
    printcolumn = r#"{"name":"Used","type":"string","jsonPath":".status.used"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DiskPoolSpec {
    /// Nodes carrying the pool (all nodes when empty).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Which eligible disks join.
    #[serde(default)]
    pub devices: DeviceFilter,

    /// Volume group name on every node (default `agility-<pool>`). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z0-9+_.-]{1,64}$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.volumeGroup is immutable"))]
    pub volume_group: Option<String>,

    /// Thin pool name inside the volume group (default `thin`). Immutable.
    #[serde(default = "default_thin_pool")]
    #[schemars(regex(pattern = r"^[a-zA-Z0-9+_.-]{1,64}$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.thinPool is immutable"))]
    pub thin_pool: String,

    /// Thin pool share of the volume group in percent (the rest stays free for metadata growth
    /// and snapshots; default 90).
    #[serde(default = "default_thin_pool_percent")]
    #[schemars(range(min = 10, max = 95))]
    pub thin_pool_percent: u32,

    /// Virtual capacity the block product may promise per byte of thin pool (default 1.0 = no
    /// overcommit).
    #[serde(default = "default_overprovision")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub overprovision_ratio: f64,

    /// DANGER: NodeDisk names whose existing data (partition tables, filesystems, signatures)
    /// the agent may wipe so they can join. Disks not listed are never wiped; mounted disks and
    /// the OS disk are refused even when listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub destroy_existing_data_on: Vec<String>,
}

fn default_thin_pool() -> String {
    "thin".into()
}
fn default_thin_pool_percent() -> u32 {
    90
}
fn default_overprovision() -> f64 {
    1.0
}

/// Disk filters; a disk must match all given filters.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeviceFilter {
    /// Disk types (HDD, SSD, NVMe, Loop); any when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<DiskType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<Quantity>,
    /// Regular expression the model must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Glob patterns (`*`, `?`) on the device path or one of its /dev/disk links.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

/// Disk types.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiskType {
    #[serde(rename = "HDD")]
    Hdd,
    #[serde(rename = "SSD")]
    Ssd,
    #[serde(rename = "NVMe")]
    Nvme,
    /// Loop devices (tests and labs).
    #[serde(rename = "Loop")]
    Loop,
}

impl DiskType {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskType::Hdd => "HDD",
            DiskType::Ssd => "SSD",
            DiskType::Nvme => "NVMe",
            DiskType::Loop => "Loop",
        }
    }
}

/// The pool across nodes. Every agent writes its own entry of `nodes` (a map keyed by node name,
/// so server-side apply merges the agents' writes); the cluster controller writes the totals.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DiskPoolStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["nodeName"]))]
    pub nodes: Vec<DiskPoolNodeStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_nodes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The pool on one node.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DiskPoolNodeStatus {
    pub node_name: String,
    /// Ready, Pending (no eligible disk yet) or Failed.
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub volume_group: String,
    /// NodeDisk names in the volume group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<String>,
    /// Volume group size.
    #[serde(default)]
    pub size_bytes: u64,
    /// Thin pool data size.
    #[serde(default)]
    pub thin_pool_bytes: u64,
    /// Thin pool data in use.
    #[serde(default)]
    pub used_bytes: u64,
    /// What the block product may promise: thin pool size × overprovision ratio.
    #[serde(default)]
    pub virtual_capacity_bytes: u64,
    /// Sum of the thin volumes' virtual sizes.
    #[serde(default)]
    pub allocated_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<Time>,
}
