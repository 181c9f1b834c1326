//! The gateway's rules as one pure function: [`decide`] looks at a request's method, path, query
//! and headers and at the store's [`GatewayConfig`] and says whether to pass the request through,
//! re-sign it with the gateway's key, or answer with an S3 error. No I/O, so every rule is
//! unit-tested here.
//!
//! Why the gateway exists: Garage signs-or-refuses every S3 request (no anonymous access), stores
//! objects in plaintext whatever SSE header a client sends, and has no object ACLs. A client that
//! asks for encryption or a public object must hear "no" instead of silently getting neither.

use http::{HeaderMap, Method, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::config::{BucketRules, GatewayConfig};
use crate::crd::{Acl, RefererRules};

/// Which listener a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The S3 API (Garage port 3900).
    S3,
    /// Static websites (Garage port 3902), bucket chosen by Host.
    Website,
}

/// The domains buckets are addressed under (virtual-host style).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Domains {
    /// `bucket.<s3>` on the S3 endpoint (path style always works).
    pub s3: Option<String>,
    /// `bucket.<web>` on the website endpoint (Host == bucket name always works).
    pub web: Option<String>,
}

/// The parts of a request the rules look at.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    pub method: &'a Method,
    /// The raw (still percent-encoded) path.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

/// How a request proves who sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization` header (SigV4, or SigV2 which Garage refuses itself).
    Header,
    /// Signature in the query: a presigned URL (`X-Amz-Signature`/`X-Amz-Credential`, or the
    /// legacy `Signature`/`AWSAccessKeyId`).
    Query,
    /// A browser form upload (`POST /bucket`, `multipart/form-data`): the policy and signature are
    /// form fields Garage verifies.
    Form,
    /// Nothing.
    Anonymous,
}

/// Why a request was refused (the metrics label and the S3 error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyKind {
    /// Anonymous request the bucket ACL does not allow.
    Acl,
    /// Referer anti-leech.
    Referer,
    /// A server-side-encryption header or PutBucketEncryption.
    Sse,
    /// An object ACL or PutObjectAcl/PutBucketAcl.
    ObjectAcl,
    /// A request the gateway cannot parse (bad percent-encoding in the path).
    Invalid,
}

impl DenyKind {
    /// The `decision` label of the request counter.
    pub fn label(self) -> &'static str {
        match self {
            DenyKind::Acl => "denied_acl",
            DenyKind::Referer => "denied_referer",
            DenyKind::Sse => "refused_sse",
            DenyKind::ObjectAcl => "refused_acl",
            DenyKind::Invalid => "invalid",
        }
    }
}

/// An S3 error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub kind: DenyKind,
    pub status: StatusCode,
    /// The S3 error code (`AccessDenied`, `NotImplemented`, `InvalidURI`).
    pub code: &'static str,
    pub message: String,
}

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send it to Garage unchanged (Host kept so the client's signature verifies there).
    Forward,
    /// Send it to Garage signed with the gateway's key, path style, at this path and query.
    Resign { path_and_query: String },
    /// Answer with this error; Garage never sees the request.
    Deny(Denial),
}

impl Decision {
    /// The `decision` label of the request counter.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Forward => "forwarded",
            Decision::Resign { .. } => "resigned",
            Decision::Deny(d) => d.kind.label(),
        }
    }
}

/// The bucket and key a request addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub bucket: Option<String>,
    /// The raw key (percent-encoded as received), `None` for a bucket-level request.
    pub key: Option<String>,
    /// Whether the bucket came from the Host (virtual-host style).
    pub virtual_host: bool,
}

const SSE_MESSAGE: &str = "Server-side encryption is not available on this storage service: \
     Garage would store the object unencrypted. Remove the x-amz-server-side-encryption* headers \
     (and do not set a bucket encryption configuration); encrypt on the client if you need it.";

const ACL_MESSAGE: &str = "Object and bucket ACLs are not supported: who may read or write \
     without a key is set by the Bucket resource (spec.acl: private, public-read or \
     public-read-write). Send no x-amz-acl header (or x-amz-acl: private) and no x-amz-grant-* \
     headers.";

/// Decides what to do with one request.
pub fn decide(
    endpoint: Endpoint,
    req: &RequestView<'_>,
    domains: &Domains,
    config: &GatewayConfig,
) -> Decision {
    // Browsers send CORS preflights without credentials; Garage answers them from the bucket's
    // CORS rules without a signature, so they pass as they are.
    if req.method == Method::OPTIONS {
        return Decision::Forward;
    }
    let host = host_of(req.headers);
    match endpoint {
        Endpoint::Website => {
            let bucket = website_bucket(host.as_deref(), domains.web.as_deref());
            let rules = bucket.as_deref().and_then(|b| config.buckets.get(b));
            match check_referer(rules, req.headers) {
                Ok(()) => Decision::Forward,
                Err(d) => Decision::Deny(d),
            }
        }
        Endpoint::S3 => decide_s3(req, host.as_deref(), domains, config),
    }
}

fn decide_s3(
    req: &RequestView<'_>,
    host: Option<&str>,
    domains: &Domains,
    config: &GatewayConfig,
) -> Decision {
    let query = QueryNames::parse(req.query);
    if let Some(d) = refuse_sse(req, &query) {
        return Decision::Deny(d);
    }
    if let Some(d) = refuse_acl(req, &query) {
        return Decision::Deny(d);
    }
    let target = s3_target(host, req.path, domains.s3.as_deref());
    let rules = target.bucket.as_deref().and_then(|b| config.buckets.get(b));
    match auth_of(req, &query, &target) {
        // Anti-leech protects public and shared links (anonymous and presigned URLs, as in the
        // product we model); a header-signed request comes from an application holding a key,
        // which has no Referer to speak of and can already do whatever its key allows.
        Auth::Header => Decision::Forward,
        Auth::Query | Auth::Form => match check_referer(rules, req.headers) {
            Ok(()) => Decision::Forward,
            Err(d) => Decision::Deny(d),
        },
        Auth::Anonymous => decide_anonymous(req, &query, &target, rules, config),
    }
}

fn decide_anonymous(
    req: &RequestView<'_>,
    query: &QueryNames,
    target: &Target,
    rules: Option<&BucketRules>,
    config: &GatewayConfig,
) -> Decision {
    let Some(bucket) = target.bucket.as_deref() else {
        return Decision::Deny(access_denied(
            "Anonymous requests cannot list buckets: sign the request with an access key.",
        ));
    };
    let acl = rules.map(|r| r.acl).unwrap_or_default();
    if !anonymous_allowed(acl, req, query, target) {
        return Decision::Deny(access_denied(&format!(
            "Anonymous {} is not allowed on bucket {bucket} (ACL {}): sign the request with an \
             access key.",
            req.method,
            acl_name(acl)
        )));
    }
    // A copy reads another bucket with the gateway's key: that bucket must be public-read too.
    if let Some(src) = copy_source_bucket(req.headers) {
        let src_acl = config.buckets.get(&src).map(|r| r.acl).unwrap_or_default();
        if src_acl == Acl::Private {
            return Decision::Deny(access_denied(&format!(
                "Anonymous copy from bucket {src} (ACL private) is not allowed."
            )));
        }
    }
    if let Err(d) = check_referer(rules, req.headers) {
        return Decision::Deny(d);
    }
    match resign_path(bucket, target, req.path) {
        Some(path) => Decision::Resign {
            path_and_query: match req.query {
                Some(q) if !q.is_empty() => format!("{path}?{q}"),
                _ => path,
            },
        },
        None => Decision::Deny(Denial {
            kind: DenyKind::Invalid,
            status: StatusCode::BAD_REQUEST,
            code: "InvalidURI",
            message: "The request path is not valid percent-encoded UTF-8.".into(),
        }),
    }
}

fn acl_name(acl: Acl) -> &'static str {
    match acl {
        Acl::Private => "private",
        Acl::PublicRead => "public-read",
        Acl::PublicReadWrite => "public-read-write",
    }
}

/// Query parameters a public read may carry (listing options, response header overrides, SDK
/// markers); any other sub-resource (`?acl`, `?cors`, `?uploads`, …) is an operation of its own.
fn read_param(name: &str) -> bool {
    name.starts_with("response-")
        || matches!(
            name,
            "versionId"
                | "partNumber"
                | "x-id"
                | "list-type"
                | "prefix"
                | "delimiter"
                | "marker"
                | "max-keys"
                | "encoding-type"
                | "continuation-token"
                | "fetch-owner"
                | "start-after"
        )
}

/// What the bucket ACL lets an unsigned request do.
fn anonymous_allowed(acl: Acl, req: &RequestView<'_>, q: &QueryNames, t: &Target) -> bool {
    let object = t.key.is_some();
    let m = req.method;
    let reads = (m == Method::GET || m == Method::HEAD) && q.all(read_param);
    let read = match acl {
        Acl::Private => return false,
        // GET/HEAD of objects, ListObjects(V2) and HeadBucket (which tools send before a list).
        Acl::PublicRead | Acl::PublicReadWrite => reads,
    };
    if read || acl != Acl::PublicReadWrite {
        return read;
    }
    let only = |names: &[&str]| q.all(|n| names.contains(&n) || n == "x-id");
    if object {
        if m == Method::PUT {
            // PutObject, CopyObject, UploadPart (partNumber + uploadId together).
            only(&[])
                || (q.has("partNumber") && q.has("uploadId") && only(&["partNumber", "uploadId"]))
        } else if m == Method::POST {
            // CreateMultipartUpload, CompleteMultipartUpload.
            (q.has("uploads") && only(&["uploads"])) || (q.has("uploadId") && only(&["uploadId"]))
        } else if m == Method::DELETE {
            // DeleteObject, AbortMultipartUpload.
            only(&["versionId"]) || (q.has("uploadId") && only(&["uploadId"]))
        } else if m == Method::GET {
            // ListParts.
            q.has("uploadId") && only(&["uploadId", "max-parts", "part-number-marker"])
        } else {
            false
        }
    } else if m == Method::POST {
        // DeleteObjects deletes objects, which the ACL allows.
        q.has("delete") && only(&["delete"])
    } else if m == Method::GET {
        // ListMultipartUploads.
        q.has("uploads")
            && only(&[
                "uploads",
                "prefix",
                "delimiter",
                "key-marker",
                "upload-id-marker",
                "max-uploads",
                "encoding-type",
            ])
    } else {
        false
    }
}

fn access_denied(message: &str) -> Denial {
    Denial {
        kind: DenyKind::Acl,
        status: StatusCode::FORBIDDEN,
        code: "AccessDenied",
        message: message.to_owned(),
    }
}

/// Refuses SSE: Garage ignores `x-amz-server-side-encryption*` and would store plaintext.
fn refuse_sse(req: &RequestView<'_>, q: &QueryNames) -> Option<Denial> {
    let header = req
        .headers
        .keys()
        .any(|k| k.as_str().starts_with("x-amz-server-side-encryption"));
    let put_encryption = req.method == Method::PUT && q.has("encryption");
    (header || put_encryption).then(|| Denial {
        kind: DenyKind::Sse,
        status: StatusCode::NOT_IMPLEMENTED,
        code: "NotImplemented",
        message: SSE_MESSAGE.into(),
    })
}

/// Refuses ACLs other than `private`: Garage has none and would ignore them.
fn refuse_acl(req: &RequestView<'_>, q: &QueryNames) -> Option<Denial> {
    let canned = req.headers.get_all("x-amz-acl").iter().any(|v| {
        !v.to_str()
            .map(|s| s.trim().eq_ignore_ascii_case("private"))
            .unwrap_or(false)
    });
    let grants = req
        .headers
        .keys()
        .any(|k| k.as_str().starts_with("x-amz-grant-"));
    let put_acl = req.method == Method::PUT && q.has("acl");
    (canned || grants || put_acl).then(|| Denial {
        kind: DenyKind::ObjectAcl,
        status: StatusCode::NOT_IMPLEMENTED,
        code: "NotImplemented",
        message: ACL_MESSAGE.into(),
    })
}

/// How the request is authenticated. Query signatures win over an `Authorization` header, as in
/// Garage (a browser may add an unrelated Authorization header to a presigned link), so a stray
/// header cannot lift a presigned link out of the Referer rules.
pub fn auth_of(req: &RequestView<'_>, q: &QueryNames, target: &Target) -> Auth {
    let query_signed = q.any(|n| {
        ["x-amz-signature", "x-amz-credential", "x-amz-algorithm"]
            .iter()
            .any(|s| n.eq_ignore_ascii_case(s))
            || n == "Signature"
            || n == "AWSAccessKeyId"
    });
    if query_signed {
        return Auth::Query;
    }
    if req.headers.contains_key(http::header::AUTHORIZATION) {
        return Auth::Header;
    }
    let form = req.method == Method::POST
        && target.bucket.is_some()
        && target.key.is_none()
        && q.is_empty()
        && req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/form-data")
            });
    if form { Auth::Form } else { Auth::Anonymous }
}

/// The Referer anti-leech check of a bucket (no rules: everything passes).
fn check_referer(rules: Option<&BucketRules>, headers: &HeaderMap) -> Result<(), Denial> {
    let Some(rules) = rules.and_then(|r| r.referer.as_ref()) else {
        return Ok(());
    };
    if referer_allowed(rules, headers) {
        Ok(())
    } else {
        Err(Denial {
            kind: DenyKind::Referer,
            status: StatusCode::FORBIDDEN,
            code: "AccessDenied",
            message: "Access denied by the bucket's Referer rules.".into(),
        })
    }
}

/// Whether the Referer satisfies the rules.
pub fn referer_allowed(rules: &RefererRules, headers: &HeaderMap) -> bool {
    let referer = headers
        .get(http::header::REFERER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .unwrap_or_default();
    if referer.is_empty() {
        return rules.allow_empty;
    }
    rules.allowed.iter().any(|p| glob_match(p, &referer))
}

/// Case-insensitive glob: `*` matches any run of characters (also none), `?` exactly one.
/// Iterative with one backtrack point, so linear-ish and safe against hostile patterns.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let t: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The request's host, lower-case, without port.
fn host_of(headers: &HeaderMap) -> Option<String> {
    let h = headers.get(http::header::HOST)?.to_str().ok()?.trim();
    let without_port = if h.starts_with('[') {
        // IPv6 literal: never a bucket, keep as is.
        h
    } else {
        h.rsplit_once(':').map_or(h, |(host, _)| host)
    };
    Some(without_port.trim_end_matches('.').to_ascii_lowercase())
}

/// `bucket.<domain>` → `bucket`.
fn strip_domain<'a>(host: &'a str, domain: &str) -> Option<&'a str> {
    let domain = domain.trim_matches('.');
    host.strip_suffix(domain)
        .and_then(|rest| rest.strip_suffix('.'))
        .filter(|b| !b.is_empty())
}

/// The bucket of a website request: `bucket.<web-domain>`, else the whole Host (Garage serves a
/// bucket whose name is the Host, for custom domains).
pub fn website_bucket(host: Option<&str>, web_domain: Option<&str>) -> Option<String> {
    let host = host?;
    if let Some(b) = web_domain.and_then(|d| strip_domain(host, d)) {
        return Some(b.to_owned());
    }
    (!host.is_empty()).then(|| host.to_owned())
}

/// Bucket and key of an S3 request, virtual-host style when the Host is `bucket.<s3-domain>`,
/// else path style.
pub fn s3_target(host: Option<&str>, path: &str, s3_domain: Option<&str>) -> Target {
    let path = path.strip_prefix('/').unwrap_or(path);
    if let Some(bucket) = host.zip(s3_domain).and_then(|(h, d)| strip_domain(h, d)) {
        return Target {
            bucket: Some(bucket.to_owned()),
            key: (!path.is_empty()).then(|| path.to_owned()),
            virtual_host: true,
        };
    }
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) => (b, (!k.is_empty()).then(|| k.to_owned())),
        None => (path, None),
    };
    let bucket = percent_decode_str(bucket).decode_utf8_lossy().into_owned();
    Target {
        bucket: (!bucket.is_empty()).then_some(bucket),
        key,
        virtual_host: false,
    }
}

/// Characters S3's canonical URI leaves as they are (RFC 3986 unreserved).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The path-style path of a re-signed request, in the canonical encoding Garage computes the
/// signature over (it decodes the path and re-encodes it), so the signature we make verifies
/// whatever encoding the client used. `None` if the key is not valid percent-encoded UTF-8.
fn resign_path(bucket: &str, target: &Target, raw_path: &str) -> Option<String> {
    let key_raw = if target.virtual_host {
        raw_path.strip_prefix('/').unwrap_or(raw_path)
    } else {
        target.key.as_deref().unwrap_or("")
    };
    let key = percent_decode_str(key_raw).decode_utf8().ok()?;
    let mut out = String::with_capacity(bucket.len() + key.len() + 2);
    out.push('/');
    out.push_str(&utf8_percent_encode(bucket, UNRESERVED).to_string());
    if target.key.is_some() {
        out.push('/');
        let segments: Vec<String> = key
            .split('/')
            .map(|s| utf8_percent_encode(s, UNRESERVED).to_string())
            .collect();
        out.push_str(&segments.join("/"));
    }
    Some(out)
}

/// The bucket of `x-amz-copy-source` (`bucket/key` or `/bucket/key`, URL-encoded).
fn copy_source_bucket(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("x-amz-copy-source")?;
    let decoded = percent_decode_str(&String::from_utf8_lossy(v.as_bytes()))
        .decode_utf8_lossy()
        .into_owned();
    let s = decoded.trim().trim_start_matches('/');
    Some(s.split('/').next().unwrap_or_default().to_owned())
}

/// The decoded names of a query string's parameters.
#[derive(Clone, Debug, Default)]
pub struct QueryNames(Vec<String>);

impl QueryNames {
    /// Parses the names of `a=1&b&c=`.
    pub fn parse(query: Option<&str>) -> Self {
        QueryNames(
            query
                .unwrap_or_default()
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let name = p.split_once('=').map_or(p, |(n, _)| n);
                    percent_decode_str(name).decode_utf8_lossy().into_owned()
                })
                .collect(),
        )
    }
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }
    fn any(&self, f: impl Fn(&str) -> bool) -> bool {
        self.0.iter().any(|n| f(n))
    }
    fn all(&self, f: impl Fn(&str) -> bool) -> bool {
        self.0.iter().all(|n| f(n))
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use http::HeaderValue;

    fn config() -> GatewayConfig {
        let mut c = GatewayConfig::default();
        let rules = |acl, referer: Option<RefererRules>| BucketRules { acl, referer };
        c.buckets.insert("priv".into(), rules(Acl::Private, None));
        c.buckets.insert("pub".into(), rules(Acl::PublicRead, None));
        c.buckets
            .insert("rw".into(), rules(Acl::PublicReadWrite, None));
        c.buckets.insert(
            "leech".into(),
            rules(
                Acl::PublicRead,
                Some(RefererRules {
                    allowed: vec!["https://*.example.com/*".into(), "https://ok.test/?".into()],
                    allow_empty: false,
                }),
            ),
        );
        c.buckets.insert(
            "leech-empty".into(),
            rules(
                Acl::PublicRead,
                Some(RefererRules {
                    allowed: vec!["https://example.com/*".into()],
                    allow_empty: true,
                }),
            ),
        );
        c.buckets.insert(
            "site".into(),
            rules(
                Acl::Private,
                Some(RefererRules {
                    allowed: vec!["https://example.com/*".into()],
                    allow_empty: false,
                }),
            ),
        );
        c
    }

    fn domains() -> Domains {
        Domains {
            s3: Some("s3.example.net".into()),
            web: Some("web.example.net".into()),
        }
    }

    fn headers(h: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in h {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    fn run(endpoint: Endpoint, method: &str, uri: &str, h: &[(&str, &str)]) -> Decision {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        let mut hs = vec![("host", "gw.local:8080")];
        hs.extend_from_slice(h);
        // A test that sets its own Host replaces the default one.
        if h.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            hs.remove(0);
        }
        let headers = headers(&hs);
        let req = RequestView {
            method: &method,
            path,
            query,
            headers: &headers,
        };
        decide(endpoint, &req, &domains(), &config())
    }

    fn s3(method: &str, uri: &str, h: &[(&str, &str)]) -> Decision {
        run(Endpoint::S3, method, uri, h)
    }

    const SIGNED: (&str, &str) = (
        "authorization",
        "AWS4-HMAC-SHA256 Credential=GK1/20250101/agility/s3/aws4_request, SignedHeaders=host, Signature=00",
    );
    const PRESIGNED: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=GK1%2F20250101%2Fagility%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=00";

    fn label(d: &Decision) -> &'static str {
        d.label()
    }

    fn resigned(d: &Decision) -> &str {
        match d {
            Decision::Resign { path_and_query } => path_and_query,
            other => panic!("expected resign, got {other:?}"),
        }
    }

    fn denial(d: Decision) -> Denial {
        match d {
            Decision::Deny(d) => d,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn signed_requests_pass_through_on_any_bucket() {
        for (m, u) in [
            ("GET", "/priv/a"),
            ("PUT", "/priv/a"),
            ("DELETE", "/priv"),
            ("GET", "/"),
            ("PUT", "/newbucket"),
            ("POST", "/priv?delete"),
            ("GET", "/leech/a"), // header-signed: no Referer rules
        ] {
            assert_eq!(s3(m, u, &[SIGNED]), Decision::Forward, "{m} {u}");
        }
    }

    #[test]
    fn anonymous_detection() {
        let q = |s| QueryNames::parse(Some(s));
        let t = s3_target(None, "/b/k", None);
        let h = HeaderMap::new();
        let get = Method::GET;
        let view = |headers| RequestView {
            method: &get,
            path: "/b/k",
            query: None,
            headers,
        };
        assert_eq!(auth_of(&view(&h), &q(""), &t), Auth::Anonymous);
        assert_eq!(auth_of(&view(&h), &q(PRESIGNED), &t), Auth::Query);
        for legacy in [
            "AWSAccessKeyId=AK&Expires=1&Signature=x",
            "Signature=x",
            "x-amz-credential=a",
            "X-Amz-Signature=x",
        ] {
            assert_eq!(auth_of(&view(&h), &q(legacy), &t), Auth::Query, "{legacy}");
        }
        let signed = headers(&[SIGNED]);
        assert_eq!(auth_of(&view(&signed), &q(""), &t), Auth::Header);
        // A query signature wins over a header (as in Garage).
        assert_eq!(auth_of(&view(&signed), &q(PRESIGNED), &t), Auth::Query);
        // Parameters that merely look similar are not signatures.
        assert_eq!(
            auth_of(&view(&h), &q("signature-version=4&prefix=Signature"), &t),
            Auth::Anonymous
        );
        // A browser form upload to the bucket.
        let form = headers(&[("content-type", "multipart/form-data; boundary=x")]);
        let post = Method::POST;
        let bucket = s3_target(None, "/b", None);
        let v = RequestView {
            method: &post,
            path: "/b",
            query: None,
            headers: &form,
        };
        assert_eq!(auth_of(&v, &q(""), &bucket), Auth::Form);
        assert_eq!(auth_of(&v, &q(""), &t), Auth::Anonymous);
    }

    #[test]
    fn bucket_and_key_parsing() {
        let d = Some("s3.example.net");
        let t = s3_target(Some("pub.s3.example.net"), "/a/b.txt", d);
        assert_eq!(t.bucket.as_deref(), Some("pub"));
        assert_eq!(t.key.as_deref(), Some("a/b.txt"));
        assert!(t.virtual_host);
        let t = s3_target(Some("s3.example.net"), "/pub/a/b.txt", d);
        assert_eq!(
            (t.bucket.as_deref(), t.key.as_deref(), t.virtual_host),
            (Some("pub"), Some("a/b.txt"), false)
        );
        let t = s3_target(Some("my.bucket.s3.example.net"), "/", d);
        assert_eq!((t.bucket.as_deref(), t.key), (Some("my.bucket"), None));
        assert_eq!(s3_target(Some("gw"), "/pub", d).key, None);
        assert_eq!(s3_target(Some("gw"), "/pub/", d).key, None);
        assert_eq!(s3_target(Some("gw"), "/", d).bucket, None);
        assert_eq!(s3_target(Some("gw"), "", None).bucket, None);
        // Without a domain, a dotted Host is not a virtual host.
        assert_eq!(
            s3_target(Some("pub.s3.example.net"), "/x/y", None)
                .bucket
                .as_deref(),
            Some("x")
        );
        // Host headers with port and case, through decide.
        assert_eq!(
            label(&s3("GET", "/k", &[("host", "PUB.S3.Example.Net:8443")])),
            "resigned"
        );
        assert_eq!(
            website_bucket(Some("site.web.example.net"), Some("web.example.net")).as_deref(),
            Some("site")
        );
        assert_eq!(
            website_bucket(Some("www.shop.test"), Some("web.example.net")).as_deref(),
            Some("www.shop.test")
        );
        assert_eq!(website_bucket(Some("site"), None).as_deref(), Some("site"));
        assert_eq!(website_bucket(None, None), None);
    }

    #[test]
    fn resigned_requests_are_path_style_in_canonical_encoding() {
        assert_eq!(resigned(&s3("GET", "/pub/a/b.txt", &[])), "/pub/a/b.txt");
        assert_eq!(
            resigned(&s3("GET", "/pub?list-type=2&prefix=a%2F", &[])),
            "/pub?list-type=2&prefix=a%2F"
        );
        assert_eq!(
            resigned(&s3("GET", "/x/y(1)%20z", &[("host", "pub.s3.example.net")])),
            "/pub/x/y%281%29%20z"
        );
        assert_eq!(
            resigned(&s3("GET", "/pub/caf%C3%A9/%7E+", &[])),
            "/pub/caf%C3%A9/~%2B"
        );
        assert_eq!(
            resigned(&s3("GET", "/", &[("host", "pub.s3.example.net")])),
            "/pub"
        );
        let bad = denial(s3("GET", "/pub/%FF", &[]));
        assert_eq!(
            (bad.status, bad.code),
            (StatusCode::BAD_REQUEST, "InvalidURI")
        );
    }

    #[test]
    fn anonymous_on_private_and_unknown_buckets_is_denied() {
        for b in ["priv", "unknown"] {
            for (m, u) in [
                ("GET", format!("/{b}/k")),
                ("HEAD", format!("/{b}/k")),
                ("GET", format!("/{b}")),
                ("PUT", format!("/{b}/k")),
                ("DELETE", format!("/{b}/k")),
            ] {
                let d = denial(s3(m, &u, &[]));
                assert_eq!(
                    (d.kind, d.status, d.code),
                    (DenyKind::Acl, StatusCode::FORBIDDEN, "AccessDenied"),
                    "{m} {u}"
                );
            }
        }
        // ListBuckets needs a key.
        assert_eq!(label(&s3("GET", "/", &[])), "denied_acl");
    }

    #[test]
    fn public_read_allows_reads_only() {
        for (m, u) in [
            ("GET", "/pub/k"),
            ("HEAD", "/pub/k"),
            (
                "GET",
                "/pub/k?response-content-type=text%2Fplain&x-id=GetObject",
            ),
            ("GET", "/pub/k?partNumber=1"),
            ("GET", "/pub"),
            ("GET", "/pub/"),
            (
                "GET",
                "/pub?list-type=2&prefix=a&delimiter=%2F&max-keys=10&continuation-token=x",
            ),
            ("GET", "/pub?marker=a"),
            ("HEAD", "/pub"),
        ] {
            assert_eq!(label(&s3(m, u, &[])), "resigned", "{m} {u}");
        }
        for (m, u) in [
            ("PUT", "/pub/k"),
            ("POST", "/pub/k?uploads"),
            ("PUT", "/pub/k?partNumber=1&uploadId=u"),
            ("POST", "/pub/k?uploadId=u"),
            ("DELETE", "/pub/k?uploadId=u"),
            ("DELETE", "/pub/k"),
            ("DELETE", "/pub"),
            ("PUT", "/pub"),
            ("POST", "/pub?delete"),
            ("GET", "/pub?cors"),
            ("GET", "/pub?website"),
            ("GET", "/pub?lifecycle"),
            ("GET", "/pub?uploads"),
            ("GET", "/pub?acl"),
            ("GET", "/pub/k?tagging"),
            ("GET", "/pub/k?uploadId=u"),
            ("PATCH", "/pub/k"),
        ] {
            assert_eq!(label(&s3(m, u, &[])), "denied_acl", "{m} {u}");
        }
    }

    #[test]
    fn public_read_write_allows_object_writes_and_multipart() {
        for (m, u) in [
            ("GET", "/rw/k"),
            ("GET", "/rw"),
            ("PUT", "/rw/k"),
            ("PUT", "/rw/k?x-id=PutObject"),
            ("DELETE", "/rw/k"),
            ("POST", "/rw/k?uploads"),
            ("PUT", "/rw/k?partNumber=2&uploadId=abc"),
            ("POST", "/rw/k?uploadId=abc"),
            ("DELETE", "/rw/k?uploadId=abc"),
            ("GET", "/rw/k?uploadId=abc"),
            ("GET", "/rw?uploads"),
            ("POST", "/rw?delete"),
        ] {
            assert_eq!(label(&s3(m, u, &[])), "resigned", "{m} {u}");
        }
        for (m, u) in [
            ("PUT", "/rw"),      // CreateBucket
            ("DELETE", "/rw"),   // DeleteBucket
            ("PUT", "/rw?cors"), // bucket configuration
            ("PUT", "/rw?website"),
            ("DELETE", "/rw?cors"),
            ("PUT", "/rw/k?tagging"),
            ("PUT", "/rw/k?partNumber=1"), // no uploadId
            ("POST", "/rw/k"),
            ("POST", "/rw/k?select&select-type=2"),
            ("GET", "/rw?policy"),
        ] {
            assert_eq!(label(&s3(m, u, &[])), "denied_acl", "{m} {u}");
        }
    }

    #[test]
    fn anonymous_copy_needs_a_public_source() {
        assert_eq!(
            label(&s3("PUT", "/rw/k", &[("x-amz-copy-source", "/pub/a")])),
            "resigned"
        );
        assert_eq!(
            label(&s3("PUT", "/rw/k", &[("x-amz-copy-source", "rw/a%20b")])),
            "resigned"
        );
        for src in ["/priv/a", "unknown/a", "%70riv/a"] {
            assert_eq!(
                label(&s3("PUT", "/rw/k", &[("x-amz-copy-source", src)])),
                "denied_acl",
                "{src}"
            );
        }
        // Signed copies are Garage's business (the key's own permissions).
        assert_eq!(
            s3(
                "PUT",
                "/priv/k",
                &[SIGNED, ("x-amz-copy-source", "/other/a")]
            ),
            Decision::Forward
        );
    }

    #[test]
    fn sse_is_refused_for_everyone() {
        for h in [
            "x-amz-server-side-encryption",
            "x-amz-server-side-encryption-customer-algorithm",
            "x-amz-server-side-encryption-customer-key",
            "x-amz-server-side-encryption-customer-key-md5",
            "x-amz-server-side-encryption-aws-kms-key-id",
            "x-amz-server-side-encryption-context",
            "x-amz-server-side-encryption-bucket-key-enabled",
            "X-Amz-Server-Side-Encryption",
        ] {
            for extra in [vec![], vec![SIGNED]] {
                let mut hs = vec![(h, "AES256")];
                hs.extend(extra);
                let d = denial(s3("PUT", "/rw/k", &hs));
                assert_eq!(
                    (d.kind, d.status, d.code),
                    (DenyKind::Sse, StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
                    "{h}"
                );
                assert!(d.message.contains("unencrypted"), "{}", d.message);
            }
        }
        let d = denial(s3("PUT", "/priv?encryption", &[SIGNED]));
        assert_eq!(d.kind, DenyKind::Sse);
        // Reading or deleting the (absent) configuration is Garage's answer.
        assert_eq!(s3("GET", "/priv?encryption", &[SIGNED]), Decision::Forward);
        // SSE wins over ACL checks: even on a private bucket the user learns why.
        assert_eq!(
            label(&s3(
                "PUT",
                "/priv/k",
                &[("x-amz-server-side-encryption", "aws:kms")]
            )),
            "refused_sse"
        );
    }

    #[test]
    fn object_acls_are_refused() {
        for h in [
            ("x-amz-acl", "public-read"),
            ("x-amz-acl", "public-read-write"),
            ("x-amz-acl", "authenticated-read"),
            ("x-amz-acl", "bucket-owner-full-control"),
            (
                "x-amz-grant-read",
                "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"",
            ),
            ("x-amz-grant-full-control", "id=abc"),
            ("x-amz-grant-write-acp", "id=abc"),
        ] {
            for extra in [vec![], vec![SIGNED]] {
                let mut hs = vec![h];
                hs.extend(extra);
                let d = denial(s3("PUT", "/rw/k", &hs));
                assert_eq!(
                    (d.kind, d.status, d.code),
                    (
                        DenyKind::ObjectAcl,
                        StatusCode::NOT_IMPLEMENTED,
                        "NotImplemented"
                    ),
                    "{h:?}"
                );
                assert!(d.message.contains("Bucket resource"));
            }
        }
        for u in ["/priv/k?acl", "/priv?acl"] {
            assert_eq!(label(&s3("PUT", u, &[SIGNED])), "refused_acl", "{u}");
        }
        // `private` is what Garage does anyway.
        assert_eq!(
            s3("PUT", "/priv/k", &[SIGNED, ("x-amz-acl", "private")]),
            Decision::Forward
        );
        assert_eq!(
            label(&s3("PUT", "/rw/k", &[("x-amz-acl", " Private ")])),
            "resigned"
        );
        // Reading an ACL is harmless (Garage answers with the owner's full control).
        assert_eq!(s3("GET", "/priv/k?acl", &[SIGNED]), Decision::Forward);
    }

    #[test]
    fn referer_rules_apply_to_anonymous_and_presigned_requests() {
        let good = ("referer", "https://www.Example.com/page.html");
        let bad = ("referer", "https://evil.test/");
        let empty = ("referer", "  ");
        // anonymous
        assert_eq!(label(&s3("GET", "/leech/k", &[good])), "resigned");
        assert_eq!(
            label(&s3("GET", "/leech/k", &[("referer", "https://ok.test/a")])),
            "resigned"
        );
        assert_eq!(
            label(&s3("GET", "/leech/k", &[("referer", "https://ok.test/ab")])),
            "denied_referer"
        );
        assert_eq!(label(&s3("GET", "/leech/k", &[bad])), "denied_referer");
        assert_eq!(label(&s3("GET", "/leech/k", &[])), "denied_referer");
        assert_eq!(label(&s3("GET", "/leech/k", &[empty])), "denied_referer");
        assert_eq!(label(&s3("GET", "/leech-empty/k", &[])), "resigned");
        assert_eq!(label(&s3("GET", "/leech-empty/k", &[empty])), "resigned");
        assert_eq!(
            label(&s3("GET", "/leech-empty/k", &[bad])),
            "denied_referer"
        );
        // presigned (also on a private bucket: the link is shared, the Referer is checked)
        let presigned = format!("/site/k?{PRESIGNED}");
        let site_good = ("referer", "https://example.com/shop");
        assert_eq!(s3("GET", &presigned, &[site_good]), Decision::Forward);
        assert_eq!(label(&s3("GET", &presigned, &[good])), "denied_referer");
        let d = denial(s3("GET", &presigned, &[bad]));
        assert_eq!((d.status, d.code), (StatusCode::FORBIDDEN, "AccessDenied"));
        assert!(d.message.contains("Referer rules"));
        assert_eq!(label(&s3("GET", &presigned, &[])), "denied_referer");
        // A stray Authorization header does not lift a presigned link out of the rules.
        assert_eq!(
            label(&s3("GET", &presigned, &[SIGNED, bad])),
            "denied_referer"
        );
        // header-signed: not subject to Referer
        assert_eq!(s3("GET", "/site/k", &[SIGNED, bad]), Decision::Forward);
        // ACL is checked before Referer on anonymous requests.
        assert_eq!(label(&s3("PUT", "/leech/k", &[good])), "denied_acl");
        // buckets without rules ignore the Referer
        assert_eq!(label(&s3("GET", "/pub/k", &[bad])), "resigned");
        // form uploads are like presigned links
        let form = ("content-type", "multipart/form-data; boundary=b");
        assert_eq!(label(&s3("POST", "/site", &[form, bad])), "denied_referer");
        assert_eq!(s3("POST", "/site", &[form, site_good]), Decision::Forward);
    }

    #[test]
    fn website_requests_check_only_the_referer() {
        let web = |host: &str, h: &[(&str, &str)]| {
            let mut hs = vec![("host", host)];
            hs.extend_from_slice(h);
            run(Endpoint::Website, "GET", "/index.html", &hs)
        };
        let good = ("referer", "https://example.com/x");
        let bad = ("referer", "https://evil.test/");
        assert_eq!(web("site.web.example.net", &[good]), Decision::Forward);
        assert_eq!(web("site.web.example.net:8081", &[good]), Decision::Forward);
        assert_eq!(
            label(&web("site.web.example.net", &[bad])),
            "denied_referer"
        );
        assert_eq!(label(&web("site.web.example.net", &[])), "denied_referer");
        assert_eq!(label(&web("site", &[bad])), "denied_referer");
        // Other buckets (public, private or unknown) are Garage's business on the web port.
        assert_eq!(web("pub.web.example.net", &[bad]), Decision::Forward);
        assert_eq!(web("anything.test", &[]), Decision::Forward);
        // SSE headers mean nothing on reads of a website; Garage answers.
        assert_eq!(
            web(
                "pub.web.example.net",
                &[("x-amz-server-side-encryption", "AES256")]
            ),
            Decision::Forward
        );
    }

    #[test]
    fn preflights_always_pass() {
        let pre = [
            ("origin", "https://evil.test"),
            ("access-control-request-method", "PUT"),
        ];
        assert_eq!(s3("OPTIONS", "/priv/k", &pre), Decision::Forward);
        assert_eq!(s3("OPTIONS", "/leech/k", &pre), Decision::Forward);
        assert_eq!(
            run(Endpoint::Website, "OPTIONS", "/", &[("host", "site")]),
            Decision::Forward
        );
    }

    #[test]
    fn glob() {
        for (p, t, want) in [
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            (
                "https://*.example.com/*",
                "https://a.b.example.com/x/y",
                true,
            ),
            ("https://*.example.com/*", "https://example.com/x", false),
            // Globs match the whole string, so a pattern with a leading `*` host part also
            // matches a URL whose query looks like the host (as in the product we model).
            (
                "https://*.example.com/*",
                "https://evil.test/?.example.com/",
                true,
            ),
            ("https://example.com", "https://example.com/", false),
            ("HTTPS://EXAMPLE.COM/*", "https://example.com/a", true),
            (
                "*a*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
            ("**", "x", true),
            ("a*", "a", true),
            ("*.png", "x.PNG", true),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn query_names() {
        let q = QueryNames::parse(Some("a=1&&b&c%2Dd=&=x"));
        assert!(q.has("a") && q.has("b") && q.has("c-d") && q.has(""));
        assert!(QueryNames::parse(None).is_empty());
        assert!(QueryNames::parse(Some("")).is_empty());
    }
}
