//! High availability: the failover decision (pure), the view of a probed node it takes, and the
//! supervisor that probes and acts.
pub mod decide;
pub mod observe;
pub mod supervisor;
