//! ServiceMonitor and PrometheusRule (Prometheus Operator kinds), built only when the instance
//! asks for them and the cluster has their CRDs. The types carry just the fields we set.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::crd::{Edition, RedisInstance};
use crate::names;
use crate::plan::Plan;

/// `monitoring.coreos.com/v1` ServiceMonitor (the subset we use).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "ServiceMonitor",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// Services to scrape.
    pub selector: LabelSelector,
    /// Their endpoints.
    pub endpoints: Vec<MonitorEndpoint>,
}

/// One scraped port.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MonitorEndpoint {
    /// Port name.
    pub port: String,
    /// Scrape interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// `monitoring.coreos.com/v1` PrometheusRule (the subset we use).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "PrometheusRule",
    namespaced,
    schema = "disabled"
)]
pub struct PrometheusRuleSpec {
    /// Rule groups.
    pub groups: Vec<RuleGroup>,
}

/// A rule group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RuleGroup {
    /// Group name.
    pub name: String,
    /// Alerts.
    pub rules: Vec<AlertRule>,
}

/// One alert.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct AlertRule {
    /// Alert name.
    pub alert: String,
    /// PromQL.
    pub expr: String,
    /// Pending duration.
    #[serde(rename = "for")]
    pub for_: String,
    /// Labels (severity).
    pub labels: BTreeMap<String, String>,
    /// Summary.
    pub annotations: BTreeMap<String, String>,
}

/// Which Prometheus Operator kinds the cluster has (looked up at start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MonitoringKinds {
    /// servicemonitors.monitoring.coreos.com exists.
    pub service_monitor: bool,
    /// prometheusrules.monitoring.coreos.com exists.
    pub prometheus_rule: bool,
}

/// The ServiceMonitor scraping the exporter port of the headless Service.
pub fn service_monitor(instance: &RedisInstance) -> ServiceMonitor {
    let name = instance.name_any();
    let mut sm = ServiceMonitor::new(
        &name,
        ServiceMonitorSpec {
            selector: LabelSelector {
                match_labels: Some(super::child_labels(instance, "nodes")),
                ..Default::default()
            },
            endpoints: vec![MonitorEndpoint {
                port: names::METRICS_PORT_NAME.into(),
                interval: Some("30s".into()),
            }],
        },
    );
    sm.metadata = super::meta(instance, name, "service-monitor");
    sm
}

fn alert(name: &str, expr: String, for_: &str, severity: &str, summary: String) -> AlertRule {
    AlertRule {
        alert: name.into(),
        expr,
        for_: for_.into(),
        labels: [("severity".to_owned(), severity.to_owned())].into(),
        annotations: [("summary".to_owned(), summary)].into(),
    }
}

/// The instance's alerts: down, failover happened, connections > 80%, memory > 80%,
/// replication broken.
pub fn prometheus_rule(instance: &RedisInstance, plan: &Plan) -> PrometheusRule {
    let name = instance.name_any();
    let ns = instance.namespace().unwrap_or_default();
    let sel = format!(
        r#"namespace="{ns}",service="{}""#,
        names::nodes_service(&name)
    );
    let who = format!("RedisInstance {ns}/{name}");
    let mut rules = vec![
        alert(
            "RedisInstanceDown",
            format!("redis_up{{{sel}}} == 0"),
            "1m",
            "critical",
            format!("{who}: a node does not answer its exporter"),
        ),
        alert(
            "RedisFailoverHappened",
            format!(
                r#"increase(agility_redis_failovers_total{{namespace="{ns}",name="{name}"}}[10m]) > 0"#
            ),
            "0m",
            "warning",
            format!("{who}: the operator promoted a replica in the last 10 minutes"),
        ),
        alert(
            "RedisConnectionsHigh",
            format!("redis_connected_clients{{{sel}}} / redis_config_maxclients{{{sel}}} > 0.8"),
            "5m",
            "warning",
            format!("{who}: more than 80% of maxclients in use"),
        ),
        alert(
            "RedisMemoryHigh",
            format!("redis_memory_used_bytes{{{sel}}} / redis_memory_max_bytes{{{sel}}} > 0.8"),
            "5m",
            "warning",
            format!("{who}: more than 80% of maxmemory used"),
        ),
    ];
    if plan.pods_per_shard > 1 {
        let replicas = plan.shards * (plan.pods_per_shard - 1);
        let expr = match plan.edition {
            Edition::Cluster => format!("sum(redis_master_link_up{{{sel}}}) < {replicas}"),
            _ => format!("sum(redis_connected_slaves{{{sel}}}) < {replicas}"),
        };
        rules.push(alert(
            "RedisReplicationBroken",
            expr,
            "2m",
            "critical",
            format!("{who}: a replica is not replicating"),
        ));
    }
    let mut pr = PrometheusRule::new(
        &name,
        PrometheusRuleSpec {
            groups: vec![RuleGroup {
                name: format!("redis-{ns}-{name}"),
                rules,
            }],
        },
    );
    pr.metadata = super::meta(instance, name, "alerts");
    pr
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::build::fixtures::instance;
    use crate::crd::RedisInstanceSpec;
    use crate::plan::{OperatorSettings, plan};

    #[test]
    fn alerts_cover_the_issue_list_and_select_this_instance() {
        let i = instance(RedisInstanceSpec {
            instance_class: Some("redis.master.small.special2x".into()),
            ..Default::default()
        });
        let p = plan(&i.spec, &OperatorSettings::default()).unwrap();
        let pr = prometheus_rule(&i, &p);
        let rules = &pr.spec.groups[0].rules;
        let names: Vec<_> = rules.iter().map(|r| r.alert.as_str()).collect();
        assert_eq!(
            names,
            [
                "RedisInstanceDown",
                "RedisFailoverHappened",
                "RedisConnectionsHigh",
                "RedisMemoryHigh",
                "RedisReplicationBroken"
            ]
        );
        assert!(
            rules[0]
                .expr
                .contains(r#"namespace="shop",service="orders-nodes""#),
            "{}",
            rules[0].expr
        );
        assert_eq!(
            rules[4].expr,
            r#"sum(redis_connected_slaves{namespace="shop",service="orders-nodes"}) < 1"#
        );
        let yaml = serde_json::to_value(&pr).unwrap();
        assert_eq!(yaml["spec"]["groups"][0]["rules"][0]["for"], "1m");
        assert_eq!(yaml["apiVersion"], "monitoring.coreos.com/v1");
    }

    #[test]
    fn service_monitor_scrapes_the_metrics_port_of_the_headless_service() {
        let i = instance(RedisInstanceSpec {
            instance_class: Some("redis.master.small.special2x".into()),
            ..Default::default()
        });
        let sm = service_monitor(&i);
        let labels = sm.spec.selector.match_labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/component"], "nodes");
        assert_eq!(sm.spec.endpoints[0].port, "metrics");
    }
}
