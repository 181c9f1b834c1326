//! The reconcile pipeline: read → validate/plan → build children → apply → hand the instance to
//! the failover supervisor → status from what was applied and observed.

use std::sync::Arc;
use std::time::Duration;

use agility_core::status::Conditions;
use agility_core::{Action, Child, Reconcile};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Resource, ResourceExt};

use crate::build::monitoring::{self, MonitoringKinds};
use crate::build::network_policy::OperatorPeer;
use crate::build::statefulset::PodFacts;
use crate::build::{config, network_policy, pdb, secret, service, statefulset};
use crate::certs::{self, TlsMaterial};
use crate::crd::{Edition, NodeStatus, RedisInstance, RedisInstanceStatus};
use crate::error::RedisError;
use crate::ha::supervisor::{HaConfig, HaSnapshot, Supervisor};
use crate::names;
use crate::plan::{OperatorSettings, Plan, plan};

/// Controller state shared by every reconcile.
pub struct State {
    /// Operator-wide settings.
    pub settings: OperatorSettings,
    /// Where the operator runs (admitted by every instance's NetworkPolicy).
    pub operator: OperatorPeer,
    /// The failover supervisor.
    pub supervisor: Arc<Supervisor>,
    /// User password Secrets → the instances that use them (a change triggers those instances).
    pub secret_users: Arc<std::sync::Mutex<SecretUsers>>,
    /// Prometheus Operator kinds present when the operator started.
    pub monitoring: MonitoringKinds,
}

/// `(namespace, Secret)` → instance names.
pub type SecretUsers =
    std::collections::HashMap<(String, String), std::collections::BTreeSet<String>>;

impl State {
    fn watch_secret(&self, namespace: &str, secret: &str, instance: &str) {
        let mut users = self
            .secret_users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        users
            .entry((namespace.to_owned(), secret.to_owned()))
            .or_default()
            .insert(instance.to_owned());
    }
}

/// How often a healthy instance is looked at again without any event (reads only).
const RESYNC: Duration = Duration::from_secs(300);

/// Reconciles one RedisInstance.
pub async fn reconcile(
    obj: Arc<RedisInstance>,
    ctx: Reconcile<State>,
) -> Result<Action, RedisError> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let state = ctx.state();
    if obj.meta().deletion_timestamp.is_some() {
        // Children go with the owner (garbage collection); PVCs per deletionPolicy (StatefulSet
        // retention policy). Nothing external to clean up, so no finalizer.
        state.supervisor.forget(&ns, &name);
        return Ok(Action::await_change());
    }
    let plan = plan(&obj.spec, &state.settings)?;
    if let Some(r) = &obj.spec.password_secret_ref {
        state.watch_secret(&ns, &r.name, &name);
    }
    if let Some(Some(secret)) = &plan.tls {
        // A new user certificate rolls the pods onto it.
        state.watch_secret(&ns, secret, &name);
    }
    let creds = resolve_credentials(ctx.client(), &obj).await?;
    let tls = certs::resolve(ctx.client(), &obj, &plan).await?;
    let password = creds.password.clone();
    let mut children = desired(&obj, &plan, &creds, tls.as_ref(), &state.operator)?;
    let missing = monitoring_children(&obj, &plan, state.monitoring, &mut children)?;
    ctx.apply_children(obj.as_ref(), &children).await?;
    if let Some(t) = tls.as_ref().filter(|t| t.renewed && t.issued.is_some()) {
        let note = match obj.status.as_ref().and_then(|s| s.observed_generation) {
            None => "issued the server certificate (CA of the instance's own)",
            Some(_) => "issued a new server certificate; pods roll onto it",
        };
        tracing::info!(namespace = %ns, name = %name, fingerprint = %t.fingerprint, "{note}");
        ctx.events()
            .publish(
                &obj.object_ref(&()),
                agility_core::events::Severity::Normal,
                "CertificateIssued",
                "IssueCertificate",
                note,
            )
            .await;
    }

    // What the StatefulSets report: Ready pods, and the revision a rollout moves to.
    let sts: Api<StatefulSet> = Api::namespaced(ctx.client().clone(), &ns);
    let mut ready_pods = 0;
    let mut update_revision = None;
    for shard in shard_indexes(&plan) {
        let st = sts
            .get_opt(&names::statefulset(&name, shard))
            .await
            .map_err(|e| agility_core::Error::kube("read StatefulSet", e))?
            .and_then(|s| s.status);
        ready_pods += st.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
        if shard.is_none() {
            update_revision = st.and_then(|s| s.update_revision);
        }
    }
    state.supervisor.ensure(
        &ns,
        &name,
        HaConfig {
            password,
            expected: (plan.shards * plan.pods_per_shard) as usize,
            owner: obj.object_ref(&()),
            online: online_settings(&plan),
            cluster_shards: (plan.edition == Edition::Cluster).then_some(plan.shards),
            update_revision,
            tls_ca: tls.map(|t| t.ca_cert),
        },
    );
    let snapshot = state.supervisor.snapshot(&ns, &name).unwrap_or_default();
    let (status, transitions) = status(&obj, &plan, &snapshot, ready_pods, &missing);
    ctx.update_status(obj.as_ref(), &status, &transitions)
        .await?;
    Ok(Action::requeue(RESYNC))
}

/// Adds the ServiceMonitor / PrometheusRule the spec asks for and the cluster supports; returns
/// what was asked for but cannot be built (missing CRDs).
fn monitoring_children(
    obj: &RedisInstance,
    plan: &Plan,
    kinds: MonitoringKinds,
    children: &mut Vec<Child>,
) -> Result<Vec<&'static str>, RedisError> {
    let wanted = obj.spec.monitoring_or_default();
    let mut missing = Vec::new();
    if wanted.service_monitor {
        if kinds.service_monitor {
            children.push(Child::new(
                "service-monitor",
                &monitoring::service_monitor(obj),
            )?);
        } else {
            missing.push("ServiceMonitor");
        }
    }
    if wanted.prometheus_rule {
        if kinds.prometheus_rule {
            children.push(Child::new(
                "alerts",
                &monitoring::prometheus_rule(obj, plan),
            )?);
        } else {
            missing.push("PrometheusRule");
        }
    }
    Ok(missing)
}

/// Sets or removes the Monitoring condition (present only when ServiceMonitor/PrometheusRule were
/// asked for).
fn monitoring_condition(c: &mut Conditions, obj: &RedisInstance, missing: &[&str]) {
    let wanted = obj.spec.monitoring_or_default();
    if !wanted.service_monitor && !wanted.prometheus_rule {
        c.remove("Monitoring");
    } else if missing.is_empty() {
        c.set(
            "Monitoring",
            true,
            "Configured",
            "ServiceMonitor/PrometheusRule applied as requested",
        );
    } else {
        c.set(
            "Monitoring",
            false,
            "CRDNotInstalled",
            &format!(
                "{} requested but the monitoring.coreos.com CRDs were not installed when the operator started (install the Prometheus Operator, then restart the operator)",
                missing.join(" and ")
            ),
        );
    }
}

/// `<name>-shard-<i>-<ordinal>` → i.
fn shard_of(pod: &str) -> Option<u32> {
    let (rest, _) = pod.rsplit_once('-')?;
    let (head, shard) = rest.rsplit_once('-')?;
    head.ends_with("-shard")
        .then(|| shard.parse().ok())
        .flatten()
}

/// The StatefulSets: one for standard/cache (None), one per shard for the cluster edition.
fn shard_indexes(plan: &Plan) -> Vec<Option<u32>> {
    match plan.edition {
        Edition::Cluster => (0..plan.shards).map(Some).collect(),
        _ => vec![None],
    }
}

/// Settings applied online with CONFIG SET (also in redis.conf for restarts).
fn online_settings(plan: &Plan) -> std::collections::BTreeMap<String, String> {
    let mut m = plan.online_params.clone();
    m.insert("maxmemory".into(), plan.maxmemory_bytes.to_string());
    m.insert(
        "maxmemory-policy".into(),
        plan.maxmemory_policy.as_str().into(),
    );
    m.insert("maxclients".into(), plan.max_clients.to_string());
    m
}

/// Every desired child (pure).
pub fn desired(
    obj: &RedisInstance,
    plan: &Plan,
    creds: &Credentials,
    tls: Option<&TlsMaterial>,
    operator: &OperatorPeer,
) -> Result<Vec<Child>, RedisError> {
    // Read only at start: restart-only parameters and the served certificate.
    let restart_inputs = format!(
        "{:?}{}",
        plan.restart_params,
        tls.map(|t| t.fingerprint.as_str()).unwrap_or_default()
    );
    let facts = PodFacts {
        restart_hash: format!(
            "{:016x}",
            agility_core::apply::fnv1a64(restart_inputs.as_bytes())
        ),
    };
    let mut children = vec![
        Child::new("config", &config::config_map(obj, plan))?,
        Child::new(
            "connection",
            &secret::connection_secret(
                obj,
                &creds.password,
                &creds.monitor_password,
                tls.map(|t| t.ca_cert.as_str()),
            ),
        )?,
        Child::new("nodes", &service::nodes(obj, plan))?,
        Child::new("endpoint", &service::endpoint(obj, plan))?,
        Child::new(
            "allowlist",
            &network_policy::network_policy(obj, plan, operator),
        )?,
    ];
    for shard in shard_indexes(plan) {
        children.push(Child::new(
            names::COMPONENT_SERVER,
            &statefulset::statefulset(obj, plan, shard, &facts),
        )?);
    }
    if let Some((ca, cert)) = tls.and_then(|t| t.issued.as_ref()) {
        children.push(Child::new("tls-ca", &secret::ca_secret(obj, ca))?);
        children.push(Child::new(
            "tls",
            &secret::issued_tls_secret(obj, cert, &ca.cert),
        )?);
    }
    if let Some(pdb) = pdb::pdb(obj, plan) {
        children.push(Child::new("disruption-budget", &pdb)?);
    }
    Ok(children)
}

/// The credentials an instance runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The application password (default user).
    pub password: String,
    /// The exporter's `monitor` user password.
    pub monitor_password: String,
}

/// Reads the user's password Secret (if referenced) and the existing connection Secret; generates
/// what is missing. A changed user password is a rotation (the supervisor adds it online).
async fn resolve_credentials(
    client: &kube::Client,
    obj: &RedisInstance,
) -> Result<Credentials, RedisError> {
    let ns = obj.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let existing = secrets
        .get_opt(&names::connection_secret(&obj.name_any()))
        .await
        .map_err(|e| agility_core::Error::kube("read the connection Secret", e))?;
    let kept = |key: &str| existing.as_ref().and_then(|s| secret::value(s, key));
    let monitor_password =
        kept(names::KEY_MONITOR_PASSWORD).unwrap_or_else(secret::generate_password);
    let password = match &obj.spec.password_secret_ref {
        Some(r) => {
            let id = format!("{ns}/{}", r.name);
            let s = secrets
                .get_opt(&r.name)
                .await
                .map_err(|e| agility_core::Error::kube("read the password Secret", e))?
                .ok_or_else(|| RedisError::PasswordMissing {
                    secret: id.clone(),
                    reason: "not found".into(),
                })?;
            let pw = secret::value(&s, &r.key).ok_or_else(|| RedisError::PasswordMissing {
                secret: id.clone(),
                reason: format!("no key {:?}", r.key),
            })?;
            if !secret::password_is_usable(&pw) {
                return Err(RedisError::PasswordUnusable { secret: id });
            }
            pw
        }
        None => kept(names::KEY_PASSWORD).unwrap_or_else(secret::generate_password),
    };
    Ok(Credentials {
        password,
        monitor_password,
    })
}

/// Status from the plan, the supervisor's view and the StatefulSet (pure).
pub fn status(
    obj: &RedisInstance,
    plan: &Plan,
    ha: &HaSnapshot,
    ready_pods: i32,
    monitoring_missing: &[&str],
) -> (RedisInstanceStatus, Vec<agility_core::status::Transition>) {
    let live = obj.status.clone().unwrap_or_default();
    let mut c = Conditions::new(&live.conditions, obj.meta().generation);
    let expected = (plan.shards * plan.pods_per_shard) as i32;
    // Cluster edition: "the master is up" means every shard has a master and the cluster formed.
    let master_up = match &ha.cluster {
        Some(cluster) => cluster.state == "ok",
        None => ha
            .master
            .as_ref()
            .is_some_and(|m| ha.roles.get(m).map(String::as_str) == Some("master")),
    };
    let phase = match (master_up, &ha.blocked) {
        (true, _) if ready_pods >= expected => "Running",
        (true, _) => "Degraded",
        (false, Some(_)) if live.current_master.is_some() => "Failed",
        (false, _) => "Creating",
    };
    if master_up && ha.cluster.is_some() {
        c.set(
            "Ready",
            true,
            "ClusterFormed",
            &format!("{} shards, all 16384 slots served", plan.shards),
        );
    } else if master_up {
        c.set(
            "Ready",
            true,
            "MasterAvailable",
            &format!(
                "master {} serves the endpoint",
                ha.master.clone().unwrap_or_default()
            ),
        );
    } else {
        let why = ha
            .blocked
            .clone()
            .unwrap_or_else(|| "no master elected yet".into());
        c.set("Ready", false, "NoMaster", &why);
    }
    if ready_pods < expected {
        c.set(
            "Degraded",
            true,
            "NodesNotReady",
            &format!("{ready_pods} of {expected} nodes Ready"),
        );
    } else {
        c.set(
            "Degraded",
            false,
            "AllNodesReady",
            &format!("{expected} of {expected} nodes Ready"),
        );
    }
    monitoring_condition(&mut c, obj, monitoring_missing);
    let (conditions, transitions) = c.finish();
    let status = RedisInstanceStatus {
        phase: Some(phase.into()),
        conditions,
        observed_generation: obj.meta().generation,
        endpoint: Some(format!(
            "{}:{}",
            names::endpoint_host(&obj.name_any(), &obj.namespace().unwrap_or_default()),
            names::REDIS_PORT
        )),
        connection_secret: Some(names::connection_secret(&obj.name_any())),
        current_master: ha.master.clone().or(if master_up {
            None
        } else {
            live.current_master.clone()
        }),
        nodes: ha
            .roles
            .iter()
            .map(|(pod, role)| NodeStatus {
                pod: pod.clone(),
                role: role.clone(),
                shard: shard_of(pod),
            })
            .collect(),
        class: Some(plan.class.clone()),
        replication_lag_seconds: ha.lag_seconds,
        last_failover: ha.last_failover.clone().or(live.last_failover),
        cluster: ha.cluster.clone(),
        backup: live.backup,
    };
    (status, transitions)
}
