//! The request path of a KMS replica, independent of the HTTP server: check the protocol
//! headers, authenticate (SigV4), authorise and run the operation, then write one audit line and
//! count it. The keyring and the access keys are swapped whole when a watch reports a change.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use zeroize::Zeroizing;

use crate::api::{self, Change, Reply};
use crate::authz::{Grant, Operation};
use crate::error::KmsError;
use crate::keyring::Keyring;
use crate::sigv4;

/// The SigV4 service name clients sign for.
pub const SIGNING_SERVICE: &str = "kms";
/// The JSON protocol's content type.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// An access key: its secret and what it may do.
#[derive(Clone, Debug)]
pub struct AccessKey {
    /// The secret access key.
    pub secret: Zeroizing<String>,
    /// What it may do.
    pub grant: Grant,
}

/// Per-operation metrics.
#[derive(Clone)]
pub struct Metrics {
    requests: IntCounterVec,
    seconds: HistogramVec,
}

impl Metrics {
    /// Registers `agility_kms_requests_total{operation,result}` and
    /// `agility_kms_request_duration_seconds{operation}`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "agility_kms_requests_total",
                "KMS API requests by operation and result",
            ),
            &["operation", "result"],
        )?;
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "agility_kms_request_duration_seconds",
                "Time to serve a KMS API request (after the body was read)",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05,
            ]),
            &["operation"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        Ok(Metrics { requests, seconds })
    }
}

/// What a replica serves with.
pub struct Service {
    region: String,
    keyring: RwLock<Arc<Keyring>>,
    access_keys: RwLock<Arc<HashMap<String, AccessKey>>>,
    metrics: Metrics,
}

/// The HTTP answer, and a state change for the server to write to the `Cmk`.
#[derive(Debug)]
pub struct Outcome {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Vec<u8>,
    /// A management operation's change.
    pub mutation: Option<Change>,
    /// Who asked (for the audit line of the change's write).
    pub principal: String,
}

/// An incoming request.
pub struct Incoming<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path and query.
    pub uri: &'a str,
    /// Headers.
    pub headers: &'a [(String, String)],
    /// Body.
    pub body: &'a [u8],
    /// Request id for the audit line.
    pub request_id: &'a str,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl Service {
    /// A service for `region` (the SigV4 scope clients sign for).
    pub fn new(region: &str, metrics: Metrics) -> Self {
        Service {
            region: region.to_owned(),
            keyring: RwLock::new(Arc::new(Keyring::default())),
            access_keys: RwLock::new(Arc::new(HashMap::new())),
            metrics,
        }
    }

    /// Replaces the keyring (a watch saw a change).
    pub fn set_keyring(&self, ring: Keyring) {
        *self
            .keyring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ring);
    }

    /// Replaces the access keys.
    pub fn set_access_keys(&self, keys: HashMap<String, AccessKey>) {
        *self
            .access_keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
    }

    fn snapshot(&self) -> (Arc<Keyring>, Arc<HashMap<String, AccessKey>>) {
        let ring = self
            .keyring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let keys = self
            .access_keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        (ring, keys)
    }

    /// Serves one request at time `now`.
    pub fn serve(&self, req: &Incoming<'_>, now: SystemTime) -> Outcome {
        let started = std::time::Instant::now();
        let op = header(req.headers, "x-amz-target").and_then(Operation::from_target);
        let op_label = op.map_or("Unknown", Operation::name);
        let (principal, result) = match self.authorised(req, op, now) {
            Ok((grant, op)) => {
                let (ring, _) = self.snapshot();
                let secs = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                (
                    grant.principal.clone(),
                    api::handle(op, req.body, &grant, &ring, secs),
                )
            }
            Err((principal, e)) => (principal, Err(e)),
        };
        let outcome = match &result {
            Ok(reply) => Outcome {
                status: 200,
                body: reply.body.to_string().into_bytes(),
                mutation: reply.mutation.clone(),
                principal: principal.clone(),
            },
            Err(e) => Outcome {
                status: e.status(),
                body: e.body().to_string().into_bytes(),
                mutation: None,
                principal: principal.clone(),
            },
        };
        let label = match &result {
            Ok(_) => "Success",
            Err(e) => e.result_label(),
        };
        audit(req.request_id, &principal, op_label, &result, label);
        self.metrics
            .requests
            .with_label_values(&[op_label, label])
            .inc();
        self.metrics
            .seconds
            .with_label_values(&[op_label])
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    fn authorised(
        &self,
        req: &Incoming<'_>,
        op: Option<Operation>,
        now: SystemTime,
    ) -> Result<(Grant, Operation), (String, KmsError)> {
        let anonymous = |e| ("anonymous".to_owned(), e);
        if req.method != "POST" || req.uri != "/" {
            return Err(anonymous(KmsError::UnsupportedOperation(
                "the KMS API takes POST /".into(),
            )));
        }
        let (_, keys) = self.snapshot();
        let verified = sigv4::verify(
            &sigv4::Request {
                method: req.method,
                uri: req.uri,
                headers: req.headers,
                body: req.body,
            },
            &self.region,
            SIGNING_SERVICE,
            now,
            |akid| keys.get(akid).map(|k| k.secret.as_str().to_owned()),
        )
        .map_err(anonymous)?;
        let grant = keys
            .get(&verified.access_key_id)
            .map(|k| k.grant.clone())
            .ok_or_else(|| anonymous(KmsError::UnrecognizedClient))?;
        let fail = |e| (grant.principal.clone(), e);
        let content_type = header(req.headers, "content-type").unwrap_or_default();
        if !content_type.starts_with(CONTENT_TYPE) {
            return Err(fail(KmsError::Serialization(format!(
                "Content-Type must be {CONTENT_TYPE}"
            ))));
        }
        let op = op.ok_or_else(|| {
            fail(KmsError::UnsupportedOperation(
                "X-Amz-Target names no supported TrentService operation".into(),
            ))
        })?;
        Ok((grant, op))
    }
}

/// One structured line per request: who, which key and version, what, the result, the request
/// id. Never key material or plaintext.
fn audit(
    request_id: &str,
    principal: &str,
    op: &str,
    result: &Result<Reply, KmsError>,
    label: &str,
) {
    let (key, version) = match result {
        Ok(r) => (r.key.as_deref().unwrap_or(""), r.version.unwrap_or(0)),
        Err(_) => ("", 0),
    };
    tracing::info!(
        target: "agility_kms::audit",
        request_id,
        principal,
        key,
        version,
        operation = op,
        result = label,
        "kms request"
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;

    use super::*;
    use crate::keyring::fixtures::record;

    const AKID: &str = "AKIAAGILITYTEST0001";
    const SECRET: &str = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-0001";

    fn service(ring: Keyring) -> (Service, Registry) {
        let registry = Registry::new();
        let svc = Service::new("local", Metrics::new(&registry).unwrap());
        svc.set_keyring(ring);
        svc.set_access_keys(HashMap::from([(
            AKID.to_owned(),
            AccessKey {
                secret: Zeroizing::new(SECRET.to_owned()),
                grant: Grant {
                    principal: "shop/orders-app".into(),
                    ..crate::testing::grant("shop")
                },
            },
        )]));
        (svc, registry)
    }

    fn signed(target: &str, body: &str, secret: &str, at: SystemTime) -> Vec<(String, String)> {
        crate::testing::signed(
            (AKID, secret),
            "kms.agility-system.svc",
            target,
            body.as_bytes(),
            at,
        )
    }

    fn call(svc: &Service, target: &str, body: &str, secret: &str, at: SystemTime) -> Outcome {
        let headers = signed(target, body, secret, at);
        svc.serve(
            &Incoming {
                method: "POST",
                uri: "/",
                headers: &headers,
                body: body.as_bytes(),
                request_id: "req-1",
            },
            at,
        )
    }

    fn json(o: &Outcome) -> serde_json::Value {
        serde_json::from_slice(&o.body).unwrap()
    }

    #[test]
    fn a_signed_encrypt_and_decrypt_round_trip_and_are_counted() {
        let (svc, registry) = service(Keyring::new([record("shop", "alias/orders")]));
        let now = SystemTime::now();
        let body = format!(
            r#"{{"KeyId":"alias/orders","Plaintext":"{}"}}"#,
            B64.encode(b"hi")
        );
        let enc = call(&svc, "Encrypt", &body, SECRET, now);
        assert_eq!(enc.status, 200, "{}", String::from_utf8_lossy(&enc.body));
        let blob = json(&enc)["CiphertextBlob"].as_str().unwrap().to_owned();
        let dec = call(
            &svc,
            "Decrypt",
            &format!(r#"{{"CiphertextBlob":"{blob}"}}"#),
            SECRET,
            now,
        );
        assert_eq!(json(&dec)["Plaintext"], B64.encode(b"hi"));
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(
            text.contains(r#"agility_kms_requests_total{operation="Encrypt",result="Success"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn bad_signatures_unknown_targets_and_old_requests_are_refused() {
        let (svc, _) = service(Keyring::new([record("shop", "alias/orders")]));
        let now = SystemTime::now();
        let wrong = call(&svc, "ListKeys", "{}", "not-the-secret", now);
        assert_eq!(
            (wrong.status, json(&wrong)["__type"].as_str()),
            (403, Some("InvalidSignatureException"))
        );
        let unknown = call(&svc, "CreateGrant", "{}", SECRET, now);
        assert_eq!(json(&unknown)["__type"], "UnsupportedOperationException");
        let headers = signed("ListKeys", "{}", SECRET, now - Duration::from_secs(3600));
        let old = svc.serve(
            &Incoming {
                method: "POST",
                uri: "/",
                headers: &headers,
                body: b"{}",
                request_id: "r",
            },
            now,
        );
        assert_eq!(old.status, 403);
        let disable = call(
            &svc,
            "DisableKey",
            r#"{"KeyId":"alias/orders"}"#,
            SECRET,
            now,
        );
        assert_eq!(
            json(&disable)["__type"],
            "AccessDeniedException",
            "management is not granted by default"
        );
    }
}
