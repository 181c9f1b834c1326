//! LVM disk pools: reading LVM's reports, planning the steps that build a pool's volume group
//! and thin pool on this node, running them, and the pool's per-node status.

pub mod exec;
pub mod plan;
pub mod pool_status;
pub mod report;

pub use exec::{LvmError, execute, read_report};
pub use plan::{Candidate, Plan, PoolTarget, Refusal, Step, plan};
pub use pool_status::node_status;
pub use report::{Lv, LvmReport, Pv, Vg, parse_lvs, parse_pvs, parse_vgs};
