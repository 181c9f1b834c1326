//! The StatefulSets: the primary/standby pair (`<name>`, 2 pods) and the read replicas
//! (`<name>-ro`). Same pod shape; the supervisor gives roles at run time, so every pod starts
//! read-only and nothing in the template says who is primary.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, ExecAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;

use crate::crd::{DeletionPolicy, RdsInstance};
use crate::names;
use crate::plan::Plan;

/// UID/GID of the mysql user in the image.
const MYSQL_UID: i64 = 999;
/// Server ids: 1.. for the pair, 101.. for read replicas (unique in the replication topology).
const HA_SERVER_ID_BASE: u32 = 1;
const READ_SERVER_ID_BASE: u32 = 101;

/// Which set of pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodSet {
    /// The primary/standby pair.
    Ha,
    /// The read-only replicas.
    Read,
}

impl PodSet {
    fn label(self) -> &'static str {
        match self {
            PodSet::Ha => names::SET_HA,
            PodSet::Read => names::SET_READ,
        }
    }
}

/// Facts the builder needs beyond the plan.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PodFacts {
    /// Hash of everything only read at start (restart-only parameters, system passwords). A
    /// change rolls the pods; online settings do not.
    pub restart_hash: String,
}

fn format_bytes(b: u64) -> String {
    const MI: u64 = 1 << 20;
    if b.is_multiple_of(1 << 30) {
        format!("{}Gi", b >> 30)
    } else if b.is_multiple_of(MI) {
        format!("{}Mi", b / MI)
    } else {
        b.to_string()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        // Unset rather than `false`: the API server drops a false readOnly, and the applied
        // object must equal the live one (no drift repair at every reconcile).
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    }
}

fn security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(MYSQL_UID),
        run_as_group: Some(MYSQL_UID),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The server answers on its socket (as the socket-authenticated `mysql` OS user: no password in
/// the probe). Readiness says "can serve"; which pod gets traffic is the role label's job.
fn ping_probe(period: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec![
                "mariadb-admin".into(),
                format!("--socket={}/mysqld.sock", names::RUN_PATH),
                "--connect-timeout=2".into(),
                "ping".into(),
            ]),
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn volumes(instance: &RdsInstance) -> Vec<Volume> {
    let name = instance.name_any();
    vec![
        Volume {
            name: names::CONFIG_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(&name),
                default_mode: Some(0o444),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: names::INIT_SQL_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names::system_secret(&name)),
                // Group-readable: files are root-owned with the pod's fsGroup.
                default_mode: Some(0o440),
                items: Some(vec![k8s_openapi::api::core::v1::KeyToPath {
                    key: names::KEY_INIT_SQL.into(),
                    path: names::KEY_INIT_SQL.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: names::RUN_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        Volume {
            name: names::TMP_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ]
}

fn resources(plan: &Plan) -> ResourceRequirements {
    // The API server writes whole cores as "1", not "1000m": the same spelling keeps the
    // applied object equal to the live one (no drift repair at every reconcile).
    let cpu_quantity = |m: u64| {
        if m.is_multiple_of(1000) {
            (m / 1000).to_string()
        } else {
            format!("{m}m")
        }
    };
    let pair = |cpu: u64, mem: u64| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu_quantity(cpu))),
            ("memory".to_owned(), Quantity(format_bytes(mem))),
        ])
    };
    ResourceRequirements {
        limits: Some(pair(plan.cpu_millis, plan.memory_limit_bytes)),
        requests: Some(pair(plan.cpu_request_millis, plan.memory_request_bytes)),
        ..Default::default()
    }
}

fn pod_spec(instance: &RdsInstance, plan: &Plan, set: PodSet) -> PodSpec {
    let name = instance.name_any();
    let ns = instance.namespace().unwrap_or_default();
    let mounts = vec![
        mount(names::DATA_VOLUME, names::DATA_PATH, false),
        mount(names::CONFIG_VOLUME, names::CONFIG_PATH, true),
        mount(names::INIT_SQL_VOLUME, names::INIT_SQL_PATH, true),
        mount(names::RUN_VOLUME, names::RUN_PATH, false),
        mount(names::TMP_VOLUME, names::TMP_PATH, false),
    ];
    let base = match set {
        PodSet::Ha => HA_SERVER_ID_BASE,
        PodSet::Read => READ_SERVER_ID_BASE,
    };
    let init = Container {
        name: names::INIT_CONTAINER.into(),
        image: Some(plan.image.clone()),
        image_pull_policy: Some(plan.image_pull_policy.clone()),
        command: Some(vec![
            "/bin/sh".into(),
            format!("{}/{}", names::CONFIG_PATH, super::config::KEY_INIT),
        ]),
        volume_mounts: Some(mounts.clone()),
        resources: Some(resources(plan)),
        security_context: Some(security_context()),
        ..Default::default()
    };
    let server = Container {
        name: names::MARIADB_CONTAINER.into(),
        image: Some(plan.image.clone()),
        image_pull_policy: Some(plan.image_pull_policy.clone()),
        command: Some(vec![
            "/bin/sh".into(),
            format!("{}/{}", names::CONFIG_PATH, super::config::KEY_START),
        ]),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            env("SERVER_ID_BASE", base.to_string()),
            env(
                "POD_HOST",
                format!("$(POD_NAME).{}.{ns}.svc", names::nodes_service(&name)),
            ),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some(names::MYSQL_PORT_NAME.into()),
            container_port: names::MYSQL_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        readiness_probe: Some(ping_probe(2, 3)),
        // A hung server (e.g. frozen) is restarted after a minute even without the supervisor.
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(30),
            ..ping_probe(10, 6)
        }),
        volume_mounts: Some(mounts),
        resources: Some(resources(plan)),
        security_context: Some(security_context()),
        ..Default::default()
    };
    let mut init_containers = Vec::new();
    if instance.spec.storage.volume_permissions {
        init_containers.push(Container {
            name: "volume-permissions".into(),
            image: Some(plan.image.clone()),
            image_pull_policy: Some(plan.image_pull_policy.clone()),
            command: Some(vec![
                "/bin/busybox".into(),
                "chown".into(),
                format!("{MYSQL_UID}:{MYSQL_UID}"),
                names::DATA_PATH.into(),
            ]),
            volume_mounts: Some(vec![mount(names::DATA_VOLUME, names::DATA_PATH, false)]),
            security_context: Some(SecurityContext {
                run_as_user: Some(0),
                run_as_group: Some(0),
                run_as_non_root: Some(false),
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    add: Some(vec!["CHOWN".into()]),
                    drop: Some(vec!["ALL".into()]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    init_containers.push(init);
    PodSpec {
        init_containers: Some(init_containers),
        containers: vec![server],
        volumes: Some(volumes(instance)),
        // The supervisor reaches the pods itself; no API access from the data plane.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(30),
        security_context: Some(PodSecurityContext {
            fs_group: Some(MYSQL_UID),
            // The volume-permissions container (opt-in) is the only root one.
            run_as_non_root: Some(!instance.spec.storage.volume_permissions),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        // Primary and standby on different nodes when the cluster has them (preferred: a
        // single-node dev cluster must still run both).
        affinity: Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    WeightedPodAffinityTerm {
                        weight: 100,
                        pod_affinity_term: PodAffinityTerm {
                            label_selector: Some(LabelSelector {
                                match_labels: Some(super::set_selector(instance, set.label())),
                                ..Default::default()
                            }),
                            topology_key: "kubernetes.io/hostname".into(),
                            ..Default::default()
                        },
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The StatefulSet of one pod set.
pub fn statefulset(
    instance: &RdsInstance,
    plan: &Plan,
    set: PodSet,
    facts: &PodFacts,
) -> StatefulSet {
    let name = instance.name_any();
    let (sts_name, replicas) = match set {
        PodSet::Ha => (names::ha_statefulset(&name), 2),
        PodSet::Read => (names::read_statefulset(&name), plan.read_replicas as i32),
    };
    let selector = super::set_selector(instance, set.label());
    let mut pod_labels = super::child_labels(instance, names::COMPONENT_SERVER);
    pod_labels.insert(names::SET_LABEL.into(), set.label().into());
    let storage = &instance.spec.storage;
    let retain = match instance.spec.deletion_policy {
        DeletionPolicy::Retain => "Retain",
        DeletionPolicy::Delete => "Delete",
    };
    let mut sts_labels = super::child_labels(instance, names::COMPONENT_SERVER);
    sts_labels.insert(names::SET_LABEL.into(), set.label().into());
    StatefulSet {
        metadata: ObjectMeta {
            labels: Some(sts_labels),
            ..super::meta(instance, sts_name, names::COMPONENT_SERVER)
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(names::nodes_service(&name)),
            // Both nodes start at once: roles come from the supervisor, not from start order.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(retain.into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(
                        names::RESTART_HASH_ANNOTATION.to_owned(),
                        facts.restart_hash.clone(),
                    )])),
                    ..Default::default()
                }),
                spec: Some(pod_spec(instance, plan, set)),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
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
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use crate::build::fixtures::{instance, spec};
    use crate::plan::{OperatorSettings, plan};

    fn build(set: PodSet) -> StatefulSet {
        let mut s = spec();
        s.read_replicas = 3;
        let i = instance(s);
        let p = plan(&i.spec, &OperatorSettings::default()).unwrap();
        statefulset(&i, &p, set, &PodFacts::default())
    }

    #[test]
    fn the_pair_has_two_hardened_pods() {
        let s = build(PodSet::Ha).spec.unwrap();
        assert_eq!(s.replicas, Some(2));
        let pod = s.template.spec.unwrap();
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.run_as_user, Some(999));
        assert_eq!(pod.automount_service_account_token, Some(false));
        let env = c.env.as_ref().unwrap();
        assert!(
            env.iter()
                .any(|e| e.name == "SERVER_ID_BASE" && e.value.as_deref() == Some("1"))
        );
        let limits = c.resources.as_ref().unwrap().limits.clone().unwrap();
        assert_eq!(limits["memory"], Quantity("1Gi".into()));
        assert_eq!(
            limits["cpu"],
            Quantity("1".into()),
            "as the API server spells it"
        );
    }

    #[test]
    fn read_replicas_get_their_own_set_and_server_ids() {
        let s = build(PodSet::Read);
        assert_eq!(s.metadata.name.as_deref(), Some("orders-ro"));
        let spec = s.spec.unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(
            spec.selector.match_labels.unwrap()[names::SET_LABEL],
            "read"
        );
        let env = spec.template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        assert!(
            env.iter()
                .any(|e| e.name == "SERVER_ID_BASE" && e.value.as_deref() == Some("101"))
        );
    }

    #[test]
    fn volume_permissions_add_a_chown_only_root_container() {
        let mut s = spec();
        s.storage.volume_permissions = true;
        let i = instance(s);
        let p = plan(&i.spec, &OperatorSettings::default()).unwrap();
        let sts = statefulset(&i, &p, PodSet::Ha, &PodFacts::default());
        let pod = sts.spec.unwrap().template.spec.unwrap();
        let inits = pod.init_containers.unwrap();
        assert_eq!(inits.len(), 2);
        let caps = inits[0]
            .security_context
            .clone()
            .unwrap()
            .capabilities
            .unwrap();
        assert_eq!(caps.add.unwrap(), vec!["CHOWN".to_owned()]);
        assert_eq!(inits[1].name, names::INIT_CONTAINER);
    }

    #[test]
    fn no_role_in_the_template() {
        let s = build(PodSet::Ha).spec.unwrap();
        let labels = s.template.metadata.unwrap().labels.unwrap();
        assert!(
            !labels.contains_key(names::ROLE_LABEL),
            "roles are the supervisor's"
        );
    }

    #[test]
    fn volumes_follow_the_deletion_policy() {
        let s = build(PodSet::Ha).spec.unwrap();
        assert_eq!(
            s.persistent_volume_claim_retention_policy
                .unwrap()
                .when_deleted
                .as_deref(),
            Some("Retain")
        );
    }
}
