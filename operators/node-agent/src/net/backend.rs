//! The seam between the safe-apply transaction ([`super::transaction`], [`super::checkpoint`])
//! and whatever changes the node's interfaces (the netlink backend in production, fakes in
//! tests).
//!
//! The contract is two-phase so that a crash at any instant can be undone:
//!
//! 1. [`NetworkBackend::snapshot`] reads the node and returns an undo record that restores the
//!    *current* state of every interface, address and route that `apply(desired)` may touch. It
//!    changes nothing. The transaction writes this record to the checkpoint file (fsynced)
//!    before the first change, so the dead-man watchdog can revert even if the agent is
//!    SIGKILLed in the middle of `apply`.
//! 2. [`NetworkBackend::apply`] makes the node match `desired`, touching only the interfaces the
//!    rendered bonds name (bonds, ports, VLANs).
//! 3. [`NetworkBackend::revert`] restores the snapshot. It must be idempotent and must work
//!    whatever part of `apply` ran: none, some or all of its steps, or a revert that itself was
//!    interrupted (it may be run again by the watchdog or on agent restart). It should keep
//!    going after a failing step and report the first error at the end, so one stuck step does
//!    not leave the rest of the node changed.

use std::fmt::Debug;

use futures::future::BoxFuture;
use serde::{Serialize, de::DeserializeOwned};
use thiserror::Error;

use crate::crd::network::RenderedBond;

/// Applies rendered bonds to the node and undoes them.
pub trait NetworkBackend: Send + Sync {
    /// How to restore the state [`NetworkBackend::snapshot`] saw. Stored as JSON in the
    /// checkpoint file and read back by another process (the watchdog) or a later agent, so it
    /// must be self-contained (interface names, not just kernel indexes, which a reboot
    /// changes).
    type Undo: Serialize + DeserializeOwned + Clone + Send + Sync + Debug + 'static;

    /// Records how to restore everything `apply(desired)` may change. Must not change the node.
    fn snapshot<'a>(
        &'a self,
        desired: &'a [RenderedBond],
    ) -> BoxFuture<'a, Result<Self::Undo, BackendError>>;

    /// Makes the node match `desired`. On error the node may be partly changed; the caller
    /// reverts with the snapshot taken before.
    fn apply<'a>(&'a self, desired: &'a [RenderedBond]) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Restores the snapshot (idempotent; see the module docs).
    fn revert<'a>(&'a self, undo: &'a Self::Undo) -> BoxFuture<'a, Result<(), BackendError>>;
}

/// Why a backend operation failed. Carries text rather than source errors so it can be cloned
/// into state-machine events and reports.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// A netlink request failed (`operation` names it, e.g. "set eth1 master bond0").
    #[error("netlink {operation}: {message}")]
    Netlink { operation: String, message: String },
    /// An interface the desired state or the undo record names does not exist.
    #[error("interface {0} not found")]
    InterfaceNotFound(String),
    /// The desired state cannot be applied as given (bad CIDR, unsupported combination...).
    #[error("invalid desired state: {0}")]
    Invalid(String),
    /// The kernel lacks a feature (e.g. no bonding driver).
    #[error("unsupported by this kernel: {0}")]
    Unsupported(String),
    /// Anything else (I/O on /sys, the netlink socket itself...).
    #[error("{0}")]
    Other(String),
}

/// A scriptable in-memory backend for unit tests (also usable by other modules' tests).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod fake {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// How a fake operation behaves.
    #[derive(Clone, Debug)]
    pub enum Behaviour {
        Ok,
        Fail(BackendError),
        /// Never completes (to test deadlines).
        Hang,
    }

    /// The "node": which bonds are applied; the undo is the list of bonds present before.
    #[derive(Debug)]
    pub struct FakeBackend {
        pub applied: Mutex<Vec<String>>,
        pub calls: Mutex<Vec<String>>,
        pub apply: Behaviour,
        /// Apply adds this many bonds before failing (a partial apply).
        pub apply_partial: usize,
        /// Revert outcomes in order; Ok once exhausted.
        pub reverts: Mutex<Vec<Behaviour>>,
        pub snapshot: Behaviour,
    }

    impl FakeBackend {
        pub fn new() -> FakeBackend {
            FakeBackend {
                applied: Mutex::new(Vec::new()),
                calls: Mutex::new(Vec::new()),
                apply: Behaviour::Ok,
                apply_partial: 0,
                reverts: Mutex::new(Vec::new()),
                snapshot: Behaviour::Ok,
            }
        }
        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
        pub fn applied(&self) -> Vec<String> {
            self.applied.lock().unwrap().clone()
        }
        fn log(&self, s: &str) {
            self.calls.lock().unwrap().push(s.to_string());
        }
    }

    async fn behave(b: &Behaviour) -> Result<(), BackendError> {
        match b {
            Behaviour::Ok => Ok(()),
            Behaviour::Fail(e) => Err(e.clone()),
            Behaviour::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
        }
    }

    impl NetworkBackend for FakeBackend {
        type Undo = Vec<String>;

        fn snapshot<'a>(
            &'a self,
            _desired: &'a [RenderedBond],
        ) -> BoxFuture<'a, Result<Self::Undo, BackendError>> {
            Box::pin(async move {
                self.log("snapshot");
                behave(&self.snapshot).await?;
                Ok(self.applied())
            })
        }

        fn apply<'a>(
            &'a self,
            desired: &'a [RenderedBond],
        ) -> BoxFuture<'a, Result<(), BackendError>> {
            Box::pin(async move {
                self.log("apply");
                let n = match self.apply {
                    Behaviour::Ok => desired.len(),
                    _ => self.apply_partial.min(desired.len()),
                };
                self.applied
                    .lock()
                    .unwrap()
                    .extend(desired.iter().take(n).map(|b| b.name.clone()));
                behave(&self.apply).await
            })
        }

        fn revert<'a>(&'a self, undo: &'a Self::Undo) -> BoxFuture<'a, Result<(), BackendError>> {
            Box::pin(async move {
                self.log("revert");
                let next = {
                    let mut r = self.reverts.lock().unwrap();
                    if r.is_empty() {
                        Behaviour::Ok
                    } else {
                        r.remove(0)
                    }
                };
                behave(&next).await?;
                *self.applied.lock().unwrap() = undo.clone();
                Ok(())
            })
        }
    }
}
