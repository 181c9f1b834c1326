//! `agility-node-agent`: the node agent (bonded NICs, disks, LVM disk pools). See docs/node-agent.md.
//!
//! Shape: [`crd`] (the `node.agility.dev` kinds) → [`disk`] (discovery, eligibility, LVM) and
//! [`net`] (netlink state, desired bonds, probes, apply with rollback) → [`rollout`] (which nodes
//! may change next) → the agent loop and the cluster-side controller.

#[cfg(feature = "agent")]
pub mod agent;
pub mod controller;
pub mod crd;
#[cfg(feature = "agent")]
pub mod disk;
#[cfg(feature = "agent")]
pub mod net;
pub mod quantity;
pub mod rollout;
