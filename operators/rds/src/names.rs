//! Names shared by the builders, the supervisor, the account controller and the tests: one
//! place, typed.

/// The controller (and `app.kubernetes.io/name`) of every child.
pub const CONTROLLER: &str = "rds";
/// The MySQL port.
pub const MYSQL_PORT: i32 = 3306;
/// Its port name.
pub const MYSQL_PORT_NAME: &str = "mysql";

/// Pod label holding the role the supervisor gave the pod; the endpoint Service selects
/// `role=primary`. Only the supervisor writes it.
pub const ROLE_LABEL: &str = "rds.agility.dev/role";
/// [`ROLE_LABEL`] of the primary.
pub const ROLE_PRIMARY: &str = "primary";
/// [`ROLE_LABEL`] of the hot standby (not behind any user-facing Service).
pub const ROLE_STANDBY: &str = "standby";
/// Pod label telling HA pods from read replicas.
pub const SET_LABEL: &str = "rds.agility.dev/set";
/// [`SET_LABEL`] of the primary/standby pair.
pub const SET_HA: &str = "ha";
/// [`SET_LABEL`] of the read-only replicas.
pub const SET_READ: &str = "read";
/// Pod template annotation: hash of the settings only read at start (a change rolls the pods).
pub const RESTART_HASH_ANNOTATION: &str = "rds.agility.dev/restart-hash";

/// `app.kubernetes.io/component` of the database pods and their StatefulSets.
pub const COMPONENT_SERVER: &str = "server";

/// Container names.
pub const MARIADB_CONTAINER: &str = "mariadb";
/// The init container that creates the data directory.
pub const INIT_CONTAINER: &str = "init-datadir";

/// Volume names and mount paths.
pub const DATA_VOLUME: &str = "data";
/// The volume's mount path (the data directory is `data/` below it).
pub const DATA_PATH: &str = "/var/lib/mysql";
/// The config volume (ConfigMap: my.cnf and the scripts).
pub const CONFIG_VOLUME: &str = "config";
/// Where the config is mounted.
pub const CONFIG_PATH: &str = "/etc/mysql";
/// The init SQL (system accounts) from the system Secret.
pub const INIT_SQL_VOLUME: &str = "init-sql";
/// Where it is mounted.
pub const INIT_SQL_PATH: &str = "/etc/mysql-init";
/// Socket and pid file.
pub const RUN_VOLUME: &str = "run";
/// Its mount path.
pub const RUN_PATH: &str = "/run/mysqld";
/// Scratch space (the root filesystem is read-only).
pub const TMP_VOLUME: &str = "tmp";
/// Its mount path.
pub const TMP_PATH: &str = "/tmp";

/// System accounts (not user-visible; created by the init SQL on every start).
pub const ADMIN_USER: &str = "agility_admin";
/// The replication account.
pub const REPL_USER: &str = "agility_repl";
/// Keys of the system Secret.
pub const KEY_ADMIN_PASSWORD: &str = "admin-password";
/// The replication password.
pub const KEY_REPL_PASSWORD: &str = "repl-password";
/// The init SQL file.
pub const KEY_INIT_SQL: &str = "init.sql";

/// Keys of an account's connection Secret.
pub const KEY_HOST: &str = "host";
/// The port.
pub const KEY_PORT: &str = "port";
/// The user name.
pub const KEY_USERNAME: &str = "username";
/// The password.
pub const KEY_PASSWORD: &str = "password";
/// The first database the account may use (empty for a privileged account).
pub const KEY_DATABASE: &str = "database";
/// `host:port`.
pub const KEY_ENDPOINT: &str = "endpoint";
/// `jdbc:mariadb://host:port/database`.
pub const KEY_JDBC_URL: &str = "jdbcUrl";
/// `mysql://user:password@host:port/database`.
pub const KEY_URI: &str = "uri";
/// Go's `user:password@tcp(host:port)/database`.
pub const KEY_DSN: &str = "dsn";
/// The balanced read-only endpoint host (when the instance has read replicas).
pub const KEY_READ_ONLY_HOST: &str = "readOnlyHost";

/// The StatefulSet of the primary/standby pair (pods `<name>-0`, `<name>-1`).
pub fn ha_statefulset(instance: &str) -> String {
    instance.to_owned()
}

/// The StatefulSet of the read replicas (pods `<name>-ro-<i>`).
pub fn read_statefulset(instance: &str) -> String {
    format!("{instance}-ro")
}

/// The read-write endpoint Service (follows the primary).
pub fn endpoint_service(instance: &str) -> String {
    instance.to_owned()
}

/// The balanced read-only endpoint Service.
pub fn read_service(instance: &str) -> String {
    format!("{instance}-ro")
}

/// The endpoint of read replica `i`.
pub fn read_replica_service(instance: &str, i: u32) -> String {
    format!("{instance}-ro-{i}")
}

/// The headless Service giving every pod a stable DNS name (replication sources).
pub fn nodes_service(instance: &str) -> String {
    format!("{instance}-nodes")
}

/// ConfigMap with my.cnf and the scripts.
pub fn config_map(instance: &str) -> String {
    format!("{instance}-config")
}

/// The Secret with the system accounts' passwords and the init SQL.
pub fn system_secret(instance: &str) -> String {
    format!("{instance}-system")
}

/// The NetworkPolicy enforcing the allowlist.
pub fn network_policy(instance: &str) -> String {
    instance.to_owned()
}

/// The PodDisruptionBudget of the pair.
pub fn pdb(instance: &str) -> String {
    instance.to_owned()
}

/// The connection Secret of an RdsAccount.
pub fn account_secret(account: &str) -> String {
    format!("{account}-connection")
}

/// A pod's stable DNS name: `<pod>.<name>-nodes.<ns>.svc`.
pub fn node_host(pod: &str, instance: &str, namespace: &str) -> String {
    format!("{pod}.{}.{namespace}.svc", nodes_service(instance))
}

/// The service DNS name of the read-write endpoint.
pub fn endpoint_host(instance: &str, namespace: &str) -> String {
    format!("{}.{namespace}.svc", endpoint_service(instance))
}

/// The service DNS name of the read-only endpoint.
pub fn read_host(instance: &str, namespace: &str) -> String {
    format!("{}.{namespace}.svc", read_service(instance))
}

/// The controller name of RdsAccount children (connection Secrets), for pruning.
pub const ACCOUNT_CONTROLLER: &str = "rds-account";
