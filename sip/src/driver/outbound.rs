//! Outbound calls: [`SipHandle::dial`] resolves where the INVITE goes (a trunk's proxy, or the
//! target URI's host), binds the call's RTP port, offers SDP and hands the INVITE to the core;
//! [`OutboundCall::next`] then reports ringing (with or without early media), the answer (with
//! a running [`MediaSession`]) or why the call did not connect.
//!
//! Early media: when a provisional response carries SDP, the media task starts at once
//! (receiving, so the callee's RTP is not refused; sending paused) and what it receives before
//! the answer is discarded. The 200 OK's SDP wins when it differs; a 200 without SDP uses the
//! early answer.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;

use super::media::MediaSession;
use super::ports::MediaSockets;
use super::{CallControl, CallSignal, DriverError, SipHandle, signalling, trunks};
use crate::message::Uri;
use crate::sdp::{Direction, OfferParams, SessionDescription};
use crate::{CallId, EndReason, InviteParams};

/// What to dial.
#[derive(Debug, Clone, Default)]
pub struct DialRequest {
    /// The trunk to call through (its proxy, domain, credentials, caller ID and codecs).
    /// `None`: `target` must be a `sip:` URI and the INVITE goes to its host.
    pub trunk: Option<String>,
    /// A number or user (`sip:{target}@{trunk domain}`), or a full `sip:` URI.
    pub target: String,
    /// From user (caller ID); default: the trunk's.
    pub from_user: Option<String>,
    /// From display name; default: the trunk's.
    pub from_display: Option<String>,
    /// CANCEL when no final answer came this long after the INVITE (then `no_answer`).
    pub ringing_timeout: Option<Duration>,
    /// Extra headers (name, value).
    pub headers: Vec<(String, String)>,
}

/// What happens to an outbound call while it is being set up.
#[non_exhaustive]
pub enum DialEvent {
    /// A provisional response: 180 ringing, 183 session progress; `early_media` when it
    /// carried SDP.
    Progress { status: u16, early_media: bool },
    /// 200 OK, ACKed: the media session runs. Continue with [`OutboundCall::into_signals`].
    Answered(MediaSession),
    /// The call is over (before or after the answer). Before the answer,
    /// [`EndReason::failure_class`] says why it did not connect.
    Ended(EndReason),
}

impl std::fmt::Debug for DialEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Progress {
                status,
                early_media,
            } => write!(f, "Progress({status}, early media: {early_media})"),
            Self::Answered(media) => write!(f, "Answered({:?})", media.negotiated()),
            Self::Ended(reason) => write!(f, "Ended({reason:?})"),
        }
    }
}

/// An outbound call in progress.
pub struct OutboundCall {
    pub call: CallId,
    pub sip_call_id: String,
    /// The Request-URI.
    pub target: Uri,
    /// Where the INVITE went.
    pub destination: SocketAddr,
    pub trunk: Option<String>,
    signals: mpsc::Receiver<CallSignal>,
    control: CallControl,
    offer: SessionDescription,
    socket: Option<MediaSockets>,
    media: Option<MediaSession>,
    early: Option<SessionDescription>,
    answered: bool,
}

impl SipHandle {
    /// Places an outbound call. Errors are local (unknown trunk, bad target, DNS, no RTP
    /// port, capacity); the call's own fate comes from [`OutboundCall::next`].
    pub async fn dial(&self, req: DialRequest) -> Result<OutboundCall, DriverError> {
        let trunk = match &req.trunk {
            Some(name) => Some(
                self.shared
                    .trunks
                    .iter()
                    .find(|t| &t.name == name)
                    .ok_or_else(|| DriverError::UnknownTrunk(name.clone()))?,
            ),
            None => None,
        };
        let target = target_uri(&req.target, trunk.map(|t| t.domain.as_str()))?;
        let destination = match trunk {
            Some(t) => trunks::resolve(&t.proxy_host, t.proxy_port)
                .await
                .map_err(|source| DriverError::Resolve {
                    host: t.proxy_host.clone(),
                    source,
                })?,
            None => {
                let sip = target
                    .as_sip()
                    .ok_or_else(|| DriverError::InvalidTarget(req.target.clone()))?;
                let host = sip.host.to_string();
                let port = sip.port.unwrap_or(5060);
                trunks::resolve(&host, port)
                    .await
                    .map_err(|source| DriverError::Resolve { host, source })?
            }
        };
        let media_ip = self.media_ip_towards(destination);
        let socket = self.shared.ports.bind(media_ip).await?;
        let port = socket
            .local_addr()
            .map_err(|_| DriverError::Stopped)?
            .port();
        let codecs = match trunk {
            Some(t) if !t.codecs.is_empty() => t.codecs.clone(),
            _ => self.shared.codecs.clone(),
        };
        let offer = crate::sdp::build_offer(&OfferParams {
            codecs: &codecs,
            address: media_ip,
            port,
            session_id: rand::random::<u32>().into(),
            username: "agent",
            telephone_event: Some(101),
            ptime_ms: 20,
            direction: Direction::SendRecv,
        });
        let user = req
            .from_user
            .as_deref()
            .or(trunk.and_then(|t| t.caller_user()))
            .unwrap_or("agent");
        if !valid_user(user) {
            return Err(DriverError::InvalidTarget(format!("caller ID {user:?}")));
        }
        let from_host = match trunk {
            Some(t) => t.from_domain.clone().unwrap_or_else(|| t.domain.clone()),
            None => self.advertised().to_string(),
        };
        let from = Uri::parse(&format!("sip:{user}@{from_host}"))
            .map_err(|_| DriverError::InvalidTarget(format!("From host {from_host:?}")))?;
        let mut params = InviteParams::new(target.clone(), destination, from, offer.clone());
        params.from_display = req
            .from_display
            .clone()
            .or_else(|| trunk.and_then(|t| t.from_display.clone()));
        params.headers = req.headers.clone();
        params.ringing_timeout = req.ringing_timeout;
        params.trunk = trunk.map(|t| t.name.clone());
        params.transport = trunk.and_then(|t| t.transport);
        let started = self
            .request(|reply| signalling::Command::Dial {
                params: Box::new(params),
                reply,
            })
            .await?;
        Ok(OutboundCall {
            call: started.call,
            sip_call_id: started.sip_call_id,
            target,
            destination,
            trunk: req.trunk,
            signals: started.signals,
            control: CallControl {
                call: started.call,
                handle: self.clone(),
            },
            offer,
            socket: Some(socket),
            media: None,
            early: None,
            answered: false,
        })
    }
}

impl OutboundCall {
    pub fn control(&self) -> CallControl {
        self.control.clone()
    }

    /// Cancels the call (CANCEL while ringing, BYE once answered); [`DialEvent::Ended`]
    /// follows.
    pub async fn cancel(&self) -> Result<(), DriverError> {
        self.control.hangup().await
    }

    /// The next step of the call. Cancel-safe. After [`DialEvent::Answered`], take the
    /// call's signals with [`OutboundCall::into_signals`].
    pub async fn next(&mut self) -> DialEvent {
        loop {
            let signal = match self.media.as_mut() {
                // Early media: keep the media task's queue drained until the answer.
                Some(media) if !self.answered => tokio::select! {
                    signal = self.signals.recv() => signal,
                    _ = media.recv() => continue,
                },
                _ => self.signals.recv().await,
            };
            match signal {
                Some(CallSignal::Progress { status, remote_sdp }) => {
                    let early_media = remote_sdp.is_some();
                    if let Some(sdp) = remote_sdp {
                        self.start_early(*sdp);
                    }
                    return DialEvent::Progress {
                        status,
                        early_media,
                    };
                }
                Some(CallSignal::Established { remote_sdp }) => {
                    if self.answered {
                        continue;
                    }
                    self.answered = true;
                    match self.start_media(remote_sdp.map(|b| *b)) {
                        Some(media) => return DialEvent::Answered(media),
                        None => {
                            tracing::warn!(call = %self.call, "answer without usable SDP; hanging up");
                            let _ = self.control.hangup().await;
                            return DialEvent::Ended(EndReason::RemoteRejected {
                                status: 488,
                                reason: "no usable SDP answer".into(),
                            });
                        }
                    }
                }
                Some(CallSignal::Ended(reason)) => return DialEvent::Ended(reason),
                Some(_) => continue,
                None => return DialEvent::Ended(EndReason::TransportError),
            }
        }
    }

    /// The call's signals after the answer (for the call's leg): DTMF, hold, transfer
    /// results, the end.
    pub fn into_signals(self) -> mpsc::Receiver<CallSignal> {
        self.signals
    }

    fn start_early(&mut self, sdp: SessionDescription) {
        if self.media.is_none()
            && let Some(socket) = self.socket.take()
        {
            match crate::sdp::accept_answer(&self.offer, &sdp) {
                Ok(negotiated) => {
                    let media = MediaSession::start(socket, negotiated);
                    media.set_paused(true);
                    self.media = Some(media);
                }
                Err(e) => {
                    tracing::debug!(call = %self.call, error = %e, "early media SDP unusable");
                    self.socket = Some(socket);
                    return;
                }
            }
        }
        self.early = Some(sdp);
    }

    fn start_media(&mut self, answer: Option<SessionDescription>) -> Option<MediaSession> {
        let sdp = answer.or_else(|| self.early.take())?;
        let negotiated = crate::sdp::accept_answer(&self.offer, &sdp).ok()?;
        match self.media.take() {
            Some(media) => {
                if let Some(remote) = negotiated.remote_rtp {
                    media.set_remote(remote);
                }
                media.set_paused(false);
                Some(media)
            }
            None => Some(MediaSession::start(self.socket.take()?, negotiated)),
        }
    }
}

/// `sip:` URIs as given; anything else is a user part at the trunk's domain.
fn target_uri(target: &str, domain: Option<&str>) -> Result<Uri, DriverError> {
    let invalid = || DriverError::InvalidTarget(target.to_owned());
    let t = target.trim();
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        let uri = Uri::parse(t).map_err(|_| invalid())?;
        return uri.as_sip().is_some().then_some(uri).ok_or_else(invalid);
    }
    let domain = domain.ok_or_else(invalid)?;
    if !valid_user(t) {
        return Err(invalid());
    }
    Uri::parse(&format!("sip:{t}@{domain}")).map_err(|_| invalid())
}

/// A user part we are willing to put in a URI unescaped: digits, letters, `+*._-`.
fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 64
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'*' | b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let u = target_uri("+15551234", Some("trunk.example.com")).unwrap();
        assert_eq!(u.to_string(), "sip:+15551234@trunk.example.com");
        let u = target_uri("bob", Some("127.0.0.1:5070")).unwrap();
        assert_eq!(u.to_string(), "sip:bob@127.0.0.1:5070");
        let u = target_uri("sip:carol@192.0.2.1:5080", None).unwrap();
        assert_eq!(u.as_sip().unwrap().port, Some(5080));
        assert!(target_uri("+1555", None).is_err(), "a number needs a trunk");
        assert!(target_uri("bob@evil", Some("t.example")).is_err());
        assert!(target_uri("bob;x=y", Some("t.example")).is_err());
        assert!(target_uri("", Some("t.example")).is_err());
        assert!(target_uri("tel:+1555", Some("t.example")).is_err());
    }
}
