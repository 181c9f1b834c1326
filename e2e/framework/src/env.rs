//! The cluster under test.

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::error::{Error, Result};
use crate::namespace::TestNamespace;
use crate::reach::Reach;

/// How long the first API call may take before the cluster counts as unreachable.
const REACHABLE_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection to the cluster the tests run against (from `KUBECONFIG`).
#[derive(Clone)]
pub struct TestEnv {
    client: Client,
    config: Config,
    reach: Reach,
}

impl TestEnv {
    /// Connects using `KUBECONFIG`; fails (never skips) when it is unset or the API is unreachable.
    /// How Services are reached comes from `AGILITY_E2E_REACH` (`route`, `port-forward`), or is
    /// detected when unset (see [`Reach::detect`]).
    pub async fn from_env() -> Result<Self> {
        let path = std::env::var("KUBECONFIG").map_err(|_| {
            Error::NoCluster(
                "KUBECONFIG is not set: run `e2e/cluster/up.sh` and export the path it prints \
                 (/var/lib/agility-e2e/node/kubeconfig for the local node)"
                    .into(),
            )
        })?;
        let kubeconfig = Kubeconfig::from_env()
            .map_err(|e| Error::NoCluster(format!("KUBECONFIG={path}: {e}")))?
            .ok_or_else(|| Error::NoCluster(format!("KUBECONFIG={path} holds no config")))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| Error::NoCluster(format!("KUBECONFIG={path}: {e}")))?;
        let url = config.cluster_url.to_string();
        let client = Client::try_from(config.clone())?;
        match tokio::time::timeout(REACHABLE_TIMEOUT, client.apiserver_version()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(Error::NoCluster(format!(
                    "API server {url} (KUBECONFIG={path}) unreachable: {e}"
                )));
            }
            Err(_) => {
                return Err(Error::NoCluster(format!(
                    "API server {url} (KUBECONFIG={path}) did not answer within {REACHABLE_TIMEOUT:?}"
                )));
            }
        }
        let reach = Reach::from_env().await?;
        Ok(TestEnv {
            client,
            config,
            reach,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The client configuration (e.g. to build a second client on another runtime).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How tests reach Services and pods (route or port-forward).
    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    /// A fresh namespace for one test, named after it.
    pub async fn namespace(&self, test: &str) -> Result<TestNamespace> {
        TestNamespace::create(
            self.client.clone(),
            self.config.clone(),
            self.reach.clone(),
            test,
        )
        .await
    }
}
