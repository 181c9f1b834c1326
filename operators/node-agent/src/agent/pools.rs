//! Builds the DiskPools that select this node: the volume group and thin pool from this node's
//! eligible, matching disks, then this node's entry in the pool's `status.nodes`. Re-runs when a
//! pool changes, after every disk discovery, and every minute (for the used-space numbers).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::watcher::{self, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Agent, AgentError};
use crate::controller::selector::selects;
use crate::crd::NODE_LABEL;
use crate::crd::disk::{DiskPool, DiskPoolNodeStatus, NodeDisk};

/// Builds (idempotently) one pool on this node from the node's NodeDisks and reports its entry.
pub type BuildPool =
    Arc<dyn Fn(DiskPool, Vec<NodeDisk>) -> BoxFuture<'static, DiskPoolNodeStatus> + Send + Sync>;

/// The volume group of a pool.
pub fn volume_group(pool: &DiskPool) -> String {
    pool.spec
        .volume_group
        .clone()
        .unwrap_or_else(|| format!("agility-{}", pool.name_any()))
}

/// Volume group → pool, for the pools that select a node with `labels`.
pub fn pools_by_vg(
    pools: &[Arc<DiskPool>],
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    pools
        .iter()
        .filter(|p| selects(&p.spec.node_selector, labels))
        .map(|p| (volume_group(p), p.name_any()))
        .collect()
}

/// True when the pool's live entry for `node` already says `entry` (ignoring the timestamp).
pub fn entry_unchanged(pool: &DiskPool, entry: &DiskPoolNodeStatus) -> bool {
    pool.status
        .as_ref()
        .and_then(|s| s.nodes.iter().find(|n| n.node_name == entry.node_name))
        .is_some_and(|live| {
            let mut live = live.clone();
            live.last_updated = entry.last_updated.clone();
            &live == entry
        })
}

/// Runs until `shutdown`.
pub async fn run(
    agent: Agent,
    build: BuildPool,
    mut discovered: watch::Receiver<u64>,
    vg_map: watch::Sender<BTreeMap<String, String>>,
    shutdown: CancellationToken,
) {
    let (pools, writer) = reflector::store::<DiskPool>();
    let api: Api<DiskPool> = Api::all(agent.client.clone());
    let mut events = reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .boxed();
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            changed = discovered.changed() => if changed.is_err() { return },
            ev = events.try_next() => if ev.is_err() { continue },
        }
        if let Err(e) = pass(&agent, &api, &pools, &build, &vg_map).await {
            warn!(node = %agent.config.node_name, error = %agility_core::error::cause_chain(&e), "disk pool pass failed");
        }
    }
}

async fn pass(
    agent: &Agent,
    api: &Api<DiskPool>,
    pools: &Store<DiskPool>,
    build: &BuildPool,
    vg_map: &watch::Sender<BTreeMap<String, String>>,
) -> Result<(), AgentError> {
    let name = &agent.config.node_name;
    let node = Api::<Node>::all(agent.client.clone())
        .get(name)
        .await
        .map_err(|e| AgentError::kube(format!("get Node {name}"), e))?;
    let all = pools.state();
    let map = pools_by_vg(&all, node.labels());
    vg_map.send_if_modified(|m| {
        let changed = *m != map;
        *m = map.clone();
        changed
    });
    if map.is_empty() {
        return Ok(());
    }
    let disks = Api::<NodeDisk>::all(agent.client.clone())
        .list(&ListParams::default().labels(&format!("{NODE_LABEL}={name}")))
        .await
        .map_err(|e| AgentError::kube("list NodeDisks", e))?
        .items;
    for pool in all
        .iter()
        .filter(|p| map.values().any(|n| *n == p.name_any()))
    {
        let entry = build(pool.as_ref().clone(), disks.clone()).await;
        if entry_unchanged(pool, &entry) {
            continue;
        }
        let body = json!({
            "apiVersion": DiskPool::api_version(&()),
            "kind": DiskPool::kind(&()),
            "status": {"nodes": [entry]},
        });
        api.patch_status(
            &pool.name_any(),
            &PatchParams::apply(&agent.manager).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| AgentError::kube(format!("report DiskPool {}", pool.name_any()), e))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crd::disk::{DiskPoolSpec, DiskPoolStatus};

    #[test]
    fn pools_map_their_volume_groups_for_the_nodes_they_select() {
        let mut a = DiskPool::new("fast", DiskPoolSpec::default());
        a.spec.node_selector = [("disk".to_owned(), "ssd".to_owned())].into();
        let mut b = DiskPool::new("bulk", DiskPoolSpec::default());
        b.spec.volume_group = Some("vg-bulk".into());
        let pools = vec![Arc::new(a), Arc::new(b)];
        let ssd: BTreeMap<String, String> = [("disk".to_owned(), "ssd".to_owned())].into();
        let m = pools_by_vg(&pools, &ssd);
        assert_eq!(m.get("agility-fast").map(String::as_str), Some("fast"));
        assert_eq!(m.get("vg-bulk").map(String::as_str), Some("bulk"));
        assert_eq!(pools_by_vg(&pools, &BTreeMap::new()).len(), 1);
    }

    #[test]
    fn an_entry_is_rewritten_only_when_it_changed() {
        let entry = DiskPoolNodeStatus {
            node_name: "n1".into(),
            phase: "Ready".into(),
            volume_group: "vg".into(),
            used_bytes: 5,
            ..Default::default()
        };
        let mut pool = DiskPool::new("p", DiskPoolSpec::default());
        assert!(!entry_unchanged(&pool, &entry));
        pool.status = Some(DiskPoolStatus {
            nodes: vec![entry.clone()],
            ..Default::default()
        });
        assert!(entry_unchanged(&pool, &entry));
        let used = DiskPoolNodeStatus {
            used_bytes: 6,
            ..entry
        };
        assert!(!entry_unchanged(&pool, &used));
    }
}
