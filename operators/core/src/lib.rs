//! `agility-core`: the shared controller library of every Agility product.
//!
//! A product controller is a [`product::ProductController`] whose `run` builds a
//! [`runner::Runner`] and passes it a `reconcile` function following one pipeline:
//! read → validate → build desired children (pure) → [`apply`] → [`status`]. The runner adds
//! backoff, metrics, events, readiness and graceful shutdown; the manager adds leader election
//! ([`leader`]), the HTTP endpoints ([`http`]) and logging ([`telemetry`]). See `docs/core.md`.

pub mod allowlist;
pub mod apply;
pub mod backoff;
pub mod crd;
pub mod error;
pub mod events;
pub mod health;
pub mod http;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod product;
pub mod runner;
pub mod shutdown;
pub mod status;
pub mod supervise;
pub mod telemetry;

#[cfg(test)]
pub(crate) mod testing;

pub use apply::{ApplyOutcome, ApplySummary, Child, ChildApplier};
pub use error::{Categorized, Error, ErrorCategory, Result};
pub use kube::runtime::controller::Action;
pub use product::{ControllerContext, ProductController};
pub use runner::{ObjectKey, Reconcile, Runner};
pub use status::Conditions;
