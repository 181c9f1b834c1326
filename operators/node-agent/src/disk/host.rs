//! Where the host's /sys, /dev and mount table are seen from the agent's container.

use std::path::{Path, PathBuf};

/// The agent runs in a container with the host's /sys, /dev and /proc/1/mountinfo mounted at
/// configurable places (e.g. /host/sys). Reported device paths are always the host's (`/dev/sdb`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPaths {
    /// The host's sysfs root (contains `block/`).
    pub sys: PathBuf,
    /// The host's /dev (device nodes are probed here; `disk/by-id` links are read here).
    pub dev: PathBuf,
    /// The host's mount table in mountinfo format (the host's /proc/1/mountinfo).
    pub mountinfo: PathBuf,
}

impl HostPaths {
    /// All under one prefix: `/host` gives /host/sys, /host/dev, /host/proc/1/mountinfo.
    pub fn under(prefix: impl AsRef<Path>) -> Self {
        let p = prefix.as_ref();
        HostPaths {
            sys: p.join("sys"),
            dev: p.join("dev"),
            mountinfo: p.join("proc/1/mountinfo"),
        }
    }

    /// The agent sees the host directly (tests on this machine, or hostPID + host mounts at /).
    pub fn root() -> Self {
        HostPaths {
            sys: "/sys".into(),
            dev: "/dev".into(),
            mountinfo: "/proc/1/mountinfo".into(),
        }
    }

    /// The device node of a kernel name as seen from the agent (`<dev>/<name>`).
    pub fn device_node(&self, name: &str) -> PathBuf {
        self.dev.join(name)
    }
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths::root()
    }
}
