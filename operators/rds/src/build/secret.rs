//! Secrets: the instance's system Secret (passwords of the operator's own accounts and the init
//! SQL every node runs at start) and an account's connection Secret.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use crate::crd::{RdsAccount, RdsInstance};
use crate::names;

/// Characters of generated passwords (alphanumeric: safe in SQL, URIs and shells).
const PASSWORD_LEN: usize = 32;

/// A new password from the OS-seeded CSPRNG.
pub fn generate_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), PASSWORD_LEN)
}

/// Whether a user-supplied password can be used (printable ASCII without quotes, backslash or
/// the URI delimiters, 8-128 characters), so it goes into SQL and URIs unchanged.
pub fn password_is_usable(p: &str) -> bool {
    (8..=128).contains(&p.len())
        && p.chars().all(|c| {
            c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '`' | '%' | '@' | ':' | '/')
        })
}

/// A Secret's value as text; None when missing, empty or not UTF-8.
pub fn value(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .filter(|v| !v.trim().is_empty())
}

fn bytes(m: BTreeMap<&str, String>) -> BTreeMap<String, ByteString> {
    m.into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
        .collect()
}

/// Passwords of the operator's accounts on every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemPasswords {
    /// `agility_admin`: the supervisor and the account controller.
    pub admin: String,
    /// `agility_repl`: replication.
    pub repl: String,
}

impl SystemPasswords {
    /// The passwords kept in an existing system Secret, else new ones (never rotated silently:
    /// every node's init SQL and the running replication use them).
    pub fn from_secret_or_new(existing: Option<&Secret>) -> Self {
        let get = |k| {
            existing
                .and_then(|s| value(s, k))
                .filter(|p| password_is_usable(p))
        };
        SystemPasswords {
            admin: get(names::KEY_ADMIN_PASSWORD).unwrap_or_else(generate_password),
            repl: get(names::KEY_REPL_PASSWORD).unwrap_or_else(generate_password),
        }
    }
}

/// The SQL every node runs at start (`init_file`): the system accounts, idempotent, not
/// binlogged (each node has its own copy; they must not replicate).
pub fn init_sql(p: &SystemPasswords) -> String {
    let admin = names::ADMIN_USER;
    let repl = names::REPL_USER;
    format!(
        "SET sql_log_bin=0;\n\
         CREATE USER IF NOT EXISTS '{admin}'@'%' IDENTIFIED BY '{a}';\n\
         ALTER USER '{admin}'@'%' IDENTIFIED BY '{a}';\n\
         GRANT ALL PRIVILEGES ON *.* TO '{admin}'@'%' WITH GRANT OPTION;\n\
         CREATE USER IF NOT EXISTS '{repl}'@'%' IDENTIFIED BY '{r}';\n\
         ALTER USER '{repl}'@'%' IDENTIFIED BY '{r}';\n\
         GRANT REPLICATION SLAVE, REPLICATION SLAVE ADMIN, BINLOG MONITOR ON *.* TO '{repl}'@'%';\n",
        a = p.admin,
        r = p.repl,
    )
}

/// The system Secret.
pub fn system_secret(instance: &RdsInstance, p: &SystemPasswords) -> Secret {
    Secret {
        metadata: super::meta(
            instance,
            names::system_secret(&instance.name_any()),
            "system",
        ),
        type_: Some("Opaque".into()),
        data: Some(bytes(BTreeMap::from([
            (names::KEY_ADMIN_PASSWORD, p.admin.clone()),
            (names::KEY_REPL_PASSWORD, p.repl.clone()),
            (names::KEY_INIT_SQL, init_sql(p)),
        ]))),
        ..Default::default()
    }
}

/// Where an account connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionTarget {
    /// The read-write endpoint host.
    pub host: String,
    /// The balanced read-only endpoint host (read replicas).
    pub read_only_host: Option<String>,
}

/// An account's connection Secret: host, port, username, password, database and ready-made
/// JDBC, URI and Go DSN forms.
pub fn connection_secret(
    account: &RdsAccount,
    target: &ConnectionTarget,
    password: &str,
) -> Secret {
    let user = &account.spec.username;
    let port = names::MYSQL_PORT;
    let host = &target.host;
    let db = account
        .spec
        .privileges
        .first()
        .map(|p| p.database.clone())
        .unwrap_or_default();
    let mut data = BTreeMap::from([
        (names::KEY_HOST, host.clone()),
        (names::KEY_PORT, port.to_string()),
        (names::KEY_ENDPOINT, format!("{host}:{port}")),
        (names::KEY_USERNAME, user.clone()),
        (names::KEY_PASSWORD, password.to_owned()),
        (names::KEY_DATABASE, db.clone()),
        (
            names::KEY_JDBC_URL,
            format!("jdbc:mariadb://{host}:{port}/{db}"),
        ),
        (
            names::KEY_URI,
            format!("mysql://{user}:{password}@{host}:{port}/{db}"),
        ),
        (
            names::KEY_DSN,
            format!("{user}:{password}@tcp({host}:{port})/{db}"),
        ),
    ]);
    if let Some(ro) = &target.read_only_host {
        data.insert(names::KEY_READ_ONLY_HOST, ro.clone());
    }
    Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(names::account_secret(&account.name_any())),
            namespace: account.namespace(),
            labels: Some(agility_core::labels::standard(
                names::CONTROLLER,
                names::ACCOUNT_CONTROLLER,
                &account.name_any(),
                "connection",
            )),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(bytes(data)),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use crate::build::fixtures::{instance, spec};
    use crate::crd::{DatabasePrivilege, RdsAccountSpec};
    use crate::grants::AccountRole;

    #[test]
    fn generated_passwords_are_usable_and_distinct() {
        let a = generate_password();
        assert!(password_is_usable(&a));
        assert_ne!(a, generate_password());
        assert!(!password_is_usable("short"));
        assert!(!password_is_usable("has'quote-in-it"));
    }

    #[test]
    fn system_passwords_survive_in_the_secret() {
        let i = instance(spec());
        let p = SystemPasswords::from_secret_or_new(None);
        let s = system_secret(&i, &p);
        assert_eq!(SystemPasswords::from_secret_or_new(Some(&s)), p);
        let sql = value(&s, names::KEY_INIT_SQL).unwrap();
        assert!(sql.starts_with("SET sql_log_bin=0;"));
        assert!(sql.contains(&format!("IDENTIFIED BY '{}'", p.admin)));
    }

    #[test]
    fn connection_secret_has_every_form() {
        let mut a = RdsAccount::new(
            "app",
            RdsAccountSpec {
                instance_name: "orders".into(),
                username: "app".into(),
                privileges: vec![DatabasePrivilege {
                    database: "shop".into(),
                    role: AccountRole::ReadWrite,
                }],
                ..Default::default()
            },
        );
        a.metadata.namespace = Some("shop".into());
        let s = connection_secret(
            &a,
            &ConnectionTarget {
                host: "orders.shop.svc".into(),
                read_only_host: None,
            },
            "pw12345678",
        );
        assert_eq!(
            value(&s, names::KEY_JDBC_URL).unwrap(),
            "jdbc:mariadb://orders.shop.svc:3306/shop"
        );
        assert_eq!(
            value(&s, names::KEY_DSN).unwrap(),
            "app:pw12345678@tcp(orders.shop.svc:3306)/shop"
        );
        assert_eq!(s.metadata.name.as_deref(), Some("app-connection"));
    }
}
