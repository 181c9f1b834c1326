//! Block devices as the host's sysfs shows them (`/sys/block/*`).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::error::DiskError;

/// sysfs sizes are in 512-byte sectors whatever the device's logical block size.
const SECTOR: u64 = 512;
/// Holders of holders are followed this deep (dm on dm on md...); more would be a cycle.
const MAX_HOLDER_DEPTH: usize = 8;

/// A whole disk read from sysfs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SysDisk {
    /// Kernel name (`sda`, `nvme0n1`, `loop3`).
    pub name: String,
    pub major: u32,
    pub minor: u32,
    pub size_bytes: u64,
    pub read_only: bool,
    pub removable: bool,
    pub rotational: bool,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub serial: Option<String>,
    /// The kernel's world-wide id (`naa.5000...`, `eui.0025...`, `t10.ATA ...`).
    pub wwid: Option<String>,
    /// Backing file of a loop device.
    pub backing_file: Option<String>,
    pub partitions: Vec<SysPartition>,
    /// Direct holders of the disk (`dm-0`, `md127`).
    pub holders: Vec<String>,
    /// Every device built on the disk or its partitions, followed through holders of holders:
    /// its mounts count as the disk's.
    pub stacked: Vec<StackedDevice>,
}

/// A partition of a disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SysPartition {
    pub name: String,
    pub major: u32,
    pub minor: u32,
    pub size_bytes: u64,
    pub holders: Vec<String>,
}

/// A device-mapper or md device stacked on a disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StackedDevice {
    pub name: String,
    pub major: u32,
    pub minor: u32,
    /// Devices built on this one.
    pub holders: Vec<String>,
}

/// The stacked devices reachable from `roots` (themselves included) through holders.
pub fn reachable<'a>(stacked: &'a [StackedDevice], roots: &[String]) -> Vec<&'a StackedDevice> {
    let mut seen: BTreeMap<&str, &StackedDevice> = BTreeMap::new();
    let mut level: Vec<String> = roots.to_vec();
    for _ in 0..MAX_HOLDER_DEPTH {
        let mut next = Vec::new();
        for name in &level {
            if let Some(s) = stacked.iter().find(|s| &s.name == name)
                && seen.insert(s.name.as_str(), s).is_none()
            {
                next.extend(s.holders.iter().cloned());
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    seen.into_values().collect()
}

/// Which kernel names are disks we inventory. dm-*, md*, ram*, zram*, sr* and the like are not
/// (dm and md appear as holders instead).
pub fn is_candidate_name(name: &str) -> bool {
    let digits_after = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
    };
    let letters_after = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase()))
    };
    let nvme_namespace = name.strip_prefix("nvme").is_some_and(|rest| {
        // nvme<ctrl>n<ns>; nvme<ctrl>c<path>n<ns> are hidden multipath legs.
        rest.split_once('n').is_some_and(|(c, n)| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        })
    });
    digits_after("loop")
        || letters_after("sd")
        || letters_after("vd")
        || letters_after("xvd")
        || nvme_namespace
}

/// A disk read from sysfs, or the kernel name of one that could not be read and why.
pub type DiskEntry = Result<SysDisk, (String, DiskError)>;

/// Lists the host's disks. Only listing `<sys>/block` itself can fail as a whole; a disk whose
/// attributes cannot be read comes back as an error of its own.
pub fn read_disks(sys: &Path) -> Result<Vec<DiskEntry>, DiskError> {
    let block = sys.join("block");
    let entries = fs::read_dir(&block).map_err(|e| DiskError::read(&block, e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_candidate_name(n))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let dir = block.join(&name);
        if read_trimmed(&dir.join("hidden")).as_deref() == Some("1") {
            continue;
        }
        match read_disk(&block, &name) {
            // A loop device with nothing attached has size 0 and no backing file: not a disk.
            Ok(d) if name.starts_with("loop") && d.backing_file.is_none() => {}
            Ok(d) => out.push(Ok(d)),
            Err(e) => out.push(Err((name, e))),
        }
    }
    Ok(out)
}

fn read_disk(block: &Path, name: &str) -> Result<SysDisk, DiskError> {
    let dir = block.join(name);
    let (major, minor) = read_dev(&dir)?;
    let device = dir.join("device");
    let serial = read_trimmed(&dir.join("serial"))
        .or_else(|| read_trimmed(&device.join("serial")))
        .or_else(|| read_vpd_serial(&device.join("vpd_pg80")));
    Ok(SysDisk {
        name: name.to_string(),
        major,
        minor,
        size_bytes: read_u64(&dir.join("size"))?.saturating_mul(SECTOR),
        read_only: read_u64(&dir.join("ro"))? != 0,
        removable: read_trimmed(&dir.join("removable")).as_deref() == Some("1"),
        rotational: read_trimmed(&dir.join("queue/rotational")).as_deref() == Some("1"),
        model: read_trimmed(&device.join("model")),
        vendor: read_trimmed(&device.join("vendor")),
        serial,
        wwid: read_trimmed(&dir.join("wwid")).or_else(|| read_trimmed(&device.join("wwid"))),
        backing_file: read_trimmed(&dir.join("loop/backing_file")),
        partitions: read_partitions(&dir, name)?,
        holders: list_names(&dir.join("holders")),
        stacked: Vec::new(),
    })
    .map(|mut d| {
        let mut roots = d.holders.clone();
        roots.extend(d.partitions.iter().flat_map(|p| p.holders.iter().cloned()));
        d.stacked = stacked_devices(block, roots);
        d
    })
}

fn read_partitions(dir: &Path, disk: &str) -> Result<Vec<SysPartition>, DiskError> {
    let mut parts = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(parts);
    };
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let pdir = dir.join(&name);
        if !name.starts_with(disk) || !pdir.join("partition").is_file() {
            continue;
        }
        let (major, minor) = read_dev(&pdir)?;
        parts.push(SysPartition {
            major,
            minor,
            size_bytes: read_u64(&pdir.join("size"))?.saturating_mul(SECTOR),
            holders: list_names(&pdir.join("holders")),
            name,
        });
    }
    parts.sort_by(|a, b| (a.name.len(), &a.name).cmp(&(b.name.len(), &b.name)));
    Ok(parts)
}

/// Follows holders breadth-first; a holder whose `dev` is unreadable is still listed (with 0:0)
/// so that it counts as a holder.
fn stacked_devices(block: &Path, roots: Vec<String>) -> Vec<StackedDevice> {
    let mut seen: BTreeMap<String, StackedDevice> = BTreeMap::new();
    let mut level = roots;
    for _ in 0..MAX_HOLDER_DEPTH {
        let mut next = Vec::new();
        for name in level {
            if seen.contains_key(&name) {
                continue;
            }
            let dir = block.join(&name);
            let (major, minor) = read_dev(&dir).unwrap_or((0, 0));
            let holders = list_names(&dir.join("holders"));
            next.extend(holders.iter().cloned());
            seen.insert(
                name.clone(),
                StackedDevice {
                    name,
                    major,
                    minor,
                    holders,
                },
            );
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    seen.into_values().collect()
}

fn read_dev(dir: &Path) -> Result<(u32, u32), DiskError> {
    let path = dir.join("dev");
    let text = fs::read_to_string(&path).map_err(|e| DiskError::read(&path, e))?;
    let parsed = text
        .trim()
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    parsed.ok_or_else(|| DiskError::Parse {
        path,
        content: text.trim().to_string(),
    })
}

fn read_u64(path: &Path) -> Result<u64, DiskError> {
    let text = fs::read_to_string(path).map_err(|e| DiskError::read(path, e))?;
    text.trim().parse().map_err(|_| DiskError::Parse {
        path: path.to_path_buf(),
        content: text.trim().to_string(),
    })
}

/// An optional attribute: absent, unreadable or blank is `None`.
fn read_trimmed(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// SCSI unit serial number VPD page: 4-byte header (byte 3 = length), then ASCII.
fn read_vpd_serial(path: &Path) -> Option<String> {
    let bytes = fs::read(path).ok()?;
    let len = usize::from(*bytes.get(3)?);
    let body = bytes.get(4..(4 + len).min(bytes.len()))?;
    let s = String::from_utf8_lossy(body).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn list_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `/dev/disk/<kind>` links by the kernel name they point to (empty without udev).
pub fn read_links(dev: &Path, kind: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let dir = dev.join("disk").join(kind);
    let Ok(entries) = fs::read_dir(&dir) else {
        return map;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let Ok(target) = fs::read_link(e.path()) else {
            continue;
        };
        if let Some(t) = target.file_name() {
            let link = format!("/dev/disk/{kind}/{}", e.file_name().to_string_lossy());
            map.entry(t.to_string_lossy().into_owned())
                .or_default()
                .push(link);
        }
    }
    for links in map.values_mut() {
        links.sort();
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_names() {
        for n in ["sda", "sdab", "vdb", "xvda", "nvme0n1", "nvme12n3", "loop7"] {
            assert!(is_candidate_name(n), "{n}");
        }
        for n in [
            "sda1",
            "dm-0",
            "md127",
            "ram0",
            "zram0",
            "sr0",
            "nvme0c0n1",
            "nvme0n1p1",
            "loop",
            "loop0p1",
            "nvme0",
        ] {
            assert!(!is_candidate_name(n), "{n}");
        }
    }
}
