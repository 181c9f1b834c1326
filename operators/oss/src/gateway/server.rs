//! The gateway's listeners: S3 and website (HTTP or HTTPS) proxying to Garage through one pooled
//! client, and the admin port (`/healthz`, `/readyz`, `/metrics`). Bodies stream both ways: the
//! client's request body is handed to the upstream request and Garage's response body to the
//! client without being buffered.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::decide::{Decision, Domains, Endpoint, RequestView, decide};
use super::error::GatewayError;
use super::metrics::GatewayMetrics;
use super::rules::Rules;
use super::sign::{SigningKey, resign};
use agility_core::shutdown::CancellationToken;

/// Body of a request to Garage: the client's, streamed, or empty (the readiness probe).
pub type UpstreamBody = Either<Incoming, Empty<Bytes>>;
/// Body of a response to the client: Garage's, streamed, or one of ours.
pub type ResponseBody = Either<Incoming, Full<Bytes>>;

/// How long in-flight requests may finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(25);

/// What the gateway needs to know.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// Garage's S3 API, `http://host:3900`.
    pub s3_upstream: String,
    /// Garage's website port, `http://host:3902`.
    pub web_upstream: String,
    /// Virtual-host domains.
    pub domains: Domains,
    /// The gateway's own Garage key (re-signs anonymous requests the ACL allows).
    pub key: SigningKey,
}

/// The gateway: rules, upstream client, metrics. Shared by every connection.
pub struct Gateway {
    s3_upstream: Authority,
    web_upstream: Authority,
    domains: Domains,
    key: SigningKey,
    rules: Arc<Rules>,
    metrics: GatewayMetrics,
    client: Client<HttpConnector, UpstreamBody>,
    upstream_answered: AtomicBool,
    request_prefix: u32,
    requests: AtomicU64,
}

/// Requests up to this size get [`SMALL_REQUEST_DEADLINE`] for Garage's answer.
const SMALL_REQUEST_BYTES: u64 = 1 << 20;
/// How long Garage may take to answer a small request before the connection is given up. Healthy
/// it answers in milliseconds; with a peer frozen, an internal RPC to that peer fails over after
/// Garage's `rpc_timeout_msec` (5 s, set by the operator), so the deadline must exceed that or
/// every retry would be cut just before Garage succeeds.
const SMALL_REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Attempts of a body-less read before the client gets a 503.
const SMALL_REQUEST_TRIES: u32 = 3;

fn authority(url: &str) -> Result<Authority, GatewayError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| GatewayError::Upstream(url.to_owned()))?;
    match (uri.scheme_str(), uri.authority(), uri.path()) {
        (Some("http"), Some(a), "" | "/") => Ok(a.clone()),
        _ => Err(GatewayError::Upstream(url.to_owned())),
    }
}

impl Gateway {
    /// Builds the gateway; `rules` may still be empty (not ready until loaded).
    pub fn new(
        options: GatewayOptions,
        rules: Arc<Rules>,
        metrics: GatewayMetrics,
    ) -> Result<Self, GatewayError> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Gateway {
            s3_upstream: authority(&options.s3_upstream)?,
            web_upstream: authority(&options.web_upstream)?,
            domains: options.domains,
            key: options.key,
            rules,
            metrics,
            client,
            upstream_answered: AtomicBool::new(false),
            request_prefix: rand::random(),
            requests: AtomicU64::new(0),
        })
    }

    /// The rules in force.
    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    /// The metrics.
    pub fn metrics(&self) -> &GatewayMetrics {
        &self.metrics
    }

    /// Ready: rules loaded and Garage answered at least once.
    pub fn ready(&self) -> bool {
        self.rules.loaded() && self.upstream_answered.load(Ordering::Acquire)
    }

    fn request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        format!("{:08X}{n:016X}", self.request_prefix)
    }

    /// Asks Garage's S3 port once a second until it answers (any HTTP status counts).
    pub async fn probe_upstream(&self, stop: CancellationToken) {
        while !self.upstream_answered.load(Ordering::Acquire) {
            let uri = Uri::builder()
                .scheme("http")
                .authority(self.s3_upstream.clone())
                .path_and_query("/")
                .build();
            if let Ok(uri) = uri {
                let mut req = Request::new(Either::Right(Empty::new()));
                *req.uri_mut() = uri;
                match self.client.request(req).await {
                    Ok(_) => {
                        info!(upstream = %self.s3_upstream, "Garage answered");
                        self.upstream_answered.store(true, Ordering::Release);
                        return;
                    }
                    Err(e) => {
                        debug!(upstream = %self.s3_upstream, error = %e, "Garage not answering yet")
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Handles one request of the S3 or website listener.
    pub async fn handle(
        &self,
        endpoint: Endpoint,
        req: Request<Incoming>,
    ) -> Response<ResponseBody> {
        let start = Instant::now();
        let (mut parts, body) = req.into_parts();
        let config = self.rules.get();
        let decision = {
            let view = RequestView {
                method: &parts.method,
                path: parts.uri.path(),
                query: parts.uri.query(),
                headers: &parts.headers,
            };
            decide(endpoint, &view, &self.domains, &config)
        };
        let label = decision.label();
        let upstream = match endpoint {
            Endpoint::S3 => &self.s3_upstream,
            Endpoint::Website => &self.web_upstream,
        };
        let endpoint_label = match endpoint {
            Endpoint::S3 => "s3",
            Endpoint::Website => "website",
        };
        let resource = parts.uri.path().to_owned();
        let response = match decision {
            Decision::Deny(d) => {
                let id = self.request_id();
                debug!(method = %parts.method, path = %resource, decision = label, "refused");
                s3_error(d.status, d.code, &d.message, &resource, &id)
            }
            Decision::Forward => {
                let pq = parts
                    .uri
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/"));
                match upstream_uri(upstream, pq) {
                    Ok(uri) => {
                        parts.uri = uri;
                        strip_hop_by_hop(&mut parts.headers);
                        // Host stays as the client sent it: its signature covers it. HTTP/1.1
                        // requires one, but set the upstream's if a client omitted it.
                        if !parts.headers.contains_key(http::header::HOST)
                            && let Ok(v) = HeaderValue::from_str(upstream.as_str())
                        {
                            parts.headers.insert(http::header::HOST, v);
                        }
                        self.send(
                            endpoint_label,
                            Request::from_parts(parts, Either::Left(body)),
                            &resource,
                        )
                        .await
                    }
                    Err(e) => self.internal(&e, &resource),
                }
            }
            Decision::Resign { path_and_query } => {
                match self.resigned(&mut parts, upstream, &path_and_query) {
                    Ok(()) => {
                        self.send(
                            endpoint_label,
                            Request::from_parts(parts, Either::Left(body)),
                            &resource,
                        )
                        .await
                    }
                    Err(GatewayError::BadRequest(m)) => s3_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequest",
                        &m,
                        &resource,
                        &self.request_id(),
                    ),
                    Err(e) => self.internal(&e, &resource),
                }
            }
        };
        self.metrics
            .observe(endpoint_label, label, start.elapsed().as_secs_f64());
        response
    }

    fn resigned(
        &self,
        parts: &mut http::request::Parts,
        upstream: &Authority,
        path_and_query: &str,
    ) -> Result<(), GatewayError> {
        let pq = PathAndQuery::try_from(path_and_query)
            .map_err(|e| GatewayError::BadRequest(format!("path: {e}")))?;
        let uri = upstream_uri(upstream, pq)?;
        strip_hop_by_hop(&mut parts.headers);
        resign(
            &self.key,
            &parts.method,
            &uri.to_string(),
            upstream.as_str(),
            &mut parts.headers,
            SystemTime::now(),
        )?;
        parts.uri = uri;
        Ok(())
    }

    fn internal(&self, e: &GatewayError, resource: &str) -> Response<ResponseBody> {
        warn!(error = %e, "gateway error");
        s3_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "The gateway could not forward the request.",
            resource,
            &self.request_id(),
        )
    }

    async fn send(
        &self,
        endpoint: &str,
        req: Request<UpstreamBody>,
        resource: &str,
    ) -> Response<ResponseBody> {
        // A frozen Garage node keeps its TCP connections open: a request on a pooled
        // connection to it would wait for the client's own timeout (60 s in the AWS SDKs).
        // Small requests get a deadline for Garage's answer (the connection is then dropped);
        // body-less reads are retried at once on another connection, others get a retryable
        // 503. Large uploads have no deadline: their body may take that long to send.
        let content_length = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let bodiless_read = (req.method() == http::Method::GET
            || req.method() == http::Method::HEAD)
            && content_length.unwrap_or(0) == 0;
        let small = bodiless_read
            || req.method() == http::Method::DELETE
            || content_length.is_some_and(|n| n <= SMALL_REQUEST_BYTES);
        let answer = if small {
            let retry = bodiless_read.then(|| {
                (
                    req.method().clone(),
                    req.uri().clone(),
                    req.version(),
                    req.headers().clone(),
                )
            });
            let mut attempt = Some(req);
            let mut tries = 0;
            loop {
                tries += 1;
                let Some(r) = attempt.take() else { break None };
                match tokio::time::timeout(SMALL_REQUEST_DEADLINE, self.client.request(r)).await {
                    Ok(answer) => break Some(answer),
                    Err(_) => {
                        self.metrics.upstream_error(endpoint);
                        warn!(
                            endpoint,
                            tries, "Garage did not answer within {SMALL_REQUEST_DEADLINE:?}"
                        );
                        if tries < SMALL_REQUEST_TRIES
                            && let Some((method, uri, version, headers)) = &retry
                        {
                            let mut again = Request::new(Either::Right(Empty::new()));
                            *again.method_mut() = method.clone();
                            *again.uri_mut() = uri.clone();
                            *again.version_mut() = *version;
                            *again.headers_mut() = headers.clone();
                            attempt = Some(again);
                        }
                    }
                }
            }
        } else {
            Some(self.client.request(req).await)
        };
        let Some(answer) = answer else {
            let id = self.request_id();
            return s3_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The storage service did not answer in time; retry.",
                resource,
                &id,
            );
        };
        match answer {
            Ok(resp) => {
                self.upstream_answered.store(true, Ordering::Release);
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Either::Left(body))
            }
            Err(e) => {
                self.metrics.upstream_error(endpoint);
                let id = self.request_id();
                warn!(endpoint, error = %e, source = ?std::error::Error::source(&e), request_id = %id, "Garage did not answer");
                if e.is_connect() {
                    s3_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "ServiceUnavailable",
                        "The storage service is not reachable; retry later.",
                        resource,
                        &id,
                    )
                } else {
                    s3_error(
                        StatusCode::BAD_GATEWAY,
                        "BadGateway",
                        "The storage service did not answer the request.",
                        resource,
                        &id,
                    )
                }
            }
        }
    }

    /// Handles one request of the admin listener.
    fn admin(&self, req: &Request<Incoming>) -> Response<ResponseBody> {
        let (status, content_type, body) = match req.uri().path() {
            "/healthz" => (StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
            "/readyz" if self.ready() => {
                (StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n"))
            }
            "/readyz" => {
                let why = if self.rules.loaded() {
                    "waiting for Garage to answer\n"
                } else {
                    "waiting for the first rules\n"
                };
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    Bytes::from(why),
                )
            }
            "/metrics" => (
                StatusCode::OK,
                "text/plain; version=0.0.4",
                Bytes::from(self.metrics.encode()),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                Bytes::from_static(b"not found\n"),
            ),
        };
        let mut r = Response::new(Either::Right(Full::new(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        r
    }
}

/// An S3 error with our body type.
fn s3_error(
    status: StatusCode,
    code: &str,
    message: &str,
    resource: &str,
    request_id: &str,
) -> Response<ResponseBody> {
    super::error::s3_error(status, code, message, resource, request_id).map(Either::Right)
}

fn upstream_uri(upstream: &Authority, pq: PathAndQuery) -> Result<Uri, GatewayError> {
    Uri::builder()
        .scheme("http")
        .authority(upstream.clone())
        .path_and_query(pq)
        .build()
        .map_err(|e| GatewayError::BadRequest(format!("upstream URI: {e}")))
}

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1), including those `Connection` names: they
/// describe one connection, and hyper frames the next one itself.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for n in named {
        headers.remove(n.as_str());
    }
    for h in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(h);
    }
}

/// The three bound listeners.
pub struct Listeners {
    pub s3: TcpListener,
    pub web: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds the three addresses.
    pub async fn bind(
        s3: SocketAddr,
        web: SocketAddr,
        admin: SocketAddr,
    ) -> Result<Self, GatewayError> {
        let bind = |addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| GatewayError::Bind { addr, source })
        };
        Ok(Listeners {
            s3: bind(s3).await?,
            web: bind(web).await?,
            admin: bind(admin).await?,
        })
    }
}

#[derive(Clone, Copy, Debug)]
enum Port {
    Api(Endpoint),
    Admin,
}

/// Serves the three listeners until `stop`, then lets in-flight requests finish (up to 25 s).
/// With `tls`, the S3 and website listeners speak HTTPS; the admin port stays plain HTTP for the
/// kubelet's probes and Prometheus.
pub async fn serve(
    gateway: Arc<Gateway>,
    listeners: Listeners,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: CancellationToken,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let probe = {
        let gw = gateway.clone();
        let stop = stop.clone();
        tokio::spawn(async move { gw.probe_upstream(stop).await })
    };
    let s3 = accept_loop(
        listeners.s3,
        acceptor.clone(),
        gateway.clone(),
        Port::Api(Endpoint::S3),
        stop.clone(),
    );
    let web = accept_loop(
        listeners.web,
        acceptor,
        gateway.clone(),
        Port::Api(Endpoint::Website),
        stop.clone(),
    );
    let admin = accept_loop(listeners.admin, None, gateway, Port::Admin, stop);
    tokio::join!(s3, web, admin);
    probe.abort();
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    gateway: Arc<Gateway>,
    port: Port,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let _ = tcp.set_nodelay(true);
        let gw = gateway.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            match tls {
                None => serve_connection(tcp, gw, port, stop).await,
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => serve_connection(stream, gw, port, stop).await,
                    Err(e) => debug!(%peer, error = %e, "TLS handshake failed"),
                },
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            ?port,
            left = connections.len(),
            "connections still open after the drain period"
        );
        connections.abort_all();
    }
}

async fn serve_connection<I>(io: I, gateway: Arc<Gateway>, port: Port, stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let gw = gateway.clone();
        async move {
            let resp = match port {
                Port::Api(endpoint) => gw.handle(endpoint, req).await,
                Port::Admin => gw.admin(&req),
            };
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .timer(TokioTimer::new())
        // A client that opens a connection and sends nothing must not hold it forever.
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stop.cancelled() => {
            // Finish the request in flight, then close (no new requests on this connection).
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(?port, error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_must_be_plain_http_host_port() {
        assert_eq!(
            authority("http://127.0.0.1:3900").unwrap().as_str(),
            "127.0.0.1:3900"
        );
        assert_eq!(
            authority("http://garage:3900/").unwrap().as_str(),
            "garage:3900"
        );
        for bad in [
            "https://garage:3900",
            "garage:3900",
            "http://garage:3900/x",
            "",
        ] {
            assert!(authority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("content-length", HeaderValue::from_static("3"));
        h.insert("host", HeaderValue::from_static("gw"));
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["content-length", "host"]);
    }
}
