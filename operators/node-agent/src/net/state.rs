//! The node's network as the agent models it: links, addresses, routes, bonds. Filled by
//! [`super::netlink::observe`] (or from recorded fixtures in tests) and converted into the
//! published [`NodeNetworkStateStatus`].

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::crd::network::{
    BondMode, BondPortStatus, BondStatus, InterfaceStatus, LacpRate, NodeNetworkStateStatus,
    RouteStatus, TransmitHashPolicy,
};

/// Protocol tag the agent puts on the addresses (IFA_PROTO) and routes (RTM_PROTOCOL) it creates,
/// so it can tell them from everything else and never remove what it did not create.
pub const AGENT_PROTOCOL: u8 = 157;

/// Everything observed on the node at one instant.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkState {
    pub links: Vec<Link>,
    /// Main-table unicast routes.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// One network interface.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub kind: LinkKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Administratively up (IFF_UP).
    #[serde(default)]
    pub up: bool,
    /// The kernel's operational state in lower case (up, down, lowerlayerdown, unknown...).
    #[serde(default)]
    pub oper_state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mbps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<String>,
    /// The bond or bridge this interface is a port of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Kind of the master (bond, bridge...), from the port's link info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bond: Option<BondInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bond_port: Option<BondPortInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<VlanInfo>,
}

/// What kind of interface a link is (IFLA_INFO_KIND; no kind means a plain device).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    #[default]
    Ethernet,
    Bond,
    Vlan,
    Veth,
    Bridge,
    Loopback,
    /// Any other kind, by the kernel's name.
    #[serde(untagged)]
    Other(String),
}

impl LinkKind {
    pub fn as_str(&self) -> &str {
        match self {
            LinkKind::Ethernet => "ethernet",
            LinkKind::Bond => "bond",
            LinkKind::Vlan => "vlan",
            LinkKind::Veth => "veth",
            LinkKind::Bridge => "bridge",
            LinkKind::Loopback => "loopback",
            LinkKind::Other(s) => s,
        }
    }
}

/// An address on a link.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub cidr: Cidr,
    /// Created by the agent (carries [`AGENT_PROTOCOL`]).
    #[serde(default)]
    pub ours: bool,
}

/// Bond settings as the kernel runs them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BondInfo {
    pub mode: BondMode,
    #[serde(default)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_port: Option<String>,
}

/// A bond port's state as the bond sees it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BondPortInfo {
    /// The MII monitor's view: up, down, going-down, going-back.
    pub mii_status: String,
    /// active or backup.
    #[serde(default)]
    pub state: String,
}

/// A VLAN sub-interface's settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VlanInfo {
    pub id: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// A main-table route.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub destination: Cidr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// Created by the agent (carries [`AGENT_PROTOCOL`]).
    #[serde(default)]
    pub ours: bool,
}

impl Route {
    /// The default route of its family.
    pub fn is_default(&self) -> bool {
        self.destination.prefix == 0
    }
}

/// An IP address with a prefix length, written `10.0.0.5/24` or `fd00::5/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// A string that is not a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a CIDR such as 10.0.0.5/24 or fd00::5/64")]
pub struct CidrError(pub String);

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Self {
        Cidr { addr, prefix }
    }

    /// The network address (host bits cleared): route destinations are stored this way.
    pub fn network(self) -> Cidr {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((bits & mask).into())
            }
        };
        Cidr {
            addr,
            prefix: self.prefix,
        }
    }

    /// Whether `ip` lies in this prefix.
    pub fn contains(self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4()
            && Cidr::new(ip, self.prefix).network() == self.network()
    }

    /// fe80::/10: every IPv6 interface has one; enslaving a port drops it harmlessly.
    pub fn is_link_local(self) -> bool {
        match self.addr {
            IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
            IpAddr::V4(a) => a.is_link_local(),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl NetworkState {
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn link_mut(&mut self, name: &str) -> Option<&mut Link> {
        self.links.iter_mut().find(|l| l.name == name)
    }

    /// The ports of `master`, sorted by name.
    pub fn ports_of(&self, master: &str) -> Vec<&Link> {
        let mut ports: Vec<&Link> = self
            .links
            .iter()
            .filter(|l| l.master.as_deref() == Some(master))
            .collect();
        ports.sort_by(|a, b| a.name.cmp(&b.name));
        ports
    }
}

/// The published form of `state`, sorted so that an unchanged node serializes identically
/// (the agent writes status only when it changed). `lastRefreshed`, `refreshedFor` and
/// conditions are left for the agent to fill.
pub fn to_status(state: &NetworkState) -> NodeNetworkStateStatus {
    let mut interfaces: Vec<InterfaceStatus> = state
        .links
        .iter()
        .map(|l| {
            let mut addresses: Vec<Cidr> = l.addresses.iter().map(|a| a.cidr).collect();
            addresses.sort();
            addresses.dedup();
            InterfaceStatus {
                name: l.name.clone(),
                kind: l.kind.as_str().to_string(),
                mac: l.mac.clone(),
                pci_address: l.pci_address.clone(),
                mtu: l.mtu,
                oper_state: l.oper_state.clone(),
                carrier: l.carrier,
                speed_mbps: l.speed_mbps,
                master: l.master.clone(),
                addresses: addresses.iter().map(Cidr::to_string).collect(),
            }
        })
        .collect();
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));

    let mut bonds: Vec<BondStatus> = state
        .links
        .iter()
        .filter_map(|l| l.bond.as_ref().map(|b| (l, b)))
        .map(|(l, b)| BondStatus {
            name: l.name.clone(),
            mode: b.mode.as_str().to_string(),
            miimon: Some(b.miimon),
            active_port: b.active_port.clone(),
            ports: state
                .ports_of(&l.name)
                .into_iter()
                .map(|p| BondPortStatus {
                    name: p.name.clone(),
                    link: p
                        .bond_port
                        .as_ref()
                        .map(|bp| bp.mii_status.clone())
                        .unwrap_or_else(|| "unknown".to_string()),
                    speed_mbps: p.speed_mbps,
                })
                .collect(),
        })
        .collect();
    bonds.sort_by(|a, b| a.name.cmp(&b.name));

    let mut routes: Vec<&Route> = state.routes.iter().collect();
    routes.sort();
    let mut routes: Vec<RouteStatus> = routes
        .into_iter()
        .map(|r| RouteStatus {
            destination: r.destination.to_string(),
            gateway: r.gateway.map(|g| g.to_string()),
            interface: r.interface.clone(),
            metric: r.metric,
        })
        .collect();
    routes.dedup();

    NodeNetworkStateStatus {
        interface_count: u32::try_from(interfaces.len()).unwrap_or(u32::MAX),
        bond_count: u32::try_from(bonds.len()).unwrap_or(u32::MAX),
        interfaces,
        bonds,
        routes,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_prints_and_masks() {
        let c: Cidr = "10.1.2.3/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.1.2.3/24");
        assert_eq!(c.network().to_string(), "10.1.2.0/24");
        let d: Cidr = "0.0.0.0/0".parse().unwrap();
        assert_eq!(d.network(), d);
        let v6: Cidr = "fd00::5/64".parse().unwrap();
        assert_eq!(v6.network().to_string(), "fd00::/64");
        assert!("fe80::1/64".parse::<Cidr>().unwrap().is_link_local());
        assert!(!v6.is_link_local());
        assert!("10.0.0.1/33".parse::<Cidr>().is_err());
        assert!("10.0.0.1".parse::<Cidr>().is_err());
        assert!("x/1".parse::<Cidr>().is_err());
    }

    #[test]
    fn status_is_sorted_and_stable() {
        let mut state: NetworkState =
            serde_json::from_str(include_str!("../../tests/fixtures/net/bonded.json")).unwrap();
        let a = serde_json::to_string(&to_status(&state)).unwrap();
        state.links.reverse();
        state.routes.reverse();
        for l in &mut state.links {
            l.addresses.reverse();
        }
        let b = serde_json::to_string(&to_status(&state)).unwrap();
        assert_eq!(a, b);
        let status = to_status(&state);
        assert_eq!(status.bond_count, 1);
        let bond = &status.bonds[0];
        assert_eq!(bond.name, "bond0");
        assert_eq!(bond.mode, "active-backup");
        assert_eq!(bond.active_port.as_deref(), Some("eth1"));
        let ports: Vec<&str> = bond.ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(ports, ["eth1", "eth2"]);
        let names: Vec<&str> = status.interfaces.iter().map(|i| i.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }
}
