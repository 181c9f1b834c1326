//! `Widget` (test.agility.dev/v1alpha1): a test-only custom resource and its controller, written
//! exactly like a product controller would be (read → validate → build → apply → status).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agility_core::health::{Health, Role};
use agility_core::metrics::Metrics;
use agility_core::runner::{Reconcile, Runner};
use agility_core::shutdown::CancellationToken;
use agility_core::status::{Conditions, READY};
use agility_core::{Action, Child, ControllerContext};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::{Client, CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

/// The controller name of the test controller.
pub const CONTROLLER: &str = "widget";

/// A test object that owns one ConfigMap per entry of `children`.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "test.agility.dev",
    version = "v1alpha1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wg",
    category = "agility"
)]
pub struct WidgetSpec {
    /// Child ConfigMap suffixes; each becomes `<widget>-<suffix>`.
    pub children: Vec<String>,
    /// Written into every child's data.
    pub message: String,
    /// Free-form options. The schema accepts any object here (preserve-unknown-fields), but the
    /// controller needs `replicas` to be an integer: this is how a malformed object gets past
    /// admission in the tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub options: Option<WidgetOptions>,
}

/// Typed view of `spec.options`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub struct WidgetOptions {
    /// Copied into the children.
    pub replicas: u32,
}

/// Observed state.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    /// Ready and friends.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Number of children applied.
    #[serde(default)]
    pub children: u32,
}

fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// The CRD, as crdgen would emit it.
pub fn crd() -> CustomResourceDefinition {
    Widget::crd()
}

/// Installs (server-side applies) the Widget CRD and waits until it is Established.
pub async fn install_crd(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crd();
    let name = crd.name_any();
    api.patch(
        &name,
        &PatchParams::apply("agility-integration").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
    let never = CancellationToken::new();
    let established = tokio::time::timeout(
        Duration::from_secs(30),
        agility_core::crd::wait_established(client, &name, &never),
    )
    .await;
    assert!(
        matches!(established, Ok(Ok(true))),
        "CRD {name} not established: {established:?}"
    );
}

/// Controller state: how soon to reconcile again after a success (short in tests so that a steady
/// state is exercised many times per second).
pub struct WidgetState {
    /// Requeue interval after success.
    pub requeue: Duration,
}

/// The reconcile pipeline.
pub async fn reconcile(
    widget: Arc<Widget>,
    rc: Reconcile<WidgetState>,
) -> agility_core::Result<Action> {
    // validate
    if widget.spec.message.len() > 1024 {
        return Err(agility_core::Error::InvalidSpec(
            "message is longer than 1024 bytes".into(),
        ));
    }
    // build (pure)
    let children = build_children(&widget)?;
    // apply + prune
    rc.apply_children(widget.as_ref(), &children).await?;
    // status
    let previous = widget
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = widget.metadata.generation;
    let mut conditions = Conditions::new(previous, generation);
    conditions.set(
        READY,
        true,
        "Reconciled",
        &format!("{} child(ren) applied", children.len()),
    );
    let (conditions, transitions) = conditions.finish();
    let status = WidgetStatus {
        conditions,
        observed_generation: generation,
        children: u32::try_from(children.len()).unwrap_or(u32::MAX),
    };
    rc.update_status(widget.as_ref(), &status, &transitions)
        .await?;
    Ok(Action::requeue(rc.state().requeue))
}

/// One ConfigMap per `spec.children` entry.
pub fn build_children(widget: &Widget) -> agility_core::Result<Vec<Child>> {
    let replicas = widget.spec.options.as_ref().map_or(1, |o| o.replicas);
    widget
        .spec
        .children
        .iter()
        .map(|suffix| {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(format!("{}-{suffix}", widget.name_any())),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([
                    ("message".to_owned(), widget.spec.message.clone()),
                    ("replicas".to_owned(), replicas.to_string()),
                ])),
                ..Default::default()
            };
            Child::new("config", &cm)
        })
        .collect()
}

/// A Widget controller running in the background.
pub struct RunningController {
    /// Its metrics (reconcile counts).
    pub metrics: Arc<Metrics>,
    /// Its health (synced flag).
    pub health: Health,
    stop: CancellationToken,
    task: Option<JoinHandle<agility_core::Result<()>>>,
}

impl Drop for RunningController {
    fn drop(&mut self) {
        // A controller outliving its test (or its leadership) would reconcile behind our back.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl RunningController {
    /// Starts the controller for one namespace.
    pub fn start(client: &Client, namespace: &str, requeue: Duration) -> Self {
        let metrics =
            Arc::new(Metrics::new(&[CONTROLLER]).unwrap_or_else(|e| panic!("metrics: {e}")));
        let health = Health::new(&[CONTROLLER], Role::Single);
        let stop = CancellationToken::new();
        let ctx = ControllerContext::new(
            CONTROLLER,
            client.clone(),
            metrics.clone(),
            health.clone(),
            stop.clone(),
            Some("integration-test".into()),
        );
        let task = tokio::spawn(
            Runner::<Widget>::new(ctx)
                .namespace(namespace)
                .owns::<ConfigMap>()
                .run(reconcile, WidgetState { requeue }),
        );
        RunningController {
            metrics,
            health,
            stop,
            task: Some(task),
        }
    }

    /// Reconciles started so far.
    pub fn reconciles(&self) -> u64 {
        self.metrics.reconciles(CONTROLLER)
    }

    /// Graceful stop; returns the runner's result.
    pub async fn stop(mut self) -> agility_core::Result<()> {
        self.stop.cancel();
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match task.await {
            Ok(r) => r,
            Err(e) => Err(agility_core::Error::Internal(format!(
                "controller task: {e}"
            ))),
        }
    }

    /// Hard stop, as when leadership is lost.
    pub fn abort(self) {
        // Drop aborts the task.
        drop(self);
    }
}
