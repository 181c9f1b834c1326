//! The HA supervisor: one task per RdsInstance. Every round (1 s) it reads the instance's pods
//! from the shared pod cache, probes every node over the MySQL protocol (short timeouts, kept
//! sessions), runs [`decide`](super::decide) and carries the actions out: fence, elect, fail over,
//! rejoin. Read replicas follow whichever node is primary. Role changes trigger a reconcile so
//! status follows at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agility_core::events::{EventPublisher, Severity};
use agility_core::supervise::{TaskHandle, TaskRegistry};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::decide::{self, Action, ApplyWait, Decision, Node, Observation};
use super::observe;
use crate::crd::{FailoverStatus, NodeStatus, Priority, Replication};
use crate::dataplane::{
    self, Connection, Endpoint, GlobalValue, GtidPos, NodeProbe, ReplicationSource, SemiSync,
    Timeouts, Tls,
};
use crate::names;

/// What the supervisor needs of an instance (sent again on every reconcile; changes apply at
/// the next round).
#[derive(Clone, Debug, PartialEq)]
pub struct HaConfig {
    /// `agility_admin`'s password.
    pub admin_password: String,
    /// `agility_repl`'s password.
    pub repl_password: String,
    /// Service priority.
    pub priority: Priority,
    /// Replication mode.
    pub replication: Replication,
    /// SemiSync timeout.
    pub semi_sync_timeout_ms: u64,
    /// Read replicas the StatefulSet has.
    pub read_replicas: u32,
    /// Parameters applied online (SET GLOBAL) on every node.
    pub online: BTreeMap<String, String>,
    /// The instance, for events.
    pub owner: ObjectReference,
    /// Status says the instance has had a primary (so an empty label set is not a first start).
    pub had_primary: bool,
}

/// What the supervisor last saw, for status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HaSnapshot {
    /// The labelled primary that answered the last round.
    pub primary: Option<String>,
    /// Every pod and its role.
    pub nodes: Vec<NodeStatus>,
    /// Rpl_semi_sync_master_status on the primary.
    pub semi_sync_active: bool,
    /// The standby replicates from the primary with both threads running.
    pub standby_streaming: bool,
    /// Why the pair is not steady.
    pub waiting: Option<String>,
    /// Nodes that need a re-clone (not automated yet).
    pub rebuild_needed: Vec<String>,
    /// The last failover this process carried out.
    pub last_failover: Option<FailoverStatus>,
}

impl HaSnapshot {
    /// The parts whose change should update status now (GTIDs and lag alone do not).
    fn topology(&self) -> impl PartialEq + '_ {
        (
            &self.primary,
            self.semi_sync_active,
            self.standby_streaming,
            &self.waiting,
            &self.rebuild_needed,
            &self.last_failover,
            self.nodes
                .iter()
                .map(|n| (&n.pod, &n.role))
                .collect::<Vec<_>>(),
        )
    }
}

/// Probe cadence and limits.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Time between rounds.
    pub interval: Duration,
    /// Connect and statement timeout of a probe.
    pub probe_timeout: Duration,
    /// The decision's thresholds.
    pub decide: decide::Timing,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(2),
            // 5 s of failed probes (not 3): a busy node must not look dead; a frozen primary
            // takes ~5 s to lose the standby's heartbeat view anyway.
            decide: decide::Timing {
                detect_after: Duration::from_secs(5),
                ..decide::Timing::default()
            },
        }
    }
}

/// Rounds in a row a node must look errant before it is rebuilt.
const ERRANT_ROUNDS: u32 = 3;

/// A re-created node that still cannot follow is not re-created again for this long.
const REBUILD_BACKOFF: Duration = Duration::from_secs(600);

/// `rpl_semi_sync_master_timeout` for Sync: never fall back (about 49 days).
const SYNC_TIMEOUT_MS: u64 = u32::MAX as u64;

/// Shared by the controller.
pub struct Supervisor {
    client: Client,
    pods: Store<Pod>,
    events: EventPublisher,
    trigger: mpsc::UnboundedSender<agility_core::ObjectKey>,
    failovers: prometheus::IntCounterVec,
    timing: Timing,
    tasks: TaskRegistry<HaConfig, HaSnapshot>,
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
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Self {
        Supervisor {
            client,
            pods,
            events,
            trigger,
            failovers,
            timing,
            tasks: TaskRegistry::new(shutdown),
        }
    }

    /// Starts supervising an instance, or updates its config.
    pub fn ensure(self: &Arc<Self>, namespace: &str, name: &str, config: HaConfig) {
        let sup = self.clone();
        self.tasks.ensure(namespace, name, config, move |handle| {
            tokio::spawn(InstanceTask::new(sup, handle).run());
        });
    }

    /// Stops supervising an instance.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.tasks.forget(namespace, name);
    }

    /// What the supervisor last saw.
    pub fn snapshot(&self, namespace: &str, name: &str) -> Option<HaSnapshot> {
        self.tasks.snapshot(namespace, name)
    }
}

/// Per-node memory between rounds.
#[derive(Default)]
struct NodeMemory {
    conn: Option<(String, Connection)>,
    last_ok: Option<Instant>,
    last_probe: Option<NodeProbe>,
    heartbeats: Option<u64>,
    received: Option<String>,
    /// The source its IO thread was last seen connected to. A standby that has not connected
    /// to the primary since it (re)joined gives no view of the primary: "connecting" then
    /// means "starting", not "lost it".
    connected_to: Option<String>,
}

struct InstanceTask {
    sup: Arc<Supervisor>,
    handle: TaskHandle<HaConfig, HaSnapshot>,
    started: Instant,
    nodes: HashMap<String, NodeMemory>,
    last_primary_position: Option<GtidPos>,
    semi_sync_was_on: bool,
    had_primary: bool,
    reported_rebuild: Vec<String>,
    rebuilt_at: HashMap<String, Instant>,
    errant_rounds: HashMap<String, u32>,
    /// The primary that last answered with its label (a different node elected after it is a
    /// failover even when its pod came back without the label).
    last_primary: Option<String>,
    last_wait: Option<String>,
    last_failover: Option<FailoverStatus>,
}

fn pod_label(pod: &Pod, key: &str) -> Option<String> {
    pod.labels().get(key).cloned()
}

impl InstanceTask {
    fn new(sup: Arc<Supervisor>, handle: TaskHandle<HaConfig, HaSnapshot>) -> Self {
        let had_primary = handle.config.borrow().had_primary;
        InstanceTask {
            sup,
            handle,
            started: Instant::now(),
            nodes: HashMap::new(),
            last_primary_position: None,
            semi_sync_was_on: false,
            had_primary,
            reported_rebuild: Vec::new(),
            rebuilt_at: HashMap::new(),
            errant_rounds: HashMap::new(),
            last_primary: None,
            last_wait: None,
            last_failover: None,
        }
    }

    fn name(&self) -> &str {
        &self.handle.key.1
    }

    fn namespace(&self) -> &str {
        &self.handle.key.0
    }

    async fn run(mut self) {
        let stop = self.handle.stop.clone();
        let mut tick = tokio::time::interval(self.sup.timing.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            self.round().await;
        }
        for (_, mem) in self.nodes.drain() {
            if let Some((_, c)) = mem.conn {
                c.close().await;
            }
        }
    }

    /// The instance's pods from the cache: (HA pods by ordinal, read replica pods).
    fn pods(&self) -> (Vec<Option<Pod>>, Vec<Pod>) {
        let name = self.name();
        let ns = self.namespace();
        let mut ha = vec![None, None];
        let mut read = Vec::new();
        for p in self.sup.pods.state() {
            if p.namespace().as_deref() != Some(ns)
                || pod_label(&p, agility_core::labels::INSTANCE).as_deref() != Some(name)
            {
                continue;
            }
            match pod_label(&p, names::SET_LABEL).as_deref() {
                Some(names::SET_HA) => {
                    let pod_name = p.name_any();
                    for (i, slot) in ha.iter_mut().enumerate() {
                        if pod_name == format!("{name}-{i}") {
                            *slot = Some((*p).clone());
                        }
                    }
                }
                Some(names::SET_READ) => read.push((*p).clone()),
                _ => {}
            }
        }
        read.sort_by_key(|p| p.name_any());
        (ha, read)
    }

    fn endpoint(&self, ip: &str) -> Endpoint {
        Endpoint {
            host: ip.to_owned(),
            port: names::MYSQL_PORT as u16,
            user: names::ADMIN_USER.into(),
            password: self.handle.config.borrow().admin_password.clone(),
            tls: Tls::Disabled,
        }
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.sup.timing.probe_timeout,
            query: self.sup.timing.probe_timeout,
        }
    }

    /// Probes one pod (reusing its session); None when it does not answer.
    async fn probe(&mut self, pod: &Pod) -> Option<NodeProbe> {
        let name = pod.name_any();
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone())?;
        let endpoint = self.endpoint(&ip);
        let timeouts = self.timeouts();
        let mem = self.nodes.entry(name.clone()).or_default();
        if mem.conn.as_ref().is_some_and(|(at, _)| *at != ip) {
            mem.conn = None;
        }
        if mem.conn.is_none() {
            match Connection::connect(&endpoint, timeouts).await {
                Ok(c) => mem.conn = Some((ip.clone(), c)),
                Err(e) => {
                    debug!(pod = %name, error = %e, "probe: cannot connect");
                    mem.last_probe = None;
                    return None;
                }
            }
        }
        let (_, conn) = mem.conn.as_mut()?;
        match dataplane::probe(conn).await {
            Ok(p) => {
                mem.heartbeats = heartbeats(conn).await;
                mem.received = p.replica.as_ref().map(|r| r.gtid_io_pos.to_string());
                mem.last_ok = Some(Instant::now());
                mem.last_probe = Some(p.clone());
                Some(p)
            }
            Err(e) => {
                debug!(pod = %name, error = %e, "probe failed");
                mem.conn = None;
                mem.last_probe = None;
                None
            }
        }
    }

    /// Heard from its source since the previous round (events or heartbeats).
    fn heard_recently(&self, pod: &str, before: (Option<u64>, Option<String>)) -> bool {
        self.nodes
            .get(pod)
            .is_some_and(|m| m.heartbeats != before.0 || m.received != before.1)
    }

    async fn round(&mut self) {
        let config = self.handle.config.borrow().clone();
        let name = self.name().to_owned();
        let (ha, read) = self.pods();
        let ha_names: Vec<String> = (0..2).map(|i| format!("{name}-{i}")).collect();
        let ha_refs: Vec<&str> = ha_names.iter().map(String::as_str).collect();
        let labelled = ha
            .iter()
            .flatten()
            .find(|p| pod_label(p, names::ROLE_LABEL).as_deref() == Some(names::ROLE_PRIMARY))
            .map(|p| p.name_any());

        let mut probes: [Option<NodeProbe>; 2] = [None, None];
        let mut heard = [false, false];
        // The primary last: everything a standby legitimately holds then came from the primary
        // before its probe, so the errant check cannot mistake "received after the primary's
        // probe" for "errant".
        let mut order: Vec<usize> = (0..2).collect();
        order.sort_by_key(|&i| Some(&ha_names[i]) == labelled.as_ref());
        for i in order {
            if let Some(pod) = &ha[i] {
                let before = self
                    .nodes
                    .get(&ha_names[i])
                    .map(|m| (m.heartbeats, m.received.clone()))
                    .unwrap_or_default();
                probes[i] = self.probe(pod).await;
                heard[i] = self.heard_recently(&ha_names[i], before);
            }
        }
        // The primary's last good probe: the reference for data-loss checks. Errant transactions
        // are judged only against a primary that answered this round: a standby that received
        // more after the primary's last probe is ahead of that snapshot, not errant.
        let mut live_primary_state = None;
        if let Some(i) = labelled
            .as_ref()
            .and_then(|l| ha_names.iter().position(|n| n == l))
            && let Some(p) = &probes[i]
        {
            self.last_primary_position = Some(p.gtid_binlog_pos.clone());
            live_primary_state = Some(p.gtid_binlog_state.clone());
            self.semi_sync_was_on = p.semi_sync.master_status;
            self.had_primary = true;
        }
        let now = Instant::now();
        for (i, p) in probes.iter().enumerate() {
            let Some(r) = p.as_ref().and_then(|p| p.replica.as_ref()) else {
                continue;
            };
            let mem = self.nodes.entry(ha_names[i].clone()).or_default();
            if r.io_running == dataplane::IoState::Yes {
                mem.connected_to = Some(r.master_host.clone());
            }
        }
        let mut nodes: [Node; 2] = std::array::from_fn(|i| Node {
            name: ha_names[i].clone(),
            pod_exists: ha[i].is_some(),
            since_last_ok: self
                .nodes
                .get(&ha_names[i])
                .and_then(|m| m.last_ok)
                .map_or(now - self.started, |t| now - t),
            status: probes[i]
                .as_ref()
                .map(|p| observe::status(p, &ha_refs, live_primary_state.as_ref(), heard[i])),
        });
        for (i, n) in nodes.iter_mut().enumerate() {
            let seen = self
                .nodes
                .get(&ha_names[i])
                .and_then(|m| m.connected_to.clone());
            let host = probes[i]
                .as_ref()
                .and_then(|p| p.replica.as_ref())
                .map(|r| r.master_host.clone());
            if let Some(st) = n.status.as_mut()
                && st.io_thread != decide::IoThread::Connected
                && seen != host
            {
                st.replicating_from = None;
            }
        }
        // A rebuild destroys the node's data: errant must be seen in several rounds in a row,
        // never on one probe that may have raced a commit.
        for n in nodes.iter_mut() {
            let count = self.errant_rounds.entry(n.name.clone()).or_default();
            match n.status.as_mut() {
                Some(st) if st.errant => {
                    *count += 1;
                    st.errant = *count >= ERRANT_ROUNDS;
                }
                _ => *count = 0,
            }
        }
        if let Some(l) = &labelled
            && probes[ha_names.iter().position(|n| n == l).unwrap_or(0)].is_some()
        {
            self.last_primary = Some(l.clone());
        }
        let obs = Observation {
            priority: match config.priority {
                Priority::RpoFirst => decide::Priority::RpoFirst,
                Priority::RtoFirst => decide::Priority::RtoFirst,
            },
            replication: match config.replication {
                Replication::Async => decide::Replication::Async,
                Replication::SemiSync => decide::Replication::SemiSync,
                Replication::Sync => decide::Replication::Sync,
            },
            nodes,
            primary: labelled.clone(),
            last_primary_position: self.last_primary_position.as_ref().map(observe::position),
            semi_sync_was_on: self.semi_sync_was_on,
            had_primary: self.had_primary,
            timing: self.sup.timing.decide,
        };
        self.unstick_rebuilt(&ha).await;
        let decision = decide::decide(&obs);
        let mut primary = labelled.clone();
        if !decision.is_steady() {
            debug!(instance = %name, ?decision, "decision");
        }
        self.carry_out(&decision, &ha, &config, &mut primary, &probes)
            .await;

        // Keep the primary's semi-sync, the standby's ack side and the online parameters in
        // line (each call reads first and writes only on a difference).
        if let Some(p) = primary.as_deref() {
            self.tend_settings(p, &ha_names, &config).await;
            self.tend_read_replicas(p, &read, &config).await;
        }
        self.publish(
            &config,
            primary,
            &ha_names,
            &read,
            decision.wait.map(|w| w.as_str().to_owned()),
        )
        .await;
    }

    async fn conn(&mut self, pod: &str) -> Option<&mut Connection> {
        self.nodes
            .get_mut(pod)
            .and_then(|m| m.conn.as_mut())
            .map(|(_, c)| c)
    }

    fn source(&self, primary: &str, config: &HaConfig) -> ReplicationSource {
        ReplicationSource {
            host: names::node_host(primary, self.name(), self.namespace()),
            port: names::MYSQL_PORT as u16,
            user: names::REPL_USER.into(),
            password: config.repl_password.clone(),
        }
    }

    fn semi_sync(config: &HaConfig) -> SemiSync {
        SemiSync {
            enabled: config.replication != Replication::Async,
            timeout_ms: match config.replication {
                Replication::Sync => SYNC_TIMEOUT_MS,
                _ => config.semi_sync_timeout_ms,
            },
        }
    }

    async fn carry_out(
        &mut self,
        decision: &Decision,
        ha: &[Option<Pod>],
        config: &HaConfig,
        primary: &mut Option<String>,
        probes: &[Option<NodeProbe>; 2],
    ) {
        let ha_names: Vec<String> = (0..2).map(|i| format!("{}-{i}", self.name())).collect();
        for action in &decision.actions {
            match action {
                Action::Fence { node } => {
                    self.fence(node).await;
                    if primary.as_deref() == Some(node) {
                        *primary = None;
                    }
                }
                Action::Bootstrap { primary: p } | Action::Adopt { primary: p } => {
                    let reason = if matches!(action, Action::Bootstrap { .. }) {
                        "Elected"
                    } else {
                        "Adopted"
                    };
                    let received = ha_names
                        .iter()
                        .position(|n| n == p)
                        .and_then(|i| probes[i].as_ref())
                        .and_then(|pr| pr.replica.as_ref().map(|r| r.gtid_io_pos.clone()));
                    if self
                        .promote(
                            p,
                            config,
                            received,
                            ApplyWait::AtMost(Duration::from_secs(30)),
                        )
                        .await
                    {
                        *primary = Some(p.clone());
                        self.label_roles(p, &ha_names).await;
                        match self.last_primary.clone().filter(|prev| prev != p) {
                            // The old primary's pod came back without its label before the
                            // failure was confirmed: electing the other node is a failover.
                            Some(prev) => {
                                self.record_failover(&prev, p, "PrimaryLost", false).await
                            }
                            None => {
                                self.event(Severity::Normal, reason, &format!("{p} is the primary"))
                                    .await
                            }
                        }
                        self.last_primary = Some(p.clone());
                    }
                }
                Action::Failover {
                    from,
                    to,
                    apply,
                    possible_loss,
                } => {
                    let started = Instant::now();
                    // Fence first: no label (no traffic), then no process (a frozen primary must
                    // never wake up writable beside the new one).
                    self.set_role(from, names::ROLE_STANDBY).await;
                    self.delete_pod_now(from).await;
                    if let Some(m) = self.nodes.get_mut(from) {
                        m.conn = None;
                    }
                    let received = ha_names
                        .iter()
                        .position(|n| n == to)
                        .and_then(|i| probes[i].as_ref())
                        .and_then(|pr| pr.replica.as_ref().map(|r| r.gtid_io_pos.clone()));
                    if self.promote(to, config, received, *apply).await {
                        *primary = Some(to.clone());
                        self.label_roles(to, &ha_names).await;
                        let reason = if ha.iter().flatten().any(|p| p.name_any() == *from) {
                            "PrimaryUnreachable"
                        } else {
                            "PrimaryDeleted"
                        };
                        info!(namespace = %self.namespace(), instance = %self.name(), ms = started.elapsed().as_millis() as u64, "promoted");
                        self.record_failover(from, to, reason, *possible_loss).await;
                        self.last_primary = Some(to.clone());
                    }
                }
                Action::Rejoin { node, source } => {
                    let src = self.source(source, config);
                    let semi = config.replication != Replication::Async;
                    if let Some(c) = self.conn(node).await {
                        match dataplane::make_replica(c, &src, semi).await {
                            Ok(true) => {
                                info!(namespace = %self.namespace(), instance = %self.name(), %node, %source, "replica (re)joined");
                                let n = node.clone();
                                self.set_role(&n, names::ROLE_STANDBY).await;
                                self.event(
                                    Severity::Normal,
                                    "Rejoined",
                                    &format!("{n} replicates from {source}"),
                                )
                                .await;
                            }
                            Ok(false) => {}
                            Err(e) => {
                                warn!(namespace = %self.namespace(), %node, error = %e, "rejoin failed")
                            }
                        }
                    }
                }
                Action::Rebuild {
                    node,
                    source,
                    reason,
                } => {
                    self.rebuild(node, source, reason.as_str()).await;
                }
            }
        }
        // A node that no longer needs a rebuild is forgotten.
        let actions = &decision.actions;
        self.reported_rebuild.retain(|n| {
            actions
                .iter()
                .any(|a| matches!(a, Action::Rebuild { node, .. } if node == n))
        });
    }

    /// Counts, records (status) and announces (event) a failover.
    async fn record_failover(&mut self, from: &str, to: &str, reason: &str, possible_loss: bool) {
        self.sup
            .failovers
            .with_label_values(&[self.namespace(), self.name(), reason])
            .inc();
        self.last_failover = Some(FailoverStatus {
            time: now_rfc3339(),
            from: from.to_owned(),
            to: to.to_owned(),
            reason: reason.into(),
            possible_data_loss: possible_loss,
        });
        let loss = if possible_loss {
            " (RTO-first: transactions the standby had not received may be lost)"
        } else {
            ""
        };
        warn!(namespace = %self.namespace(), instance = %self.name(), %from, %to, reason, "failover");
        self.event(
            Severity::Warning,
            "Failover",
            &format!("{from} failed ({reason}); promoted {to}{loss}"),
        )
        .await;
    }

    /// Re-creates `node` empty so it replays the primary's binary log from the start: its data
    /// diverged (errant transactions, which the new primary never had and no client of the
    /// current primary saw) or cannot follow the primary. Its volume claim and pod are deleted;
    /// the StatefulSet makes both again. Once per node per [`REBUILD_BACKOFF`]: if the fresh node
    /// cannot follow either (the primary purged old binlogs: error 1236), a clone from a backup
    /// is needed, which is not automated yet, and status says so.
    async fn rebuild(&mut self, node: &str, source: &str, reason: &str) {
        let recent = self
            .rebuilt_at
            .get(node)
            .is_some_and(|t| t.elapsed() < REBUILD_BACKOFF);
        if recent {
            if !self.reported_rebuild.iter().any(|n| n == node) {
                self.reported_rebuild.push(node.to_owned());
                self.event(
                    Severity::Warning,
                    "RebuildRequired",
                    &format!(
                        "{node} still cannot replicate from {source} ({reason}) after being re-created empty: the primary's binary log no longer starts at the beginning; a clone from a backup is needed (not automated yet)"
                    ),
                )
                .await;
            }
            return;
        }
        self.rebuilt_at.insert(node.to_owned(), Instant::now());
        warn!(namespace = %self.namespace(), instance = %self.name(), %node, %reason, "re-creating a diverged node empty");
        self.event(
            Severity::Warning,
            "Rebuilding",
            &format!("{node} diverged from {source} ({reason}): re-creating it empty to replay the primary's binary log"),
        )
        .await;
        let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
            Api::namespaced(self.sup.client.clone(), self.namespace());
        let claim = format!("{}-{node}", names::DATA_VOLUME);
        if let Err(e) = pvcs.delete(&claim, &DeleteParams::background()).await
            && !matches!(&e, kube::Error::Api(s) if s.code == 404)
        {
            warn!(namespace = %self.namespace(), %claim, error = %e, "cannot delete the volume claim");
            return;
        }
        self.delete_pod_now(node).await;
        if let Some(m) = self.nodes.get_mut(node) {
            m.conn = None;
        }
    }

    /// A pod re-created while its old claim was still terminating can stay Pending on a claim
    /// that no longer exists: deleting it again lets the StatefulSet make claim and pod anew.
    async fn unstick_rebuilt(&mut self, ha: &[Option<Pod>]) {
        for pod in ha.iter().flatten() {
            let name = pod.name_any();
            let pending = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending");
            let rebuilt = self.rebuilt_at.get(&name).is_some_and(|t| {
                t.elapsed() > Duration::from_secs(20) && t.elapsed() < REBUILD_BACKOFF
            });
            if !pending || !rebuilt {
                continue;
            }
            let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
                Api::namespaced(self.sup.client.clone(), self.namespace());
            let claim = format!("{}-{name}", names::DATA_VOLUME);
            if let Ok(None) = pvcs.get_opt(&claim).await {
                info!(namespace = %self.namespace(), pod = %name, "re-creating a pod left Pending on its deleted claim");
                self.delete_pod_now(&name).await;
            }
        }
    }

    /// Applies what `node` received (as `apply` says), then opens it for writes.
    async fn promote(
        &mut self,
        node: &str,
        config: &HaConfig,
        received: Option<GtidPos>,
        apply: ApplyWait,
    ) -> bool {
        let semi = Self::semi_sync(config);
        let Some(c) = self.conn(node).await else {
            warn!(namespace = %self.namespace(), instance = %self.name(), %node, "cannot promote: no session to the node");
            return false;
        };
        if let Some(pos) = received.filter(|p| !p.is_empty()) {
            let wait = match apply {
                ApplyWait::Complete => Duration::from_secs(600),
                ApplyWait::AtMost(d) => d,
            };
            match dataplane::wait_for_gtid(c, &pos, wait).await {
                Ok(true) => {}
                Ok(false) => {
                    warn!(namespace = %self.namespace(), %node, "promoting before the relay log was fully applied")
                }
                Err(e) => {
                    warn!(namespace = %self.namespace(), %node, error = %e, "waiting for the relay log failed")
                }
            }
        }
        let Some(c) = self.conn(node).await else {
            return false;
        };
        match dataplane::make_primary(c, semi).await {
            Ok(_) => true,
            Err(e) => {
                warn!(namespace = %self.namespace(), %node, error = %e, "promotion failed");
                if let Some(m) = self.nodes.get_mut(node) {
                    m.conn = None;
                }
                false
            }
        }
    }

    /// read_only on and client sessions killed; if the node does not answer, its pod goes.
    async fn fence(&mut self, node: &str) {
        self.set_role(node, names::ROLE_STANDBY).await;
        let fenced = match self.conn(node).await {
            Some(c) => dataplane::fence(c, &[names::ADMIN_USER, names::REPL_USER]).await,
            None => Err(dataplane::DataplaneError::Broken {
                endpoint: node.to_owned(),
            }),
        };
        match fenced {
            Ok(o) if o.changed() => {
                self.event(
                    Severity::Warning,
                    "Fenced",
                    &format!("{node} was writable beside the primary: set read-only, {} session(s) killed", o.killed.len()),
                )
                .await;
            }
            Ok(_) => {}
            Err(e) => {
                warn!(namespace = %self.namespace(), %node, error = %e, "fencing by SQL failed; deleting the pod");
                self.delete_pod_now(node).await;
            }
        }
    }

    async fn tend_settings(&mut self, primary: &str, ha_names: &[String], config: &HaConfig) {
        let semi = Self::semi_sync(config);
        if let Some(c) = self.conn(primary).await
            && let Err(e) = dataplane::set_semi_sync_master(c, semi).await
        {
            debug!(error = %e, "semi-sync settings");
        }
        let allowed: Vec<&str> = crate::params::PARAMS
            .iter()
            .filter(|p| p.apply == crate::params::Apply::Online)
            .map(|p| p.name)
            .collect();
        for n in ha_names {
            if n != primary
                && let Some(c) = self.conn(n).await
            {
                let _ = dataplane::set_semi_sync_slave(c, semi.enabled).await;
            }
            for (k, v) in &config.online {
                if let Some(c) = self.conn(n).await
                    && let Err(e) = dataplane::set_global(c, k, &global_value(v), &allowed).await
                {
                    debug!(namespace = %self.namespace(), node = %n, param = %k, error = %e, "online parameter");
                }
            }
        }
    }

    async fn tend_read_replicas(&mut self, primary: &str, read: &[Pod], config: &HaConfig) {
        let src = self.source(primary, config);
        for pod in read {
            if self.probe(pod).await.is_none() {
                continue;
            }
            let n = pod.name_any();
            if let Some(c) = self.conn(&n).await {
                match dataplane::make_replica(c, &src, false).await {
                    Ok(true) => {
                        info!(namespace = %self.namespace(), replica = %n, %primary, "read replica follows the primary")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        warn!(namespace = %self.namespace(), replica = %n, error = %e, "read replica")
                    }
                }
            }
        }
    }

    async fn label_roles(&self, primary: &str, ha_names: &[String]) {
        for n in ha_names {
            if n != primary {
                self.set_role(n, names::ROLE_STANDBY).await;
            }
        }
        self.set_role(primary, names::ROLE_PRIMARY).await;
    }

    async fn set_role(&self, pod: &str, role: &str) {
        let api: Api<Pod> = Api::namespaced(self.sup.client.clone(), self.namespace());
        let patch = json!({"metadata": {"labels": {names::ROLE_LABEL: role}}});
        if let Err(e) = api
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            && !matches!(&e, kube::Error::Api(s) if s.code == 404)
        {
            warn!(namespace = %self.namespace(), %pod, error = %e, "cannot label the pod");
        }
    }

    async fn delete_pod_now(&self, pod: &str) {
        let api: Api<Pod> = Api::namespaced(self.sup.client.clone(), self.namespace());
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        if let Err(e) = api.delete(pod, &dp).await
            && !matches!(&e, kube::Error::Api(s) if s.code == 404)
        {
            warn!(namespace = %self.namespace(), %pod, error = %e, "cannot delete the pod");
        }
    }

    async fn event(&self, severity: Severity, reason: &str, note: &str) {
        let owner = self.handle.config.borrow().owner.clone();
        self.sup
            .events
            .publish(&owner, severity, reason, "Supervise", note)
            .await;
    }

    async fn publish(
        &mut self,
        _config: &HaConfig,
        primary: Option<String>,
        ha_names: &[String],
        read: &[Pod],
        waiting: Option<String>,
    ) {
        let mut nodes = Vec::new();
        let mut semi_sync_active = false;
        let mut standby_streaming = false;
        for n in ha_names {
            let probe = self.nodes.get(n).and_then(|m| m.last_probe.clone());
            let role = match (&primary, &probe) {
                (_, None) => "unknown",
                (Some(p), Some(_)) if p == n => "primary",
                (_, Some(_)) => "standby",
            };
            if role == "primary" {
                semi_sync_active = probe.as_ref().is_some_and(|p| p.semi_sync.master_status);
            }
            if role == "standby" {
                standby_streaming = probe.as_ref().is_some_and(|p| {
                    p.replica
                        .as_ref()
                        .is_some_and(|r| r.io_running == dataplane::IoState::Yes && r.sql_running)
                });
            }
            nodes.push(node_status(n, role, probe.as_ref()));
        }
        for p in read {
            let n = p.name_any();
            let probe = self.nodes.get(&n).and_then(|m| m.last_probe.clone());
            let role = if probe.is_some() {
                "readReplica"
            } else {
                "unknown"
            };
            nodes.push(node_status(&n, role, probe.as_ref()));
        }
        let primary_ok = primary
            .as_ref()
            .is_some_and(|p| self.nodes.get(p).is_some_and(|m| m.last_probe.is_some()));
        let snap = HaSnapshot {
            primary: primary.filter(|_| primary_ok),
            nodes,
            semi_sync_active,
            standby_streaming,
            waiting: waiting.clone(),
            rebuild_needed: self.reported_rebuild.clone(),
            last_failover: self.last_failover.clone(),
        };
        if waiting != self.last_wait {
            if let Some(w) = &waiting {
                info!(namespace = %self.namespace(), instance = %self.name(), reason = %w, "waiting");
            }
            self.last_wait = waiting;
        }
        let changed = {
            let mut cur = self
                .handle
                .snapshot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let changed = cur.topology() != snap.topology();
            *cur = snap;
            changed
        };
        if changed {
            let _ = self
                .sup
                .trigger
                .send((Some(self.namespace().to_owned()), self.name().to_owned()));
        }
    }
}

fn node_status(pod: &str, role: &str, probe: Option<&NodeProbe>) -> NodeStatus {
    NodeStatus {
        pod: pod.to_owned(),
        role: role.to_owned(),
        gtid: probe.map(|p| p.gtid_current_pos.to_string()),
        lag_seconds: probe
            .and_then(|p| p.replica.as_ref())
            .and_then(|r| r.seconds_behind_master)
            .map(|s| s as i64),
    }
}

/// `Slave_received_heartbeats` of the default connection (None when not a replica).
async fn heartbeats(conn: &mut Connection) -> Option<u64> {
    let rows = conn.query("SHOW ALL SLAVES STATUS").await.ok()?;
    let row = rows.first()?;
    row.get_opt::<String, _>("Slave_received_heartbeats")
        .and_then(Result::ok)
        .and_then(|v| v.parse().ok())
}

fn global_value(v: &str) -> GlobalValue {
    match v {
        "ON" => GlobalValue::Bool(true),
        "OFF" => GlobalValue::Bool(false),
        _ => v
            .parse::<i64>()
            .map_or_else(|_| GlobalValue::Text(v.to_owned()), GlobalValue::Int),
    }
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}
