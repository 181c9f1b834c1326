//! Connectivity probes run around a network change: the API server (TCP connect), the default
//! gateway (ICMP echo) and DNS (a lookup through the node's resolvers). Each probe has its own
//! timeout and yields pass/fail with a message; [`ProbeSet`] runs the enabled ones concurrently.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, join_all};
use hickory_resolver::Resolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpStream, UdpSocket};

use crate::crd::network::ProbeSpec;

/// One kind of connectivity probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ProbeKind {
    ApiServer,
    DefaultGateway,
    Dns,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::ApiServer,
        ProbeKind::DefaultGateway,
        ProbeKind::Dns,
    ];

    /// The name used in status fields (`probesBefore`) and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::ApiServer => "ApiServer",
            ProbeKind::DefaultGateway => "DefaultGateway",
            ProbeKind::Dns => "Dns",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of probe kinds (ordered, so messages are stable).
pub type ProbeKinds = BTreeSet<ProbeKind>;

/// Renders a set as `ApiServer, Dns` (or `none`).
pub fn kinds_to_string(kinds: &ProbeKinds) -> String {
    if kinds.is_empty() {
        return "none".to_string();
    }
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The probes a policy's `probes` section enables.
pub fn enabled_kinds(spec: &ProbeSpec) -> ProbeKinds {
    let mut kinds = ProbeKinds::new();
    if spec.api_server {
        kinds.insert(ProbeKind::ApiServer);
    }
    if spec.default_gateway {
        kinds.insert(ProbeKind::DefaultGateway);
    }
    if spec.dns {
        kinds.insert(ProbeKind::Dns);
    }
    kinds
}

/// The result of one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub kind: ProbeKind,
    pub passed: bool,
    /// What was checked and what happened ("connected to 10.96.0.1:443 in 3 ms").
    pub message: String,
    pub elapsed: Duration,
}

/// The results of one probe round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeReport {
    pub outcomes: Vec<ProbeOutcome>,
}

impl ProbeReport {
    /// The kinds that passed.
    pub fn passed(&self) -> ProbeKinds {
        self.outcomes
            .iter()
            .filter(|o| o.passed)
            .map(|o| o.kind)
            .collect()
    }

    /// Failure messages by kind.
    pub fn failures(&self) -> BTreeMap<ProbeKind, String> {
        self.outcomes
            .iter()
            .filter(|o| !o.passed)
            .map(|o| (o.kind, o.message.clone()))
            .collect()
    }

    /// A report where `passed` pass and every other kind in `all` failed with `message`
    /// (for fakes and for rounds cut short by a deadline).
    pub fn from_sets(all: &ProbeKinds, passed: &ProbeKinds, message: &str) -> ProbeReport {
        ProbeReport {
            outcomes: all
                .iter()
                .map(|&kind| ProbeOutcome {
                    kind,
                    passed: passed.contains(&kind),
                    message: if passed.contains(&kind) {
                        "passed".to_string()
                    } else {
                        message.to_string()
                    },
                    elapsed: Duration::ZERO,
                })
                .collect(),
        }
    }
}

/// Something that runs a round of probes (the real [`ProbeSet`], or a fake in tests).
pub trait Probes: Send + Sync {
    /// Runs the probes in `which` (others are not run) and reports each.
    fn run<'a>(&'a self, which: &'a ProbeKinds) -> BoxFuture<'a, ProbeReport>;
}

/// Where the API server probe connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiTarget {
    pub host: String,
    pub port: u16,
}

impl ApiTarget {
    /// From `KUBERNETES_SERVICE_HOST` / `KUBERNETES_SERVICE_PORT` (set in every pod).
    pub fn from_env() -> Option<ApiTarget> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(443);
        Some(ApiTarget { host, port })
    }
}

impl fmt::Display for ApiTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Which resolvers the DNS probe asks, and for what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsTarget {
    /// The name looked up. Any answer from a server passes, a negative one (NXDOMAIN) too: the
    /// probe checks that the node reaches its resolvers, not that the name exists.
    pub name: String,
    /// The resolv.conf read for `nameserver` lines (the host's, e.g. mounted at
    /// /host/etc/resolv.conf).
    pub resolv_conf: PathBuf,
    /// Servers to ask instead of resolv.conf's (tests use a port other than 53).
    pub servers: Option<Vec<SocketAddr>>,
}

impl Default for DnsTarget {
    fn default() -> Self {
        DnsTarget {
            name: "kubernetes.default.svc.cluster.local.".to_string(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            servers: None,
        }
    }
}

/// Configuration of the real probes.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// None: the API server probe fails with "no API server address".
    pub api_server: Option<ApiTarget>,
    /// The default route's gateway observed before the change (None: the probe fails).
    pub gateway: Option<IpAddr>,
    pub dns: DnsTarget,
    /// Per-probe timeout.
    pub timeout: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            api_server: ApiTarget::from_env(),
            gateway: None,
            dns: DnsTarget::default(),
            timeout: Duration::from_secs(3),
        }
    }
}

/// The real probes.
#[derive(Clone, Debug)]
pub struct ProbeSet {
    pub config: ProbeConfig,
}

impl ProbeSet {
    pub fn new(config: ProbeConfig) -> ProbeSet {
        ProbeSet { config }
    }

    /// Runs one probe, bounded by the configured timeout.
    pub async fn run_one(&self, kind: ProbeKind) -> ProbeOutcome {
        let started = Instant::now();
        let timeout = self.config.timeout;
        let result = tokio::time::timeout(timeout, async {
            match kind {
                ProbeKind::ApiServer => probe_api_server(self.config.api_server.as_ref()).await,
                ProbeKind::DefaultGateway => probe_gateway(self.config.gateway).await,
                ProbeKind::Dns => probe_dns(&self.config.dns, timeout).await,
            }
        })
        .await;
        let (passed, message) = match result {
            Ok(Ok(message)) => (true, message),
            Ok(Err(message)) => (false, message),
            Err(_) => (false, format!("timed out after {} ms", timeout.as_millis())),
        };
        ProbeOutcome {
            kind,
            passed,
            message,
            elapsed: started.elapsed(),
        }
    }
}

impl Probes for ProbeSet {
    fn run<'a>(&'a self, which: &'a ProbeKinds) -> BoxFuture<'a, ProbeReport> {
        Box::pin(async move {
            let outcomes = join_all(which.iter().map(|&k| self.run_one(k))).await;
            ProbeReport { outcomes }
        })
    }
}

async fn probe_api_server(target: Option<&ApiTarget>) -> Result<String, String> {
    let target = target.ok_or_else(|| "no API server address configured".to_string())?;
    let started = Instant::now();
    TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("TCP connect to {target}: {e}"))?;
    Ok(format!(
        "connected to {target} in {} ms",
        started.elapsed().as_millis()
    ))
}

// ICMP echo: an unprivileged "ping" datagram socket where net.ipv4.ping_group_range allows it
// (the kernel then fills in the identifier and checksum), else a raw socket (needs CAP_NET_RAW,
// which the privileged agent has). Neighbour resolution alone would not prove the gateway
// forwards, and reading it needs netlink state this module does not own.
async fn probe_gateway(gateway: Option<IpAddr>) -> Result<String, String> {
    let gateway = gateway.ok_or_else(|| "no default gateway observed".to_string())?;
    let started = Instant::now();
    let mut errors = Vec::new();
    for raw in [false, true] {
        match echo(gateway, raw).await {
            Ok(()) => {
                return Ok(format!(
                    "{gateway} answered an ICMP echo in {} ms",
                    started.elapsed().as_millis()
                ));
            }
            Err(e) => errors.push(format!("{} socket: {e}", if raw { "raw" } else { "ping" })),
        }
    }
    Err(format!(
        "no ICMP echo reply from {gateway} ({})",
        errors.join("; ")
    ))
}

static ECHO_SEQUENCE: AtomicU16 = AtomicU16::new(1);
const ECHO_ID: u16 = 0xa617;
const ECHO_PAYLOAD: &[u8] = b"agility-node-agent";

async fn echo(target: IpAddr, raw: bool) -> Result<(), String> {
    let (domain, protocol) = match target {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let ty = if raw { Type::RAW } else { Type::DGRAM };
    let socket = Socket::new(domain, ty, Some(protocol)).map_err(|e| e.to_string())?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    // tokio's UdpSocket drives any datagram-style socket; ICMP sockets qualify.
    let socket =
        UdpSocket::from_std(std::net::UdpSocket::from(socket)).map_err(|e| e.to_string())?;
    let seq = ECHO_SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let request = echo_request(target.is_ipv4(), seq);
    socket
        .send_to(&request, SocketAddr::new(target, 0))
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 1500];
    loop {
        let (n, from) = socket
            .recv_from(&mut buf)
            .await
            .map_err(|e| format!("receive: {e}"))?;
        if from.ip() != target {
            continue;
        }
        let packet = buf.get(..n).unwrap_or_default();
        // Raw IPv4 sockets deliver the IP header too; skip it (IHL words of 4 bytes).
        let icmp = if raw && target.is_ipv4() {
            let ihl = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
            packet.get(ihl..).unwrap_or_default()
        } else {
            packet
        };
        if is_echo_reply(icmp, target.is_ipv4(), seq, !raw) {
            return Ok(());
        }
    }
}

/// An ICMP (v4 or v6) echo request. The checksum is filled for IPv4; the kernel computes it for
/// ICMPv6 and for ping sockets.
fn echo_request(v4: bool, seq: u16) -> Vec<u8> {
    let mut packet = vec![if v4 { 8 } else { 128 }, 0, 0, 0];
    packet.extend_from_slice(&ECHO_ID.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(ECHO_PAYLOAD);
    if v4 {
        let sum = internet_checksum(&packet).to_be_bytes();
        packet[2] = sum[0];
        packet[3] = sum[1];
    }
    packet
}

/// Whether `icmp` is the reply to our request `seq`. Ping sockets rewrite the identifier (to
/// the socket's port), so it is only compared on raw sockets.
fn is_echo_reply(icmp: &[u8], v4: bool, seq: u16, any_id: bool) -> bool {
    let reply_type = if v4 { 0 } else { 129 };
    match icmp {
        [ty, 0, _, _, id_hi, id_lo, seq_hi, seq_lo, ..] => {
            *ty == reply_type
                && (any_id || u16::from_be_bytes([*id_hi, *id_lo]) == ECHO_ID)
                && u16::from_be_bytes([*seq_hi, *seq_lo]) == seq
        }
        _ => false,
    }
}

/// RFC 1071 ones' complement sum.
fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

async fn probe_dns(target: &DnsTarget, timeout: Duration) -> Result<String, String> {
    let servers = match &target.servers {
        Some(servers) => servers.clone(),
        None => {
            let text = std::fs::read_to_string(&target.resolv_conf)
                .map_err(|e| format!("read {}: {e}", target.resolv_conf.display()))?;
            nameservers(&text)
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 53))
                .collect()
        }
    };
    if servers.is_empty() {
        return Err(format!("no nameserver in {}", target.resolv_conf.display()));
    }
    let name_servers = servers
        .iter()
        .map(|s| {
            let mut udp = ConnectionConfig::udp();
            udp.port = s.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = s.port();
            NameServerConfig::new(s.ip(), true, vec![udp, tcp])
        })
        .collect();
    let mut opts = ResolverOpts::default();
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.cache_size = 0;
    opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    let resolver = Resolver::builder_with_config(
        ResolverConfig::from_name_servers(name_servers),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .map_err(|e| format!("resolver: {e}"))?;
    let servers_text = servers
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    match resolver.lookup_ip(target.name.as_str()).await {
        Ok(ips) => Ok(format!(
            "{} resolved to {} via {servers_text}",
            target.name,
            ips.iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        // A DNS-level answer (NXDOMAIN, no records, even SERVFAIL) means a server was reached.
        Err(NetError::Dns(e)) => Ok(format!(
            "a resolver in {servers_text} answered for {}: {e}",
            target.name
        )),
        Err(e) => Err(format!("lookup of {} via {servers_text}: {e}", target.name)),
    }
}

/// The `nameserver` addresses of a resolv.conf (in order; malformed lines are skipped).
pub fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                // An IPv6 zone (`fe80::1%eth0`) is dropped: IpAddr cannot carry it.
                (Some("nameserver"), Some(addr)) => addr.split('%').next()?.parse().ok(),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameservers() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver  fd00::53\n\
                    nameserver fe80::1%eth0\nnameserver bogus\noptions ndots:5\n";
        let got = nameservers(text);
        assert_eq!(
            got,
            vec![
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "fd00::53".parse().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn echo_request_checksum_verifies() {
        let packet = echo_request(true, 7);
        // A packet including its checksum sums to 0xffff, i.e. the complement is 0.
        assert_eq!(internet_checksum(&packet), 0);
        assert_eq!(&packet[4..8], &[0xa6, 0x17, 0, 7]);
    }

    #[test]
    fn recognises_replies() {
        let mut reply = echo_request(true, 9);
        reply[0] = 0;
        assert!(is_echo_reply(&reply, true, 9, false));
        assert!(!is_echo_reply(&reply, true, 8, false));
        reply[4] = 0;
        assert!(!is_echo_reply(&reply, true, 9, false));
        assert!(is_echo_reply(&reply, true, 9, true));
        assert!(!is_echo_reply(&reply[..6], true, 9, true));
        let mut v6 = echo_request(false, 3);
        v6[0] = 129;
        assert!(is_echo_reply(&v6, false, 3, false));
    }

    #[test]
    fn enabled_kinds_follow_spec() {
        let spec = ProbeSpec {
            dns: false,
            ..ProbeSpec::default()
        };
        assert_eq!(
            kinds_to_string(&enabled_kinds(&spec)),
            "ApiServer, DefaultGateway"
        );
        assert_eq!(kinds_to_string(&ProbeKinds::new()), "none");
    }

    #[test]
    fn api_target_display_brackets_ipv6() {
        let t = ApiTarget {
            host: "fd00::1".into(),
            port: 6443,
        };
        assert_eq!(t.to_string(), "[fd00::1]:6443");
    }

    #[test]
    fn report_sets() {
        let all: ProbeKinds = ProbeKind::ALL.into_iter().collect();
        let passed: ProbeKinds = [ProbeKind::Dns].into_iter().collect();
        let r = ProbeReport::from_sets(&all, &passed, "down");
        assert_eq!(r.passed(), passed);
        assert_eq!(r.failures().len(), 2);
    }
}

/// Scriptable probes for unit tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod fake {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    #[derive(Clone, Copy, Debug)]
    pub enum Pb {
        Pass,
        Fail,
        Hang,
    }

    /// Each round takes the next script entry (the last one repeats); kinds missing from an
    /// entry fail.
    #[derive(Debug)]
    pub struct FakeProbes {
        pub script: Mutex<Vec<BTreeMap<ProbeKind, Pb>>>,
        pub rounds: Mutex<Vec<ProbeKinds>>,
    }

    impl FakeProbes {
        pub fn new(script: Vec<Vec<(ProbeKind, Pb)>>) -> FakeProbes {
            FakeProbes {
                script: Mutex::new(
                    script
                        .into_iter()
                        .map(|r| r.into_iter().collect())
                        .collect(),
                ),
                rounds: Mutex::new(Vec::new()),
            }
        }
        /// All kinds behave as `pb` in every round.
        pub fn all(pb: Pb) -> FakeProbes {
            FakeProbes::new(vec![ProbeKind::ALL.iter().map(|&k| (k, pb)).collect()])
        }
        pub fn rounds(&self) -> Vec<ProbeKinds> {
            self.rounds.lock().unwrap().clone()
        }
    }

    impl Probes for FakeProbes {
        fn run<'a>(&'a self, which: &'a ProbeKinds) -> BoxFuture<'a, ProbeReport> {
            Box::pin(async move {
                self.rounds.lock().unwrap().push(which.clone());
                let round = {
                    let mut s = self.script.lock().unwrap();
                    if s.len() > 1 {
                        s.remove(0)
                    } else {
                        s.first().cloned().unwrap_or_default()
                    }
                };
                let mut outcomes = Vec::new();
                for &kind in which {
                    let pb = round.get(&kind).copied().unwrap_or(Pb::Fail);
                    if let Pb::Hang = pb {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    outcomes.push(ProbeOutcome {
                        kind,
                        passed: matches!(pb, Pb::Pass),
                        message: format!("{pb:?}"),
                        elapsed: Duration::ZERO,
                    });
                }
                ProbeReport { outcomes }
            })
        }
    }
}
