//! The PodDisruptionBudget: voluntary evictions take one node of a shard at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::crd::RedisInstance;
use crate::names;
use crate::plan::Plan;

/// None for single-pod instances (a PDB there would only block node drains).
pub fn pdb(instance: &RedisInstance, plan: &Plan) -> Option<PodDisruptionBudget> {
    if plan.pods_per_shard < 2 {
        return None;
    }
    Some(PodDisruptionBudget {
        metadata: super::meta(
            instance,
            names::pdb(&instance.name_any()),
            "disruption-budget",
        ),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(super::pod_selector(instance)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}
