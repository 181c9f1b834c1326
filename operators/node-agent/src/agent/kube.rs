//! The agent's writes to the API: server-side apply of the objects it publishes, only when what
//! it would write differs from what is there (a steady node makes zero writes).

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AgentError;

/// Field manager of one node's agent. Per node, because agents apply entries of shared objects
/// (a DiskPool's `status.nodes`): one manager name for all would make each agent's apply delete
/// the other nodes' entries.
pub fn field_manager(node: &str) -> String {
    let m = format!("agility-node-agent/{node}");
    m.chars().take(128).collect()
}

/// Owner reference to the Node, so a node's objects go when the node is deleted.
pub fn node_owner(node: &Node) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.name_any(),
        uid: node.uid()?,
        controller: Some(false),
        block_owner_deletion: Some(false),
    })
}

/// True when every field of `desired` is present with the same value in `live` (objects
/// recursively; lists and scalars as a whole). Fields only in `live` are ignored.
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| l.get(k).is_some_and(|lv| contains(lv, dv)) || dv.is_null()),
        (l, d) => l == d,
    }
}

/// Applies `body` (apiVersion/kind/metadata/spec...) unless the live object already contains it.
/// Returns the object after the apply (or the live one).
pub async fn apply<K>(
    api: &Api<K>,
    name: &str,
    body: Value,
    manager: &str,
) -> Result<Option<K>, AgentError>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let live = api
        .get_opt(name)
        .await
        .map_err(|e| AgentError::kube(format!("get {name}"), e))?;
    if let Some(l) = &live {
        let lv = serde_json::to_value(l).map_err(AgentError::Serialize)?;
        if contains(&lv, &without_status(&body)) {
            return Ok(live);
        }
    }
    let applied = api
        .patch(
            name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&without_status(&body)),
        )
        .await
        .map_err(|e| AgentError::kube(format!("apply {name}"), e))?;
    Ok(Some(applied))
}

/// Applies `status` to the status subresource unless the live status already contains it.
/// Returns whether it wrote.
pub async fn apply_status<K>(
    api: &Api<K>,
    live: &K,
    status: Value,
    manager: &str,
) -> Result<bool, AgentError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let lv = serde_json::to_value(live).map_err(AgentError::Serialize)?;
    let live_status = lv.get("status").cloned().unwrap_or(Value::Null);
    if contains(&live_status, &status) {
        return Ok(false);
    }
    let name = live.name_any();
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| AgentError::kube(format!("update status of {name}"), e))?;
    Ok(true)
}

fn without_status(body: &Value) -> Value {
    let mut b = body.clone();
    if let Some(o) = b.as_object_mut() {
        o.remove("status");
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_ignores_extra_live_fields_and_compares_lists_whole() {
        let live = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}, "e": true});
        assert!(contains(&live, &json!({"a": 1, "b": {"c": [1, 2]}})));
        assert!(!contains(&live, &json!({"b": {"c": [1]}})));
        assert!(!contains(&live, &json!({"f": 1})));
        assert!(contains(&live, &json!({"f": null})));
        assert!(!contains(&live, &json!({"a": 2})));
    }

    #[test]
    fn field_managers_are_per_node_and_bounded() {
        assert_eq!(field_manager("n1"), "agility-node-agent/n1");
        assert_eq!(field_manager(&"x".repeat(300)).len(), 128);
    }
}
