//! The messages the core wants sent, and the queue it collects them in.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;

/// The transport a message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TransportKind {
    #[default]
    Udp,
    Tcp,
}

impl TransportKind {
    /// The Via transport token (`UDP`, `TCP`).
    pub fn via_token(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
        }
    }

    /// Reliable transports need no retransmissions (RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        self == Self::Tcp
    }
}

/// A stream connection, named by the driver (which assigns the numbers and owns the sockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

/// One message to send.
///
/// UDP: send `payload` as one datagram from the SIP socket to `destination`. TCP: write it to
/// `connection` when that is given and still open, otherwise to a connection to `destination`
/// (reuse one if open, else connect); responses always name the connection the request came on
/// (RFC 3261 §18.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transmit {
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
    pub transport: TransportKind,
    pub connection: Option<ConnectionId>,
}

/// Where a message goes (or came from): address, transport and, for streams, the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) transport: TransportKind,
    pub(crate) conn: Option<ConnectionId>,
}

impl Target {
    pub(crate) fn udp(addr: SocketAddr) -> Self {
        Self {
            addr,
            transport: TransportKind::Udp,
            conn: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn new(addr: SocketAddr, transport: TransportKind) -> Self {
        Self {
            addr,
            transport,
            conn: None,
        }
    }

    pub(crate) fn reliable(&self) -> bool {
        self.transport.is_reliable()
    }
}

/// Output queue shared by the endpoint and its transactions; counts retransmissions.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) queue: VecDeque<Transmit>,
    pub(crate) retransmissions: u64,
}

impl Outbox {
    pub(crate) fn send(&mut self, to: Target, payload: Vec<u8>) {
        self.queue.push_back(Transmit {
            destination: to.addr,
            payload,
            transport: to.transport,
            connection: to.conn,
        });
    }

    pub(crate) fn resend(&mut self, to: Target, payload: &[u8]) {
        self.retransmissions += 1;
        self.send(to, payload.to_vec());
    }
}
