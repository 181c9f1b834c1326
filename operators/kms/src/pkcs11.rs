//! The root key in an HSM over PKCS#11 (the `cryptoki` crate): an AES-256 key found by label in
//! a token, used in place for AES-GCM; its value never leaves the HSM. One logged-in session,
//! used under a lock (PKCS#11 sessions are not shared between threads).

use std::path::Path;
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

/// Where the HSM key is.
#[derive(Clone, Debug)]
pub struct HsmConfig {
    /// The PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: String,
    /// The token label.
    pub token: String,
    /// The user PIN.
    pub pin: String,
    /// The AES key's label (`CKA_LABEL`).
    pub key_label: String,
}

impl HsmConfig {
    /// From `AGILITY_KMS_PKCS11_MODULE`, `_TOKEN`, `_PIN` and `_KEY_LABEL`; None when no module is
    /// set (the root key then comes from the install-time Secret).
    pub fn from_env() -> Option<Self> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Some(HsmConfig {
            module: get("AGILITY_KMS_PKCS11_MODULE")?,
            token: get("AGILITY_KMS_PKCS11_TOKEN").unwrap_or_else(|| "agility-kms".into()),
            pin: get("AGILITY_KMS_PKCS11_PIN").unwrap_or_default(),
            key_label: get("AGILITY_KMS_PKCS11_KEY_LABEL")
                .unwrap_or_else(|| "agility-kms-root".into()),
        })
    }
}

/// The HSM's root key.
pub struct HsmKey {
    // Fields drop in order: the session closes before the module is finalised.
    session: Mutex<Session>,
    key: ObjectHandle,
    _pkcs11: Pkcs11,
}

fn err(what: &str) -> impl Fn(cryptoki::error::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Loads the module, finds the token by label and logs in as its user.
fn login(config: &HsmConfig, read_write: bool) -> Result<(Pkcs11, Session), String> {
    let pkcs11 =
        Pkcs11::new(Path::new(&config.module)).map_err(err("loading the PKCS#11 module"))?;
    pkcs11
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(err("C_Initialize"))?;
    let slot = pkcs11
        .get_slots_with_token()
        .map_err(err("listing slots"))?
        .into_iter()
        .find(|s| {
            pkcs11
                .get_token_info(*s)
                .is_ok_and(|t| t.label() == config.token)
        })
        .ok_or_else(|| format!("no token labelled {:?}", config.token))?;
    let session = if read_write {
        pkcs11.open_rw_session(slot)
    } else {
        pkcs11.open_ro_session(slot)
    }
    .map_err(err("opening a session"))?;
    session
        .login(
            UserType::User,
            Some(&AuthPin::new(config.pin.clone().into())),
        )
        .map_err(err("login"))?;
    Ok((pkcs11, session))
}

impl HsmKey {
    /// Opens the token, logs in and finds the key.
    pub fn connect(config: &HsmConfig) -> Result<Self, String> {
        let (pkcs11, session) = login(config, false)?;
        let key = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Label(config.key_label.as_bytes().to_vec()),
            ])
            .map_err(err("finding the key"))?
            .into_iter()
            .next()
            .ok_or_else(|| {
                format!(
                    "no AES key labelled {:?} in token {:?}",
                    config.key_label, config.token
                )
            })?;
        // The point of an HSM: refuse a key whose value could be read out.
        let attrs = session
            .get_attributes(key, &[AttributeType::Extractable, AttributeType::Sensitive])
            .map_err(err("reading key attributes"))?;
        let extractable = attrs
            .iter()
            .any(|a| matches!(a, Attribute::Extractable(true)));
        let sensitive = attrs
            .iter()
            .any(|a| matches!(a, Attribute::Sensitive(true)));
        if extractable || !sensitive {
            return Err(format!(
                "key {:?} must be sensitive and not extractable",
                config.key_label
            ));
        }
        Ok(HsmKey {
            _pkcs11: pkcs11,
            session: Mutex::new(session),
            key,
        })
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// AES-256-GCM encryption in the HSM.
    pub fn seal(&self, nonce: &mut [u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let params = GcmParams::new(nonce, aad, 128.into()).map_err(err("GCM parameters"))?;
        self.session()
            .encrypt(&Mechanism::AesGcm(params), self.key, plaintext)
            .map_err(err("C_Encrypt"))
    }

    /// AES-256-GCM decryption in the HSM.
    pub fn open(&self, nonce: &mut [u8], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, String> {
        let params = GcmParams::new(nonce, aad, 128.into()).map_err(err("GCM parameters"))?;
        self.session()
            .decrypt(&Mechanism::AesGcm(params), self.key, sealed)
            .map_err(err("C_Decrypt"))
    }
}

/// Creates a SoftHSM2 token (in SoftHSM's configured token directory) holding a fresh root key,
/// for tests and for trying the HSM path without hardware: `softhsm2-util` initialises the
/// token, the key is generated inside it, sensitive and not extractable.
pub fn softhsm_fixture(config: &HsmConfig) -> Result<(), String> {
    let status = std::process::Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            &config.token,
            "--so-pin",
            "so-pin-1234",
            "--pin",
            &config.pin,
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("softhsm2-util: {e} (apt-get install softhsm2)"))?;
    if !status.success() {
        return Err("softhsm2-util --init-token failed".into());
    }
    let (_pkcs11, session) = login(config, true)?;
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Label(config.key_label.as_bytes().to_vec()),
                Attribute::ValueLen(32.into()),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        )
        .map_err(err("generating the root key"))?;
    Ok(())
}

/// Removes a token made by [`softhsm_fixture`].
pub fn softhsm_delete_token(label: &str) {
    let _ = std::process::Command::new("softhsm2-util")
        .args(["--delete-token", "--token", label])
        .stdout(std::process::Stdio::null())
        .status();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cipher::Material;
    use crate::root::RootKey;
    use uuid::Uuid;

    /// SoftHSM2 from Debian (`hack/install-tools.sh` installs it).
    const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

    #[test]
    fn a_softhsm_root_key_wraps_inside_the_token() {
        let config = HsmConfig {
            module: MODULE.into(),
            token: format!("agility-test-{}", std::process::id()),
            pin: "user-pin-5678".into(),
            key_label: "agility-kms-root".into(),
        };
        softhsm_fixture(&config).unwrap();
        let result = std::panic::catch_unwind(|| {
            let root = RootKey::hsm(HsmKey::connect(&config).unwrap());
            let m = Material::generate();
            let id = Uuid::new_v4();
            let w = root.wrap(id, 1, &m).unwrap();
            assert_eq!(w[0], 2, "the HSM format");
            assert_ne!(&w[13..45], m.expose(), "never stored in the clear");
            assert_eq!(root.unwrap(id, 1, &w).unwrap().expose(), m.expose());
            assert!(root.unwrap(id, 2, &w).is_err(), "bound to the version");
            assert!(
                root.unwrap(Uuid::new_v4(), 1, &w).is_err(),
                "bound to the key"
            );
            let memory = RootKey::from_bytes(&[1; 32]).unwrap();
            assert!(memory.unwrap(id, 1, &w).is_err(), "only the HSM opens it");
            let wrong_pin = HsmConfig {
                pin: "nope".into(),
                ..config.clone()
            };
            drop(root);
            assert!(HsmKey::connect(&wrong_pin).is_err());
        });
        softhsm_delete_token(&config.token);
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    }
}
