//! `agility-oss`: object storage. See docs/oss.md.
//!
//! Shape: [`crd`] (ObjectStore, Bucket, BucketAccess) → [`store`] (the Garage cluster: pure
//! builders and its controller) → [`bucket`] and [`access`] (buckets and keys through
//! [`garage`]'s admin client) → [`gateway`] (the S3 front that enforces what Garage does not).

pub mod access;
pub mod bucket;
pub mod conditions;
pub mod crd;
pub mod error;
pub mod finalizer;
pub mod garage;
pub mod gateway;
pub mod names;
pub mod state;
pub mod store;
pub mod testing;

use std::sync::Arc;

use agility_core::product::BoxFuture;
use agility_core::{ControllerContext, ObjectKey, ProductController, Runner};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, reflector};
use kube::runtime::watcher::{self, watcher};
use kube::{CustomResourceExt, ResourceExt};

pub use state::State;

use crate::crd::{Bucket, BucketAccess, ObjectStore};
use crate::store::build::Settings;

/// The `oss` controller: ObjectStores, Buckets and BucketAccesses.
pub struct OssController;

impl ProductController for OssController {
    fn name(&self) -> &'static str {
        names::CONTROLLER
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        vec![ObjectStore::crd(), Bucket::crd(), BucketAccess::crd()]
    }

    fn run(&self, ctx: ControllerContext) -> BoxFuture<'static, agility_core::Result<()>> {
        Box::pin(run(ctx))
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Images from the environment the chart sets.
pub fn settings_from_env() -> Settings {
    let d = Settings::default();
    Settings {
        garage_image: env("AGILITY_IMAGE_GARAGE").unwrap_or(d.garage_image),
        gateway_image: env("AGILITY_IMAGE_OPERATOR").unwrap_or(d.gateway_image),
        image_pull_policy: env("AGILITY_IMAGE_PULL_POLICY").unwrap_or(d.image_pull_policy),
    }
}

async fn run(ctx: ControllerContext) -> agility_core::Result<()> {
    let client = ctx.client().clone();
    let (stores, store_writer) = reflector::store::<ObjectStore>();
    let (buckets, bucket_writer) = reflector::store::<Bucket>();
    let state = Arc::new(State::new(
        settings_from_env(),
        stores.clone(),
        buckets.clone(),
    ));

    // A Bucket change re-reconciles its store (gateway rules and grants) ...
    let bucket_events = reflector(
        bucket_writer,
        watcher(
            Api::<Bucket>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .touched_objects()
    .filter_map({
        let state = Arc::clone(&state);
        move |b| {
            let state = Arc::clone(&state);
            async move {
                let b = b.ok()?;
                let store = state
                    .store_for(&b.spec, &b.namespace().unwrap_or_default())
                    .ok()?;
                Some((store.namespace(), store.name_any()) as ObjectKey)
            }
        }
    })
    .boxed();
    // ... and a store change re-reconciles its Buckets (they wait for it to serve).
    let store_events = reflector(
        store_writer,
        watcher(
            Api::<ObjectStore>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .touched_objects()
    .filter_map({
        let state = Arc::clone(&state);
        move |s| {
            let state = Arc::clone(&state);
            async move {
                let s = s.ok()?;
                let keys: Vec<ObjectKey> = state
                    .buckets_of_store(&s)
                    .iter()
                    .map(|b| (b.namespace(), b.name_any()))
                    .collect();
                Some(futures::stream::iter(keys))
            }
        }
    })
    .flatten()
    .boxed();

    let stores_runner = Runner::<ObjectStore>::new(ctx.clone())
        .owns::<StatefulSet>()
        .owns::<Deployment>()
        .owns::<Service>()
        .owns::<ConfigMap>()
        .owns::<Secret>()
        .owns::<ServiceAccount>()
        .owns::<Role>()
        .owns::<RoleBinding>()
        .owns::<PodDisruptionBudget>()
        .trigger(bucket_events)
        .run(store::controller::reconcile, Arc::clone(&state));
    let buckets_runner = Runner::<Bucket>::new(ctx.clone())
        .owns::<Secret>()
        .trigger(store_events)
        .run(bucket::controller::reconcile, Arc::clone(&state));
    let access_runner = Runner::<BucketAccess>::new(ctx)
        .owns::<Secret>()
        .run(access::reconcile, state);
    let (a, b, c) = tokio::join!(stores_runner, buckets_runner, access_runner);
    a.and(b).and(c)
}
