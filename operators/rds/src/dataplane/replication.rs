//! Role changes: promote, demote, fence, wait for a position, and semi-sync settings. Each action
//! reads before it writes and reports whether it changed anything, so a converged node sees no
//! writes and the caller emits events only for real changes.

use std::fmt;
use std::time::Duration;

use super::connection::Connection;
use super::error::{DataplaneError, codes};
use super::gtid::GtidPos;
use super::params::{ensure_flag, read_global};
use super::probe::{replica_status, single_row};
use super::quote;
use super::row::{flag, text, uint};

/// Longest wait for `STOP SLAVE` on a node about to be promoted (above `slave_net_timeout`).
const STOP_SLAVE_TIMEOUT: Duration = Duration::from_secs(15);

/// Semi-synchronous replication on a primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemiSync {
    /// Commits wait for a replica's ack.
    pub enabled: bool,
    /// How long a commit waits before the primary falls back to asynchronous.
    pub timeout_ms: u64,
}

/// The primary a replica follows.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplicationSource {
    /// The primary's host name or IP, as the replica reaches it.
    pub host: String,
    /// The primary's port.
    pub port: u16,
    /// The replication account.
    pub user: String,
    /// Its password.
    pub password: String,
}

// The password stays out of logs.
impl fmt::Debug for ReplicationSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicationSource")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// What [`fence`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FenceOutcome {
    /// `read_only` was off and is now on.
    pub read_only_set: bool,
    /// Threads killed.
    pub killed: Vec<u64>,
}

impl FenceOutcome {
    /// Anything changed.
    pub fn changed(&self) -> bool {
        self.read_only_set || !self.killed.is_empty()
    }
}

/// Makes the node a writable primary: drops its replication configuration, applies the
/// semi-sync master settings, and turns `read_only` off last, so the node takes writes only once
/// it no longer follows anyone. The caller has already waited for the relay log to be applied
/// ([`wait_for_gtid`]). Returns whether anything changed.
pub async fn make_primary(
    conn: &mut Connection,
    semi_sync: SemiSync,
) -> Result<bool, DataplaneError> {
    let mut changed = false;
    if replica_status(conn).await?.is_some() {
        // The IO thread may be blocked reading from a frozen primary: STOP SLAVE returns when
        // that read gives up (slave_net_timeout, 5 s) or the old primary's socket closes.
        conn.execute_within("STOP SLAVE", STOP_SLAVE_TIMEOUT)
            .await?;
        conn.execute("RESET SLAVE ALL").await?;
        changed = true;
    }
    changed |= set_semi_sync_slave(conn, false).await?;
    changed |= set_semi_sync_master(conn, semi_sync).await?;
    changed |= ensure_flag(conn, "read_only", false).await?;
    Ok(changed)
}

/// Makes the node a read-only replica of `source`: `read_only` on first, then (unless it already
/// follows `source` as the same user with GTID `slave_pos`) `CHANGE MASTER TO` and `START SLAVE`.
/// A configured but stopped replication is only restarted. The replication password cannot be
/// read back, so a changed password alone is not noticed: `RESET SLAVE ALL` first to force it.
/// Returns whether anything changed.
pub async fn make_replica(
    conn: &mut Connection,
    source: &ReplicationSource,
    semi_sync_slave: bool,
) -> Result<bool, DataplaneError> {
    let mut changed = ensure_flag(conn, "read_only", true).await?;
    let status = replica_status(conn).await?;
    let follows = status.as_ref().is_some_and(|s| {
        s.master_host == source.host
            && s.master_port == source.port
            && s.master_user == source.user
            && s.using_gtid.eq_ignore_ascii_case("Slave_Pos")
    });
    if follows {
        changed |= set_semi_sync_slave(conn, semi_sync_slave).await?;
        if !status.as_ref().is_some_and(|s| s.is_running()) {
            conn.execute("START SLAVE").await?;
            changed = true;
        }
        return Ok(changed);
    }
    if status.is_some() {
        conn.execute("STOP SLAVE").await?;
    }
    // Stopped now, so the new setting takes effect when the IO thread starts.
    ensure_flag(conn, "rpl_semi_sync_slave_enabled", semi_sync_slave).await?;
    align_slave_pos(conn).await?;
    let change = format!(
        "CHANGE MASTER TO MASTER_HOST = {}, MASTER_PORT = {}, MASTER_USER = {}, \
         MASTER_PASSWORD = {}, MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1, \
         MASTER_HEARTBEAT_PERIOD = 1",
        quote::string(&source.host)?,
        source.port,
        quote::string(&source.user)?,
        quote::string(&source.password)?,
    );
    conn.execute_secret(&change).await?;
    conn.execute("START SLAVE").await?;
    Ok(true)
}

/// A demoted primary's own transactions are in its binlog but not in `gtid_slave_pos`; from
/// there `MASTER_USE_GTID = slave_pos` would ask the new primary for them again. Starting from
/// `gtid_current_pos` (per domain, the later of the two) is what MariaDB documents for demotion.
/// Errant transactions are not hidden by this: the new primary refuses a position it never had.
async fn align_slave_pos(conn: &mut Connection) -> Result<(), DataplaneError> {
    let row = single_row(
        conn,
        "SELECT @@GLOBAL.gtid_binlog_pos AS b, @@GLOBAL.gtid_slave_pos AS s",
        "GTID positions",
    )
    .await?;
    let binlog: GtidPos = text(&row, "b").unwrap_or_default().parse()?;
    let slave: GtidPos = text(&row, "s").unwrap_or_default().parse()?;
    if !slave.contains(&binlog) {
        conn.execute("SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_current_pos")
            .await?;
    }
    Ok(())
}

/// Stops the node from committing: `read_only` on (which refuses commits by every account
/// without `READ_ONLY ADMIN`), then `KILL CONNECTION` for every client thread, which rolls back
/// open transactions. Kept: system threads (replication, event scheduler, background), this
/// session, and sessions of `keep_users` (the operator's own accounts).
///
/// Setting `read_only` waits for running writes; if one outlasts `lock_wait_timeout` (half the
/// query timeout), the clients are killed first and `read_only` is set again.
pub async fn fence(
    conn: &mut Connection,
    keep_users: &[&str],
) -> Result<FenceOutcome, DataplaneError> {
    let mut outcome = FenceOutcome::default();
    let on = flag(&read_global(conn, "read_only").await?.unwrap_or_default());
    if !on {
        let wait = (conn.query_timeout().as_secs() / 2).max(1);
        conn.execute(&format!("SET SESSION lock_wait_timeout = {wait}"))
            .await?;
        match conn.execute("SET GLOBAL read_only = ON").await {
            Ok(()) => {}
            Err(e) if e.server_code() == Some(codes::LOCK_WAIT_TIMEOUT) => {
                outcome.killed = kill_clients(conn, keep_users).await?;
                conn.execute("SET GLOBAL read_only = ON").await?;
            }
            Err(e) => return Err(e),
        }
        conn.execute("SET SESSION lock_wait_timeout = DEFAULT")
            .await?;
        outcome.read_only_set = true;
    }
    // Again after read_only: connections made meanwhile may hold open transactions too.
    outcome.killed.extend(kill_clients(conn, keep_users).await?);
    Ok(outcome)
}

/// Users MariaDB shows for its own threads.
const SYSTEM_USERS: &[&str] = &["system user", "event_scheduler"];

async fn kill_clients(
    conn: &mut Connection,
    keep_users: &[&str],
) -> Result<Vec<u64>, DataplaneError> {
    let rows = conn
        .query(
            "SELECT ID, USER, COMMAND FROM information_schema.PROCESSLIST \
             WHERE ID <> CONNECTION_ID()",
        )
        .await?;
    let victims: Vec<u64> = rows
        .iter()
        .filter(|r| {
            let user = text(r, "USER").unwrap_or_default();
            let command = text(r, "COMMAND").unwrap_or_default();
            command != "Daemon"
                && !SYSTEM_USERS.contains(&user.as_str())
                && !keep_users.contains(&user.as_str())
        })
        .filter_map(|r| uint(r, "ID"))
        .collect();
    let mut killed = Vec::with_capacity(victims.len());
    for id in victims {
        match conn.execute(&format!("KILL CONNECTION {id}")).await {
            Ok(()) => killed.push(id),
            // It disconnected on its own meanwhile.
            Err(e) if e.server_code() == Some(codes::UNKNOWN_THREAD_ID) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(killed)
}

/// Waits until this replica has applied `pos` (`MASTER_GTID_WAIT`). Ok(false) when `timeout`
/// ran out first; the call as a whole is bounded by `timeout` plus the query timeout.
pub async fn wait_for_gtid(
    conn: &mut Connection,
    pos: &GtidPos,
    timeout: Duration,
) -> Result<bool, DataplaneError> {
    let sql = format!(
        "SELECT MASTER_GTID_WAIT({}, {:.3}) AS r",
        quote::string(&pos.to_string())?,
        timeout.as_secs_f64()
    );
    let bound = timeout + conn.query_timeout();
    let rows = conn.query_within(&sql, bound).await?;
    match rows.first().and_then(|r| text(r, "r")).as_deref() {
        Some("0") => Ok(true),
        Some("-1") => Ok(false),
        other => Err(DataplaneError::UnexpectedReply {
            endpoint: conn.endpoint().to_owned(),
            what: "MASTER_GTID_WAIT".into(),
            detail: format!("{other:?}"),
        }),
    }
}

/// Applies a primary's semi-sync settings online: timeout and `AFTER_SYNC` (a commit is
/// acknowledged to the client only after a replica has it, so a failover loses no acknowledged
/// commit) before switching it on. Returns whether anything changed.
pub async fn set_semi_sync_master(
    conn: &mut Connection,
    semi_sync: SemiSync,
) -> Result<bool, DataplaneError> {
    let row = single_row(
        conn,
        "SELECT @@GLOBAL.rpl_semi_sync_master_enabled AS e, \
         @@GLOBAL.rpl_semi_sync_master_timeout AS t, \
         @@GLOBAL.rpl_semi_sync_master_wait_point AS w",
        "semi-sync settings",
    )
    .await?;
    let mut changed = false;
    if semi_sync.enabled {
        if uint(&row, "t") != Some(semi_sync.timeout_ms) {
            conn.execute(&format!(
                "SET GLOBAL rpl_semi_sync_master_timeout = {}",
                semi_sync.timeout_ms
            ))
            .await?;
            changed = true;
        }
        if !text(&row, "w").is_some_and(|w| w.eq_ignore_ascii_case("AFTER_SYNC")) {
            conn.execute("SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC")
                .await?;
            changed = true;
        }
    }
    if flag(&text(&row, "e").unwrap_or_default()) != semi_sync.enabled {
        let v = if semi_sync.enabled { "ON" } else { "OFF" };
        conn.execute(&format!("SET GLOBAL rpl_semi_sync_master_enabled = {v}"))
            .await?;
        changed = true;
    }
    Ok(changed)
}

/// Switches a replica's semi-sync acks online. The IO thread reads the setting when it
/// connects, so a running one is restarted. Returns whether anything changed.
pub async fn set_semi_sync_slave(
    conn: &mut Connection,
    enabled: bool,
) -> Result<bool, DataplaneError> {
    if !ensure_flag(conn, "rpl_semi_sync_slave_enabled", enabled).await? {
        return Ok(false);
    }
    let io_running = replica_status(conn)
        .await?
        .is_some_and(|s| s.io_running != super::probe::IoState::No);
    if io_running {
        conn.execute("STOP SLAVE IO_THREAD").await?;
        conn.execute("START SLAVE IO_THREAD").await?;
    }
    Ok(true)
}
