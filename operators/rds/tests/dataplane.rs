//! The dataplane against real MariaDB 10.11 servers started by the tests (see support/): probes,
//! promotion and replication with semi-sync, fencing, errant transactions, accounts and roles,
//! and timeouts against a frozen server.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agility_rds::dataplane::{
    self, Connection, DataplaneError, GlobalValue, GtidPos, IoState, ReplicationSource, SemiSync,
    Timeouts, codes,
};
use agility_rds::grants::{AccountKind, AccountRole, desired_grants};
use agility_rds::names::{ADMIN_USER, REPL_USER};
use support::{MariaDb, REPL_PASSWORD};

const SEMI: SemiSync = SemiSync {
    enabled: true,
    timeout_ms: 3000,
};
const KEEP: &[&str] = &[ADMIN_USER, REPL_USER];

/// Starts servers in parallel (each bootstrap takes seconds).
fn start(ids: &[u32]) -> Vec<MariaDb> {
    std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|&id| s.spawn(move || MariaDb::start(id)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn source(primary: &MariaDb) -> ReplicationSource {
    ReplicationSource {
        host: "127.0.0.1".into(),
        port: primary.port,
        user: REPL_USER.into(),
        password: REPL_PASSWORD.into(),
    }
}

async fn scalar(conn: &mut Connection, sql: &str) -> Option<String> {
    let rows = conn.query(sql).await.unwrap();
    rows.first()
        .and_then(|r| r.get::<Option<String>, _>(0))
        .flatten()
}

async fn connect(db: &MariaDb, user: &str, password: &str) -> Result<Connection, DataplaneError> {
    Connection::connect(&db.endpoint(user, password), Timeouts::default()).await
}

fn roles(pairs: &[(&str, AccountRole)]) -> AccountKind {
    AccountKind::Normal(
        pairs
            .iter()
            .map(|(d, r)| ((*d).to_owned(), *r))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// A primary (server 1) with a semi-sync replica (server 2) that has caught up.
async fn replicated_pair() -> (Vec<MariaDb>, Connection, Connection) {
    let nodes = start(&[1, 2]);
    let mut primary = nodes[0].connect_admin().await;
    let mut replica = nodes[1].connect_admin().await;
    assert!(dataplane::make_primary(&mut primary, SEMI).await.unwrap());
    assert!(
        !dataplane::make_primary(&mut primary, SEMI).await.unwrap(),
        "second promotion is a no-op"
    );
    assert!(
        dataplane::make_replica(&mut replica, &source(&nodes[0]), true)
            .await
            .unwrap()
    );
    assert!(
        !dataplane::make_replica(&mut replica, &source(&nodes[0]), true)
            .await
            .unwrap(),
        "second demotion is a no-op"
    );
    dataplane::ensure_database(&mut primary, "db1", "utf8mb4", None)
        .await
        .unwrap();
    primary
        .execute("CREATE TABLE db1.t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB")
        .await
        .unwrap();
    let pos = dataplane::probe(&mut primary)
        .await
        .unwrap()
        .gtid_binlog_pos;
    assert!(
        dataplane::wait_for_gtid(&mut replica, &pos, Duration::from_secs(10))
            .await
            .unwrap()
    );
    (nodes, primary, replica)
}

#[tokio::test]
async fn probes_a_fresh_node_and_sets_globals() {
    let nodes = start(&[7]);
    let mut conn = nodes[0].connect_admin().await;
    let p = dataplane::probe(&mut conn).await.unwrap();
    assert_eq!(p.server_id, 7);
    assert!(p.read_only);
    // The init file's accounts are not binlogged, so a fresh node has no GTIDs to diverge on.
    assert!(
        p.gtid_binlog_pos.is_empty()
            && p.gtid_current_pos.is_empty()
            && p.gtid_slave_pos.is_empty()
    );
    assert_eq!(p.replica, None);
    assert!(!p.semi_sync.master_enabled && !p.semi_sync.master_status && !p.semi_sync.slave_status);
    assert_eq!(p.semi_sync.master_timeout_ms, 10_000);
    assert!(p.threads_connected >= 1);

    let allowed = ["max_connections", "init_connect"];
    let v = GlobalValue::Int(77);
    assert!(
        dataplane::set_global(&mut conn, "max_connections", &v, &allowed)
            .await
            .unwrap()
    );
    assert!(
        !dataplane::set_global(&mut conn, "max_connections", &v, &allowed)
            .await
            .unwrap()
    );
    assert_eq!(
        scalar(&mut conn, "SELECT @@GLOBAL.max_connections")
            .await
            .as_deref(),
        Some("77")
    );
    // A value with quotes and a backslash arrives intact.
    let text = "SET @greeting = 'it''s \\ ok'";
    let v = GlobalValue::Text(text.into());
    assert!(
        dataplane::set_global(&mut conn, "init_connect", &v, &allowed)
            .await
            .unwrap()
    );
    assert_eq!(
        scalar(&mut conn, "SELECT @@GLOBAL.init_connect")
            .await
            .as_deref(),
        Some(text)
    );
    assert!(
        !dataplane::set_global(&mut conn, "init_connect", &v, &allowed)
            .await
            .unwrap()
    );
    let refused =
        dataplane::set_global(&mut conn, "read_only", &GlobalValue::Bool(false), &allowed).await;
    assert!(
        matches!(refused, Err(DataplaneError::NotAllowed(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn replicates_with_semi_sync() {
    let (nodes, mut primary, mut replica) = replicated_pair().await;
    primary
        .execute("INSERT INTO db1.t VALUES (1, 'replicated')")
        .await
        .unwrap();
    let pp = dataplane::probe(&mut primary).await.unwrap();
    assert!(!pp.read_only && pp.replica.is_none());
    assert!(
        pp.semi_sync.master_enabled && pp.semi_sync.master_status,
        "{:?}",
        pp.semi_sync
    );
    assert_eq!(pp.semi_sync.master_clients, 1);
    assert_eq!(pp.semi_sync.master_wait_point, "AFTER_SYNC");
    assert_eq!(pp.semi_sync.master_timeout_ms, 3000);
    assert!(
        dataplane::wait_for_gtid(&mut replica, &pp.gtid_binlog_pos, Duration::from_secs(10))
            .await
            .unwrap()
    );
    assert_eq!(
        scalar(&mut replica, "SELECT v FROM db1.t WHERE id = 1")
            .await
            .as_deref(),
        Some("replicated")
    );

    let rp = dataplane::probe(&mut replica).await.unwrap();
    assert!(rp.read_only && rp.semi_sync.slave_enabled && rp.semi_sync.slave_status);
    let r = rp.replica.unwrap();
    assert_eq!(
        (r.master_host.as_str(), r.master_port),
        ("127.0.0.1", nodes[0].port)
    );
    assert_eq!(r.master_user, REPL_USER);
    assert_eq!(r.using_gtid, "Slave_Pos");
    assert_eq!((r.io_running, r.sql_running), (IoState::Yes, true));
    assert_eq!(r.last_io_errno, 0);
    assert_eq!(r.last_sql_errno, 0);
    assert!(r.gtid_io_pos.contains(&pp.gtid_binlog_pos));
    assert_eq!(r.seconds_behind_master, Some(0));
    assert!(rp.gtid_slave_pos.contains(&pp.gtid_binlog_pos));
    assert!(!rp.gtid_current_pos.diverged_from(&pp.gtid_binlog_pos));
    assert!(
        rp.gtid_binlog_state
            .errant_against(&pp.gtid_binlog_state)
            .is_empty()
    );

    // A position the primary never reached: the wait gives up on time.
    let ahead: GtidPos = format!("0-1-{}", pp.gtid_binlog_pos.get(0).unwrap().seq + 100)
        .parse()
        .unwrap();
    let t0 = Instant::now();
    assert!(
        !dataplane::wait_for_gtid(&mut replica, &ahead, Duration::from_millis(500))
            .await
            .unwrap()
    );
    assert!(t0.elapsed() < Duration::from_secs(3));

    // Semi-sync off on the replica online: the primary loses its semi-sync client.
    assert!(
        dataplane::set_semi_sync_slave(&mut replica, false)
            .await
            .unwrap()
    );
    assert!(
        !dataplane::set_semi_sync_slave(&mut replica, false)
            .await
            .unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while dataplane::probe(&mut primary)
        .await
        .unwrap()
        .semi_sync
        .master_clients
        != 0
    {
        assert!(Instant::now() < deadline, "semi-sync client still attached");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Switchover: the old primary follows the promoted replica and gets its new writes.
    assert!(
        dataplane::fence(&mut primary, KEEP)
            .await
            .unwrap()
            .read_only_set
    );
    let pos = dataplane::probe(&mut primary)
        .await
        .unwrap()
        .gtid_binlog_pos;
    assert!(
        dataplane::wait_for_gtid(&mut replica, &pos, Duration::from_secs(10))
            .await
            .unwrap()
    );
    assert!(dataplane::make_primary(&mut replica, SEMI).await.unwrap());
    assert!(
        dataplane::make_replica(&mut primary, &source(&nodes[1]), true)
            .await
            .unwrap()
    );
    replica
        .execute("INSERT INTO db1.t VALUES (2, 'after switchover')")
        .await
        .unwrap();
    let pos = dataplane::probe(&mut replica)
        .await
        .unwrap()
        .gtid_binlog_pos;
    assert!(
        dataplane::wait_for_gtid(&mut primary, &pos, Duration::from_secs(10))
            .await
            .unwrap()
    );
    assert_eq!(
        scalar(&mut primary, "SELECT COUNT(*) FROM db1.t")
            .await
            .as_deref(),
        Some("2")
    );
    let old = dataplane::probe(&mut primary).await.unwrap();
    assert!(
        old.replica
            .is_some_and(|r| r.is_running() && r.last_io_errno == 0)
    );
}

#[tokio::test]
async fn detects_errant_transactions() {
    let (_nodes, mut primary, mut replica) = replicated_pair().await;
    let pp = dataplane::probe(&mut primary).await.unwrap();
    let rp = dataplane::probe(&mut replica).await.unwrap();
    assert!(!rp.gtid_binlog_pos.diverged_from(&pp.gtid_binlog_pos));

    // A write on the replica outside replication, binlogged (the admin has READ_ONLY ADMIN).
    replica.execute("STOP SLAVE").await.unwrap();
    replica
        .execute("INSERT INTO db1.t VALUES (100, 'errant')")
        .await
        .unwrap();
    let rp = dataplane::probe(&mut replica).await.unwrap();
    assert_eq!(rp.gtid_binlog_pos.get(0).unwrap().server_id, 2);
    assert!(rp.gtid_binlog_pos.diverged_from(&pp.gtid_binlog_pos));
    assert_eq!(
        rp.gtid_binlog_state
            .errant_against(&pp.gtid_binlog_state)
            .len(),
        1
    );

    // Once the primary moves further the position looks merely behind; the state still knows.
    for id in 1..=3 {
        primary
            .execute(&format!("INSERT INTO db1.t VALUES ({id}, 'p')"))
            .await
            .unwrap();
    }
    let pp = dataplane::probe(&mut primary).await.unwrap();
    assert!(!rp.gtid_binlog_pos.diverged_from(&pp.gtid_binlog_pos));
    let errant = rp.gtid_binlog_state.errant_against(&pp.gtid_binlog_state);
    assert_eq!(errant.iter().map(|g| g.server_id).collect::<Vec<_>>(), [2]);
}

#[tokio::test]
async fn fencing_stops_writes_and_kills_sessions() {
    let nodes = start(&[1]);
    let db = &nodes[0];
    let mut admin = db.connect_admin().await;
    dataplane::make_primary(
        &mut admin,
        SemiSync {
            enabled: false,
            timeout_ms: 0,
        },
    )
    .await
    .unwrap();
    dataplane::ensure_database(&mut admin, "db1", "utf8mb4", Some("utf8mb4_unicode_ci"))
        .await
        .unwrap();
    admin
        .execute("CREATE TABLE db1.t (id INT PRIMARY KEY) ENGINE=InnoDB")
        .await
        .unwrap();
    let rw = desired_grants(&roles(&[("db1", AccountRole::ReadWrite)]));
    dataplane::ensure_account(&mut admin, "app", "app-pw", &rw)
        .await
        .unwrap();

    // An open transaction with a write in it.
    let mut app = connect(db, "app", "app-pw").await.unwrap();
    app.execute("BEGIN").await.unwrap();
    app.execute("INSERT INTO db1.t VALUES (1)").await.unwrap();
    let app_id = u64::from(app.thread_id().unwrap());

    let outcome = dataplane::fence(&mut admin, KEEP).await.unwrap();
    assert!(outcome.read_only_set);
    assert_eq!(outcome.killed, [app_id]);
    assert!(
        app.execute("COMMIT").await.is_err(),
        "the killed session cannot commit"
    );
    assert_eq!(
        scalar(&mut admin, "SELECT COUNT(*) FROM db1.t")
            .await
            .as_deref(),
        Some("0")
    );
    let mut again = connect(db, "app", "app-pw").await.unwrap();
    let refused = again
        .execute("INSERT INTO db1.t VALUES (2)")
        .await
        .unwrap_err();
    assert_eq!(
        refused.server_code(),
        Some(codes::OPTION_PREVENTS_STATEMENT),
        "{refused}"
    );
    again.close().await;
    assert!(
        !dataplane::fence(&mut admin, KEEP).await.unwrap().changed(),
        "fencing twice is a no-op"
    );

    // A write still running blocks `read_only`; fencing kills it rather than waiting it out.
    dataplane::make_primary(
        &mut admin,
        SemiSync {
            enabled: false,
            timeout_ms: 0,
        },
    )
    .await
    .unwrap();
    let mut slow = connect(db, "app", "app-pw").await.unwrap();
    let slow_id = u64::from(slow.thread_id().unwrap());
    let running =
        tokio::spawn(async move { slow.execute("INSERT INTO db1.t SELECT SLEEP(4) + 10").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let outcome = dataplane::fence(&mut admin, KEEP).await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(3500),
        "{:?}",
        t0.elapsed()
    );
    assert!(
        outcome.read_only_set && outcome.killed.contains(&slow_id),
        "{outcome:?}"
    );
    assert!(running.await.unwrap().is_err());
    assert_eq!(
        scalar(&mut admin, "SELECT COUNT(*) FROM db1.t")
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        scalar(&mut admin, "SELECT @@GLOBAL.read_only")
            .await
            .as_deref(),
        Some("1")
    );
}

#[tokio::test]
async fn accounts_get_exactly_their_roles() {
    let nodes = start(&[1]);
    let db = &nodes[0];
    let mut admin = db.connect_admin().await;
    dataplane::make_primary(
        &mut admin,
        SemiSync {
            enabled: false,
            timeout_ms: 0,
        },
    )
    .await
    .unwrap();
    assert!(
        dataplane::ensure_database(&mut admin, "app_1", "utf8mb4", None)
            .await
            .unwrap()
    );
    assert!(
        !dataplane::ensure_database(&mut admin, "app_1", "utf8mb4", None)
            .await
            .unwrap()
    );
    assert!(
        dataplane::ensure_database(&mut admin, "app_1", "utf8mb4", Some("utf8mb4_bin"))
            .await
            .unwrap()
    );
    assert!(
        !dataplane::ensure_database(&mut admin, "app_1", "utf8mb4", Some("utf8mb4_bin"))
            .await
            .unwrap()
    );
    // `_` is a wildcard in grants: a grant on app_1 must not reach appX1.
    dataplane::ensure_database(&mut admin, "appX1", "utf8mb4", None)
        .await
        .unwrap();
    admin
        .execute("CREATE TABLE app_1.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    admin
        .execute("CREATE TABLE appX1.t (id INT PRIMARY KEY)")
        .await
        .unwrap();

    let ro = desired_grants(&roles(&[("app_1", AccountRole::ReadOnly)]));
    let created = dataplane::ensure_account(&mut admin, "reader", "r-pw", &ro)
        .await
        .unwrap();
    assert!(created.created && created.changed());
    let steady = dataplane::ensure_account(&mut admin, "reader", "r-pw", &ro)
        .await
        .unwrap();
    assert!(!steady.changed(), "{steady:?}");
    assert_eq!(
        dataplane::read_privileges(&mut admin, "reader")
            .await
            .unwrap(),
        ro
    );

    let mut reader = connect(db, "reader", "r-pw").await.unwrap();
    reader.query("SELECT * FROM app_1.t").await.unwrap();
    let denied = reader
        .execute("INSERT INTO app_1.t VALUES (1)")
        .await
        .unwrap_err();
    assert_eq!(
        denied.server_code(),
        Some(codes::TABLE_ACCESS_DENIED),
        "{denied}"
    );
    assert!(reader.query("SELECT * FROM appX1.t").await.is_err());
    reader.close().await;

    // A role change is a diff, and takes effect for new sessions.
    let rw = desired_grants(&roles(&[("app_1", AccountRole::ReadWrite)]));
    let changed = dataplane::ensure_account(&mut admin, "reader", "r-pw", &rw)
        .await
        .unwrap();
    assert!(!changed.created && !changed.password_changed && !changed.grant_statements.is_empty());
    let mut writer = connect(db, "reader", "r-pw").await.unwrap();
    writer
        .execute("INSERT INTO app_1.t VALUES (1)")
        .await
        .unwrap();
    writer.close().await;

    // Passwords and names that need quoting survive the round trip; a new password is noticed.
    let hostile_pw = "a'b\"c\\d;-- ü\\";
    let hostile_user = "o'ne\\il";
    assert!(
        dataplane::ensure_account(&mut admin, hostile_user, hostile_pw, &ro)
            .await
            .unwrap()
            .created
    );
    assert!(
        !dataplane::ensure_account(&mut admin, hostile_user, hostile_pw, &ro)
            .await
            .unwrap()
            .changed()
    );
    connect(db, hostile_user, hostile_pw)
        .await
        .unwrap()
        .close()
        .await;
    let rotated = dataplane::ensure_account(&mut admin, hostile_user, "new-pw", &ro)
        .await
        .unwrap();
    assert!(rotated.password_changed && rotated.grant_statements.is_empty());
    assert!(connect(db, hostile_user, hostile_pw).await.is_err());
    connect(db, hostile_user, "new-pw")
        .await
        .unwrap()
        .close()
        .await;

    assert!(
        dataplane::drop_account(&mut admin, hostile_user)
            .await
            .unwrap()
    );
    assert!(
        !dataplane::drop_account(&mut admin, hostile_user)
            .await
            .unwrap()
    );
    assert!(dataplane::drop_database(&mut admin, "appX1").await.unwrap());
    assert!(!dataplane::drop_database(&mut admin, "appX1").await.unwrap());
}

#[tokio::test]
async fn the_privileged_account_cannot_undo_fencing() {
    let nodes = start(&[1]);
    let db = &nodes[0];
    let mut admin = db.connect_admin().await;
    let want = desired_grants(&AccountKind::Privileged);
    assert!(
        dataplane::ensure_account(&mut admin, "dba", "dba-pw", &want)
            .await
            .unwrap()
            .changed()
    );
    // The names in PRIVILEGED_GLOBAL are the ones MariaDB reports back, so it converges.
    assert_eq!(
        dataplane::read_privileges(&mut admin, "dba").await.unwrap(),
        want
    );
    assert!(
        !dataplane::ensure_account(&mut admin, "dba", "dba-pw", &want)
            .await
            .unwrap()
            .changed()
    );

    let mut dba = connect(db, "dba", "dba-pw").await.unwrap();
    for forbidden in [
        "SET GLOBAL read_only = OFF",
        "SHUTDOWN",
        "RESET MASTER",
        "STOP SLAVE",
        "CHANGE MASTER TO MASTER_HOST = '10.0.0.1'",
        "SET GLOBAL rpl_semi_sync_master_enabled = OFF",
        "SET SESSION sql_log_bin = 0",
        "PURGE BINARY LOGS BEFORE NOW()",
        "FLUSH TABLES WITH READ LOCK",
        "SET GLOBAL max_connections = 1000",
    ] {
        let err = dba.execute(forbidden).await.unwrap_err();
        assert!(
            matches!(
                err.server_code(),
                Some(codes::SPECIFIC_ACCESS_DENIED | 1045)
            ),
            "{forbidden}: {err}"
        );
    }
    // The node is still read-only (as started), so even the DBA's DML is refused...
    dba.execute("CREATE DATABASE IF NOT EXISTS dbx")
        .await
        .unwrap_err();
    // ...while its DBA work runs once the node is primary.
    dataplane::make_primary(
        &mut admin,
        SemiSync {
            enabled: false,
            timeout_ms: 0,
        },
    )
    .await
    .unwrap();
    dba.execute("CREATE DATABASE dbx").await.unwrap();
    dba.execute("CREATE USER 'sub'@'%' IDENTIFIED BY 'x'")
        .await
        .unwrap();
    dba.execute("GRANT SELECT ON dbx.* TO 'sub'@'%'")
        .await
        .unwrap();
    dba.query("SHOW SLAVE STATUS").await.unwrap();
    dba.query("SHOW BINARY LOGS").await.unwrap();
}

#[tokio::test]
async fn a_frozen_server_fails_calls_in_time() {
    let nodes = start(&[1]);
    let db = &nodes[0];
    let short = Timeouts {
        connect: Duration::from_secs(1),
        query: Duration::from_secs(1),
    };
    let mut conn = Connection::connect(&db.admin(), short).await.unwrap();
    dataplane::probe(&mut conn).await.unwrap();
    db.freeze();
    let t0 = Instant::now();
    let err = dataplane::probe(&mut conn).await.unwrap_err();
    assert!(matches!(err, DataplaneError::QueryTimeout { .. }), "{err}");
    assert!(
        // 1 s timeout; the slack is for a loaded CI machine, not for the server.
        t0.elapsed() < Duration::from_millis(3000),
        "{:?}",
        t0.elapsed()
    );
    let err = conn.query("SELECT 1").await.unwrap_err();
    assert!(matches!(err, DataplaneError::Broken { .. }), "{err}");
    let t0 = Instant::now();
    let err = Connection::connect(&db.admin(), short).await.unwrap_err();
    assert!(
        matches!(err, DataplaneError::ConnectTimeout { .. }),
        "{err}"
    );
    assert!(
        // 1 s timeout; the slack is for a loaded CI machine, not for the server.
        t0.elapsed() < Duration::from_millis(3000),
        "{:?}",
        t0.elapsed()
    );
    db.thaw();
    let mut conn = Connection::connect(&db.admin(), short).await.unwrap();
    dataplane::probe(&mut conn).await.unwrap();
}
