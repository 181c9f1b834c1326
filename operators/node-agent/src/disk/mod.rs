//! Disk discovery, eligibility and LVM disk pools.
//!
//! Flow for the agent loop: [`discover`] (sysfs + the host's mount table + probes; per-disk
//! failures become `ProbeFailed` verdicts) → [`object_name`] and [`status_of`] for each
//! `NodeDisk` ([`vanished`] for objects whose disk is gone) → for each `DiskPool` selecting the
//! node: [`matches`] picks candidates, [`lvm::read_report`] + [`lvm::plan`] plan the steps,
//! [`lvm::execute`] runs them, [`lvm::node_status`] gives the node's pool status.

pub mod command;
pub mod discover;
pub mod eligibility;
pub mod error;
pub mod fake_sys;
pub mod filter;
pub mod host;
pub mod lvm;
pub mod mounts;
pub mod naming;
pub mod probe;
pub mod status;
pub mod sysfs;

pub use crate::quantity::{human_bytes, parse_bytes};
pub use command::{CommandOutput, CommandRunner, ProcessRunner};
pub use discover::{DiscoveredDisk, DiscoveredPartition, DiscoveryOptions, discover_with};
pub use eligibility::{DEFAULT_MIN_SIZE, EligibilityOptions, Reason, Verdict, judge};
pub use error::DiskError;
pub use filter::{FilterError, matches, validate as validate_filter};
pub use host::HostPaths;
pub use naming::object_name;
pub use probe::{FakeProber, LvmCli, Prober, Signature, SystemProber};
pub use status::{status_of, vanished};

/// Discovers the host's disks with the default options and `min_size` bytes as the smallest
/// eligible size. Errs only when `<sys>/block` cannot be listed.
pub async fn discover(
    paths: &HostPaths,
    prober: &dyn Prober,
    min_size: u64,
) -> Result<Vec<DiscoveredDisk>, DiskError> {
    let opts = DiscoveryOptions {
        eligibility: EligibilityOptions {
            min_size_bytes: min_size,
            ..Default::default()
        },
        ..Default::default()
    };
    discover_with(paths, prober, &opts).await
}
