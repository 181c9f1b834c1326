//! The cluster-side half (runs in the operator manager as controller `node`): rolls
//! NodeNetworkPolicies out node by node through NodeNetworkEnactments, and sums DiskPools up from
//! what every node's agent reports. The node-side half is the agent binary.

pub mod policy;
pub mod pool;
pub mod selector;

use std::sync::Arc;

use agility_core::product::BoxFuture;
use agility_core::{ControllerContext, ObjectKey, ProductController, Runner};
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::watcher::{self, watcher};
use kube::{CustomResourceExt, ResourceExt};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::crd::disk::{DiskPool, NodeDisk};
use crate::crd::network::{NodeNetworkEnactment, NodeNetworkPolicy, NodeNetworkState};

/// Controller name (the `--controllers` value and the field manager suffix).
pub const CONTROLLER: &str = "node";

/// Every kind of the `node.agility.dev` group.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        NodeNetworkPolicy::crd(),
        NodeNetworkState::crd(),
        NodeNetworkEnactment::crd(),
        NodeDisk::crd(),
        DiskPool::crd(),
    ]
}

/// What the reconcilers share: the cluster's nodes and the policies, from watches.
pub struct State {
    pub nodes: Store<Node>,
    pub policies: Store<NodeNetworkPolicy>,
    pub pools: Store<DiskPool>,
}

/// The `node` controller.
pub struct NodeController;

impl ProductController for NodeController {
    fn name(&self) -> &'static str {
        CONTROLLER
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        crds()
    }

    fn run(&self, ctx: ControllerContext) -> BoxFuture<'static, agility_core::Result<()>> {
        Box::pin(run(ctx))
    }
}

async fn run(ctx: ControllerContext) -> agility_core::Result<()> {
    let client = ctx.client().clone();
    let (nodes, node_writer) = reflector::store::<Node>();
    let (policies, policy_writer) = reflector::store::<NodeNetworkPolicy>();
    let (pools, pool_writer) = reflector::store::<DiskPool>();
    let state = Arc::new(State {
        nodes,
        policies: policies.clone(),
        pools: pools.clone(),
    });

    // A node joining, leaving or changing labels can change every policy's and pool's node set.
    let node_changes = reflector(
        node_writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects()
    .filter_map(|n| async move { n.ok().map(|_| ()) });
    let (to_policies, to_pools) = fan_out(node_changes.boxed());
    let to_policies = all_keys(to_policies, policies.clone());
    let to_pools = all_keys(to_pools, pools.clone());

    // The stores the keys come from must be fed: these watches only fill the reflectors.
    let feed_policies = reflector(
        policy_writer,
        watcher(
            Api::<NodeNetworkPolicy>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .for_each(|_| async {});
    let feed_pools = reflector(
        pool_writer,
        watcher(Api::<DiskPool>::all(client), watcher::Config::default()),
    )
    .default_backoff()
    .for_each(|_| async {});

    let policy_runner = Runner::<NodeNetworkPolicy>::new(ctx.clone())
        .owns::<NodeNetworkEnactment>()
        .trigger(to_policies)
        .run(policy::reconcile, Arc::clone(&state));
    let pool_runner = Runner::<DiskPool>::new(ctx.clone())
        .trigger(to_pools)
        .run(pool::reconcile, state);
    let shutdown = ctx.shutdown().clone();
    let feeds = async move {
        tokio::select! {
            () = shutdown.cancelled() => {},
            _ = futures::future::join(feed_policies, feed_pools) => {},
        }
    };
    let (a, b, ()) = tokio::join!(policy_runner, pool_runner, feeds);
    a.and(b)
}

/// Copies one stream of "something changed" ticks into two.
fn fan_out(
    ticks: futures::stream::BoxStream<'static, ()>,
) -> (UnboundedReceiver<()>, UnboundedReceiver<()>) {
    let (tx_a, rx_a) = unbounded_channel();
    let (tx_b, rx_b) = unbounded_channel();
    tokio::spawn(ticks.for_each(move |()| {
        // A closed receiver means its controller stopped: nothing left to tell.
        let _ = tx_a.send(());
        let _ = tx_b.send(());
        async {}
    }));
    (rx_a, rx_b)
}

/// On every tick, the keys of every object in `store`.
fn all_keys<K>(mut ticks: UnboundedReceiver<()>, store: Store<K>) -> BoxStream<'static, ObjectKey>
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    futures::stream::poll_fn(move |cx| ticks.poll_recv(cx))
        .flat_map(move |()| {
            let keys: Vec<ObjectKey> = store.state().iter().map(|o| (None, o.name_any())).collect();
            futures::stream::iter(keys)
        })
        .boxed()
}
