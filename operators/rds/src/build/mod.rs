//! Pure builders: (instance, plan, facts) → desired child objects. No client, no clock;
//! unit-tested from fixtures.

pub mod config;
pub mod network_policy;
pub mod pdb;
pub mod secret;
pub mod service;
pub mod statefulset;

use std::collections::BTreeMap;

use agility_core::labels;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::crd::RdsInstance;
use crate::names;

/// The labels of a child with `component`.
pub fn child_labels(instance: &RdsInstance, component: &str) -> BTreeMap<String, String> {
    labels::standard(
        names::CONTROLLER,
        names::CONTROLLER,
        &instance.name_any(),
        component,
    )
}

/// The selector of every database pod of the instance (HA pair and read replicas).
pub fn pod_selector(instance: &RdsInstance) -> BTreeMap<String, String> {
    let mut s = labels::selector(names::CONTROLLER, &instance.name_any());
    s.insert(labels::COMPONENT.into(), names::COMPONENT_SERVER.into());
    s
}

/// The selector of one set of pods ([`names::SET_HA`] or [`names::SET_READ`]).
pub fn set_selector(instance: &RdsInstance, set: &str) -> BTreeMap<String, String> {
    let mut s = pod_selector(instance);
    s.insert(names::SET_LABEL.into(), set.into());
    s
}

/// Metadata of a child: name, namespace, labels.
pub fn meta(instance: &RdsInstance, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: instance.namespace(),
        labels: Some(child_labels(instance, component)),
        ..Default::default()
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::crd::{RdsInstance, RdsInstanceSpec, Storage};

    /// A spec with the smallest class.
    pub fn spec() -> RdsInstanceSpec {
        RdsInstanceSpec {
            instance_class: "rds.mysql.t1.small".into(),
            storage: Storage {
                size: "20Gi".into(),
                storage_class_name: None,
                volume_permissions: false,
            },
            ..Default::default()
        }
    }

    /// An instance as read from the API.
    pub fn instance(spec: RdsInstanceSpec) -> RdsInstance {
        let mut r = RdsInstance::new("orders", spec);
        r.metadata.namespace = Some("shop".into());
        r.metadata.uid = Some("0d5c6b2e-0000-4000-8000-000000000002".into());
        r.metadata.generation = Some(1);
        r
    }
}
