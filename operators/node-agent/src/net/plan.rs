//! From observed state and rendered bonds to an ordered list of netlink operations (pure), and
//! the undo record that restores exactly the interfaces, addresses and routes a plan touches.
//!
//! Planning runs every operation through [`simulate`] (a model of what the kernel does with it)
//! as it goes, so later steps see the effect of earlier ones (a released port is down, a
//! deleted bond takes its VLANs along) and a plan the kernel would refuse (enslaving a port
//! that is up, changing a bond's mode while it has ports) shows up in unit tests.
//!
//! Kernel rules the order follows: a bond's mode can change only while it is down and has no
//! ports, its LACP rate only while it is down; a port must be down to be enslaved (the bond
//! brings it up and gives it the bond's MTU); a VLAN's MTU may not exceed its parent's; a route
//! needs its interface up and, with a gateway, an address whose prefix holds the gateway.

mod sim;

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use sim::{SimError, simulate};

use super::state::{BondInfo, Cidr, LinkKind, NetworkState, Route, VlanInfo};
use crate::crd::network::{BondMode, LacpRate, RenderedBond, RouteSpec, TransmitHashPolicy};

/// One change to the node, by interface name (indexes are looked up when it runs).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    /// Create a bond (down, no ports) with these options.
    CreateBond {
        name: String,
        options: BondOptions,
    },
    /// Change the options that are set.
    SetBondOptions {
        name: String,
        options: BondOptions,
    },
    /// Set or clear a bond's primary port.
    SetPrimary {
        bond: String,
        port: Option<String>,
    },
    /// Create an 802.1Q VLAN interface (down).
    CreateVlan {
        name: String,
        parent: String,
        id: u16,
    },
    DeleteLink {
        name: String,
    },
    SetUp {
        name: String,
    },
    SetDown {
        name: String,
    },
    SetMtu {
        name: String,
        mtu: u32,
    },
    /// Make `port` (down) a port of `master`.
    Enslave {
        port: String,
        master: String,
    },
    /// Detach `port` from its master.
    Release {
        port: String,
    },
    /// Add an address tagged with the agent's protocol.
    AddAddress {
        interface: String,
        cidr: Cidr,
    },
    DelAddress {
        interface: String,
        cidr: Cidr,
    },
    /// Add a main-table route tagged with the agent's protocol.
    AddRoute {
        route: RouteOp,
    },
    /// Delete a route the agent created (the kernel matches the protocol too).
    DelRoute {
        route: RouteOp,
    },
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::CreateBond { name, options } => write!(f, "create bond {name} {options}"),
            Op::SetBondOptions { name, options } => write!(f, "set bond {name} {options}"),
            Op::SetPrimary { bond, port } => {
                write!(
                    f,
                    "set bond {bond} primary {}",
                    port.as_deref().unwrap_or("none")
                )
            }
            Op::CreateVlan { name, parent, id } => {
                write!(f, "create vlan {name} on {parent} id {id}")
            }
            Op::DeleteLink { name } => write!(f, "delete {name}"),
            Op::SetUp { name } => write!(f, "set {name} up"),
            Op::SetDown { name } => write!(f, "set {name} down"),
            Op::SetMtu { name, mtu } => write!(f, "set {name} mtu {mtu}"),
            Op::Enslave { port, master } => write!(f, "set {port} master {master}"),
            Op::Release { port } => write!(f, "set {port} nomaster"),
            Op::AddAddress { interface, cidr } => write!(f, "add address {cidr} on {interface}"),
            Op::DelAddress { interface, cidr } => write!(f, "delete address {cidr} on {interface}"),
            Op::AddRoute { route } => write!(f, "add route {route}"),
            Op::DelRoute { route } => write!(f, "delete route {route}"),
        }
    }
}

/// Bond options; `None` leaves an option as it is (or at the kernel default on creation).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BondOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<BondMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miimon: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updelay: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downdelay: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lacp_rate: Option<LacpRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transmit_hash_policy: Option<TransmitHashPolicy>,
}

impl BondOptions {
    pub fn is_empty(&self) -> bool {
        *self == BondOptions::default()
    }
}

impl std::fmt::Display for BondOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(m) = self.mode {
            parts.push(format!("mode {}", m.as_str()));
        }
        if let Some(v) = self.miimon {
            parts.push(format!("miimon {v}"));
        }
        if let Some(v) = self.updelay {
            parts.push(format!("updelay {v}"));
        }
        if let Some(v) = self.downdelay {
            parts.push(format!("downdelay {v}"));
        }
        if let Some(v) = self.lacp_rate {
            parts.push(format!("lacp_rate {v:?}"));
        }
        if let Some(v) = self.transmit_hash_policy {
            parts.push(format!("xmit_hash_policy {v:?}"));
        }
        f.write_str(&parts.join(" "))
    }
}

/// A route as the agent adds or deletes it (metric made explicit: the kernel's default is 0
/// for IPv4 and 1024 for IPv6).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub struct RouteOp {
    pub destination: Cidr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    pub interface: String,
    pub metric: u32,
}

impl std::fmt::Display for RouteOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.destination)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        write!(f, " dev {} metric {}", self.interface, self.metric)
    }
}

/// The kernel's metric for a route that names none.
pub fn default_metric(destination: &Cidr) -> u32 {
    if destination.addr.is_ipv4() { 0 } else { 1024 }
}

impl RouteOp {
    fn matches(&self, r: &Route) -> bool {
        r.destination.network() == self.destination.network()
            && r.gateway == self.gateway
            && r.interface.as_deref() == Some(self.interface.as_str())
            && r.metric.unwrap_or_else(|| default_metric(&r.destination)) == self.metric
    }

    fn from_observed(r: &Route) -> Option<RouteOp> {
        Some(RouteOp {
            destination: r.destination.network(),
            gateway: r.gateway,
            interface: r.interface.clone()?,
            metric: r.metric.unwrap_or_else(|| default_metric(&r.destination)),
        })
    }
}

/// Why no plan could be made.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PlanError {
    #[error("interface {0} not found")]
    InterfaceNotFound(String),
    #[error("interface {name} exists and is a {kind}, not a {wanted}")]
    NameTaken {
        name: String,
        kind: String,
        wanted: String,
    },
    #[error("invalid desired state: {0}")]
    Invalid(String),
    /// The plan would do something the kernel refuses (a bug in the planner).
    #[error("planned step {op} would fail: {error}")]
    Illegal { op: String, error: SimError },
}

/// Builds a list of operations while applying each to a working copy of the state.
struct Builder {
    state: NetworkState,
    ops: Vec<Op>,
    /// Reverts keep a step the model refuses: the kernel may still take it, and a revert must
    /// try everything.
    lenient: bool,
}

impl Builder {
    fn push(&mut self, op: Op) -> Result<(), PlanError> {
        match simulate(&mut self.state, &op) {
            Ok(()) => {}
            Err(_) if self.lenient => {}
            Err(error) => {
                return Err(PlanError::Illegal {
                    op: op.to_string(),
                    error,
                });
            }
        }
        self.ops.push(op);
        Ok(())
    }

    fn up(&mut self, name: &str, up: bool) -> Result<(), PlanError> {
        let is_up = self.state.link(name).is_some_and(|l| l.up);
        match (is_up, up) {
            (false, true) => self.push(Op::SetUp { name: name.into() }),
            (true, false) => self.push(Op::SetDown { name: name.into() }),
            _ => Ok(()),
        }
    }

    fn mtu(&mut self, name: &str, mtu: Option<u32>) -> Result<(), PlanError> {
        if let Some(mtu) = mtu
            && self.state.link(name).is_some_and(|l| l.mtu != Some(mtu))
        {
            self.push(Op::SetMtu {
                name: name.into(),
                mtu,
            })?;
        }
        Ok(())
    }

    fn release(&mut self, port: &str) -> Result<(), PlanError> {
        if self.state.link(port).is_some_and(|l| l.master.is_some()) {
            self.push(Op::Release { port: port.into() })?;
        }
        Ok(())
    }

    fn enslave(&mut self, port: &str, master: &str) -> Result<(), PlanError> {
        let link = self
            .state
            .link(port)
            .ok_or_else(|| PlanError::InterfaceNotFound(port.into()))?;
        if link.master.as_deref() == Some(master) {
            return Ok(());
        }
        self.release(port)?;
        self.up(port, false)?;
        self.push(Op::Enslave {
            port: port.into(),
            master: master.into(),
        })
    }
}

fn supports_primary(mode: BondMode) -> bool {
    matches!(
        mode,
        BondMode::ActiveBackup | BondMode::BalanceTlb | BondMode::BalanceAlb
    )
}

fn uses_hash_policy(mode: BondMode) -> bool {
    matches!(
        mode,
        BondMode::BalanceXor | BondMode::Ieee8023ad | BondMode::BalanceTlb | BondMode::BalanceAlb
    )
}

/// The options `b` asks for, as sent when creating its bond.
fn wanted_options(b: &RenderedBond) -> BondOptions {
    BondOptions {
        mode: Some(b.mode),
        miimon: Some(b.miimon),
        updelay: Some(b.updelay),
        downdelay: Some(b.downdelay),
        lacp_rate: b.lacp_rate.filter(|_| b.mode == BondMode::Ieee8023ad),
        transmit_hash_policy: b.transmit_hash_policy.filter(|_| uses_hash_policy(b.mode)),
    }
}

/// The options of `have` that differ from what `b` asks for (mode aside).
fn option_diff(b: &RenderedBond, have: &BondInfo) -> BondOptions {
    let mut d = BondOptions::default();
    if have.miimon != b.miimon {
        d.miimon = Some(b.miimon);
    }
    if have.updelay != b.updelay {
        d.updelay = Some(b.updelay);
    }
    if have.downdelay != b.downdelay {
        d.downdelay = Some(b.downdelay);
    }
    if b.mode == BondMode::Ieee8023ad {
        let want = b.lacp_rate.unwrap_or(LacpRate::Slow);
        if have.lacp_rate.unwrap_or(LacpRate::Slow) != want {
            d.lacp_rate = Some(want);
        }
    }
    if uses_hash_policy(b.mode) {
        let want = b.transmit_hash_policy.unwrap_or(TransmitHashPolicy::Layer2);
        if have
            .transmit_hash_policy
            .unwrap_or(TransmitHashPolicy::Layer2)
            != want
        {
            d.transmit_hash_policy = Some(want);
        }
    }
    d
}

/// What one interface (a bond or one of its VLANs) should carry.
struct Carried<'a> {
    interface: String,
    addresses: &'a [String],
    routes: &'a [RouteSpec],
}

fn parse_cidrs(list: &[String]) -> Result<Vec<Cidr>, PlanError> {
    list.iter()
        .map(|c| {
            c.parse()
                .map_err(|e: super::state::CidrError| PlanError::Invalid(e.to_string()))
        })
        .collect()
}

fn route_ops(interface: &str, routes: &[RouteSpec]) -> Result<Vec<RouteOp>, PlanError> {
    routes
        .iter()
        .map(|r| {
            let destination: Cidr = r
                .destination
                .parse()
                .map_err(|e: super::state::CidrError| PlanError::Invalid(e.to_string()))?;
            let gateway = match &r.gateway {
                Some(g) => Some(g.parse::<IpAddr>().map_err(|_| {
                    PlanError::Invalid(format!("route gateway {g:?} is not an IP address"))
                })?),
                None => None,
            };
            Ok(RouteOp {
                destination: destination.network(),
                gateway,
                interface: interface.to_string(),
                metric: r.metric.unwrap_or_else(|| default_metric(&destination)),
            })
        })
        .collect()
}

fn vlan_name(bond: &str, id: u16) -> String {
    format!("{bond}.{id}")
}

/// The operations that make `state` match `desired`. Empty when it already does.
pub fn plan(state: &NetworkState, desired: &[RenderedBond]) -> Result<Vec<Op>, PlanError> {
    let mut b = Builder {
        state: state.clone(),
        ops: Vec::new(),
        lenient: false,
    };
    for bond in desired {
        plan_bond_links(&mut b, bond)?;
    }
    let carried: Vec<Carried> = desired
        .iter()
        .flat_map(|bond| {
            std::iter::once(Carried {
                interface: bond.name.clone(),
                addresses: &bond.addresses,
                routes: &bond.routes,
            })
            .chain(bond.vlans.iter().map(|v| Carried {
                interface: vlan_name(&bond.name, v.id),
                addresses: &v.addresses,
                routes: &v.routes,
            }))
        })
        .collect();
    // Stale routes first: they may use an address about to go.
    for c in &carried {
        let want = route_ops(&c.interface, c.routes)?;
        let stale: Vec<RouteOp> = b
            .state
            .routes
            .iter()
            .filter(|r| r.ours && r.interface.as_deref() == Some(c.interface.as_str()))
            .filter(|r| !want.iter().any(|w| w.matches(r)))
            .filter_map(RouteOp::from_observed)
            .collect();
        for route in stale {
            b.push(Op::DelRoute { route })?;
        }
    }
    for c in &carried {
        let want = parse_cidrs(c.addresses)?;
        let have = b
            .state
            .link(&c.interface)
            .map(|l| l.addresses.clone())
            .unwrap_or_default();
        for a in have.iter().filter(|a| a.ours && !want.contains(&a.cidr)) {
            b.push(Op::DelAddress {
                interface: c.interface.clone(),
                cidr: a.cidr,
            })?;
        }
        for cidr in want.iter().filter(|w| !have.iter().any(|a| a.cidr == **w)) {
            b.push(Op::AddAddress {
                interface: c.interface.clone(),
                cidr: *cidr,
            })?;
        }
    }
    for c in &carried {
        for route in route_ops(&c.interface, c.routes)? {
            if !b.state.routes.iter().any(|r| route.matches(r)) {
                b.push(Op::AddRoute { route })?;
            }
        }
    }
    Ok(b.ops)
}

fn plan_bond_links(b: &mut Builder, bond: &RenderedBond) -> Result<(), PlanError> {
    let name = bond.name.as_str();
    match b.state.link(name) {
        None => b.push(Op::CreateBond {
            name: name.into(),
            options: wanted_options(bond),
        })?,
        Some(l) if l.kind != LinkKind::Bond => {
            return Err(PlanError::NameTaken {
                name: name.into(),
                kind: l.kind.as_str().into(),
                wanted: "bond".into(),
            });
        }
        Some(l) => {
            let have = l.bond.clone().unwrap_or_default();
            if have.mode != bond.mode {
                // The kernel changes a mode only on a bond that is down and has no ports.
                b.up(name, false)?;
                let ports: Vec<String> = b
                    .state
                    .ports_of(name)
                    .iter()
                    .map(|p| p.name.clone())
                    .collect();
                for p in ports {
                    b.release(&p)?;
                }
                b.push(Op::SetBondOptions {
                    name: name.into(),
                    options: wanted_options(bond),
                })?;
            } else {
                let diff = option_diff(bond, &have);
                if !diff.is_empty() {
                    if diff.lacp_rate.is_some() {
                        b.up(name, false)?;
                    }
                    b.push(Op::SetBondOptions {
                        name: name.into(),
                        options: diff,
                    })?;
                }
            }
        }
    }
    // Before the ports: enslaving gives each port the bond's MTU.
    b.mtu(name, bond.mtu)?;
    let stale: Vec<String> = b
        .state
        .ports_of(name)
        .iter()
        .filter(|p| !bond.ports.contains(&p.name))
        .map(|p| p.name.clone())
        .collect();
    for p in stale {
        b.release(&p)?;
    }
    for p in &bond.ports {
        b.enslave(p, name)?;
        // A port someone set down is brought back: the policy names it.
        b.up(p, true)?;
    }
    let have_primary = b
        .state
        .link(name)
        .and_then(|l| l.bond.as_ref())
        .and_then(|i| i.primary.clone());
    let want_primary = bond.primary.clone().filter(|_| supports_primary(bond.mode));
    if supports_primary(bond.mode) && have_primary != want_primary {
        b.push(Op::SetPrimary {
            bond: name.into(),
            port: want_primary,
        })?;
    }
    b.up(name, true)?;

    for v in &bond.vlans {
        let vname = vlan_name(name, v.id);
        let want = VlanInfo {
            id: v.id,
            parent: Some(name.into()),
        };
        match b.state.link(&vname) {
            None => b.push(Op::CreateVlan {
                name: vname.clone(),
                parent: name.into(),
                id: v.id,
            })?,
            Some(l) if l.kind != LinkKind::Vlan => {
                return Err(PlanError::NameTaken {
                    name: vname,
                    kind: l.kind.as_str().into(),
                    wanted: "vlan".into(),
                });
            }
            Some(l) if l.vlan.as_ref() != Some(&want) => {
                // Id and parent are fixed at creation; the name is the policy's, so rebuild.
                b.push(Op::DeleteLink {
                    name: vname.clone(),
                })?;
                b.push(Op::CreateVlan {
                    name: vname.clone(),
                    parent: name.into(),
                    id: v.id,
                })?;
            }
            Some(_) => {}
        }
        b.mtu(&vname, v.mtu)?;
        b.up(&vname, true)?;
    }
    Ok(())
}

/// How one interface looked before a change.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LinkSnapshot {
    pub name: String,
    /// Whether it existed (if not, revert deletes it).
    pub present: bool,
    #[serde(default)]
    pub kind: LinkKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub up: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bond: Option<BondInfo>,
}

/// Everything needed to put back what a plan for some rendered bonds may change: the
/// interfaces it touches as they were, the addresses and routes it may add (to delete again)
/// and the agent's own ones it may delete (to add again). Self-contained (names, not indexes),
/// so it can be checkpointed and reverted by another process.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UndoRecord {
    pub links: Vec<LinkSnapshot>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_addresses: Vec<(String, Cidr)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_addresses: Vec<(String, Cidr)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_routes: Vec<RouteOp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_routes: Vec<RouteOp>,
}

/// The undo record for applying `desired` to `state`: [`undo_for_ops`] of its plan, widened to
/// every interface `desired` names (later apply rounds may touch them too).
pub fn undo_record(
    state: &NetworkState,
    desired: &[RenderedBond],
) -> Result<UndoRecord, PlanError> {
    let ops = plan(state, desired)?;
    let mut extra: Vec<String> = Vec::new();
    for bond in desired {
        extra.push(bond.name.clone());
        extra.extend(bond.vlans.iter().map(|v| vlan_name(&bond.name, v.id)));
        extra.extend(bond.ports.iter().cloned());
        extra.extend(state.ports_of(&bond.name).iter().map(|p| p.name.clone()));
    }
    Ok(undo_for_ops(state, &ops, &extra))
}

/// The undo record for running `ops` on `state`: every interface an operation names (plus
/// `extra`) as it is now, and the addresses and routes the operations add or delete.
pub fn undo_for_ops(state: &NetworkState, ops: &[Op], extra: &[String]) -> UndoRecord {
    let mut names: Vec<(String, LinkKind)> = Vec::new();
    let mut add = |n: &str, kind: LinkKind| {
        if !names.iter().any(|(x, _)| x == n) {
            names.push((n.to_string(), kind));
        }
    };
    for op in ops {
        match op {
            Op::CreateBond { name, .. } => add(name, LinkKind::Bond),
            Op::CreateVlan { name, parent, .. } => {
                add(parent, LinkKind::Bond);
                add(name, LinkKind::Vlan);
            }
            Op::SetBondOptions { name, .. }
            | Op::DeleteLink { name }
            | Op::SetUp { name }
            | Op::SetDown { name }
            | Op::SetMtu { name, .. } => add(name, LinkKind::Ethernet),
            Op::SetPrimary { bond, .. } => add(bond, LinkKind::Bond),
            Op::Enslave { port, master } => {
                add(master, LinkKind::Bond);
                add(port, LinkKind::Ethernet);
            }
            Op::Release { port } => add(port, LinkKind::Ethernet),
            Op::AddAddress { interface, .. } | Op::DelAddress { interface, .. } => {
                add(interface, LinkKind::Ethernet)
            }
            Op::AddRoute { route } | Op::DelRoute { route } => {
                add(&route.interface, LinkKind::Ethernet)
            }
        }
    }
    for n in extra {
        let kind = if n.contains('.') {
            LinkKind::Vlan
        } else {
            LinkKind::Bond
        };
        add(n, kind);
    }
    let touched: BTreeSet<String> = names.iter().map(|(n, _)| n.clone()).collect();
    let mut rec = UndoRecord::default();
    // Side effects count too (a downed interface loses its routes and IPv6 addresses), so
    // compare the state before with the state the operations lead to.
    let mut after = state.clone();
    for op in ops {
        if simulate(&mut after, op).is_err() {
            break;
        }
    }
    let addrs = |s: &NetworkState| -> BTreeSet<(String, Cidr, bool)> {
        s.links
            .iter()
            .filter(|l| touched.contains(&l.name))
            .flat_map(|l| l.addresses.iter().map(|a| (l.name.clone(), a.cidr, a.ours)))
            .filter(|(_, c, _)| !c.is_link_local())
            .collect()
    };
    let (a0, a1) = (addrs(state), addrs(&after));
    let has = |set: &BTreeSet<(String, Cidr, bool)>, n: &str, c: Cidr| {
        set.iter().any(|(x, y, _)| x == n && *y == c)
    };
    rec.added_addresses = a1
        .iter()
        .filter(|(n, c, _)| !has(&a0, n, *c))
        .map(|(n, c, _)| (n.clone(), *c))
        .collect();
    rec.removed_addresses = a0
        .iter()
        .filter(|(n, c, _)| !has(&a1, n, *c))
        .map(|(n, c, _)| (n.clone(), *c))
        .collect();
    let routes = |s: &NetworkState| -> BTreeSet<RouteOp> {
        s.routes
            .iter()
            .filter(|r| r.interface.as_ref().is_some_and(|i| touched.contains(i)))
            .filter_map(RouteOp::from_observed)
            .collect()
    };
    let (r0, r1) = (routes(state), routes(&after));
    rec.added_routes = r1.difference(&r0).cloned().collect();
    // Prefix routes of addresses (and fe80::/64) are the kernel's: it puts them back with
    // the address or the link, so restoring them would only race it.
    let kernels = |r: &RouteOp| {
        r.gateway.is_none()
            && (r.destination.is_link_local()
                || state.link(&r.interface).is_some_and(|l| {
                    l.addresses
                        .iter()
                        .any(|a| !a.ours && a.cidr.network() == r.destination)
                }))
    };
    rec.removed_routes = r0
        .difference(&r1)
        .filter(|r| !kernels(r))
        .cloned()
        .collect();
    rec.links = names
        .into_iter()
        .map(|(n, kind)| match state.link(&n) {
            Some(l) => LinkSnapshot {
                name: n,
                present: true,
                kind: l.kind.clone(),
                master: l.master.clone(),
                mtu: l.mtu,
                up: l.up,
                bond: l.bond.clone(),
            },
            // Not there now: whatever the plan creates under that name goes on revert.
            None => LinkSnapshot {
                name: n,
                present: false,
                kind,
                master: None,
                mtu: None,
                up: false,
                bond: None,
            },
        })
        .collect();
    rec
}

/// The operations that bring `state` back to what `undo` recorded. Empty once it is. Every
/// step is conditional on the current state, so this works after none, some or all of a plan
/// ran and after an interrupted revert.
pub fn revert_plan(state: &NetworkState, undo: &UndoRecord) -> Result<Vec<Op>, PlanError> {
    let mut b = Builder {
        state: state.clone(),
        ops: Vec::new(),
        lenient: true,
    };
    let stays = |st: &NetworkState, n: &str| {
        st.link(n).is_some() && undo.links.iter().all(|l| l.name != n || l.present)
    };
    for route in &undo.added_routes {
        if stays(&b.state, &route.interface)
            && b.state.routes.iter().any(|r| r.ours && route.matches(r))
        {
            b.push(Op::DelRoute {
                route: route.clone(),
            })?;
        }
    }
    for (iface, cidr) in &undo.added_addresses {
        let ours_present = b
            .state
            .link(iface)
            .is_some_and(|l| l.addresses.iter().any(|a| a.ours && a.cidr == *cidr));
        if stays(&b.state, iface) && ours_present {
            b.push(Op::DelAddress {
                interface: iface.clone(),
                cidr: *cidr,
            })?;
        }
    }
    // Created interfaces go, VLANs before the bonds under them.
    let mut created: Vec<&LinkSnapshot> = undo.links.iter().filter(|l| !l.present).collect();
    created.sort_by_key(|l| l.kind != LinkKind::Vlan);
    for l in created {
        if b.state.link(&l.name).is_some() {
            b.push(Op::DeleteLink {
                name: l.name.clone(),
            })?;
        }
    }
    let present: Vec<&LinkSnapshot> = undo.links.iter().filter(|l| l.present).collect();
    // Bonds that existed get their options back first (a mode change needs them port-less).
    for l in present.iter().filter(|l| l.bond.is_some()) {
        restore_bond_options(&mut b, l)?;
    }
    for l in &present {
        let Some(cur) = b.state.link(&l.name) else {
            continue;
        };
        if cur.master == l.master {
            continue;
        }
        match &l.master {
            Some(m) if b.state.link(m).is_some() => b.enslave(&l.name, m)?,
            _ => b.release(&l.name)?,
        }
    }
    for l in &present {
        if b.state.link(&l.name).is_none() {
            continue;
        }
        // A port's MTU follows its bond; only a free interface gets its own back.
        if l.master.is_none() {
            b.mtu(&l.name, l.mtu)?;
        }
        b.up(&l.name, l.up)?;
    }
    for l in present.iter().filter(|l| l.bond.is_some()) {
        let want = l.bond.as_ref().and_then(|i| i.primary.clone());
        let have = b
            .state
            .link(&l.name)
            .and_then(|c| c.bond.as_ref())
            .and_then(|i| i.primary.clone());
        let mode = l.bond.as_ref().map(|i| i.mode).unwrap_or_default();
        if supports_primary(mode) && have != want && b.state.link(&l.name).is_some() {
            b.push(Op::SetPrimary {
                bond: l.name.clone(),
                port: want,
            })?;
        }
    }
    for (iface, cidr) in &undo.removed_addresses {
        let absent = b
            .state
            .link(iface)
            .is_some_and(|l| !l.addresses.iter().any(|a| a.cidr == *cidr));
        if absent {
            b.push(Op::AddAddress {
                interface: iface.clone(),
                cidr: *cidr,
            })?;
        }
    }
    for route in &undo.removed_routes {
        let link_up = b.state.link(&route.interface).is_some_and(|l| l.up);
        if link_up && !b.state.routes.iter().any(|r| route.matches(r)) {
            b.push(Op::AddRoute {
                route: route.clone(),
            })?;
        }
    }
    Ok(b.ops)
}

fn restore_bond_options(b: &mut Builder, snap: &LinkSnapshot) -> Result<(), PlanError> {
    let (Some(want), Some(cur)) = (
        snap.bond.as_ref(),
        b.state.link(&snap.name).and_then(|l| l.bond.clone()),
    ) else {
        return Ok(());
    };
    let name = snap.name.as_str();
    let mut opts = BondOptions::default();
    if cur.mode != want.mode {
        b.up(name, false)?;
        let ports: Vec<String> = b
            .state
            .ports_of(name)
            .iter()
            .map(|p| p.name.clone())
            .collect();
        for p in ports {
            b.release(&p)?;
        }
        opts.mode = Some(want.mode);
    }
    if cur.miimon != want.miimon {
        opts.miimon = Some(want.miimon);
    }
    if cur.updelay != want.updelay {
        opts.updelay = Some(want.updelay);
    }
    if cur.downdelay != want.downdelay {
        opts.downdelay = Some(want.downdelay);
    }
    if want.lacp_rate.is_some() && cur.lacp_rate != want.lacp_rate {
        b.up(name, false)?;
        opts.lacp_rate = want.lacp_rate;
    }
    if want.transmit_hash_policy.is_some() && cur.transmit_hash_policy != want.transmit_hash_policy
    {
        opts.transmit_hash_policy = want.transmit_hash_policy;
    }
    if !opts.is_empty() {
        b.push(Op::SetBondOptions {
            name: name.into(),
            options: opts,
        })?;
    }
    Ok(())
}

/// Names of every interface `desired` may touch (bonds, VLANs, ports).
pub fn touched_interfaces(desired: &[RenderedBond]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for bond in desired {
        out.insert(bond.name.clone());
        out.extend(bond.ports.iter().cloned());
        out.extend(bond.vlans.iter().map(|v| vlan_name(&bond.name, v.id)));
    }
    out
}

#[cfg(test)]
mod tests;
