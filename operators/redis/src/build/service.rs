//! Services: the endpoint (follows the master via the role label the supervisor sets) and the
//! headless Service for stable pod DNS names.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::crd::{Edition, RedisInstance};
use crate::names;
use crate::plan::Plan;

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// The endpoint Service. Standard/cache: selects only the pod labelled master, so the address
/// follows failovers. Cluster: every node (clients discover the rest with CLUSTER SLOTS).
pub fn endpoint(instance: &RedisInstance, plan: &Plan) -> Service {
    let mut selector = super::pod_selector(instance);
    if plan.edition != Edition::Cluster {
        selector.insert(names::ROLE_LABEL.into(), names::ROLE_MASTER.into());
    }
    Service {
        metadata: super::meta(
            instance,
            names::endpoint_service(&instance.name_any()),
            "endpoint",
        ),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector),
            ports: Some(vec![port(names::REDIS_PORT_NAME, names::REDIS_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The headless Service (also publishes not-ready pods: replicas must find a starting master).
pub fn nodes(instance: &RedisInstance, plan: &Plan) -> Service {
    let mut ports = vec![port(names::REDIS_PORT_NAME, names::REDIS_PORT)];
    if plan.edition == Edition::Cluster {
        ports.push(port(names::BUS_PORT_NAME, names::CLUSTER_BUS_PORT));
    }
    if plan.exporter {
        ports.push(port(names::METRICS_PORT_NAME, names::EXPORTER_PORT));
    }
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
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::build::fixtures::instance;
    use crate::crd::RedisInstanceSpec;
    use crate::plan::{OperatorSettings, plan};

    #[test]
    fn endpoint_follows_the_master_label() {
        let i = instance(RedisInstanceSpec {
            instance_class: Some("redis.master.small.special2x".into()),
            ..Default::default()
        });
        let p = plan(&i.spec, &OperatorSettings::default()).unwrap();
        let svc = endpoint(&i, &p);
        let sel = svc.spec.unwrap().selector.unwrap();
        assert_eq!(
            sel.get(names::ROLE_LABEL).map(String::as_str),
            Some("master")
        );
        assert_eq!(
            sel.get("app.kubernetes.io/instance").map(String::as_str),
            Some("orders")
        );
        let headless = nodes(&i, &p).spec.unwrap();
        assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
        assert!(!headless.selector.unwrap().contains_key(names::ROLE_LABEL));
        assert_eq!(headless.ports.unwrap().len(), 2, "redis + metrics");
    }
}
