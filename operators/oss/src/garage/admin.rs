//! The typed client of Garage's admin API v2: `Authorization: Bearer <admin token>` over plain
//! HTTP (the API is only reachable inside the cluster network), JSON both ways.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::Full;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{GarageError, Result};
use super::layout::{self, DesiredRole};
use super::transport::{self, HttpClient, query};
use super::types::{
    AppliedLayout, BucketInfo, BucketUpdate, ClusterHealth, ClusterLayout, ClusterStatus,
    ConnectResult, KeyInfo, KeyListItem, LayoutUpdate, MultiResponse, NodeInfo, Permissions,
};

/// Default deadline of one admin call (layout computation on a large cluster is the slowest).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one Garage node's admin API. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct AdminClient {
    base: String,
    token: String,
    http: HttpClient,
    timeout: Duration,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Body of `AllowBucketKey` / `DenyBucketKey`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PermChange<'a> {
    bucket_id: &'a str,
    access_key_id: &'a str,
    permissions: Permissions,
}

impl AdminClient {
    /// A client of the admin API at `base_url` (`http://host:3903`) with the admin token.
    pub fn new(base_url: &str, token: &str) -> Result<Self> {
        Ok(AdminClient {
            base: transport::base_url(base_url)?,
            token: token.to_owned(),
            http: transport::client(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same client with another deadline per call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes> {
        let uri = format!("{}{}", self.base, path);
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| GarageError::InvalidRequest(format!("{uri}: {e}")))?;
        let answer = transport::send(&self.http, req, self.timeout).await?;
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(GarageError::from_admin_body(
                answer.status.as_u16(),
                &answer.body,
            ))
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| GarageError::InvalidRequest(format!("encoding body: {e}")))?;
        let bytes = self.send(method, path, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| GarageError::InvalidResponse(format!("{path}: {e}")))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None::<&()>).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `GET /health`: whether this node can serve requests (quorum for every partition). Needs
    /// no token; `false` on Garage's 503 ("unavailable"), an error when unreachable.
    pub async fn health(&self) -> Result<bool> {
        match self.send(Method::GET, "/health", None).await {
            Ok(_) => Ok(true),
            Err(GarageError::Api { status: 503, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /v2/GetClusterHealth`.
    pub async fn cluster_health(&self) -> Result<ClusterHealth> {
        self.get("/v2/GetClusterHealth").await
    }

    /// `GET /v2/GetClusterStatus`.
    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        self.get("/v2/GetClusterStatus").await
    }

    /// `GET /v2/GetNodeInfo?node=..` (`self`, `*` or a node id).
    pub async fn node_info(&self, node: &str) -> Result<MultiResponse<NodeInfo>> {
        self.get(&format!("/v2/GetNodeInfo?{}", query(&[("node", node)])))
            .await
    }

    /// The id of the node this client talks to.
    pub async fn local_node_id(&self) -> Result<String> {
        let info = self.node_info("self").await?;
        match (
            info.success.into_values().next(),
            info.error.into_values().next(),
        ) {
            (Some(n), _) => Ok(n.node_id),
            (None, Some(e)) => Err(GarageError::Api {
                status: 500,
                code: "GetNodeInfo".into(),
                message: e,
            }),
            (None, None) => Err(GarageError::InvalidResponse(
                "GetNodeInfo?node=self answered for no node".into(),
            )),
        }
    }

    /// `POST /v2/ConnectClusterNodes` with `<node id>@<ip:port>` peers; one result per peer.
    pub async fn connect_nodes(&self, peers: &[String]) -> Result<Vec<ConnectResult>> {
        self.post("/v2/ConnectClusterNodes", peers).await
    }

    /// `GET /v2/GetClusterLayout`.
    pub async fn cluster_layout(&self) -> Result<ClusterLayout> {
        self.get("/v2/GetClusterLayout").await
    }

    /// `POST /v2/UpdateClusterLayout`: stages changes; answers the layout with them staged.
    pub async fn update_layout(&self, update: &LayoutUpdate) -> Result<ClusterLayout> {
        self.post("/v2/UpdateClusterLayout", update).await
    }

    /// `POST /v2/ApplyClusterLayout`: applies the staged changes as `version` (the current
    /// version + 1; Garage refuses anything else, which guards against concurrent applies).
    pub async fn apply_layout(&self, version: u64) -> Result<AppliedLayout> {
        self.post(
            "/v2/ApplyClusterLayout",
            &serde_json::json!({ "version": version }),
        )
        .await
    }

    /// Gives every node of `desired` its role: reads the layout, and only when
    /// [`layout::plan`] finds a difference stages and applies it. Returns the new layout
    /// version, or `None` when nothing had to change (no write at all).
    pub async fn ensure_layout(&self, desired: &[DesiredRole]) -> Result<Option<u64>> {
        let current = self.cluster_layout().await?;
        let Some(update) = layout::plan(&current, desired) else {
            return Ok(None);
        };
        self.update_layout(&update).await?;
        let applied = self.apply_layout(current.version + 1).await?;
        Ok(Some(applied.layout.version))
    }

    /// `POST /v2/CreateBucket` with a global alias (the S3 bucket name).
    pub async fn create_bucket(&self, global_alias: &str) -> Result<BucketInfo> {
        self.post(
            "/v2/CreateBucket",
            &serde_json::json!({ "globalAlias": global_alias }),
        )
        .await
    }

    /// `GET /v2/GetBucketInfo?id=..`.
    pub async fn bucket_info(&self, id: &str) -> Result<BucketInfo> {
        self.get(&format!("/v2/GetBucketInfo?{}", query(&[("id", id)])))
            .await
    }

    /// `GET /v2/GetBucketInfo?globalAlias=..`.
    pub async fn bucket_by_alias(&self, global_alias: &str) -> Result<BucketInfo> {
        self.get(&format!(
            "/v2/GetBucketInfo?{}",
            query(&[("globalAlias", global_alias)])
        ))
        .await
    }

    /// `POST /v2/UpdateBucket?id=..`; answers the bucket as updated.
    pub async fn update_bucket(&self, id: &str, update: &BucketUpdate) -> Result<BucketInfo> {
        self.post(
            &format!("/v2/UpdateBucket?{}", query(&[("id", id)])),
            &update.to_json(),
        )
        .await
    }

    /// `POST /v2/DeleteBucket?id=..`: only an empty bucket ([`GarageError::BucketNotEmpty`]
    /// otherwise; empty it with [`super::s3::S3Client::empty_bucket`]).
    pub async fn delete_bucket(&self, id: &str) -> Result<()> {
        self.send(
            Method::POST,
            &format!("/v2/DeleteBucket?{}", query(&[("id", id)])),
            None,
        )
        .await
        .map(drop)
    }

    /// `POST /v2/CreateKey`; the answer carries the secret.
    pub async fn create_key(&self, name: &str) -> Result<KeyInfo> {
        self.post("/v2/CreateKey", &serde_json::json!({ "name": name }))
            .await
    }

    /// `GET /v2/GetKeyInfo?id=..[&showSecretKey=true]`.
    pub async fn key_info(&self, id: &str, show_secret: bool) -> Result<KeyInfo> {
        let mut q = vec![("id", id)];
        if show_secret {
            q.push(("showSecretKey", "true"));
        }
        self.get(&format!("/v2/GetKeyInfo?{}", query(&q))).await
    }

    /// `GET /v2/ListKeys`.
    pub async fn list_keys(&self) -> Result<Vec<KeyListItem>> {
        self.get("/v2/ListKeys").await
    }

    /// `POST /v2/DeleteKey?id=..`.
    pub async fn delete_key(&self, id: &str) -> Result<()> {
        self.send(
            Method::POST,
            &format!("/v2/DeleteKey?{}", query(&[("id", id)])),
            None,
        )
        .await
        .map(drop)
    }

    /// `POST /v2/UpdateKey?id=..` renaming a key (the operator marks a retained bucket's key).
    pub async fn update_key_name(&self, id: &str, name: &str) -> Result<KeyInfo> {
        self.post(
            &format!("/v2/UpdateKey?{}", query(&[("id", id)])),
            &serde_json::json!({ "name": name }),
        )
        .await
    }

    /// `POST /v2/AllowBucketKey`: adds the `true` permissions (others stay as they are).
    pub async fn allow_bucket_key(
        &self,
        bucket_id: &str,
        access_key_id: &str,
        permissions: Permissions,
    ) -> Result<BucketInfo> {
        self.post(
            "/v2/AllowBucketKey",
            &PermChange {
                bucket_id,
                access_key_id,
                permissions,
            },
        )
        .await
    }

    /// `POST /v2/DenyBucketKey`: removes the `true` permissions (others stay as they are).
    pub async fn deny_bucket_key(
        &self,
        bucket_id: &str,
        access_key_id: &str,
        permissions: Permissions,
    ) -> Result<BucketInfo> {
        self.post(
            "/v2/DenyBucketKey",
            &PermChange {
                bucket_id,
                access_key_id,
                permissions,
            },
        )
        .await
    }
}
