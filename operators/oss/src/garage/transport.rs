//! The HTTP/1 transport both clients share: hyper-util's pooled client (keep-alive connections
//! across reconciles) and a deadline over the whole exchange, body included.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::error::{GarageError, Result};

/// Pooled plain-HTTP client.
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A response read to its end.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    #[allow(dead_code)] // kept for callers that need ETags or request ids
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A new pooled client. Idle connections are dropped after 30 s, before Garage's own idle
/// timeout could close them under us.
pub(crate) fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// Sends `req` and reads the whole answer within `timeout`.
pub(crate) async fn send(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Answer> {
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| GarageError::Transport(error_chain(&e)))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| GarageError::Transport(format!("reading body: {e}")))?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(GarageError::Timeout(timeout)),
    }
}

/// The error with its sources ("client error (Connect): tcp connect error: Connection refused"):
/// hyper-util's top-level message alone says nothing useful.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Percent-encodes a query value or path segment: everything but RFC 3986 unreserved
/// characters, as SigV4's canonical form wants.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query string from pairs (values encoded).
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The base URL without a trailing slash; refuses anything but `http://host[:port]`.
pub(crate) fn base_url(url: &str) -> Result<String> {
    let trimmed = url.trim_end_matches('/');
    let uri: http::Uri = trimmed
        .parse()
        .map_err(|e| GarageError::InvalidRequest(format!("base URL {url:?}: {e}")))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(GarageError::InvalidRequest(format!(
            "base URL {url:?}: only http://host[:port] is supported"
        )));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_sigv4() {
        assert_eq!(encode("a b/c~d"), "a%20b%2Fc~d");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(query(&[("id", "x y"), ("k", "1")]), "id=x%20y&k=1");
    }

    #[test]
    fn base_url_is_checked() {
        assert_eq!(
            base_url("http://127.0.0.1:3903/").ok().as_deref(),
            Some("http://127.0.0.1:3903")
        );
        assert!(base_url("https://x").is_err());
        assert!(base_url("nonsense").is_err());
    }
}
