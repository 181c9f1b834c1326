//! `probe`: one node's role, replication and semi-sync facts, as the HA supervisor reads them.

use std::collections::BTreeMap;

use mysql_async::Row;

use super::connection::Connection;
use super::error::DataplaneError;
use super::gtid::{GtidPos, GtidState};
use super::row::{flag, text, uint};

/// What one probe saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeProbe {
    /// `@@server_id`.
    pub server_id: u32,
    /// `@@read_only`.
    pub read_only: bool,
    /// The last GTID of each domain in this node's binlog.
    pub gtid_binlog_pos: GtidPos,
    /// The later of the binlog and the replication position, per domain.
    pub gtid_current_pos: GtidPos,
    /// The last GTID applied by replication, per domain.
    pub gtid_slave_pos: GtidPos,
    /// Every (domain, server) pair's last GTID in the binlog, for errant-transaction checks.
    pub gtid_binlog_state: GtidState,
    /// The default replication connection, when one is configured (even if stopped).
    pub replica: Option<ReplicaStatus>,
    /// Semi-synchronous replication, both sides.
    pub semi_sync: SemiSyncStatus,
    /// `Uptime`, seconds.
    pub uptime_secs: u64,
    /// `Threads_connected`.
    pub threads_connected: u64,
}

/// The replica IO thread's state (`Slave_IO_Running`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoState {
    /// Connected to the source and reading its binlog.
    Yes,
    /// Trying to (re)connect.
    Connecting,
    /// Stopped.
    No,
}

/// `SHOW SLAVE STATUS` for the default connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// `Master_Host`.
    pub master_host: String,
    /// `Master_Port`.
    pub master_port: u16,
    /// `Master_User`.
    pub master_user: String,
    /// `Using_Gtid` (`No`, `Current_Pos`, `Slave_Pos`).
    pub using_gtid: String,
    /// `Slave_IO_Running`.
    pub io_running: IoState,
    /// `Slave_SQL_Running`.
    pub sql_running: bool,
    /// `Gtid_IO_Pos`: the last GTID received into the relay log, per domain.
    pub gtid_io_pos: GtidPos,
    /// `Seconds_Behind_Master`; None while the SQL thread is stopped or the IO thread is not
    /// connected.
    pub seconds_behind_master: Option<u64>,
    /// `Last_IO_Errno` (0 for none).
    pub last_io_errno: u32,
    /// `Last_IO_Error`.
    pub last_io_error: String,
    /// `Last_SQL_Errno` (0 for none).
    pub last_sql_errno: u32,
    /// `Last_SQL_Error`.
    pub last_sql_error: String,
}

impl ReplicaStatus {
    /// Both threads run (the IO thread may be reconnecting).
    pub fn is_running(&self) -> bool {
        self.io_running != IoState::No && self.sql_running
    }
}

/// Semi-sync facts of both sides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SemiSyncStatus {
    /// `@@rpl_semi_sync_master_enabled`.
    pub master_enabled: bool,
    /// `@@rpl_semi_sync_master_timeout`, milliseconds.
    pub master_timeout_ms: u64,
    /// `@@rpl_semi_sync_master_wait_point` (`AFTER_SYNC`, `AFTER_COMMIT`).
    pub master_wait_point: String,
    /// `Rpl_semi_sync_master_status`: commits currently wait for an ack (off after a timeout
    /// fell back to asynchronous).
    pub master_status: bool,
    /// `Rpl_semi_sync_master_clients`: connected semi-sync replicas.
    pub master_clients: u64,
    /// `@@rpl_semi_sync_slave_enabled`.
    pub slave_enabled: bool,
    /// `Rpl_semi_sync_slave_status`: this replica's IO thread acks.
    pub slave_status: bool,
}

const VARIABLES: &str = "SELECT @@GLOBAL.server_id AS server_id, @@GLOBAL.read_only AS read_only, \
     @@GLOBAL.gtid_binlog_pos AS gtid_binlog_pos, @@GLOBAL.gtid_current_pos AS gtid_current_pos, \
     @@GLOBAL.gtid_slave_pos AS gtid_slave_pos, @@GLOBAL.gtid_binlog_state AS gtid_binlog_state, \
     @@GLOBAL.rpl_semi_sync_master_enabled AS master_enabled, \
     @@GLOBAL.rpl_semi_sync_master_timeout AS master_timeout, \
     @@GLOBAL.rpl_semi_sync_master_wait_point AS master_wait_point, \
     @@GLOBAL.rpl_semi_sync_slave_enabled AS slave_enabled";

const STATUS: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN ('Uptime', 'Threads_connected', \
     'Rpl_semi_sync_master_status', 'Rpl_semi_sync_master_clients', 'Rpl_semi_sync_slave_status')";

/// Reads a node's facts (three statements, each bounded by the query timeout).
pub async fn probe(conn: &mut Connection) -> Result<NodeProbe, DataplaneError> {
    let vars = single_row(conn, VARIABLES, "the probe's variables").await?;
    let status: BTreeMap<String, String> = conn
        .query(STATUS)
        .await?
        .iter()
        .filter_map(|r| {
            Some((
                text(r, "Variable_name")?.to_ascii_lowercase(),
                text(r, "Value")?,
            ))
        })
        .collect();
    let replica = replica_status(conn).await?;
    let var = |name: &str| text(&vars, name).unwrap_or_default();
    let stat = |name: &str| status.get(name).map(String::as_str).unwrap_or_default();
    let server_id = var("server_id");
    Ok(NodeProbe {
        server_id: server_id
            .parse()
            .map_err(|_| DataplaneError::UnexpectedReply {
                endpoint: conn.endpoint().to_owned(),
                what: "@@server_id".into(),
                detail: format!("{server_id:?} is not a server id"),
            })?,
        read_only: flag(&var("read_only")),
        gtid_binlog_pos: var("gtid_binlog_pos").parse()?,
        gtid_current_pos: var("gtid_current_pos").parse()?,
        gtid_slave_pos: var("gtid_slave_pos").parse()?,
        gtid_binlog_state: var("gtid_binlog_state").parse()?,
        replica,
        semi_sync: SemiSyncStatus {
            master_enabled: flag(&var("master_enabled")),
            master_timeout_ms: var("master_timeout").parse().unwrap_or_default(),
            master_wait_point: var("master_wait_point"),
            master_status: flag(stat("rpl_semi_sync_master_status")),
            master_clients: stat("rpl_semi_sync_master_clients")
                .parse()
                .unwrap_or_default(),
            slave_enabled: flag(&var("slave_enabled")),
            slave_status: flag(stat("rpl_semi_sync_slave_status")),
        },
        uptime_secs: stat("uptime").parse().unwrap_or_default(),
        threads_connected: stat("threads_connected").parse().unwrap_or_default(),
    })
}

/// `SHOW SLAVE STATUS`: None when no replication is configured (after `RESET SLAVE ALL`).
pub(crate) async fn replica_status(
    conn: &mut Connection,
) -> Result<Option<ReplicaStatus>, DataplaneError> {
    let rows = conn.query("SHOW SLAVE STATUS").await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let get = |name: &str| text(row, name).unwrap_or_default();
    let io_running = match get("Slave_IO_Running").as_str() {
        "Yes" => IoState::Yes,
        "Connecting" | "Preparing" => IoState::Connecting,
        _ => IoState::No,
    };
    let errno = |name: &str| {
        uint(row, name)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    Ok(Some(ReplicaStatus {
        master_host: get("Master_Host"),
        master_port: uint(row, "Master_Port")
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0),
        master_user: get("Master_User"),
        using_gtid: get("Using_Gtid"),
        io_running,
        sql_running: get("Slave_SQL_Running") == "Yes",
        gtid_io_pos: get("Gtid_IO_Pos").parse()?,
        seconds_behind_master: uint(row, "Seconds_Behind_Master"),
        last_io_errno: errno("Last_IO_Errno"),
        last_io_error: get("Last_IO_Error"),
        last_sql_errno: errno("Last_SQL_Errno"),
        last_sql_error: get("Last_SQL_Error"),
    }))
}

/// A query that must return exactly one row.
pub(crate) async fn single_row(
    conn: &mut Connection,
    sql: &str,
    what: &str,
) -> Result<Row, DataplaneError> {
    let mut rows = conn.query(sql).await?;
    match (rows.pop(), rows.is_empty()) {
        (Some(row), true) => Ok(row),
        _ => Err(DataplaneError::UnexpectedReply {
            endpoint: conn.endpoint().to_owned(),
            what: what.to_owned(),
            detail: "expected exactly one row".into(),
        }),
    }
}
