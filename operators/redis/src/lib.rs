//! `agility-redis`: the RedisInstance product (KVStore for Redis). See docs/redis.md.
//!
//! Shape: [`crd`] (types and admission rules) → [`plan`] (validate and resolve) → [`build`]
//! (pure children) → [`controller`] (apply, status) with [`ha`] (the failover supervisor that
//! probes every node and moves the master label the endpoint Service follows).

pub mod build;
pub mod catalog;
pub mod certs;
pub mod controller;
pub mod crd;
pub mod dataplane;
pub mod error;
pub mod ha;
pub mod names;
pub mod params;
pub mod plan;
pub mod tls;

use std::sync::Arc;

use agility_core::events::EventPublisher;
use agility_core::product::BoxFuture;
use agility_core::{ControllerContext, ProductController, Runner};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};

use crate::build::monitoring::{MonitoringKinds, PrometheusRule, ServiceMonitor};
use crate::build::network_policy::OperatorPeer;
use crate::controller::State;
use crate::crd::RedisInstance;
use crate::ha::supervisor::{Supervisor, Timing};
use crate::plan::OperatorSettings;

/// The `redis` controller.
pub struct RedisController;

impl ProductController for RedisController {
    fn name(&self) -> &'static str {
        names::CONTROLLER
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        vec![RedisInstance::crd()]
    }

    fn run(&self, ctx: ControllerContext) -> BoxFuture<'static, agility_core::Result<()>> {
        Box::pin(run(ctx))
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Operator settings from the environment the chart sets.
pub fn settings_from_env() -> (OperatorSettings, OperatorPeer) {
    let defaults = OperatorSettings::default();
    let settings = OperatorSettings {
        image: env("AGILITY_IMAGE_REDIS").unwrap_or(defaults.image),
        image_pull_policy: env("AGILITY_IMAGE_PULL_POLICY").unwrap_or(defaults.image_pull_policy),
        request_percent: env("AGILITY_REDIS_REQUEST_PERCENT")
            .and_then(|v| v.parse().ok())
            .unwrap_or(defaults.request_percent),
    };
    let operator = OperatorPeer::from_env();
    (settings, operator)
}

/// Which Prometheus Operator kinds exist (checked once at start).
async fn monitoring_kinds(client: &kube::Client) -> MonitoringKinds {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let exists = |name: &'static str| {
        let crds = crds.clone();
        async move { matches!(crds.get_opt(name).await, Ok(Some(_))) }
    };
    let kinds = MonitoringKinds {
        service_monitor: exists("servicemonitors.monitoring.coreos.com").await,
        prometheus_rule: exists("prometheusrules.monitoring.coreos.com").await,
    };
    tracing::info!(?kinds, "Prometheus Operator kinds");
    kinds
}

async fn run(ctx: ControllerContext) -> agility_core::Result<()> {
    let client = ctx.client().clone();
    let shutdown = ctx.shutdown().clone();
    // Data pods of every instance, for the supervisor (ours only, by label).
    let pods = agility_core::supervise::data_pods(
        &client,
        names::CONTROLLER,
        names::COMPONENT_SERVER,
        shutdown.clone(),
    );
    let failovers = ctx.metrics().counter_vec(
        "agility_redis_failovers_total",
        "Automatic failovers carried out, by reason",
        &["namespace", "name", "reason"],
    )?;
    let (trigger_tx, trigger_rx) = tokio::sync::mpsc::unbounded_channel();
    let client_for_secrets = client.clone();
    let events = EventPublisher::new(
        client.clone(),
        names::CONTROLLER,
        ctx.instance().map(str::to_owned),
    );
    let supervisor = Arc::new(Supervisor::new(
        client,
        pods,
        events,
        trigger_tx,
        failovers,
        Timing {
            password_grace: env("AGILITY_REDIS_PASSWORD_GRACE_SECONDS")
                .and_then(|v| v.parse().ok())
                .map_or(
                    Timing::default().password_grace,
                    std::time::Duration::from_secs,
                ),
            ..Timing::default()
        },
        shutdown,
    ));
    let (settings, operator) = settings_from_env();
    let monitoring = monitoring_kinds(&client_for_secrets).await;
    let secret_users: Arc<std::sync::Mutex<controller::SecretUsers>> = Arc::default();
    let state = State {
        settings,
        operator,
        supervisor,
        secret_users: secret_users.clone(),
        monitoring,
    };
    let triggers = futures::stream::unfold(trigger_rx, |mut rx| async move {
        rx.recv().await.map(|k| (k, rx))
    })
    .boxed();
    // Users' password Secrets (metadata only): a change reconciles the instances using them, which
    // rotates the password online.
    let secret_changes = watcher(
        Api::<kube::core::PartialObjectMeta<Secret>>::all(client_for_secrets),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects()
    .filter_map(move |s| {
        let users = secret_users.clone();
        async move {
            let s = s.ok()?;
            let key = (s.metadata.namespace.clone()?, s.metadata.name.clone()?);
            let users = users
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let names: Vec<_> = users
                .get(&key)?
                .iter()
                .map(|n| (Some(key.0.clone()), n.clone()))
                .collect();
            Some(futures::stream::iter(names))
        }
    })
    .flatten()
    .boxed();
    let mut runner = Runner::<RedisInstance>::new(ctx);
    // Optional kinds are watched (and pruned) only when their CRDs exist.
    if monitoring.service_monitor {
        runner = runner.owns::<ServiceMonitor>();
    }
    if monitoring.prometheus_rule {
        runner = runner.owns::<PrometheusRule>();
    }
    runner
        .owns::<StatefulSet>()
        .owns::<Service>()
        .owns::<ConfigMap>()
        .owns::<Secret>()
        .owns::<NetworkPolicy>()
        .owns::<PodDisruptionBudget>()
        .trigger(triggers)
        .trigger(secret_changes)
        .run(controller::reconcile, state)
        .await
}
