//! Discovery on fake /sys trees with recorded probe outputs.

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

use std::collections::BTreeSet;
use std::path::PathBuf;

use agility_node_agent::disk::fake_sys::{FakeDisk, FakeHost};
use agility_node_agent::disk::lvm::Pv;
use agility_node_agent::disk::probe::parse_wipefs_json;
use agility_node_agent::disk::{
    DiscoveryOptions, EligibilityOptions, FakeProber, Reason, discover, discover_with, object_name,
    status_of,
};

const GIB_SECTORS: u64 = (1 << 30) / 512;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/disk/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn sigs(name: &str) -> Vec<agility_node_agent::disk::Signature> {
    parse_wipefs_json(&fixture(name)).unwrap()
}

struct World {
    _dir: tempfile::TempDir,
    host: FakeHost,
    prober: FakeProber,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let host = FakeHost::new(dir.path()).unwrap();
        World {
            _dir: dir,
            host,
            prober: FakeProber::new(),
        }
    }
    fn dev(&self, name: &str) -> PathBuf {
        self.host.paths().device_node(name)
    }
}

fn sata(name: &str, minor: u32, serial: &str) -> FakeDisk {
    FakeDisk {
        name: name.into(),
        dev: (8, minor),
        sectors: 100 * GIB_SECTORS,
        rotational: true,
        model: Some("ST1000DM003".into()),
        vendor: Some("ATA".into()),
        serial: Some(serial.into()),
        wwid: Some(format!("naa.5000c500a1b2c3{minor:02x}")),
        ..Default::default()
    }
}

fn reasons(d: &agility_node_agent::disk::DiscoveredDisk) -> BTreeSet<Reason> {
    d.verdict.reasons.iter().copied().collect()
}

#[tokio::test]
async fn verdicts_on_a_mixed_host() {
    let mut w = World::new();
    // sda: OS disk, partitioned, / on sda2 and /boot on sda1.
    let mut sda = sata("sda", 0, "OS1");
    sda.partitions = vec![
        ("sda1".into(), (8, 1), GIB_SECTORS, vec![]),
        ("sda2".into(), (8, 2), 90 * GIB_SECTORS, vec![]),
    ];
    w.host.add_disk(&sda).unwrap();
    w.host.mount((8, 2), "/dev/sda2", "/").unwrap();
    w.host.mount((8, 1), "/dev/sda1", "/boot").unwrap();
    // sdb: blank, eligible.
    w.host.add_disk(&sata("sdb", 16, "BLANK")).unwrap();
    // sdc: ext4, mounted at /data.
    w.host.add_disk(&sata("sdc", 32, "EXT4")).unwrap();
    w.host.mount((8, 32), "/dev/sdc", "/data").unwrap();
    w.prober
        .signatures
        .insert(w.dev("sdc"), Ok(sigs("wipefs-ext4.json")));
    // sdd: ext4, not mounted.
    w.host.add_disk(&sata("sdd", 48, "EXT4B")).unwrap();
    w.prober
        .signatures
        .insert(w.dev("sdd"), Ok(sigs("wipefs-ext4.json")));
    // sde: probe fails.
    w.host.add_disk(&sata("sde", 64, "BROKEN")).unwrap();
    w.prober.signatures.insert(
        w.dev("sde"),
        Err("wipefs: error: /dev/sde: probing initialization failed".into()),
    );
    // sdf: read-only, too small.
    let mut sdf = sata("sdf", 80, "TINY");
    sdf.ro = true;
    sdf.sectors = 1024;
    w.host.add_disk(&sdf).unwrap();
    // sdg: PV of another VG, held by dm-0 which is mounted at /srv.
    let mut sdg = sata("sdg", 96, "PV");
    sdg.holders = vec!["dm-0".into()];
    w.host.add_disk(&sdg).unwrap();
    w.host.add_stacked("dm-0", (254, 0), &[]).unwrap();
    w.host
        .mount((254, 0), "/dev/mapper/data-srv", "/srv")
        .unwrap();
    w.prober
        .signatures
        .insert(w.dev("sdg"), Ok(sigs("wipefs-lvm2-member.json")));
    w.prober.pvs = Ok(vec![Pv {
        name: "/dev/sdg".into(),
        vg_name: Some("data".into()),
        ..Default::default()
    }]);
    // Not disks: partitions, dm, ram, zram, unattached loops.
    w.host
        .add_disk(&FakeDisk {
            name: "loop0".into(),
            dev: (7, 0),
            ..Default::default()
        })
        .unwrap();
    w.host
        .add_disk(&FakeDisk {
            name: "zram0".into(),
            dev: (252, 0),
            sectors: 1000,
            ..Default::default()
        })
        .unwrap();
    w.host.add_stacked("md127", (9, 127), &[]).unwrap();

    let disks = discover(&w.host.paths(), &w.prober, 1 << 30).await.unwrap();
    let names: Vec<&str> = disks.iter().map(|d| d.kernel_name.as_str()).collect();
    assert_eq!(names, ["sda", "sdb", "sdc", "sdd", "sde", "sdf", "sdg"]);
    let by = |n: &str| disks.iter().find(|d| d.kernel_name == n).unwrap();

    let sda = by("sda");
    assert!(sda.os_disk);
    assert_eq!(sda.mount_points, ["/", "/boot"]);
    assert_eq!(
        reasons(sda),
        [Reason::Mounted, Reason::HasPartitions, Reason::OsDisk].into()
    );
    let st = status_of(sda);
    assert_eq!(st.partitions.len(), 2);
    assert_eq!(st.partitions[1].mount_points, ["/"]);

    let sdb = by("sdb");
    assert!(sdb.verdict.eligible, "{:?}", sdb.verdict);
    let st = status_of(sdb);
    assert_eq!(st.type_, "HDD");
    assert_eq!(st.size, "100Gi");
    assert_eq!(st.wwn.as_deref(), Some("0x5000c500a1b2c310"));
    assert!(st.ineligible_reasons.is_empty());
    assert_eq!(object_name("w1", sdb), "w1-wwn-0x5000c500a1b2c310");

    assert_eq!(
        reasons(by("sdc")),
        [Reason::Mounted, Reason::HasSignature].into()
    );
    assert_eq!(reasons(by("sdd")), [Reason::HasSignature].into());
    assert_eq!(status_of(by("sdd")).signatures, ["ext4"]);
    let sde = by("sde");
    assert_eq!(reasons(sde), [Reason::ProbeFailed].into());
    assert!(
        sde.verdict
            .message
            .as_deref()
            .unwrap()
            .contains("probing initialization failed")
    );
    assert_eq!(
        reasons(by("sdf")),
        [Reason::ReadOnly, Reason::TooSmall].into()
    );
    let sdg = by("sdg");
    assert_eq!(sdg.mount_points, ["/srv"]);
    assert_eq!(sdg.volume_group.as_deref(), Some("data"));
    assert_eq!(
        reasons(sdg),
        [
            Reason::Mounted,
            Reason::HasSignature,
            Reason::HasHolders,
            Reason::InOtherVolumeGroup
        ]
        .into()
    );
    let st = status_of(sdg);
    assert_eq!(
        st.ineligible_reasons,
        [
            "Mounted",
            "HasSignature",
            "InOtherVolumeGroup",
            "HasHolders"
        ]
    );
}

#[tokio::test]
async fn os_disk_through_a_holder_of_a_partition() {
    let mut w = World::new();
    let mut nvme = FakeDisk {
        name: "nvme0n1".into(),
        dev: (259, 0),
        sectors: 500 * GIB_SECTORS,
        model: Some("Samsung SSD 980".into()),
        serial: Some("S64ANS0T".into()),
        wwid: Some("eui.002538b111b2c3d4".into()),
        ..Default::default()
    };
    nvme.partitions = vec![(
        "nvme0n1p1".into(),
        (259, 1),
        499 * GIB_SECTORS,
        vec!["dm-0".into()],
    )];
    w.host.add_disk(&nvme).unwrap();
    w.host.add_stacked("dm-0", (254, 0), &["dm-1"]).unwrap();
    w.host.add_stacked("dm-1", (254, 1), &[]).unwrap();
    w.host.mount((254, 1), "/dev/mapper/root", "/").unwrap();
    let disks = discover(&w.host.paths(), &w.prober, 1 << 30).await.unwrap();
    let d = &disks[0];
    assert!(d.os_disk);
    assert_eq!(status_of(d).type_, "NVMe");
    assert_eq!(d.wwn.as_deref(), Some("eui.002538b111b2c3d4"));
    assert_eq!(d.partitions[0].mount_points, ["/"]);
    assert!(reasons(d).contains(&Reason::OsDisk));
    assert_eq!(object_name("n", d), "n-wwn-eui.002538b111b2c3d4");
}

#[tokio::test]
async fn loops_with_backing_files_and_pool_members() {
    let mut w = World::new();
    w.host
        .add_disk(&FakeDisk {
            name: "loop3".into(),
            dev: (7, 3),
            sectors: 2 * GIB_SECTORS,
            backing_file: Some("/var/lib/agility/disk-a.img".into()),
            holders: vec!["dm-2".into()],
            ..Default::default()
        })
        .unwrap();
    w.host.add_stacked("dm-2", (254, 2), &[]).unwrap();
    w.prober
        .signatures
        .insert(w.dev("loop3"), Ok(sigs("wipefs-lvm2-member.json")));
    w.prober.pvs = Ok(vec![Pv {
        name: "/dev/loop3".into(),
        vg_name: Some("agility-fast".into()),
        ..Default::default()
    }]);
    let mut opts = DiscoveryOptions {
        eligibility: EligibilityOptions::default(),
        concurrency: 2,
    };
    // Not the pool's VG: refused.
    let d = &discover_with(&w.host.paths(), &w.prober, &opts)
        .await
        .unwrap()[0];
    assert!(reasons(d).contains(&Reason::InOtherVolumeGroup));
    assert_eq!(status_of(d).type_, "Loop");
    assert!(object_name("n", d).starts_with("n-loop-var-lib-agility-disk-a.img-"));
    // The pool's own VG: its label and dm holders are expected.
    opts.eligibility
        .pool_volume_groups
        .insert("agility-fast".into());
    let d = &discover_with(&w.host.paths(), &w.prober, &opts)
        .await
        .unwrap()[0];
    assert!(d.verdict.eligible, "{:?}", d.verdict);
    // A failing `lvm pvs` is a probe failure on every disk.
    w.prober.pvs = Err("lvm: command not found".into());
    let d = &discover_with(&w.host.paths(), &w.prober, &opts)
        .await
        .unwrap()[0];
    assert!(!d.verdict.eligible);
    assert!(reasons(d).contains(&Reason::ProbeFailed));
    assert!(
        d.verdict
            .message
            .as_deref()
            .unwrap()
            .contains("command not found")
    );
    let _ = &mut w;
}

#[tokio::test]
async fn links_removable_and_missing_sysfs() {
    let w = World::new();
    w.host
        .add_disk(&FakeDisk {
            name: "sdh".into(),
            dev: (8, 112),
            sectors: 16 * GIB_SECTORS,
            removable: true,
            serial: Some("USB1".into()),
            model: Some("Flash Disk".into()),
            ..Default::default()
        })
        .unwrap();
    w.host
        .link("by-id", "usb-Flash_Disk_USB1-0:0", "sdh")
        .unwrap();
    w.host
        .link(
            "by-path",
            "pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0",
            "sdh",
        )
        .unwrap();
    let d = &discover(&w.host.paths(), &w.prober, 1 << 30).await.unwrap()[0];
    assert_eq!(reasons(d), [Reason::Removable].into());
    let st = status_of(d);
    assert_eq!(st.by_id, ["/dev/disk/by-id/usb-Flash_Disk_USB1-0:0"]);
    assert_eq!(st.by_path.len(), 1);
    assert_eq!(st.type_, "SSD");

    let missing = agility_node_agent::disk::HostPaths::under("/nonexistent/host");
    assert!(discover(&missing, &w.prober, 0).await.is_err());
}
