//! The signalling task: one loop owning the SIP socket and the sans-IO endpoint.

use std::collections::HashMap;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::{CallControl, CallSignal, InboundCall, SipHandle};
use crate::sdp::SessionDescription;
use crate::{CallError, CallId, Endpoint, Event, Stats};

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
    StopAccepting,
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// Signals per call: small, because a call sees only a handful.
const CALL_SIGNALS: usize = 16;

pub(super) struct Signalling {
    socket: UdpSocket,
    endpoint: Endpoint,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Sender<InboundCall>,
    stats: watch::Sender<Stats>,
    handle: SipHandle,
    calls: HashMap<CallId, mpsc::Sender<CallSignal>>,
    accepting: bool,
}

#[allow(clippy::disallowed_methods)] // the driver is where the clock is read
fn now() -> Instant {
    Instant::now()
}

impl Signalling {
    pub(super) fn new(
        socket: UdpSocket,
        endpoint: Endpoint,
        commands: mpsc::Receiver<Command>,
        inbound: mpsc::Sender<InboundCall>,
        stats: watch::Sender<Stats>,
        handle: SipHandle,
    ) -> Self {
        Self {
            socket,
            endpoint,
            commands,
            inbound,
            stats,
            handle,
            calls: HashMap::new(),
            accepting: true,
        }
    }

    pub(super) async fn run(mut self) {
        // 64 KiB: the largest UDP datagram; SIP over UDP is normally < 1,500 bytes.
        let mut buf = vec![0u8; 65_535];
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
            Command::StopAccepting => self.accepting = false,
            Command::Shutdown { .. } => {}
        }
    }

    /// Sends what the core wants sent and dispatches its events.
    async fn flush(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            if let Err(e) = self.socket.send_to(&t.payload, t.destination).await {
                tracing::debug!(error = %e, destination = %t.destination, "SIP send failed");
            }
        }
        while let Some(event) = self.endpoint.poll_event() {
            self.dispatch(event);
        }
        // Sending may have produced more (e.g. an immediate reject after an event).
        while let Some(t) = self.endpoint.poll_transmit() {
            if let Err(e) = self.socket.send_to(&t.payload, t.destination).await {
                tracing::debug!(error = %e, destination = %t.destination, "SIP send failed");
            }
        }
        self.stats.send_replace(self.endpoint.stats());
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
            other => tracing::debug!(?other, "SIP event not used by the driver"),
        }
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
