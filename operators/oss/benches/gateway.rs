//! The gateway's overhead: the same PUTs and GETs straight to a real Garage and through the
//! gateway (in-process, loopback), in one run, for 4 KiB objects (many ops, a few concurrent
//! clients) and 16 MiB objects. Signed requests pass through; the anonymous GET case is
//! re-signed with the gateway's key. Prints ops/s, MB/s and gateway time / direct time (goal
//! ≤ 1.1×). `cargo bench -p agility-oss --bench gateway`; `GATEWAY_BENCH_SCALE=0.1` for a quick
//! run.

#![allow(clippy::unwrap_used)] // a benchmark may unwrap (project rule)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agility_oss::crd::Acl;
use agility_oss::garage::Permissions;
use agility_oss::gateway::config::{BucketRules, GatewayConfig};
use agility_oss::gateway::harness::{S3Http, Signing, start_gateway};
use agility_oss::gateway::{Domains, SigningKey};
use agility_oss::testing;
use bytes::Bytes;
use http::{Method, StatusCode};

struct Case {
    name: &'static str,
    size: usize,
    ops: usize,
    concurrency: usize,
}

#[derive(Clone, Copy)]
enum Op {
    Put,
    Get,
    GetAnonymous,
}

/// Runs `ops` requests of `op` against `addr` from `concurrency` tasks; returns the wall time.
async fn run(
    http: &S3Http,
    addr: SocketAddr,
    op: Op,
    case: &Case,
    body: &Bytes,
    key: (&str, &str),
) -> Duration {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..case.concurrency {
        let (http, next, body) = (http.clone(), next.clone(), body.clone());
        let (id, secret) = (key.0.to_owned(), key.1.to_owned());
        let (ops, size, name) = (case.ops, case.size, case.name);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= ops {
                    return;
                }
                // Objects are reused round-robin so GETs find what the PUTs wrote.
                let path = format!("/bench/{name}/{}", i % 64);
                let (method, body, signing) = match op {
                    Op::Put => (Method::PUT, body.clone(), Signing::Header(&id, &secret)),
                    Op::Get => (Method::GET, Bytes::new(), Signing::Header(&id, &secret)),
                    Op::GetAnonymous => (Method::GET, Bytes::new(), Signing::Anonymous),
                };
                let a = http
                    .send(method, addr, None, &path, &[], body, signing)
                    .await
                    .unwrap();
                assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text());
                if !matches!(op, Op::Put) {
                    assert_eq!(a.body.len(), size);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn line(label: &str, case: &Case, t: Duration) {
    let secs = t.as_secs_f64();
    let ops = case.ops as f64 / secs;
    let mb = (case.ops * case.size) as f64 / secs / 1e6;
    println!("  {label:<28} {ops:>9.1} ops/s {mb:>9.1} MB/s  ({secs:.2} s)");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let scale: f64 = std::env::var("GATEWAY_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = |x: usize| ((x as f64 * scale) as usize).max(8);
    let garage = testing::start_garage(1, 1).await;
    let bucket = garage.create_bucket_with_key("bench").await;
    let admin = garage.admin_client();
    let key = admin.create_key("gateway").await.unwrap();
    admin
        .allow_bucket_key(&bucket.bucket_id, &key.access_key_id, Permissions::READ)
        .await
        .unwrap();
    let mut config = GatewayConfig::default();
    config.buckets.insert(
        "bench".into(),
        BucketRules {
            acl: Acl::PublicRead,
            referer: None,
        },
    );
    let rules = garage.dir().join("rules.json");
    std::fs::write(&rules, serde_json::to_vec(&config).unwrap()).unwrap();
    let gw = start_gateway(
        &garage.s3,
        &garage.web,
        SigningKey {
            access_key_id: key.access_key_id.clone(),
            secret_access_key: key.secret_access_key.clone().unwrap(),
            region: garage.region.clone(),
        },
        Domains::default(),
        &rules,
        None,
    )
    .await
    .unwrap();
    let direct: SocketAddr = garage.s3.trim_start_matches("http://").parse().unwrap();
    let http = S3Http::new(&garage.region);
    let creds = (bucket.key_id.as_str(), bucket.secret.as_str());

    let cases = [
        Case {
            name: "4KiB",
            size: 4 << 10,
            ops: n(4000),
            concurrency: 8,
        },
        Case {
            name: "16MiB",
            size: 16 << 20,
            ops: n(96),
            concurrency: 2,
        },
    ];
    println!(
        "gateway benchmark: Garage 2.5 (1 node, loopback) direct vs through the gateway; {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut ratios = Vec::new();
    for case in &cases {
        let body = Bytes::from(vec![0x5a; case.size]);
        println!(
            "{} objects: {} ops, {} concurrent clients",
            case.name, case.ops, case.concurrency
        );
        // Warm-up: write every object once, open the pools.
        let warm = Case {
            name: case.name,
            size: case.size,
            ops: 64,
            concurrency: case.concurrency,
        };
        run(&http, direct, Op::Put, &warm, &body, creds).await;
        run(&http, gw.s3, Op::Get, &warm, &body, creds).await;
        for (label, op) in [
            ("PUT", Op::Put),
            ("GET", Op::Get),
            ("GET anonymous (re-signed)", Op::GetAnonymous),
        ] {
            // Anonymous GETs straight to Garage would be refused: compare with signed ones.
            let direct_op = if matches!(op, Op::GetAnonymous) {
                Op::Get
            } else {
                op
            };
            // Alternate and keep the best of three rounds each, so that neither side pays for
            // a noisy moment alone.
            let mut d = Duration::MAX;
            let mut g = Duration::MAX;
            for _ in 0..3 {
                d = d.min(run(&http, direct, direct_op, case, &body, creds).await);
                g = g.min(run(&http, gw.s3, op, case, &body, creds).await);
            }
            line(&format!("{label} direct"), case, d);
            line(&format!("{label} gateway"), case, g);
            let ratio = g.as_secs_f64() / d.as_secs_f64();
            println!("  {label:<28} overhead {ratio:.3}x");
            ratios.push((format!("{} {label}", case.name), ratio));
        }
    }
    println!("summary (gateway time / direct time, goal <= 1.1x):");
    for (name, r) in &ratios {
        println!(
            "  {name:<40} {r:.3}x{}",
            if *r <= 1.1 { "" } else { "  (over goal)" }
        );
    }
    gw.shutdown().await;
}
