//! Object storage on the real node with a real S3 SDK (boto3, `e2e/oss/s3_client.py`): an
//! ObjectStore and Buckets applied as YAML, keys read from the connection Secret, CRUD,
//! read-after-write, multipart, presigned GET, SSE refused, CORS preflight, website with error
//! document, quota, anonymous access per ACL, Referer rules, a read-only second application,
//! Retain keeping the data (adopted again), bad specs refused at apply, and a 3-node store serving
//! with one node frozen. Prints the numbers.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use agility_e2e::{Reach, TestEnv, TestNamespace, faults, wait};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use serde_json::Value;
use support::{boto3_python, repo};

fn api(ns: &TestNamespace, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("oss.agility.dev", "v1alpha1", kind);
    Api::namespaced_with(ns.client().clone(), ns.name(), &ApiResource::from_gvk(&gvk))
}

/// The S3 client of one bucket: endpoint, region, bucket and keys.
#[derive(Clone)]
struct S3 {
    python: String,
    env: Vec<(String, String)>,
}

impl S3 {
    fn with(&self, k: &str, v: &str) -> S3 {
        let mut s = self.clone();
        s.env.retain(|(key, _)| key != k);
        s.env.push((k.to_owned(), v.to_owned()));
        s
    }

    fn attempt(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.python)
            .arg(repo().join("e2e/oss/s3_client.py"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run the boto3 client")
    }

    /// Runs a phase, retrying for `within` (settings reach Garage and the gateways through
    /// reconciles and watches); returns its result.
    async fn run(&self, args: &[&str], within: Duration) -> Value {
        let deadline = Instant::now() + within;
        let out = loop {
            let out = self.attempt(args);
            if out.status.success() || Instant::now() >= deadline {
                break out;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "boto3 phase {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let last = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .expect("a result line");
        serde_json::from_str::<Value>(last).expect("result JSON")["result"].clone()
    }
}

fn secret_value(s: &Secret, key: &str) -> String {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_else(|| panic!("Secret has no {key}"))
}

async fn ready(ns: &TestNamespace, kind: &str, name: &str, within: Duration) -> DynamicObject {
    wait::wait_for(
        &api(ns, kind),
        name,
        within,
        &format!("{kind} {name} Ready"),
        |o: &DynamicObject| wait::condition_is(o, "Ready", "True"),
    )
    .await
    .unwrap_or_else(|e| panic!("{kind} {name} Ready: {e}"))
}

async fn address(ns: &TestNamespace, svc: &str, route_port: u16, pod_port: u16) -> SocketAddr {
    let port = match ns.reach() {
        Reach::Route { .. } => route_port,
        Reach::PortForward => pod_port,
    };
    ns.reach()
        .service(ns.client(), ns.name(), svc, port)
        .await
        .expect("service address")
}

async fn store(ns: &TestNamespace, name: &str, nodes: u32, rf: u32) -> Duration {
    let t0 = Instant::now();
    let yaml = format!(
        "apiVersion: oss.agility.dev/v1alpha1\nkind: ObjectStore\nmetadata: {{name: {name}}}\nspec:\n  nodes: {nodes}\n  replicationFactor: {rf}\n  gatewayReplicas: 1\n  storage: {{size: 1Gi, volumePermissions: true}}\n  resources: {{requests: {{cpu: 20m, memory: 48Mi}}, limits: {{memory: 512Mi}}}}\n"
    );
    ns.apply_yaml(&yaml).await.expect("apply ObjectStore");
    ready(ns, "ObjectStore", name, Duration::from_secs(240)).await;
    t0.elapsed()
}

/// A Bucket on `store` and the client of its connection Secret.
async fn bucket(
    ns: &TestNamespace,
    store: &str,
    name: &str,
    extra: &str,
    python: &str,
) -> (S3, Duration) {
    let t0 = Instant::now();
    let yaml = format!(
        "apiVersion: oss.agility.dev/v1alpha1\nkind: Bucket\nmetadata: {{name: {name}}}\nspec:\n  store: {{name: {store}}}\n{extra}"
    );
    ns.apply_yaml(&yaml).await.expect("apply Bucket");
    let b = ready(ns, "Bucket", name, Duration::from_secs(120)).await;
    let took = t0.elapsed();
    let secret_name = b.data["status"]["secretName"]
        .as_str()
        .expect("status.secretName")
        .to_owned();
    let s: Secret = Api::namespaced(ns.client().clone(), ns.name())
        .get(&secret_name)
        .await
        .expect("connection Secret");
    for k in [
        "endpoint",
        "region",
        "bucket",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "COSI_S3_BUCKET",
    ] {
        secret_value(&s, k);
    }
    let gateway = address(ns, store, 80, 8080).await;
    let env = vec![
        ("S3_ENDPOINT".to_owned(), url(gateway)),
        ("S3_REGION".to_owned(), secret_value(&s, "region")),
        ("S3_BUCKET".to_owned(), secret_value(&s, "bucket")),
        (
            "AWS_ACCESS_KEY_ID".to_owned(),
            secret_value(&s, "AWS_ACCESS_KEY_ID"),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            secret_value(&s, "AWS_SECRET_ACCESS_KEY"),
        ),
    ];
    (
        S3 {
            python: python.to_owned(),
            env,
        },
        took,
    )
}

#[tokio::test]
async fn buckets_serve_a_real_s3_sdk_with_every_setting_enforced() {
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    let ns = env.namespace("oss").await.expect("test namespace");
    let python = boto3_python();
    let took = store(&ns, "files", 1, 1).await;
    println!(
        "ObjectStore (1 node) apply -> Ready: {:.2}s",
        took.as_secs_f64()
    );

    let spec = "  website: {indexDocument: index.html, errorDocument: 404.html}\n  cors:\n    - {allowedOrigins: [\"https://app.example.com\"], allowedMethods: [GET, PUT], allowedHeaders: [\"*\"], maxAgeSeconds: 300}\n  quota: {maxObjects: 60}\n  lifecycle:\n    - {id: tmp, prefix: tmp/, expiration: {days: 1}}\n";
    let (s3, took) = bucket(&ns, "files", "docs", spec, &python).await;
    println!(
        "Bucket apply -> Ready with keys: {:.2}s",
        took.as_secs_f64()
    );
    let crud = s3.run(&["crud"], Duration::from_secs(20)).await;
    println!("crud: {crud}");
    let cors = s3.run(&["cors"], Duration::from_secs(20)).await;
    println!("cors: {cors}");
    let web = address(&ns, "files-web", 80, 8081).await;
    let site = s3
        .with("WEB_ENDPOINT", &url(web))
        .with(
            "WEB_HOST",
            &format!("{}.web.files.{}.svc", s3_bucket(&s3), ns.name()),
        )
        .run(&["website"], Duration::from_secs(20))
        .await;
    println!("website: {site}");
    // Private: anonymous reads are refused.
    s3.run(
        &["anonymous", "GET", "a/1.txt", "403"],
        Duration::from_secs(5),
    )
    .await;

    // A read-only second application.
    ns.apply_yaml("apiVersion: oss.agility.dev/v1alpha1\nkind: BucketAccess\nmetadata: {name: reader}\nspec: {bucket: docs, access: ReadOnly}\n")
        .await
        .expect("apply BucketAccess");
    let access = ready(&ns, "BucketAccess", "reader", Duration::from_secs(60)).await;
    let ro: Secret = Api::namespaced(ns.client().clone(), ns.name())
        .get(
            access.data["status"]["secretName"]
                .as_str()
                .expect("secretName"),
        )
        .await
        .expect("reader Secret");
    assert_eq!(secret_value(&ro, "access"), "ReadOnly");
    let ro_client = s3
        .with("RO_KEY_ID", &secret_value(&ro, "AWS_ACCESS_KEY_ID"))
        .with("RO_SECRET", &secret_value(&ro, "AWS_SECRET_ACCESS_KEY"));
    println!(
        "read-only: {}",
        ro_client.run(&["readonly"], Duration::from_secs(20)).await
    );

    // public-read with Referer rules; then public-read-write.
    let patch = |acl: &str| {
        format!(
            "apiVersion: oss.agility.dev/v1alpha1\nkind: Bucket\nmetadata: {{name: docs}}\nspec:\n  store: {{name: files}}\n  acl: {acl}\n  referer: {{allowed: [\"https://*.example.com/*\"], allowEmpty: false}}\n{spec}"
        )
    };
    ns.apply_yaml(&patch("public-read"))
        .await
        .expect("public-read");
    let t0 = Instant::now();
    s3.run(
        &[
            "anonymous",
            "GET",
            "a/1.txt",
            "200",
            "https://shop.example.com/page",
        ],
        Duration::from_secs(30),
    )
    .await;
    println!(
        "acl private -> public-read effective: {:.2}s",
        t0.elapsed().as_secs_f64()
    );
    s3.run(
        &[
            "anonymous",
            "GET",
            "a/1.txt",
            "403",
            "https://leech.example.org/",
        ],
        Duration::from_secs(5),
    )
    .await;
    s3.run(
        &["anonymous", "GET", "a/1.txt", "403"],
        Duration::from_secs(5),
    )
    .await;
    s3.run(
        &[
            "anonymous",
            "PUT",
            "anon.txt",
            "403",
            "https://shop.example.com/",
        ],
        Duration::from_secs(5),
    )
    .await;
    ns.apply_yaml(&patch("public-read-write"))
        .await
        .expect("public-read-write");
    s3.run(
        &[
            "anonymous",
            "PUT",
            "anon.txt",
            "200",
            "https://shop.example.com/",
        ],
        Duration::from_secs(30),
    )
    .await;

    // Quota: 60 objects; the phase writes until Garage refuses.
    let q = s3.run(&["quota", "60"], Duration::from_secs(5)).await;
    println!("quota: {q}");
    assert!(q["written"].as_u64().unwrap_or(0) < 60, "{q}");

    // Bad specs fail at apply with a clear message.
    for (bad, expect) in [
        ("  bucketName: Bad_Name\n", "should match"),
        (
            "  cors: [{allowedOrigins: [\"*\"], allowedMethods: [PATCH]}]\n",
            "Unsupported value: \"PATCH\"",
        ),
        ("  bucketName: other-name\n", "immutable"),
    ] {
        let yaml = format!(
            "apiVersion: oss.agility.dev/v1alpha1\nkind: Bucket\nmetadata: {{name: docs}}\nspec:\n  store: {{name: files}}\n{bad}"
        );
        let err = ns.apply_yaml(&yaml).await.expect_err("bad spec refused");
        assert!(err.to_string().contains(expect), "{err}");
    }
    let rules: String = (0..1001)
        .map(|i| format!("    - {{prefix: p{i}/, expiration: {{days: 1}}}}\n"))
        .collect();
    let err = ns
        .apply_yaml(&format!("apiVersion: oss.agility.dev/v1alpha1\nkind: Bucket\nmetadata: {{name: many}}\nspec:\n  lifecycle:\n{rules}"))
        .await
        .expect_err("1,001 lifecycle rules refused");
    assert!(err.to_string().contains("at most 1000"), "{err}");

    // Retain: deleting the resource keeps the bucket and its objects; a new Bucket of the same
    // namespace with that name adopts it, with new keys.
    let name = s3_bucket(&s3);
    api(&ns, "Bucket")
        .delete("docs", &DeleteParams::default())
        .await
        .expect("delete Bucket");
    wait::wait_deleted(&api(&ns, "Bucket"), "docs", Duration::from_secs(60))
        .await
        .expect("Bucket gone");
    let (again, _) = bucket(
        &ns,
        "files",
        "docs2",
        &format!("  bucketName: {name}\n"),
        &python,
    )
    .await;
    assert_ne!(
        env_of(&again, "AWS_ACCESS_KEY_ID"),
        env_of(&s3, "AWS_ACCESS_KEY_ID")
    );
    again
        .run(
            &["anonymous", "GET", "a/1.txt", "403"],
            Duration::from_secs(5),
        )
        .await;
    let kept = again
        .run(&["get", "a/1.txt", "a/1.txt"], Duration::from_secs(20))
        .await;
    println!("retained, then adopted by a new Bucket: {kept}");
    ns.finish().await.expect("clean up the namespace");
}

/// `http://ip[:port]`: without a default port, as browsers and urllib send Host (a presigned
/// URL signs the Host header, so `:80` in the URL and not in Host would not verify).
fn url(addr: SocketAddr) -> String {
    if addr.port() == 80 {
        format!("http://{}", addr.ip())
    } else {
        format!("http://{addr}")
    }
}

fn env_of(s: &S3, key: &str) -> String {
    s.env
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn s3_bucket(s: &S3) -> String {
    env_of(s, "S3_BUCKET")
}

#[tokio::test]
async fn three_node_store_serves_with_one_node_frozen() {
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    let ns = env.namespace("oss-ha").await.expect("test namespace");
    let python = boto3_python();
    let took = store(&ns, "ha", 3, 3).await;
    println!(
        "ObjectStore (3 nodes, 3 copies) apply -> Ready: {:.2}s",
        took.as_secs_f64()
    );
    let (s3, _) = bucket(&ns, "ha", "data", "", &python).await;
    let before = s3.run(&["survive", "3"], Duration::from_secs(20)).await;
    let pods: Api<Pod> = Api::namespaced(ns.client().clone(), ns.name());
    let victim = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=garage"))
        .await
        .expect("garage pods")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .max()
        .expect("a garage pod");
    faults::freeze(&ns, &victim)
        .await
        .expect("freeze a Garage node");
    // Garage's peers take a while to give up on the frozen node (its ping timeout): until then
    // some writes stall (seen: up to ~20 s) and the gateway answers retryable 503s the SDK rides
    // over. Every operation must succeed throughout; once the node is written off, the store
    // must be back at full pace (≥ 10 ops in 5 s, none slower than 1 s) with that node still
    // frozen. Garage writes a silent peer off only after 5 failed pings 15 s apart (constants of
    // garage_net 2.5), so that takes ~90 s here; it is measured and printed, bounded at 180 s.
    let detecting = s3.run(&["survive", "20"], Duration::from_secs(5)).await;
    println!("3-node store, {victim} frozen: before {before}, first 20 s {detecting}");
    let frozen_at = Instant::now();
    let mut full_pace = None;
    while frozen_at.elapsed() < Duration::from_secs(180) {
        let window = s3.run(&["survive", "5"], Duration::from_secs(5)).await;
        println!("  +{:.0}s: {window}", frozen_at.elapsed().as_secs_f64());
        let ops = window["ops"].as_u64().unwrap_or(0);
        let slowest = window["slowest_seconds"].as_f64().unwrap_or(f64::MAX);
        if ops >= 10 && slowest < 1.0 {
            full_pace = Some(frozen_at.elapsed());
            break;
        }
    }
    faults::thaw(&ns, &victim).await.expect("thaw");
    let full_pace =
        full_pace.expect("the store back at full pace within 180 s with one node frozen");
    println!(
        "3-node store, {victim} frozen: full pace again {:.0}s after the first 20 s",
        full_pace.as_secs_f64()
    );
    assert!(detecting["ops"].as_u64().unwrap_or(0) >= 1, "{detecting}");
    ns.finish().await.expect("clean up the namespace");
}
