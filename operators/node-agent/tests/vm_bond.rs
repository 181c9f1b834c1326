//! VM only (bonding driver): an active-backup bond over two veth ports, built through
//! render + the netlink backend, fails over when the active port's peer goes down; packet loss
//! and the failover time are measured. Then revert removes the bond and restores the ports.
//!
//! Topology: this (the VM's) namespace has v0, v1 → bond0 10.77.0.1/24; their peers p0, p1 sit
//! in namespace `agpeer`, bridged as br0 10.77.0.2/24, where a UDP echo server runs.

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agility_node_agent::crd::network::{
    BondMode, BondSpec, NodeNetworkPolicySpec, PortSelector, RouteSpec, VlanSpec,
};
use agility_node_agent::net::backend::NetworkBackend;
use agility_node_agent::net::netlink::{NetlinkBackend, Sysfs};
use agility_node_agent::net::plan::plan;
use agility_node_agent::net::render::render;
use agility_node_agent::net::state::{NetworkState, to_status};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

const PEER: &str = "agpeer";
const MIIMON_MS: u32 = 100;
const TICK: Duration = Duration::from_millis(10);

fn in_vm() -> bool {
    if std::env::var_os("AGILITY_VM").is_none() {
        println!("skipped: needs the VM kernel (bonding driver); run make vm-test");
        return false;
    }
    true
}

fn sh(args: &str) {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn setup() {
    let _ = Command::new("ip").args(["netns", "del", PEER]).output();
    let _ = Command::new("ip").args(["link", "del", "bond0"]).output();
    sh(&format!("netns add {PEER}"));
    sh(&format!("-n {PEER} link set lo up"));
    sh(&format!("-n {PEER} link add br0 type bridge"));
    for i in 0..2 {
        sh(&format!(
            "link add v{i} type veth peer name p{i} netns {PEER}"
        ));
        sh(&format!("-n {PEER} link set p{i} master br0"));
        sh(&format!("-n {PEER} link set p{i} up"));
        sh(&format!("link set v{i} up"));
    }
    sh(&format!("-n {PEER} link set br0 up"));
    sh(&format!("-n {PEER} addr add 10.77.0.2/24 dev br0"));
}

fn teardown() {
    let _ = Command::new("ip").args(["link", "del", "bond0"]).output();
    let _ = Command::new("ip").args(["netns", "del", PEER]).output();
}

fn policy(route_gateway: &str) -> NodeNetworkPolicySpec {
    NodeNetworkPolicySpec {
        bonds: vec![BondSpec {
            name: "bond0".into(),
            mode: BondMode::ActiveBackup,
            miimon: MIIMON_MS,
            ports: PortSelector {
                names: vec!["v0".into(), "v1".into()],
                ..Default::default()
            },
            mtu: Some(1400),
            addresses: vec!["10.77.0.1/24".into()],
            routes: vec![RouteSpec {
                destination: "10.78.0.0/16".into(),
                gateway: Some(route_gateway.into()),
                metric: None,
            }],
            vlans: vec![VlanSpec {
                id: 100,
                mtu: Some(1400),
                addresses: vec!["10.88.0.1/24".into()],
                routes: vec![],
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Name, master, MTU, admin up, MAC.
type PortView = (String, Option<String>, Option<u32>, bool, Option<String>);

/// The parts of the ports a revert must restore.
fn ports_view(s: &NetworkState) -> Vec<PortView> {
    ["v0", "v1"]
        .iter()
        .map(|n| {
            let l = s.link(n).unwrap();
            (l.name.clone(), l.master.clone(), l.mtu, l.up, l.mac.clone())
        })
        .collect()
}

/// UDP echo on 10.77.0.2:7777 inside the peer namespace until `stop`.
fn echo_server(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let ready = Arc::new(AtomicBool::new(false));
    let r = ready.clone();
    let h = std::thread::spawn(move || {
        let fd = std::fs::File::open(format!("/run/netns/{PEER}")).unwrap();
        move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::Network)).unwrap();
        let sock = UdpSocket::bind("10.77.0.2:7777").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        r.store(true, Ordering::SeqCst);
        let mut buf = [0u8; 64];
        while !stop.load(Ordering::SeqCst) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(&buf[..n], from);
            }
        }
    });
    while !ready.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    h
}

#[tokio::test(flavor = "current_thread")]
async fn active_backup_fails_over_within_two_miimon_intervals() {
    if !in_vm() {
        return;
    }
    setup();
    let backend = NetlinkBackend::new(Sysfs::default()).unwrap();
    let before = backend.observe().await.unwrap();
    let desired = render(&policy("10.77.0.254"), &before).unwrap();
    assert_eq!(desired[0].ports, ["v0", "v1"]);
    let undo = backend.snapshot(&desired).await.unwrap();
    let t = Instant::now();
    backend.apply(&desired).await.unwrap();
    println!("apply took {} ms", t.elapsed().as_millis());

    let mut state = backend.observe().await.unwrap();
    // The monitor needs a tick or two to pick an active port.
    for _ in 0..100 {
        if state
            .link("bond0")
            .and_then(|b| b.bond.as_ref())
            .is_some_and(|b| b.active_port.is_some())
        {
            break;
        }
        tokio::time::sleep(TICK).await;
        state = backend.observe().await.unwrap();
    }
    assert_eq!(
        plan(&state, &desired).unwrap(),
        vec![],
        "apply is idempotent"
    );
    let status = to_status(&state);
    println!("{}", serde_json::to_string_pretty(&status.bonds).unwrap());
    let bond = &status.bonds[0];
    assert_eq!(bond.mode, "active-backup");
    assert_eq!(bond.miimon, Some(MIIMON_MS));
    let ports: Vec<&str> = bond.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(ports, ["v0", "v1"]);
    let active = bond.active_port.clone().expect("an active port");
    assert_eq!(state.link("v0").unwrap().mtu, Some(1400));
    let vlan = state.link("bond0.100").expect("the VLAN");
    assert_eq!(
        vlan.vlan.as_ref().map(|v| (v.id, v.parent.as_deref())),
        Some((100, Some("bond0")))
    );
    assert_eq!(vlan.addresses.iter().filter(|a| a.ours).count(), 1);

    // Traffic: a request every 10 ms, replies recorded by sequence number.
    let stop = Arc::new(AtomicBool::new(false));
    let server = echo_server(stop.clone());
    let sock = UdpSocket::bind("10.77.0.1:0").unwrap();
    sock.connect("10.77.0.2:7777").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let replies: Arc<Mutex<BTreeMap<u32, Instant>>> = Arc::default();
    let rx = {
        let (sock, replies, stop) = (sock.try_clone().unwrap(), replies.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4];
            while !stop.load(Ordering::SeqCst) {
                if let Ok(4) = sock.recv(&mut buf) {
                    replies
                        .lock()
                        .unwrap()
                        .insert(u32::from_be_bytes(buf), Instant::now());
                }
            }
        })
    };
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let tx = {
        let (sent, stop) = (sent.clone(), stop.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut seq = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let _ = sock.send(&seq.to_be_bytes());
                sent.lock().unwrap().push(Instant::now());
                seq += 1;
                let next = start + TICK * seq;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        !replies.lock().unwrap().is_empty(),
        "no echo replies before the failover"
    );

    let peer = active.replace('v', "p");
    let down_at = Instant::now();
    sh(&format!("-n {PEER} link set {peer} down"));
    let mut new_active = None;
    while down_at.elapsed() < Duration::from_secs(3) {
        let s = backend.observe().await.unwrap();
        let a = s
            .link("bond0")
            .and_then(|b| b.bond.as_ref())
            .and_then(|b| b.active_port.clone());
        if a.is_some() && a.as_deref() != Some(active.as_str()) {
            new_active = a;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let switch_ms = down_at.elapsed().as_millis();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    tx.join().unwrap();
    rx.join().unwrap();
    server.join().unwrap();

    let sent = sent.lock().unwrap().clone();
    let replies = replies.lock().unwrap().clone();
    // Window: from 300 ms before the cut to 300 ms before the end (replies still in flight).
    let from = down_at - Duration::from_millis(300);
    let until = *sent.last().unwrap() - Duration::from_millis(300);
    let window: Vec<u32> = (0u32..)
        .zip(&sent)
        .filter(|(_, t)| **t >= from && **t <= until)
        .map(|(s, _)| s)
        .collect();
    let lost = window.iter().filter(|s| !replies.contains_key(s)).count();
    let times: Vec<Instant> = window
        .iter()
        .filter_map(|s| replies.get(s).copied())
        .collect();
    let gap_ms = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_millis())
        .max()
        .unwrap_or(0);
    let budget = (2 * MIIMON_MS as usize).div_ceil(TICK.as_millis() as usize);
    println!(
        "failover: active {active} -> {new_active:?} after {switch_ms} ms; sent {} in window, \
         lost {lost} (budget {budget} = 2 x miimon {MIIMON_MS} ms at one per {} ms), \
         longest reply gap {gap_ms} ms",
        window.len(),
        TICK.as_millis()
    );
    assert!(
        new_active.is_some(),
        "the bond never switched its active port"
    );
    assert!(lost <= budget, "lost {lost} packets, budget {budget}");

    // Revert: the bond goes, the ports come back as they were.
    backend.revert(&undo).await.unwrap();
    let mut after = backend.observe().await.unwrap();
    for _ in 0..50 {
        if ports_view(&after) == ports_view(&before) {
            break;
        }
        tokio::time::sleep(TICK).await;
        after = backend.observe().await.unwrap();
    }
    assert!(
        after.link("bond0").is_none(),
        "bond0 still there after revert"
    );
    assert!(
        after.link("bond0.100").is_none(),
        "the VLAN still there after revert"
    );
    assert_eq!(ports_view(&after), ports_view(&before));
    assert!(
        !after.routes.iter().any(|r| r.ours),
        "agent routes left behind"
    );
    teardown();
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_apply_is_reverted() {
    if !in_vm() {
        return;
    }
    setup();
    let backend = NetlinkBackend::new(Sysfs::default()).unwrap();
    let before = backend.observe().await.unwrap();
    // The gateway is the subnet's broadcast address: the planner's model accepts it, the kernel
    // refuses the route step, after the bond, its ports and its address are in place.
    let desired = render(&policy("10.77.0.255"), &before).unwrap();
    let undo = backend.snapshot(&desired).await.unwrap();
    let err = backend.apply(&desired).await.unwrap_err();
    println!("apply failed as intended: {err}");
    assert!(backend.observe().await.unwrap().link("bond0").is_some());
    backend.revert(&undo).await.unwrap();
    let mut after = backend.observe().await.unwrap();
    for _ in 0..50 {
        if ports_view(&after) == ports_view(&before) {
            break;
        }
        tokio::time::sleep(TICK).await;
        after = backend.observe().await.unwrap();
    }
    assert!(after.link("bond0").is_none());
    assert_eq!(ports_view(&after), ports_view(&before));
    teardown();
}
