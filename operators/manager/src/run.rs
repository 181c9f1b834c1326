//! `run`: wiring only. Build the client, serve HTTP, elect a leader, run the enabled controllers,
//! and shut down in the right order.
//!
//! Shutdown order on SIGTERM: stop taking work and drain in-flight reconciles (bounded), then
//! release the lease so a standby takes over within one retry interval, then exit 0.
//! Losing the lease: abort every controller at once (no reconcile may run without the lease) and
//! exit 1; the pod restarts as a clean standby instead of carrying state across terms.

use std::sync::Arc;
use std::time::Duration;

use agility_core::health::{Health, Role};
use agility_core::leader::{LeaderElector, Leadership, LeaseTiming};
use agility_core::metrics::Metrics;
use agility_core::shutdown::CancellationToken;
use agility_core::{ControllerContext, ProductController};
use anyhow::{Context, Result, anyhow, bail};
use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::cli::RunArgs;

/// How long in-flight reconciles may take to finish after SIGTERM (the chart's grace period is 30s).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// What every controller context is made from.
struct Wiring {
    client: Client,
    metrics: Arc<Metrics>,
    health: Health,
    shutdown: CancellationToken,
    instance: String,
}

impl Wiring {
    /// A context for controller `name` with its own child shutdown token.
    fn context(&self, name: &str) -> ControllerContext {
        ControllerContext::new(
            name,
            self.client.clone(),
            self.metrics.clone(),
            self.health.clone(),
            self.shutdown.child_token(),
            Some(self.instance.clone()),
        )
    }
}

/// Runs the operator until SIGTERM/SIGINT (Ok) or a fatal condition (Err → exit code 1).
pub async fn run(args: RunArgs, products: Vec<Box<dyn ProductController>>) -> Result<()> {
    let shutdown = agility_core::shutdown::on_signal().context("installing signal handlers")?;
    let names: Vec<&str> = products.iter().map(|p| p.name()).collect();
    info!(controllers = ?names, leader_election = args.leader_election, "starting agility-operator");

    let client = Client::try_default()
        .await
        .context("building the Kubernetes client")?;
    let metrics = Arc::new(Metrics::new(&names).context("registering metrics")?);
    let role = if args.leader_election {
        Role::Starting
    } else {
        Role::Single
    };
    let health = Health::new(&names, role);

    let http_stop = shutdown.child_token();
    let http = tokio::spawn(agility_core::http::serve(
        args.http_addr,
        metrics.clone(),
        health.clone(),
        http_stop.clone(),
    ));

    let wiring = Wiring {
        client,
        metrics,
        health,
        shutdown: shutdown.clone(),
        instance: identity(&args),
    };
    // Data planes served by every replica start before the election and stop last.
    let mut every = JoinSet::new();
    for product in &products {
        if let Some(fut) = product.run_on_every_replica(wiring.context(product.name())) {
            let name = product.name().to_owned();
            every.spawn(async move { (name, fut.await) });
        }
    }
    // An every-replica task that ends while we should run is fatal; ending at shutdown is not.
    let every_failed = async {
        let ended = next_ended(&mut every).await;
        if shutdown.is_cancelled() {
            std::future::pending::<()>().await;
        }
        ended
    };
    let result = tokio::select! {
        r = run_controllers(&args, &products, &wiring) => r,
        ended = every_failed => Err(controller_ended(ended)),
    };
    every.abort_all();
    http_stop.cancel();
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "HTTP server failed"),
        Err(e) => warn!(error = %e, "HTTP server task failed"),
    }
    result
}

/// The leader-only controllers: elected, or at once without leader election.
async fn run_controllers(
    args: &RunArgs,
    products: &[Box<dyn ProductController>],
    w: &Wiring,
) -> Result<()> {
    if args.leader_election {
        run_elected(args, products, w).await
    } else {
        w.metrics.set_leader(true);
        let mut set = start(products, w);
        tokio::select! {
            () = w.shutdown.cancelled() => { drain(&mut set).await; Ok(()) }
            ended = next_ended(&mut set) => Err(controller_ended(ended)),
        }
    }
}

async fn run_elected(
    args: &RunArgs,
    products: &[Box<dyn ProductController>],
    w: &Wiring,
) -> Result<()> {
    let (client, metrics, health, shutdown, instance) = (
        &w.client,
        &w.metrics,
        &w.health,
        &w.shutdown,
        w.instance.as_str(),
    );
    let namespace = args
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let timing = timing(args);
    let elector = LeaderElector::new(
        client.clone(),
        &namespace,
        &args.lease_name,
        instance,
        timing,
    )
    .map_err(|e| anyhow!(agility_core::error::cause_chain(&e)))?
    .spawn();
    let mut leadership = elector.subscribe();
    info!(lease = %format!("{namespace}/{}", args.lease_name), identity = instance, "waiting for leadership");

    // Standby until we lead or are told to stop.
    loop {
        let state = leadership.borrow_and_update().clone();
        match state {
            Leadership::Leader => break,
            Leadership::Standby { .. } => health.set_role(Role::Standby),
            Leadership::Unknown => health.set_role(Role::Starting),
        }
        tokio::select! {
            () = shutdown.cancelled() => return release(elector).await,
            changed = leadership.changed() => changed.context("leader election stopped")?,
        }
    }

    let started = tokio::time::Instant::now();
    health.set_role(Role::Leader);
    metrics.set_leader(true);
    let mut set = start(products, w);
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "leading; controllers started"
    );

    tokio::select! {
        () = shutdown.cancelled() => {
            drain(&mut set).await;
            metrics.set_leader(false);
            release(elector).await
        }
        () = lost(&mut leadership) => {
            // Stop reconciling at once: aborting the tasks drops the controller streams, which
            // cancels every in-flight reconcile at its next await point.
            set.abort_all();
            metrics.set_leader(false);
            health.set_role(Role::Standby);
            elector.abort();
            bail!("lost the leader lease; exiting so the pod restarts as a standby")
        }
        ended = next_ended(&mut set) => {
            set.abort_all();
            metrics.set_leader(false);
            let err = controller_ended(ended);
            if let Err(e) = release(elector).await {
                warn!(error = %e, "could not release the lease");
            }
            Err(err)
        }
    }
}

/// Resolves when this replica no longer leads.
async fn lost(leadership: &mut watch::Receiver<Leadership>) {
    while leadership.borrow_and_update().is_leader() {
        if leadership.changed().await.is_err() {
            return;
        }
    }
}

async fn release(elector: agility_core::leader::ElectorHandle) -> Result<()> {
    elector
        .stop_and_release()
        .await
        .map_err(|e| anyhow!(agility_core::error::cause_chain(&e)))
}

fn start(products: &[Box<dyn ProductController>], w: &Wiring) -> ControllerSet {
    let mut set = JoinSet::new();
    for product in products {
        let name = product.name().to_owned();
        let fut = product.run(w.context(&name));
        set.spawn(async move { (name, fut.await) });
    }
    set
}

type ControllerSet = JoinSet<(String, agility_core::Result<()>)>;

/// The next controller task to end; never resolves when none runs (running zero controllers is
/// valid: the replica still takes part in the election and serves its endpoints).
async fn next_ended(
    set: &mut ControllerSet,
) -> Option<Result<(String, agility_core::Result<()>), tokio::task::JoinError>> {
    if set.is_empty() {
        std::future::pending::<()>().await;
    }
    set.join_next().await
}

/// Waits for the controllers to drain after shutdown, aborting whatever is still running at the
/// deadline.
async fn drain(set: &mut ControllerSet) {
    let all = async {
        while let Some(res) = set.join_next().await {
            match res {
                Ok((name, Ok(()))) => info!(controller = %name, "controller drained"),
                Ok((name, Err(e))) => {
                    error!(controller = %name, error = %agility_core::error::cause_chain(&e), "controller failed while stopping")
                }
                Err(e) => error!(error = %e, "controller task failed"),
            }
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, all).await.is_err() {
        warn!("controllers did not drain in time; aborting them");
        set.abort_all();
    }
}

/// A controller task ended while it should run: always fatal (the pod restarts).
fn controller_ended(
    ended: Option<Result<(String, agility_core::Result<()>), tokio::task::JoinError>>,
) -> anyhow::Error {
    match ended {
        // Unreachable: next_ended never resolves on an empty set.
        None => anyhow!("no controller is running"),
        Some(Ok((name, Ok(())))) => anyhow!("controller {name} stopped unexpectedly"),
        Some(Ok((name, Err(e)))) => anyhow!(
            "controller {name} failed: {}",
            agility_core::error::cause_chain(&e)
        ),
        Some(Err(e)) => anyhow!("controller task failed: {e}"),
    }
}

/// The election identity: --identity / POD_NAME, else HOSTNAME, else a per-process name.
pub fn identity(args: &RunArgs) -> String {
    args.identity
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| format!("agility-operator-{}", std::process::id()))
}

/// Lease timing from the flags; the renew deadline sits between the renew interval and the lease
/// duration (2/3 of the duration, like client-go's 10s of 15s).
pub fn timing(args: &RunArgs) -> LeaseTiming {
    let lease = Duration::from_secs(args.lease_duration_seconds);
    let renew = Duration::from_secs(args.lease_renew_seconds);
    LeaseTiming {
        lease_duration: lease,
        renew_interval: renew,
        renew_deadline: (lease * 2 / 3).max(renew + Duration::from_millis(500)),
        retry_interval: Duration::from_secs(2).min(renew),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> RunArgs {
        let mut argv = vec!["agility-operator", "run"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv)
            .unwrap()
            .into_command()
        {
            crate::cli::Command::Run(r) => r,
            other => panic!("expected run, got {other:?}"),
        }
    }

    #[test]
    fn default_timing_is_15_5_10_2_and_valid() {
        let t = timing(&args(&[]));
        assert_eq!(t, LeaseTiming::default());
        assert!(t.validate().is_ok());
    }

    #[test]
    fn custom_timing_stays_valid() {
        let t = timing(&args(&[
            "--lease-duration-seconds",
            "6",
            "--lease-renew-seconds",
            "2",
        ]));
        assert_eq!(t.renew_deadline, Duration::from_secs(4));
        assert!(t.validate().is_ok());
        let t = timing(&args(&[
            "--lease-duration-seconds",
            "3",
            "--lease-renew-seconds",
            "5",
        ]));
        assert!(
            t.validate().is_err(),
            "renewing slower than the lease lasts is rejected"
        );
    }

    #[test]
    fn identity_prefers_the_flag() {
        assert_eq!(identity(&args(&["--identity", "pod-7"])), "pod-7");
        assert!(!identity(&args(&[])).is_empty());
    }
}
