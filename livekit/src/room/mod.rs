//! Joining a job's room as the agent participant: the `/rtc` signal websocket, two WebRTC peer
//! connections (webrtc-rs), the SIP participant's audio in, our audio out, DTMF as `SipDTMF`
//! data packets.
//!
//! [`RoomSession`] mirrors `sip::driver::MediaSession`: [`RoomSession::recv`] yields
//! [`RoomEvent`]s (received Opus RTP, DTMF, marks of frames written, SIP participant updates,
//! and one final [`RoomEvent::Ended`]); [`FrameSender`] queues Opus frames that a pacer writes
//! one per 20 ms.
//!
//! Message flow (client side of `livekit/livekit:pkg/rtc/participant.go` and the client
//! protocol docs):
//!
//! ```text
//! agent                                   server
//!   ── WS /rtc?access_token=…&protocol=16 ──►
//!   ◄──────────────── join (JoinResponse: room, other_participants incl. the SIP caller)
//!   ── add_track (cid, AUDIO, MICROPHONE) ──►      ◄── offer (subscriber PC) ──
//!   ◄──────────── track_published (cid, sid)        ── answer (subscriber PC) ──►
//!   ── offer (publisher PC) ───────────────►
//!   ◄──────────── answer (publisher PC)
//!   ◄──── trickle (target) ───►  (both directions, both PCs, any time after the offers)
//!   ── ping_req every ping_interval ──► ◄── pong_resp (none for ping_timeout: signal lost)
//!   ◄──────────── update (ParticipantUpdate: attributes, DISCONNECTED)
//!   ◄──────────── leave (room deleted / closed)    ── leave ──► (we hang up)
//! ```

mod media;
pub mod participants;
mod peer;
mod signal;
mod task;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use tokio::sync::{mpsc, oneshot, watch};

pub use media::{FRAME, FRAMES_AHEAD, FrameSender, MediaStats, OPUS_SILENCE, OutFrame, RtpAudio};
pub use participants::{CallStatus, SipParticipant};
pub use peer::IcePolicy;

/// Received packets waiting for the application before new ones are dropped (≈ 1.3 s).
pub const EVENTS_QUEUE: usize = 64;
/// `JOIN_RESPONSE_TIMEOUT` of the Rust SDK's signal client.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How to join.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RoomOptions {
    /// Let the server subscribe us to every track (the SDKs' default).
    pub auto_subscribe: bool,
    pub ice: IcePolicy,
    /// Limit for the websocket handshake and for the JoinResponse.
    pub join_timeout: Duration,
    /// Send an Opus silence frame on ticks with nothing queued (keeps the receiver's jitter
    /// buffer and NATs fed); otherwise skip the tick, advancing the RTP timestamp.
    pub send_silence: bool,
    /// Name of our published audio track.
    pub track_name: String,
}

impl Default for RoomOptions {
    fn default() -> Self {
        Self {
            auto_subscribe: true,
            ice: IcePolicy::Default,
            join_timeout: JOIN_TIMEOUT,
            send_silence: true,
            track_name: "agent-audio".to_owned(),
        }
    }
}

impl RoomOptions {
    pub fn with_ice(mut self, ice: IcePolicy) -> Self {
        self.ice = ice;
        self
    }
}

/// Why joining failed or an operation could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    #[error("invalid LiveKit URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    #[error("signal connection failed: {0}")]
    Connect(String),
    /// The server refused the websocket upgrade (401: bad token, 404: no such endpoint).
    #[error("server refused the signal connection with HTTP {status}")]
    Refused { status: u16 },
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("signal protocol violation: {0}")]
    Protocol(&'static str),
    #[error("webrtc: {0}")]
    WebRtc(String),
    #[error("not a DTMF digit: {0:?}")]
    InvalidDigit(char),
    #[error("the room session has ended")]
    Ended,
}

/// The room as the JoinResponse described it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoomInfo {
    pub name: String,
    pub sid: String,
    /// Our participant's identity and sid.
    pub identity: String,
    pub participant_sid: String,
}

/// What the room reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RoomEvent {
    /// One packet of the SIP participant's audio.
    Audio(RtpAudio),
    /// A `SipDTMF` data packet (reported once per packet, as LiveKit SIP sends one per tone).
    Dtmf { digit: char, arrived: Instant },
    /// A frame queued with a mark was written to our track.
    FrameSent { mark: u64, at: Instant },
    /// The SIP participant was first seen (already in the JoinResponse for an inbound call,
    /// so this is normally the first event), or its attributes or tracks changed (e.g.
    /// `sip.callStatus` going `ringing` → `active`; an outbound callee is only answered at
    /// `active`).
    SipParticipant(SipParticipant),
    /// Our publisher and subscriber connections are both up: media flows both ways. Frames
    /// queued before this are written to a track nobody receives yet, so start the greeting
    /// here. Audio may arrive a little earlier (the subscriber side connects first).
    MediaConnected,
    /// The session is over; nothing follows.
    Ended(EndReason),
}

/// Why the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The SIP participant left (the caller hung up).
    ParticipantLeft { identity: String },
    /// The server deleted or closed the room.
    RoomClosed,
    /// The server told us to leave for another reason.
    Disconnected { reason: proto::DisconnectReason },
    /// The signal connection closed, broke, sent garbage, or stopped answering pings.
    SignalLost,
    /// A peer connection failed (ICE/DTLS).
    MediaFailed,
    /// The signal protocol was violated (e.g. an answer to an offer we never sent).
    ProtocolViolation(&'static str),
    /// We left ([`RoomSession::leave`] or the session was dropped).
    Left,
}

pub(crate) enum Control {
    Dtmf {
        digit: char,
        done: oneshot::Sender<Result<(), RoomError>>,
    },
    Leave {
        done: oneshot::Sender<()>,
    },
}

/// The application's side of a joined room. Dropping it leaves the room.
pub struct RoomSession {
    info: RoomInfo,
    events: mpsc::Receiver<RoomEvent>,
    control: mpsc::Sender<Control>,
    sender: FrameSender,
    sip: watch::Receiver<Option<SipParticipant>>,
    shared: Arc<media::Shared>,
}

impl fmt::Debug for RoomSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomSession")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Joins the room at `url` with a room token (a job's [`crate::worker::Job::token`]).
/// Returns once the server's JoinResponse arrived; media starts when
/// [`RoomEvent::MediaConnected`] is reported.
pub async fn join(url: &str, token: &str, options: RoomOptions) -> Result<RoomSession, RoomError> {
    task::start(url, token, options).await
}

impl RoomSession {
    pub fn info(&self) -> &RoomInfo {
        &self.info
    }

    /// The next event. Cancel-safe. `None` after [`RoomEvent::Ended`].
    pub async fn recv(&mut self) -> Option<RoomEvent> {
        self.events.recv().await
    }

    /// A handle for queuing frames.
    pub fn sender(&self) -> FrameSender {
        self.sender.clone()
    }

    /// The SIP participant as last seen, if any.
    pub fn sip_participant(&self) -> Option<SipParticipant> {
        self.sip.borrow().clone()
    }

    /// Sends a DTMF digit (0-9, *, #, A-D) to the SIP participant as a reliable `SipDTMF`
    /// data packet; LiveKit SIP plays it out on the phone line.
    pub async fn send_dtmf(&self, digit: char) -> Result<(), RoomError> {
        let (done, result) = oneshot::channel();
        self.control
            .send(Control::Dtmf { digit, done })
            .await
            .map_err(|_| RoomError::Ended)?;
        result.await.map_err(|_| RoomError::Ended)?
    }

    /// Leaves the room (a `leave` signal request) and closes the peer connections.
    pub async fn leave(self) {
        let (done, finished) = oneshot::channel();
        if self.control.send(Control::Leave { done }).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), finished).await;
        }
    }

    pub fn stats(&self) -> MediaStats {
        self.shared.stats()
    }
}

/// RFC 4733 event code of a DTMF digit (what `SipDTMF.code` carries).
pub fn dtmf_code(digit: char) -> Option<u32> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => d.to_digit(10),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(12 + (d as u32 - 'A' as u32)),
        _ => None,
    }
}

/// The digit of a `SipDTMF` packet: its `digit` string, else its `code`.
pub fn dtmf_digit(packet: &proto::SipDtmf) -> Option<char> {
    if let Some(c) = packet.digit.chars().next() {
        return dtmf_code(c).map(|_| c.to_ascii_uppercase());
    }
    match packet.code {
        c @ 0..=9 => char::from_digit(c, 10),
        10 => Some('*'),
        11 => Some('#'),
        c @ 12..=15 => char::from_u32('A' as u32 + c - 12),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_codes_follow_rfc_4733() {
        for (digit, code) in [
            ('0', 0),
            ('9', 9),
            ('*', 10),
            ('#', 11),
            ('A', 12),
            ('d', 15),
        ] {
            assert_eq!(dtmf_code(digit), Some(code));
        }
        assert_eq!(dtmf_code('x'), None);
        let by_code = |code| proto::SipDtmf {
            code,
            digit: String::new(),
        };
        assert_eq!(dtmf_digit(&by_code(11)), Some('#'));
        assert_eq!(dtmf_digit(&by_code(13)), Some('B'));
        assert_eq!(dtmf_digit(&by_code(99)), None);
        assert_eq!(
            dtmf_digit(&proto::SipDtmf {
                code: 0,
                digit: "7".into()
            }),
            Some('7')
        );
    }
}
