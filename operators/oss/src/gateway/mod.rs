//! The S3 gateway in front of Garage: enforces bucket ACLs for anonymous requests, Referer
//! anti-leech, and refuses server-side-encryption headers Garage would silently ignore.
//!
//! Shape: [`decide`] (the rules, pure) → [`server`] (hyper listeners, the pooled upstream client,
//! streaming both ways) with [`sign`] for anonymous requests the ACL allows; [`rules`] keeps the
//! [`config::GatewayConfig`] in force (file or watched ConfigMap); [`metrics`], [`tls`];
//! [`harness`] runs it in-process for tests and benchmarks.

pub mod config;
pub mod decide;
mod error;
pub mod harness;
pub mod metrics;
pub mod rules;
pub mod server;
pub mod sign;
pub mod tls;

pub use decide::{Decision, Domains, Endpoint};
pub use error::{GatewayError, s3_error};
pub use metrics::GatewayMetrics;
pub use rules::{Rules, watch_configmap};
pub use server::{Gateway, GatewayOptions, Listeners, serve};
pub use sign::SigningKey;
