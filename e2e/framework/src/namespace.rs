//! A temporary namespace per test: deleted when the test passes, kept with a dump of its objects,
//! events and logs under `target/e2e-artifacts/<test>/` when it fails.

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::{self, Scope};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::exec::{self, ExecOutput};
use crate::reach::Reach;
use crate::{dump, wait, yaml};

/// The field manager of objects the tests apply.
pub const FIELD_MANAGER: &str = "agility-e2e";
/// The label every test namespace carries (so leftovers are easy to find).
pub const E2E_LABEL: &str = "agility.dev/e2e";

/// One test's namespace.
pub struct TestNamespace {
    client: Client,
    reach: Reach,
    name: String,
    test: String,
    finished: bool,
}

/// `text` lowercased with every character outside `[a-z0-9]` replaced by `-` (DNS-1123 label
/// characters; callers bound the length and trim the ends).
pub fn dns_label_chars(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// `e2e-<test>-<random>`, lowercase DNS-1123, at most 63 characters.
pub fn namespace_name(test: &str, suffix: &str) -> String {
    let mut clean = dns_label_chars(test);
    clean.truncate(63 - "e2e-".len() - 1 - suffix.len());
    let clean = clean.trim_matches('-');
    format!("e2e-{clean}-{suffix}")
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Where a failed test's dump goes.
pub fn artifacts_dir(test: &str) -> PathBuf {
    let root = std::env::var_os("AGILITY_E2E_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/e2e-artifacts")
        });
    root.join(test)
}

impl TestNamespace {
    pub(crate) async fn create(client: Client, reach: Reach, test: &str) -> Result<Self> {
        let name = namespace_name(test, &random_suffix());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": { E2E_LABEL: "true" } }
        }))
        .map_err(|e| Error::Yaml(e.to_string()))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(TestNamespace {
            client,
            reach,
            name,
            test: test.to_string(),
            finished: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    /// An API for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Server-side applies a typed object into this namespace.
    pub async fn apply<K>(&self, obj: &K) -> Result<K>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned,
        K::DynamicType: Default,
    {
        let name = obj
            .meta()
            .name
            .clone()
            .ok_or_else(|| Error::Yaml("object has no name".into()))?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        Ok(self
            .api::<K>()
            .patch(&name, &params, &Patch::Apply(obj))
            .await?)
    }

    /// Server-side applies every document of a YAML stream; namespaced kinds land in this namespace.
    pub async fn apply_yaml(&self, text: &str) -> Result<Vec<DynamicObject>> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut applied = Vec::new();
        for mut obj in yaml::parse_documents(text)? {
            let gvk = obj
                .types
                .as_ref()
                .ok_or_else(|| Error::Yaml("no kind".into()))?
                .try_into()
                .map_err(|e| Error::Yaml(format!("{e}")))?;
            let (resource, caps) = discovery::pinned_kind(&self.client, &gvk).await?;
            let api: Api<DynamicObject> = match caps.scope {
                Scope::Namespaced => {
                    obj.metadata.namespace = Some(self.name.clone());
                    Api::namespaced_with(self.client.clone(), &self.name, &resource)
                }
                Scope::Cluster => Api::all_with(self.client.clone(), &resource),
            };
            let name = obj
                .metadata
                .name
                .clone()
                .ok_or_else(|| Error::Yaml("object has no name".into()))?;
            applied.push(api.patch(&name, &params, &Patch::Apply(&obj)).await?);
        }
        Ok(applied)
    }

    /// Waits until pod `name` is Running and Ready.
    pub async fn wait_pod_ready(&self, name: &str, timeout: Duration) -> Result<Pod> {
        wait::wait_for(
            &self.api::<Pod>(),
            name,
            timeout,
            "pod Ready",
            wait::pod_ready,
        )
        .await
    }

    /// Waits until Deployment `name` has all its replicas ready at the current generation.
    pub async fn wait_deployment_available(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Deployment> {
        wait::wait_for(
            &self.api::<Deployment>(),
            name,
            timeout,
            "deployment available",
            wait::deployment_available,
        )
        .await
    }

    /// Runs a command in a pod of this namespace.
    pub async fn exec(&self, pod: &str, command: &[&str]) -> Result<ExecOutput> {
        exec::exec(&self.api::<Pod>(), pod, None, command).await
    }

    /// Deletes the namespace: call at the end of a passing test.
    pub async fn finish(mut self) -> Result<()> {
        self.finished = true;
        Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::background())
            .await?;
        Ok(())
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Drop cannot await, and the test's runtime may be gone: do the work on a thread with a
        // runtime of its own.
        let client = self.client.clone();
        let name = self.name.clone();
        let test = self.test.clone();
        let failed = std::thread::panicking();
        let worker = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if failed {
                    let dir = artifacts_dir(&test);
                    match dump::namespace(&client, &name, &dir).await {
                        Ok(()) => eprintln!(
                            "e2e: test failed; kept namespace {name}, dump in {}",
                            dir.display()
                        ),
                        Err(e) => {
                            eprintln!("e2e: test failed; kept namespace {name}; dump failed: {e}")
                        }
                    }
                } else {
                    let _ = Api::<Namespace>::all(client)
                        .delete(&name, &DeleteParams::background())
                        .await;
                }
            });
        });
        let _ = worker.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(
            namespace_name("Redis_failover::kill master", "ab12c"),
            "e2e-redis-failover--kill-master-ab12c"
        );
        let long = namespace_name(&"x".repeat(200), "ab12c");
        assert!(long.len() <= 63, "{long}");
        assert!(long.starts_with("e2e-x") && long.ends_with("-ab12c"));
        let suffix = random_suffix();
        assert_eq!(suffix.len(), 5);
        assert!(
            suffix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }
}
