//! Kubernetes events (events.k8s.io/v1) for transitions, through kube-runtime's Recorder.
//!
//! The Recorder folds repeats of the same (object, reason, action) into one Event with a series
//! count (a PATCH), which is why the operator's RBAC needs `create` and `patch` on
//! `events.k8s.io/events`. Publishing is best effort: a failed event never fails a reconcile.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

use crate::status::{Transition, truncate};

/// The events API caps notes at 1 kB.
const MAX_NOTE: usize = 1024;

/// Publishes events for one controller.
#[derive(Clone)]
pub struct EventPublisher {
    recorder: Recorder,
}

/// Severity of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Expected progress.
    Normal,
    /// Something needs attention.
    Warning,
}

impl EventPublisher {
    /// A publisher reporting as `agility-operator/<controller>` from `instance` (the pod name).
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: reporting_controller(controller),
            instance,
        };
        EventPublisher {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Publishes one event about `regarding`. `reason` and `action` are CamelCase identifiers.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        severity: Severity,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let event = Event {
            type_: match severity {
                Severity::Normal => EventType::Normal,
                Severity::Warning => EventType::Warning,
            },
            reason: reason.to_owned(),
            note: Some(truncate(note, MAX_NOTE)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(err) = self.recorder.publish(&event, regarding).await {
            warn!(error = %err, reason, "cannot publish event");
        }
    }

    /// Publishes one event per condition transition (reason = condition reason).
    pub async fn transitions(&self, regarding: &ObjectReference, transitions: &[Transition]) {
        for t in transitions {
            let severity = if t.is_warning() {
                Severity::Warning
            } else {
                Severity::Normal
            };
            let note = if t.message.is_empty() {
                format!("{} is now {}", t.type_, t.status)
            } else {
                format!("{} is now {}: {}", t.type_, t.status, t.message)
            };
            self.publish(
                regarding,
                severity,
                &t.reason,
                &format!("Set{}", t.type_),
                &note,
            )
            .await;
        }
    }
}

/// The events API requires a qualified name; `agility-operator/<controller>` is one.
pub fn reporting_controller(controller: &str) -> String {
    crate::apply::field_manager(controller)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use crate::testing::{ApiServerMock, object_response};

    #[tokio::test]
    async fn publishes_an_events_k8s_io_event() {
        let (client, mut server) = ApiServerMock::new();
        let task = tokio::spawn(async move {
            let req = server.next().await;
            assert_eq!(req.method, "POST");
            assert_eq!(req.path, "/apis/events.k8s.io/v1/namespaces/ns/events");
            assert_eq!(req.body["reason"], "InvalidSpec");
            assert_eq!(req.body["type"], "Warning");
            assert_eq!(req.body["reportingController"], "agility-operator/widget");
            assert_eq!(req.body["reportingInstance"], "pod-0");
            assert_eq!(req.body["regarding"]["name"], "w1");
            assert_eq!(req.body["note"].as_str().unwrap().len(), 1024);
            let body = req.body.clone();
            req.respond(object_response(&body));
        });
        let p = EventPublisher::new(client, "widget", Some("pod-0".into()));
        let regarding = ObjectReference {
            api_version: Some("test.agility.dev/v1alpha1".into()),
            kind: Some("Widget".into()),
            name: Some("w1".into()),
            namespace: Some("ns".into()),
            uid: Some("u".into()),
            ..Default::default()
        };
        p.publish(
            &regarding,
            Severity::Warning,
            "InvalidSpec",
            "Reconcile",
            &"x".repeat(5000),
        )
        .await;
        task.await.unwrap();
    }
}
