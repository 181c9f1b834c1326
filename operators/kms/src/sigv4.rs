//! SigV4 verification: the request is signed again with the caller's secret by the `aws-sigv4`
//! crate (canonical request, string to sign, signing key: AWS's own implementation), over
//! exactly the headers the caller signed, and the two signatures are compared in constant time.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use subtle::ConstantTimeEq;

use crate::error::KmsError;

/// How far the request time may be from ours (AWS allows 15 minutes too).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// The parsed `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id.
    pub access_key_id: String,
    /// `YYYYMMDD` of the credential scope.
    pub date: String,
    /// Region of the scope.
    pub region: String,
    /// Service of the scope.
    pub service: String,
    /// Lower-case signed header names.
    pub signed_headers: Vec<String>,
    /// The hex signature.
    pub signature: String,
}

fn incomplete(what: &str) -> KmsError {
    KmsError::IncompleteSignature(format!("Authorization header: {what}"))
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request,
/// SignedHeaders=a;b, Signature=hex`.
pub fn parse_authorization(value: &str) -> Result<Authorization, KmsError> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| incomplete("only AWS4-HMAC-SHA256 is supported"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let credential = credential.ok_or_else(|| incomplete("no Credential"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(incomplete(
            "Credential is not AKID/date/region/service/aws4_request",
        ));
    };
    let signed_headers: Vec<String> = signed
        .ok_or_else(|| incomplete("no SignedHeaders"))?
        .split(';')
        .map(str::to_ascii_lowercase)
        .collect();
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(incomplete("the host header must be signed"));
    }
    let signature = signature.ok_or_else(|| incomplete("no Signature"))?;
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(incomplete("Signature is not 64 hex digits"));
    }
    Ok(Authorization {
        access_key_id: (*akid).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

/// `20150830T123600Z` → time.
pub fn parse_amz_date(v: &str) -> Option<SystemTime> {
    let t = chrono::NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%SZ").ok()?;
    let secs = u64::try_from(t.and_utc().timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// An incoming request, as the server saw it.
pub struct Request<'a> {
    /// `POST`.
    pub method: &'a str,
    /// Path and query, e.g. `/`.
    pub uri: &'a str,
    /// Every header (names in any case).
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
}

/// What verification proved: the access key that signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The access key id.
    pub access_key_id: String,
}

fn header<'a>(req: &'a Request<'_>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Verifies `req` for `service` in `region` with the secret `lookup` returns for the access key.
pub fn verify(
    req: &Request<'_>,
    region: &str,
    service: &str,
    now: SystemTime,
    lookup: impl FnOnce(&str) -> Option<String>,
) -> Result<Verified, KmsError> {
    let auth = header(req, "authorization").ok_or(KmsError::MissingAuthenticationToken)?;
    let auth = parse_authorization(auth)?;
    if auth.region != region || auth.service != service {
        return Err(KmsError::InvalidSignature(format!(
            "Credential should be scoped to a valid region and service: expected {region}/{service}, got {}/{}",
            auth.region, auth.service
        )));
    }
    if header(req, "x-amz-security-token").is_some() {
        return Err(KmsError::UnrecognizedClient);
    }
    let date = header(req, "x-amz-date").ok_or_else(|| incomplete("no X-Amz-Date header"))?;
    let time =
        parse_amz_date(date).ok_or_else(|| incomplete("X-Amz-Date is not YYYYMMDDTHHMMSSZ"))?;
    if !date.starts_with(&auth.date) {
        return Err(KmsError::InvalidSignature(
            "the Credential date does not match X-Amz-Date".into(),
        ));
    }
    let skew = now
        .duration_since(time)
        .or_else(|_| time.duration_since(now))
        .unwrap_or(Duration::MAX);
    if skew > MAX_SKEW {
        return Err(KmsError::InvalidSignature(
            "Signature expired: the request time is more than 15 minutes from the server's".into(),
        ));
    }
    let secret = lookup(&auth.access_key_id).ok_or(KmsError::UnrecognizedClient)?;

    // Exactly the headers the caller signed; the signer adds x-amz-date itself.
    let signed: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k != "x-amz-date" && auth.signed_headers.contains(&k)
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut settings = SigningSettings::default();
    settings.excluded_headers = Some(Vec::new());
    if auth
        .signed_headers
        .iter()
        .any(|h| h == "x-amz-content-sha256")
    {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let signable = SignableRequest::new(
        req.method,
        req.uri,
        signed.into_iter(),
        SignableBody::Bytes(req.body),
    )
    .map_err(|e| incomplete(&format!("request not signable: {e}")))?;
    let scope = Scope {
        region,
        service,
        time,
        settings,
    };
    let expected = signed_by(&auth.access_key_id, &secret, &scope, signable)?
        .signature()
        .to_owned();
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(Verified {
            access_key_id: auth.access_key_id,
        })
    } else {
        Err(KmsError::InvalidSignature(
            "The request signature we calculated does not match the signature you provided.".into(),
        ))
    }
}

/// Where and when a signature is made.
struct Scope<'a> {
    region: &'a str,
    service: &'a str,
    time: SystemTime,
    settings: SigningSettings,
}

/// Signs with `aws-sigv4` under `scope`.
fn signed_by(
    access_key_id: &str,
    secret: &str,
    scope: &Scope<'_>,
    signable: SignableRequest<'_>,
) -> Result<aws_sigv4::SigningOutput<aws_sigv4::http_request::SigningInstructions>, KmsError> {
    let identity =
        aws_credential_types::Credentials::new(access_key_id, secret, None, None, "agility-kms")
            .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(scope.time)
        .settings(scope.settings.clone())
        .build()
        .map_err(|e| KmsError::Internal(format!("signing parameters: {e}")))?
        .into();
    sign(signable, &params).map_err(|e| KmsError::Internal(format!("signing: {e}")))
}

/// Signs a request as an AWS SDK does (for our own clients, the KMS v2 provider and tests):
/// returns the headers to add (`x-amz-date`, `authorization`).
pub fn sign_request(
    credentials: (&str, &str),
    region: &str,
    service: &str,
    time: SystemTime,
    req: &Request<'_>,
) -> Result<Vec<(String, String)>, KmsError> {
    let signable = SignableRequest::new(
        req.method,
        req.uri,
        req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(req.body),
    )
    .map_err(|e| KmsError::Internal(format!("request not signable: {e}")))?;
    let scope = Scope {
        region,
        service,
        time,
        settings: SigningSettings::default(),
    };
    let (instructions, _) = signed_by(credentials.0, credentials.1, &scope, signable)?.into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // From AWS's published Signature Version 4 test suite (get-vanilla, post-vanilla,
    // post-x-www-form-urlencoded): credentials AKIDEXAMPLE, region us-east-1, service
    // "service", 2015-08-30T12:36:00Z.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const SCOPE: &str = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";

    fn at() -> SystemTime {
        parse_amz_date("20150830T123600Z").unwrap()
    }

    fn headers(extra: &[(&str, &str)], signed: &str, signature: &str) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        h.push(("X-Amz-Date".into(), "20150830T123600Z".into()));
        h.push((
            "Authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders={signed}, Signature={signature}"
            ),
        ));
        h
    }

    fn check(method: &str, h: &[(String, String)], body: &[u8]) -> Result<Verified, KmsError> {
        let req = Request {
            method,
            uri: "/",
            headers: h,
            body,
        };
        verify(&req, "us-east-1", "service", at(), |k| {
            (k == "AKIDEXAMPLE").then(|| SECRET.to_owned())
        })
    }

    #[test]
    fn aws_test_suite_vectors_verify() {
        let get = headers(
            &[("Host", "example.amazonaws.com")],
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        );
        assert_eq!(
            check("GET", &get, b"").unwrap().access_key_id,
            "AKIDEXAMPLE"
        );
        let post = headers(
            &[("Host", "example.amazonaws.com")],
            "host;x-amz-date",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        );
        check("POST", &post, b"").unwrap();
        let form = headers(
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Host", "example.amazonaws.com"),
                ("Content-Length", "13"),
                (
                    "x-amz-content-sha256",
                    "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
                ),
            ],
            "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
            "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
        );
        check("POST", &form, b"Param1=value1").unwrap();
        // The body is covered: another body with the same headers fails.
        assert!(check("POST", &form, b"Param1=value2").is_err());
    }

    #[test]
    fn tampering_wrong_secret_skew_and_scope_are_refused() {
        let sig = "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b";
        let h = headers(&[("Host", "example.amazonaws.com")], "host;x-amz-date", sig);
        assert_eq!(
            check("POST", &h, b"{}").unwrap_err().code(),
            "InvalidSignatureException"
        );
        assert_eq!(
            check("GET", &h, b"").unwrap_err().code(),
            "InvalidSignatureException"
        );
        let req = Request {
            method: "POST",
            uri: "/",
            headers: &h,
            body: b"",
        };
        let wrong = verify(&req, "us-east-1", "service", at(), |_| Some("other".into()));
        assert_eq!(wrong.unwrap_err().code(), "InvalidSignatureException");
        let unknown = verify(&req, "us-east-1", "service", at(), |_| None);
        assert_eq!(unknown.unwrap_err().code(), "UnrecognizedClientException");
        let late = verify(
            &req,
            "us-east-1",
            "service",
            at() + Duration::from_secs(16 * 60),
            |_| Some(SECRET.into()),
        );
        assert_eq!(late.unwrap_err().code(), "InvalidSignatureException");
        let kms = verify(&req, "us-east-1", "kms", at(), |_| Some(SECRET.into()));
        assert_eq!(kms.unwrap_err().code(), "InvalidSignatureException");
        let none = Request {
            method: "POST",
            uri: "/",
            headers: &[],
            body: b"",
        };
        assert_eq!(
            verify(&none, "us-east-1", "service", at(), |_| None)
                .unwrap_err()
                .code(),
            "MissingAuthenticationTokenException"
        );
    }

    #[test]
    fn what_we_sign_we_verify() {
        let base = vec![
            ("host".to_owned(), "kms.example".to_owned()),
            (
                "x-amz-target".to_owned(),
                "TrentService.ListKeys".to_owned(),
            ),
        ];
        let req = Request {
            method: "POST",
            uri: "/",
            headers: &base,
            body: b"{}",
        };
        let mut headers = base.clone();
        headers.extend(sign_request(("AKIDEXAMPLE", SECRET), "local", "kms", at(), &req).unwrap());
        let signed = Request {
            method: "POST",
            uri: "/",
            headers: &headers,
            body: b"{}",
        };
        let ok = verify(&signed, "local", "kms", at(), |_| Some(SECRET.into())).unwrap();
        assert_eq!(ok.access_key_id, "AKIDEXAMPLE");
    }

    #[test]
    fn authorization_header_is_parsed_strictly() {
        let a = parse_authorization(&format!(
            "AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host;x-amz-date, Signature={}",
            "a".repeat(64)
        ))
        .unwrap();
        assert_eq!(
            (a.region.as_str(), a.service.as_str()),
            ("us-east-1", "service")
        );
        assert!(parse_authorization("Basic abc").is_err());
        assert!(
            parse_authorization(&format!(
                "AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=x-amz-date, Signature={}",
                "a".repeat(64)
            ))
            .is_err(),
            "host must be signed"
        );
    }
}
