//! The dump of a failed test's namespace: every object as YAML, the events as a readable
//! timeline, and every container's logs (the previous instance's too).
//!
//! Layout under the test's artifacts directory:
//! `objects/<plural>.<group>.yaml`, `events.txt`, `logs/<pod>/<container>[.previous].log`,
//! and `dump-errors.txt` listing what could not be read (the dump goes on past failures).

use std::fmt::Write as _;
use std::path::Path;

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DynamicObject, ListParams, LogParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Api, Client};

use crate::error::Result;

/// Writes the namespace's objects, events and logs under `dir` (replacing an older dump).
pub async fn namespace(client: &Client, ns: &str, dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir.join("objects"))?;
    std::fs::create_dir_all(dir.join("logs"))?;
    let mut errors = Vec::new();

    match Discovery::new(client.clone()).run().await {
        Ok(discovery) => {
            for group in discovery.groups() {
                for (resource, caps) in group.recommended_resources() {
                    if caps.scope != Scope::Namespaced
                        || !caps.supports_operation(verbs::LIST)
                        || is_event(&resource.group, &resource.kind)
                    {
                        continue;
                    }
                    let api: Api<DynamicObject> =
                        Api::namespaced_with(client.clone(), ns, &resource);
                    match api.list(&ListParams::default()).await {
                        Ok(list) if list.items.is_empty() => {}
                        Ok(list) => {
                            let file = object_file_name(&resource.plural, &resource.group);
                            let text = objects_yaml(list.items, &resource.kind);
                            std::fs::write(dir.join("objects").join(file), text)?;
                        }
                        Err(e) => errors.push(format!("list {}: {e}", resource.plural)),
                    }
                }
            }
        }
        Err(e) => errors.push(format!("discovery: {e}")),
    }

    match Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => std::fs::write(dir.join("events.txt"), events_timeline(list.items))?,
        Err(e) => errors.push(format!("events: {e}")),
    }

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    match pods.list(&ListParams::default()).await {
        Ok(list) => {
            for pod in list.items {
                dump_logs(&pods, &pod, &dir.join("logs"), &mut errors).await?;
            }
        }
        Err(e) => errors.push(format!("pods: {e}")),
    }

    if !errors.is_empty() {
        std::fs::write(dir.join("dump-errors.txt"), errors.join("\n") + "\n")?;
    }
    Ok(())
}

async fn dump_logs(pods: &Api<Pod>, pod: &Pod, dir: &Path, errors: &mut Vec<String>) -> Result<()> {
    let Some(name) = pod.metadata.name.as_deref() else {
        return Ok(());
    };
    let pod_dir = dir.join(name);
    std::fs::create_dir_all(&pod_dir)?;
    for (container, restarted) in containers_of(pod) {
        // A previous instance exists only after a restart; asking otherwise is a 400.
        let instances: &[bool] = if restarted { &[false, true] } else { &[false] };
        for &previous in instances {
            let params = LogParams {
                container: Some(container.clone()),
                previous,
                ..Default::default()
            };
            let file = if previous {
                format!("{container}.previous.log")
            } else {
                format!("{container}.log")
            };
            match pods.logs(name, &params).await {
                Ok(text) => std::fs::write(pod_dir.join(file), text)?,
                Err(e) => errors.push(format!("logs {name}/{file}: {e}")),
            }
        }
    }
    Ok(())
}

/// Every container of a pod (init, regular, ephemeral) and whether it has restarted.
pub fn containers_of(pod: &Pod) -> Vec<(String, bool)> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let status = pod.status.as_ref();
    let restarted = |name: &str| {
        status
            .into_iter()
            .flat_map(|s| {
                s.init_container_statuses
                    .iter()
                    .flatten()
                    .chain(s.container_statuses.iter().flatten())
                    .chain(s.ephemeral_container_statuses.iter().flatten())
            })
            .any(|c| c.name == name && c.restart_count > 0)
    };
    spec.init_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .chain(spec.containers.iter().map(|c| c.name.clone()))
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| c.name.clone()),
        )
        .map(|name| {
            let r = restarted(&name);
            (name, r)
        })
        .collect()
}

fn is_event(group: &str, kind: &str) -> bool {
    kind == "Event" && (group.is_empty() || group == "events.k8s.io")
}

/// `pods.yaml` for the core group, `deployments.apps.yaml` otherwise.
pub fn object_file_name(plural: &str, group: &str) -> String {
    if group.is_empty() {
        format!("{plural}.yaml")
    } else {
        format!("{plural}.{group}.yaml")
    }
}

/// The objects as a multi-document YAML stream, without managedFields (noise) and with Secret
/// values replaced by their sizes (dumps end up in CI artifacts).
pub fn objects_yaml(items: Vec<DynamicObject>, kind: &str) -> String {
    let mut out = String::new();
    for mut obj in items {
        obj.metadata.managed_fields = None;
        let mut value = serde_json::to_value(&obj).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.entry("kind")
                .or_insert_with(|| serde_json::Value::String(kind.to_string()));
        }
        if kind == "Secret" {
            redact_secret(&mut value);
        }
        out.push_str("---\n");
        match serde_yaml::to_string(&value) {
            Ok(text) => out.push_str(&text),
            Err(e) => {
                let _ = writeln!(out, "# not serializable: {e}");
            }
        }
    }
    out
}

fn redact_secret(value: &mut serde_json::Value) {
    for field in ["data", "stringData"] {
        if let Some(map) = value.get_mut(field).and_then(|d| d.as_object_mut()) {
            for v in map.values_mut() {
                let size = v.as_str().map_or(0, str::len);
                *v = serde_json::Value::String(format!("<redacted: {size} characters>"));
            }
        }
    }
    if let Some(annotations) = value
        .pointer_mut("/metadata/annotations")
        .and_then(|a| a.as_object_mut())
    {
        // kubectl keeps the whole applied Secret, values included, in this annotation.
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// One line per event, oldest first: time, type, reason, object, count, message.
pub fn events_timeline(mut events: Vec<Event>) -> String {
    let when = |e: &Event| -> Option<Timestamp> {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    events.sort_by_key(when);
    let mut out = String::new();
    for e in &events {
        let object = format!(
            "{}/{}",
            e.involved_object.kind.as_deref().unwrap_or("?"),
            e.involved_object.name.as_deref().unwrap_or("?")
        );
        let _ = writeln!(
            out,
            "{} {} {} {} x{} {}",
            when(e).map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            e.type_.as_deref().unwrap_or("-"),
            e.reason.as_deref().unwrap_or("-"),
            object,
            e.count.unwrap_or(1),
            e.message.as_deref().unwrap_or("").trim()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn file_names_carry_the_group() {
        assert_eq!(object_file_name("pods", ""), "pods.yaml");
        assert_eq!(
            object_file_name("deployments", "apps"),
            "deployments.apps.yaml"
        );
        assert!(is_event("", "Event") && is_event("events.k8s.io", "Event"));
        assert!(!is_event("redis.agility.dev", "Event"));
    }

    #[test]
    fn secrets_are_redacted_and_managed_fields_dropped() {
        let secret: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "managedFields": [{"manager": "x"}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"password\":\"aHVudGVyMg==\"}}"}},
            "data": {"password": "aHVudGVyMg=="}
        }))
        .unwrap();
        let text = objects_yaml(vec![secret], "Secret");
        assert!(!text.contains("aHVudGVyMg=="), "{text}");
        assert!(text.contains("<redacted: 12 characters>"), "{text}");
        assert!(!text.contains("managedFields"), "{text}");
        let cm: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}
        }))
        .unwrap();
        let text = objects_yaml(vec![cm.clone(), cm], "ConfigMap");
        assert_eq!(text.matches("---\n").count(), 2);
        assert!(text.contains("k: v"), "{text}");
    }

    #[test]
    fn events_are_a_sorted_timeline() {
        let event = |name: &str, at: &str, reason: &str| -> Event {
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "involvedObject": {"kind": "Pod", "name": "redis-0"},
                "lastTimestamp": at, "type": "Normal", "reason": reason, "count": 2,
                "message": "msg\n"
            }))
            .unwrap()
        };
        let text = events_timeline(vec![
            event("b", "2026-01-01T00:00:05Z", "Started"),
            event("a", "2026-01-01T00:00:01Z", "Scheduled"),
        ]);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].contains("Scheduled") && lines[1].contains("Started"),
            "{text}"
        );
        assert!(
            lines[0].ends_with("Normal Scheduled Pod/redis-0 x2 msg"),
            "{text}"
        );
    }

    #[test]
    fn containers_include_init_and_ephemeral_with_restarts() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "init"}],
                "containers": [{"name": "main"}],
                "ephemeralContainers": [{"name": "debug"}]
            },
            "status": {"containerStatuses": [
                {"name": "main", "image": "", "imageID": "", "ready": true, "restartCount": 2}
            ]}
        }))
        .unwrap();
        assert_eq!(
            containers_of(&pod),
            [
                ("init".to_string(), false),
                ("main".to_string(), true),
                ("debug".to_string(), false)
            ]
        );
    }
}
