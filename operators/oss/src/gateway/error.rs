//! Errors of the gateway and the S3 XML error answers it sends.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// What can go wrong in the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A listener could not be bound.
    #[error("binding {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// An upstream URL is not `http://host:port`.
    #[error("upstream {0:?} is not an http://host:port URL")]
    Upstream(String),
    /// The rules could not be read or parsed.
    #[error("gateway rules: {0}")]
    Rules(String),
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// A request could not be re-signed.
    #[error("signing: {0}")]
    Signing(String),
    /// A request the gateway cannot forward.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Watching the rules ConfigMap failed.
    #[error("watching the rules ConfigMap")]
    Kube(#[from] kube::Error),
}

/// Escapes text for an XML element.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// An S3-style XML error (`<Error><Code>…`) as S3 clients parse it.
pub fn s3_error(
    status: StatusCode,
    code: &str,
    message: &str,
    resource: &str,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
        xml_escape(code),
        xml_escape(message),
        xml_escape(resource),
        xml_escape(request_id)
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amz-request-id", v);
    }
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn xml_error_is_escaped() {
        let r = s3_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "a <b> & c",
            "/b/k&x",
            "id1",
        );
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()["content-type"], "application/xml");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let s = std::str::from_utf8(&body).unwrap();
        assert!(s.contains("<Code>AccessDenied</Code><Message>a &lt;b&gt; &amp; c</Message><Resource>/b/k&amp;x</Resource>"), "{s}");
    }
}
