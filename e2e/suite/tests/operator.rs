//! e2e for the operator itself (issue 3): the installed operator becomes Ready, `/metrics` shows the
//! reconcile metrics, killing the leader moves the Lease to the other replica (takeover times are
//! printed), and uninstalling leaves nothing cluster-scoped behind except the CRDs. The test
//! re-installs at the end so that later tests find the operator in place.
//!
//! Needs the full local node (`e2e/cluster/up.sh`) with the operator image imported and
//! `manifests/install.yaml` applied (`make e2e` does both).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};

const NAMESPACE: &str = "agility-system";
const DEPLOYMENT: &str = "agility-operator";
const LEASE: &str = "agility-operator";
const SELECTOR: &str = "app.kubernetes.io/name=agility,app.kubernetes.io/component=operator";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kubectl(args: &[&str]) -> String {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| {
        let home = std::env::var("HOME").expect("HOME is set");
        format!("{home}/.cache/agility/kubernetes-v1.34.4/bin/kubectl")
    });
    let out = Command::new(&kubectl)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("running {kubectl}: {e}"));
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn client() -> Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: bring the node up with e2e/cluster/up.sh and export its kubeconfig"
    );
    Client::try_default()
        .await
        .expect("a client from KUBECONFIG")
}

/// Polls `check` every 200 ms until it yields a value or `timeout` passes.
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_available(client: &Client) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    eventually(
        Duration::from_secs(180),
        "the operator Deployment to be available",
        || async {
            let d = deployments.get_opt(DEPLOYMENT).await.ok().flatten()?;
            let want = d.spec.as_ref()?.replicas.unwrap_or(1);
            let status = d.status?;
            let current = d.metadata.generation == status.observed_generation
                && status.ready_replicas == Some(want)
                && status.updated_replicas == Some(want)
                && status.replicas == Some(want);
            current.then_some(())
        },
    )
    .await;
}

async fn lease_holder(client: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    leases
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

async fn operator_pods(client: &Client) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    pods.list(&ListParams::default().labels(SELECTOR))
        .await
        .expect("list operator pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// The controllers the installed Deployment enables (`--controllers=a,b`; empty means none).
async fn enabled_controllers(client: &Client) -> Vec<String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let d = deployments
        .get(DEPLOYMENT)
        .await
        .expect("get the operator Deployment");
    let args = d
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.args)
        .unwrap_or_default();
    let list = args
        .iter()
        .find_map(|a| a.strip_prefix("--controllers="))
        .expect("the chart passes --controllers=");
    list.split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// `/metrics` of one pod, fetched over the route from the host into the node's pod network.
async fn scrape(pod: &Pod) -> String {
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("pod has an IP");
    let out = Command::new("curl")
        .args([
            "-sf",
            "--max-time",
            "5",
            &format!("http://{ip}:8080/metrics"),
        ])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "GET http://{ip}:8080/metrics failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the Lease holder and returns how long until another pod holds the Lease.
async fn takeover(client: &Client, grace_seconds: u32) -> Duration {
    let holder = eventually(Duration::from_secs(60), "a lease holder", || {
        lease_holder(client)
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let start = Instant::now();
    pods.delete(
        &holder,
        &DeleteParams {
            grace_period_seconds: Some(grace_seconds),
            ..Default::default()
        },
    )
    .await
    .expect("delete the leader pod");
    let new_holder = eventually(
        Duration::from_secs(60),
        "the lease to move to another pod",
        || async { lease_holder(client).await.filter(|h| *h != holder) },
    )
    .await;
    let took = start.elapsed();
    println!(
        "leader takeover after deleting the leader pod with gracePeriodSeconds={grace_seconds} (the kubelet still sends SIGTERM first): {holder} -> {new_holder} in {:.2}s",
        took.as_secs_f64()
    );
    took
}

/// `manifests/install.yaml` without its CRDs: uninstalling keeps the CRDs (and so the users' objects).
fn install_without_crds() -> String {
    let all = std::fs::read_to_string(repo_root().join("manifests/install.yaml"))
        .expect("read manifests/install.yaml");
    all.split("\n---")
        .filter(|doc| {
            !doc.lines()
                .any(|l| l.trim() == "kind: CustomResourceDefinition")
        })
        .collect::<Vec<_>>()
        .join("\n---")
}

#[tokio::test]
async fn operator_install_metrics_failover_uninstall() {
    let client = client().await;

    // Ready: both replicas available, one of them holds the Lease.
    wait_available(&client).await;
    let pods = operator_pods(&client).await;
    assert_eq!(pods.len(), 2, "the chart runs two replicas");
    let holder = eventually(Duration::from_secs(60), "a lease holder", || {
        lease_holder(&client)
    })
    .await;
    assert!(
        pods.iter()
            .any(|p| p.metadata.name.as_deref() == Some(holder.as_str())),
        "the holder is one of our pods"
    );

    // Metrics: every replica exposes leadership and, for each enabled controller, the reconcile
    // families (pre-created at zero); exactly one replica reports leadership.
    let controllers = enabled_controllers(&client).await;
    println!("enabled controllers: {controllers:?}");
    let mut leaders = 0;
    for pod in &pods {
        let text = scrape(pod).await;
        assert!(
            text.contains("# TYPE agility_leader gauge"),
            "agility_leader missing from /metrics"
        );
        for controller in &controllers {
            for family in [
                "agility_reconcile_total",
                "agility_reconcile_duration_seconds_count",
            ] {
                let series = format!("{family}{{controller=\"{controller}\"}}");
                assert!(text.contains(&series), "{series} missing from /metrics");
            }
        }
        if text
            .lines()
            .any(|l| l.starts_with("agility_leader") && l.trim_end().ends_with(" 1"))
        {
            leaders += 1;
        }
    }
    assert_eq!(leaders, 1, "exactly one replica reports agility_leader 1");

    // Failover: graceful deletion releases the Lease; a forced one waits for it to expire.
    let graceful = takeover(&client, 30).await;
    assert!(
        graceful < Duration::from_secs(30),
        "graceful handover took {graceful:?}"
    );
    wait_available(&client).await;
    let forced = takeover(&client, 0).await;
    assert!(
        forced < Duration::from_secs(45),
        "takeover after a forced kill took {forced:?}"
    );
    wait_available(&client).await;

    // Uninstall: everything but the CRDs goes; nothing cluster-scoped of ours remains.
    let without_crds = std::env::temp_dir().join("agility-uninstall.yaml");
    std::fs::write(&without_crds, install_without_crds()).expect("write the uninstall list");
    kubectl(&[
        "delete",
        "--wait=true",
        "--ignore-not-found",
        "-f",
        without_crds.to_str().expect("utf-8 temp path"),
    ]);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    eventually(
        Duration::from_secs(120),
        "namespace agility-system to be gone",
        || async {
            namespaces
                .get_opt(NAMESPACE)
                .await
                .ok()
                .and_then(|ns| ns.is_none().then_some(()))
        },
    )
    .await;
    let ours = ListParams::default().labels("app.kubernetes.io/part-of=agility");
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    assert!(
        roles
            .list(&ours)
            .await
            .expect("list cluster roles")
            .items
            .is_empty(),
        "a ClusterRole was left behind"
    );
    assert!(
        bindings
            .list(&ours)
            .await
            .expect("list bindings")
            .items
            .is_empty(),
        "a ClusterRoleBinding was left behind"
    );

    // Re-install for the tests that follow, as `make e2e` installed it (the local node's request
    // percentages included: the RDS classes ask for whole cores a 2-core node cannot give twice).
    let status = Command::new(repo_root().join("hack/install-local.sh"))
        .current_dir(repo_root())
        .status()
        .expect("run hack/install-local.sh");
    assert!(status.success(), "hack/install-local.sh failed");
    wait_available(&client).await;
}
