//! Account privileges: what each role grants, and the GRANT/REVOKE statements that move an
//! account from the privileges it has to the ones it should have. Pure; the dataplane reads the
//! current privileges and runs the statements.
//!
//! The roles follow Alibaba Cloud RDS for MySQL's account permissions. Normal accounts get
//! database-level privileges only. The privileged account gets a DBA's global privileges with
//! GRANT OPTION, minus everything that would let it undo the operator's fencing or replication
//! (see [`PRIVILEGED_GLOBAL`]).

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dataplane::quote::{self, QuoteError};

/// What a normal account may do in one database.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum AccountRole {
    /// Read and write data and schema.
    ReadWrite,
    /// Read data.
    ReadOnly,
    /// Change schema, not data.
    #[serde(rename = "DDLOnly")]
    DdlOnly,
    /// Change data, not schema.
    #[serde(rename = "DMLOnly")]
    DmlOnly,
}

const READ_WRITE: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "REFERENCES",
    "INDEX",
    "ALTER",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "EXECUTE",
    "CREATE VIEW",
    "SHOW VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "EVENT",
    "TRIGGER",
];

const READ_ONLY: &[&str] = &["SELECT", "LOCK TABLES", "SHOW VIEW", "EXECUTE"];

const DDL_ONLY: &[&str] = &[
    "CREATE",
    "DROP",
    "INDEX",
    "ALTER",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "CREATE VIEW",
    "SHOW VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
];

const DML_ONLY: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "EXECUTE",
    "SHOW VIEW",
    "EVENT",
    "TRIGGER",
];

/// The privileged account's global privileges (MariaDB 10.11 names, as `SHOW GRANTS` and
/// `information_schema.USER_PRIVILEGES` spell them), granted WITH GRANT OPTION.
///
/// Left out on purpose, because each would let the account defeat fencing or replication:
/// `SUPER` (all of the below), `READ_ONLY ADMIN` (writes while `read_only` is on: a fenced
/// primary would still take writes), `SHUTDOWN`, `RELOAD` (`RESET MASTER` wipes the binlog and
/// GTID state; `FLUSH TABLES WITH READ LOCK` stalls the primary; `FLUSH PRIVILEGES`),
/// `REPLICATION SLAVE ADMIN` (`STOP SLAVE`, `CHANGE MASTER`), `REPLICATION MASTER ADMIN`
/// (semi-sync settings), `BINLOG ADMIN` (`PURGE BINARY LOGS`, `SET sql_log_bin=0`), `BINLOG
/// REPLAY`, `REPLICATION SLAVE` (a fake replica could send the semi-sync acks the primary counts
/// as durability), `CONNECTION ADMIN` (`KILL` of the operator's and replication threads,
/// `max_connections` bypass), `FILE` (server files), `SET USER` (objects with another account
/// as `DEFINER`), `FEDERATED ADMIN` (outbound `CREATE SERVER`), `CREATE TABLESPACE`.
/// `BINLOG MONITOR` and `SLAVE MONITOR` only read replication state.
pub const PRIVILEGED_GLOBAL: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "PROCESS",
    "REFERENCES",
    "INDEX",
    "ALTER",
    "SHOW DATABASES",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "EXECUTE",
    "BINLOG MONITOR",
    "CREATE VIEW",
    "SHOW VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "CREATE USER",
    "EVENT",
    "TRIGGER",
    "DELETE HISTORY",
    "SLAVE MONITOR",
];

impl AccountRole {
    /// The database-level privileges the role grants.
    pub fn privileges(self) -> &'static [&'static str] {
        match self {
            AccountRole::ReadWrite => READ_WRITE,
            AccountRole::ReadOnly => READ_ONLY,
            AccountRole::DdlOnly => DDL_ONLY,
            AccountRole::DmlOnly => DML_ONLY,
        }
    }
}

/// Privileges at one level (global, or one database).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrivSet {
    /// Privilege names in capitals (`CREATE TEMPORARY TABLES`), without `USAGE`.
    pub privileges: BTreeSet<String>,
    /// WITH GRANT OPTION at this level.
    pub grant_option: bool,
}

impl PrivSet {
    fn of(names: &[&str], grant_option: bool) -> Self {
        PrivSet {
            privileges: names.iter().map(|p| (*p).to_owned()).collect(),
            grant_option,
        }
    }

    /// Nothing granted at this level.
    pub fn is_empty(&self) -> bool {
        self.privileges.is_empty() && !self.grant_option
    }
}

/// An account's global and database-level privileges. Table, column and routine grants are not
/// modelled: the operator never makes them and leaves them alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// `ON *.*`.
    pub global: PrivSet,
    /// `ON pattern.*`, keyed by the grant pattern as MariaDB stores it (see
    /// [`quote::db_pattern`]: `app\_1` for the database `app_1`).
    pub databases: BTreeMap<String, PrivSet>,
}

/// Which account a set of grants is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountKind {
    /// A normal account: a role in each of some databases (keyed by database name).
    Normal(BTreeMap<String, AccountRole>),
    /// The privileged account: [`PRIVILEGED_GLOBAL`] on every database.
    Privileged,
}

/// The privileges an account should have.
pub fn desired_grants(kind: &AccountKind) -> Grants {
    match kind {
        AccountKind::Privileged => Grants {
            global: PrivSet::of(PRIVILEGED_GLOBAL, true),
            databases: BTreeMap::new(),
        },
        AccountKind::Normal(roles) => Grants {
            global: PrivSet::default(),
            databases: roles
                .iter()
                .map(|(db, role)| (quote::db_pattern(db), PrivSet::of(role.privileges(), false)))
                .collect(),
        },
    }
}

/// The statements that take `user@'%'` from `current` to `desired`: revokes first (so the
/// account never briefly holds the union), then grants; empty when nothing differs.
pub fn grant_statements(
    user: &str,
    current: &Grants,
    desired: &Grants,
) -> Result<Vec<String>, QuoteError> {
    let account = quote::account(user, "%")?;
    let empty = PrivSet::default();
    let mut levels = vec![("*.*".to_owned(), &current.global, &desired.global)];
    let patterns: BTreeSet<&String> = current
        .databases
        .keys()
        .chain(desired.databases.keys())
        .collect();
    for pattern in patterns {
        let cur = current.databases.get(pattern).unwrap_or(&empty);
        let want = desired.databases.get(pattern).unwrap_or(&empty);
        levels.push((format!("{}.*", quote::ident(pattern)?), cur, want));
    }
    let (mut revokes, mut grants) = (Vec::new(), Vec::new());
    for (on, cur, want) in levels {
        let (revoke, grant) = level_statements(&account, &on, cur, want);
        revokes.extend(revoke);
        grants.extend(grant);
    }
    revokes.extend(grants);
    Ok(revokes)
}

fn level_statements(
    account: &str,
    on: &str,
    cur: &PrivSet,
    want: &PrivSet,
) -> (Vec<String>, Vec<String>) {
    let mut revokes = Vec::new();
    let extra: Vec<&str> = cur
        .privileges
        .difference(&want.privileges)
        .map(String::as_str)
        .collect();
    if !extra.is_empty() {
        revokes.push(format!(
            "REVOKE {} ON {on} FROM {account}",
            extra.join(", ")
        ));
    }
    if cur.grant_option && !want.grant_option {
        revokes.push(format!("REVOKE GRANT OPTION ON {on} FROM {account}"));
    }
    let mut grants = Vec::new();
    let missing: Vec<&str> = want
        .privileges
        .difference(&cur.privileges)
        .map(String::as_str)
        .collect();
    let add_option = want.grant_option && !cur.grant_option;
    if !missing.is_empty() || add_option {
        // USAGE grants nothing: it carries a lone WITH GRANT OPTION.
        let what = if missing.is_empty() {
            "USAGE".to_owned()
        } else {
            missing.join(", ")
        };
        let option = if add_option { " WITH GRANT OPTION" } else { "" };
        grants.push(format!("GRANT {what} ON {on} TO {account}{option}"));
    }
    (revokes, grants)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn normal(pairs: &[(&str, AccountRole)]) -> AccountKind {
        AccountKind::Normal(pairs.iter().map(|(d, r)| ((*d).to_owned(), *r)).collect())
    }

    #[test]
    fn roles_serialize_with_the_crd_names() {
        let names: Vec<String> = [
            AccountRole::ReadWrite,
            AccountRole::ReadOnly,
            AccountRole::DdlOnly,
            AccountRole::DmlOnly,
        ]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
        assert_eq!(
            names,
            [
                "\"ReadWrite\"",
                "\"ReadOnly\"",
                "\"DDLOnly\"",
                "\"DMLOnly\""
            ]
        );
        let back: AccountRole = serde_json::from_str("\"DMLOnly\"").unwrap();
        assert_eq!(back, AccountRole::DmlOnly);
        assert!(serde_json::from_str::<AccountRole>("\"DdlOnly\"").is_err());
    }

    #[test]
    fn roles_have_distinct_shapes() {
        let has = |r: AccountRole, p: &str| r.privileges().contains(&p);
        assert!(has(AccountRole::ReadOnly, "SELECT") && !has(AccountRole::ReadOnly, "INSERT"));
        assert!(!has(AccountRole::DdlOnly, "SELECT") && has(AccountRole::DdlOnly, "ALTER"));
        assert!(has(AccountRole::DmlOnly, "DELETE") && !has(AccountRole::DmlOnly, "DROP"));
        assert_eq!(AccountRole::ReadWrite.privileges().len(), 18);
    }

    #[test]
    fn privileged_set_cannot_undo_fencing() {
        for forbidden in [
            "SUPER",
            "READ_ONLY ADMIN",
            "SHUTDOWN",
            "RELOAD",
            "FILE",
            "REPLICATION SLAVE",
            "REPLICATION SLAVE ADMIN",
            "REPLICATION MASTER ADMIN",
            "BINLOG ADMIN",
            "BINLOG REPLAY",
            "CONNECTION ADMIN",
            "SET USER",
            "ALL PRIVILEGES",
        ] {
            assert!(!PRIVILEGED_GLOBAL.contains(&forbidden), "{forbidden}");
        }
        let g = desired_grants(&AccountKind::Privileged);
        assert!(g.global.grant_option && g.databases.is_empty());
    }

    #[test]
    fn normal_accounts_get_database_grants_only() {
        let g = desired_grants(&normal(&[("app_1", AccountRole::ReadOnly)]));
        assert!(g.global.is_empty());
        // The wildcard in the name is escaped so the grant covers exactly that database.
        let db = g.databases.get("app\\_1").unwrap();
        assert_eq!(db.privileges.len(), 4);
        assert!(!db.grant_option);
    }

    #[test]
    fn a_new_account_gets_grants() {
        let want = desired_grants(&normal(&[("db1", AccountRole::ReadOnly)]));
        let stmts = grant_statements("app", &Grants::default(), &want).unwrap();
        assert_eq!(
            stmts,
            ["GRANT EXECUTE, LOCK TABLES, SELECT, SHOW VIEW ON `db1`.* TO 'app'@'%'"]
        );
    }

    #[test]
    fn steady_state_needs_no_statements() {
        for kind in [
            normal(&[("a", AccountRole::ReadWrite), ("b", AccountRole::DmlOnly)]),
            AccountKind::Privileged,
        ] {
            let want = desired_grants(&kind);
            assert!(grant_statements("app", &want, &want).unwrap().is_empty());
        }
    }

    #[test]
    fn role_changes_revoke_then_grant() {
        let cur = desired_grants(&normal(&[
            ("db1", AccountRole::ReadWrite),
            ("old", AccountRole::ReadOnly),
        ]));
        let want = desired_grants(&normal(&[
            ("db1", AccountRole::ReadOnly),
            ("new", AccountRole::DdlOnly),
        ]));
        let stmts = grant_statements("app", &cur, &want).unwrap();
        assert_eq!(stmts.len(), 3, "{stmts:#?}");
        assert!(stmts[0].starts_with("REVOKE ALTER, ALTER ROUTINE, CREATE, "));
        assert!(stmts[0].ends_with(" ON `db1`.* FROM 'app'@'%'"));
        assert!(!stmts[0].contains("SELECT"));
        assert_eq!(
            stmts[1],
            "REVOKE EXECUTE, LOCK TABLES, SELECT, SHOW VIEW ON `old`.* FROM 'app'@'%'"
        );
        assert!(stmts[2].starts_with("GRANT ") && stmts[2].ends_with(" ON `new`.* TO 'app'@'%'"));
    }

    #[test]
    fn stray_global_privileges_and_grant_option_are_revoked() {
        let mut cur = desired_grants(&normal(&[("db1", AccountRole::ReadOnly)]));
        cur.global = PrivSet::of(&["SUPER", "FILE"], true);
        cur.databases.get_mut("db1").unwrap().grant_option = true;
        let want = desired_grants(&normal(&[("db1", AccountRole::ReadOnly)]));
        let stmts = grant_statements("app", &cur, &want).unwrap();
        assert_eq!(
            stmts,
            [
                "REVOKE FILE, SUPER ON *.* FROM 'app'@'%'",
                "REVOKE GRANT OPTION ON *.* FROM 'app'@'%'",
                "REVOKE GRANT OPTION ON `db1`.* FROM 'app'@'%'",
            ]
        );
    }

    #[test]
    fn a_missing_grant_option_is_added_alone() {
        let want = desired_grants(&AccountKind::Privileged);
        let mut cur = want.clone();
        cur.global.grant_option = false;
        let stmts = grant_statements("dba", &cur, &want).unwrap();
        assert_eq!(stmts, ["GRANT USAGE ON *.* TO 'dba'@'%' WITH GRANT OPTION"]);
    }

    #[test]
    fn privileged_from_scratch_is_one_global_grant() {
        let stmts = grant_statements(
            "dba",
            &Grants::default(),
            &desired_grants(&AccountKind::Privileged),
        )
        .unwrap();
        assert_eq!(stmts.len(), 1);
        assert!(stmts[0].starts_with("GRANT ALTER, ALTER ROUTINE, BINLOG MONITOR, "));
        assert!(stmts[0].ends_with(" ON *.* TO 'dba'@'%' WITH GRANT OPTION"));
    }

    #[test]
    fn hostile_names_stay_quoted() {
        let want = desired_grants(&normal(&[("x`.*, mysql", AccountRole::ReadOnly)]));
        let stmts = grant_statements("a'@'%' IDENTIFIED BY 'x", &Grants::default(), &want).unwrap();
        assert_eq!(
            stmts,
            [
                "GRANT EXECUTE, LOCK TABLES, SELECT, SHOW VIEW ON `x``.*, mysql`.* TO 'a''@''%'' IDENTIFIED BY ''x'@'%'"
            ]
        );
        assert!(grant_statements("a\0", &Grants::default(), &want).is_err());
    }
}
