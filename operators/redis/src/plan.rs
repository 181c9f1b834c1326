//! Validate → plan: everything the builders need, resolved from the spec and the operator's
//! settings once, so the builders stay simple pure functions.

use std::collections::BTreeMap;

use crate::catalog::{self, ClassEdition};
use crate::crd::{ClassStatus, Edition, MaxmemoryPolicy, Persistence, RedisInstanceSpec};
use crate::params;

/// Operator-wide settings (flags / Helm values).
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorSettings {
    /// The default Redis image (also runs the exporter).
    pub image: String,
    /// Pull policy of data-plane pods.
    pub image_pull_policy: String,
    /// Requests as a percentage of limits (100 = guaranteed; lower lets dev clusters overcommit).
    pub request_percent: u32,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        OperatorSettings {
            image: "localhost/agility/redis:7.0.15".into(),
            image_pull_policy: "IfNotPresent".into(),
            request_percent: 100,
        }
    }
}

/// The resolved desired shape of an instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The edition.
    pub edition: Edition,
    /// 1 for standard/cache.
    pub shards: u32,
    /// Pods per shard: 2 (master + replica) or 1 (cache).
    pub pods_per_shard: u32,
    /// `maxmemory` per node in bytes.
    pub maxmemory_bytes: u64,
    /// Container memory limit in bytes (maxmemory plus headroom for buffers and fork).
    pub memory_limit_bytes: u64,
    /// Container memory request in bytes.
    pub memory_request_bytes: u64,
    /// CPU limit in millicores.
    pub cpu_millis: u64,
    /// CPU request in millicores.
    pub cpu_request_millis: u64,
    /// `maxclients` per node.
    pub max_clients: u32,
    /// What status reports as the class.
    pub class: ClassStatus,
    /// The Redis image.
    pub image: String,
    /// Pull policy.
    pub image_pull_policy: String,
    /// None: no persistence (cache).
    pub persistence: Option<Persistence>,
    /// Eviction policy.
    pub maxmemory_policy: MaxmemoryPolicy,
    /// Settings applied online.
    pub online_params: BTreeMap<String, String>,
    /// Settings read at start only.
    pub restart_params: BTreeMap<String, String>,
    /// The exporter sidecar.
    pub exporter: bool,
    /// TLS: None for plaintext; `Some(Some(secret))` mounts the user's certificate Secret,
    /// `Some(None)` the one the operator issues.
    pub tls: Option<Option<String>>,
}

impl Plan {
    /// The certificate Secret the pods mount (TLS instances).
    pub fn tls_secret(&self, instance: &str) -> Option<String> {
        self.tls.as_ref().map(|user| {
            user.clone()
                .unwrap_or_else(|| crate::names::tls_secret(instance))
        })
    }
}

/// Why a spec cannot be planned (InvalidSpec: waits for an edit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Unknown class (the schema normally rejects it first).
    #[error("unknown instance class {0:?}")]
    UnknownClass(String),
    /// Class and edition do not match.
    #[error("instance class {class} is a {class_edition} class but spec.edition is {edition}")]
    ClassEdition {
        /// The class.
        class: String,
        /// Its edition.
        class_edition: &'static str,
        /// The spec's edition.
        edition: &'static str,
    },
    /// Neither class nor resources.
    #[error("set spec.instanceClass or spec.resources")]
    NoSize,
    /// A quantity we cannot read.
    #[error("{field}: cannot read quantity {value:?}")]
    Quantity {
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// Too little memory to run Redis sensibly.
    #[error("memory per node must be at least 32Mi (got {0} bytes)")]
    TooSmall(u64),
    /// A parameter problem.
    #[error(transparent)]
    Parameter(#[from] params::ParameterError),
}

const MI: u64 = 1024 * 1024;
const GI: u64 = 1024 * MI;

fn edition_name(e: Edition) -> &'static str {
    match e {
        Edition::Standard => "standard",
        Edition::Cache => "cache",
        Edition::Cluster => "cluster",
    }
}

/// Resolves a spec into a plan.
pub fn plan(spec: &RedisInstanceSpec, settings: &OperatorSettings) -> Result<Plan, PlanError> {
    params::validate(&spec.parameters)?;
    let class = match &spec.instance_class {
        Some(code) => {
            let class = catalog::find(code).ok_or_else(|| PlanError::UnknownClass(code.clone()))?;
            let fits = match class.edition {
                ClassEdition::Standard => spec.edition != Edition::Cluster,
                ClassEdition::Cluster => spec.edition == Edition::Cluster,
            };
            if !fits {
                return Err(PlanError::ClassEdition {
                    class: code.clone(),
                    class_edition: match class.edition {
                        ClassEdition::Standard => "standard",
                        ClassEdition::Cluster => "cluster",
                    },
                    edition: edition_name(spec.edition),
                });
            }
            Some(class)
        }
        None => None,
    };
    let shards = match spec.edition {
        Edition::Cluster => class
            .and_then(|c| c.shards)
            .or(spec.shards)
            .unwrap_or(catalog::DEFAULT_CLUSTER_SHARDS),
        _ => 1,
    };
    let pods_per_shard = if spec.edition == Edition::Cache { 1 } else { 2 };

    // Per node: the class's totals split over shards, explicit resources win.
    let class_memory = class.map(|c| u64::from(c.memory_gib) * GI / u64::from(shards));
    let class_cpu = class.map(|c| (u64::from(c.cores) * 1000 / u64::from(shards)).max(1000));
    let class_clients = class.map(|c| c.max_connections / shards);
    let res = spec.resources.as_ref();
    let maxmemory_bytes = match res {
        Some(r) => parse_memory(&r.memory).ok_or_else(|| PlanError::Quantity {
            field: "spec.resources.memory",
            value: r.memory.clone(),
        })?,
        None => class_memory.ok_or(PlanError::NoSize)?,
    };
    if maxmemory_bytes < 32 * MI {
        return Err(PlanError::TooSmall(maxmemory_bytes));
    }
    let cpu_millis = match res.and_then(|r| r.cpu.as_deref()) {
        Some(cpu) => parse_cpu(cpu).ok_or_else(|| PlanError::Quantity {
            field: "spec.resources.cpu",
            value: cpu.to_owned(),
        })?,
        None => class_cpu.unwrap_or(1000),
    };
    let max_clients = res
        .and_then(|r| r.max_clients)
        .or(class_clients)
        .unwrap_or(10_000);
    let memory_limit_bytes = maxmemory_bytes + maxmemory_bytes / 2 + 32 * MI;
    let pct = u64::from(settings.request_percent.clamp(1, 100));
    let class_status = ClassStatus {
        code: match (&spec.instance_class, res) {
            (Some(code), None) => code.clone(),
            (Some(code), Some(_)) => format!("{code} (overridden by spec.resources)"),
            (None, _) => "custom".into(),
        },
        memory: format_bytes(maxmemory_bytes),
        cpu: format!("{cpu_millis}m"),
        max_clients,
        bandwidth_mbps: class.map(|c| c.bandwidth_mbps),
        bandwidth_enforcement: class.map(|_| "PodAnnotations".into()),
    };
    Ok(Plan {
        edition: spec.edition,
        shards,
        pods_per_shard,
        maxmemory_bytes,
        memory_limit_bytes,
        memory_request_bytes: memory_limit_bytes * pct / 100,
        cpu_millis,
        cpu_request_millis: (cpu_millis * pct / 100).max(10),
        max_clients,
        class: class_status,
        image: spec.image.clone().unwrap_or_else(|| settings.image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        persistence: spec.persistence_or_default(),
        maxmemory_policy: spec.maxmemory_policy,
        online_params: params::online(&spec.parameters),
        restart_params: params::restart_only(&spec.parameters),
        exporter: spec.monitoring_or_default().exporter,
        tls: spec
            .tls_enabled()
            .then(|| spec.tls.as_ref().and_then(|t| t.secret_name.clone())),
    })
}

/// `256Mi`, `1Gi`, `512Ki` → bytes.
pub fn parse_memory(q: &str) -> Option<u64> {
    let (num, unit) = q.split_at(q.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "Ki" => 1024,
        "Mi" => MI,
        "Gi" => GI,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `500m`, `1`, `1.5` → millicores.
pub fn parse_cpu(q: &str) -> Option<u64> {
    if let Some(m) = q.strip_suffix('m') {
        return m.parse().ok().filter(|v| *v > 0);
    }
    let v: f64 = q.parse().ok()?;
    let millis = (v * 1000.0).round();
    (1.0..1e9).contains(&millis).then_some(millis as u64)
}

/// Bytes as the largest exact binary unit (`1Gi`, `96Mi`, `1536Ki`).
pub fn format_bytes(b: u64) -> String {
    if b.is_multiple_of(GI) {
        format!("{}Gi", b / GI)
    } else if b.is_multiple_of(MI) {
        format!("{}Mi", b / MI)
    } else if b.is_multiple_of(1024) {
        format!("{}Ki", b / 1024)
    } else {
        b.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crd::NodeResources;

    fn spec(edition: Edition, class: Option<&str>) -> RedisInstanceSpec {
        RedisInstanceSpec {
            edition,
            instance_class: class.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn standard_class_maps_to_node_resources() {
        let p = plan(
            &spec(Edition::Standard, Some("redis.master.mid.special2x")),
            &OperatorSettings::default(),
        )
        .unwrap();
        assert_eq!((p.shards, p.pods_per_shard), (1, 2));
        assert_eq!(p.maxmemory_bytes, 2 * GI);
        assert_eq!(p.memory_limit_bytes, 3 * GI + 32 * MI);
        assert_eq!(p.memory_request_bytes, p.memory_limit_bytes);
        assert_eq!((p.cpu_millis, p.max_clients), (1000, 20_000));
        assert_eq!(p.class.bandwidth_mbps, Some(48));
        assert_eq!(p.persistence, Some(Persistence::default()));
    }

    #[test]
    fn cluster_class_splits_over_shards() {
        let p = plan(
            &spec(
                Edition::Cluster,
                Some("redis.logic.sharding.drredismdb16g.8db.0rodb.8proxy.default"),
            ),
            &OperatorSettings::default(),
        )
        .unwrap();
        assert_eq!(p.shards, 8);
        assert_eq!(p.maxmemory_bytes, 2 * GI);
        assert_eq!(p.max_clients, 10_000);
        assert_eq!(p.cpu_millis, 1000);
        let mut s = spec(Edition::Cluster, Some("redis.sharding.mid.default"));
        s.shards = Some(4);
        let p = plan(&s, &OperatorSettings::default()).unwrap();
        assert_eq!(
            (p.shards, p.maxmemory_bytes, p.cpu_millis),
            (4, 8 * GI, 2000)
        );
    }

    #[test]
    fn explicit_resources_and_request_ratio() {
        let mut s = spec(Edition::Cache, None);
        s.resources = Some(NodeResources {
            memory: "64Mi".into(),
            cpu: Some("250m".into()),
            max_clients: Some(1000),
        });
        let settings = OperatorSettings {
            request_percent: 10,
            ..Default::default()
        };
        let p = plan(&s, &settings).unwrap();
        assert_eq!(p.pods_per_shard, 1);
        assert_eq!(p.persistence, None);
        assert_eq!(p.memory_limit_bytes, 128 * MI);
        assert_eq!(p.memory_request_bytes, 128 * MI / 10);
        assert_eq!((p.cpu_millis, p.cpu_request_millis), (250, 25));
        assert_eq!(p.class.code, "custom");
    }

    #[test]
    fn mismatches_and_missing_sizes_are_invalid() {
        let err = plan(
            &spec(Edition::Cluster, Some("redis.master.mid.special2x")),
            &OperatorSettings::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("standard class but spec.edition is cluster"),
            "{err}"
        );
        assert_eq!(
            plan(&spec(Edition::Standard, None), &OperatorSettings::default()).unwrap_err(),
            PlanError::NoSize
        );
        let mut s = spec(Edition::Standard, None);
        s.resources = Some(NodeResources {
            memory: "1Mi".into(),
            ..Default::default()
        });
        assert!(matches!(
            plan(&s, &OperatorSettings::default()),
            Err(PlanError::TooSmall(_))
        ));
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_memory("256Mi"), Some(256 * MI));
        assert_eq!(parse_memory("2Gi"), Some(2 * GI));
        assert_eq!(parse_memory("2G"), None);
        assert_eq!(parse_cpu("500m"), Some(500));
        assert_eq!(parse_cpu("1.5"), Some(1500));
        assert_eq!(parse_cpu("0"), None);
        assert_eq!(format_bytes(3 * GI / 2), "1536Mi");
    }
}
