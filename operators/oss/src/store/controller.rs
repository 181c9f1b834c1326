//! The ObjectStore pipeline: read the generated secrets → join the Garage nodes and keep the
//! layout (admin API, writes only when something changed) → build and apply the children → grant
//! the gateway's key on public buckets → status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agility_core::status::Conditions;
use agility_core::{Action, Child, Reconcile};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};

use super::build::garage::AdminSecrets;
use super::build::{self, COMPONENT_GARAGE, garage, gateway};
use crate::State;
use crate::bucket::secret::value;
use crate::crd::{Acl, Bucket, ObjectStore, ObjectStoreStatus};
use crate::error::{OssError, Result, absent_ok};
use crate::garage::AdminClient;
use crate::garage::layout::DesiredRole;
use crate::garage::types::Permissions;
use crate::gateway::config::{BucketRules, GatewayConfig};
use crate::names;

/// Looked at again this soon while the store is coming up.
const SETTLING: Duration = Duration::from_secs(3);
/// And this often when Ready (reads only: it notices nodes that lost each other).
const RESYNC: Duration = Duration::from_secs(60);

/// Name of the gateway's Garage key (one per store).
fn gateway_key_name(store: &ObjectStore) -> String {
    format!(
        "agility-gateway:{}/{}",
        store.namespace().unwrap_or_default(),
        store.name_any()
    )
}

/// What the data-plane step saw.
#[derive(Default)]
struct Observed {
    nodes_up: usize,
    layout_version: Option<u64>,
    gateway_key: Option<(String, String)>,
    problem: Option<String>,
}

/// Reconciles one ObjectStore.
pub async fn reconcile(obj: Arc<ObjectStore>, ctx: Reconcile<Arc<State>>) -> Result<Action> {
    if obj.meta().deletion_timestamp.is_some() {
        // Children go with the owner; the volumes stay (whenDeleted: Retain). No finalizer.
        return Ok(Action::await_change());
    }
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let secrets_api: Api<Secret> = Api::namespaced(ctx.client().clone(), &ns);
    let admin = read_admin_secrets(&secrets_api, &name).await?;
    let mut observed = Observed::default();
    match data_plane(&obj, &ctx, &admin, &secrets_api).await {
        Ok(o) => observed = o,
        Err(e) => observed.problem = Some(agility_core::error::cause_chain(&e)),
    }
    let state = ctx.state();
    let buckets = state.buckets_of_store(&obj);
    let rules = gateway_rules(&buckets);
    let children = desired(
        &obj,
        &state.settings,
        &admin,
        &rules,
        observed.gateway_key.as_ref(),
    )?;
    ctx.apply_children(obj.as_ref(), &children).await?;
    if let Some((key_id, _)) = &observed.gateway_key
        && observed.problem.is_none()
        && let Err(e) = grant_public_buckets(&obj, &admin, key_id, &buckets).await
    {
        observed.problem = Some(agility_core::error::cause_chain(&e));
    }
    let deployments: Api<Deployment> = Api::namespaced(ctx.client().clone(), &ns);
    let gateways_ready = deployments
        .get_opt(&names::gateway(&name))
        .await
        .map_err(|e| agility_core::Error::kube("read the gateway Deployment", e))?
        .and_then(|d| d.status)
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    let (status, transitions, ready) = status(&obj, &observed, gateways_ready);
    ctx.update_status(obj.as_ref(), &status, &transitions)
        .await?;
    Ok(Action::requeue(if ready { RESYNC } else { SETTLING }))
}

async fn read_admin_secrets(api: &Api<Secret>, store: &str) -> Result<AdminSecrets> {
    let live = api
        .get_opt(&names::admin_secret(store))
        .await
        .map_err(|e| agility_core::Error::kube("read the admin Secret", e))?;
    let kept = |k: &str| live.as_ref().and_then(|s| value(s, k));
    Ok(
        match (kept(names::ADMIN_TOKEN_KEY), kept(names::RPC_SECRET_KEY)) {
            (Some(admin_token), Some(rpc_secret)) => AdminSecrets {
                admin_token,
                rpc_secret,
            },
            _ => AdminSecrets::generate(),
        },
    )
}

/// The children of a store (the gateway key Secret once the key exists).
fn desired(
    store: &ObjectStore,
    settings: &build::Settings,
    admin: &AdminSecrets,
    rules: &GatewayConfig,
    gateway_key: Option<&(String, String)>,
) -> Result<Vec<Child>> {
    let config = garage::config_map(store)?;
    let hash = format!(
        "{:016x}",
        agility_core::apply::fnv1a64(garage::config_toml(store).as_bytes())
    );
    let g = COMPONENT_GARAGE;
    let w = build::COMPONENT_GATEWAY;
    let mut children = vec![
        Child::new(g, &config)?,
        Child::new(g, &garage::admin_secret(store, admin)?)?,
        Child::new(g, &garage::nodes_service(store)?)?,
        Child::new(g, &garage::internal_service(store)?)?,
        Child::new(g, &garage::admin_service(store)?)?,
        Child::new(g, &garage::statefulset(store, settings, &hash)?)?,
        Child::new(g, &garage::pdb(store)?)?,
        Child::new(w, &gateway::service_account(store)?)?,
        Child::new(w, &gateway::role(store)?)?,
        Child::new(w, &gateway::role_binding(store)?)?,
        Child::new(w, &gateway::rules_config_map(store, rules)?)?,
        Child::new(w, &gateway::deployment(store, settings)?)?,
        Child::new(w, &gateway::s3_service(store)?)?,
        Child::new(w, &gateway::web_service(store)?)?,
        Child::new(w, &gateway::pdb(store)?)?,
    ];
    if let Some((id, secret)) = gateway_key {
        children.push(Child::new(w, &gateway::key_secret(store, id, secret)?)?);
    }
    Ok(children)
}

/// The gateway rules of a store's buckets.
pub fn gateway_rules(buckets: &[Arc<Bucket>]) -> GatewayConfig {
    let mut out = GatewayConfig::default();
    for b in buckets {
        let Some(bucket_name) = b.status.as_ref().and_then(|s| s.bucket_name.clone()) else {
            continue;
        };
        if b.spec.acl == Acl::Private && b.spec.referer.is_none() {
            continue;
        }
        out.buckets.insert(
            bucket_name,
            BucketRules {
                acl: b.spec.acl,
                referer: b.spec.referer.clone(),
            },
        );
    }
    out
}

/// The admin API of one node.
fn node_client(ip: &str, admin: &AdminSecrets) -> Result<AdminClient> {
    AdminClient::new(
        &format!("http://{ip}:{}", names::GARAGE_ADMIN_PORT),
        &admin.admin_token,
    )
    .map(|c| c.with_timeout(Duration::from_secs(5)))
    .map_err(OssError::garage("build the admin client"))
}

/// Joins the nodes, keeps the layout and the gateway key. Reads only in steady state.
async fn data_plane(
    store: &ObjectStore,
    ctx: &Reconcile<Arc<State>>,
    admin: &AdminSecrets,
    secrets: &Api<Secret>,
) -> Result<Observed> {
    let ns = store.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client().clone(), &ns);
    let selector = agility_core::labels::selector_string(&build::selector(store, COMPONENT_GARAGE));
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| agility_core::Error::kube("list the Garage pods", e))?;
    // (pod name, ip, node id) of every running node that answers.
    let mut nodes = Vec::new();
    for p in &list.items {
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let Some(ip) = p.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        if !running || p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let uid = p.uid().unwrap_or_default();
        let id: String = match ctx.state().node_id(&uid) {
            Some(id) => id,
            None => match node_client(&ip, admin)?.local_node_id().await {
                Ok(id) => {
                    ctx.state().remember_node_id(&uid, &id);
                    id
                }
                Err(_) => continue, // starting up; the next look finds it
            },
        };
        nodes.push((p.name_any(), ip, id));
    }
    let mut observed = Observed::default();
    let Some((_, first_ip, _)) = nodes.first() else {
        observed.problem = Some("no Garage node answers yet".into());
        return Ok(observed);
    };
    let client = node_client(first_ip, admin)?;
    let status = client
        .cluster_status()
        .await
        .map_err(OssError::garage("read the cluster status"))?;
    let up = |id: &str| status.nodes.iter().any(|n| n.id == id && n.is_up);
    if nodes.iter().any(|(_, _, id)| !up(id)) {
        // A node restarted with a new IP, or never met the others: introduce everyone.
        let peers: Vec<String> = nodes
            .iter()
            .map(|(_, ip, id)| format!("{id}@{ip}:{}", names::GARAGE_RPC_PORT))
            .collect();
        for (_, ip, _) in &nodes {
            if let Ok(c) = node_client(ip, admin) {
                let _ = c.connect_nodes(&peers).await;
            }
        }
    }
    observed.nodes_up = nodes.iter().filter(|(_, _, id)| up(id)).count();
    let wanted = usize::try_from(store.spec.nodes).unwrap_or(0);
    let capacity = build::quantity_bytes(&store.spec.storage.size).unwrap_or(0);
    if nodes.len() >= wanted {
        let desired: Vec<DesiredRole> = nodes
            .iter()
            .map(|(pod, _, id)| DesiredRole {
                node_id: id.clone(),
                // One zone per node: copies go to different nodes whatever the topology.
                zone: pod.clone(),
                capacity,
                tags: vec![pod.clone()],
            })
            .collect();
        let applied = client
            .ensure_layout(&desired)
            .await
            .map_err(OssError::garage("apply the layout"))?;
        if let Some(v) = applied {
            tracing::info!(namespace = %ns, store = %store.name_any(), version = v, "applied a new Garage layout");
        }
    }
    let layout = client
        .cluster_layout()
        .await
        .map_err(OssError::garage("read the layout"))?;
    observed.layout_version = (layout.version > 0).then_some(layout.version);
    if observed.layout_version.is_some() {
        observed.gateway_key = Some(ensure_gateway_key(store, &client, secrets).await?);
    } else {
        observed.problem = Some(format!(
            "waiting for {wanted} Garage nodes to join the layout"
        ));
    }
    Ok(observed)
}

/// The gateway's key (see [`kept_or_named_key`]).
async fn ensure_gateway_key(
    store: &ObjectStore,
    client: &AdminClient,
    secrets: &Api<Secret>,
) -> Result<(String, String)> {
    let secret = names::gateway_key_secret(&store.name_any());
    kept_or_named_key(client, secrets, &secret, &gateway_key_name(store)).await
}

/// The key in Secret `secret` if Garage still has it, else the one named `name`, else a new one:
/// a retry after a failed Secret write finds the key it made, never a second one.
pub async fn kept_or_named_key(
    client: &AdminClient,
    secrets: &Api<Secret>,
    secret: &str,
    name: &str,
) -> Result<(String, String)> {
    let live = secrets
        .get_opt(secret)
        .await
        .map_err(|e| agility_core::Error::kube("read a key Secret", e))?;
    let kept = live.as_ref().and_then(|s| {
        Some((
            value(s, names::ACCESS_KEY_ID_KEY)?,
            value(s, names::SECRET_ACCESS_KEY_KEY)?,
        ))
    });
    if let Some((id, sk)) = kept
        && absent_ok(client.key_info(&id, false).await, "read a key")?.is_some()
    {
        return Ok((id, sk));
    }
    find_or_create_key(client, name).await
}

/// The key named `name` (with its secret), created if Garage has none.
async fn find_or_create_key(client: &AdminClient, name: &str) -> Result<(String, String)> {
    let keys = client
        .list_keys()
        .await
        .map_err(OssError::garage("list keys"))?;
    let info = match keys.iter().find(|k| k.name == name) {
        Some(k) => client
            .key_info(&k.id, true)
            .await
            .map_err(OssError::garage("read a key"))?,
        None => client
            .create_key(name)
            .await
            .map_err(OssError::garage("create a key"))?,
    };
    let secret = info.secret_access_key.clone().ok_or_else(|| {
        OssError::NotReady(format!("Garage returned key {name} without its secret"))
    })?;
    Ok((info.access_key_id, secret))
}

/// Gives the gateway key read (public-read) or read+write (public-read-write) on public buckets
/// and takes it away elsewhere. Writes only differences.
async fn grant_public_buckets(
    store: &ObjectStore,
    admin: &AdminSecrets,
    key_id: &str,
    buckets: &[Arc<Bucket>],
) -> Result<()> {
    let ns = store.namespace().unwrap_or_default();
    let client = AdminClient::new(&admin_url(store, &ns), &admin.admin_token)
        .map_err(OssError::garage("build the admin client"))?;
    let want: BTreeMap<String, Permissions> = buckets
        .iter()
        .filter_map(|b| {
            let id = b.status.as_ref()?.bucket_id.clone()?;
            let p = match b.spec.acl {
                Acl::Private => return None,
                Acl::PublicRead => Permissions::READ,
                Acl::PublicReadWrite => Permissions::READ_WRITE,
            };
            Some((id, p))
        })
        .collect();
    let info = client
        .key_info(key_id, false)
        .await
        .map_err(OssError::garage("read the gateway key"))?;
    let have: BTreeMap<String, Permissions> = info
        .buckets
        .iter()
        .map(|b| (b.id.clone(), b.permissions))
        .collect();
    for (id, p) in &want {
        let cur = have.get(id).copied().unwrap_or_default();
        if cur != *p {
            let deny = Permissions {
                read: cur.read && !p.read,
                write: cur.write && !p.write,
                owner: cur.owner,
            };
            if deny != Permissions::default() {
                client
                    .deny_bucket_key(id, key_id, deny)
                    .await
                    .map_err(OssError::garage("revoke the gateway's access"))?;
            }
            client
                .allow_bucket_key(id, key_id, *p)
                .await
                .map_err(OssError::garage("grant the gateway access"))?;
        }
    }
    for (id, cur) in &have {
        if !want.contains_key(id) && *cur != Permissions::default() {
            absent_ok(
                client.deny_bucket_key(id, key_id, *cur).await,
                "revoke the gateway's access",
            )?;
        }
    }
    Ok(())
}

/// The store's admin API through its Service (any node answers cluster-wide calls).
pub fn admin_url(store: &ObjectStore, namespace: &str) -> String {
    format!(
        "http://{}.{namespace}.svc:{}",
        names::admin_service(&store.name_any()),
        names::GARAGE_ADMIN_PORT
    )
}

fn status(
    store: &ObjectStore,
    o: &Observed,
    gateways_ready: i32,
) -> (
    ObjectStoreStatus,
    Vec<agility_core::status::Transition>,
    bool,
) {
    let wanted = usize::try_from(store.spec.nodes).unwrap_or(0);
    let prev = store
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let mut c = Conditions::new(prev, store.metadata.generation);
    let (ready, reason, message) = if let Some(p) = &o.problem {
        (false, "DataPlaneNotReady", p.clone())
    } else if o.nodes_up < wanted {
        (
            false,
            "NodesDown",
            format!("{}/{wanted} Garage nodes up", o.nodes_up),
        )
    } else if gateways_ready < 1 {
        (
            false,
            "GatewayNotReady",
            "no gateway replica is available yet".to_owned(),
        )
    } else {
        (
            true,
            "Ready",
            format!(
                "{wanted} nodes, layout v{}, {gateways_ready} gateway(s)",
                o.layout_version.unwrap_or(0)
            ),
        )
    };
    c.set(agility_core::status::READY, ready, reason, &message);
    let (conditions, transitions) = c.finish();
    let ns = store.namespace().unwrap_or_default();
    let (s3, web) = gateway::endpoints(store);
    let phase = if ready {
        "Running"
    } else if o.layout_version.is_some() {
        "Degraded"
    } else {
        "Pending"
    };
    let status = ObjectStoreStatus {
        phase: Some(phase.into()),
        nodes: Some(format!("{}/{wanted}", o.nodes_up)),
        layout_version: o.layout_version.and_then(|v| i64::try_from(v).ok()),
        s3_endpoint: Some(s3),
        website_endpoint: Some(web),
        website_domain: Some(names::website_domain(&store.name_any(), &ns)),
        region: Some(store.spec.region.clone()),
        observed_generation: store.metadata.generation,
        conditions,
    };
    (status, transitions, ready)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crd::{BucketSpec, BucketStatus, RefererRules};

    fn bucket(name: Option<&str>, acl: Acl, referer: bool) -> Arc<Bucket> {
        let mut b = Bucket::new(
            "b",
            BucketSpec {
                acl,
                ..Default::default()
            },
        );
        if referer {
            b.spec.referer = Some(RefererRules {
                allowed: vec!["https://*.example.com/*".into()],
                allow_empty: false,
            });
        }
        b.status = Some(BucketStatus {
            bucket_name: name.map(str::to_owned),
            ..Default::default()
        });
        Arc::new(b)
    }

    #[test]
    fn rules_list_public_or_referer_buckets_with_a_name() {
        let rules = gateway_rules(&[
            bucket(Some("pub"), Acl::PublicRead, false),
            bucket(Some("plain"), Acl::Private, false),
            bucket(Some("guarded"), Acl::Private, true),
            bucket(None, Acl::PublicReadWrite, false),
        ]);
        let names: Vec<_> = rules.buckets.keys().cloned().collect();
        assert_eq!(names, vec!["guarded", "pub"]);
        assert_eq!(rules.buckets["pub"].acl, Acl::PublicRead);
        assert!(rules.buckets["guarded"].referer.is_some());
    }
}
