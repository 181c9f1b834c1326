//! A Kubernetes KMS v2 provider backed by a `Cmk`: the gRPC `v2.KeyManagementService` (Status,
//! Encrypt, Decrypt; messages as in `k8s.io/kms/apis/v2/api.proto`) on a unix socket, each call
//! forwarded to the KMS API over TLS, SigV4-signed. The API server encrypts its DEK seeds with
//! it; its `key_id` is the key ARN and version, so a rotation of the `Cmk` makes the API server
//! pick a new seed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::service::CONTENT_TYPE;
use crate::sigv4;

/// `StatusRequest {}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {}

/// `StatusResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    /// `v2`.
    #[prost(string, tag = "1")]
    pub version: String,
    /// `ok`, or why not.
    #[prost(string, tag = "2")]
    pub healthz: String,
    /// The current write key.
    #[prost(string, tag = "3")]
    pub key_id: String,
}

/// `DecryptRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DecryptRequest {
    /// What to decrypt.
    #[prost(bytes = "vec", tag = "1")]
    pub ciphertext: Vec<u8>,
    /// Request id.
    #[prost(string, tag = "2")]
    pub uid: String,
    /// The key id given at encryption.
    #[prost(string, tag = "3")]
    pub key_id: String,
    /// Annotations given at encryption.
    #[prost(map = "string, bytes", tag = "4")]
    pub annotations: HashMap<String, Vec<u8>>,
}

/// `DecryptResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DecryptResponse {
    /// The plaintext.
    #[prost(bytes = "vec", tag = "1")]
    pub plaintext: Vec<u8>,
}

/// `EncryptRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EncryptRequest {
    /// What to encrypt (the API server's DEK seed).
    #[prost(bytes = "vec", tag = "1")]
    pub plaintext: Vec<u8>,
    /// Request id.
    #[prost(string, tag = "2")]
    pub uid: String,
}

/// `EncryptResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EncryptResponse {
    /// The ciphertext.
    #[prost(bytes = "vec", tag = "1")]
    pub ciphertext: Vec<u8>,
    /// The key that encrypted it.
    #[prost(string, tag = "2")]
    pub key_id: String,
    /// Extra data stored beside the ciphertext (none).
    #[prost(map = "string, bytes", tag = "3")]
    pub annotations: HashMap<String, Vec<u8>>,
}

/// Where the provider finds the KMS and how it signs.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// `host:port` to dial.
    pub addr: String,
    /// The name the KMS certificate is checked for (and the `Host` header).
    pub server_name: String,
    /// The key (id, ARN or alias).
    pub key: String,
    /// The region requests are signed for.
    pub region: String,
    /// Access key id and secret.
    pub credentials: (String, String),
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// The KMS API client the provider uses: one kept-alive TLS connection, re-opened on failure.
pub struct KmsClient {
    upstream: Upstream,
    tls: tokio_rustls::TlsConnector,
    conn: Mutex<Option<Sender>>,
}

impl KmsClient {
    /// A client trusting `ca_pem`.
    pub fn new(upstream: Upstream, ca_pem: &str) -> Result<Self, String> {
        let config = crate::server::client_config(ca_pem).map_err(|e| e.to_string())?;
        Ok(KmsClient {
            upstream,
            tls: tokio_rustls::TlsConnector::from(config),
            conn: Mutex::new(None),
        })
    }

    async fn connect(&self) -> Result<Sender, String> {
        let tcp = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::net::TcpStream::connect(&self.upstream.addr),
        )
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect {}: {e}", self.upstream.addr))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls_pki_types::ServerName::try_from(self.upstream.server_name.clone())
            .map_err(|e| e.to_string())?;
        let stream = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(send)
    }

    /// Calls `TrentService.<op>` with `body`; returns the JSON answer or the KMS error.
    pub async fn call(&self, op: &str, body: Value) -> Result<Value, String> {
        let body = body.to_string();
        let mut headers = vec![
            ("host".to_owned(), self.upstream.server_name.clone()),
            ("content-type".to_owned(), CONTENT_TYPE.to_owned()),
            ("x-amz-target".to_owned(), format!("TrentService.{op}")),
        ];
        let req = sigv4::Request {
            method: "POST",
            uri: "/",
            headers: &headers,
            body: body.as_bytes(),
        };
        let creds = (
            self.upstream.credentials.0.as_str(),
            self.upstream.credentials.1.as_str(),
        );
        let added =
            sigv4::sign_request(creds, &self.upstream.region, "kms", SystemTime::now(), &req)
                .map_err(|e| e.to_string())?;
        headers.extend(added);
        let mut guard = self.conn.lock().await;
        for attempt in 0..2 {
            if guard.as_ref().is_none_or(|s| s.is_closed()) {
                *guard = Some(self.connect().await?);
            }
            let Some(send) = guard.as_mut() else { continue };
            let mut b = hyper::Request::builder().method("POST").uri("/");
            for (k, v) in &headers {
                b = b.header(k.as_str(), v.as_str());
            }
            let request = b
                .body(Full::new(Bytes::from(body.clone())))
                .map_err(|e| e.to_string())?;
            match tokio::time::timeout(Duration::from_secs(5), send.send_request(request)).await {
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    let bytes = resp
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?
                        .to_bytes();
                    let v: Value = serde_json::from_slice(&bytes)
                        .map_err(|e| format!("KMS answered {status} with non-JSON: {e}"))?;
                    if status.is_success() {
                        return Ok(v);
                    }
                    return Err(format!(
                        "{}: {}",
                        v["__type"].as_str().unwrap_or("error"),
                        v["message"].as_str().unwrap_or("")
                    ));
                }
                // A kept connection the server closed: reconnect once.
                _ if attempt == 0 => *guard = None,
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err("KMS call timed out".into()),
            }
        }
        Err("KMS unreachable".into())
    }
}

/// The key id the API server sees: the key ARN and the version that encrypted, so a rotation is
/// noticed (the ciphertext blob names its version, bytes 17..21).
fn key_id(arn: &str, blob: &[u8]) -> String {
    match crate::blob::Blob::parse(blob) {
        Ok(b) => format!("{arn}#v{}", b.version),
        Err(_) => arn.to_owned(),
    }
}

/// The provider: the three calls, forwarded to the KMS.
pub struct Provider {
    client: KmsClient,
}

impl Provider {
    /// A provider using `client`.
    pub fn new(client: KmsClient) -> Self {
        Provider { client }
    }

    async fn encrypt_raw(&self, plaintext: &[u8]) -> Result<(Vec<u8>, String), String> {
        let v = self
            .client
            .call(
                "Encrypt",
                json!({"KeyId": self.client.upstream.key, "Plaintext": B64.encode(plaintext)}),
            )
            .await?;
        let blob = B64
            .decode(v["CiphertextBlob"].as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        let id = key_id(v["KeyId"].as_str().unwrap_or_default(), &blob);
        Ok((blob, id))
    }

    /// Status: a 1-byte Encrypt proves the key works and tells its current version.
    pub async fn status(&self) -> StatusResponse {
        match self.encrypt_raw(b"s").await {
            Ok((_, key_id)) => StatusResponse {
                version: "v2".into(),
                healthz: "ok".into(),
                key_id,
            },
            Err(e) => StatusResponse {
                version: "v2".into(),
                healthz: e,
                key_id: self.client.upstream.key.clone(),
            },
        }
    }

    /// Encrypt.
    pub async fn encrypt(&self, r: EncryptRequest) -> Result<EncryptResponse, Status> {
        let (ciphertext, key_id) = self
            .encrypt_raw(&r.plaintext)
            .await
            .map_err(Status::unavailable)?;
        Ok(EncryptResponse {
            ciphertext,
            key_id,
            annotations: HashMap::new(),
        })
    }

    /// Decrypt.
    pub async fn decrypt(&self, r: DecryptRequest) -> Result<DecryptResponse, Status> {
        let v = self
            .client
            .call(
                "Decrypt",
                json!({"CiphertextBlob": B64.encode(&r.ciphertext)}),
            )
            .await
            .map_err(Status::unavailable)?;
        let plaintext = B64
            .decode(v["Plaintext"].as_str().unwrap_or_default())
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(DecryptResponse { plaintext })
    }
}

/// The gRPC service (what tonic's code generator would write for the proto's service).
#[derive(Clone)]
pub struct KeyManagementServer {
    provider: Arc<Provider>,
}

impl KeyManagementServer {
    /// Serves `provider`.
    pub fn new(provider: Arc<Provider>) -> Self {
        KeyManagementServer { provider }
    }
}

impl NamedService for KeyManagementServer {
    const NAME: &'static str = "v2.KeyManagementService";
}

struct Unary<F>(Arc<Provider>, F);

impl<Req, Resp, F, Fut> UnaryService<Req> for Unary<F>
where
    F: Fn(Arc<Provider>, Req) -> Fut + Clone,
    Fut: std::future::Future<Output = Result<Resp, Status>> + Send + 'static,
{
    type Response = Resp;
    type Future = BoxFuture<Response<Resp>, Status>;
    fn call(&mut self, request: Request<Req>) -> Self::Future {
        let fut = (self.1)(self.0.clone(), request.into_inner());
        Box::pin(async move { fut.await.map(Response::new) })
    }
}

impl<B> Service<http::Request<B>> for KeyManagementServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let p = self.provider.clone();
        match req.uri().path() {
            "/v2.KeyManagementService/Status" => Box::pin(async move {
                let svc = Unary(p, |p: Arc<Provider>, _: StatusRequest| async move {
                    Ok(p.status().await)
                });
                Ok(tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                    .unary(svc, req)
                    .await)
            }),
            "/v2.KeyManagementService/Encrypt" => Box::pin(async move {
                let svc = Unary(p, |p: Arc<Provider>, r: EncryptRequest| async move {
                    p.encrypt(r).await
                });
                Ok(tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                    .unary(svc, req)
                    .await)
            }),
            "/v2.KeyManagementService/Decrypt" => Box::pin(async move {
                let svc = Unary(p, |p: Arc<Provider>, r: DecryptRequest| async move {
                    p.decrypt(r).await
                });
                Ok(tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                    .unary(svc, req)
                    .await)
            }),
            _ => Box::pin(async move { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

/// Serves the provider on the unix socket `path` (replacing a stale socket file) until `stop`.
pub async fn serve(
    path: &Path,
    provider: Arc<Provider>,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| format!("bind {}: {e}", path.display()))?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    tonic::transport::Server::builder()
        .add_service(KeyManagementServer::new(provider))
        .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
        .await
        .map_err(|e| e.to_string())
}
