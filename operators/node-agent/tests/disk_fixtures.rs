//! Parsers on recorded tool outputs (tests/fixtures/disk/README.md says which are recorded).

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

use agility_node_agent::disk::lvm::{LvmReport, node_status, parse_lvs, parse_pvs, parse_vgs};
use agility_node_agent::disk::probe::{parse_blkid_export, parse_smartctl_json, parse_wipefs_json};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/disk/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn wipefs_outputs() {
    assert!(
        parse_wipefs_json(&fixture("wipefs-blank.json"))
            .unwrap()
            .is_empty()
    );
    assert!(parse_wipefs_json("").unwrap().is_empty());
    let ext4 = parse_wipefs_json(&fixture("wipefs-ext4.json")).unwrap();
    assert_eq!(ext4.len(), 1);
    assert_eq!(ext4[0].kind, "ext4");
    assert_eq!(ext4[0].offset.as_deref(), Some("0x438"));
    assert!(ext4[0].uuid.is_some());
    assert_eq!(
        parse_wipefs_json(&fixture("wipefs-dos.json")).unwrap()[0].kind,
        "dos"
    );
    assert_eq!(
        parse_wipefs_json(&fixture("wipefs-lvm2-member.json")).unwrap()[0].kind,
        "LVM2_member"
    );
    assert!(parse_wipefs_json("{not json").is_err());
}

#[test]
fn blkid_outputs() {
    assert_eq!(
        parse_blkid_export(&fixture("blkid-ext4.txt"))[0].kind,
        "ext4"
    );
    assert_eq!(parse_blkid_export(&fixture("blkid-dos.txt"))[0].kind, "dos");
    assert!(parse_blkid_export("").is_empty());
}

#[test]
fn smartctl_outputs() {
    assert_eq!(
        parse_smartctl_json(&fixture("smartctl-sata-passed.json"))
            .unwrap()
            .as_deref(),
        Some("PASSED")
    );
    assert_eq!(
        parse_smartctl_json(&fixture("smartctl-nvme-failed.json"))
            .unwrap()
            .as_deref(),
        Some("FAILED")
    );
    assert_eq!(
        parse_smartctl_json(&fixture("smartctl-open-failed.json")).unwrap(),
        None
    );
}

#[test]
fn lvm_reports() {
    let pvs = parse_pvs(&fixture("pvs-host.json")).unwrap();
    assert_eq!(pvs.len(), 2);
    assert_eq!(pvs[0].vg_name.as_deref(), Some("agility-test"));
    assert_eq!(pvs[0].size, 62_914_560);
    assert_eq!(pvs[1].vg_name, None);
    let vgs = parse_vgs(&fixture("vgs-host.json")).unwrap();
    assert_eq!(vgs[0].extent_size, 4 << 20);
    assert_eq!(vgs[0].extent_count, 15);
    let lvs = parse_lvs(&fixture("lvs-thin.json")).unwrap();
    assert_eq!(lvs.len(), 4);
    assert!(lvs[0].is_thin_pool());
    assert_eq!(lvs[0].data_percent, Some(25.0));
    assert_eq!(lvs[1].pool_lv.as_deref(), Some("thin"));
    assert_eq!(lvs[3].data_percent, None);
    assert!(parse_lvs("{\"report\": 3}").is_err());
    assert!(parse_lvs("").unwrap().is_empty());
}

#[test]
fn pool_status_numbers() {
    let report = LvmReport {
        pvs: parse_pvs(&fixture("pvs-pool.json")).unwrap(),
        vgs: parse_vgs(&fixture("vgs-pool.json")).unwrap(),
        lvs: parse_lvs(&fixture("lvs-thin.json")).unwrap(),
    };
    let st = node_status(
        "w1",
        "agility-pool",
        "thin",
        2.0,
        &report,
        vec!["a".into(), "b".into()],
    );
    assert_eq!(st.phase, "Ready");
    assert_eq!(st.size_bytes, 125_829_120);
    assert_eq!(st.thin_pool_bytes, 113_246_208);
    assert_eq!(st.used_bytes, 113_246_208 / 4);
    assert_eq!(st.allocated_bytes, (64 + 128) << 20);
    assert_eq!(st.virtual_capacity_bytes, 2 * 113_246_208);
    // Recorded in the VM: 96 MiB thin pool, 8 MiB written into a 64 MiB volume, a 128 MiB one.
    let vm = LvmReport {
        lvs: parse_lvs(&fixture("lvs-vm.json")).unwrap(),
        vgs: parse_vgs(&fixture("vgs-vm.json")).unwrap(),
        pvs: vec![],
    };
    let st = node_status("vm", "agility-vmtest", "thin", 1.0, &vm, vec![]);
    assert_eq!(st.thin_pool_bytes, 96 << 20);
    assert_eq!(st.allocated_bytes, 192 << 20);
    assert_eq!(st.used_bytes, (100_663_296f64 * 0.0833).round() as u64);
    let none = node_status("w1", "absent", "thin", 1.0, &report, vec![]);
    assert_eq!(none.phase, "Pending");
    let no_thin = node_status("w1", "system", "thin", 1.0, &report, vec![]);
    assert_eq!(no_thin.phase, "Pending");
    assert_eq!(no_thin.size_bytes, 32_208_060_416);
}
