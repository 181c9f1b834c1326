//! Real mariadbd processes for the dataplane tests: each in its own temp dir, on a free loopback
//! port, killed when the guard drops.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agility_rds::dataplane::{Connection, Endpoint, Timeouts, Tls};
use agility_rds::names::{ADMIN_USER, REPL_USER};

pub const ADMIN_PASSWORD: &str = "admin-pw";
pub const REPL_PASSWORD: &str = "repl-pw";

/// Finds a MariaDB binary in PATH or /usr/sbin, /usr/bin; fails the test with what to install.
fn binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found in PATH, /usr/sbin or /usr/bin: install the Debian packages \
                 mariadb-server mariadb-client (hack/install-tools.sh does)"
            )
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Settings both the bootstrap and the server take: small and unsynced, for speed.
const SMALL: &[&str] = &[
    "--innodb-log-file-size=8M",
    "--innodb-buffer-pool-size=32M",
    "--innodb-flush-method=nosync",
    "--skip-innodb-doublewrite",
    "--innodb-flush-log-at-trx-commit=0",
];

/// The operator's two system accounts, not binlogged (each node creates its own), as the real
/// init file does.
fn init_sql() -> String {
    format!(
        "SET sql_log_bin = 0;\n\
         CREATE USER '{ADMIN_USER}'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}';\n\
         GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;\n\
         CREATE USER '{REPL_USER}'@'%' IDENTIFIED BY '{REPL_PASSWORD}';\n\
         GRANT REPLICATION SLAVE, REPLICATION SLAVE ADMIN, BINLOG MONITOR ON *.* TO '{REPL_USER}'@'%';\n"
    )
}

/// One running mariadbd; killed (SIGKILL) and its directory removed on drop.
pub struct MariaDb {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
    pub server_id: u32,
}

impl MariaDb {
    /// Bootstraps a data directory and starts a server with binlog, GTID strict mode and
    /// read_only on, like a node before the supervisor gives it a role.
    pub fn start(server_id: u32) -> MariaDb {
        let mariadbd = binary("mariadbd");
        let install = binary("mariadb-install-db");
        let dir = tempfile::Builder::new()
            .prefix("agility-rds-mariadb-")
            .tempdir()
            .unwrap();
        let datadir = dir.path().join("data");
        let user = if is_root() {
            vec!["--user=root"]
        } else {
            vec![]
        };
        let out = Command::new(&install)
            .arg("--no-defaults")
            .args(&user)
            .arg(format!("--datadir={}", datadir.display()))
            // Its own: a starting server deletes every `#sql*` file in its tmpdir, including
            // the temporary tables of servers bootstrapping beside it.
            .arg(format!("--tmpdir={}", dir.path().display()))
            .args(["--auth-root-authentication-method=socket", "--skip-test-db"])
            .arg("--skip-name-resolve")
            .args(SMALL)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let init = dir.path().join("init.sql");
        std::fs::write(&init, init_sql()).unwrap();
        let port = free_port();
        let p = |name: &str| dir.path().join(name).display().to_string();
        let child = Command::new(&mariadbd)
            .arg("--no-defaults")
            .args(&user)
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--socket={}", p("mysqld.sock")))
            .arg(format!("--pid-file={}", p("mysqld.pid")))
            .arg(format!("--log-error={}", p("error.log")))
            .arg(format!("--tmpdir={}", dir.path().display()))
            .arg(format!("--init-file={}", init.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--server-id={server_id}"))
            .arg(format!("--log-bin={}", p("data/binlog")))
            .args([
                "--binlog-format=ROW",
                "--log-slave-updates=ON",
                "--gtid-strict-mode=ON",
                "--read-only=ON",
                "--skip-name-resolve",
                "--max-connections=50",
            ])
            .args(SMALL)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut db = MariaDb {
            child,
            dir,
            port,
            server_id,
        };
        db.wait_ready();
        db
    }

    fn error_log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("error.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Waits for "ready for connections" (logged after the init file ran).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.error_log().contains("ready for connections") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mariadbd exited ({status}):\n{}", self.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd not ready after 30 s:\n{}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn endpoint(&self, user: &str, password: &str) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port: self.port,
            user: user.into(),
            password: password.into(),
            tls: Tls::Disabled,
        }
    }

    pub fn admin(&self) -> Endpoint {
        self.endpoint(ADMIN_USER, ADMIN_PASSWORD)
    }

    pub async fn connect_admin(&self) -> Connection {
        Connection::connect(&self.admin(), Timeouts::default())
            .await
            .unwrap()
    }

    /// SIGSTOP: the process keeps its sockets but answers nothing.
    pub fn freeze(&self) {
        self.signal("-STOP");
        // The signal is asynchronous: wait until the kernel reports the process stopped.
        let stat = format!("/proc/{}/stat", self.child.id());
        for _ in 0..200 {
            let state = std::fs::read_to_string(&stat).unwrap_or_default();
            let after_comm = state.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            if after_comm.is_some_and(|r| r.starts_with('T')) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("mariadbd {} did not stop", self.child.id());
    }

    /// SIGCONT.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // SIGKILL works on a stopped process too; nothing on disk needs to survive.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
