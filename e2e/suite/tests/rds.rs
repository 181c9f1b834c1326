//! RdsInstance on the real node with a real MySQL client (mysql_async): an instance with accounts
//! and databases whose grants are exactly what they asked for, MyISAM converted to InnoDB, a
//! failover under an acknowledged-write load when the primary pod is deleted and when it is
//! frozen (SIGSTOP), no acknowledged transaction lost in RPO-first + SemiSync, never two writable
//! nodes, and bad specs rejected by `kubectl apply`. Prints the numbers the issue asks for.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agility_e2e::{TestEnv, TestNamespace, faults, wait};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use mysql_async::prelude::Queryable;
use serde_json::Value;

mod support;
use support::kubectl_apply;

/// The test host and the node's bridge: where the test's connections come from.
const TEST_SOURCES: &str = r#"["10.250.0.0/24", "10.244.0.1/32"]"#;

async fn test_namespace(test: &str) -> TestNamespace {
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    env.namespace(test).await.expect("test namespace")
}

fn api(ns: &TestNamespace, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("rds.agility.dev", "v1alpha1", kind);
    Api::namespaced_with(ns.client().clone(), ns.name(), &ApiResource::from_gvk(&gvk))
}

fn instance_yaml(name: &str) -> String {
    format!(
        "apiVersion: rds.agility.dev/v1alpha1\nkind: RdsInstance\nmetadata: {{name: {name}}}\nspec:\n  instanceClass: rds.mysql.t1.small\n  storage: {{size: 1Gi, volumePermissions: true}}\n  ha: {{priority: RPOFirst, replication: SemiSync}}\n  allowlist: {{ipBlocks: {TEST_SOURCES}}}\n  parameters: {{wait_timeout: \"600\"}}\n"
    )
}

async fn wait_ready(
    ns: &TestNamespace,
    kind: &str,
    name: &str,
    timeout: Duration,
) -> DynamicObject {
    wait::wait_for(
        &api(ns, kind),
        name,
        timeout,
        "Ready",
        |o: &DynamicObject| {
            wait::condition_is(o, "Ready", "True")
                && o.data["status"]["observedGeneration"]
                    == o.metadata.generation.map(Value::from).unwrap_or_default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{kind} {name} becomes Ready: {e}"))
}

/// Ready with the standby streaming (phase Running).
async fn wait_running(ns: &TestNamespace, name: &str, timeout: Duration) -> DynamicObject {
    wait::wait_for(
        &api(ns, "RdsInstance"),
        name,
        timeout,
        "RdsInstance Running",
        |o: &DynamicObject| {
            wait::condition_is(o, "Ready", "True")
                && wait::condition_is(o, "Replication", "True")
                && o.data["status"]["phase"] == "Running"
        },
    )
    .await
    .expect("RdsInstance Running")
}

struct Creds {
    user: String,
    password: String,
}

async fn creds(ns: &TestNamespace, account: &str) -> Creds {
    let s = ns
        .api::<Secret>()
        .get(&format!("{account}-connection"))
        .await
        .expect("connection Secret");
    let d = s.data.expect("Secret data");
    let get = |k: &str| String::from_utf8(d[k].0.clone()).expect("utf8");
    assert!(get("jdbcUrl").starts_with("jdbc:mariadb://"));
    Creds {
        user: get("username"),
        password: get("password"),
    }
}

async fn endpoint(ns: &TestNamespace, svc: &str) -> SocketAddr {
    ns.reach()
        .service(ns.client(), ns.name(), svc, 3306)
        .await
        .expect("endpoint address")
}

async fn connect(
    addr: SocketAddr,
    c: &Creds,
    db: Option<&str>,
) -> mysql_async::Result<mysql_async::Conn> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(addr.ip().to_string())
        .tcp_port(addr.port())
        .user(Some(c.user.clone()))
        .pass(Some(c.password.clone()))
        .db_name(db.map(str::to_owned))
        .prefer_socket(false);
    tokio::time::timeout(Duration::from_secs(2), mysql_async::Conn::new(opts))
        .await
        .unwrap_or_else(|_| Err(mysql_async::Error::Other("connect timed out".into())))
}

/// Connects through the endpoint, retrying while the NetworkPolicy and the label settle.
async fn connect_eventually(
    ns: &TestNamespace,
    svc: &str,
    c: &Creds,
    db: Option<&str>,
) -> mysql_async::Conn {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match connect(endpoint(ns, svc).await, c, db).await {
            Ok(conn) => return conn,
            Err(e) if Instant::now() >= deadline => panic!("cannot connect to {svc}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// The pod labelled primary, waiting up to 60 s while a failover moves the label.
async fn primary_pod(ns: &TestNamespace, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = ns
            .api::<Pod>()
            .list(&ListParams::default().labels(&format!(
                "app.kubernetes.io/instance={name},rds.agility.dev/role=primary"
            )))
            .await
            .expect("list pods");
        if let Some(p) = pods.items.into_iter().find_map(|p| p.metadata.name) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no pod labelled primary for 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One INSERT in autocommit through the endpoint: acknowledged when the server said OK.
async fn insert(conn: &mut mysql_async::Conn, id: u64) -> mysql_async::Result<()> {
    tokio::time::timeout(
        Duration::from_secs(3),
        conn.exec_drop("INSERT INTO orders (id) VALUES (?)", (id,)),
    )
    .await
    .unwrap_or_else(|_| Err(mysql_async::Error::Other("insert timed out".into())))
}

/// Writes until `stop`, recording acknowledged ids; returns when the first write after `fault`
/// succeeded on a node other than `old_primary` (the failover time) or at the deadline.
struct Load {
    acked: BTreeSet<u64>,
    next: u64,
}

impl Load {
    async fn run_for(&mut self, ns: &TestNamespace, c: &Creds, dur: Duration) {
        let end = Instant::now() + dur;
        let mut conn = connect(endpoint(ns, "db").await, c, Some("shop"))
            .await
            .ok();
        while Instant::now() < end {
            match conn.as_mut() {
                Some(cn) => {
                    self.next += 1;
                    match insert(cn, self.next).await {
                        Ok(()) => {
                            self.acked.insert(self.next);
                        }
                        Err(_) => conn = None,
                    }
                }
                None => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    conn = connect(endpoint(ns, "db").await, c, Some("shop"))
                        .await
                        .ok();
                }
            }
        }
    }

    /// Writes until one is acknowledged by a new primary: another server than `old_server_id`,
    /// or the same server restarted after the fault (a write still taken by the dying process
    /// is counted as acknowledged but does not end the wait).
    async fn until_new_primary(
        &mut self,
        ns: &TestNamespace,
        c: &Creds,
        old_server_id: u32,
        since: Instant,
    ) -> Duration {
        let deadline = since + Duration::from_secs(120);
        let mut conn: Option<mysql_async::Conn> = None;
        loop {
            assert!(
                Instant::now() < deadline,
                "no write accepted by a new primary within 120 s"
            );
            if conn.is_none() {
                conn = connect(endpoint(ns, "db").await, c, Some("shop"))
                    .await
                    .ok();
            }
            if let Some(cn) = conn.as_mut() {
                self.next += 1;
                match insert(cn, self.next).await {
                    Ok(()) => {
                        self.acked.insert(self.next);
                        let who: Option<(u32, u64)> = cn
                            .query_first(
                                "SELECT @@server_id, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'",
                            )
                            .await
                            .ok()
                            .flatten();
                        let restarted = |uptime: u64| uptime < since.elapsed().as_secs();
                        if who.is_some_and(|(id, up)| id != old_server_id || restarted(up)) {
                            return since.elapsed();
                        }
                    }
                    Err(_) => conn = None,
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn assert_none_lost(&self, ns: &TestNamespace, c: &Creds) {
        let mut conn = connect_eventually(ns, "db", c, Some("shop")).await;
        let present: Vec<u64> = conn
            .query("SELECT id FROM orders")
            .await
            .expect("read back");
        let present: BTreeSet<u64> = present.into_iter().collect();
        let lost: Vec<_> = self.acked.difference(&present).collect();
        println!(
            "acknowledged transactions: {}, lost: {}",
            self.acked.len(),
            lost.len()
        );
        assert!(lost.is_empty(), "acknowledged transactions lost: {lost:?}");
    }
}

async fn server_id(ns: &TestNamespace, c: &Creds) -> u32 {
    let mut conn = connect_eventually(ns, "db", c, Some("shop")).await;
    conn.query_first("SELECT @@server_id")
        .await
        .expect("server id")
        .expect("a row")
}

/// Every HA pod that answers: at most one is writable.
async fn assert_single_writer(ns: &TestNamespace, admin: &Creds) {
    let mut writable = Vec::new();
    for pod in ["db-0", "db-1"] {
        let Ok(addr) = ns.reach().pod(ns.client(), ns.name(), pod, 3306).await else {
            continue;
        };
        if let Ok(mut conn) = connect(addr, admin, None).await {
            let ro: Option<u8> = conn.query_first("SELECT @@read_only").await.ok().flatten();
            if ro == Some(0) {
                writable.push(pod);
            }
        }
    }
    assert!(writable.len() <= 1, "two writable nodes: {writable:?}");
}

async fn admin_creds(ns: &TestNamespace) -> Creds {
    let s = ns
        .api::<Secret>()
        .get("db-system")
        .await
        .expect("system Secret");
    let d = s.data.expect("data");
    Creds {
        user: "agility_admin".into(),
        password: String::from_utf8(d["admin-password"].0.clone()).expect("utf8"),
    }
}

#[tokio::test]
async fn accounts_grants_and_failover_without_losing_acknowledged_writes() {
    let ns = test_namespace("rds-ha").await;
    let started = Instant::now();
    ns.apply_yaml(&instance_yaml("db"))
        .await
        .expect("apply RdsInstance");
    wait_running(&ns, "db", Duration::from_secs(420)).await;
    println!(
        "apply -> Running (primary + streaming standby): {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let objects = "apiVersion: rds.agility.dev/v1alpha1\nkind: RdsDatabase\nmetadata: {name: shop}\nspec: {instanceName: db, name: shop, deletionPolicy: Delete}\n---\n\
         apiVersion: rds.agility.dev/v1alpha1\nkind: RdsAccount\nmetadata: {name: app}\nspec:\n  instanceName: db\n  username: app\n  privileges: [{database: shop, role: ReadWrite}]\n---\n\
         apiVersion: rds.agility.dev/v1alpha1\nkind: RdsAccount\nmetadata: {name: reader}\nspec:\n  instanceName: db\n  username: reader\n  privileges: [{database: shop, role: ReadOnly}]\n---\n\
         apiVersion: rds.agility.dev/v1alpha1\nkind: RdsAccount\nmetadata: {name: dba}\nspec: {instanceName: db, username: dba, type: Privileged}\n";
    ns.apply_yaml(objects)
        .await
        .expect("apply accounts and database");
    wait_ready(&ns, "RdsDatabase", "shop", Duration::from_secs(120)).await;
    for a in ["app", "reader", "dba"] {
        wait_ready(&ns, "RdsAccount", a, Duration::from_secs(120)).await;
    }
    let app = creds(&ns, "app").await;
    let reader = creds(&ns, "reader").await;
    let dba = creds(&ns, "dba").await;

    // ReadWrite: DDL and DML in its database; MyISAM becomes InnoDB.
    let mut conn = connect_eventually(&ns, "db", &app, Some("shop")).await;
    conn.query_drop("CREATE TABLE orders (id BIGINT PRIMARY KEY) ENGINE=MyISAM")
        .await
        .expect("create table");
    let engine: Option<String> = conn
        .query_first("SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA='shop' AND TABLE_NAME='orders'")
        .await
        .expect("engine");
    assert_eq!(
        engine.as_deref(),
        Some("InnoDB"),
        "MyISAM is converted to InnoDB"
    );
    conn.exec_drop("INSERT INTO orders (id) VALUES (?)", (0u64,))
        .await
        .expect("insert");
    drop(conn);

    // ReadOnly: reads, never writes; no other database.
    let mut conn = connect_eventually(&ns, "db", &reader, Some("shop")).await;
    let n: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM orders")
        .await
        .expect("read");
    assert_eq!(n, Some(1));
    let denied = conn
        .query_drop("INSERT INTO orders (id) VALUES (99)")
        .await
        .expect_err("reader cannot write");
    assert_eq!(
        server_code(&denied),
        Some(1142),
        "INSERT command denied: {denied}"
    );
    let denied = conn
        .query_drop("CREATE DATABASE other")
        .await
        .expect_err("reader cannot create");
    assert!(
        matches!(server_code(&denied), Some(1044) | Some(1142)),
        "{denied}"
    );
    drop(conn);

    // Privileged: DBA grants, but it cannot undo the fencing or stop the server.
    let mut conn = connect_eventually(&ns, "db", &dba, None).await;
    conn.query_drop("CREATE DATABASE dba_scratch")
        .await
        .expect("dba creates a database");
    let denied = conn
        .query_drop("SET GLOBAL read_only = OFF")
        .await
        .expect_err("dba cannot touch read_only");
    assert!(matches!(server_code(&denied), Some(1227)), "{denied}");
    drop(conn);

    // Online parameter applied on the primary.
    let admin = admin_creds(&ns).await;
    let mut conn = connect_eventually(&ns, "db", &admin, None).await;
    let wt: Option<u64> = conn
        .query_first("SELECT @@GLOBAL.wait_timeout")
        .await
        .expect("wait_timeout");
    assert_eq!(wt, Some(600));
    drop(conn);

    // Failover 1: the primary pod is deleted (crash) under load.
    let mut load = Load {
        acked: BTreeSet::new(),
        next: 1,
    };
    load.run_for(&ns, &app, Duration::from_secs(3)).await;
    // The StatefulSet re-creates the pod at once: whichever node is primary first (the standby
    // promoted, or the restarted node reopened with all its data) takes the writes.
    let old = primary_pod(&ns, "db").await;
    let old_id = server_id(&ns, &app).await;
    let t0 = Instant::now();
    faults::delete_pod(&ns, &old, Some(0))
        .await
        .expect("delete the primary");
    let crash = load.until_new_primary(&ns, &app, old_id, t0).await;
    println!(
        "primary pod deleted: first acknowledged write through the endpoint after {:.2} s (primary now {})",
        crash.as_secs_f64(),
        primary_pod(&ns, "db").await
    );
    load.run_for(&ns, &app, Duration::from_secs(2)).await;
    wait_running(&ns, "db", Duration::from_secs(300)).await;
    assert_single_writer(&ns, &admin).await;
    load.assert_none_lost(&ns, &app).await;

    // Failover 2: the primary is frozen (SIGSTOP): detected by two views, fenced, replaced.
    let old = primary_pod(&ns, "db").await;
    let old_id = server_id(&ns, &app).await;
    load.run_for(&ns, &app, Duration::from_secs(2)).await;
    let t0 = Instant::now();
    faults::freeze(&ns, &old).await.expect("freeze the primary");
    let frozen = load.until_new_primary(&ns, &app, old_id, t0).await;
    println!(
        "failover (primary frozen): first acknowledged write on the new primary after {:.2} s",
        frozen.as_secs_f64()
    );
    assert_ne!(primary_pod(&ns, "db").await, old);
    assert_single_writer(&ns, &admin).await;
    wait_running(&ns, "db", Duration::from_secs(300)).await;
    assert_single_writer(&ns, &admin).await;
    load.assert_none_lost(&ns, &app).await;
    let status = api(&ns, "RdsInstance").get("db").await.expect("status");
    assert!(status.data["status"]["lastFailover"]["to"].is_string());
    ns.finish().await.expect("clean up");
}

#[tokio::test]
async fn bad_specs_are_rejected_at_apply() {
    let ns = test_namespace("rds-reject").await;
    let base = "apiVersion: rds.agility.dev/v1alpha1\nkind: RdsInstance\nmetadata: {name: x}\nspec:\n  storage: {size: 1Gi}\n";
    let cases = [
        ("unknown class", format!("{base}  instanceClass: rds.mysql.huge\n"), "Unsupported value"),
        ("locked parameter", format!("{base}  instanceClass: rds.mysql.t1.small\n  parameters: {{read_only: \"OFF\"}}\n"), "unknown field"),
        ("bad parameter value", format!("{base}  instanceClass: rds.mysql.t1.small\n  parameters: {{wait_timeout: \"soon\"}}\n"), "should match"),
        ("too many read replicas", format!("{base}  instanceClass: rds.mysql.t1.small\n  readReplicas: 6\n"), "less than or equal to 5"),
        ("bad allowlist entry", format!("{base}  instanceClass: rds.mysql.t1.small\n  allowlist: {{ipBlocks: [\"10.0.0.300\"]}}\n"), "not an IP address or CIDR"),
        (
            "reserved user",
            "apiVersion: rds.agility.dev/v1alpha1\nkind: RdsAccount\nmetadata: {name: r}\nspec: {instanceName: x, username: root}\n".to_owned(),
            "reserved",
        ),
        (
            "privileges on a privileged account",
            "apiVersion: rds.agility.dev/v1alpha1\nkind: RdsAccount\nmetadata: {name: p}\nspec: {instanceName: x, username: boss, type: Privileged, privileges: [{database: a, role: ReadOnly}]}\n".to_owned(),
            "Normal accounts only",
        ),
        (
            "collation of another charset",
            "apiVersion: rds.agility.dev/v1alpha1\nkind: RdsDatabase\nmetadata: {name: d}\nspec: {instanceName: x, name: d1, characterSet: latin1, collation: utf8mb4_bin}\n".to_owned(),
            "must belong to spec.characterSet",
        ),
    ];
    for (what, yaml, expect) in &cases {
        let (ok, err) = kubectl_apply(ns.name(), yaml);
        assert!(!ok, "{what}: accepted");
        assert!(err.contains(expect), "{what}: {err}");
        println!(
            "rejected ({what}): {}",
            err.lines().next().unwrap_or_default()
        );
    }
    // Immutable and one-way fields.
    let account = "apiVersion: rds.agility.dev/v1alpha1\nkind: RdsAccount\nmetadata: {name: boss}\nspec: {instanceName: x, username: boss, type: Privileged}\n";
    assert!(
        kubectl_apply(ns.name(), account).0,
        "a privileged account is accepted"
    );
    let back = account.replace("type: Privileged", "type: Normal");
    let (ok, err) = kubectl_apply(ns.name(), &back);
    assert!(!ok && err.contains("cannot be turned back"), "{err}");
    let renamed = account.replace("username: boss", "username: chief");
    let (ok, err) = kubectl_apply(ns.name(), &renamed);
    assert!(!ok && err.contains("immutable"), "{err}");
    ns.finish().await.expect("clean up");
}
