//! The NetworkPolicy enforcing the allowlist. Admitted on the Redis port: the allowlist (IPs,
//! CIDRs, pod/namespace selectors; by default the instance's own namespace), the instance's own
//! pods (replication, cluster bus) and the operator (health probes, failover). The exporter port
//! is open to every namespace so any Prometheus can scrape it.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use crate::crd::{Edition, RedisInstance};
use crate::names;
use crate::plan::Plan;

pub use agility_core::allowlist::OperatorPeer;
use agility_core::allowlist::{match_labels as selector, tcp};

/// The allowlist's peers.
pub fn allowlist_peers(instance: &RedisInstance) -> Vec<NetworkPolicyPeer> {
    agility_core::allowlist::allowlist_peers(instance.spec.allowlist.as_ref())
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
    let operator_pods = operator.peer();
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
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9121))
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
