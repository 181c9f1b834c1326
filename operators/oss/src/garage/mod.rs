//! Garage, the object store engine: a typed client of its admin API v2 ([`AdminClient`]), the
//! layout planner ([`layout::plan`]), bucket CORS and lifecycle rules in plain types
//! ([`settings`]), and a minimal S3 client ([`s3::S3Client`]) for emptying buckets.

mod admin;
mod error;
pub mod layout;
pub mod s3;
pub mod settings;
mod transport;
pub mod types;

pub use admin::{AdminClient, DEFAULT_TIMEOUT};
pub use error::{GarageError, Result};
pub use layout::DesiredRole;
pub use settings::{CorsRule, Expiration, LifecycleRule};
pub use types::*;

#[cfg(test)]
mod tests;
