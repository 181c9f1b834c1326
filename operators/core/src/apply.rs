//! Server-side apply of child objects, with "no write when nothing changed" and pruning.
//!
//! Pipeline per reconcile: build typed desired children (pure) → [`Child::new`] → [`ChildApplier::apply`]
//! each → [`ChildApplier::prune`] deletes the children of this owner that were not applied this time.
//!
//! Steady state must make zero API writes. Before applying we read the live object and skip the
//! apply when (a) its `agility.dev/applied-hash` annotation equals the hash of the desired object
//! and (b) every field we set still has the value we set (a subset compare, which catches manual
//! edits of managed fields). Server-added fields (defaults, status, other managers) are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions,
};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::{debug, info};

use crate::error::{Error, Result};
use crate::labels;

/// Compile-time scope of a child kind (k8s-openapi's scope marker types carry no runtime value).
pub trait Scope {
    /// True for namespaced kinds.
    const NAMESPACED: bool;
}
impl Scope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scope for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// A kind of child object a controller owns: watched (to trigger the owner) and pruned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedKind {
    /// Group/version/kind/plural.
    pub resource: ApiResource,
    /// Whether objects of this kind live in a namespace.
    pub namespaced: bool,
}

impl OwnedKind {
    /// The owned-kind descriptor of a typed resource.
    pub fn of<C>() -> Self
    where
        C: Resource<DynamicType = ()>,
        C::Scope: Scope,
    {
        OwnedKind {
            resource: ApiResource::erase::<C>(&()),
            namespaced: C::Scope::NAMESPACED,
        }
    }
}

/// The owner of children: the custom object being reconciled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `group/version` of the owner.
    pub api_version: String,
    /// Kind of the owner.
    pub kind: String,
    /// Name of the owner.
    pub name: String,
    /// Namespace of the owner (None when cluster-scoped).
    pub namespace: Option<String>,
    /// UID of the owner; owner references and pruning key on it.
    pub uid: String,
}

impl Owner {
    /// Describes `obj` as an owner. Fails if the object has no name or uid (not read from the API).
    pub fn of<K: Resource>(obj: &K, dt: &K::DynamicType) -> Result<Self> {
        let meta = obj.meta();
        let (Some(name), Some(uid)) = (meta.name.clone(), meta.uid.clone()) else {
            return Err(Error::Internal(format!(
                "{} without name or uid cannot own children",
                K::kind(dt)
            )));
        };
        Ok(Owner {
            api_version: K::api_version(dt).into_owned(),
            kind: K::kind(dt).into_owned(),
            name,
            namespace: meta.namespace.clone(),
            uid,
        })
    }

    /// The controller owner reference children carry (`controller` and `blockOwnerDeletion` set,
    /// so garbage collection and `kubectl get --show-owner` work and foreground deletion waits).
    pub fn owner_reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// A desired child object, type-erased so children of different kinds can go in one list.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    kind: OwnedKind,
    component: String,
    name: String,
    value: Value,
}

impl Child {
    /// Erases a typed desired object. `component` becomes `app.kubernetes.io/component`.
    pub fn new<C>(component: &str, obj: &C) -> Result<Self>
    where
        C: Resource<DynamicType = ()> + Serialize,
        C::Scope: Scope,
    {
        let kind = OwnedKind::of::<C>();
        let name = obj.meta().name.clone().ok_or_else(|| {
            Error::Internal(format!(
                "desired {} has no metadata.name",
                kind.resource.kind
            ))
        })?;
        let value = serde_json::to_value(obj).map_err(|source| Error::Serialize {
            what: format!("{} {name}", kind.resource.kind),
            source,
        })?;
        Ok(Child {
            kind,
            component: component.to_owned(),
            name,
            value,
        })
    }

    /// Kind of the child.
    pub fn kind(&self) -> &str {
        &self.kind.resource.kind
    }

    /// Name of the child.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// What [`decide`] concluded for one child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyDecision {
    /// The child does not exist: apply creates it.
    Create,
    /// The desired object changed since the last apply (hash differs).
    Update,
    /// The desired object is the same, but a managed field was changed by someone else.
    Drift {
        /// JSON path of the first differing field.
        path: String,
    },
    /// Live matches desired: no write.
    Unchanged,
}

/// The result of applying one child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Created.
    Created,
    /// Patched (changed spec or repaired drift).
    Updated,
    /// Nothing written.
    Unchanged,
}

/// Counts of what one reconcile did to its children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplySummary {
    /// Children created.
    pub created: usize,
    /// Children patched.
    pub updated: usize,
    /// Children left alone.
    pub unchanged: usize,
    /// Children pruned.
    pub deleted: usize,
}

impl ApplySummary {
    /// Number of API writes made.
    pub fn writes(&self) -> usize {
        self.created + self.updated + self.deleted
    }
}

/// Applies children of one owner for one controller and prunes the rest. Create one per reconcile.
pub struct ChildApplier {
    client: Client,
    controller: Arc<str>,
    product: Arc<str>,
    owner: Owner,
    owned: Arc<[OwnedKind]>,
    applied: BTreeSet<(String, String)>,
    summary: ApplySummary,
}

impl ChildApplier {
    /// An applier for `owner`'s children. `owned` lists every kind the controller may create; only
    /// those are pruned, and applying any other kind is refused (it would never be pruned).
    pub fn new(
        client: Client,
        controller: Arc<str>,
        product: Arc<str>,
        owner: Owner,
        owned: Arc<[OwnedKind]>,
    ) -> Self {
        ChildApplier {
            client,
            controller,
            product,
            owner,
            owned,
            applied: BTreeSet::new(),
            summary: ApplySummary::default(),
        }
    }

    /// The server-side-apply field manager: `agility-operator/<controller>`.
    pub fn field_manager(&self) -> String {
        field_manager(&self.controller)
    }

    /// Applies one child unless it is unchanged; remembers it as desired for [`Self::prune`].
    pub async fn apply(&mut self, child: &Child) -> Result<ApplyOutcome> {
        if !self.owned.contains(&child.kind) {
            return Err(Error::Internal(format!(
                "controller {} applies {} but does not declare it owned",
                self.controller,
                child.kind()
            )));
        }
        let desired = prepare(child, &self.owner, &self.controller, &self.product)?;
        let namespace = desired_namespace(&desired);
        let api = dynamic_api(&self.client, &child.kind, namespace.as_deref());
        let what = format!(
            "{} {}",
            child.kind(),
            qualified(namespace.as_deref(), &child.name)
        );
        self.applied
            .insert((child.kind().to_owned(), child.name.clone()));

        let live = api
            .get_opt(&child.name)
            .await
            .map_err(|e| Error::kube(format!("get {what}"), e))?;
        let live = live
            .map(|obj| serde_json::to_value(&obj))
            .transpose()
            .map_err(|source| Error::Serialize {
                what: what.clone(),
                source,
            })?;
        let outcome = match decide(&desired, live.as_ref()) {
            ApplyDecision::Unchanged => {
                self.summary.unchanged += 1;
                return Ok(ApplyOutcome::Unchanged);
            }
            ApplyDecision::Create => ApplyOutcome::Created,
            ApplyDecision::Update => ApplyOutcome::Updated,
            ApplyDecision::Drift { path } => {
                info!(child = %what, %path, "repairing drift of a managed field");
                ApplyOutcome::Updated
            }
        };
        let params = PatchParams::apply(&self.field_manager()).force();
        api.patch(&child.name, &params, &Patch::Apply(&desired))
            .await
            .map_err(|e| Error::kube(format!("apply {what}"), e))?;
        debug!(child = %what, ?outcome, "applied");
        match outcome {
            ApplyOutcome::Created => self.summary.created += 1,
            _ => self.summary.updated += 1,
        }
        Ok(outcome)
    }

    /// Applies every child in order (stops at the first error, so nothing is pruned after a
    /// partial apply).
    pub async fn apply_all(&mut self, children: &[Child]) -> Result<()> {
        for child in children {
            self.apply(child).await?;
        }
        Ok(())
    }

    /// Deletes children of every owned kind that carry this owner's controller reference and our
    /// labels but were not applied by this applier. Call only after every apply succeeded.
    pub async fn prune(&mut self) -> Result<Vec<String>> {
        let selector =
            labels::selector_string(&labels::selector(&self.controller, &self.owner.name));
        let mut deleted = Vec::new();
        for kind in self.owned.iter() {
            // Children of a namespaced owner live in its namespace; a cluster-scoped owner's
            // namespaced children may be anywhere, so list across namespaces.
            let ns = if kind.namespaced {
                self.owner.namespace.as_deref()
            } else {
                None
            };
            let api = dynamic_api(&self.client, kind, ns);
            let list = api
                .list_metadata(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| Error::kube(format!("list {} for pruning", kind.resource.kind), e))?;
            for item in list.items {
                let name = item.name_any();
                let ours = item
                    .owner_references()
                    .iter()
                    .any(|r| r.uid == self.owner.uid && r.controller == Some(true));
                let wanted = self
                    .applied
                    .contains(&(kind.resource.kind.clone(), name.clone()));
                if !ours || wanted || item.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let what = format!(
                    "{} {}",
                    kind.resource.kind,
                    qualified(item.namespace().as_deref(), &name)
                );
                let api = dynamic_api(&self.client, kind, item.namespace().as_deref());
                // The uid precondition makes sure we never delete a same-named replacement.
                let params = DeleteParams {
                    preconditions: item.uid().map(|uid| Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::background()
                };
                match api.delete(&name, &params).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => continue,
                    Err(e) => return Err(Error::kube(format!("delete {what}"), e)),
                }
                info!(child = %what, "pruned child that is no longer desired");
                self.summary.deleted += 1;
                deleted.push(what);
            }
        }
        Ok(deleted)
    }

    /// What this applier did so far.
    pub fn summary(&self) -> &ApplySummary {
        &self.summary
    }
}

/// The field manager of a controller: `agility-operator/<controller>`.
pub fn field_manager(controller: &str) -> String {
    format!("{}/{controller}", labels::MANAGED_BY_VALUE)
}

fn qualified(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

fn desired_namespace(desired: &Value) -> Option<String> {
    desired
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A dynamic Api for `kind`, namespaced when `namespace` is given.
pub(crate) fn dynamic_api(
    client: &Client,
    kind: &OwnedKind,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) if kind.namespaced => Api::namespaced_with(client.clone(), ns, &kind.resource),
        _ => Api::all_with(client.clone(), &kind.resource),
    }
}

/// Completes a desired child: apiVersion/kind, namespace, standard labels, controller owner
/// reference and the applied-hash annotation. Pure, so it is unit-tested.
pub fn prepare(child: &Child, owner: &Owner, controller: &str, product: &str) -> Result<Value> {
    let mut value = child.value.clone();
    let internal =
        |m: &str| Error::Internal(format!("desired {} {}: {m}", child.kind(), child.name));
    let obj = value
        .as_object_mut()
        .ok_or_else(|| internal("not a JSON object"))?;
    obj.insert(
        "apiVersion".into(),
        Value::String(child.kind.resource.api_version.clone()),
    );
    obj.insert(
        "kind".into(),
        Value::String(child.kind.resource.kind.clone()),
    );
    // Status is never applied through the main resource.
    obj.remove("status");
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| internal("metadata is not an object"))?;
    for server_owned in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "managedFields",
        "generation",
    ] {
        meta.remove(server_owned);
    }
    if child.kind.namespaced {
        match (
            &owner.namespace,
            meta.get("namespace").and_then(Value::as_str),
        ) {
            (Some(owner_ns), Some(ns)) if ns != owner_ns => {
                // Owner references cannot cross namespaces; the GC would delete the child.
                return Err(internal("namespace differs from the owner's"));
            }
            (Some(owner_ns), _) => {
                meta.insert("namespace".into(), Value::String(owner_ns.clone()));
            }
            (None, Some(_)) => {}
            (None, None) => {
                return Err(internal(
                    "namespaced child of a cluster-scoped owner needs a namespace",
                ));
            }
        }
    } else if owner.namespace.is_some() {
        return Err(internal(
            "a namespaced owner cannot own a cluster-scoped child",
        ));
    }
    let mut object_labels: BTreeMap<String, String> = meta
        .get("labels")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|_| internal("labels are not a string map"))?
        .unwrap_or_default();
    object_labels.extend(labels::standard(
        product,
        controller,
        &owner.name,
        &child.component,
    ));
    meta.insert("labels".into(), serde_json::json!(object_labels));
    meta.insert(
        "ownerReferences".into(),
        serde_json::json!([owner.owner_reference()]),
    );

    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| internal("annotations are not an object"))?;
    annotations.remove(labels::APPLIED_HASH);
    // serde_json's Map is ordered (BTreeMap), so serialization and therefore the hash are stable.
    let bytes = serde_json::to_vec(&value).map_err(|source| Error::Serialize {
        what: format!("{} {}", child.kind(), child.name),
        source,
    })?;
    let hash = format!("{:016x}", fnv1a64(&bytes));
    if let Some(annotations) = value
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.insert(labels::APPLIED_HASH.into(), Value::String(hash));
    }
    Ok(value)
}

/// Decides whether a prepared desired object must be applied, given the live object (if any).
pub fn decide(desired: &Value, live: Option<&Value>) -> ApplyDecision {
    let Some(live) = live else {
        return ApplyDecision::Create;
    };
    let hash_of = |v: &Value| {
        v.pointer("/metadata/annotations")
            .and_then(|a| a.get(labels::APPLIED_HASH))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if hash_of(desired) != hash_of(live) {
        return ApplyDecision::Update;
    }
    match first_difference(desired, live, String::new()) {
        Some(path) => ApplyDecision::Drift { path },
        None => ApplyDecision::Unchanged,
    }
}

/// The path of the first field of `desired` that `live` does not match, or None when `desired` is
/// a subset of `live`. Empty objects/arrays and nulls in desired match a missing live field, because
/// the API server drops empty collections on the way into storage.
fn first_difference(desired: &Value, live: &Value, path: String) -> Option<String> {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().find_map(|(k, dv)| {
            let child_path = format!("{path}/{k}");
            match l.get(k) {
                Some(lv) => first_difference(dv, lv, child_path),
                None if is_empty(dv) => None,
                None => Some(child_path),
            }
        }),
        (Value::Array(d), Value::Array(l)) => {
            if d.len() != l.len() {
                return Some(path);
            }
            d.iter()
                .zip(l)
                .enumerate()
                .find_map(|(i, (dv, lv))| first_difference(dv, lv, format!("{path}/{i}")))
        }
        (Value::Number(d), Value::Number(l)) => {
            // 1 and 1.0 are the same number to the API server.
            (d != l && d.as_f64() != l.as_f64()).then_some(path)
        }
        (d, Value::Null) if is_empty(d) => None,
        (d, l) => (d != l).then_some(path),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// 64-bit FNV-1a: a tiny, stable (across Rust versions and builds) change-detection hash. Not for
/// security; collisions only risk a skipped apply, and the subset compare still catches drift.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use crate::testing::{ApiServerMock, object_response};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use serde_json::json;

    fn owner() -> Owner {
        Owner {
            api_version: "test.agility.dev/v1alpha1".into(),
            kind: "Widget".into(),
            name: "w1".into(),
            namespace: Some("ns".into()),
            uid: "uid-1".into(),
        }
    }

    fn config_map(name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("k".to_owned(), value.to_owned())])),
            ..Default::default()
        }
    }

    fn prepared(value: &str) -> Value {
        let child = Child::new("config", &config_map("cfg", value)).unwrap();
        prepare(&child, &owner(), "widget", "widget").unwrap()
    }

    #[test]
    fn prepare_sets_identity_labels_owner_and_hash() {
        let v = prepared("a");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(v["metadata"]["namespace"], "ns");
        let l = &v["metadata"]["labels"];
        assert_eq!(l["app.kubernetes.io/managed-by"], "agility-operator");
        assert_eq!(l["app.kubernetes.io/instance"], "w1");
        assert_eq!(l["app.kubernetes.io/component"], "config");
        assert_eq!(l["agility.dev/controller"], "widget");
        let refs = v["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0]["uid"], "uid-1");
        assert_eq!(refs[0]["controller"], true);
        assert_eq!(refs[0]["blockOwnerDeletion"], true);
        let hash = v["metadata"]["annotations"][labels::APPLIED_HASH]
            .as_str()
            .unwrap();
        assert_eq!(hash.len(), 16);
        assert_eq!(prepared("a"), v, "deterministic");
        assert_ne!(
            prepared("b")["metadata"]["annotations"][labels::APPLIED_HASH],
            v["metadata"]["annotations"][labels::APPLIED_HASH]
        );
    }

    #[test]
    fn prepare_rejects_cross_namespace_children() {
        let mut cm = config_map("cfg", "a");
        cm.metadata.namespace = Some("other".into());
        let child = Child::new("config", &cm).unwrap();
        let err = prepare(&child, &owner(), "widget", "widget").unwrap_err();
        assert!(err.to_string().contains("namespace differs"), "{err}");
    }

    #[test]
    fn decide_create_update_unchanged() {
        let desired = prepared("a");
        assert_eq!(decide(&desired, None), ApplyDecision::Create);
        assert_eq!(
            decide(&desired, Some(&prepared("old"))),
            ApplyDecision::Update
        );

        // The live object as the API server returns it: extra server fields, same managed values.
        let mut live = desired.clone();
        live["metadata"]["resourceVersion"] = json!("42");
        live["metadata"]["uid"] = json!("u");
        live["metadata"]["managedFields"] = json!([{"manager": "x"}]);
        live["metadata"]["annotations"]["someone.else/note"] = json!("kept");
        assert_eq!(decide(&desired, Some(&live)), ApplyDecision::Unchanged);
    }

    #[test]
    fn decide_detects_drift_of_managed_fields_only() {
        let desired = prepared("a");
        let mut live = desired.clone();
        live["data"]["k"] = json!("edited");
        assert_eq!(
            decide(&desired, Some(&live)),
            ApplyDecision::Drift {
                path: "/data/k".into()
            }
        );
        let mut live = desired.clone();
        live["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app.kubernetes.io/instance");
        assert!(matches!(
            decide(&desired, Some(&live)),
            ApplyDecision::Drift { .. }
        ));
        let mut live = desired.clone();
        live["data"]["extra"] = json!("added by someone else");
        assert_eq!(decide(&desired, Some(&live)), ApplyDecision::Unchanged);
    }

    #[test]
    fn subset_tolerates_server_normalization() {
        let d = json!({"a": {}, "b": [], "c": null, "n": 1, "list": [{"x": 1}]});
        let l = json!({"n": 1.0, "list": [{"x": 1, "defaulted": true}]});
        assert_eq!(first_difference(&d, &l, String::new()), None);
        let l = json!({"n": 1, "list": [{"x": 1}, {"x": 2}]});
        assert_eq!(
            first_difference(&d, &l, String::new()),
            Some("/list".into())
        );
    }

    #[test]
    fn fnv_is_the_reference_function() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    fn applier(client: Client) -> ChildApplier {
        ChildApplier::new(
            client,
            "widget".into(),
            "widget".into(),
            owner(),
            vec![OwnedKind::of::<ConfigMap>()].into(),
        )
    }

    #[tokio::test]
    async fn unchanged_child_makes_no_write() {
        let (client, mut server) = ApiServerMock::new();
        let live = prepared("a");
        let task = tokio::spawn(async move {
            let req = server.next().await;
            assert_eq!(req.method, "GET");
            assert_eq!(req.path, "/api/v1/namespaces/ns/configmaps/cfg");
            req.respond(object_response(&live));
            server
        });
        let mut a = applier(client);
        let child = Child::new("config", &config_map("cfg", "a")).unwrap();
        assert_eq!(a.apply(&child).await.unwrap(), ApplyOutcome::Unchanged);
        let server = task.await.unwrap();
        // No further request (the PATCH) was sent.
        server.assert_no_pending();
        assert_eq!(a.summary().writes(), 0);
    }

    #[tokio::test]
    async fn changed_child_is_server_side_applied_with_force() {
        let (client, mut server) = ApiServerMock::new();
        let task = tokio::spawn(async move {
            let get = server.next().await;
            assert_eq!(get.method, "GET");
            get.respond(object_response(&prepared("old")));
            let patch = server.next().await;
            assert_eq!(patch.method, "PATCH");
            assert!(
                patch
                    .query
                    .contains("fieldManager=agility-operator%2Fwidget"),
                "{}",
                patch.query
            );
            assert!(patch.query.contains("force=true"), "{}", patch.query);
            assert_eq!(patch.content_type, "application/apply-patch+yaml");
            assert_eq!(patch.body["data"]["k"], "a");
            let body = patch.body.clone();
            patch.respond(object_response(&body));
        });
        let mut a = applier(client);
        let child = Child::new("config", &config_map("cfg", "a")).unwrap();
        assert_eq!(a.apply(&child).await.unwrap(), ApplyOutcome::Updated);
        task.await.unwrap();
        assert_eq!(a.summary().updated, 1);
    }

    #[tokio::test]
    async fn undeclared_kind_is_refused() {
        let (client, _server) = ApiServerMock::new();
        let mut a = ChildApplier::new(
            client,
            "widget".into(),
            "widget".into(),
            owner(),
            Vec::new().into(),
        );
        let child = Child::new("config", &config_map("cfg", "a")).unwrap();
        let err = a.apply(&child).await.unwrap_err();
        assert!(
            err.to_string().contains("does not declare it owned"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn prune_deletes_only_our_undesired_children() {
        let (client, mut server) = ApiServerMock::new();
        let item = |name: &str, uid: &str| {
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                   "metadata": {"name": name, "namespace": "ns", "uid": format!("{name}-uid"),
                     "ownerReferences": [{"apiVersion": "test.agility.dev/v1alpha1", "kind": "Widget",
                       "name": "w1", "uid": uid, "controller": true}]}})
        };
        let list = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
            "metadata": {"resourceVersion": "5"},
            "items": [item("keep", "uid-1"), item("stale", "uid-1"), item("foreign", "uid-2")]});
        let task = tokio::spawn(async move {
            let get = server.next().await; // GET keep (apply)
            get.respond(object_response(&{
                let mut v = prepared("a");
                v["metadata"]["name"] = json!("keep");
                v
            }));
            let patch = server.next().await; // name differs from the hash input -> re-apply
            let body = patch.body.clone();
            patch.respond(object_response(&body));
            let list_req = server.next().await;
            assert_eq!(list_req.method, "GET");
            assert!(
                list_req.query.contains("labelSelector="),
                "{}",
                list_req.query
            );
            list_req.respond(object_response(&list));
            let del = server.next().await;
            assert_eq!(del.method, "DELETE");
            assert_eq!(del.path, "/api/v1/namespaces/ns/configmaps/stale");
            assert_eq!(del.body["preconditions"]["uid"], "stale-uid");
            del.respond(object_response(
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ));
            server
        });
        let mut a = applier(client);
        a.apply(&Child::new("config", &config_map("keep", "a")).unwrap())
            .await
            .unwrap();
        let deleted = a.prune().await.unwrap();
        assert_eq!(deleted, vec!["ConfigMap ns/stale".to_owned()]);
        task.await.unwrap().assert_no_pending();
    }
}
