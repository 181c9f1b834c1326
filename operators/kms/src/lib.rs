//! `agility-kms`: the KMS product. [`crd`] (the `Cmk` kind), [`cipher`] and [`blob`] (AES-256-GCM
//! envelope encryption with a versioned ciphertext format), [`root`] (key material wrapped by
//! the root key), [`keyring`] (the keys a replica serves and their state rules), [`sigv4`]
//! (request authentication), [`authz`] (which access key may use which key), [`api`] (the
//! AWS-KMS-compatible operations), [`service`] (a request's path), [`server`] (HTTPS),
//! [`store`] and [`lifecycle`] (stored records, rotation, deletion), [`controller`] (the
//! leader's `Cmk` controller and sweeper), [`replica`] (what every replica serves from) and
//! [`bootstrap`] (root key and API certificate). See docs/kms.md.
//!
//! The KMS runs as its own Deployment of `agility-operator run --controllers=kms` with its own
//! service account: the leader runs the `Cmk` controller, every replica serves the API.

pub mod api;
pub mod authz;
pub mod blob;
pub mod bootstrap;
pub mod cipher;
pub mod controller;
pub mod crd;
pub mod error;
pub mod keyring;
pub mod kmsv2;
pub mod lifecycle;
pub mod pkcs11;
pub mod replica;
pub mod root;
pub mod server;
pub mod service;
pub mod sigv4;
pub mod store;
pub mod testing;

use std::net::SocketAddr;
use std::sync::Arc;

use agility_core::product::BoxFuture;
use agility_core::{ControllerContext, ProductController, Runner};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use tracing::{info, warn};

use crate::crd::Cmk;

/// The controller name (`--controllers=kms`).
pub const CONTROLLER: &str = "kms";

/// Where the KMS runs, from the environment the chart sets.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The KMS namespace (root key, certificate, key records, access keys).
    pub namespace: String,
    /// The API Service name (in the certificate).
    pub service: String,
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The region clients sign for.
    pub region: String,
    /// How often the leader looks for keys whose `Cmk` is gone.
    pub sweep_interval: std::time::Duration,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Settings {
    /// From `POD_NAMESPACE`, `AGILITY_KMS_SERVICE`, `AGILITY_KMS_LISTEN`, `AGILITY_KMS_REGION`,
    /// `AGILITY_KMS_SWEEP_SECONDS`.
    pub fn from_env() -> Self {
        Settings {
            namespace: env("POD_NAMESPACE").unwrap_or_else(|| "agility-system".into()),
            service: env("AGILITY_KMS_SERVICE").unwrap_or_else(|| "agility-kms".into()),
            listen: env("AGILITY_KMS_LISTEN")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8443))),
            region: env("AGILITY_KMS_REGION").unwrap_or_else(|| "local".into()),
            sweep_interval: env("AGILITY_KMS_SWEEP_SECONDS")
                .and_then(|v| v.parse().ok())
                .map_or(controller::SWEEP_INTERVAL, std::time::Duration::from_secs),
        }
    }
}

/// The `kms` controller.
pub struct KmsController;

fn core_err(what: &str, e: impl std::fmt::Display) -> agility_core::Error {
    agility_core::Error::Internal(format!("{what}: {e}"))
}

impl ProductController for KmsController {
    fn name(&self) -> &'static str {
        CONTROLLER
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        vec![Cmk::crd()]
    }

    fn run(&self, ctx: ControllerContext) -> BoxFuture<'static, agility_core::Result<()>> {
        Box::pin(async move {
            let settings = Settings::from_env();
            let client = ctx.client().clone();
            let root = bootstrap::root_key(&client, &settings.namespace)
                .await
                .map_err(|e| core_err("root key", e))?;
            let stop = ctx.shutdown().clone();
            let (sweep_client, ns, interval) = (
                client.clone(),
                settings.namespace.clone(),
                settings.sweep_interval,
            );
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    if let Err(e) = controller::sweep(&sweep_client, &ns).await {
                        warn!(error = %e, "sweep of deleted keys failed; retrying");
                    }
                }
            });
            Runner::<Cmk>::new(ctx)
                .run(
                    controller::reconcile,
                    controller::LeaderState {
                        namespace: settings.namespace,
                        root: Arc::new(root),
                    },
                )
                .await
        })
    }

    fn run_on_every_replica(
        &self,
        ctx: ControllerContext,
    ) -> Option<BoxFuture<'static, agility_core::Result<()>>> {
        Some(Box::pin(async move {
            let settings = Settings::from_env();
            let client = ctx.client().clone();
            let root = Arc::new(
                bootstrap::root_key(&client, &settings.namespace)
                    .await
                    .map_err(|e| core_err("root key", e))?,
            );
            let tls = bootstrap::api_tls(&client, &settings.namespace, &settings.service)
                .await
                .map_err(|e| core_err("API certificate", e))?;
            let metrics = service::Metrics::new(ctx.metrics().registry())
                .map_err(|e| core_err("metrics", e))?;
            let service = Arc::new(service::Service::new(&settings.region, metrics));
            let (ready_tx, mut ready) = tokio::sync::watch::channel(false);
            let stop = ctx.shutdown().clone();
            tokio::spawn(replica::watch(
                client.clone(),
                settings.namespace.clone(),
                root,
                service.clone(),
                ready_tx,
                stop.clone(),
            ));
            // Listen only once the keyring is loaded: the readiness probe is a TCP check.
            while !*ready.borrow_and_update() {
                tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    changed = ready.changed() => if changed.is_err() { return Ok(()) },
                }
            }
            let config = server::tls_config(&tls).map_err(|e| core_err("TLS", e))?;
            info!(listen = %settings.listen, "KMS API serving");
            server::serve(
                settings.listen,
                config,
                service,
                Some(client),
                settings.namespace,
                stop,
            )
            .await
            .map_err(|e| core_err("KMS API", e))
        }))
    }
}
