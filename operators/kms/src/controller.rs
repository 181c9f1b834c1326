//! The leader's `Cmk` controller: read → quota → plan the stored record → generate and wrap new
//! material → store → status. And the sweeper that schedules and finally destroys the material of
//! keys whose `Cmk` is gone. Lookups read the API, not a cache, so a stale cache can never make
//! a second key for the same object.

use std::sync::Arc;
use std::time::Duration;

use agility_core::events::Severity;
use agility_core::status::Conditions;
use agility_core::{Action, Categorized, ErrorCategory, Reconcile};
use chrono::Utc;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};
use uuid::Uuid;

use crate::cipher::Material;
use crate::crd::{Cmk, MAX_KEYS_PER_NAMESPACE};
use crate::lifecycle::{self, Orphan};
use crate::root::RootKey;
use crate::store::{self, StoredKey};

/// The field manager of everything the KMS service writes.
pub const FIELD_MANAGER: &str = "agility-kms";
/// How often a key is looked at without events (rotation due dates are also requeued).
const RESYNC: Duration = Duration::from_secs(600);
/// How soon a key refused by the quota is looked at again.
const QUOTA_RECHECK: Duration = Duration::from_secs(30);
/// How often the sweeper looks for keys whose `Cmk` is gone.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// What the leader works with.
pub struct LeaderState {
    /// The KMS namespace (material Secrets live here).
    pub namespace: String,
    /// The root key.
    pub root: Arc<RootKey>,
}

/// A failed reconcile.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The key id in status has no stored material: never replaced silently.
    #[error(
        "key {0}: its material Secret is missing (restore it from a backup of the KMS namespace)"
    )]
    MaterialMissing(String),
    /// The root key could not wrap new material (HSM unavailable).
    #[error("{0}")]
    Wrap(String),
    /// A core failure.
    #[error(transparent)]
    Core(#[from] agility_core::Error),
}

impl Categorized for LifecycleError {
    fn category(&self) -> ErrorCategory {
        match self {
            LifecycleError::MaterialMissing(_) | LifecycleError::Wrap(_) => {
                ErrorCategory::Dependency
            }
            LifecycleError::Core(e) => e.category(),
        }
    }
}

fn kube_err(what: &'static str) -> impl Fn(kube::Error) -> LifecycleError {
    move |e| LifecycleError::Core(agility_core::Error::kube(what, e))
}

/// The stored record of `cmk`, read from the API.
async fn stored_key(secrets: &Api<Secret>, cmk: &Cmk) -> Result<Option<StoredKey>, LifecycleError> {
    if let Some(id) = cmk.status.as_ref().and_then(|s| s.key_id.as_deref()) {
        let Ok(id) = Uuid::parse_str(id) else {
            return Ok(None);
        };
        let s = secrets
            .get_opt(&store::secret_name(id))
            .await
            .map_err(kube_err("read key material"))?;
        return match s.as_ref().and_then(StoredKey::from_secret) {
            Some(k) => Ok(Some(k)),
            None => Err(LifecycleError::MaterialMissing(id.to_string())),
        };
    }
    let all = secrets
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            store::COMPONENT_LABEL,
            store::COMPONENT_MATERIAL
        )))
        .await
        .map_err(kube_err("list key material"))?;
    Ok(all
        .items
        .iter()
        .filter_map(StoredKey::from_secret)
        .find(|k| lifecycle::belongs(cmk, &k.identity)))
}

/// The 1-based position of `cmk` among its namespace's keys (oldest first).
async fn position(cmk: &Cmk, client: &kube::Client) -> Result<usize, LifecycleError> {
    let ns = cmk.namespace().unwrap_or_default();
    let all = Api::<Cmk>::namespaced(client.clone(), &ns)
        .list_metadata(&ListParams::default())
        .await
        .map_err(kube_err("list Cmks"))?;
    let mut keys: Vec<_> = all
        .items
        .iter()
        .filter(|m| m.metadata.deletion_timestamp.is_none())
        .map(|m| {
            (
                m.metadata.creation_timestamp.clone().map(|t| t.0),
                m.metadata.name.clone(),
            )
        })
        .collect();
    keys.sort();
    let me = (
        cmk.metadata.creation_timestamp.clone().map(|t| t.0),
        cmk.metadata.name.clone(),
    );
    Ok(keys
        .iter()
        .position(|k| *k == me)
        .map_or(keys.len() + 1, |p| p + 1))
}

/// The field manager that created the object: the closest thing to a creator Kubernetes keeps.
fn creator(cmk: &Cmk) -> String {
    cmk.metadata
        .managed_fields
        .as_ref()
        .and_then(|m| m.first())
        .and_then(|m| m.manager.clone())
        .unwrap_or_else(|| "unknown".into())
}

/// Reconciles one `Cmk`.
pub async fn reconcile(
    cmk: Arc<Cmk>,
    ctx: Reconcile<LeaderState>,
) -> Result<Action, LifecycleError> {
    if cmk.meta().deletion_timestamp.is_some() {
        // No finalizer: the sweeper keeps the material for the pending window.
        return Ok(Action::await_change());
    }
    let state = ctx.state();
    let secrets: Api<Secret> = Api::namespaced(ctx.client().clone(), &state.namespace);
    let live = cmk.status.clone().unwrap_or_default();
    let mut c = Conditions::new(&live.conditions, cmk.meta().generation);
    if live.key_id.is_none() {
        let pos = position(&cmk, ctx.client()).await?;
        if pos > MAX_KEYS_PER_NAMESPACE {
            c.set(
                "Ready",
                false,
                "QuotaExceeded",
                &format!("at most {MAX_KEYS_PER_NAMESPACE} keys per namespace; this would be key {pos}: delete keys or use another namespace"),
            );
            let (conditions, transitions) = c.finish();
            let status = crate::crd::CmkStatus {
                conditions,
                observed_generation: cmk.meta().generation,
                ..Default::default()
            };
            ctx.update_status(cmk.as_ref(), &status, &transitions)
                .await?;
            // Another key's deletion frees a place: look again soon.
            return Ok(Action::requeue(QUOTA_RECHECK));
        }
    }
    let stored = stored_key(&secrets, &cmk).await?;
    let now = Utc::now();
    let plan = lifecycle::plan_key(
        &cmk,
        stored.as_ref().map(|s| &s.identity),
        now,
        Uuid::new_v4(),
        &creator(&cmk),
    );
    if plan.changes(stored.as_ref().map(|s| &s.identity)) {
        let mut wrapped = stored.map(|s| s.wrapped).unwrap_or_default();
        for v in &plan.new_versions {
            wrapped.insert(
                *v,
                state
                    .root
                    .wrap(plan.identity.key_id, *v, &Material::generate())
                    .map_err(|e| LifecycleError::Wrap(e.to_string()))?,
            );
        }
        let record = StoredKey {
            identity: plan.identity.clone(),
            wrapped,
        };
        secrets
            .patch(
                &store::secret_name(plan.identity.key_id),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&record.to_secret(&state.namespace)),
            )
            .await
            .map_err(kube_err("store key material"))?;
        if let Some((reason, note)) = &plan.event {
            info!(namespace = %cmk.namespace().unwrap_or_default(), name = %cmk.name_any(), reason, "{note}");
            ctx.events()
                .publish(&cmk.object_ref(&()), Severity::Normal, reason, reason, note)
                .await;
        }
    }
    let mut status = lifecycle::status(&cmk, &plan.identity);
    let version = status.current_version.unwrap_or(1);
    c.set(
        "Ready",
        true,
        if cmk.spec.enabled {
            "KeyEnabled"
        } else {
            "KeyDisabled"
        },
        &format!(
            "key {} at version {version}{}",
            plan.identity.key_id,
            if cmk.spec.enabled {
                ""
            } else {
                "; disabled: it neither encrypts nor decrypts"
            }
        ),
    );
    let (conditions, transitions) = c.finish();
    status.conditions = conditions;
    status.observed_generation = cmk.meta().generation;
    ctx.update_status(cmk.as_ref(), &status, &transitions)
        .await?;
    let until_rotation = lifecycle::next_rotation(&cmk.spec, &plan.identity)
        .and_then(|t| (t - now).to_std().ok())
        .map_or(RESYNC, |d| d.min(RESYNC).max(Duration::from_secs(1)));
    Ok(Action::requeue(until_rotation))
}

/// One sweep: records whose `Cmk` is gone get a deletion date, and are destroyed once it passed.
pub async fn sweep(client: &kube::Client, namespace: &str) -> Result<(), kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let stored = secrets
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            store::COMPONENT_LABEL,
            store::COMPONENT_MATERIAL
        )))
        .await?;
    let cmks = Api::<Cmk>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let now = Utc::now();
    for s in &stored.items {
        let Some(key) = StoredKey::from_secret(s) else {
            warn!(secret = %s.name_any(), "unreadable key material record; left alone");
            continue;
        };
        let alive = cmks.items.iter().any(|c| {
            c.metadata.deletion_timestamp.is_none() && lifecycle::belongs(c, &key.identity)
        });
        if alive {
            continue;
        }
        match lifecycle::orphan(&key.identity, now) {
            Orphan::Wait => {}
            Orphan::Schedule(date) => {
                let mut k = key.clone();
                k.identity.deletion_date = Some(date.clone());
                secrets
                    .patch(
                        &s.name_any(),
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&k.to_secret(namespace)),
                    )
                    .await?;
                info!(key = %key.identity.key_id, namespace = %key.identity.namespace, name = %key.identity.name, deletion = %date, "key pending deletion: its Cmk is gone");
            }
            Orphan::Destroy => {
                secrets
                    .delete(&s.name_any(), &DeleteParams::default())
                    .await?;
                info!(target: "agility_kms::audit", key = %key.identity.key_id, namespace = %key.identity.namespace, operation = "DestroyKeyMaterial", result = "Success", "key material destroyed after the pending window");
            }
        }
    }
    Ok(())
}
