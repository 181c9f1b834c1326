//! The Garage side of a store: its config, admin Secret, StatefulSet, Services and PDB.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use serde_json::json;

use super::{COMPONENT_GARAGE, Settings, child_labels, restricted, secret_data, selector, typed};
use crate::crd::ObjectStore;
use crate::names;

/// UID/GID of the garage user in the image.
const GARAGE_UID: i64 = 65532;
/// Where the node's volume is mounted (metadata and data in two directories of it).
const DATA_PATH: &str = "/var/lib/garage";
const CONFIG_PATH: &str = "/etc/garage";
const CONFIG_FILE: &str = "garage.toml";

/// The generated secrets of a store (kept in its admin Secret, created once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminSecrets {
    /// Bearer token of the admin API (the operator's only).
    pub admin_token: String,
    /// The RPC secret every node of the store shares (32 bytes, hex).
    pub rpc_secret: String,
}

impl AdminSecrets {
    /// New secrets from the OS-seeded CSPRNG.
    pub fn generate() -> Self {
        use rand::Rng;
        let mut rpc = [0u8; 32];
        let mut token = [0u8; 32];
        rand::rng().fill_bytes(&mut rpc);
        rand::rng().fill_bytes(&mut token);
        AdminSecrets {
            admin_token: to_hex(&token),
            rpc_secret: to_hex(&rpc),
        }
    }
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// garage.toml. Secrets come from the environment (Garage refuses secret files readable by a
/// group, which is how Kubernetes mounts Secret volumes with an fsGroup).
pub fn config_toml(store: &ObjectStore) -> String {
    let ns = store.namespace().unwrap_or_default();
    format!(
        r#"# Written by the Agility operator for ObjectStore {ns}/{name}.
metadata_dir = "{DATA_PATH}/meta"
data_dir = "{DATA_PATH}/data"
db_engine = "lmdb"
replication_factor = {rf}
# Read-after-write: a PUT acknowledged is readable at once from any node (quorum reads/writes).
consistency_mode = "consistent"
rpc_bind_addr = "0.0.0.0:{rpc}"
# A peer that stops answering (frozen, partitioned) holds a request only this long before Garage
# asks another replica; its default (300 s) would stall reads until the peer is declared down.
rpc_timeout_msec = 5000
metadata_auto_snapshot_interval = "6h"

[s3_api]
api_bind_addr = "0.0.0.0:{s3}"
s3_region = "{region}"

[s3_web]
bind_addr = "0.0.0.0:{web}"
root_domain = ".{web_domain}"

[admin]
api_bind_addr = "0.0.0.0:{admin}"
"#,
        name = store.name_any(),
        rf = store.spec.replication_factor,
        rpc = names::GARAGE_RPC_PORT,
        s3 = names::GARAGE_S3_PORT,
        web = names::GARAGE_WEB_PORT,
        admin = names::GARAGE_ADMIN_PORT,
        region = store.spec.region,
        web_domain = names::website_domain(&store.name_any(), &ns),
    )
}

/// The ConfigMap with garage.toml.
pub fn config_map(store: &ObjectStore) -> agility_core::Result<ConfigMap> {
    typed(
        "ConfigMap",
        json!({
            "metadata": {
                "name": names::garage_config(&store.name_any()),
                "namespace": store.namespace(),
                "labels": child_labels(store, COMPONENT_GARAGE),
            },
            "data": { CONFIG_FILE: config_toml(store) },
        }),
    )
}

/// The admin Secret (admin token, RPC secret).
pub fn admin_secret(store: &ObjectStore, s: &AdminSecrets) -> agility_core::Result<Secret> {
    typed(
        "Secret",
        json!({
            "metadata": {
                "name": names::admin_secret(&store.name_any()),
                "namespace": store.namespace(),
                "labels": child_labels(store, COMPONENT_GARAGE),
            },
            "type": "Opaque",
            "data": secret_data(&json!({
                names::ADMIN_TOKEN_KEY: s.admin_token,
                names::RPC_SECRET_KEY: s.rpc_secret,
            })),
        }),
    )
}

fn secret_env(env: &str, secret: &str, key: &str) -> serde_json::Value {
    json!({"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
}

/// The Garage nodes. Pods start in parallel (nodes are symmetric; the operator joins them and
/// assigns the layout once they answer), each with its own volume kept after deletion.
pub fn statefulset(
    store: &ObjectStore,
    settings: &Settings,
    config_hash: &str,
) -> agility_core::Result<StatefulSet> {
    let name = store.name_any();
    let admin = names::admin_secret(&name);
    let resources = match &store.spec.resources {
        Some(r) => serde_json::to_value(r).unwrap_or_default(),
        None => json!({
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        }),
    };
    let mut pvc_spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": store.spec.storage.size}},
    });
    if let Some(class) = &store.spec.storage.storage_class_name {
        pvc_spec["storageClassName"] = json!(class);
    }
    let image = store
        .spec
        .image
        .clone()
        .unwrap_or_else(|| settings.garage_image.clone());
    let init = if store.spec.storage.volume_permissions {
        vec![json!({
            "name": "volume-permissions",
            "image": image,
            "imagePullPolicy": settings.image_pull_policy,
            "command": ["/bin/busybox", "chown", format!("{GARAGE_UID}:{GARAGE_UID}"), DATA_PATH],
            "securityContext": {
                "runAsUser": 0, "runAsNonRoot": false, "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]},
            },
            "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}},
            "volumeMounts": [{"name": "data", "mountPath": DATA_PATH}],
        })]
    } else {
        vec![]
    };
    typed(
        "StatefulSet",
        json!({
            "metadata": {
                "name": names::statefulset(&name),
                "namespace": store.namespace(),
                "labels": child_labels(store, COMPONENT_GARAGE),
            },
            "spec": {
                "replicas": store.spec.nodes,
                "serviceName": names::nodes_service(&name),
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": selector(store, COMPONENT_GARAGE)},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "template": {
                    "metadata": {
                        "labels": child_labels(store, COMPONENT_GARAGE),
                        "annotations": {"oss.agility.dev/config-hash": config_hash},
                    },
                    "spec": {
                        "automountServiceAccountToken": false,
                        "enableServiceLinks": false,
                        "securityContext": {
                            "runAsUser": GARAGE_UID, "runAsGroup": GARAGE_UID, "fsGroup": GARAGE_UID,
                            "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": selector(store, COMPONENT_GARAGE)},
                            },
                        }]}},
                        "initContainers": init,
                        "containers": [{
                            "name": "garage",
                            "image": image,
                            "imagePullPolicy": settings.image_pull_policy,
                            "args": ["-c", format!("{CONFIG_PATH}/{CONFIG_FILE}"), "server"],
                            "env": [
                                secret_env("GARAGE_RPC_SECRET", &admin, names::RPC_SECRET_KEY),
                                secret_env("GARAGE_ADMIN_TOKEN", &admin, names::ADMIN_TOKEN_KEY),
                                {"name": "RUST_LOG", "value": "garage=info"},
                            ],
                            "ports": [
                                {"name": "s3", "containerPort": names::GARAGE_S3_PORT, "protocol": "TCP"},
                                {"name": "rpc", "containerPort": names::GARAGE_RPC_PORT, "protocol": "TCP"},
                                {"name": "web", "containerPort": names::GARAGE_WEB_PORT, "protocol": "TCP"},
                                {"name": "admin", "containerPort": names::GARAGE_ADMIN_PORT, "protocol": "TCP"},
                            ],
                            // Garage's /health is 200 once this node can serve requests (a layout
                            // is applied and enough nodes for a quorum answer).
                            "readinessProbe": {
                                "httpGet": {"path": "/health", "port": "admin"},
                                "periodSeconds": 2, "timeoutSeconds": 2, "failureThreshold": 2,
                            },
                            "livenessProbe": {
                                "tcpSocket": {"port": "admin"},
                                "initialDelaySeconds": 10, "periodSeconds": 10, "failureThreshold": 6,
                            },
                            "resources": resources,
                            "securityContext": restricted(),
                            "volumeMounts": [
                                {"name": "data", "mountPath": DATA_PATH},
                                {"name": "config", "mountPath": CONFIG_PATH, "readOnly": true},
                            ],
                        }],
                        "volumes": [
                            {"name": "config", "configMap": {"name": names::garage_config(&name)}},
                        ],
                    },
                },
                "volumeClaimTemplates": [{
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "data", "labels": selector(store, COMPONENT_GARAGE)},
                    "spec": pvc_spec,
                }],
            },
        }),
    )
}

/// A Service of the Garage nodes named `name` with `spec` (the selector is added).
fn garage_service(
    store: &ObjectStore,
    name: String,
    mut spec: serde_json::Value,
) -> agility_core::Result<Service> {
    spec["selector"] = json!(selector(store, COMPONENT_GARAGE));
    typed(
        "Service",
        json!({
            "metadata": {"name": name, "namespace": store.namespace(),
                         "labels": child_labels(store, COMPONENT_GARAGE)},
            "spec": spec,
        }),
    )
}

/// `<store>-nodes`: headless, so each node has a stable DNS name; not-ready nodes are listed too
/// (a node is not Ready until it has joined the others).
pub fn nodes_service(store: &ObjectStore) -> agility_core::Result<Service> {
    garage_service(
        store,
        names::nodes_service(&store.name_any()),
        json!({
            "clusterIP": "None",
            "publishNotReadyAddresses": true,
            "ports": [{"name": "rpc", "port": names::GARAGE_RPC_PORT, "targetPort": "rpc", "protocol": "TCP"}],
        }),
    )
}

/// `<store>-internal`: Garage's S3 and website ports across the Ready nodes, for the gateway.
pub fn internal_service(store: &ObjectStore) -> agility_core::Result<Service> {
    garage_service(
        store,
        names::internal_service(&store.name_any()),
        json!({"ports": [
            {"name": "s3", "port": names::GARAGE_S3_PORT, "targetPort": "s3", "protocol": "TCP"},
            {"name": "web", "port": names::GARAGE_WEB_PORT, "targetPort": "web", "protocol": "TCP"},
        ]}),
    )
}

/// `<store>-admin`: Garage's admin API and `/metrics` (scraped by Prometheus; the admin API needs
/// the token).
pub fn admin_service(store: &ObjectStore) -> agility_core::Result<Service> {
    garage_service(
        store,
        names::admin_service(&store.name_any()),
        json!({"ports": [
            {"name": "admin", "port": names::GARAGE_ADMIN_PORT, "targetPort": "admin", "protocol": "TCP"},
        ]}),
    )
}

/// With 3 copies a quorum is 2: at most one node may be drained at a time. With fewer copies
/// every node holds data no other has a quorum of, so none may be evicted voluntarily.
pub fn pdb(store: &ObjectStore) -> agility_core::Result<PodDisruptionBudget> {
    let max_unavailable = if store.spec.replication_factor >= 3 {
        1
    } else {
        0
    };
    typed(
        "PodDisruptionBudget",
        json!({
            "metadata": {"name": names::statefulset(&store.name_any()), "namespace": store.namespace(),
                         "labels": child_labels(store, COMPONENT_GARAGE)},
            "spec": {
                "maxUnavailable": max_unavailable,
                "selector": {"matchLabels": selector(store, COMPONENT_GARAGE)},
            },
        }),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::build::fixtures::store;

    #[test]
    fn config_carries_replication_region_and_web_domain() {
        let t = config_toml(&store(3, 3));
        assert!(t.contains("replication_factor = 3"));
        assert!(t.contains("s3_region = \"agility\""));
        assert!(t.contains("root_domain = \".web.media.storage.svc\""));
        assert!(t.contains("consistency_mode = \"consistent\""));
        assert!(
            !t.contains("rpc_secret"),
            "secrets stay out of the ConfigMap"
        );
    }

    #[test]
    fn statefulset_is_hardened_and_keeps_volumes() {
        let s = statefulset(&store(3, 3), &Settings::default(), "h1").unwrap();
        let spec = s.spec.unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        let retention = spec.persistent_volume_claim_retention_policy.unwrap();
        assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false));
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.run_as_non_root, Some(true));
        let env: Vec<_> = c
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert!(env.contains(&"GARAGE_RPC_SECRET") && env.contains(&"GARAGE_ADMIN_TOKEN"));
        assert!(
            c.env
                .as_ref()
                .unwrap()
                .iter()
                .all(|e| e.value.as_deref() != Some("secret"))
        );
        let claim = &spec.volume_claim_templates.unwrap()[0];
        let size = &claim
            .spec
            .as_ref()
            .unwrap()
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"];
        assert_eq!(size.0, "10Gi");
    }

    #[test]
    fn volume_permissions_add_a_chown_only_init_container() {
        let plain = statefulset(&store(1, 1), &Settings::default(), "h").unwrap();
        assert!(
            plain
                .spec
                .unwrap()
                .template
                .spec
                .unwrap()
                .init_containers
                .unwrap_or_default()
                .is_empty()
        );
        let mut s = store(1, 1);
        s.spec.storage.volume_permissions = true;
        let sts = statefulset(&s, &Settings::default(), "h").unwrap();
        let init = sts
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .init_containers
            .unwrap();
        let caps = init[0]
            .security_context
            .as_ref()
            .unwrap()
            .capabilities
            .as_ref()
            .unwrap();
        assert_eq!(caps.add.as_ref().unwrap(), &vec!["CHOWN".to_owned()]);
        assert_eq!(init[0].command.as_ref().unwrap()[1], "chown");
    }

    #[test]
    fn pdb_allows_one_node_down_only_with_three_copies() {
        let three = pdb(&store(3, 3)).unwrap().spec.unwrap();
        let one = pdb(&store(1, 1)).unwrap().spec.unwrap();
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        assert_eq!(three.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(one.max_unavailable, Some(IntOrString::Int(0)));
    }

    #[test]
    fn generated_secrets_are_random_hex() {
        let a = AdminSecrets::generate();
        let b = AdminSecrets::generate();
        assert_eq!(a.rpc_secret.len(), 64);
        assert!(a.rpc_secret.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.rpc_secret, b.rpc_secret);
        assert_ne!(a.admin_token, b.admin_token);
    }
}
