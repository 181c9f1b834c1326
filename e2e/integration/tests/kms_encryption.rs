//! Secrets encrypted at rest by Agility's KMS: a second kube-apiserver on the tier-1 etcd (its own
//! prefix) with an EncryptionConfiguration naming the KMS v2 provider on a unix socket; the
//! provider calls the real KMS server over TLS. Shows that etcd holds only ciphertext (read
//! straight from etcd), that the Secret reads back, and that restarting the provider does not
//! break reads (the API server keeps the decrypted DEK seed).
//!
//! The KMS here runs in this process, not in the cluster it encrypts: an API server whose
//! Secrets depend on a KMS running on that same API server could not restart while the KMS is
//! down (docs/kms.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agility_kms::authz::Grant;
use agility_kms::cipher::Material;
use agility_kms::crd::KeyState;
use agility_kms::service::Service;
use agility_kms::testing;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio_util::sync::CancellationToken;

const AKID: &str = "AKIAAPISERVERIT001";
const SECRET: &str = "apiserver-it-secret-apiserver-it-secret";
const PLAINTEXT: &str = "s3cr3t-value-that-must-not-be-in-etcd";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Kills the extra API server when the test ends, however it ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kms_service(key_id: uuid::Uuid) -> Arc<Service> {
    let key = testing::key(
        "kube-system",
        "apiserver",
        "alias/apiserver",
        key_id,
        Material::generate(),
        KeyState::Enabled,
    );
    let grant = Grant {
        keys: Some(["alias/apiserver".to_owned()].into()),
        ..testing::grant("kube-system")
    };
    testing::service(vec![key], (AKID, SECRET), grant)
}

async fn start_provider(socket: &Path, addr: std::net::SocketAddr, ca: &str) -> CancellationToken {
    testing::provider_on_socket(socket, addr, ca, "alias/apiserver", (AKID, SECRET)).await
}

/// One key straight from etcd, with etcdctl (built by `e2e/cluster/build-components.sh`).
fn etcd_get(port: u16, key: &str) -> Vec<u8> {
    let etcdctl = env_or(
        "AGILITY_ETCDCTL",
        &format!(
            "{}/.cache/agility/etcdctl-v3.6.4/bin/etcdctl",
            env_or("HOME", "/root")
        ),
    );
    let out = Command::new(&etcdctl)
        .args([
            "--endpoints",
            &format!("http://127.0.0.1:{port}"),
            "get",
            key,
            "--print-value-only",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{etcdctl}: {e}"));
    assert!(
        out.status.success(),
        "etcdctl get {key}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v = out.stdout;
    // etcdctl ends the value with a newline.
    if v.last() == Some(&b'\n') {
        v.pop();
    }
    assert!(!v.is_empty(), "etcd has no value at {key}");
    v
}

async fn client_for(port: u16) -> kube::Client {
    let path = std::env::var("KUBECONFIG").expect("KUBECONFIG of tier 1");
    let kubeconfig = Kubeconfig::read_from(&path).expect("kubeconfig");
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("config");
    config.cluster_url = format!("https://127.0.0.1:{port}").parse().expect("url");
    kube::Client::try_from(config).expect("client")
}

async fn create_secret(client: &kube::Client, name: &str) {
    let s = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "password".to_owned(),
            ByteString(PLAINTEXT.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &s)
        .await
        .unwrap_or_else(|e| panic!("create Secret {name}: {e}"));
}

async fn read_secret(client: &kube::Client, name: &str) -> String {
    let s = Api::<Secret>::namespaced(client.clone(), "default")
        .get(name)
        .await
        .expect("get Secret");
    String::from_utf8(s.data.expect("data")["password"].0.clone()).expect("utf8")
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_with_the_agility_kms() {
    let etcd_port: u16 = env_or("AGILITY_T1_ETCD_PORT", "22379")
        .parse()
        .expect("port");
    let api_port: u16 = 16_444;
    let pki = PathBuf::from(env_or("AGILITY_T1_DIR", "/var/lib/agility-e2e/apiserver")).join("pki");
    let k8s_bin = PathBuf::from(env_or(
        "AGILITY_K8S_BIN",
        &format!(
            "{}/.cache/agility/kubernetes-v1.34.4/bin",
            env_or("HOME", "/root")
        ),
    ));
    let dir = std::env::temp_dir().join(format!("agility-kmsv2-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    // The KMS (HTTPS on loopback) and the provider on a unix socket.
    let key_id = uuid::Uuid::new_v4();
    let kms = testing::loopback_kms(kms_service(key_id)).await;
    let (kms_addr, stop_kms) = (kms.addr, kms.stop.clone());
    let socket = dir.join("kms.sock");
    let mut stop_provider = start_provider(&socket, kms_addr, &kms.ca).await;

    let config = dir.join("encryption.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - kms:\n          apiVersion: v2\n          name: agility\n          endpoint: unix://{}\n          timeout: 3s\n      - identity: {{}}\n",
            socket.display()
        ),
    )
    .expect("write EncryptionConfiguration");
    let prefix = format!("/agility-kmsv2-it-{}", std::process::id());
    let log = std::fs::File::create(dir.join("kube-apiserver.log")).expect("log file");
    let pki_file = |f: &str| pki.join(f).to_string_lossy().into_owned();
    let apiserver = Command::new(k8s_bin.join("kube-apiserver"))
        .args([
            "--etcd-servers",
            &format!("http://127.0.0.1:{etcd_port}"),
            "--etcd-prefix",
            &prefix,
        ])
        .args([
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--secure-port",
            &api_port.to_string(),
        ])
        .args([
            "--tls-cert-file",
            &pki_file("apiserver.crt"),
            "--tls-private-key-file",
            &pki_file("apiserver.key"),
        ])
        .args([
            "--client-ca-file",
            &pki_file("ca.crt"),
            "--authorization-mode",
            "RBAC",
        ])
        .args([
            "--service-account-key-file",
            &pki_file("sa.pub"),
            "--service-account-signing-key-file",
            &pki_file("sa.key"),
        ])
        .args([
            "--service-account-issuer",
            "https://kubernetes.default.svc",
            "--service-cluster-ip-range",
            "10.98.0.0/16",
        ])
        .args([
            "--encryption-provider-config",
            &config.to_string_lossy(),
            "--profiling=false",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start kube-apiserver");
    let _apiserver = Daemon(apiserver);
    let t0 = Instant::now();
    let client = client_for(api_port).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ready = client
            .request_text(
                http::Request::get("/readyz")
                    .body(Vec::new())
                    .expect("request"),
            )
            .await;
        if ready.as_deref().is_ok_and(|t| t.trim() == "ok") {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("kube-apiserver.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "kube-apiserver with KMS encryption not ready: {ready:?}\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!(
        "kube-apiserver with the Agility KMS v2 provider ready in {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    create_secret(&client, "db-password").await;
    let stored = etcd_get(etcd_port, &format!("{prefix}/secrets/default/db-password"));
    let head = String::from_utf8_lossy(&stored[..stored.len().min(40)]).into_owned();
    assert!(
        stored.starts_with(b"k8s:enc:kms:v2:agility:"),
        "etcd holds: {head:?}"
    );
    assert!(
        !stored
            .windows(PLAINTEXT.len())
            .any(|w| w == PLAINTEXT.as_bytes()),
        "plaintext in etcd"
    );
    println!(
        "etcd holds {} bytes starting {head:?}, no plaintext",
        stored.len()
    );
    assert_eq!(read_secret(&client, "db-password").await, PLAINTEXT);

    // The provider restarts: reads go on (the API server holds the decrypted DEK seed), and it
    // serves again once back.
    stop_provider.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = std::fs::remove_file(&socket);
    assert_eq!(
        read_secret(&client, "db-password").await,
        PLAINTEXT,
        "read while the provider is down"
    );
    println!("Secret read back while the provider was down");
    stop_provider = start_provider(&socket, kms_addr, &kms.ca).await;
    create_secret(&client, "api-token").await;
    assert_eq!(read_secret(&client, "api-token").await, PLAINTEXT);
    let second = etcd_get(etcd_port, &format!("{prefix}/secrets/default/api-token"));
    assert!(second.starts_with(b"k8s:enc:kms:v2:agility:"));
    println!("after the provider restarted: new Secret written encrypted and read back");

    stop_provider.cancel();
    stop_kms.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}
