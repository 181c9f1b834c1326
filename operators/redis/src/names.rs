//! Names shared by the builders, the failover supervisor and the tests: one place, typed.

/// The controller (and `app.kubernetes.io/name`) of every child.
pub const CONTROLLER: &str = "redis";
/// Redis port.
pub const REDIS_PORT: i32 = 6379;
/// Redis Cluster bus port.
pub const CLUSTER_BUS_PORT: i32 = 16379;
/// redis_exporter port.
pub const EXPORTER_PORT: i32 = 9121;
/// Port names.
pub const REDIS_PORT_NAME: &str = "redis";
/// Port name of the cluster bus.
pub const BUS_PORT_NAME: &str = "cluster-bus";
/// Port name of the exporter.
pub const METRICS_PORT_NAME: &str = "metrics";

/// Pod label holding the role the supervisor gave the pod; the endpoint Service selects
/// `role=master`.
pub const ROLE_LABEL: &str = "redis.agility.dev/role";
/// [`ROLE_LABEL`] value of the master.
pub const ROLE_MASTER: &str = "master";
/// Pod label with the shard index (cluster edition).
pub const SHARD_LABEL: &str = "redis.agility.dev/shard";
/// Pod template annotation: hash of the settings only read at start (a change rolls the pods).
pub const RESTART_HASH_ANNOTATION: &str = "redis.agility.dev/restart-hash";

/// `app.kubernetes.io/component` of the data pods and their StatefulSets.
pub const COMPONENT_SERVER: &str = "server";

/// Container names.
pub const REDIS_CONTAINER: &str = "redis";
/// The exporter sidecar.
pub const EXPORTER_CONTAINER: &str = "exporter";

/// Volume names and mount paths.
pub const DATA_VOLUME: &str = "data";
/// Where data lives.
pub const DATA_PATH: &str = "/data";
/// The config volume (ConfigMap).
pub const CONFIG_VOLUME: &str = "config";
/// Where the config is mounted.
pub const CONFIG_PATH: &str = "/etc/redis";
/// The password volume (Secret).
pub const AUTH_VOLUME: &str = "auth";
/// Where the password file is mounted.
pub const AUTH_PATH: &str = "/etc/redis-auth";
/// A writable scratch dir (the root filesystem is read-only).
pub const RUN_VOLUME: &str = "run";
/// Its mount path.
pub const RUN_PATH: &str = "/run/redis";

/// The TLS volume (the certificate Secret: issued or the user's).
pub const TLS_VOLUME: &str = "tls";
/// Where the certificate, key and CA are mounted.
pub const TLS_PATH: &str = "/etc/redis-tls";
/// Keys of a `kubernetes.io/tls` Secret (and `ca.crt`, which cert-manager adds too).
pub const KEY_TLS_CERT: &str = "tls.crt";
/// The private key.
pub const KEY_TLS_KEY: &str = "tls.key";
/// The CA that signed `tls.crt`; also in the connection Secret for clients.
pub const KEY_CA_CERT: &str = "ca.crt";
/// The issuing CA's private key (only in the operator's CA Secret, never mounted).
pub const KEY_CA_KEY: &str = "ca.key";
/// Annotation of the issued certificate Secret: its expiry (RFC 3339).
pub const NOT_AFTER_ANNOTATION: &str = "redis.agility.dev/not-after";
/// Annotation of the issued certificate Secret: hash of the names it was issued for.
pub const SANS_HASH_ANNOTATION: &str = "redis.agility.dev/names-hash";
/// The cluster DNS domain the issued certificates name besides the short `.svc` names.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Keys of the connection Secret.
pub const KEY_HOST: &str = "host";
/// Port key.
pub const KEY_PORT: &str = "port";
/// `host:port`.
pub const KEY_ENDPOINT: &str = "endpoint";
/// Password key.
pub const KEY_PASSWORD: &str = "password";
/// `redis://:password@host:port`.
pub const KEY_URI: &str = "uri";
/// `"true"` when the instance speaks TLS (clients then also read `ca.crt`).
pub const KEY_TLS: &str = "tls";
/// Password of the `monitor` ACL user the exporter sidecar logs in as (read-only commands; not
/// rotated with the application password, so metrics survive a rotation).
pub const KEY_MONITOR_PASSWORD: &str = "monitor-password";
/// The exporter's ACL user.
pub const MONITOR_USER: &str = "monitor";

/// The endpoint Service (follows the master; cluster edition: every node, as seeds).
pub fn endpoint_service(instance: &str) -> String {
    instance.to_owned()
}

/// The headless Service giving pods stable DNS names.
pub fn nodes_service(instance: &str) -> String {
    format!("{instance}-nodes")
}

/// The StatefulSet of a standard/cache instance, or of shard `shard` of a cluster instance.
pub fn statefulset(instance: &str, shard: Option<u32>) -> String {
    match shard {
        None => instance.to_owned(),
        Some(i) => format!("{instance}-shard-{i}"),
    }
}

/// ConfigMap with redis.conf and the start script.
pub fn config_map(instance: &str) -> String {
    format!("{instance}-config")
}

/// The connection Secret.
pub fn connection_secret(instance: &str) -> String {
    format!("{instance}-connection")
}

/// The Secret with the certificate the operator issued (`tls.crt`, `tls.key`, `ca.crt`).
pub fn tls_secret(instance: &str) -> String {
    format!("{instance}-tls")
}

/// The Secret with the instance's own CA (certificate and key; never mounted).
pub fn ca_secret(instance: &str) -> String {
    format!("{instance}-tls-ca")
}

/// The DNS name a node's certificate is checked against: `<pod>.<name>-nodes.<ns>.svc`.
pub fn node_host(pod: &str, instance: &str, namespace: &str) -> String {
    format!("{pod}.{}.{namespace}.svc", nodes_service(instance))
}

/// The NetworkPolicy enforcing the allowlist.
pub fn network_policy(instance: &str) -> String {
    instance.to_owned()
}

/// The PodDisruptionBudget.
pub fn pdb(instance: &str) -> String {
    instance.to_owned()
}

/// The service DNS name of the endpoint.
pub fn endpoint_host(instance: &str, namespace: &str) -> String {
    format!("{}.{namespace}.svc", endpoint_service(instance))
}
