//! The transports a [`super::CallLeg`] runs on: direct SIP/RTP (the `sip` driver) and a
//! LiveKit room (the `livekit` crate). Both deliver the caller's audio as numbered codec
//! packets with their arrival time, take our encoded frames through a paced, tagged sender,
//! and report DTMF, transfer outcomes and the end of the call — so everything above (jitter
//! buffer, codec, echo gate, playback accounting, the call core) is the same for both.

mod livekit;
mod sip;

use std::time::Instant;

use ::sip::driver::MediaStats;
use store::EndReason;

pub(super) use self::livekit::{LiveKitRoom, LiveKitTransport};
pub(super) use self::sip::{SipTransport, end_reason as sip_end_reason};
use super::core::TransferProgress;

/// What a transport reports, in the leg's terms.
#[derive(Debug)]
pub(super) enum TransportEvent {
    /// One received audio packet.
    Audio {
        sequence: u16,
        timestamp: u32,
        payload: Vec<u8>,
        arrived: Instant,
    },
    Dtmf(char),
    /// The frame queued with `mark` went out at `at`.
    MarkSent {
        mark: u64,
        at: Instant,
    },
    Transfer(TransferProgress),
    /// The call is over.
    Ended(EndReason),
    /// Something the transport handled itself (nothing for the leg to do).
    Nothing,
}

/// Why a transfer could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    #[error("transfer target {target:?} is not a valid SIP URI")]
    BadTarget { target: String },
    #[error("the SIP layer refused the transfer: {0}")]
    Sip(#[from] ::sip::driver::DriverError),
}

/// One encoded frame for a transport's pacer, stamped by that transport's sender.
pub(super) enum OutFrame {
    Sip(::sip::driver::OutFrame),
    LiveKit(::livekit::room::OutFrame),
}

/// A transport's pacer: frames queued a few ahead, one sent per ptime, each with a tag whose
/// sending is published (so the leg knows exactly what the caller heard).
#[derive(Clone)]
pub(super) enum FrameSender {
    Sip(::sip::driver::FrameSender),
    LiveKit(::livekit::room::FrameSender),
}

impl FrameSender {
    pub fn frame(&self, payload: Vec<u8>, mark: Option<u64>, tag: u64) -> OutFrame {
        match self {
            FrameSender::Sip(s) => OutFrame::Sip(s.frame(payload, mark, tag)),
            FrameSender::LiveKit(s) => OutFrame::LiveKit(s.frame(payload, mark, tag)),
        }
    }

    /// Waits for room and queues a frame. Cancel-safe. False when the transport has stopped.
    pub async fn send(&self, frame: OutFrame) -> bool {
        match (self, frame) {
            (FrameSender::Sip(s), OutFrame::Sip(f)) => s.send(f).await,
            (FrameSender::LiveKit(s), OutFrame::LiveKit(f)) => s.send(f).await,
            // A frame built by one sender is only ever given to it.
            _ => false,
        }
    }

    pub fn last_sent_tag(&self) -> Option<u64> {
        match self {
            FrameSender::Sip(s) => s.last_sent_tag(),
            FrameSender::LiveKit(s) => s.last_sent_tag(),
        }
    }

    /// Discards everything queued (takes effect on the next tick).
    pub fn flush(&self) {
        match self {
            FrameSender::Sip(s) => s.flush(),
            FrameSender::LiveKit(s) => s.flush(),
        }
    }
}

/// The transport under a leg.
pub(super) enum Transport {
    Sip(SipTransport),
    LiveKit(LiveKitTransport),
}

impl Transport {
    /// The next event. Cancel-safe.
    pub async fn recv(&mut self) -> TransportEvent {
        match self {
            Transport::Sip(t) => t.recv().await,
            Transport::LiveKit(t) => t.recv().await,
        }
    }

    pub fn sender(&self) -> FrameSender {
        match self {
            Transport::Sip(t) => FrameSender::Sip(t.sender()),
            Transport::LiveKit(t) => FrameSender::LiveKit(t.sender()),
        }
    }

    /// Starts a blind transfer to `target` (a number or URI from the flow's allow-list); the
    /// outcome arrives as [`TransportEvent::Transfer`]. Returns what the request went to.
    pub async fn transfer(&mut self, target: &str) -> Result<String, TransferError> {
        match self {
            Transport::Sip(t) => t.transfer(target).await,
            Transport::LiveKit(t) => t.transfer(target),
        }
    }

    /// Ends the call for the caller.
    pub async fn hangup(&mut self) {
        match self {
            Transport::Sip(t) => t.hangup().await,
            Transport::LiveKit(t) => t.hangup().await,
        }
    }

    /// Sends DTMF digits to the caller's side.
    pub async fn send_dtmf(&self, digit: char) -> bool {
        match self {
            Transport::Sip(t) => t.send_dtmf(digit).await,
            Transport::LiveKit(t) => t.send_dtmf(digit).await,
        }
    }

    /// Media counters and quality, in the SIP driver's terms (a LiveKit leg fills what its
    /// receiver measures; it has no RTCP round trip).
    pub fn media_stats(&self) -> MediaStats {
        match self {
            Transport::Sip(t) => t.media_stats(),
            Transport::LiveKit(t) => t.media_stats(),
        }
    }
}
