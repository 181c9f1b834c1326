//! Resolving a policy's bonds against one node's observed state (pure): which interfaces become
//! ports, and whether taking them is safe.
//!
//! A port that carries the node's default route is refused outright rather than left to the
//! connectivity probes: enslaving it removes that route with certainty (not by accident the
//! probes would have to discover), the node would be cut off from the API server for the whole
//! probe timeout before the rollback, and the same bond built over a port that is already part
//! of it is still allowed, so re-applying an uplink bond stays possible.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use super::state::{Cidr, Link, LinkKind, NetworkState};
use crate::crd::network::{BondSpec, NodeNetworkPolicySpec, RenderedBond};

/// Why a policy cannot be rendered for this node.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RenderError {
    #[error("bond {bond}: no interface matches its ports (names, MACs or PCI addresses)")]
    NoPorts { bond: String },
    #[error(
        "bond {bond}: port {port} is already a port of {master}, which this policy does not name"
    )]
    PortInUse {
        bond: String,
        port: String,
        master: String,
    },
    #[error("bond {bond}: port {port} is also selected by bond {other}")]
    PortClaimedTwice {
        bond: String,
        port: String,
        other: String,
    },
    #[error(
        "bond {bond}: port {port} carries addresses {addresses:?} it would lose; move them to the bond's addresses first"
    )]
    PortHasAddresses {
        bond: String,
        port: String,
        addresses: Vec<String>,
    },
    #[error(
        "bond {bond}: port {port} carries the node's default route; enslaving it would cut the node's uplink"
    )]
    PortCarriesDefaultRoute { bond: String, port: String },
    #[error("bond {bond}: port {port} is a {kind} interface and cannot be a bond port")]
    PortNotEligible {
        bond: String,
        port: String,
        kind: String,
    },
    #[error("bond {bond}: primary {primary} is not one of its ports {ports:?}")]
    PrimaryNotAPort {
        bond: String,
        primary: String,
        ports: Vec<String>,
    },
    #[error("interface {name} exists and is a {kind}, not a {wanted}")]
    NameTaken {
        name: String,
        kind: String,
        wanted: String,
    },
    #[error("bond {bond}: {message}")]
    Invalid { bond: String, message: String },
}

/// The bonds of `policy` resolved for the node `state` describes, in policy order.
pub fn render(
    policy: &NodeNetworkPolicySpec,
    state: &NetworkState,
) -> Result<Vec<RenderedBond>, RenderError> {
    let named: BTreeSet<&str> = policy.bonds.iter().map(|b| b.name.as_str()).collect();
    let mut claimed: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::with_capacity(policy.bonds.len());
    for spec in &policy.bonds {
        let rendered = render_bond(spec, state, &named)?;
        for port in &rendered.ports {
            if let Some(other) = claimed.insert(port.clone(), spec.name.clone()) {
                return Err(RenderError::PortClaimedTwice {
                    bond: spec.name.clone(),
                    port: port.clone(),
                    other,
                });
            }
        }
        out.push(rendered);
    }
    Ok(out)
}

fn render_bond(
    spec: &BondSpec,
    state: &NetworkState,
    named: &BTreeSet<&str>,
) -> Result<RenderedBond, RenderError> {
    let bond = spec.name.clone();
    check_name(state, &bond, LinkKind::Bond)?;
    for v in &spec.vlans {
        check_name(state, &format!("{}.{}", spec.name, v.id), LinkKind::Vlan)?;
    }
    validate_cidrs(&bond, &spec.addresses)?;
    for v in &spec.vlans {
        validate_cidrs(&bond, &v.addresses)?;
    }
    for r in spec
        .routes
        .iter()
        .chain(spec.vlans.iter().flat_map(|v| &v.routes))
    {
        validate_cidrs(&bond, std::slice::from_ref(&r.destination))?;
        if let Some(gw) = &r.gateway {
            gw.parse::<std::net::IpAddr>()
                .map_err(|_| RenderError::Invalid {
                    bond: bond.clone(),
                    message: format!("route gateway {gw:?} is not an IP address"),
                })?;
        }
    }

    let mut ports: Vec<&Link> = state
        .links
        .iter()
        .filter(|l| l.name != spec.name && selects(spec, l))
        .collect();
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    ports.dedup_by(|a, b| a.name == b.name);
    if ports.is_empty() {
        return Err(RenderError::NoPorts { bond });
    }
    let default_ifaces: BTreeSet<&str> = state
        .routes
        .iter()
        .filter(|r| r.is_default())
        .filter_map(|r| r.interface.as_deref())
        .collect();
    for p in &ports {
        check_port(&bond, p, named, &default_ifaces)?;
    }
    let ports: Vec<String> = ports.iter().map(|p| p.name.clone()).collect();
    if let Some(primary) = &spec.primary
        && !ports.contains(primary)
    {
        return Err(RenderError::PrimaryNotAPort {
            bond,
            primary: primary.clone(),
            ports,
        });
    }
    let mut vlans = spec.vlans.clone();
    vlans.sort_by_key(|v| v.id);
    Ok(RenderedBond {
        name: spec.name.clone(),
        mode: spec.mode,
        miimon: spec.miimon,
        updelay: spec.updelay,
        downdelay: spec.downdelay,
        lacp_rate: spec.lacp_rate,
        transmit_hash_policy: spec.transmit_hash_policy,
        primary: spec.primary.clone(),
        ports,
        mtu: spec.mtu,
        addresses: spec.addresses.clone(),
        routes: spec.routes.clone(),
        vlans,
    })
}

/// Whether `link` matches any of the bond's port selectors.
fn selects(spec: &BondSpec, link: &Link) -> bool {
    let sel = &spec.ports;
    sel.names.contains(&link.name)
        || link
            .mac
            .as_deref()
            .is_some_and(|m| sel.macs.iter().any(|s| s.eq_ignore_ascii_case(m)))
        || link
            .pci_address
            .as_deref()
            .is_some_and(|p| sel.pci_addresses.iter().any(|s| s.eq_ignore_ascii_case(p)))
}

fn check_port(
    bond: &str,
    port: &Link,
    named: &BTreeSet<&str>,
    default_ifaces: &BTreeSet<&str>,
) -> Result<(), RenderError> {
    let err_kind = |kind: &str| RenderError::PortNotEligible {
        bond: bond.to_string(),
        port: port.name.clone(),
        kind: kind.to_string(),
    };
    match &port.kind {
        LinkKind::Ethernet | LinkKind::Veth => {}
        other => return Err(err_kind(other.as_str())),
    }
    let already_ours = port.master.as_deref() == Some(bond);
    if let Some(master) = &port.master
        && !already_ours
        && !named.contains(master.as_str())
    {
        return Err(RenderError::PortInUse {
            bond: bond.to_string(),
            port: port.name.clone(),
            master: master.clone(),
        });
    }
    if already_ours {
        return Ok(());
    }
    let addresses: Vec<String> = port
        .addresses
        .iter()
        .filter(|a| !a.cidr.is_link_local())
        .map(|a| a.cidr.to_string())
        .collect();
    if !addresses.is_empty() {
        return Err(RenderError::PortHasAddresses {
            bond: bond.to_string(),
            port: port.name.clone(),
            addresses,
        });
    }
    if default_ifaces.contains(port.name.as_str()) {
        return Err(RenderError::PortCarriesDefaultRoute {
            bond: bond.to_string(),
            port: port.name.clone(),
        });
    }
    Ok(())
}

fn check_name(state: &NetworkState, name: &str, wanted: LinkKind) -> Result<(), RenderError> {
    match state.link(name) {
        Some(l) if l.kind != wanted => Err(RenderError::NameTaken {
            name: name.to_string(),
            kind: l.kind.as_str().to_string(),
            wanted: wanted.as_str().to_string(),
        }),
        _ => Ok(()),
    }
}

fn validate_cidrs(bond: &str, cidrs: &[String]) -> Result<(), RenderError> {
    for c in cidrs {
        c.parse::<Cidr>().map_err(|e| RenderError::Invalid {
            bond: bond.to_string(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::network::{BondMode, PortSelector};

    fn plain() -> NetworkState {
        serde_json::from_str(include_str!("../../tests/fixtures/net/plain.json")).unwrap()
    }
    fn bonded() -> NetworkState {
        serde_json::from_str(include_str!("../../tests/fixtures/net/bonded.json")).unwrap()
    }
    fn policy(ports: PortSelector) -> NodeNetworkPolicySpec {
        NodeNetworkPolicySpec {
            bonds: vec![BondSpec {
                name: "bond0".into(),
                mode: BondMode::ActiveBackup,
                miimon: 100,
                ports,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn ports_by_name_mac_and_pci_are_sorted() {
        let p = policy(PortSelector {
            names: vec!["eth2".into()],
            macs: vec!["52:54:00:00:00:11".to_uppercase()],
            pci_addresses: vec!["0000:3b:00.1".into()],
        });
        let r = render(&p, &plain()).unwrap();
        assert_eq!(r[0].ports, ["eth1", "eth2"]);
    }

    #[test]
    fn no_port_found() {
        let p = policy(PortSelector {
            names: vec!["nope".into()],
            ..Default::default()
        });
        assert!(matches!(
            render(&p, &plain()),
            Err(RenderError::NoPorts { .. })
        ));
    }

    #[test]
    fn refuses_bridge_port_address_carrier_and_uplink() {
        let cases = [
            ("eth3", "PortInUse"),
            ("eth4", "PortHasAddresses"),
            ("eth0", "PortHasAddresses"),
            ("br0", "PortNotEligible"),
        ];
        for (port, want) in cases {
            let p = policy(PortSelector {
                names: vec![port.into()],
                ..Default::default()
            });
            let err = render(&p, &plain()).unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{port}: {err:?}");
        }
        let mut state = plain();
        state.link_mut("eth0").unwrap().addresses.clear();
        let p = policy(PortSelector {
            names: vec!["eth0".into()],
            ..Default::default()
        });
        assert!(matches!(
            render(&p, &state),
            Err(RenderError::PortCarriesDefaultRoute { .. })
        ));
    }

    #[test]
    fn existing_ports_of_the_bond_are_fine() {
        let p = policy(PortSelector {
            names: vec!["eth1".into(), "eth2".into()],
            ..Default::default()
        });
        let r = render(&p, &bonded()).unwrap();
        assert_eq!(r[0].ports, ["eth1", "eth2"]);
    }

    #[test]
    fn primary_must_be_a_port_and_names_must_fit() {
        let mut p = policy(PortSelector {
            names: vec!["eth1".into()],
            ..Default::default()
        });
        p.bonds[0].primary = Some("eth2".into());
        assert!(matches!(
            render(&p, &plain()),
            Err(RenderError::PrimaryNotAPort { .. })
        ));
        p.bonds[0].primary = None;
        p.bonds[0].name = "eth5".into();
        assert!(matches!(
            render(&p, &plain()),
            Err(RenderError::NameTaken { .. })
        ));
    }

    #[test]
    fn a_port_claimed_by_two_bonds_is_refused() {
        let mut p = policy(PortSelector {
            names: vec!["eth1".into()],
            ..Default::default()
        });
        let mut second = p.bonds[0].clone();
        second.name = "bond1".into();
        second.ports.macs = vec!["52:54:00:00:00:11".into()];
        p.bonds.push(second);
        assert!(matches!(
            render(&p, &plain()),
            Err(RenderError::PortClaimedTwice { .. })
        ));
    }
}
