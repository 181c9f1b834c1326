//! The NetworkPolicy enforcing the allowlist on the MySQL port: the allowlist (by default the
//! instance's own namespace), the instance's own pods (replication) and the operator (probes,
//! failover, accounts).

use agility_core::allowlist::{OperatorPeer, allowlist_peers, match_labels, tcp};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use kube::ResourceExt;

use crate::crd::RdsInstance;
use crate::names;

/// The NetworkPolicy.
pub fn network_policy(instance: &RdsInstance, operator: &OperatorPeer) -> NetworkPolicy {
    let own_pods = NetworkPolicyPeer {
        pod_selector: Some(match_labels(super::pod_selector(instance))),
        ..Default::default()
    };
    let mut ingress = vec![NetworkPolicyIngressRule {
        from: Some(vec![own_pods, operator.peer()]),
        ports: Some(vec![tcp(names::MYSQL_PORT)]),
    }];
    let clients = allowlist_peers(instance.spec.allowlist.as_ref());
    if !clients.is_empty() {
        ingress.push(NetworkPolicyIngressRule {
            from: Some(clients),
            ports: Some(vec![tcp(names::MYSQL_PORT)]),
        });
    }
    NetworkPolicy {
        metadata: super::meta(
            instance,
            names::network_policy(&instance.name_any()),
            "allowlist",
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(match_labels(super::pod_selector(instance))),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use crate::build::fixtures::{instance, spec};
    use agility_core::allowlist::Allowlist;

    fn operator() -> OperatorPeer {
        OperatorPeer {
            namespace: "agility-system".into(),
            pod_labels: [("app.kubernetes.io/name".to_owned(), "agility".to_owned())].into(),
        }
    }

    #[test]
    fn default_admits_namespace_own_pods_and_operator() {
        let np = network_policy(&instance(spec()), &operator()).spec.unwrap();
        let rules = np.ingress.unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].from.as_ref().unwrap().len(), 2);
        assert_eq!(rules[1].from.as_ref().unwrap().len(), 1, "own namespace");
    }

    #[test]
    fn empty_allowlist_admits_only_internal_peers() {
        let mut s = spec();
        s.allowlist = Some(Allowlist {
            same_namespace: false,
            ..Default::default()
        });
        let rules = network_policy(&instance(s), &operator())
            .spec
            .unwrap()
            .ingress
            .unwrap();
        assert_eq!(rules.len(), 1);
    }

    #[test]
    fn ip_blocks_are_admitted_on_the_mysql_port() {
        let mut s = spec();
        s.allowlist = Some(Allowlist {
            ip_blocks: vec!["10.0.0.7".into()],
            same_namespace: false,
            ..Default::default()
        });
        let rules = network_policy(&instance(s), &operator())
            .spec
            .unwrap()
            .ingress
            .unwrap();
        let peer = &rules[1].from.as_ref().unwrap()[0];
        assert_eq!(peer.ip_block.as_ref().unwrap().cidr, "10.0.0.7/32");
    }
}
