//! Waiting for CustomResourceDefinitions to be established before watching them: a watch on a kind
//! the API server does not serve yet fails with 404 and would only be retried with backoff.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::error::{Error, Result};

/// How often to log while still waiting.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// True when the CRD's `Established` condition is True.
pub fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// Waits until CRD `name` (`<plural>.<group>`) exists and is Established, logging every 30s.
/// Returns Ok(false) if `shutdown` fires first.
pub async fn wait_established(
    client: &Client,
    name: &str,
    shutdown: &CancellationToken,
) -> Result<bool> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    loop {
        let wait = await_condition(api.clone(), name, conditions::is_crd_established());
        tokio::select! {
            () = shutdown.cancelled() => return Ok(false),
            res = tokio::time::timeout(LOG_EVERY, wait) => match res {
                Ok(Ok(_)) => return Ok(true),
                Ok(Err(e)) => return Err(Error::Internal(format!("waiting for CRD {name}: {e}"))),
                Err(_) => info!(crd = name, "still waiting for the CRD to be established"),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;

    #[test]
    fn established_needs_the_true_condition() {
        let crd = |status: Option<&str>| -> CustomResourceDefinition {
            let conditions = status.map(|s| {
                serde_json::json!([{"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": s}])
            });
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "widgets.test.agility.dev"},
                "spec": {"group": "test.agility.dev", "names": {"kind": "Widget", "plural": "widgets"},
                         "scope": "Namespaced", "versions": []},
                "status": {"conditions": conditions}
            }))
            .unwrap()
        };
        assert!(is_established(&crd(Some("True"))));
        assert!(!is_established(&crd(Some("False"))));
        assert!(!is_established(&crd(None)));
    }
}
