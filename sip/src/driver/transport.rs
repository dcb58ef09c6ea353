//! SIP over TCP for the signalling task: a listener on the SIP port (the same number as UDP),
//! outgoing connections pooled by peer address and reused, and one task per connection that
//! frames messages by Content-Length with the core's [`StreamFramer`].
//!
//! The signalling task owns the pool (no locks): connection tasks report framed messages and
//! closures on one bounded channel, and take bytes to write from their own bounded queue. A
//! full queue drops the message (the core retransmits nothing on TCP, so the transaction then
//! times out) and is counted; nothing from the network blocks the signalling loop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::message::{ParseError, SipMessage, StreamError, StreamFramer};
use crate::transmit::{ConnectionId, Transmit};

/// Connections at most (inbound and outbound); beyond it new ones are refused.
const MAX_CONNECTIONS: usize = 1024;
/// Messages waiting to be written on one connection.
const WRITE_QUEUE: usize = 32;
/// Framed messages and connection events waiting for the signalling task.
const INPUT_QUEUE: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection without traffic either way for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// The largest message accepted on a stream (headers and body).
const MAX_MESSAGE: usize = 64 * 1024;

/// What connection tasks tell the signalling task.
pub(super) enum TcpInput {
    Accepted {
        stream: TcpStream,
        peer: SocketAddr,
    },
    Message {
        conn: ConnectionId,
        peer: SocketAddr,
        parsed: Result<SipMessage, ParseError>,
    },
    /// The connection is gone. `failed`: it never connected, or broke with an error (pending
    /// transactions towards the peer should fail now rather than time out).
    Closed {
        conn: ConnectionId,
        peer: SocketAddr,
        failed: bool,
    },
}

/// Counters of the TCP transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpStats {
    pub connections_accepted: u64,
    pub connections_opened: u64,
    pub connections_refused_limit: u64,
    /// Connections that failed to open, or broke with an I/O error.
    pub connect_failures: u64,
    /// Messages dropped: write queue full, or a response whose connection had closed.
    pub messages_dropped: u64,
    pub open: u64,
}

struct Conn {
    peer: SocketAddr,
    writer: mpsc::Sender<Vec<u8>>,
}

/// The pool of TCP connections, owned by the signalling task.
pub(super) struct TcpTransport {
    inputs_tx: mpsc::Sender<TcpInput>,
    inputs: mpsc::Receiver<TcpInput>,
    conns: HashMap<ConnectionId, Conn>,
    by_peer: HashMap<SocketAddr, ConnectionId>,
    next_id: u64,
    stats: TcpStats,
}

impl TcpTransport {
    /// Starts accepting on `listener` (when given).
    pub(super) fn start(listener: Option<TcpListener>) -> Self {
        let (inputs_tx, inputs) = mpsc::channel(INPUT_QUEUE);
        if let Some(listener) = listener {
            tokio::spawn(accept_loop(listener, inputs_tx.clone()));
        }
        Self {
            inputs_tx,
            inputs,
            conns: HashMap::new(),
            by_peer: HashMap::new(),
            next_id: 0,
            stats: TcpStats::default(),
        }
    }

    pub(super) fn stats(&self) -> TcpStats {
        TcpStats {
            open: self.conns.len() as u64,
            ..self.stats
        }
    }

    /// The next input from a connection. Cancel-safe.
    pub(super) async fn recv(&mut self) -> Option<TcpInput> {
        self.inputs.recv().await
    }

    /// Takes an accepted stream into the pool.
    pub(super) fn adopt(&mut self, stream: TcpStream, peer: SocketAddr) {
        if self.conns.len() >= MAX_CONNECTIONS {
            self.stats.connections_refused_limit += 1;
            tracing::warn!(%peer, "SIP/TCP connection refused: too many connections");
            return;
        }
        self.stats.connections_accepted += 1;
        let (conn, rx) = self.add(peer);
        tokio::spawn(run_connection(
            conn,
            peer,
            stream,
            rx,
            self.inputs_tx.clone(),
        ));
    }

    /// A connection task ended (`failed`: connect or I/O error).
    pub(super) fn closed(&mut self, conn: ConnectionId, peer: SocketAddr, failed: bool) {
        if failed {
            self.stats.connect_failures += 1;
        }
        self.conns.remove(&conn);
        if self.by_peer.get(&peer) == Some(&conn) {
            self.by_peer.remove(&peer);
            // Another connection to the same peer may still be open: reuse that one.
            let other = self
                .conns
                .iter()
                .find(|(_, c)| c.peer == peer)
                .map(|(id, _)| *id);
            if let Some(id) = other {
                self.by_peer.insert(peer, id);
            }
        }
    }

    /// Queues a message: on its named connection when that is open, else on an open
    /// connection to the destination, else on a new one (requests only: a response whose
    /// connection is gone is dropped, as the peer's ephemeral port would not take it).
    pub(super) fn send(&mut self, t: Transmit) {
        let open = t
            .connection
            .filter(|c| self.conns.contains_key(c))
            .or_else(|| self.by_peer.get(&t.destination).copied());
        let conn = match open {
            Some(c) => c,
            None if t.payload.starts_with(b"SIP/2.0 ") => {
                self.stats.messages_dropped += 1;
                tracing::debug!(destination = %t.destination, "SIP/TCP response dropped: connection closed");
                return;
            }
            None => match self.connect(t.destination) {
                Some(c) => c,
                None => return,
            },
        };
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.writer.try_send(t.payload).is_err() {
            self.stats.messages_dropped += 1;
            tracing::debug!(%conn, destination = %t.destination, "SIP/TCP message dropped: write queue full or closed");
        }
    }

    fn connect(&mut self, peer: SocketAddr) -> Option<ConnectionId> {
        if self.conns.len() >= MAX_CONNECTIONS {
            self.stats.connections_refused_limit += 1;
            return None;
        }
        self.stats.connections_opened += 1;
        let (conn, rx) = self.add(peer);
        let inputs = self.inputs_tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(peer)).await {
                Ok(Ok(stream)) => run_connection(conn, peer, stream, rx, inputs).await,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "SIP/TCP connect failed");
                    let _ = inputs
                        .send(TcpInput::Closed {
                            conn,
                            peer,
                            failed: true,
                        })
                        .await;
                }
                Err(_) => {
                    tracing::debug!(%peer, "SIP/TCP connect timed out");
                    let _ = inputs
                        .send(TcpInput::Closed {
                            conn,
                            peer,
                            failed: true,
                        })
                        .await;
                }
            }
        });
        Some(conn)
    }

    fn add(&mut self, peer: SocketAddr) -> (ConnectionId, mpsc::Receiver<Vec<u8>>) {
        self.next_id += 1;
        let conn = ConnectionId(self.next_id);
        let (writer, rx) = mpsc::channel(WRITE_QUEUE);
        self.conns.insert(conn, Conn { peer, writer });
        self.by_peer.insert(peer, conn);
        (conn, rx)
    }
}

async fn accept_loop(listener: TcpListener, inputs: mpsc::Sender<TcpInput>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if inputs
                    .send(TcpInput::Accepted { stream, peer })
                    .await
                    .is_err()
                {
                    return; // the signalling task is gone
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "SIP/TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads and frames messages, writes what is queued, until either side closes.
async fn run_connection(
    conn: ConnectionId,
    peer: SocketAddr,
    stream: TcpStream,
    mut writes: mpsc::Receiver<Vec<u8>>,
    inputs: mpsc::Sender<TcpInput>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut framer = StreamFramer::new(MAX_MESSAGE);
    let mut buf = vec![0u8; 8192];
    let idle = tokio::time::sleep(IDLE_TIMEOUT);
    tokio::pin!(idle);
    let failed = loop {
        tokio::select! {
            read = rd.read(&mut buf) => match read {
                Ok(0) => break false,
                Ok(n) => {
                    idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
                    framer.push(&buf[..n]);
                    let mut lost = false;
                    while let Some(item) = framer.pop() {
                        let parsed = match item {
                            Ok(parsed) => parsed,
                            Err(StreamError::Fatal(e)) => {
                                lost = true;
                                Err(e)
                            }
                        };
                        let message = TcpInput::Message { conn, peer, parsed };
                        if inputs.send(message).await.is_err() {
                            return;
                        }
                    }
                    if lost {
                        tracing::debug!(%conn, %peer, "SIP/TCP framing lost; closing");
                        break false;
                    }
                }
                Err(e) => {
                    tracing::debug!(%conn, %peer, error = %e, "SIP/TCP read failed");
                    break true;
                }
            },
            write = writes.recv() => match write {
                Some(bytes) => {
                    idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
                    if let Err(e) = wr.write_all(&bytes).await {
                        tracing::debug!(%conn, %peer, error = %e, "SIP/TCP write failed");
                        break true;
                    }
                }
                None => break false,
            },
            () = &mut idle => {
                tracing::debug!(%conn, %peer, "SIP/TCP connection idle; closing");
                break false;
            }
        }
    };
    let _ = inputs.send(TcpInput::Closed { conn, peer, failed }).await;
}
