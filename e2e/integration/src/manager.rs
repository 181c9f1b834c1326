//! Runs the real `agility-operator` binary as child processes (two "manager pods").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// Path of the `agility-operator` binary: `AGILITY_OPERATOR_BIN`, else built with the cargo that
/// runs these tests.
pub fn operator_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("AGILITY_OPERATOR_BIN") {
        return PathBuf::from(bin);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let mut build = std::process::Command::new(cargo);
    // The test process carries cargo's per-crate variables (CARGO_PKG_*, ...); build scripts that
    // watch them would rebuild half the dependency tree on every run if they leaked through.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let per_crate = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_",
            "CARGO_TARGET_TMPDIR",
        ];
        if per_crate.iter().any(|p| key.starts_with(p)) || key == "OUT_DIR" {
            build.env_remove(&key);
        }
    }
    let out = build
        .args([
            "build",
            "--manifest-path",
            manifest,
            "-p",
            "agility-operator",
            "--bin",
            "agility-operator",
        ])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running cargo build: {e}"));
    assert!(
        out.status.success(),
        "cargo build -p agility-operator failed"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "agility-operator")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo did not report the agility-operator executable"))
}

/// A free local port (bound and released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// One manager process.
pub struct ManagerProcess {
    /// Its identity (POD_NAME).
    pub identity: String,
    /// Its HTTP address.
    pub addr: SocketAddr,
    child: Child,
}

impl ManagerProcess {
    /// Starts `agility-operator run` with no product controllers, leader election on a Lease in
    /// `namespace`, talking to the API server of `KUBECONFIG`.
    pub fn start(binary: &PathBuf, namespace: &str, identity: &str) -> Self {
        let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(binary)
            .args([
                "run",
                "--controllers=",
                "--http-addr",
                &addr.to_string(),
                "--log-format",
                "json",
            ])
            .env("POD_NAME", identity)
            .env("POD_NAMESPACE", namespace)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        ManagerProcess {
            identity: identity.to_owned(),
            addr,
            child,
        }
    }

    /// Sends a signal (by pid, to this child only).
    pub async fn signal(&self, signal: &str) {
        let pid = self
            .child
            .id()
            .unwrap_or_else(|| panic!("{} already exited", self.identity));
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .await
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits for the process to exit; returns its exit code (None if killed by a signal).
    pub async fn wait(&mut self) -> Option<i32> {
        self.child
            .wait()
            .await
            .unwrap_or_else(|e| panic!("wait: {e}"))
            .code()
    }

    /// GET `path` on the manager's HTTP port: status code and body, or None if not reachable.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = tokio::net::TcpStream::connect(self.addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        let code = out.get(9..12)?.parse().ok()?;
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Some((code, body))
    }
}
