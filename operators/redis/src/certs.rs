//! Which TLS material an instance runs with: the user's certificate Secret, or a certificate the
//! operator issues (kept while valid, renewed before expiry, re-issued when the names change).
//! The decision is pure ([`decide_issued`]); [`resolve`] only reads the Secrets it needs.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use time::OffsetDateTime;

use crate::build::secret::value;
use crate::crd::RedisInstance;
use crate::error::RedisError;
use crate::names;
use crate::plan::Plan;
use crate::tls::{self, CaPem, IssuedCert};

/// The TLS material in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsMaterial {
    /// The CA clients and the supervisor verify with (`ca.crt`).
    pub ca_cert: String,
    /// What the operator issued (applied as Secrets); None for a user Secret.
    pub issued: Option<(CaPem, IssuedCert)>,
    /// Hash of the served certificate: a change (renewal, new user certificate) rolls the pods,
    /// which read certificates only at start.
    pub fingerprint: String,
    /// True when the certificate was (re-)issued in this reconcile.
    pub renewed: bool,
}

fn annotation(s: &Secret, key: &str) -> Option<String> {
    s.metadata.annotations.as_ref()?.get(key).cloned()
}

fn fingerprint(cert: &str) -> String {
    format!("{:016x}", agility_core::apply::fnv1a64(cert.as_bytes()))
}

/// Keeps the stored CA and certificate while they are usable; otherwise makes new ones (pure but
/// for key generation). A new CA only when there is none: renewals keep clients' trust.
pub fn decide_issued(
    instance: &str,
    namespace: &str,
    stored_ca: Option<&Secret>,
    stored_cert: Option<&Secret>,
    now: OffsetDateTime,
) -> Result<TlsMaterial, tls::TlsError> {
    let ca = match stored_ca
        .and_then(|s| Some((value(s, names::KEY_CA_CERT)?, value(s, names::KEY_CA_KEY)?)))
    {
        Some((cert, key)) => CaPem { cert, key },
        None => tls::new_ca(instance, namespace, now)?,
    };
    let want_hash = tls::names_hash(&tls::server_names(instance, namespace));
    let kept = stored_cert.and_then(|s| {
        let cert = IssuedCert {
            cert: value(s, names::KEY_TLS_CERT)?,
            key: value(s, names::KEY_TLS_KEY)?,
            not_after: annotation(s, names::NOT_AFTER_ANNOTATION)?,
            names_hash: annotation(s, names::SANS_HASH_ANNOTATION)?,
        };
        let same_ca = value(s, names::KEY_CA_CERT).as_deref() == Some(ca.cert.as_str());
        let fresh = !tls::needs_renewal(&cert.not_after, &cert.names_hash, &want_hash, now);
        (same_ca && fresh).then_some(cert)
    });
    let renewed = kept.is_none();
    let cert = match kept {
        Some(c) => c,
        None => tls::issue(instance, namespace, &ca, now)?,
    };
    Ok(TlsMaterial {
        ca_cert: ca.cert.clone(),
        fingerprint: fingerprint(&cert.cert),
        issued: Some((ca, cert)),
        renewed,
    })
}

/// Reads what the plan's TLS needs. None for plaintext instances.
pub async fn resolve(
    client: &kube::Client,
    obj: &RedisInstance,
    plan: &Plan,
) -> Result<Option<TlsMaterial>, RedisError> {
    let Some(user_secret) = &plan.tls else {
        return Ok(None);
    };
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let read = |secret: String| {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt(&secret)
                .await
                .map_err(|e| agility_core::Error::kube("read a TLS Secret", e))
        }
    };
    if let Some(secret) = user_secret {
        let id = format!("{ns}/{secret}");
        let missing = |reason: String| RedisError::TlsSecret {
            secret: id.clone(),
            reason,
        };
        let s = read(secret.clone())
            .await?
            .ok_or_else(|| missing("not found".into()))?;
        let mut got = Vec::new();
        for key in [names::KEY_TLS_CERT, names::KEY_TLS_KEY, names::KEY_CA_CERT] {
            got.push(value(&s, key).ok_or_else(|| missing(format!("no key {key:?}")))?);
        }
        for (pem, what) in [(&got[0], "tls.crt"), (&got[2], "ca.crt")] {
            tls::check_certificates(pem, what).map_err(|e| missing(e.to_string()))?;
        }
        return Ok(Some(TlsMaterial {
            fingerprint: fingerprint(&got[0]),
            ca_cert: got.swap_remove(2),
            issued: None,
            renewed: false,
        }));
    }
    let ca = read(names::ca_secret(&name)).await?;
    let cert = read(names::tls_secret(&name)).await?;
    let material = decide_issued(
        &name,
        &ns,
        ca.as_ref(),
        cert.as_ref(),
        OffsetDateTime::now_utc(),
    )
    .map_err(|e| RedisError::Tls(e.to_string()))?;
    Ok(Some(material))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::build::fixtures::instance;
    use crate::build::secret::{ca_secret, issued_tls_secret};

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap()
    }

    fn stored(m: &TlsMaterial) -> (Secret, Secret) {
        let i = instance(Default::default());
        let (ca, cert) = m.issued.as_ref().unwrap();
        (ca_secret(&i, ca), issued_tls_secret(&i, cert, &ca.cert))
    }

    #[test]
    fn first_issue_then_kept_then_renewed_by_the_same_ca() {
        let first = decide_issued("orders", "shop", None, None, now()).unwrap();
        assert!(first.renewed);
        let (ca, cert) = stored(&first);
        let again = decide_issued("orders", "shop", Some(&ca), Some(&cert), now()).unwrap();
        assert!(
            !again.renewed,
            "a valid certificate is kept: no rolling restart"
        );
        assert_eq!(
            again,
            TlsMaterial {
                renewed: false,
                ..first.clone()
            }
        );
        let later = now() + time::Duration::days(340);
        let renewed = decide_issued("orders", "shop", Some(&ca), Some(&cert), later).unwrap();
        assert!(renewed.renewed);
        assert_ne!(renewed.fingerprint, first.fingerprint);
        assert_eq!(
            renewed.ca_cert, first.ca_cert,
            "clients keep trusting the CA"
        );
    }

    #[test]
    fn a_certificate_from_a_lost_ca_is_reissued() {
        let first = decide_issued("orders", "shop", None, None, now()).unwrap();
        let (_, cert) = stored(&first);
        let m = decide_issued("orders", "shop", None, Some(&cert), now()).unwrap();
        assert!(m.renewed);
        assert_ne!(m.ca_cert, first.ca_cert);
    }
}
