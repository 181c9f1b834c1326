//! The `node.agility.dev` kinds. Everything is cluster-scoped: nodes, their NICs and their disks
//! belong to the cluster, not to a tenant namespace.
//!
//! - [`network`]: `NodeNetworkPolicy` (desired bonds, rolled out node by node),
//!   `NodeNetworkState` (what one node has), `NodeNetworkEnactment` (one policy on one node).
//! - [`disk`]: `NodeDisk` (one physical disk), `DiskPool` (an LVM thin pool per node).

pub mod disk;
pub mod network;

/// API group.
pub const GROUP: &str = "node.agility.dev";

/// Annotation that asks an agent to re-read a node's state (disks or network) at once: any new
/// value triggers one refresh, recorded in the object's `status.refreshedFor`.
pub const REFRESH_ANNOTATION: &str = "node.agility.dev/refresh";

/// Label carrying the node an object describes (NodeDisk, NodeNetworkEnactment), for selectors.
pub const NODE_LABEL: &str = "node.agility.dev/node";

/// Label carrying the policy of a NodeNetworkEnactment.
pub const POLICY_LABEL: &str = "node.agility.dev/policy";
