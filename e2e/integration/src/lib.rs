//! Support for the tier-1 integration tests (kube-apiserver + etcd, no kubelet, no
//! controller-manager): a client from `KUBECONFIG`, per-test namespaces, the test-only `Widget`
//! CRD and a tiny controller for it built on `agility-core`, and leader-elected replicas.

pub mod manager;
pub mod replica;
pub mod widget;

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// A client for the tier-1 API server named by `KUBECONFIG`. Panics with instructions when the
/// variable is unset: these tests need a real API server and must not silently pass without one.
pub async fn client() -> Client {
    let Ok(path) = std::env::var("KUBECONFIG") else {
        panic!(
            "KUBECONFIG is not set. These tests need the tier-1 API server: \
             KUBECONFIG=$(e2e/cluster/apiserver.sh up | tail -1) cargo test -p agility-integration -- --test-threads=1"
        );
    };
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("cannot read KUBECONFIG {path}: {e}"));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("invalid kubeconfig {path}: {e}"));
    Client::try_from(config).unwrap_or_else(|e| panic!("cannot build a client: {e}"))
}

/// A namespace created for one test. Tier 1 has no namespace controller, so deleted namespaces
/// stay Terminating; unique names keep tests independent anyway.
pub struct TestNamespace {
    /// The namespace name.
    pub name: String,
    client: Client,
}

impl TestNamespace {
    /// Creates `it-<prefix>-<unique>`.
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("it-{prefix}-{:x}{:x}", std::process::id(), nanos);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        TestNamespace {
            name,
            client: client.clone(),
        }
    }

    /// Deletes the namespace (best effort).
    pub async fn delete(self) {
        let _ = Api::<Namespace>::all(self.client)
            .delete(&self.name, &DeleteParams::default())
            .await;
    }
}

/// Polls `check` every 100ms until it returns Some or `timeout` passes (then panics with `what`).
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sum of the API server's `apiserver_request_total` for write verbs on the given resources. The
/// counter is global, so tests run with `--test-threads=1` and only compare deltas.
pub async fn write_requests(client: &Client, resources: &[&str]) -> u64 {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .unwrap_or_else(|e| panic!("request: {e}"));
    let text = client
        .request_text(req)
        .await
        .unwrap_or_else(|e| panic!("GET /metrics from the API server: {e}"));
    count_writes(&text, resources)
}

/// Parses the Prometheus text of the API server for write requests on `resources`.
pub fn count_writes(metrics: &str, resources: &[&str]) -> u64 {
    const WRITES: [&str; 6] = [
        "POST",
        "PUT",
        "PATCH",
        "APPLY",
        "DELETE",
        "DELETECOLLECTION",
    ];
    metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| {
            resources
                .iter()
                .any(|r| l.contains(&format!("resource=\"{r}\"")))
        })
        .filter(|l| WRITES.iter().any(|v| l.contains(&format!("verb=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}
