//! The PodDisruptionBudget: a drain takes at most one node of the pair at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::crd::RdsInstance;
use crate::names;

/// The PDB of the primary/standby pair.
pub fn pdb(instance: &RdsInstance) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: super::meta(
            instance,
            names::pdb(&instance.name_any()),
            "disruption-budget",
        ),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(super::set_selector(instance, names::SET_HA)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
