//! May a disk join a pool? A pure verdict with named reasons.

use std::collections::BTreeSet;
use std::fmt;

use super::discover::DiscoveredDisk;

/// Default smallest disk worth pooling.
pub const DEFAULT_MIN_SIZE: u64 = 1 << 30;

/// Why a disk may not join a pool (the strings of `NodeDiskStatus.ineligibleReasons`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    Mounted,
    HasPartitions,
    HasSignature,
    ReadOnly,
    OsDisk,
    InOtherVolumeGroup,
    TooSmall,
    ProbeFailed,
    HasHolders,
    Removable,
    SmartFailed,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::Mounted,
        Reason::HasPartitions,
        Reason::HasSignature,
        Reason::ReadOnly,
        Reason::OsDisk,
        Reason::InOtherVolumeGroup,
        Reason::TooSmall,
        Reason::ProbeFailed,
        Reason::HasHolders,
        Reason::Removable,
        Reason::SmartFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Mounted => "Mounted",
            Reason::HasPartitions => "HasPartitions",
            Reason::HasSignature => "HasSignature",
            Reason::ReadOnly => "ReadOnly",
            Reason::OsDisk => "OsDisk",
            Reason::InOtherVolumeGroup => "InOtherVolumeGroup",
            Reason::TooSmall => "TooSmall",
            Reason::ProbeFailed => "ProbeFailed",
            Reason::HasHolders => "HasHolders",
            Reason::Removable => "Removable",
            Reason::SmartFailed => "SmartFailed",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Reasons that wiping the disk removes: only these may be overridden by
    /// `destroyExistingDataOn`. A mounted disk, the OS disk, a disk in use by device-mapper/md or
    /// by another volume group is never wiped.
    pub fn wipe_clears(self) -> bool {
        matches!(self, Reason::HasPartitions | Reason::HasSignature)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict on one disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub eligible: bool,
    pub reasons: Vec<Reason>,
    /// Details for people: where it is mounted, which signatures, the probe error.
    pub message: Option<String>,
}

/// What the verdict depends on besides the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EligibilityOptions {
    pub min_size_bytes: u64,
    /// Volume groups of this node's pools: their own PVs are eligible (already members).
    pub pool_volume_groups: BTreeSet<String>,
}

impl Default for EligibilityOptions {
    fn default() -> Self {
        EligibilityOptions {
            min_size_bytes: DEFAULT_MIN_SIZE,
            pool_volume_groups: BTreeSet::new(),
        }
    }
}

/// The verdict (ignores `d.verdict`). Any probe error makes the disk ineligible.
pub fn judge(d: &DiscoveredDisk, opts: &EligibilityOptions) -> Verdict {
    let mut reasons = BTreeSet::new();
    let mut notes: Vec<String> = Vec::new();
    let in_pool_vg = d
        .volume_group
        .as_ref()
        .is_some_and(|vg| opts.pool_volume_groups.contains(vg));

    if !d.probe_errors.is_empty() {
        reasons.insert(Reason::ProbeFailed);
        notes.push(format!("probe failed: {}", d.probe_errors.join("; ")));
    }
    if d.os_disk {
        reasons.insert(Reason::OsDisk);
        notes.push("holds the host's / or /boot".into());
    }
    if !d.mount_points.is_empty() {
        reasons.insert(Reason::Mounted);
        notes.push(format!("mounted at {}", d.mount_points.join(", ")));
    }
    if !d.partitions.is_empty() {
        reasons.insert(Reason::HasPartitions);
        let names: Vec<&str> = d.partitions.iter().map(|p| p.name.as_str()).collect();
        notes.push(format!("partitions {}", names.join(", ")));
    }
    // A member of the pool's own VG carries an LVM label and the pool's dm devices as holders.
    let foreign_sigs: Vec<&str> = d
        .signatures
        .iter()
        .map(|s| s.kind.as_str())
        .filter(|k| !(in_pool_vg && *k == "LVM2_member"))
        .collect();
    if !foreign_sigs.is_empty() {
        reasons.insert(Reason::HasSignature);
        notes.push(format!("signatures {}", foreign_sigs.join(", ")));
    }
    if !d.holders.is_empty() && !in_pool_vg {
        reasons.insert(Reason::HasHolders);
        notes.push(format!("held by {}", d.holders.join(", ")));
    }
    if let Some(vg) = d.volume_group.as_ref().filter(|_| !in_pool_vg) {
        reasons.insert(Reason::InOtherVolumeGroup);
        notes.push(format!("physical volume of volume group {vg}"));
    }
    if d.read_only {
        reasons.insert(Reason::ReadOnly);
        notes.push("read-only".into());
    }
    if d.removable {
        reasons.insert(Reason::Removable);
        notes.push("removable media".into());
    }
    if d.size_bytes < opts.min_size_bytes {
        reasons.insert(Reason::TooSmall);
        notes.push(format!(
            "size {} below the minimum {}",
            crate::quantity::human_bytes(d.size_bytes),
            crate::quantity::human_bytes(opts.min_size_bytes)
        ));
    }
    if d.smart_health.as_deref() == Some("FAILED") {
        reasons.insert(Reason::SmartFailed);
        notes.push("SMART health FAILED".into());
    }
    Verdict {
        eligible: reasons.is_empty(),
        reasons: reasons.into_iter().collect(),
        message: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}
