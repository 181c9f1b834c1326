//! Reaching Services and pods from the test process.
//!
//! On the local node the harness routes the pod and Service ranges from the host into the node's
//! network namespace, so tests connect to pod IPs and ClusterIPs directly and resolve Service names
//! through the cluster DNS. On clusters without such routes (kind) set
//! `AGILITY_E2E_REACH=port-forward`: connections then go through the API server's port-forward.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::net::TcpListener;

use crate::error::{Error, Result};

/// The cluster DNS Service address of the local node.
pub const DEFAULT_DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// How the tests reach the cluster network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Direct TCP to pod IPs and ClusterIPs; names through the cluster DNS at `dns`.
    Route { dns: IpAddr },
    /// Through the API server's port-forward to a pod.
    PortForward,
}

/// How long [`Reach::detect`] waits for the cluster DNS to accept a TCP connection.
const DETECT_TIMEOUT: Duration = Duration::from_secs(2);

impl Reach {
    /// From `AGILITY_E2E_REACH` (`route`, `port-forward`, or `auto`/unset: [`Reach::detect`]) and
    /// `AGILITY_E2E_DNS` (the cluster DNS address, default 10.96.0.10).
    pub async fn from_env() -> Result<Self> {
        let (mode, dns) = Self::parse(
            std::env::var("AGILITY_E2E_REACH").ok().as_deref(),
            std::env::var("AGILITY_E2E_DNS").ok().as_deref(),
        )?;
        Ok(match mode {
            Some(reach) => reach,
            None => Self::detect(dns).await,
        })
    }

    /// The explicit mode (`None`: detect) and the DNS address.
    fn parse(mode: Option<&str>, dns: Option<&str>) -> Result<(Option<Self>, IpAddr)> {
        let dns = match dns {
            None | Some("") => IpAddr::V4(DEFAULT_DNS),
            Some(d) => d
                .parse()
                .map_err(|_| Error::Dns(format!("AGILITY_E2E_DNS={d:?} is not an IP address")))?,
        };
        let mode = match mode {
            None | Some("") | Some("auto") => None,
            Some("route") => Some(Reach::Route { dns }),
            Some("port-forward") => Some(Reach::PortForward),
            Some(other) => {
                return Err(Error::NoCluster(format!(
                    "AGILITY_E2E_REACH={other:?}: expected route, port-forward or auto"
                )));
            }
        };
        Ok((mode, dns))
    }

    /// Route mode when the cluster DNS Service at `dns` accepts TCP from here (so the Service
    /// range is routed to the cluster), port-forward otherwise.
    pub async fn detect(dns: IpAddr) -> Self {
        let probe = tokio::net::TcpStream::connect(SocketAddr::new(dns, 53));
        match tokio::time::timeout(DETECT_TIMEOUT, probe).await {
            Ok(Ok(_)) => Reach::Route { dns },
            _ => Reach::PortForward,
        }
    }

    /// Resolves a name (e.g. `redis.ns.svc.cluster.local`) through the cluster DNS.
    pub async fn resolve(&self, name: &str) -> Result<IpAddr> {
        let Reach::Route { dns } = self else {
            return Err(Error::Dns("names resolve only in route mode".into()));
        };
        let config = ResolverConfig::from_name_servers(vec![NameServerConfig::udp_and_tcp(*dns)]);
        let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .build()
            .map_err(|e| Error::Dns(e.to_string()))?;
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let answer = resolver
            .lookup_ip(fqdn.as_str())
            .await
            .map_err(|e| Error::Dns(format!("{name}: {e}")))?;
        answer
            .iter()
            .next()
            .ok_or_else(|| Error::Dns(format!("{name}: no address")))
    }

    /// An address that reaches `port` of Service `svc` in `ns`: by DNS name in route mode, through
    /// a port-forward to one of its ready endpoints otherwise.
    pub async fn service(
        &self,
        client: &Client,
        ns: &str,
        svc: &str,
        port: u16,
    ) -> Result<SocketAddr> {
        match self {
            Reach::Route { .. } => {
                let ip = self
                    .resolve(&format!("{svc}.{ns}.svc.cluster.local"))
                    .await?;
                Ok(SocketAddr::new(ip, port))
            }
            Reach::PortForward => {
                let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
                let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={svc}"));
                let pod = slices
                    .list(&lp)
                    .await?
                    .items
                    .into_iter()
                    .flat_map(|s| s.endpoints)
                    .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
                    .find_map(|e| e.target_ref.and_then(|r| r.name))
                    .ok_or_else(|| {
                        Error::Dns(format!("service {ns}/{svc} has no ready endpoint"))
                    })?;
                forward(client, ns, &pod, port).await
            }
        }
    }

    /// An address that reaches `port` of `pod` in `ns`.
    pub async fn pod(&self, client: &Client, ns: &str, pod: &str, port: u16) -> Result<SocketAddr> {
        match self {
            Reach::Route { .. } => {
                let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
                let ip = pods
                    .get(pod)
                    .await?
                    .status
                    .and_then(|s| s.pod_ip)
                    .ok_or_else(|| Error::Dns(format!("pod {ns}/{pod} has no IP yet")))?;
                let ip: IpAddr = ip
                    .parse()
                    .map_err(|_| Error::Dns(format!("pod IP {ip:?} is not an address")))?;
                Ok(SocketAddr::new(ip, port))
            }
            Reach::PortForward => forward(client, ns, pod, port).await,
        }
    }
}

/// A local listener on an ephemeral port whose connections are forwarded to `pod:port`; it lives
/// as long as the test's runtime.
pub async fn forward(client: &Client, ns: &str, pod: &str, port: u16) -> Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let local = listener.local_addr()?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = pod.to_string();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let pods = pods.clone();
            let pod = pod.clone();
            tokio::spawn(async move {
                let Ok(mut pf) = pods.portforward(&pod, &[port]).await else {
                    return;
                };
                let Some(mut upstream) = pf.take_stream(port) else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                drop(upstream);
                let _ = pf.join().await;
            });
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_from_environment_values() {
        let default_dns = IpAddr::V4(DEFAULT_DNS);
        assert_eq!(Reach::parse(None, None).unwrap(), (None, default_dns));
        assert_eq!(
            Reach::parse(Some("auto"), None).unwrap(),
            (None, default_dns)
        );
        assert_eq!(
            Reach::parse(Some("route"), None).unwrap().0,
            Some(Reach::Route { dns: default_dns })
        );
        assert_eq!(
            Reach::parse(Some("port-forward"), None).unwrap().0,
            Some(Reach::PortForward)
        );
        let custom: IpAddr = "10.0.0.10".parse().unwrap();
        assert_eq!(
            Reach::parse(Some("route"), Some("10.0.0.10")).unwrap(),
            (Some(Reach::Route { dns: custom }), custom)
        );
        assert!(Reach::parse(Some("tunnel"), None).is_err());
        assert!(Reach::parse(Some("route"), Some("not-an-ip")).is_err());
    }

    #[tokio::test]
    async fn detection_falls_back_to_port_forward_without_a_route() {
        // Nothing listens on port 53 of this loopback address: no route to a cluster DNS.
        let unreachable: IpAddr = "127.0.0.77".parse().unwrap();
        assert_eq!(Reach::detect(unreachable).await, Reach::PortForward);
    }
}
