//! The official AWS SDK for Rust (`aws-sdk-s3`) through the gateway to a real Garage on
//! loopback: the SDK signs (SigV4, including its default payload checksums), serialises and
//! parses errors itself, so this checks wire compatibility of the path apps use most: put/get,
//! listing, multipart, presigned GET, server-side encryption refused, delete.

use std::time::Duration;

use agility_oss::gateway::config::GatewayConfig;
use agility_oss::gateway::harness::{S3Http, Signing, start_gateway};
use agility_oss::gateway::{Domains, SigningKey};
use agility_oss::testing;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};

#[tokio::test]
async fn the_aws_sdk_for_rust_works_through_the_gateway() {
    let garage = testing::start_garage(1, 1).await;
    let bucket = garage.create_bucket_with_key("sdk").await;
    let key = garage
        .admin_client()
        .create_key("gateway")
        .await
        .expect("gateway key");
    let rules = garage.dir().join("rules.json");
    std::fs::write(
        &rules,
        serde_json::to_vec(&GatewayConfig::default()).expect("rules"),
    )
    .expect("write rules");
    let gw = start_gateway(
        &garage.s3,
        &garage.web,
        SigningKey {
            access_key_id: key.access_key_id.clone(),
            secret_access_key: key.secret_access_key.clone().expect("secret"),
            region: garage.region.clone(),
        },
        Domains::default(),
        &rules,
        None,
    )
    .await
    .expect("gateway");

    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(garage.region.clone()))
        .endpoint_url(format!("http://{}", gw.s3))
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            bucket.key_id.clone(),
            bucket.secret.clone(),
            None,
            None,
            "test",
        ))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);

    s3.put_object()
        .bucket("sdk")
        .key("docs/a.txt")
        .body(ByteStream::from_static(b"hello from the sdk"))
        .content_type("text/plain")
        .send()
        .await
        .expect("PutObject");
    let got = s3
        .get_object()
        .bucket("sdk")
        .key("docs/a.txt")
        .send()
        .await
        .expect("GetObject");
    assert_eq!(got.content_type(), Some("text/plain"));
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(body.as_ref(), b"hello from the sdk");

    let listed = s3
        .list_objects_v2()
        .bucket("sdk")
        .prefix("docs/")
        .send()
        .await
        .expect("ListObjectsV2");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["docs/a.txt"]);

    // Multipart: two 5 MiB parts and a tail.
    let up = s3
        .create_multipart_upload()
        .bucket("sdk")
        .key("big.bin")
        .send()
        .await
        .expect("CreateMultipartUpload");
    let upload_id = up.upload_id().expect("upload id").to_owned();
    let mut parts = Vec::new();
    let mut whole = Vec::new();
    for (n, len) in [(1, 5 << 20), (2, 5 << 20), (3, 1 << 20)] {
        let data: Vec<u8> = (0..len).map(|i: usize| (i % 251) as u8 ^ n as u8).collect();
        whole.extend_from_slice(&data);
        let part = s3
            .upload_part()
            .bucket("sdk")
            .key("big.bin")
            .upload_id(&upload_id)
            .part_number(n)
            .body(ByteStream::from(data))
            .send()
            .await
            .expect("UploadPart");
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(part.e_tag().unwrap_or_default())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("sdk")
        .key("big.bin")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("CompleteMultipartUpload");
    let big = s3
        .get_object()
        .bucket("sdk")
        .key("big.bin")
        .send()
        .await
        .expect("GetObject big")
        .body
        .collect()
        .await
        .expect("big body")
        .into_bytes();
    assert!(big.as_ref() == whole.as_slice(), "multipart object differs");

    // A presigned GET works with a plain HTTP client and no credentials.
    let presigned = s3
        .get_object()
        .bucket("sdk")
        .key("docs/a.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).expect("presign config"))
        .await
        .expect("presign");
    let uri: http::Uri = presigned.uri().parse().expect("presigned URI");
    let path_and_query = uri.path_and_query().expect("path").as_str().to_owned();
    let answer = S3Http::new(&garage.region)
        .send(
            http::Method::GET,
            gw.s3,
            None,
            &path_and_query,
            &[],
            bytes::Bytes::new(),
            Signing::Anonymous,
        )
        .await
        .expect("presigned GET");
    assert_eq!(answer.status, http::StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.body.as_ref(), b"hello from the sdk");

    // SSE would be stored as plaintext by Garage: refused with a clear error, nothing stored.
    let err = s3
        .put_object()
        .bucket("sdk")
        .key("secret.txt")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("SSE refused");
    let service = err.into_service_error();
    assert_eq!(service.meta().code(), Some("NotImplemented"), "{service:?}");
    assert!(
        s3.head_object()
            .bucket("sdk")
            .key("secret.txt")
            .send()
            .await
            .is_err(),
        "a refused SSE object must not be stored"
    );

    s3.delete_object()
        .bucket("sdk")
        .key("docs/a.txt")
        .send()
        .await
        .expect("DeleteObject");
    assert!(
        s3.get_object()
            .bucket("sdk")
            .key("docs/a.txt")
            .send()
            .await
            .is_err(),
        "deleted object still readable"
    );
    gw.shutdown().await;
}
