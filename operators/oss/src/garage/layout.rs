//! The layout planner: which role changes give every wanted node its role. Pure, so the
//! operator can call it on every reconcile and write only when it returns a change.

use super::types::{ClusterLayout, LayoutUpdate, NodeRole, RoleAction, RoleChange};

/// The role a node should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredRole {
    /// Full node id (from `GetNodeInfo` or `GetClusterStatus`).
    pub node_id: String,
    pub zone: String,
    /// Bytes of data this node may hold.
    pub capacity: u64,
    pub tags: Vec<String>,
}

impl DesiredRole {
    fn role(&self) -> NodeRole {
        NodeRole {
            zone: self.zone.clone(),
            tags: self.tags.clone(),
            capacity: Some(self.capacity),
        }
    }
}

/// The update that gives every node of `desired` its role in `current`'s applied version, or
/// `None` when they all have it already.
///
/// It is compared with the applied roles, not the staged ones: changes staged by an earlier
/// attempt that never got applied are staged again and then applied. Nodes of the layout that
/// are not in `desired` are left alone; removing a node moves data and is a decision of its
/// own.
pub fn plan(current: &ClusterLayout, desired: &[DesiredRole]) -> Option<LayoutUpdate> {
    let roles: Vec<RoleChange> = desired
        .iter()
        .filter(|d| {
            let have = current.roles.iter().find(|r| r.id == d.node_id);
            !matches!(have, Some(r) if r.zone == d.zone && r.capacity == Some(d.capacity) && r.tags == d.tags)
        })
        .map(|d| RoleChange {
            id: d.node_id.clone(),
            action: RoleAction::Update(d.role()),
        })
        .collect();
    if roles.is_empty() {
        None
    } else {
        Some(LayoutUpdate {
            roles,
            parameters: None,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::garage::types::{LayoutParameters, LayoutRole, ZoneRedundancy};

    fn layout(roles: Vec<LayoutRole>) -> ClusterLayout {
        ClusterLayout {
            version: 1,
            roles,
            parameters: LayoutParameters {
                zone_redundancy: ZoneRedundancy::Maximum,
            },
            partition_size: 0,
            staged_role_changes: vec![],
            staged_parameters: None,
        }
    }

    fn have(id: &str, zone: &str, capacity: u64) -> LayoutRole {
        LayoutRole {
            id: id.into(),
            zone: zone.into(),
            tags: vec![],
            capacity: Some(capacity),
            stored_partitions: Some(256),
            usable_capacity: Some(capacity),
        }
    }

    fn want(id: &str, zone: &str, capacity: u64) -> DesiredRole {
        DesiredRole {
            node_id: id.into(),
            zone: zone.into(),
            capacity,
            tags: vec![],
        }
    }

    #[test]
    fn steady_state_needs_no_change() {
        let l = layout(vec![have("a", "z1", 10), have("b", "z2", 10)]);
        assert_eq!(plan(&l, &[want("a", "z1", 10), want("b", "z2", 10)]), None);
        // Order of `desired` does not matter, and nodes outside it are kept.
        assert_eq!(plan(&l, &[want("b", "z2", 10)]), None);
    }

    #[test]
    fn new_and_changed_nodes_get_their_role() {
        let l = layout(vec![have("a", "z1", 10)]);
        let u = plan(&l, &[want("a", "z1", 20), want("c", "z3", 5)]).unwrap();
        assert_eq!(u.roles.len(), 2);
        assert_eq!(u.roles[0].id, "a");
        assert_eq!(
            u.roles[1].action,
            RoleAction::Update(NodeRole {
                zone: "z3".into(),
                tags: vec![],
                capacity: Some(5)
            })
        );
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            serde_json::json!({"roles": [
                {"id": "a", "zone": "z1", "tags": [], "capacity": 20},
                {"id": "c", "zone": "z3", "tags": [], "capacity": 5},
            ]})
        );
    }

    #[test]
    fn staged_but_unapplied_changes_are_planned_again() {
        let mut l = layout(vec![]);
        l.version = 0;
        l.staged_role_changes = vec![RoleChange {
            id: "a".into(),
            action: RoleAction::Update(want("a", "z1", 10).role()),
        }];
        assert!(plan(&l, &[want("a", "z1", 10)]).is_some());
    }
}
