//! Registry-less image building: a definition ([`defs`]) becomes a build [`plan`] and a root
//! filesystem ([`assemble`], [`rootfs`]), packed as one reproducible gzip layer inside an OCI
//! image-layout archive ([`oci`]) that `ctr images import` and `kind load image-archive` both accept.

pub mod assemble;
pub mod debian;
pub mod defs;
pub mod error;
pub mod ldd;
pub mod oci;
pub mod plan;
pub mod rootfs;

pub use error::{Error, Result};
