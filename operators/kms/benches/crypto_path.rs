//! Prints the cost of the request path (SigV4 verification, authorisation, AES-256-GCM, JSON,
//! audit and metrics) for Encrypt and Decrypt of 4 KiB, beside the raw AES-256-GCM rate measured
//! in the same run. Not the network benchmark of issue 5 (that needs the TLS server); it bounds
//! what one core can do in-process. Run: `cargo bench -p agility-kms`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime};

use agility_kms::authz::Grant;
use agility_kms::cipher::{self, Material};
use agility_kms::crd::KeyState;
use agility_kms::keyring::{KeyRecord, Keyring, key_arn};
use agility_kms::service::{AccessKey, CONTENT_TYPE, Incoming, Metrics, Service};
use agility_kms::sigv4;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

const AKID: &str = "AKIAAGILITYBENCH0001";
const SECRET: &str = "bench-secret-bench-secret-bench-secret-01";

fn signed(target: &str, body: &str, at: SystemTime) -> Vec<(String, String)> {
    let mut headers = vec![
        ("host".to_owned(), "kms.agility-system.svc".to_owned()),
        ("content-type".to_owned(), CONTENT_TYPE.to_owned()),
        ("x-amz-target".to_owned(), format!("TrentService.{target}")),
    ];
    let req = sigv4::Request {
        method: "POST",
        uri: "/",
        headers: &headers,
        body: body.as_bytes(),
    };
    let added = sigv4::sign_request((AKID, SECRET), "local", "kms", at, &req).expect("sign");
    headers.extend(added);
    headers
}

fn serve_ok(svc: &Service, headers: &[(String, String)], body: &str, now: SystemTime) -> Vec<u8> {
    let out = svc.serve(
        &Incoming {
            method: "POST",
            uri: "/",
            headers,
            body: body.as_bytes(),
            request_id: "bench",
        },
        now,
    );
    assert_eq!(out.status, 200, "{}", String::from_utf8_lossy(&out.body));
    out.body
}

fn rate(label: &str, n: u32, mut f: impl FnMut()) {
    let mut lat = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        f();
        lat.push(t.elapsed());
    }
    let total = start.elapsed();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "{label:<44} {:>9.0} ops/s  p50 {:>7.1} us  p99 {:>7.1} us  (1 core)",
        f64::from(n) / total.as_secs_f64(),
        p(0.50).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6,
    );
}

fn main() {
    let key_id = uuid::Uuid::new_v4();
    let material = Material::generate();
    let record = KeyRecord {
        key_id,
        namespace: "shop".into(),
        name: "orders".into(),
        arn: key_arn("shop", key_id),
        state: KeyState::Enabled,
        description: String::new(),
        created: 0,
        deletion: None,
        aliases: vec!["alias/orders".into()],
        rotation_enabled: false,
        rotation_period_days: None,
        current_version: 1,
        versions: BTreeMap::from([(1, material.clone())]),
        creator: String::new(),
    };
    let registry = prometheus::Registry::new();
    let svc = Service::new("local", Metrics::new(&registry).expect("metrics"));
    svc.set_keyring(Keyring::new([record]));
    svc.set_access_keys(HashMap::from([(
        AKID.to_owned(),
        AccessKey {
            secret: zeroize::Zeroizing::new(SECRET.to_owned()),
            grant: Grant {
                principal: "shop/bench".into(),
                namespaces: ["shop".to_owned()].into(),
                keys: None,
                operations: None,
            },
        },
    )]));
    let plaintext = vec![0x5a_u8; 4096];
    let ctx = BTreeMap::from([("purpose".to_owned(), "bench".to_owned())]);
    let n = 20_000;

    rate("raw AES-256-GCM seal 4 KiB", n, || {
        std::hint::black_box(cipher::seal(&material, key_id, 1, &plaintext, &ctx));
    });
    let blob = cipher::seal(&material, key_id, 1, &plaintext, &ctx);
    let parsed = agility_kms::blob::Blob::parse(&blob).expect("blob");
    rate("raw AES-256-GCM open 4 KiB", n, || {
        std::hint::black_box(cipher::open(&material, &parsed, &ctx).expect("open"));
    });

    let now = SystemTime::now();
    let enc_body = format!(
        r#"{{"KeyId":"alias/orders","Plaintext":"{}","EncryptionContext":{{"purpose":"bench"}}}}"#,
        B64.encode(&plaintext)
    );
    let enc_headers = signed("Encrypt", &enc_body, now);
    rate(
        "request path Encrypt 4 KiB (SigV4+authz+JSON)",
        n / 4,
        || {
            serve_ok(&svc, &enc_headers, &enc_body, now);
        },
    );
    let reply: serde_json::Value =
        serde_json::from_slice(&serve_ok(&svc, &enc_headers, &enc_body, now)).expect("json");
    let dec_body = format!(
        r#"{{"CiphertextBlob":"{}","EncryptionContext":{{"purpose":"bench"}}}}"#,
        reply["CiphertextBlob"].as_str().expect("blob")
    );
    let dec_headers = signed("Decrypt", &dec_body, now);
    rate(
        "request path Decrypt 4 KiB (SigV4+authz+JSON)",
        n / 4,
        || {
            serve_ok(&svc, &dec_headers, &dec_body, now);
        },
    );
}
