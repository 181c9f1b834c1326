//! The client allowlist every data product offers (IPs/CIDRs and pod/namespace selectors) and the
//! NetworkPolicy peers it becomes. Products own their NetworkPolicy (ports differ); the types and
//! the peer list are shared so every product validates and enforces the same way.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{IPBlock, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The allowlist: up to 1,000 IPs/CIDRs plus pod/namespace selectors.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Allowlist {
    /// IPs or CIDRs (IPv4 or IPv6) allowed to connect, at most 1,000.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), schema_with = "ip_blocks_schema")]
    pub ip_blocks: Vec<String>,
    /// Pods allowed to connect (in the namespaces of `namespaceSelector`, or this namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub peers: Vec<Peer>,
    /// Keep the default rule admitting every pod of the instance's namespace (default true).
    #[serde(default = "yes")]
    pub same_namespace: bool,
}

fn yes() -> bool {
    true
}

/// Pods allowed to connect.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    /// Pods with these labels (all pods when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// In namespaces with these labels (the instance's namespace when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

fn ip_blocks_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "maxItems": 1000,
        "items": {
            "type": "string",
            "maxLength": 64,
            "x-kubernetes-validations": [{
                "rule": "isIP(self) || isCIDR(self)",
                "messageExpression": "'not an IP address or CIDR: ' + self",
            }],
        },
    })
}

/// Where the operator runs, so its probes are admitted by every instance's NetworkPolicy.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OperatorPeer {
    /// The operator's namespace.
    pub namespace: String,
    /// Labels of the operator pods.
    pub pod_labels: BTreeMap<String, String>,
}

impl OperatorPeer {
    /// The operator as the chart deploys it: `POD_NAMESPACE` (default `agility-system`) and the
    /// chart's operator pod labels.
    pub fn from_env() -> Self {
        OperatorPeer {
            namespace: std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "agility-system".into()),
            pod_labels: [
                ("app.kubernetes.io/part-of".to_owned(), "agility".to_owned()),
                (
                    "app.kubernetes.io/component".to_owned(),
                    "operator".to_owned(),
                ),
            ]
            .into(),
        }
    }

    /// The NetworkPolicy peer matching the operator's pods in its namespace.
    pub fn peer(&self) -> NetworkPolicyPeer {
        NetworkPolicyPeer {
            pod_selector: Some(match_labels(self.pod_labels.clone())),
            namespace_selector: Some(match_labels(
                [(
                    "kubernetes.io/metadata.name".to_owned(),
                    self.namespace.clone(),
                )]
                .into(),
            )),
            ..Default::default()
        }
    }
}

/// A selector matching exactly these labels.
pub fn match_labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..Default::default()
    }
}

/// A TCP port of a NetworkPolicy rule.
pub fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
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

/// The allowlist's peers (unset: every pod of the instance's namespace).
pub fn allowlist_peers(allowlist: Option<&Allowlist>) -> Vec<NetworkPolicyPeer> {
    let allow = allowlist.cloned().unwrap_or(Allowlist {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;

    #[test]
    fn unset_admits_the_own_namespace_only() {
        let peers = allowlist_peers(None);
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].pod_selector, Some(LabelSelector::default()));
        assert!(peers[0].namespace_selector.is_none());
    }

    #[test]
    fn entries_become_peers() {
        let allow = Allowlist {
            ip_blocks: vec!["10.1.2.3".into(), "192.168.0.0/16".into(), "fd00::1".into()],
            peers: vec![Peer {
                pod_selector: Some(match_labels([("app".to_owned(), "web".to_owned())].into())),
                namespace_selector: None,
            }],
            same_namespace: false,
        };
        let peers = allowlist_peers(Some(&allow));
        let cidrs: Vec<_> = peers
            .iter()
            .filter_map(|p| p.ip_block.as_ref().map(|b| b.cidr.clone()))
            .collect();
        assert_eq!(cidrs, vec!["10.1.2.3/32", "192.168.0.0/16", "fd00::1/128"]);
        assert_eq!(peers.len(), 4);
    }

    #[test]
    fn operator_peer_selects_its_namespace() {
        let op = OperatorPeer {
            namespace: "ops".into(),
            pod_labels: [("a".to_owned(), "b".to_owned())].into(),
        };
        let p = op.peer();
        assert_eq!(
            p.namespace_selector.unwrap().match_labels.unwrap()["kubernetes.io/metadata.name"],
            "ops"
        );
    }
}
