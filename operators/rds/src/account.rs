//! RdsAccount and RdsDatabase: statements on the instance's primary (through the read-write
//! endpoint, as `agility_admin`), a finalizer because the account or database lives outside the
//! API server, and for accounts the connection Secret.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agility_core::events::Severity;
use agility_core::status::Conditions;
use agility_core::{Action, Child, Reconcile};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use crate::build::secret::{self as secrets, ConnectionTarget};
use crate::crd::{
    AccountType, DeletionPolicy, RdsAccount, RdsAccountStatus, RdsDatabase, RdsDatabaseStatus,
    RdsInstance,
};
use crate::dataplane::{self, Connection, Endpoint, Timeouts, Tls};
use crate::error::RdsError;
use crate::grants::{AccountKind, desired_grants};
use crate::names;

/// The finalizer on accounts and databases.
pub const FINALIZER: &str = "rds.agility.dev/cleanup";

/// Shared by both controllers.
pub struct AccountState;

/// Looked at again without events (reads only; repairs drift such as a dropped user).
const RESYNC: Duration = Duration::from_secs(300);

async fn instance(client: &kube::Client, ns: &str, name: &str) -> Result<RdsInstance, RdsError> {
    Api::<RdsInstance>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| agility_core::Error::kube("read the RdsInstance", e))?
        .ok_or_else(|| RdsError::InstanceMissing(format!("{ns}/{name}")))
}

/// A session on the instance's primary as the operator's admin account.
async fn primary(client: &kube::Client, inst: &RdsInstance) -> Result<Connection, RdsError> {
    let ns = inst.namespace().unwrap_or_default();
    let name = inst.name_any();
    if inst
        .status
        .as_ref()
        .and_then(|s| s.primary.as_ref())
        .is_none()
    {
        return Err(RdsError::NoPrimary(format!("{ns}/{name}")));
    }
    let system = Api::<Secret>::namespaced(client.clone(), &ns)
        .get_opt(&names::system_secret(&name))
        .await
        .map_err(|e| agility_core::Error::kube("read the system Secret", e))?
        .and_then(|s| secrets::value(&s, names::KEY_ADMIN_PASSWORD))
        .ok_or_else(|| RdsError::NoPrimary(format!("{ns}/{name}")))?;
    let endpoint = Endpoint {
        host: names::endpoint_host(&name, &ns),
        port: names::MYSQL_PORT as u16,
        user: names::ADMIN_USER.into(),
        password: system,
        tls: Tls::Disabled,
    };
    Ok(Connection::connect(&endpoint, Timeouts::default()).await?)
}

async fn set_finalizer<K>(client: &kube::Client, obj: &K, present: bool) -> Result<(), RdsError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let mut finalizers = obj.meta().finalizers.clone().unwrap_or_default();
    finalizers.retain(|f| f != FINALIZER);
    if present {
        finalizers.push(FINALIZER.to_owned());
    }
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": obj.meta().resource_version}
    });
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 && !present => Ok(()),
        Err(e) => Err(agility_core::Error::kube("update the finalizers", e).into()),
    }
}

fn has_finalizer<K: Resource>(obj: &K) -> bool {
    obj.meta()
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

/// The account's password: the user's Secret, else the one kept in the connection Secret, else new.
async fn password(client: &kube::Client, acc: &RdsAccount) -> Result<String, RdsError> {
    let ns = acc.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    if let Some(name) = &acc.spec.password_secret_name {
        let id = format!("{ns}/{name}");
        let s = api
            .get_opt(name)
            .await
            .map_err(|e| agility_core::Error::kube("read the password Secret", e))?
            .ok_or_else(|| RdsError::Password {
                secret: id.clone(),
                reason: "not found".into(),
            })?;
        let pw = secrets::value(&s, names::KEY_PASSWORD).ok_or_else(|| RdsError::Password {
            secret: id.clone(),
            reason: "no key \"password\"".into(),
        })?;
        if !secrets::password_is_usable(&pw) {
            return Err(RdsError::Password {
                secret: id,
                reason: "8-128 printable ASCII characters without quotes, backslash, backtick, '%', '@', ':' or '/'".into(),
            });
        }
        return Ok(pw);
    }
    let kept = api
        .get_opt(&names::account_secret(&acc.name_any()))
        .await
        .map_err(|e| agility_core::Error::kube("read the connection Secret", e))?
        .and_then(|s| secrets::value(&s, names::KEY_PASSWORD));
    Ok(kept.unwrap_or_else(secrets::generate_password))
}

/// The older Privileged account of the same instance, if this one is not the first.
async fn other_privileged(
    client: &kube::Client,
    acc: &RdsAccount,
) -> Result<Option<String>, RdsError> {
    if acc.spec.account_type != AccountType::Privileged {
        return Ok(None);
    }
    let api: Api<RdsAccount> =
        Api::namespaced(client.clone(), &acc.namespace().unwrap_or_default());
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(|e| agility_core::Error::kube("list RdsAccounts", e))?;
    let me = (acc.creation_timestamp(), acc.name_any());
    Ok(all
        .items
        .into_iter()
        .filter(|a| {
            a.spec.instance_name == acc.spec.instance_name
                && a.spec.account_type == AccountType::Privileged
                && a.meta().deletion_timestamp.is_none()
                && (a.creation_timestamp(), a.name_any()) < me
        })
        .map(|a| a.name_any())
        .next())
}

/// Reconciles one RdsAccount.
pub async fn reconcile_account(
    acc: Arc<RdsAccount>,
    ctx: Reconcile<Arc<AccountState>>,
) -> Result<Action, RdsError> {
    let client = ctx.client().clone();
    let ns = acc.namespace().unwrap_or_default();
    let user = acc.spec.username.clone();
    if acc.meta().deletion_timestamp.is_some() {
        if has_finalizer(acc.as_ref()) {
            if acc.spec.deletion_policy == DeletionPolicy::Delete {
                match instance(&client, &ns, &acc.spec.instance_name).await {
                    Ok(inst) => {
                        let mut conn = primary(&client, &inst).await?;
                        dataplane::drop_account(&mut conn, &user).await?;
                        conn.close().await;
                    }
                    // The instance is gone, and the account with it.
                    Err(RdsError::InstanceMissing(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            set_finalizer(&client, acc.as_ref(), false).await?;
        }
        return Ok(Action::await_change());
    }
    let inst = instance(&client, &ns, &acc.spec.instance_name).await?;
    if let Some(existing) = other_privileged(&client, &acc).await? {
        return Err(RdsError::SecondPrivileged {
            instance: acc.spec.instance_name.clone(),
            existing,
        });
    }
    if !has_finalizer(acc.as_ref()) {
        set_finalizer(&client, acc.as_ref(), true).await?;
    }
    let pw = password(&client, &acc).await?;
    let kind = match acc.spec.account_type {
        AccountType::Privileged => AccountKind::Privileged,
        AccountType::Normal => AccountKind::Normal(
            acc.spec
                .privileges
                .iter()
                .map(|p| (p.database.clone(), p.role))
                .collect::<BTreeMap<_, _>>(),
        ),
    };
    let mut conn = primary(&client, &inst).await?;
    let outcome = dataplane::ensure_account(&mut conn, &user, &pw, &desired_grants(&kind)).await;
    conn.close().await;
    let outcome = outcome?;
    if outcome.changed() {
        let what = if outcome.created {
            "created"
        } else {
            "updated"
        };
        ctx.events()
            .publish(
                &acc.object_ref(&()),
                Severity::Normal,
                "AccountApplied",
                "EnsureAccount",
                &format!(
                    "user {user} {what} ({} grant statement(s))",
                    outcome.grant_statements.len()
                ),
            )
            .await;
    }
    let inst_name = inst.name_any();
    let target = ConnectionTarget {
        host: names::endpoint_host(&inst_name, &ns),
        read_only_host: (inst.spec.read_replicas > 0).then(|| names::read_host(&inst_name, &ns)),
    };
    let secret = secrets::connection_secret(&acc, &target, &pw);
    ctx.apply_children(acc.as_ref(), &[Child::new("connection", &secret)?])
        .await?;
    let live = acc.status.clone().unwrap_or_default();
    let mut c = Conditions::new(&live.conditions, acc.meta().generation);
    c.set(
        "Ready",
        true,
        "AccountReady",
        &format!("user {user} exists with the requested privileges"),
    );
    let (conditions, transitions) = c.finish();
    let status = RdsAccountStatus {
        conditions,
        observed_generation: acc.meta().generation,
        connection_secret: Some(names::account_secret(&acc.name_any())),
    };
    ctx.update_status(acc.as_ref(), &status, &transitions)
        .await?;
    Ok(Action::requeue(RESYNC))
}

/// Reconciles one RdsDatabase.
pub async fn reconcile_database(
    db: Arc<RdsDatabase>,
    ctx: Reconcile<Arc<AccountState>>,
) -> Result<Action, RdsError> {
    let client = ctx.client().clone();
    let ns = db.namespace().unwrap_or_default();
    let name = db.spec.name.clone();
    if db.meta().deletion_timestamp.is_some() {
        if has_finalizer(db.as_ref()) {
            if db.spec.deletion_policy == DeletionPolicy::Delete {
                match instance(&client, &ns, &db.spec.instance_name).await {
                    Ok(inst) => {
                        let mut conn = primary(&client, &inst).await?;
                        dataplane::drop_database(&mut conn, &name).await?;
                        conn.close().await;
                    }
                    Err(RdsError::InstanceMissing(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            set_finalizer(&client, db.as_ref(), false).await?;
        }
        return Ok(Action::await_change());
    }
    let inst = instance(&client, &ns, &db.spec.instance_name).await?;
    if db.spec.deletion_policy == DeletionPolicy::Delete && !has_finalizer(db.as_ref()) {
        set_finalizer(&client, db.as_ref(), true).await?;
    } else if db.spec.deletion_policy == DeletionPolicy::Retain && has_finalizer(db.as_ref()) {
        set_finalizer(&client, db.as_ref(), false).await?;
    }
    let mut conn = primary(&client, &inst).await?;
    let changed = dataplane::ensure_database(
        &mut conn,
        &name,
        db.spec.character_set.as_str(),
        db.spec.collation.as_deref(),
    )
    .await;
    conn.close().await;
    if changed? {
        ctx.events()
            .publish(
                &db.object_ref(&()),
                Severity::Normal,
                "DatabaseApplied",
                "EnsureDatabase",
                &format!("database {name} ({})", db.spec.character_set.as_str()),
            )
            .await;
    }
    let live = db.status.clone().unwrap_or_default();
    let mut c = Conditions::new(&live.conditions, db.meta().generation);
    c.set(
        "Ready",
        true,
        "DatabaseReady",
        &format!("database {name} exists"),
    );
    let (conditions, transitions) = c.finish();
    let status = RdsDatabaseStatus {
        conditions,
        observed_generation: db.meta().generation,
    };
    ctx.update_status(db.as_ref(), &status, &transitions)
        .await?;
    Ok(Action::requeue(RESYNC))
}
