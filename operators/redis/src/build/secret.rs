//! The connection Secret: what applications mount or read to connect.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use crate::crd::RedisInstance;
use crate::names;
use crate::tls::{CaPem, IssuedCert};

/// Characters of generated passwords (alphanumeric: safe in URIs, shells and redis.conf).
const PASSWORD_LEN: usize = 32;

/// A new password from the OS-seeded CSPRNG.
pub fn generate_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), PASSWORD_LEN)
}

/// Whether a user-supplied password can go into redis.conf and a URI unchanged.
pub fn password_is_usable(p: &str) -> bool {
    (8..=128).contains(&p.len())
        && p.chars().all(|c| {
            c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '%' | '@' | ':' | '/')
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

/// The connection Secret with `password`; with TLS also `tls: "true"`, `ca.crt` and a
/// `rediss://` URI.
pub fn connection_secret(
    instance: &RedisInstance,
    password: &str,
    monitor_password: &str,
    ca_cert: Option<&str>,
) -> Secret {
    let name = instance.name_any();
    let ns = instance.namespace().unwrap_or_default();
    let host = names::endpoint_host(&name, &ns);
    let port = names::REDIS_PORT.to_string();
    let endpoint = format!("{host}:{port}");
    let scheme = if ca_cert.is_some() { "rediss" } else { "redis" };
    let uri = format!("{scheme}://:{password}@{endpoint}");
    let mut data = BTreeMap::from([
        (names::KEY_HOST, host),
        (names::KEY_PORT, port),
        (names::KEY_ENDPOINT, endpoint),
        (names::KEY_PASSWORD, password.to_owned()),
        (names::KEY_URI, uri),
        (names::KEY_MONITOR_PASSWORD, monitor_password.to_owned()),
        (names::KEY_TLS, ca_cert.is_some().to_string()),
    ]);
    if let Some(ca) = ca_cert {
        data.insert(names::KEY_CA_CERT, ca.to_owned());
    }
    Secret {
        metadata: super::meta(instance, names::connection_secret(&name), "connection"),
        type_: Some("Opaque".into()),
        data: Some(bytes(data)),
        ..Default::default()
    }
}

/// The certificate the operator issued (`kubernetes.io/tls`, mounted by the pods), with its
/// expiry and names in annotations so that renewal needs no certificate parsing.
pub fn issued_tls_secret(instance: &RedisInstance, cert: &IssuedCert, ca_cert: &str) -> Secret {
    let mut metadata = super::meta(instance, names::tls_secret(&instance.name_any()), "tls");
    metadata.annotations = Some(BTreeMap::from([
        (
            names::NOT_AFTER_ANNOTATION.to_owned(),
            cert.not_after.clone(),
        ),
        (
            names::SANS_HASH_ANNOTATION.to_owned(),
            cert.names_hash.clone(),
        ),
    ]));
    Secret {
        metadata,
        type_: Some("kubernetes.io/tls".into()),
        data: Some(bytes(BTreeMap::from([
            (names::KEY_TLS_CERT, cert.cert.clone()),
            (names::KEY_TLS_KEY, cert.key.clone()),
            (names::KEY_CA_CERT, ca_cert.to_owned()),
        ]))),
        ..Default::default()
    }
}

/// The instance's CA (never mounted; only the operator reads it, to renew the certificate).
pub fn ca_secret(instance: &RedisInstance, ca: &CaPem) -> Secret {
    Secret {
        metadata: super::meta(instance, names::ca_secret(&instance.name_any()), "tls-ca"),
        type_: Some("Opaque".into()),
        data: Some(bytes(BTreeMap::from([
            (names::KEY_CA_CERT, ca.cert.clone()),
            (names::KEY_CA_KEY, ca.key.clone()),
        ]))),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::build::fixtures::instance;

    #[test]
    fn generated_passwords_are_long_random_and_usable() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(password_is_usable(&a));
    }

    #[test]
    fn user_passwords_must_be_safe_to_embed() {
        assert!(password_is_usable("Secr3t-pass_word!"));
        assert!(!password_is_usable("short"));
        assert!(!password_is_usable("has space inside"));
        assert!(!password_is_usable("quote\"inside"));
    }

    #[test]
    fn secret_has_every_key() {
        let s = connection_secret(&instance(Default::default()), "pw123456", "mon12345", None);
        assert_eq!(s.metadata.name.as_deref(), Some("orders-connection"));
        let d = s.data.unwrap();
        let get = |k: &str| String::from_utf8(d[k].0.clone()).unwrap();
        assert_eq!(get("host"), "orders.shop.svc");
        assert_eq!(get("port"), "6379");
        assert_eq!(get("endpoint"), "orders.shop.svc:6379");
        assert_eq!(get("uri"), "redis://:pw123456@orders.shop.svc:6379");
        assert_eq!(get("password"), "pw123456");
        assert_eq!(get("tls"), "false");
        assert!(!d.contains_key("ca.crt"));
    }

    #[test]
    fn tls_secret_names_rediss_and_carries_the_ca() {
        let s = connection_secret(&instance(Default::default()), "pw123456", "m", Some("CA"));
        let d = s.data.unwrap();
        let get = |k: &str| String::from_utf8(d[k].0.clone()).unwrap();
        assert_eq!(get("uri"), "rediss://:pw123456@orders.shop.svc:6379");
        assert_eq!(get("tls"), "true");
        assert_eq!(get("ca.crt"), "CA");
    }

    #[test]
    fn issued_secret_is_kubernetes_tls_with_expiry_annotation() {
        let cert = IssuedCert {
            cert: "C".into(),
            key: "K".into(),
            not_after: "2027-12-01T00:00:00Z".into(),
            names_hash: "h".into(),
        };
        let s = issued_tls_secret(&instance(Default::default()), &cert, "CA");
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(s.metadata.name.as_deref(), Some("orders-tls"));
        let ann = s.metadata.annotations.unwrap();
        assert_eq!(ann[names::NOT_AFTER_ANNOTATION], "2027-12-01T00:00:00Z");
        let keys: Vec<_> = s.data.unwrap().into_keys().collect();
        assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
    }
}
