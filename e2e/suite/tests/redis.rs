//! RedisInstance on the real node with a real Redis client: standard and cache editions, failover
//! under a write load (pod deleted, process frozen), acknowledged writes kept, bad specs rejected
//! by `kubectl apply`. Prints the numbers the issue asks for.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agility_e2e::{TestEnv, TestNamespace, faults, wait};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use serde_json::Value;

mod support;
use support::{kubectl, kubectl_apply};

/// The test host and the node's bridge: where the test's connections come from.
const TEST_SOURCES: &str = r#"["10.250.0.0/24", "10.244.0.1/32"]"#;

/// A temporary namespace for one test (kept with a dump if the test fails).
async fn test_namespace(test: &str) -> TestNamespace {
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    env.namespace(test).await.expect("test namespace")
}

fn redis_api(ns: &TestNamespace) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("redis.agility.dev", "v1alpha1", "RedisInstance");
    Api::namespaced_with(ns.client().clone(), ns.name(), &ApiResource::from_gvk(&gvk))
}

fn instance_yaml(name: &str, edition: &str) -> String {
    format!(
        "apiVersion: redis.agility.dev/v1alpha1\nkind: RedisInstance\nmetadata: {{name: {name}}}\nspec:\n  edition: {edition}\n  resources: {{memory: 64Mi, cpu: 250m, maxClients: 1000}}\n  allowlist: {{ipBlocks: {TEST_SOURCES}}}\n"
    )
}

async fn wait_ready(ns: &TestNamespace, name: &str, timeout: Duration) -> DynamicObject {
    wait::wait_for(
        &redis_api(ns),
        name,
        timeout,
        "RedisInstance Ready",
        |o: &DynamicObject| {
            wait::condition_is(o, "Ready", "True")
                && o.data["status"]["phase"] == "Running"
                && o.data["status"]["observedGeneration"]
                    == o.metadata.generation.map(Value::from).unwrap_or_default()
        },
    )
    .await
    .expect("RedisInstance becomes Ready")
}

async fn password(ns: &TestNamespace, name: &str) -> String {
    let s = ns
        .api::<Secret>()
        .get(&format!("{name}-connection"))
        .await
        .expect("connection Secret");
    let d = s.data.expect("Secret data");
    String::from_utf8(d["password"].0.clone()).expect("utf8 password")
}

async fn endpoint(ns: &TestNamespace, name: &str) -> SocketAddr {
    ns.reach()
        .service(ns.client(), ns.name(), name, 6379)
        .await
        .expect("endpoint address")
}

async fn connect(
    addr: SocketAddr,
    password: &str,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let url = format!("redis://:{password}@{addr}/0");
    let client = redis::Client::open(url)?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(1000)));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
}

/// Connects, retrying for a while: the NetworkPolicy agent programs a new pod's allow rules a
/// moment after the pod is Ready.
async fn connect_eventually(
    ns: &TestNamespace,
    name: &str,
    password: &str,
) -> redis::aio::MultiplexedConnection {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match connect(endpoint(ns, name).await, password).await {
            Ok(c) => return c,
            Err(e) if Instant::now() >= deadline => panic!("cannot connect to {name}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// SET then `WAIT 1 1000`: the write counts as acknowledged only when a replica has it.
async fn acked_write(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> redis::RedisResult<bool> {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("v")
        .query_async(conn)
        .await?;
    let replicas: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(1000)
        .query_async(conn)
        .await?;
    Ok(replicas >= 1)
}

async fn master_pod(ns: &TestNamespace, name: &str) -> String {
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!(
            "app.kubernetes.io/instance={name},redis.agility.dev/role=master"
        )))
        .await
        .expect("list pods");
    pods.items
        .into_iter()
        .find_map(|p| p.metadata.name)
        .expect("a pod labelled master")
}

/// GET /metrics from the exporter sidecar of `pod`, from inside the pod (the NetworkPolicy admits
/// scrapes from pods only), retrying while it starts.
async fn scrape(ns: &TestNamespace, pod: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = ns
            .exec_in(
                pod,
                "redis",
                &[
                    "/bin/busybox",
                    "wget",
                    "-qO-",
                    "http://127.0.0.1:9121/metrics",
                ],
            )
            .await;
        match out {
            Ok(o) if o.stdout.contains("redis_up") => return o.stdout,
            _ if Instant::now() >= deadline => panic!("no exporter metrics from {pod}: {out:?}"),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

async fn pod_ip(ns: &TestNamespace, pod: &str) -> String {
    let p = ns.api::<Pod>().get(pod).await.expect("get pod");
    p.status.and_then(|s| s.pod_ip).expect("pod IP")
}

/// Writes until one is accepted through the endpoint; returns the time from `since`.
async fn first_accepted_write(
    ns: &TestNamespace,
    name: &str,
    pw: &str,
    since: Instant,
    acked: &mut BTreeSet<String>,
    n: &mut u64,
    old_master_ip: &str,
) -> Duration {
    let deadline = since + Duration::from_secs(60);
    let mut conn = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "no write accepted within 60 s of the fault"
        );
        if conn.is_none() {
            conn = connect(endpoint(ns, name).await, pw).await.ok();
        }
        if let Some(c) = conn.as_mut() {
            *n += 1;
            let key = format!("k{n}");
            match acked_write(c, &key).await {
                Ok(replicated) => {
                    if replicated {
                        acked.insert(key);
                    }
                    // Which node took it? The old master may still serve until it stops.
                    let ip: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
                        .arg("GET")
                        .arg("replica-announce-ip")
                        .query_async(c)
                        .await;
                    match ip {
                        Ok(v) if v.get(1).is_some_and(|ip| ip != old_master_ip) => {
                            return since.elapsed();
                        }
                        Ok(_) => {}
                        Err(_) => conn = None,
                    }
                }
                Err(_) => conn = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every acknowledged key must be readable through the endpoint.
async fn assert_no_acked_write_lost(
    ns: &TestNamespace,
    name: &str,
    pw: &str,
    acked: &BTreeSet<String>,
) {
    let mut conn = connect_eventually(ns, name, pw).await;
    let mut lost = Vec::new();
    for k in acked {
        let v: Option<String> = redis::cmd("GET")
            .arg(k)
            .query_async(&mut conn)
            .await
            .expect("GET");
        if v.is_none() {
            lost.push(k.clone());
        }
    }
    println!(
        "acknowledged writes (WAIT 1): {}, lost: {}",
        acked.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
}

/// Background load: acknowledged writes until `stop`; returns the acked keys.
async fn load(
    ns: &TestNamespace,
    name: &str,
    pw: &str,
    acked: &mut BTreeSet<String>,
    n: &mut u64,
    dur: Duration,
) {
    let end = Instant::now() + dur;
    let mut conn = connect(endpoint(ns, name).await, pw).await.ok();
    while Instant::now() < end {
        if let Some(c) = conn.as_mut() {
            *n += 1;
            let key = format!("k{n}");
            match acked_write(c, &key).await {
                Ok(true) => {
                    acked.insert(key);
                }
                Ok(false) => {}
                Err(_) => conn = None,
            }
        } else {
            conn = connect(endpoint(ns, name).await, pw).await.ok();
        }
    }
}

#[tokio::test]
async fn standard_instance_fails_over_without_losing_acknowledged_writes() {
    let ns = test_namespace("redis-standard").await;
    let name = "orders";
    let t0 = Instant::now();
    ns.apply_yaml(&instance_yaml(name, "standard"))
        .await
        .expect("apply RedisInstance");
    let ready = wait_ready(&ns, name, Duration::from_secs(180)).await;
    println!(
        "standard instance apply -> Ready: {:.2}s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(
        ready.data["status"]["phase"], "Running",
        "{:?}",
        ready.data["status"]
    );

    let pw = password(&ns, name).await;
    let mut conn = connect_eventually(&ns, name, &pw).await;
    let _: () = redis::cmd("SET")
        .arg("hello")
        .arg("world")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let got: String = redis::cmd("GET")
        .arg("hello")
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(got, "world");
    assert!(
        connect(endpoint(&ns, name).await, "wrong-password")
            .await
            .is_err(),
        "a wrong password must be refused"
    );

    // The exporter sidecar logs in as the `monitor` user and reports replication.
    let master = master_pod(&ns, name).await;
    let metrics = scrape(&ns, &master).await;
    for want in [
        "redis_up 1",
        "redis_connected_slaves 1",
        "redis_memory_max_bytes",
    ] {
        assert!(metrics.contains(want), "exporter metrics lack {want:?}");
    }
    println!("exporter on {master}: redis_up 1, redis_connected_slaves 1");

    let mut acked = BTreeSet::new();
    let mut n = 0u64;
    load(&ns, name, &pw, &mut acked, &mut n, Duration::from_secs(2)).await;

    // 1. The master pod is deleted under load.
    let old = master_pod(&ns, name).await;
    let old_ip = pod_ip(&ns, &old).await;
    faults::delete_pod(&ns, &old, None)
        .await
        .expect("delete the master pod");
    let fault = Instant::now();
    let took = first_accepted_write(&ns, name, &pw, fault, &mut acked, &mut n, &old_ip).await;
    println!(
        "failover (master pod deleted) -> first accepted write through the endpoint: {:.2}s",
        took.as_secs_f64()
    );
    let new = master_pod(&ns, name).await;
    assert_ne!(new, old, "a replica was promoted");
    load(&ns, name, &pw, &mut acked, &mut n, Duration::from_secs(1)).await;
    let back = wait_ready(&ns, name, Duration::from_secs(120)).await;
    assert!(
        back.data["status"]["lastFailover"]["to"] == new.as_str(),
        "{:?}",
        back.data["status"]
    );
    // Wait until the old pod is back as a synced replica before the next fault.
    wait::wait_for(
        &redis_api(&ns),
        name,
        Duration::from_secs(120),
        "both nodes back",
        |o: &DynamicObject| {
            o.data["status"]["phase"] == "Running"
                && o.data["status"]["nodes"]
                    .as_array()
                    .is_some_and(|a| a.len() == 2 && a.iter().any(|n| n["role"] == "replica"))
        },
    )
    .await
    .expect("old master rejoins as a replica");

    // 2. The master process is frozen (SIGSTOP) under load.
    load(&ns, name, &pw, &mut acked, &mut n, Duration::from_secs(1)).await;
    let frozen = master_pod(&ns, name).await;
    let old_ip = pod_ip(&ns, &frozen).await;
    let frozen_uid = ns
        .api::<Pod>()
        .get(&frozen)
        .await
        .expect("pod")
        .metadata
        .uid;
    faults::freeze(&ns, &frozen)
        .await
        .expect("SIGSTOP the master");
    let fault = Instant::now();
    let took = first_accepted_write(&ns, name, &pw, fault, &mut acked, &mut n, &old_ip).await;
    println!(
        "failover (master frozen) -> first accepted write through the endpoint: {:.2}s",
        took.as_secs_f64()
    );
    let promoted = master_pod(&ns, name).await;
    assert_ne!(promoted, frozen);
    // The frozen master was fenced: its pod was replaced (new UID) and rejoined as a replica; never
    // two masters.
    wait::wait_for(
        &redis_api(&ns),
        name,
        Duration::from_secs(120),
        "frozen master replaced and rejoined",
        |o: &DynamicObject| {
            o.data["status"]["phase"] == "Running"
                && o.data["status"]["nodes"].as_array().is_some_and(|a| {
                    a.len() == 2
                        && a.iter().filter(|n| n["role"] == "master").count() == 1
                        && a.iter()
                            .any(|n| n["pod"] == frozen.as_str() && n["role"] == "replica")
                })
        },
    )
    .await
    .expect("fenced master comes back as a replica");
    let replacement_uid = ns
        .api::<Pod>()
        .get(&frozen)
        .await
        .expect("pod")
        .metadata
        .uid;
    assert_ne!(
        replacement_uid, frozen_uid,
        "the frozen pod was fenced (deleted) and replaced"
    );
    load(&ns, name, &pw, &mut acked, &mut n, Duration::from_secs(1)).await;
    assert_no_acked_write_lost(&ns, name, &pw, &acked).await;

    // 3. Resizing (memory 64Mi -> 96Mi) rolls the pods: replicas first, then one planned
    // switchover; no failover, no acknowledged write lost, writes keep flowing.
    let failover_before =
        redis_api(&ns).get(name).await.expect("get").data["status"]["lastFailover"].clone();
    let resized = instance_yaml(name, "standard").replace("memory: 64Mi", "memory: 96Mi");
    ns.apply_yaml(&resized).await.expect("resize");
    let rollout = Instant::now();
    let sts_api = ns.api::<k8s_openapi::api::apps::v1::StatefulSet>();
    let pods_api = ns.api::<Pod>();
    loop {
        load(
            &ns,
            name,
            &pw,
            &mut acked,
            &mut n,
            Duration::from_millis(500),
        )
        .await;
        let sts = sts_api.get(name).await.expect("StatefulSet");
        let target = sts.status.as_ref().and_then(|s| s.update_revision.clone());
        let pods = pods_api
            .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")))
            .await
            .expect("pods");
        let updated = pods
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("controller-revision-hash"))
                    == target.as_ref()
            })
            .filter(|p| wait::pod_ready(p))
            .count();
        if updated == 2 {
            break;
        }
        assert!(
            rollout.elapsed() < Duration::from_secs(240),
            "rollout did not finish: {updated} of 2 pods updated"
        );
    }
    println!(
        "resize rolled out (replicas first, then a switchover) in {:.2}s",
        rollout.elapsed().as_secs_f64()
    );
    let after = redis_api(&ns).get(name).await.expect("get").data["status"]["lastFailover"].clone();
    assert_eq!(
        after, failover_before,
        "a planned rollout must not need a failover"
    );
    wait_ready(&ns, name, Duration::from_secs(120)).await;
    assert_no_acked_write_lost(&ns, name, &pw, &acked).await;
    let mut conn = connect_eventually(&ns, name, &pw).await;
    let maxmemory: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query_async(&mut conn)
        .await
        .expect("CONFIG GET");
    assert_eq!(maxmemory[1], (96u64 << 20).to_string());
    ns.finish().await.expect("clean up");
}

#[tokio::test]
async fn cache_instance_serves_and_bad_specs_are_rejected_at_apply() {
    let ns = test_namespace("redis-cache").await;
    let t0 = Instant::now();
    ns.apply_yaml(&instance_yaml("sessions", "cache"))
        .await
        .expect("apply cache");
    let ready = wait_ready(&ns, "sessions", Duration::from_secs(180)).await;
    println!(
        "cache instance apply -> Ready: {:.2}s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(
        ready.data["status"]["nodes"].as_array().map(Vec::len),
        Some(1)
    );
    let pw = password(&ns, "sessions").await;
    let mut conn = connect_eventually(&ns, "sessions", &pw).await;
    let _: () = redis::cmd("SET")
        .arg("s")
        .arg("1")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let aof: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(&mut conn)
        .await
        .expect("CONFIG GET");
    assert_eq!(aof[1], "no", "the cache edition keeps no AOF");

    let base = "apiVersion: redis.agility.dev/v1alpha1\nkind: RedisInstance\nmetadata: {name: bad}\nspec:\n";
    let many: Vec<String> = (0..1001)
        .map(|i| format!("\"10.1.{}.{}\"", i / 250, i % 250))
        .collect();
    let cases = [
        ("unknown class", format!("{base}  instanceClass: redis.master.huge\n"), "Unsupported value: \"redis.master.huge\""),
        ("1,001 allowlist entries", format!("{base}  resources: {{memory: 64Mi}}\n  allowlist: {{ipBlocks: [{}]}}\n", many.join(",")), "must have at most 1000 items"),
        ("bad CIDR", format!("{base}  resources: {{memory: 64Mi}}\n  allowlist: {{ipBlocks: [\"10.0.0.0/33\"]}}\n"), "not an IP address or CIDR: 10.0.0.0/33"),
        ("parameter not on the list", format!("{base}  resources: {{memory: 64Mi}}\n  parameters: {{save: \"\"}}\n"), "unknown field \"spec.parameters.save\""),
        ("cache with persistence", format!("{base}  edition: cache\n  resources: {{memory: 64Mi}}\n  persistence: {{appendOnly: true}}\n"), "the cache edition keeps no data"),
        ("immutable edition", "apiVersion: redis.agility.dev/v1alpha1\nkind: RedisInstance\nmetadata: {name: sessions}\nspec:\n  edition: standard\n  resources: {memory: 64Mi}\n".to_owned(), "spec.edition is immutable"),
        ("TLS switched on later", "apiVersion: redis.agility.dev/v1alpha1\nkind: RedisInstance\nmetadata: {name: sessions}\nspec:\n  edition: cache\n  resources: {memory: 64Mi}\n  tls: {enabled: true}\n".to_owned(), "spec.tls.enabled cannot change after creation"),
        ("TLS Secret without TLS", format!("{base}  resources: {{memory: 64Mi}}\n  tls: {{secretName: mine}}\n"), "spec.tls.secretName needs spec.tls.enabled: true"),
    ];
    for (what, yaml, want) in cases {
        let (ok, err) = kubectl_apply(ns.name(), &yaml);
        assert!(!ok, "{what}: kubectl apply should fail");
        assert!(err.contains(want), "{what}: expected {want:?} in:\n{err}");
        println!(
            "rejected at apply ({what}): {}",
            err.lines()
                .find(|l| l.contains(want))
                .unwrap_or(want)
                .trim()
        );
    }
    ns.finish().await.expect("clean up");
}

/// A client pod with redis-cli (the Redis image, sleeping).
fn client_pod(name: &str, app: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {app}}}}}
spec:
  terminationGracePeriodSeconds: 0
  securityContext: {{runAsUser: 999, runAsGroup: 999, runAsNonRoot: true}}
  containers:
    - name: client
      image: localhost/agility/redis:7.0.15
      imagePullPolicy: IfNotPresent
      command: ["/bin/sleep", "3600"]
"#
    )
}

/// `PING` from inside `pod` to the instance's endpoint; Ok(reply) or Err(why).
async fn ping_from(ns: &TestNamespace, pod: &str, host: &str, pw: &str) -> Result<String, String> {
    let cmd = format!(
        "REDISCLI_AUTH='{pw}' /bin/busybox timeout 3 redis-cli --no-auth-warning -h {host} ping"
    );
    let out = ns
        .exec(pod, &["/bin/sh", "-c", &cmd])
        .await
        .map_err(|e| e.to_string())?;
    if out.exit_code == 0 && out.stdout.trim() == "PONG" {
        Ok(out.stdout.trim().to_owned())
    } else {
        Err(format!(
            "exit {}: {}{}",
            out.exit_code,
            out.stdout.trim(),
            out.stderr.trim()
        ))
    }
}

#[tokio::test]
async fn allowlist_admits_listed_pods_and_blocks_the_rest() {
    let ns = test_namespace("redis-allowlist").await;
    let name = "guarded";
    let yaml = format!(
        "apiVersion: redis.agility.dev/v1alpha1\nkind: RedisInstance\nmetadata: {{name: {name}}}\nspec:\n  edition: cache\n  resources: {{memory: 64Mi, cpu: 100m}}\n  allowlist:\n    sameNamespace: false\n    peers: [{{podSelector: {{matchLabels: {{app: allowed}}}}}}]\n"
    );
    ns.apply_yaml(&yaml).await.expect("apply RedisInstance");
    ns.apply_yaml(&client_pod("allowed", "allowed"))
        .await
        .expect("allowed pod");
    ns.apply_yaml(&client_pod("denied", "denied"))
        .await
        .expect("denied pod");
    wait_ready(&ns, name, Duration::from_secs(180)).await;
    ns.wait_pod_ready("allowed", Duration::from_secs(120))
        .await
        .expect("allowed pod Ready");
    ns.wait_pod_ready("denied", Duration::from_secs(120))
        .await
        .expect("denied pod Ready");
    let pw = password(&ns, name).await;
    let host = format!("{name}.{}.svc.cluster.local", ns.name());

    // The policy agent programs new pods a moment later, and until it has, traffic is not
    // filtered at all: first wait until the denied pod is refused (the policy is in force).
    let deadline = Instant::now() + Duration::from_secs(60);
    while ping_from(&ns, "denied", &host, &pw).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the allowlist NetworkPolicy was not enforced within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The allowed pod gets through.
    let deadline = Instant::now() + Duration::from_secs(30);
    let admitted = loop {
        match ping_from(&ns, "allowed", &host, &pw).await {
            Ok(_) => break Instant::now(),
            Err(e) if Instant::now() >= deadline => panic!("allowed pod cannot reach {host}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    };
    let _ = admitted;
    // The other pod, same namespace but not on the list, stays blocked.
    for _ in 0..3 {
        let r = ping_from(&ns, "denied", &host, &pw).await;
        assert!(
            r.is_err(),
            "a pod not on the allowlist reached Redis: {r:?}"
        );
    }
    println!("allowlist: pod app=allowed admitted, pod app=denied blocked (3 of 3 attempts)");

    // Adding the denied pod's label to the allowlist admits it.
    let widened = yaml.replace("[{podSelector: {matchLabels: {app: allowed}}}]", "[{podSelector: {matchLabels: {app: allowed}}}, {podSelector: {matchLabels: {app: denied}}}]");
    ns.apply_yaml(&widened).await.expect("widen the allowlist");
    let start = Instant::now();
    loop {
        match ping_from(&ns, "denied", &host, &pw).await {
            Ok(_) => break,
            Err(e) if start.elapsed() > Duration::from_secs(60) => {
                panic!("widened allowlist not effective: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
    println!(
        "allowlist widened: admitted after {:.2}s",
        start.elapsed().as_secs_f64()
    );
    ns.finish().await.expect("clean up");
}

#[tokio::test]
async fn cluster_edition_spreads_keys_over_every_shard_and_survives_a_master_loss() {
    let ns = test_namespace("redis-cluster").await;
    let name = "catalog";
    let yaml = format!(
        "apiVersion: redis.agility.dev/v1alpha1\nkind: RedisInstance\nmetadata: {{name: {name}}}\nspec:\n  edition: cluster\n  shards: 3\n  resources: {{memory: 64Mi, cpu: 100m, maxClients: 1000}}\n  allowlist: {{ipBlocks: {TEST_SOURCES}}}\n"
    );
    let t0 = Instant::now();
    ns.apply_yaml(&yaml).await.expect("apply cluster instance");
    let ready = wait_ready(&ns, name, Duration::from_secs(300)).await;
    println!(
        "cluster instance (3 shards x 2) apply -> Ready: {:.2}s",
        t0.elapsed().as_secs_f64()
    );
    let shards = ready.data["status"]["cluster"]["shards"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(shards.len(), 3, "{:?}", ready.data["status"]["cluster"]);
    assert!(
        shards
            .iter()
            .all(|s| s["master"].is_string() && s["slots"].is_string())
    );
    assert!(
        ready.data["status"]["cluster"]["proxy"]
            .as_str()
            .is_some_and(|p| p.contains("not available"))
    );

    let pw = password(&ns, name).await;
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")))
        .await
        .expect("list pods");
    let ips: Vec<String> = pods
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    let seeds: Vec<String> = ips.iter().map(|ip| format!("redis://{ip}:6379")).collect();
    let client = redis::cluster::ClusterClientBuilder::new(seeds)
        .password(pw.clone())
        .build()
        .expect("cluster client");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = loop {
        match client.get_async_connection().await {
            Ok(c) => break c,
            Err(e) if Instant::now() >= deadline => panic!("cluster connection: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    };
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("item:{i}"))
            .arg(i)
            .query_async(&mut conn)
            .await
            .expect("cluster SET");
    }
    for i in (0..300).step_by(37) {
        let v: i64 = redis::cmd("GET")
            .arg(format!("item:{i}"))
            .query_async(&mut conn)
            .await
            .expect("cluster GET");
        assert_eq!(v, i);
    }
    // Every shard master holds some of the keys.
    let mut sizes = Vec::new();
    for s in &shards {
        let pod = s["master"].as_str().expect("master pod");
        let ip = pods
            .items
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(pod))
            .and_then(|p| p.status.as_ref()?.pod_ip.clone())
            .expect("master IP");
        let mut c = connect(format!("{ip}:6379").parse().expect("addr"), &pw)
            .await
            .expect("connect to a shard master");
        let n: i64 = redis::cmd("DBSIZE")
            .query_async(&mut c)
            .await
            .expect("DBSIZE");
        sizes.push(n);
    }
    println!("keys per shard master: {sizes:?}");
    assert!(
        sizes.iter().all(|n| *n > 0),
        "keys spread over every shard: {sizes:?}"
    );
    assert_eq!(sizes.iter().sum::<i64>(), 300);

    // Lose one shard's master: Redis Cluster promotes its replica; the operator re-forms the shard.
    let victim = shards[1]["master"].as_str().expect("master").to_owned();
    let (lo, hi) = (5461, 10921); // shard 1 of 3
    let mut shard1_key = None;
    for i in 0..300 {
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(format!("item:{i}"))
            .query_async(&mut conn)
            .await
            .expect("KEYSLOT");
        if (lo..=hi).contains(&slot) {
            shard1_key = Some(format!("item:{i}"));
            break;
        }
    }
    let shard1_key = shard1_key.expect("a key of shard 1");
    faults::delete_pod(&ns, &victim, Some(0))
        .await
        .expect("delete a shard master");
    let fault = Instant::now();
    let promoted = wait::wait_for(
        &redis_api(&ns),
        name,
        Duration::from_secs(120),
        "shard 1 has a new master",
        |o: &DynamicObject| {
            let m = &o.data["status"]["cluster"]["shards"][1]["master"];
            m.is_string() && m != victim.as_str()
        },
    )
    .await
    .expect("Redis Cluster promotes the replica");
    println!(
        "cluster shard master deleted -> new master {} in status after {:.2}s",
        promoted.data["status"]["cluster"]["shards"][1]["master"],
        fault.elapsed().as_secs_f64()
    );
    let deadline = fault + Duration::from_secs(60);
    loop {
        let r: redis::RedisResult<()> = redis::cmd("SET")
            .arg(&shard1_key)
            .arg("after")
            .query_async(&mut conn)
            .await;
        if r.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no write accepted on shard 1 within 60 s: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "cluster shard master deleted -> write accepted on its shard: {:.2}s",
        fault.elapsed().as_secs_f64()
    );
    let healed = wait::wait_for(
        &redis_api(&ns),
        name,
        Duration::from_secs(180),
        "cluster re-formed",
        |o: &DynamicObject| {
            o.data["status"]["phase"] == "Running"
                && o.data["status"]["cluster"]["state"] == "ok"
                && o.data["status"]["nodes"].as_array().is_some_and(|a| {
                    a.len() == 6
                        && a.iter().filter(|n| n["role"] == "replica").count() == 3
                        && a.iter()
                            .any(|n| n["pod"] == victim.as_str() && n["role"] == "replica")
                })
        },
    )
    .await
    .expect("the replaced pod rejoins as a replica");
    println!(
        "cluster re-formed after the loss: {:?}",
        healed.data["status"]["cluster"]["shards"]
    );
    // The shard's data survived the loss (it lives on the promoted replica).
    let mut survivors = 0;
    for i in 0..300 {
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("item:{i}"))
            .query_async(&mut conn)
            .await
            .expect("GET after failover");
        survivors += usize::from(v.is_some());
    }
    assert_eq!(survivors, 300, "every key survives a shard master loss");
    ns.finish().await.expect("clean up");
}

#[tokio::test]
async fn password_rotation_keeps_clients_working_then_retires_the_old_password() {
    let ns = test_namespace("redis-rotation").await;
    let name = "billing";
    let (old, new) = ("Old-Passw0rd-1234", "New-Passw0rd-5678");
    let secret = |pw: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: app-password}}\nstringData: {{password: {pw}}}\n"
        )
    };
    ns.apply_yaml(&secret(old)).await.expect("password Secret");
    let yaml = instance_yaml(name, "standard") + "  passwordSecretRef: {name: app-password}\n";
    ns.apply_yaml(&yaml).await.expect("apply RedisInstance");
    wait_ready(&ns, name, Duration::from_secs(180)).await;
    let mut before = connect_eventually(&ns, name, old).await;
    let _: () = redis::cmd("SET")
        .arg("invoice")
        .arg("42")
        .query_async(&mut before)
        .await
        .expect("SET with the user's password");

    ns.apply_yaml(&secret(new))
        .await
        .expect("rotate the password");
    let rotated = Instant::now();
    // The new password is accepted soon, while the old one still works: no client is cut off.
    let mut after = loop {
        if let Ok(c) = connect(endpoint(&ns, name).await, new).await {
            break c;
        }
        assert!(
            rotated.elapsed() < Duration::from_secs(60),
            "new password not accepted within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    println!(
        "password rotation: new password accepted after {:.2}s",
        rotated.elapsed().as_secs_f64()
    );
    let v: String = redis::cmd("GET")
        .arg("invoice")
        .query_async(&mut after)
        .await
        .expect("GET with the new password");
    assert_eq!(v, "42");
    let _: () = redis::cmd("SET")
        .arg("still")
        .arg("ok")
        .query_async(&mut before)
        .await
        .expect("the old connection keeps working");
    assert!(
        connect(endpoint(&ns, name).await, old).await.is_ok(),
        "the old password stays valid during the grace period"
    );
    // After the grace period the old password is gone from every node.
    let deadline = rotated + Duration::from_secs(240);
    loop {
        if connect(endpoint(&ns, name).await, old).await.is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old password still accepted after 240 s"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "password rotation: old password refused after {:.0}s (grace period 120 s)",
        rotated.elapsed().as_secs_f64()
    );
    let mut again = connect(endpoint(&ns, name).await, new)
        .await
        .expect("new password works");
    let v: String = redis::cmd("GET")
        .arg("still")
        .query_async(&mut again)
        .await
        .expect("GET");
    assert_eq!(v, "ok");
    ns.finish().await.expect("clean up");
}

fn stub_crd(plural: &str, kind: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.monitoring.coreos.com}}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {{plural: {plural}, kind: {kind}}}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}
"#
    )
}

fn kubectl_ok(args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = std::process::Command::new(kubectl())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn restart_operator() {
    kubectl_ok(
        &[
            "-n",
            "agility-system",
            "rollout",
            "restart",
            "deployment/agility-operator",
        ],
        None,
    );
    kubectl_ok(
        &[
            "-n",
            "agility-system",
            "rollout",
            "status",
            "deployment/agility-operator",
            "--timeout=180s",
        ],
        None,
    );
}

fn monitoring_is(o: &DynamicObject, status: &str, reason: &str) -> bool {
    o.data["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Monitoring" && c["status"] == status && c["reason"] == reason)
    })
}

#[tokio::test]
async fn monitoring_objects_follow_the_prometheus_operator_crds() {
    let ns = test_namespace("redis-monitoring").await;
    let name = "watched";
    let yaml = instance_yaml(name, "cache")
        + "  monitoring: {serviceMonitor: true, prometheusRule: true}\n";
    ns.apply_yaml(&yaml).await.expect("apply RedisInstance");
    // Without the Prometheus Operator CRDs the instance still runs and says why there is no
    // ServiceMonitor.
    wait_ready(&ns, name, Duration::from_secs(180)).await;
    wait::wait_for(
        &redis_api(&ns),
        name,
        Duration::from_secs(60),
        "Monitoring=False",
        |o: &DynamicObject| monitoring_is(o, "False", "CRDNotInstalled"),
    )
    .await
    .expect("Monitoring condition reports the missing CRDs");

    let crds = stub_crd("servicemonitors", "ServiceMonitor")
        + "---\n"
        + &stub_crd("prometheusrules", "PrometheusRule");
    kubectl_ok(&["apply", "-f", "-"], Some(&crds));
    kubectl_ok(
        &[
            "wait",
            "--for=condition=Established",
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
        ],
        None,
    );
    restart_operator();
    wait::wait_for(
        &redis_api(&ns),
        name,
        Duration::from_secs(120),
        "Monitoring=True",
        |o: &DynamicObject| monitoring_is(o, "True", "Configured"),
    )
    .await
    .expect("Monitoring configured once the CRDs exist");
    let gvk = |kind: &str| GroupVersionKind::gvk("monitoring.coreos.com", "v1", kind);
    let sm: Api<DynamicObject> = Api::namespaced_with(
        ns.client().clone(),
        ns.name(),
        &ApiResource::from_gvk(&gvk("ServiceMonitor")),
    );
    let pr: Api<DynamicObject> = Api::namespaced_with(
        ns.client().clone(),
        ns.name(),
        &ApiResource::from_gvk(&gvk("PrometheusRule")),
    );
    let sm = sm.get(name).await.expect("ServiceMonitor");
    assert_eq!(sm.data["spec"]["endpoints"][0]["port"], "metrics");
    let pr = pr.get(name).await.expect("PrometheusRule");
    let alerts: Vec<String> = pr.data["spec"]["groups"][0]["rules"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["alert"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    println!("PrometheusRule alerts for a cache instance: {alerts:?}");
    assert!(
        alerts.contains(&"RedisInstanceDown".to_owned())
            && alerts.contains(&"RedisMemoryHigh".to_owned())
    );
    assert!(
        pr.metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|r| r.kind == "RedisInstance"))
    );

    ns.finish().await.expect("clean up");
    kubectl_ok(
        &[
            "delete",
            "crd",
            "servicemonitors.monitoring.coreos.com",
            "prometheusrules.monitoring.coreos.com",
        ],
        None,
    );
    restart_operator();
}

/// A verified TLS connection: dialled at `addr`, the server certificate checked against `ca_pem`
/// for `server_name` (what a client resolving the Service name would check).
async fn tls_connect(
    addr: SocketAddr,
    server_name: &str,
    ca_pem: &str,
    password: &str,
) -> Result<redis::aio::MultiplexedConnection, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(server_name.to_owned())
        .map_err(|e| e.to_string())?;
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let info = redis::RedisConnectionInfo::default().set_password(password);
        let cfg = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(Duration::from_millis(1000)));
        let (conn, driver) = redis::aio::MultiplexedConnection::new_with_config(&info, tls, cfg)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(driver);
        Ok(conn)
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .map_err(|_| "timed out".to_owned())?
}

fn secret_text(s: &Secret, key: &str) -> String {
    let d = s.data.as_ref().expect("Secret data");
    String::from_utf8(d[key].0.clone()).expect("utf8")
}

#[tokio::test]
async fn tls_instance_speaks_only_verified_tls_and_fails_over() {
    let ns = test_namespace("redis-tls").await;
    let name = "secure";
    let t0 = Instant::now();
    let yaml = instance_yaml(name, "standard") + "  tls: {enabled: true}\n";
    ns.apply_yaml(&yaml).await.expect("apply RedisInstance");
    // Running means both nodes Ready: the replica synced from the master over TLS.
    wait_ready(&ns, name, Duration::from_secs(180)).await;
    println!(
        "TLS standard instance apply -> Ready: {:.2}s",
        t0.elapsed().as_secs_f64()
    );

    let conn_secret = ns
        .api::<Secret>()
        .get(&format!("{name}-connection"))
        .await
        .expect("connection Secret");
    assert_eq!(secret_text(&conn_secret, "tls"), "true");
    assert!(secret_text(&conn_secret, "uri").starts_with("rediss://"));
    let ca = secret_text(&conn_secret, "ca.crt");
    let pw = secret_text(&conn_secret, "password");
    let host = format!("{name}.{}.svc", ns.name());

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = loop {
        match tls_connect(endpoint(&ns, name).await, &host, &ca, &pw).await {
            Ok(c) => break c,
            Err(e) if Instant::now() >= deadline => panic!("no TLS connection to {host}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert!(
        acked_write(&mut conn, "over-tls")
            .await
            .expect("SET + WAIT over TLS"),
        "the replica acknowledges over TLS replication"
    );

    // Plaintext is closed, and a name the certificate does not carry is refused by the client.
    let addr = endpoint(&ns, name).await;
    let plain = match connect(addr, &pw).await {
        Ok(mut c) => redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(plain.is_err(), "plaintext must not be served: {plain:?}");
    let wrong = tls_connect(addr, "redis.example.com", &ca, &pw).await;
    assert!(
        wrong.as_ref().is_err_and(|e| e.contains("TLS handshake")),
        "a wrong server name must fail verification"
    );

    // The supervisor probes over TLS too: losing the master fails over as with plaintext.
    let master = master_pod(&ns, name).await;
    let old_ip = pod_ip(&ns, &master).await;
    let since = Instant::now();
    ns.api::<Pod>()
        .delete(&master, &Default::default())
        .await
        .expect("delete the master pod");
    let took = loop {
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "no failover over TLS within 60 s"
        );
        if let Ok(mut c) = tls_connect(endpoint(&ns, name).await, &host, &ca, &pw).await {
            let ok: redis::RedisResult<()> = redis::cmd("SET")
                .arg("after")
                .arg("v")
                .query_async(&mut c)
                .await;
            let ip: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
                .arg("GET")
                .arg("replica-announce-ip")
                .query_async(&mut c)
                .await;
            if ok.is_ok() && ip.is_ok_and(|v| v.get(1).is_some_and(|ip| *ip != old_ip)) {
                break since.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "TLS master pod deleted -> first accepted write on the new master: {:.2}s",
        took.as_secs_f64()
    );
    let mut conn = tls_connect(endpoint(&ns, name).await, &host, &ca, &pw)
        .await
        .expect("TLS connection after failover");
    let v: Option<String> = redis::cmd("GET")
        .arg("over-tls")
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(v.as_deref(), Some("v"), "the acknowledged write survived");
    ns.finish().await.expect("clean up");
}
