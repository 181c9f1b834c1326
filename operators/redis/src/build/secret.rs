//! The connection Secret: what applications mount or read to connect.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use crate::crd::RedisInstance;
use crate::names;

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

/// The connection Secret with `password`.
pub fn connection_secret(
    instance: &RedisInstance,
    password: &str,
    monitor_password: &str,
) -> Secret {
    let name = instance.name_any();
    let ns = instance.namespace().unwrap_or_default();
    let host = names::endpoint_host(&name, &ns);
    let port = names::REDIS_PORT.to_string();
    let endpoint = format!("{host}:{port}");
    let uri = format!("redis://:{password}@{endpoint}");
    let data = BTreeMap::from([
        (names::KEY_HOST, host),
        (names::KEY_PORT, port),
        (names::KEY_ENDPOINT, endpoint),
        (names::KEY_PASSWORD, password.to_owned()),
        (names::KEY_URI, uri),
        (names::KEY_MONITOR_PASSWORD, monitor_password.to_owned()),
    ])
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
    .collect();
    Secret {
        metadata: super::meta(instance, names::connection_secret(&name), "connection"),
        type_: Some("Opaque".into()),
        data: Some(data),
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
        let s = connection_secret(&instance(Default::default()), "pw123456", "mon12345");
        assert_eq!(s.metadata.name.as_deref(), Some("orders-connection"));
        let d = s.data.unwrap();
        let get = |k: &str| String::from_utf8(d[k].0.clone()).unwrap();
        assert_eq!(get("host"), "orders.shop.svc");
        assert_eq!(get("port"), "6379");
        assert_eq!(get("endpoint"), "orders.shop.svc:6379");
        assert_eq!(get("uri"), "redis://:pw123456@orders.shop.svc:6379");
        assert_eq!(get("password"), "pw123456");
    }
}
