//! What the e2e tests share: the redis workload and a real Redis client, the repository root, and
//! the Python with boto3 that `hack/install-tools.sh` makes.

#![allow(dead_code)] // each test crate uses a different part of this module

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agility_e2e::{TestNamespace, wait};
use k8s_openapi::api::core::v1::Pod;

/// Built and imported by `e2e/images` (Debian's redis-server, plus busybox for exec).
pub const IMAGE: &str = "localhost/agility/redis:7.0.15";

/// No persistence: the smoke tests need a data path, not durability.
pub const REDIS_ARGS: &str = r#"["--protected-mode", "no", "--save", "", "--appendonly", "no"]"#;

/// A one-replica redis Deployment behind a ClusterIP Service, as one multi-document YAML stream.
pub fn redis_yaml() -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: redis
spec:
  replicas: 1
  selector:
    matchLabels: {{app: redis}}
  template:
    metadata:
      labels: {{app: redis}}
    spec:
      terminationGracePeriodSeconds: 2
      securityContext: {{runAsNonRoot: true, runAsUser: 999, runAsGroup: 999}}
      containers:
      - name: redis
        image: {IMAGE}
        imagePullPolicy: Never
        args: {REDIS_ARGS}
        ports: [{{name: redis, containerPort: 6379}}]
        readinessProbe: {{tcpSocket: {{port: 6379}}, periodSeconds: 1}}
        resources:
          requests: {{cpu: 100m, memory: 64Mi}}
          limits: {{cpu: 500m, memory: 128Mi}}
        securityContext: {{allowPrivilegeEscalation: false, readOnlyRootFilesystem: true}}
---
apiVersion: v1
kind: Service
metadata:
  name: redis
spec:
  selector: {{app: redis}}
  ports: [{{name: redis, port: 6379, targetPort: redis}}]
"#
    )
}

/// A bare redis pod (no controller), e.g. for start latency.
pub fn redis_pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "labels": { "app": "redis-bare" } },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "securityContext": { "runAsNonRoot": true, "runAsUser": 999, "runAsGroup": 999 },
            "containers": [{
                "name": "redis",
                "image": IMAGE,
                "imagePullPolicy": "Never",
                "args": ["--protected-mode", "no", "--save", "", "--appendonly", "no"],
                "readinessProbe": { "tcpSocket": { "port": 6379 }, "periodSeconds": 1 }
            }]
        }
    }))
    .expect("a valid Pod")
}

/// Applies the redis Deployment + Service and waits until it serves.
pub async fn deploy_redis(ns: &TestNamespace) {
    let applied = ns.apply_yaml(&redis_yaml()).await.expect("apply redis");
    assert_eq!(applied.len(), 2, "a Deployment and a Service");
    ns.wait_deployment_available("redis", Duration::from_secs(120))
        .await
        .expect("redis available");
}

/// The redis Deployment's single live pod.
pub async fn live_redis_pod(ns: &TestNamespace) -> Pod {
    let pods = wait::wait_for_list(
        &ns.api::<Pod>(),
        "app=redis",
        Duration::from_secs(60),
        "exactly one live redis pod",
        |pods: &[Pod]| {
            pods.iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .count()
                == 1
        },
    )
    .await
    .expect("one redis pod");
    pods.into_iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .expect("a live pod")
}

/// A Redis client connection with short, explicit timeouts (a frozen or cut-off server must show
/// up as an error quickly).
async fn connect(addr: SocketAddr) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())
}

/// SET then GET through a new connection to `addr`; any failure as text.
pub async fn set_get(addr: SocketAddr, key: &str, value: &str) -> Result<String, String> {
    let attempt = async {
        let mut conn = connect(addr).await?;
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
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .map_err(|_| "timed out after 5s".to_string())?
}

/// Retries [`set_get`] until it works; panics with the last error after `within`.
pub async fn eventually_set_get(addr: SocketAddr, key: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        match set_get(addr, key, "v").await {
            Ok(v) => {
                assert_eq!(v, "v", "GET returns what SET stored");
                return start.elapsed();
            }
            Err(e) if start.elapsed() >= within => {
                panic!("SET/GET via {addr} still failing after {within:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Retries [`set_get`] until it fails; panics if it still works after `within`. Returns how long
/// it took and the error the client saw.
pub async fn eventually_fails(addr: SocketAddr, within: Duration) -> (Duration, String) {
    let start = Instant::now();
    loop {
        match set_get(addr, "probe", "v").await {
            Err(e) => return (start.elapsed(), e),
            Ok(_) if start.elapsed() >= within => {
                panic!("SET/GET via {addr} still works {within:?} after the fault")
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The repository root.
pub fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python of the pinned boto3 venv (`AGILITY_KMS_PYTHON`, else what install-tools prints).
pub fn boto3_python() -> String {
    std::env::var("AGILITY_KMS_PYTHON").unwrap_or_else(|_| {
        let out = std::process::Command::new("hack/install-tools.sh")
            .current_dir(repo())
            .output()
            .expect("hack/install-tools.sh");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("python-kms ").map(str::to_owned))
            .expect("install-tools prints the boto3 python")
    })
}

/// The kubectl the harness builds (`KUBECTL` overrides it).
pub fn kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| {
        format!(
            "{}/.cache/agility/kubernetes-v1.34.4/bin/kubectl",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

/// `kubectl apply` of `yaml` in `ns` (so admission runs as for a user); returns (success, stderr).
pub fn kubectl_apply(ns: &str, yaml: &str) -> (bool, String) {
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
