//! One admin connection to a node, with a connect timeout and a per-statement timeout.
//!
//! Every call is bounded by `tokio::time::timeout`: a frozen server (SIGSTOP, a hung disk, a
//! partition that drops packets) makes the call fail in time instead of hanging the supervisor.

use std::fmt;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};

use super::error::DataplaneError;

/// Where and as whom to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Account name.
    pub user: String,
    /// Account password.
    pub password: String,
    /// Transport security.
    pub tls: Tls,
}

// The password stays out of logs and panics.
impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Transport security for [`Endpoint`]. TLS is not implemented yet: the only mode is plaintext.
/// It is an enum (not a flag that could be silently ignored) so that TLS modes arrive as new
/// variants that every caller must handle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tls {
    /// Plaintext TCP.
    #[default]
    Disabled,
}

/// How long connecting and each statement may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect, handshake, authentication and session setup.
    pub connect: Duration,
    /// Each statement, from sending it to reading the last row.
    pub query: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            query: Duration::from_secs(5),
        }
    }
}

/// Forces the quoting mode [`super::quote`] relies on, whatever the server's default `sql_mode`.
const SESSION_SETUP: &str =
    "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'NO_BACKSLASH_ESCAPES')";

/// An open admin session on one node. After a timeout or an I/O error the session is closed and
/// every later call fails with [`DataplaneError::Broken`]: reconnect.
pub struct Connection {
    conn: Option<Conn>,
    endpoint: String,
    query_timeout: Duration,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("endpoint", &self.endpoint)
            .field("open", &self.conn.is_some())
            .finish()
    }
}

impl Connection {
    /// Connects and authenticates within `timeouts.connect`.
    pub async fn connect(endpoint: &Endpoint, timeouts: Timeouts) -> Result<Self, DataplaneError> {
        let label = format!("{}:{}", endpoint.host, endpoint.port);
        // Irrefutable while plaintext is the only mode; stops compiling when TLS arrives.
        let Tls::Disabled = endpoint.tls;
        let opts = OptsBuilder::default()
            .ip_or_hostname(endpoint.host.clone())
            .tcp_port(endpoint.port)
            .user(Some(endpoint.user.clone()))
            .pass(Some(endpoint.password.clone()))
            // The driver would otherwise switch to the server's unix socket when the host is
            // loopback, which changes the account MariaDB matches.
            .prefer_socket(false)
            .tcp_nodelay(true)
            // Notices a peer that vanished while the session sits idle between probes.
            .tcp_keepalive(Some(Duration::from_secs(10)))
            .init(vec![SESSION_SETUP]);
        let conn = match tokio::time::timeout(timeouts.connect, Conn::new(opts)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(source)) => {
                return Err(DataplaneError::Mysql {
                    endpoint: label,
                    source,
                });
            }
            Err(_) => {
                return Err(DataplaneError::ConnectTimeout {
                    endpoint: label,
                    timeout: timeouts.connect,
                });
            }
        };
        Ok(Connection {
            conn: Some(conn),
            endpoint: label,
            query_timeout: timeouts.query,
        })
    }

    /// `host:port`, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The per-statement timeout.
    pub fn query_timeout(&self) -> Duration {
        self.query_timeout
    }

    /// The server's id for this session (`CONNECTION_ID()`), if still open.
    pub fn thread_id(&self) -> Option<u32> {
        self.conn.as_ref().map(Conn::id)
    }

    /// Runs a statement and discards any result.
    pub async fn execute(&mut self, sql: &str) -> Result<(), DataplaneError> {
        self.execute_inner(sql, false).await
    }

    /// Runs a statement that carries a secret: a server error comes back without its message.
    pub(crate) async fn execute_secret(&mut self, sql: &str) -> Result<(), DataplaneError> {
        self.execute_inner(sql, true).await
    }

    /// Runs a query and returns its rows (text protocol: values are bytes or NULL).
    pub async fn query(&mut self, sql: &str) -> Result<Vec<Row>, DataplaneError> {
        self.query_within(sql, self.query_timeout).await
    }

    /// Like [`Connection::query`], for a query expected to take up to `timeout` (waits).
    pub(crate) async fn query_within(
        &mut self,
        sql: &str,
        timeout: Duration,
    ) -> Result<Vec<Row>, DataplaneError> {
        self.query_inner(sql, timeout, false).await
    }

    /// Like [`Connection::query`], for a query that carries a secret.
    pub(crate) async fn query_secret(&mut self, sql: &str) -> Result<Vec<Row>, DataplaneError> {
        self.query_inner(sql, self.query_timeout, true).await
    }

    async fn query_inner(
        &mut self,
        sql: &str,
        timeout: Duration,
        secret: bool,
    ) -> Result<Vec<Row>, DataplaneError> {
        let what = summary(sql);
        let conn = self.open()?;
        let result = tokio::time::timeout(timeout, conn.query::<Row, _>(sql)).await;
        self.settle(result, what, timeout, secret)
    }

    /// Closes the session politely, within the query timeout.
    pub async fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = tokio::time::timeout(self.query_timeout, conn.disconnect()).await;
        }
    }

    async fn execute_inner(&mut self, sql: &str, secret: bool) -> Result<(), DataplaneError> {
        self.execute_bounded(sql, self.query_timeout, secret).await
    }

    /// Like [`Connection::execute`], for a statement expected to take up to `timeout`.
    pub(crate) async fn execute_within(
        &mut self,
        sql: &str,
        timeout: Duration,
    ) -> Result<(), DataplaneError> {
        self.execute_bounded(sql, timeout, false).await
    }

    async fn execute_bounded(
        &mut self,
        sql: &str,
        timeout: Duration,
        secret: bool,
    ) -> Result<(), DataplaneError> {
        let what = summary(sql);
        let conn = self.open()?;
        let result = tokio::time::timeout(timeout, conn.query_drop(sql)).await;
        self.settle(result, what, timeout, secret)
    }

    fn open(&mut self) -> Result<&mut Conn, DataplaneError> {
        self.conn.as_mut().ok_or_else(|| DataplaneError::Broken {
            endpoint: self.endpoint.clone(),
        })
    }

    /// Maps a bounded call's outcome, closing the session when its state is no longer known.
    fn settle<T>(
        &mut self,
        result: Result<Result<T, mysql_async::Error>, tokio::time::error::Elapsed>,
        what: String,
        timeout: Duration,
        secret: bool,
    ) -> Result<T, DataplaneError> {
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(mysql_async::Error::Server(e))) if secret => Err(DataplaneError::Redacted {
                endpoint: self.endpoint.clone(),
                code: e.code,
                state: e.state,
            }),
            Ok(Err(source)) => {
                // A server error leaves the session usable; anything else (I/O, protocol) may not.
                if !matches!(source, mysql_async::Error::Server(_)) {
                    self.discard();
                }
                Err(DataplaneError::Mysql {
                    endpoint: self.endpoint.clone(),
                    source,
                })
            }
            Err(_) => {
                self.discard();
                Err(DataplaneError::QueryTimeout {
                    endpoint: self.endpoint.clone(),
                    what,
                    timeout,
                })
            }
        }
    }

    /// Drops the session without waiting on the server. The driver's own drop would spawn a
    /// cleanup that reads pending results first, which never ends against a frozen server; a
    /// bounded `disconnect` instead marks it closed and drops the socket when the bound runs out.
    fn discard(&mut self) {
        if let Some(conn) = self.conn.take() {
            close_in_background(conn, self.query_timeout);
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.discard();
    }
}

fn close_in_background(conn: Conn, bound: Duration) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move {
                let _ = tokio::time::timeout(bound, conn.disconnect()).await;
            });
        }
        // Outside a runtime the driver's drop just closes the socket.
        Err(_) => drop(conn),
    }
}

/// The first words of a statement, for timeout messages: enough to tell which call hung, never
/// far enough to reach a literal (passwords come after `IDENTIFIED BY`).
fn summary(sql: &str) -> String {
    sql.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_stop_before_literals() {
        assert_eq!(
            summary("ALTER USER 'app'@'%' IDENTIFIED BY 'secret'"),
            "ALTER USER"
        );
        assert_eq!(summary("  SHOW\n SLAVE STATUS"), "SHOW SLAVE");
    }

    #[test]
    fn endpoint_debug_hides_the_password() {
        let ep = Endpoint {
            host: "db".into(),
            port: 3306,
            user: "admin".into(),
            password: "hunter2".into(),
            tls: Tls::Disabled,
        };
        let shown = format!("{ep:?}");
        assert!(
            shown.contains("admin") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
