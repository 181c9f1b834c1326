//! VM smoke test: proves the test VM's kernel (e2e/vm, `make vm-test`) offers what the node agent's
//! VM tests need: bonding, 802.1q and device-mapper with thin pools, and that the userland in the
//! VM (dmsetup, ip) runs. This machine's kernel has none of it, so outside the VM (AGILITY_VM
//! unset) every test prints `skipped` and returns.

use std::path::Path;
use std::process::Command;

fn in_vm() -> bool {
    if std::env::var_os("AGILITY_VM").is_some() {
        return true;
    }
    println!("skipped: needs the VM kernel (bonding, device-mapper); run make vm-test");
    false
}

fn run(cmd: &str, args: &str) -> String {
    let out = Command::new(cmd)
        .args(args.split_whitespace())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn exists(path: &str) -> bool {
    Path::new(path).exists()
}

#[test]
fn kernel_offers_bonding_and_vlans() {
    if !in_vm() {
        return;
    }
    assert!(exists("/sys/module/bonding"), "bonding not loaded");
    assert!(exists("/sys/module/8021q"), "8021q not loaded");
    // A bond with a VLAN on top really comes up (a dummy link as its port).
    run("ip", "link add smoke-d0 type dummy");
    run("ip", "link add smoke-bond type bond mode active-backup");
    run("ip", "link set smoke-d0 master smoke-bond");
    run(
        "ip",
        "link add link smoke-bond name smoke-bond.7 type vlan id 7",
    );
    run("ip", "link set smoke-bond up");
    let slaves = std::fs::read_to_string("/sys/class/net/smoke-bond/bonding/slaves")
        .unwrap_or_else(|e| panic!("bond sysfs: {e}"));
    assert_eq!(slaves.trim(), "smoke-d0");
    run("ip", "link del smoke-bond");
    run("ip", "link del smoke-d0");
}

#[test]
fn kernel_offers_device_mapper_thin_pools() {
    if !in_vm() {
        return;
    }
    assert!(exists("/dev/mapper/control"), "no /dev/mapper/control");
    let targets = run("dmsetup", "targets");
    for target in ["thin-pool", "thin", "snapshot"] {
        let found = targets
            .lines()
            .any(|l| l.starts_with(&format!("{target} ")));
        assert!(found, "dm target {target} missing:\n{targets}");
    }
}
