//! Notifications of link, address and route changes, so the agent refreshes NodeNetworkState
//! when the node changes rather than only on its periodic timer.

use futures::{Stream, StreamExt};
use rtnetlink::MulticastGroup;

/// One item per change notification (link, IPv4/IPv6 address or route). Bursts are not
/// coalesced (debounce in the caller). The stream ends if the socket fails (e.g. ENOBUFS
/// after a burst the buffer could not hold): subscribe again and refresh in full.
///
/// Spawns the netlink connection on the current tokio runtime; it stops once the stream is
/// dropped.
pub fn change_stream() -> std::io::Result<impl Stream<Item = ()> + Send + Unpin + 'static> {
    let (conn, _handle, messages) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
        MulticastGroup::Ipv4Route,
        MulticastGroup::Ipv6Route,
    ])?;
    tokio::spawn(conn);
    Ok(messages.map(|_| ()))
}
