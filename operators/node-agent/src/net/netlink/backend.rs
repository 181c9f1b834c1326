//! [`NetworkBackend`] over rtnetlink: snapshot = undo record from the observed state, apply =
//! observe → plan → run, revert = observe → revert plan → run, each repeated until the plan
//! is empty (the kernel has side effects the planner only models, and a revert must finish
//! whatever state an interrupted apply or revert left).

use futures::future::BoxFuture;
use rtnetlink::Handle;

use super::apply::{ApplyError, execute};
use super::observe::{ObserveError, observe};
use super::sysfs::Sysfs;
use crate::crd::network::RenderedBond;
use crate::net::backend::{BackendError, NetworkBackend};
use crate::net::plan::{Op, PlanError, UndoRecord, plan, revert_plan, undo_record};
use crate::net::state::NetworkState;

/// Rounds of observe-plan-run before giving up on converging.
const ROUNDS: usize = 3;

/// Changes the node through rtnetlink.
#[derive(Clone)]
pub struct NetlinkBackend {
    handle: Handle,
    sysfs: Sysfs,
}

impl NetlinkBackend {
    /// Opens a netlink connection, spawned on the current tokio runtime.
    pub fn new(sysfs: Sysfs) -> std::io::Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(NetlinkBackend { handle, sysfs })
    }

    pub fn from_handle(handle: Handle, sysfs: Sysfs) -> Self {
        NetlinkBackend { handle, sysfs }
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The node's current state.
    pub async fn observe(&self) -> Result<NetworkState, ObserveError> {
        observe(&self.handle, &self.sysfs).await
    }

    async fn run(&self, ops: &[Op]) -> Result<(), ApplyError> {
        for op in ops {
            tracing::info!(step = %op, "network change");
            execute(&self.handle, op).await?;
        }
        Ok(())
    }

    async fn observe_b(&self) -> Result<NetworkState, BackendError> {
        self.observe().await.map_err(|e| BackendError::Netlink {
            operation: format!("dump {}", e.what),
            message: e.source.to_string(),
        })
    }
}

fn from_plan(e: PlanError) -> BackendError {
    match e {
        PlanError::InterfaceNotFound(n) => BackendError::InterfaceNotFound(n),
        // The model of the kernel says it would refuse (e.g. an unreachable gateway).
        PlanError::NameTaken { .. } | PlanError::Invalid(_) | PlanError::Illegal { .. } => {
            BackendError::Invalid(e.to_string())
        }
    }
}

fn from_apply(e: ApplyError) -> BackendError {
    if e.is_unsupported() {
        return BackendError::Unsupported(e.to_string());
    }
    match e {
        ApplyError::NotFound { name, .. } => BackendError::InterfaceNotFound(name),
        ApplyError::Netlink { op, source } => BackendError::Netlink {
            operation: op,
            message: source.to_string(),
        },
        ApplyError::Invalid { op, message } => BackendError::Invalid(format!("{op}: {message}")),
    }
}

fn not_converged(what: &str, ops: &[Op]) -> BackendError {
    let left: Vec<String> = ops.iter().map(Op::to_string).collect();
    BackendError::Other(format!(
        "{what} did not converge after {ROUNDS} rounds; left: {}",
        left.join("; ")
    ))
}

impl NetworkBackend for NetlinkBackend {
    type Undo = UndoRecord;

    fn snapshot<'a>(
        &'a self,
        desired: &'a [RenderedBond],
    ) -> BoxFuture<'a, Result<UndoRecord, BackendError>> {
        Box::pin(async move {
            let state = self.observe_b().await?;
            undo_record(&state, desired).map_err(from_plan)
        })
    }

    fn apply<'a>(&'a self, desired: &'a [RenderedBond]) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            for _ in 0..ROUNDS {
                let state = self.observe_b().await?;
                let ops = plan(&state, desired).map_err(from_plan)?;
                if ops.is_empty() {
                    return Ok(());
                }
                self.run(&ops).await.map_err(from_apply)?;
            }
            let state = self.observe_b().await?;
            let left = plan(&state, desired).map_err(from_plan)?;
            if left.is_empty() {
                Ok(())
            } else {
                Err(not_converged("apply", &left))
            }
        })
    }

    fn revert<'a>(&'a self, undo: &'a UndoRecord) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let mut first: Option<BackendError> = None;
            for _ in 0..ROUNDS {
                let state = self.observe_b().await?;
                let ops = revert_plan(&state, undo).map_err(from_plan)?;
                // Restored, even if a step failed on the way (a later round redid it).
                if ops.is_empty() {
                    return Ok(());
                }
                // Keep going past a failing step: one stuck step must not leave the rest changed.
                for op in &ops {
                    tracing::info!(step = %op, "network revert");
                    if let Err(e) = execute(&self.handle, op).await
                        && !e.already_done(op)
                    {
                        tracing::warn!(error = %e, "revert step failed");
                        first.get_or_insert(from_apply(e));
                    }
                }
            }
            let state = self.observe_b().await?;
            let left = revert_plan(&state, undo).map_err(from_plan)?;
            match (left.is_empty(), first) {
                (true, _) => Ok(()),
                (false, Some(e)) => Err(e),
                (false, None) => Err(not_converged("revert", &left)),
            }
        })
    }
}
