//! `agility-rds`: the RdsInstance product (a MySQL-compatible relational database on MariaDB
//! 10.11). See docs/rds.md.
//!
//! Shape: [`crd`] (types and admission rules) → [`plan`] (validate and resolve) → [`build`]
//! (pure children) → [`controller`] (apply, status) with [`ha`] (the supervisor that probes every
//! node, elects and fences, and moves the role label the endpoint Service follows) and
//! [`dataplane`] (the MySQL-protocol client: probes, replication, accounts, grants).

pub mod account;
pub mod build;
pub mod catalog;
pub mod controller;
pub mod crd;
pub mod dataplane;
pub mod error;
pub mod grants;
pub mod ha;
pub mod names;
pub mod params;
pub mod plan;

use std::sync::Arc;

use agility_core::allowlist::OperatorPeer;
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
use kube::runtime::reflector::{self, reflector};
use kube::runtime::watcher::{self, watcher};

use crate::crd::{RdsAccount, RdsDatabase, RdsInstance};
use crate::ha::supervisor::{Supervisor, Timing};
use crate::plan::OperatorSettings;

/// The `rds` controller.
pub struct RdsController;

impl ProductController for RdsController {
    fn name(&self) -> &'static str {
        names::CONTROLLER
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        vec![RdsInstance::crd(), RdsAccount::crd(), RdsDatabase::crd()]
    }

    fn run(&self, ctx: ControllerContext) -> BoxFuture<'static, agility_core::Result<()>> {
        Box::pin(run(ctx))
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Operator settings from the environment the chart sets.
pub fn settings_from_env() -> OperatorSettings {
    let d = OperatorSettings::default();
    OperatorSettings {
        image: env("AGILITY_IMAGE_MARIADB").unwrap_or(d.image),
        image_pull_policy: env("AGILITY_IMAGE_PULL_POLICY").unwrap_or(d.image_pull_policy),
        request_percent: env("AGILITY_RDS_REQUEST_PERCENT")
            .and_then(|v| v.parse().ok())
            .unwrap_or(d.request_percent),
    }
}

async fn run(ctx: ControllerContext) -> agility_core::Result<()> {
    let client = ctx.client().clone();
    let shutdown = ctx.shutdown().clone();
    // Database pods of every instance, for the supervisor (ours only, by label).
    let pods = agility_core::supervise::data_pods(
        &client,
        names::CONTROLLER,
        names::COMPONENT_SERVER,
        shutdown.clone(),
    );
    let failovers = ctx.metrics().counter_vec(
        "agility_rds_failovers_total",
        "Automatic failovers carried out, by reason",
        &["namespace", "name", "reason"],
    )?;
    let (trigger_tx, trigger_rx) = tokio::sync::mpsc::unbounded_channel();
    let events = EventPublisher::new(
        client.clone(),
        names::CONTROLLER,
        ctx.instance().map(str::to_owned),
    );
    let client_for_dependents = client.clone();
    let supervisor = Arc::new(Supervisor::new(
        client,
        pods,
        events,
        trigger_tx,
        failovers,
        Timing::default(),
        shutdown,
    ));
    let state = controller::State {
        settings: settings_from_env(),
        operator: OperatorPeer::from_env(),
        supervisor,
    };
    let triggers = futures::stream::unfold(trigger_rx, |mut rx| async move {
        rx.recv().await.map(|k| (k, rx))
    })
    .boxed();
    let instances = Runner::<RdsInstance>::new(ctx.clone())
        .owns::<StatefulSet>()
        .owns::<Service>()
        .owns::<ConfigMap>()
        .owns::<Secret>()
        .owns::<NetworkPolicy>()
        .owns::<PodDisruptionBudget>()
        .trigger(triggers)
        .run(controller::reconcile, state);
    let account_state = Arc::new(account::AccountState);
    // An instance change (e.g. its first primary) re-reconciles its accounts and databases at
    // once instead of at their next backoff.
    let accounts = Runner::<RdsAccount>::new(ctx.clone())
        .owns::<Secret>()
        .trigger(dependents::<RdsAccount>(&client_for_dependents, |a| {
            a.spec.instance_name.clone()
        }))
        .run(account::reconcile_account, account_state.clone());
    let databases = Runner::<RdsDatabase>::new(ctx)
        .trigger(dependents::<RdsDatabase>(&client_for_dependents, |d| {
            d.spec.instance_name.clone()
        }))
        .run(account::reconcile_database, account_state);
    let (a, b, c) = tokio::join!(instances, accounts, databases);
    a.and(b).and(c)
}

/// Keys of the `K` objects (accounts or databases) naming an RdsInstance that changed: a
/// watch of instances joined with a cache of `K`.
fn dependents<K>(
    client: &kube::Client,
    instance_of: fn(&K) -> String,
) -> futures::stream::BoxStream<'static, agility_core::ObjectKey>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let cache = reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects()
    .for_each(|_| futures::future::ready(()));
    tokio::spawn(cache);
    watcher(
        Api::<RdsInstance>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects()
    .filter_map(move |i| {
        let store = store.clone();
        async move {
            let i = i.ok()?;
            let ns = i.metadata.namespace.clone();
            let name = i.metadata.name.clone()?;
            let keys: Vec<agility_core::ObjectKey> = store
                .state()
                .iter()
                .filter(|k| k.meta().namespace == ns && instance_of(k) == name)
                .filter_map(|k| Some((ns.clone(), k.meta().name.clone()?)))
                .collect();
            Some(futures::stream::iter(keys))
        }
    })
    .flatten()
    .boxed()
}
