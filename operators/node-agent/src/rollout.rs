//! Which nodes may enact a policy generation next. Pure: the cluster controller feeds it the
//! enactments it sees and applies the decision; the logic is tested without a cluster.
//!
//! A node counts against `maxUnavailable` while it is changing (approved, not yet finished) and
//! once it has failed (it rolled back, but the policy did not work there). When failures alone
//! reach the limit the rollout stops: no further node is approved for that generation.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Phases an agent reports on an enactment (its `status.phase`).
pub mod phase {
    pub const PENDING: &str = "Pending";
    pub const PROGRESSING: &str = "Progressing";
    pub const AVAILABLE: &str = "Available";
    pub const FAILING: &str = "Failing";
    pub const ABORTED: &str = "Aborted";
    /// Policy-level phase while some nodes failed but the rollout goes on.
    pub const DEGRADED: &str = "Degraded";
}

/// One node's enactment as the controller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeProgress {
    pub node: String,
    /// `spec.approvedGeneration`.
    pub approved: Option<i64>,
    /// `status.policyGeneration`: the generation the agent last finished (or failed).
    pub enacted: Option<i64>,
    /// `status.phase`.
    pub phase: Option<String>,
}

/// Where one node stands for the current generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStanding {
    Waiting,
    Changing,
    Available,
    Failed,
}

impl NodeProgress {
    pub fn standing(&self, generation: i64) -> NodeStanding {
        let finished = self.enacted == Some(generation);
        match self.phase.as_deref() {
            Some(phase::AVAILABLE) if finished => NodeStanding::Available,
            Some(phase::FAILING) if finished => NodeStanding::Failed,
            _ if self.approved == Some(generation) => NodeStanding::Changing,
            _ => NodeStanding::Waiting,
        }
    }
}

/// The rollout's decision for one policy generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Nodes to approve now (sorted).
    pub approve: Vec<String>,
    pub matched: u32,
    pub available: u32,
    pub changing: u32,
    pub failed: u32,
    pub limit: u32,
    /// Failures reached the limit: nobody else is approved for this generation.
    pub aborted: bool,
}

impl Decision {
    /// The policy's phase: Available, Progressing, Degraded or Aborted.
    pub fn phase(&self) -> &'static str {
        if self.aborted {
            phase::ABORTED
        } else if self.failed > 0 {
            phase::DEGRADED
        } else if self.available == self.matched {
            phase::AVAILABLE
        } else {
            phase::PROGRESSING
        }
    }
}

/// `maxUnavailable` in nodes: a count, or a percentage of the matched nodes rounded down; never
/// below 1 (a rollout that may touch no node would never finish). Unparseable values (the schema
/// refuses them) fall back to 1, the safe side.
pub fn resolve_limit(max_unavailable: Option<&IntOrString>, matched: u32) -> u32 {
    let n = match max_unavailable {
        None => 1,
        Some(IntOrString::Int(n)) => u32::try_from(*n).unwrap_or(1),
        Some(IntOrString::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<u64>().ok())
            .map(|p| u32::try_from(u64::from(matched) * p.min(100) / 100).unwrap_or(1))
            .unwrap_or(1),
    };
    n.max(1)
}

/// Decides which waiting nodes start next, in name order, within the limit.
pub fn decide(generation: i64, limit: u32, nodes: &[NodeProgress]) -> Decision {
    let mut d = Decision {
        matched: u32::try_from(nodes.len()).unwrap_or(u32::MAX),
        limit,
        ..Decision::default()
    };
    let mut waiting = Vec::new();
    for n in nodes {
        match n.standing(generation) {
            NodeStanding::Available => d.available += 1,
            NodeStanding::Failed => d.failed += 1,
            NodeStanding::Changing => d.changing += 1,
            NodeStanding::Waiting => waiting.push(n.node.clone()),
        }
    }
    if d.failed >= limit {
        d.aborted = !waiting.is_empty() || d.changing > 0;
        return d;
    }
    let budget = limit.saturating_sub(d.failed + d.changing) as usize;
    waiting.sort();
    d.approve = waiting.into_iter().take(budget).collect();
    d
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn node(name: &str, approved: Option<i64>, enacted: Option<i64>, phase: &str) -> NodeProgress {
        NodeProgress {
            node: name.into(),
            approved,
            enacted,
            phase: (!phase.is_empty()).then(|| phase.into()),
        }
    }

    #[test]
    fn limits_resolve_counts_and_percentages_never_below_one() {
        assert_eq!(resolve_limit(None, 10), 1);
        assert_eq!(resolve_limit(Some(&IntOrString::Int(3)), 10), 3);
        assert_eq!(resolve_limit(Some(&IntOrString::Int(0)), 10), 1);
        assert_eq!(resolve_limit(Some(&IntOrString::Int(-2)), 10), 1);
        assert_eq!(
            resolve_limit(Some(&IntOrString::String("50%".into())), 5),
            2
        );
        assert_eq!(
            resolve_limit(Some(&IntOrString::String("10%".into())), 5),
            1
        );
        assert_eq!(
            resolve_limit(Some(&IntOrString::String("100%".into())), 7),
            7
        );
        assert_eq!(resolve_limit(Some(&IntOrString::String("x".into())), 7), 1);
    }

    #[test]
    fn a_fresh_rollout_starts_limit_nodes_in_name_order() {
        let nodes = [
            node("c", None, None, ""),
            node("a", None, None, ""),
            node("b", Some(1), Some(1), phase::AVAILABLE),
        ];
        let d = decide(2, 2, &nodes);
        assert_eq!(d.approve, vec!["a", "b"]);
        assert_eq!((d.matched, d.changing, d.available), (3, 0, 0));
        assert_eq!(d.phase(), phase::PROGRESSING);
    }

    #[test]
    fn changing_nodes_use_the_budget_and_finished_ones_free_it() {
        let nodes = [
            node("a", Some(2), Some(2), phase::AVAILABLE),
            node("b", Some(2), Some(1), phase::PROGRESSING),
            node("c", Some(1), Some(1), phase::AVAILABLE),
            node("d", None, None, ""),
        ];
        assert!(decide(2, 1, &nodes).approve.is_empty());
        assert_eq!(decide(2, 2, &nodes).approve, vec!["c"]);
    }

    #[test]
    fn failures_count_against_the_limit_and_stop_the_rollout_when_they_reach_it() {
        let nodes = [
            node("a", Some(3), Some(3), phase::FAILING),
            node("b", None, None, ""),
            node("c", None, None, ""),
        ];
        let two = decide(3, 2, &nodes);
        assert_eq!(two.approve, vec!["b"]);
        assert_eq!(two.phase(), phase::DEGRADED);
        let one = decide(3, 1, &nodes);
        assert!(one.approve.is_empty());
        assert!(one.aborted);
        assert_eq!(one.phase(), phase::ABORTED);
    }

    #[test]
    fn a_failure_of_an_older_generation_does_not_count() {
        let nodes = [
            node("a", Some(3), Some(3), phase::FAILING),
            node("b", None, None, ""),
        ];
        let d = decide(4, 1, &nodes);
        assert_eq!(d.approve, vec!["a"]);
        assert!(!d.aborted);
    }

    #[test]
    fn everything_available_is_available_and_approves_nobody() {
        let nodes = [
            node("a", Some(5), Some(5), phase::AVAILABLE),
            node("b", Some(5), Some(5), phase::AVAILABLE),
        ];
        let d = decide(5, 1, &nodes);
        assert!(d.approve.is_empty());
        assert_eq!(d.phase(), phase::AVAILABLE);
        assert!(decide(5, 1, &[]).approve.is_empty());
    }

    #[test]
    fn when_the_last_nodes_failed_the_rollout_is_degraded_not_aborted() {
        let nodes = [
            node("a", Some(5), Some(5), phase::AVAILABLE),
            node("b", Some(5), Some(5), phase::FAILING),
        ];
        let d = decide(5, 1, &nodes);
        assert!(!d.aborted);
        assert_eq!(d.phase(), phase::DEGRADED);
    }
}
