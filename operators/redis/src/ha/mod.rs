//! High availability of the standard edition: the operator probes every node itself (not the
//! pod's Ready condition, which lags by tens of seconds on node loss), decides with the pure
//! [`decide`] function and executes the steps in [`supervisor`].

pub mod cluster;
pub mod decide;
pub mod rollout;
pub mod supervisor;

pub use decide::{Decision, FailoverReason, NodeHealth, NodeView, Step, Thresholds, decide};
