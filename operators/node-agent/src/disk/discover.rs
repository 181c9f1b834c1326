//! One discovery pass: sysfs + mount table + probes → disks with a verdict.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use futures::stream::{self, StreamExt};

use crate::crd::disk::DiskType;

use super::eligibility::{EligibilityOptions, Verdict, judge};
use super::error::DiskError;
use super::host::HostPaths;
use super::lvm::report::Pv;
use super::mounts::{Mount, parse_mountinfo};
use super::probe::{Prober, Signature};
use super::sysfs::{DiskEntry, SysDisk, SysPartition, reachable, read_disks, read_links};

/// Mount points that make a disk the OS disk.
const OS_MOUNTS: [&str; 3] = ["/", "/boot", "/boot/efi"];
/// Disks probed at once: the probes are processes that mostly wait on the device.
const DEFAULT_CONCURRENCY: usize = 8;

/// A partition with what was probed on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoveredPartition {
    pub name: String,
    pub size_bytes: u64,
    pub filesystem: Option<String>,
    pub mount_points: Vec<String>,
    pub holders: Vec<String>,
}

/// Everything discovery learnt about one disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoveredDisk {
    /// Kernel name (`sdb`); changes across boots, never used as an identity.
    pub kernel_name: String,
    /// The host's device path (`/dev/sdb`).
    pub path: String,
    pub disk_type: Option<DiskType>,
    pub size_bytes: u64,
    pub read_only: bool,
    pub removable: bool,
    pub rotational: bool,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub serial: Option<String>,
    /// WWN as lsblk prints it (`0x5000c500a1b2c3d4` for NAA ids, the kernel's wwid otherwise).
    pub wwn: Option<String>,
    pub backing_file: Option<String>,
    pub by_id: Vec<String>,
    pub by_path: Vec<String>,
    pub partitions: Vec<DiscoveredPartition>,
    pub signatures: Vec<Signature>,
    /// Mounts of the disk, its partitions and devices stacked on them.
    pub mount_points: Vec<String>,
    pub holders: Vec<String>,
    pub os_disk: bool,
    pub volume_group: Option<String>,
    pub smart_health: Option<String>,
    /// Probe failures; any makes the disk ineligible.
    pub probe_errors: Vec<String>,
    pub verdict: Verdict,
}

/// Discovery settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryOptions {
    pub eligibility: EligibilityOptions,
    /// Disks probed concurrently (at least 1).
    pub concurrency: usize,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        DiscoveryOptions {
            eligibility: EligibilityOptions::default(),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// Discovers the host's disks. Fails as a whole only when `<sys>/block` cannot be listed (so a
/// broken mount is never mistaken for "all disks vanished"); anything else that fails is a
/// `ProbeFailed` verdict on the disks it concerns.
pub async fn discover_with(
    paths: &HostPaths,
    prober: &dyn Prober,
    opts: &DiscoveryOptions,
) -> Result<Vec<DiscoveredDisk>, DiskError> {
    let listed = read_disks(&paths.sys)?;
    let (mounts, mount_error) = match std::fs::read_to_string(&paths.mountinfo) {
        Ok(t) => (parse_mountinfo(&t), None),
        Err(e) => (
            Vec::new(),
            Some(DiskError::read(&paths.mountinfo, e).to_string()),
        ),
    };
    let (pvs, pvs_error) = match prober.physical_volumes().await {
        Ok(p) => (p, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let by_id = read_links(&paths.dev, "by-id");
    let by_path = read_links(&paths.dev, "by-path");

    let shared = Shared {
        paths,
        prober,
        mounts: &mounts,
        pvs: &pvs,
        by_id: &by_id,
        by_path: &by_path,
    };
    let mut disks: Vec<DiscoveredDisk> = stream::iter(listed)
        .map(|entry| shared.one(entry))
        .buffered(opts.concurrency.max(1))
        .collect()
        .await;
    for d in &mut disks {
        d.probe_errors.extend(mount_error.iter().cloned());
        d.probe_errors.extend(pvs_error.iter().cloned());
        d.verdict = judge(d, &opts.eligibility);
    }
    Ok(disks)
}

struct Shared<'a> {
    paths: &'a HostPaths,
    prober: &'a dyn Prober,
    mounts: &'a [Mount],
    pvs: &'a [Pv],
    by_id: &'a BTreeMap<String, Vec<String>>,
    by_path: &'a BTreeMap<String, Vec<String>>,
}

impl Shared<'_> {
    async fn one(&self, entry: DiskEntry) -> DiscoveredDisk {
        let sys = match entry {
            Ok(s) => s,
            Err((name, e)) => {
                return DiscoveredDisk {
                    path: format!("/dev/{name}"),
                    kernel_name: name,
                    probe_errors: vec![e.to_string()],
                    ..Default::default()
                };
            }
        };
        let mut d = from_sys(&sys);
        d.by_id = self.by_id.get(&sys.name).cloned().unwrap_or_default();
        d.by_path = self.by_path.get(&sys.name).cloned().unwrap_or_default();

        let own = mounts_of(self.mounts, sys.major, sys.minor, &d.path);
        let mut all: BTreeSet<String> = own.into_iter().collect();
        for s in &sys.stacked {
            all.extend(mounts_of(
                self.mounts,
                s.major,
                s.minor,
                &format!("/dev/{}", s.name),
            ));
        }
        let node = self.paths.device_node(&sys.name);
        match self.prober.signatures(&node).await {
            Ok(s) => d.signatures = s,
            Err(e) => d.probe_errors.push(e.to_string()),
        }
        for p in &sys.partitions {
            let part = self.partition(&sys, p, &mut d.probe_errors).await;
            all.extend(part.mount_points.iter().cloned());
            d.partitions.push(part);
        }
        d.os_disk = all.iter().any(|m| OS_MOUNTS.contains(&m.as_str()));
        d.mount_points = all.into_iter().collect();
        d.volume_group = self.volume_group(&sys);
        if d.disk_type != Some(DiskType::Loop) {
            // SMART is optional: failing to ask is noted, not held against the disk.
            match self.prober.smart_health(&node).await {
                Ok(h) => d.smart_health = h,
                Err(e) => tracing::debug!(disk = %d.path, error = %e, "smartctl"),
            }
        }
        d
    }

    async fn partition(
        &self,
        disk: &SysDisk,
        p: &SysPartition,
        errors: &mut Vec<String>,
    ) -> DiscoveredPartition {
        let mut mounts: BTreeSet<String> =
            mounts_of(self.mounts, p.major, p.minor, &format!("/dev/{}", p.name))
                .into_iter()
                .collect();
        // Mounts of dm/md devices built on this partition count as its own.
        for s in reachable(&disk.stacked, &p.holders) {
            mounts.extend(mounts_of(
                self.mounts,
                s.major,
                s.minor,
                &format!("/dev/{}", s.name),
            ));
        }
        let filesystem = match self
            .prober
            .signatures(&self.paths.device_node(&p.name))
            .await
        {
            Ok(s) => s.first().map(|s| s.kind.clone()),
            Err(e) => {
                errors.push(format!("{}: {e}", p.name));
                None
            }
        };
        DiscoveredPartition {
            name: p.name.clone(),
            size_bytes: p.size_bytes,
            filesystem,
            mount_points: mounts.into_iter().collect(),
            holders: p.holders.clone(),
        }
    }

    /// The VG of the disk, or of one of its partitions, by kernel name of the PV path.
    fn volume_group(&self, sys: &SysDisk) -> Option<String> {
        let names: BTreeSet<&str> = std::iter::once(sys.name.as_str())
            .chain(sys.partitions.iter().map(|p| p.name.as_str()))
            .collect();
        self.pvs
            .iter()
            .filter(|pv| {
                PathBuf::from(&pv.name)
                    .file_name()
                    .is_some_and(|f| names.contains(f.to_string_lossy().as_ref()))
            })
            .find_map(|pv| pv.vg_name.clone())
    }
}

fn mounts_of(mounts: &[Mount], major: u32, minor: u32, dev_path: &str) -> Vec<String> {
    mounts
        .iter()
        .filter(|m| (major != 0 && m.major == major && m.minor == minor) || m.source == dev_path)
        .map(|m| m.mount_point.clone())
        .collect()
}

fn from_sys(s: &SysDisk) -> DiscoveredDisk {
    DiscoveredDisk {
        kernel_name: s.name.clone(),
        path: format!("/dev/{}", s.name),
        disk_type: Some(disk_type(s)),
        size_bytes: s.size_bytes,
        read_only: s.read_only,
        removable: s.removable,
        rotational: s.rotational,
        model: s.model.clone(),
        vendor: s.vendor.clone(),
        serial: s.serial.clone(),
        wwn: s.wwid.as_deref().map(wwn_of),
        backing_file: s.backing_file.clone(),
        holders: s.holders.clone(),
        ..Default::default()
    }
}

fn disk_type(s: &SysDisk) -> DiskType {
    if s.name.starts_with("loop") {
        DiskType::Loop
    } else if s.name.starts_with("nvme") {
        DiskType::Nvme
    } else if s.rotational {
        DiskType::Hdd
    } else {
        DiskType::Ssd
    }
}

/// `naa.5000c500a1b2c3d4` → `0x5000c500a1b2c3d4` (lsblk's WWN form); other ids stay as they are.
pub fn wwn_of(wwid: &str) -> String {
    let w = wwid.trim();
    match w.strip_prefix("naa.") {
        Some(hex) => format!("0x{}", hex.to_ascii_lowercase()),
        None => w.to_string(),
    }
}
