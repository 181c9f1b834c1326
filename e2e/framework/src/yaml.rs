//! Multi-document YAML to dynamic objects.

use kube::api::DynamicObject;

use crate::error::{Error, Result};

/// Splits a multi-document YAML stream into objects, skipping empty documents.
pub fn parse_documents(text: &str) -> Result<Vec<DynamicObject>> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| Error::Yaml(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject =
            serde_yaml::from_value(value).map_err(|e| Error::Yaml(e.to_string()))?;
        if obj.types.is_none() {
            return Err(Error::Yaml(format!(
                "document {:?} has no apiVersion/kind",
                obj.metadata.name
            )));
        }
        out.push(obj);
    }
    Ok(out)
}

use serde::Deserialize;

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
    }

    #[test]
    fn rejects_documents_without_kind() {
        assert!(parse_documents("metadata: {name: a}\n").is_err());
    }
}
