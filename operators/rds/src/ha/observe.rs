//! From probe results to the decision's view of a node (pure, unit-tested): GTID conversion,
//! which HA node a replica follows, errant transactions against the primary's binlog state, and
//! whether the standby still hears from its primary.

use crate::dataplane::{GtidState, IoState, NodeProbe};
use crate::ha::decide::{IoThread, Position, Status};

/// A dataplane GTID position as the decision's type (same text form).
pub fn position(pos: &crate::dataplane::GtidPos) -> Position {
    pos.to_string().parse().unwrap_or_default()
}

/// The HA pod a replica's `Master_Host` names (`<pod>.<name>-nodes.<ns>.svc` or the bare pod).
pub fn source_pod<'a>(master_host: &str, ha_pods: &[&'a str]) -> Option<&'a str> {
    let first = master_host.split('.').next().unwrap_or_default();
    ha_pods.iter().copied().find(|p| *p == first)
}

/// The decision's view of one probed node.
pub fn status(
    probe: &NodeProbe,
    ha_pods: &[&str],
    primary_state: Option<&GtidState>,
    heard_recently: bool,
) -> Status {
    let replica = probe.replica.as_ref();
    let errant =
        primary_state.is_some_and(|p| !probe.gtid_binlog_state.errant_against(p).is_empty());
    Status {
        read_only: probe.read_only,
        replicating_from: replica
            .and_then(|r| source_pod(&r.master_host, ha_pods))
            .map(str::to_owned),
        io_thread: match replica.map(|r| r.io_running) {
            Some(IoState::Yes) => IoThread::Connected,
            Some(IoState::Connecting) => IoThread::Connecting,
            Some(IoState::No) | None => IoThread::Stopped,
        },
        sql_thread_running: replica.is_some_and(|r| r.sql_running),
        last_io_errno: replica.map_or(0, |r| r.last_io_errno),
        last_sql_errno: replica.map_or(0, |r| r.last_sql_errno),
        received: replica
            .map(|r| position(&r.gtid_io_pos))
            .unwrap_or_default(),
        applied: position(&probe.gtid_current_pos),
        errant,
        received_advanced_recently: heard_recently,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;

    #[test]
    fn source_pod_matches_the_headless_name() {
        let pods = ["db-0", "db-1"];
        assert_eq!(source_pod("db-1.db-nodes.shop.svc", &pods), Some("db-1"));
        assert_eq!(source_pod("db-0", &pods), Some("db-0"));
        assert_eq!(source_pod("10.0.0.3", &pods), None);
    }

    #[test]
    fn positions_convert_through_their_text_form() {
        let p: crate::dataplane::GtidPos = "0-1-100,1-2-7".parse().unwrap();
        assert_eq!(position(&p).to_string(), p.to_string());
    }
}
