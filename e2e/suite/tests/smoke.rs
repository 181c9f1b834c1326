//! Smoke tests proving the local cluster is real: a Deployment of the locally built redis image
//! behind a ClusterIP Service, reached from the test by DNS name (CoreDNS) and by ClusterIP with a
//! real Redis client; a NetworkPolicy really blocks; a deleted pod is replaced; limits become
//! cgroup limits. Measured numbers (pod start latency, ...) are printed, not asserted.
//!
//! They need a reachable cluster (`KUBECONFIG`) and fail without one. Run with
//! `--test-threads=1 --nocapture` to see the numbers.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agility_e2e::{Reach, TestEnv, faults, wait};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::json;
use support::{
    deploy_redis, eventually_fails, eventually_set_get, live_redis_pod, redis_pod, set_get,
};

/// Time allowed for a NetworkPolicy to take effect (or to stop taking effect).
const POLICY_BOUND: Duration = Duration::from_secs(30);

async fn env() -> TestEnv {
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    assert!(
        matches!(env.reach(), Reach::Route { .. }),
        "these smoke tests reach Services by route and cluster DNS; got {:?} \
         (is the Service range routed to the node? see e2e/cluster/README.md)",
        env.reach()
    );
    env
}

#[tokio::test]
async fn redis_is_reached_by_service_dns_name_and_cluster_ip() {
    let env = env().await;
    let ns = env
        .namespace("smoke-redis-service")
        .await
        .expect("namespace");
    deploy_redis(&ns).await;
    let svc = ns.api::<Service>().get("redis").await.expect("Service");
    let cluster_ip = svc.spec.and_then(|s| s.cluster_ip).expect("a ClusterIP");

    // By name, through CoreDNS at the cluster DNS Service address.
    let name = format!("redis.{}.svc.cluster.local", ns.name());
    let resolved = env.reach().resolve(&name).await.expect("DNS answer");
    assert_eq!(
        resolved.to_string(),
        cluster_ip,
        "{name} resolves to the ClusterIP"
    );
    let by_name = env
        .reach()
        .service(env.client(), ns.name(), "redis", 6379)
        .await
        .expect("address by Service name");
    let took = eventually_set_get(by_name, "by-name", Duration::from_secs(30)).await;
    println!("SET/GET by Service DNS name {name} -> {by_name}: ok after {took:?}");

    // By ClusterIP directly.
    let by_ip = SocketAddr::new(cluster_ip.parse().expect("an IP"), 6379);
    assert_eq!(
        set_get(by_ip, "by-ip", "ip-value")
            .await
            .expect("SET/GET by ClusterIP"),
        "ip-value"
    );
    // Both paths reach the same server: what one SET, the other GETs.
    assert_eq!(
        set_get(by_name, "by-ip", "ip-value")
            .await
            .expect("same data by name"),
        "ip-value"
    );

    ns.finish().await.expect("delete the namespace");
}

#[tokio::test]
async fn network_policy_denies_the_client_and_removing_it_restores_access() {
    let env = env().await;
    let ns = env
        .namespace("smoke-network-policy")
        .await
        .expect("namespace");
    deploy_redis(&ns).await;
    let addr = env
        .reach()
        .service(env.client(), ns.name(), "redis", 6379)
        .await
        .expect("address by Service name");
    eventually_set_get(addr, "before", Duration::from_secs(30)).await;

    // A policy admitting only pods labelled role=client: the test (not such a pod) is denied.
    let only_clients: NetworkPolicy = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": { "name": "only-clients" },
        "spec": {
            "podSelector": { "matchLabels": { "app": "redis" } },
            "policyTypes": ["Ingress"],
            "ingress": [{ "from": [{ "podSelector": { "matchLabels": { "role": "client" } } }] }]
        }
    }))
    .expect("a valid NetworkPolicy");
    ns.apply(&only_clients).await.expect("apply NetworkPolicy");
    let (after, error) = eventually_fails(addr, POLICY_BOUND).await;
    println!(
        "NetworkPolicy only-clients denied the test after {:.2}s: {error}",
        after.as_secs_f64()
    );
    faults::restore_network(&ns, "only-clients")
        .await
        .expect("delete NetworkPolicy");
    let took = eventually_set_get(addr, "restored", POLICY_BOUND).await;
    println!(
        "access restored {:.2}s after deleting the policy",
        took.as_secs_f64()
    );

    // The framework's own fault: a deny-all policy on exactly this pod.
    let pod = live_redis_pod(&ns).await.metadata.name.expect("pod name");
    let cut = faults::cut_pod_network(&ns, &pod)
        .await
        .expect("cut the pod");
    let (after, error) = eventually_fails(addr, POLICY_BOUND).await;
    println!(
        "cut_pod_network took effect after {:.2}s: {error}",
        after.as_secs_f64()
    );
    cut.restore(&ns).await.expect("restore the pod's network");
    let took = eventually_set_get(addr, "uncut", POLICY_BOUND).await;
    println!("restore() took effect after {:.2}s", took.as_secs_f64());
    let labels = ns
        .api::<Pod>()
        .get(&pod)
        .await
        .expect("pod")
        .metadata
        .labels
        .unwrap_or_default();
    assert!(
        !labels.contains_key(faults::CUT_LABEL),
        "restore() removes the cut label"
    );

    ns.finish().await.expect("delete the namespace");
}

#[tokio::test]
async fn deleting_the_pod_brings_a_working_replacement() {
    let env = env().await;
    let ns = env
        .namespace("smoke-pod-replacement")
        .await
        .expect("namespace");
    deploy_redis(&ns).await;
    let addr = env
        .reach()
        .service(env.client(), ns.name(), "redis", 6379)
        .await
        .expect("address by Service name");
    eventually_set_get(addr, "before", Duration::from_secs(30)).await;

    let pod = live_redis_pod(&ns).await.metadata.name.expect("pod name");
    let deleted = Instant::now();
    let old_uid = faults::delete_pod(&ns, &pod, Some(0))
        .await
        .expect("delete pod")
        .expect("the pod had a UID");
    let replacement = wait::wait_for_list(
        &ns.api::<Pod>(),
        "app=redis",
        Duration::from_secs(120),
        "a Ready replacement pod",
        |pods: &[Pod]| {
            pods.iter().any(|p| {
                p.metadata.uid.as_deref() != Some(old_uid.as_str())
                    && p.metadata.deletion_timestamp.is_none()
                    && wait::pod_ready(p)
            })
        },
    )
    .await
    .expect("replacement")
    .into_iter()
    .find(|p| p.metadata.uid.as_deref() != Some(old_uid.as_str()) && wait::pod_ready(p))
    .expect("the Ready replacement");
    let ready_after = deleted.elapsed();
    ns.wait_deleted::<Pod>(&pod, Duration::from_secs(60))
        .await
        .expect("the old pod is gone");
    let serving_after =
        deleted.elapsed() + eventually_set_get(addr, "after", Duration::from_secs(30)).await;
    println!(
        "replacement {} (new UID) Ready {:.2}s after the delete; serving through the Service after {:.2}s",
        replacement.metadata.name.as_deref().unwrap_or("?"),
        ready_after.as_secs_f64(),
        serving_after.as_secs_f64()
    );

    ns.finish().await.expect("delete the namespace");
}

/// Reads a cgroup file inside the container (busybox `cat` is in the image), the v2 name first,
/// then the v1 one: this node's cgroups are a v1/v2 hybrid with v1 controllers.
async fn cgroup_value(ns: &agility_e2e::TestNamespace, pod: &str, v2: &str, v1: &str) -> String {
    for path in [v2, v1] {
        let out = ns.exec(pod, &["cat", path]).await.expect("exec cat");
        if out.exit_code == 0 {
            return out.stdout.trim().to_string();
        }
    }
    panic!("neither {v2} nor {v1} is readable in {pod}");
}

#[tokio::test]
async fn pod_limits_become_cgroup_limits() {
    let env = env().await;
    let ns = env
        .namespace("smoke-cgroup-limits")
        .await
        .expect("namespace");
    deploy_redis(&ns).await;
    let pod = live_redis_pod(&ns).await.metadata.name.expect("pod name");

    // limits: memory 128Mi, cpu 500m (= 50ms of CPU per 100ms period).
    let memory = cgroup_value(
        &ns,
        &pod,
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    )
    .await;
    assert_eq!(memory, (128u64 * 1024 * 1024).to_string(), "memory limit");
    let quota = cgroup_value(
        &ns,
        &pod,
        "/sys/fs/cgroup/cpu.max",
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    )
    .await;
    let period = if let Some((q, p)) = quota.split_once(' ') {
        assert_eq!(q, "50000", "cpu.max quota");
        p.to_string()
    } else {
        assert_eq!(quota, "50000", "cpu.cfs_quota_us");
        cgroup_value(
            &ns,
            &pod,
            "/sys/fs/cgroup/cpu.max",
            "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
        )
        .await
    };
    assert_eq!(period, "100000", "CFS period");
    println!("cgroup limits in the container: memory {memory} bytes, cpu quota 50000/{period} us");

    ns.finish().await.expect("delete the namespace");
}

#[tokio::test]
async fn redis_pod_start_latency() {
    let env = env().await;
    let ns = env
        .namespace("smoke-start-latency")
        .await
        .expect("namespace");
    const RUNS: usize = 5;
    let mut client_side = Vec::new();
    for i in 0..RUNS {
        let name = format!("redis-{i}");
        let start = Instant::now();
        ns.apply(&redis_pod(&name)).await.expect("create pod");
        let pod = ns
            .wait_pod_ready(&name, Duration::from_secs(120))
            .await
            .expect("pod Ready");
        let took = start.elapsed();
        client_side.push(took);
        // The API's own timestamps (whole seconds): created -> Ready condition.
        let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0);
        let server_side = match (created, ready) {
            (Some(c), Some(r)) => format!("{}s", r.as_second() - c.as_second()),
            _ => "?".into(),
        };
        println!(
            "redis pod {name}: created -> Ready {:.3}s (API timestamps: {server_side})",
            took.as_secs_f64()
        );
        faults::delete_pod(&ns, &name, Some(0))
            .await
            .expect("delete pod");
        ns.wait_deleted::<Pod>(&name, Duration::from_secs(60))
            .await
            .expect("pod gone");
    }
    client_side.sort();
    println!(
        "redis pod start latency over {RUNS} pods: median {:.3}s, min {:.3}s, max {:.3}s",
        client_side[RUNS / 2].as_secs_f64(),
        client_side[0].as_secs_f64(),
        client_side[RUNS - 1].as_secs_f64()
    );
    ns.finish().await.expect("delete the namespace");
}

/// The port-forward path (used where the cluster network is not routed, e.g. Docker Desktop):
/// a local listener forwarded through the API server to the pod reaches the same redis.
#[tokio::test]
async fn port_forward_reaches_a_pod() {
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    let ns = env
        .namespace("smoke-port-forward")
        .await
        .expect("namespace");
    deploy_redis(&ns).await;
    let pod = live_redis_pod(&ns).await.metadata.name.expect("pod name");
    let local = agility_e2e::reach::forward(env.client(), ns.name(), &pod, 6379)
        .await
        .expect("port-forward");
    assert!(local.ip().is_loopback());
    assert_eq!(
        set_get(local, "forwarded", "v")
            .await
            .expect("SET/GET through port-forward"),
        "v"
    );
    // A second connection through the same listener works too.
    assert_eq!(
        set_get(local, "forwarded-again", "w")
            .await
            .expect("second connection"),
        "w"
    );
    // And the Service path in port-forward mode picks a ready endpoint by itself.
    let via_service = Reach::PortForward
        .service(env.client(), ns.name(), "redis", 6379)
        .await
        .expect("port-forward to the Service's endpoint");
    assert_eq!(
        set_get(via_service, "forwarded", "x")
            .await
            .expect("SET/GET through the Service's pod"),
        "x"
    );
    ns.finish().await.expect("delete the namespace");
}

#[tokio::test]
async fn killed_and_frozen_main_processes() {
    let env = env().await;
    let ns = env
        .namespace("smoke-process-faults")
        .await
        .expect("namespace");
    deploy_redis(&ns).await;
    let pod = live_redis_pod(&ns).await;
    let name = pod.metadata.name.clone().expect("pod name");
    let addr = env
        .reach()
        .pod(env.client(), ns.name(), &name, 6379)
        .await
        .expect("pod address");
    eventually_set_get(addr, "before", Duration::from_secs(30)).await;

    // Frozen: alive, connections accepted by the kernel, but no answers.
    let pid = faults::freeze(&ns, &name).await.expect("freeze");
    let (after, error) = eventually_fails(addr, Duration::from_secs(10)).await;
    println!(
        "froze host PID {pid}: requests fail after {:.2}s ({error})",
        after.as_secs_f64()
    );
    faults::thaw(&ns, &name).await.expect("thaw");
    eventually_set_get(addr, "thawed", Duration::from_secs(10)).await;

    // Killed: the kubelet restarts the container in the same pod.
    let restarts = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .map_or(0, |c| c.restart_count)
    };
    let before = restarts(&ns.api::<Pod>().get(&name).await.expect("pod"));
    let killed = Instant::now();
    let pid = faults::kill_main_process(&ns, &name).await.expect("kill");
    ns.wait_for::<Pod, _>(
        &name,
        Duration::from_secs(120),
        "container restarted and Ready",
        |p| restarts(p) > before && wait::pod_ready(p),
    )
    .await
    .expect("restarted");
    let restarted = killed.elapsed();
    let serving = eventually_set_get(addr, "after-kill", Duration::from_secs(30)).await;
    println!(
        "killed host PID {pid}: container restarted and Ready after {:.2}s, serving {:.2}s later",
        restarted.as_secs_f64(),
        serving.as_secs_f64()
    );

    ns.finish().await.expect("delete the namespace");
}

#[tokio::test]
async fn exec_reports_output_and_exit_codes() {
    let env = env().await;
    let ns = env.namespace("smoke-exec").await.expect("namespace");
    deploy_redis(&ns).await;
    let pod = live_redis_pod(&ns).await.metadata.name.expect("pod name");

    let out = ns.exec(&pod, &["redis-cli", "ping"]).await.expect("exec");
    assert_eq!((out.exit_code, out.stdout.trim()), (0, "PONG"));
    let out = ns
        .exec(&pod, &["sh", "-c", "echo out; echo err >&2; exit 7"])
        .await
        .expect("exec sh");
    assert_eq!(out.exit_code, 7);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    let err = ns
        .exec_in(&pod, "redis", &["/no/such/binary"])
        .await
        .expect_err("a missing binary is an error, not an exit code");
    println!("exec of a missing binary: {err}");

    ns.finish().await.expect("delete the namespace");
}
