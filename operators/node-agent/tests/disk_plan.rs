//! The pool planner and executor against recorded LVM reports and a fake command runner.

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

use std::sync::Mutex;
use std::time::Duration;

use agility_node_agent::crd::disk::NodeDiskStatus;
use agility_node_agent::disk::lvm::{
    Candidate, Lv, LvmReport, PoolTarget, Pv, Step, Vg, execute, plan, read_report,
};
use agility_node_agent::disk::{CommandOutput, CommandRunner, DiskError, LvmCli};
use futures::future::BoxFuture;

fn blank(path: &str) -> NodeDiskStatus {
    NodeDiskStatus {
        present: true,
        path: path.into(),
        size_bytes: 10 << 30,
        eligible: true,
        ..Default::default()
    }
}

fn with_data(path: &str, reasons: &[&str], sigs: &[&str]) -> NodeDiskStatus {
    NodeDiskStatus {
        eligible: false,
        ineligible_reasons: reasons.iter().map(|s| s.to_string()).collect(),
        signatures: sigs.iter().map(|s| s.to_string()).collect(),
        message: Some(format!("signatures {}", sigs.join(", "))),
        ..blank(path)
    }
}

fn target(destroy: &[String]) -> PoolTarget<'_> {
    PoolTarget {
        volume_group: "agility-fast",
        thin_pool: "thin",
        thin_pool_percent: 90,
        destroy_existing_data_on: destroy,
    }
}

fn vg(size: u64) -> Vg {
    Vg {
        name: "agility-fast".into(),
        size,
        extent_size: 4 << 20,
        ..Default::default()
    }
}

fn thin(size: u64) -> Lv {
    Lv {
        name: "thin".into(),
        vg_name: "agility-fast".into(),
        size,
        segtype: "thin-pool".into(),
        ..Default::default()
    }
}

fn pv(dev: &str, vg: Option<&str>) -> Pv {
    Pv {
        name: dev.into(),
        vg_name: vg.map(String::from),
        ..Default::default()
    }
}

#[test]
fn fresh_node_builds_vg_and_thin_pool_from_eligible_disks_only() {
    let (a, b, c) = (
        blank("/dev/sdb"),
        with_data("/dev/sdc", &["HasSignature"], &["ext4"]),
        blank("/dev/sdd"),
    );
    let cands = [
        Candidate {
            name: "n-b",
            status: &a,
        },
        Candidate {
            name: "n-c",
            status: &b,
        },
        Candidate {
            name: "n-d",
            status: &c,
        },
    ];
    let p = plan(&target(&[]), &cands, &LvmReport::default());
    assert_eq!(
        p.steps,
        vec![
            Step::CreatePv {
                disk: "n-b".into(),
                device: "/dev/sdb".into()
            },
            Step::CreatePv {
                disk: "n-d".into(),
                device: "/dev/sdd".into()
            },
            Step::CreateVg {
                vg: "agility-fast".into(),
                devices: vec!["/dev/sdb".into(), "/dev/sdd".into()]
            },
            Step::CreateThinPool {
                vg: "agility-fast".into(),
                thin_pool: "thin".into(),
                percent: 90
            },
        ]
    );
    assert_eq!(p.members, ["n-b", "n-d"]);
    assert_eq!(p.refused.len(), 1);
    assert!(
        p.refused[0].message.contains("destroyExistingDataOn"),
        "{:?}",
        p.refused
    );
    assert_eq!(
        p.steps[3].command(),
        (
            "lvcreate",
            [
                "--yes",
                "--type",
                "thin-pool",
                "-l",
                "90%VG",
                "-n",
                "thin",
                "agility-fast"
            ]
            .map(String::from)
            .to_vec()
        )
    );
}

#[test]
fn destroy_opt_in_wipes_only_what_a_wipe_fixes() {
    let ext4 = with_data("/dev/sdc", &["HasSignature"], &["ext4"]);
    let parts = with_data("/dev/sde", &["HasPartitions", "HasSignature"], &["gpt"]);
    let mounted = with_data("/dev/sdf", &["Mounted", "HasSignature"], &["ext4"]);
    let os = with_data(
        "/dev/sda",
        &["Mounted", "HasPartitions", "OsDisk"],
        &["gpt"],
    );
    let other_vg = NodeDiskStatus {
        volume_group: Some("data".into()),
        ..with_data(
            "/dev/sdg",
            &["HasSignature", "InOtherVolumeGroup"],
            &["LVM2_member"],
        )
    };
    let destroy: Vec<String> = ["n-c", "n-e", "n-f", "n-a", "n-g"]
        .map(String::from)
        .to_vec();
    let cands = [
        Candidate {
            name: "n-c",
            status: &ext4,
        },
        Candidate {
            name: "n-e",
            status: &parts,
        },
        Candidate {
            name: "n-f",
            status: &mounted,
        },
        Candidate {
            name: "n-a",
            status: &os,
        },
        Candidate {
            name: "n-g",
            status: &other_vg,
        },
    ];
    let p = plan(&target(&destroy), &cands, &LvmReport::default());
    let wiped: Vec<&str> = p
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Wipe { device, .. } => Some(device.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(wiped, ["/dev/sdc", "/dev/sde"]);
    assert_eq!(p.members, ["n-c", "n-e"]);
    let refused: Vec<&str> = p.refused.iter().map(|r| r.disk.as_str()).collect();
    assert_eq!(refused, ["n-a", "n-f", "n-g"]);
    // Never a command naming another VG or its PV.
    for s in &p.steps {
        let (_, args) = s.command();
        assert!(
            !args.iter().any(|a| a == "data" || a == "/dev/sdg"),
            "{s:?}"
        );
    }
}

#[test]
fn built_node_plans_nothing_and_a_new_disk_extends() {
    let (a, b) = (blank("/dev/sdb"), blank("/dev/sdd"));
    let member = NodeDiskStatus {
        volume_group: Some("agility-fast".into()),
        ..a.clone()
    };
    let report = LvmReport {
        pvs: vec![pv("/dev/sdb", Some("agility-fast"))],
        vgs: vec![vg(10 << 30)],
        lvs: vec![thin(9 << 30)],
    };
    let p = plan(
        &target(&[]),
        &[Candidate {
            name: "n-b",
            status: &member,
        }],
        &report,
    );
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    assert_eq!(p.members, ["n-b"]);

    let p = plan(
        &target(&[]),
        &[
            Candidate {
                name: "n-b",
                status: &member,
            },
            Candidate {
                name: "n-d",
                status: &b,
            },
        ],
        &report,
    );
    assert_eq!(
        p.steps,
        vec![
            Step::CreatePv {
                disk: "n-d".into(),
                device: "/dev/sdd".into()
            },
            Step::ExtendVg {
                vg: "agility-fast".into(),
                devices: vec!["/dev/sdd".into()]
            },
            Step::ExtendThinPool {
                vg: "agility-fast".into(),
                thin_pool: "thin".into(),
                percent: 90
            },
        ]
    );
    // The VG grew but the thin pool did not (a crash after vgextend): extend it.
    let grown = LvmReport {
        vgs: vec![vg(20 << 30)],
        ..report.clone()
    };
    let p = plan(
        &target(&[]),
        &[Candidate {
            name: "n-b",
            status: &member,
        }],
        &grown,
    );
    assert!(
        matches!(p.steps[..], [Step::ExtendThinPool { .. }]),
        "{:?}",
        p.steps
    );
}

#[test]
fn orphan_pv_from_an_interrupted_run_joins_without_pvcreate() {
    let orphan = with_data("/dev/sdb", &["HasSignature"], &["LVM2_member"]);
    let report = LvmReport {
        pvs: vec![pv("/dev/sdb", None)],
        ..Default::default()
    };
    let p = plan(
        &target(&[]),
        &[Candidate {
            name: "n-b",
            status: &orphan,
        }],
        &report,
    );
    assert!(
        matches!(
            p.steps[..],
            [Step::CreateVg { .. }, Step::CreateThinPool { .. }]
        ),
        "{:?}",
        p.steps
    );
    // Without a VG and no eligible disk: nothing at all.
    let p = plan(&target(&[]), &[], &LvmReport::default());
    assert!(p.steps.is_empty());
}

/// Records commands; answers from a script.
struct Recorder {
    calls: Mutex<Vec<String>>,
    fail_on: Option<&'static str>,
    stdout: fn(&str) -> String,
}

impl CommandRunner for Recorder {
    fn run<'a>(
        &'a self,
        program: &'a str,
        args: &'a [String],
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<CommandOutput, DiskError>> {
        Box::pin(async move {
            let line = format!("{program} {}", args.join(" "));
            self.calls.lock().unwrap().push(line.clone());
            let fail = self.fail_on.is_some_and(|f| line.contains(f));
            Ok(CommandOutput {
                code: Some(if fail { 5 } else { 0 }),
                stdout: (self.stdout)(&line),
                stderr: if fail {
                    "  Device /dev/sdd excluded by a filter.".into()
                } else {
                    String::new()
                },
            })
        })
    }
}

#[tokio::test]
async fn executor_runs_steps_in_order_and_stops_at_the_first_failure() {
    let steps = vec![
        Step::Wipe {
            disk: "n-c".into(),
            device: "/dev/sdc".into(),
        },
        Step::CreatePv {
            disk: "n-c".into(),
            device: "/dev/sdc".into(),
        },
        Step::CreatePv {
            disk: "n-d".into(),
            device: "/dev/sdd".into(),
        },
        Step::CreateVg {
            vg: "agility-fast".into(),
            devices: vec!["/dev/sdc".into()],
        },
    ];
    let r = Recorder {
        calls: Mutex::new(vec![]),
        fail_on: Some("/dev/sdd"),
        stdout: |_| String::new(),
    };
    let lvm = LvmCli {
        config: Some("global { use_lvmetad = 0 }".into()),
        ..Default::default()
    };
    let err = execute(&steps, &r, &lvm).await.unwrap_err();
    assert_eq!(err.done, 2);
    assert!(err.to_string().contains("excluded by a filter"), "{err}");
    assert_eq!(
        *r.calls.lock().unwrap(),
        [
            "wipefs -a /dev/sdc",
            "lvm pvcreate --config global { use_lvmetad = 0 } /dev/sdc",
            "lvm pvcreate --config global { use_lvmetad = 0 } /dev/sdd",
        ]
    );
}

#[tokio::test]
async fn read_report_parses_the_three_reports() {
    fn out(line: &str) -> String {
        let f = if line.contains(" pvs ") {
            "pvs-pool.json"
        } else if line.contains(" vgs ") {
            "vgs-pool.json"
        } else {
            "lvs-thin.json"
        };
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/disk/{f}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }
    let r = Recorder {
        calls: Mutex::new(vec![]),
        fail_on: None,
        stdout: out,
    };
    let rep = read_report(&r, &LvmCli::default()).await.unwrap();
    assert_eq!(rep.pvs.len(), 3);
    assert_eq!(rep.vgs.len(), 2);
    assert_eq!(rep.lvs.len(), 4);
    assert!(
        r.calls.lock().unwrap()[0]
            .starts_with("lvm pvs --reportformat json --units b --nosuffix -o ")
    );
}
