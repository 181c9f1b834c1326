//! The HTTPS front of a replica: TLS (rustls), HTTP/1.1 with keep-alive (hyper), bodies up to
//! 64 KiB, then [`Service::serve`]. Management operations are written to the `Cmk` objects
//! (the single source of truth) before the answer goes out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming as Body;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::api::{Change, Mutation};
use crate::bootstrap::ApiTls;
use crate::controller::FIELD_MANAGER;
use crate::crd::{Cmk, CmkSpec};
use crate::error::KmsError;
use crate::service::{CONTENT_TYPE, Incoming, Service};
use crate::store::{self, StoredKey};

/// Largest request body accepted (Encrypt's 4 KiB plaintext is about 5.5 KiB of JSON).
const MAX_BODY: usize = 64 * 1024;
/// Field manager of `Cmk` changes made through the API (visible as such in managedFields).
pub const API_FIELD_MANAGER: &str = "agility-kms-api";

/// Server failures.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The certificate or key is unusable.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The port could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// The rustls server configuration from PEM.
pub fn tls_config(tls: &ApiTls) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let chain = CertificateDer::pem_slice_iter(tls.cert_chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key.as_bytes())
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS client configuration trusting only `ca_pem` (the KMS CA), for the KMS's own clients.
pub fn client_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, ServerError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| ServerError::Tls(e.to_string()))?)
            .map_err(|e| ServerError::Tls(e.to_string()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ServerError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Where management changes are written; None serves without (tests, benchmarks).
pub type Writer = Option<kube::Client>;

/// Serves HTTPS on `addr` until `stop`.
pub async fn serve(
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    service: Arc<Service>,
    writer: Writer,
    kms_namespace: String,
    stop: CancellationToken,
) -> Result<(), ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    serve_on(listener, tls, service, writer, kms_namespace, stop).await;
    Ok(())
}

/// Serves HTTPS on a bound listener until `stop`.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    service: Arc<Service>,
    writer: Writer,
    kms_namespace: String,
    stop: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let ctx = Arc::new((service, writer, kms_namespace));
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => { warn!(error = %e, "accept failed"); continue; }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let svc = service_fn(move |req| {
                let ctx = ctx.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        handle(req, &ctx.0, ctx.1.as_ref(), &ctx.2).await,
                    )
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

fn reply(status: u16, body: Vec<u8>, request_id: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    r
}

async fn handle(
    req: Request<Body>,
    service: &Service,
    writer: Option<&kube::Client>,
    kms_namespace: &str,
) -> Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let method = req.method().as_str().to_owned();
    let uri = req
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let e = KmsError::Validation(format!("request body larger than {MAX_BODY} bytes"));
            return reply(e.status(), e.body().to_string().into_bytes(), &request_id);
        }
    };
    let outcome = service.serve(
        &Incoming {
            method: &method,
            uri: &uri,
            headers: &headers,
            body: &body,
            request_id: &request_id,
        },
        SystemTime::now(),
    );
    if let Some(change) = &outcome.mutation {
        let written = match writer {
            Some(client) => write_change(client, kms_namespace, change).await,
            None => Err(KmsError::Internal(
                "this server does not write key state".into(),
            )),
        };
        if let Err(e) = written {
            warn!(request_id, error = %e, "management change not written");
            // The request's own audit line said it was accepted; this one says it did not land.
            tracing::info!(
                target: "agility_kms::audit",
                request_id,
                principal = %outcome.principal,
                key = %crate::keyring::key_arn(&change.namespace, change.key_id),
                version = 0,
                operation = "WriteKeyState",
                result = e.code(),
                "kms request"
            );
            return reply(e.status(), e.body().to_string().into_bytes(), &request_id);
        }
    }
    reply(outcome.status, outcome.body, &request_id)
}

fn internal(what: &str) -> impl Fn(kube::Error) -> KmsError + '_ {
    move |e| KmsError::Internal(format!("{what}: {e}"))
}

/// Writes a management change to the `Cmk` (and, for deletion, the record's date).
pub async fn write_change(
    client: &kube::Client,
    kms_namespace: &str,
    change: &Change,
) -> Result<(), KmsError> {
    let cmks: Api<Cmk> = Api::namespaced(client.clone(), &change.namespace);
    let params = PatchParams {
        field_manager: Some(API_FIELD_MANAGER.into()),
        ..Default::default()
    };
    match &change.mutation {
        Mutation::SetEnabled(enabled) => {
            cmks.patch(
                &change.name,
                &params,
                &Patch::Merge(json!({"spec": {"enabled": enabled}})),
            )
            .await
            .map_err(internal("update the Cmk"))?;
        }
        Mutation::ScheduleDeletion { window_days } => {
            // The date goes into the record first: the Cmk is gone the moment it is deleted.
            let secrets: Api<Secret> = Api::namespaced(client.clone(), kms_namespace);
            let name = store::secret_name(change.key_id);
            let s = secrets
                .get(&name)
                .await
                .map_err(internal("read the key record"))?;
            let mut key = StoredKey::from_secret(&s)
                .ok_or_else(|| KmsError::Internal("unreadable key record".into()))?;
            let date = chrono::Utc::now() + chrono::Duration::days(i64::from(*window_days));
            key.identity.deletion_date = Some(crate::lifecycle::rfc3339(date));
            key.identity.window_days = *window_days;
            secrets
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&key.to_secret(kms_namespace)),
                )
                .await
                .map_err(internal("record the deletion date"))?;
            cmks.delete(&change.name, &DeleteParams::default())
                .await
                .map_err(internal("delete the Cmk"))?;
        }
        Mutation::CancelDeletion => {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), kms_namespace);
            let s = secrets
                .get(&store::secret_name(change.key_id))
                .await
                .map_err(internal("read the key record"))?;
            let key = StoredKey::from_secret(&s)
                .ok_or_else(|| KmsError::Internal("unreadable key record".into()))?;
            let mut spec: CmkSpec = key
                .identity
                .spec
                .clone()
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or_else(|| {
                    KmsError::Internal("the key record has no spec to restore".into())
                })?;
            // As in AWS: a key whose deletion was cancelled comes back disabled.
            spec.enabled = false;
            let mut cmk = Cmk::new(&change.name, spec);
            cmk.metadata.namespace = Some(change.namespace.clone());
            match cmks
                .create(
                    &PostParams {
                        field_manager: Some(API_FIELD_MANAGER.into()),
                        ..Default::default()
                    },
                    &cmk,
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    return Err(KmsError::InvalidState(format!(
                        "a Cmk named {}/{} exists and holds another key; delete or rename it first",
                        change.namespace, change.name
                    )));
                }
                Err(e) => return Err(internal("re-create the Cmk")(e)),
            }
        }
    }
    Ok(())
}
