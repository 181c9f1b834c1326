//! The ConfigMap: my.cnf (the base file plus the class- and parameter-dependent lines) and the
//! scripts the pods run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;

use crate::crd::RdsInstance;
use crate::names;
use crate::plan::Plan;

/// The base configuration every node shares (read-only start, GTID, binlog, InnoDB).
pub const BASE_MY_CNF: &str = include_str!("../../assets/my.cnf");
/// The init container's script (creates the system tables once).
pub const INIT_SCRIPT: &str = include_str!("../../assets/init.sh");
/// The main container's script (server id from the ordinal, then exec mariadbd).
pub const START_SCRIPT: &str = include_str!("../../assets/start.sh");

/// ConfigMap keys.
pub const KEY_MY_CNF: &str = "my.cnf";
/// The init script.
pub const KEY_INIT: &str = "init.sh";
/// The start script.
pub const KEY_START: &str = "start.sh";

/// my.cnf: the base, then the lines this instance needs (later lines win in one group).
pub fn my_cnf(plan: &Plan) -> String {
    let mut out = String::from(BASE_MY_CNF);
    out.push_str("\n# --- set by the operator for this instance ---\n");
    // Writing to a String cannot fail.
    let _ = writeln!(out, "innodb_buffer_pool_size = {}", plan.buffer_pool_bytes);
    let _ = writeln!(out, "max_connections = {}", plan.class.max_connections);
    for (k, v) in plan.online_params.iter().chain(&plan.restart_params) {
        let _ = writeln!(out, "{k} = {v}");
    }
    out
}

/// The ConfigMap.
pub fn config_map(instance: &RdsInstance, plan: &Plan) -> ConfigMap {
    ConfigMap {
        metadata: super::meta(instance, names::config_map(&instance.name_any()), "config"),
        data: Some(BTreeMap::from([
            (KEY_MY_CNF.to_owned(), my_cnf(plan)),
            (KEY_INIT.to_owned(), INIT_SCRIPT.to_owned()),
            (KEY_START.to_owned(), START_SCRIPT.to_owned()),
        ])),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use crate::build::fixtures::{instance, spec};
    use crate::plan::{OperatorSettings, plan};

    #[test]
    fn class_and_parameters_follow_the_base() {
        let mut s = spec();
        s.parameters.insert("wait_timeout".into(), "600".into());
        let p = plan(&s, &OperatorSettings::default()).unwrap();
        let cnf = my_cnf(&p);
        let tail = &cnf[BASE_MY_CNF.len()..];
        assert!(tail.contains("max_connections = 300"));
        assert!(tail.contains("innodb_buffer_pool_size = 536870912"));
        assert!(tail.contains("wait_timeout = 600"));
        assert!(cnf.contains("read_only = ON"), "every node starts fenced");
        assert!(cnf.contains("gtid_strict_mode = ON"));
    }

    #[test]
    fn config_map_holds_the_scripts() {
        let i = instance(spec());
        let p = plan(&i.spec, &OperatorSettings::default()).unwrap();
        let cm = config_map(&i, &p);
        let data = cm.data.unwrap();
        assert!(data[KEY_START].contains("exec mariadbd"));
        assert!(data[KEY_INIT].contains("mariadb-install-db"));
        assert_eq!(cm.metadata.name.as_deref(), Some("orders-config"));
    }
}
