//! The rtnetlink side of networking: reading state ([`observe`]), running planned steps
//! ([`apply`]), the [`NetlinkBackend`] the safe-apply transaction drives, and a stream of
//! change notifications ([`watch`]).

pub mod apply;
pub mod backend;
pub mod observe;
pub mod sysfs;
pub mod watch;

pub use backend::NetlinkBackend;
pub use observe::{ObserveError, observe};
pub use sysfs::Sysfs;
pub use watch::change_stream;
