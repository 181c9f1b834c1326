//! The pure planner: which commands turn this node's matching disks into the pool's volume group
//! and thin pool. Idempotent: a node that already has it all plans nothing. It only ever names
//! the pool's own volume group, and never plans anything on a PV of another one.

use std::collections::BTreeSet;

use crate::crd::disk::NodeDiskStatus;

use super::report::LvmReport;
use crate::disk::eligibility::Reason;

/// What the pool wants on this node.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolTarget<'a> {
    pub volume_group: &'a str,
    pub thin_pool: &'a str,
    pub thin_pool_percent: u32,
    /// NodeDisk names whose existing data may be destroyed (`spec.destroyExistingDataOn`).
    pub destroy_existing_data_on: &'a [String],
}

/// A disk of this node that matches the pool's device filter.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate<'a> {
    /// The NodeDisk object name.
    pub name: &'a str,
    pub status: &'a NodeDiskStatus,
}

/// One command of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// DANGER: `wipefs -a` — only for disks listed in `destroyExistingDataOn`.
    Wipe {
        disk: String,
        device: String,
    },
    CreatePv {
        disk: String,
        device: String,
    },
    CreateVg {
        vg: String,
        devices: Vec<String>,
    },
    ExtendVg {
        vg: String,
        devices: Vec<String>,
    },
    CreateThinPool {
        vg: String,
        thin_pool: String,
        percent: u32,
    },
    ExtendThinPool {
        vg: String,
        thin_pool: String,
        percent: u32,
    },
}

/// A matching disk that will not join, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub disk: String,
    pub reasons: Vec<String>,
    pub message: String,
}

/// The plan for one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub refused: Vec<Refusal>,
    /// NodeDisk names in the volume group once the plan has run.
    pub members: Vec<String>,
}

enum Join {
    Member,
    /// An orphan PV (a crash between pvcreate and vgcreate/vgextend): no pvcreate again.
    OrphanPv,
    New {
        wipe: bool,
    },
}

/// Plans the steps for `target` over `candidates` (disks sorted by name for a stable order).
pub fn plan(target: &PoolTarget<'_>, candidates: &[Candidate<'_>], report: &LvmReport) -> Plan {
    let vg = target.volume_group;
    let mut out = Plan::default();
    let mut joining: Vec<String> = Vec::new();
    let mut sorted: Vec<&Candidate<'_>> = candidates.iter().collect();
    sorted.sort_by_key(|c| c.name);

    for c in sorted {
        match classify(target, c, report) {
            Ok(Join::Member) => out.members.push(c.name.to_string()),
            Ok(Join::OrphanPv) => {
                out.members.push(c.name.to_string());
                joining.push(c.status.path.clone());
            }
            Ok(Join::New { wipe }) => {
                let (disk, device) = (c.name.to_string(), c.status.path.clone());
                if wipe {
                    out.steps.push(Step::Wipe {
                        disk: disk.clone(),
                        device: device.clone(),
                    });
                }
                out.steps.push(Step::CreatePv {
                    disk: disk.clone(),
                    device: device.clone(),
                });
                out.members.push(disk);
                joining.push(device);
            }
            Err(r) => out.refused.push(r),
        }
    }

    let existing = report.vg(vg);
    let vg_will_exist = existing.is_some() || !joining.is_empty();
    match (existing, joining.is_empty()) {
        (None, false) => out.steps.push(Step::CreateVg {
            vg: vg.to_string(),
            devices: joining.clone(),
        }),
        (Some(_), false) => out.steps.push(Step::ExtendVg {
            vg: vg.to_string(),
            devices: joining.clone(),
        }),
        _ => {}
    }
    if !vg_will_exist {
        return out;
    }
    let (vg_s, thin_pool, percent) = (
        vg.to_string(),
        target.thin_pool.to_string(),
        target.thin_pool_percent,
    );
    match report.lv(vg, target.thin_pool) {
        None => out.steps.push(Step::CreateThinPool {
            vg: vg_s,
            thin_pool,
            percent,
        }),
        Some(lv) => {
            let below_target = existing.is_some_and(|v| {
                let want = v.size / 100 * u64::from(target.thin_pool_percent);
                // Slack for lvm's extent rounding and the pool metadata it takes from the share.
                let slack = (v.extent_size * 2).max(v.size / 100);
                lv.size + slack < want
            });
            if !joining.is_empty() || below_target {
                out.steps.push(Step::ExtendThinPool {
                    vg: vg_s,
                    thin_pool,
                    percent,
                });
            }
        }
    }
    out
}

fn classify(
    target: &PoolTarget<'_>,
    c: &Candidate<'_>,
    report: &LvmReport,
) -> Result<Join, Refusal> {
    let s = c.status;
    let refuse = |reasons: Vec<String>, message: String| Refusal {
        disk: c.name.to_string(),
        reasons,
        message,
    };
    // LVM's own view wins over the published status (which may be older).
    let pv = report.pv(&s.path);
    let vg_of = pv
        .and_then(|p| p.vg_name.clone())
        .or(s.volume_group.clone());
    if let Some(vg) = vg_of {
        return if vg == target.volume_group {
            Ok(Join::Member)
        } else {
            Err(refuse(
                vec![Reason::InOtherVolumeGroup.as_str().into()],
                format!("physical volume of volume group {vg}: never touched"),
            ))
        };
    }
    if !s.present {
        return Err(refuse(vec![], "not present on the node".into()));
    }
    let reasons: BTreeSet<&str> = s.ineligible_reasons.iter().map(String::as_str).collect();
    if pv.is_some() && reasons.iter().all(|r| *r == Reason::HasSignature.as_str()) {
        let only_label = s.signatures.iter().all(|k| k == "LVM2_member");
        if only_label {
            return Ok(Join::OrphanPv);
        }
    }
    if s.eligible && reasons.is_empty() {
        return Ok(Join::New { wipe: false });
    }
    let listed = target.destroy_existing_data_on.iter().any(|n| n == c.name);
    let wipe_clears = !reasons.is_empty()
        && reasons
            .iter()
            .all(|r| Reason::parse(r).is_some_and(Reason::wipe_clears));
    let reasons_vec: Vec<String> = s.ineligible_reasons.clone();
    match (listed, wipe_clears) {
        (true, true) => Ok(Join::New { wipe: true }),
        (true, false) => Err(refuse(
            reasons_vec,
            format!(
                "listed in destroyExistingDataOn, but wiping does not make it usable: {}",
                s.message.clone().unwrap_or_default()
            ),
        )),
        (false, true) => Err(refuse(
            reasons_vec,
            format!(
                "has existing data ({}); list it in destroyExistingDataOn to wipe it",
                s.message.clone().unwrap_or_default()
            ),
        )),
        (false, false) => Err(refuse(reasons_vec, s.message.clone().unwrap_or_default())),
    }
}

impl Step {
    /// The program and arguments of the step (`lvm` subcommands go through `lvm`).
    pub fn command(&self) -> (&'static str, Vec<String>) {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match self {
            Step::Wipe { device, .. } => ("wipefs", v(&["-a", device])),
            Step::CreatePv { device, .. } => ("pvcreate", v(&[device])),
            Step::CreateVg { vg, devices } => {
                let mut a = vec![vg.clone()];
                a.extend(devices.iter().cloned());
                ("vgcreate", a)
            }
            Step::ExtendVg { vg, devices } => {
                let mut a = vec![vg.clone()];
                a.extend(devices.iter().cloned());
                ("vgextend", a)
            }
            Step::CreateThinPool {
                vg,
                thin_pool,
                percent,
            } => (
                "lvcreate",
                v(&[
                    "--yes",
                    "--type",
                    "thin-pool",
                    "-l",
                    &format!("{percent}%VG"),
                    "-n",
                    thin_pool,
                    vg,
                ]),
            ),
            Step::ExtendThinPool {
                vg,
                thin_pool,
                percent,
            } => (
                "lvextend",
                v(&["-l", &format!("{percent}%VG"), &format!("{vg}/{thin_pool}")]),
            ),
        }
    }
}
