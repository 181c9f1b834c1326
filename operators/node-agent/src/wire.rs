//! Wires the library's pieces into the agent's loops: netlink observation and the safe-apply
//! transaction for networking, sysfs discovery and LVM for disks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agility_node_agent::agent::enact::{Enact, Outcome};
use agility_node_agent::agent::netstate::Observe;
use agility_node_agent::agent::{Agent, AgentError, disks, pools};
use agility_node_agent::crd::disk::{DiskPool, DiskPoolNodeStatus, NodeDisk};
use agility_node_agent::crd::network::NodeNetworkPolicy;
use agility_node_agent::disk::{
    self, DiscoveryOptions, EligibilityOptions, HostPaths, LvmCli, ProcessRunner, SystemProber,
};
use agility_node_agent::net::checkpoint::{self, CheckpointStore, DeadManCommand};
use agility_node_agent::net::netlink::{NetlinkBackend, Sysfs, change_stream};
use agility_node_agent::net::probe::{
    ApiTarget, DnsTarget, ProbeConfig, ProbeSet, kinds_to_string,
};
use agility_node_agent::net::render::render;
use agility_node_agent::net::state::to_status;
use agility_node_agent::net::transaction::{self, EnactRequest, Settings};
use agility_node_agent::rollout::phase;
use anyhow::{Context, Result};
use futures::StreamExt;
use futures::stream::BoxStream;
use kube::ResourceExt;
use tracing::{info, warn};

/// Everything the loops need from the node.
pub struct Parts {
    pub observe: Observe,
    pub changes: BoxStream<'static, ()>,
    pub enact: Enact,
    pub discover: disks::Discover,
    pub build_pool: pools::BuildPool,
    backend: NetlinkBackend,
    store: Arc<CheckpointStore>,
}

impl Parts {
    pub async fn new(agent: &Agent) -> Result<Parts> {
        let cfg = &agent.config;
        std::fs::create_dir_all(&cfg.state_dir)
            .with_context(|| format!("creating {}", cfg.state_dir.display()))?;
        let backend =
            NetlinkBackend::new(Sysfs::new(cfg.sys.clone())).context("opening netlink")?;
        let changes = change_stream()
            .context("subscribing to netlink changes")?
            .boxed();
        let store = Arc::new(CheckpointStore::in_dir(&cfg.state_dir));

        let observe: Observe = {
            let backend = backend.clone();
            Box::new(move || {
                let backend = backend.clone();
                Box::pin(async move {
                    backend
                        .observe()
                        .await
                        .map(|s| to_status(&s))
                        .map_err(|e| AgentError::Netlink(e.to_string()))
                })
            })
        };

        let enact: Enact = {
            let backend = backend.clone();
            let store = Arc::clone(&store);
            let resolv_conf = cfg.resolv_conf.clone();
            let watchdog = DeadManCommand {
                program: cfg.self_exe.clone(),
                args: vec!["dead-man".into()],
            };
            Arc::new(move |policy: NodeNetworkPolicy| {
                let backend = backend.clone();
                let store = Arc::clone(&store);
                let resolv_conf = resolv_conf.clone();
                let watchdog = watchdog.clone();
                Box::pin(async move {
                    enact_policy(&backend, &store, &watchdog, resolv_conf, policy).await
                })
            })
        };

        let paths = HostPaths {
            sys: cfg.sys.clone(),
            dev: cfg.dev.clone(),
            mountinfo: cfg.mountinfo.clone(),
        };
        let node = cfg.node_name.clone();
        let min = cfg.min_disk_bytes;
        let prober = Arc::new(SystemProber::default());
        let discover: disks::Discover = Box::new(move |pool_volume_groups| {
            let paths = paths.clone();
            let node = node.clone();
            let prober = Arc::clone(&prober);
            Box::pin(async move {
                let options = DiscoveryOptions {
                    eligibility: EligibilityOptions {
                        min_size_bytes: min,
                        pool_volume_groups,
                    },
                    ..DiscoveryOptions::default()
                };
                match disk::discover_with(&paths, prober.as_ref(), &options).await {
                    Ok(found) => Some(
                        found
                            .iter()
                            .map(|d| (disk::object_name(&node, d), disk::status_of(d)))
                            .collect(),
                    ),
                    Err(e) => {
                        warn!(error = %e, "disk discovery failed");
                        None
                    }
                }
            })
        });

        let node = cfg.node_name.clone();
        let build_pool: pools::BuildPool = Arc::new(move |pool: DiskPool, disks: Vec<NodeDisk>| {
            let node = node.clone();
            Box::pin(async move { build_pool(&node, &pool, &disks).await })
        });

        Ok(Parts {
            observe,
            changes,
            enact,
            discover,
            build_pool,
            backend,
            store,
        })
    }

    /// Reverts a change an earlier agent process never confirmed.
    pub async fn recover(&self) {
        match checkpoint::recover_on_start(&self.store, &self.backend).await {
            Ok(None) => {}
            Ok(Some(r)) => {
                warn!(policy = %r.policy, generation = r.generation, by_agent = r.reverted_by_agent, "reverted a network change an earlier agent never confirmed")
            }
            Err(e) => warn!(error = %e, "could not revert an unconfirmed network change"),
        }
    }
}

async fn enact_policy(
    backend: &NetlinkBackend,
    store: &CheckpointStore,
    watchdog: &DeadManCommand,
    resolv_conf: PathBuf,
    policy: NodeNetworkPolicy,
) -> Outcome {
    let failing = |reason: &str, message: String| Outcome {
        phase: phase::FAILING,
        reason: reason.to_owned(),
        message,
        rendered: Vec::new(),
        probes_before: Vec::new(),
    };
    let state = match backend.observe().await {
        Ok(s) => s,
        Err(e) => return failing("ObserveFailed", e.to_string()),
    };
    let rendered = match render(&policy.spec, &state) {
        Ok(r) => r,
        Err(e) => return failing("InvalidPolicy", e.to_string()),
    };
    let gateway = state
        .routes
        .iter()
        .find(|r| r.is_default() && r.gateway.is_some())
        .and_then(|r| r.gateway);
    let probes = ProbeSet::new(ProbeConfig {
        api_server: ApiTarget::from_env(),
        gateway,
        dns: DnsTarget {
            resolv_conf,
            ..DnsTarget::default()
        },
        timeout: Duration::from_secs(3),
    });
    let settings = Settings::from_spec(&policy.spec.probes);
    let generation = policy.metadata.generation.unwrap_or(0);
    let name = policy.name_any();
    info!(policy = %name, generation, bonds = rendered.len(), "applying network policy");
    let result = transaction::enact(
        backend,
        &probes,
        EnactRequest {
            policy: &name,
            generation,
            desired: &rendered,
            store,
            watchdog: Some(watchdog),
            on_report: None,
        },
        &settings,
    )
    .await;
    Outcome {
        phase: match result.report.phase {
            transaction::Phase::Available => phase::AVAILABLE,
            transaction::Phase::Progressing => phase::PROGRESSING,
            transaction::Phase::Failing => phase::FAILING,
        },
        reason: result.report.reason.as_str().to_owned(),
        message: result.report.message.clone(),
        rendered,
        probes_before: kinds_to_string(&result.probes_before)
            .split(", ")
            .filter(|s| *s != "none" && !s.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

async fn build_pool(node: &str, pool: &DiskPool, disks: &[NodeDisk]) -> DiskPoolNodeStatus {
    let vg = pools::volume_group(pool);
    let runner = ProcessRunner;
    let lvm = LvmCli::default();
    let failed = |message: String| DiskPoolNodeStatus {
        node_name: node.to_owned(),
        phase: "Failed".into(),
        message: Some(message),
        volume_group: vg.clone(),
        observed_generation: pool.metadata.generation,
        ..Default::default()
    };
    if let Err(e) = disk::validate_filter(&pool.spec.devices) {
        return failed(e.to_string());
    }
    let candidates: Vec<disk::lvm::Candidate<'_>> = disks
        .iter()
        .filter_map(|d| {
            let status = d.status.as_ref()?;
            (status.present && disk::matches(&pool.spec.devices, status)).then(|| {
                disk::lvm::Candidate {
                    name: d.metadata.name.as_deref().unwrap_or_default(),
                    status,
                }
            })
        })
        .collect();
    let report = match disk::lvm::read_report(&runner, &lvm).await {
        Ok(r) => r,
        Err(e) => return failed(format!("reading LVM: {e}")),
    };
    let target = disk::lvm::PoolTarget {
        volume_group: &vg,
        thin_pool: &pool.spec.thin_pool,
        thin_pool_percent: pool.spec.thin_pool_percent,
        destroy_existing_data_on: &pool.spec.destroy_existing_data_on,
    };
    let plan = disk::lvm::plan(&target, &candidates, &report);
    let report = if plan.steps.is_empty() {
        report
    } else {
        info!(pool = %pool.name_any(), steps = plan.steps.len(), "building disk pool");
        if let Err(e) = disk::lvm::execute(&plan.steps, &runner, &lvm).await {
            return failed(e.to_string());
        }
        match disk::lvm::read_report(&runner, &lvm).await {
            Ok(r) => r,
            Err(e) => return failed(format!("reading LVM: {e}")),
        }
    };
    let mut status = disk::lvm::node_status(
        node,
        &vg,
        &pool.spec.thin_pool,
        pool.spec.overprovision_ratio,
        &report,
        plan.members.clone(),
    );
    status.observed_generation = pool.metadata.generation;
    status.last_updated = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    status
}

/// `agility-node-agent dead-man`: with `--checkpoint`, reverts that change unless it is
/// confirmed in time; with `--watch-dir`, reverts any change in the directory past its deadline,
/// for ever.
pub async fn dead_man(checkpoint: Option<PathBuf>, watch_dir: Option<PathBuf>) -> Result<()> {
    let backend = NetlinkBackend::new(Sysfs::default()).context("opening netlink")?;
    if let Some(dir) = watch_dir {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let stop = agility_core::shutdown::on_signal().context("installing signal handlers")?;
        let store = CheckpointStore::in_dir(&dir);
        info!(dir = %dir.display(), "dead-man watchdog watching");
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            r = checkpoint::watch_dead_man(&store, &backend, Duration::from_secs(1)) => {
                return r.context("dead-man watchdog");
            }
        }
    }
    let Some(checkpoint) = checkpoint else {
        anyhow::bail!("dead-man needs --checkpoint or --watch-dir");
    };
    let outcome = checkpoint::run_dead_man(&checkpoint, &backend)
        .await
        .context("dead-man watchdog")?;
    info!(?outcome, "dead-man watchdog done");
    Ok(())
}

/// How long past its deadline a change may stay unreverted before the watchdog counts as stuck.
const OVERDUE_AFTER: chrono::Duration = chrono::Duration::seconds(30);

/// `dead-man --check-dir`: fails when a checkpoint (live or claimed for revert) is overdue.
pub fn check_overdue(dir: &std::path::Path) -> Result<()> {
    let store = CheckpointStore::in_dir(dir);
    let now = chrono::Utc::now();
    let live = store
        .read::<serde_json::Value>()
        .context("reading the checkpoint")?;
    let claimed = store
        .read_claimed::<serde_json::Value>()
        .context("reading the claimed checkpoint")?;
    for cp in live.into_iter().chain(claimed) {
        anyhow::ensure!(
            cp.deadline + OVERDUE_AFTER > now,
            "the change of policy {} generation {} is {}s past its deadline and not reverted",
            cp.policy,
            cp.generation,
            (now - cp.deadline).num_seconds()
        );
    }
    Ok(())
}
