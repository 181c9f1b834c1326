//! Errors of the framework.

use std::time::Duration;

/// What can go wrong in a test step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// KUBECONFIG is not set or the cluster cannot be reached.
    #[error("no cluster: {0}")]
    NoCluster(String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A wait ran out of time; `last` is the last state seen.
    #[error("timed out after {timeout:?} waiting for {what}; last seen: {last}")]
    Timeout {
        what: String,
        timeout: Duration,
        last: String,
    },
    #[error("yaml: {0}")]
    Yaml(String),
    /// A command in a pod failed to run (not: ran and exited non-zero).
    #[error("exec in {pod}: {detail}")]
    Exec { pod: String, detail: String },
    #[error("dns: {0}")]
    Dns(String),
    /// Host-side fault injection could not find or signal the container's process.
    #[error("host-side access to {pod}: {detail}")]
    Host { pod: String, detail: String },
    /// An object lacks something the framework needs (a name, a kind, a UID, ...).
    #[error("invalid object: {0}")]
    InvalidObject(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
