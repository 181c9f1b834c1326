//! What the first replica creates and every replica reads: the root key and the API's TLS
//! certificate, in Secrets of the KMS namespace. Create-if-absent: replicas racing at first
//! install all end with the same Secrets (the loser of the create reads the winner's).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::controller::FIELD_MANAGER;
use crate::root::RootKey;

/// The root key Secret.
pub const ROOT_SECRET: &str = "agility-kms-root-key";
/// Its key.
pub const ROOT_KEY: &str = "root.key";
/// The API certificate Secret (`tls.crt`, `tls.key`, `ca.crt`).
pub const TLS_SECRET: &str = "agility-kms-tls";
/// The public CA for clients (ConfigMap `ca.crt`).
pub const CA_CONFIG_MAP: &str = "agility-kms-ca";

/// Bootstrap failures.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The API refused.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: kube::Error,
    },
    /// A Secret exists but is unusable.
    #[error("{0}")]
    Invalid(String),
    /// Certificate generation failed.
    #[error("issuing the API certificate: {0}")]
    Certificate(#[from] rcgen::Error),
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([
            ("app.kubernetes.io/part-of".to_owned(), "agility".to_owned()),
            ("app.kubernetes.io/component".to_owned(), "kms".to_owned()),
        ])),
        ..Default::default()
    }
}

/// Creates `secret` unless it exists; returns what is stored.
async fn create_or_read(api: &Api<Secret>, secret: Secret) -> Result<Secret, BootstrapError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    match api.create(&PostParams::default(), &secret).await {
        Ok(s) => Ok(s),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            api.get(&name).await.map_err(|source| BootstrapError::Kube {
                what: "read an existing bootstrap Secret",
                source,
            })
        }
        Err(source) => Err(BootstrapError::Kube {
            what: "create a bootstrap Secret",
            source,
        }),
    }
}

fn data(s: &Secret, key: &str) -> Option<Vec<u8>> {
    s.data.as_ref()?.get(key).map(|b| b.0.clone())
}

/// The root key: in an HSM when `AGILITY_KMS_PKCS11_MODULE` is set, else 32 bytes from the OS
/// CSPRNG in a Secret created at first start.
pub async fn root_key(client: &kube::Client, namespace: &str) -> Result<RootKey, BootstrapError> {
    if let Some(hsm) = crate::pkcs11::HsmConfig::from_env() {
        let key = crate::pkcs11::HsmKey::connect(&hsm).map_err(BootstrapError::Invalid)?;
        return Ok(RootKey::hsm(key));
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(bytes.as_mut());
    let fresh = Secret {
        metadata: meta(ROOT_SECRET, namespace),
        type_: Some("Opaque".into()),
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            ROOT_KEY.to_owned(),
            ByteString(bytes.to_vec()),
        )])),
        ..Default::default()
    };
    let stored = create_or_read(&api, fresh).await?;
    let raw = zeroize::Zeroizing::new(data(&stored, ROOT_KEY).unwrap_or_default());
    RootKey::from_bytes(&raw).ok_or_else(|| {
        BootstrapError::Invalid(format!(
            "{namespace}/{ROOT_SECRET}: {ROOT_KEY} is not 32 bytes"
        ))
    })
}

/// The API's certificate and key (PEM) and the CA clients trust.
pub struct ApiTls {
    /// `tls.crt` (leaf then CA).
    pub cert_chain: String,
    /// `tls.key`.
    pub key: String,
    /// `ca.crt`.
    pub ca: String,
}

/// The names the API certificate carries.
pub fn api_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_owned(),
        "localhost".into(),
        "127.0.0.1".into(),
    ]
}

/// A CA and a 10-year server certificate for the API (renewal is a follow-up).
pub fn issue_api_tls(service: &str, namespace: &str) -> Result<ApiTls, BootstrapError> {
    let now = time::OffsetDateTime::now_utc();
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "agility");
    dn.push(DnType::CommonName, format!("agility KMS {namespace} CA"));
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::minutes(5);
    ca.not_after = now + time::Duration::days(3650);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(api_names(service, namespace))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{service}.{namespace}.svc"));
    leaf.distinguished_name = dn;
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = now - time::Duration::minutes(5);
    leaf.not_after = now + time::Duration::days(3650);
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok(ApiTls {
        cert_chain: format!("{}{}", cert.pem(), ca_cert.pem()),
        key: key.serialize_pem(),
        ca: ca_cert.pem(),
    })
}

/// The API certificate, issued at first start; the CA is also published in a ConfigMap.
pub async fn api_tls(
    client: &kube::Client,
    namespace: &str,
    service: &str,
) -> Result<ApiTls, BootstrapError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let existing = api
        .get_opt(TLS_SECRET)
        .await
        .map_err(|source| BootstrapError::Kube {
            what: "read the API certificate",
            source,
        })?;
    let stored = match existing {
        Some(s) => s,
        None => {
            let t = issue_api_tls(service, namespace)?;
            let fresh = Secret {
                metadata: meta(TLS_SECRET, namespace),
                type_: Some("kubernetes.io/tls".into()),
                data: Some(BTreeMap::from([
                    ("tls.crt".to_owned(), ByteString(t.cert_chain.into_bytes())),
                    ("tls.key".to_owned(), ByteString(t.key.into_bytes())),
                    ("ca.crt".to_owned(), ByteString(t.ca.into_bytes())),
                ])),
                ..Default::default()
            };
            create_or_read(&api, fresh).await?
        }
    };
    let text = |k: &str| {
        data(&stored, k)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| BootstrapError::Invalid(format!("{namespace}/{TLS_SECRET}: no {k}")))
    };
    let tls = ApiTls {
        cert_chain: text("tls.crt")?,
        key: text("tls.key")?,
        ca: text("ca.crt")?,
    };
    let cm = ConfigMap {
        metadata: meta(CA_CONFIG_MAP, namespace),
        data: Some(BTreeMap::from([("ca.crt".to_owned(), tls.ca.clone())])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .patch(
            CA_CONFIG_MAP,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&cm),
        )
        .await
        .map_err(|source| BootstrapError::Kube {
            what: "publish the CA ConfigMap",
            source,
        })?;
    Ok(tls)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn api_certificate_chains_to_its_ca_and_names_the_service() {
        let t = issue_api_tls("agility-kms", "agility-system").unwrap();
        assert!(t.cert_chain.matches("BEGIN CERTIFICATE").count() == 2);
        assert!(t.cert_chain.ends_with(&t.ca));
        let names = api_names("agility-kms", "agility-system");
        assert!(names.contains(&"agility-kms.agility-system.svc".to_owned()));
    }
}
