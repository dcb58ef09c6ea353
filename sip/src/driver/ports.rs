//! RTP/RTCP port allocation and local-address discovery.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::net::UdpSocket;

use super::DriverError;

/// A call's media sockets: RTP on an even port and RTCP on the odd port above it (RFC 3550
/// §11).
pub(super) struct MediaSockets {
    pub(super) rtp: UdpSocket,
    pub(super) rtcp: UdpSocket,
}

impl MediaSockets {
    /// The RTP socket's address (the one announced in SDP).
    pub(super) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.rtp.local_addr()
    }
}

/// Hands out even/odd port pairs from a range, round-robin, skipping pairs with a port in use.
pub(super) struct PortAllocator {
    first: u16,
    last: u16,
    next: AtomicU32,
}

impl PortAllocator {
    pub(super) fn new(range: RangeInclusive<u16>) -> Self {
        let first = (*range.start()).max(1024) & !1;
        let last = (*range.end()).max(first + 1);
        Self {
            first,
            last,
            next: AtomicU32::new(0),
        }
    }

    /// Binds the next free even port and the odd one above it on `ip` (or the wildcard when
    /// `ip` is not local).
    pub(super) async fn bind(&self, ip: IpAddr) -> Result<MediaSockets, DriverError> {
        // Pairs that fit in the range (`first` is even and `last` at least `first + 1`).
        let slots = u32::from((self.last - self.first).div_ceil(2));
        for _ in 0..slots {
            let slot = self.next.fetch_add(1, Ordering::Relaxed) % slots;
            let port = self.first + (slot as u16) * 2;
            // Bind the wildcard: the announced IP may be a NAT's public address.
            let addr = SocketAddr::new(unspecified_like(ip), port);
            let Ok(rtp) = UdpSocket::bind(addr).await else {
                continue;
            };
            if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(addr.ip(), port + 1)).await {
                return Ok(MediaSockets { rtp, rtcp });
            }
        }
        Err(DriverError::NoRtpPort {
            first: self.first,
            last: self.last,
        })
    }
}

fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

/// The local address the kernel would use to reach `peer` (a connect without sending).
pub(super) fn local_ip_towards(peer: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = match peer {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().ok()?,
        SocketAddr::V6(_) => "[::]:0".parse().ok()?,
    };
    let socket = StdUdpSocket::bind(bind).ok()?;
    socket.connect(peer).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// The address of the default route's interface, or loopback when there is none.
pub(super) fn default_route_ip() -> IpAddr {
    let probe: SocketAddr = SocketAddr::from(([192, 0, 2, 1], 9)); // TEST-NET-1, never sent to
    local_ip_towards(probe).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}
