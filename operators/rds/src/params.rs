//! MariaDB settings users may change through `spec.parameters`: an allow-list, each marked
//! online (SET GLOBAL, no restart) or restart-only (my.cnf, a rolling restart). Everything else is
//! locked — the replication, durability and fencing settings the HA guarantees rest on — and is
//! rejected at apply time because the schema declares only these names.

/// How a change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// `SET GLOBAL` on every node (and my.cnf for the next start).
    Online,
    /// my.cnf only: the pods restart one at a time (standby first).
    Restart,
}

/// The accepted spelling of a value (checked by the schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// A non-negative integer.
    Integer,
    /// `ON` or `OFF`.
    Switch,
    /// One of these words.
    OneOf(&'static [&'static str]),
}

/// One settable parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// The MariaDB variable name.
    pub name: &'static str,
    /// Online or restart.
    pub apply: Apply,
    /// The value's shape.
    pub value: Value,
}

const fn online(name: &'static str, value: Value) -> Param {
    Param {
        name,
        apply: Apply::Online,
        value,
    }
}

const fn restart(name: &'static str, value: Value) -> Param {
    Param {
        name,
        apply: Apply::Restart,
        value,
    }
}

use Value::{Integer, OneOf, Switch};

/// The allow-list.
pub const PARAMS: &[Param] = &[
    online("auto_increment_increment", Integer),
    online("auto_increment_offset", Integer),
    online("connect_timeout", Integer),
    online("event_scheduler", OneOf(&["ON", "OFF"])),
    online("group_concat_max_len", Integer),
    online("innodb_io_capacity", Integer),
    online("innodb_lock_wait_timeout", Integer),
    online("interactive_timeout", Integer),
    online("lock_wait_timeout", Integer),
    online("long_query_time", Integer),
    online("max_allowed_packet", Integer),
    online("max_heap_table_size", Integer),
    online("net_read_timeout", Integer),
    online("net_write_timeout", Integer),
    online("slow_query_log", Switch),
    online("table_open_cache", Integer),
    online("thread_cache_size", Integer),
    online("tmp_table_size", Integer),
    online(
        "transaction_isolation",
        OneOf(&[
            "READ-UNCOMMITTED",
            "READ-COMMITTED",
            "REPEATABLE-READ",
            "SERIALIZABLE",
        ]),
    ),
    online("wait_timeout", Integer),
    restart("innodb_buffer_pool_instances", Integer),
    restart("innodb_log_buffer_size", Integer),
    restart("performance_schema", Switch),
    restart("back_log", Integer),
];

/// Settings the operator owns (documented; not in the schema, so setting one is rejected).
pub const LOCKED: &[&str] = &[
    "read_only",
    "log_bin",
    "binlog_format",
    "gtid_strict_mode",
    "sync_binlog",
    "innodb_flush_log_at_trx_commit",
    "server_id",
    "enforce_storage_engine",
    "default_storage_engine",
    "sql_mode",
    "rpl_semi_sync_master_enabled",
    "rpl_semi_sync_master_timeout",
    "rpl_semi_sync_slave_enabled",
    "max_connections",
    "innodb_buffer_pool_size",
    "datadir",
    "lower_case_table_names",
];

/// The parameter with this name.
pub fn find(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name == name)
}

/// The schema pattern of a value.
pub fn pattern(value: Value) -> String {
    match value {
        Integer => "^[0-9]{1,19}$".to_owned(),
        Switch => "^(ON|OFF)$".to_owned(),
        OneOf(words) => format!("^({})$", words.join("|")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_and_locked_never_overlap() {
        for p in PARAMS {
            assert!(!LOCKED.contains(&p.name), "{} is both", p.name);
        }
        let mut names: Vec<_> = PARAMS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PARAMS.len(), "duplicate names");
    }

    #[test]
    fn patterns_match_their_values() {
        assert_eq!(pattern(Switch), "^(ON|OFF)$");
        assert!(pattern(OneOf(&["A", "B"])).contains("A|B"));
    }
}
