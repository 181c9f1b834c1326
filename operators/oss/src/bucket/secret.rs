//! The connection Secret apps read: the AWS SDK's environment names, the bucket, and the COSI
//! `BucketInfo` keys.

use k8s_openapi::api::core::v1::Secret;
use serde_json::json;

use crate::store::build::{secret_data, typed};

/// What goes into a connection Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection<'a> {
    /// The S3 endpoint URL.
    pub endpoint: &'a str,
    pub region: &'a str,
    pub bucket: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    /// The website URL when the bucket serves one.
    pub website_url: Option<&'a str>,
    /// `ReadOnly` or `ReadWrite`.
    pub access: &'a str,
}

/// The Secret `name` in `namespace` with `c`. Keys: `endpoint`, `region`, `bucket`,
/// `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `access`,
/// `COSI_S3_ENDPOINT`, `COSI_S3_REGION`, `COSI_S3_BUCKET`, `COSI_S3_ACCESS_KEY_ID`,
/// `COSI_S3_ACCESS_SECRET_KEY`, and `websiteUrl` with website hosting.
pub fn connection_secret(
    name: &str,
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
    c: &Connection<'_>,
) -> agility_core::Result<Secret> {
    let mut data = json!({
        "endpoint": c.endpoint,
        "region": c.region,
        "bucket": c.bucket,
        "access": c.access,
        "AWS_ENDPOINT_URL": c.endpoint,
        "AWS_REGION": c.region,
        "AWS_ACCESS_KEY_ID": c.access_key_id,
        "AWS_SECRET_ACCESS_KEY": c.secret_access_key,
        "COSI_S3_ENDPOINT": c.endpoint,
        "COSI_S3_REGION": c.region,
        "COSI_S3_BUCKET": c.bucket,
        "COSI_S3_ACCESS_KEY_ID": c.access_key_id,
        "COSI_S3_ACCESS_SECRET_KEY": c.secret_access_key,
    });
    if let Some(url) = c.website_url {
        data["websiteUrl"] = json!(url);
    }
    typed(
        "Secret",
        json!({
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "type": "Opaque",
            "data": secret_data(&data),
        }),
    )
}

/// A value of a live Secret as text.
pub fn value(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .filter(|v| !v.is_empty())
}
