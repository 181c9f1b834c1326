//! The e2e test framework every product's tests use.
//!
//! - [`TestEnv`]: the cluster from `KUBECONFIG`; fails (never skips) when it is unreachable.
//! - [`TestNamespace`]: one temporary namespace per test, labelled `agility.dev/e2e=true`;
//!   [`TestNamespace::finish`] deletes it; a test that panics or ends without `finish()` keeps it,
//!   with a [`dump`] of its objects, events and logs under `target/e2e-artifacts/<test>/`.
//! - Apply typed objects or multi-document YAML (server-side apply, kinds by discovery), and
//!   [`wait`] for a state with a timeout whose message shows the last state seen.
//! - [`reach`]: Services and pods by route (pod IP, ClusterIP, names through the cluster DNS) or
//!   through a port-forward; [`exec`] in a container.
//! - [`faults`]: delete a pod, kill or freeze a container's main process, cut a pod's network.
//!
//! ```no_run
//! # async fn demo() -> agility_e2e::Result<()> {
//! use std::time::Duration;
//! let env = agility_e2e::TestEnv::from_env().await?;
//! let ns = env.namespace("redis-smoke").await?; // kept with a dump if the test fails
//! ns.apply_yaml("apiVersion: v1\nkind: Pod\nmetadata: {name: redis-0}\nspec: {containers: [{name: redis, image: localhost/agility/redis:7.0.15}]}\n").await?;
//! ns.wait_pod_ready("redis-0", Duration::from_secs(60)).await?;
//! let out = ns.exec("redis-0", &["redis-cli", "ping"]).await?;
//! assert_eq!(out.stdout.trim(), "PONG");
//! let addr = env.reach().pod(env.client(), ns.name(), "redis-0", 6379).await?;
//! let pid = agility_e2e::faults::freeze(&ns, "redis-0").await?; // SIGSTOP from the host
//! agility_e2e::faults::thaw(&ns, "redis-0").await?;
//! # let _ = (addr, pid);
//! ns.finish().await?; // deletes the namespace
//! # Ok(()) }
//! ```

pub mod dump;
pub mod env;
pub mod error;
pub mod exec;
pub mod faults;
pub mod host;
pub mod namespace;
pub mod reach;
pub mod wait;
pub mod yaml;

pub use env::TestEnv;
pub use error::{Error, Result};
pub use exec::ExecOutput;
pub use namespace::TestNamespace;
pub use reach::Reach;
