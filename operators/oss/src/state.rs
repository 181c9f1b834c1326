//! What the three controllers share: caches of every ObjectStore and Bucket (for default-store
//! resolution, the per-namespace limit, name ownership and the gateway rules) and the node ids
//! learned from Garage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::crd::{Bucket, BucketSpec, ObjectStore};
use crate::store::build::Settings;

/// Shared controller state.
pub struct State {
    /// Images and pull policy.
    pub settings: Settings,
    stores: Store<ObjectStore>,
    buckets: Store<Bucket>,
    node_ids: Mutex<HashMap<String, String>>,
}

impl State {
    /// State over the two caches.
    pub fn new(settings: Settings, stores: Store<ObjectStore>, buckets: Store<Bucket>) -> Self {
        State {
            settings,
            stores,
            buckets,
            node_ids: Mutex::new(HashMap::new()),
        }
    }

    /// The store a Bucket spec names, or the one default store.
    pub fn store_for(
        &self,
        spec: &BucketSpec,
        namespace: &str,
    ) -> Result<Arc<ObjectStore>, String> {
        resolve_store(&self.stores.state(), spec, namespace)
    }

    /// Every Bucket on `store`.
    pub fn buckets_of_store(&self, store: &ObjectStore) -> Vec<Arc<Bucket>> {
        let stores = self.stores.state();
        self.buckets
            .state()
            .into_iter()
            .filter(|b| {
                resolve_store(&stores, &b.spec, &b.namespace().unwrap_or_default())
                    .is_ok_and(|s| s.uid() == store.uid())
            })
            .collect()
    }

    /// Every Bucket of a namespace.
    pub fn buckets_in(&self, namespace: &str) -> Vec<Arc<Bucket>> {
        self.buckets
            .state()
            .into_iter()
            .filter(|b| b.namespace().as_deref() == Some(namespace))
            .collect()
    }

    /// A Bucket by namespace and name.
    pub fn bucket(&self, namespace: &str, name: &str) -> Option<Arc<Bucket>> {
        self.buckets
            .state()
            .into_iter()
            .find(|b| b.namespace().as_deref() == Some(namespace) && b.name_any() == name)
    }

    /// Whether another live Bucket resource already holds Garage bucket `id`.
    pub fn bucket_claimed_by_other(&self, id: &str, me: &Bucket) -> bool {
        self.buckets.state().iter().any(|b| {
            b.uid() != me.uid()
                && b.metadata.deletion_timestamp.is_none()
                && b.status.as_ref().and_then(|s| s.bucket_id.as_deref()) == Some(id)
        })
    }

    /// The Garage node id of a pod (by uid), once learned.
    pub fn node_id(&self, pod_uid: &str) -> Option<String> {
        self.node_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(pod_uid)
            .cloned()
    }

    /// Remembers a pod's node id (it lives on the pod's volume, so it outlives the pod, but a
    /// new pod uid is asked again: cheap, and never wrong after a volume change).
    pub fn remember_node_id(&self, pod_uid: &str, id: &str) {
        self.node_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pod_uid.to_owned(), id.to_owned());
    }
}

/// The store of a Bucket: the named one (namespace defaults to the Bucket's), or the only store
/// with `spec.default: true`.
pub fn resolve_store(
    stores: &[Arc<ObjectStore>],
    spec: &BucketSpec,
    namespace: &str,
) -> Result<Arc<ObjectStore>, String> {
    match &spec.store {
        Some(r) => {
            let ns = r.namespace.as_deref().unwrap_or(namespace);
            stores
                .iter()
                .find(|s| s.name_any() == r.name && s.namespace().as_deref() == Some(ns))
                .cloned()
                .ok_or_else(|| format!("ObjectStore {ns}/{} not found", r.name))
        }
        None => {
            let defaults: Vec<_> = stores.iter().filter(|s| s.spec.default).collect();
            match defaults.as_slice() {
                [one] => Ok(Arc::clone(one)),
                [] => Err("spec.store is not set and no ObjectStore has spec.default: true".into()),
                many => Err(format!(
                    "spec.store is not set and {} ObjectStores say spec.default: true; name one",
                    many.len()
                )),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crd::{ObjectStoreSpec, StoreRef};

    fn store(ns: &str, name: &str, default: bool) -> Arc<ObjectStore> {
        let mut s = ObjectStore::new(
            name,
            ObjectStoreSpec {
                default,
                ..Default::default()
            },
        );
        s.metadata.namespace = Some(ns.into());
        Arc::new(s)
    }

    #[test]
    fn named_store_defaults_to_the_buckets_namespace() {
        let stores = vec![store("a", "s", false), store("b", "s", false)];
        let spec = BucketSpec {
            store: Some(StoreRef {
                name: "s".into(),
                namespace: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            resolve_store(&stores, &spec, "b")
                .unwrap()
                .namespace()
                .as_deref(),
            Some("b")
        );
        let other = BucketSpec {
            store: Some(StoreRef {
                name: "s".into(),
                namespace: Some("a".into()),
            }),
            ..Default::default()
        };
        assert_eq!(
            resolve_store(&stores, &other, "b")
                .unwrap()
                .namespace()
                .as_deref(),
            Some("a")
        );
        assert!(
            resolve_store(&stores, &spec, "c")
                .unwrap_err()
                .contains("c/s not found")
        );
    }

    #[test]
    fn the_default_store_must_be_unique() {
        let spec = BucketSpec::default();
        assert!(resolve_store(&[store("a", "s", false)], &spec, "x").is_err());
        assert_eq!(
            resolve_store(&[store("a", "s", true), store("a", "t", false)], &spec, "x")
                .unwrap()
                .name_any(),
            "s"
        );
        let err =
            resolve_store(&[store("a", "s", true), store("b", "t", true)], &spec, "x").unwrap_err();
        assert!(err.contains("2 ObjectStores"), "{err}");
    }
}
