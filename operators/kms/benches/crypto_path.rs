//! Prints the cost of the request path (SigV4 verification, authorisation, AES-256-GCM, JSON,
//! audit and metrics) for Encrypt and Decrypt of 4 KiB, beside the raw AES-256-GCM rate measured
//! in the same run. Not the network benchmark of issue 5 (that needs the TLS server); it bounds
//! what one core can do in-process. Run: `cargo bench -p agility-kms`.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use agility_kms::cipher::{self, Material};
use agility_kms::crd::KeyState;
use agility_kms::service::{Incoming, Service};
use agility_kms::testing;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

const AKID: &str = "AKIAAGILITYBENCH0001";
const SECRET: &str = "bench-secret-bench-secret-bench-secret-01";

fn signed(target: &str, body: &str, at: SystemTime) -> Vec<(String, String)> {
    testing::signed(
        (AKID, SECRET),
        "kms.agility-system.svc",
        target,
        body.as_bytes(),
        at,
    )
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
    let record = testing::key(
        "shop",
        "orders",
        "alias/orders",
        key_id,
        material.clone(),
        KeyState::Enabled,
    );
    let svc = testing::service(vec![record], (AKID, SECRET), testing::grant("shop"));
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
