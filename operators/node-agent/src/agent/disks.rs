//! Publishes one NodeDisk per disk of the node: full discovery at start, whenever a cheap
//! fingerprint of /sys/block changes (there may be no udev to tell us), periodically with
//! jitter, and when any of the node's NodeDisks gets a new refresh annotation. A disk that is no
//! longer found keeps its object, marked `present: false`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::kube::{apply, apply_status, node_owner};
use super::timing::next_period;
use super::{Agent, AgentError};
use crate::crd::disk::{NodeDisk, NodeDiskStatus};
use crate::crd::{NODE_LABEL, REFRESH_ANNOTATION};

/// Discovers the node's disks, given the volume groups of this node's pools (their members are
/// not "in another volume group"): `(object name, status)` per disk (the status without
/// `lastSeen`, `refreshedFor` and `pool`, which this module fills). None when discovery could not
/// run at all (then nothing is marked vanished).
pub type Discover = Box<
    dyn Fn(BTreeSet<String>) -> BoxFuture<'static, Option<Vec<(String, NodeDiskStatus)>>>
        + Send
        + Sync,
>;

/// A cheap summary of /sys/block (names, sizes, read-only flags, holders): when it changes,
/// a full discovery runs. Unreadable entries are part of the summary as such.
pub fn fingerprint(sys: &Path) -> String {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(sys.join("block")) else {
        return "unreadable".into();
    };
    for e in entries.flatten() {
        let dir = e.path();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let holders = std::fs::read_dir(dir.join("holders"))
            .map(|h| h.count())
            .unwrap_or(0);
        out.push(format!(
            "{}:{}:{}:{}",
            e.file_name().to_string_lossy(),
            read("size").trim(),
            read("ro").trim(),
            holders
        ));
    }
    out.sort();
    out.join(",")
}

/// The status to write for a found disk, or None when `live` already says the same.
pub fn found_status(
    live: Option<&NodeDiskStatus>,
    found: NodeDiskStatus,
    pool: Option<String>,
    refresh: Option<&str>,
    now: Time,
) -> Option<NodeDiskStatus> {
    let next = NodeDiskStatus {
        present: true,
        pool,
        refreshed_for: refresh
            .map(str::to_owned)
            .or_else(|| live.and_then(|l| l.refreshed_for.clone())),
        last_seen: None,
        ..found
    };
    let unchanged = live.is_some_and(|l| {
        let mut l = l.clone();
        l.last_seen = None;
        l == next
    });
    if unchanged {
        return None;
    }
    Some(NodeDiskStatus {
        last_seen: Some(now),
        ..next
    })
}

/// The status of a disk no longer found, or None when it is already marked.
pub fn vanished_status(live: Option<&NodeDiskStatus>) -> Option<NodeDiskStatus> {
    let live = live.cloned().unwrap_or_default();
    if !live.present {
        return None;
    }
    Some(crate::disk::vanished(&live))
}

/// Runs until `shutdown`. `pools_by_vg` maps volume group names to DiskPool names.
pub async fn run(
    agent: Agent,
    node: Node,
    discover: Discover,
    pools_by_vg: watch::Receiver<BTreeMap<String, String>>,
    discovered: watch::Sender<u64>,
    shutdown: CancellationToken,
) {
    let name = agent.config.node_name.clone();
    let api: Api<NodeDisk> = Api::all(agent.client.clone());
    let mut own = watcher(
        api.clone(),
        watcher::Config::default().labels(&format!("{NODE_LABEL}={name}")),
    )
    .default_backoff()
    .applied_objects()
    .boxed();
    let mut last_print = String::new();
    let mut refresh: Option<String> = None;
    let mut due = tokio::time::Instant::now();
    let mut poll = tokio::time::interval(agent.config.disk_poll);
    let mut rounds = 0u64;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = poll.tick() => {
                let print = fingerprint(&agent.config.sys);
                if print == last_print && tokio::time::Instant::now() < due {
                    continue;
                }
                last_print = print;
            }
            Ok(Some(obj)) = own.try_next() => {
                let asked = obj.annotations().get(REFRESH_ANNOTATION).cloned();
                let honoured = obj.status.as_ref().and_then(|s| s.refreshed_for.clone());
                if asked.is_none() || asked == honoured || asked == refresh {
                    continue;
                }
                info!(node = %name, disk = %obj.name_any(), refresh = ?asked, "disk refresh requested");
                refresh = asked;
            }
        }
        due = tokio::time::Instant::now() + next_period(agent.config.disk_interval);
        let started = std::time::Instant::now();
        let pools = pools_by_vg.borrow().clone();
        let Some(disks) = discover(pools.keys().cloned().collect()).await else {
            due = tokio::time::Instant::now() + Duration::from_secs(5);
            continue;
        };
        let took = started.elapsed();
        match publish(&agent, &api, &node, disks, &pools, refresh.as_deref()).await {
            Ok(n) => {
                rounds += 1;
                let _ = discovered.send(rounds);
                info!(node = %name, disks = n, discovery_ms = took.as_millis() as u64, "disks published");
            }
            Err(e) => {
                warn!(node = %name, error = %agility_core::error::cause_chain(&e), "publishing disks failed");
                due = tokio::time::Instant::now() + Duration::from_secs(5);
            }
        }
    }
}

async fn publish(
    agent: &Agent,
    api: &Api<NodeDisk>,
    node: &Node,
    disks: Vec<(String, NodeDiskStatus)>,
    pools_by_vg: &BTreeMap<String, String>,
    refresh: Option<&str>,
) -> Result<usize, AgentError> {
    let name = &agent.config.node_name;
    let now = Time(Timestamp::now());
    let existing = api
        .list(&ListParams::default().labels(&format!("{NODE_LABEL}={name}")))
        .await
        .map_err(|e| AgentError::kube("list NodeDisks", e))?;
    let count = disks.len();
    let mut seen = Vec::new();
    for (object, found) in disks {
        let body = json!({
            "apiVersion": NodeDisk::api_version(&()),
            "kind": NodeDisk::kind(&()),
            "metadata": {
                "name": object,
                "labels": {NODE_LABEL: name},
                "ownerReferences": node_owner(node).into_iter().collect::<Vec<_>>(),
            },
            "spec": {"nodeName": name},
        });
        let Some(live) = apply(api, &object, body, &agent.manager).await? else {
            continue;
        };
        let pool = found
            .volume_group
            .as_ref()
            .and_then(|vg| pools_by_vg.get(vg).cloned());
        if let Some(next) = found_status(live.status.as_ref(), found, pool, refresh, now.clone()) {
            let value = serde_json::to_value(&next).map_err(AgentError::Serialize)?;
            apply_status(api, &live, value, &agent.manager).await?;
        }
        seen.push(object);
    }
    for gone in existing
        .items
        .iter()
        .filter(|d| !seen.contains(&d.name_any()))
    {
        if let Some(next) = vanished_status(gone.status.as_ref()) {
            warn!(node = %name, disk = %gone.name_any(), "disk vanished");
            let value = serde_json::to_value(&next).map_err(AgentError::Serialize)?;
            apply_status(api, gone, value, &agent.manager).await?;
        }
    }
    Ok(count)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn disk(size: u64) -> NodeDiskStatus {
        NodeDiskStatus {
            path: "/dev/sdb".into(),
            size_bytes: size,
            eligible: true,
            ..Default::default()
        }
    }

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn a_steady_disk_is_written_once() {
        let first = found_status(None, disk(10), None, None, at(1)).unwrap();
        assert!(first.present);
        assert_eq!(first.last_seen, Some(at(1)));
        assert!(found_status(Some(&first), disk(10), None, None, at(2)).is_none());
        let grown = found_status(Some(&first), disk(20), None, None, at(3)).unwrap();
        assert_eq!(grown.last_seen, Some(at(3)));
        let pooled =
            found_status(Some(&grown), disk(20), Some("fast".into()), None, at(4)).unwrap();
        assert_eq!(pooled.pool.as_deref(), Some("fast"));
    }

    #[test]
    fn a_vanished_disk_is_marked_once_and_keeps_what_was_known() {
        let live = found_status(None, disk(10), None, None, at(1)).unwrap();
        let gone = vanished_status(Some(&live)).unwrap();
        assert!(!gone.present && !gone.eligible);
        assert_eq!(gone.size_bytes, 10);
        assert!(vanished_status(Some(&gone)).is_none());
    }

    #[test]
    fn the_fingerprint_follows_sizes_and_holders() {
        let dir = std::env::temp_dir().join(format!("agility-fp-{}", std::process::id()));
        let sdb = dir.join("block/sdb");
        std::fs::create_dir_all(sdb.join("holders")).unwrap();
        std::fs::write(sdb.join("size"), "100\n").unwrap();
        let a = fingerprint(&dir);
        assert_eq!(a, fingerprint(&dir));
        std::fs::write(sdb.join("size"), "200\n").unwrap();
        let b = fingerprint(&dir);
        assert_ne!(a, b);
        std::fs::create_dir_all(sdb.join("holders/dm-0")).unwrap();
        assert_ne!(b, fingerprint(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(fingerprint(&dir), "unreadable");
    }
}
