//! Discovery and verdicts on real loop devices and the real /sys of this machine (root only).

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

#[path = "disk_support/loopdev.rs"]
mod loopdev;

use agility_node_agent::disk::{
    DiscoveryOptions, EligibilityOptions, HostPaths, Reason, SystemProber, discover_with,
    object_name, status_of,
};
use loopdev::{Loop, unavailable};

#[tokio::test]
async fn loop_devices_blank_ext4_and_partitioned() {
    if let Some(why) = unavailable() {
        println!("skipped: {why} (attaches loop devices)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let blank = Loop::attach(dir.path().join("blank.img"), 64 << 20);
    let ext4 = Loop::attach(dir.path().join("ext4.img"), 64 << 20);
    ext4.mkfs_ext4();
    let parted = Loop::attach(dir.path().join("parted.img"), 64 << 20);
    parted.partition();

    let prober = SystemProber::default();
    let opts = DiscoveryOptions {
        eligibility: EligibilityOptions {
            min_size_bytes: 32 << 20,
            ..Default::default()
        },
        ..Default::default()
    };
    let disks = discover_with(&HostPaths::root(), &prober, &opts)
        .await
        .unwrap();
    let find = |l: &Loop| {
        disks
            .iter()
            .find(|d| d.kernel_name == l.kernel_name())
            .unwrap_or_else(|| panic!("{} not discovered", l.device))
    };

    let b = find(&blank);
    assert!(b.verdict.eligible, "{:?}", b.verdict);
    let st = status_of(b);
    assert_eq!((st.type_.as_str(), st.size.as_str()), ("Loop", "64Mi"));
    let name = object_name("host", b);
    assert!(
        name.starts_with("host-loop-") && name.contains("blank.img"),
        "{name}"
    );

    let e = find(&ext4);
    assert_eq!(e.verdict.reasons, [Reason::HasSignature], "{:?}", e.verdict);
    assert_eq!(status_of(e).signatures, ["ext4"]);

    let p = find(&parted);
    assert_eq!(
        p.verdict.reasons,
        [Reason::HasPartitions, Reason::HasSignature],
        "{:?}",
        p.verdict
    );
    let st = status_of(p);
    assert_eq!(st.partitions.len(), 1, "{st:?}");
    assert_eq!(st.signatures, ["dos"]);

    // The machine's own root disk, if it is one we list, is the OS disk.
    if let Some(root) = disks
        .iter()
        .find(|d| d.mount_points.iter().any(|m| m == "/"))
    {
        assert!(root.verdict.reasons.contains(&Reason::OsDisk), "{root:?}");
    }
}
