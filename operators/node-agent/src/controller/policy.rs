//! NodeNetworkPolicy: one NodeNetworkEnactment per selected node, approvals handed out by
//! [`crate::rollout`], and the policy's status summed up from its enactments.

use std::collections::BTreeMap;
use std::sync::Arc;

use agility_core::{Action, Child, Conditions, Reconcile};
use kube::ResourceExt;
use kube::api::{Api, ListParams, ObjectMeta};

use super::State;
use super::selector::selected_nodes;
use crate::crd::network::{
    NodeNetworkEnactment, NodeNetworkEnactmentSpec, NodeNetworkPolicy, NodeNetworkPolicyStatus,
};
use crate::crd::{NODE_LABEL, POLICY_LABEL};
use crate::rollout::{self, Decision, NodeProgress, NodeStanding};

/// Name of the enactment of `policy` on `node`.
pub fn enactment_name(node: &str, policy: &str) -> String {
    format!("{node}.{policy}")
}

/// The desired enactments: one per selected node, approved for `generation` when the rollout
/// says so, otherwise keeping the approval they had.
pub fn desired_enactments(
    policy: &str,
    generation: i64,
    nodes: &[String],
    live: &BTreeMap<String, NodeNetworkEnactment>,
    decision: &Decision,
) -> Vec<NodeNetworkEnactment> {
    nodes
        .iter()
        .map(|node| {
            let approved_generation = if decision.approve.contains(node) {
                Some(generation)
            } else {
                live.get(node).and_then(|e| e.spec.approved_generation)
            };
            NodeNetworkEnactment {
                metadata: ObjectMeta {
                    name: Some(enactment_name(node, policy)),
                    labels: Some(
                        [
                            (NODE_LABEL.to_owned(), node.clone()),
                            (POLICY_LABEL.to_owned(), policy.to_owned()),
                        ]
                        .into(),
                    ),
                    ..ObjectMeta::default()
                },
                spec: NodeNetworkEnactmentSpec {
                    node_name: node.clone(),
                    policy_name: policy.to_owned(),
                    approved_generation,
                },
                status: None,
            }
        })
        .collect()
}

/// Progress of every selected node (a node without an enactment yet is waiting).
pub fn progress(
    nodes: &[String],
    live: &BTreeMap<String, NodeNetworkEnactment>,
) -> Vec<NodeProgress> {
    nodes
        .iter()
        .map(|node| {
            let e = live.get(node);
            let status = e.and_then(|e| e.status.as_ref());
            NodeProgress {
                node: node.clone(),
                approved: e.and_then(|e| e.spec.approved_generation),
                enacted: status.and_then(|s| s.policy_generation),
                phase: status.and_then(|s| s.phase.clone()),
            }
        })
        .collect()
}

/// The policy's status for a decision.
pub fn status_for(
    policy: &NodeNetworkPolicy,
    decision: &Decision,
    failing: &[String],
) -> (
    NodeNetworkPolicyStatus,
    Vec<agility_core::status::Transition>,
) {
    let previous = policy
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let mut c = Conditions::new(previous, policy.metadata.generation);
    let d = decision;
    let all = d.available == d.matched;
    c.set(
        "Available",
        all,
        if all {
            "AllNodesAvailable"
        } else {
            "RolloutIncomplete"
        },
        &format!("{} of {} nodes enacted the policy", d.available, d.matched),
    );
    let moving = !d.aborted && !all && (d.changing > 0 || !d.approve.is_empty());
    c.set(
        "Progressing",
        moving,
        if moving { "RollingOut" } else { "Idle" },
        &format!(
            "{} node(s) changing, at most {} at once",
            d.changing + u32::try_from(d.approve.len()).unwrap_or(0),
            d.limit
        ),
    );
    c.set(
        "Degraded",
        d.failed > 0,
        if d.failed > 0 {
            "NodesFailing"
        } else {
            "NoFailures"
        },
        &if failing.is_empty() {
            "no node failed".to_owned()
        } else {
            format!("failed (rolled back) on: {}", failing.join(", "))
        },
    );
    c.set(
        "Aborted",
        d.aborted,
        if d.aborted {
            "FailuresReachedLimit"
        } else {
            "NotAborted"
        },
        &if d.aborted {
            format!(
                "{} failure(s) reached maxUnavailable ({}): no further node is changed",
                d.failed, d.limit
            )
        } else {
            "the rollout may continue".to_owned()
        },
    );
    let (conditions, transitions) = c.finish();
    let status = NodeNetworkPolicyStatus {
        observed_generation: policy.metadata.generation,
        phase: Some(d.phase().to_owned()),
        matched_nodes: d.matched,
        available_nodes: d.available,
        progressing_nodes: d.changing + u32::try_from(d.approve.len()).unwrap_or(0),
        failing_nodes: d.failed,
        max_unavailable_nodes: d.limit,
        conditions,
    };
    (status, transitions)
}

/// Reconciles one policy.
pub async fn reconcile(
    obj: Arc<NodeNetworkPolicy>,
    ctx: Reconcile<Arc<State>>,
) -> agility_core::Result<Action> {
    let name = obj.name_any();
    let generation = obj.metadata.generation.unwrap_or(0);
    let all_nodes = ctx.state().nodes.state();
    let nodes = selected_nodes(
        &obj.spec.node_selector,
        all_nodes.iter().map(|n| n.as_ref()),
    );
    let api: Api<NodeNetworkEnactment> = Api::all(ctx.client().clone());
    let live: BTreeMap<String, NodeNetworkEnactment> = api
        .list(&ListParams::default().labels(&format!("{POLICY_LABEL}={name}")))
        .await
        .map_err(|e| agility_core::Error::kube(format!("list enactments of {name}"), e))?
        .items
        .into_iter()
        .map(|e| (e.spec.node_name.clone(), e))
        .collect();
    let progress = progress(&nodes, &live);
    let limit = rollout::resolve_limit(
        obj.spec.max_unavailable.as_ref(),
        u32::try_from(nodes.len()).unwrap_or(u32::MAX),
    );
    let decision = rollout::decide(generation, limit, &progress);
    let failing: Vec<String> = progress
        .iter()
        .filter(|p| p.standing(generation) == NodeStanding::Failed)
        .map(|p| p.node.clone())
        .collect();

    let children = desired_enactments(&name, generation, &nodes, &live, &decision)
        .iter()
        .map(|e| Child::new("enactment", e))
        .collect::<agility_core::Result<Vec<_>>>()?;
    ctx.apply_children(obj.as_ref(), &children).await?;

    let (status, transitions) = status_for(&obj, &decision, &failing);
    ctx.update_status(obj.as_ref(), &status, &transitions)
        .await?;
    Ok(Action::await_change())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crd::network::NodeNetworkEnactmentStatus;
    use crate::rollout::phase;

    fn enactment(
        node: &str,
        approved: Option<i64>,
        done: Option<(i64, &str)>,
    ) -> NodeNetworkEnactment {
        NodeNetworkEnactment {
            metadata: ObjectMeta::default(),
            spec: NodeNetworkEnactmentSpec {
                node_name: node.into(),
                policy_name: "p".into(),
                approved_generation: approved,
            },
            status: done.map(|(g, ph)| NodeNetworkEnactmentStatus {
                policy_generation: Some(g),
                phase: Some(ph.into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn approvals_are_kept_and_new_ones_added() {
        let nodes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let live: BTreeMap<String, NodeNetworkEnactment> = [
            (
                "a".to_owned(),
                enactment("a", Some(2), Some((2, phase::AVAILABLE))),
            ),
            (
                "b".to_owned(),
                enactment("b", Some(1), Some((1, phase::AVAILABLE))),
            ),
        ]
        .into();
        let p = progress(&nodes, &live);
        let d = rollout::decide(2, 1, &p);
        assert_eq!(d.approve, vec!["b"]);
        let desired = desired_enactments("p", 2, &nodes, &live, &d);
        let approved: Vec<_> = desired.iter().map(|e| e.spec.approved_generation).collect();
        assert_eq!(approved, vec![Some(2), Some(2), None]);
        assert_eq!(desired[2].metadata.name.as_deref(), Some("c.p"));
        assert_eq!(
            desired[2].labels().get(NODE_LABEL).map(String::as_str),
            Some("c")
        );
    }

    #[test]
    fn status_reports_an_aborted_rollout_with_the_failing_nodes() {
        let nodes: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let live: BTreeMap<String, NodeNetworkEnactment> = [(
            "a".to_owned(),
            enactment("a", Some(1), Some((1, phase::FAILING))),
        )]
        .into();
        let d = rollout::decide(1, 1, &progress(&nodes, &live));
        let mut policy = NodeNetworkPolicy::new("p", Default::default());
        policy.metadata.generation = Some(1);
        let (status, transitions) = status_for(&policy, &d, &["a".into()]);
        assert_eq!(status.phase.as_deref(), Some(phase::ABORTED));
        assert_eq!(status.failing_nodes, 1);
        let aborted = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Aborted")
            .unwrap();
        assert_eq!(aborted.status, "True");
        assert_eq!(aborted.reason, "FailuresReachedLimit");
        let degraded = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Degraded")
            .unwrap();
        assert!(degraded.message.contains("a"));
        assert!(transitions.iter().any(|t| t.type_ == "Aborted"));
    }
}
