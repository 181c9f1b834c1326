//! The Bucket pipeline: finalizer → store → admission (100 per namespace) → name → bucket
//! (create or adopt) → key → settings (written only when they differ) → connection Secret →
//! status. Deletion follows `deletionPolicy`.

use std::sync::Arc;
use std::time::Duration;

use agility_core::status::{Conditions, Transition};
use agility_core::{Action, Child, Reconcile};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;
use kube::{Resource, ResourceExt};

use super::plan;
use super::secret::{Connection, connection_secret, value};
use crate::State;
use crate::crd::{Bucket, BucketStatus, DeletionPolicy, MAX_BUCKETS_PER_NAMESPACE, ObjectStore};
use crate::error::{OssError, Result, absent_ok};
use crate::garage::AdminClient;
use crate::garage::GarageError;
use crate::garage::s3::S3Client;
use crate::garage::types::{BucketInfo, Permissions};
use crate::names;
use crate::store::controller::{admin_url, kept_or_named_key};

/// Finalizer: the bucket and key live in Garage, outside the API server.
pub const FINALIZER: &str = "oss.agility.dev/bucket";

const RESYNC: Duration = Duration::from_secs(300);
const WAIT: Duration = Duration::from_secs(5);

/// Reconciles one Bucket.
pub async fn reconcile(obj: Arc<Bucket>, ctx: Reconcile<Arc<State>>) -> Result<Action> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let has_finalizer = obj.finalizers().iter().any(|f| f == FINALIZER);
    let api: Api<Bucket> = Api::namespaced(ctx.client().clone(), &ns);
    if obj.meta().deletion_timestamp.is_some() {
        if has_finalizer {
            finalize(&obj, &ctx).await?;
            crate::finalizer::set(&api, obj.as_ref(), FINALIZER, false).await?;
        }
        return Ok(Action::await_change());
    }
    if !has_finalizer {
        crate::finalizer::set(&api, obj.as_ref(), FINALIZER, true).await?;
    }
    let state = ctx.state();
    let store = match state.store_for(&obj.spec, &ns) {
        Ok(s) => s,
        Err(message) => return waiting(&obj, &ctx, "StoreNotFound", &message).await,
    };
    let same_ns: Vec<Arc<Bucket>> = state.buckets_in(&ns);
    if !plan::admitted(
        &obj,
        same_ns.iter().map(|b| b.as_ref()),
        MAX_BUCKETS_PER_NAMESPACE,
    ) {
        let msg = format!(
            "namespace {ns} already has {MAX_BUCKETS_PER_NAMESPACE} Buckets (the per-owner limit); this one is created when a place frees"
        );
        return waiting(&obj, &ctx, "QuotaExceeded", &msg).await;
    }
    let store_ready = store
        .status
        .as_ref()
        .and_then(|s| s.layout_version)
        .is_some();
    if !store_ready {
        let msg = format!(
            "ObjectStore {}/{} is not serving yet",
            store.namespace().unwrap_or_default(),
            store.name_any()
        );
        return waiting(&obj, &ctx, "StoreNotReady", &msg).await;
    }
    // The name is fixed in status before anything is created, so a retry never makes a second
    // bucket under another generated name.
    let Some(bucket_name) = obj
        .spec
        .bucket_name
        .clone()
        .or_else(|| obj.status.as_ref().and_then(|s| s.bucket_name.clone()))
    else {
        let mut status = obj.status.clone().unwrap_or_default();
        status.bucket_name = Some(plan::generate_name(&ns, &name));
        let (conditions, transitions) = progressing(&obj, "NameChosen", "bucket name chosen");
        status.conditions = conditions;
        ctx.update_status(obj.as_ref(), &status, &transitions)
            .await?;
        return Ok(Action::requeue(Duration::from_millis(200)));
    };
    let admin = store_admin(&ctx, &store).await?;
    let info = ensure_bucket(&obj, &ctx, &admin, &bucket_name).await?;
    let key = ensure_key(
        obj.as_ref(),
        &ctx,
        &admin,
        &info,
        &plan::key_name(&ns, &name),
        Permissions::ALL,
        &secret_name(&obj),
    )
    .await?;
    let update = plan::settings_update(&obj.spec, &info);
    let info = if update.is_empty() {
        info
    } else {
        admin
            .update_bucket(&info.id, &update)
            .await
            .map_err(OssError::garage("update the bucket settings"))?
    };
    let st = store.status.clone().unwrap_or_default();
    let endpoint = st.s3_endpoint.clone().unwrap_or_default();
    let region = store.spec.region.clone();
    let website_url = obj.spec.website.as_ref().map(|_| {
        let scheme = if endpoint.starts_with("https") {
            "https"
        } else {
            "http"
        };
        format!(
            "{scheme}://{bucket_name}.{}",
            st.website_domain.clone().unwrap_or_default()
        )
    });
    let labels =
        agility_core::labels::standard(names::CONTROLLER, names::CONTROLLER, &name, "connection");
    let secret = connection_secret(
        &secret_name(&obj),
        &ns,
        &labels,
        &Connection {
            endpoint: &endpoint,
            region: &region,
            bucket: &bucket_name,
            access_key_id: &key.0,
            secret_access_key: &key.1,
            website_url: website_url.as_deref(),
            access: "ReadWrite",
        },
    )?;
    ctx.apply_children(obj.as_ref(), &[Child::new("connection", &secret)?])
        .await?;

    let prev = obj
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let mut c = Conditions::new(prev, obj.metadata.generation);
    // No object counts here: they change with every write and would make each resync a write.
    c.set(
        agility_core::status::READY,
        true,
        "Ready",
        &format!(
            "bucket {bucket_name} in ObjectStore {}/{}",
            store.namespace().unwrap_or_default(),
            store.name_any()
        ),
    );
    // Every setting of the spec has an effect: Garage holds website, CORS, lifecycle and quotas;
    // the gateway enforces the ACL and Referer rules on the S3 and website endpoints.
    c.set(
        "SettingsEnforced",
        true,
        "Enforced",
        "website, CORS, lifecycle and quotas by Garage; ACL and Referer by the gateway",
    );
    let (conditions, transitions) = c.finish();
    let status = BucketStatus {
        bucket_name: Some(bucket_name),
        bucket_id: Some(info.id.clone()),
        store: Some(format!(
            "{}/{}",
            store.namespace().unwrap_or_default(),
            store.name_any()
        )),
        access_key_id: Some(key.0),
        secret_name: Some(secret_name(&obj)),
        website_url,
        observed_generation: obj.metadata.generation,
        conditions,
    };
    ctx.update_status(obj.as_ref(), &status, &transitions)
        .await?;
    Ok(Action::requeue(RESYNC))
}

/// A Normal event on `obj`.
async fn notice(ctx: &Reconcile<Arc<State>>, obj: &Bucket, reason: &str, action: &str, note: &str) {
    ctx.events()
        .publish(
            &obj.object_ref(&()),
            agility_core::events::Severity::Normal,
            reason,
            action,
            note,
        )
        .await;
}

/// The connection Secret's name.
pub fn secret_name(obj: &Bucket) -> String {
    obj.spec
        .secret_name
        .clone()
        .unwrap_or_else(|| format!("{}-s3", obj.name_any()))
}

fn progressing(obj: &Bucket, reason: &str, message: &str) -> (Vec<Condition>, Vec<Transition>) {
    let prev = obj.status.as_ref().map(|s| s.conditions.as_slice());
    crate::conditions::ready(prev, obj.metadata.generation, false, reason, message)
}

/// Ready=False with `reason`, looked at again soon.
async fn waiting(
    obj: &Bucket,
    ctx: &Reconcile<Arc<State>>,
    reason: &str,
    message: &str,
) -> Result<Action> {
    let mut status = obj.status.clone().unwrap_or_default();
    let (conditions, transitions) = progressing(obj, reason, message);
    status.conditions = conditions;
    status.observed_generation = obj.metadata.generation;
    ctx.update_status(obj, &status, &transitions).await?;
    Ok(Action::requeue(if reason == "QuotaExceeded" {
        Duration::from_secs(30)
    } else {
        WAIT
    }))
}

/// The admin client of a store, with its token from the store's admin Secret.
pub async fn store_admin(ctx: &Reconcile<Arc<State>>, store: &ObjectStore) -> Result<AdminClient> {
    let ns = store.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client().clone(), &ns);
    let token = secrets
        .get_opt(&names::admin_secret(&store.name_any()))
        .await
        .map_err(|e| agility_core::Error::kube("read the store's admin Secret", e))?
        .and_then(|s| value(&s, names::ADMIN_TOKEN_KEY))
        .ok_or_else(|| {
            OssError::NotReady(format!(
                "the admin Secret of ObjectStore {ns}/{} is not there yet",
                store.name_any()
            ))
        })?;
    let url = admin_url(store, &ns);
    AdminClient::new(&url, &token)
        .map(|c| c.with_timeout(Duration::from_secs(10)))
        .map_err(OssError::garage("build the admin client"))
}

/// The bucket in Garage: the one recorded in status, else the one with this name if this
/// namespace owns it (a retained bucket is adopted), else a new one.
async fn ensure_bucket(
    obj: &Bucket,
    ctx: &Reconcile<Arc<State>>,
    admin: &AdminClient,
    bucket_name: &str,
) -> Result<BucketInfo> {
    let ns = obj.namespace().unwrap_or_default();
    if let Some(id) = obj.status.as_ref().and_then(|s| s.bucket_id.as_deref()) {
        // Deleted behind our back: found again by name, or created again.
        if let Some(info) = absent_ok(admin.bucket_info(id).await, "read the bucket")? {
            return Ok(info);
        }
    }
    match admin.bucket_by_alias(bucket_name).await {
        Ok(info) => {
            let claimed_elsewhere = ctx.state().bucket_claimed_by_other(&info.id, obj);
            if claimed_elsewhere || !plan::owned_by_namespace(&info, &ns) {
                return Err(OssError::NameTaken(bucket_name.to_owned()));
            }
            tracing::info!(namespace = %ns, bucket = %bucket_name, "adopting the retained bucket");
            notice(ctx, obj, "Adopted", "AdoptBucket", &format!("adopted the existing bucket {bucket_name} (kept by an earlier Bucket of this namespace)")).await;
            Ok(info)
        }
        Err(e) if e.is_not_found() => {
            let info = admin
                .create_bucket(bucket_name)
                .await
                .map_err(OssError::garage("create the bucket"))?;
            notice(
                ctx,
                obj,
                "Created",
                "CreateBucket",
                &format!("created bucket {bucket_name}"),
            )
            .await;
            Ok(info)
        }
        Err(e) => Err(OssError::garage("look up the bucket name")(e)),
    }
}

/// The key in the Secret `secret` if Garage still has it, else the one named `key_name`, else a
/// new one; with exactly `perms` on the bucket (a retained key is renamed back).
pub async fn ensure_key(
    obj: &impl Resource<DynamicType = ()>,
    ctx: &Reconcile<Arc<State>>,
    admin: &AdminClient,
    bucket: &BucketInfo,
    key_name: &str,
    perms: Permissions,
    secret: &str,
) -> Result<(String, String)> {
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client().clone(), &ns);
    let (id, sk) = kept_or_named_key(admin, &secrets, secret, key_name).await?;
    let have = bucket
        .keys
        .iter()
        .find(|k| k.access_key_id == id)
        .map(|k| k.permissions)
        .unwrap_or_default();
    if have != perms {
        let extra = Permissions {
            read: have.read && !perms.read,
            write: have.write && !perms.write,
            owner: have.owner && !perms.owner,
        };
        if extra != Permissions::default() {
            admin
                .deny_bucket_key(&bucket.id, &id, extra)
                .await
                .map_err(OssError::garage("narrow the key's permissions"))?;
        }
        admin
            .allow_bucket_key(&bucket.id, &id, perms)
            .await
            .map_err(OssError::garage("grant the key"))?;
    }
    Ok((id, sk))
}

/// Deletion per `deletionPolicy`.
async fn finalize(obj: &Bucket, ctx: &Reconcile<Arc<State>>) -> Result<()> {
    let ns = obj.namespace().unwrap_or_default();
    let Some(status) = obj.status.as_ref() else {
        return Ok(());
    };
    let (Some(bucket_id), Some(bucket_name)) =
        (status.bucket_id.clone(), status.bucket_name.clone())
    else {
        return Ok(()); // nothing was created
    };
    let store = match ctx.state().store_for(&obj.spec, &ns) {
        // The store going away takes its buckets with it (its volumes stay, per its policy).
        Ok(s) if s.meta().deletion_timestamp.is_none() => s,
        _ => return Ok(()),
    };
    let admin = match store_admin(ctx, &store).await {
        Ok(a) => a,
        Err(OssError::NotReady(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let key_id = status.access_key_id.clone();
    match obj.spec.deletion_policy {
        DeletionPolicy::Retain => {
            // The data stays; the app's credentials die with the resource. A key without data
            // access stays on the bucket as the mark that lets this namespace adopt it again.
            if let Some(id) = &key_id {
                let marker = plan::retained_key_name(&ns, &obj.name_any());
                absent_ok(
                    admin.update_key_name(id, &marker).await,
                    "mark the retained bucket",
                )?;
                let data = Permissions {
                    read: true,
                    write: true,
                    owner: false,
                };
                absent_ok(
                    admin.deny_bucket_key(&bucket_id, id, data).await,
                    "revoke the key",
                )?;
            }
            notice(
                ctx,
                obj,
                "Retained",
                "DeleteBucket",
                &format!("kept bucket {bucket_name} and its objects (deletionPolicy Retain)"),
            )
            .await;
        }
        DeletionPolicy::Delete => {
            if obj.spec.force_delete
                && let Some(id) = &key_id
            {
                let secret = admin
                    .key_info(id, true)
                    .await
                    .map_err(OssError::garage("read the bucket's key"))?
                    .secret_access_key
                    .ok_or_else(|| {
                        OssError::NotReady("Garage returned the key without its secret".into())
                    })?;
                let st = store.status.clone().unwrap_or_default();
                let url = internal_s3_url(&store);
                let s3 = S3Client::new(
                    &url,
                    &st.region.unwrap_or_else(|| store.spec.region.clone()),
                    id,
                    &secret,
                )
                .map_err(OssError::garage("build the S3 client"))?;
                s3.empty_bucket(&bucket_name)
                    .await
                    .map_err(OssError::garage("empty the bucket"))?;
            }
            match admin.delete_bucket(&bucket_id).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(GarageError::BucketNotEmpty { .. }) => {
                    let msg = format!(
                        "bucket {bucket_name} is not empty: delete its objects, or set forceDelete: true"
                    );
                    let (conditions, transitions) = progressing(obj, "DeletionBlocked", &msg);
                    let mut s = status.clone();
                    s.conditions = conditions;
                    ctx.update_status(obj, &s, &transitions).await?;
                    return Err(OssError::NotReady(msg));
                }
                Err(e) => return Err(OssError::garage("delete the bucket")(e)),
            }
            if let Some(id) = &key_id {
                absent_ok(admin.delete_key(id).await, "delete the key")?;
            }
            notice(
                ctx,
                obj,
                "Deleted",
                "DeleteBucket",
                &format!("deleted bucket {bucket_name}"),
            )
            .await;
        }
    }
    Ok(())
}

/// Garage's S3 API inside the cluster (the operator signs with the bucket's own key).
pub fn internal_s3_url(store: &ObjectStore) -> String {
    format!(
        "http://{}.{}.svc:{}",
        names::internal_service(&store.name_any()),
        store.namespace().unwrap_or_default(),
        names::GARAGE_S3_PORT
    )
}
