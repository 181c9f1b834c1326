//! The dataplane's error type.

use std::time::Duration;

use super::gtid::GtidParseError;
use super::quote::QuoteError;

/// A failure talking to one MariaDB node.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// No handshake in time: the node is down, frozen or unreachable.
    #[error("connecting to {endpoint} timed out after {timeout:?}")]
    ConnectTimeout {
        /// `host:port`.
        endpoint: String,
        /// The connect timeout.
        timeout: Duration,
    },
    /// A statement got no reply in time. The connection is closed, since its protocol state is
    /// unknown; later calls on it fail with [`DataplaneError::Broken`].
    #[error("{what} on {endpoint} timed out after {timeout:?}")]
    QueryTimeout {
        /// `host:port`.
        endpoint: String,
        /// What was running (never the statement text, which may carry a password).
        what: String,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// The connection was closed after an earlier timeout or I/O error.
    #[error("connection to {endpoint} is closed after an earlier failure")]
    Broken {
        /// `host:port`.
        endpoint: String,
    },
    /// The driver or the server refused.
    #[error("{endpoint}: {source}")]
    Mysql {
        /// `host:port`.
        endpoint: String,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
    /// The server refused a statement that carries a secret; its message is withheld because
    /// MariaDB quotes the statement in syntax errors.
    #[error("{endpoint}: server error {code} ({state}) on a statement carrying a secret")]
    Redacted {
        /// `host:port`.
        endpoint: String,
        /// The server's error number.
        code: u16,
        /// The SQLSTATE.
        state: String,
    },
    /// The server answered something this client does not understand.
    #[error("{endpoint}: unexpected reply to {what}: {detail}")]
    UnexpectedReply {
        /// `host:port`.
        endpoint: String,
        /// The query.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// A name or value could not be quoted.
    #[error(transparent)]
    Quote(#[from] QuoteError),
    /// The server reported a GTID list this client cannot parse.
    #[error(transparent)]
    Gtid(#[from] GtidParseError),
    /// `set_global` was given a value MariaDB cannot take (a non-finite number).
    #[error("invalid value for global variable {0:?}")]
    InvalidValue(String),
    /// `set_global` was asked for a variable outside the caller's allow-list.
    #[error("global variable {0:?} is not allowed")]
    NotAllowed(String),
}

impl DataplaneError {
    /// The server's error number (`ER_*`), when the server refused the statement.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            DataplaneError::Mysql {
                source: mysql_async::Error::Server(e),
                ..
            } => Some(e.code),
            DataplaneError::Redacted { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the node did not answer in time (as opposed to answering with an error).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            DataplaneError::ConnectTimeout { .. } | DataplaneError::QueryTimeout { .. }
        )
    }
}

/// Server error numbers this crate reacts to.
pub mod codes {
    /// `ER_UNKNOWN_THREAD_ID`: the thread to kill has already gone.
    pub const UNKNOWN_THREAD_ID: u16 = 1094;
    /// `ER_LOCK_WAIT_TIMEOUT`: a metadata lock was not granted within `lock_wait_timeout`.
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    /// `ER_SPECIFIC_ACCESS_DENIED_ERROR`: a privilege such as `READ_ONLY ADMIN` is missing.
    pub const SPECIFIC_ACCESS_DENIED: u16 = 1227;
    /// `ER_OPTION_PREVENTS_STATEMENT`: refused because of `read_only`.
    pub const OPTION_PREVENTS_STATEMENT: u16 = 1290;
    /// `ER_TABLEACCESS_DENIED_ERROR`: a table privilege is missing.
    pub const TABLE_ACCESS_DENIED: u16 = 1142;
}
