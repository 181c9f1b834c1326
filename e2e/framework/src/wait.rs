//! Waiting for a state with a timeout whose message shows the last state seen.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DynamicObject;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

const POLL: Duration = Duration::from_millis(250);
const LAST_SEEN_LIMIT: usize = 2000;

/// Polls `name` until `done` holds, returning the object; a missing object counts as not done.
pub async fn wait_for<K, F>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    what: &str,
    done: F,
) -> Result<K>
where
    K: kube::Resource + Clone + Debug + DeserializeOwned + Serialize,
    F: Fn(&K) -> bool,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match api.get_opt(name).await {
            Ok(Some(obj)) if done(&obj) => return Ok(obj),
            Ok(Some(obj)) => summarize(&obj),
            Ok(None) => String::from("<not found>"),
            Err(e) => format!("<error: {e}>"),
        };
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!("{what} ({name})"),
                timeout,
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The object's status (or the whole object when it has none), as JSON, cut to a readable size.
pub fn summarize<K: Serialize>(obj: &K) -> String {
    let value = serde_json::to_value(obj).unwrap_or_default();
    let shown = value.get("status").cloned().unwrap_or(value);
    let mut text = shown.to_string();
    if text.len() > LAST_SEEN_LIMIT {
        let mut cut = LAST_SEEN_LIMIT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The pod is Running with condition Ready=True.
pub fn pod_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The Deployment's current generation is rolled out and all its replicas are ready.
pub fn deployment_available(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &d.status else {
        return false;
    };
    d.metadata.generation == status.observed_generation
        && status.ready_replicas.unwrap_or(0) == want
        && status.updated_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
}

/// `status.conditions[type]` has `status`, and (when set) its observedGeneration is current.
pub fn condition_is(obj: &DynamicObject, type_: &str, status: &str) -> bool {
    let generation = obj.metadata.generation;
    obj.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c["type"] == type_
                && c["status"] == status
                && c["observedGeneration"]
                    .as_i64()
                    .is_none_or(|g| Some(g) == generation)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn condition_needs_current_generation() {
        let mut obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "x.agility.dev/v1alpha1", "kind": "X",
            "metadata": {"name": "a", "generation": 2},
            "status": {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1}]}
        }))
        .unwrap();
        assert!(!condition_is(&obj, "Ready", "True"));
        obj.metadata.generation = Some(1);
        assert!(condition_is(&obj, "Ready", "True"));
        assert!(!condition_is(&obj, "Ready", "False"));
        assert!(!condition_is(&obj, "Degraded", "True"));
    }

    #[test]
    fn pod_readiness_needs_running_and_ready() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
        }))
        .unwrap();
        assert!(!pod_ready(&pod));
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        assert!(pod_ready(&pod));
    }

    #[test]
    fn summaries_show_status_and_are_bounded() {
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p"}, "status": {"phase": "Pending"}}),
        )
        .unwrap();
        assert_eq!(summarize(&pod), r#"{"phase":"Pending"}"#);
        let big: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"}, "status": {"message": "é".repeat(5000)}
        }))
        .unwrap();
        assert!(summarize(&big).chars().count() <= LAST_SEEN_LIMIT + 1);
    }
}
