//! The operator's Redis admin client: short timeouts, one multiplexed connection per node, and a
//! parser for `INFO replication` that the failover logic reads.

use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

/// A node's replication facts (`INFO replication`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicationInfo {
    /// True for `role:master`.
    pub is_master: bool,
    /// A replica's master address.
    pub master_host: Option<String>,
    /// A replica's link to its master is up.
    pub link_up: bool,
    /// The node's replication offset (master_repl_offset; a replica's processed offset).
    pub offset: i64,
    /// A master's replicas: (ip, offset, lag seconds).
    pub replicas: Vec<(String, i64, i64)>,
}

/// Parses `INFO replication`.
pub fn parse_replication(info: &str) -> ReplicationInfo {
    let mut r = ReplicationInfo::default();
    let mut slave_offset = None;
    for line in info.lines() {
        let Some((k, v)) = line.trim().split_once(':') else {
            continue;
        };
        match k {
            "role" => r.is_master = v == "master",
            "master_host" => r.master_host = Some(v.to_owned()),
            "master_link_status" => r.link_up = v == "up",
            "master_repl_offset" => r.offset = v.parse().unwrap_or(0),
            "slave_repl_offset" => slave_offset = v.parse().ok(),
            k if k.starts_with("slave") && k[5..].chars().all(|c| c.is_ascii_digit()) => {
                let mut ip = String::new();
                let (mut off, mut lag) = (0, 0);
                for kv in v.split(',') {
                    match kv.split_once('=') {
                        Some(("ip", x)) => ip = x.to_owned(),
                        Some(("offset", x)) => off = x.parse().unwrap_or(0),
                        Some(("lag", x)) => lag = x.parse().unwrap_or(0),
                        _ => {}
                    }
                }
                r.replicas.push((ip, off, lag));
            }
            _ => {}
        }
    }
    if let (false, Some(o)) = (r.is_master, slave_offset) {
        r.offset = o;
    }
    r
}

/// Errors talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Nothing listens (process gone): a strong sign the node is down.
    #[error("connection refused")]
    Refused,
    /// No answer in time (frozen, overloaded or partitioned).
    #[error("timed out")]
    Timeout,
    /// The password was refused.
    #[error("authentication failed")]
    Auth,
    /// The TLS handshake failed (wrong CA, name or protocol).
    #[error("TLS: {0}")]
    Tls(String),
    /// Anything else (protocol, command errors).
    #[error("{0}")]
    Other(String),
}

impl From<redis::RedisError> for NodeError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_timeout() {
            NodeError::Timeout
        } else if e.is_connection_refusal() {
            NodeError::Refused
        } else if e.kind() == redis::ErrorKind::AuthenticationFailed
            || e.code().is_some_and(|c| c == "WRONGPASS" || c == "NOAUTH")
        {
            NodeError::Auth
        } else {
            NodeError::Other(e.to_string())
        }
    }
}

/// How a node is reached over TLS: the verifying client and the name its certificate must carry.
#[derive(Clone, Copy, Debug)]
pub struct TlsTarget<'a> {
    /// The client trusting the instance's CA.
    pub client: &'a crate::tls::TlsClient,
    /// The node's headless-Service name.
    pub server_name: &'a str,
}

/// Opens an authenticated connection to `ip:port`, over TLS when `tls` is set (dialled by IP,
/// verified by name).
pub async fn connect(
    ip: &str,
    port: i32,
    password: &str,
    timeout: Duration,
    tls: Option<TlsTarget<'_>>,
) -> Result<MultiplexedConnection, NodeError> {
    let port = u16::try_from(port).map_err(|_| NodeError::Other(format!("bad port {port}")))?;
    let settings = redis::RedisConnectionInfo::default()
        .set_password(password)
        .set_skip_set_lib_name();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let open = async {
        let tcp = tokio::net::TcpStream::connect((ip, port))
            .await
            .map_err(io_error)?;
        // Probes are tiny; do not wait to fill packets.
        let _ = tcp.set_nodelay(true);
        let (conn, driver) = match tls {
            None => MultiplexedConnection::new_with_config(&settings, tcp, config).await?,
            Some(t) => {
                let name = crate::tls::TlsClient::server_name(t.server_name)
                    .map_err(|e| NodeError::Other(e.to_string()))?;
                let stream = t
                    .client
                    .connector()
                    .connect(name, tcp)
                    .await
                    .map_err(|e| NodeError::Tls(e.to_string()))?;
                let (conn, driver) =
                    MultiplexedConnection::new_with_config(&settings, stream, config).await?;
                tokio::spawn(driver);
                return Ok(conn);
            }
        };
        tokio::spawn(driver);
        Ok::<_, NodeError>(conn)
    };
    match tokio::time::timeout(timeout * 2, open).await {
        Ok(r) => r,
        Err(_) => Err(NodeError::Timeout),
    }
}

fn io_error(e: std::io::Error) -> NodeError {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => NodeError::Refused,
        std::io::ErrorKind::TimedOut => NodeError::Timeout,
        _ => NodeError::Other(e.to_string()),
    }
}

/// `INFO replication`.
pub async fn replication(conn: &mut MultiplexedConnection) -> Result<ReplicationInfo, NodeError> {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(conn)
        .await?;
    Ok(parse_replication(&info))
}

/// `REPLICAOF ip port`, or `REPLICAOF NO ONE` for None.
pub async fn replicaof(
    conn: &mut MultiplexedConnection,
    master: Option<(&str, i32)>,
) -> Result<(), NodeError> {
    let mut cmd = redis::cmd("REPLICAOF");
    match master {
        Some((ip, port)) => cmd.arg(ip).arg(port),
        None => cmd.arg("NO").arg("ONE"),
    };
    let _: String = cmd.query_async(conn).await?;
    Ok(())
}

/// `CONFIG SET name value`.
pub async fn config_set(
    conn: &mut MultiplexedConnection,
    name: &str,
    value: &str,
) -> Result<(), NodeError> {
    let _: String = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query_async(conn)
        .await?;
    Ok(())
}

/// Adds `password` to the default user (the others stay valid) and uses it towards masters.
pub async fn add_password(
    conn: &mut MultiplexedConnection,
    password: &str,
) -> Result<(), NodeError> {
    set_default_user_password(conn, password, false).await?;
    config_set(conn, "masterauth", password).await
}

/// Leaves `password` as the default user's only password.
pub async fn only_password(
    conn: &mut MultiplexedConnection,
    password: &str,
) -> Result<(), NodeError> {
    set_default_user_password(conn, password, true).await
}

async fn set_default_user_password(
    conn: &mut MultiplexedConnection,
    password: &str,
    drop_others: bool,
) -> Result<(), NodeError> {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER").arg("default").arg("on");
    if drop_others {
        cmd.arg("resetpass");
    }
    let _: String = cmd.arg(format!(">{password}")).query_async(conn).await?;
    Ok(())
}

/// `CONFIG GET name` (first value).
pub async fn config_get(
    conn: &mut MultiplexedConnection,
    name: &str,
) -> Result<Option<String>, NodeError> {
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(conn)
        .await?;
    Ok(v.get(1).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=10.244.0.7,port=6379,state=online,offset=5230,lag=1\r\nmaster_failover_state:no-failover\r\nmaster_replid:3f1\r\nmaster_repl_offset:5244\r\n";
    const REPLICA: &str = "# Replication\r\nrole:slave\r\nmaster_host:10.244.0.6\r\nmaster_port:6379\r\nmaster_link_status:up\r\nslave_read_repl_offset:5244\r\nslave_repl_offset:5230\r\nmaster_repl_offset:5230\r\n";

    #[test]
    fn parses_master_and_replica() {
        let m = parse_replication(MASTER);
        assert!(m.is_master);
        assert_eq!(m.offset, 5244);
        assert_eq!(m.replicas, vec![("10.244.0.7".to_owned(), 5230, 1)]);
        let r = parse_replication(REPLICA);
        assert!(!r.is_master);
        assert_eq!(r.master_host.as_deref(), Some("10.244.0.6"));
        assert!(r.link_up);
        assert_eq!(r.offset, 5230);
    }
}
