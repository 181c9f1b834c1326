//! The e2e test framework every product's tests use.
//!
//! ```no_run
//! # async fn demo() -> agility_e2e::Result<()> {
//! let env = agility_e2e::TestEnv::from_env().await?;
//! let ns = env.namespace("redis-smoke").await?;           // kept with a dump if the test fails
//! ns.apply_yaml(include_str!("../../../manifests/install.yaml")).await?;
//! let pod = ns.wait_pod_ready("redis-0", std::time::Duration::from_secs(60)).await?;
//! let out = ns.exec("redis-0", &["redis-cli", "ping"]).await?;
//! assert_eq!(out.stdout.trim(), "PONG");
//! ns.finish().await?;                                      // deletes the namespace
//! # Ok(()) }
//! ```

pub mod dump;
pub mod env;
pub mod error;
pub mod exec;
pub mod faults;
pub mod namespace;
pub mod reach;
pub mod wait;
pub mod yaml;

pub use env::TestEnv;
pub use error::{Error, Result};
pub use exec::ExecOutput;
pub use namespace::TestNamespace;
pub use reach::Reach;
