//! `agility-node-agent`: the node agent DaemonSet (see docs/node-agent.md).
//!
//! `run` (default) publishes the node's network state and disks, enacts approved network policy
//! generations with rollback, and builds DiskPools. `dead-man` is the watchdog the agent spawns
//! around each network change: it reverts the change if the agent does not confirm it in time,
//! even when the agent itself was killed.

mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agility_core::health::{Health, Role};
use agility_core::metrics::Metrics;
use agility_node_agent::agent::{Agent, AgentConfig, disks, enact, netstate, pools};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "agility-node-agent",
    version,
    about = "Agility node agent: bonds, disks, disk pools"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (the default).
    Run(RunArgs),
    /// Revert a network change unless it is confirmed before its deadline (spawned by the agent).
    DeadMan(DeadManArgs),
}

#[derive(Args, Clone)]
struct RunArgs {
    /// This node's name (the DaemonSet sets it from spec.nodeName).
    #[arg(long, env = "NODE_NAME", default_value = "")]
    node_name: String,
    /// The host's /sys.
    #[arg(long, env = "AGILITY_HOST_SYS", default_value = "/sys")]
    host_sys: PathBuf,
    /// The host's /dev.
    #[arg(long, env = "AGILITY_HOST_DEV", default_value = "/dev")]
    host_dev: PathBuf,
    /// The host's mount table.
    #[arg(
        long,
        env = "AGILITY_HOST_MOUNTINFO",
        default_value = "/proc/1/mountinfo"
    )]
    host_mountinfo: PathBuf,
    /// The host's resolv.conf (DNS probe).
    #[arg(
        long,
        env = "AGILITY_HOST_RESOLV_CONF",
        default_value = "/etc/resolv.conf"
    )]
    host_resolv_conf: PathBuf,
    /// Host directory for the dead-man checkpoint.
    #[arg(
        long,
        env = "AGILITY_STATE_DIR",
        default_value = "/var/lib/agility/node-agent"
    )]
    state_dir: PathBuf,
    /// Seconds between full network state refreshes (jittered).
    #[arg(long, default_value_t = 300)]
    network_interval_seconds: u64,
    /// Seconds between cheap checks of /sys/block.
    #[arg(long, default_value_t = 5)]
    disk_poll_seconds: u64,
    /// Seconds between full disk discoveries (jittered).
    #[arg(long, default_value_t = 600)]
    disk_interval_seconds: u64,
    /// Disks smaller than this many MiB are not eligible for pools.
    #[arg(long, default_value_t = 1024)]
    min_disk_mib: u64,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8081")]
    http_addr: SocketAddr,
    /// Log format: json or text.
    #[arg(long, default_value = "json")]
    log_format: agility_core::telemetry::LogFormat,
}

#[derive(Args)]
struct DeadManArgs {
    /// Watch one checkpoint (the agent spawns this around each change).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Watch the state directory for ever (the DaemonSet's watchdog container, which survives
    /// the agent's container being killed).
    #[arg(long)]
    watch_dir: Option<PathBuf>,
    /// Exit non-zero when a change in this directory is overdue for revert (the watchdog
    /// container's liveness check).
    #[arg(long)]
    check_dir: Option<PathBuf>,
    #[arg(long, default_value = "json")]
    log_format: agility_core::telemetry::LogFormat,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let (format, work): (
        _,
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>>>>,
    ) = match cli.command {
        Some(Command::DeadMan(a)) => match a.check_dir {
            // A probe: no runtime, no logging setup, just the verdict.
            Some(dir) => return wire::check_overdue(&dir),
            None => (
                a.log_format,
                Box::pin(wire::dead_man(a.checkpoint, a.watch_dir)),
            ),
        },
        Some(Command::Run(a)) => (a.log_format, Box::pin(run(a))),
        None => (cli.run.log_format, Box::pin(run(cli.run))),
    };
    agility_core::telemetry::init(format).map_err(|e| anyhow::anyhow!("logging: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    let result = runtime.block_on(work);
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "agility-node-agent stopped");
    }
    result
}

async fn run(args: RunArgs) -> Result<()> {
    anyhow::ensure!(
        !args.node_name.is_empty(),
        "--node-name (NODE_NAME) is required"
    );
    let stop = agility_core::shutdown::on_signal().context("installing signal handlers")?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to the API server")?;
    let config = AgentConfig {
        node_name: args.node_name.clone(),
        sys: args.host_sys,
        dev: args.host_dev,
        mountinfo: args.host_mountinfo,
        resolv_conf: args.host_resolv_conf,
        state_dir: args.state_dir,
        self_exe: std::env::current_exe().context("locating the agent's executable")?,
        network_interval: Duration::from_secs(args.network_interval_seconds),
        disk_poll: Duration::from_secs(args.disk_poll_seconds),
        disk_interval: Duration::from_secs(args.disk_interval_seconds),
        min_disk_bytes: args.min_disk_mib << 20,
    };
    let node = Api::<Node>::all(client.clone())
        .get(&config.node_name)
        .await
        .with_context(|| format!("reading Node {}", config.node_name))?;
    let agent = Agent::new(client, config);

    let health = Health::new(&["node-agent"], Role::Single);
    let metrics = Arc::new(Metrics::new(&["node-agent"]).context("registering metrics")?);
    let http = tokio::spawn(agility_core::http::serve(
        args.http_addr,
        metrics,
        health.clone(),
        stop.clone(),
    ));

    let parts = wire::Parts::new(&agent).await?;
    // A change the previous agent process never confirmed is reverted before anything else.
    parts.recover().await;

    let (vg_tx, vg_rx) = watch::channel(Default::default());
    let (disc_tx, mut disc_rx) = watch::channel(0u64);
    let ready = {
        let health = health.clone();
        let mut rx = disc_rx.clone();
        tokio::spawn(async move {
            // Ready once the node's disks were published the first time.
            if rx.changed().await.is_ok() {
                health.mark_synced("node-agent");
            }
        })
    };
    disc_rx.mark_unchanged();
    tokio::join!(
        netstate::run(
            agent.clone(),
            node.clone(),
            parts.observe,
            parts.changes,
            stop.clone()
        ),
        enact::run(agent.clone(), parts.enact, stop.clone()),
        disks::run(
            agent.clone(),
            node,
            parts.discover,
            vg_rx,
            disc_tx,
            stop.clone()
        ),
        pools::run(agent, parts.build_pool, disc_rx, vg_tx, stop.clone()),
    );
    ready.abort();
    http.abort();
    Ok(())
}
