//! The keys a KMS replica serves: metadata from the `Cmk` objects and unwrapped material per key
//! version, with the state rules of every cryptographic operation. Synchronous and without I/O,
//! so every rule is unit-tested; the server swaps in a new [`Keyring`] when a watch reports a
//! change, which is how enable/disable/rotation reach every replica within seconds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rand::Rng;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::blob::Blob;
use crate::cipher::{self, MAX_PLAINTEXT, Material};
use crate::crd::KeyState;
use crate::error::KmsError;

/// One key as the data plane sees it.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    /// The key id.
    pub key_id: Uuid,
    /// The namespace of its `Cmk` (the "department").
    pub namespace: String,
    /// The `Cmk` name.
    pub name: String,
    /// Its resource name (ARN form).
    pub arn: String,
    /// `Enabled`, `Disabled` or `PendingDeletion`.
    pub state: KeyState,
    /// Description.
    pub description: String,
    /// Creation time (seconds since the epoch).
    pub created: i64,
    /// When the material is destroyed (PendingDeletion only).
    pub deletion: Option<i64>,
    /// Aliases (`alias/...`).
    pub aliases: Vec<String>,
    /// Whether automatic rotation is on.
    pub rotation_enabled: bool,
    /// The rotation period in days.
    pub rotation_period_days: Option<u32>,
    /// The version new ciphertexts use.
    pub current_version: u32,
    /// Material per version; old versions stay to decrypt old data.
    pub versions: BTreeMap<u32, Material>,
    /// Who created it.
    pub creator: String,
}

/// The resource name of a key.
pub fn key_arn(namespace: &str, key_id: Uuid) -> String {
    format!("arn:agility:kms:local:{namespace}:key/{key_id}")
}

/// The resource name of an alias.
pub fn alias_arn(namespace: &str, alias: &str) -> String {
    format!("arn:agility:kms:local:{namespace}:{alias}")
}

/// Every key of the cluster, indexed by id and by (namespace, alias).
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    by_id: HashMap<Uuid, Arc<KeyRecord>>,
    aliases: HashMap<(String, String), Uuid>,
}

fn check_usable(k: &KeyRecord) -> Result<(), KmsError> {
    match k.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(KmsError::Disabled(format!("{} is disabled.", k.arn))),
        KeyState::PendingDeletion => Err(KmsError::InvalidState(format!(
            "{} is pending deletion.",
            k.arn
        ))),
    }
}

/// What Decrypt found: the key, the version and the plaintext (wiped on drop).
pub struct Decrypted {
    /// The key that encrypted it.
    pub key: Arc<KeyRecord>,
    /// Its version.
    pub version: u32,
    /// The plaintext.
    pub plaintext: Zeroizing<Vec<u8>>,
}

/// A data key: plaintext (wiped on drop) and its ciphertext blob.
pub struct DataKey {
    /// The plaintext key.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The encrypted key.
    pub ciphertext: Vec<u8>,
}

impl Keyring {
    /// A keyring from records.
    pub fn new(records: impl IntoIterator<Item = KeyRecord>) -> Self {
        let mut ring = Keyring::default();
        for r in records {
            for a in &r.aliases {
                ring.aliases
                    .insert((r.namespace.clone(), a.clone()), r.key_id);
            }
            ring.by_id.insert(r.key_id, Arc::new(r));
        }
        ring
    }

    /// Every key, by id order.
    pub fn keys(&self) -> Vec<Arc<KeyRecord>> {
        let mut v: Vec<_> = self.by_id.values().cloned().collect();
        v.sort_by_key(|k| k.key_id);
        v
    }

    /// A key by id.
    pub fn get(&self, id: Uuid) -> Option<Arc<KeyRecord>> {
        self.by_id.get(&id).cloned()
    }

    /// Resolves a KeyId parameter: a key id, a key ARN, an alias name (`alias/x`, in the
    /// caller's namespace) or an alias ARN.
    pub fn resolve(
        &self,
        key_ref: &str,
        caller_namespace: Option<&str>,
    ) -> Result<Arc<KeyRecord>, KmsError> {
        let not_found = || KmsError::NotFound(format!("Key '{key_ref}' does not exist"));
        if let Ok(id) = Uuid::parse_str(key_ref) {
            return self.get(id).ok_or_else(not_found);
        }
        if let Some(rest) = key_ref.strip_prefix("arn:agility:kms:local:") {
            let (ns, tail) = rest.split_once(':').ok_or_else(not_found)?;
            if let Some(id) = tail.strip_prefix("key/") {
                let id = Uuid::parse_str(id).map_err(|_| not_found())?;
                return self
                    .get(id)
                    .filter(|k| k.namespace == ns)
                    .ok_or_else(not_found);
            }
            return self.alias(ns, tail).ok_or_else(not_found);
        }
        if key_ref.starts_with("alias/") {
            let ns = caller_namespace.ok_or_else(not_found)?;
            return self.alias(ns, key_ref).ok_or_else(not_found);
        }
        Err(not_found())
    }

    fn alias(&self, namespace: &str, alias: &str) -> Option<Arc<KeyRecord>> {
        let id = self
            .aliases
            .get(&(namespace.to_owned(), alias.to_owned()))?;
        self.get(*id)
    }

    /// Encrypt: at most 4 KiB, enabled keys only, under the current version.
    pub fn encrypt(
        &self,
        key: &KeyRecord,
        plaintext: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<Vec<u8>, KmsError> {
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            return Err(KmsError::Validation(format!(
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and {MAX_PLAINTEXT}"
            )));
        }
        check_usable(key)?;
        let material = key.versions.get(&key.current_version).ok_or_else(|| {
            KmsError::Internal(format!(
                "{}: material of version {} not loaded",
                key.arn, key.current_version
            ))
        })?;
        Ok(cipher::seal(
            material,
            key.key_id,
            key.current_version,
            plaintext,
            context,
        ))
    }

    /// Decrypt: finds the key and version from the blob; `expected` (the request's KeyId) must
    /// match when given.
    pub fn decrypt(
        &self,
        ciphertext: &[u8],
        context: &BTreeMap<String, String>,
        expected: Option<&KeyRecord>,
    ) -> Result<Decrypted, KmsError> {
        let blob = Blob::parse(ciphertext).map_err(|_| KmsError::InvalidCiphertext)?;
        let key = self.get(blob.key_id).ok_or(KmsError::InvalidCiphertext)?;
        if let Some(e) = expected
            && e.key_id != key.key_id
        {
            return Err(KmsError::IncorrectKey(
                "The key ID in the request does not identify a CMK that can perform this operation."
                    .into(),
            ));
        }
        check_usable(&key)?;
        let material = key
            .versions
            .get(&blob.version)
            .ok_or(KmsError::InvalidCiphertext)?;
        let plaintext =
            cipher::open(material, &blob, context).map_err(|_| KmsError::InvalidCiphertext)?;
        Ok(Decrypted {
            key: key.clone(),
            version: blob.version,
            plaintext,
        })
    }

    /// GenerateDataKey: `bytes` random bytes, returned with their ciphertext.
    pub fn generate_data_key(
        &self,
        key: &KeyRecord,
        bytes: usize,
        context: &BTreeMap<String, String>,
    ) -> Result<DataKey, KmsError> {
        if !(1..=1024).contains(&bytes) {
            return Err(KmsError::Validation(
                "NumberOfBytes must be between 1 and 1024".into(),
            ));
        }
        check_usable(key)?;
        let mut plaintext = Zeroizing::new(vec![0u8; bytes]);
        rand::rng().fill_bytes(plaintext.as_mut_slice());
        let ciphertext = self.encrypt(key, &plaintext, context)?;
        Ok(DataKey {
            plaintext,
            ciphertext,
        })
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// An enabled key with one version.
    pub fn record(namespace: &str, alias: &str) -> KeyRecord {
        let mut k = crate::testing::key(
            namespace,
            "orders",
            alias,
            Uuid::new_v4(),
            Material::generate(),
            KeyState::Enabled,
        );
        k.description = "orders data".into();
        k.creator = "system:serviceaccount:shop:deployer".into();
        k
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::fixtures::record;
    use super::*;

    fn ctx(v: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("purpose".to_owned(), v.to_owned())])
    }

    #[test]
    fn resolves_ids_arns_and_aliases_within_the_namespace() {
        let k = record("shop", "alias/orders");
        let id = k.key_id;
        let ring = Keyring::new([k, record("other", "alias/orders")]);
        assert_eq!(ring.resolve(&id.to_string(), None).unwrap().key_id, id);
        assert_eq!(ring.resolve(&key_arn("shop", id), None).unwrap().key_id, id);
        assert!(
            ring.resolve(&key_arn("other", id), None).is_err(),
            "ARN names the namespace"
        );
        assert_eq!(
            ring.resolve("alias/orders", Some("shop")).unwrap().key_id,
            id
        );
        assert_ne!(
            ring.resolve("alias/orders", Some("other")).unwrap().key_id,
            id
        );
        assert_eq!(
            ring.resolve(&alias_arn("shop", "alias/orders"), None)
                .unwrap()
                .key_id,
            id
        );
        assert_eq!(
            ring.resolve("alias/none", Some("shop")).unwrap_err().code(),
            "NotFoundException"
        );
    }

    #[test]
    fn encrypt_decrypt_with_context_and_the_4_kib_limit() {
        let k = record("shop", "alias/a");
        let ring = Keyring::new([k.clone()]);
        let blob = ring.encrypt(&k, b"card 4111", &ctx("pay")).unwrap();
        let d = ring.decrypt(&blob, &ctx("pay"), None).unwrap();
        assert_eq!((d.key.key_id, d.version), (k.key_id, 1));
        assert_eq!(d.plaintext.as_slice(), b"card 4111");
        assert_eq!(
            ring.decrypt(&blob, &ctx("other"), None).err(),
            Some(KmsError::InvalidCiphertext)
        );
        assert!(ring.encrypt(&k, &[0; 4096], &BTreeMap::new()).is_ok());
        assert_eq!(
            ring.encrypt(&k, &[0; 4097], &BTreeMap::new())
                .unwrap_err()
                .code(),
            "ValidationException"
        );
    }

    #[test]
    fn disabled_and_pending_deletion_keys_refuse_both_ways() {
        let k = record("shop", "alias/a");
        let blob = Keyring::new([k.clone()])
            .encrypt(&k, b"x", &BTreeMap::new())
            .unwrap();
        for (state, code) in [
            (KeyState::Disabled, "DisabledException"),
            (KeyState::PendingDeletion, "KMSInvalidStateException"),
        ] {
            let mut off = k.clone();
            off.state = state;
            let ring = Keyring::new([off.clone()]);
            assert_eq!(
                ring.encrypt(&off, b"x", &BTreeMap::new())
                    .unwrap_err()
                    .code(),
                code
            );
            assert_eq!(
                ring.decrypt(&blob, &BTreeMap::new(), None)
                    .err()
                    .map(|e| e.code()),
                Some(code)
            );
            assert_eq!(
                ring.generate_data_key(&off, 32, &BTreeMap::new())
                    .err()
                    .map(|e| e.code()),
                Some(code)
            );
        }
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_decryptable() {
        let mut k = record("shop", "alias/a");
        let old = Keyring::new([k.clone()])
            .encrypt(&k, b"v1 data", &BTreeMap::new())
            .unwrap();
        k.versions.insert(2, Material::generate());
        k.current_version = 2;
        let ring = Keyring::new([k.clone()]);
        let new = ring.encrypt(&k, b"v2 data", &BTreeMap::new()).unwrap();
        assert_eq!(Blob::parse(&new).unwrap().version, 2);
        let d = ring.decrypt(&old, &BTreeMap::new(), None).unwrap();
        assert_eq!(
            (d.version, d.plaintext.as_slice()),
            (1, b"v1 data".as_slice())
        );
        assert_eq!(
            ring.decrypt(&new, &BTreeMap::new(), None).unwrap().version,
            2
        );
    }

    #[test]
    fn data_keys_decrypt_back_and_a_named_key_must_match() {
        let k = record("shop", "alias/a");
        let other = record("shop", "alias/b");
        let ring = Keyring::new([k.clone(), other.clone()]);
        let dk = ring.generate_data_key(&k, 32, &ctx("file")).unwrap();
        assert_eq!(dk.plaintext.len(), 32);
        let d = ring
            .decrypt(&dk.ciphertext, &ctx("file"), Some(&k))
            .unwrap();
        assert_eq!(d.plaintext.as_slice(), dk.plaintext.as_slice());
        assert_eq!(
            ring.decrypt(&dk.ciphertext, &ctx("file"), Some(&other))
                .err()
                .map(|e| e.code()),
            Some("IncorrectKeyException")
        );
        assert!(ring.generate_data_key(&k, 0, &BTreeMap::new()).is_err());
        assert!(ring.generate_data_key(&k, 1025, &BTreeMap::new()).is_err());
    }
}
