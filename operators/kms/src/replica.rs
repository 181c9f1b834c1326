//! What every replica serves from: the keyring built from the `Cmk` objects and the stored
//! records (pure: [`build_keyring`]), and the access keys from their Secrets (pure:
//! [`access_key`]). [`watch`] rebuilds both whenever a watch reports a change, so enabling,
//! disabling or rotating a key reaches every replica within a watch event.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::authz::{Grant, Operation};
use crate::crd::{Cmk, KeyState};
use crate::keyring::{KeyRecord, Keyring, key_arn};
use crate::lifecycle;
use crate::root::RootKey;
use crate::service::{AccessKey, Service};
use crate::store::{self, StoredKey};

/// Label of access key Secrets in the KMS namespace.
pub const ACCESS_KEY_LABEL: &str = "kms.agility.dev/access-key";

fn seconds(t: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.timestamp())
}

/// Unwrapped material kept between rebuilds, so a rebuild unwraps only versions it has not seen
/// (with an HSM root key every unwrap is a round trip to the HSM).
#[derive(Default)]
pub struct MaterialCache {
    entries: HashMap<(uuid::Uuid, u32), (Vec<u8>, crate::cipher::Material)>,
}

/// The keyring: every stored key, its state from its `Cmk` (or PendingDeletion when the object
/// is gone), its material unwrapped (or reused from `cache`). A key whose material does not
/// unwrap is left out, loudly.
pub fn build_keyring(
    cmks: &[Arc<Cmk>],
    stored: &[StoredKey],
    root: &RootKey,
    cache: &mut MaterialCache,
    now: DateTime<Utc>,
) -> Keyring {
    let live: HashMap<&str, &Arc<Cmk>> = cmks
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| Some((c.status.as_ref()?.key_id.as_deref()?, c)))
        .collect();
    let mut kept = HashMap::new();
    let mut records = Vec::new();
    for key in stored {
        let id = &key.identity;
        let cmk = live
            .get(id.key_id.to_string().as_str())
            .copied()
            .filter(|c| lifecycle::belongs(c, id));
        let mut versions = BTreeMap::new();
        let mut broken = false;
        for (v, wrapped) in &key.wrapped {
            let cached = cache
                .entries
                .remove(&(id.key_id, *v))
                .filter(|(w, _)| w == wrapped)
                .map(|(_, m)| m);
            match cached.map_or_else(|| root.unwrap(id.key_id, *v, wrapped), Ok) {
                Ok(m) => {
                    kept.insert((id.key_id, *v), (wrapped.clone(), m.clone()));
                    versions.insert(*v, m);
                }
                Err(e) => {
                    warn!(key = %id.key_id, version = v, error = %e, "key material does not unwrap; key not served");
                    broken = true;
                }
            }
        }
        if broken {
            continue;
        }
        let (state, deletion) = match cmk {
            Some(c) if c.spec.enabled && id.deletion_date.is_none() => (KeyState::Enabled, None),
            Some(_) if id.deletion_date.is_none() => (KeyState::Disabled, None),
            _ => {
                let date = match &id.deletion_date {
                    Some(d) => seconds(d),
                    None => Some(now.timestamp() + i64::from(id.window_days) * 86_400),
                };
                (KeyState::PendingDeletion, date)
            }
        };
        records.push(KeyRecord {
            key_id: id.key_id,
            namespace: id.namespace.clone(),
            name: id.name.clone(),
            arn: key_arn(&id.namespace, id.key_id),
            state,
            description: cmk.map(|c| c.spec.description.clone()).unwrap_or_default(),
            created: seconds(&id.created).unwrap_or(0),
            deletion,
            aliases: cmk
                .map(|c| c.spec.aliases.iter().map(|a| a.0.clone()).collect())
                .unwrap_or_default(),
            rotation_enabled: cmk
                .and_then(|c| c.spec.rotation.as_ref())
                .is_some_and(|r| r.enabled),
            rotation_period_days: cmk
                .and_then(|c| c.spec.rotation.as_ref())
                .map(|r| r.period_days),
            current_version: key.current_version(),
            versions,
            creator: id.creator.clone(),
        });
    }
    // Versions no longer stored are forgotten (their material is wiped on drop).
    cache.entries = kept;
    Keyring::new(records)
}

fn text(s: &Secret, key: &str) -> Option<String> {
    let v = s.data.as_ref()?.get(key)?;
    String::from_utf8(v.0.clone())
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

fn list(v: Option<String>) -> Option<BTreeSet<String>> {
    v.map(|v| {
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// An access key from its Secret: `accessKeyId`, `secretAccessKey`, `namespaces` (comma
/// separated), optional `keys` (ids or aliases) and `operations` (names, or `all`).
pub fn access_key(s: &Secret) -> Result<(String, AccessKey), String> {
    let name = s.metadata.name.clone().unwrap_or_default();
    let need = |k: &str| text(s, k).ok_or_else(|| format!("access key Secret {name}: no {k}"));
    let id = need("accessKeyId")?;
    let secret = need("secretAccessKey")?;
    if secret.len() < 20 {
        return Err(format!(
            "access key Secret {name}: secretAccessKey shorter than 20 characters"
        ));
    }
    let namespaces = list(Some(need("namespaces")?)).unwrap_or_default();
    let operations = match text(s, "operations").as_deref() {
        None => None,
        Some("all") => Some(Operation::ALL.into_iter().collect()),
        Some(names) => {
            let mut ops = BTreeSet::new();
            for n in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let op = Operation::ALL
                    .into_iter()
                    .find(|o| o.name() == n)
                    .ok_or_else(|| format!("access key Secret {name}: unknown operation {n}"))?;
                ops.insert(op);
            }
            Some(ops)
        }
    };
    Ok((
        id,
        AccessKey {
            secret: Zeroizing::new(secret),
            grant: Grant {
                principal: name,
                namespaces,
                keys: list(text(s, "keys")),
                operations,
            },
        },
    ))
}

/// A stream consumer that only signals "something changed".
fn forward<T>(
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> impl FnMut(T) -> futures::future::Ready<()> {
    move |_| {
        let _ = tx.send(());
        futures::future::ready(())
    }
}

/// Keeps `service` current until `stop`: watches `Cmk` objects everywhere and the KMS
/// namespace's material and access key Secrets; rebuilds on every change (debounced).
pub async fn watch(
    client: kube::Client,
    namespace: String,
    root: Arc<RootKey>,
    service: Arc<Service>,
    ready: tokio::sync::watch::Sender<bool>,
    stop: CancellationToken,
) {
    let (cmks, cmk_writer) = reflector::store::<Cmk>();
    let (materials, material_writer) = reflector::store::<Secret>();
    let (keys, key_writer) = reflector::store::<Secret>();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let cmk_stream = reflector::reflector(
        cmk_writer,
        watcher(Api::<Cmk>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .for_each(forward(tx.clone()));
    let material_stream = reflector::reflector(
        material_writer,
        watcher(
            secrets.clone(),
            watcher::Config::default().labels(&format!(
                "{}={}",
                store::COMPONENT_LABEL,
                store::COMPONENT_MATERIAL
            )),
        ),
    )
    .default_backoff()
    .for_each(forward(tx.clone()));
    let key_stream = reflector::reflector(
        key_writer,
        watcher(
            secrets,
            watcher::Config::default().labels(&format!("{ACCESS_KEY_LABEL}=true")),
        ),
    )
    .default_backoff()
    .for_each(forward(tx));
    let watch_stop = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = futures::future::join3(cmk_stream, material_stream, key_stream) => {}
            () = watch_stop.cancelled() => {}
        }
    });
    let synced = async {
        let _ = tokio::join!(
            cmks.wait_until_ready(),
            materials.wait_until_ready(),
            keys.wait_until_ready()
        );
    };
    tokio::select! {
        () = synced => {}
        () = stop.cancelled() => return,
    }
    let mut cache = MaterialCache::default();
    loop {
        rebuild(&cmks, &materials, &keys, &root, &mut cache, &service);
        let _ = ready.send(true);
        tokio::select! {
            () = stop.cancelled() => return,
            got = rx.recv() => if got.is_none() { return },
        }
        // Coalesce a burst of events into one rebuild.
        tokio::time::sleep(Duration::from_millis(50)).await;
        while rx.try_recv().is_ok() {}
    }
}

fn rebuild(
    cmks: &Store<Cmk>,
    materials: &Store<Secret>,
    keys: &Store<Secret>,
    root: &RootKey,
    cache: &mut MaterialCache,
    service: &Service,
) {
    let stored: Vec<StoredKey> = materials
        .state()
        .iter()
        .filter_map(|s| StoredKey::from_secret(s))
        .collect();
    let ring = build_keyring(&cmks.state(), &stored, root, cache, Utc::now());
    let mut access = HashMap::new();
    for s in keys.state() {
        match access_key(&s) {
            Ok((id, k)) => {
                access.insert(id, k);
            }
            Err(e) => warn!("{e}"),
        }
    }
    info!(
        keys = ring.keys().len(),
        access_keys = access.len(),
        "keyring rebuilt"
    );
    service.set_keyring(ring);
    service.set_access_keys(access);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cipher::Material;
    use crate::crd::CmkStatus;
    use crate::store::KeyIdentity;
    use k8s_openapi::ByteString;
    use uuid::Uuid;

    fn root() -> RootKey {
        RootKey::from_bytes(&[3; 32]).unwrap()
    }

    fn stored(id: Uuid, deletion: Option<&str>) -> StoredKey {
        StoredKey {
            identity: KeyIdentity {
                key_id: id,
                namespace: "shop".into(),
                name: "orders".into(),
                created: "2026-12-01T00:00:00Z".into(),
                creator: "kubectl".into(),
                versions: vec![crate::crd::KeyVersion {
                    version: 1,
                    created: "2026-12-01T00:00:00Z".into(),
                }],
                window_days: 7,
                deletion_date: deletion.map(str::to_owned),
                rotate_token: None,
                spec: None,
            },
            wrapped: [(1, root().wrap(id, 1, &Material::generate()).unwrap())].into(),
        }
    }

    fn cmk(id: Uuid, enabled: bool) -> Arc<Cmk> {
        let mut c = Cmk::new(
            "orders",
            serde_yaml::from_str("aliases: [alias/orders]").unwrap(),
        );
        c.metadata.namespace = Some("shop".into());
        c.spec.enabled = enabled;
        c.status = Some(CmkStatus {
            key_id: Some(id.to_string()),
            ..Default::default()
        });
        Arc::new(c)
    }

    #[test]
    fn state_follows_the_cmk_and_a_missing_cmk_means_pending_deletion() {
        let id = Uuid::new_v4();
        let now = Utc::now();
        let ring = build_keyring(
            &[cmk(id, true)],
            &[stored(id, None)],
            &root(),
            &mut MaterialCache::default(),
            now,
        );
        let k = ring.get(id).unwrap();
        assert_eq!(k.state, KeyState::Enabled);
        assert_eq!(k.aliases, vec!["alias/orders".to_owned()]);
        let ring = build_keyring(
            &[cmk(id, false)],
            &[stored(id, None)],
            &root(),
            &mut MaterialCache::default(),
            now,
        );
        assert_eq!(ring.get(id).unwrap().state, KeyState::Disabled);
        let ring = build_keyring(
            &[],
            &[stored(id, Some("2026-12-08T00:00:00Z"))],
            &root(),
            &mut MaterialCache::default(),
            now,
        );
        let k = ring.get(id).unwrap();
        assert_eq!(k.state, KeyState::PendingDeletion);
        assert_eq!(k.deletion, seconds("2026-12-08T00:00:00Z"));
    }

    #[test]
    fn a_rebuild_reuses_material_it_already_unwrapped() {
        let id = Uuid::new_v4();
        let key = stored(id, None);
        let mut cache = MaterialCache::default();
        let first = build_keyring(
            &[cmk(id, true)],
            std::slice::from_ref(&key),
            &root(),
            &mut cache,
            Utc::now(),
        );
        assert!(first.get(id).is_some());
        // A root key that could not unwrap it: the cached material is used, no unwrap happens.
        let other = RootKey::from_bytes(&[4; 32]).unwrap();
        let again = build_keyring(
            &[cmk(id, true)],
            std::slice::from_ref(&key),
            &other,
            &mut cache,
            Utc::now(),
        );
        assert!(again.get(id).is_some(), "served from the cache");
        // Once the record is gone, so is its material.
        let empty = build_keyring(&[], &[], &other, &mut cache, Utc::now());
        assert!(empty.get(id).is_none());
        let after = build_keyring(&[cmk(id, true)], &[key], &other, &mut cache, Utc::now());
        assert!(
            after.get(id).is_none(),
            "forgotten, and the other root key cannot unwrap it"
        );
    }

    #[test]
    fn material_under_another_root_key_is_not_served() {
        let id = Uuid::new_v4();
        let other = RootKey::from_bytes(&[4; 32]).unwrap();
        let ring = build_keyring(
            &[cmk(id, true)],
            &[stored(id, None)],
            &other,
            &mut MaterialCache::default(),
            Utc::now(),
        );
        assert!(ring.get(id).is_none());
    }

    #[test]
    fn access_keys_parse_with_their_grants() {
        let secret = |pairs: &[(&str, &str)]| Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("orders-app".into()),
                ..Default::default()
            },
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        let (id, k) = access_key(&secret(&[
            ("accessKeyId", "AKIAORDERS"),
            ("secretAccessKey", "0123456789abcdefghijXYZ"),
            ("namespaces", "shop, billing"),
            ("operations", "Encrypt,Decrypt"),
        ]))
        .unwrap();
        assert_eq!(id, "AKIAORDERS");
        assert_eq!(k.grant.namespaces.len(), 2);
        assert_eq!(k.grant.operations.unwrap().len(), 2);
        assert!(access_key(&secret(&[("accessKeyId", "A")])).is_err());
        let bad = access_key(&secret(&[
            ("accessKeyId", "A"),
            ("secretAccessKey", "0123456789abcdefghijXYZ"),
            ("namespaces", "shop"),
            ("operations", "Encrypt,Launch"),
        ]));
        assert!(bad.unwrap_err().contains("unknown operation Launch"));
    }
}
