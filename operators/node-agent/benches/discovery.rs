//! Discovery time for 32 disks (goal: ≤ 1 s per full discovery): on a fake sysfs tree with a fake
//! prober, and — as root — on 32 real loop devices with the real prober (wipefs, lvm pvs).
//! Run: `cargo bench -p agility-node-agent --bench discovery`.

#![allow(clippy::unwrap_used)] // Setup of loop devices; a bench may panic.

#[path = "../tests/disk_support/loopdev.rs"]
mod loopdev;

use std::time::{Duration, Instant};

use agility_node_agent::disk::fake_sys::{FakeDisk, FakeHost};
use agility_node_agent::disk::{
    DiscoveryOptions, EligibilityOptions, FakeProber, HostPaths, Prober, SystemProber,
    discover_with,
};

const DISKS: usize = 32;
const RUNS: usize = 7;

async fn median_ms(
    paths: &HostPaths,
    prober: &dyn Prober,
    opts: &DiscoveryOptions,
    expect_at_least: usize,
) -> f64 {
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let disks = match discover_with(paths, prober, opts).await {
            Ok(d) => d,
            Err(e) => {
                println!("discovery failed: {e}");
                return f64::NAN;
            }
        };
        times.push(t.elapsed());
        assert!(
            disks.len() >= expect_at_least,
            "found {} disks",
            disks.len()
        );
    }
    times.sort();
    times[RUNS / 2].as_secs_f64() * 1000.0
}

fn opts(concurrency: usize) -> DiscoveryOptions {
    DiscoveryOptions {
        eligibility: EligibilityOptions {
            min_size_bytes: 16 << 20,
            ..Default::default()
        },
        concurrency,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = FakeHost::new(dir.path()).expect("fake host");
    for i in 0..DISKS {
        host.add_disk(&FakeDisk {
            name: format!(
                "sd{}{}",
                (b'a' + (i / 26) as u8) as char,
                (b'a' + (i % 26) as u8) as char
            ),
            dev: (8, (i * 16) as u32),
            sectors: 1 << 31,
            rotational: i % 2 == 0,
            model: Some("BENCH DISK".into()),
            serial: Some(format!("SER{i:04}")),
            wwid: Some(format!("naa.5000c500{i:08x}")),
            partitions: if i % 4 == 0 {
                vec![(format!("sda{i}"), (8, (i * 16 + 1) as u32), 1 << 30, vec![])]
            } else {
                vec![]
            },
            ..Default::default()
        })
        .expect("fake disk");
    }
    let fake = FakeProber::new();
    let ms = median_ms(&host.paths(), &fake, &opts(8), DISKS).await;
    println!("fake sysfs, {DISKS} disks, fake prober: {ms:.2} ms per discovery (median of {RUNS})");

    if let Some(why) = loopdev::unavailable() {
        println!("real loop devices: skipped ({why})");
        return;
    }
    let files = tempfile::tempdir().expect("tempdir");
    let loops: Vec<loopdev::Loop> = (0..DISKS)
        .map(|i| loopdev::Loop::attach(files.path().join(format!("d{i}.img")), 64 << 20))
        .collect();
    let real = SystemProber::default();
    for c in [1, 8, 16] {
        let ms = median_ms(&HostPaths::root(), &real, &opts(c), loops.len()).await;
        println!(
            "real /sys, {} loop devices, wipefs + lvm pvs, concurrency {c}: {ms:.1} ms per discovery (median of {RUNS}; goal <= 1000 ms)",
            loops.len()
        );
    }
}
