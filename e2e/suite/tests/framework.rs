//! The framework's own behaviour on a real cluster: what a failing test leaves behind.

mod support;

use std::time::Duration;

use agility_e2e::namespace::artifacts_dir;
use agility_e2e::{TestEnv, TestNamespace};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;
use support::{deploy_redis, live_redis_pod};

/// The namespace is still there (not being deleted), then remove it and the dump.
async fn assert_kept_then_clean_up(env: &TestEnv, ns: &str, test: &str) {
    let namespaces: Api<Namespace> = Api::all(env.client().clone());
    let kept = namespaces.get(ns).await.expect("the namespace is kept");
    assert!(
        kept.metadata.deletion_timestamp.is_none(),
        "a failed test's namespace is not deleted"
    );
    namespaces
        .delete(ns, &DeleteParams::background())
        .await
        .expect("delete the kept namespace");
    std::fs::remove_dir_all(artifacts_dir(test)).expect("remove the dump");
}

fn read(path: std::path::PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn a_panicking_test_keeps_its_namespace_with_a_dump() {
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    const TEST: &str = "framework-panic-dump";
    let (tx, rx) = tokio::sync::oneshot::channel();
    let inner_env = env.clone();
    // A "test" that fails with a panic while it holds its namespace.
    let failed = tokio::spawn(async move {
        let ns = inner_env.namespace(TEST).await.expect("namespace");
        deploy_redis(&ns).await;
        let pod = live_redis_pod(&ns).await.metadata.name.expect("pod name");
        tx.send((ns.name().to_string(), pod))
            .expect("report the names");
        panic!("deliberate failure (framework test)");
    })
    .await;
    assert!(failed.expect_err("the inner test panicked").is_panic());
    let (ns, pod) = rx.await.expect("names from the failed test");

    let dir = artifacts_dir(TEST);
    let deployments = read(dir.join("objects/deployments.apps.yaml"));
    assert!(deployments.contains("name: redis"), "{deployments}");
    assert!(read(dir.join("objects/services.yaml")).contains("name: redis"));
    assert!(read(dir.join("objects/pods.yaml")).contains(&pod));
    let events = read(dir.join("events.txt"));
    assert!(
        events.contains("Scheduled") && events.contains(&format!("Pod/{pod}")),
        "{events}"
    );
    let log = read(dir.join("logs").join(&pod).join("redis.log"));
    assert!(log.contains("Ready to accept connections"), "{log}");
    assert!(
        !dir.join("dump-errors.txt").exists(),
        "{}",
        read(dir.join("dump-errors.txt"))
    );

    assert_kept_then_clean_up(&env, &ns, TEST).await;
}

#[tokio::test]
async fn a_test_ending_without_finish_keeps_its_namespace_with_secrets_redacted() {
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    const TEST: &str = "framework-no-finish-dump";
    let ns: TestNamespace = env.namespace(TEST).await.expect("namespace");
    let name = ns.name().to_string();
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "settings" }, "data": { "mode": "fast" }
    }))
    .expect("ConfigMap");
    ns.apply(&cm).await.expect("apply ConfigMap");
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "credentials" }, "stringData": { "password": "hunter2-e2e" }
    }))
    .expect("Secret");
    ns.apply(&secret).await.expect("apply Secret");
    // An early return of an error (no panic, no finish()) counts as a failure too.
    drop(ns);

    let dir = artifacts_dir(TEST);
    assert!(read(dir.join("objects/configmaps.yaml")).contains("mode: fast"));
    let secrets = read(dir.join("objects/secrets.yaml"));
    assert!(secrets.contains("name: credentials"), "{secrets}");
    assert!(
        !secrets.contains("hunter2") && !secrets.contains("aHVudGVyMi1lMmU"),
        "secret values are redacted: {secrets}"
    );
    assert_kept_then_clean_up(&env, &name, TEST).await;
}

#[tokio::test]
async fn finish_deletes_the_namespace() {
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    let ns = env.namespace("framework-finish").await.expect("namespace");
    let name = ns.name().to_string();
    let namespaces: Api<Namespace> = Api::all(env.client().clone());
    let labels = namespaces
        .get(&name)
        .await
        .expect("namespace exists")
        .metadata
        .labels
        .unwrap_or_default();
    assert_eq!(
        labels.get("agility.dev/e2e").map(String::as_str),
        Some("true")
    );
    ns.finish().await.expect("finish");
    agility_e2e::wait::wait_deleted(&namespaces, &name, Duration::from_secs(60))
        .await
        .expect("the namespace is deleted");
}
