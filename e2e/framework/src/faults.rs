//! Fault injection: delete or kill a pod's process, freeze and thaw it, cut its network.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::DeleteParams;

use crate::error::{Error, Result};
use crate::namespace::{TestNamespace, dns_label_chars};

/// Deletes a pod; `grace_seconds = Some(0)` is an immediate kill.
pub async fn delete_pod(ns: &TestNamespace, pod: &str, grace_seconds: Option<u32>) -> Result<()> {
    let params = DeleteParams {
        grace_period_seconds: grace_seconds,
        ..Default::default()
    };
    ns.api::<Pod>().delete(pod, &params).await?;
    Ok(())
}

async fn signal_main(ns: &TestNamespace, pod: &str, signal: &str) -> Result<()> {
    let out = ns.exec(pod, &["kill", signal, "1"]).await?;
    if out.exit_code != 0 {
        return Err(Error::Exec {
            pod: pod.into(),
            detail: format!("kill {signal} 1: {}", out.stderr.trim()),
        });
    }
    Ok(())
}

/// SIGKILL to the container's main process (PID 1 of its PID namespace).
pub async fn kill_main_process(ns: &TestNamespace, pod: &str) -> Result<()> {
    signal_main(ns, pod, "-KILL").await
}

/// SIGSTOP to the main process: it stays alive but answers nothing.
pub async fn freeze(ns: &TestNamespace, pod: &str) -> Result<()> {
    signal_main(ns, pod, "-STOP").await
}

/// SIGCONT after [`freeze`].
pub async fn thaw(ns: &TestNamespace, pod: &str) -> Result<()> {
    signal_main(ns, pod, "-CONT").await
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

/// Isolates the pods matching `labels` (no ingress, no egress) and returns the policy's name.
pub async fn cut_network(ns: &TestNamespace, labels: &BTreeMap<String, String>) -> Result<String> {
    let name = cut_policy_name(labels);
    let policy: NetworkPolicy = serde_json::from_value(serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": { "name": name },
        "spec": { "podSelector": { "matchLabels": labels }, "policyTypes": ["Ingress", "Egress"] }
    }))
    .map_err(|e| Error::Yaml(e.to_string()))?;
    ns.apply(&policy).await?;
    Ok(name)
}

/// Removes a policy made by [`cut_network`].
pub async fn restore_network(ns: &TestNamespace, policy: &str) -> Result<()> {
    ns.api::<NetworkPolicy>()
        .delete(policy, &DeleteParams::default())
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
}
