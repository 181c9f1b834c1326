//! TLS material: a CA of each instance's own and the server certificate the operator issues
//! from it (rcgen), and the rustls client config the supervisor verifies nodes with.
//!
//! The CA is rebuilt from fixed parameters and its stored key when a certificate is renewed, so
//! clients that trust `ca.crt` keep trusting the renewed certificate.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use time::{Duration, OffsetDateTime};

use crate::names;

/// How long the operator's CA is valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long an issued server certificate is valid.
const CERT_VALIDITY: Duration = Duration::days(365);
/// Renew an issued certificate when less than this is left.
pub const RENEW_BEFORE: Duration = Duration::days(30);

/// TLS failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating or signing failed.
    #[error("issuing a certificate: {0}")]
    Issue(#[from] rcgen::Error),
    /// A PEM certificate could not be read.
    #[error("reading {what}: {reason}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS client configuration: {0}")]
    Client(#[from] rustls::Error),
}

/// A CA: certificate and key, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaPem {
    /// `ca.crt`.
    pub cert: String,
    /// `ca.key`.
    pub key: String,
}

/// A server certificate the operator issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCert {
    /// `tls.crt`.
    pub cert: String,
    /// `tls.key`.
    pub key: String,
    /// Expiry, RFC 3339.
    pub not_after: String,
    /// [`names_hash`] of the names it was issued for.
    pub names_hash: String,
}

/// The names a node's certificate carries: the endpoint Service, every pod behind the headless
/// Service (wildcard), in short and full cluster-domain forms, and loopback for in-pod tools.
pub fn server_names(instance: &str, namespace: &str) -> Vec<String> {
    let endpoint = names::endpoint_service(instance);
    let nodes = names::nodes_service(instance);
    let d = names::CLUSTER_DOMAIN;
    vec![
        format!("{endpoint}.{namespace}.svc"),
        format!("{endpoint}.{namespace}.svc.{d}"),
        format!("{endpoint}.{namespace}"),
        endpoint,
        format!("*.{nodes}.{namespace}.svc"),
        format!("*.{nodes}.{namespace}.svc.{d}"),
        "localhost".into(),
        "127.0.0.1".into(),
    ]
}

/// A short stable hash of a name list (a change of names re-issues the certificate).
pub fn names_hash(names: &[String]) -> String {
    format!(
        "{:016x}",
        agility_core::apply::fnv1a64(names.join(",").as_bytes())
    )
}

fn ca_params(instance: &str, namespace: &str, now: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "agility");
    dn.push(
        DnType::CommonName,
        format!("redis {namespace}/{instance} CA"),
    );
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + CA_VALIDITY;
    p
}

/// A new CA for the instance (ECDSA P-256 key from the OS CSPRNG).
pub fn new_ca(instance: &str, namespace: &str, now: OffsetDateTime) -> Result<CaPem, TlsError> {
    let key = KeyPair::generate()?;
    let cert = ca_params(instance, namespace, now).self_signed(&key)?;
    Ok(CaPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A server certificate for the instance signed by `ca`.
pub fn issue(
    instance: &str,
    namespace: &str,
    ca: &CaPem,
    now: OffsetDateTime,
) -> Result<IssuedCert, TlsError> {
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = Issuer::new(ca_params(instance, namespace, now), ca_key);
    let names = server_names(instance, namespace);
    let mut p = CertificateParams::new(names.clone())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "agility");
    dn.push(DnType::CommonName, format!("{instance}.{namespace}.svc"));
    p.distinguished_name = dn;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // Replicas and cluster peers present the same certificate when they connect out.
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    p.not_before = now - Duration::minutes(5);
    let not_after = now + CERT_VALIDITY;
    p.not_after = not_after;
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    Ok(IssuedCert {
        cert: cert.pem(),
        key: key.serialize_pem(),
        not_after: format_rfc3339(not_after),
        names_hash: names_hash(&names),
    })
}

/// RFC 3339 at whole seconds.
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Whether an issued certificate must be replaced: close to expiry, unreadable expiry, or issued
/// for other names.
pub fn needs_renewal(
    not_after: &str,
    issued_hash: &str,
    want_hash: &str,
    now: OffsetDateTime,
) -> bool {
    let expiry = OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339);
    match expiry {
        Ok(t) => t - now < RENEW_BEFORE || issued_hash != want_hash,
        Err(_) => true,
    }
}

/// Checks that `pem` holds at least one certificate.
pub fn check_certificates(pem: &str, what: &'static str) -> Result<(), TlsError> {
    certificates(pem, what).map(|_| ())
}

fn certificates(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            reason: "no certificate in it".into(),
        });
    }
    Ok(certs)
}

/// How the operator's admin connections verify nodes: the instance's CA, and each node checked
/// by its headless-Service name (nodes are dialled by pod IP, which certificates cannot name).
#[derive(Clone, Debug)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
    #[cfg(test)]
    verifier: Arc<rustls::client::WebPkiServerVerifier>,
}

impl TlsClient {
    /// A client trusting only `ca_pem`.
    pub fn new(ca_pem: &str) -> Result<Self, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in certificates(ca_pem, "ca.crt")? {
            roots.add(c)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsError::Pem {
            what: "ca.crt",
            reason: e.to_string(),
        })?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_webpki_verifier(verifier.clone())
            .with_no_client_auth();
        Ok(TlsClient {
            config: Arc::new(config),
            #[cfg(test)]
            verifier,
        })
    }

    /// The rustls connector.
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.config.clone())
    }

    /// The name a node is verified by.
    pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
        ServerName::try_from(host.to_owned()).map_err(|e| TlsError::Pem {
            what: "server name",
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap()
    }

    #[test]
    fn names_cover_endpoint_nodes_and_loopback() {
        let n = server_names("orders", "shop");
        for want in [
            "orders.shop.svc",
            "orders.shop.svc.cluster.local",
            "*.orders-nodes.shop.svc",
            "localhost",
            "127.0.0.1",
        ] {
            assert!(n.iter().any(|x| x == want), "missing {want}");
        }
    }

    #[test]
    fn issued_certificate_is_pem_and_expires_in_a_year() {
        let ca = new_ca("orders", "shop", now()).unwrap();
        let c = issue("orders", "shop", &ca, now()).unwrap();
        assert!(c.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(c.key.contains("PRIVATE KEY"));
        check_certificates(&c.cert, "tls.crt").unwrap();
        assert_eq!(c.not_after, format_rfc3339(now() + CERT_VALIDITY));
        assert_eq!(c.names_hash, names_hash(&server_names("orders", "shop")));
    }

    #[test]
    fn renewal_when_close_to_expiry_or_names_changed() {
        let ca = new_ca("orders", "shop", now()).unwrap();
        let c = issue("orders", "shop", &ca, now()).unwrap();
        let h = c.names_hash.clone();
        assert!(!needs_renewal(&c.not_after, &h, &h, now()));
        assert!(!needs_renewal(
            &c.not_after,
            &h,
            &h,
            now() + Duration::days(300)
        ));
        assert!(needs_renewal(
            &c.not_after,
            &h,
            &h,
            now() + Duration::days(340)
        ));
        assert!(needs_renewal(&c.not_after, &h, "other", now()));
        assert!(needs_renewal("garbage", &h, &h, now()));
    }

    /// The certificate verifies for a node's headless name through the CA, and a renewed one
    /// (same CA key) too: rustls checks the chain and the name like a client would.
    #[test]
    fn rustls_accepts_issued_and_renewed_certificates_for_node_names() {
        use rustls::client::danger::ServerCertVerifier;
        let ca = new_ca("orders", "shop", now()).unwrap();
        let client = TlsClient::new(&ca.cert).unwrap();
        let verifier = client.verifier.clone();
        for at in [now(), now() + Duration::days(340)] {
            let c = issue("orders", "shop", &ca, at).unwrap();
            let der = certificates(&c.cert, "tls.crt").unwrap().remove(0);
            let name = TlsClient::server_name("orders-1.orders-nodes.shop.svc").unwrap();
            let when = rustls_pki_types::UnixTime::since_unix_epoch(
                std::time::Duration::from_secs((at + Duration::days(1)).unix_timestamp() as u64),
            );
            verifier
                .verify_server_cert(&der, &[], &name, &[], when)
                .unwrap();
            let wrong = TlsClient::server_name("orders-1.other-nodes.shop.svc").unwrap();
            assert!(
                verifier
                    .verify_server_cert(&der, &[], &wrong, &[], when)
                    .is_err()
            );
        }
        let other_ca = new_ca("orders", "shop", now()).unwrap();
        let c = issue("orders", "shop", &other_ca, now()).unwrap();
        let der = certificates(&c.cert, "tls.crt").unwrap().remove(0);
        let name = TlsClient::server_name("orders-1.orders-nodes.shop.svc").unwrap();
        let when = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            now().unix_timestamp() as u64 + 60,
        ));
        assert!(
            verifier
                .verify_server_cert(&der, &[], &name, &[], when)
                .is_err(),
            "a certificate from another CA is refused"
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(check_certificates("not pem", "ca.crt").is_err());
        assert!(TlsClient::new("").is_err());
    }
}
