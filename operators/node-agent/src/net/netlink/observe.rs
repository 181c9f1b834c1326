//! Reading the node's links, addresses and main-table routes over rtnetlink into a
//! [`NetworkState`]. The message decoding is pure (unit-tested on built messages); only
//! [`observe`] talks to the kernel.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    self as nl, InfoBond, InfoBondPort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVlan,
    LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage, State,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};
use thiserror::Error;

use super::sysfs::Sysfs;
use crate::crd::network::{BondMode, LacpRate, TransmitHashPolicy};
use crate::net::state::{
    AGENT_PROTOCOL, Address, BondInfo, BondPortInfo, Cidr, Link, LinkKind, NetworkState, Route,
    VlanInfo,
};

/// Reading the node's state failed.
#[derive(Debug, Error)]
#[error("netlink dump of {what}: {source}")]
pub struct ObserveError {
    pub what: &'static str,
    #[source]
    pub source: rtnetlink::Error,
}

/// A link as decoded, before indexes are turned into names.
#[derive(Debug, Default)]
struct RawLink {
    link: Link,
    master_index: Option<u32>,
    parent_index: Option<u32>,
    bond_primary: Option<u32>,
    bond_active: Option<u32>,
}

/// Reads the node's current network state.
pub async fn observe(handle: &Handle, sysfs: &Sysfs) -> Result<NetworkState, ObserveError> {
    let links: Vec<LinkMessage> =
        handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| ObserveError {
                what: "links",
                source,
            })?;
    let addrs: Vec<AddressMessage> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|source| ObserveError {
            what: "addresses",
            source,
        })?;
    let mut routes: Vec<RouteMessage> = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(|source| ObserveError {
            what: "IPv4 routes",
            source,
        })?;
    let v6: Vec<RouteMessage> = handle
        .route()
        .get(RouteMessageBuilder::<Ipv6Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(|source| ObserveError {
            what: "IPv6 routes",
            source,
        })?;
    routes.extend(v6);
    let mut state = assemble(&links, &addrs, &routes);
    for l in &mut state.links {
        l.speed_mbps = sysfs.speed_mbps(&l.name);
        l.pci_address = sysfs.pci_address(&l.name);
    }
    Ok(state)
}

/// Builds the state from dumped messages (pure).
pub fn assemble(
    links: &[LinkMessage],
    addrs: &[AddressMessage],
    routes: &[RouteMessage],
) -> NetworkState {
    let raws: Vec<RawLink> = links.iter().map(decode_link).collect();
    let names: BTreeMap<u32, String> = raws
        .iter()
        .map(|r| (r.link.index, r.link.name.clone()))
        .collect();
    let name_of = |i: Option<u32>| i.and_then(|i| names.get(&i).cloned());
    let mut by_index: BTreeMap<u32, Vec<Address>> = BTreeMap::new();
    for a in addrs {
        if let Some(addr) = decode_address(a) {
            by_index.entry(a.header.index).or_default().push(addr);
        }
    }
    let mut out = NetworkState::default();
    for mut r in raws {
        r.link.master = name_of(r.master_index);
        if let Some(v) = r.link.vlan.as_mut() {
            v.parent = name_of(r.parent_index);
        }
        if let Some(b) = r.link.bond.as_mut() {
            b.primary = name_of(r.bond_primary);
            b.active_port = name_of(r.bond_active);
        }
        let mut addresses = by_index.remove(&r.link.index).unwrap_or_default();
        addresses.sort();
        r.link.addresses = addresses;
        out.links.push(r.link);
    }
    out.links.sort_by_key(|l| l.index);
    out.routes = routes
        .iter()
        .filter_map(|m| decode_route(m, &names))
        .collect();
    out.routes.sort();
    out
}

fn oper_state(s: &State) -> String {
    match s {
        State::Unknown => "unknown".into(),
        State::NotPresent => "notpresent".into(),
        State::Down => "down".into(),
        State::LowerLayerDown => "lowerlayerdown".into(),
        State::Testing => "testing".into(),
        State::Dormant => "dormant".into(),
        State::Up => "up".into(),
        State::Other(n) => format!("other({n})"),
        _ => "unknown".into(),
    }
}

fn mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn decode_link(m: &LinkMessage) -> RawLink {
    let mut r = RawLink::default();
    r.link.index = m.header.index;
    r.link.up = m.header.flags.contains(LinkFlags::Up);
    let mut kind: Option<LinkKind> = None;
    for attr in &m.attributes {
        match attr {
            LinkAttribute::IfName(n) => r.link.name = n.clone(),
            LinkAttribute::Address(a) => r.link.mac = Some(mac(a)),
            LinkAttribute::Mtu(v) => r.link.mtu = Some(*v),
            LinkAttribute::OperState(s) => r.link.oper_state = oper_state(s),
            LinkAttribute::Carrier(c) => r.link.carrier = Some(*c != 0),
            LinkAttribute::Controller(i) => r.master_index = Some(*i),
            LinkAttribute::Link(i) => r.parent_index = Some(*i),
            LinkAttribute::LinkInfo(infos) => kind = decode_info(infos, &mut r),
            _ => {}
        }
    }
    r.link.kind = kind.unwrap_or_else(|| {
        if m.header.flags.contains(LinkFlags::Loopback)
            || m.header.link_layer_type == LinkLayerType::Loopback
        {
            LinkKind::Loopback
        } else if m.header.link_layer_type == LinkLayerType::Ether {
            LinkKind::Ethernet
        } else {
            LinkKind::Other(format!("{:?}", m.header.link_layer_type).to_lowercase())
        }
    });
    r
}

fn decode_info(infos: &[LinkInfo], r: &mut RawLink) -> Option<LinkKind> {
    let mut kind = None;
    for info in infos {
        match info {
            LinkInfo::Kind(k) => {
                kind = Some(match k {
                    InfoKind::Bond => LinkKind::Bond,
                    InfoKind::Vlan => LinkKind::Vlan,
                    InfoKind::Veth => LinkKind::Veth,
                    InfoKind::Bridge => LinkKind::Bridge,
                    other => LinkKind::Other(other.to_string()),
                })
            }
            LinkInfo::Data(InfoData::Bond(attrs)) => r.link.bond = Some(decode_bond(attrs, r)),
            LinkInfo::Data(InfoData::Vlan(attrs)) => {
                let id = attrs.iter().find_map(|a| match a {
                    InfoVlan::Id(id) => Some(*id),
                    _ => None,
                });
                r.link.vlan = Some(VlanInfo {
                    id: id.unwrap_or(0),
                    parent: None,
                });
            }
            LinkInfo::PortKind(k) => {
                r.link.master_kind = Some(match k {
                    InfoPortKind::Bond => "bond".into(),
                    InfoPortKind::Bridge => "bridge".into(),
                    InfoPortKind::Vrf => "vrf".into(),
                    InfoPortKind::Team => "team".into(),
                    InfoPortKind::Other(s) => s.clone(),
                    _ => "other".into(),
                })
            }
            LinkInfo::PortData(InfoPortData::BondPort(attrs)) => {
                r.link.bond_port = Some(decode_bond_port(attrs))
            }
            _ => {}
        }
    }
    kind
}

fn decode_bond(attrs: &[InfoBond], r: &mut RawLink) -> BondInfo {
    let mut b = BondInfo::default();
    for a in attrs {
        match a {
            InfoBond::Mode(m) => b.mode = bond_mode(m),
            InfoBond::MiiMon(v) => b.miimon = *v,
            InfoBond::UpDelay(v) => b.updelay = *v,
            InfoBond::DownDelay(v) => b.downdelay = *v,
            InfoBond::AdLacpRate(v) => {
                b.lacp_rate = match v {
                    nl::BondLacpRate::Fast => Some(LacpRate::Fast),
                    _ => Some(LacpRate::Slow),
                }
            }
            InfoBond::XmitHashPolicy(p) => b.transmit_hash_policy = hash_policy(p),
            InfoBond::Primary(i) => r.bond_primary = Some(*i),
            InfoBond::ActivePort(i) => r.bond_active = Some(*i),
            _ => {}
        }
    }
    b
}

fn decode_bond_port(attrs: &[InfoBondPort]) -> BondPortInfo {
    let mut p = BondPortInfo::default();
    for a in attrs {
        match a {
            InfoBondPort::MiiStatus(s) => {
                p.mii_status = match s {
                    nl::MiiStatus::Up => "up".into(),
                    nl::MiiStatus::GoingDown => "going-down".into(),
                    nl::MiiStatus::Down => "down".into(),
                    nl::MiiStatus::GoingBack => "going-back".into(),
                    other => format!("{other:?}").to_lowercase(),
                }
            }
            InfoBondPort::BondPortState(s) => {
                p.state = match s {
                    nl::BondPortState::Active => "active".into(),
                    nl::BondPortState::Backup => "backup".into(),
                    other => format!("{other:?}").to_lowercase(),
                }
            }
            _ => {}
        }
    }
    p
}

/// The kernel's bonding mode in the API's terms (unknown values read as balance-rr, mode 0).
pub fn bond_mode(m: &nl::BondMode) -> BondMode {
    match m {
        nl::BondMode::ActiveBackup => BondMode::ActiveBackup,
        nl::BondMode::BalanceXor => BondMode::BalanceXor,
        nl::BondMode::Broadcast => BondMode::Broadcast,
        nl::BondMode::Ieee8023Ad => BondMode::Ieee8023ad,
        nl::BondMode::BalanceTlb => BondMode::BalanceTlb,
        nl::BondMode::BalanceAlb => BondMode::BalanceAlb,
        _ => BondMode::BalanceRr,
    }
}

fn hash_policy(p: &nl::BondXmitHashPolicy) -> Option<TransmitHashPolicy> {
    Some(match p {
        nl::BondXmitHashPolicy::Layer2 => TransmitHashPolicy::Layer2,
        nl::BondXmitHashPolicy::Layer23 => TransmitHashPolicy::Layer23,
        nl::BondXmitHashPolicy::Layer34 => TransmitHashPolicy::Layer34,
        nl::BondXmitHashPolicy::Encap23 => TransmitHashPolicy::Encap23,
        nl::BondXmitHashPolicy::Encap34 => TransmitHashPolicy::Encap34,
        nl::BondXmitHashPolicy::VlanSrcMac => TransmitHashPolicy::VlanSrcMac,
        _ => return None,
    })
}

fn decode_address(m: &AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    let mut ours = false;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Protocol(p) => ours = u8::from(*p) == AGENT_PROTOCOL,
            _ => {}
        }
    }
    // For IPv4, IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on
    // point-to-point links); IPv6 sends IFA_ADDRESS only.
    let ip = local.or(address)?;
    Some(Address {
        cidr: Cidr::new(ip, m.header.prefix_len),
        ours,
    })
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn decode_route(m: &RouteMessage, names: &BTreeMap<u32, String>) -> Option<Route> {
    let mut table = u32::from(m.header.table);
    let mut destination = None;
    let mut gateway = None;
    let mut oif = None;
    let mut metric = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => destination = route_ip(d),
            RouteAttribute::Gateway(g) => gateway = route_ip(g),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = Some(*p),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) || m.header.kind != RouteType::Unicast {
        return None;
    }
    let unspecified = match m.header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let destination = Cidr::new(
        destination.unwrap_or(unspecified),
        m.header.destination_prefix_length,
    );
    Some(Route {
        destination,
        gateway,
        interface: oif.and_then(|i| names.get(&i).cloned()),
        // The kernel omits a zero IPv4 metric; keep absent and zero the same.
        metric: metric.filter(|m| *m != 0),
        ours: u8::from(m.header.protocol) == AGENT_PROTOCOL,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::route::RouteProtocol;
    use rtnetlink::{LinkBond, LinkUnspec, LinkVlan};

    fn with_index(mut m: LinkMessage, index: u32) -> LinkMessage {
        m.header.index = index;
        m
    }

    #[test]
    fn decodes_bond_port_and_vlan() {
        let bond = LinkBond::new("bond0")
            .mode(nl::BondMode::ActiveBackup)
            .miimon(100)
            .updelay(200)
            .active_port(3)
            .primary(3)
            .mtu(9000)
            .up()
            .build();
        let mut port = LinkUnspec::new_with_name("eth1")
            .controller(9)
            .set_port_kind(InfoPortKind::Bond)
            .set_port_data(InfoPortData::BondPort(vec![
                InfoBondPort::MiiStatus(nl::MiiStatus::Up),
                InfoBondPort::BondPortState(nl::BondPortState::Active),
            ]))
            .build();
        port.header.link_layer_type = LinkLayerType::Ether;
        port.attributes
            .push(LinkAttribute::Address(vec![0x52, 0x54, 0, 0xab, 0, 0x11]));
        port.attributes.push(LinkAttribute::Carrier(1));
        port.attributes.push(LinkAttribute::OperState(State::Up));
        let vlan = LinkVlan::new("bond0.100", 9, 100).build();
        let mut lo = LinkUnspec::new_with_name("lo").up().build();
        lo.header.link_layer_type = LinkLayerType::Loopback;

        let mut addr = AddressMessage::default();
        addr.header.index = 9;
        addr.header.prefix_len = 24;
        addr.attributes
            .push(AddressAttribute::Local("10.20.0.5".parse().unwrap()));
        addr.attributes
            .push(AddressAttribute::Address("10.20.0.5".parse().unwrap()));
        addr.attributes
            .push(AddressAttribute::Protocol(AGENT_PROTOCOL.into()));

        let mut route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix("10.30.0.0".parse().unwrap(), 16)
            .gateway("10.20.0.1".parse().unwrap())
            .output_interface(9)
            .build();
        route.header.protocol = RouteProtocol::from(AGENT_PROTOCOL);
        let default = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway("192.168.1.1".parse().unwrap())
            .output_interface(3)
            .priority(100)
            .build();
        let mut local = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix("10.20.0.5".parse().unwrap(), 32)
            .output_interface(9)
            .build();
        local.header.table = 255;

        let s = assemble(
            &[
                with_index(lo, 1),
                with_index(port, 3),
                with_index(bond, 9),
                with_index(vlan, 10),
            ],
            &[addr],
            &[route, default, local],
        );
        let bond = s.link("bond0").unwrap();
        assert_eq!(bond.kind, LinkKind::Bond);
        assert!(bond.up);
        assert_eq!(bond.mtu, Some(9000));
        let info = bond.bond.as_ref().unwrap();
        assert_eq!(info.mode, BondMode::ActiveBackup);
        assert_eq!((info.miimon, info.updelay), (100, 200));
        assert_eq!(info.active_port.as_deref(), Some("eth1"));
        assert_eq!(info.primary.as_deref(), Some("eth1"));
        assert_eq!(bond.addresses[0].cidr.to_string(), "10.20.0.5/24");
        assert!(bond.addresses[0].ours);
        let port = s.link("eth1").unwrap();
        assert_eq!(port.kind, LinkKind::Ethernet);
        assert_eq!(port.mac.as_deref(), Some("52:54:00:ab:00:11"));
        assert_eq!(port.master.as_deref(), Some("bond0"));
        assert_eq!(port.master_kind.as_deref(), Some("bond"));
        assert_eq!(port.carrier, Some(true));
        assert_eq!(port.oper_state, "up");
        assert_eq!(port.bond_port.as_ref().unwrap().state, "active");
        let vlan = s.link("bond0.100").unwrap();
        assert_eq!(vlan.kind, LinkKind::Vlan);
        assert_eq!(
            vlan.vlan,
            Some(VlanInfo {
                id: 100,
                parent: Some("bond0".into())
            })
        );
        assert_eq!(s.link("lo").unwrap().kind, LinkKind::Loopback);
        let routes: Vec<String> = s
            .routes
            .iter()
            .map(|r| {
                format!(
                    "{} {:?} {:?} {:?} {}",
                    r.destination, r.gateway, r.interface, r.metric, r.ours
                )
            })
            .collect();
        assert_eq!(
            routes,
            [
                "0.0.0.0/0 Some(192.168.1.1) Some(\"eth1\") Some(100) false",
                "10.30.0.0/16 Some(10.20.0.1) Some(\"bond0\") None true",
            ]
        );
    }
}
