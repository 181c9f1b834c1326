//! `NodeDiskStatus` of a discovered disk.

use crate::crd::disk::{NodeDiskStatus, PartitionStatus};

use super::discover::DiscoveredDisk;
use crate::quantity::human_bytes;

/// The status the agent publishes (present, with the verdict). `pool`, `lastSeen` and
/// `refreshedFor` are the agent loop's to fill in.
pub fn status_of(d: &DiscoveredDisk) -> NodeDiskStatus {
    NodeDiskStatus {
        present: true,
        path: d.path.clone(),
        by_id: d.by_id.clone(),
        by_path: d.by_path.clone(),
        size_bytes: d.size_bytes,
        size: human_bytes(d.size_bytes),
        type_: d
            .disk_type
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        rotational: d.rotational,
        model: d.model.clone(),
        vendor: d.vendor.clone(),
        serial: d.serial.clone(),
        wwn: d.wwn.clone(),
        read_only: d.read_only,
        partitions: d
            .partitions
            .iter()
            .map(|p| PartitionStatus {
                name: p.name.clone(),
                size_bytes: p.size_bytes,
                filesystem: p.filesystem.clone(),
                mount_points: p.mount_points.clone(),
            })
            .collect(),
        signatures: d.signatures.iter().map(|s| s.kind.clone()).collect(),
        mount_points: d.mount_points.clone(),
        holders: d.holders.clone(),
        volume_group: d.volume_group.clone(),
        smart_health: d.smart_health.clone(),
        eligible: d.verdict.eligible,
        ineligible_reasons: d
            .verdict
            .reasons
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
        message: d.verdict.message.clone(),
        pool: None,
        last_seen: None,
        refreshed_for: None,
    }
}

/// A disk that was not found in this discovery: its last known facts stay, marked absent and
/// ineligible (the object is kept, never silently deleted).
pub fn vanished(previous: &NodeDiskStatus) -> NodeDiskStatus {
    NodeDiskStatus {
        present: false,
        eligible: false,
        message: Some(format!(
            "not found on the node at the last discovery (was {})",
            previous.path
        )),
        ..previous.clone()
    }
}
