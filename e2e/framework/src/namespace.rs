//! A temporary namespace per test: deleted by `finish()` at the end of a passing test; kept, with a
//! dump of its objects, events and logs under `target/e2e-artifacts/<test>/`, when the test panics
//! or ends without `finish()` (an early error return).

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiCapabilities, ApiResource, Scope};
use kube::{Api, Client, Config, Resource};
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
/// How long a failed test's dump may take.
const DUMP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `apply_yaml` waits for a kind to be served (a CRD applied just before).
const KIND_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// One test's namespace.
pub struct TestNamespace {
    client: Client,
    /// For the failure dump, which needs a client of its own (see `Drop`).
    config: Config,
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

/// Where a failed test's dump goes: `$AGILITY_E2E_ARTIFACTS/<test>`, by default
/// `<workspace>/target/e2e-artifacts/<test>`.
pub fn artifacts_dir(test: &str) -> PathBuf {
    let root = std::env::var_os("AGILITY_E2E_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // This crate sits at <workspace>/e2e/framework.
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest
                .ancestors()
                .nth(2)
                .unwrap_or(manifest)
                .join("target/e2e-artifacts")
        });
    root.join(test)
}

impl TestNamespace {
    pub(crate) async fn create(
        client: Client,
        config: Config,
        reach: Reach,
        test: &str,
    ) -> Result<Self> {
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
            config,
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

    /// Server-side applies every document of a YAML stream (kinds found by discovery, so CRDs
    /// applied earlier in the same stream work). Namespaced objects without a namespace land in
    /// this namespace; an explicit namespace is kept.
    pub async fn apply_yaml(&self, text: &str) -> Result<Vec<DynamicObject>> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut applied = Vec::new();
        for mut obj in yaml::parse_documents(text)? {
            let gvk = yaml::gvk(&obj)?;
            let (resource, caps) = self.resolve_kind(&gvk).await?;
            let name = obj
                .metadata
                .name
                .clone()
                .ok_or_else(|| Error::Yaml(format!("a {} has no name", gvk.kind)))?;
            let api: Api<DynamicObject> = match caps.scope {
                Scope::Namespaced => {
                    let ns = obj
                        .metadata
                        .namespace
                        .get_or_insert_with(|| self.name.clone())
                        .clone();
                    Api::namespaced_with(self.client.clone(), &ns, &resource)
                }
                Scope::Cluster => Api::all_with(self.client.clone(), &resource),
            };
            applied.push(api.patch(&name, &params, &Patch::Apply(&obj)).await?);
        }
        Ok(applied)
    }

    /// Discovery of one kind; a CRD created a moment ago takes a few seconds to be served, so a
    /// miss is retried for a while.
    async fn resolve_kind(&self, gvk: &GroupVersionKind) -> Result<(ApiResource, ApiCapabilities)> {
        let deadline = Instant::now() + KIND_DISCOVERY_TIMEOUT;
        loop {
            match discovery::pinned_kind(&self.client, gvk).await {
                Ok(found) => return Ok(found),
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::Yaml(format!(
                        "the API server does not serve {}/{} {} (after {KIND_DISCOVERY_TIMEOUT:?}): {e}",
                        gvk.group, gvk.version, gvk.kind
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Waits until `done` holds for object `name` of this namespace (see [`wait::wait_for`]).
    pub async fn wait_for<K, F>(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        done: F,
    ) -> Result<K>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned,
        K::DynamicType: Default,
        F: Fn(&K) -> bool,
    {
        wait::wait_for(&self.api::<K>(), name, timeout, what, done).await
    }

    /// Waits until object `name` of this namespace is gone.
    pub async fn wait_deleted<K>(&self, name: &str, timeout: Duration) -> Result<()>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned,
        K::DynamicType: Default,
    {
        wait::wait_deleted(&self.api::<K>(), name, timeout).await
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

    /// Runs a command in a pod of this namespace (its first container).
    pub async fn exec(&self, pod: &str, command: &[&str]) -> Result<ExecOutput> {
        exec::exec(&self.api::<Pod>(), pod, None, command).await
    }

    /// Runs a command in a named container of a pod of this namespace.
    pub async fn exec_in(
        &self,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> Result<ExecOutput> {
        exec::exec(&self.api::<Pod>(), pod, Some(container), command).await
    }

    /// Writes the namespace's objects, events and logs to `target/e2e-artifacts/<test>/` now
    /// (a failing test gets this automatically).
    pub async fn dump(&self) -> Result<PathBuf> {
        let dir = artifacts_dir(&self.test);
        dump::namespace(&self.client, &self.name, &dir).await?;
        Ok(dir)
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
    /// A namespace not [`finish`](TestNamespace::finish)ed belongs to a failed test (a panic, or an
    /// early return of an error): it is kept, with a dump of what was in it.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let why = if std::thread::panicking() {
            "test failed"
        } else {
            "test ended without finish()"
        };
        // Drop cannot await, and the test's runtime may be single-threaded and blocked right here
        // (the client's connection task lives on it): dump from a thread with a runtime and a
        // client of its own.
        let config = self.config.clone();
        let name = self.name.clone();
        let dir = artifacts_dir(&self.test);
        let worker = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return Err(format!("no runtime for the dump: {e}")),
            };
            rt.block_on(async move {
                let client = Client::try_from(config).map_err(|e| e.to_string())?;
                tokio::time::timeout(DUMP_TIMEOUT, dump::namespace(&client, &name, &dir))
                    .await
                    .map_err(|_| format!("dump took longer than {DUMP_TIMEOUT:?}"))?
                    .map_err(|e| e.to_string())
            })
        });
        let dir = artifacts_dir(&self.test);
        match worker.join() {
            Ok(Ok(())) => eprintln!(
                "e2e: {why}; kept namespace {}; dump in {}",
                self.name,
                dir.display()
            ),
            Ok(Err(e)) => eprintln!("e2e: {why}; kept namespace {}; dump failed: {e}", self.name),
            Err(_) => eprintln!(
                "e2e: {why}; kept namespace {}; the dump panicked",
                self.name
            ),
        }
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
