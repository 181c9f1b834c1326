//! Waiting for a state with a timeout whose message shows the last state seen.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

// Short enough that waits measure latencies usefully, cheap enough for one test cluster.
const POLL: Duration = Duration::from_millis(100);
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
                what: format!("{what} ({}/{name})", api.resource_url()),
                timeout,
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls until object `name` no longer exists (a pod with a grace period, a namespace with
/// finalizers, ...).
pub async fn wait_deleted<K>(api: &Api<K>, name: &str, timeout: Duration) -> Result<()>
where
    K: kube::Resource + Clone + Debug + DeserializeOwned + Serialize,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match api.get_opt(name).await {
            Ok(None) => return Ok(()),
            Ok(Some(obj)) => summarize(&obj),
            Err(e) => format!("<error: {e}>"),
        };
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!("deletion of {}/{name}", api.resource_url()),
                timeout,
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls a label-selected list until `done` holds for it, returning the list (e.g. "a Ready pod
/// with a UID other than the deleted one").
pub async fn wait_for_list<K, F>(
    api: &Api<K>,
    selector: &str,
    timeout: Duration,
    what: &str,
    done: F,
) -> Result<Vec<K>>
where
    K: kube::Resource + Clone + Debug + DeserializeOwned + Serialize,
    F: Fn(&[K]) -> bool,
{
    let deadline = Instant::now() + timeout;
    let params = ListParams::default().labels(selector);
    loop {
        let last = match api.list(&params).await {
            Ok(list) if done(&list.items) => return Ok(list.items),
            Ok(list) => summarize_list(&list.items),
            Err(e) => format!("<error: {e}>"),
        };
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!("{what} ({} -l {selector})", api.resource_url()),
                timeout,
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Each item's name and status, for a timeout message.
pub fn summarize_list<K: kube::Resource + Serialize>(items: &[K]) -> String {
    if items.is_empty() {
        return String::from("<none>");
    }
    let text = items
        .iter()
        .map(|i| {
            format!(
                "{}: {}",
                i.meta().name.as_deref().unwrap_or("?"),
                summarize(i)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    bounded(text)
}

/// The object's status (or the whole object when it has none), as JSON, cut to a readable size.
pub fn summarize<K: Serialize>(obj: &K) -> String {
    let value = serde_json::to_value(obj).unwrap_or_default();
    let shown = value.get("status").cloned().unwrap_or(value);
    bounded(shown.to_string())
}

fn bounded(mut text: String) -> String {
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

/// `status.conditions[type]` has `status` and reflects the current spec: the condition's
/// `observedGeneration` (or, when the condition has none, `status.observedGeneration`) equals
/// `metadata.generation`. Works for any object (typed or dynamic) through its JSON form.
pub fn condition_is<K: Serialize>(obj: &K, type_: &str, status: &str) -> bool {
    let Ok(value) = serde_json::to_value(obj) else {
        return false;
    };
    let Some(generation) = value["metadata"]["generation"].as_i64() else {
        return false;
    };
    let status_generation = value["status"]["observedGeneration"].as_i64();
    value["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c["type"] == type_
                && c["status"] == status
                && c["observedGeneration"].as_i64().or(status_generation) == Some(generation)
        })
}

/// A condition closure for [`wait_for`]: `condition(type, status)` on a custom object.
pub fn condition<K: Serialize>(type_: &str, status: &str) -> impl Fn(&K) -> bool + use<K> {
    let (type_, status) = (type_.to_string(), status.to_string());
    move |obj: &K| condition_is(obj, &type_, &status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::DynamicObject;
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
        assert!(condition("Ready", "True")(&obj));
        assert!(!condition_is(&obj, "Ready", "False"));
        assert!(!condition_is(&obj, "Degraded", "True"));
    }

    #[test]
    fn condition_falls_back_to_status_observed_generation() {
        let with = |status: serde_json::Value| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "x.agility.dev/v1alpha1", "kind": "X",
                "metadata": {"name": "a", "generation": 3},
                "status": status
            }))
            .unwrap()
        };
        let current = with(
            json!({"observedGeneration": 3, "conditions": [{"type": "Ready", "status": "True"}]}),
        );
        assert!(condition_is(&current, "Ready", "True"));
        let stale = with(
            json!({"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}),
        );
        assert!(!condition_is(&stale, "Ready", "True"));
        // No observed generation anywhere: nothing says the condition is about the current spec.
        let unknown = with(json!({"conditions": [{"type": "Ready", "status": "True"}]}));
        assert!(!condition_is(&unknown, "Ready", "True"));
        // The condition's own observedGeneration wins over the status-level one.
        let own = with(
            json!({"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 3}]}),
        );
        assert!(condition_is(&own, "Ready", "True"));
    }

    #[test]
    fn deployment_availability_needs_the_current_rollout() {
        let deployment = |generation: i64, observed: i64, ready: i32| -> Deployment {
            serde_json::from_value(json!({
                "metadata": {"name": "d", "generation": generation},
                "spec": {"replicas": 2, "selector": {}, "template": {}},
                "status": {"observedGeneration": observed, "replicas": 2, "updatedReplicas": 2, "readyReplicas": ready}
            }))
            .unwrap()
        };
        assert!(deployment_available(&deployment(4, 4, 2)));
        assert!(!deployment_available(&deployment(4, 3, 2)));
        assert!(!deployment_available(&deployment(4, 4, 1)));
    }

    #[test]
    fn timeout_messages_show_what_and_the_last_state() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}
        }))
        .unwrap();
        let err = Error::Timeout {
            what: "pod Ready (/api/v1/namespaces/n/pods/p)".into(),
            timeout: Duration::from_secs(5),
            last: summarize(&pod),
        };
        let text = err.to_string();
        assert!(text.starts_with("timed out after 5s waiting for pod Ready (/api/v1/namespaces/n/pods/p); last seen: "), "{text}");
        assert!(
            text.contains("Unschedulable") && text.contains("Pending"),
            "{text}"
        );
        assert_eq!(summarize_list::<Pod>(&[]), "<none>");
        assert!(summarize_list(&[pod]).starts_with("p: {"));
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
