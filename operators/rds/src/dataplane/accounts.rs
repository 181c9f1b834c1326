//! Databases and accounts: ensure/drop, reading an account's privileges back, and applying the
//! grants diff from [`crate::grants`]. Every `ensure_*` reads first and writes only what differs,
//! so a steady state makes no writes (and no binlog events for the replicas). Run on the primary;
//! the statements replicate.

use std::collections::BTreeMap;

use super::connection::Connection;
use super::error::DataplaneError;
use super::quote;
use super::row::text;
use crate::grants::{self, Grants, PrivSet};

/// Accounts the operator manages are reachable from anywhere the network policy allows.
pub const ACCOUNT_HOST: &str = "%";

/// Creates the database, or alters its default character set and collation when they differ.
/// `collation` None keeps the character set's default. Returns whether anything changed.
pub async fn ensure_database(
    conn: &mut Connection,
    name: &str,
    charset: &str,
    collation: Option<&str>,
) -> Result<bool, DataplaneError> {
    let sql = format!(
        "SELECT DEFAULT_CHARACTER_SET_NAME AS cs, DEFAULT_COLLATION_NAME AS co \
         FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
        quote::string(name)?
    );
    let rows = conn.query(&sql).await?;
    let spec = format!(
        "CHARACTER SET {}{}",
        quote::string(charset)?,
        match collation {
            Some(c) => format!(" COLLATE {}", quote::string(c)?),
            None => String::new(),
        }
    );
    let db = quote::ident(name)?;
    match rows.first() {
        None => {
            conn.execute(&format!("CREATE DATABASE IF NOT EXISTS {db} {spec}"))
                .await?;
            Ok(true)
        }
        Some(row) => {
            let same_charset = text(row, "cs").is_some_and(|c| c.eq_ignore_ascii_case(charset));
            let same_collation = collation
                .is_none_or(|want| text(row, "co").is_some_and(|c| c.eq_ignore_ascii_case(want)));
            if same_charset && same_collation {
                return Ok(false);
            }
            conn.execute(&format!("ALTER DATABASE {db} {spec}")).await?;
            Ok(true)
        }
    }
}

/// Drops the database and everything in it. Returns whether it existed.
pub async fn drop_database(conn: &mut Connection, name: &str) -> Result<bool, DataplaneError> {
    let sql = format!(
        "SELECT 1 AS x FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
        quote::string(name)?
    );
    if conn.query(&sql).await?.is_empty() {
        return Ok(false);
    }
    conn.execute(&format!("DROP DATABASE IF EXISTS {}", quote::ident(name)?))
        .await?;
    Ok(true)
}

/// What [`ensure_account`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountOutcome {
    /// The account did not exist.
    pub created: bool,
    /// The password (or authentication plugin) differed and was reset.
    pub password_changed: bool,
    /// The GRANT/REVOKE statements run (they carry no secret).
    pub grant_statements: Vec<String>,
}

impl AccountOutcome {
    /// Anything changed.
    pub fn changed(&self) -> bool {
        self.created || self.password_changed || !self.grant_statements.is_empty()
    }
}

/// Makes `user@'%'` exist with `password` (mysql_native_password) and exactly `desired`
/// privileges. The password is checked without writing: the stored hash is compared with
/// `PASSWORD(password)`, which for mysql_native_password is the same unsalted
/// `*HEX(SHA1(SHA1(pw)))`.
pub async fn ensure_account(
    conn: &mut Connection,
    user: &str,
    password: &str,
    desired: &Grants,
) -> Result<AccountOutcome, DataplaneError> {
    let account = quote::account(user, ACCOUNT_HOST)?;
    let lookup = format!(
        "SELECT plugin, authentication_string = PASSWORD({}) AS same FROM mysql.user \
         WHERE User = {} AND Host = {}",
        quote::string(password)?,
        quote::string(user)?,
        quote::string(ACCOUNT_HOST)?
    );
    let rows = conn.query_secret(&lookup).await?;
    let identified = format!("IDENTIFIED BY {}", quote::string(password)?);
    let mut outcome = AccountOutcome::default();
    match rows.first() {
        None => {
            conn.execute_secret(&format!("CREATE USER IF NOT EXISTS {account} {identified}"))
                .await?;
            outcome.created = true;
        }
        Some(row) => {
            let native = text(row, "plugin").is_some_and(|p| p == "mysql_native_password");
            if !(native && text(row, "same").as_deref() == Some("1")) {
                conn.execute_secret(&format!("ALTER USER {account} {identified}"))
                    .await?;
                outcome.password_changed = true;
            }
        }
    }
    let current = read_privileges(conn, user).await?;
    outcome.grant_statements = grants::grant_statements(user, &current, desired)?;
    for stmt in &outcome.grant_statements {
        conn.execute(stmt).await?;
    }
    Ok(outcome)
}

/// Drops `user@'%'`. Returns whether it existed.
pub async fn drop_account(conn: &mut Connection, user: &str) -> Result<bool, DataplaneError> {
    let sql = format!(
        "SELECT 1 AS x FROM mysql.user WHERE User = {} AND Host = {}",
        quote::string(user)?,
        quote::string(ACCOUNT_HOST)?
    );
    if conn.query(&sql).await?.is_empty() {
        return Ok(false);
    }
    conn.execute(&format!(
        "DROP USER IF EXISTS {}",
        quote::account(user, ACCOUNT_HOST)?
    ))
    .await?;
    Ok(true)
}

/// `user@'%'`'s global and database-level privileges, from `information_schema`.
pub async fn read_privileges(conn: &mut Connection, user: &str) -> Result<Grants, DataplaneError> {
    // information_schema spells the grantee `'user'@'host'` without escaping either part.
    let grantee = quote::string(&format!("'{user}'@'{ACCOUNT_HOST}'"))?;
    let mut grants = Grants::default();
    let global = conn
        .query(&format!(
            "SELECT PRIVILEGE_TYPE AS p, IS_GRANTABLE AS g \
             FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = {grantee}"
        ))
        .await?;
    for row in &global {
        add(&mut grants.global, row);
    }
    let schema = conn
        .query(&format!(
            "SELECT TABLE_SCHEMA AS d, PRIVILEGE_TYPE AS p, IS_GRANTABLE AS g \
             FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = {grantee}"
        ))
        .await?;
    let mut databases: BTreeMap<String, PrivSet> = BTreeMap::new();
    for row in &schema {
        if let Some(db) = text(row, "d") {
            add(databases.entry(db).or_default(), row);
        }
    }
    grants.databases = databases;
    Ok(grants)
}

/// One `*_PRIVILEGES` row. `IS_GRANTABLE` is per row but means the level's GRANT OPTION; a level
/// with only GRANT OPTION shows as `USAGE`, which grants nothing else.
fn add(set: &mut PrivSet, row: &mysql_async::Row) {
    if text(row, "g").as_deref() == Some("YES") {
        set.grant_option = true;
    }
    if let Some(p) = text(row, "p").filter(|p| p != "USAGE") {
        set.privileges.insert(p);
    }
}
