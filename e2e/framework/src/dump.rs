//! The dump of a failed test's namespace: objects as YAML, events, and every container's logs.

use std::path::Path;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;

async fn dump_kind<K>(client: &Client, ns: &str, dir: &Path) -> Result<()>
where
    K: Resource<Scope = NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned,
    K::DynamicType: Default,
{
    let list = Api::<K>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    let kind = K::kind(&K::DynamicType::default()).to_lowercase();
    let text =
        serde_yaml::to_string(&list.items).unwrap_or_else(|e| format!("# not serializable: {e}\n"));
    std::fs::write(dir.join(format!("{kind}s.yaml")), text)?;
    Ok(())
}

/// Writes the namespace's objects, events and logs under `dir` (Secrets are left out).
pub async fn namespace(client: &Client, ns: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("logs"))?;
    dump_kind::<Pod>(client, ns, dir).await?;
    dump_kind::<Service>(client, ns, dir).await?;
    dump_kind::<Deployment>(client, ns, dir).await?;
    dump_kind::<StatefulSet>(client, ns, dir).await?;
    dump_kind::<ConfigMap>(client, ns, dir).await?;
    dump_kind::<PersistentVolumeClaim>(client, ns, dir).await?;
    dump_kind::<NetworkPolicy>(client, ns, dir).await?;
    dump_kind::<Event>(client, ns, dir).await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    for pod in pods.list(&ListParams::default()).await?.items {
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        let containers = pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers));
        for container in containers {
            for previous in [false, true] {
                let params = LogParams {
                    container: Some(container.name.clone()),
                    previous,
                    ..Default::default()
                };
                if let Ok(text) = pods.logs(&name, &params).await {
                    let suffix = if previous { ".previous" } else { "" };
                    std::fs::write(
                        dir.join("logs")
                            .join(format!("{name}.{}{suffix}.log", container.name)),
                        text,
                    )?;
                }
            }
        }
    }
    Ok(())
}
