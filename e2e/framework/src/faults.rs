//! Fault injection: delete a pod, kill or freeze a container's main process, cut a pod's network.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams};
use rustix::process::Signal;

use crate::error::{Error, Result};
use crate::host;
use crate::namespace::{FIELD_MANAGER, TestNamespace, dns_label_chars};

/// The label [`cut_pod_network`] puts on the pod it isolates (value: the pod's UID).
pub const CUT_LABEL: &str = "agility.dev/e2e-network-cut";

/// Deletes a pod; `grace_seconds = Some(0)` is an immediate kill. Returns the deleted pod's UID
/// so the caller can tell its replacement apart.
pub async fn delete_pod(
    ns: &TestNamespace,
    pod: &str,
    grace_seconds: Option<u32>,
) -> Result<Option<String>> {
    let params = DeleteParams {
        grace_period_seconds: grace_seconds,
        ..Default::default()
    };
    let uid = ns.api::<Pod>().get(pod).await?.metadata.uid;
    ns.api::<Pod>().delete(pod, &params).await?;
    Ok(uid)
}

/// The named container's runtime ID (the first container when `container` is `None`).
pub fn container_status_id(pod: &Pod, container: Option<&str>) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let wanted = match container {
        Some(c) => c.to_string(),
        None => pod.spec.as_ref()?.containers.first()?.name.clone(),
    };
    statuses
        .iter()
        .find(|s| s.name == wanted)?
        .container_id
        .clone()
}

/// Sends `signal` to the main process of a container of `pod`, from the host (see [`host`] for why
/// not through exec). Fails when this machine does not run the container.
pub async fn signal_container(
    ns: &TestNamespace,
    pod: &str,
    container: Option<&str>,
    signal: Signal,
) -> Result<u32> {
    let fail = |detail: String| Error::Host {
        pod: format!("{}/{pod}", ns.name()),
        detail,
    };
    let obj = ns.api::<Pod>().get(pod).await?;
    let status_id = container_status_id(&obj, container).ok_or_else(|| {
        fail(format!(
            "container {container:?} has no runtime ID (not started?)"
        ))
    })?;
    let id = host::container_id(&status_id)
        .ok_or_else(|| fail(format!("unrecognised container ID {status_id:?}")))?
        .to_string();
    let pid = tokio::task::spawn_blocking(move || host::main_process(&id))
        .await
        .map_err(|e| fail(e.to_string()))?
        .map_err(|e| fail(format!("scanning /proc: {e}")))?
        .ok_or_else(|| {
            fail(format!(
                "no process of container {status_id} is visible here: signals need the tests to \
                 run on the node's machine (local node, or kind on Linux as root)"
            ))
        })?;
    host::signal(pid, signal).map_err(|e| fail(format!("signal to host PID {pid}: {e}")))?;
    Ok(pid)
}

/// SIGKILL to the container's main process: the kubelet restarts the container.
pub async fn kill_main_process(ns: &TestNamespace, pod: &str) -> Result<u32> {
    signal_container(ns, pod, None, Signal::KILL).await
}

/// SIGSTOP to the main process: it stays alive but answers nothing (the kernel still completes
/// TCP handshakes on its listening sockets, so tcpSocket probes keep passing).
pub async fn freeze(ns: &TestNamespace, pod: &str) -> Result<u32> {
    signal_container(ns, pod, None, Signal::STOP).await
}

/// SIGCONT after [`freeze`].
pub async fn thaw(ns: &TestNamespace, pod: &str) -> Result<u32> {
    signal_container(ns, pod, None, Signal::CONT).await
}

/// The name of the NetworkPolicy that isolates pods labelled `labels`.
pub fn cut_policy_name(labels: &BTreeMap<String, String>) -> String {
    let joined: String = labels
        .iter()
        .map(|(k, v)| format!("{k}-{v}"))
        .collect::<Vec<_>>()
        .join("-");
    let mut name = format!("e2e-cut-{}", dns_label_chars(&joined));
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// A deny-all (no ingress, no egress) NetworkPolicy for the pods matching `labels`.
pub fn deny_all_policy(name: &str, labels: &BTreeMap<String, String>) -> Result<NetworkPolicy> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": { "name": name },
        "spec": { "podSelector": { "matchLabels": labels }, "policyTypes": ["Ingress", "Egress"] }
    }))
    .map_err(|e| Error::InvalidObject(e.to_string()))
}

/// Isolates the pods matching `labels` and returns the policy's name.
pub async fn cut_network(ns: &TestNamespace, labels: &BTreeMap<String, String>) -> Result<String> {
    let name = cut_policy_name(labels);
    ns.apply(&deny_all_policy(&name, labels)?).await?;
    Ok(name)
}

/// Removes a policy made by [`cut_network`] (or any other NetworkPolicy of the namespace).
pub async fn restore_network(ns: &TestNamespace, policy: &str) -> Result<()> {
    ns.api::<NetworkPolicy>()
        .delete(policy, &DeleteParams::default())
        .await?;
    Ok(())
}

/// A network cut of one pod, undone by [`NetworkCut::restore`].
#[derive(Debug)]
#[must_use = "restore() undoes the cut"]
pub struct NetworkCut {
    pub pod: String,
    pub policy: String,
}

/// Isolates exactly one pod (not its siblings from the same template): labels it with
/// [`CUT_LABEL`]=`<its UID>` and applies a deny-all policy selecting that label.
pub async fn cut_pod_network(ns: &TestNamespace, pod: &str) -> Result<NetworkCut> {
    let uid = ns
        .api::<Pod>()
        .get(pod)
        .await?
        .metadata
        .uid
        .ok_or_else(|| Error::InvalidObject(format!("pod {pod} has no UID")))?;
    set_cut_label(ns, pod, Some(&uid)).await?;
    let labels = BTreeMap::from([(CUT_LABEL.to_string(), uid.clone())]);
    let policy = format!("e2e-cut-{uid}");
    ns.apply(&deny_all_policy(&policy, &labels)?).await?;
    Ok(NetworkCut {
        pod: pod.to_string(),
        policy,
    })
}

impl NetworkCut {
    /// Deletes the policy and the label (when the pod still exists).
    pub async fn restore(self, ns: &TestNamespace) -> Result<()> {
        restore_network(ns, &self.policy).await?;
        match set_cut_label(ns, &self.pod, None).await {
            Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 => Ok(()),
            other => other,
        }
    }
}

async fn set_cut_label(ns: &TestNamespace, pod: &str, value: Option<&str>) -> Result<()> {
    // A JSON merge patch: `null` removes the label.
    let patch = serde_json::json!({ "metadata": { "labels": { CUT_LABEL: value } } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    ns.api::<Pod>()
        .patch(pod, &params, &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_are_valid() {
        let labels = BTreeMap::from([("app.kubernetes.io/name".to_string(), "Redis".to_string())]);
        assert_eq!(
            cut_policy_name(&labels),
            "e2e-cut-app-kubernetes-io-name-redis"
        );
        let long = BTreeMap::from([("a".to_string(), "b".repeat(100))]);
        assert!(cut_policy_name(&long).len() <= 63);
    }

    #[test]
    fn deny_all_has_no_rules_in_either_direction() {
        let labels = BTreeMap::from([(CUT_LABEL.to_string(), "u-1".to_string())]);
        let policy = deny_all_policy("p", &labels).unwrap();
        let spec = policy.spec.unwrap();
        assert_eq!(spec.pod_selector.unwrap().match_labels, Some(labels));
        assert_eq!(
            spec.policy_types,
            Some(vec!["Ingress".to_string(), "Egress".to_string()])
        );
        assert!(spec.ingress.is_none() && spec.egress.is_none());
    }

    #[test]
    fn container_ids_by_name_or_first() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "main"}, {"name": "side"}]},
            "status": {"containerStatuses": [
                {"name": "side", "containerID": "containerd://bbb", "image": "", "imageID": "", "ready": true, "restartCount": 0},
                {"name": "main", "containerID": "containerd://aaa", "image": "", "imageID": "", "ready": true, "restartCount": 0}
            ]}
        }))
        .unwrap();
        assert_eq!(
            container_status_id(&pod, None).as_deref(),
            Some("containerd://aaa")
        );
        assert_eq!(
            container_status_id(&pod, Some("side")).as_deref(),
            Some("containerd://bbb")
        );
        assert_eq!(container_status_id(&pod, Some("other")), None);
    }
}
