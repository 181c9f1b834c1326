//! The `ObjectStore` kind: a Garage cluster and its S3 gateway.

pub mod build;
pub mod controller;
