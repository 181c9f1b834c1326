//! A minimal SigV4-signed S3 client (path-style URLs) with what emptying a bucket needs before
//! `DeleteBucket`: ListObjectsV2, DeleteObjects, ListMultipartUploads, AbortMultipartUpload.
//! Plus PutObject and starting a multipart upload, for tests and tools that fill a bucket.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::{GarageError, Result};
use super::transport::{self, HttpClient, encode, query};

/// Default deadline of one S3 call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// S3's limit of keys per DeleteObjects.
pub const MAX_DELETE_BATCH: usize = 1000;

/// A client of an S3 endpoint with one access key.
#[derive(Clone)]
pub struct S3Client {
    base: String,
    region: String,
    access_key_id: String,
    secret: String,
    http: HttpClient,
    timeout: Duration,
    clock_offset_secs: i64,
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Client")
            .field("base", &self.base)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// One object of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectSummary {
    pub key: String,
    #[serde(default)]
    pub size: u64,
}

/// One page of ListObjectsV2.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectPage {
    #[serde(default)]
    pub contents: Vec<ObjectSummary>,
    #[serde(default)]
    pub is_truncated: bool,
    /// Token of the next page when truncated.
    #[serde(default)]
    pub next_continuation_token: Option<String>,
}

/// One unfinished multipart upload.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UploadSummary {
    pub key: String,
    pub upload_id: String,
}

/// One page of ListMultipartUploads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UploadPage {
    #[serde(default, rename = "Upload")]
    pub uploads: Vec<UploadSummary>,
    #[serde(default)]
    pub is_truncated: bool,
    #[serde(default)]
    pub next_key_marker: Option<String>,
    #[serde(default)]
    pub next_upload_id_marker: Option<String>,
}

/// A key DeleteObjects could not delete.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteError {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Deserialize)]
struct DeleteResult {
    #[serde(default, rename = "Error")]
    errors: Vec<DeleteError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InitiateMultipartUploadResult {
    upload_id: String,
}

/// What [`S3Client::empty_bucket`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Emptied {
    pub objects: usize,
    pub uploads: usize,
}

/// A `/`-separated key as a path: each segment encoded, separators kept.
fn key_path(key: &str) -> String {
    key.split('/').map(encode).collect::<Vec<_>>().join("/")
}

fn xml<T: for<'de> Deserialize<'de>>(what: &str, body: &[u8]) -> Result<T> {
    let s = std::str::from_utf8(body)
        .map_err(|e| GarageError::InvalidResponse(format!("{what}: not UTF-8: {e}")))?;
    quick_xml::de::from_str(s).map_err(|e| GarageError::InvalidResponse(format!("{what}: {e}")))
}

/// The DeleteObjects body (quiet: only failures are reported back).
pub(crate) fn delete_body(keys: &[String]) -> String {
    let mut body = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>"#,
    );
    for k in keys {
        body.push_str("<Object><Key>");
        body.push_str(&quick_xml::escape::escape(k.as_str()));
        body.push_str("</Key></Object>");
    }
    body.push_str("</Delete>");
    body
}

impl S3Client {
    /// A client of the S3 endpoint `base_url` (`http://host:3900`) in `region`.
    pub fn new(base_url: &str, region: &str, access_key_id: &str, secret: &str) -> Result<Self> {
        Ok(S3Client {
            base: transport::base_url(base_url)?,
            region: region.to_owned(),
            access_key_id: access_key_id.to_owned(),
            secret: secret.to_owned(),
            http: transport::client(),
            timeout: DEFAULT_TIMEOUT,
            clock_offset_secs: 0,
        })
    }

    /// The same client with another deadline per call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Signs as if the clock were `secs` ahead (negative: behind). S3 refuses signatures more
    /// than 15 minutes off its own clock; this is for a server whose clock is known to be off
    /// (a test running Garage under libfaketime).
    pub fn with_clock_offset(mut self, secs: i64) -> Self {
        self.clock_offset_secs = secs;
        self
    }

    fn now(&self) -> SystemTime {
        let now = SystemTime::now();
        let by = Duration::from_secs(self.clock_offset_secs.unsigned_abs());
        let shifted = if self.clock_offset_secs >= 0 {
            now.checked_add(by)
        } else {
            now.checked_sub(by)
        };
        shifted.unwrap_or(now)
    }

    /// Builds, signs and sends one request; answers the body of a 2xx.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &str,
        extra_headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Bytes> {
        let uri = if query.is_empty() {
            format!("{}{}", self.base, path)
        } else {
            format!("{}{}?{}", self.base, path, query)
        };
        let host = uri
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.authority().map(|a| a.to_string()))
            .ok_or_else(|| GarageError::InvalidRequest(format!("no host in {uri}")))?;
        let mut headers: Vec<(String, String)> = vec![("host".into(), host)];
        headers.extend(
            extra_headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone())),
        );

        let signable = SignableRequest::new(
            method.as_str(),
            &uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| GarageError::InvalidRequest(format!("not signable: {e}")))?;
        // S3 signs the path as sent (no normalisation, no double encoding) and wants the
        // payload hash in `x-amz-content-sha256`.
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let identity = aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret,
            None,
            None,
            "agility-oss",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(self.now())
            .settings(settings)
            .build()
            .map_err(|e| GarageError::InvalidRequest(format!("signing parameters: {e}")))?
            .into();
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| GarageError::InvalidRequest(format!("signing: {e}")))?
            .into_parts();

        let mut req = Request::builder().method(method).uri(&uri);
        for (k, v) in &headers {
            if k != "host" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        for (k, v) in instructions.headers() {
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| GarageError::InvalidRequest(format!("{uri}: {e}")))?;
        let answer = transport::send(&self.http, req, self.timeout).await?;
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(GarageError::from_s3_body(
                answer.status.as_u16(),
                &answer.body,
            ))
        }
    }

    /// One page of ListObjectsV2 (up to 1000 keys).
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: Option<&str>,
        continuation_token: Option<&str>,
    ) -> Result<ObjectPage> {
        let mut q = vec![("list-type", "2")];
        if let Some(t) = continuation_token {
            q.push(("continuation-token", t));
        }
        if let Some(p) = prefix {
            q.push(("prefix", p));
        }
        let body = self
            .send(
                Method::GET,
                &format!("/{}", encode(bucket)),
                &query(&q),
                &[],
                Bytes::new(),
            )
            .await?;
        xml("ListObjectsV2", &body)
    }

    /// Every key under `prefix` (all pages).
    pub async fn list_all_keys(&self, bucket: &str, prefix: Option<&str>) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.list_objects(bucket, prefix, token.as_deref()).await?;
            keys.extend(page.contents.into_iter().map(|o| o.key));
            match (page.is_truncated, page.next_continuation_token) {
                (true, Some(t)) => token = Some(t),
                _ => return Ok(keys),
            }
        }
    }

    /// DeleteObjects of up to [`MAX_DELETE_BATCH`] keys; answers the keys that failed.
    pub async fn delete_objects(&self, bucket: &str, keys: &[String]) -> Result<Vec<DeleteError>> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        if keys.len() > MAX_DELETE_BATCH {
            return Err(GarageError::InvalidRequest(format!(
                "DeleteObjects of {} keys (at most {MAX_DELETE_BATCH})",
                keys.len()
            )));
        }
        let body = Bytes::from(delete_body(keys));
        // S3 requires an integrity header on DeleteObjects (Content-MD5 or x-amz-checksum-*).
        let checksum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
        let answer = self
            .send(
                Method::POST,
                &format!("/{}", encode(bucket)),
                "delete",
                &[
                    ("content-type", "application/xml".to_owned()),
                    ("x-amz-checksum-sha256", checksum),
                ],
                body,
            )
            .await?;
        let result: DeleteResult = xml("DeleteObjects", &answer)?;
        Ok(result.errors)
    }

    /// One page of ListMultipartUploads.
    pub async fn list_multipart_uploads(
        &self,
        bucket: &str,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
    ) -> Result<UploadPage> {
        let mut q = vec![("uploads", "")];
        if let Some(k) = key_marker {
            q.push(("key-marker", k));
        }
        if let Some(u) = upload_id_marker {
            q.push(("upload-id-marker", u));
        }
        let body = self
            .send(
                Method::GET,
                &format!("/{}", encode(bucket)),
                &query(&q),
                &[],
                Bytes::new(),
            )
            .await?;
        xml("ListMultipartUploads", &body)
    }

    /// AbortMultipartUpload.
    pub async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("/{}/{}", encode(bucket), key_path(key)),
            &query(&[("uploadId", upload_id)]),
            &[],
            Bytes::new(),
        )
        .await
        .map(drop)
    }

    /// PutObject.
    pub async fn put_object(&self, bucket: &str, key: &str, body: Bytes) -> Result<()> {
        self.send(
            Method::PUT,
            &format!("/{}/{}", encode(bucket), key_path(key)),
            "",
            &[],
            body,
        )
        .await
        .map(drop)
    }

    /// CreateMultipartUpload; answers the upload id.
    pub async fn create_multipart_upload(&self, bucket: &str, key: &str) -> Result<String> {
        let body = self
            .send(
                Method::POST,
                &format!("/{}/{}", encode(bucket), key_path(key)),
                "uploads",
                &[],
                Bytes::new(),
            )
            .await?;
        let r: InitiateMultipartUploadResult = xml("CreateMultipartUpload", &body)?;
        Ok(r.upload_id)
    }

    /// UploadPart (part numbers from 1).
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<()> {
        let part = part_number.to_string();
        self.send(
            Method::PUT,
            &format!("/{}/{}", encode(bucket), key_path(key)),
            &query(&[("partNumber", &part), ("uploadId", upload_id)]),
            &[],
            body,
        )
        .await
        .map(drop)
    }

    /// Deletes every object and aborts every unfinished multipart upload, so that
    /// `DeleteBucket` succeeds. Fails on the first key S3 could not delete.
    pub async fn empty_bucket(&self, bucket: &str) -> Result<Emptied> {
        let mut emptied = Emptied::default();
        // Always list from the start: the keys of the previous page are gone.
        loop {
            let page = self.list_objects(bucket, None, None).await?;
            if page.contents.is_empty() {
                break;
            }
            let keys: Vec<String> = page.contents.into_iter().map(|o| o.key).collect();
            for batch in keys.chunks(MAX_DELETE_BATCH) {
                let errors = self.delete_objects(bucket, batch).await?;
                if let Some(e) = errors.into_iter().next() {
                    return Err(GarageError::Api {
                        status: 200,
                        code: e.code,
                        message: format!(
                            "DeleteObjects of {:?}: {}",
                            e.key.unwrap_or_default(),
                            e.message
                        ),
                    });
                }
                emptied.objects += batch.len();
            }
        }
        let (mut key_marker, mut upload_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .list_multipart_uploads(bucket, key_marker.as_deref(), upload_marker.as_deref())
                .await?;
            for u in &page.uploads {
                match self
                    .abort_multipart_upload(bucket, &u.key, &u.upload_id)
                    .await
                {
                    // Finished or aborted since it was listed: gone either way.
                    Ok(()) | Err(GarageError::NotFound { .. }) => emptied.uploads += 1,
                    Err(e) => return Err(e),
                }
            }
            if !page.is_truncated {
                break;
            }
            key_marker = page.next_key_marker;
            upload_marker = page.next_upload_id_marker;
            if key_marker.is_none() && upload_marker.is_none() {
                break;
            }
        }
        Ok(emptied)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn delete_body_escapes_keys() {
        let b = delete_body(&["a&b".into(), "<c>".into()]);
        assert!(
            b.contains("<Object><Key>a&amp;b</Key></Object><Object><Key>&lt;c&gt;</Key></Object>")
        );
        assert!(b.contains("<Quiet>true</Quiet>"));
    }

    #[test]
    fn key_paths_keep_slashes() {
        assert_eq!(key_path("tmp/a b/c+d"), "tmp/a%20b/c%2Bd");
    }
}
