//! How a product controller plugs into the manager.
//!
//! A product crate implements [`ProductController`] (name, CRDs, run); the manager keeps a list of
//! them, enables a subset from flags, generates CRDs from [`ProductController::crds`] and runs each
//! enabled one with its own [`ControllerContext`].

use std::sync::Arc;

/// Re-exported so product crates need no direct `futures` dependency for [`ProductController::run`].
pub use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::health::Health;
use crate::metrics::Metrics;

/// A product controller the manager can run.
pub trait ProductController: Send + Sync {
    /// The controller name: the `--controllers` value, the metric label, the field manager suffix
    /// (`agility-operator/<name>`) and the `agility.dev/controller` label of its children.
    /// Lowercase, `[a-z0-9-]`.
    fn name(&self) -> &'static str;

    /// The CRDs this controller owns (for `crdgen` and the chart).
    fn crds(&self) -> Vec<CustomResourceDefinition>;

    /// Runs the controller until `ctx.shutdown()` fires (usually `Runner::new(ctx)...run(..)`).
    /// Only on the leader.
    fn run(&self, ctx: ControllerContext) -> BoxFuture<'static, Result<()>>;

    /// Work that runs on every replica, leader or standby, from start to shutdown: a product's
    /// stateless data plane served by the same process (e.g. the KMS API). None by default.
    fn run_on_every_replica(
        &self,
        _ctx: ControllerContext,
    ) -> Option<BoxFuture<'static, Result<()>>> {
        None
    }
}

/// Everything a controller gets from the manager.
#[derive(Clone)]
pub struct ControllerContext {
    name: Arc<str>,
    client: Client,
    metrics: Arc<Metrics>,
    health: Health,
    shutdown: CancellationToken,
    instance: Option<String>,
}

impl ControllerContext {
    /// A context for controller `name`. `instance` is the reporting pod name for events.
    pub fn new(
        name: &str,
        client: Client,
        metrics: Arc<Metrics>,
        health: Health,
        shutdown: CancellationToken,
        instance: Option<String>,
    ) -> Self {
        ControllerContext {
            name: name.into(),
            client,
            metrics,
            health,
            shutdown,
            instance,
        }
    }

    /// The controller name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shared name.
    pub fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The API client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Health state (the runner marks the controller synced here).
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Cancelled when the controller must stop (SIGTERM, or shutting down for another reason).
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The reporting instance (pod name) for events.
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }
}
