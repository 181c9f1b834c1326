//! Pure builders of a store's children: (store, settings, facts) → desired objects. No client, no
//! clock. Objects are written as the JSON one would write in YAML and decoded into the typed
//! k8s-openapi structs, so a wrong field fails the unit tests, not the cluster.

pub mod garage;
pub mod gateway;

use std::collections::BTreeMap;

use agility_core::labels;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crd::ObjectStore;
use crate::names;

/// Operator-wide settings the chart passes in.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The Garage image.
    pub garage_image: String,
    /// The operator image (the gateway is `agility-operator oss-gateway`).
    pub gateway_image: String,
    /// Image pull policy of both.
    pub image_pull_policy: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            garage_image: "localhost/agility/garage:2.5.0".into(),
            gateway_image: "localhost/agility/operator:0.1.0".into(),
            image_pull_policy: "IfNotPresent".into(),
        }
    }
}

/// Component label values.
pub const COMPONENT_GARAGE: &str = "garage";
pub const COMPONENT_GATEWAY: &str = "gateway";

/// Decodes a JSON object into a typed Kubernetes object.
pub(crate) fn typed<T: DeserializeOwned>(what: &str, v: Value) -> agility_core::Result<T> {
    serde_json::from_value(v)
        .map_err(|e| agility_core::Error::Internal(format!("building {what}: {e}")))
}

/// Secret `data` (base64) from a JSON object of strings. Builders write `data`, not
/// `stringData`: the API server keeps only `data`, so `stringData` would look like drift on
/// every reconcile.
pub(crate) fn secret_data(strings: &Value) -> Value {
    use base64::Engine;
    let mut out = serde_json::Map::new();
    if let Some(m) = strings.as_object() {
        for (k, v) in m {
            let text = v.as_str().unwrap_or_default();
            out.insert(
                k.clone(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
    Value::Object(out)
}

/// Labels of a child with `component`.
pub fn child_labels(store: &ObjectStore, component: &str) -> BTreeMap<String, String> {
    labels::standard(
        names::CONTROLLER,
        names::CONTROLLER,
        &store.name_any(),
        component,
    )
}

/// Selector of the pods of one component.
pub fn selector(store: &ObjectStore, component: &str) -> BTreeMap<String, String> {
    let mut s = labels::selector(names::CONTROLLER, &store.name_any());
    s.insert(labels::COMPONENT.into(), component.into());
    s
}

/// A quantity as bytes (binary and decimal suffixes; what PVC sizes use).
pub fn quantity_bytes(q: &Quantity) -> Option<u64> {
    let s = q.0.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        _ => return None,
    };
    let bytes = n * mult;
    (bytes.is_finite() && bytes >= 0.0).then_some(bytes as u64)
}

/// A restricted container security context (non-root, read-only root, no capabilities).
pub(crate) fn restricted() -> Value {
    serde_json::json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::crd::{ObjectStore, ObjectStoreSpec};

    /// A store as read from the API, with the defaults the schema applies.
    pub fn store(nodes: i32, rf: i32) -> ObjectStore {
        let mut spec: ObjectStoreSpec = serde_json::from_str("{}").unwrap_or_default();
        spec.nodes = nodes;
        spec.replication_factor = rf;
        let mut s = ObjectStore::new("media", spec);
        s.metadata.namespace = Some("storage".into());
        s.metadata.uid = Some("2b1d7c1e-0000-4000-8000-000000000001".into());
        s.metadata.generation = Some(1);
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quantities_convert_to_bytes() {
        assert_eq!(quantity_bytes(&Quantity("10Gi".into())), Some(10 << 30));
        assert_eq!(quantity_bytes(&Quantity("1G".into())), Some(1_000_000_000));
        assert_eq!(quantity_bytes(&Quantity("512".into())), Some(512));
        assert_eq!(quantity_bytes(&Quantity("1.5Ki".into())), Some(1536));
        assert_eq!(quantity_bytes(&Quantity("ten".into())), None);
        assert_eq!(quantity_bytes(&Quantity("1Xi".into())), None);
    }

    #[test]
    fn schema_defaults_fill_an_empty_spec() {
        let s = fixtures::store(3, 3);
        assert_eq!(s.spec.region, "agility");
        assert_eq!(s.spec.gateway_replicas, 2);
        assert_eq!(s.spec.storage.size.0, "10Gi");
    }
}
