//! Host tests of the connectivity probes and the safe apply, against real sockets: a local TCP
//! listener (API server), an in-process DNS responder, ICMP to loopback, and a pair of network
//! namespaces joined by a veth (the "node" and its "uplink" peer carrying the API server, DNS and
//! the gateway). The netns tests need root; they print `skipped` when `ip netns` is unavailable.
//! Tests may run `ip` to build the fixture; the product code never does.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use agility_node_agent::crd::network::RenderedBond;
use agility_node_agent::net::backend::{BackendError, NetworkBackend};
use agility_node_agent::net::checkpoint::CheckpointStore;
use agility_node_agent::net::probe::{
    ApiTarget, DnsTarget, ProbeConfig, ProbeKind, ProbeKinds, ProbeSet, Probes,
};
use agility_node_agent::net::transaction::{EnactRequest, Reason, Settings, State, enact};
use futures::future::BoxFuture;
use hickory_resolver::proto::op::{Message, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::A;
use hickory_resolver::proto::rr::{RData, Record, RecordType};

const KNOWN: &str = "api.agility.test.";
const KNOWN_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 9, 9);

/// A DNS responder: A records for [`KNOWN`], NXDOMAIN for anything else.
fn serve_dns(socket: UdpSocket) {
    let mut buf = [0u8; 1500];
    while let Ok((n, from)) = socket.recv_from(&mut buf) {
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let mut reply = Message::response(query.metadata.id, OpCode::Query);
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        for q in &query.queries {
            reply.add_query(q.clone());
            if q.name().to_ascii() == KNOWN && q.query_type() == RecordType::A {
                reply.add_answer(Record::from_rdata(
                    q.name().clone(),
                    60,
                    RData::A(A(KNOWN_IP)),
                ));
            }
        }
        if reply.answers.is_empty() && !query.queries.iter().any(|q| q.name().to_ascii() == KNOWN) {
            reply.metadata.response_code = ResponseCode::NXDomain;
        }
        let _ = socket.send_to(&reply.to_vec().unwrap(), from);
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn config() -> ProbeConfig {
    ProbeConfig {
        api_server: None,
        gateway: None,
        dns: DnsTarget::default(),
        timeout: Duration::from_millis(800),
    }
}

fn kinds(k: &[ProbeKind]) -> ProbeKinds {
    k.iter().copied().collect()
}

#[test]
fn api_server_probe_against_a_local_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    rt().block_on(async {
        let mut c = config();
        c.api_server = Some(ApiTarget {
            host: "127.0.0.1".into(),
            port,
        });
        let ok = ProbeSet::new(c.clone()).run_one(ProbeKind::ApiServer).await;
        assert!(ok.passed, "{ok:?}");
        c.api_server = Some(ApiTarget {
            host: "127.0.0.1".into(),
            port: closed_port,
        });
        let refused = ProbeSet::new(c.clone()).run_one(ProbeKind::ApiServer).await;
        assert!(
            !refused.passed && refused.message.contains("refused"),
            "{refused:?}"
        );
        c.api_server = None;
        let none = ProbeSet::new(c).run_one(ProbeKind::ApiServer).await;
        assert!(!none.passed, "{none:?}");
    });
}

#[test]
fn dns_probe_against_an_in_process_server() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = socket.local_addr().unwrap();
    std::thread::spawn(move || serve_dns(socket));
    // A bound socket nobody reads: queries time out.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let mut c = config();
        c.dns = DnsTarget {
            name: KNOWN.into(),
            resolv_conf: PathBuf::from("/nonexistent"),
            servers: Some(vec![server]),
        };
        let ok = ProbeSet::new(c.clone()).run_one(ProbeKind::Dns).await;
        assert!(ok.passed && ok.message.contains("10.9.9.9"), "{ok:?}");

        // NXDOMAIN still proves the resolver is reachable.
        c.dns.name = "missing.agility.test.".into();
        let nx = ProbeSet::new(c.clone()).run_one(ProbeKind::Dns).await;
        assert!(nx.passed && nx.message.contains("answered"), "{nx:?}");

        c.dns.servers = Some(vec![silent.local_addr().unwrap()]);
        let started = Instant::now();
        let quiet = ProbeSet::new(c.clone()).run_one(ProbeKind::Dns).await;
        assert!(!quiet.passed, "{quiet:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "bounded by the timeout"
        );

        c.dns.servers = None;
        let missing = ProbeSet::new(c.clone()).run_one(ProbeKind::Dns).await;
        assert!(
            !missing.passed && missing.message.contains("/nonexistent"),
            "{missing:?}"
        );

        let empty = dir.path().join("resolv.conf");
        std::fs::write(&empty, "search example.com\n").unwrap();
        c.dns.resolv_conf = empty;
        let none = ProbeSet::new(c).run_one(ProbeKind::Dns).await;
        assert!(
            !none.passed && none.message.contains("no nameserver"),
            "{none:?}"
        );
    });
}

#[test]
fn gateway_probe_pings_loopback() {
    rt().block_on(async {
        let mut c = config();
        c.gateway = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let ok = ProbeSet::new(c.clone())
            .run_one(ProbeKind::DefaultGateway)
            .await;
        assert!(ok.passed, "{ok:?} (needs root or ping_group_range)");
        c.gateway = None;
        let none = ProbeSet::new(c).run_one(ProbeKind::DefaultGateway).await;
        assert!(!none.passed, "{none:?}");
    });
}

/// Two network namespaces joined by a veth: `node` (10.77.0.1/24 on `vnode`) and `uplink`
/// (10.77.0.2/24 on `vup`), the latter running a TCP "API server" on :6443 and DNS on :53.
struct Lab {
    node: String,
    uplink: String,
}

const NODE_CIDR: &str = "10.77.0.1/24";
const PEER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lab {
    fn new(tag: &str) -> Option<Lab> {
        let lab = Lab {
            node: format!("agtx{}{tag}n", std::process::id()),
            uplink: format!("agtx{}{tag}u", std::process::id()),
        };
        let setup = || -> Result<(), String> {
            ip(&["netns", "add", &lab.node])?;
            ip(&["netns", "add", &lab.uplink])?;
            ip(&[
                "-n",
                &lab.node,
                "link",
                "add",
                "vnode",
                "type",
                "veth",
                "peer",
                "name",
                "vup",
                "netns",
                &lab.uplink,
            ])?;
            ip(&["-n", &lab.node, "addr", "add", NODE_CIDR, "dev", "vnode"])?;
            ip(&[
                "-n",
                &lab.uplink,
                "addr",
                "add",
                "10.77.0.2/24",
                "dev",
                "vup",
            ])?;
            for (ns, dev) in [(&lab.node, "vnode"), (&lab.uplink, "vup")] {
                ip(&["-n", ns, "link", "set", "lo", "up"])?;
                ip(&["-n", ns, "link", "set", dev, "up"])?;
            }
            Ok(())
        };
        if let Err(e) = setup() {
            println!("skipped: needs root and network namespaces ({e})");
            return None;
        }
        let listener = spawn_in_netns(&lab.uplink, || {
            TcpListener::bind((PEER, 6443)).map(|l| {
                move || {
                    for c in l.incoming() {
                        drop(c);
                    }
                }
            })
        });
        let dns = spawn_in_netns(&lab.uplink, || {
            UdpSocket::bind((PEER, 53)).map(|s| move || serve_dns(s))
        });
        if let Err(e) = listener.and(dns) {
            println!("skipped: cannot start the uplink servers ({e})");
            return None;
        }
        Some(lab)
    }

    fn probe_config(&self, resolv_conf: PathBuf) -> ProbeConfig {
        ProbeConfig {
            api_server: Some(ApiTarget {
                host: PEER.to_string(),
                port: 6443,
            }),
            gateway: Some(IpAddr::V4(PEER)),
            dns: DnsTarget {
                name: KNOWN.into(),
                resolv_conf,
                servers: None,
            },
            timeout: Duration::from_millis(500),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.node]);
        let _ = ip(&["netns", "del", &self.uplink]);
    }
}

fn enter_netns(ns: &str) -> Result<(), String> {
    // iproute2 keeps named namespaces in /run/netns (/var/run/netns where that is a link).
    let f = std::fs::File::open(format!("/run/netns/{ns}"))
        .or_else(|_| std::fs::File::open(format!("/var/run/netns/{ns}")))
        .map_err(|e| e.to_string())?;
    rustix::thread::move_into_link_name_space(
        f.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| e.to_string())
}

/// Binds a server inside `ns` (on a thread that entered it) and leaves it running.
fn spawn_in_netns<S, R>(
    ns: &str,
    bind: impl FnOnce() -> std::io::Result<S> + Send + 'static,
) -> Result<(), String>
where
    S: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let ns = ns.to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let serve = enter_netns(&ns).and_then(|()| bind().map_err(|e| e.to_string()));
        match serve {
            Ok(serve) => {
                let _ = tx.send(Ok(()));
                serve();
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    });
    rx.recv().map_err(|e| e.to_string())?
}

/// Runs a future on a fresh runtime in a thread inside `ns` (sockets it opens live there).
fn block_in_netns<F, T>(ns: &str, make: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T>,
    T: Send + 'static,
{
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns).unwrap();
        rt().block_on(make())
    })
    .join()
    .unwrap()
}

fn resolv_conf(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("resolv.conf");
    std::fs::write(&path, format!("# test\nnameserver {PEER}\n")).unwrap();
    path
}

#[test]
fn probes_reach_a_veth_peer_and_fail_when_its_link_is_down() {
    let Some(lab) = Lab::new("p") else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = lab.probe_config(resolv_conf(&dir));
    let all = kinds(&ProbeKind::ALL);
    let c = config.clone();
    let a = all.clone();
    let up = block_in_netns(
        &lab.node,
        move || async move { ProbeSet::new(c).run(&a).await },
    );
    assert_eq!(up.passed(), all, "{up:?}");

    ip(&["-n", &lab.uplink, "link", "set", "vup", "down"]).unwrap();
    let a = all.clone();
    let started = Instant::now();
    let down = block_in_netns(&lab.node, move || async move {
        ProbeSet::new(config).run(&a).await
    });
    let elapsed = started.elapsed();
    assert!(down.passed().is_empty(), "{down:?}");
    // Concurrent: about one probe timeout (500 ms), not three.
    assert!(elapsed < Duration::from_millis(1400), "{elapsed:?}");
}

/// A backend for the lab: "applying" flushes the node's uplink address (cutting every probe,
/// like a bond that takes the uplink as a port), or adds a harmless address; revert restores
/// exactly the recorded addresses.
struct LabBackend {
    ns: String,
    cut: bool,
    reverted_at: Mutex<Option<Instant>>,
    applied_at: Mutex<Option<Instant>>,
}

impl NetworkBackend for LabBackend {
    type Undo = Vec<String>;

    fn snapshot<'a>(
        &'a self,
        _desired: &'a [RenderedBond],
    ) -> BoxFuture<'a, Result<Self::Undo, BackendError>> {
        Box::pin(async { Ok(vec![NODE_CIDR.to_string()]) })
    }

    fn apply<'a>(
        &'a self,
        _desired: &'a [RenderedBond],
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let r = if self.cut {
                ip(&["-n", &self.ns, "addr", "flush", "dev", "vnode"])
            } else {
                ip(&[
                    "-n",
                    &self.ns,
                    "addr",
                    "add",
                    "10.78.0.1/24",
                    "dev",
                    "vnode",
                ])
            };
            *self.applied_at.lock().unwrap() = Some(Instant::now());
            r.map_err(BackendError::Other)
        })
    }

    fn revert<'a>(&'a self, undo: &'a Self::Undo) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            *self.reverted_at.lock().unwrap() = Some(Instant::now());
            let _ = ip(&[
                "-n",
                &self.ns,
                "addr",
                "del",
                "10.78.0.1/24",
                "dev",
                "vnode",
            ]);
            for cidr in undo {
                ip(&["-n", &self.ns, "addr", "replace", cidr, "dev", "vnode"])
                    .map_err(BackendError::Other)?;
            }
            Ok(())
        })
    }
}

fn lab_settings() -> Settings {
    Settings {
        enabled: kinds(&ProbeKind::ALL),
        probe_timeout: Duration::from_secs(2),
        rollback_timeout: Duration::from_secs(10),
        retry_interval: Duration::from_millis(200),
        margin: Duration::from_secs(2),
        revert_attempts: 2,
    }
}

#[test]
fn a_change_that_cuts_connectivity_is_rolled_back() {
    let Some(lab) = Lab::new("r") else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = lab.probe_config(resolv_conf(&dir));
    let store = CheckpointStore::in_dir(dir.path().join("state"));
    let ns = lab.node.clone();
    let st = store.clone();
    let (outcome, applied, reverted, after) = block_in_netns(&lab.node, move || async move {
        let backend = LabBackend {
            ns,
            cut: true,
            reverted_at: Mutex::new(None),
            applied_at: Mutex::new(None),
        };
        let probes = ProbeSet::new(config);
        let desired = vec![RenderedBond {
            name: "bond0".into(),
            ports: vec!["vnode".into()],
            ..RenderedBond::default()
        }];
        let outcome = enact(
            &backend,
            &probes,
            EnactRequest {
                policy: "uplink",
                generation: 1,
                desired: &desired,
                store: &st,
                watchdog: None,
                on_report: None,
            },
            &lab_settings(),
        )
        .await;
        let after = probes.run(&kinds(&ProbeKind::ALL)).await;
        let applied = backend.applied_at.lock().unwrap().unwrap();
        let reverted = backend.reverted_at.lock().unwrap().unwrap();
        (outcome, applied, reverted, after)
    });
    assert_eq!(
        outcome.state,
        State::RolledBack {
            reason: Reason::ProbesFailed(kinds(&ProbeKind::ALL))
        },
        "{outcome:?}"
    );
    assert_eq!(outcome.probes_before, kinds(&ProbeKind::ALL));
    assert!(
        outcome.report.message.contains("ApiServer"),
        "{}",
        outcome.report.message
    );
    let to_rollback = reverted.duration_since(applied);
    println!(
        "apply → rollback: {} ms (probe timeout 2 s)",
        to_rollback.as_millis()
    );
    assert!(to_rollback >= Duration::from_secs(2) && to_rollback < Duration::from_secs(4));
    assert_eq!(
        after.passed(),
        kinds(&ProbeKind::ALL),
        "connectivity is back: {after:?}"
    );
    assert!(!store.path().exists() && !store.claimed_path().exists());
}

#[test]
fn a_harmless_change_is_committed() {
    let Some(lab) = Lab::new("c") else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = lab.probe_config(resolv_conf(&dir));
    let store = CheckpointStore::in_dir(dir.path().join("state"));
    let ns = lab.node.clone();
    let st = store.clone();
    let started = Instant::now();
    let outcome = block_in_netns(&lab.node, move || async move {
        let backend = LabBackend {
            ns,
            cut: false,
            reverted_at: Mutex::new(None),
            applied_at: Mutex::new(None),
        };
        enact(
            &backend,
            &ProbeSet::new(config),
            EnactRequest {
                policy: "uplink",
                generation: 2,
                desired: &[],
                store: &st,
                watchdog: None,
                on_report: None,
            },
            &lab_settings(),
        )
        .await
    });
    assert_eq!(outcome.state, State::Committed, "{outcome:?}");
    println!("committed in {} ms", started.elapsed().as_millis());
    assert!(!store.path().exists());
}
