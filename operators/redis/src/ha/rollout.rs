//! Rolling updates of the standard and cache editions, driven by the supervisor (the StatefulSet
//! uses `OnDelete`): replicas first, one at a time, each back Ready (synced) before the next; then
//! one switchover to an updated replica; the old master's pod goes last and returns as a replica.
//!
//! [`plan_rollout`] is pure and tested case by case.

/// What the rollout looks at per pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutView {
    /// Pod name.
    pub pod: String,
    /// The pod's `controller-revision-hash`.
    pub revision: Option<String>,
    /// Ready (for a replica: synced with its master).
    pub ready: bool,
    /// Carries the master label.
    pub master: bool,
    /// Being deleted.
    pub deleting: bool,
}

/// The next rollout step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutStep {
    /// Delete a stale replica's pod (the StatefulSet recreates it at the update revision).
    Replace {
        /// The pod.
        pod: String,
    },
    /// Hand the master role to an updated replica, then replace the old master's pod.
    Switchover {
        /// The stale master.
        from: String,
        /// The updated, Ready replica.
        to: String,
    },
}

/// Plans the next step towards `update_revision` (None: nothing to do now).
pub fn plan_rollout(
    pods: &[RolloutView],
    expected: usize,
    update_revision: &str,
) -> Option<RolloutStep> {
    let stale = |p: &RolloutView| p.revision.as_deref() != Some(update_revision);
    if !pods.iter().any(stale) {
        return None;
    }
    // One disruption at a time: everything present, nobody going away, everybody Ready.
    if pods.len() < expected || pods.iter().any(|p| p.deleting || !p.ready) {
        return None;
    }
    if let Some(replica) = pods.iter().find(|p| !p.master && stale(p)) {
        return Some(RolloutStep::Replace {
            pod: replica.pod.clone(),
        });
    }
    let master = pods.iter().find(|p| p.master && stale(p))?;
    match pods.iter().find(|p| !p.master && !stale(p)) {
        Some(to) => Some(RolloutStep::Switchover {
            from: master.pod.clone(),
            to: to.pod.clone(),
        }),
        // The cache edition has no replica: the only way is to restart the master.
        None => Some(RolloutStep::Replace {
            pod: master.pod.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(pod: &str, rev: &str, ready: bool, master: bool) -> RolloutView {
        RolloutView {
            pod: pod.into(),
            revision: Some(rev.into()),
            ready,
            master,
            deleting: false,
        }
    }

    #[test]
    fn replicas_first_then_one_switchover() {
        let pods = [
            view("r-0", "old", true, true),
            view("r-1", "old", true, false),
        ];
        assert_eq!(
            plan_rollout(&pods, 2, "new"),
            Some(RolloutStep::Replace { pod: "r-1".into() })
        );
        let pods = [
            view("r-0", "old", true, true),
            view("r-1", "new", true, false),
        ];
        assert_eq!(
            plan_rollout(&pods, 2, "new"),
            Some(RolloutStep::Switchover {
                from: "r-0".into(),
                to: "r-1".into()
            })
        );
        let done = [
            view("r-0", "new", true, false),
            view("r-1", "new", true, true),
        ];
        assert_eq!(plan_rollout(&done, 2, "new"), None);
    }

    #[test]
    fn waits_while_a_replica_is_not_back_in_sync() {
        let pods = [
            view("r-0", "old", true, true),
            view("r-1", "new", false, false),
        ];
        assert_eq!(plan_rollout(&pods, 2, "new"), None);
        let mut going = view("r-1", "old", true, false);
        going.deleting = true;
        assert_eq!(
            plan_rollout(&[view("r-0", "old", true, true), going], 2, "new"),
            None
        );
        assert_eq!(
            plan_rollout(&[view("r-0", "old", true, true)], 2, "new"),
            None,
            "a pod is missing"
        );
    }

    #[test]
    fn the_master_at_the_highest_ordinal_is_still_switched_over_once() {
        let pods = [
            view("r-0", "old", true, false),
            view("r-1", "old", true, true),
        ];
        assert_eq!(
            plan_rollout(&pods, 2, "new"),
            Some(RolloutStep::Replace { pod: "r-0".into() })
        );
        let pods = [
            view("r-0", "new", true, false),
            view("r-1", "old", true, true),
        ];
        assert_eq!(
            plan_rollout(&pods, 2, "new"),
            Some(RolloutStep::Switchover {
                from: "r-1".into(),
                to: "r-0".into()
            })
        );
    }

    #[test]
    fn cache_restarts_its_only_pod() {
        assert_eq!(
            plan_rollout(&[view("c-0", "old", true, true)], 1, "new"),
            Some(RolloutStep::Replace { pod: "c-0".into() })
        );
    }
}
