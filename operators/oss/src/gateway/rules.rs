//! The rules in force: loaded from a file (tests, benches) or watched in the store's rules
//! ConfigMap, swapped atomically so a request sees one rule set from start to end.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{error, info, warn};

use super::GatewayError;
use super::config::GatewayConfig;
use super::metrics::GatewayMetrics;
use crate::names::GATEWAY_RULES_KEY;
use agility_core::shutdown::CancellationToken;

/// The current rules, shared by every connection.
#[derive(Default)]
pub struct Rules {
    current: RwLock<Arc<GatewayConfig>>,
    loaded: AtomicBool,
}

impl Rules {
    /// The rules now (a cheap `Arc` clone; the lock is held only for the clone).
    pub fn get(&self) -> Arc<GatewayConfig> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether rules were loaded at least once.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Puts `config` in force.
    pub fn set(&self, config: GatewayConfig) {
        let new = Arc::new(config);
        match self.current.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        self.loaded.store(true, Ordering::Release);
    }

    /// Parses `rules.json` and puts it in force; on an error the previous rules stay.
    pub fn load_json(&self, json: &str) -> Result<(), GatewayError> {
        let config: GatewayConfig =
            serde_json::from_str(json).map_err(|e| GatewayError::Rules(e.to_string()))?;
        self.set(config);
        Ok(())
    }

    /// Loads a rules file (the `--rules-file` alternative to the ConfigMap).
    pub fn load_file(&self, path: &Path) -> Result<(), GatewayError> {
        let json = std::fs::read_to_string(path)
            .map_err(|e| GatewayError::Rules(format!("reading {}: {e}", path.display())))?;
        self.load_json(&json)
    }

    /// Applies one version of the ConfigMap (missing key or bad JSON: keep the previous rules).
    fn apply_configmap(&self, cm: &ConfigMap, metrics: &GatewayMetrics) {
        let name = cm.metadata.name.as_deref().unwrap_or_default();
        let Some(json) = cm.data.as_ref().and_then(|d| d.get(GATEWAY_RULES_KEY)) else {
            metrics.rules_error();
            error!(
                configmap = name,
                key = GATEWAY_RULES_KEY,
                "rules ConfigMap has no rules; keeping the previous rules"
            );
            return;
        };
        match self.load_json(json) {
            Ok(()) => info!(
                configmap = name,
                buckets = self.get().buckets.len(),
                resource_version = cm.metadata.resource_version.as_deref().unwrap_or_default(),
                "gateway rules loaded"
            ),
            Err(e) => {
                metrics.rules_error();
                error!(configmap = name, error = %e, "bad gateway rules; keeping the previous rules");
            }
        }
    }
}

/// Watches the one ConfigMap `name` in `namespace` (field selector on `metadata.name`, so a Role
/// with get/list/watch on that ConfigMap alone is enough) until `stop`.
pub async fn watch_configmap(
    client: kube::Client,
    namespace: &str,
    name: &str,
    rules: Arc<Rules>,
    metrics: GatewayMetrics,
    stop: CancellationToken,
) {
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api, config).default_backoff().boxed();
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            e = events.next() => e,
        };
        match event {
            Some(Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm))) => {
                rules.apply_configmap(&cm, &metrics);
            }
            Some(Ok(watcher::Event::Delete(_))) => {
                // Fail safe would be "everything private", but a deleted ConfigMap is an accident
                // the operator repairs within a reconcile; dropping public access meanwhile
                // would break every public site for nothing.
                warn!(
                    configmap = name,
                    "rules ConfigMap deleted; keeping the previous rules"
                );
            }
            Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
            Some(Err(e)) => {
                warn!(configmap = name, error = %e, "watching the rules ConfigMap; retrying")
            }
            None => return,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crd::Acl;
    use std::collections::BTreeMap;

    fn cm(json: Option<&str>) -> ConfigMap {
        ConfigMap {
            data: json.map(|j| BTreeMap::from([(GATEWAY_RULES_KEY.to_owned(), j.to_owned())])),
            ..Default::default()
        }
    }

    #[test]
    fn bad_json_keeps_the_previous_rules() {
        let rules = Rules::default();
        let m = GatewayMetrics::new().unwrap();
        assert!(!rules.loaded());
        rules.apply_configmap(&cm(Some("{not json")), &m);
        assert!(!rules.loaded());
        rules.apply_configmap(&cm(Some(r#"{"buckets":{"b":{"acl":"public-read"}}}"#)), &m);
        assert!(rules.loaded());
        assert_eq!(rules.get().buckets["b"].acl, Acl::PublicRead);
        rules.apply_configmap(&cm(Some(r#"{"buckets":{"b":{"acl":"public"}}}"#)), &m);
        rules.apply_configmap(&cm(None), &m);
        assert_eq!(rules.get().buckets["b"].acl, Acl::PublicRead);
        assert!(
            String::from_utf8(m.encode())
                .unwrap()
                .contains("agility_oss_gateway_rules_errors_total 3")
        );
        rules.apply_configmap(&cm(Some("{}")), &m);
        assert!(rules.get().buckets.is_empty());
    }
}
