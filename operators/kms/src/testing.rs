//! Building blocks for tests and benchmarks of KMS clients and servers (this crate's, the
//! integration tier's): a key record, a service holding it with one access key, SDK-style signed
//! headers. Not used by the product's own code paths.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use uuid::Uuid;

use crate::authz::Grant;
use crate::cipher::Material;
use crate::crd::KeyState;
use crate::keyring::{KeyRecord, Keyring, key_arn};
use crate::service::{AccessKey, CONTENT_TYPE, Metrics, Service};
use crate::sigv4;

/// A KMS served over HTTPS on a loopback port with a fresh certificate for `localhost`.
pub struct LoopbackKms {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The CA clients trust (`ca.crt`).
    pub ca: String,
    /// Stops the server.
    pub stop: tokio_util::sync::CancellationToken,
}

/// Starts `service` on 127.0.0.1 (any free port) until the returned `stop` is cancelled.
pub async fn loopback_kms(service: Arc<Service>) -> LoopbackKms {
    let tls = match crate::bootstrap::issue_api_tls("localhost", "test") {
        Ok(t) => t,
        Err(e) => panic!("certificate: {e}"),
    };
    let config = match crate::server::tls_config(&tls) {
        Ok(c) => c,
        Err(e) => panic!("server TLS: {e}"),
    };
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("address: {e}"),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(crate::server::serve_on(
        listener,
        config,
        service,
        None,
        "test".into(),
        stop.clone(),
    ));
    LoopbackKms {
        addr,
        ca: tls.ca,
        stop,
    }
}

/// Starts the KMS v2 provider on the unix socket `socket`, forwarding to the KMS at `addr`
/// (trusting `ca`) for `key` with `access_key`; returns once the socket exists. Cancel the token
/// to stop it.
pub async fn provider_on_socket(
    socket: &std::path::Path,
    addr: std::net::SocketAddr,
    ca: &str,
    key: &str,
    access_key: (&str, &str),
) -> tokio_util::sync::CancellationToken {
    let upstream = crate::kmsv2::Upstream {
        addr: addr.to_string(),
        server_name: "localhost".into(),
        key: key.into(),
        region: "local".into(),
        credentials: (access_key.0.into(), access_key.1.into()),
    };
    let client = match crate::kmsv2::KmsClient::new(upstream, ca) {
        Ok(c) => c,
        Err(e) => panic!("KMS client: {e}"),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let (path, token) = (socket.to_path_buf(), stop.clone());
    let provider = Arc::new(crate::kmsv2::Provider::new(client));
    tokio::spawn(async move { crate::kmsv2::serve(&path, provider, token).await });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "provider socket never appeared"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop
}

/// An enabled-or-not key with one version of `material` and one alias.
pub fn key(
    namespace: &str,
    name: &str,
    alias: &str,
    key_id: Uuid,
    material: Material,
    state: KeyState,
) -> KeyRecord {
    KeyRecord {
        key_id,
        namespace: namespace.into(),
        name: name.into(),
        arn: key_arn(namespace, key_id),
        state,
        description: format!("{name} (test)"),
        created: 1_780_000_000,
        deletion: None,
        aliases: vec![alias.into()],
        rotation_enabled: false,
        rotation_period_days: None,
        current_version: 1,
        versions: BTreeMap::from([(1, material)]),
        creator: "test".into(),
    }
}

/// A service for region `local` serving `keys`, with one access key granted `grant`.
pub fn service(keys: Vec<KeyRecord>, access_key: (&str, &str), grant: Grant) -> Arc<Service> {
    let registry = prometheus::Registry::new();
    let metrics = match Metrics::new(&registry) {
        Ok(m) => m,
        // A fresh registry has nothing registered that could clash.
        Err(e) => panic!("metrics: {e}"),
    };
    let svc = Service::new("local", metrics);
    svc.set_keyring(Keyring::new(keys));
    svc.set_access_keys(HashMap::from([(
        access_key.0.to_owned(),
        AccessKey {
            secret: zeroize::Zeroizing::new(access_key.1.to_owned()),
            grant,
        },
    )]));
    Arc::new(svc)
}

/// A grant on the keys of `namespace` (cryptographic and read operations).
pub fn grant(namespace: &str) -> Grant {
    Grant {
        principal: format!("{namespace}/test"),
        namespaces: [namespace.to_owned()].into(),
        keys: None,
        operations: None,
    }
}

/// The headers an AWS SDK sends for `TrentService.<target>` with `body`, signed at `at`.
pub fn signed(
    access_key: (&str, &str),
    host: &str,
    target: &str,
    body: &[u8],
    at: SystemTime,
) -> Vec<(String, String)> {
    let mut headers = vec![
        ("host".to_owned(), host.to_owned()),
        ("content-type".to_owned(), CONTENT_TYPE.to_owned()),
        ("x-amz-target".to_owned(), format!("TrentService.{target}")),
    ];
    let req = sigv4::Request {
        method: "POST",
        uri: "/",
        headers: &headers,
        body,
    };
    match sigv4::sign_request(access_key, "local", "kms", at, &req) {
        Ok(added) => headers.extend(added),
        Err(e) => panic!("signing: {e}"),
    }
    headers
}
