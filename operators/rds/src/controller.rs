//! The RdsInstance pipeline: read → plan → build children → apply → hand the instance to the HA
//! supervisor → status from what was applied and what the supervisor saw.

use std::sync::Arc;
use std::time::Duration;

use agility_core::allowlist::OperatorPeer;
use agility_core::status::{Conditions, Transition};
use agility_core::{Action, Child, Reconcile};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Resource, ResourceExt};

use crate::build::secret::SystemPasswords;
use crate::build::statefulset::{PodFacts, PodSet};
use crate::build::{config, network_policy, pdb, secret, service, statefulset};
use crate::crd::{RdsInstance, RdsInstanceStatus, ReplicationStatus};
use crate::error::RdsError;
use crate::ha::supervisor::{HaConfig, HaSnapshot, Supervisor};
use crate::names;
use crate::plan::{OperatorSettings, Plan, plan};

/// Controller state shared by every reconcile.
pub struct State {
    /// Operator-wide settings.
    pub settings: OperatorSettings,
    /// Where the operator runs (admitted by every instance's NetworkPolicy).
    pub operator: OperatorPeer,
    /// The HA supervisor.
    pub supervisor: Arc<Supervisor>,
}

/// How often a healthy instance is looked at again without any event (reads only).
const RESYNC: Duration = Duration::from_secs(300);

/// Reconciles one RdsInstance.
pub async fn reconcile(obj: Arc<RdsInstance>, ctx: Reconcile<State>) -> Result<Action, RdsError> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let state = ctx.state();
    if obj.meta().deletion_timestamp.is_some() {
        // Children go with the owner; PVCs per deletionPolicy (StatefulSet retention policy).
        state.supervisor.forget(&ns, &name);
        return Ok(Action::await_change());
    }
    let plan = plan(&obj.spec, &state.settings)?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client().clone(), &ns);
    let existing = secrets
        .get_opt(&names::system_secret(&name))
        .await
        .map_err(|e| agility_core::Error::kube("read the system Secret", e))?;
    let passwords = SystemPasswords::from_secret_or_new(existing.as_ref());
    let children = desired(&obj, &plan, &passwords, &state.operator)?;
    ctx.apply_children(obj.as_ref(), &children).await?;

    let sts: Api<StatefulSet> = Api::namespaced(ctx.client().clone(), &ns);
    let ready_pods = sts
        .get_opt(&names::ha_statefulset(&name))
        .await
        .map_err(|e| agility_core::Error::kube("read StatefulSet", e))?
        .and_then(|s| s.status)
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    state.supervisor.ensure(
        &ns,
        &name,
        HaConfig {
            admin_password: passwords.admin.clone(),
            repl_password: passwords.repl.clone(),
            priority: plan.ha.priority,
            replication: plan.ha.replication,
            semi_sync_timeout_ms: u64::from(plan.ha.semi_sync_timeout_millis),
            read_replicas: plan.read_replicas,
            online: plan.online_params.clone(),
            owner: obj.object_ref(&()),
            had_primary: obj.status.as_ref().is_some_and(|s| s.primary.is_some()),
        },
    );
    let snapshot = state.supervisor.snapshot(&ns, &name).unwrap_or_default();
    let (status, transitions) = status(&obj, &plan, &snapshot, ready_pods);
    ctx.update_status(obj.as_ref(), &status, &transitions)
        .await?;
    Ok(Action::requeue(RESYNC))
}

/// Every desired child (pure).
pub fn desired(
    obj: &RdsInstance,
    plan: &Plan,
    passwords: &SystemPasswords,
    operator: &OperatorPeer,
) -> Result<Vec<Child>, RdsError> {
    // Only read at start: restart-only parameters and the system accounts' init SQL.
    let restart_inputs = format!("{:?}{}", plan.restart_params, secret::init_sql(passwords));
    let facts = PodFacts {
        restart_hash: format!(
            "{:016x}",
            agility_core::apply::fnv1a64(restart_inputs.as_bytes())
        ),
    };
    let mut children = vec![
        Child::new("config", &config::config_map(obj, plan))?,
        Child::new("system", &secret::system_secret(obj, passwords))?,
        Child::new("endpoint", &service::endpoint(obj))?,
        Child::new("nodes", &service::nodes(obj))?,
        Child::new("allowlist", &network_policy::network_policy(obj, operator))?,
        Child::new("disruption-budget", &pdb::pdb(obj))?,
        Child::new(
            "server",
            &statefulset::statefulset(obj, plan, PodSet::Ha, &facts),
        )?,
    ];
    if plan.read_replicas > 0 {
        children.push(Child::new("read-endpoint", &service::read_only(obj))?);
        for i in 0..plan.read_replicas {
            children.push(Child::new(
                &format!("read-endpoint-{i}"),
                &service::read_replica(obj, i),
            )?);
        }
        children.push(Child::new(
            "read-server",
            &statefulset::statefulset(obj, plan, PodSet::Read, &facts),
        )?);
    }
    Ok(children)
}

/// Status from the supervisor's snapshot and the pair's Ready pods (pure).
pub fn status(
    obj: &RdsInstance,
    plan: &Plan,
    ha: &HaSnapshot,
    ready_pods: i32,
) -> (RdsInstanceStatus, Vec<Transition>) {
    let live = obj.status.clone().unwrap_or_default();
    let mut c = Conditions::new(&live.conditions, obj.meta().generation);
    let name = obj.name_any();
    let ns = obj.namespace().unwrap_or_default();
    let primary_up = ha.primary.is_some();
    match &ha.primary {
        Some(p) => {
            c.set(
                "Ready",
                true,
                "PrimaryAvailable",
                &format!("primary {p} serves the endpoint"),
            );
        }
        None => {
            let why = ha
                .waiting
                .clone()
                .unwrap_or_else(|| "no primary elected yet".into());
            c.set("Ready", false, "NoPrimary", &why);
        }
    }
    let mode = format!("{:?}", plan.ha.replication);
    if ha.standby_streaming {
        let sync_note = match (plan.ha.replication, ha.semi_sync_active) {
            (crate::crd::Replication::Async, _) => "asynchronous",
            (_, true) => "semi-sync acknowledging",
            (_, false) => "semi-sync degraded to asynchronous",
        };
        c.set(
            "Replication",
            true,
            "StandbyStreaming",
            &format!("the standby replicates from the primary ({sync_note})"),
        );
    } else if !ha.rebuild_needed.is_empty() {
        c.set(
            "Replication",
            false,
            "RebuildRequired",
            &format!(
                "{} must be re-cloned (diverged from the primary)",
                ha.rebuild_needed.join(", ")
            ),
        );
    } else {
        c.set(
            "Replication",
            false,
            "StandbyNotStreaming",
            "the standby is not replicating from the primary yet",
        );
    }
    let degraded = ready_pods < 2 || !ha.standby_streaming;
    c.set(
        "Degraded",
        degraded,
        if degraded {
            "StandbyUnavailable"
        } else {
            "AllNodesReady"
        },
        &format!("{ready_pods} of 2 nodes Ready"),
    );
    let phase = match (primary_up, degraded) {
        (true, false) => "Running",
        (true, true) => "Degraded",
        (false, _) if live.primary.is_some() => "Failover",
        (false, _) => "Creating",
    };
    let (conditions, transitions) = c.finish();
    let status = RdsInstanceStatus {
        phase: Some(phase.into()),
        conditions,
        observed_generation: obj.meta().generation,
        endpoint: Some(format!(
            "{}:{}",
            names::endpoint_host(&name, &ns),
            names::MYSQL_PORT
        )),
        read_only_endpoint: (plan.read_replicas > 0)
            .then(|| format!("{}:{}", names::read_host(&name, &ns), names::MYSQL_PORT)),
        primary: ha.primary.clone().or(live.primary),
        nodes: ha.nodes.clone(),
        replication: Some(ReplicationStatus {
            mode,
            semi_sync_active: ha.semi_sync_active,
        }),
        last_failover: ha.last_failover.clone().or(live.last_failover),
    };
    (status, transitions)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use crate::build::fixtures::{instance, spec};

    fn children(read_replicas: u32) -> Vec<Child> {
        let mut s = spec();
        s.read_replicas = read_replicas;
        let i = instance(s);
        let p = plan(&i.spec, &OperatorSettings::default()).unwrap();
        let pw = SystemPasswords {
            admin: "a".repeat(32),
            repl: "r".repeat(32),
        };
        desired(&i, &p, &pw, &OperatorPeer::default()).unwrap()
    }

    #[test]
    fn read_replicas_add_their_objects() {
        assert_eq!(children(0).len(), 7);
        let with = children(2);
        assert_eq!(with.len(), 7 + 1 + 2 + 1);
        assert!(with.iter().any(|c| c.name() == "orders-ro-1"));
    }

    #[test]
    fn status_reports_the_primary_and_the_replication() {
        let i = instance(spec());
        let p = plan(&i.spec, &OperatorSettings::default()).unwrap();
        let snap = HaSnapshot {
            primary: Some("orders-1".into()),
            standby_streaming: true,
            semi_sync_active: true,
            ..Default::default()
        };
        let (s, t) = status(&i, &p, &snap, 2);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.primary.as_deref(), Some("orders-1"));
        assert_eq!(s.endpoint.as_deref(), Some("orders.shop.svc:3306"));
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "True");
        assert!(!t.is_empty());
        let (s, _) = status(&i, &p, &HaSnapshot::default(), 0);
        assert_eq!(s.phase.as_deref(), Some("Creating"));
    }
}
