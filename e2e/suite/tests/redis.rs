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

/// The test host and the node's bridge: where the test's connections come from.
const TEST_SOURCES: &str = r#"["10.250.0.0/24", "10.244.0.1/32"]"#;

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
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    let ns = env
        .namespace("redis-standard")
        .await
        .expect("test namespace");
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

    // 3. Resizing (memory 64Mi -> 96Mi) rolls the pods replicas first and keeps the data.
    let resized = instance_yaml(name, "standard").replace("memory: 64Mi", "memory: 96Mi");
    ns.apply_yaml(&resized).await.expect("resize");
    wait::wait_for(
        &ns.api::<k8s_openapi::api::apps::v1::StatefulSet>(),
        name,
        Duration::from_secs(240),
        "rolled out",
        |s: &k8s_openapi::api::apps::v1::StatefulSet| {
            s.status.as_ref().is_some_and(|st| {
                st.updated_replicas == Some(2)
                    && st.ready_replicas == Some(2)
                    && st.current_revision == st.update_revision
            })
        },
    )
    .await
    .expect("resize rolls out");
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

fn kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| {
        format!(
            "{}/.cache/agility/kubernetes-v1.34.4/bin/kubectl",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

/// `kubectl apply` of `yaml`; returns (success, stderr).
fn kubectl_apply(ns: &str, yaml: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(kubectl())
        .args(["apply", "-n", ns, "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write yaml");
    let out = child.wait_with_output().expect("kubectl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn cache_instance_serves_and_bad_specs_are_rejected_at_apply() {
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    let ns = env.namespace("redis-cache").await.expect("test namespace");
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
