//! The `BucketAccess` kind: another application's key on a Bucket of the same namespace,
//! read-only or read-write, with its own connection Secret. The key is deleted with it.

use std::sync::Arc;
use std::time::Duration;

use agility_core::status::Transition;
use agility_core::{Action, Child, Reconcile};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;
use kube::{Resource, ResourceExt};

use crate::State;
use crate::bucket::controller::{ensure_key, store_admin};
use crate::bucket::secret::{Connection, connection_secret};
use crate::crd::{AccessLevel, BucketAccess, BucketAccessStatus};
use crate::error::{OssError, Result, absent_ok};
use crate::garage::types::Permissions;
use crate::names;

/// Finalizer: the key lives in Garage.
pub const FINALIZER: &str = "oss.agility.dev/bucket-access";

/// Garage key name of a BucketAccess.
pub fn key_name(namespace: &str, name: &str) -> String {
    format!("agility:{namespace}/access/{name}")
}

/// What a level grants. Neither level is owner: bucket settings belong to the Bucket resource.
pub fn permissions(level: AccessLevel) -> Permissions {
    match level {
        AccessLevel::ReadOnly => Permissions::READ,
        AccessLevel::ReadWrite => Permissions::READ_WRITE,
    }
}

fn secret_name(obj: &BucketAccess) -> String {
    obj.spec
        .secret_name
        .clone()
        .unwrap_or_else(|| format!("{}-s3", obj.name_any()))
}

/// Reconciles one BucketAccess.
pub async fn reconcile(obj: Arc<BucketAccess>, ctx: Reconcile<Arc<State>>) -> Result<Action> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let has_finalizer = obj.finalizers().iter().any(|f| f == FINALIZER);
    let api: Api<BucketAccess> = Api::namespaced(ctx.client().clone(), &ns);
    let bucket = ctx.state().bucket(&ns, &obj.spec.bucket);
    if obj.meta().deletion_timestamp.is_some() {
        if has_finalizer {
            if let (Some(id), Some(bucket)) = (
                obj.status.as_ref().and_then(|s| s.access_key_id.clone()),
                bucket.as_ref(),
            ) && let Ok(store) = ctx.state().store_for(&bucket.spec, &ns)
            {
                let admin = store_admin(&ctx, &store).await?;
                absent_ok(admin.delete_key(&id).await, "delete the key")?;
            }
            crate::finalizer::set(&api, obj.as_ref(), FINALIZER, false).await?;
        }
        return Ok(Action::await_change());
    }
    if !has_finalizer {
        crate::finalizer::set(&api, obj.as_ref(), FINALIZER, true).await?;
    }
    let ready_bucket = bucket.as_ref().and_then(|b| {
        let s = b.status.as_ref()?;
        Some((s.bucket_id.clone()?, s.bucket_name.clone()?))
    });
    let (Some(bucket), Some((bucket_id, bucket_name))) = (bucket, ready_bucket) else {
        let msg = format!(
            "Bucket {ns}/{} does not exist or is not Ready yet",
            obj.spec.bucket
        );
        let (conditions, transitions) = ready(&obj, false, "BucketNotReady", &msg);
        let status = BucketAccessStatus {
            conditions,
            observed_generation: obj.metadata.generation,
            ..obj.status.clone().unwrap_or_default()
        };
        ctx.update_status(obj.as_ref(), &status, &transitions)
            .await?;
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let store = ctx
        .state()
        .store_for(&bucket.spec, &ns)
        .map_err(OssError::NotReady)?;
    let admin = store_admin(&ctx, &store).await?;
    let info = admin
        .bucket_info(&bucket_id)
        .await
        .map_err(OssError::garage("read the bucket"))?;
    let perms = permissions(obj.spec.access);
    let key = ensure_key(
        obj.as_ref(),
        &ctx,
        &admin,
        &info,
        &key_name(&ns, &name),
        perms,
        &secret_name(&obj),
    )
    .await?;
    let st = store.status.clone().unwrap_or_default();
    let labels =
        agility_core::labels::standard(names::CONTROLLER, names::CONTROLLER, &name, "connection");
    let access = match obj.spec.access {
        AccessLevel::ReadOnly => "ReadOnly",
        AccessLevel::ReadWrite => "ReadWrite",
    };
    let secret = connection_secret(
        &secret_name(&obj),
        &ns,
        &labels,
        &Connection {
            endpoint: &st.s3_endpoint.unwrap_or_default(),
            region: &store.spec.region,
            bucket: &bucket_name,
            access_key_id: &key.0,
            secret_access_key: &key.1,
            website_url: None,
            access,
        },
    )?;
    ctx.apply_children(obj.as_ref(), &[Child::new("connection", &secret)?])
        .await?;
    let (conditions, transitions) = ready(
        &obj,
        true,
        "Ready",
        &format!("{access} key on bucket {bucket_name}"),
    );
    let status = BucketAccessStatus {
        access_key_id: Some(key.0),
        secret_name: Some(secret_name(&obj)),
        observed_generation: obj.metadata.generation,
        conditions,
    };
    ctx.update_status(obj.as_ref(), &status, &transitions)
        .await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn ready(
    obj: &BucketAccess,
    ok: bool,
    reason: &str,
    message: &str,
) -> (Vec<Condition>, Vec<Transition>) {
    let prev = obj.status.as_ref().map(|s| s.conditions.as_slice());
    crate::conditions::ready(prev, obj.metadata.generation, ok, reason, message)
}
