//! A call on direct SIP/RTP: the driver's media session (RTP, RFC 4733, RTCP) and the call's
//! signals and control.

use ::sip::driver::{CallControl, CallSignal, FrameSender, MediaEvent, MediaSession, MediaStats};
use ::sip::sdp::Direction;
use store::EndReason;
use tokio::sync::mpsc;

use super::{TransferError, TransportEvent};
use crate::calls::core::TransferProgress;

/// RFC 4733 tone length for digits we send.
const DTMF_MS: u32 = 160;

pub(in crate::calls) struct SipTransport {
    media: MediaSession,
    signals: mpsc::Receiver<CallSignal>,
    control: CallControl,
    /// The peer's SIP domain (host[:port]): transfer targets that are numbers go there.
    peer_domain: String,
}

impl SipTransport {
    pub fn new(
        media: MediaSession,
        signals: mpsc::Receiver<CallSignal>,
        control: CallControl,
        peer_domain: String,
    ) -> Self {
        Self {
            media,
            signals,
            control,
            peer_domain,
        }
    }

    /// Cancel-safe: both receives are, and state changes only after one completes.
    pub async fn recv(&mut self) -> TransportEvent {
        tokio::select! {
            biased;
            signal = self.signals.recv() => self.on_signal(signal),
            media = self.media.recv() => on_media(media),
        }
    }

    pub fn sender(&self) -> FrameSender {
        self.media.sender()
    }

    fn on_signal(&mut self, signal: Option<CallSignal>) -> TransportEvent {
        match signal {
            Some(CallSignal::Ended(reason)) => TransportEvent::Ended(end_reason(&reason)),
            Some(CallSignal::InfoDtmf { digit, .. }) => TransportEvent::Dtmf(digit),
            Some(CallSignal::TransferResult(outcome)) => TransportEvent::Transfer(match outcome {
                ::sip::TransferOutcome::Accepted => TransferProgress::Accepted,
                ::sip::TransferOutcome::Failed { status } => TransferProgress::Failed {
                    status: Some(status),
                },
                _ => TransferProgress::Failed { status: None },
            }),
            Some(CallSignal::Established { remote_sdp }) => {
                // Offerless INVITE: the answer in the ACK tells us where to send.
                if let Some(addr) = remote_sdp.as_deref().and_then(remote_rtp_addr) {
                    self.media.set_remote(addr);
                }
                TransportEvent::Nothing
            }
            Some(CallSignal::MediaUpdated { direction, .. }) => {
                // Hold: the peer will not play what we send, so stop sending until it resumes.
                let held = matches!(direction, Direction::RecvOnly | Direction::Inactive);
                self.media.set_paused(held);
                TransportEvent::Nothing
            }
            Some(_) => TransportEvent::Nothing,
            None => TransportEvent::Ended(EndReason::TransportLost),
        }
    }

    pub async fn transfer(&mut self, target: &str) -> Result<String, TransferError> {
        let text = if target.starts_with("sip:") || target.starts_with("sips:") {
            target.to_owned()
        } else {
            let user: String = target.chars().filter(|c| !c.is_whitespace()).collect();
            format!("sip:{user}@{}", self.peer_domain)
        };
        let uri = ::sip::message::Uri::parse(&text)
            .map_err(|_| TransferError::BadTarget { target: text })?;
        self.control.transfer(uri.clone()).await?;
        Ok(uri.to_string())
    }

    pub async fn hangup(&mut self) {
        if let Err(e) = self.control.hangup().await {
            tracing::debug!(error = %e, "hangup");
        }
    }

    pub async fn send_dtmf(&self, digit: char) -> bool {
        self.media.send_dtmf(digit, DTMF_MS).await
    }

    pub fn media_stats(&self) -> MediaStats {
        self.media.stats()
    }
}

fn on_media(event: Option<MediaEvent>) -> TransportEvent {
    match event {
        Some(MediaEvent::Audio(rtp)) => TransportEvent::Audio {
            sequence: rtp.sequence,
            timestamp: rtp.timestamp,
            payload: rtp.payload,
            arrived: rtp.arrived,
        },
        Some(MediaEvent::Dtmf { digit, .. }) => TransportEvent::Dtmf(digit),
        Some(MediaEvent::FrameSent { mark, at }) => TransportEvent::MarkSent { mark, at },
        Some(_) => TransportEvent::Nothing,
        None => TransportEvent::Ended(EndReason::MediaLost),
    }
}

fn remote_rtp_addr(sdp: &::sip::sdp::SessionDescription) -> Option<std::net::SocketAddr> {
    let media = sdp.audio()?;
    let ip = media
        .connection
        .as_ref()
        .or(sdp.connection.as_ref())
        .and_then(|c| c.ip_addr())?;
    (media.port != 0 && !ip.is_unspecified()).then(|| std::net::SocketAddr::new(ip, media.port))
}

/// The stored end reason for a SIP-level ending (see ARCHITECTURE.md, end reasons).
pub(crate) fn end_reason(reason: &::sip::EndReason) -> EndReason {
    match reason {
        ::sip::EndReason::RemoteBye | ::sip::EndReason::RemoteCancel => EndReason::CallerHangup,
        ::sip::EndReason::LocalBye => EndReason::AgentHangup,
        other => EndReason::from_code(other.code()),
    }
}
