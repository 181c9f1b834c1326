//! Re-signing anonymous requests the bucket ACL allows, with the gateway's own Garage key
//! (Garage has no anonymous access). The body is not hashed: `UNSIGNED-PAYLOAD` lets it stream.

use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::GatewayError;

/// The gateway's Garage key and the region Garage expects.
#[derive(Clone)]
pub struct SigningKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Headers a client may have sent that belong to a signature (theirs, or ours once we sign).
const SIGNATURE_HEADERS: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Signs `headers` in place for `method` on `uri` (absolute, path style, already in the canonical
/// encoding). Signs `host` and every `x-amz-*` header (Garage insists on the latter).
pub fn resign(
    key: &SigningKey,
    method: &Method,
    uri: &str,
    host: &str,
    headers: &mut HeaderMap,
    now: SystemTime,
) -> Result<(), GatewayError> {
    // Keep a payload hash the client chose when Garage can check it (a SHA-256, or the unsigned
    // trailer framing whose body must not be read as plain data); anything else is replaced.
    let client_sha = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            *v == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
                || (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .map(str::to_owned);
    for h in SIGNATURE_HEADERS {
        headers.remove(h);
    }
    let host_value = HeaderValue::from_str(host)
        .map_err(|_| GatewayError::Signing(format!("upstream host {host:?} is not a header")))?;
    headers.insert(http::header::HOST, host_value);

    let mut signed: Vec<(&str, &str)> = vec![("host", host)];
    for (name, value) in headers.iter() {
        if name.as_str().starts_with("x-amz-") {
            let v = value.to_str().map_err(|_| {
                GatewayError::BadRequest(format!("header {name} is not visible ASCII"))
            })?;
            signed.push((name.as_str(), v));
        }
    }
    let body = match client_sha {
        Some(s) => SignableBody::Precomputed(s),
        None => SignableBody::UnsignedPayload,
    };
    let signable = SignableRequest::new(method.as_str(), uri, signed.into_iter(), body)
        .map_err(|e| GatewayError::Signing(format!("request not signable: {e}")))?;

    let mut settings = SigningSettings::default();
    // S3 semantics: the path is signed as sent (single encoding, no dot-segment removal).
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let identity = aws_credential_types::Credentials::new(
        &key.access_key_id,
        &key.secret_access_key,
        None,
        None,
        "agility-oss-gateway",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&key.region)
        .name("s3")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| GatewayError::Signing(format!("signing parameters: {e}")))?
        .into();
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| GatewayError::Signing(e.to_string()))?
        .into_parts();
    for (name, value) in instructions.headers() {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| GatewayError::Signing(format!("header name {name}: {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| GatewayError::Signing(format!("header {name}: {e}")))?;
        headers.insert(name, value);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn replaces_client_signature_headers_and_signs_amz_headers() {
        let key = SigningKey {
            access_key_id: "GKtest".into(),
            secret_access_key: "secret".into(),
            region: "agility".into(),
        };
        let mut h = HeaderMap::new();
        h.insert("x-amz-date", HeaderValue::from_static("19990101T000000Z"));
        h.insert("x-amz-meta-colour", HeaderValue::from_static("blue"));
        h.insert("x-amz-content-sha256", HeaderValue::from_static("junk"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        resign(
            &key,
            &Method::PUT,
            "http://127.0.0.1:3900/pub/a%20b",
            "127.0.0.1:3900",
            &mut h,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        assert_eq!(h["host"], "127.0.0.1:3900");
        assert_eq!(h["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
        assert_eq!(h["x-amz-date"], "20231114T221320Z");
        let auth = h["authorization"].to_str().unwrap();
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=GKtest/20231114/agility/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-colour,"
        ), "{auth}");

        let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let mut h = HeaderMap::new();
        h.insert("x-amz-content-sha256", HeaderValue::from_static(sha));
        resign(
            &key,
            &Method::GET,
            "http://u/b/k",
            "u",
            &mut h,
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(h["x-amz-content-sha256"], sha);
    }
}
