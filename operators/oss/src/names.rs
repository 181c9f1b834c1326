//! Names and ports shared by the builders, the controllers and the gateway.

/// The controller name (`--controllers=oss`, metrics label, field manager suffix).
pub const CONTROLLER: &str = "oss";

/// Garage's S3 API port.
pub const GARAGE_S3_PORT: i32 = 3900;
/// Garage's RPC port (node to node).
pub const GARAGE_RPC_PORT: i32 = 3901;
/// Garage's website port.
pub const GARAGE_WEB_PORT: i32 = 3902;
/// Garage's admin API and `/metrics` port.
pub const GARAGE_ADMIN_PORT: i32 = 3903;

/// The gateway's S3 port.
pub const GATEWAY_S3_PORT: i32 = 8080;
/// The gateway's website port.
pub const GATEWAY_WEB_PORT: i32 = 8081;
/// The gateway's `/healthz` + `/metrics` port.
pub const GATEWAY_ADMIN_PORT: i32 = 8082;

/// Key of the gateway rules (JSON, [`crate::gateway::config::GatewayConfig`]) in the rules ConfigMap.
pub const GATEWAY_RULES_KEY: &str = "rules.json";

/// Keys of the admin Secret.
pub const ADMIN_TOKEN_KEY: &str = "admin-token";
pub const RPC_SECRET_KEY: &str = "rpc-secret";

/// Keys of the gateway's own Garage key Secret (used to serve anonymous requests on public buckets).
pub const ACCESS_KEY_ID_KEY: &str = "AWS_ACCESS_KEY_ID";
pub const SECRET_ACCESS_KEY_KEY: &str = "AWS_SECRET_ACCESS_KEY";

/// Headless Service of the Garage nodes (`<store>-nodes`): stable pod DNS names for RPC.
pub fn nodes_service(store: &str) -> String {
    format!("{store}-nodes")
}
/// The S3 endpoint Service (the gateway): `<store>`.
pub fn s3_service(store: &str) -> String {
    store.to_owned()
}
/// The website endpoint Service (the gateway's website port): `<store>-web`.
pub fn web_service(store: &str) -> String {
    format!("{store}-web")
}
/// The admin Service (Garage admin API and metrics, operator only): `<store>-admin`.
pub fn admin_service(store: &str) -> String {
    format!("{store}-admin")
}
/// The Garage StatefulSet: `<store>-garage`.
pub fn statefulset(store: &str) -> String {
    format!("{store}-garage")
}
/// The gateway Deployment: `<store>-gateway`.
pub fn gateway(store: &str) -> String {
    format!("{store}-gateway")
}
/// The admin Secret (admin token, RPC secret): `<store>-admin`.
pub fn admin_secret(store: &str) -> String {
    format!("{store}-admin")
}
/// The gateway's key Secret: `<store>-gateway-key`.
pub fn gateway_key_secret(store: &str) -> String {
    format!("{store}-gateway-key")
}
/// The gateway rules ConfigMap: `<store>-gateway-rules`.
pub fn gateway_rules(store: &str) -> String {
    format!("{store}-gateway-rules")
}
/// Garage's config ConfigMap: `<store>-garage`.
pub fn garage_config(store: &str) -> String {
    format!("{store}-garage")
}
/// Domain website buckets are served under: `<bucket>.web.<store>.<ns>.svc`.
pub fn website_domain(store: &str, namespace: &str) -> String {
    format!("web.{store}.{namespace}.svc")
}
/// Garage's S3 and website ports across the Ready nodes (the gateway's upstream): `<store>-internal`.
pub fn internal_service(store: &str) -> String {
    format!("{store}-internal")
}
