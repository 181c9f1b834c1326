//! Services: the read-write endpoint (follows the primary through the role label the supervisor
//! sets), the balanced read-only endpoint and one per read replica, and the headless Service for
//! stable pod DNS names (replication sources).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::crd::RdsInstance;
use crate::names;

fn mysql_port() -> ServicePort {
    ServicePort {
        name: Some(names::MYSQL_PORT_NAME.into()),
        port: names::MYSQL_PORT,
        target_port: Some(IntOrString::String(names::MYSQL_PORT_NAME.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn cluster_ip(
    instance: &RdsInstance,
    name: String,
    component: &str,
    selector: std::collections::BTreeMap<String, String>,
) -> Service {
    Service {
        metadata: super::meta(instance, name, component),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector),
            ports: Some(vec![mysql_port()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The read-write endpoint: only the pod labelled primary. The standby is behind no user Service.
pub fn endpoint(instance: &RdsInstance) -> Service {
    let mut selector = super::set_selector(instance, names::SET_HA);
    selector.insert(names::ROLE_LABEL.into(), names::ROLE_PRIMARY.into());
    cluster_ip(
        instance,
        names::endpoint_service(&instance.name_any()),
        "endpoint",
        selector,
    )
}

/// The balanced read-only endpoint over every read replica.
pub fn read_only(instance: &RdsInstance) -> Service {
    cluster_ip(
        instance,
        names::read_service(&instance.name_any()),
        "read-endpoint",
        super::set_selector(instance, names::SET_READ),
    )
}

/// The endpoint of read replica `i` (its own address).
pub fn read_replica(instance: &RdsInstance, i: u32) -> Service {
    let name = instance.name_any();
    let mut selector = super::set_selector(instance, names::SET_READ);
    selector.insert(
        "statefulset.kubernetes.io/pod-name".into(),
        format!("{}-{i}", names::read_statefulset(&name)),
    );
    cluster_ip(
        instance,
        names::read_replica_service(&name, i),
        "read-endpoint",
        selector,
    )
}

/// The headless Service; it publishes not-ready pods too, so a replica finds a starting primary.
pub fn nodes(instance: &RdsInstance) -> Service {
    Service {
        metadata: super::meta(
            instance,
            names::nodes_service(&instance.name_any()),
            "nodes",
        ),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(super::pod_selector(instance)),
            ports: Some(vec![mysql_port()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use crate::build::fixtures::{instance, spec};

    #[test]
    fn endpoint_selects_the_primary_of_the_pair() {
        let s = endpoint(&instance(spec())).spec.unwrap();
        let sel = s.selector.unwrap();
        assert_eq!(sel[names::ROLE_LABEL], names::ROLE_PRIMARY);
        assert_eq!(sel[names::SET_LABEL], names::SET_HA);
    }

    #[test]
    fn each_read_replica_has_its_own_address() {
        let s = read_replica(&instance(spec()), 2);
        assert_eq!(s.metadata.name.as_deref(), Some("orders-ro-2"));
        assert_eq!(
            s.spec.unwrap().selector.unwrap()["statefulset.kubernetes.io/pod-name"],
            "orders-ro-2"
        );
    }

    #[test]
    fn headless_service_publishes_starting_pods() {
        let s = nodes(&instance(spec())).spec.unwrap();
        assert_eq!(s.cluster_ip.as_deref(), Some("None"));
        assert_eq!(s.publish_not_ready_addresses, Some(true));
    }
}
