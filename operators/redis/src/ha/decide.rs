//! The failover decision as a pure state machine: node observations in, steps out.
//!
//! Invariants:
//! * at most one pod carries the master label (the endpoint Service selects it);
//! * a replica is promoted only when the labelled master is deleting or has failed
//!   `down_after` consecutive probes (two when the connection is refused: nothing listens);
//! * the promoted replica is the reachable replica with the highest replication offset, so writes
//!   acknowledged by `WAIT 1` survive;
//! * a fresh node that starts as an empty master is never elected over a replica holding data;
//! * a failed master that is still running (frozen, partitioned) is fenced: unlabelled and its pod
//!   deleted with no grace period, which the kubelet carries out with SIGKILL even on a stopped
//!   process, so it never comes back as a second master. Its replacement joins as a replica.

use crate::dataplane::ReplicationInfo;

/// What the supervisor knows about one pod.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    /// Pod name.
    pub pod: String,
    /// StatefulSet ordinal (tie breaker: lowest first).
    pub ordinal: u32,
    /// Pod IP, once assigned.
    pub ip: Option<String>,
    /// The pod has a deletionTimestamp.
    pub deleting: bool,
    /// The pod carries the master label.
    pub labelled_master: bool,
    /// Probe results.
    pub health: NodeHealth,
}

/// Probe results of one node.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeHealth {
    /// Answered the last probe.
    Up(ReplicationInfo),
    /// Failed the last `consecutive` probes; `refused` when the last failure was a refused
    /// connection.
    Down {
        /// Consecutive failed probes.
        consecutive: u32,
        /// Last failure was ECONNREFUSED.
        refused: bool,
    },
    /// Not probed yet (no IP, just started).
    Unknown,
}

/// Detection thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive failed probes (timeouts) before the master counts as failed.
    pub down_after: u32,
    /// Consecutive refused connections before the master counts as failed.
    pub refused_after: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            down_after: 4,
            refused_after: 2,
        }
    }
}

/// Why a failover happened (event reason, metric label, status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailoverReason {
    /// The master pod is being deleted.
    MasterDeleted,
    /// The master's pod disappeared.
    MasterGone,
    /// Nothing listens on the master's port.
    MasterRefused,
    /// The master stopped answering.
    MasterUnresponsive,
    /// The master's process restarted and came back without its role (a dangling replica), while
    /// a replica holds more data.
    MasterRestarted,
}

impl FailoverReason {
    /// CamelCase name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverReason::MasterDeleted => "MasterDeleted",
            FailoverReason::MasterGone => "MasterGone",
            FailoverReason::MasterRefused => "MasterRefused",
            FailoverReason::MasterUnresponsive => "MasterUnresponsive",
            FailoverReason::MasterRestarted => "MasterRestarted",
        }
    }
}

/// One step for the supervisor to carry out, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// First election (no master yet): label `pod` master (REPLICAOF NO ONE if it is a replica).
    Elect {
        /// The pod.
        pod: String,
    },
    /// Promote `to` in place of the failed master `from`.
    Failover {
        /// The failed master (None when its pod is gone).
        from: Option<String>,
        /// The promoted replica.
        to: String,
        /// Why.
        reason: FailoverReason,
        /// Delete `from`'s pod with no grace period (it may still run: frozen or partitioned).
        fence: bool,
    },
    /// Remove the master label from `pod` (a second labelled master).
    Unlabel {
        /// The pod.
        pod: String,
    },
    /// The labelled master reports itself a replica: REPLICAOF NO ONE.
    Promote {
        /// The pod.
        pod: String,
    },
    /// Make `pod` a replica of `master_ip`.
    Replicate {
        /// The pod.
        pod: String,
        /// The master's IP.
        master_ip: String,
    },
}

/// The decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Steps in order.
    pub steps: Vec<Step>,
    /// Why nothing can be done although something is wrong (status message).
    pub blocked: Option<String>,
}

fn up(n: &NodeView) -> Option<&ReplicationInfo> {
    match &n.health {
        NodeHealth::Up(info) if !n.deleting => Some(info),
        _ => None,
    }
}

/// Decides what to do for one master/replica group. `expected` is the number of pods the
/// StatefulSet should have.
pub fn decide(nodes: &[NodeView], expected: usize, t: Thresholds) -> Decision {
    let labelled: Vec<&NodeView> = nodes.iter().filter(|n| n.labelled_master).collect();
    let mut d = Decision::default();
    match labelled.as_slice() {
        [] => elect(nodes, expected, &mut d),
        [master] => keep_or_fail_over(master, nodes, t, &mut d),
        many => {
            // Keep the healthiest (master role, highest offset); unlabel the rest first.
            let keep = many
                .iter()
                .filter_map(|n| up(n).map(|i| (n, i)))
                .max_by_key(|(n, i)| (i.is_master, i.offset, std::cmp::Reverse(n.ordinal)))
                .map(|(n, _)| n.pod.clone());
            for n in many {
                if Some(&n.pod) != keep.as_ref() {
                    d.steps.push(Step::Unlabel { pod: n.pod.clone() });
                }
            }
        }
    }
    d
}

/// The address every node starts replicating from (nothing listens there): see the start script.
pub const DANGLING_MASTER_HOST: &str = "127.0.0.1";

/// A node that has not been given a role since it started.
fn dangling(i: &ReplicationInfo) -> bool {
    !i.is_master && i.master_host.as_deref() == Some(DANGLING_MASTER_HOST)
}

fn elect(nodes: &[NodeView], expected: usize, d: &mut Decision) {
    // A replica that has data from a former master wins over any master: after the labelled
    // master's pod vanished, the restarted pod is an empty (or stale) master.
    let best_replica = nodes
        .iter()
        .filter_map(|n| up(n).map(|i| (n, i)))
        .filter(|(_, i)| !i.is_master && i.offset > 0 && !dangling(i))
        .max_by_key(|(n, i)| (i.offset, std::cmp::Reverse(n.ordinal)));
    if let Some((n, _)) = best_replica {
        d.steps.push(Step::Failover {
            from: None,
            to: n.pod.clone(),
            reason: FailoverReason::MasterGone,
            fence: false,
        });
        return;
    }
    let ups: Vec<(&NodeView, &ReplicationInfo)> =
        nodes.iter().filter_map(|n| up(n).map(|i| (n, i))).collect();
    // First start: wait for every node so the one with data (after a full restart) can win.
    if ups.len() < expected {
        d.blocked = Some(format!(
            "waiting for {} of {expected} nodes to answer",
            ups.len()
        ));
        return;
    }
    if let Some((n, _)) = ups
        .iter()
        .max_by_key(|(n, i)| (i.is_master, i.offset, std::cmp::Reverse(n.ordinal)))
    {
        d.steps.push(Step::Elect { pod: n.pod.clone() });
        // Attach the others in the same round: a new instance is Ready one probe round sooner.
        if let Some(ip) = n.ip.as_deref() {
            for (other, _) in ups.iter().filter(|(o, _)| o.pod != n.pod) {
                d.steps.push(Step::Replicate {
                    pod: other.pod.clone(),
                    master_ip: ip.to_owned(),
                });
            }
        }
    }
}

fn failed(master: &NodeView, t: Thresholds) -> Option<FailoverReason> {
    if master.deleting {
        return Some(FailoverReason::MasterDeleted);
    }
    match master.health {
        NodeHealth::Down {
            consecutive,
            refused: true,
        } if consecutive >= t.refused_after => Some(FailoverReason::MasterRefused),
        NodeHealth::Down { consecutive, .. } if consecutive >= t.down_after => {
            Some(FailoverReason::MasterUnresponsive)
        }
        _ => None,
    }
}

fn keep_or_fail_over(master: &NodeView, nodes: &[NodeView], t: Thresholds, d: &mut Decision) {
    if let Some(reason) = failed(master, t) {
        let candidate = nodes
            .iter()
            .filter(|n| n.pod != master.pod)
            .filter_map(|n| up(n).map(|i| (n, i)))
            .filter(|(_, i)| !i.is_master)
            .max_by_key(|(n, i)| (i.offset, std::cmp::Reverse(n.ordinal)));
        match candidate {
            Some((n, _)) => d.steps.push(Step::Failover {
                from: Some(master.pod.clone()),
                to: n.pod.clone(),
                reason,
                fence: !master.deleting,
            }),
            None => {
                d.blocked = Some(format!(
                    "master {} failed ({}) and no replica can take over",
                    master.pod,
                    reason.as_str()
                ))
            }
        }
        return;
    }
    let Some(info) = up(master) else {
        return; // not failed yet: wait for more probes
    };
    if !info.is_master {
        // Restarted in place (e.g. OOM kill): its AOF may miss the last second, the replica not.
        let better = nodes
            .iter()
            .filter(|n| n.pod != master.pod)
            .filter_map(|n| up(n).map(|i| (n, i)))
            .filter(|(_, i)| !i.is_master && i.offset > info.offset)
            .max_by_key(|(n, i)| (i.offset, std::cmp::Reverse(n.ordinal)));
        match better {
            Some((n, _)) if !info.link_up => {
                d.steps.push(Step::Failover {
                    from: Some(master.pod.clone()),
                    to: n.pod.clone(),
                    reason: FailoverReason::MasterRestarted,
                    fence: false,
                });
                return;
            }
            _ => d.steps.push(Step::Promote {
                pod: master.pod.clone(),
            }),
        }
    }
    let Some(master_ip) = master.ip.as_deref() else {
        return;
    };
    for n in nodes.iter().filter(|n| n.pod != master.pod) {
        if up(n).is_some_and(|i| i.is_master || i.master_host.as_deref() != Some(master_ip)) {
            d.steps.push(Step::Replicate {
                pod: n.pod.clone(),
                master_ip: master_ip.to_owned(),
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn master_info(offset: i64) -> ReplicationInfo {
        ReplicationInfo {
            is_master: true,
            offset,
            ..Default::default()
        }
    }

    fn replica_info(of: &str, offset: i64) -> ReplicationInfo {
        ReplicationInfo {
            is_master: false,
            master_host: Some(of.into()),
            link_up: true,
            offset,
            ..Default::default()
        }
    }

    fn node(ordinal: u32, labelled: bool, health: NodeHealth) -> NodeView {
        NodeView {
            pod: format!("r-{ordinal}"),
            ordinal,
            ip: Some(format!("10.0.0.{}", ordinal + 1)),
            deleting: false,
            labelled_master: labelled,
            health,
        }
    }

    const T: Thresholds = Thresholds {
        down_after: 4,
        refused_after: 2,
    };

    #[test]
    fn first_start_waits_for_every_node_then_elects_the_lowest_ordinal() {
        let one = [
            node(0, false, NodeHealth::Up(master_info(0))),
            node(1, false, NodeHealth::Unknown),
        ];
        let d = decide(&one, 2, T);
        assert!(d.steps.is_empty());
        assert!(d.blocked.unwrap().contains("waiting for 1 of 2"));
        let both = [
            node(0, false, NodeHealth::Up(master_info(0))),
            node(1, false, NodeHealth::Up(master_info(0))),
        ];
        assert_eq!(
            decide(&both, 2, T).steps,
            vec![
                Step::Elect { pod: "r-0".into() },
                Step::Replicate {
                    pod: "r-1".into(),
                    master_ip: "10.0.0.1".into()
                }
            ]
        );
    }

    #[test]
    fn healthy_master_gets_its_replicas_attached() {
        let nodes = [
            node(0, true, NodeHealth::Up(master_info(10))),
            node(1, false, NodeHealth::Up(master_info(0))),
        ];
        assert_eq!(
            decide(&nodes, 2, T).steps,
            vec![Step::Replicate {
                pod: "r-1".into(),
                master_ip: "10.0.0.1".into()
            }]
        );
        let steady = [
            node(0, true, NodeHealth::Up(master_info(10))),
            node(1, false, NodeHealth::Up(replica_info("10.0.0.1", 10))),
        ];
        assert_eq!(
            decide(&steady, 2, T),
            Decision::default(),
            "steady state does nothing"
        );
    }

    #[test]
    fn a_few_failed_probes_are_not_a_failure() {
        let nodes = [
            node(
                0,
                true,
                NodeHealth::Down {
                    consecutive: 3,
                    refused: false,
                },
            ),
            node(1, false, NodeHealth::Up(replica_info("10.0.0.1", 10))),
        ];
        assert_eq!(decide(&nodes, 2, T), Decision::default());
        let refused_once = [
            node(
                0,
                true,
                NodeHealth::Down {
                    consecutive: 1,
                    refused: true,
                },
            ),
            node(1, false, NodeHealth::Up(replica_info("10.0.0.1", 10))),
        ];
        assert_eq!(decide(&refused_once, 2, T), Decision::default());
    }

    #[test]
    fn unresponsive_master_is_fenced_and_the_best_replica_promoted() {
        let nodes = [
            node(
                0,
                true,
                NodeHealth::Down {
                    consecutive: 4,
                    refused: false,
                },
            ),
            node(1, false, NodeHealth::Up(replica_info("10.0.0.1", 90))),
            node(2, false, NodeHealth::Up(replica_info("10.0.0.1", 100))),
        ];
        assert_eq!(
            decide(&nodes, 3, T).steps,
            vec![Step::Failover {
                from: Some("r-0".into()),
                to: "r-2".into(),
                reason: FailoverReason::MasterUnresponsive,
                fence: true
            }]
        );
    }

    #[test]
    fn deleting_master_fails_over_at_once_without_fencing() {
        let mut m = node(0, true, NodeHealth::Up(master_info(5)));
        m.deleting = true;
        let nodes = [
            m,
            node(1, false, NodeHealth::Up(replica_info("10.0.0.1", 5))),
        ];
        assert_eq!(
            decide(&nodes, 2, T).steps,
            vec![Step::Failover {
                from: Some("r-0".into()),
                to: "r-1".into(),
                reason: FailoverReason::MasterDeleted,
                fence: false
            }]
        );
    }

    #[test]
    fn refused_master_fails_over_after_two_probes() {
        let nodes = [
            node(
                0,
                true,
                NodeHealth::Down {
                    consecutive: 2,
                    refused: true,
                },
            ),
            node(1, false, NodeHealth::Up(replica_info("10.0.0.1", 5))),
        ];
        let steps = decide(&nodes, 2, T).steps;
        assert!(matches!(
            &steps[0],
            Step::Failover {
                reason: FailoverReason::MasterRefused,
                ..
            }
        ));
    }

    #[test]
    fn an_empty_restarted_master_never_beats_a_replica_with_data() {
        // The master pod vanished and came back unlabelled as an empty master.
        let nodes = [
            node(0, false, NodeHealth::Up(master_info(0))),
            node(1, false, NodeHealth::Up(replica_info("10.0.0.9", 500))),
        ];
        assert_eq!(
            decide(&nodes, 2, T).steps,
            vec![Step::Failover {
                from: None,
                to: "r-1".into(),
                reason: FailoverReason::MasterGone,
                fence: false
            }]
        );
    }

    #[test]
    fn no_replica_means_blocked_not_a_second_master() {
        let nodes = [
            node(
                0,
                true,
                NodeHealth::Down {
                    consecutive: 9,
                    refused: false,
                },
            ),
            node(1, false, NodeHealth::Up(master_info(0))),
        ];
        let d = decide(&nodes, 2, T);
        assert!(d.steps.is_empty());
        assert!(d.blocked.unwrap().contains("no replica can take over"));
        // The cache edition: one node, nothing to promote.
        let cache = [node(
            0,
            true,
            NodeHealth::Down {
                consecutive: 9,
                refused: true,
            },
        )];
        assert!(decide(&cache, 1, T).steps.is_empty());
    }

    #[test]
    fn two_labelled_masters_keep_the_one_with_more_data() {
        let nodes = [
            node(0, true, NodeHealth::Up(master_info(3))),
            node(1, true, NodeHealth::Up(master_info(7))),
        ];
        assert_eq!(
            decide(&nodes, 2, T).steps,
            vec![Step::Unlabel { pod: "r-0".into() }]
        );
    }

    fn dangling(offset: i64) -> ReplicationInfo {
        ReplicationInfo {
            is_master: false,
            master_host: Some("127.0.0.1".into()),
            link_up: false,
            offset,
            ..Default::default()
        }
    }

    #[test]
    fn a_restarted_master_is_promoted_again_unless_a_replica_has_more_data() {
        let cache = [node(0, true, NodeHealth::Up(dangling(0)))];
        assert_eq!(
            decide(&cache, 1, T).steps,
            vec![Step::Promote { pod: "r-0".into() }]
        );
        let nodes = [
            node(0, true, NodeHealth::Up(dangling(0))),
            node(1, false, NodeHealth::Up(replica_info("10.0.0.1", 40))),
        ];
        assert_eq!(
            decide(&nodes, 2, T).steps,
            vec![Step::Failover {
                from: Some("r-0".into()),
                to: "r-1".into(),
                reason: FailoverReason::MasterRestarted,
                fence: false
            }]
        );
    }

    #[test]
    fn nodes_start_as_dangling_replicas_and_the_first_is_elected() {
        let nodes = [
            node(0, false, NodeHealth::Up(dangling(0))),
            node(1, false, NodeHealth::Up(dangling(0))),
        ];
        assert_eq!(
            decide(&nodes, 2, T).steps,
            vec![
                Step::Elect { pod: "r-0".into() },
                Step::Replicate {
                    pod: "r-1".into(),
                    master_ip: "10.0.0.1".into()
                }
            ]
        );
    }
}
