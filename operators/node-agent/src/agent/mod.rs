//! The node-side half: one agent per node (DaemonSet). It publishes what the node has
//! (NodeNetworkState, NodeDisks), enacts the network policy generations the rollout approves for
//! its node, and builds the DiskPools that select its node.

pub mod disks;
pub mod enact;
pub mod kube;
pub mod netstate;
pub mod pools;
pub mod timing;

use std::path::PathBuf;
use std::time::Duration;

use ::kube::Client;
use agility_core::{Categorized, ErrorCategory};

/// Where the host's files are as the agent's container sees them, and how often to look.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// This node (from the downward API).
    pub node_name: String,
    /// The host's /sys (the pod uses the host network namespace, so /sys/class/net is the host's).
    pub sys: PathBuf,
    /// The host's /dev.
    pub dev: PathBuf,
    /// The host's mount table (`/proc/1/mountinfo` of the host's PID namespace).
    pub mountinfo: PathBuf,
    /// The host's resolv.conf, for the DNS probe.
    pub resolv_conf: PathBuf,
    /// Host directory of the dead-man checkpoint (survives agent restarts).
    pub state_dir: PathBuf,
    /// The agent's own executable, spawned as the dead-man watchdog.
    pub self_exe: PathBuf,
    /// Full refresh of the network state (jittered ±20%).
    pub network_interval: Duration,
    /// Cheap check whether the set of disks changed.
    pub disk_poll: Duration,
    /// Full disk discovery even without change (jittered ±20%).
    pub disk_interval: Duration,
    /// Disks below this size are not eligible.
    pub min_disk_bytes: u64,
}

/// What the agent's loops share.
#[derive(Clone)]
pub struct Agent {
    pub client: Client,
    pub config: AgentConfig,
    pub manager: String,
}

impl Agent {
    pub fn new(client: Client, config: AgentConfig) -> Self {
        let manager = kube::field_manager(&config.node_name);
        Agent {
            client,
            config,
            manager,
        }
    }
}

/// A failure in one of the agent's loops (each loop logs it and retries).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{action}")]
    Kube {
        action: String,
        #[source]
        source: agility_core::error::KubeError,
    },
    #[error("serialize: {0}")]
    Serialize(#[source] serde_json::Error),
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("{0}")]
    Node(String),
}

impl AgentError {
    pub fn kube(action: impl Into<String>, source: ::kube::Error) -> Self {
        AgentError::Kube {
            action: action.into(),
            source: agility_core::error::KubeError(source),
        }
    }
}

impl Categorized for AgentError {
    fn category(&self) -> ErrorCategory {
        match self {
            AgentError::Kube { source, .. } => source.category(),
            AgentError::Serialize(_) => ErrorCategory::Internal,
            AgentError::Netlink(_) | AgentError::Node(_) => ErrorCategory::DataPlane,
        }
    }
}
