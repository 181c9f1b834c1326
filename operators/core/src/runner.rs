//! The controller runner: kube-runtime's `Controller` with the behaviour every Agility controller
//! needs, so products only write `reconcile`.
//!
//! * Waits for the primary CRD to be Established before watching.
//! * Watches the primary kind as `DynamicObject` and decodes each object in the reconcile wrapper:
//!   kube's typed list fails as a whole when one item does not decode, which would stop the
//!   controller for every object. Here an undecodable object is just one failed reconcile
//!   (`InvalidSpec`, Ready=False, Warning event) and the others proceed.
//! * Watches owned kinds metadata-only, filtered by our labels (little memory, no foreign objects).
//! * Per-object capped exponential backoff after errors; `InvalidSpec` waits for a change instead.
//! * Metrics, events on failure transitions and on recovery, Ready=False with the cause chain.
//! * Marks the controller synced in [`Health`](crate::health::Health) once every watch listed.
//! * Graceful shutdown: stops taking new work when the context's token fires and drains
//!   in-flight reconciles.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::core::object::HasStatus;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, reflector};
use kube::runtime::watcher::{self, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use crate::apply::{
    ApplySummary, Child, ChildApplier, OwnedKind, Owner, Scope, field_manager, fnv1a64,
};
use crate::backoff::{BackoffPolicy, BackoffTracker};
use crate::error::{Categorized, Error, ErrorCategory, Result, cause_chain};
use crate::events::{EventPublisher, Severity};
use crate::health::Health;
use crate::labels;
use crate::metrics::Metrics;
use crate::product::ControllerContext;
use crate::status::{self, StatusMemo, Transition};

/// Builder and driver of one controller for the custom resource `K`.
pub struct Runner<K> {
    ctx: ControllerContext,
    product: Arc<str>,
    owned: Vec<OwnedKind>,
    namespace: Option<String>,
    backoff: BackoffPolicy,
    concurrency: u16,
    triggers: Vec<futures::stream::BoxStream<'static, ObjectKey>>,
    _kind: PhantomData<fn() -> K>,
}

/// `(namespace, name)` of a primary object to reconcile now (see [`Runner::trigger`]).
pub type ObjectKey = (Option<String>, String);

impl<K> Runner<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Send + Sync + 'static,
{
    /// A runner for `K` in the given controller context. The product name (the
    /// `app.kubernetes.io/name` of children) defaults to the controller name.
    pub fn new(ctx: ControllerContext) -> Self {
        let product = ctx.name_arc();
        Runner {
            ctx,
            product,
            owned: Vec::new(),
            namespace: None,
            backoff: BackoffPolicy::default(),
            concurrency: 0,
            triggers: Vec::new(),
            _kind: PhantomData,
        }
    }

    /// Reconciles the objects this stream names, in addition to watch events: for state the
    /// API does not show (e.g. a data-plane failover noticed by a product's own prober).
    #[must_use]
    pub fn trigger(mut self, keys: futures::stream::BoxStream<'static, ObjectKey>) -> Self {
        self.triggers.push(keys);
        self
    }

    /// Declares a child kind: changes to such children re-trigger their owner, and children of this
    /// kind that are no longer desired are pruned.
    #[must_use]
    pub fn owns<C>(mut self) -> Self
    where
        C: Resource<DynamicType = ()>,
        C::Scope: Scope,
    {
        let kind = OwnedKind::of::<C>();
        if !self.owned.contains(&kind) {
            self.owned.push(kind);
        }
        self
    }

    /// Sets `app.kubernetes.io/name` of the children (default: the controller name).
    #[must_use]
    pub fn product(mut self, name: &str) -> Self {
        self.product = name.into();
        self
    }

    /// Watches only one namespace (default: all namespaces).
    #[must_use]
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self
    }

    /// Overrides the error backoff (default 1s doubling to 5 min).
    #[must_use]
    pub fn backoff(mut self, policy: BackoffPolicy) -> Self {
        self.backoff = policy;
        self
    }

    /// Limits concurrent reconciles (default: unbounded; one object is never reconciled twice at
    /// once either way).
    #[must_use]
    pub fn concurrency(mut self, limit: u16) -> Self {
        self.concurrency = limit;
        self
    }

    /// Runs until the context's shutdown token fires, then drains in-flight reconciles.
    ///
    /// `reconcile` gets the decoded object and a [`Reconcile`] handle (client, applier, status,
    /// events, the product's `state`); it returns the next [`Action`] or a categorized error.
    pub async fn run<S, E, F, Fut>(self, reconcile: F, state: S) -> Result<()>
    where
        S: Send + Sync + 'static,
        E: Categorized,
        F: Fn(Arc<K>, Reconcile<S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Action, E>> + Send + 'static,
    {
        let resource = ApiResource::erase::<K>(&());
        let client = self.ctx.client().clone();
        let name = self.ctx.name_arc();
        let shutdown = self.ctx.shutdown().clone();
        if !resource.group.is_empty() {
            let crd = format!("{}.{}", resource.plural, resource.group);
            if !crate::crd::wait_established(&client, &crd, &shutdown).await? {
                return Ok(());
            }
        }

        let streams = 1 + self.owned.len();
        let sync = Arc::new(SyncTracker::new(
            streams,
            self.ctx.health().clone(),
            name.clone(),
        ));

        let main_api: Api<DynamicObject> = match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let writer = reflector::store::Writer::new(resource.clone());
        let reader = writer.as_reader();
        let main_sync = sync.clone();
        let main = reflector(writer, watcher(main_api, watcher::Config::default()))
            .inspect(move |ev| main_sync.observe(0, ev))
            .applied_objects();
        let mut controller = Controller::for_stream_with(main, reader, resource.clone());
        for keys in self.triggers {
            let resource = resource.clone();
            controller = controller.reconcile_on(keys.map(move |(ns, name)| {
                let r = reflector::ObjectRef::new_with(&name, resource.clone());
                match ns {
                    Some(ns) => r.within(&ns),
                    None => r,
                }
            }));
        }

        // Only our own children: the selector keeps foreign objects out of memory.
        let child_selector = format!(
            "{}={},{}={}",
            labels::MANAGED_BY,
            labels::MANAGED_BY_VALUE,
            labels::CONTROLLER,
            labels::label_value(&name)
        );
        for (i, kind) in self.owned.iter().enumerate() {
            let api: Api<PartialObjectMeta<DynamicObject>> = match &self.namespace {
                Some(ns) if kind.namespaced => {
                    Api::namespaced_with(client.clone(), ns, &kind.resource)
                }
                _ => Api::all_with(client.clone(), &kind.resource),
            };
            let child_sync = sync.clone();
            let stream = watcher(api, watcher::Config::default().labels(&child_selector))
                .inspect(move |ev| child_sync.observe(i + 1, ev))
                .touched_objects();
            controller = controller.owns_stream_with(stream, kind.resource.clone());
        }

        let shared = Arc::new(Shared {
            client: client.clone(),
            controller: name.clone(),
            product: self.product.clone(),
            owned: self.owned.clone().into(),
            events: EventPublisher::new(client, &name, self.ctx.instance().map(str::to_owned)),
            status_memo: StatusMemo::default(),
            state,
        });
        let runtime = Arc::new(RunnerState {
            resource,
            reconcile,
            handle: Reconcile { shared },
            metrics: self.ctx.metrics().clone(),
            backoff: BackoffTracker::new(self.backoff),
            _kind: PhantomData::<fn() -> K>,
        });

        info!(controller = %name, namespace = ?self.namespace, "controller starting");
        controller
            .with_config(controller::Config::default().concurrency(self.concurrency))
            .graceful_shutdown_on(shutdown.cancelled_owned())
            .run(
                |obj, rt| reconcile_one::<K, S, E, F, Fut>(obj, rt),
                |obj, failure, rt| error_policy(obj, failure, rt),
                runtime,
            )
            .for_each(|res| async move {
                // Reconcile failures were already logged/counted in the wrapper; what is left here
                // are queue/watch errors, retried by kube-runtime with backoff.
                match res {
                    Ok(_) => {}
                    Err(controller::Error::ReconcilerFailed(..)) => {}
                    Err(controller::Error::ObjectNotFound(obj)) => {
                        debug!(%obj, "object gone before reconcile")
                    }
                    Err(err) => warn!(error = %cause_chain(&err), "controller watch error"),
                }
            })
            .await;
        info!(controller = %name, "controller stopped");
        self.ctx.health().reset_synced();
        Ok(())
    }
}

/// The per-controller handle passed to every reconcile.
pub struct Reconcile<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for Reconcile<S> {
    fn clone(&self) -> Self {
        Reconcile {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<S> {
    client: Client,
    controller: Arc<str>,
    product: Arc<str>,
    owned: Arc<[OwnedKind]>,
    events: EventPublisher,
    status_memo: StatusMemo,
    state: S,
}

fn memo_key(meta: &kube::api::ObjectMeta) -> String {
    format!(
        "{}/{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
        meta.uid.as_deref().unwrap_or_default()
    )
}

impl<S> Reconcile<S> {
    /// The API client.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The product's own state passed to [`Runner::run`].
    pub fn state(&self) -> &S {
        &self.shared.state
    }

    /// The controller name.
    pub fn controller(&self) -> &str {
        &self.shared.controller
    }

    /// `agility-operator/<controller>`.
    pub fn field_manager(&self) -> String {
        field_manager(&self.shared.controller)
    }

    /// The event publisher.
    pub fn events(&self) -> &EventPublisher {
        &self.shared.events
    }

    /// A child applier for `owner`.
    pub fn children<K: Resource<DynamicType = ()>>(&self, owner: &K) -> Result<ChildApplier> {
        Ok(ChildApplier::new(
            self.shared.client.clone(),
            self.shared.controller.clone(),
            self.shared.product.clone(),
            Owner::of(owner, &())?,
            self.shared.owned.clone(),
        ))
    }

    /// Applies `children` (skipping unchanged ones) and prunes `owner`'s children that are no
    /// longer desired. Nothing is pruned if any apply fails.
    pub async fn apply_children<K: Resource<DynamicType = ()>>(
        &self,
        owner: &K,
        children: &[Child],
    ) -> Result<ApplySummary> {
        let mut applier = self.children(owner)?;
        applier.apply_all(children).await?;
        applier.prune().await?;
        Ok(applier.summary().clone())
    }

    /// Writes `status` if it differs from `obj`'s live status and then publishes one event per
    /// condition transition. Returns whether a write happened.
    pub async fn update_status<K>(
        &self,
        obj: &K,
        status: &K::Status,
        transitions: &[Transition],
    ) -> Result<bool>
    where
        K: Resource<DynamicType = ()> + HasStatus,
        K::Status: Serialize,
    {
        let value = serde_json::to_value(status).map_err(|source| Error::Serialize {
            what: format!("{} status", K::kind(&())),
            source,
        })?;
        let key = memo_key(obj.meta());
        let rv = obj.meta().resource_version.clone().unwrap_or_default();
        // A flip recomputed from a stale cache carries a newer transition time; same write.
        let hash = status::status_hash(&without_transition_times(&value));
        if self.shared.status_memo.already_written(&key, &rv, hash) {
            return Ok(false);
        }
        let written =
            status::patch_status(&self.shared.client, &self.field_manager(), obj, status).await?;
        if written {
            self.shared.status_memo.record(&key, &rv, hash);
        }
        if written && !transitions.is_empty() {
            self.shared
                .events
                .transitions(&obj.object_ref(&()), transitions)
                .await;
        }
        Ok(written)
    }
}

struct RunnerState<K, S, F> {
    resource: ApiResource,
    reconcile: F,
    handle: Reconcile<S>,
    metrics: Arc<Metrics>,
    backoff: BackoffTracker,
    _kind: PhantomData<fn() -> K>,
}

/// A failed reconcile as the runner sees it: category and full cause chain.
#[derive(Debug, thiserror::Error)]
#[error("{category}: {message}")]
pub struct ReconcileFailure {
    /// The bounded category.
    pub category: ErrorCategory,
    /// The cause chain.
    pub message: String,
}

impl ReconcileFailure {
    fn of<E: Categorized>(err: &E) -> Self {
        ReconcileFailure {
            category: err.category(),
            message: cause_chain(err),
        }
    }
}

fn object_key(obj: &DynamicObject) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Decodes the watched object into the product type; failure is the object's problem, not the watch's.
fn decode<K: DeserializeOwned>(obj: &DynamicObject, kind: &str) -> Result<K> {
    let fail = |source| Error::Decode {
        kind: kind.to_owned(),
        name: object_key(obj),
        source,
    };
    let value = serde_json::to_value(obj).map_err(fail)?;
    serde_json::from_value(value).map_err(fail)
}

async fn reconcile_one<K, S, E, F, Fut>(
    obj: Arc<DynamicObject>,
    rt: Arc<RunnerState<K, S, F>>,
) -> std::result::Result<Action, ReconcileFailure>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Send + Sync + 'static,
    S: Send + Sync + 'static,
    E: Categorized,
    F: Fn(Arc<K>, Reconcile<S>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<Action, E>> + Send + 'static,
{
    let controller = rt.handle.controller().to_owned();
    let key = object_key(&obj);
    let _timer = rt.metrics.reconcile_started(&controller);
    let result = match decode::<K>(&obj, &rt.resource.kind) {
        Ok(typed) => (rt.reconcile)(Arc::new(typed), rt.handle.clone())
            .await
            .map_err(|e| ReconcileFailure::of(&e)),
        Err(e) => Err(ReconcileFailure::of(&e)),
    };
    let reference = obj.object_ref(&rt.resource);
    match result {
        Ok(action) => {
            if rt.backoff.reset(&key) {
                info!(controller, object = %key, "reconcile recovered");
                rt.handle
                    .events()
                    .publish(
                        &reference,
                        Severity::Normal,
                        "Reconciled",
                        "Reconcile",
                        "reconciled successfully after errors",
                    )
                    .await;
            }
            debug!(controller, object = %key, "reconciled");
            Ok(action)
        }
        Err(failure) => {
            rt.metrics.reconcile_failed(&controller, failure.category);
            let reason = failure.category.reason();
            warn!(controller, object = %key, reason, error = %failure.message, "reconcile failed");
            let fingerprint = fnv1a64(format!("{reason}\n{}", failure.message).as_bytes());
            if rt.backoff.note_failure(&key, fingerprint) {
                rt.handle
                    .events()
                    .publish(
                        &reference,
                        Severity::Warning,
                        reason,
                        "Reconcile",
                        &failure.message,
                    )
                    .await;
            }
            if obj.metadata.deletion_timestamp.is_none() {
                report_failure(&rt.handle, &rt.resource, &obj, reason, &failure.message).await;
            }
            Err(failure)
        }
    }
}

/// Sets Ready=False on the object (best effort: the reconcile already failed; a failing status
/// write must not mask the original error).
async fn report_failure<S>(
    handle: &Reconcile<S>,
    resource: &ApiResource,
    obj: &DynamicObject,
    reason: &str,
    message: &str,
) {
    let Some(next) = status::failed_status(obj, reason, message, Time(Timestamp::now())) else {
        return;
    };
    let key = memo_key(&obj.metadata);
    let rv = obj.metadata.resource_version.clone().unwrap_or_default();
    // Ignore the transition time when deduplicating: it is "now" for a new failure.
    let hash = status::status_hash(&without_transition_times(&next));
    if handle.shared.status_memo.already_written(&key, &rv, hash) {
        return;
    }
    let result = status::apply_status(
        handle.client(),
        &handle.field_manager(),
        resource,
        obj.namespace().as_deref(),
        obj.metadata.name.as_deref(),
        next,
    )
    .await;
    match result {
        Ok(()) => handle.shared.status_memo.record(&key, &rv, hash),
        Err(err) => debug!(error = %cause_chain(&err), "cannot record the failure in status"),
    }
}

fn without_transition_times(status: &serde_json::Value) -> serde_json::Value {
    let mut status = status.clone();
    if let Some(conditions) = status.get_mut("conditions").and_then(|c| c.as_array_mut()) {
        for c in conditions {
            if let Some(c) = c.as_object_mut() {
                c.remove("lastTransitionTime");
            }
        }
    }
    status
}

fn error_policy<K, S, F>(
    obj: Arc<DynamicObject>,
    failure: &ReconcileFailure,
    rt: Arc<RunnerState<K, S, F>>,
) -> Action {
    if failure.category.waits_for_change() {
        // Retrying an invalid spec cannot succeed; the next watch event for the object (an edit)
        // triggers the reconcile. The backoff entry still carries the fingerprint for events.
        return Action::await_change();
    }
    Action::requeue(rt.backoff.next_delay(&object_key(&obj)))
}

/// Counts watches that completed their first list; marks the controller synced when all did.
struct SyncTracker {
    done: Vec<AtomicBool>,
    remaining: AtomicUsize,
    health: Health,
    controller: Arc<str>,
}

impl SyncTracker {
    fn new(streams: usize, health: Health, controller: Arc<str>) -> Self {
        SyncTracker {
            done: (0..streams).map(|_| AtomicBool::new(false)).collect(),
            remaining: AtomicUsize::new(streams),
            health,
            controller,
        }
    }

    fn observe<T>(
        &self,
        index: usize,
        event: &std::result::Result<watcher::Event<T>, watcher::Error>,
    ) {
        if !matches!(event, Ok(watcher::Event::InitDone)) {
            return;
        }
        let Some(flag) = self.done.get(index) else {
            return;
        };
        if !flag.swap(true, Ordering::SeqCst) && self.remaining.fetch_sub(1, Ordering::SeqCst) == 1
        {
            info!(controller = %self.controller, "all watches synced");
            self.health.mark_synced(&self.controller);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use crate::health::Role;

    #[test]
    fn sync_tracker_waits_for_every_stream_once() {
        let health = Health::new(&["w"], Role::Single);
        let t = SyncTracker::new(2, health.clone(), "w".into());
        let done: std::result::Result<watcher::Event<DynamicObject>, watcher::Error> =
            Ok(watcher::Event::InitDone);
        let init: std::result::Result<watcher::Event<DynamicObject>, watcher::Error> =
            Ok(watcher::Event::Init);
        t.observe(0, &init);
        t.observe(0, &done);
        t.observe(0, &done); // a re-list of the same stream does not count twice
        assert!(!health.readiness().ready);
        t.observe(1, &done);
        assert!(health.readiness().ready);
    }

    #[test]
    fn undecodable_objects_become_invalid_spec() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Typed {
            spec: Spec,
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Spec {
            size: u32,
        }
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "test.agility.dev/v1alpha1", "kind": "Widget",
            "metadata": {"name": "bad", "namespace": "ns"},
            "spec": {"size": "huge"}
        }))
        .unwrap();
        let err = decode::<Typed>(&obj, "Widget").err().unwrap();
        assert_eq!(err.category(), ErrorCategory::InvalidSpec);
        let failure = ReconcileFailure::of(&err);
        assert!(
            failure
                .message
                .starts_with("cannot decode Widget ns/bad: invalid type"),
            "{}",
            failure.message
        );
    }
}
