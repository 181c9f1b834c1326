//! Registry-less image building: a definition ([`defs`]) becomes a root filesystem ([`rootfs`]),
//! packed as one reproducible gzip layer inside an OCI image-layout archive ([`oci`]) that
//! `ctr images import` and `kind load image-archive` both accept.

pub mod assemble;
pub mod defs;
pub mod error;
pub mod ldd;
pub mod oci;
pub mod rootfs;

pub use error::{Error, Result};
