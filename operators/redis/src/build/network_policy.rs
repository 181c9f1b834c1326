//! The NetworkPolicy enforcing the allowlist. Admitted on the Redis port: the allowlist (IPs,
//! CIDRs, pod/namespace selectors; by default the instance's own namespace), the instance's own
//! pods (replication, cluster bus) and the operator (health probes, failover). The exporter port
//! is open to every namespace so any Prometheus can scrape it.

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::crd::{Edition, RedisInstance};
use crate::names;
use crate::plan::Plan;

/// Where the operator runs, so its probes are admitted.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OperatorPeer {
    /// The operator's namespace.
    pub namespace: String,
    /// Labels of the operator pods.
    pub pod_labels: std::collections::BTreeMap<String, String>,
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn selector(labels: std::collections::BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..Default::default()
    }
}

/// `a.b.c.d` → `a.b.c.d/32` (NetworkPolicy ipBlocks take CIDRs only).
pub fn as_cidr(entry: &str) -> String {
    if entry.contains('/') {
        entry.to_owned()
    } else if entry.contains(':') {
        format!("{entry}/128")
    } else {
        format!("{entry}/32")
    }
}

/// The allowlist's peers.
pub fn allowlist_peers(instance: &RedisInstance) -> Vec<NetworkPolicyPeer> {
    let allow = instance
        .spec
        .allowlist
        .clone()
        .unwrap_or_else(|| crate::crd::Allowlist {
            same_namespace: true,
            ..Default::default()
        });
    let mut peers = Vec::new();
    if allow.same_namespace {
        peers.push(NetworkPolicyPeer {
            pod_selector: Some(LabelSelector::default()),
            ..Default::default()
        });
    }
    for block in &allow.ip_blocks {
        peers.push(NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: as_cidr(block.trim()),
                except: None,
            }),
            ..Default::default()
        });
    }
    for p in &allow.peers {
        peers.push(NetworkPolicyPeer {
            pod_selector: Some(p.pod_selector.clone().unwrap_or_default()),
            namespace_selector: p.namespace_selector.clone(),
            ..Default::default()
        });
    }
    peers
}

/// The NetworkPolicy.
pub fn network_policy(
    instance: &RedisInstance,
    plan: &Plan,
    operator: &OperatorPeer,
) -> NetworkPolicy {
    let mut data_ports = vec![tcp(names::REDIS_PORT)];
    if plan.edition == Edition::Cluster {
        data_ports.push(tcp(names::CLUSTER_BUS_PORT));
    }
    let own_pods = NetworkPolicyPeer {
        pod_selector: Some(selector(super::pod_selector(instance))),
        ..Default::default()
    };
    let operator_pods = NetworkPolicyPeer {
        pod_selector: Some(selector(operator.pod_labels.clone())),
        namespace_selector: Some(selector(
            [(
                "kubernetes.io/metadata.name".to_owned(),
                operator.namespace.clone(),
            )]
            .into(),
        )),
        ..Default::default()
    };
    let mut ingress = vec![NetworkPolicyIngressRule {
        from: Some(vec![own_pods, operator_pods]),
        ports: Some(data_ports),
    }];
    let clients = allowlist_peers(instance);
    if !clients.is_empty() {
        ingress.push(NetworkPolicyIngressRule {
            from: Some(clients),
            ports: Some(vec![tcp(names::REDIS_PORT)]),
        });
    }
    if plan.exporter {
        ingress.push(NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector::default()),
                ..Default::default()
            }]),
            ports: Some(vec![tcp(names::EXPORTER_PORT)]),
        });
    }
    NetworkPolicy {
        metadata: super::meta(
            instance,
            names::network_policy(&instance.name_any()),
            "allowlist",
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(super::pod_selector(instance))),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::build::fixtures::instance;
    use crate::crd::{Allowlist, Peer, RedisInstanceSpec};
    use crate::plan::{OperatorSettings, plan};

    fn operator() -> OperatorPeer {
        OperatorPeer {
            namespace: "agility-system".into(),
            pod_labels: [("app.kubernetes.io/name".to_owned(), "agility".to_owned())].into(),
        }
    }

    fn spec(allowlist: Option<Allowlist>) -> RedisInstanceSpec {
        RedisInstanceSpec {
            instance_class: Some("redis.master.small.special2x".into()),
            allowlist,
            ..Default::default()
        }
    }

    #[test]
    fn default_admits_the_namespace_own_pods_and_the_operator() {
        let i = instance(spec(None));
        let p = plan(&i.spec, &OperatorSettings::default()).unwrap();
        let np = network_policy(&i, &p, &operator()).spec.unwrap();
        let rules = np.ingress.unwrap();
        assert_eq!(rules.len(), 3);
        let internal = rules[0].from.as_ref().unwrap();
        assert_eq!(
            internal[1]
                .namespace_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["kubernetes.io/metadata.name"],
            "agility-system"
        );
        let clients = rules[1].from.as_ref().unwrap();
        assert_eq!(clients.len(), 1);
        assert_eq!(clients[0].pod_selector, Some(LabelSelector::default()));
        assert!(
            clients[0].namespace_selector.is_none(),
            "own namespace only"
        );
        assert_eq!(
            rules[2].ports.as_ref().unwrap()[0].port,
            Some(IntOrString::Int(9121))
        );
    }

    #[test]
    fn allowlist_entries_become_peers() {
        let i = instance(spec(Some(Allowlist {
            ip_blocks: vec!["10.1.2.3".into(), "192.168.0.0/16".into(), "fd00::1".into()],
            peers: vec![Peer {
                pod_selector: Some(selector([("app".to_owned(), "web".to_owned())].into())),
                namespace_selector: None,
            }],
            same_namespace: false,
        })));
        let peers = allowlist_peers(&i);
        let cidrs: Vec<_> = peers
            .iter()
            .filter_map(|p| p.ip_block.as_ref().map(|b| b.cidr.clone()))
            .collect();
        assert_eq!(cidrs, vec!["10.1.2.3/32", "192.168.0.0/16", "fd00::1/128"]);
        assert_eq!(peers.len(), 4);
    }

    #[test]
    fn empty_allowlist_leaves_only_internal_rules() {
        let i = instance(spec(Some(Allowlist {
            same_namespace: false,
            ..Default::default()
        })));
        let p = plan(&i.spec, &OperatorSettings::default()).unwrap();
        let rules = network_policy(&i, &p, &operator())
            .spec
            .unwrap()
            .ingress
            .unwrap();
        assert_eq!(rules.len(), 2, "internal + metrics");
    }
}
