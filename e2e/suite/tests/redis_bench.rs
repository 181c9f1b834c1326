//! Benchmarks printed, not asserted against a clock: RedisInstance apply → Ready against the same
//! pods as a bare StatefulSet; many instances at steady state: the operator's memory and API
//! writes per minute (asserted: zero). `AGILITY_BENCH_INSTANCES` sets the count (default 5, which fits the 2-core CI node at full requests; the
//! single e2e node's kubelet fits ~50 standard instances under its 110-pod limit).

use std::time::{Duration, Instant};

use agility_e2e::{TestEnv, TestNamespace, wait};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;

fn redis_api(ns: &TestNamespace) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("redis.agility.dev", "v1alpha1", "RedisInstance");
    Api::namespaced_with(ns.client().clone(), ns.name(), &ApiResource::from_gvk(&gvk))
}

fn instance(name: &str, cpu: &str) -> String {
    format!(
        "apiVersion: redis.agility.dev/v1alpha1\nkind: RedisInstance\nmetadata: {{name: {name}}}\nspec:\n  edition: standard\n  resources: {{memory: 32Mi, cpu: {cpu}, maxClients: 100}}\n"
    )
}

/// Two redis pods as a plain StatefulSet: same image, same readiness cadence, no operator.
fn bare(name: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}}}
spec:
  replicas: 2
  podManagementPolicy: Parallel
  serviceName: {name}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      securityContext: {{runAsUser: 999, runAsGroup: 999, runAsNonRoot: true}}
      containers:
        - name: redis
          image: localhost/agility/redis:7.0.15
          imagePullPolicy: IfNotPresent
          command: ["/usr/bin/redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no"]
          resources: {{limits: {{memory: 80Mi, cpu: 100m}}}}
          readinessProbe:
            exec: {{command: ["/bin/sh", "-c", "redis-cli ping | /bin/busybox grep -q PONG"]}}
            periodSeconds: 1
"#
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn time_instance(ns: &TestNamespace, name: &str) -> f64 {
    let t = Instant::now();
    ns.apply_yaml(&instance(name, "100m")).await.expect("apply");
    wait::wait_for(
        &redis_api(ns),
        name,
        Duration::from_secs(180),
        "Running",
        |o: &DynamicObject| o.data["status"]["phase"] == "Running",
    )
    .await
    .expect("instance Running");
    let took = t.elapsed().as_secs_f64();
    // One pair at a time: the CI node has 2 cores and full requests.
    redis_api(ns)
        .delete(name, &Default::default())
        .await
        .expect("delete instance");
    took
}

async fn time_bare(ns: &TestNamespace, name: &str) -> f64 {
    let t = Instant::now();
    ns.apply_yaml(&bare(name)).await.expect("apply StatefulSet");
    wait::wait_for(
        &ns.api::<StatefulSet>(),
        name,
        Duration::from_secs(180),
        "2 ready",
        |s: &StatefulSet| s.status.as_ref().and_then(|s| s.ready_replicas) == Some(2),
    )
    .await
    .expect("StatefulSet ready");
    let took = t.elapsed().as_secs_f64();
    ns.api::<StatefulSet>()
        .delete(name, &Default::default())
        .await
        .expect("delete StatefulSet");
    took
}

#[tokio::test]
async fn apply_to_ready_against_a_bare_statefulset() {
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    let ns = env
        .namespace("redis-bench-ready")
        .await
        .expect("test namespace");
    let (mut ours, mut plain) = (Vec::new(), Vec::new());
    for i in 0..5 {
        plain.push(time_bare(&ns, &format!("bare-{i}")).await);
        ours.push(time_instance(&ns, &format!("managed-{i}")).await);
    }
    let (o, p) = (median(ours.clone()), median(plain.clone()));
    println!(
        "apply -> Ready, median of 5: RedisInstance {o:.2}s {ours:.2?}, bare StatefulSet {p:.2}s {plain:.2?}, ratio {:.2} (goal <= 1.15)",
        o / p
    );
    ns.finish().await.expect("clean up");
}

/// Resident memory of the operator processes on this host (they run on the local node).
fn operator_rss_kib() -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .map(|e| e.path())
        // comm is cut at 15 characters.
        .filter(|p| {
            std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim() == "agility-operato")
        })
        .filter_map(|p| {
            let status = std::fs::read_to_string(p.join("status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .collect()
}

async fn write_requests(client: &kube::Client) -> u64 {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = client.request_text(req).await.expect("apiserver /metrics");
    let resources = [
        "redisinstances",
        "statefulsets",
        "services",
        "configmaps",
        "secrets",
        "networkpolicies",
        "poddisruptionbudgets",
        "pods",
    ];
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| {
            resources
                .iter()
                .any(|r| l.contains(&format!("resource=\"{r}\"")))
        })
        .filter(|l| {
            ["POST", "PUT", "PATCH", "APPLY", "DELETE"]
                .iter()
                .any(|v| l.contains(&format!("verb=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .map(|v| v as u64)
        .sum()
}

#[tokio::test]
async fn many_instances_at_steady_state() {
    let count: usize = std::env::var("AGILITY_BENCH_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    let ns = env
        .namespace("redis-bench-many")
        .await
        .expect("test namespace");
    let before = operator_rss_kib();
    let t = Instant::now();
    for i in 0..count {
        ns.apply_yaml(&instance(&format!("r{i}"), "100m"))
            .await
            .expect("apply");
    }
    for i in 0..count {
        wait::wait_for(
            &redis_api(&ns),
            &format!("r{i}"),
            Duration::from_secs(600),
            "Running",
            |o: &DynamicObject| o.data["status"]["phase"] == "Running",
        )
        .await
        .expect("instance Running");
    }
    println!(
        "{count} standard instances Running {:.1}s after the first apply",
        t.elapsed().as_secs_f64()
    );
    // Let the last status writes and events settle, then count writes for a minute.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let w0 = write_requests(ns.client()).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let writes = write_requests(ns.client()).await - w0;
    let after = operator_rss_kib();
    println!(
        "operator RSS (KiB, per replica): before {before:?}, with {count} instances {after:?}; API writes in the steady minute: {writes}"
    );
    assert_eq!(writes, 0, "steady state must make zero API writes");
    ns.finish().await.expect("clean up");
}
