//! Pure builders: (instance, plan, facts) → desired child objects. No client, no clock; unit-tested
//! from fixtures.

pub mod config;
pub mod monitoring;
pub mod network_policy;
pub mod pdb;
pub mod secret;
pub mod service;
pub mod statefulset;

use std::collections::BTreeMap;

use agility_core::labels;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::crd::RedisInstance;
use crate::names;

/// The labels of a child with `component` (the core's applier adds the same; builders need them
/// for selectors and pod templates).
pub fn child_labels(instance: &RedisInstance, component: &str) -> BTreeMap<String, String> {
    labels::standard(
        names::CONTROLLER,
        names::CONTROLLER,
        &instance.name_any(),
        component,
    )
}

/// The selector of every data pod of the instance.
pub fn pod_selector(instance: &RedisInstance) -> BTreeMap<String, String> {
    let mut s = labels::selector(names::CONTROLLER, &instance.name_any());
    s.insert(labels::COMPONENT.into(), names::COMPONENT_SERVER.into());
    s
}

/// Metadata of a child: name, namespace, labels.
pub fn meta(instance: &RedisInstance, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: instance.namespace(),
        labels: Some(child_labels(instance, component)),
        ..Default::default()
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::crd::{RedisInstance, RedisInstanceSpec};

    /// An instance as read from the API.
    pub fn instance(spec: RedisInstanceSpec) -> RedisInstance {
        let mut r = RedisInstance::new("orders", spec);
        r.metadata.namespace = Some("shop".into());
        r.metadata.uid = Some("0d5c6b2e-0000-4000-8000-000000000001".into());
        r.metadata.generation = Some(1);
        r
    }
}
