//! Leader election on a coordination.k8s.io/v1 Lease: only the leader runs controllers.
//!
//! * [`decide`]: the pure rules (create / renew / acquire / follow, step-down deadline).
//! * [`elector`]: the client loop with resourceVersion-guarded writes, and release on shutdown.
//!
//! Defaults: lease 15s, renew every 5s, step down after 10s without a successful renewal, standbys
//! look every 2s. A crashed leader is replaced after at most lease + retry (~17s); a leader that
//! shuts down cleanly releases the lease and is replaced within one retry interval (~2s).

pub mod decide;
pub mod elector;

pub use decide::{Decision, LeaseRecord, LeaseTiming};
pub use elector::{ElectorHandle, LeaderElector, Leadership};
