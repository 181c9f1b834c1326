//! Networking kinds: `NodeNetworkPolicy`, `NodeNetworkState`, `NodeNetworkEnactment`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired bonds for the nodes a selector picks, rolled out node by node: each node records which
/// connectivity probes pass, applies, re-runs those probes and reverts on failure (or when its
/// agent dies mid-change). The rollout stops once failures reach `maxUnavailable`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "node.agility.dev",
    version = "v1alpha1",
    kind = "NodeNetworkPolicy",
    plural = "nodenetworkpolicies",
    shortname = "nnp",
    category = "agility",
    status = "NodeNetworkPolicyStatus",
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".status.matchedNodes"}"#,
    printcolumn = r#"{"name":"Available","type":"integer","jsonPath":".status.availableNodes"}"#,
    printcolumn = r#"{"name":"Failing","type":"integer","jsonPath":".status.failingNodes"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.bonds.all(a, self.bonds.exists_one(b, b.name == a.name))").message("spec.bonds: bond names must be unique"),
)]
pub struct NodeNetworkPolicySpec {
    /// Nodes this policy applies to (all nodes when empty).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Nodes that may be changing (or failed) at once: a number or a percentage of the matched
    /// nodes, rounded down but at least 1. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("type(self) == int ? self >= 1 : self.matches('^[1-9][0-9]?%$|^100%$')").message("spec.maxUnavailable must be a positive number or a percentage 1%..100%"))]
    pub max_unavailable: Option<IntOrString>,

    /// The bonds to build. Only interfaces named here (the bonds, their ports and VLANs) are
    /// touched; addresses and routes the agent did not create are never removed.
    #[schemars(length(min = 1, max = 8))]
    pub bonds: Vec<BondSpec>,

    /// Connectivity checks around each change.
    #[serde(default)]
    pub probes: ProbeSpec,
}

/// One bond.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.lacpRate) || self.mode == '802.3ad'").message("lacpRate applies to mode 802.3ad only"),
    validation = Rule::new("!has(self.transmitHashPolicy) || self.mode in ['balance-xor', '802.3ad', 'balance-tlb', 'balance-alb']").message("transmitHashPolicy applies to balance-xor, 802.3ad, balance-tlb and balance-alb only"),
    validation = Rule::new("!has(self.primary) || self.mode in ['active-backup', 'balance-tlb', 'balance-alb']").message("primary applies to active-backup, balance-tlb and balance-alb only"),
    validation = Rule::new("!has(self.primary) || !has(self.ports.names) || self.primary in self.ports.names").message("primary must be one of ports.names"),
    validation = Rule::new("self.updelay % self.miimon == 0 && self.downdelay % self.miimon == 0").message("updelay and downdelay must be multiples of miimon (the kernel would round them)"),
    validation = Rule::new("!has(self.vlans) || self.vlans.all(v, size(self.name) + 1 + size(string(v.id)) <= 15)").message("a VLAN interface is named <bond>.<id> and must fit 15 characters"),
    validation = Rule::new("!has(self.vlans) || self.vlans.all(a, self.vlans.exists_one(b, b.id == a.id))").message("vlans: ids must be unique"),
)]
pub struct BondSpec {
    /// Interface name of the bond (at most 15 characters).
    #[schemars(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9_-]{0,14}$"), length(max = 15))]
    pub name: String,

    /// Bonding mode.
    pub mode: BondMode,

    /// Link monitoring interval in milliseconds (default 100).
    #[serde(default = "default_miimon")]
    #[schemars(range(min = 1, max = 10000))]
    pub miimon: u32,

    /// Milliseconds a port must be up before it is used (default 0).
    #[serde(default)]
    #[schemars(range(max = 600000))]
    pub updelay: u32,

    /// Milliseconds a port must be down before it is dropped (default 0).
    #[serde(default)]
    #[schemars(range(max = 600000))]
    pub downdelay: u32,

    /// LACPDU rate (802.3ad only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lacp_rate: Option<LacpRate>,

    /// How flows are spread over ports (balance-xor, 802.3ad, balance-tlb, balance-alb).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transmit_hash_policy: Option<TransmitHashPolicy>,

    /// The preferred port (active-backup, balance-tlb, balance-alb), by interface name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15))]
    pub primary: Option<String>,

    /// The ports, chosen by name, MAC or PCI address (a port matching any entry is taken).
    pub ports: PortSelector,

    /// MTU of the bond (and its ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 9216))]
    pub mtu: Option<u32>,

    /// Static addresses (CIDR, IPv4 or IPv6) on the bond.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 49)))]
    #[x_kube(validation = Rule::new("self.all(a, isCIDR(a))").message("addresses must be CIDRs such as 10.0.0.5/24 or fd00::5/64"))]
    pub addresses: Vec<String>,

    /// Static routes through the bond.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub routes: Vec<RouteSpec>,

    /// VLAN sub-interfaces (`<bond>.<id>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub vlans: Vec<VlanSpec>,
}

fn default_miimon() -> u32 {
    100
}

/// Kernel bonding modes, by their kernel names.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BondMode {
    #[serde(rename = "balance-rr")]
    BalanceRr,
    #[default]
    #[serde(rename = "active-backup")]
    ActiveBackup,
    #[serde(rename = "balance-xor")]
    BalanceXor,
    #[serde(rename = "broadcast")]
    Broadcast,
    #[serde(rename = "802.3ad")]
    Ieee8023ad,
    #[serde(rename = "balance-tlb")]
    BalanceTlb,
    #[serde(rename = "balance-alb")]
    BalanceAlb,
}

impl BondMode {
    /// The kernel's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            BondMode::BalanceRr => "balance-rr",
            BondMode::ActiveBackup => "active-backup",
            BondMode::BalanceXor => "balance-xor",
            BondMode::Broadcast => "broadcast",
            BondMode::Ieee8023ad => "802.3ad",
            BondMode::BalanceTlb => "balance-tlb",
            BondMode::BalanceAlb => "balance-alb",
        }
    }
}

/// LACPDU rate.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LacpRate {
    Slow,
    Fast,
}

/// Transmit hash policy, by the kernel's names.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransmitHashPolicy {
    #[serde(rename = "layer2")]
    Layer2,
    #[serde(rename = "layer2+3")]
    Layer23,
    #[serde(rename = "layer3+4")]
    Layer34,
    #[serde(rename = "encap2+3")]
    Encap23,
    #[serde(rename = "encap3+4")]
    Encap34,
    #[serde(rename = "vlan+srcmac")]
    VlanSrcMac,
}

/// Which interfaces become ports. Names are exact; MACs are case-insensitive; PCI addresses are
/// `domain:bus:device.function` as in `/sys/bus/pci/devices`.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.names) ? size(self.names) : 0) + (has(self.macs) ? size(self.macs) : 0) + (has(self.pciAddresses) ? size(self.pciAddresses) : 0) >= 1").message("ports: name at least one port (by name, MAC or PCI address)"),
)]
pub struct PortSelector {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 15)))]
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 17)))]
    #[x_kube(validation = Rule::new("self.all(m, m.matches('^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$'))").message("ports.macs must be MAC addresses such as 52:54:00:12:34:56"))]
    pub macs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 12)))]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\\\.[0-7]$'))").message("ports.pciAddresses must look like 0000:3b:00.0"))]
    pub pci_addresses: Vec<String>,
}

/// A static route.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    /// Destination CIDR (`0.0.0.0/0` or `::/0` for a default route).
    #[schemars(length(max = 49))]
    #[x_kube(validation = Rule::new("isCIDR(self)").message("route destination must be a CIDR"))]
    pub destination: String,
    /// Next hop (none: directly connected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 45))]
    #[x_kube(validation = Rule::new("isIP(self)").message("route gateway must be an IP address"))]
    pub gateway: Option<String>,
    /// Route metric (priority).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

/// A VLAN sub-interface of a bond.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VlanSpec {
    /// 802.1Q VLAN id.
    #[schemars(range(min = 1, max = 4094))]
    pub id: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 9216))]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 49)))]
    #[x_kube(validation = Rule::new("self.all(a, isCIDR(a))").message("addresses must be CIDRs"))]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub routes: Vec<RouteSpec>,
}

/// Connectivity probes. Before a change the agent records which of them pass; after it, only
/// those must pass again, so a node without DNS is not rolled back for lacking DNS.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.timeoutSeconds < self.rollbackTimeoutSeconds").message("probes.timeoutSeconds must be below probes.rollbackTimeoutSeconds: the dead-man timer would revert before verification ends"),
)]
pub struct ProbeSpec {
    /// TCP connect to the Kubernetes API server (default on).
    #[serde(default = "yes")]
    pub api_server: bool,
    /// Reach the default gateway (default on).
    #[serde(default = "yes")]
    pub default_gateway: bool,
    /// Resolve a name with the node's resolvers (default on).
    #[serde(default = "yes")]
    pub dns: bool,
    /// Seconds the probes may take after a change before it is rolled back (default 20).
    #[serde(default = "default_probe_timeout")]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_seconds: u32,
    /// Seconds after which a change not confirmed by the agent is reverted even if the agent
    /// died (the dead-man timer; default 60).
    #[serde(default = "default_rollback_timeout")]
    #[schemars(range(min = 5, max = 3600))]
    pub rollback_timeout_seconds: u32,
}

fn yes() -> bool {
    true
}
fn default_probe_timeout() -> u32 {
    20
}
fn default_rollback_timeout() -> u32 {
    60
}

impl Default for ProbeSpec {
    fn default() -> Self {
        ProbeSpec {
            api_server: true,
            default_gateway: true,
            dns: true,
            timeout_seconds: default_probe_timeout(),
            rollback_timeout_seconds: default_rollback_timeout(),
        }
    }
}

/// Rollout progress of a policy, aggregated from its enactments.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeNetworkPolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Progressing, Available, Degraded or Aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default)]
    pub matched_nodes: u32,
    #[serde(default)]
    pub available_nodes: u32,
    #[serde(default)]
    pub progressing_nodes: u32,
    #[serde(default)]
    pub failing_nodes: u32,
    /// The limit in nodes `maxUnavailable` resolved to.
    #[serde(default)]
    pub max_unavailable_nodes: u32,
    /// Available, Progressing, Degraded, Aborted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// What one node's network looks like, published by its agent (the object is named after the
/// node). Refreshed on change, periodically with jitter, and on the refresh annotation.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "node.agility.dev",
    version = "v1alpha1",
    kind = "NodeNetworkState",
    plural = "nodenetworkstates",
    shortname = "nns",
    category = "agility",
    status = "NodeNetworkStateStatus",
    printcolumn = r#"{"name":"Interfaces","type":"integer","jsonPath":".status.interfaceCount"}"#,
    printcolumn = r#"{"name":"Bonds","type":"integer","jsonPath":".status.bondCount"}"#,
    printcolumn = r#"{"name":"Refreshed","type":"date","jsonPath":".status.lastRefreshed"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NodeNetworkStateSpec {
    /// The node described (equal to the object's name).
    pub node_name: String,
}

/// A node's interfaces, bonds and routes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeNetworkStateStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refreshed: Option<Time>,
    /// The refresh annotation value last honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_for: Option<String>,
    #[serde(default)]
    pub interface_count: u32,
    #[serde(default)]
    pub bond_count: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bonds: Vec<BondStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One network interface.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceStatus {
    pub name: String,
    /// ethernet, bond, vlan, veth, bridge, loopback or other.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The kernel's operational state (up, down, lowerlayerdown, unknown...).
    pub oper_state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mbps: Option<u32>,
    /// The bond (or bridge) this interface is a port of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Addresses in CIDR form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// One bond as the kernel runs it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BondStatus {
    pub name: String,
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miimon: Option<u32>,
    /// The port carrying traffic (active-backup and the balance-tlb/alb modes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_port: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<BondPortStatus>,
}

/// A port of a bond.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BondPortStatus {
    pub name: String,
    /// Link state the bond's monitor sees (up or down).
    pub link: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mbps: Option<u32>,
}

/// A route of the main table.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    pub destination: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

/// One policy on one node (named `<node>.<policy>`). The cluster controller owns the spec (it
/// approves a policy generation when the rollout reaches the node); the node's agent owns the
/// status (it enacts the approved generation and reports).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "node.agility.dev",
    version = "v1alpha1",
    kind = "NodeNetworkEnactment",
    plural = "nodenetworkenactments",
    shortname = "nne",
    category = "agility",
    status = "NodeNetworkEnactmentStatus",
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.nodeName"}"#,
    printcolumn = r#"{"name":"Policy","type":"string","jsonPath":".spec.policyName"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.reason","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NodeNetworkEnactmentSpec {
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.nodeName is immutable"))]
    pub node_name: String,
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.policyName is immutable"))]
    pub policy_name: String,
    /// The policy generation this node may enact now (set by the rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_generation: Option<i64>,
}

/// What the agent did with the policy on its node.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeNetworkEnactmentStatus {
    /// Pending, Progressing, Available, Failing or Aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The policy generation last enacted (successfully or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_generation: Option<i64>,
    /// The desired state rendered for this node (ports resolved to interface names).
    /// (The schema keeps these objects as they are: the spec's validation rules would only
    /// spend the API server's CEL budget on what the agent itself wrote.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "rendered_bonds_schema")]
    pub desired_bonds: Vec<RenderedBond>,
    /// Probes that passed before the change (only these must pass after it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes_before: Vec<String>,
    /// Available, Progressing, Failing, Aborted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

fn rendered_bonds_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "maxItems": 8,
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
    })
}

/// A bond with its ports resolved on one node.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RenderedBond {
    pub name: String,
    pub mode: BondMode,
    pub miimon: u32,
    #[serde(default)]
    pub updelay: u32,
    #[serde(default)]
    pub downdelay: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lacp_rate: Option<LacpRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transmit_hash_policy: Option<TransmitHashPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// Port interface names, sorted.
    pub ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vlans: Vec<VlanSpec>,
}
