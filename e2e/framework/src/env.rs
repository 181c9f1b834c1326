//! The cluster under test.

use kube::Client;

use crate::error::{Error, Result};
use crate::namespace::TestNamespace;
use crate::reach::Reach;

/// A connection to the cluster the tests run against (from `KUBECONFIG`).
#[derive(Clone)]
pub struct TestEnv {
    client: Client,
    reach: Reach,
}

impl TestEnv {
    /// Connects using `KUBECONFIG`; fails (never skips) when it is unset or the API is unreachable.
    pub async fn from_env() -> Result<Self> {
        if std::env::var_os("KUBECONFIG").is_none() {
            return Err(Error::NoCluster(
                "KUBECONFIG is not set: run `e2e/cluster/up.sh` and export the path it prints"
                    .into(),
            ));
        }
        let client = Client::try_default()
            .await
            .map_err(|e| Error::NoCluster(e.to_string()))?;
        client
            .apiserver_version()
            .await
            .map_err(|e| Error::NoCluster(format!("API server unreachable: {e}")))?;
        Ok(TestEnv {
            client,
            reach: Reach::from_env(),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How tests reach Services and pods (route or port-forward).
    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    /// A fresh namespace for one test, named after it.
    pub async fn namespace(&self, test: &str) -> Result<TestNamespace> {
        TestNamespace::create(self.client.clone(), self.reach.clone(), test).await
    }
}
