//! Smoke tests proving the local cluster is real: a Deployment of the locally built redis image
//! behind a ClusterIP Service, reached from the test by DNS name (CoreDNS) and by ClusterIP with a
//! real Redis client; a NetworkPolicy really blocks; a deleted pod is replaced; limits become
//! cgroup limits. Pod start latency is printed, not asserted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agility_e2e::{TestEnv, TestNamespace, faults, wait};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::ListParams;
use serde_json::json;

const IMAGE: &str = "localhost/agility/redis:7.0.15";

fn redis_objects() -> (Deployment, Service) {
    let deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "redis" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "redis" } },
            "template": {
                "metadata": { "labels": { "app": "redis" } },
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "securityContext": { "runAsNonRoot": true, "runAsUser": 999, "runAsGroup": 999 },
                    "containers": [{
                        "name": "redis",
                        "image": IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["--protected-mode", "no", "--save", "", "--appendonly", "no"],
                        "ports": [{ "name": "redis", "containerPort": 6379 }],
                        "readinessProbe": { "tcpSocket": { "port": 6379 }, "periodSeconds": 1 },
                        "resources": {
                            "requests": { "cpu": "100m", "memory": "64Mi" },
                            "limits": { "cpu": "500m", "memory": "128Mi" }
                        },
                        "securityContext": { "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true }
                    }]
                }
            }
        }
    }))
    .expect("valid Deployment");
    let service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "redis" },
        "spec": { "selector": { "app": "redis" }, "ports": [{ "name": "redis", "port": 6379, "targetPort": "redis" }] }
    }))
    .expect("valid Service");
    (deployment, service)
}

/// SET then GET through `addr`; errors (connect, timeout, command) as text.
async fn set_get(addr: SocketAddr, key: &str, value: &str) -> Result<String, String> {
    let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
    let attempt = async {
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("GET")
            .arg(key)
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// Retries `set_get` until it succeeds or `within` passes.
async fn eventually_set_get(addr: SocketAddr, key: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        match set_get(addr, key, "v").await {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => {
                panic!("SET/GET via {addr} still failing after {within:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

async fn redis_pod(ns: &TestNamespace) -> Pod {
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("app=redis"))
        .await
        .expect("list pods");
    let mut live: Vec<Pod> = pods
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    assert_eq!(live.len(), 1, "one redis pod expected");
    live.remove(0)
}

/// Reads a cgroup file inside the pod, trying the v2 name then the v1 one (the node is a hybrid).
async fn cgroup_value(ns: &TestNamespace, pod: &str, v2: &str, v1: &str) -> String {
    for path in [v2, v1] {
        let out = ns.exec(pod, &["cat", path]).await.expect("exec cat");
        if out.exit_code == 0 {
            return out.stdout.trim().to_string();
        }
    }
    panic!("neither {v2} nor {v1} is readable in {pod}");
}

#[tokio::test]
async fn redis_behind_a_service_is_real() {
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    let ns = env.namespace("smoke-redis").await.expect("test namespace");
    let (deployment, service) = redis_objects();

    let start = Instant::now();
    ns.apply(&deployment).await.expect("apply Deployment");
    let svc = ns.apply(&service).await.expect("apply Service");
    ns.wait_deployment_available("redis", Duration::from_secs(120))
        .await
        .expect("redis available");
    println!(
        "pod start latency (apply -> Ready): {:.2}s",
        start.elapsed().as_secs_f64()
    );

    // By Service DNS name through CoreDNS, and by ClusterIP.
    let by_name = env
        .reach()
        .service(env.client(), ns.name(), "redis", 6379)
        .await
        .expect("resolve the Service");
    assert_eq!(
        eventually_set_get(by_name, "by-name", Duration::from_secs(30)).await,
        "v"
    );
    let cluster_ip = svc.spec.and_then(|s| s.cluster_ip).expect("a ClusterIP");
    assert_eq!(
        by_name.ip().to_string(),
        cluster_ip,
        "DNS answers with the ClusterIP"
    );
    let by_ip: SocketAddr = format!("{cluster_ip}:6379")
        .parse()
        .expect("socket address");
    assert_eq!(
        set_get(by_ip, "by-ip", "v")
            .await
            .expect("SET/GET by ClusterIP"),
        "v"
    );

    // A policy admitting only pods labelled role=client denies the test; removing it restores access.
    let deny: NetworkPolicy = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": { "name": "only-clients" },
        "spec": {
            "podSelector": { "matchLabels": { "app": "redis" } },
            "policyTypes": ["Ingress"],
            "ingress": [{ "from": [{ "podSelector": { "matchLabels": { "role": "client" } } }] }]
        }
    }))
    .expect("valid NetworkPolicy");
    ns.apply(&deny).await.expect("apply NetworkPolicy");
    let policy_applied = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    let blocked_after = loop {
        if let Err(e) = set_get(by_name, "blocked", "v").await {
            break (policy_applied.elapsed(), e);
        }
        assert!(
            Instant::now() < deadline,
            "the NetworkPolicy did not block the client within 30s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    println!(
        "NetworkPolicy blocked the client after {:.2}s: {}",
        blocked_after.0.as_secs_f64(),
        blocked_after.1
    );
    faults::restore_network(&ns, "only-clients")
        .await
        .expect("delete NetworkPolicy");
    assert_eq!(
        eventually_set_get(by_name, "restored", Duration::from_secs(30)).await,
        "v"
    );

    // Limits are enforced by the kernel: 128Mi memory, 500m CPU.
    let pod = redis_pod(&ns).await;
    let pod_name = pod.metadata.name.clone().expect("pod name");
    let memory = cgroup_value(
        &ns,
        &pod_name,
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    )
    .await;
    assert_eq!(memory, (128u64 * 1024 * 1024).to_string());
    let cpu = cgroup_value(
        &ns,
        &pod_name,
        "/sys/fs/cgroup/cpu.max",
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    )
    .await;
    assert!(
        cpu == "50000" || cpu.starts_with("50000 "),
        "CPU quota for 500m, got {cpu:?}"
    );

    // A deleted pod is replaced by a new one that serves again.
    let old_uid = pod.metadata.uid.clone();
    faults::delete_pod(&ns, &pod_name, Some(0))
        .await
        .expect("delete pod");
    let replaced = Instant::now();
    let deployments = ns.api::<Deployment>();
    wait::wait_for(
        &deployments,
        "redis",
        Duration::from_secs(120),
        "replacement pod",
        wait::deployment_available,
    )
    .await
    .expect("deployment available again");
    let new_pod = loop {
        let p = redis_pod(&ns).await;
        if p.metadata.uid != old_uid && wait::pod_ready(&p) {
            break p;
        }
        assert!(
            replaced.elapsed() < Duration::from_secs(120),
            "no ready replacement pod"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    println!(
        "replacement pod {} Ready after {:.2}s",
        new_pod.metadata.name.unwrap_or_default(),
        replaced.elapsed().as_secs_f64()
    );
    assert_eq!(
        eventually_set_get(by_name, "after-replace", Duration::from_secs(30)).await,
        "v"
    );

    ns.finish().await.expect("delete the namespace");
}
