//! Test-only mock API server built on tower-test: lets unit tests assert exactly which requests a
//! client path sends (and, as importantly, which it does not send).

use std::time::Duration;

use futures::FutureExt;
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::Value;
use tower_test::mock::{self, Handle, SendResponse};

/// The server side of a mocked [`Client`].
pub(crate) struct ApiServerMock {
    handle: Handle<Request<Body>, Response<Body>>,
}

/// One captured request.
pub(crate) struct MockRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
    send: SendResponse<Response<Body>>,
}

impl ApiServerMock {
    /// A client wired to a fresh mock server.
    pub(crate) fn new() -> (Client, Self) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(service, "default"), ApiServerMock { handle })
    }

    /// The next request the client sends (panics after 5s: the test expected a request).
    pub(crate) async fn next(&mut self) -> MockRequest {
        let (request, send) =
            tokio::time::timeout(Duration::from_secs(5), self.handle.next_request())
                .await
                .expect("timed out waiting for a request")
                .expect("client dropped");
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.expect("request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        MockRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            body,
            send,
        }
    }

    /// Asserts the client has sent no request that the test did not consume.
    pub(crate) fn assert_no_pending(mut self) {
        if let Some(Some((req, _))) = self.handle.next_request().now_or_never() {
            panic!("unexpected request {} {}", req.method(), req.uri());
        }
    }
}

impl MockRequest {
    /// Answers with `response`.
    pub(crate) fn respond(self, response: Response<Body>) {
        self.send.send_response(response);
    }
}

/// A 200 response with a JSON body.
pub(crate) fn object_response(value: &Value) -> Response<Body> {
    json_response(200, value)
}

/// A response with the given status and JSON body.
pub(crate) fn json_response(code: u16, value: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(value).expect("json")))
        .expect("response")
}

/// A Kubernetes `Status` error response.
pub(crate) fn status_response(code: u16, reason: &str) -> Response<Body> {
    json_response(
        code,
        &serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": reason, "code": code, "message": format!("mock {reason}")}),
    )
}
