//! Adding and removing a finalizer (only kinds with state outside the API server have one).

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};

use crate::error::Result;

/// Adds (`present`) or removes `finalizer` with a merge patch guarded by the resourceVersion,
/// so a concurrent change fails and is retried instead of dropping someone else's finalizer.
pub async fn set<K>(api: &Api<K>, obj: &K, finalizer: &str, present: bool) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut finalizers: Vec<String> = obj.meta().finalizers.clone().unwrap_or_default();
    finalizers.retain(|f| f != finalizer);
    if present {
        finalizers.push(finalizer.to_owned());
    }
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": obj.meta().resource_version}
    });
    let name = obj.meta().name.clone().unwrap_or_default();
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 && !present => Ok(()),
        Err(e) => Err(agility_core::Error::kube("update the finalizers", e).into()),
    }
}
