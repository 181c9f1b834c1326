//! A model of what the kernel does with each [`Op`]: enough to order plans correctly and to
//! check in unit tests that a plan converges (a second plan after it is empty).

use thiserror::Error;

use super::{Op, RouteOp, default_metric};
use crate::crd::network::{BondMode, LacpRate, TransmitHashPolicy};
use crate::net::state::{
    Address, BondInfo, BondPortInfo, Link, LinkKind, NetworkState, Route, VlanInfo,
};

/// Why the kernel would refuse an operation.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SimError {
    #[error("no interface {0}")]
    NoSuchInterface(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0}")]
    Refused(String),
}

fn link<'a>(st: &'a mut NetworkState, name: &str) -> Result<&'a mut Link, SimError> {
    st.link_mut(name)
        .ok_or_else(|| SimError::NoSuchInterface(name.into()))
}

fn refuse(msg: String) -> Result<(), SimError> {
    Err(SimError::Refused(msg))
}

/// Applies `op` to `state` as the kernel would, or says why the kernel would refuse it.
pub fn simulate(state: &mut NetworkState, op: &Op) -> Result<(), SimError> {
    match op {
        Op::CreateBond { name, options } => {
            if state.link(name).is_some() {
                return Err(SimError::Exists(name.clone()));
            }
            let index = state.links.iter().map(|l| l.index).max().unwrap_or(0) + 1;
            let mode = options.mode.unwrap_or(BondMode::BalanceRr);
            state.links.push(Link {
                index,
                name: name.clone(),
                kind: LinkKind::Bond,
                mtu: Some(1500),
                oper_state: "down".into(),
                bond: Some(BondInfo {
                    mode,
                    miimon: options.miimon.unwrap_or(0),
                    updelay: options.updelay.unwrap_or(0),
                    downdelay: options.downdelay.unwrap_or(0),
                    lacp_rate: Some(options.lacp_rate.unwrap_or(LacpRate::Slow)),
                    transmit_hash_policy: Some(
                        options
                            .transmit_hash_policy
                            .unwrap_or(TransmitHashPolicy::Layer2),
                    ),
                    primary: None,
                    active_port: None,
                }),
                ..Default::default()
            });
        }
        Op::SetBondOptions { name, options } => {
            let has_ports = !state.ports_of(name).is_empty();
            let l = link(state, name)?;
            let up = l.up;
            let Some(info) = l.bond.as_mut() else {
                return refuse(format!("{name} is not a bond"));
            };
            if let Some(m) = options.mode {
                if m != info.mode && (up || has_ports) {
                    return refuse(format!(
                        "{name}: mode changes only while down without ports"
                    ));
                }
                info.mode = m;
            }
            if let Some(r) = options.lacp_rate {
                if up && info.lacp_rate != Some(r) {
                    return refuse(format!("{name}: lacp_rate changes only while down"));
                }
                info.lacp_rate = Some(r);
            }
            if let Some(v) = options.miimon {
                info.miimon = v;
            }
            if let Some(v) = options.updelay {
                info.updelay = v;
            }
            if let Some(v) = options.downdelay {
                info.downdelay = v;
            }
            if let Some(v) = options.transmit_hash_policy {
                info.transmit_hash_policy = Some(v);
            }
        }
        Op::SetPrimary { bond, port } => {
            let l = link(state, bond)?;
            let Some(info) = l.bond.as_mut() else {
                return refuse(format!("{bond} is not a bond"));
            };
            info.primary = port.clone();
        }
        Op::CreateVlan { name, parent, id } => {
            if state.link(name).is_some() {
                return Err(SimError::Exists(name.clone()));
            }
            let p = state
                .link(parent)
                .ok_or_else(|| SimError::NoSuchInterface(parent.clone()))?;
            let (mtu, mac) = (p.mtu, p.mac.clone());
            let index = state.links.iter().map(|l| l.index).max().unwrap_or(0) + 1;
            state.links.push(Link {
                index,
                name: name.clone(),
                kind: LinkKind::Vlan,
                mtu,
                mac,
                oper_state: "down".into(),
                vlan: Some(VlanInfo {
                    id: *id,
                    parent: Some(parent.clone()),
                }),
                ..Default::default()
            });
        }
        Op::DeleteLink { name } => {
            link(state, name)?;
            delete_link(state, name);
        }
        Op::SetUp { name } => set_up(state, name)?,
        Op::SetDown { name } => {
            set_down(state, name)?;
        }
        Op::SetMtu { name, mtu } => {
            let parent_mtu = state
                .link(name)
                .and_then(|l| l.vlan.as_ref())
                .and_then(|v| v.parent.as_deref())
                .and_then(|p| state.link(p))
                .and_then(|p| p.mtu);
            if parent_mtu.is_some_and(|p| *mtu > p) {
                return refuse(format!("{name}: VLAN MTU {mtu} above its parent's"));
            }
            link(state, name)?.mtu = Some(*mtu);
            for l in &mut state.links {
                if l.master.as_deref() == Some(name.as_str()) {
                    l.mtu = Some(*mtu);
                }
                let on_it = l.vlan.as_ref().and_then(|v| v.parent.as_deref()) == Some(name);
                if on_it && l.mtu.is_some_and(|m| m > *mtu) {
                    l.mtu = Some(*mtu);
                }
            }
        }
        Op::Enslave { port, master } => {
            let m = state
                .link(master)
                .ok_or_else(|| SimError::NoSuchInterface(master.clone()))?;
            if m.kind != LinkKind::Bond {
                return refuse(format!("{master} is not a bond"));
            }
            let (bond_mtu, active_backup) = (
                m.mtu,
                m.bond
                    .as_ref()
                    .is_some_and(|b| b.mode == BondMode::ActiveBackup),
            );
            let first = state.ports_of(master).is_empty();
            let p = link(state, port)?;
            if p.up {
                return refuse(format!("{port} must be down to be enslaved"));
            }
            if p.master.is_some() {
                return refuse(format!("{port} already has a master"));
            }
            p.master = Some(master.clone());
            p.master_kind = Some("bond".into());
            p.up = true;
            p.oper_state = "up".into();
            p.mtu = bond_mtu;
            p.addresses
                .retain(|a| a.cidr.addr.is_ipv4() && !a.cidr.is_link_local());
            p.bond_port = Some(BondPortInfo {
                mii_status: "up".into(),
                state: if first { "active" } else { "backup" }.into(),
            });
            if first && active_backup {
                let b = link(state, master)?;
                if let Some(info) = b.bond.as_mut() {
                    info.active_port = Some(port.clone());
                }
            }
        }
        Op::Release { port } => {
            let Some(master) = link(state, port)?.master.clone() else {
                return refuse(format!("{port} has no master"));
            };
            release(state, port);
            if let Some(info) = state.link_mut(&master).and_then(|b| b.bond.as_mut())
                && info.active_port.as_deref() == Some(port.as_str())
            {
                info.active_port = None;
            }
        }
        Op::AddAddress { interface, cidr } => {
            let l = link(state, interface)?;
            if l.addresses.iter().any(|a| a.cidr == *cidr) {
                return Err(SimError::Exists(format!("{cidr} on {interface}")));
            }
            l.addresses.push(Address {
                cidr: *cidr,
                ours: true,
            });
            // The kernel adds the prefix route (not ours: protocol kernel).
            if cidr.prefix < if cidr.addr.is_ipv4() { 32 } else { 128 } {
                state.routes.push(Route {
                    destination: cidr.network(),
                    gateway: None,
                    interface: Some(interface.clone()),
                    metric: if cidr.addr.is_ipv4() { None } else { Some(256) },
                    ours: false,
                });
            }
        }
        Op::DelAddress { interface, cidr } => {
            let l = link(state, interface)?;
            let before = l.addresses.len();
            l.addresses.retain(|a| a.cidr != *cidr);
            if l.addresses.len() == before {
                return Err(SimError::NoSuchInterface(format!("{cidr} on {interface}")));
            }
            let net = cidr.network();
            state.routes.retain(|r| {
                !(r.interface.as_deref() == Some(interface.as_str())
                    && !r.ours
                    && r.gateway.is_none()
                    && r.destination == net)
            });
        }
        Op::AddRoute { route } => add_route(state, route)?,
        Op::DelRoute { route } => {
            let before = state.routes.len();
            state.routes.retain(|r| !(r.ours && route.matches(r)));
            if state.routes.len() == before {
                return refuse(format!("no route {route}"));
            }
        }
    }
    Ok(())
}

fn set_down(state: &mut NetworkState, name: &str) -> Result<(), SimError> {
    let l = link(state, name)?;
    l.up = false;
    l.oper_state = "down".into();
    // IPv6 flushes its addresses on down (keep_addr_on_down defaults to off) and every route
    // through a downed interface goes.
    l.addresses.retain(|a| a.cidr.addr.is_ipv4());
    state
        .routes
        .retain(|r| r.interface.as_deref() != Some(name));
    Ok(())
}

fn set_up(state: &mut NetworkState, name: &str) -> Result<(), SimError> {
    let l = link(state, name)?;
    let was_up = l.up;
    l.up = true;
    l.oper_state = "up".into();
    let prefixes: Vec<_> = l
        .addresses
        .iter()
        .filter(|a| a.cidr.addr.is_ipv4() && a.cidr.prefix < 32)
        .map(|a| a.cidr.network())
        .collect();
    if was_up {
        return Ok(());
    }
    // IPv4 brings the prefix routes of its addresses back.
    for destination in prefixes {
        let exists = state.routes.iter().any(|r| {
            r.destination == destination
                && r.gateway.is_none()
                && r.interface.as_deref() == Some(name)
        });
        if !exists {
            state.routes.push(Route {
                destination,
                gateway: None,
                interface: Some(name.into()),
                metric: None,
                ours: false,
            });
        }
    }
    Ok(())
}

fn release(state: &mut NetworkState, port: &str) {
    if let Some(p) = state.link_mut(port) {
        p.master = None;
        p.master_kind = None;
        p.bond_port = None;
        // The bond closes a port it releases.
        p.up = false;
        p.oper_state = "down".into();
    }
}

fn delete_link(state: &mut NetworkState, name: &str) {
    let ports: Vec<String> = state
        .ports_of(name)
        .iter()
        .map(|p| p.name.clone())
        .collect();
    for p in ports {
        release(state, &p);
    }
    let vlans: Vec<String> = state
        .links
        .iter()
        .filter(|l| l.vlan.as_ref().and_then(|v| v.parent.as_deref()) == Some(name))
        .map(|l| l.name.clone())
        .collect();
    for v in vlans {
        delete_link(state, &v);
    }
    state.links.retain(|l| l.name != name);
    state
        .routes
        .retain(|r| r.interface.as_deref() != Some(name));
}

fn add_route(state: &mut NetworkState, route: &RouteOp) -> Result<(), SimError> {
    let l = state
        .link(&route.interface)
        .ok_or_else(|| SimError::NoSuchInterface(route.interface.clone()))?;
    if !l.up {
        return refuse(format!("{}: nexthop device is not up", route.interface));
    }
    let connected = |gw| {
        l.addresses.iter().any(|a| a.cidr.contains(gw))
            || state.routes.iter().any(|r| {
                r.gateway.is_none()
                    && r.interface.as_deref() == Some(route.interface.as_str())
                    && r.destination.contains(gw)
            })
    };
    if let Some(gw) = route.gateway
        && !connected(gw)
    {
        return refuse(format!("{}: gateway {gw} unreachable", route.interface));
    }
    if state.routes.iter().any(|r| route.matches(r)) {
        return Err(SimError::Exists(route.to_string()));
    }
    let metric = (route.metric != default_metric(&route.destination)
        || route.destination.addr.is_ipv6())
    .then_some(route.metric);
    state.routes.push(Route {
        destination: route.destination,
        gateway: route.gateway,
        interface: Some(route.interface.clone()),
        metric,
        ours: true,
    });
    Ok(())
}
