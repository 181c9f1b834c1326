//! Rollback of real bonds, in the VM (Debian kernel with bonding; `make vm-test`):
//! (a) a policy whose bond takes the uplink veth as a port cuts the node from its "API server"
//!     (a TCP listener in a peer netns), is rolled back, and connectivity returns;
//! (b) the "agent" (a child process running the transaction) is SIGKILLed after the apply, and
//!     the dead-man watchdog it spawned (in its own process group) reverts within the deadline.
//!
//! Both use the netlink backend; the node is the VM's root netns. The child processes are this
//! test binary again, picking its role from `AGILITY_TEST_ROLE` (the role tests are no-ops in a
//! normal run). The fixture uses `ip`; the product code does not.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use agility_node_agent::crd::network::{BondMode, RenderedBond};
use agility_node_agent::net::checkpoint::{CheckpointStore, DeadManCommand, run_dead_man};
use agility_node_agent::net::netlink::{NetlinkBackend, Sysfs};
use agility_node_agent::net::probe::{
    ApiTarget, DnsTarget, ProbeConfig, ProbeKind, ProbeKinds, ProbeReport, ProbeSet, Probes,
};
use agility_node_agent::net::transaction::{EnactRequest, Reason, Report, Settings, State, enact};
use futures::future::BoxFuture;

const ROLE: &str = "AGILITY_TEST_ROLE";
const CHECKPOINT: &str = "AGILITY_TEST_CHECKPOINT";
const PEER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

fn in_vm() -> bool {
    if std::env::var_os("AGILITY_VM").is_none() {
        println!("skipped: needs the VM kernel (bonding); run make vm-test");
        return false;
    }
    true
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn master_of(iface: &str) -> Option<String> {
    std::fs::read_link(format!("/sys/class/net/{iface}/master"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

fn exists(iface: &str) -> bool {
    Path::new(&format!("/sys/class/net/{iface}")).exists()
}

fn bond(name: &str, port: &str) -> RenderedBond {
    RenderedBond {
        name: name.into(),
        mode: BondMode::ActiveBackup,
        miimon: 100,
        ports: vec![port.into()],
        ..RenderedBond::default()
    }
}

fn enter_netns(ns: &str) {
    // iproute2 keeps named namespaces in /run/netns (/var/run/netns where that is a link).
    let f = std::fs::File::open(format!("/run/netns/{ns}"))
        .or_else(|_| std::fs::File::open(format!("/var/run/netns/{ns}")))
        .unwrap();
    rustix::thread::move_into_link_name_space(
        f.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .unwrap();
}

/// Binds a server on a thread inside `ns` and leaves it running.
fn serve_in_netns<S: FnOnce() + Send + 'static>(
    ns: &str,
    bind: impl FnOnce() -> S + Send + 'static,
) {
    let ns = ns.to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        enter_netns(&ns);
        let serve = bind();
        tx.send(()).unwrap();
        serve();
    });
    rx.recv().unwrap();
}

/// A DNS "server" that answers every query with an empty NOERROR reply (enough for the probe:
/// any answer proves the resolver is reachable). Header only: id, flags QR|RD|RA, counts 0
/// except the echoed question.
fn serve_dns(socket: UdpSocket) {
    let mut buf = [0u8; 1500];
    while let Ok((n, from)) = socket.recv_from(&mut buf) {
        if n < 12 {
            continue;
        }
        let mut reply = buf[..n].to_vec();
        reply[2] = 0x81; // QR, RD
        reply[3] = 0x80; // RA, NOERROR
        // Keep QDCOUNT; zero AN/NS/AR counts, drop any additional (EDNS) records.
        for b in &mut reply[6..12] {
            *b = 0;
        }
        let question_end = question_end(&reply).unwrap_or(n);
        reply.truncate(question_end);
        let _ = socket.send_to(&reply, from);
    }
}

fn question_end(msg: &[u8]) -> Option<usize> {
    let mut i = 12;
    loop {
        let len = usize::from(*msg.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        i += len;
    }
    Some(i + 4)
}

/// The VM as a node with uplink `up0` (10.77.0.1/24) to a peer netns running the API server
/// (10.77.0.2:6443) and DNS.
fn uplink_lab() -> ProbeConfig {
    ip(&["netns", "add", "uplink"]);
    ip(&[
        "link", "add", "up0", "type", "veth", "peer", "name", "vup", "netns", "uplink",
    ]);
    ip(&["addr", "add", "10.77.0.1/24", "dev", "up0"]);
    ip(&["link", "set", "up0", "up"]);
    ip(&["-n", "uplink", "addr", "add", "10.77.0.2/24", "dev", "vup"]);
    ip(&["-n", "uplink", "link", "set", "vup", "up"]);
    ip(&["-n", "uplink", "link", "set", "lo", "up"]);
    serve_in_netns("uplink", || {
        let l = TcpListener::bind((PEER, 6443)).unwrap();
        move || {
            for c in l.incoming() {
                drop(c);
            }
        }
    });
    serve_in_netns("uplink", || {
        let s = UdpSocket::bind((PEER, 53)).unwrap();
        move || serve_dns(s)
    });
    let resolv = std::env::temp_dir().join("vm-resolv.conf");
    std::fs::write(&resolv, format!("nameserver {PEER}\n")).unwrap();
    ProbeConfig {
        api_server: Some(ApiTarget {
            host: PEER.to_string(),
            port: 6443,
        }),
        gateway: Some(PEER.into()),
        dns: DnsTarget {
            name: "kubernetes.default.svc.cluster.local.".into(),
            resolv_conf: resolv,
            servers: None,
        },
        timeout: Duration::from_secs(2),
    }
}

fn all() -> ProbeKinds {
    ProbeKind::ALL.into_iter().collect()
}

#[test]
fn a_policy_that_cuts_connectivity_is_rolled_back() {
    if !in_vm() || std::env::var_os(ROLE).is_some() {
        return;
    }
    let config = uplink_lab();
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::in_dir(dir.path());
    rt().block_on(async {
        let backend = NetlinkBackend::new(Sysfs::default()).unwrap();
        let probes = ProbeSet::new(config);
        let before = probes.run(&all()).await;
        assert_eq!(before.passed(), all(), "the lab works: {before:?}");

        let settings = Settings {
            enabled: all(),
            probe_timeout: Duration::from_secs(6),
            rollback_timeout: Duration::from_secs(40),
            retry_interval: Duration::from_millis(500),
            margin: Duration::from_secs(3),
            revert_attempts: 3,
        };
        let times: Arc<Mutex<Vec<(Instant, Report)>>> = Arc::default();
        let t = times.clone();
        let on_report = move |r: &Report| t.lock().unwrap().push((Instant::now(), r.clone()));
        let desired = vec![bond("bond7", "up0")];
        let outcome = enact(
            &backend,
            &probes,
            EnactRequest {
                policy: "uplink",
                generation: 1,
                desired: &desired,
                store: &store,
                watchdog: None,
                on_report: Some(&on_report),
            },
            &settings,
        )
        .await;
        println!("outcome: {outcome:?}");
        assert!(
            matches!(
                &outcome.state,
                State::RolledBack { reason: Reason::ProbesFailed(failed) } if failed.contains(&ProbeKind::ApiServer)
            ),
            "{outcome:?}"
        );
        let times = times.lock().unwrap().clone();
        let applying = times.iter().find(|(_, r)| r.reason == Reason::Applying).unwrap().0;
        let done = times.last().unwrap().0;
        println!(
            "apply start → rolled back: {} ms (probe timeout {} s)",
            done.duration_since(applying).as_millis(),
            settings.probe_timeout.as_secs()
        );
        assert!(!exists("bond7"), "the bond was removed");
        assert_eq!(master_of("up0"), None);
        // Connectivity returns (ARP may need a moment).
        let started = Instant::now();
        let mut after = probes.run(&all()).await;
        while after.passed() != all() && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            after = probes.run(&all()).await;
        }
        println!("connectivity back {} ms after the rollback", started.elapsed().as_millis());
        assert_eq!(after.passed(), all(), "{after:?}");
        assert!(!store.path().exists() && !store.claimed_path().exists());
    });
    ip(&["netns", "del", "uplink"]);
}

/// Probes that pass once (the baseline) and then hang: the agent sits in Verifying until killed.
struct PassThenHang(Mutex<u32>);

impl Probes for PassThenHang {
    fn run<'a>(&'a self, which: &'a ProbeKinds) -> BoxFuture<'a, ProbeReport> {
        Box::pin(async move {
            let round = {
                let mut n = self.0.lock().unwrap();
                *n += 1;
                *n
            };
            if round > 1 {
                std::future::pending::<()>().await;
            }
            ProbeReport::from_sets(which, which, "")
        })
    }
}

const DEAD_MAN_DEADLINE: Duration = Duration::from_secs(12);

fn block_on<F: Future>(f: F) -> F::Output {
    rt().block_on(f)
}

/// Role "agent": apply bond9 over dm0 with a dead-man armed, then hang in Verifying.
#[test]
fn role_agent() {
    if std::env::var(ROLE).as_deref() != Ok("agent") {
        return;
    }
    let dir = PathBuf::from(std::env::var(CHECKPOINT).unwrap());
    let exe = std::env::current_exe().unwrap();
    // libtest takes no `--checkpoint` flag: a shell moves it into the environment.
    let watchdog = DeadManCommand {
        program: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            format!(
                "{ROLE}=dead-man {CHECKPOINT}=\"$2\" exec \"$0\" --exact role_dead_man --nocapture --test-threads=1"
            )
            .into(),
            exe.into(),
        ],
    };
    block_on(async {
        let backend = NetlinkBackend::new(Sysfs::default()).unwrap();
        let store = CheckpointStore::in_dir(&dir);
        let settings = Settings {
            enabled: [ProbeKind::ApiServer].into_iter().collect(),
            probe_timeout: Duration::from_secs(600),
            rollback_timeout: DEAD_MAN_DEADLINE,
            retry_interval: Duration::from_secs(1),
            margin: Duration::from_secs(2),
            revert_attempts: 1,
        };
        let desired = vec![bond("bond9", "dm0")];
        let outcome = enact(
            &backend,
            &PassThenHang(Mutex::new(0)),
            EnactRequest {
                policy: "uplink",
                generation: 7,
                desired: &desired,
                store: &store,
                watchdog: Some(&watchdog),
                on_report: None,
            },
            &settings,
        )
        .await;
        println!("agent: unexpected end {outcome:?}");
    });
}

/// Role "dead-man": the watchdog process.
#[test]
fn role_dead_man() {
    if std::env::var(ROLE).as_deref() != Ok("dead-man") {
        return;
    }
    let path = PathBuf::from(std::env::var(CHECKPOINT).unwrap());
    block_on(async {
        let backend = NetlinkBackend::new(Sysfs::default()).unwrap();
        let outcome = run_dead_man(&path, &backend).await;
        println!("dead-man: {outcome:?}");
    });
}

#[test]
fn a_killed_agent_is_reverted_by_the_dead_man_timer() {
    if !in_vm() || std::env::var_os(ROLE).is_some() {
        return;
    }
    ip(&["link", "add", "dm0", "type", "veth", "peer", "name", "dm0p"]);
    ip(&["link", "set", "dm0p", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::in_dir(dir.path());
    let started = Instant::now();
    let mut agent = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "role_agent", "--nocapture", "--test-threads=1"])
        .env(ROLE, "agent")
        .env(CHECKPOINT, dir.path())
        .spawn()
        .unwrap();
    // Wait for the change (bond9 with dm0 as its port).
    while master_of("dm0").as_deref() != Some("bond9") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the agent never applied"
        );
        assert!(
            agent.try_wait().unwrap().is_none(),
            "the agent exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let applied = Instant::now();
    assert!(
        store.path().exists(),
        "checkpoint written before the change"
    );
    agent.kill().unwrap(); // SIGKILL
    agent.wait().unwrap();
    let killed = Instant::now();
    println!(
        "agent applied after {} ms, killed",
        applied.duration_since(started).as_millis()
    );
    while exists("bond9") || master_of("dm0").is_some() {
        assert!(
            killed.elapsed() < DEAD_MAN_DEADLINE + Duration::from_secs(20),
            "the dead-man did not revert"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let reverted = Instant::now();
    println!(
        "dead-man reverted {} ms after the kill ({} ms after the apply; deadline {} s after the checkpoint)",
        reverted.duration_since(killed).as_millis(),
        reverted.duration_since(applied).as_millis(),
        DEAD_MAN_DEADLINE.as_secs()
    );
    // The watchdog removes the checkpoint and its claim once done.
    let wait = Instant::now();
    while (store.path().exists() || store.claimed_path().exists())
        && wait.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!store.path().exists() && !store.claimed_path().exists());
    assert!(exists("dm0"), "the port itself is kept");
    ip(&["link", "del", "dm0"]);
}
