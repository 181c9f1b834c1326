//! The StatefulSet of the data pods (one per shard in the cluster edition).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, ExecAction, KeyToPath, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;

use crate::crd::RedisInstance;
use crate::names;
use crate::plan::Plan;

/// UID/GID of the redis user in the image.
const REDIS_UID: i64 = 999;

/// Facts the builder needs beyond the plan.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PodFacts {
    /// Hash of everything only read at start (redis.conf restart-only settings, image). A change
    /// rolls the pods; online settings do not.
    pub restart_hash: String,
}

fn quantity(bytes: u64) -> Quantity {
    Quantity(crate::plan::format_bytes(bytes))
}

fn cli(tls: bool, args: &str) -> String {
    // Over TLS the chain is checked against the CA (redis-cli does not check names, so a user
    // certificate without a loopback name works too).
    let tls = if tls {
        format!("--tls --cacert {}/{} ", names::TLS_PATH, names::KEY_CA_CERT)
    } else {
        String::new()
    };
    format!(
        "REDISCLI_AUTH=\"$(cat {}/{})\" redis-cli --no-auth-warning {tls}-h 127.0.0.1 -p {} {args}",
        names::AUTH_PATH,
        names::KEY_PASSWORD,
        names::REDIS_PORT
    )
}

/// Ready: a master, or a replica whose link is up and whose sync is done. A node that just started
/// (a replica of nothing) is not Ready, so a rolling update waits for it to hold the data before
/// taking the next pod down. The probe looks again for up to ~1 s before failing: the kubelet's
/// first probe runs as the container starts, a moment before the operator gives it a role, and
/// would otherwise leave a new node unready for a whole probe period.
fn readiness_script(tls: bool) -> String {
    format!(
        "n=0\nwhile :; do\n  if i=$({}); then\n    case \"$i\" in *role:master*) exit 0;; esac\n    case \"$i\" in *master_link_status:up*) case \"$i\" in *master_sync_in_progress:0*) exit 0;; esac;; esac\n  fi\n  n=$((n+1))\n  [ $n -ge 8 ] && exit 1\n  sleep 0.1\ndone",
        cli(tls, "info replication")
    )
}

/// Alive: answers PING (a node loading its AOF answers LOADING, which is alive too).
fn liveness_script(tls: bool) -> String {
    format!(
        "r=$({}) || exit 1\ncase \"$r\" in PONG*|LOADING*) exit 0;; esac\nexit 1",
        cli(tls, "ping")
    )
}

fn exec_probe(script: String, period: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["/bin/sh".into(), "-c".into(), script]),
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        // The API server drops `readOnly: false`; leaving it unset keeps apply drift-free.
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn password_env(instance: &str) -> EnvVar {
    EnvVar {
        name: "REDIS_PASSWORD".into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: names::connection_secret(instance),
                key: names::KEY_MONITOR_PASSWORD.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn redis_container(plan: &Plan) -> Container {
    let resources = ResourceRequirements {
        limits: Some(BTreeMap::from([
            ("memory".to_owned(), quantity(plan.memory_limit_bytes)),
            ("cpu".to_owned(), Quantity(format!("{}m", plan.cpu_millis))),
        ])),
        requests: Some(BTreeMap::from([
            ("memory".to_owned(), quantity(plan.memory_request_bytes)),
            (
                "cpu".to_owned(),
                Quantity(format!("{}m", plan.cpu_request_millis)),
            ),
        ])),
        ..Default::default()
    };
    let mut ports = vec![ContainerPort {
        name: Some(names::REDIS_PORT_NAME.into()),
        container_port: names::REDIS_PORT,
        protocol: Some("TCP".into()),
        ..Default::default()
    }];
    if plan.edition == crate::crd::Edition::Cluster {
        ports.push(ContainerPort {
            name: Some(names::BUS_PORT_NAME.into()),
            container_port: names::CLUSTER_BUS_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        });
    }
    Container {
        name: names::REDIS_CONTAINER.into(),
        image: Some(plan.image.clone()),
        image_pull_policy: Some(plan.image_pull_policy.clone()),
        command: Some(vec![
            "/bin/sh".into(),
            format!("{}/start.sh", names::CONFIG_PATH),
        ]),
        env: Some(vec![EnvVar {
            name: "POD_IP".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "status.podIP".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ports: Some(ports),
        resources: Some(resources),
        // Every second: readiness gates rollouts and Ready, so a slower probe is felt in each step.
        readiness_probe: Some(exec_probe(readiness_script(plan.tls.is_some()), 1, 3)),
        // Generous: a hung server is fenced by the operator long before the kubelet restarts it.
        liveness_probe: Some(exec_probe(liveness_script(plan.tls.is_some()), 10, 6)),
        volume_mounts: Some(redis_mounts(plan)),
        security_context: Some(restricted()),
        ..Default::default()
    }
}

fn redis_mounts(plan: &Plan) -> Vec<VolumeMount> {
    let mut m = vec![
        mount(names::DATA_VOLUME, names::DATA_PATH, false),
        mount(names::CONFIG_VOLUME, names::CONFIG_PATH, true),
        mount(names::AUTH_VOLUME, names::AUTH_PATH, true),
        mount(names::RUN_VOLUME, names::RUN_PATH, false),
    ];
    if plan.tls.is_some() {
        m.push(mount(names::TLS_VOLUME, names::TLS_PATH, true));
    }
    m
}

fn exporter_container(instance: &str, plan: &Plan) -> Container {
    let mut command = vec!["/usr/bin/redis_exporter".to_owned()];
    if plan.tls.is_some() {
        // Loopback inside the pod's own network namespace: nobody else can sit in between, and
        // user certificates need not name 127.0.0.1.
        command.push(format!(
            "--redis.addr=rediss://127.0.0.1:{}",
            names::REDIS_PORT
        ));
        command.push("--skip-tls-verification".into());
    } else {
        command.push(format!(
            "--redis.addr=redis://127.0.0.1:{}",
            names::REDIS_PORT
        ));
    }
    command.push(format!("--web.listen-address=:{}", names::EXPORTER_PORT));
    command.push(format!("--redis.user={}", names::MONITOR_USER));
    Container {
        name: names::EXPORTER_CONTAINER.into(),
        image: Some(plan.image.clone()),
        image_pull_policy: Some(plan.image_pull_policy.clone()),
        command: Some(command),
        env: Some(vec![password_env(instance)]),
        ports: Some(vec![ContainerPort {
            name: Some(names::METRICS_PORT_NAME.into()),
            container_port: names::EXPORTER_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity("64Mi".into()),
            )])),
            requests: Some(BTreeMap::from([
                ("memory".to_owned(), Quantity("16Mi".into())),
                ("cpu".to_owned(), Quantity("10m".into())),
            ])),
            ..Default::default()
        }),
        security_context: Some(restricted()),
        ..Default::default()
    }
}

fn volumes(instance: &str, plan: &Plan) -> Vec<Volume> {
    let mut v = vec![
        Volume {
            name: names::CONFIG_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(instance),
                default_mode: Some(0o444),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: names::AUTH_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names::connection_secret(instance)),
                items: Some(vec![
                    KeyToPath {
                        key: names::KEY_PASSWORD.into(),
                        path: names::KEY_PASSWORD.into(),
                        mode: Some(0o400),
                    },
                    KeyToPath {
                        key: names::KEY_MONITOR_PASSWORD.into(),
                        path: names::KEY_MONITOR_PASSWORD.into(),
                        mode: Some(0o400),
                    },
                ]),
                default_mode: Some(0o400),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: names::RUN_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity("1Mi".into())),
            }),
            ..Default::default()
        },
    ];
    if let Some(secret) = plan.tls_secret(instance) {
        // Only the three files Redis reads, readable by the redis user alone.
        let item = |k: &str| KeyToPath {
            key: k.into(),
            path: k.into(),
            mode: Some(0o400),
        };
        v.push(Volume {
            name: names::TLS_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                items: Some(vec![
                    item(names::KEY_TLS_CERT),
                    item(names::KEY_TLS_KEY),
                    item(names::KEY_CA_CERT),
                ]),
                default_mode: Some(0o400),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let has_claim = plan
        .persistence
        .as_ref()
        .is_some_and(|p| p.storage.is_some());
    if !has_claim {
        v.push(Volume {
            name: names::DATA_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
    }
    v
}

fn claim_templates(plan: &Plan) -> Option<Vec<PersistentVolumeClaim>> {
    let storage = plan.persistence.as_ref()?.storage.as_ref()?;
    Some(vec![PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(names::DATA_VOLUME.into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(storage.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }])
}

/// Pod annotations: the restart hash and, for catalogue classes, the bandwidth the CNI's
/// bandwidth plugin enforces when it is in the chain.
fn pod_annotations(plan: &Plan, facts: &PodFacts) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([(
        names::RESTART_HASH_ANNOTATION.to_owned(),
        facts.restart_hash.clone(),
    )]);
    if let Some(mbps) = plan.class.bandwidth_mbps {
        // MB/s → Mbit/s.
        let rate = format!("{}M", mbps * 8);
        a.insert("kubernetes.io/ingress-bandwidth".into(), rate.clone());
        a.insert("kubernetes.io/egress-bandwidth".into(), rate);
    }
    a
}

/// The StatefulSet for `shard` (None: standard/cache).
pub fn statefulset(
    instance: &RedisInstance,
    plan: &Plan,
    shard: Option<u32>,
    facts: &PodFacts,
) -> StatefulSet {
    let name = instance.name_any();
    let mut selector = super::pod_selector(instance);
    if let Some(s) = shard {
        selector.insert(names::SHARD_LABEL.into(), s.to_string());
    }
    let mut pod_labels = super::child_labels(instance, names::COMPONENT_SERVER);
    pod_labels.extend(selector.clone());
    let mut containers = vec![redis_container(plan)];
    if plan.exporter {
        containers.push(exporter_container(&name, plan));
    }
    let anti_affinity = PodAntiAffinity {
        preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
            weight: 100,
            pod_affinity_term: PodAffinityTerm {
                label_selector: Some(LabelSelector {
                    match_labels: Some(selector.clone()),
                    ..Default::default()
                }),
                topology_key: "kubernetes.io/hostname".into(),
                ..Default::default()
            },
        }]),
        ..Default::default()
    };
    StatefulSet {
        metadata: super::meta(
            instance,
            names::statefulset(&name, shard),
            names::COMPONENT_SERVER,
        ),
        spec: Some(StatefulSetSpec {
            replicas: Some(plan.pods_per_shard as i32),
            service_name: Some(names::nodes_service(&name)),
            pod_management_policy: Some("Parallel".into()),
            // Standard/cache: the operator rolls pods itself (replicas first, then a switchover).
            // Cluster shards: the StatefulSet's own rolling update (highest ordinal first).
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some(
                    if shard.is_some() {
                        "RollingUpdate"
                    } else {
                        "OnDelete"
                    }
                    .into(),
                ),
                ..Default::default()
            }),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations(plan, facts)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers,
                    volumes: Some(volumes(&name, plan)),
                    affinity: Some(Affinity {
                        pod_anti_affinity: Some(anti_affinity),
                        ..Default::default()
                    }),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(30),
                    security_context: Some(PodSecurityContext {
                        run_as_user: Some(REDIS_UID),
                        run_as_group: Some(REDIS_UID),
                        fs_group: Some(REDIS_UID),
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            volume_claim_templates: claim_templates(plan),
            // deletionPolicy without a finalizer: the StatefulSet controller deletes or keeps the
            // claims when the StatefulSet goes with its owner.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(match instance.spec.deletion_policy {
                        crate::crd::DeletionPolicy::Retain => "Retain".into(),
                        crate::crd::DeletionPolicy::Delete => "Delete".into(),
                    }),
                    when_scaled: Some("Retain".into()),
                },
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::build::fixtures::instance;
    use crate::crd::{Edition, Persistence, RedisInstanceSpec, Storage};
    use crate::plan::{OperatorSettings, plan};

    fn build(spec: RedisInstanceSpec, shard: Option<u32>) -> StatefulSet {
        let i = instance(spec);
        let p = plan(&i.spec, &OperatorSettings::default()).unwrap();
        statefulset(
            &i,
            &p,
            shard,
            &PodFacts {
                restart_hash: "abc".into(),
            },
        )
    }

    fn std_spec() -> RedisInstanceSpec {
        RedisInstanceSpec {
            instance_class: Some(
                "redis.logic.sharding.drredissdb2g.1db.0rodb.4proxy.default".into(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn standard_runs_two_hardened_pods_with_class_resources() {
        let sts = build(std_spec(), None);
        let spec = sts.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.unwrap();
        let redis = &pod.containers[0];
        let limits = redis.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits["memory"].0, "3104Mi");
        assert_eq!(limits["cpu"].0, "1000m");
        let sc = redis.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(pod.containers[1].name, "exporter");
        assert_eq!(pod.automount_service_account_token, Some(false));
        let ann = spec.template.metadata.unwrap().annotations.unwrap();
        assert_eq!(ann["kubernetes.io/egress-bandwidth"], "128M");
        assert_eq!(ann[names::RESTART_HASH_ANNOTATION], "abc");
        assert!(
            spec.volume_claim_templates.is_none(),
            "emptyDir without storage"
        );
    }

    #[test]
    fn tls_mounts_the_certificate_and_probes_speak_tls() {
        let mut s = std_spec();
        s.tls = Some(crate::crd::Tls {
            enabled: true,
            secret_name: None,
        });
        let pod = build(s, None).spec.unwrap().template.spec.unwrap();
        let tls = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == names::TLS_VOLUME)
            .unwrap();
        let secret = tls.secret.as_ref().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("orders-tls"));
        assert_eq!(secret.items.as_ref().unwrap().len(), 3);
        let redis = &pod.containers[0];
        assert!(
            redis
                .volume_mounts
                .as_ref()
                .unwrap()
                .iter()
                .any(|m| m.mount_path == names::TLS_PATH)
        );
        let probe = redis.readiness_probe.as_ref().unwrap();
        let script = &probe.exec.as_ref().unwrap().command.as_ref().unwrap()[2];
        assert!(
            script.contains("--tls --cacert /etc/redis-tls/ca.crt"),
            "{script}"
        );
        let exporter = pod.containers[1].command.as_ref().unwrap();
        assert!(
            exporter
                .iter()
                .any(|a| a == "--redis.addr=rediss://127.0.0.1:6379")
        );
        // Plaintext instances mount nothing of the kind.
        let plain = build(std_spec(), None).spec.unwrap().template.spec.unwrap();
        assert!(
            plain
                .volumes
                .unwrap()
                .iter()
                .all(|v| v.name != names::TLS_VOLUME)
        );
    }

    #[test]
    fn storage_becomes_a_claim_template_and_cache_has_one_pod() {
        let mut s = std_spec();
        s.persistence = Some(Persistence {
            storage: Some(Storage {
                size: "5Gi".into(),
                storage_class_name: Some("fast".into()),
            }),
            ..Default::default()
        });
        let spec = build(s, None).spec.unwrap();
        let claims = spec.volume_claim_templates.unwrap();
        assert_eq!(
            claims[0]
                .spec
                .as_ref()
                .unwrap()
                .storage_class_name
                .as_deref(),
            Some("fast")
        );
        assert!(
            !spec
                .template
                .spec
                .unwrap()
                .volumes
                .unwrap()
                .iter()
                .any(|v| v.name == names::DATA_VOLUME)
        );

        let mut cache = std_spec();
        cache.edition = Edition::Cache;
        assert_eq!(build(cache, None).spec.unwrap().replicas, Some(1));
    }

    #[test]
    fn cluster_shards_get_their_own_selector() {
        let spec = RedisInstanceSpec {
            edition: Edition::Cluster,
            instance_class: Some("redis.sharding.small.default".into()),
            ..Default::default()
        };
        let sts = build(spec, Some(2));
        assert_eq!(sts.metadata.name.as_deref(), Some("orders-shard-2"));
        let sel = sts.spec.unwrap().selector.match_labels.unwrap();
        assert_eq!(sel[names::SHARD_LABEL], "2");
    }
}
