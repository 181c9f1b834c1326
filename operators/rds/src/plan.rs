//! Validate → plan: everything the builders need, resolved from the spec and the operator's
//! settings once, so the builders stay simple pure functions.

use std::collections::BTreeMap;

use crate::catalog::{self, InstanceClass};
use crate::crd::{HaPolicy, RdsInstanceSpec};
use crate::params::{self, Apply};

/// Operator-wide settings (chart values → environment).
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorSettings {
    /// The default MariaDB image.
    pub image: String,
    /// Pull policy of data-plane pods.
    pub image_pull_policy: String,
    /// Requests as a percentage of limits (100 = guaranteed; lower lets dev clusters overcommit).
    pub request_percent: u32,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        OperatorSettings {
            image: "localhost/agility/mariadb:10.11".into(),
            image_pull_policy: "IfNotPresent".into(),
            request_percent: 100,
        }
    }
}

/// Why a spec cannot be planned (the schema rejects most of these first; this guards objects
/// written before a schema change or with validation off).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    /// Unknown class code.
    #[error("unknown instance class {0:?} (see docs/rds.md)")]
    UnknownClass(String),
    /// A parameter that is not on the allow-list.
    #[error("parameter {0:?} is not supported or is locked (see docs/rds.md)")]
    UnknownParameter(String),
}

/// The resolved desired shape of an instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The class.
    pub class: InstanceClass,
    /// Container memory limit in bytes.
    pub memory_limit_bytes: u64,
    /// Container memory request in bytes.
    pub memory_request_bytes: u64,
    /// CPU limit in millicores.
    pub cpu_millis: u64,
    /// CPU request in millicores.
    pub cpu_request_millis: u64,
    /// `innodb_buffer_pool_size` in bytes.
    pub buffer_pool_bytes: u64,
    /// The image.
    pub image: String,
    /// Pull policy.
    pub image_pull_policy: String,
    /// Read replicas.
    pub read_replicas: u32,
    /// HA policy.
    pub ha: HaPolicy,
    /// Parameters applied online (SET GLOBAL) and written to my.cnf.
    pub online_params: BTreeMap<String, String>,
    /// Parameters only read at start.
    pub restart_params: BTreeMap<String, String>,
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Resolves a spec.
pub fn plan(spec: &RdsInstanceSpec, settings: &OperatorSettings) -> Result<Plan, PlanError> {
    let class = *catalog::find(&spec.instance_class)
        .ok_or_else(|| PlanError::UnknownClass(spec.instance_class.clone()))?;
    let mut online_params = BTreeMap::new();
    let mut restart_params = BTreeMap::new();
    for (k, v) in &spec.parameters {
        let p = params::find(k).ok_or_else(|| PlanError::UnknownParameter(k.clone()))?;
        match p.apply {
            Apply::Online => online_params.insert(k.clone(), v.clone()),
            Apply::Restart => restart_params.insert(k.clone(), v.clone()),
        };
    }
    let memory_limit_bytes = u64::from(class.memory_gib) * GIB;
    // The buffer pool gets 60% (the suite's ratio for small classes): connections, sort buffers
    // and the binlog cache need the rest.
    let buffer_pool_bytes = (memory_limit_bytes * 6 / 10) / (128 * MIB) * (128 * MIB);
    let percent = u64::from(settings.request_percent.clamp(1, 100));
    let cpu_millis = u64::from(class.cores) * 1000;
    Ok(Plan {
        class,
        memory_limit_bytes,
        memory_request_bytes: memory_limit_bytes * percent / 100,
        cpu_millis,
        cpu_request_millis: (cpu_millis * percent / 100).max(10),
        buffer_pool_bytes: buffer_pool_bytes.max(128 * MIB),
        image: spec.image.clone().unwrap_or_else(|| settings.image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        read_replicas: spec.read_replicas,
        ha: spec.ha.clone(),
        online_params,
        restart_params,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use crate::crd::Storage;

    fn spec(class: &str) -> RdsInstanceSpec {
        RdsInstanceSpec {
            instance_class: class.into(),
            storage: Storage {
                size: "20Gi".into(),
                storage_class_name: None,
                volume_permissions: false,
            },
            ..Default::default()
        }
    }

    #[test]
    fn class_sets_resources_and_buffer_pool() {
        let p = plan(&spec("rds.mysql.s2.large"), &OperatorSettings::default()).unwrap();
        assert_eq!(p.cpu_millis, 2000);
        assert_eq!(p.memory_limit_bytes, 4 * GIB);
        assert_eq!(p.memory_request_bytes, 4 * GIB, "guaranteed by default");
        assert!(p.buffer_pool_bytes > 2 * GIB && p.buffer_pool_bytes < 3 * GIB);
        assert_eq!(p.buffer_pool_bytes % (128 * MIB), 0);
    }

    #[test]
    fn request_percent_lowers_requests_only() {
        let settings = OperatorSettings {
            request_percent: 10,
            ..Default::default()
        };
        let p = plan(&spec("rds.mysql.t1.small"), &settings).unwrap();
        assert_eq!(p.cpu_request_millis, 100);
        assert_eq!(p.memory_limit_bytes, GIB);
        assert_eq!(p.memory_request_bytes, GIB / 10);
    }

    #[test]
    fn parameters_split_by_how_they_apply() {
        let mut s = spec("rds.mysql.t1.small");
        s.parameters.insert("wait_timeout".into(), "600".into());
        s.parameters.insert("back_log".into(), "200".into());
        let p = plan(&s, &OperatorSettings::default()).unwrap();
        assert_eq!(p.online_params["wait_timeout"], "600");
        assert_eq!(p.restart_params["back_log"], "200");
        s.parameters.insert("read_only".into(), "OFF".into());
        assert_eq!(
            plan(&s, &OperatorSettings::default()),
            Err(PlanError::UnknownParameter("read_only".into()))
        );
    }

    #[test]
    fn unknown_class_is_refused() {
        assert!(matches!(
            plan(&spec("rds.mysql.x"), &OperatorSettings::default()),
            Err(PlanError::UnknownClass(_))
        ));
    }
}
