//! Running planned [`Op`]s through rtnetlink. Interface names are looked up right before each
//! step, so a plan stays valid across steps that create or delete interfaces.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{self as nl, InfoBond};
use netlink_packet_route::route::{RouteProtocol, RouteScope};
use rtnetlink::{
    AddressMessageBuilder, Handle, LinkBond, LinkUnspec, LinkVlan, RouteMessageBuilder,
};
use thiserror::Error;

use crate::crd::network::{BondMode, LacpRate, TransmitHashPolicy};
use crate::net::plan::{BondOptions, Op, RouteOp};
use crate::net::state::AGENT_PROTOCOL;

const ENODEV: i32 = 19;
const EOPNOTSUPP: i32 = 95;

/// One step failed; `op` says which (as in "set eth1 master bond0").
#[derive(Debug, Error)]
pub enum ApplyError {
    #[error("{op}: interface {name} not found")]
    NotFound { op: String, name: String },
    #[error("{op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{op}: {message}")]
    Invalid { op: String, message: String },
}

impl ApplyError {
    /// The step that failed.
    pub fn op(&self) -> &str {
        match self {
            ApplyError::NotFound { op, .. }
            | ApplyError::Netlink { op, .. }
            | ApplyError::Invalid { op, .. } => op,
        }
    }

    /// The kernel's errno (positive), if the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            ApplyError::Netlink {
                source: rtnetlink::Error::NetlinkError(e),
                ..
            } => Some(e.raw_code().abs()),
            _ => None,
        }
    }

    /// Whether the failure means `op`'s goal holds already (the address or route exists,
    /// what was to go is gone): a revert racing the kernel's own restoring counts as done.
    pub fn already_done(&self, op: &Op) -> bool {
        const ENOENT: i32 = 2;
        const ESRCH: i32 = 3;
        const EEXIST: i32 = 17;
        const EADDRNOTAVAIL: i32 = 99;
        match (op, self) {
            (Op::DeleteLink { .. } | Op::Release { .. }, ApplyError::NotFound { .. }) => true,
            (Op::AddAddress { .. } | Op::AddRoute { .. }, _) => self.errno() == Some(EEXIST),
            (Op::DelAddress { .. } | Op::DelRoute { .. }, _) => {
                matches!(self.errno(), Some(ENOENT | ESRCH | EADDRNOTAVAIL))
            }
            _ => false,
        }
    }

    /// The kernel lacks the driver (no bonding or 802.1q module).
    pub fn is_unsupported(&self) -> bool {
        self.errno() == Some(EOPNOTSUPP)
    }
}

/// The index of interface `name`, or `None` if it does not exist.
pub async fn index_of(handle: &Handle, name: &str) -> Result<Option<u32>, rtnetlink::Error> {
    let res = handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await;
    match res {
        Ok(Some(m)) => Ok(Some(m.header.index)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == ENODEV => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs one step.
pub async fn execute(handle: &Handle, op: &Op) -> Result<(), ApplyError> {
    let text = op.to_string();
    let nl_err = |source| ApplyError::Netlink {
        op: text.clone(),
        source,
    };
    let index = async |name: &str| -> Result<u32, ApplyError> {
        match index_of(handle, name).await {
            Ok(Some(i)) => Ok(i),
            Ok(None) => Err(ApplyError::NotFound {
                op: text.clone(),
                name: name.to_string(),
            }),
            Err(source) => Err(ApplyError::Netlink {
                op: text.clone(),
                source,
            }),
        }
    };
    let links = handle.link();
    match op {
        Op::CreateBond { name, options } => {
            let mut msg = LinkBond::new(name);
            for o in bond_attrs(options) {
                msg = msg.append_info_data(o);
            }
            links.add(msg.build()).execute().await.map_err(nl_err)
        }
        Op::SetBondOptions { name, options } => {
            let i = index(name).await?;
            let mut msg = LinkBond::new(name).index(i);
            for o in bond_attrs(options) {
                msg = msg.append_info_data(o);
            }
            links.change(msg.build()).execute().await.map_err(nl_err)
        }
        Op::SetPrimary { bond, port } => {
            let i = index(bond).await?;
            // Index 0 names no device: the kernel clears the primary.
            let p = match port {
                Some(p) => index(p).await?,
                None => 0,
            };
            let msg = LinkBond::new(bond).index(i).primary(p).build();
            links.change(msg).execute().await.map_err(nl_err)
        }
        Op::CreateVlan { name, parent, id } => {
            let p = index(parent).await?;
            links
                .add(LinkVlan::new(name, p, *id).build())
                .execute()
                .await
                .map_err(nl_err)
        }
        Op::DeleteLink { name } => {
            let i = index(name).await?;
            links.del(i).execute().await.map_err(nl_err)
        }
        Op::SetUp { name } => {
            let i = index(name).await?;
            let msg = LinkUnspec::new_with_index(i).up().build();
            links.set(msg).execute().await.map_err(nl_err)
        }
        Op::SetDown { name } => {
            let i = index(name).await?;
            let msg = LinkUnspec::new_with_index(i).down().build();
            links.set(msg).execute().await.map_err(nl_err)
        }
        Op::SetMtu { name, mtu } => {
            let i = index(name).await?;
            let msg = LinkUnspec::new_with_index(i).mtu(*mtu).build();
            links.set(msg).execute().await.map_err(nl_err)
        }
        Op::Enslave { port, master } => {
            let (p, m) = (index(port).await?, index(master).await?);
            let msg = LinkUnspec::new_with_index(p).controller(m).build();
            links.set(msg).execute().await.map_err(nl_err)
        }
        Op::Release { port } => {
            let p = index(port).await?;
            let msg = LinkUnspec::new_with_index(p).nocontroller().build();
            links.set(msg).execute().await.map_err(nl_err)
        }
        Op::AddAddress { interface, cidr } => {
            let i = index(interface).await?;
            let mut req = handle.address().add(i, cidr.addr, cidr.prefix);
            req.message_mut()
                .attributes
                .push(AddressAttribute::Protocol(AGENT_PROTOCOL.into()));
            req.execute().await.map_err(nl_err)
        }
        Op::DelAddress { interface, cidr } => {
            let i = index(interface).await?;
            let msg = match cidr.addr {
                IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
                    .index(i)
                    .address(a, cidr.prefix)
                    .build(),
                IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
                    .index(i)
                    .address(a, cidr.prefix)
                    .build(),
            };
            handle.address().del(msg).execute().await.map_err(nl_err)
        }
        Op::AddRoute { route } => {
            let i = index(&route.interface).await?;
            let msg = route_message(route, i).map_err(|message| ApplyError::Invalid {
                op: text.clone(),
                message,
            })?;
            handle.route().add(msg).execute().await.map_err(nl_err)
        }
        Op::DelRoute { route } => {
            let i = index(&route.interface).await?;
            let msg = route_message(route, i).map_err(|message| ApplyError::Invalid {
                op: text.clone(),
                message,
            })?;
            handle.route().del(msg).execute().await.map_err(nl_err)
        }
    }
}

/// A main-table route tagged with the agent's protocol (on deletion the kernel then matches
/// only routes with that tag).
fn route_message(
    route: &RouteOp,
    oif: u32,
) -> Result<netlink_packet_route::route::RouteMessage, String> {
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(route.destination.addr, route.destination.prefix)
        .map_err(|e| e.to_string())?;
    match route.gateway {
        Some(g) => b = b.gateway(g).map_err(|e| e.to_string())?,
        // Directly connected, as `ip route add ... dev X` does it.
        None if route.destination.addr.is_ipv4() => b = b.scope(RouteScope::Link),
        None => {}
    }
    Ok(b.output_interface(oif)
        .priority(route.metric)
        .protocol(RouteProtocol::from(AGENT_PROTOCOL))
        .build())
}

fn bond_attrs(o: &BondOptions) -> Vec<InfoBond> {
    let mut v = Vec::new();
    if let Some(m) = o.mode {
        v.push(InfoBond::Mode(match m {
            BondMode::BalanceRr => nl::BondMode::BalanceRr,
            BondMode::ActiveBackup => nl::BondMode::ActiveBackup,
            BondMode::BalanceXor => nl::BondMode::BalanceXor,
            BondMode::Broadcast => nl::BondMode::Broadcast,
            BondMode::Ieee8023ad => nl::BondMode::Ieee8023Ad,
            BondMode::BalanceTlb => nl::BondMode::BalanceTlb,
            BondMode::BalanceAlb => nl::BondMode::BalanceAlb,
        }));
    }
    if let Some(x) = o.miimon {
        v.push(InfoBond::MiiMon(x));
    }
    if let Some(x) = o.updelay {
        v.push(InfoBond::UpDelay(x));
    }
    if let Some(x) = o.downdelay {
        v.push(InfoBond::DownDelay(x));
    }
    if let Some(r) = o.lacp_rate {
        v.push(InfoBond::AdLacpRate(match r {
            LacpRate::Slow => nl::BondLacpRate::Slow,
            LacpRate::Fast => nl::BondLacpRate::Fast,
        }));
    }
    if let Some(p) = o.transmit_hash_policy {
        v.push(InfoBond::XmitHashPolicy(match p {
            TransmitHashPolicy::Layer2 => nl::BondXmitHashPolicy::Layer2,
            TransmitHashPolicy::Layer23 => nl::BondXmitHashPolicy::Layer23,
            TransmitHashPolicy::Layer34 => nl::BondXmitHashPolicy::Layer34,
            TransmitHashPolicy::Encap23 => nl::BondXmitHashPolicy::Encap23,
            TransmitHashPolicy::Encap34 => nl::BondXmitHashPolicy::Encap34,
            TransmitHashPolicy::VlanSrcMac => nl::BondXmitHashPolicy::VlanSrcMac,
        }));
    }
    v
}
