//! The signalling task: one loop owning the SIP sockets (UDP, and the TCP pool), the sans-IO
//! endpoint and its timers. Commands come from handles; events go out on per-call channels,
//! the inbound-call queue and the trunk status watch.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::transport::{TcpInput, TcpStats, TcpTransport};
use super::trunks::{TrunkStatus, TrunkTracker};
use super::{CallControl, CallSignal, InboundCall, SipHandle};
use crate::message::Uri;
use crate::sdp::SessionDescription;
use crate::transmit::{Transmit, TransportKind};
use crate::{CallError, CallId, Endpoint, Event, InviteParams, RegistrationState, Stats, Trunk};

pub(super) enum Command {
    Answer {
        call: CallId,
        sdp: Box<SessionDescription>,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Reject {
        call: CallId,
        status: u16,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Hangup {
        call: CallId,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Dial {
        params: Box<InviteParams>,
        reply: oneshot::Sender<Result<DialStarted, CallError>>,
    },
    Transfer {
        call: CallId,
        target: Box<Uri>,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    /// A trunk whose proxy name resolved after start.
    AddTrunk(Box<Trunk>),
    /// Unregister every registered trunk; `done` fires when all have answered.
    UnregisterAll {
        done: oneshot::Sender<()>,
    },
    StopAccepting,
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// An outbound INVITE handed to the core.
pub(super) struct DialStarted {
    pub(super) call: CallId,
    pub(super) sip_call_id: String,
    pub(super) signals: mpsc::Receiver<CallSignal>,
}

/// Signals per call: small, because a call sees only a handful.
const CALL_SIGNALS: usize = 16;

/// What the signalling task publishes besides events.
pub(super) struct Published {
    pub(super) stats: watch::Sender<Stats>,
    pub(super) tcp: watch::Sender<TcpStats>,
    pub(super) trunks: watch::Sender<Vec<TrunkStatus>>,
}

pub(super) struct Signalling {
    socket: UdpSocket,
    tcp: Option<TcpTransport>,
    endpoint: Endpoint,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Sender<InboundCall>,
    published: Published,
    trunks: TrunkTracker,
    handle: SipHandle,
    calls: HashMap<CallId, mpsc::Sender<CallSignal>>,
    accepting: bool,
    /// Trunks whose unregistration we wait for, and who waits.
    unregistering: Option<(HashSet<String>, oneshot::Sender<()>)>,
}

#[allow(clippy::disallowed_methods)] // the driver is where the clock is read
fn now() -> Instant {
    Instant::now()
}

impl Signalling {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        socket: UdpSocket,
        tcp: Option<TcpTransport>,
        endpoint: Endpoint,
        commands: mpsc::Receiver<Command>,
        inbound: mpsc::Sender<InboundCall>,
        published: Published,
        trunks: TrunkTracker,
        handle: SipHandle,
    ) -> Self {
        Self {
            socket,
            tcp,
            endpoint,
            commands,
            inbound,
            published,
            trunks,
            handle,
            calls: HashMap::new(),
            accepting: true,
            unregistering: None,
        }
    }

    /// Adds a trunk whose proxy address is known (registers when configured to).
    pub(super) fn add_trunk(&mut self, trunk: Trunk) {
        let name = trunk.name.clone();
        let proxy = trunk.proxy;
        match self.endpoint.add_trunk(now(), trunk) {
            Ok(()) => self.trunks.resolved(&name, proxy),
            Err(e) => self.trunks.error(&name, e.to_string()),
        }
        self.publish_trunks();
    }

    pub(super) fn trunk_error(&mut self, name: &str, error: String) {
        self.trunks.error(name, error);
        self.publish_trunks();
    }

    pub(super) async fn run(mut self) {
        // 64 KiB: the largest UDP datagram; SIP over UDP is normally < 1,500 bytes.
        let mut buf = vec![0u8; 65_535];
        self.publish_trunks();
        self.flush().await;
        loop {
            let deadline = self
                .endpoint
                .poll_timeout()
                .map(|(at, _why)| tokio::time::Instant::from_std(at));
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, from)) => self.endpoint.handle_datagram(now(), from, &buf[..n]),
                    // ICMP port-unreachable from an earlier send surfaces here on Linux; harmless.
                    Err(e) => tracing::debug!(error = %e, "SIP socket receive error"),
                },
                Some(input) = recv_tcp(&mut self.tcp) => self.on_tcp(input),
                () = sleep_until(deadline) => self.endpoint.handle_timeout(now()),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown { done }) => {
                        self.flush().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(command) => self.handle_command(command),
                    None => return,
                },
            }
            self.flush().await;
        }
    }

    fn on_tcp(&mut self, input: TcpInput) {
        let Some(tcp) = self.tcp.as_mut() else {
            return;
        };
        match input {
            TcpInput::Accepted { stream, peer } => tcp.adopt(stream, peer),
            TcpInput::Message { conn, peer, parsed } => {
                self.endpoint
                    .handle_stream_message(now(), peer, conn, parsed);
            }
            TcpInput::Closed { conn, peer, failed } => {
                tcp.closed(conn, peer, failed);
                if failed {
                    self.endpoint
                        .handle_transport_error(now(), peer, Some(conn));
                }
            }
        }
    }

    fn handle_command(&mut self, command: Command) {
        let at = now();
        match command {
            Command::Answer { call, sdp, reply } => {
                let _ = reply.send(self.endpoint.answer(at, call, &sdp));
            }
            Command::Reject {
                call,
                status,
                reply,
            } => {
                let _ = reply.send(self.endpoint.reject(at, call, status));
            }
            Command::Hangup { call, reply } => {
                let _ = reply.send(self.endpoint.hangup(at, call));
            }
            Command::Dial { params, reply } => {
                let started = self.endpoint.invite(at, *params).map(|call| {
                    let (tx, signals) = mpsc::channel(CALL_SIGNALS);
                    self.calls.insert(call, tx);
                    let sip_call_id = self
                        .endpoint
                        .sip_call_id(call)
                        .unwrap_or_default()
                        .to_owned();
                    DialStarted {
                        call,
                        sip_call_id,
                        signals,
                    }
                });
                if let Err(Ok(started)) = reply.send(started) {
                    // The caller gave up waiting: do not leave the call ringing.
                    self.calls.remove(&started.call);
                    let _ = self.endpoint.hangup(at, started.call);
                }
            }
            Command::Transfer {
                call,
                target,
                reply,
            } => {
                let _ = reply.send(self.endpoint.transfer(at, call, *target));
            }
            Command::AddTrunk(trunk) => self.add_trunk(*trunk),
            Command::UnregisterAll { done } => self.unregister_all(at, done),
            Command::StopAccepting => self.accepting = false,
            Command::Shutdown { .. } => {}
        }
    }

    fn unregister_all(&mut self, at: Instant, done: oneshot::Sender<()>) {
        let mut waiting = HashSet::new();
        for status in self.trunks.snapshot() {
            let bound = matches!(
                self.endpoint.registration_state(&status.name),
                Some(RegistrationState::Registered { .. } | RegistrationState::Registering)
            );
            if bound && self.endpoint.unregister(at, &status.name).is_ok() {
                waiting.insert(status.name);
            }
        }
        if waiting.is_empty() {
            let _ = done.send(());
        } else {
            self.unregistering = Some((waiting, done));
        }
    }

    /// Sends what the core wants sent and dispatches its events.
    async fn flush(&mut self) {
        loop {
            let mut busy = false;
            while let Some(t) = self.endpoint.poll_transmit() {
                busy = true;
                self.transmit(t).await;
            }
            while let Some(event) = self.endpoint.poll_event() {
                busy = true;
                self.dispatch(event);
            }
            // Dispatching may have produced more (e.g. an immediate reject after an event).
            if !busy {
                break;
            }
        }
        self.published.stats.send_replace(self.endpoint.stats());
        if let Some(tcp) = &self.tcp {
            let stats = tcp.stats();
            self.published.tcp.send_if_modified(|s| {
                let changed = *s != stats;
                *s = stats;
                changed
            });
        }
    }

    async fn transmit(&mut self, t: Transmit) {
        match (t.transport, self.tcp.as_mut()) {
            (TransportKind::Tcp, Some(tcp)) => tcp.send(t),
            (TransportKind::Tcp, None) => {
                tracing::debug!(destination = %t.destination, "TCP message with TCP off; dropped");
            }
            _ => {
                if let Err(e) = self.socket.send_to(&t.payload, t.destination).await {
                    tracing::debug!(error = %e, destination = %t.destination, "SIP send failed");
                }
            }
        }
    }

    fn dispatch(&mut self, event: Event) {
        let at = now();
        match event {
            Event::IncomingCall(incoming) => {
                let call = incoming.call;
                if !self.accepting {
                    let _ = self.endpoint.reject(at, call, 503);
                    return;
                }
                let _ = self.endpoint.ringing(at, call);
                let (signals_tx, signals_rx) = mpsc::channel(CALL_SIGNALS);
                let offered = InboundCall {
                    call,
                    sip_call_id: incoming.sip_call_id,
                    from: incoming.from,
                    to: incoming.to,
                    request_uri: incoming.request_uri,
                    source: incoming.source,
                    trunk: incoming.trunk,
                    offer: incoming.offer,
                    signals: signals_rx,
                    control: CallControl {
                        call,
                        handle: self.handle.clone(),
                    },
                };
                match self.inbound.try_send(offered) {
                    Ok(()) => {
                        self.calls.insert(call, signals_tx);
                    }
                    Err(_) => {
                        tracing::warn!(%call, "application queue full or gone; rejecting with 503");
                        let _ = self.endpoint.reject(at, call, 503);
                    }
                }
            }
            Event::CallProgress {
                call,
                status,
                remote_sdp,
            } => self.signal(
                call,
                CallSignal::Progress {
                    status,
                    remote_sdp: remote_sdp.map(Box::new),
                },
            ),
            Event::CallEstablished { call, remote_sdp } => {
                self.signal(
                    call,
                    CallSignal::Established {
                        remote_sdp: remote_sdp.map(Box::new),
                    },
                );
            }
            Event::CallEnded { call, reason } => {
                self.signal(call, CallSignal::Ended(reason));
                self.calls.remove(&call);
            }
            Event::Dtmf {
                call,
                digit,
                duration_ms,
            } => self.signal(call, CallSignal::InfoDtmf { digit, duration_ms }),
            Event::InfoReceived {
                call,
                content_type,
                body,
            } => {
                if let Some((digit, duration_ms)) = parse_info_dtmf(content_type.as_deref(), &body)
                {
                    self.signal(call, CallSignal::InfoDtmf { digit, duration_ms });
                }
            }
            Event::MediaUpdated {
                call,
                remote_sdp,
                direction,
            } => self.signal(
                call,
                CallSignal::MediaUpdated {
                    direction,
                    remote_sdp: Box::new(remote_sdp),
                },
            ),
            Event::TransferResult { call, outcome } => {
                self.signal(call, CallSignal::TransferResult(outcome));
            }
            Event::RegistrationChanged { trunk, state } => {
                tracing::info!(%trunk, ?state, "trunk registration");
                self.trunks.registration(&trunk, state);
                if let Some((waiting, _)) = self.unregistering.as_mut()
                    && matches!(
                        state,
                        RegistrationState::Unregistered | RegistrationState::Failed { .. }
                    )
                {
                    waiting.remove(&trunk);
                    if waiting.is_empty()
                        && let Some((_, done)) = self.unregistering.take()
                    {
                        let _ = done.send(());
                    }
                }
                self.publish_trunks();
            }
            Event::TrunkHealth { trunk, up, rtt } => {
                tracing::debug!(%trunk, up, ?rtt, "trunk keepalive");
                self.trunks.health(&trunk, up, rtt);
                self.publish_trunks();
            }
            other => tracing::debug!(?other, "SIP event not used by the driver"),
        }
    }

    fn publish_trunks(&mut self) {
        self.published.trunks.send_replace(self.trunks.snapshot());
    }

    fn signal(&mut self, call: CallId, signal: CallSignal) {
        if let Some(tx) = self.calls.get(&call) {
            // A full per-call queue means the application stopped reading; the call is ending.
            if tx.try_send(signal).is_err() {
                tracing::debug!(%call, "call signal dropped: receiver full or gone");
            }
        }
    }
}

async fn recv_tcp(tcp: &mut Option<TcpTransport>) -> Option<TcpInput> {
    match tcp {
        Some(tcp) => tcp.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `application/dtmf-relay` (`Signal=5\r\nDuration=160`) or `application/dtmf` (`5`).
fn parse_info_dtmf(content_type: Option<&str>, body: &[u8]) -> Option<(char, Option<u32>)> {
    let content_type = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    let valid = |c: char| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D');
    match content_type.as_str() {
        "application/dtmf-relay" => {
            let mut digit = None;
            let mut duration = None;
            for line in text.lines() {
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    "signal" => digit = v.trim().chars().next().map(|c| c.to_ascii_uppercase()),
                    "duration" => duration = v.trim().parse().ok(),
                    _ => {}
                }
            }
            digit.filter(|c| valid(*c)).map(|d| (d, duration))
        }
        "application/dtmf" => {
            let t = text.trim();
            let d = t.chars().next()?.to_ascii_uppercase();
            (t.len() == 1 && valid(d)).then_some((d, None))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_info_dtmf;

    #[test]
    fn info_dtmf_bodies() {
        assert_eq!(
            parse_info_dtmf(
                Some("application/dtmf-relay"),
                b"Signal=5\r\nDuration=160\r\n"
            ),
            Some(('5', Some(160)))
        );
        assert_eq!(
            parse_info_dtmf(Some("application/dtmf-relay"), b"Signal= #\r\n"),
            Some(('#', None))
        );
        assert_eq!(
            parse_info_dtmf(Some("Application/DTMF"), b"9"),
            Some(('9', None))
        );
        assert_eq!(
            parse_info_dtmf(Some("application/dtmf-relay"), b"Signal=x"),
            None
        );
        assert_eq!(parse_info_dtmf(Some("text/plain"), b"5"), None);
        assert_eq!(parse_info_dtmf(None, b"5"), None);
    }
}
