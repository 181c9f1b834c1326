//! The cluster edition: the operator forms the Redis Cluster (MEET, slot assignment, REPLICATE,
//! FORGET of replaced nodes) and reports the shard map; failover inside a shard is Redis Cluster's
//! own (replicas promote themselves after `cluster-node-timeout`).
//!
//! [`plan_cluster`] is pure: what every node says about itself and the cluster in, steps out.

use std::collections::BTreeMap;

/// Total hash slots.
pub const SLOTS: u32 = 16384;

/// The slot range of shard `i` of `n`.
pub fn slot_range(i: u32, n: u32) -> (u32, u32) {
    let start = i * SLOTS / n;
    let end = (i + 1) * SLOTS / n - 1;
    (start, end)
}

/// One line of `CLUSTER NODES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    /// Node ID.
    pub id: String,
    /// IP (empty for `:0`).
    pub ip: String,
    /// `myself`.
    pub myself: bool,
    /// A master (else a replica).
    pub master: bool,
    /// The replica's master ID.
    pub master_id: Option<String>,
    /// Flagged `fail` or `noaddr`.
    pub failed: bool,
    /// Slot ranges it serves.
    pub slots: Vec<(u32, u32)>,
}

/// Parses `CLUSTER NODES`.
pub fn parse_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let ip = f[1].split(':').next().unwrap_or_default().to_owned();
            let flags: Vec<&str> = f[2].split(',').collect();
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|x| (x, x)),
                })
                .collect();
            Some(ClusterNode {
                id: f[0].to_owned(),
                ip,
                myself: flags.contains(&"myself"),
                master: flags.contains(&"master"),
                master_id: (f[3] != "-").then(|| f[3].to_owned()),
                failed: flags.iter().any(|x| *x == "fail" || *x == "noaddr"),
                slots,
            })
        })
        .collect()
}

/// What the operator knows of one pod of a cluster instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterPod {
    /// Pod name.
    pub pod: String,
    /// Shard index (pod label).
    pub shard: u32,
    /// Ordinal inside the shard.
    pub ordinal: u32,
    /// Pod IP.
    pub ip: String,
    /// `CLUSTER NODES` as this node sees it (None: did not answer).
    pub view: Option<Vec<ClusterNode>>,
}

impl ClusterPod {
    fn me(&self) -> Option<&ClusterNode> {
        self.view.as_ref()?.iter().find(|n| n.myself)
    }
}

/// A step towards the desired cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterStep {
    /// `CLUSTER MEET ip` sent to `via`.
    Meet {
        /// The pod that sends it.
        via: String,
        /// The IP to meet.
        ip: String,
    },
    /// `CLUSTER ADDSLOTSRANGE start end` on `pod`.
    AddSlots {
        /// The pod.
        pod: String,
        /// First slot.
        start: u32,
        /// Last slot.
        end: u32,
    },
    /// `CLUSTER REPLICATE master_id` on `pod`.
    Replicate {
        /// The pod.
        pod: String,
        /// The shard master's node ID.
        master_id: String,
    },
    /// `CLUSTER FORGET id` on `via` (a replaced node).
    Forget {
        /// The pod that forgets.
        via: String,
        /// The node ID.
        id: String,
    },
}

/// Plans the next steps. Waits until every expected pod answers.
pub fn plan_cluster(
    pods: &[ClusterPod],
    shards: u32,
    per_shard: u32,
) -> Result<Vec<ClusterStep>, String> {
    let expected = (shards * per_shard) as usize;
    let answering: Vec<&ClusterPod> = pods.iter().filter(|p| p.me().is_some()).collect();
    if answering.len() < expected {
        return Err(format!(
            "waiting for {} of {expected} nodes to answer",
            answering.len()
        ));
    }
    let mut steps = Vec::new();
    // 1. Everyone meets everyone through the first pod.
    let seed = answering[0];
    let seed_view = seed.view.clone().unwrap_or_default();
    for p in &answering[1..] {
        let known = seed_view.iter().any(|n| n.ip == p.ip && !n.failed);
        if !known {
            steps.push(ClusterStep::Meet {
                via: seed.pod.clone(),
                ip: p.ip.clone(),
            });
        }
    }
    if !steps.is_empty() {
        return Ok(steps);
    }
    // 2. Forget nodes whose IP no pod has any more (pods replaced with new identities) — but only
    // once they serve no slots: a failed master's replica needs the other masters to still know
    // it to win the failover vote. A replica cannot forget its own master.
    let ips: Vec<&str> = answering.iter().map(|p| p.ip.as_str()).collect();
    for p in &answering {
        let my_master = p.me().and_then(|m| m.master_id.clone());
        for n in p.view.iter().flatten() {
            let forgettable = n.failed
                && !n.myself
                && n.slots.is_empty()
                && !ips.contains(&n.ip.as_str())
                && my_master.as_deref() != Some(n.id.as_str());
            if forgettable {
                steps.push(ClusterStep::Forget {
                    via: p.pod.clone(),
                    id: n.id.clone(),
                });
            }
        }
    }
    if !steps.is_empty() {
        return Ok(steps);
    }
    // 3. Each shard: one master with the shard's slots, the others its replicas.
    let mut by_shard: BTreeMap<u32, Vec<&ClusterPod>> = BTreeMap::new();
    for p in &answering {
        by_shard.entry(p.shard).or_default().push(p);
    }
    for (shard, mut members) in by_shard {
        members.sort_by_key(|p| p.ordinal);
        let owner = members
            .iter()
            .find(|p| p.me().is_some_and(|m| m.master && !m.slots.is_empty()))
            .copied();
        let owner = match owner {
            Some(o) => o,
            None => {
                // No member serves slots: a fresh cluster. Skip when any node any pod knows of
                // (failed ones included: their replica may be about to take over) serves them.
                let (start, end) = slot_range(shard, shards);
                let served = answering
                    .iter()
                    .flat_map(|p| p.view.iter().flatten())
                    .any(|n| n.slots.iter().any(|(a, b)| *a <= start && start <= *b));
                if served {
                    continue;
                }
                let first = members[0];
                steps.push(ClusterStep::AddSlots {
                    pod: first.pod.clone(),
                    start,
                    end,
                });
                continue;
            }
        };
        let Some(master_id) = owner.me().map(|m| m.id.clone()) else {
            continue;
        };
        for p in members.iter().filter(|p| p.pod != owner.pod) {
            let me = p.me();
            let follows =
                me.is_some_and(|m| !m.master && m.master_id.as_deref() == Some(master_id.as_str()));
            if !follows {
                steps.push(ClusterStep::Replicate {
                    pod: p.pod.clone(),
                    master_id: master_id.clone(),
                });
            }
        }
    }
    Ok(steps)
}

/// The shard map for status: per shard its slot ranges and master pod.
pub fn shard_map(pods: &[ClusterPod], shards: u32) -> Vec<crate::crd::ShardStatus> {
    (0..shards)
        .map(|i| {
            let master = pods
                .iter()
                .filter(|p| p.shard == i)
                .find(|p| p.me().is_some_and(|m| m.master && !m.slots.is_empty()));
            let slots = master
                .and_then(|p| p.me())
                .map(|m| {
                    m.slots
                        .iter()
                        .map(|(a, b)| format!("{a}-{b}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            crate::crd::ShardStatus {
                index: i,
                slots,
                master: master.map(|p| p.pod.clone()),
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn node(
        id: &str,
        ip: &str,
        myself: bool,
        master: bool,
        of: Option<&str>,
        slots: &[(u32, u32)],
    ) -> ClusterNode {
        ClusterNode {
            id: id.into(),
            ip: ip.into(),
            myself,
            master,
            master_id: of.map(str::to_owned),
            failed: false,
            slots: slots.to_vec(),
        }
    }

    fn pod(name: &str, shard: u32, ordinal: u32, ip: &str, view: Vec<ClusterNode>) -> ClusterPod {
        ClusterPod {
            pod: name.into(),
            shard,
            ordinal,
            ip: ip.into(),
            view: Some(view),
        }
    }

    #[test]
    fn slot_ranges_cover_every_slot_once() {
        let r: Vec<_> = (0..3).map(|i| slot_range(i, 3)).collect();
        assert_eq!(r, vec![(0, 5460), (5461, 10921), (10922, 16383)]);
        let total: u32 = (0..16)
            .map(|i| {
                let (a, b) = slot_range(i, 16);
                b - a + 1
            })
            .sum();
        assert_eq!(total, SLOTS);
    }

    #[test]
    fn parses_cluster_nodes() {
        let text = "07c3 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-5460 5462\n\
                    9a1b 10.0.0.2:6379@16379 slave 07c3 0 1 1 connected\n\
                    dead :0@0 master,fail,noaddr - 1 1 3 disconnected\n";
        let n = parse_nodes(text);
        assert_eq!(n.len(), 3);
        assert!(n[0].myself && n[0].master);
        assert_eq!(n[0].slots, vec![(0, 5460), (5462, 5462)]);
        assert_eq!(n[1].master_id.as_deref(), Some("07c3"));
        assert!(n[2].failed);
    }

    #[test]
    fn fresh_nodes_meet_then_get_slots_then_replicas() {
        let fresh = |name: &str, shard, ord, ip: &str, id: &str| {
            pod(
                name,
                shard,
                ord,
                ip,
                vec![node(id, ip, true, true, None, &[])],
            )
        };
        let pods = vec![
            fresh("c-shard-0-0", 0, 0, "10.0.0.1", "a"),
            fresh("c-shard-0-1", 0, 1, "10.0.0.2", "b"),
        ];
        assert_eq!(
            plan_cluster(&pods, 1, 2).unwrap(),
            vec![ClusterStep::Meet {
                via: "c-shard-0-0".into(),
                ip: "10.0.0.2".into()
            }]
        );
        // Met: slots to the first member of each shard.
        let met = vec![
            pod(
                "c-shard-0-0",
                0,
                0,
                "10.0.0.1",
                vec![
                    node("a", "10.0.0.1", true, true, None, &[]),
                    node("b", "10.0.0.2", false, true, None, &[]),
                ],
            ),
            pod(
                "c-shard-0-1",
                0,
                1,
                "10.0.0.2",
                vec![node("b", "10.0.0.2", true, true, None, &[])],
            ),
        ];
        assert_eq!(
            plan_cluster(&met, 1, 2).unwrap(),
            vec![ClusterStep::AddSlots {
                pod: "c-shard-0-0".into(),
                start: 0,
                end: 16383
            }]
        );
        // Slots assigned: the other member replicates.
        let slotted = vec![
            pod(
                "c-shard-0-0",
                0,
                0,
                "10.0.0.1",
                vec![
                    node("a", "10.0.0.1", true, true, None, &[(0, 16383)]),
                    node("b", "10.0.0.2", false, true, None, &[]),
                ],
            ),
            pod(
                "c-shard-0-1",
                0,
                1,
                "10.0.0.2",
                vec![node("b", "10.0.0.2", true, true, None, &[])],
            ),
        ];
        assert_eq!(
            plan_cluster(&slotted, 1, 2).unwrap(),
            vec![ClusterStep::Replicate {
                pod: "c-shard-0-1".into(),
                master_id: "a".into()
            }]
        );
        // Formed: nothing to do.
        let formed = vec![
            pod(
                "c-shard-0-0",
                0,
                0,
                "10.0.0.1",
                vec![
                    node("a", "10.0.0.1", true, true, None, &[(0, 16383)]),
                    node("b", "10.0.0.2", false, false, Some("a"), &[]),
                ],
            ),
            pod(
                "c-shard-0-1",
                0,
                1,
                "10.0.0.2",
                vec![node("b", "10.0.0.2", true, false, Some("a"), &[])],
            ),
        ];
        assert!(plan_cluster(&formed, 1, 2).unwrap().is_empty());
        let map = shard_map(&formed, 1);
        assert_eq!(map[0].slots, "0-16383");
        assert_eq!(map[0].master.as_deref(), Some("c-shard-0-0"));
    }

    #[test]
    fn after_a_native_failover_the_replacement_replicates_the_promoted_node() {
        // shard 0: pod-0 was master and got replaced (new id "c", new IP); "b" was promoted.
        let mut dead = node("a", "10.0.0.1", false, true, None, &[]);
        dead.failed = true;
        let pods = vec![
            pod(
                "s-0",
                0,
                0,
                "10.0.0.9",
                vec![
                    node("c", "10.0.0.9", true, true, None, &[]),
                    node("b", "10.0.0.2", false, true, None, &[(0, 16383)]),
                ],
            ),
            pod(
                "s-1",
                0,
                1,
                "10.0.0.2",
                vec![
                    node("b", "10.0.0.2", true, true, None, &[(0, 16383)]),
                    node("c", "10.0.0.9", false, true, None, &[]),
                    dead,
                ],
            ),
        ];
        assert_eq!(
            plan_cluster(&pods, 1, 2).unwrap(),
            vec![ClusterStep::Forget {
                via: "s-1".into(),
                id: "a".into()
            }]
        );
    }

    #[test]
    fn a_failed_master_with_slots_is_not_forgotten_before_its_replica_took_over() {
        let mut dead = node("a", "10.0.0.1", false, true, None, &[(0, 16383)]);
        dead.failed = true;
        let pods = vec![
            pod(
                "s-0",
                0,
                0,
                "10.0.0.9",
                vec![
                    node("c", "10.0.0.9", true, true, None, &[]),
                    node("b", "10.0.0.2", false, false, Some("a"), &[]),
                ],
            ),
            pod(
                "s-1",
                0,
                1,
                "10.0.0.2",
                vec![
                    node("b", "10.0.0.2", true, false, Some("a"), &[]),
                    node("c", "10.0.0.9", false, true, None, &[]),
                    dead,
                ],
            ),
        ];
        let steps = plan_cluster(&pods, 1, 2).unwrap();
        assert!(
            steps
                .iter()
                .all(|s| !matches!(s, ClusterStep::Forget { .. })),
            "{steps:?}"
        );
    }

    #[test]
    fn waits_for_every_node() {
        let mut p = pod("s-0", 0, 0, "10.0.0.1", vec![]);
        p.view = None;
        assert!(
            plan_cluster(&[p], 1, 2)
                .unwrap_err()
                .contains("waiting for 0 of 2")
        );
    }
}
