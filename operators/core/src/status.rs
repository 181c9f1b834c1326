//! Status helpers: kstatus-compatible conditions with stable `lastTransitionTime`, and a status
//! writer that patches the status subresource only when the status actually changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::{Client, Resource};
use serde::Serialize;
use serde_json::{Value, json};

use crate::apply::{OwnedKind, dynamic_api};
use crate::error::{Error, Result};

/// `Ready`: the object is fully reconciled and usable (the condition kstatus, Flux and Argo CD read).
pub const READY: &str = "Ready";
/// `Progressing`: the operator is moving the object towards its spec (rollout, scaling).
pub const PROGRESSING: &str = "Progressing";
/// `Degraded`: the object works but with reduced capacity or redundancy.
pub const DEGRADED: &str = "Degraded";

/// Kubernetes caps condition messages at 32768 bytes; longer cause chains are cut.
const MAX_MESSAGE: usize = 32 * 1024;

/// A condition whose status flipped (or that appeared) in an update; published as an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Condition type.
    pub type_: String,
    /// New status: "True", "False" or "Unknown".
    pub status: String,
    /// New reason.
    pub reason: String,
    /// New message.
    pub message: String,
}

impl Transition {
    /// Whether this transition is bad news (Ready/Progressing turned False, Degraded turned True).
    pub fn is_warning(&self) -> bool {
        match self.type_.as_str() {
            DEGRADED => self.status == "True",
            _ => self.status == "False",
        }
    }
}

/// Builds the next list of conditions from the previous one. Conditions that are not set again
/// are kept as they were; a condition's `lastTransitionTime` only changes when its status flips.
#[derive(Clone, Debug)]
pub struct Conditions {
    conditions: Vec<Condition>,
    transitions: Vec<Transition>,
    generation: Option<i64>,
    now: Time,
}

impl Conditions {
    /// Starts from the object's current conditions; `generation` is the object's
    /// `metadata.generation` (recorded as each condition's `observedGeneration`).
    pub fn new(previous: &[Condition], generation: Option<i64>) -> Self {
        Self::at(previous, generation, Time(Timestamp::now()))
    }

    /// Like [`Conditions::new`] with an explicit clock (tests).
    pub fn at(previous: &[Condition], generation: Option<i64>, now: Time) -> Self {
        Conditions {
            conditions: previous.to_vec(),
            transitions: Vec::new(),
            generation,
            now,
        }
    }

    /// Sets condition `type_` to `status` with a CamelCase `reason` and a human `message`.
    pub fn set(&mut self, type_: &str, status: bool, reason: &str, message: &str) -> &mut Self {
        let status = if status { "True" } else { "False" };
        self.set_status(type_, status, reason, message)
    }

    /// Sets a condition with an explicit status string ("True", "False" or "Unknown").
    pub fn set_status(
        &mut self,
        type_: &str,
        status: &str,
        reason: &str,
        message: &str,
    ) -> &mut Self {
        let message = truncate(message, MAX_MESSAGE);
        let next = Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.clone(),
            observed_generation: self.generation,
            last_transition_time: self.now.clone(),
        };
        match self.conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) if existing.status == status => {
                // Same status: keep the transition time so a steady state rewrites nothing.
                existing.reason = next.reason;
                existing.message = next.message;
                existing.observed_generation = next.observed_generation;
            }
            Some(existing) => {
                *existing = next;
                self.transitions.push(transition(existing));
            }
            None => {
                self.transitions.push(transition(&next));
                self.conditions.push(next);
            }
        }
        self
    }

    /// Removes condition `type_` (when it no longer applies).
    pub fn remove(&mut self, type_: &str) -> &mut Self {
        self.conditions.retain(|c| c.type_ != type_);
        self
    }

    /// The transitions made so far.
    pub fn transitions(&self) -> &[Transition] {
        &self.transitions
    }

    /// The resulting conditions.
    pub fn into_vec(self) -> Vec<Condition> {
        self.conditions
    }

    /// The resulting conditions and the transitions.
    pub fn finish(self) -> (Vec<Condition>, Vec<Transition>) {
        (self.conditions, self.transitions)
    }
}

fn transition(c: &Condition) -> Transition {
    Transition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
    }
}

/// Cuts `s` to at most `max` bytes on a char boundary, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Remembers the status last written per object together with the resourceVersion the object
/// had when we wrote it.
///
/// A controller reads objects from its watch cache; right after a status write the cache may still
/// hold the old object, and the next reconcile would compute the same new status, see a
/// difference and write it again (a no-op write). While the cached object is still the one we
/// wrote against and the status is the same, the write is known to be done and is skipped. Once
/// the cache moves on (any new resourceVersion), the normal compare applies again.
#[derive(Debug, Default)]
pub struct StatusMemo {
    entries: std::sync::Mutex<std::collections::HashMap<String, (String, u64)>>,
}

impl StatusMemo {
    /// True if `status_hash` was already written for `key` while the object was at
    /// `resource_version` (the cache has not caught up yet).
    pub fn already_written(&self, key: &str, resource_version: &str, status_hash: u64) -> bool {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((rv, hash)) if rv == resource_version => *hash == status_hash,
            Some(_) => {
                // The cache moved past our write; the entry has served its purpose.
                entries.remove(key);
                false
            }
            None => false,
        }
    }

    /// Records a status write made against `resource_version`.
    pub fn record(&self, key: &str, resource_version: &str, status_hash: u64) {
        self.lock()
            .insert(key.to_owned(), (resource_version.to_owned(), status_hash));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (String, u64)>> {
        // Plain data; a poisoned lock still holds a consistent map.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Hash of a status value (see [`StatusMemo`]).
pub fn status_hash(status: &Value) -> u64 {
    crate::apply::fnv1a64(status.to_string().as_bytes())
}

/// True when `next` differs from the live status (compared as JSON, so field order and
/// representation do not matter).
pub fn status_changed<S: Serialize>(live: Option<&S>, next: &S) -> Result<bool> {
    let ser = |what: &str, v: serde_json::Result<Value>| {
        v.map_err(|source| Error::Serialize {
            what: what.to_owned(),
            source,
        })
    };
    let live = ser("live status", serde_json::to_value(live))?;
    let next = ser("desired status", serde_json::to_value(next))?;
    Ok(live != next)
}

/// Writes `status` to `obj`'s status subresource with server-side apply, only if it differs from
/// `obj`'s current status. Returns whether a write happened.
pub async fn patch_status<K>(
    client: &Client,
    field_manager: &str,
    obj: &K,
    status: &K::Status,
) -> Result<bool>
where
    K: Resource<DynamicType = ()> + HasStatus,
    K::Status: Serialize,
{
    if !status_changed(obj.status(), status)? {
        return Ok(false);
    }
    let value = serde_json::to_value(status).map_err(|source| Error::Serialize {
        what: format!("{} status", K::kind(&())),
        source,
    })?;
    let resource = ApiResource::erase::<K>(&());
    let meta = obj.meta();
    apply_status(
        client,
        field_manager,
        &resource,
        meta.namespace.as_deref(),
        meta.name.as_deref(),
        value,
    )
    .await?;
    Ok(true)
}

/// Server-side applies `status` to the status subresource of a (possibly dynamic) object.
pub(crate) async fn apply_status(
    client: &Client,
    field_manager: &str,
    resource: &ApiResource,
    namespace: Option<&str>,
    name: Option<&str>,
    status: Value,
) -> Result<()> {
    let name = name.ok_or_else(|| Error::Internal(format!("{} without a name", resource.kind)))?;
    let kind = OwnedKind {
        resource: resource.clone(),
        namespaced: namespace.is_some(),
    };
    let api = dynamic_api(client, &kind, namespace);
    let body = json!({"apiVersion": resource.api_version, "kind": resource.kind, "status": status});
    let params = PatchParams::apply(field_manager).force();
    api.patch_status(name, &params, &Patch::Apply(&body))
        .await
        .map_err(|e| Error::kube(format!("update status of {} {name}", resource.kind), e))?;
    Ok(())
}

/// For a failed reconcile: the object's status with `Ready=False` (reason = error category, message
/// = cause chain) and `observedGeneration` set, or None when that is already the live status.
///
/// Works on the raw object, so it also covers objects that cannot be decoded into the product type.
/// Other status fields are kept untouched.
pub fn failed_status(obj: &DynamicObject, reason: &str, message: &str, now: Time) -> Option<Value> {
    let live = obj.data.get("status").cloned().unwrap_or(Value::Null);
    let mut status = match &live {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    // A status we cannot parse (e.g. a broken object) is rebuilt from nothing rather than kept.
    let previous: Vec<Condition> = status
        .get("conditions")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default();
    let generation = obj.metadata.generation;
    let mut conditions = Conditions::at(&previous, generation, now);
    conditions.set(READY, false, reason, message);
    let conditions = serde_json::to_value(conditions.into_vec()).ok()?;
    status.insert("conditions".into(), conditions);
    if let Some(generation) = generation {
        status.insert("observedGeneration".into(), json!(generation));
    }
    let next = Value::Object(status);
    (next != live).then_some(next)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use crate::testing::{ApiServerMock, object_response};
    use kube::api::ObjectMeta;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(1_700_000_000 + secs).unwrap())
    }

    #[test]
    fn transition_time_changes_only_on_status_flip() {
        let mut c = Conditions::at(&[], Some(1), t(0));
        c.set(READY, false, "Creating", "waiting for pods");
        let (first, transitions) = c.finish();
        assert_eq!(transitions.len(), 1);
        assert_eq!(first[0].last_transition_time, t(0));
        assert_eq!(first[0].observed_generation, Some(1));

        // Same status, new reason/message/generation: time stays, no transition.
        let mut c = Conditions::at(&first, Some(2), t(10));
        c.set(READY, false, "Scaling", "1/3 pods");
        let (second, transitions) = c.finish();
        assert!(transitions.is_empty());
        assert_eq!(second[0].last_transition_time, t(0));
        assert_eq!(second[0].reason, "Scaling");
        assert_eq!(second[0].observed_generation, Some(2));

        // Flip: new time and a transition.
        let mut c = Conditions::at(&second, Some(2), t(20));
        c.set(READY, true, "Ready", "3/3 pods");
        let (third, transitions) = c.finish();
        assert_eq!(third[0].last_transition_time, t(20));
        assert_eq!(
            transitions,
            vec![Transition {
                type_: READY.into(),
                status: "True".into(),
                reason: "Ready".into(),
                message: "3/3 pods".into()
            }]
        );
        assert!(!transitions[0].is_warning());
    }

    #[test]
    fn unset_conditions_are_kept_and_order_is_stable() {
        let mut c = Conditions::at(&[], Some(1), t(0));
        c.set(READY, true, "Ready", "")
            .set(DEGRADED, false, "AllReplicas", "");
        let prev = c.into_vec();
        let mut c = Conditions::at(&prev, Some(1), t(5));
        c.set(DEGRADED, true, "ReplicaDown", "1 of 3 down");
        let (next, transitions) = c.finish();
        assert_eq!(
            next.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            vec![READY, DEGRADED]
        );
        assert_eq!(next[0], prev[0]);
        assert!(transitions[0].is_warning());
        let mut c = Conditions::at(&next, Some(1), t(6));
        c.remove(DEGRADED);
        assert_eq!(c.into_vec().len(), 1);
    }

    #[test]
    fn equal_status_is_not_rewritten() {
        #[derive(Serialize)]
        struct S {
            ready: bool,
            conditions: Vec<Condition>,
        }
        let mut c = Conditions::at(&[], Some(1), t(0));
        c.set(READY, true, "Ready", "ok");
        let live = S {
            ready: true,
            conditions: c.into_vec(),
        };
        // Rebuilding the status from the live conditions at a later time yields an equal status.
        let mut c = Conditions::at(&live.conditions, Some(1), t(99));
        c.set(READY, true, "Ready", "ok");
        let next = S {
            ready: true,
            conditions: c.into_vec(),
        };
        assert!(!status_changed(Some(&live), &next).unwrap());
        assert!(status_changed(None, &next).unwrap());
        let other = S {
            ready: false,
            conditions: next.conditions.clone(),
        };
        assert!(status_changed(Some(&live), &other).unwrap());
    }

    #[test]
    fn memo_skips_rewrites_until_the_cache_catches_up() {
        let m = StatusMemo::default();
        assert!(!m.already_written("ns/w", "10", 1));
        m.record("ns/w", "10", 1);
        assert!(
            m.already_written("ns/w", "10", 1),
            "stale cache, same status: skip"
        );
        assert!(
            !m.already_written("ns/w", "10", 2),
            "stale cache, different status: write"
        );
        assert!(
            !m.already_written("ns/w", "11", 1),
            "cache caught up: compare normally"
        );
        assert!(
            !m.already_written("ns/w", "10", 1),
            "entry dropped once the cache moved on"
        );
    }

    #[test]
    fn messages_are_truncated_on_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        let s = "é".repeat(10); // 20 bytes
        let cut = truncate(&s, 8);
        assert!(cut.len() <= 8, "{cut}");
        assert!(cut.ends_with("..."));
    }

    fn dynamic(status: Value, generation: i64) -> DynamicObject {
        DynamicObject {
            types: None,
            metadata: ObjectMeta {
                name: Some("w".into()),
                namespace: Some("ns".into()),
                generation: Some(generation),
                ..Default::default()
            },
            data: json!({"spec": {}, "status": status}),
        }
    }

    #[test]
    fn failed_status_sets_ready_false_once() {
        let obj = dynamic(json!({"endpoint": "x:1"}), 3);
        let next = failed_status(&obj, "InvalidSpec", "bad size", t(0)).unwrap();
        assert_eq!(next["endpoint"], "x:1", "other fields kept");
        assert_eq!(next["observedGeneration"], 3);
        assert_eq!(next["conditions"][0]["type"], "Ready");
        assert_eq!(next["conditions"][0]["status"], "False");
        assert_eq!(next["conditions"][0]["reason"], "InvalidSpec");
        assert_eq!(next["conditions"][0]["message"], "bad size");
        assert_eq!(next["conditions"][0]["observedGeneration"], 3);
        // Applying it and failing the same way again: nothing to write.
        let obj = dynamic(next, 3);
        assert_eq!(failed_status(&obj, "InvalidSpec", "bad size", t(50)), None);
        // A different message is a change (but keeps the transition time).
        let again = failed_status(&obj, "InvalidSpec", "bad size 2", t(60)).unwrap();
        assert_eq!(
            again["conditions"][0]["lastTransitionTime"],
            obj.data["status"]["conditions"][0]["lastTransitionTime"]
        );
    }

    #[test]
    fn failed_status_replaces_unparseable_conditions() {
        let obj = dynamic(json!({"conditions": "garbage"}), 1);
        let next = failed_status(&obj, "InvalidSpec", "m", t(0)).unwrap();
        assert_eq!(next["conditions"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn apply_status_targets_the_status_subresource() {
        let (client, mut server) = ApiServerMock::new();
        let task = tokio::spawn(async move {
            let req = server.next().await;
            assert_eq!(req.method, "PATCH");
            assert_eq!(
                req.path,
                "/apis/test.agility.dev/v1alpha1/namespaces/ns/widgets/w/status"
            );
            assert_eq!(req.body["kind"], "Widget");
            assert_eq!(req.body["status"]["ready"], true);
            let body = req.body.clone();
            req.respond(object_response(&body));
        });
        let resource = ApiResource {
            group: "test.agility.dev".into(),
            version: "v1alpha1".into(),
            api_version: "test.agility.dev/v1alpha1".into(),
            kind: "Widget".into(),
            plural: "widgets".into(),
        };
        apply_status(
            &client,
            "agility-operator/widget",
            &resource,
            Some("ns"),
            Some("w"),
            json!({"ready": true}),
        )
        .await
        .unwrap();
        task.await.unwrap();
    }
}
