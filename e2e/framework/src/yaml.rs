//! Multi-document YAML to dynamic objects.

use kube::api::DynamicObject;
use kube::core::GroupVersionKind;
use serde::Deserialize;

use crate::error::{Error, Result};

/// Splits a multi-document YAML stream into objects: empty documents (only comments, or `---`
/// alone) are skipped, and `kind: List` / `*List` documents contribute their items.
pub fn parse_documents(text: &str) -> Result<Vec<DynamicObject>> {
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let at = |message: String| Error::Yaml(format!("document #{}: {message}", index + 1));
        let value = serde_json::Value::deserialize(doc).map_err(|e| at(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let items = match value.get("items") {
            Some(items) if is_list_kind(&value) => items
                .as_array()
                .ok_or_else(|| at("items of a List is not a sequence".into()))?
                .clone(),
            _ => vec![value],
        };
        for item in items {
            if item.get("apiVersion").and_then(|v| v.as_str()).is_none()
                || item.get("kind").and_then(|v| v.as_str()).is_none()
            {
                let name = item["metadata"]["name"].as_str().unwrap_or("<unnamed>");
                return Err(at(format!("object {name:?} has no apiVersion/kind")));
            }
            out.push(serde_json::from_value(item).map_err(|e| at(e.to_string()))?);
        }
    }
    Ok(out)
}

fn is_list_kind(value: &serde_json::Value) -> bool {
    value["kind"].as_str().is_some_and(|k| k.ends_with("List"))
}

/// The group/version/kind of a parsed object.
pub fn gvk(obj: &DynamicObject) -> Result<GroupVersionKind> {
    let types = obj
        .types
        .as_ref()
        .ok_or_else(|| Error::Yaml("object has no apiVersion/kind".into()))?;
    GroupVersionKind::try_from(types).map_err(|e| Error::Yaml(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_skips_empty_ones() {
        let text = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# only a comment\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: b}\n";
        let objs = parse_documents(text).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].types.as_ref().unwrap().kind, "Deployment");
        assert_eq!(objs[0].metadata.name.as_deref(), Some("a"));
        assert!(parse_documents("").unwrap().is_empty());
        assert!(parse_documents("---\n---\n").unwrap().is_empty());
    }

    #[test]
    fn separators_inside_block_scalars_are_content() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  f: |\n    one\n    ---\n    two\n";
        let objs = parse_documents(text).unwrap();
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0].data["data"]["f"], "one\n---\ntwo\n");
    }

    #[test]
    fn lists_are_expanded() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n---\napiVersion: v1\nkind: ServiceList\nitems: []\n";
        let objs = parse_documents(text).unwrap();
        let kinds: Vec<_> = objs
            .iter()
            .map(|o| o.types.as_ref().unwrap().kind.as_str())
            .collect();
        assert_eq!(kinds, ["ConfigMap", "Secret"]);
    }

    #[test]
    fn errors_name_the_document() {
        let err = parse_documents(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nmetadata: {name: b}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("document #2") && err.contains("\"b\""),
            "{err}"
        );
        let err = parse_documents("a: [unclosed\n").unwrap_err().to_string();
        assert!(err.contains("document #1"), "{err}");
    }

    #[test]
    fn group_version_kind_of_core_and_grouped_kinds() {
        let objs = parse_documents(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: redis.agility.dev/v1alpha1\nkind: RedisCluster\nmetadata: {name: b}\n",
        )
        .unwrap();
        let core = gvk(&objs[0]).unwrap();
        assert_eq!(
            (
                core.group.as_str(),
                core.version.as_str(),
                core.kind.as_str()
            ),
            ("", "v1", "Service")
        );
        let custom = gvk(&objs[1]).unwrap();
        assert_eq!(
            (
                custom.group.as_str(),
                custom.version.as_str(),
                custom.kind.as_str()
            ),
            ("redis.agility.dev", "v1alpha1", "RedisCluster")
        );
    }
}
