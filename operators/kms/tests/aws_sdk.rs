//! The official AWS SDK for Rust (`aws-sdk-kms`) against the real HTTPS KMS server on loopback:
//! the SDK signs (SigV4), serialises and parses errors itself, so this checks wire compatibility
//! operation by operation, with an endpoint override and the KMS CA as the only trust root.

use agility_kms::cipher::Material;
use agility_kms::crd::KeyState;
use agility_kms::keyring::{Keyring, key_arn};
use agility_kms::testing;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use aws_smithy_http_client::tls;

const AKID: &str = "AKIAAWSSDKTEST0001";
const SECRET: &str = "aws-sdk-test-secret-aws-sdk-test-secret";

#[tokio::test]
async fn the_aws_sdk_for_rust_speaks_to_the_kms() {
    let key_id = uuid::Uuid::new_v4();
    let record = |state| {
        testing::key(
            "shop",
            "orders",
            "alias/orders",
            key_id,
            Material::from_bytes(&[5; 32]).expect("material"),
            state,
        )
    };
    let svc = testing::service(
        vec![record(KeyState::Enabled)],
        (AKID, SECRET),
        testing::grant("shop"),
    );
    let server = testing::loopback_kms(svc.clone()).await;
    let (port, stop, cert_ca) = (server.addr.port(), server.stop, server.ca);

    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(tls::TrustStore::empty().with_pem_certificate(cert_ca.as_bytes()))
                .build()
                .expect("TLS context"),
        )
        .build_https();
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("local"))
        .endpoint_url(format!("https://localhost:{port}"))
        .credentials_provider(Credentials::new(AKID, SECRET, None, None, "test"))
        .http_client(http)
        .build();
    let kms = aws_sdk_kms::Client::from_conf(conf);

    let enc = kms
        .encrypt()
        .key_id("alias/orders")
        .plaintext(Blob::new(b"card 4111".to_vec()))
        .encryption_context("order", "42")
        .send()
        .await
        .expect("Encrypt");
    assert_eq!(enc.key_id(), Some(key_arn("shop", key_id).as_str()));
    let blob = enc.ciphertext_blob().expect("ciphertext").clone();
    let dec = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("order", "42")
        .send()
        .await
        .expect("Decrypt");
    assert_eq!(
        dec.plaintext().map(Blob::as_ref),
        Some(b"card 4111".as_slice())
    );

    let wrong = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .expect_err("no context");
    assert!(wrong.into_service_error().is_invalid_ciphertext_exception());

    let dk = kms
        .generate_data_key()
        .key_id("alias/orders")
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .expect("GenerateDataKey");
    assert_eq!(dk.plaintext().map(|p| p.as_ref().len()), Some(32));
    let back = kms
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob().expect("blob").clone())
        .send()
        .await
        .expect("Decrypt data key");
    assert_eq!(back.plaintext(), dk.plaintext());

    let meta = kms
        .describe_key()
        .key_id("alias/orders")
        .send()
        .await
        .expect("DescribeKey");
    let meta = meta.key_metadata().expect("metadata");
    assert_eq!(meta.key_id(), key_id.to_string());
    assert_eq!(meta.key_state().map(|s| s.as_str()), Some("Enabled"));
    let keys = kms.list_keys().send().await.expect("ListKeys");
    assert_eq!(keys.keys().len(), 1);
    let aliases = kms.list_aliases().send().await.expect("ListAliases");
    assert_eq!(aliases.aliases()[0].alias_name(), Some("alias/orders"));
    let rot = kms
        .get_key_rotation_status()
        .key_id("alias/orders")
        .send()
        .await
        .expect("GetKeyRotationStatus");
    assert!(!rot.key_rotation_enabled());
    let re = kms
        .re_encrypt()
        .ciphertext_blob(blob.clone())
        .source_encryption_context("order", "42")
        .destination_key_id("alias/orders")
        .send()
        .await
        .expect("ReEncrypt");
    assert!(re.ciphertext_blob().is_some());

    // A disabled key: the SDK raises DisabledException.
    svc.set_keyring(Keyring::new([record(KeyState::Disabled)]));
    let disabled = kms
        .decrypt()
        .ciphertext_blob(blob)
        .encryption_context("order", "42")
        .send()
        .await
        .expect_err("disabled");
    assert!(disabled.into_service_error().is_disabled_exception());
    // Management is not granted by default.
    let denied = kms
        .disable_key()
        .key_id("alias/orders")
        .send()
        .await
        .expect_err("not granted");
    assert_eq!(
        aws_sdk_kms::error::ProvideErrorMetadata::code(&denied),
        Some("AccessDeniedException")
    );
    stop.cancel();
}
