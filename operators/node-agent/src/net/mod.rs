//! Node networking: netlink state, desired bonds, connectivity probes, apply with rollback.

pub mod backend;
pub mod checkpoint;
pub mod netlink;
pub mod plan;
pub mod probe;
pub mod render;
pub mod state;
pub mod transaction;
