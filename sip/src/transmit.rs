//! The datagrams the core wants sent, and the queue it collects them in.

use std::collections::VecDeque;
use std::net::SocketAddr;

/// One datagram to send from the SIP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transmit {
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
}

/// Output queue shared by the endpoint and its transactions; counts retransmissions.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) queue: VecDeque<Transmit>,
    pub(crate) retransmissions: u64,
}

impl Outbox {
    pub(crate) fn send(&mut self, destination: SocketAddr, payload: Vec<u8>) {
        self.queue.push_back(Transmit {
            destination,
            payload,
        });
    }

    pub(crate) fn resend(&mut self, destination: SocketAddr, payload: &[u8]) {
        self.retransmissions += 1;
        self.send(destination, payload.to_vec());
    }
}
