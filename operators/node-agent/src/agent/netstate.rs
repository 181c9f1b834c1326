//! Publishes the node's NodeNetworkState: on netlink change events (debounced), periodically
//! with jitter, and when the refresh annotation gets a new value. Writes only when something
//! changed (or a refresh was asked for, which is recorded in `status.refreshedFor`).

use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::kube::{apply, apply_status, node_owner};
use super::timing::next_period;
use super::{Agent, AgentError};
use crate::crd::network::{NodeNetworkState, NodeNetworkStateStatus};
use crate::crd::{NODE_LABEL, REFRESH_ANNOTATION};

/// Reads the node's network as a NodeNetworkState status (without timestamps).
pub type Observe =
    Box<dyn Fn() -> BoxFuture<'static, Result<NodeNetworkStateStatus, AgentError>> + Send + Sync>;

/// The status to write, or None when `live` already says the same and no refresh is pending.
pub fn next_status(
    live: Option<&NodeNetworkStateStatus>,
    observed: NodeNetworkStateStatus,
    refresh: Option<&str>,
    now: Time,
) -> Option<NodeNetworkStateStatus> {
    let refreshed_for = refresh.map(str::to_owned);
    let pending =
        refreshed_for.is_some() && live.and_then(|l| l.refreshed_for.clone()) != refreshed_for;
    let same = live.is_some_and(|l| {
        let mut l = l.clone();
        l.last_refreshed = None;
        l.refreshed_for = None;
        l.conditions.clear();
        l == observed
    });
    if same && !pending {
        return None;
    }
    Some(NodeNetworkStateStatus {
        last_refreshed: Some(now),
        refreshed_for: refreshed_for.or_else(|| live.and_then(|l| l.refreshed_for.clone())),
        ..observed
    })
}

/// Runs until `shutdown`.
pub async fn run(
    agent: Agent,
    node: Node,
    observe: Observe,
    mut changes: BoxStream<'static, ()>,
    shutdown: CancellationToken,
) {
    let name = agent.config.node_name.clone();
    let api: Api<NodeNetworkState> = Api::all(agent.client.clone());
    let body = json!({
        "apiVersion": NodeNetworkState::api_version(&()),
        "kind": NodeNetworkState::kind(&()),
        "metadata": {
            "name": name,
            "labels": {NODE_LABEL: name},
            "ownerReferences": node_owner(&node).into_iter().collect::<Vec<_>>(),
        },
        "spec": {"nodeName": name},
    });
    let mut own = watcher(
        api.clone(),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .applied_objects()
    .boxed();
    let mut refresh: Option<String> = None;
    let mut timer = Box::pin(tokio::time::sleep(Duration::ZERO));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = &mut timer => {}
            Some(()) = changes.next() => {
                // A bond failover or an address change comes as a burst of events.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(Some(obj)) = own.try_next() => {
                let asked = obj.annotations().get(REFRESH_ANNOTATION).cloned();
                let honoured = obj.status.as_ref().and_then(|s| s.refreshed_for.clone());
                if asked.is_none() || asked == honoured {
                    continue;
                }
                info!(node = %name, refresh = ?asked, "network state refresh requested");
                refresh = asked;
            }
        }
        timer = Box::pin(tokio::time::sleep(next_period(
            agent.config.network_interval,
        )));
        if let Err(e) = publish(&agent, &api, &body, &observe, refresh.as_deref()).await {
            warn!(node = %name, error = %agility_core::error::cause_chain(&e), "publishing the network state failed");
            timer = Box::pin(tokio::time::sleep(Duration::from_secs(5)));
        }
    }
}

async fn publish(
    agent: &Agent,
    api: &Api<NodeNetworkState>,
    body: &serde_json::Value,
    observe: &Observe,
    refresh: Option<&str>,
) -> Result<(), AgentError> {
    let name = &agent.config.node_name;
    let live = apply(api, name, body.clone(), &agent.manager)
        .await?
        .ok_or_else(|| AgentError::Node(format!("NodeNetworkState {name} vanished")))?;
    let observed = observe().await?;
    let now = Time(Timestamp::now());
    if let Some(next) = next_status(live.status.as_ref(), observed, refresh, now) {
        let value = serde_json::to_value(&next).map_err(AgentError::Serialize)?;
        apply_status(api, &live, value, &agent.manager).await?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crd::network::InterfaceStatus;

    fn observed(mtu: u32) -> NodeNetworkStateStatus {
        NodeNetworkStateStatus {
            interface_count: 1,
            interfaces: vec![InterfaceStatus {
                name: "eth0".into(),
                kind: "ethernet".into(),
                mtu: Some(mtu),
                oper_state: "up".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn unchanged_state_writes_nothing_and_changes_or_refreshes_write_once() {
        let first = next_status(None, observed(1500), None, at(1)).unwrap();
        assert_eq!(first.last_refreshed, Some(at(1)));
        assert!(next_status(Some(&first), observed(1500), None, at(2)).is_none());
        let changed = next_status(Some(&first), observed(9000), None, at(3)).unwrap();
        assert_eq!(changed.last_refreshed, Some(at(3)));
        let refreshed = next_status(Some(&changed), observed(9000), Some("r1"), at(4)).unwrap();
        assert_eq!(refreshed.refreshed_for.as_deref(), Some("r1"));
        assert!(next_status(Some(&refreshed), observed(9000), Some("r1"), at(5)).is_none());
        let later = next_status(Some(&refreshed), observed(1500), None, at(6)).unwrap();
        assert_eq!(later.refreshed_for.as_deref(), Some("r1"));
    }
}
