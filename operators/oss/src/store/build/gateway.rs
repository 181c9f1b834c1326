//! The gateway side of a store: the S3 gateway Deployment (`agility-operator oss-gateway`), its
//! service account limited to reading its own rules ConfigMap, the rules, its Garage key, and
//! the S3 and website Services clients use.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::ResourceExt;
use serde_json::json;

use super::{COMPONENT_GATEWAY, Settings, child_labels, restricted, secret_data, selector, typed};
use crate::crd::ObjectStore;
use crate::gateway::config::GatewayConfig;
use crate::names;

const TLS_PATH: &str = "/etc/agility/tls";

/// The gateway's TLS Secret when the store serves HTTPS.
pub fn tls_secret(store: &ObjectStore) -> Option<String> {
    let tls = store.spec.tls.as_ref().filter(|t| t.enabled)?;
    tls.secret_name.clone()
}

fn meta(store: &ObjectStore, name: String) -> serde_json::Value {
    json!({"name": name, "namespace": store.namespace(), "labels": child_labels(store, COMPONENT_GATEWAY)})
}

/// The gateway's service account (reads its rules ConfigMap, nothing else).
pub fn service_account(store: &ObjectStore) -> agility_core::Result<ServiceAccount> {
    typed(
        "ServiceAccount",
        json!({"metadata": meta(store, names::gateway(&store.name_any()))}),
    )
}

/// Read access to exactly the rules ConfigMap.
pub fn role(store: &ObjectStore) -> agility_core::Result<Role> {
    let name = store.name_any();
    typed(
        "Role",
        json!({
            "metadata": meta(store, names::gateway(&name)),
            "rules": [{
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [names::gateway_rules(&name)],
                "verbs": ["get", "list", "watch"],
            }],
        }),
    )
}

/// Binds [`role`] to [`service_account`].
pub fn role_binding(store: &ObjectStore) -> agility_core::Result<RoleBinding> {
    let name = store.name_any();
    typed(
        "RoleBinding",
        json!({
            "metadata": meta(store, names::gateway(&name)),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": names::gateway(&name)},
            "subjects": [{"kind": "ServiceAccount", "name": names::gateway(&name), "namespace": store.namespace()}],
        }),
    )
}

/// The rules ConfigMap every gateway replica watches.
pub fn rules_config_map(
    store: &ObjectStore,
    rules: &GatewayConfig,
) -> agility_core::Result<ConfigMap> {
    let body = serde_json::to_string_pretty(rules)
        .map_err(|e| agility_core::Error::Internal(format!("gateway rules: {e}")))?;
    typed(
        "ConfigMap",
        json!({
            "metadata": meta(store, names::gateway_rules(&store.name_any())),
            "data": {names::GATEWAY_RULES_KEY: body},
        }),
    )
}

/// The gateway's own Garage key (granted read, or read+write, on public buckets only: it signs
/// the anonymous requests an ACL allows).
pub fn key_secret(
    store: &ObjectStore,
    key_id: &str,
    secret_key: &str,
) -> agility_core::Result<Secret> {
    typed(
        "Secret",
        json!({
            "metadata": meta(store, names::gateway_key_secret(&store.name_any())),
            "type": "Opaque",
            "data": secret_data(&json!({names::ACCESS_KEY_ID_KEY: key_id, names::SECRET_ACCESS_KEY_KEY: secret_key})),
        }),
    )
}

fn key_env(store: &ObjectStore, key: &str) -> serde_json::Value {
    json!({"name": key, "valueFrom": {"secretKeyRef": {"name": names::gateway_key_secret(&store.name_any()), "key": key}}})
}

/// The gateway Deployment.
pub fn deployment(store: &ObjectStore, settings: &Settings) -> agility_core::Result<Deployment> {
    let name = store.name_any();
    let ns = store.namespace().unwrap_or_default();
    let internal = format!("{}.{ns}.svc", names::internal_service(&name));
    let mut args = vec![
        "oss-gateway".to_owned(),
        format!("--s3-upstream=http://{internal}:{}", names::GARAGE_S3_PORT),
        format!(
            "--web-upstream=http://{internal}:{}",
            names::GARAGE_WEB_PORT
        ),
        format!("--region={}", store.spec.region),
        format!("--rules-configmap={}", names::gateway_rules(&name)),
        format!("--web-domain={}", names::website_domain(&name, &ns)),
        format!("--listen-s3=0.0.0.0:{}", names::GATEWAY_S3_PORT),
        format!("--listen-web=0.0.0.0:{}", names::GATEWAY_WEB_PORT),
        format!("--listen-admin=0.0.0.0:{}", names::GATEWAY_ADMIN_PORT),
        "--log-format=json".to_owned(),
    ];
    let mut mounts = vec![];
    let mut volumes = vec![];
    if let Some(secret) = tls_secret(store) {
        args.push(format!("--tls-cert={TLS_PATH}/tls.crt"));
        args.push(format!("--tls-key={TLS_PATH}/tls.key"));
        mounts.push(json!({"name": "tls", "mountPath": TLS_PATH, "readOnly": true}));
        volumes.push(json!({"name": "tls", "secret": {"secretName": secret}}));
    }
    let scheme = if tls_secret(store).is_some() {
        "HTTPS"
    } else {
        "HTTP"
    };
    typed(
        "Deployment",
        json!({
            "metadata": meta(store, names::gateway(&name)),
            "spec": {
                "replicas": store.spec.gateway_replicas,
                "selector": {"matchLabels": selector(store, COMPONENT_GATEWAY)},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": child_labels(store, COMPONENT_GATEWAY)},
                    "spec": {
                        "serviceAccountName": names::gateway(&name),
                        "enableServiceLinks": false,
                        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": selector(store, COMPONENT_GATEWAY)},
                            },
                        }]}},
                        "containers": [{
                            "name": "gateway",
                            "image": settings.gateway_image,
                            "imagePullPolicy": settings.image_pull_policy,
                            "args": args,
                            "env": [
                                key_env(store, names::ACCESS_KEY_ID_KEY),
                                key_env(store, names::SECRET_ACCESS_KEY_KEY),
                                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                            ],
                            "ports": [
                                {"name": "s3", "containerPort": names::GATEWAY_S3_PORT, "protocol": "TCP"},
                                {"name": "web", "containerPort": names::GATEWAY_WEB_PORT, "protocol": "TCP"},
                                {"name": "admin", "containerPort": names::GATEWAY_ADMIN_PORT, "protocol": "TCP"},
                            ],
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "admin"}, "periodSeconds": 2, "failureThreshold": 2},
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "admin"}, "periodSeconds": 10, "failureThreshold": 3},
                            "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
                            "securityContext": restricted(),
                            "volumeMounts": mounts,
                        }],
                        "volumes": volumes,
                    },
                },
            },
        }),
    )
    .map(|mut d: Deployment| {
        // Scheme only matters to humans reading the pod; keep it as an annotation.
        d.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("oss.agility.dev/scheme".into(), scheme.into());
        d
    })
}

/// A client-facing Service on the gateway: `<store>` (S3) or `<store>-web` (website).
fn client_service(
    store: &ObjectStore,
    name: String,
    target: &str,
) -> agility_core::Result<Service> {
    let port = if tls_secret(store).is_some() { 443 } else { 80 };
    typed(
        "Service",
        json!({
            "metadata": meta(store, name),
            "spec": {
                "selector": selector(store, COMPONENT_GATEWAY),
                "ports": [{"name": if port == 443 { "https" } else { "http" }, "port": port, "targetPort": target, "protocol": "TCP"}],
            },
        }),
    )
}

/// The S3 endpoint Service.
pub fn s3_service(store: &ObjectStore) -> agility_core::Result<Service> {
    client_service(store, names::s3_service(&store.name_any()), "s3")
}

/// The website endpoint Service.
pub fn web_service(store: &ObjectStore) -> agility_core::Result<Service> {
    client_service(store, names::web_service(&store.name_any()), "web")
}

/// Keeps one gateway serving through voluntary disruptions when there are two or more.
pub fn pdb(store: &ObjectStore) -> agility_core::Result<PodDisruptionBudget> {
    typed(
        "PodDisruptionBudget",
        json!({
            "metadata": meta(store, names::gateway(&store.name_any())),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(store, COMPONENT_GATEWAY)}},
        }),
    )
}

/// The endpoint URLs clients use.
pub fn endpoints(store: &ObjectStore) -> (String, String) {
    let name = store.name_any();
    let ns = store.namespace().unwrap_or_default();
    let scheme = if tls_secret(store).is_some() {
        "https"
    } else {
        "http"
    };
    (
        format!("{scheme}://{}.{ns}.svc", names::s3_service(&name)),
        format!("{scheme}://{}.{ns}.svc", names::web_service(&name)),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crd::StoreTls;
    use crate::store::build::fixtures::store;

    #[test]
    fn role_reads_only_the_rules_config_map() {
        let r = role(&store(3, 3)).unwrap();
        let rule = &r.rules.unwrap()[0];
        assert_eq!(
            rule.resource_names.as_ref().unwrap(),
            &vec!["media-gateway-rules".to_owned()]
        );
        assert_eq!(rule.verbs, vec!["get", "list", "watch"]);
    }

    #[test]
    fn deployment_points_at_garage_and_takes_its_key_from_the_secret() {
        let d = deployment(&store(3, 3), &Settings::default()).unwrap();
        let pod = d.spec.unwrap().template.spec.unwrap();
        let c = &pod.containers[0];
        let args = c.args.as_ref().unwrap();
        assert_eq!(args[0], "oss-gateway");
        assert!(args.contains(&"--s3-upstream=http://media-internal.storage.svc:3900".to_owned()));
        assert!(args.iter().all(|a| !a.starts_with("--tls")));
        let env = c.env.as_ref().unwrap();
        assert!(
            env.iter()
                .any(|e| e.name == "AWS_SECRET_ACCESS_KEY" && e.value_from.is_some())
        );
        assert_eq!(pod.service_account_name.as_deref(), Some("media-gateway"));
    }

    #[test]
    fn tls_serves_https_on_443_from_the_secret() {
        let mut s = store(3, 3);
        s.spec.tls = Some(StoreTls {
            enabled: true,
            secret_name: Some("media-cert".into()),
        });
        let d = deployment(&s, &Settings::default()).unwrap();
        let args = d.spec.unwrap().template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert!(args.contains(&"--tls-cert=/etc/agility/tls/tls.crt".to_owned()));
        let svc = s3_service(&s).unwrap();
        assert_eq!(svc.spec.unwrap().ports.unwrap()[0].port, 443);
        assert_eq!(endpoints(&s).0, "https://media.storage.svc");
    }

    #[test]
    fn rules_are_json_in_the_config_map() {
        let mut rules = GatewayConfig::default();
        rules.buckets.insert("pics".into(), Default::default());
        let cm = rules_config_map(&store(1, 1), &rules).unwrap();
        let body = &cm.data.unwrap()[names::GATEWAY_RULES_KEY];
        let back: GatewayConfig = serde_json::from_str(body).unwrap();
        assert_eq!(back, rules);
    }
}
