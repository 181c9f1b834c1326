//! `spec.parameters`: the Redis settings users may change, how each value is checked and whether
//! Redis takes it online (CONFIG SET) or only at start (rolling restart).
//!
//! The CRD rejects names not listed here at `kubectl apply`; values are checked by [`validate`]
//! during reconcile (the schema cannot express every value grammar), which reports InvalidSpec.

use std::collections::BTreeMap;

/// How a parameter reaches a running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// `CONFIG SET` on every pod; also written to the config file for restarts.
    Online,
    /// Only read at start: a change rolls the pods (replicas first, then a switchover).
    Restart,
}

/// The value grammar of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// An integer in an inclusive range.
    Int(i64, i64),
    /// `yes` or `no`.
    YesNo,
    /// One of a fixed set.
    OneOf(&'static [&'static str]),
    /// Letters from a set (notify-keyspace-events), possibly empty.
    Flags(&'static str),
}

/// One parameter users may set.
#[derive(Debug, Clone, Copy)]
pub struct Parameter {
    /// The redis.conf name.
    pub name: &'static str,
    /// The value grammar.
    pub value: Value,
    /// Online or restart.
    pub apply: Apply,
}

const fn p(name: &'static str, value: Value, apply: Apply) -> Parameter {
    Parameter { name, value, apply }
}

/// The allowed parameters. `maxmemory-policy`, `appendonly`/`appendfsync`, `maxclients`,
/// `maxmemory` and `requirepass` have their own spec fields and are not here.
pub const PARAMETERS: &[Parameter] = &[
    p("timeout", Value::Int(0, 100_000), Apply::Online),
    p("tcp-keepalive", Value::Int(0, 7_200), Apply::Online),
    p("hz", Value::Int(1, 500), Apply::Online),
    p("dynamic-hz", Value::YesNo, Apply::Online),
    p(
        "notify-keyspace-events",
        Value::Flags("KEg$lshzxetmdA"),
        Apply::Online,
    ),
    p(
        "slowlog-log-slower-than",
        Value::Int(-1, 10_000_000),
        Apply::Online,
    ),
    p("slowlog-max-len", Value::Int(0, 10_000), Apply::Online),
    p(
        "latency-monitor-threshold",
        Value::Int(0, 10_000),
        Apply::Online,
    ),
    p("lazyfree-lazy-eviction", Value::YesNo, Apply::Online),
    p("lazyfree-lazy-expire", Value::YesNo, Apply::Online),
    p("lazyfree-lazy-server-del", Value::YesNo, Apply::Online),
    p("lazyfree-lazy-user-del", Value::YesNo, Apply::Online),
    p(
        "hash-max-listpack-entries",
        Value::Int(0, 100_000),
        Apply::Online,
    ),
    p(
        "hash-max-listpack-value",
        Value::Int(0, 100_000),
        Apply::Online,
    ),
    p(
        "list-max-listpack-size",
        Value::Int(-5, 100_000),
        Apply::Online,
    ),
    p("list-compress-depth", Value::Int(0, 100_000), Apply::Online),
    p(
        "set-max-intset-entries",
        Value::Int(0, 100_000),
        Apply::Online,
    ),
    p(
        "zset-max-listpack-entries",
        Value::Int(0, 100_000),
        Apply::Online,
    ),
    p(
        "zset-max-listpack-value",
        Value::Int(0, 100_000),
        Apply::Online,
    ),
    p("activedefrag", Value::YesNo, Apply::Online),
    p("maxmemory-samples", Value::Int(1, 64), Apply::Online),
    p("lua-time-limit", Value::Int(0, 600_000), Apply::Online),
    p(
        "client-query-buffer-limit",
        Value::Int(1_048_576, 1_073_741_824),
        Apply::Online,
    ),
    p(
        "proto-max-bulk-len",
        Value::Int(1_048_576, 536_870_912),
        Apply::Online,
    ),
    p("io-threads", Value::Int(1, 8), Apply::Restart),
    p("databases", Value::Int(1, 256), Apply::Restart),
];

/// The default number of databases (the modelled suite's 256).
pub const DEFAULT_DATABASES: i64 = 256;

/// Looks a parameter up.
pub fn find(name: &str) -> Option<&'static Parameter> {
    PARAMETERS.iter().find(|p| p.name == name)
}

/// Every allowed name (the CRD's CEL rule).
pub fn names() -> Vec<&'static str> {
    PARAMETERS.iter().map(|p| p.name).collect()
}

/// A parameter value that does not fit its grammar (or a name not on the list).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    /// Not on the list.
    #[error("parameter {0:?} is not supported (supported: see docs/redis.md)")]
    Unknown(String),
    /// A bad value.
    #[error("parameter {name:?}: {value:?} is not {expected}")]
    BadValue {
        /// The parameter.
        name: String,
        /// What the user wrote.
        value: String,
        /// What was expected.
        expected: String,
    },
}

/// Checks every entry; returns the first problem in name order.
pub fn validate(parameters: &BTreeMap<String, String>) -> Result<(), ParameterError> {
    for (name, value) in parameters {
        let param = find(name).ok_or_else(|| ParameterError::Unknown(name.clone()))?;
        check_value(param, value.trim())?;
    }
    Ok(())
}

fn check_value(param: &Parameter, value: &str) -> Result<(), ParameterError> {
    let bad = |expected: String| ParameterError::BadValue {
        name: param.name.to_owned(),
        value: value.to_owned(),
        expected,
    };
    match param.value {
        Value::Int(lo, hi) => match value.parse::<i64>() {
            Ok(v) if (lo..=hi).contains(&v) => Ok(()),
            _ => Err(bad(format!("an integer in [{lo}, {hi}]"))),
        },
        Value::YesNo => match value {
            "yes" | "no" => Ok(()),
            _ => Err(bad("yes or no".into())),
        },
        Value::OneOf(options) => {
            if options.contains(&value) {
                Ok(())
            } else {
                Err(bad(format!("one of {}", options.join(", "))))
            }
        }
        Value::Flags(allowed) => {
            if value.chars().all(|c| allowed.contains(c)) {
                Ok(())
            } else {
                Err(bad(format!("made of the flags {allowed}")))
            }
        }
    }
}

/// The parameters that need a restart, as `name value` lines: their hash goes into the pod
/// template so that a change rolls the pods and an online change does not.
pub fn restart_only(parameters: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    parameters
        .iter()
        .filter(|(k, _)| find(k).is_some_and(|p| p.apply == Apply::Restart))
        .map(|(k, v)| (k.clone(), v.trim().to_owned()))
        .collect()
}

/// The parameters Redis takes online.
pub fn online(parameters: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    parameters
        .iter()
        .filter(|(k, _)| find(k).is_some_and(|p| p.apply == Apply::Online))
        .map(|(k, v)| (k.clone(), v.trim().to_owned()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn accepts_good_values() {
        validate(&map(&[
            ("timeout", "300"),
            ("notify-keyspace-events", "Ex"),
            ("lazyfree-lazy-expire", "yes"),
            ("list-max-listpack-size", "-2"),
            ("databases", "16"),
        ]))
        .unwrap();
        validate(&map(&[("notify-keyspace-events", "")])).unwrap();
    }

    #[test]
    fn rejects_unknown_names_and_bad_values() {
        assert_eq!(
            validate(&map(&[("save", "")])).unwrap_err(),
            ParameterError::Unknown("save".into())
        );
        let err = validate(&map(&[("hz", "0")])).unwrap_err().to_string();
        assert_eq!(err, "parameter \"hz\": \"0\" is not an integer in [1, 500]");
        assert!(validate(&map(&[("dynamic-hz", "true")])).is_err());
        assert!(validate(&map(&[("notify-keyspace-events", "Q")])).is_err());
        assert!(validate(&map(&[("databases", "257")])).is_err());
    }

    #[test]
    fn splits_online_from_restart() {
        let all = map(&[("timeout", "1"), ("io-threads", "2"), ("databases", "16")]);
        assert_eq!(online(&all), map(&[("timeout", "1")]));
        assert_eq!(
            restart_only(&all),
            map(&[("databases", "16"), ("io-threads", "2")])
        );
    }

    #[test]
    fn names_are_unique() {
        let mut n = names();
        n.sort_unstable();
        n.dedup();
        assert_eq!(n.len(), PARAMETERS.len());
    }
}
