//! RTP and RTCP without I/O: packet parsing and serialisation (RFC 3550), RFC 4733
//! telephone-events, per-call receive/send bookkeeping ([`RtpReceiver`] with symmetric
//! latching, [`RtpSender`]), receiver statistics ([`ReceptionStats`]: loss and jitter per
//! RFC 3550 A.1/A.3/A.8) and the call's RTCP reports ([`RtcpSession`], [`MediaQuality`]).
//! Payloads stay opaque bytes: codecs live in the `audio` crate.

mod dtmf;
mod packet;
mod reception;
mod rtcp;
mod rtcp_session;
#[cfg(test)]
mod rtcp_tests;
mod session;

use thiserror::Error;

pub use dtmf::{DtmfDetector, DtmfDigit, TelephoneEvent, digit_to_event, event_to_digit};
pub use packet::{RtpHeader, RtpPacket};
pub use reception::{ReceptionStats, ReceptionTotals};
pub use rtcp::{
    ReceiverReport, ReportBlock, RtcpPacket, SdesChunk, SenderReport, parse_compound,
    write_compound,
};
pub use rtcp_session::{
    MediaQuality, RTCP_MIN_INTERVAL, RtcpSession, SenderInfo, ntp_timestamp, report_interval,
};
pub use session::{Ignored, Received, ReceiverStats, RtpReceiver, RtpSender};

/// Errors from RTP/RTCP parsing and generation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RtpError {
    #[error("packet too short")]
    TooShort,
    #[error("not RTP version 2")]
    BadVersion,
    #[error("invalid padding")]
    BadPadding,
    #[error("RTCP packet on the RTP path")]
    LooksLikeRtcp,
    #[error("telephone-event was not negotiated")]
    NoTelephoneEvent,
    #[error("not a DTMF digit")]
    BadDigit,
}
