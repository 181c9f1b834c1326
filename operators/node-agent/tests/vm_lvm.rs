//! LVM thin pools on loop devices through the planner and executor (the VM kernel has
//! device-mapper; this machine's does not).

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

#[path = "disk_support/loopdev.rs"]
mod loopdev;

use std::collections::BTreeSet;

use agility_node_agent::crd::disk::NodeDiskStatus;
use agility_node_agent::disk::lvm::{
    Candidate, PoolTarget, Step, execute, node_status, plan, read_report,
};
use agility_node_agent::disk::{
    DiscoveryOptions, EligibilityOptions, HostPaths, LvmCli, ProcessRunner, SystemProber,
    discover_with, object_name, status_of,
};
use loopdev::{Loop, run};

const VG: &str = "agility-vmtest";

fn in_vm() -> bool {
    if std::env::var_os("AGILITY_VM").is_none() {
        println!("skipped: needs the VM kernel (device-mapper thin pools); run make vm-test");
        return false;
    }
    true
}

async fn candidates(loops: &[&Loop]) -> Vec<(String, NodeDiskStatus)> {
    let prober = SystemProber {
        smart: false,
        ..Default::default()
    };
    let opts = DiscoveryOptions {
        eligibility: EligibilityOptions {
            min_size_bytes: 32 << 20,
            pool_volume_groups: BTreeSet::from([VG.to_string()]),
        },
        ..Default::default()
    };
    let disks = discover_with(&HostPaths::root(), &prober, &opts)
        .await
        .unwrap();
    let ours: BTreeSet<String> = loops.iter().map(|l| l.kernel_name()).collect();
    disks
        .iter()
        .filter(|d| ours.contains(&d.kernel_name))
        .map(|d| (object_name("vm", d), status_of(d)))
        .collect()
}

/// Writes `mib` MiB of non-zero data (thin pools skip zero blocks only when told to; any data
/// allocates chunks).
fn write_mib(device: &str, mib: usize) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(device)
        .unwrap();
    let block = vec![0xa5u8; 1 << 20];
    for _ in 0..mib {
        f.write_all(&block).unwrap();
    }
    f.sync_all().unwrap();
}

fn as_candidates(c: &[(String, NodeDiskStatus)]) -> Vec<Candidate<'_>> {
    c.iter()
        .map(|(name, status)| Candidate { name, status })
        .collect()
}

#[tokio::test]
async fn thin_pool_on_loop_devices() {
    if !in_vm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = Loop::attach(dir.path().join("a.img"), 64 << 20);
    let b = Loop::attach(dir.path().join("b.img"), 64 << 20);
    let c = Loop::attach(dir.path().join("c.img"), 64 << 20);
    c.mkfs_ext4();
    let lvm = LvmCli::default();
    let runner = ProcessRunner;

    let cands = candidates(&[&a, &b, &c]).await;
    assert_eq!(cands.len(), 3, "{cands:?}");
    let c_name = cands
        .iter()
        .find(|(_, s)| s.path == c.device)
        .map(|(n, _)| n.clone())
        .unwrap();
    let no_destroy: Vec<String> = vec![];
    let target = |destroy| PoolTarget {
        volume_group: VG,
        thin_pool: "thin",
        thin_pool_percent: 80,
        destroy_existing_data_on: destroy,
    };

    // 1. Build: the two blank disks join, the ext4 one is refused.
    let report = read_report(&runner, &lvm).await.unwrap();
    let p = plan(&target(&no_destroy), &as_candidates(&cands), &report);
    println!("plan: {:?}", p.steps);
    assert_eq!(p.members.len(), 2);
    assert_eq!(p.refused.len(), 1);
    assert_eq!(p.refused[0].disk, c_name);
    assert!(!p.steps.iter().any(|s| matches!(s, Step::Wipe { .. })));
    execute(&p.steps, &runner, &lvm).await.unwrap();

    // 2. Two thin volumes; write into one.
    for (name, size) in [("vol1", "64m"), ("vol2", "128m")] {
        run(
            "lvm",
            &[
                "lvcreate",
                "-q",
                "--yes",
                "-V",
                size,
                "--thin",
                "-n",
                name,
                &format!("{VG}/thin"),
            ],
        );
    }
    write_mib(&format!("/dev/mapper/{}-vol1", VG.replace('-', "--")), 8);
    let report = read_report(&runner, &lvm).await.unwrap();
    println!(
        "lvs: {}",
        run(
            "lvm",
            &[
                "lvs",
                "--reportformat",
                "json",
                "--units",
                "b",
                "--nosuffix",
                "-o",
                agility_node_agent::disk::lvm::report::LV_FIELDS
            ]
        )
    );
    println!(
        "vgs: {}",
        run(
            "lvm",
            &[
                "vgs",
                "--reportformat",
                "json",
                "--units",
                "b",
                "--nosuffix",
                "-o",
                agility_node_agent::disk::lvm::report::VG_FIELDS
            ]
        )
    );
    let st = node_status("vm", VG, "thin", 3.0, &report, p.members.clone());
    println!("status: {st:?}");
    assert_eq!(st.phase, "Ready");
    assert_eq!(st.allocated_bytes, 192 << 20);
    assert!(st.size_bytes >= 120 << 20, "{st:?}");
    assert!(st.thin_pool_bytes > 0 && st.thin_pool_bytes <= st.size_bytes * 80 / 100 + (4 << 20));
    // data_percent has two decimals: 8 MiB written reads back as a little less.
    assert!(
        st.used_bytes >= 7 << 20 && st.used_bytes < 16 << 20,
        "{st:?}"
    );
    assert_eq!(st.virtual_capacity_bytes, st.thin_pool_bytes * 3);

    // 3. Again: nothing to do.
    let cands = candidates(&[&a, &b, &c]).await;
    let p = plan(&target(&no_destroy), &as_candidates(&cands), &report);
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    assert_eq!(p.members.len(), 2);

    // 4. Opted in: the ext4 disk is wiped and joins.
    let destroy = vec![c_name.clone()];
    let p = plan(&target(&destroy), &as_candidates(&cands), &report);
    println!("plan: {:?}", p.steps);
    assert!(matches!(p.steps.first(), Some(Step::Wipe { device, .. }) if *device == c.device));
    execute(&p.steps, &runner, &lvm).await.unwrap();
    let report = read_report(&runner, &lvm).await.unwrap();
    assert_eq!(report.vg(VG).unwrap().pv_count, 3);
    let st = node_status("vm", VG, "thin", 1.0, &report, p.members.clone());
    assert_eq!(st.disks.len(), 3);
    let cands = candidates(&[&a, &b, &c]).await;
    assert!(
        plan(&target(&destroy), &as_candidates(&cands), &report)
            .steps
            .is_empty()
    );

    run("lvm", &["vgremove", "-q", "-f", VG]);
    for l in [&a, &b, &c] {
        let _ = std::process::Command::new("lvm")
            .args(["pvremove", "-q", &l.device])
            .output();
    }
}
