//! Liveness and readiness state shared by the runner, the elector and the HTTP server.
//!
//! Readiness choice: the leader (or a replica running without leader election) is Ready only once
//! every enabled controller has completed the first list of every watch. A standby replica is
//! Ready once its elector has reached the API server and read the lease: it is healthy and able to
//! take over. Keeping standbys NotReady would stall every Deployment rollout (maxUnavailable
//! counts them) and hide real standby failures behind an always-red replica.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// This replica's role, as far as readiness is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Leader election is on but the lease has not been read yet.
    Starting,
    /// Another replica leads; this one is ready to take over.
    Standby,
    /// This replica leads and runs the controllers.
    Leader,
    /// Leader election is off; this replica runs the controllers.
    Single,
}

#[derive(Debug)]
struct State {
    role: Role,
    synced: BTreeMap<String, bool>,
}

/// Shared health state; cheap to clone.
#[derive(Clone, Debug)]
pub struct Health {
    state: Arc<Mutex<State>>,
}

/// Readiness verdict with a human-readable explanation (the `/readyz` body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Whether the replica is ready.
    pub ready: bool,
    /// Why (or why not).
    pub detail: String,
}

impl Health {
    /// Health for the given controllers, all unsynced, in `role`.
    pub fn new(controllers: &[&str], role: Role) -> Self {
        let synced = controllers
            .iter()
            .map(|c| ((*c).to_owned(), false))
            .collect();
        Health {
            state: Arc::new(Mutex::new(State { role, synced })),
        }
    }

    /// Records that every watch of `controller` has completed its first list.
    pub fn mark_synced(&self, controller: &str) {
        self.lock().synced.insert(controller.to_owned(), true);
    }

    /// Marks every controller unsynced again (controllers stopped).
    pub fn reset_synced(&self) {
        self.lock().synced.values_mut().for_each(|v| *v = false);
    }

    /// Sets the role.
    pub fn set_role(&self, role: Role) {
        self.lock().role = role;
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.lock().role
    }

    /// The readiness verdict.
    pub fn readiness(&self) -> Readiness {
        let state = self.lock();
        readiness(state.role, &state.synced)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain data behind the lock; a poisoned lock still holds a consistent value.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Pure readiness rule (see the module docs).
pub fn readiness(role: Role, synced: &BTreeMap<String, bool>) -> Readiness {
    match role {
        Role::Starting => Readiness {
            ready: false,
            detail: "leader election has not read the lease yet".into(),
        },
        Role::Standby => Readiness {
            ready: true,
            detail: "standby: ready to take over the lease".into(),
        },
        Role::Leader | Role::Single => {
            let pending: Vec<&str> = synced
                .iter()
                .filter(|(_, s)| !**s)
                .map(|(c, _)| c.as_str())
                .collect();
            if pending.is_empty() {
                Readiness {
                    ready: true,
                    detail: format!("{role:?}: all {} controller(s) synced", synced.len()),
                }
            } else {
                Readiness {
                    ready: false,
                    detail: format!("{role:?}: waiting for watches of {}", pending.join(", ")),
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;

    #[test]
    fn leader_is_ready_only_after_every_controller_synced() {
        let h = Health::new(&["redis", "kms"], Role::Leader);
        assert!(!h.readiness().ready);
        h.mark_synced("redis");
        let r = h.readiness();
        assert!(!r.ready);
        assert!(r.detail.contains("kms"), "{}", r.detail);
        h.mark_synced("kms");
        assert!(h.readiness().ready);
        h.reset_synced();
        assert!(!h.readiness().ready);
    }

    #[test]
    fn standby_is_ready_once_the_lease_was_read() {
        let h = Health::new(&["redis"], Role::Starting);
        assert!(!h.readiness().ready);
        h.set_role(Role::Standby);
        assert!(h.readiness().ready);
        h.set_role(Role::Leader);
        assert!(!h.readiness().ready, "a new leader waits for its watches");
    }

    #[test]
    fn no_controllers_is_ready() {
        assert!(Health::new(&[], Role::Single).readiness().ready);
    }
}
