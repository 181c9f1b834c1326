//! A real Garage for tests and benchmarks (this crate's unit and integration tests, the
//! gateway's): [`start_garage`] runs `nodes` Garage processes on 127.0.0.1 with a fresh
//! configuration, connects them and applies a layout, so the store serves S3 when it returns.
//! Dropping the [`RunningGarage`] kills the processes and removes their directory.
//!
//! The binary is `$AGILITY_GARAGE_BIN`, by default
//! `~/.cache/agility/crates/garage-2.5.0/bin/garage`. Helpers panic on failure (they are for
//! tests), with the path of the node's log in the message.
//!
//! ```no_run
//! # async fn t() {
//! let garage = agility_oss::testing::start_garage(1, 1).await;
//! let bucket = garage.create_bucket_with_key("photos").await;
//! let s3 = garage.s3_client(&bucket.key_id, &bucket.secret);
//! s3.put_object("photos", "a.jpg", bytes::Bytes::from_static(b"..")).await.unwrap();
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::Rng as _;

use crate::garage::s3::S3Client;
use crate::garage::{AdminClient, DesiredRole, Permissions};

/// The S3 region the test Garage answers to.
pub const REGION: &str = "agility";
/// Capacity given to each node in the layout (1 GB; the data directory is not filled).
pub const NODE_CAPACITY: u64 = 1_000_000_000;
/// How long a start or restart may take before the helper gives up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The Garage binary: `$AGILITY_GARAGE_BIN`, else the one `cargo install` put in the cache.
pub fn garage_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("AGILITY_GARAGE_BIN") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".cache/agility/crates/garage-2.5.0/bin/garage")
}

/// libfaketime's preload library, when installed (Debian package `faketime`). For tests that
/// run Garage at a fake date: pass `LD_PRELOAD=<this>` and `FAKETIME=@<date>` as `env`.
pub fn libfaketime() -> Option<PathBuf> {
    // The MT variant locks its internal state, which a multi-threaded server needs.
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// The environment that makes Garage's wall clock start at `date` (`2030-01-01 10:00:00`, UTC)
/// and run from there. The monotonic clock is left alone so timers keep working.
pub fn faketime_env(date: &str) -> Option<Vec<(String, String)>> {
    let lib = libfaketime()?;
    Some(vec![
        ("LD_PRELOAD".into(), lib.display().to_string()),
        ("FAKETIME".into(), format!("@{date}")),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ("TZ".into(), "UTC".into()),
    ])
}

/// One Garage process.
#[derive(Debug)]
pub struct GarageNode {
    /// `http://127.0.0.1:<port>` of its S3 API.
    pub s3: String,
    /// `http://127.0.0.1:<port>` of its website endpoint.
    pub web: String,
    /// `http://127.0.0.1:<port>` of its admin API.
    pub admin: String,
    /// `127.0.0.1:<port>` of its RPC.
    pub rpc: String,
    /// Its node id (64 hex characters).
    pub id: String,
    /// Its `garage.toml`.
    pub config: PathBuf,
    /// Its stdout and stderr.
    pub log: PathBuf,
    child: Option<tokio::process::Child>,
}

/// A running Garage cluster. The top-level addresses are node 0's.
#[derive(Debug)]
pub struct RunningGarage {
    /// `http://127.0.0.1:<port>`: S3 API (path-style; `<bucket>.s3.agility.test` also works
    /// with a Host header).
    pub s3: String,
    /// `http://127.0.0.1:<port>`: website endpoint; Host `<bucket>.web.agility.test`.
    pub web: String,
    /// `http://127.0.0.1:<port>`: admin API.
    pub admin: String,
    /// Admin API bearer token.
    pub token: String,
    /// S3 region ([`REGION`]).
    pub region: String,
    /// Root domain of the S3 API (`.s3.agility.test`).
    pub s3_root_domain: String,
    /// Root domain of the website endpoint (`.web.agility.test`).
    pub web_root_domain: String,
    /// Every node.
    pub nodes: Vec<GarageNode>,
    dir: PathBuf,
}

/// A bucket with a key that may read, write and own it.
#[derive(Clone, Debug)]
pub struct TestBucket {
    /// The global alias (S3 bucket name).
    pub name: String,
    pub bucket_id: String,
    pub key_id: String,
    pub secret: String,
}

fn free_port() -> u16 {
    let l = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => panic!("no free port: {e}"),
    };
    match l.local_addr() {
        Ok(a) => a.port(),
        Err(e) => panic!("no free port: {e}"),
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn write(path: &Path, contents: &str) {
    if let Err(e) = std::fs::write(path, contents) {
        panic!("writing {}: {e}", path.display());
    }
}

/// Starts `nodes` Garage nodes with `replication_factor`, connected, with every node a
/// storage role in its own zone, and waits until the cluster is healthy.
pub async fn start_garage(nodes: usize, replication_factor: usize) -> RunningGarage {
    start_garage_with_env(nodes, replication_factor, &[]).await
}

/// [`start_garage`] with extra environment for the processes (e.g. [`faketime_env`]).
pub async fn start_garage_with_env(
    nodes: usize,
    replication_factor: usize,
    env: &[(String, String)],
) -> RunningGarage {
    assert!(nodes >= 1, "at least one node");
    assert!(
        (1..=nodes).contains(&replication_factor),
        "replication factor must be 1..=nodes"
    );
    let bin = garage_bin();
    assert!(
        bin.exists(),
        "no Garage binary at {} (set AGILITY_GARAGE_BIN)",
        bin.display()
    );
    let dir = std::env::temp_dir().join(format!(
        "agility-garage-{}-{}",
        std::process::id(),
        random_hex(6)
    ));
    let token = random_hex(32);
    let rpc_secret = random_hex(32);
    let (s3_root, web_root) = (".s3.agility.test", ".web.agility.test");
    let mut garage_nodes = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let node_dir = dir.join(format!("node{i}"));
        for sub in ["meta", "data"] {
            if let Err(e) = std::fs::create_dir_all(node_dir.join(sub)) {
                panic!("creating {}: {e}", node_dir.display());
            }
        }
        let (rpc, s3, web, admin) = (free_port(), free_port(), free_port(), free_port());
        let config = node_dir.join("garage.toml");
        write(
            &config,
            &format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "lmdb"
replication_factor = {replication_factor}
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{rpc_secret}"

[s3_api]
api_bind_addr = "127.0.0.1:{s3}"
s3_region = "{REGION}"
root_domain = "{s3_root}"

[s3_web]
bind_addr = "127.0.0.1:{web}"
root_domain = "{web_root}"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{token}"
"#,
                meta = node_dir.join("meta").display(),
                data = node_dir.join("data").display(),
            ),
        );
        garage_nodes.push(GarageNode {
            s3: format!("http://127.0.0.1:{s3}"),
            web: format!("http://127.0.0.1:{web}"),
            admin: format!("http://127.0.0.1:{admin}"),
            rpc: format!("127.0.0.1:{rpc}"),
            id: String::new(),
            config,
            log: node_dir.join("garage.log"),
            child: None,
        });
    }
    let mut garage = RunningGarage {
        s3: garage_nodes[0].s3.clone(),
        web: garage_nodes[0].web.clone(),
        admin: garage_nodes[0].admin.clone(),
        token,
        region: REGION.into(),
        s3_root_domain: s3_root.into(),
        web_root_domain: web_root.into(),
        nodes: garage_nodes,
        dir,
    };
    garage.spawn_all(env).await;
    let desired: Vec<DesiredRole> = garage
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| DesiredRole {
            node_id: n.id.clone(),
            zone: format!("zone-{i}"),
            capacity: NODE_CAPACITY,
            tags: vec![],
        })
        .collect();
    if let Err(e) = garage.admin_client().ensure_layout(&desired).await {
        panic!(
            "applying the layout: {e} (log: {})",
            garage.nodes[0].log.display()
        );
    }
    garage.wait_healthy().await;
    garage
}

impl RunningGarage {
    /// An admin client of node 0.
    pub fn admin_client(&self) -> AdminClient {
        match AdminClient::new(&self.admin, &self.token) {
            Ok(c) => c,
            Err(e) => panic!("admin client: {e}"),
        }
    }

    /// An S3 client of node 0 with this key.
    pub fn s3_client(&self, key_id: &str, secret: &str) -> S3Client {
        match S3Client::new(&self.s3, &self.region, key_id, secret) {
            Ok(c) => c,
            Err(e) => panic!("S3 client: {e}"),
        }
    }

    /// The directory holding every node's configuration, data and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates bucket `name` and a key `<name>-key` with read, write and owner on it.
    pub async fn create_bucket_with_key(&self, name: &str) -> TestBucket {
        create_bucket_with_key(&self.admin_client(), name).await
    }

    /// Stops every node (SIGTERM, then SIGKILL after 10 s); data stays for [`Self::restart`].
    pub async fn stop(&mut self) {
        for n in &mut self.nodes {
            let Some(mut child) = n.child.take() else {
                continue;
            };
            let pid = child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .and_then(rustix::process::Pid::from_raw);
            if let Some(pid) = pid {
                // Best effort: a process that already exited is fine.
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }

    /// Starts every node again on the same configuration and data, with `env` (e.g. another
    /// [`faketime_env`] date), and waits until the cluster is healthy.
    pub async fn restart(&mut self, env: &[(String, String)]) {
        self.stop().await;
        self.spawn_all(env).await;
        self.wait_healthy().await;
    }

    /// Spawns the processes, learns their ids and connects node 0 to the others.
    async fn spawn_all(&mut self, env: &[(String, String)]) {
        let bin = garage_bin();
        for n in &mut self.nodes {
            let log = match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&n.log)
            {
                Ok(f) => f,
                Err(e) => panic!("opening {}: {e}", n.log.display()),
            };
            let log2 = match log.try_clone() {
                Ok(f) => f,
                Err(e) => panic!("opening {}: {e}", n.log.display()),
            };
            let mut cmd = tokio::process::Command::new(&bin);
            cmd.arg("-c")
                .arg(&n.config)
                .arg("server")
                .env("RUST_LOG", "garage=info")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(log2))
                .kill_on_drop(true);
            for (k, v) in env {
                cmd.env(k, v);
            }
            n.child = match cmd.spawn() {
                Ok(c) => Some(c),
                Err(e) => panic!("spawning {}: {e}", bin.display()),
            };
        }
        for i in 0..self.nodes.len() {
            let id = self.wait_node_id(i).await;
            self.nodes[i].id = id;
        }
        if self.nodes.len() > 1 {
            let peers: Vec<String> = self.nodes[1..]
                .iter()
                .map(|n| format!("{}@{}", n.id, n.rpc))
                .collect();
            let admin = self.admin_client();
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                let connected = admin.connect_nodes(&peers).await;
                let status = admin.cluster_status().await;
                let up = status
                    .map(|s| s.nodes.iter().filter(|n| n.is_up).count())
                    .unwrap_or(0);
                if connected.is_ok() && up >= self.nodes.len() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "nodes did not connect ({up}/{} up; log: {})",
                    self.nodes.len(),
                    self.nodes[0].log.display()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Waits until node `i`'s admin API answers, and returns its id.
    async fn wait_node_id(&mut self, i: usize) -> String {
        let admin = match AdminClient::new(&self.nodes[i].admin, &self.token) {
            Ok(c) => c.with_timeout(Duration::from_secs(2)),
            Err(e) => panic!("admin client: {e}"),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match admin.local_node_id().await {
                Ok(id) => return id,
                Err(e) => {
                    if let Some(child) = self.nodes[i].child.as_mut()
                        && let Ok(Some(status)) = child.try_wait()
                    {
                        panic!(
                            "garage node {i} exited ({status}); log: {}",
                            self.nodes[i].log.display()
                        );
                    }
                    assert!(
                        Instant::now() < deadline,
                        "garage node {i} admin API not up: {e}; log: {}",
                        self.nodes[i].log.display()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every node reports the cluster healthy (`/health`: quorum everywhere).
    async fn wait_healthy(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        for n in &self.nodes {
            let admin = match AdminClient::new(&n.admin, &self.token) {
                Ok(c) => c.with_timeout(Duration::from_secs(2)),
                Err(e) => panic!("admin client: {e}"),
            };
            loop {
                let health = admin.health().await;
                if matches!(health, Ok(true)) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "garage not healthy: {health:?}; log: {}",
                    n.log.display()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Drop for RunningGarage {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(child) = n.child.as_mut() {
                let _ = child.start_kill();
            }
        }
        // Keep the logs of a failed test for reading.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Creates bucket `name` and a key `<name>-key` with read, write and owner on it.
pub async fn create_bucket_with_key(admin: &AdminClient, name: &str) -> TestBucket {
    let bucket = match admin.create_bucket(name).await {
        Ok(b) => b,
        Err(e) => panic!("CreateBucket {name}: {e}"),
    };
    let key = match admin.create_key(&format!("{name}-key")).await {
        Ok(k) => k,
        Err(e) => panic!("CreateKey: {e}"),
    };
    if let Err(e) = admin
        .allow_bucket_key(&bucket.id, &key.access_key_id, Permissions::ALL)
        .await
    {
        panic!("AllowBucketKey: {e}");
    }
    let Some(secret) = key.secret_access_key else {
        panic!("CreateKey answered no secret");
    };
    TestBucket {
        name: name.into(),
        bucket_id: bucket.id,
        key_id: key.access_key_id,
        secret,
    }
}
