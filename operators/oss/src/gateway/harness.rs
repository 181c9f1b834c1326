//! The gateway in-process on loopback, and a small S3 HTTP client that signs like an SDK, for
//! this crate's tests and benchmarks (the Garage behind it comes from [`crate::testing`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{
    Domains, Gateway, GatewayError, GatewayMetrics, GatewayOptions, Listeners, Rules, SigningKey,
};
use agility_core::shutdown::CancellationToken;

/// A gateway serving on three loopback ports until dropped.
pub struct RunningGateway {
    /// `127.0.0.1:<port>` of the S3 listener.
    pub s3: SocketAddr,
    /// `127.0.0.1:<port>` of the website listener.
    pub web: SocketAddr,
    /// `127.0.0.1:<port>` of the admin listener.
    pub admin: SocketAddr,
    pub gateway: Arc<Gateway>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningGateway {
    /// Stops it and waits until the listeners are closed.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts the gateway in front of `s3_upstream`/`web_upstream` with the rules of `rules_file`
/// (the `--rules-file` path) and, with `tls`, HTTPS on the S3 and website listeners.
pub async fn start_gateway(
    s3_upstream: &str,
    web_upstream: &str,
    key: SigningKey,
    domains: Domains,
    rules_file: &Path,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<RunningGateway, GatewayError> {
    let rules = Arc::new(Rules::default());
    rules.load_file(rules_file)?;
    let metrics =
        GatewayMetrics::new().map_err(|e| GatewayError::Rules(format!("metrics: {e}")))?;
    let gateway = Arc::new(Gateway::new(
        GatewayOptions {
            s3_upstream: s3_upstream.to_owned(),
            web_upstream: web_upstream.to_owned(),
            domains,
            key,
        },
        rules,
        metrics,
    )?);
    let loopback: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let listeners = Listeners::bind(loopback, loopback, loopback).await?;
    let addr = |l: &tokio::net::TcpListener| {
        l.local_addr().map_err(|source| GatewayError::Bind {
            addr: loopback,
            source,
        })
    };
    let (s3, web, admin) = (
        addr(&listeners.s3)?,
        addr(&listeners.web)?,
        addr(&listeners.admin)?,
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(super::serve(gateway.clone(), listeners, tls, stop.clone()));
    Ok(RunningGateway {
        s3,
        web,
        admin,
        gateway,
        stop,
        task: Some(task),
    })
}

/// An answer: status, headers, the whole body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How a [`S3Http`] request is signed.
#[derive(Clone, Copy, Debug)]
pub enum Signing<'a> {
    /// Not at all.
    Anonymous,
    /// `Authorization` header, `UNSIGNED-PAYLOAD` (as SDKs do for streaming uploads).
    Header(&'a str, &'a str),
    /// A presigned URL valid for a minute.
    Query(&'a str, &'a str),
}

/// A plain-HTTP S3 client over one connection pool that signs like an SDK (host, x-amz-*).
#[derive(Clone)]
pub struct S3Http {
    client: Client<HttpConnector, Full<Bytes>>,
    region: String,
}

impl S3Http {
    /// A client signing for `region`.
    pub fn new(region: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        S3Http {
            client: Client::builder(TokioExecutor::new()).build(connector),
            region: region.to_owned(),
        }
    }

    /// Sends `method` to `http://<addr><path_and_query>` with `Host: host` (default `addr`).
    #[allow(clippy::too_many_arguments)] // one HTTP request's parts; a builder is more code than its callers
    pub async fn send(
        &self,
        method: Method,
        addr: SocketAddr,
        host: Option<&str>,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        signing: Signing<'_>,
    ) -> Result<Answer, GatewayError> {
        let host = host.map_or_else(|| addr.to_string(), str::to_owned);
        let bad = |e: String| GatewayError::BadRequest(e);
        let mut url = format!("http://{host}{path_and_query}");
        let mut extra: Vec<(String, String)> = Vec::new();
        if let Signing::Header(id, secret) | Signing::Query(id, secret) = signing {
            let mut signed: Vec<(&str, &str)> = vec![("host", host.as_str())];
            signed.extend(
                headers
                    .iter()
                    .filter(|(k, _)| k.starts_with("x-amz-"))
                    .copied(),
            );
            let mut settings = SigningSettings::default();
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            if let Signing::Query(..) = signing {
                settings.signature_location = SignatureLocation::QueryParams;
                settings.expires_in = Some(std::time::Duration::from_secs(60));
            } else {
                settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            }
            let identity =
                aws_credential_types::Credentials::new(id, secret, None, None, "test").into();
            let params = aws_sigv4::sign::v4::SigningParams::builder()
                .identity(&identity)
                .region(&self.region)
                .name("s3")
                .time(SystemTime::now())
                .settings(settings)
                .build()
                .map_err(|e| bad(e.to_string()))?
                .into();
            let signable = SignableRequest::new(
                method.as_str(),
                url.as_str(),
                signed.into_iter(),
                SignableBody::UnsignedPayload,
            )
            .map_err(|e| bad(e.to_string()))?;
            let (instructions, _) = sign(signable, &params)
                .map_err(|e| bad(e.to_string()))?
                .into_parts();
            let params: Vec<String> = instructions
                .params()
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        percent_encoding::utf8_percent_encode(
                            v,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    )
                })
                .collect();
            if !params.is_empty() {
                let sep = if url.contains('?') { '&' } else { '?' };
                url = format!("{url}{sep}{}", params.join("&"));
            }
            extra.extend(
                instructions
                    .headers()
                    .map(|(k, v)| (k.to_owned(), v.to_owned())),
            );
        }
        // Connect to `addr` whatever the Host says.
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        let target = format!("http://{addr}{pq}");
        let mut req = Request::builder()
            .method(method)
            .uri(target)
            .header("host", host.as_str());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        for (k, v) in &extra {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Full::new(body)).map_err(|e| bad(e.to_string()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| bad(format!("sending: {e}")))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| bad(format!("reading the body: {e}")))?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}
