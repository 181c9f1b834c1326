//! Lease-based leader election (coordination.k8s.io/v1), driven by the rules in [`super::decide`].
//!
//! kube-runtime 5 has no elector. Every write is a `replace` carrying the observed
//! `resourceVersion`, so two candidates can never both win a round: the loser gets 409 Conflict.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::decide::{Decision, LeaseRecord, LeaseTiming, decide, must_step_down};
use crate::error::{Error, Result};

/// What this replica currently is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// The lease has not been read successfully yet.
    Unknown,
    /// Another replica (named, if known) holds the lease.
    Standby {
        /// The current holder, if any.
        holder: Option<String>,
    },
    /// This replica holds the lease.
    Leader,
}

impl Leadership {
    /// True when leading.
    pub fn is_leader(&self) -> bool {
        matches!(self, Leadership::Leader)
    }
}

/// One candidate in the election for one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    observed: Option<(LeaseRecord, Instant)>,
    last_renew: Option<Instant>,
    leading: bool,
    holder: Option<String>,
}

impl LeaderElector {
    /// A candidate `identity` (the pod name; must be unique per replica) for Lease
    /// `namespace/name`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: LeaseTiming,
    ) -> Result<Self> {
        timing
            .validate()
            .map_err(|m| Error::Internal(format!("leader election timing: {m}")))?;
        if identity.is_empty() {
            return Err(Error::Internal("leader election identity is empty".into()));
        }
        Ok(LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            observed: None,
            last_renew: None,
            leading: false,
            holder: None,
        })
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether this candidate led after its last round.
    pub fn is_leader(&self) -> bool {
        self.leading
    }

    /// The leadership after the last round.
    pub fn leadership(&self) -> Leadership {
        if self.leading {
            Leadership::Leader
        } else {
            Leadership::Standby {
                holder: self.holder.clone(),
            }
        }
    }

    /// One election round: read the Lease, decide, write if needed. On an API error the
    /// candidate keeps leading until the renew deadline passes, then steps down.
    pub async fn step(&mut self) -> Result<Leadership> {
        match self.try_step().await {
            Ok(()) => Ok(self.leadership()),
            Err(err) => {
                if self.leading {
                    let since = self.last_renew.map_or(Duration::MAX, |t| t.elapsed());
                    if must_step_down(since, self.timing.renew_deadline) {
                        warn!(lease = %self.name, "could not renew the lease before the deadline; stepping down");
                        self.leading = false;
                    }
                }
                Err(err)
            }
        }
    }

    async fn try_step(&mut self) -> Result<()> {
        let lease = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| Error::kube(format!("get lease {}", self.name), e))?;
        let now = Instant::now();
        let record = lease.as_ref().map(record_of);
        let changed = match (&self.observed, &record) {
            (Some((old, _)), Some(new)) => old.resource_version != new.resource_version,
            (None, None) => false,
            _ => true,
        };
        if changed || self.observed.is_none() {
            self.observed = record.clone().map(|r| (r, now));
        }
        self.holder = record.as_ref().and_then(|r| r.holder().map(str::to_owned));
        let since_change = self
            .observed
            .as_ref()
            .map_or(Duration::ZERO, |(_, at)| now - *at);

        match decide(&self.identity, record.as_ref(), since_change) {
            Decision::Create => {
                let lease = self.desired(None, 0, true);
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => self.won(now, "created the lease"),
                    Err(kube::Error::Api(s)) if s.code == 409 => self.leading = false,
                    Err(e) => return Err(Error::kube(format!("create lease {}", self.name), e)),
                }
            }
            Decision::Renew | Decision::Acquire => {
                let Some(record) = record else {
                    return Err(Error::Internal("decision needs a lease record".into()));
                };
                let taking_over = record.holder() != Some(self.identity.as_str());
                let transitions = if taking_over {
                    record.transitions.saturating_add(1)
                } else {
                    record.transitions
                };
                // Keep acquireTime across renewals; set it when the holder changes.
                let acquire_now = taking_over || !self.leading;
                let mut desired = self.desired(
                    Some(record.resource_version.clone()),
                    transitions,
                    acquire_now,
                );
                if !acquire_now {
                    desired.spec = desired.spec.map(|mut s| {
                        s.acquire_time = lease
                            .as_ref()
                            .and_then(|l| l.spec.as_ref()?.acquire_time.clone());
                        s
                    });
                }
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &desired)
                    .await
                {
                    Ok(_) if taking_over => self.won(now, "acquired the lease"),
                    Ok(_) => self.won(now, "renewed the lease"),
                    // Someone wrote the lease since we read it; the next round re-reads it.
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        if taking_over {
                            self.leading = false;
                        }
                    }
                    Err(e) => return Err(Error::kube(format!("update lease {}", self.name), e)),
                }
            }
            Decision::Follow { holder, .. } => {
                if self.leading {
                    warn!(lease = %self.name, %holder, "lost the lease to another replica");
                }
                self.leading = false;
            }
        }
        Ok(())
    }

    fn won(&mut self, now: Instant, what: &str) {
        if !self.leading {
            info!(lease = %self.name, identity = %self.identity, "{what}; now leading");
        }
        self.leading = true;
        self.last_renew = Some(now);
        self.holder = Some(self.identity.clone());
    }

    fn desired(
        &self,
        resource_version: Option<String>,
        transitions: i32,
        acquire_now: bool,
    ) -> Lease {
        let now = MicroTime(Timestamp::now());
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version,
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(duration_secs(self.timing.lease_duration)),
                acquire_time: acquire_now.then(|| now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(transitions),
                ..Default::default()
            }),
        }
    }

    /// Gives the lease up if we hold it (holder cleared, duration 1s), so a standby takes over on
    /// its next round instead of waiting for expiry. Call only after the controllers stopped.
    pub async fn release(&mut self) -> Result<()> {
        if !self.leading {
            return Ok(());
        }
        self.leading = false;
        let lease = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| Error::kube(format!("get lease {}", self.name), e))?;
        let Some(mut lease) = lease else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease.metadata.managed_fields = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                info!(lease = %self.name, "released the lease");
                Ok(())
            }
            // Someone else already took it: nothing left to release.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(Error::kube(format!("release lease {}", self.name), e)),
        }
    }

    /// Runs the election in a background task, publishing leadership changes.
    pub fn spawn(self) -> ElectorHandle {
        let (tx, rx) = watch::channel(Leadership::Unknown);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(self, tx, stop.clone()));
        ElectorHandle {
            state: rx,
            stop,
            task: Some(task),
        }
    }
}

async fn run(
    mut elector: LeaderElector,
    tx: watch::Sender<Leadership>,
    stop: CancellationToken,
) -> LeaderElector {
    loop {
        match elector.step().await {
            Ok(state) => {
                tx.send_if_modified(|cur| {
                    let changed = *cur != state;
                    *cur = state.clone();
                    changed
                });
            }
            Err(err) => {
                warn!(error = %crate::error::cause_chain(&err), "leader election round failed");
                // Only leadership loss matters here; Unknown stays Unknown until a read works.
                if !elector.is_leader() && tx.borrow().is_leader() {
                    tx.send_replace(Leadership::Standby { holder: None });
                }
            }
        }
        let pause = if elector.is_leader() {
            elector.timing.renew_interval
        } else {
            elector.timing.retry_interval
        };
        tokio::select! {
            () = stop.cancelled() => return elector,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Handle to a running election. Dropping it aborts the election loop (without releasing), so a
/// forgotten handle can never keep renewing a lease for a replica that stopped reconciling.
pub struct ElectorHandle {
    state: watch::Receiver<Leadership>,
    stop: CancellationToken,
    task: Option<JoinHandle<LeaderElector>>,
}

impl Drop for ElectorHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl ElectorHandle {
    /// A receiver of leadership changes.
    pub fn subscribe(&self) -> watch::Receiver<Leadership> {
        self.state.clone()
    }

    /// The current leadership.
    pub fn leadership(&self) -> Leadership {
        self.state.borrow().clone()
    }

    /// Stops the election loop and releases the lease if held.
    pub async fn stop_and_release(mut self) -> Result<()> {
        self.stop.cancel();
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        let mut elector = task
            .await
            .map_err(|e| Error::Internal(format!("leader election task failed: {e}")))?;
        elector.release().await
    }

    /// Stops the loop without releasing (the lease then expires after its duration), as a crash would.
    pub fn abort(self) {
        // Drop aborts the loop.
        drop(self);
    }
}

fn record_of(lease: &Lease) -> LeaseRecord {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity,
        lease_duration: Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        ),
        transitions: spec.lease_transitions.unwrap_or(0),
        resource_version: lease.resource_version().unwrap_or_default(),
    }
}

fn duration_secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX).max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use crate::testing::{ApiServerMock, object_response, status_response};
    use serde_json::json;

    fn lease_json(holder: Option<&str>, rv: &str, transitions: i32) -> serde_json::Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "op", "namespace": "ns", "resourceVersion": rv},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "leaseTransitions": transitions}})
    }

    #[tokio::test]
    async fn creates_missing_lease_then_renews_with_resource_version() {
        let (client, mut server) = ApiServerMock::new();
        let task = tokio::spawn(async move {
            server
                .next()
                .await
                .respond(status_response(404, "NotFound"));
            let create = server.next().await;
            assert_eq!(create.method, "POST");
            assert_eq!(create.body["spec"]["holderIdentity"], "pod-a");
            assert_eq!(create.body["spec"]["leaseDurationSeconds"], 15);
            create.respond(object_response(&lease_json(Some("pod-a"), "1", 0)));
            // Round 2: renew guarded by resourceVersion "1".
            server
                .next()
                .await
                .respond(object_response(&lease_json(Some("pod-a"), "1", 0)));
            let renew = server.next().await;
            assert_eq!(renew.method, "PUT");
            assert_eq!(renew.body["metadata"]["resourceVersion"], "1");
            assert_eq!(renew.body["spec"]["leaseTransitions"], 0);
            renew.respond(object_response(&lease_json(Some("pod-a"), "2", 0)));
        });
        let mut e =
            LeaderElector::new(client, "ns", "op", "pod-a", LeaseTiming::default()).unwrap();
        assert_eq!(e.step().await.unwrap(), Leadership::Leader);
        assert_eq!(e.step().await.unwrap(), Leadership::Leader);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn follows_a_live_holder_and_takes_a_released_lease() {
        let (client, mut server) = ApiServerMock::new();
        let task = tokio::spawn(async move {
            server
                .next()
                .await
                .respond(object_response(&lease_json(Some("pod-b"), "5", 2)));
            server
                .next()
                .await
                .respond(object_response(&lease_json(None, "6", 2)));
            let take = server.next().await;
            assert_eq!(take.method, "PUT");
            assert_eq!(take.body["metadata"]["resourceVersion"], "6");
            assert_eq!(take.body["spec"]["leaseTransitions"], 3);
            assert_eq!(take.body["spec"]["holderIdentity"], "pod-a");
            take.respond(object_response(&lease_json(Some("pod-a"), "7", 3)));
        });
        let mut e =
            LeaderElector::new(client, "ns", "op", "pod-a", LeaseTiming::default()).unwrap();
        assert_eq!(
            e.step().await.unwrap(),
            Leadership::Standby {
                holder: Some("pod-b".into())
            }
        );
        assert_eq!(e.step().await.unwrap(), Leadership::Leader);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn losing_the_acquire_race_stays_standby() {
        let (client, mut server) = ApiServerMock::new();
        let task = tokio::spawn(async move {
            server
                .next()
                .await
                .respond(object_response(&lease_json(None, "6", 2)));
            server
                .next()
                .await
                .respond(status_response(409, "Conflict"));
        });
        let mut e =
            LeaderElector::new(client, "ns", "op", "pod-a", LeaseTiming::default()).unwrap();
        assert!(!e.step().await.unwrap().is_leader());
        task.await.unwrap();
    }

    #[tokio::test]
    async fn release_clears_the_holder() {
        let (client, mut server) = ApiServerMock::new();
        let task = tokio::spawn(async move {
            server
                .next()
                .await
                .respond(object_response(&lease_json(None, "6", 2)));
            let take = server.next().await;
            take.respond(object_response(&lease_json(Some("pod-a"), "7", 3)));
            server
                .next()
                .await
                .respond(object_response(&lease_json(Some("pod-a"), "7", 3)));
            let release = server.next().await;
            assert_eq!(release.method, "PUT");
            assert_eq!(release.body["spec"].get("holderIdentity"), None);
            assert_eq!(release.body["spec"]["leaseDurationSeconds"], 1);
            assert_eq!(release.body["metadata"]["resourceVersion"], "7");
            release.respond(object_response(&lease_json(None, "8", 3)));
        });
        let mut e =
            LeaderElector::new(client, "ns", "op", "pod-a", LeaseTiming::default()).unwrap();
        assert!(e.step().await.unwrap().is_leader());
        e.release().await.unwrap();
        assert!(!e.is_leader());
        task.await.unwrap();
    }

    #[tokio::test]
    async fn rejects_unsafe_timing() {
        let (client, _server) = ApiServerMock::new();
        let timing = LeaseTiming {
            renew_deadline: Duration::from_secs(20),
            ..LeaseTiming::default()
        };
        assert!(LeaderElector::new(client, "ns", "op", "a", timing).is_err());
    }
}
