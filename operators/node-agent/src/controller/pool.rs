//! DiskPool totals: every node's agent reports its own entry of `status.nodes`; this sums them up
//! and says whether every selected node has its pool. It writes only the fields it owns (totals
//! and conditions) with its own field manager, so it never fights the agents' entries.

use std::sync::Arc;

use agility_core::status::Transition;
use agility_core::{Action, Conditions, Reconcile};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;

use super::State;
use super::selector::selected_nodes;
use crate::crd::disk::{DiskPool, DiskPoolNodeStatus};
use crate::quantity::human_bytes;

/// Phase an agent reports for a node whose volume group and thin pool exist.
pub const NODE_READY: &str = "Ready";

/// The fields of `DiskPool.status` this controller owns.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolTotals {
    pub observed_generation: Option<i64>,
    pub ready_nodes: u32,
    pub capacity_bytes: u64,
    pub capacity: String,
    pub used_bytes: u64,
    pub used: String,
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
}

/// Totals over the selected nodes' entries, and the Ready condition.
pub fn totals(pool: &DiskPool, selected: &[String]) -> (PoolTotals, Vec<Transition>) {
    let status = pool.status.clone().unwrap_or_default();
    let entries: Vec<&DiskPoolNodeStatus> = status
        .nodes
        .iter()
        .filter(|n| selected.contains(&n.node_name))
        .collect();
    let ready: Vec<&&DiskPoolNodeStatus> =
        entries.iter().filter(|n| n.phase == NODE_READY).collect();
    let capacity: u64 = ready.iter().map(|n| n.thin_pool_bytes).sum();
    let used: u64 = ready.iter().map(|n| n.used_bytes).sum();
    let missing: Vec<&str> = selected
        .iter()
        .filter(|s| !ready.iter().any(|n| &n.node_name == *s))
        .map(String::as_str)
        .collect();
    let failed: Vec<String> = entries
        .iter()
        .filter(|n| n.phase == "Failed")
        .map(|n| {
            format!(
                "{}: {}",
                n.node_name,
                n.message.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    let mut c = Conditions::new(&status.conditions, pool.metadata.generation);
    let (ok, reason, message) = if selected.is_empty() {
        (
            false,
            "NoNodes",
            "no node matches spec.nodeSelector".to_owned(),
        )
    } else if !failed.is_empty() {
        (false, "NodesFailed", failed.join("; "))
    } else if !missing.is_empty() {
        (
            false,
            "NodesPending",
            format!("no pool yet on: {}", missing.join(", ")),
        )
    } else {
        (
            true,
            "AllNodesReady",
            format!(
                "{} node(s), {} thin pool capacity",
                selected.len(),
                human_bytes(capacity)
            ),
        )
    };
    c.set("Ready", ok, reason, &message);
    let (conditions, transitions) = c.finish();
    (
        PoolTotals {
            observed_generation: pool.metadata.generation,
            ready_nodes: u32::try_from(ready.len()).unwrap_or(u32::MAX),
            capacity_bytes: capacity,
            capacity: human_bytes(capacity),
            used_bytes: used,
            used: human_bytes(used),
            conditions,
        },
        transitions,
    )
}

fn live_totals(pool: &DiskPool) -> Option<PoolTotals> {
    let s = pool.status.as_ref()?;
    Some(PoolTotals {
        observed_generation: s.observed_generation,
        ready_nodes: s.ready_nodes?,
        capacity_bytes: s.capacity_bytes?,
        capacity: s.capacity.clone()?,
        used_bytes: s.used_bytes?,
        used: s.used.clone()?,
        conditions: s.conditions.clone(),
    })
}

/// Reconciles one pool's totals.
pub async fn reconcile(
    obj: Arc<DiskPool>,
    ctx: Reconcile<Arc<State>>,
) -> agility_core::Result<Action> {
    let nodes = ctx.state().nodes.state();
    let selected = selected_nodes(&obj.spec.node_selector, nodes.iter().map(|n| n.as_ref()));
    let (next, transitions) = totals(&obj, &selected);
    if live_totals(&obj).as_ref() == Some(&next) {
        return Ok(Action::await_change());
    }
    let api: Api<DiskPool> = Api::all(ctx.client().clone());
    let body = serde_json::json!({
        "apiVersion": DiskPool::api_version(&()),
        "kind": DiskPool::kind(&()),
        "status": next,
    });
    let name = obj.name_any();
    api.patch_status(
        &name,
        &PatchParams::apply(&ctx.field_manager()).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| agility_core::Error::kube(format!("update status of DiskPool {name}"), e))?;
    ctx.events()
        .transitions(&obj.object_ref(&()), &transitions)
        .await;
    Ok(Action::await_change())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crd::disk::DiskPoolStatus;

    fn entry(node: &str, phase: &str, pool: u64, used: u64) -> DiskPoolNodeStatus {
        DiskPoolNodeStatus {
            node_name: node.into(),
            phase: phase.into(),
            volume_group: "vg".into(),
            thin_pool_bytes: pool,
            used_bytes: used,
            ..Default::default()
        }
    }

    fn pool(nodes: Vec<DiskPoolNodeStatus>) -> DiskPool {
        let mut p = DiskPool::new("fast", Default::default());
        p.metadata.generation = Some(3);
        p.status = Some(DiskPoolStatus {
            nodes,
            ..Default::default()
        });
        p
    }

    #[test]
    fn ready_when_every_selected_node_has_its_pool_and_sums_only_those() {
        let gi = 1 << 30;
        let p = pool(vec![
            entry("a", NODE_READY, 10 * gi, gi),
            entry("b", NODE_READY, 20 * gi, 2 * gi),
            entry("gone", NODE_READY, 99 * gi, 0),
        ]);
        let (t, transitions) = totals(&p, &["a".into(), "b".into()]);
        assert_eq!(t.capacity_bytes, 30 * gi);
        assert_eq!(t.used_bytes, 3 * gi);
        assert_eq!(t.capacity, "30Gi");
        assert_eq!(t.ready_nodes, 2);
        assert_eq!(t.conditions[0].status, "True");
        assert_eq!(transitions.len(), 1);
    }

    #[test]
    fn pending_and_failed_nodes_are_named() {
        let p = pool(vec![entry("a", "Failed", 0, 0)]);
        let (t, _) = totals(&p, &["a".into(), "b".into()]);
        assert_eq!(t.conditions[0].reason, "NodesFailed");
        let p = pool(vec![entry("a", NODE_READY, 1, 0)]);
        let (t, _) = totals(&p, &["a".into(), "b".into()]);
        assert_eq!(t.conditions[0].reason, "NodesPending");
        assert!(t.conditions[0].message.contains('b'));
        let (t, _) = totals(&p, &[]);
        assert_eq!(t.conditions[0].reason, "NoNodes");
    }
}
