//! Enacts the network policies on this node: when the rollout approves a policy generation for
//! the node (`spec.approvedGeneration` of its NodeNetworkEnactment), the agent renders the bonds
//! for this node, runs the safe-apply transaction and reports the outcome in the enactment's
//! status. One enactment at a time: a node never runs two network changes at once.

use std::sync::Arc;

use agility_core::Conditions;
use agility_core::events::EventPublisher;
use futures::StreamExt;
use futures::future::BoxFuture;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::watcher::{self, watcher};
use kube::{Resource, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::kube::apply_status;
use super::{Agent, AgentError};
use crate::crd::NODE_LABEL;
use crate::crd::network::{
    NodeNetworkEnactment, NodeNetworkEnactmentStatus, NodeNetworkPolicy, RenderedBond,
};
use crate::rollout::phase;

/// What one enactment of a policy generation came to.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Available (applied and confirmed) or Failing (refused, or applied and rolled back).
    pub phase: &'static str,
    /// CamelCase reason (Applied, InvalidPolicy, ProbesFailed, ApplyFailed, RollbackFailed...).
    pub reason: String,
    pub message: String,
    pub rendered: Vec<RenderedBond>,
    pub probes_before: Vec<String>,
}

/// Runs the safe apply of a policy on this node.
pub type Enact = Arc<dyn Fn(NodeNetworkPolicy) -> BoxFuture<'static, Outcome> + Send + Sync>;

/// The policy generation an enactment should act on now, if any: approved, and not done yet.
pub fn due_generation(e: &NodeNetworkEnactment, policy: &NodeNetworkPolicy) -> Option<i64> {
    let generation = policy.metadata.generation?;
    let done = e.status.as_ref().and_then(|s| s.policy_generation) == Some(generation)
        && e.status.as_ref().and_then(|s| s.phase.as_deref()) != Some(phase::PROGRESSING);
    (e.spec.approved_generation == Some(generation) && !done).then_some(generation)
}

/// The status of an enactment that is not approved for the policy's current generation:
/// Aborted when the rollout stopped, Pending otherwise. None when nothing is to be said (the
/// node already enacted that generation).
pub fn waiting_status(
    e: &NodeNetworkEnactment,
    policy: &NodeNetworkPolicy,
) -> Option<(
    NodeNetworkEnactmentStatus,
    Vec<agility_core::status::Transition>,
)> {
    let generation = policy.metadata.generation?;
    if e.spec.approved_generation == Some(generation) {
        return None;
    }
    let policy_status = policy.status.as_ref();
    let aborted = policy_status.is_some_and(|s| {
        s.observed_generation == Some(generation) && s.phase.as_deref() == Some(phase::ABORTED)
    });
    let (ph, reason, message) = if aborted {
        (
            phase::ABORTED,
            "RolloutAborted",
            "the rollout stopped after failures on other nodes; this node was not changed",
        )
    } else {
        (
            phase::PENDING,
            "WaitingForRollout",
            "waiting for the rollout to reach this node (maxUnavailable)",
        )
    };
    Some(status_with(e, ph, reason, message, None, None))
}

/// A status with the four conditions set for `ph`.
fn status_with(
    e: &NodeNetworkEnactment,
    ph: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    outcome: Option<&Outcome>,
) -> (
    NodeNetworkEnactmentStatus,
    Vec<agility_core::status::Transition>,
) {
    let live = e.status.clone().unwrap_or_default();
    let mut c = Conditions::new(&live.conditions, e.metadata.generation);
    for (t, on) in [
        ("Available", ph == phase::AVAILABLE),
        ("Progressing", ph == phase::PROGRESSING),
        ("Failing", ph == phase::FAILING),
        ("Aborted", ph == phase::ABORTED),
    ] {
        let (r, m) = if on {
            (reason, message)
        } else {
            ("NotApplicable", "")
        };
        c.set(t, on, r, m);
    }
    let (conditions, transitions) = c.finish();
    let status = NodeNetworkEnactmentStatus {
        phase: Some(ph.to_owned()),
        reason: Some(reason.to_owned()),
        policy_generation: generation.or(live.policy_generation),
        desired_bonds: outcome
            .map(|o| o.rendered.clone())
            .unwrap_or(live.desired_bonds),
        probes_before: outcome
            .map(|o| o.probes_before.clone())
            .unwrap_or(live.probes_before),
        conditions,
    };
    (status, transitions)
}

/// Runs until `shutdown`.
pub async fn run(agent: Agent, enact: Enact, shutdown: CancellationToken) {
    let node = agent.config.node_name.clone();
    let (policies, writer) = reflector::store::<NodeNetworkPolicy>();
    let policy_events = reflector(
        writer,
        watcher(
            Api::<NodeNetworkPolicy>::all(agent.client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects()
    .map(|_| ());
    let api: Api<NodeNetworkEnactment> = Api::all(agent.client.clone());
    let (enactments, e_writer) = reflector::store::<NodeNetworkEnactment>();
    let enactment_events = reflector(
        e_writer,
        watcher(
            api.clone(),
            watcher::Config::default().labels(&format!("{NODE_LABEL}={node}")),
        ),
    )
    .default_backoff()
    .touched_objects()
    .map(|_| ());
    let mut events = futures::stream::select(policy_events, enactment_events).boxed();
    let recorder = EventPublisher::new(agent.client.clone(), "node-agent", Some(node.clone()));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            next = events.next() => if next.is_none() { return },
        }
        if let Err(e) = pass(&agent, &api, &policies, &enactments, &enact, &recorder).await {
            warn!(%node, error = %agility_core::error::cause_chain(&e), "enactment pass failed");
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    }
}

/// One pass over this node's enactments.
async fn pass(
    agent: &Agent,
    api: &Api<NodeNetworkEnactment>,
    policies: &Store<NodeNetworkPolicy>,
    enactments: &Store<NodeNetworkEnactment>,
    enact: &Enact,
    recorder: &EventPublisher,
) -> Result<(), AgentError> {
    let mut mine: Vec<Arc<NodeNetworkEnactment>> = enactments
        .state()
        .into_iter()
        .filter(|e| e.spec.node_name == agent.config.node_name)
        .collect();
    mine.sort_by_key(|e| e.name_any());
    for e in mine {
        let Some(policy) = policies
            .state()
            .into_iter()
            .find(|p| p.name_any() == e.spec.policy_name)
        else {
            continue;
        };
        if let Some(generation) = due_generation(&e, &policy) {
            let (progressing, t) = status_with(
                &e,
                phase::PROGRESSING,
                "Applying",
                "recording probes, applying, verifying",
                Some(generation),
                None,
            );
            write(agent, api, &e, &progressing, &t, recorder).await?;
            info!(policy = %policy.name_any(), generation, "enacting");
            let outcome = enact(policy.as_ref().clone()).await;
            info!(policy = %policy.name_any(), generation, phase = outcome.phase, reason = %outcome.reason, "enacted");
            // The live object changed (our Progressing write): build on the latest.
            let latest = api
                .get(&e.name_any())
                .await
                .map_err(|err| AgentError::kube(format!("get {}", e.name_any()), err))?;
            let (done, t) = status_with(
                &latest,
                outcome.phase,
                &outcome.reason,
                &outcome.message,
                Some(generation),
                Some(&outcome),
            );
            write(agent, api, &latest, &done, &t, recorder).await?;
        } else if let Some((status, t)) = waiting_status(&e, &policy) {
            write(agent, api, &e, &status, &t, recorder).await?;
        }
    }
    Ok(())
}

async fn write(
    agent: &Agent,
    api: &Api<NodeNetworkEnactment>,
    e: &NodeNetworkEnactment,
    status: &NodeNetworkEnactmentStatus,
    transitions: &[agility_core::status::Transition],
    recorder: &EventPublisher,
) -> Result<(), AgentError> {
    let value = serde_json::to_value(status).map_err(AgentError::Serialize)?;
    if apply_status(api, e, value, &agent.manager).await? {
        recorder.transitions(&e.object_ref(&()), transitions).await;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crd::network::{NodeNetworkEnactmentSpec, NodeNetworkPolicyStatus};

    fn enactment(approved: Option<i64>, done: Option<(i64, &str)>) -> NodeNetworkEnactment {
        let mut e = NodeNetworkEnactment::new(
            "n1.p",
            NodeNetworkEnactmentSpec {
                node_name: "n1".into(),
                policy_name: "p".into(),
                approved_generation: approved,
            },
        );
        e.status = done.map(|(g, ph)| NodeNetworkEnactmentStatus {
            policy_generation: Some(g),
            phase: Some(ph.into()),
            ..Default::default()
        });
        e
    }

    fn policy(generation: i64, phase: Option<&str>) -> NodeNetworkPolicy {
        let mut p = NodeNetworkPolicy::new("p", Default::default());
        p.metadata.generation = Some(generation);
        p.status = phase.map(|ph| NodeNetworkPolicyStatus {
            observed_generation: Some(generation),
            phase: Some(ph.into()),
            ..Default::default()
        });
        p
    }

    #[test]
    fn only_an_approved_unfinished_generation_is_due() {
        assert_eq!(
            due_generation(&enactment(Some(2), None), &policy(2, None)),
            Some(2)
        );
        assert_eq!(
            due_generation(
                &enactment(Some(2), Some((1, phase::AVAILABLE))),
                &policy(2, None)
            ),
            Some(2)
        );
        assert_eq!(
            due_generation(
                &enactment(Some(2), Some((2, phase::AVAILABLE))),
                &policy(2, None)
            ),
            None
        );
        assert_eq!(
            due_generation(
                &enactment(Some(2), Some((2, phase::FAILING))),
                &policy(2, None)
            ),
            None
        );
        // A Progressing status left by an agent that died mid-change is taken up again.
        assert_eq!(
            due_generation(
                &enactment(Some(2), Some((2, phase::PROGRESSING))),
                &policy(2, None)
            ),
            Some(2)
        );
        assert_eq!(
            due_generation(&enactment(Some(1), None), &policy(2, None)),
            None
        );
        assert_eq!(
            due_generation(&enactment(None, None), &policy(2, None)),
            None
        );
    }

    #[test]
    fn unapproved_nodes_wait_or_report_the_abort() {
        let (s, t) = waiting_status(&enactment(None, None), &policy(3, None)).unwrap();
        assert_eq!(s.phase.as_deref(), Some(phase::PENDING));
        assert!(
            t.iter()
                .any(|t| t.type_ == "Progressing" || t.type_ == "Available")
        );
        let (s, _) =
            waiting_status(&enactment(Some(2), None), &policy(3, Some(phase::ABORTED))).unwrap();
        assert_eq!(s.phase.as_deref(), Some(phase::ABORTED));
        let aborted = s.conditions.iter().find(|c| c.type_ == "Aborted").unwrap();
        assert_eq!(
            (aborted.status.as_str(), aborted.reason.as_str()),
            ("True", "RolloutAborted")
        );
        assert!(waiting_status(&enactment(Some(3), None), &policy(3, None)).is_none());
    }
}
