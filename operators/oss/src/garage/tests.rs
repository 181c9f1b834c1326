//! The clients against answers recorded from a real Garage 2.5.0
//! (tests/fixtures/garage/record.sh), served by a tiny in-process HTTP server that also records
//! what the client sent.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::s3::S3Client;
use super::*;

/// What the mock server received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path_and_query: String,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

struct Mock {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Mock {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    fn admin(&self) -> AdminClient {
        AdminClient::new(&self.url, "recorded-admin-token").unwrap()
    }
    fn s3(&self) -> S3Client {
        S3Client::new(&self.url, "agility", "GKtest", "secret").unwrap()
    }
}

/// A recorded answer: the body and its status (`<name>.status`, else 200).
fn fixture(file: &str) -> (u16, Vec<u8>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/garage/");
    let body = std::fs::read(format!("{dir}{file}")).unwrap();
    let stem = file.rsplit_once('.').map(|(s, _)| s).unwrap_or(file);
    let status = std::fs::read_to_string(format!("{dir}{stem}.status"))
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(200);
    (status, body)
}

/// Serves `answers` in order, one per request.
async fn mock(answers: Vec<(u16, Vec<u8>)>) -> Mock {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (seen, answers) = (seen2.clone(), answers.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (seen, answers) = (seen.clone(), answers.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes().to_vec();
                        seen.lock().unwrap().push(Seen {
                            method: parts.method.to_string(),
                            path_and_query: parts
                                .uri
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default(),
                            headers: parts.headers,
                            body,
                        });
                        let (status, body) = answers
                            .lock()
                            .unwrap()
                            .pop_front()
                            .unwrap_or((599, b"no more answers".to_vec()));
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Mock { url, seen }
}

async fn one(file: &str) -> Mock {
    mock(vec![fixture(file)]).await
}

#[tokio::test]
async fn cluster_status_and_health() {
    let m = mock(vec![
        fixture("get_cluster_status.json"),
        fixture("get_cluster_health.json"),
        fixture("get_cluster_health_unavailable.json"),
        fixture("health_unavailable.json"),
    ])
    .await;
    let admin = m.admin();
    let status = admin.cluster_status().await.unwrap();
    assert_eq!(status.layout_version, 0);
    assert_eq!(status.nodes.len(), 1);
    assert!(status.nodes[0].is_up);
    assert_eq!(status.nodes[0].id.len(), 64);
    assert!(status.nodes[0].role.is_none());
    assert!(admin.cluster_health().await.unwrap().is_available());
    let down = admin.cluster_health().await.unwrap();
    assert_eq!(down.status, "unavailable");
    assert!(!down.is_available());
    assert!(!admin.health().await.unwrap());

    let seen = m.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path_and_query, "/v2/GetClusterStatus");
    assert_eq!(
        seen[0].header("authorization"),
        "Bearer recorded-admin-token"
    );
    assert_eq!(seen[1].path_and_query, "/v2/GetClusterHealth");
    assert_eq!(seen[3].path_and_query, "/health");
}

#[tokio::test]
async fn node_id_from_node_info() {
    let m = one("get_node_info.json").await;
    let id = m.admin().local_node_id().await.unwrap();
    assert_eq!(id.len(), 64);
    assert_eq!(m.seen()[0].path_and_query, "/v2/GetNodeInfo?node=self");
}

#[tokio::test]
async fn connect_reports_each_peer() {
    let m = one("connect_cluster_nodes.json").await;
    let peer = "ab@127.0.0.1:1".to_owned();
    let r = m
        .admin()
        .connect_nodes(std::slice::from_ref(&peer))
        .await
        .unwrap();
    assert!(!r[0].success);
    assert!(r[0].error.as_deref().unwrap().contains("Unable to parse"));
    let seen = &m.seen()[0];
    assert_eq!(
        (seen.method.as_str(), seen.path_and_query.as_str()),
        ("POST", "/v2/ConnectClusterNodes")
    );
    assert_eq!(seen.json(), serde_json::json!([peer]));
    assert_eq!(seen.header("content-type"), "application/json");
}

fn recorded_node() -> String {
    let (_, body) = fixture("get_node_info.json");
    let info: MultiResponse<NodeInfo> = serde_json::from_slice(&body).unwrap();
    info.success.into_values().next().unwrap().node_id
}

fn desired(node: &str) -> Vec<DesiredRole> {
    vec![DesiredRole {
        node_id: node.into(),
        zone: "zone-0".into(),
        capacity: 1_000_000_000,
        tags: vec![],
    }]
}

#[tokio::test]
async fn layout_bootstrap_stages_then_applies_next_version() {
    let m = mock(vec![
        fixture("get_cluster_layout_empty.json"),
        fixture("update_cluster_layout.json"),
        fixture("apply_cluster_layout.json"),
    ])
    .await;
    let node = recorded_node();
    assert_eq!(
        m.admin().ensure_layout(&desired(&node)).await.unwrap(),
        Some(1)
    );
    let seen = m.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].path_and_query, "/v2/UpdateClusterLayout");
    assert_eq!(
        seen[1].json(),
        serde_json::json!({"roles": [{"id": node, "zone": "zone-0", "tags": [], "capacity": 1_000_000_000u64}]})
    );
    assert_eq!(
        (seen[2].method.as_str(), seen[2].path_and_query.as_str()),
        ("POST", "/v2/ApplyClusterLayout")
    );
    assert_eq!(seen[2].json(), serde_json::json!({"version": 1}));
}

#[tokio::test]
async fn layout_steady_state_makes_no_write() {
    let m = one("get_cluster_layout.json").await;
    let node = recorded_node();
    assert_eq!(
        m.admin().ensure_layout(&desired(&node)).await.unwrap(),
        None
    );
    let seen = m.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
}

#[test]
fn layout_fixtures_parse() {
    let (_, body) = fixture("update_cluster_layout.json");
    let staged: ClusterLayout = serde_json::from_slice(&body).unwrap();
    assert_eq!(staged.parameters.zone_redundancy, ZoneRedundancy::Maximum);
    assert!(matches!(
        &staged.staged_role_changes[0].action,
        RoleAction::Update(NodeRole { zone, capacity: Some(1_000_000_000), .. }) if zone == "zone-0"
    ));
    let (_, body) = fixture("apply_cluster_layout.json");
    let applied: AppliedLayout = serde_json::from_slice(&body).unwrap();
    assert_eq!(applied.layout.version, 1);
    assert_eq!(applied.layout.roles[0].stored_partitions, Some(256));
    assert!(applied.layout.staged_role_changes.is_empty());
}

#[tokio::test]
async fn apply_of_a_stale_version_is_a_garage_error() {
    let m = one("apply_cluster_layout_wrong_version.json").await;
    let e = m.admin().apply_layout(5).await.unwrap_err();
    assert!(
        matches!(&e, GarageError::Api { status: 500, code, message } if code == "InternalError" && message.contains("Invalid new layout version")),
        "{e:?}"
    );
    assert!(e.is_transient());
}

#[tokio::test]
async fn bucket_create_conflict_and_lookup() {
    let m = mock(vec![
        fixture("create_bucket.json"),
        fixture("create_bucket_conflict.json"),
        fixture("get_bucket_info_by_alias.json"),
        fixture("get_bucket_info_not_found.json"),
        fixture("get_bucket_info_id_not_found.json"),
    ])
    .await;
    let admin = m.admin();
    let b = admin.create_bucket("photos").await.unwrap();
    assert_eq!(b.global_aliases, vec!["photos"]);
    assert!(!b.website_access);
    assert!(b.cors_rules.is_empty() && b.lifecycle_rules.is_empty());
    assert_eq!(b.quotas, Quotas::default());
    let e = admin.create_bucket("photos").await.unwrap_err();
    assert!(e.is_conflict(), "{e:?}");
    assert_eq!(e.code(), Some("BucketAlreadyExists"));
    assert_eq!(admin.bucket_by_alias("photos").await.unwrap().id, b.id);
    assert!(
        admin
            .bucket_by_alias("nope")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let e = admin.bucket_info(&"0".repeat(64)).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");

    let seen = m.seen();
    assert_eq!(seen[0].path_and_query, "/v2/CreateBucket");
    assert_eq!(seen[0].json(), serde_json::json!({"globalAlias": "photos"}));
    assert_eq!(
        seen[2].path_and_query,
        "/v2/GetBucketInfo?globalAlias=photos"
    );
    assert_eq!(
        seen[4].path_and_query,
        format!("/v2/GetBucketInfo?id={}", "0".repeat(64))
    );
}

/// The update record.sh sent, in our types.
fn recorded_update() -> BucketUpdate {
    BucketUpdate {
        website_access: Some(WebsiteAccess::Enabled {
            index_document: "index.html".into(),
            error_document: Some("404.html".into()),
        }),
        quotas: Some(Quotas {
            max_size: Some(1_073_741_824),
            max_objects: Some(1000),
        }),
        cors_rules: Some(vec![CorsRule {
            id: Some("web".into()),
            allowed_origins: vec!["https://a.example".into()],
            allowed_methods: vec!["GET".into(), "PUT".into()],
            allowed_headers: vec!["*".into()],
            expose_headers: vec!["ETag".into()],
            max_age_seconds: Some(600),
        }]),
        lifecycle_rules: Some(vec![
            LifecycleRule {
                id: Some("tmp".into()),
                enabled: true,
                prefix: Some("tmp/".into()),
                expiration: Some(Expiration::AfterDays(1)),
                ..LifecycleRule::default()
            },
            LifecycleRule {
                enabled: false,
                prefix: Some("big/".into()),
                object_size_greater_than: Some(1_048_576),
                expiration: Some(Expiration::AtDate("2030-01-01".into())),
                abort_incomplete_multipart_upload_days: Some(2),
                ..LifecycleRule::default()
            },
        ]),
    }
}

#[tokio::test]
async fn update_bucket_sends_garage_json_and_reads_it_back() {
    let m = mock(vec![
        fixture("update_bucket.json"),
        fixture("get_bucket_info.json"),
        fixture("update_bucket_invalid.json"),
    ])
    .await;
    let admin = m.admin();
    let update = recorded_update();
    let id = "92b75e3fd175c0ed4854c3fbfd095a884616ba26287f978f97895b17d43b23a7";
    let after = admin.update_bucket(id, &update).await.unwrap();
    // What Garage answered equals what we asked for, in our types.
    assert_eq!(Some(after.cors_rules.clone()), update.cors_rules);
    assert_eq!(Some(after.lifecycle_rules.clone()), update.lifecycle_rules);
    assert_eq!(Some(after.quotas), update.quotas);
    assert!(after.website_access);
    assert_eq!(
        after.website_config,
        Some(WebsiteConfig {
            index_document: "index.html".into(),
            error_document: Some("404.html".into())
        })
    );
    assert_eq!(admin.bucket_info(id).await.unwrap(), after);

    let seen = m.seen();
    assert_eq!(seen[0].path_and_query, format!("/v2/UpdateBucket?id={id}"));
    // Exactly the body record.sh sent to the real Garage, which accepted it.
    assert_eq!(
        seen[0].json(),
        serde_json::json!({
            "websiteAccess": {"enabled": true, "indexDocument": "index.html", "errorDocument": "404.html"},
            "quotas": {"maxSize": 1_073_741_824u64, "maxObjects": 1000},
            "corsRules": [{"ID": "web", "MaxAgeSeconds": 600,
                "AllowedOrigin": ["https://a.example"], "AllowedMethod": ["GET", "PUT"],
                "AllowedHeader": ["*"], "ExposeHeader": ["ETag"]}],
            "lifecycleRules": [
                {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}},
                {"Status": "Disabled",
                 "Filter": {"And": {"Prefix": "big/", "ObjectSizeGreaterThan": 1_048_576}},
                 "Expiration": {"Date": "2030-01-01"},
                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}]
        })
    );
    let e = admin
        .update_bucket(id, &BucketUpdate::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, GarageError::Api { status: 400, code, .. } if code == "InvalidRequest"),
        "{e:?}"
    );
}

#[test]
fn update_bucket_json_leaves_unset_fields_out() {
    assert!(BucketUpdate::default().is_empty());
    assert_eq!(BucketUpdate::default().to_json(), serde_json::json!({}));
    let off = BucketUpdate {
        website_access: Some(WebsiteAccess::Disabled),
        quotas: Some(Quotas::default()),
        cors_rules: Some(vec![]),
        ..BucketUpdate::default()
    };
    assert_eq!(
        off.to_json(),
        serde_json::json!({
            "websiteAccess": {"enabled": false},
            "quotas": {"maxSize": null, "maxObjects": null},
            "corsRules": [],
        })
    );
}

#[tokio::test]
async fn keys_and_permissions() {
    let m = mock(vec![
        fixture("create_key.json"),
        fixture("allow_bucket_key.json"),
        fixture("deny_bucket_key.json"),
        fixture("get_key_info.json"),
        fixture("get_key_info_not_found.json"),
        fixture("list_keys.json"),
        fixture("delete_key.json"),
    ])
    .await;
    let admin = m.admin();
    let key = admin.create_key("photos-key").await.unwrap();
    assert!(key.access_key_id.starts_with("GK"));
    let secret = key.secret_access_key.clone().unwrap();
    assert!(
        !format!("{key:?}").contains(&secret),
        "Debug shows the secret"
    );
    let bucket = "92b75e3fd175c0ed4854c3fbfd095a884616ba26287f978f97895b17d43b23a7";
    let b = admin
        .allow_bucket_key(bucket, &key.access_key_id, Permissions::ALL)
        .await
        .unwrap();
    assert_eq!(b.keys[0].permissions, Permissions::ALL);
    let b = admin
        .deny_bucket_key(
            bucket,
            &key.access_key_id,
            Permissions {
                owner: true,
                ..Permissions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(b.keys[0].permissions, Permissions::READ_WRITE);
    let info = admin.key_info(&key.access_key_id, true).await.unwrap();
    assert_eq!(info.secret_access_key.as_deref(), Some(secret.as_str()));
    assert_eq!(info.buckets[0].permissions, Permissions::READ_WRITE);
    assert!(
        admin
            .key_info("GK000000000000000000000000", false)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let keys = admin.list_keys().await.unwrap();
    assert_eq!(keys[0].id, key.access_key_id);
    admin.delete_key(&key.access_key_id).await.unwrap();

    let seen = m.seen();
    assert_eq!(seen[0].json(), serde_json::json!({"name": "photos-key"}));
    assert_eq!(seen[1].path_and_query, "/v2/AllowBucketKey");
    assert_eq!(
        seen[1].json(),
        serde_json::json!({"bucketId": bucket, "accessKeyId": key.access_key_id,
            "permissions": {"read": true, "write": true, "owner": true}})
    );
    assert_eq!(seen[2].path_and_query, "/v2/DenyBucketKey");
    assert_eq!(
        seen[3].path_and_query,
        format!("/v2/GetKeyInfo?id={}&showSecretKey=true", key.access_key_id)
    );
    assert_eq!(
        seen[4].path_and_query,
        "/v2/GetKeyInfo?id=GK000000000000000000000000"
    );
    assert_eq!(
        (seen[5].method.as_str(), seen[5].path_and_query.as_str()),
        ("GET", "/v2/ListKeys")
    );
    assert_eq!(
        (seen[6].method.as_str(), seen[6].path_and_query.clone()),
        ("POST", format!("/v2/DeleteKey?id={}", key.access_key_id))
    );
}

#[tokio::test]
async fn delete_bucket_outcomes() {
    let m = mock(vec![
        fixture("delete_bucket_not_empty.json"),
        fixture("delete_bucket.json"),
        fixture("delete_bucket_not_found.json"),
    ])
    .await;
    let admin = m.admin();
    let e = admin.delete_bucket("b1").await.unwrap_err();
    assert!(matches!(e, GarageError::BucketNotEmpty { .. }), "{e:?}");
    admin.delete_bucket("b1").await.unwrap();
    assert!(admin.delete_bucket("b1").await.unwrap_err().is_not_found());
    let seen = m.seen();
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path_and_query.as_str()),
        ("POST", "/v2/DeleteBucket?id=b1")
    );
}

#[tokio::test]
async fn wrong_token_is_unauthorized() {
    let m = one("unauthorized.json").await;
    let e = m.admin().cluster_status().await.unwrap_err();
    assert!(
        matches!(e, GarageError::Unauthorized { status: 403, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn undecodable_answer_is_invalid_response() {
    let m = mock(vec![(200, b"<html>proxy</html>".to_vec())]).await;
    let e = m.admin().cluster_status().await.unwrap_err();
    assert!(matches!(e, GarageError::InvalidResponse(_)), "{e:?}");
}

#[tokio::test]
async fn unreachable_and_silent_servers() {
    // Nothing listens on a port we just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = AdminClient::new(&format!("http://127.0.0.1:{port}"), "t").unwrap();
    let e = admin.cluster_status().await.unwrap_err();
    assert!(matches!(e, GarageError::Transport(_)), "{e:?}");
    assert!(e.is_transient());

    // A server that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let admin = AdminClient::new(&format!("http://{addr}"), "t")
        .unwrap()
        .with_timeout(Duration::from_millis(200));
    let e = admin.cluster_status().await.unwrap_err();
    assert!(matches!(e, GarageError::Timeout(_)), "{e:?}");
}

#[tokio::test]
async fn s3_listing_pages_and_signing() {
    let m = mock(vec![
        fixture("list_objects_page1.xml"),
        fixture("list_objects_page2.xml"),
    ])
    .await;
    let keys = m.s3().list_all_keys("photos", None).await.unwrap();
    assert_eq!(keys, vec!["a.txt", "c d.txt", "dir/b.txt"]);
    let seen = m.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path_and_query, "/photos?list-type=2");
    // The token has characters that must be encoded (`]`, `=`).
    assert_eq!(
        seen[1].path_and_query,
        "/photos?list-type=2&continuation-token=%5DYyBkLnR4dA%3D%3D"
    );
    let auth = seen[0].header("authorization");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=GKtest/"),
        "{auth}"
    );
    assert!(auth.contains("/agility/s3/aws4_request"), "{auth}");
    assert!(auth.contains("x-amz-content-sha256"), "{auth}");
    assert_eq!(
        seen[0].header("x-amz-content-sha256"),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[tokio::test]
async fn s3_delete_objects_body_and_checksum() {
    let m = mock(vec![
        fixture("delete_objects_quiet.xml"),
        fixture("delete_objects.xml"),
    ])
    .await;
    let s3 = m.s3();
    let keys = vec!["dir/b.txt".to_owned(), "c d.txt".to_owned()];
    assert!(s3.delete_objects("photos", &keys).await.unwrap().is_empty());
    // A non-quiet answer (Deleted entries only) has no errors either.
    assert!(s3.delete_objects("photos", &keys).await.unwrap().is_empty());
    let seen = m.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path_and_query.as_str()),
        ("POST", "/photos?delete")
    );
    let body = String::from_utf8(seen[0].body.clone()).unwrap();
    assert!(body.contains("<Quiet>true</Quiet><Object><Key>dir/b.txt</Key></Object><Object><Key>c d.txt</Key></Object>"));
    use base64::Engine as _;
    use sha2::Digest as _;
    assert_eq!(
        seen[0].header("x-amz-checksum-sha256"),
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&seen[0].body))
    );
    let too_many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    assert!(matches!(
        s3.delete_objects("photos", &too_many).await,
        Err(GarageError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn s3_delete_errors_are_reported() {
    let body = br#"<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Error><Code>InternalError</Code><Key>a</Key><Message>boom</Message></Error></DeleteResult>"#;
    let m = mock(vec![(200, body.to_vec())]).await;
    let errors = m.s3().delete_objects("b", &["a".into()]).await.unwrap();
    assert_eq!(errors[0].key.as_deref(), Some("a"));
    assert_eq!(errors[0].code, "InternalError");
}

#[tokio::test]
async fn s3_multipart_uploads() {
    let m = mock(vec![
        fixture("create_multipart_upload.xml"),
        fixture("list_multipart_uploads.xml"),
        fixture("abort_multipart_upload.xml"),
        fixture("abort_multipart_upload_not_found.xml"),
    ])
    .await;
    let s3 = m.s3();
    let id = s3
        .create_multipart_upload("photos", "big.bin")
        .await
        .unwrap();
    let page = s3
        .list_multipart_uploads("photos", None, None)
        .await
        .unwrap();
    assert_eq!(
        page.uploads,
        vec![s3::UploadSummary {
            key: "big.bin".into(),
            upload_id: id.clone()
        }]
    );
    assert!(!page.is_truncated);
    s3.abort_multipart_upload("photos", "big.bin", &id)
        .await
        .unwrap();
    let e = s3
        .abort_multipart_upload("photos", "big.bin", &id)
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(e.code(), Some("NoSuchUpload"));
    let seen = m.seen();
    assert_eq!(seen[0].path_and_query, "/photos/big.bin?uploads");
    assert_eq!(seen[1].path_and_query, "/photos?uploads=");
    assert_eq!(seen[2].method, "DELETE");
    assert_eq!(
        seen[2].path_and_query,
        format!("/photos/big.bin?uploadId={id}")
    );
}

#[tokio::test]
async fn s3_empty_bucket_deletes_then_aborts() {
    let m = mock(vec![
        fixture("list_objects_page1.xml"),
        fixture("delete_objects_quiet.xml"),
        fixture("list_objects_empty.xml"),
        fixture("list_multipart_uploads.xml"),
        fixture("abort_multipart_upload.xml"),
    ])
    .await;
    let emptied = m.s3().empty_bucket("photos").await.unwrap();
    assert_eq!(
        emptied,
        s3::Emptied {
            objects: 2,
            uploads: 1
        }
    );
    assert_eq!(m.seen().len(), 5);
}

#[tokio::test]
async fn s3_errors_are_classified() {
    let m = one("no_such_bucket.xml").await;
    let e = m.s3().list_objects("nope", None, None).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(e.code(), Some("NoSuchBucket"));
}
