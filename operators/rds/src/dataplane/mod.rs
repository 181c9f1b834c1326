//! The MySQL-protocol client for MariaDB: probes, replication control, accounts, grants.
//!
//! Every call takes a [`Connection`] (one admin session on one node, bounded by a connect and a
//! per-statement timeout) and returns a typed [`DataplaneError`]. Actions read before they write
//! and say whether they changed anything.

mod accounts;
mod connection;
mod error;
mod gtid;
mod params;
mod probe;
pub mod quote;
mod replication;
mod row;

pub use accounts::{
    ACCOUNT_HOST, AccountOutcome, drop_account, drop_database, ensure_account, ensure_database,
    read_privileges,
};
pub use connection::{Connection, Endpoint, Timeouts, Tls};
pub use error::{DataplaneError, codes};
pub use gtid::{Gtid, GtidParseError, GtidPos, GtidState};
pub use params::{GlobalValue, set_global};
pub use probe::{IoState, NodeProbe, ReplicaStatus, SemiSyncStatus, probe};
pub use replication::{
    FenceOutcome, ReplicationSource, SemiSync, fence, make_primary, make_replica,
    set_semi_sync_master, set_semi_sync_slave, wait_for_gtid,
};
