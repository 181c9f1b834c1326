//! The `Bucket` kind: a bucket in a store, its key and connection Secret, its settings.

pub mod controller;
pub mod plan;
pub mod secret;
