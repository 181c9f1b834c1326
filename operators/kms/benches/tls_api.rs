//! Encrypt and Decrypt of 4 KiB over TLS with keep-alive, against the real HTTPS server on
//! loopback, from a load generator in the same process (so both share the machine's cores, as
//! the issue asks: "from a load generator on the same machine"). Prints ops/s and p50/p99 for
//! several connection counts beside the raw AES-256-GCM rate measured in the same run.
//! Audit lines are formatted as JSON like in production and written to a sink.
//! Run: `cargo bench -p agility-kms --bench tls_api`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use agility_kms::cipher::{self, Material};
use agility_kms::crd::KeyState;
use agility_kms::{server, testing};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

const AKID: &str = "AKIAAGILITYBENCH0002";
const SECRET: &str = "bench-secret-bench-secret-bench-secret-02";
const HOST: &str = "localhost";

struct Signed {
    headers: Vec<(String, String)>,
    body: Bytes,
}

fn signed(target: &str, body: String) -> Signed {
    let headers = testing::signed(
        (AKID, SECRET),
        HOST,
        target,
        body.as_bytes(),
        SystemTime::now(),
    );
    Signed {
        headers,
        body: Bytes::from(body),
    }
}

/// One keep-alive connection sending `req` back to back until `until`; returns latencies.
async fn connection(
    addr: std::net::SocketAddr,
    tls: tokio_rustls::TlsConnector,
    req: Arc<Signed>,
    until: Instant,
) -> Vec<Duration> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = tcp.set_nodelay(true);
    let name = rustls_pki_types::ServerName::try_from(HOST).expect("name");
    let stream = tls.connect(name, tcp).await.expect("TLS");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut lat = Vec::new();
    while Instant::now() < until {
        let mut b = hyper::Request::builder().method("POST").uri("/");
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let r = b.body(Full::new(req.body.clone())).expect("request");
        let t = Instant::now();
        let resp = send.send_request(r).await.expect("response");
        let status = resp.status();
        let _ = resp.into_body().collect().await.expect("body");
        assert_eq!(status, 200);
        lat.push(t.elapsed());
    }
    lat
}

async fn run(
    label: &str,
    addr: std::net::SocketAddr,
    tls: &tokio_rustls::TlsConnector,
    req: Arc<Signed>,
    conns: usize,
    secs: u64,
) {
    let until = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(connection(addr, tls.clone(), req.clone(), until)))
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("client task"));
    }
    let total = start.elapsed();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "{label:<34} {conns:>3} conns {:>8.0} ops/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        lat.len() as f64 / total.as_secs_f64(),
        p(0.50),
        p(0.99)
    );
}

fn main() {
    // Audit lines are formatted as in production (JSON), written to a sink.
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::sink)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let key_id = uuid::Uuid::new_v4();
        let material = Material::generate();
        let plaintext = vec![0x5a_u8; 4096];
        let ctx = BTreeMap::from([("purpose".to_owned(), "bench".to_owned())]);
        let n = 20_000;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(cipher::seal(&material, key_id, 1, &plaintext, &ctx));
        }
        println!("raw AES-256-GCM seal 4 KiB (1 core): {:.0} ops/s", f64::from(n) / t.elapsed().as_secs_f64());

        let svc = testing::service(
            vec![testing::key("shop", "orders", "alias/orders", key_id, material.clone(), KeyState::Enabled)],
            (AKID, SECRET),
            testing::grant("shop"),
        );
        let kms = testing::loopback_kms(svc).await;
        let (addr, stop) = (kms.addr, kms.stop.clone());

        let connector = tokio_rustls::TlsConnector::from(server::client_config(&kms.ca).expect("client TLS"));

        let enc = Arc::new(signed(
            "Encrypt",
            format!(r#"{{"KeyId":"alias/orders","Plaintext":"{}","EncryptionContext":{{"purpose":"bench"}}}}"#, B64.encode(&plaintext)),
        ));
        let blob = B64.encode(cipher::seal(&material, key_id, 1, &plaintext, &ctx));
        let dec = Arc::new(signed("Decrypt", format!(r#"{{"CiphertextBlob":"{blob}","EncryptionContext":{{"purpose":"bench"}}}}"#)));
        for conns in [1, 8, 32] {
            run("Encrypt 4 KiB over TLS", addr, &connector, enc.clone(), conns, 4).await;
            run("Decrypt 4 KiB over TLS", addr, &connector, dec.clone(), conns, 4).await;
        }
        stop.cancel();
    });
}
