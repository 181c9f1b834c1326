//! The failover supervisor: one probing task per standard/cache instance. Each tick it reads the
//! instance's pods from a shared pod cache, probes every node (`INFO replication`, short
//! timeouts, kept connections), runs [`decide`](super::decide) and carries the steps out. Role
//! changes and failovers trigger a reconcile so status follows at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agility_core::events::{EventPublisher, Severity};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use redis::aio::MultiplexedConnection;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::cluster::{self, ClusterPod, ClusterStep};
use super::decide::{Decision, NodeHealth, NodeView, Step, Thresholds, decide};
use super::rollout::{RolloutStep, RolloutView, plan_rollout};
use crate::crd::{ClusterStatus, FailoverStatus};
use crate::dataplane::{self, NodeError, TlsTarget};
use crate::names;
use crate::tls::TlsClient;

/// How the supervisor watches one instance.
#[derive(Clone, Debug, PartialEq)]
pub struct HaConfig {
    /// The password (from the connection Secret).
    pub password: String,
    /// Pods the StatefulSet should have.
    pub expected: usize,
    /// The instance, for events.
    pub owner: ObjectReference,
    /// Settings applied online (CONFIG SET) to every node that answers.
    pub online: BTreeMap<String, String>,
    /// Cluster edition: the number of shards (the supervisor forms the cluster instead of
    /// electing a master).
    pub cluster_shards: Option<u32>,
    /// The StatefulSet's update revision: pods at another revision are rolled by the supervisor
    /// (replicas first, then a switchover).
    pub update_revision: Option<String>,
    /// TLS: the CA (PEM) the nodes' certificates are verified with; None for plaintext.
    pub tls_ca: Option<String>,
}

/// What the supervisor last saw, for status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HaSnapshot {
    /// The labelled master.
    pub master: Option<String>,
    /// Role per pod: `master`, `replica` or `unknown`.
    pub roles: BTreeMap<String, String>,
    /// Slowest replica's lag in whole seconds.
    pub lag_seconds: Option<i64>,
    /// The last failover this process carried out.
    pub last_failover: Option<FailoverStatus>,
    /// Why the supervisor cannot act.
    pub blocked: Option<String>,
    /// Cluster edition: state and shard map.
    pub cluster: Option<ClusterStatus>,
}

impl HaSnapshot {
    /// The parts whose change should update status now (lag alone does not).
    fn topology(&self) -> HaSnapshot {
        HaSnapshot {
            lag_seconds: None,
            ..self.clone()
        }
    }
}

/// Probe cadence and limits.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Time between probe rounds.
    pub interval: Duration,
    /// Connect and response timeout of one probe.
    pub probe_timeout: Duration,
    /// Failure thresholds.
    pub thresholds: Thresholds,
    /// How long the previous password stays valid after a rotation (clients reload the Secret).
    pub password_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            interval: Duration::from_millis(300),
            probe_timeout: Duration::from_millis(500),
            thresholds: Thresholds::default(),
            password_grace: Duration::from_secs(120),
        }
    }
}

type Key = (String, String);

struct Entry {
    config: watch::Sender<HaConfig>,
    snapshot: Arc<Mutex<HaSnapshot>>,
    stop: CancellationToken,
}

/// Shared by the controller: starts, updates and stops the per-instance tasks.
pub struct Supervisor {
    client: Client,
    pods: Store<Pod>,
    events: EventPublisher,
    trigger: mpsc::UnboundedSender<agility_core::ObjectKey>,
    failovers: prometheus::IntCounterVec,
    timing: Timing,
    shutdown: CancellationToken,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Supervisor {
    /// A supervisor reading pods from `pods`.
    pub fn new(
        client: Client,
        pods: Store<Pod>,
        events: EventPublisher,
        trigger: mpsc::UnboundedSender<agility_core::ObjectKey>,
        failovers: prometheus::IntCounterVec,
        timing: Timing,
        shutdown: CancellationToken,
    ) -> Self {
        Supervisor {
            client,
            pods,
            events,
            trigger,
            failovers,
            timing,
            shutdown,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts watching an instance, or updates what is watched.
    pub fn ensure(self: &Arc<Self>, namespace: &str, name: &str, config: HaConfig) {
        let key = (namespace.to_owned(), name.to_owned());
        let mut entries = self.lock();
        if let Some(e) = entries.get(&key) {
            e.config.send_if_modified(|c| {
                let changed = *c != config;
                *c = config.clone();
                changed
            });
            return;
        }
        let (tx, rx) = watch::channel(config);
        let snapshot = Arc::new(Mutex::new(HaSnapshot::default()));
        let stop = self.shutdown.child_token();
        let task = InstanceTask {
            sup: self.clone(),
            key: key.clone(),
            config: rx,
            snapshot: snapshot.clone(),
            conns: HashMap::new(),
            fails: HashMap::new(),
            applied: HashMap::new(),
            empty_rounds: 0,
            password: None,
            retired: Vec::new(),
            rotated_at: None,
            on_old_password: Vec::new(),
            rollout_backoff_until: None,
            tls: None,
        };
        tokio::spawn(task.run(stop.clone()));
        entries.insert(
            key,
            Entry {
                config: tx,
                snapshot,
                stop,
            },
        );
    }

    /// Stops watching an instance (deleted, or no longer HA-managed).
    pub fn forget(&self, namespace: &str, name: &str) {
        if let Some(e) = self.lock().remove(&(namespace.to_owned(), name.to_owned())) {
            e.stop.cancel();
        }
    }

    /// What the supervisor last saw of an instance.
    pub fn snapshot(&self, namespace: &str, name: &str) -> Option<HaSnapshot> {
        let entries = self.lock();
        let e = entries.get(&(namespace.to_owned(), name.to_owned()))?;
        let s = e
            .snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Some(s)
    }

    /// Number of supervised instances.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is supervised.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct InstanceTask {
    sup: Arc<Supervisor>,
    key: Key,
    config: watch::Receiver<HaConfig>,
    snapshot: Arc<Mutex<HaSnapshot>>,
    conns: HashMap<String, (String, MultiplexedConnection)>,
    fails: HashMap<String, (u32, bool)>,
    /// Hash of the online settings last applied per pod (and the pod's IP then).
    applied: HashMap<String, (String, u64)>,
    empty_rounds: u32,
    /// The password in force; `retired` ones are still tried and stay valid on the servers until
    /// `password_grace` after `rotated_at`.
    password: Option<String>,
    retired: Vec<String>,
    rotated_at: Option<Instant>,
    /// Pods that answered only to a retired password this round.
    on_old_password: Vec<String>,
    /// A failed rollout step waits until then (a switchover that cannot complete must not pause
    /// writes every round).
    rollout_backoff_until: Option<Instant>,
    /// The CA in force and the client verifying nodes with it (TLS instances).
    tls: Option<(String, Result<TlsClient, String>)>,
}

/// Wait after a failed rollout step.
const ROLLOUT_BACKOFF: Duration = Duration::from_secs(10);

/// How long writes are paused on the old master during a planned switchover (at most).
const SWITCHOVER_PAUSE: Duration = Duration::from_millis(3000);

/// Rounds without any pod after which a task ends (its instance was deleted; pods are gone).
const EMPTY_ROUNDS_LIMIT: u32 = 100;

/// Pod ordinal from its name (`<sts>-<n>`).
fn ordinal(pod: &str) -> u32 {
    pod.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u32::MAX)
}

impl InstanceTask {
    async fn run(mut self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.sup.timing.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            self.round().await;
            if self.empty_rounds >= EMPTY_ROUNDS_LIMIT {
                // The instance is gone (its pods were garbage-collected); a reconcile restarts us.
                let mut entries = self.sup.lock();
                if entries.get(&self.key).is_some_and(|e| {
                    e.stop.is_cancelled() || Arc::ptr_eq(&e.snapshot, &self.snapshot)
                }) {
                    entries.remove(&self.key);
                }
                break;
            }
        }
        debug!(namespace = %self.key.0, name = %self.key.1, "supervisor stopped");
    }

    fn pods(&self) -> Vec<Arc<Pod>> {
        let (ns, name) = &self.key;
        let mut pods: Vec<Arc<Pod>> = self
            .sup
            .pods
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
            .filter(|p| p.labels().get(agility_core::labels::INSTANCE) == Some(name))
            .collect();
        pods.sort_by_key(|p| ordinal(&p.name_any()));
        pods
    }

    async fn probe(
        &mut self,
        pod: &str,
        ip: &str,
        password: &str,
    ) -> Result<dataplane::ReplicationInfo, NodeError> {
        let timeout = self.sup.timing.probe_timeout;
        self.open(pod, ip, password).await?;
        let Some((_, conn)) = self.conns.get_mut(pod) else {
            return Err(NodeError::Other("no connection".into()));
        };
        match tokio::time::timeout(timeout, dataplane::replication(conn)).await {
            Ok(Ok(info)) => Ok(info),
            Ok(Err(e)) => {
                self.conns.remove(pod);
                Err(e)
            }
            Err(_) => {
                self.conns.remove(pod);
                Err(NodeError::Timeout)
            }
        }
    }

    /// Keeps an authenticated connection to `pod`. A node that still only knows a retired
    /// password (it started before the rotation) gets the new one added online.
    async fn open(&mut self, pod: &str, ip: &str, password: &str) -> Result<(), NodeError> {
        if matches!(self.conns.get(pod), Some((known, _)) if known == ip) {
            return Ok(());
        }
        let timeout = self.sup.timing.probe_timeout;
        let server_name = names::node_host(pod, &self.key.1, &self.key.0);
        let tls = match &self.tls {
            None => None,
            Some((_, Ok(client))) => Some(TlsTarget {
                client,
                server_name: &server_name,
            }),
            Some((_, Err(e))) => return Err(NodeError::Tls(e.clone())),
        };
        match dataplane::connect(ip, names::REDIS_PORT, password, timeout, tls).await {
            Ok(conn) => {
                self.conns.insert(pod.to_owned(), (ip.to_owned(), conn));
                return Ok(());
            }
            Err(NodeError::Auth) if !self.retired.is_empty() => {}
            Err(e) => return Err(e),
        }
        for old in self.retired.clone() {
            let Ok(mut conn) = dataplane::connect(ip, names::REDIS_PORT, &old, timeout, tls).await
            else {
                continue;
            };
            dataplane::add_password(&mut conn, password).await?;
            info!(namespace = %self.key.0, name = %self.key.1, pod, "new password added online");
            self.on_old_password.push(pod.to_owned());
            self.conns.insert(pod.to_owned(), (ip.to_owned(), conn));
            return Ok(());
        }
        Err(NodeError::Auth)
    }

    /// Notices a password change; once the grace period passed and every node knows the new
    /// password, the retired ones are removed from every node.
    async fn rotate(&mut self, config: &HaConfig, live: usize) {
        match &self.password {
            Some(p) if *p != config.password => {
                self.retired.insert(0, p.clone());
                self.retired.truncate(3);
                self.rotated_at = Some(Instant::now());
                // Reconnect with the new password (adding it where it is unknown).
                self.conns.clear();
                self.applied.clear();
            }
            _ => {}
        }
        self.password = Some(config.password.clone());
        let Some(at) = self.rotated_at else {
            return;
        };
        let everyone = self.conns.len() >= live && self.on_old_password.is_empty();
        if at.elapsed() < self.sup.timing.password_grace || !everyone {
            self.on_old_password.clear();
            return;
        }
        let mut done = true;
        for (pod, (_, conn)) in self.conns.iter_mut() {
            if let Err(e) = dataplane::only_password(conn, &config.password).await {
                warn!(pod = %pod, error = %e, "cannot retire the old password yet");
                done = false;
            }
        }
        if done {
            info!(namespace = %self.key.0, name = %self.key.1, "password rotation finished: old password removed");
            self.sup
                .events
                .publish(
                    &config.owner,
                    Severity::Normal,
                    "PasswordRotated",
                    "RotatePassword",
                    "the previous password no longer works",
                )
                .await;
            self.retired.clear();
            self.rotated_at = None;
        }
    }

    /// Follows the CA in force; a changed CA drops the connections verified with the old one.
    fn use_tls(&mut self, ca: Option<&str>) {
        if self.tls.as_ref().map(|(pem, _)| pem.as_str()) == ca {
            return;
        }
        self.conns.clear();
        self.tls = ca.map(|pem| {
            let client = TlsClient::new(pem).map_err(|e| e.to_string());
            if let Err(e) = &client {
                warn!(namespace = %self.key.0, name = %self.key.1, error = %e, "unusable CA");
            }
            (pem.to_owned(), client)
        });
    }

    async fn round(&mut self) {
        let config = self.config.borrow().clone();
        let pods = self.pods();
        if pods.is_empty() {
            self.empty_rounds += 1;
        } else {
            self.empty_rounds = 0;
        }
        self.use_tls(config.tls_ca.as_deref());
        if self.password.as_deref() != Some(config.password.as_str()) || self.rotated_at.is_some() {
            self.rotate(&config, pods.len()).await;
        }
        if let Some(shards) = config.cluster_shards {
            self.cluster_round(&pods, shards, &config).await;
            return;
        }
        let mut views = Vec::with_capacity(pods.len());
        // Probes run one after another: a round is a few ms per healthy node, and a bounded
        // number of slow ones; concurrency here would need one connection map per future.
        for pod in &pods {
            let name = pod.name_any();
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
            let deleting = pod.metadata.deletion_timestamp.is_some();
            let health = match (&ip, deleting) {
                (Some(ip), false) => match self.probe(&name, ip, &config.password).await {
                    Ok(info) => {
                        self.fails.remove(&name);
                        NodeHealth::Up(info)
                    }
                    Err(e) => {
                        let f = self.fails.entry(name.clone()).or_insert((0, false));
                        f.0 += 1;
                        f.1 = matches!(e, NodeError::Refused);
                        debug!(pod = %name, error = %e, consecutive = f.0, "probe failed");
                        NodeHealth::Down {
                            consecutive: f.0,
                            refused: f.1,
                        }
                    }
                },
                _ => NodeHealth::Unknown,
            };
            views.push(NodeView {
                ordinal: ordinal(&name),
                pod: name,
                ip,
                deleting,
                labelled_master: pod.labels().get(names::ROLE_LABEL).map(String::as_str)
                    == Some(names::ROLE_MASTER),
                health,
            });
        }
        let live: Vec<String> = views.iter().map(|v| v.pod.clone()).collect();
        self.fails.retain(|k, _| live.contains(k));
        self.conns.retain(|k, _| live.contains(k));
        self.applied.retain(|k, _| live.contains(k));
        self.apply_online(&views, &config).await;

        let decision = decide(&views, config.expected, self.sup.timing.thresholds);
        let failover = self.execute(&decision, &views, &config).await;
        let quiet = decision.steps.is_empty() && decision.blocked.is_none();
        if let (true, Some(revision)) = (quiet, &config.update_revision) {
            self.roll(&pods, &views, config.expected, revision, &config)
                .await;
        }
        self.publish(&views, &decision, failover);
    }

    /// Carries the steps out; returns the failover that happened, if any.
    async fn execute(
        &mut self,
        d: &Decision,
        views: &[NodeView],
        config: &HaConfig,
    ) -> Option<FailoverStatus> {
        let mut failover = None;
        for step in &d.steps {
            let result = match step {
                Step::Elect { pod } => self.elect(pod, views, config).await,
                Step::Failover {
                    from,
                    to,
                    reason,
                    fence,
                } => {
                    let started = Instant::now();
                    match self
                        .fail_over(from.as_deref(), to, *fence, views, config)
                        .await
                    {
                        Ok(()) => {
                            let from_name = from.clone().unwrap_or_else(|| "(gone)".into());
                            let note = format!(
                                "master {from_name} failed ({}); promoted {to} in {} ms{}",
                                reason.as_str(),
                                started.elapsed().as_millis(),
                                if *fence {
                                    "; fenced the old master (pod deleted, no grace period)"
                                } else {
                                    ""
                                }
                            );
                            info!(namespace = %self.key.0, name = %self.key.1, %note, "failover");
                            self.sup
                                .failovers
                                .with_label_values(&[
                                    self.key.0.as_str(),
                                    self.key.1.as_str(),
                                    reason.as_str(),
                                ])
                                .inc();
                            self.sup
                                .events
                                .publish(
                                    &config.owner,
                                    Severity::Warning,
                                    "Failover",
                                    "Failover",
                                    &note,
                                )
                                .await;
                            failover = Some(FailoverStatus {
                                time: k8s_openapi::jiff::Timestamp::now().to_string(),
                                from: from_name,
                                to: to.clone(),
                                reason: reason.as_str().to_owned(),
                            });
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                Step::Unlabel { pod } => self.label(pod, None).await,
                Step::Promote { pod } => self.replicaof(pod, None).await,
                Step::Replicate { pod, master_ip } => self.replicaof(pod, Some(master_ip)).await,
            };
            if let Err(e) = result {
                warn!(namespace = %self.key.0, name = %self.key.1, ?step, error = %e, "supervisor step failed; retrying next round");
                break;
            }
        }
        failover
    }

    /// The cluster edition's round: read every node's view, form/repair the cluster, report.
    async fn cluster_round(&mut self, pods: &[Arc<Pod>], shards: u32, config: &HaConfig) {
        let mut cps = Vec::new();
        let mut views = Vec::new();
        for pod in pods {
            let name = pod.name_any();
            let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
                continue;
            };
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let shard = pod
                .labels()
                .get(names::SHARD_LABEL)
                .and_then(|s| s.parse().ok())
                .unwrap_or(u32::MAX);
            let view = self.cluster_nodes(&name, &ip, &config.password).await;
            views.push(NodeView {
                pod: name.clone(),
                ordinal: ordinal(&name),
                ip: Some(ip.clone()),
                deleting: false,
                labelled_master: false,
                health: if view.is_some() {
                    NodeHealth::Up(dataplane::ReplicationInfo::default())
                } else {
                    NodeHealth::Unknown
                },
            });
            cps.push(ClusterPod {
                ordinal: ordinal(&name),
                pod: name,
                shard,
                ip,
                view,
            });
        }
        self.apply_online(&views, config).await;
        let per_shard = (config.expected as u32 / shards.max(1)).max(1);
        let (blocked, pending) = match cluster::plan_cluster(&cps, shards, per_shard) {
            Ok(steps) => {
                let pending = !steps.is_empty();
                for step in steps {
                    if let Err(e) = self.cluster_step(&step).await {
                        warn!(namespace = %self.key.0, name = %self.key.1, ?step, error = %e, "cluster step failed; retrying next round");
                        break;
                    }
                }
                (None, pending)
            }
            Err(why) => (Some(why), true),
        };
        let map = cluster::shard_map(&cps, shards);
        let formed = !pending && map.iter().all(|s| s.master.is_some());
        let mut roles = BTreeMap::new();
        for cp in &cps {
            let me = cp.view.as_ref().and_then(|v| v.iter().find(|n| n.myself));
            let role = match me {
                Some(m) if m.master && !m.slots.is_empty() => "master",
                Some(m) if !m.master => "replica",
                _ => "unknown",
            };
            roles.insert(cp.pod.clone(), role.to_owned());
        }
        let status = ClusterStatus {
            state: if formed {
                "ok".into()
            } else {
                "forming".into()
            },
            shards: map,
            proxy: "not available yet: use a cluster-aware client".into(),
        };
        let mut snap = self
            .snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = snap.clone();
        snap.roles = roles;
        snap.blocked = blocked;
        snap.cluster = Some(status);
        snap.master = None;
        if before.topology() != snap.topology() {
            drop(snap);
            let _ = self
                .sup
                .trigger
                .send((Some(self.key.0.clone()), self.key.1.clone()));
        }
    }

    async fn cluster_nodes(
        &mut self,
        pod: &str,
        ip: &str,
        password: &str,
    ) -> Option<Vec<cluster::ClusterNode>> {
        let timeout = self.sup.timing.probe_timeout;
        self.open(pod, ip, password).await.ok()?;
        let (_, conn) = self.conns.get_mut(pod)?;
        let text: Option<String> = tokio::time::timeout(
            timeout,
            redis::cmd("CLUSTER").arg("NODES").query_async(conn),
        )
        .await
        .ok()
        .and_then(Result::ok);
        if text.is_none() {
            self.conns.remove(pod);
        }
        text.map(|t| cluster::parse_nodes(&t))
    }

    async fn cluster_step(&mut self, step: &ClusterStep) -> Result<(), String> {
        let (pod, cmd) = match step {
            ClusterStep::Meet { via, ip } => {
                let mut c = redis::cmd("CLUSTER");
                c.arg("MEET")
                    .arg(ip)
                    .arg(names::REDIS_PORT)
                    .arg(names::CLUSTER_BUS_PORT);
                (via, c)
            }
            ClusterStep::AddSlots { pod, start, end } => {
                let mut c = redis::cmd("CLUSTER");
                c.arg("ADDSLOTSRANGE").arg(*start).arg(*end);
                (pod, c)
            }
            ClusterStep::Replicate { pod, master_id } => {
                let mut c = redis::cmd("CLUSTER");
                c.arg("REPLICATE").arg(master_id);
                (pod, c)
            }
            ClusterStep::Forget { via, id } => {
                let mut c = redis::cmd("CLUSTER");
                c.arg("FORGET").arg(id);
                (via, c)
            }
        };
        let Some((_, conn)) = self.conns.get_mut(pod.as_str()) else {
            return Err(format!("no connection to {pod}"));
        };
        let r: redis::RedisResult<redis::Value> = cmd.query_async(conn).await;
        r.map(|_| ())
            .map_err(|e| format!("{step:?} on {pod}: {e}"))?;
        info!(namespace = %self.key.0, name = %self.key.1, ?step, "cluster step");
        Ok(())
    }

    /// One rollout step if one is due (see [`rollout`]).
    async fn roll(
        &mut self,
        pods: &[Arc<Pod>],
        views: &[NodeView],
        expected: usize,
        revision: &str,
        config: &HaConfig,
    ) {
        let rollout_views: Vec<RolloutView> = pods
            .iter()
            .map(|p| RolloutView {
                pod: p.name_any(),
                revision: p.labels().get("controller-revision-hash").cloned(),
                ready: p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
                master: p.labels().get(names::ROLE_LABEL).map(String::as_str)
                    == Some(names::ROLE_MASTER),
                deleting: p.metadata.deletion_timestamp.is_some(),
            })
            .collect();
        if self
            .rollout_backoff_until
            .is_some_and(|t| Instant::now() < t)
        {
            return;
        }
        let Some(step) = plan_rollout(&rollout_views, expected, revision) else {
            return;
        };
        let result = match &step {
            RolloutStep::Replace { pod } => self.delete_pod(pod, None).await,
            RolloutStep::Switchover { from, to } => self.switchover(from, to, views).await,
        };
        match result {
            Ok(()) => {
                let note = match &step {
                    RolloutStep::Replace { pod } => {
                        format!("replacing {pod} with revision {revision}")
                    }
                    RolloutStep::Switchover { from, to } => {
                        format!(
                            "switched the master from {from} to {to}; replacing {from} with revision {revision}"
                        )
                    }
                };
                info!(namespace = %self.key.0, name = %self.key.1, %note, "rolling update");
                self.sup
                    .events
                    .publish(
                        &config.owner,
                        Severity::Normal,
                        "RollingUpdate",
                        "Update",
                        &note,
                    )
                    .await;
                let _ = self
                    .sup
                    .trigger
                    .send((Some(self.key.0.clone()), self.key.1.clone()));
            }
            Err(e) => {
                warn!(namespace = %self.key.0, name = %self.key.1, ?step, error = %e, "rollout step failed; retrying in 10 s");
                self.rollout_backoff_until = Some(Instant::now() + ROLLOUT_BACKOFF);
            }
        }
    }

    /// Planned master change: pause writes on the old master, let the replica catch up, move
    /// the label, promote, then replace the old master's pod (it returns as a replica).
    async fn switchover(&mut self, from: &str, to: &str, views: &[NodeView]) -> Result<(), String> {
        if !views
            .iter()
            .any(|v| v.pod == to && matches!(v.health, NodeHealth::Up(_)))
        {
            return Err(format!("{to} does not answer"));
        }
        {
            let (_, conn) = self
                .conns
                .get_mut(from)
                .ok_or("no connection to the master")?;
            let _: String = redis::cmd("CLIENT")
                .arg("PAUSE")
                .arg(SWITCHOVER_PAUSE.as_millis() as u64)
                .arg("WRITE")
                .query_async(conn)
                .await
                .map_err(|e| format!("CLIENT PAUSE on {from}: {e}"))?;
        }
        // Wait (bounded by the pause) until the replica has everything the master has.
        let deadline = Instant::now() + SWITCHOVER_PAUSE / 2;
        loop {
            let master = self.offset_of(from).await;
            let replica = self.offset_of(to).await;
            match (master, replica) {
                (Some(m), Some(r)) if r >= m => break,
                _ if Instant::now() >= deadline => {
                    // Give the writes back at once rather than when the pause expires.
                    if let Some((_, conn)) = self.conns.get_mut(from) {
                        let _: redis::RedisResult<String> =
                            redis::cmd("CLIENT").arg("UNPAUSE").query_async(conn).await;
                    }
                    return Err("the replica did not catch up in time".into());
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        self.label(from, None).await?;
        self.replicaof(to, None).await?;
        self.label(to, Some(names::ROLE_MASTER)).await?;
        self.delete_pod(from, None).await
    }

    /// The replication offset of `pod` over its kept connection.
    async fn offset_of(&mut self, pod: &str) -> Option<i64> {
        let (_, conn) = self.conns.get_mut(pod)?;
        let info =
            tokio::time::timeout(self.sup.timing.probe_timeout, dataplane::replication(conn)).await;
        info.ok()?.ok().map(|i| i.offset)
    }

    async fn delete_pod(&self, pod: &str, grace: Option<u32>) -> Result<(), String> {
        let api: Api<Pod> = Api::namespaced(self.sup.client.clone(), &self.key.0);
        match api
            .delete(
                pod,
                &DeleteParams {
                    grace_period_seconds: grace,
                    ..Default::default()
                },
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(format!("delete {pod}: {e}")),
        }
    }

    /// CONFIG SET of the online settings on every answering node whose applied hash is stale.
    async fn apply_online(&mut self, views: &[NodeView], config: &HaConfig) {
        let hash = agility_core::apply::fnv1a64(format!("{:?}", config.online).as_bytes());
        for v in views {
            let (NodeHealth::Up(_), Some(ip)) = (&v.health, &v.ip) else {
                continue;
            };
            if self.applied.get(&v.pod) == Some(&(ip.clone(), hash)) {
                continue;
            }
            let Some((_, conn)) = self.conns.get_mut(&v.pod) else {
                continue;
            };
            let mut ok = true;
            for (k, val) in &config.online {
                if let Err(e) = dataplane::config_set(conn, k, val).await {
                    warn!(pod = %v.pod, setting = %k, error = %e, "CONFIG SET failed");
                    ok = false;
                }
            }
            if ok {
                self.applied.insert(v.pod.clone(), (ip.clone(), hash));
            }
        }
    }

    async fn elect(
        &mut self,
        pod: &str,
        views: &[NodeView],
        config: &HaConfig,
    ) -> Result<(), String> {
        let is_replica = views
            .iter()
            .find(|v| v.pod == pod)
            .is_some_and(|v| matches!(&v.health, NodeHealth::Up(info) if !info.is_master));
        if is_replica {
            self.replicaof(pod, None).await?;
        }
        self.label(pod, Some(names::ROLE_MASTER)).await?;
        self.sup
            .events
            .publish(
                &config.owner,
                Severity::Normal,
                "MasterElected",
                "Elect",
                &format!("{pod} is the master"),
            )
            .await;
        Ok(())
    }

    async fn fail_over(
        &mut self,
        from: Option<&str>,
        to: &str,
        fence: bool,
        _views: &[NodeView],
        _config: &HaConfig,
    ) -> Result<(), String> {
        // Out of the endpoint first: no new connection reaches the old master from here on.
        if let Some(from) = from {
            self.label(from, None).await?;
        }
        self.replicaof(to, None).await?;
        self.label(to, Some(names::ROLE_MASTER)).await?;
        if let (Some(from), true) = (from, fence) {
            // SIGKILL through the kubelet: works on a stopped process, so it never thaws as a
            // second master; the StatefulSet recreates it and it joins as a replica.
            let api: Api<Pod> = Api::namespaced(self.sup.client.clone(), &self.key.0);
            match api
                .delete(
                    from,
                    &DeleteParams {
                        grace_period_seconds: Some(0),
                        ..Default::default()
                    },
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(format!("fence {from}: {e}")),
            }
        }
        Ok(())
    }

    async fn label(&self, pod: &str, role: Option<&str>) -> Result<(), String> {
        let api: Api<Pod> = Api::namespaced(self.sup.client.clone(), &self.key.0);
        let patch = json!({"metadata": {"labels": {names::ROLE_LABEL: role}}});
        match api
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 && role.is_none() => Ok(()),
            Err(e) => Err(format!("label {pod}: {e}")),
        }
    }

    async fn replicaof(&mut self, pod: &str, master_ip: Option<&str>) -> Result<(), String> {
        let Some((_, conn)) = self.conns.get_mut(pod) else {
            return Err(format!("no connection to {pod}"));
        };
        let target = master_ip.map(|ip| (ip, names::REDIS_PORT));
        let r = tokio::time::timeout(
            self.sup.timing.probe_timeout * 4,
            dataplane::replicaof(conn, target),
        )
        .await;
        match r {
            Ok(Ok(())) => {
                debug!(pod, ?master_ip, "replicaof");
                Ok(())
            }
            Ok(Err(e)) => Err(format!("REPLICAOF on {pod}: {e}")),
            Err(_) => Err(format!("REPLICAOF on {pod}: timed out")),
        }
    }

    fn publish(&mut self, views: &[NodeView], d: &Decision, failover: Option<FailoverStatus>) {
        let mut roles = BTreeMap::new();
        let mut master = None;
        let mut lag = None;
        for v in views {
            let role = match &v.health {
                NodeHealth::Up(i) if i.is_master => "master",
                NodeHealth::Up(_) => "replica",
                _ => "unknown",
            };
            if v.labelled_master {
                master = Some(v.pod.clone());
                if let NodeHealth::Up(i) = &v.health {
                    lag = i.replicas.iter().map(|(_, _, l)| *l).max();
                }
            }
            roles.insert(v.pod.clone(), role.to_owned());
        }
        // A failover relabels pods; the cache shows it next round, so report the new master now.
        if let Some(f) = &failover {
            master = Some(f.to.clone());
            roles.insert(f.to.clone(), "master".into());
            roles.insert(f.from.clone(), "unknown".into());
            roles.retain(|k, _| views.iter().any(|v| &v.pod == k));
        }
        let mut snap = self
            .snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = snap.clone();
        snap.master = master;
        snap.roles = roles;
        snap.lag_seconds = lag.map(|l| if l <= 1 { 0 } else { l });
        snap.blocked = d.blocked.clone();
        if failover.is_some() {
            snap.last_failover = failover;
        }
        if before.topology() != snap.topology() {
            drop(snap);
            let _ = self
                .sup
                .trigger
                .send((Some(self.key.0.clone()), self.key.1.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_come_from_pod_names() {
        assert_eq!(ordinal("orders-0"), 0);
        assert_eq!(ordinal("orders-shard-2-1"), 1);
        assert_eq!(ordinal("weird"), u32::MAX);
    }

    #[test]
    fn lag_alone_does_not_change_the_topology() {
        let a = HaSnapshot {
            lag_seconds: Some(0),
            ..Default::default()
        };
        let b = HaSnapshot {
            lag_seconds: Some(5),
            ..Default::default()
        };
        assert_eq!(a.topology(), b.topology());
    }
}
