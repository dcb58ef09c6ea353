//! What the endpoint tells the application: events, why calls end, trunk and transfer states.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::types::{CallId, IncomingCall};
use crate::message::NameAddr;
use crate::sdp::{Direction, SessionDescription};

/// Something the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    IncomingCall(Box<IncomingCall>),
    /// An inbound INVITE the core refused before the application saw it (488 no codec, 503
    /// over capacity, 422 session interval too small).
    InboundRejected {
        sip_call_id: String,
        from: NameAddr,
        status: u16,
        source: SocketAddr,
    },
    /// Outbound: a provisional response (180/183…), with early-media SDP if any (then RTP may
    /// already flow from the callee's side).
    CallProgress {
        call: CallId,
        status: u16,
        remote_sdp: Option<SessionDescription>,
    },
    /// The call is up. Inbound: the ACK arrived (with the SDP answer if our 200 carried the
    /// offer). Outbound: the 2xx arrived (its SDP answer) and was ACKed.
    CallEstablished {
        call: CallId,
        remote_sdp: Option<SessionDescription>,
    },
    /// The call is over; the last event for `call`.
    CallEnded {
        call: CallId,
        reason: EndReason,
    },
    /// An in-dialog INFO (answered 200) that is not DTMF.
    InfoReceived {
        call: CallId,
        content_type: Option<String>,
        body: Vec<u8>,
    },
    /// A DTMF digit from SIP INFO (application/dtmf-relay or application/dtmf).
    Dtmf {
        call: CallId,
        digit: char,
        /// From `Duration=` (dtmf-relay); `None` when the body has none.
        duration_ms: Option<u32>,
    },
    /// The peer changed the session with a re-INVITE or UPDATE that the core answered.
    /// `direction` is *ours* in the answer: `RecvOnly`/`Inactive` mean "stop sending" (the
    /// peer put us on hold), `SendRecv` means send again.
    MediaUpdated {
        call: CallId,
        remote_sdp: SessionDescription,
        direction: Direction,
    },
    /// A blind transfer ([`super::Endpoint::transfer`]) finished. After `Accepted` the core
    /// sends BYE and the call ends with [`EndReason::Transferred`]; otherwise the call goes on.
    TransferResult {
        call: CallId,
        outcome: TransferOutcome,
    },
    /// A trunk's registration state changed.
    RegistrationChanged {
        trunk: String,
        state: RegistrationState,
    },
    /// Result of an OPTIONS keepalive towards a trunk.
    TrunkHealth {
        trunk: String,
        up: bool,
        /// Request to final response; `None` when no response came.
        rtt: Option<Duration>,
    },
}

/// How a transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferOutcome {
    /// The transfer target answered (a 2xx sipfrag in a NOTIFY).
    Accepted,
    /// The REFER was refused (its status), or the transfer target failed (the sipfrag status);
    /// 487 when the subscription ended without a final status.
    Failed { status: u16 },
    /// No final NOTIFY within [`super::Config::transfer_timeout`], or no answer to the REFER.
    TimedOut,
}

/// A trunk's registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    Unregistered,
    /// The first REGISTER (or one after a failure) is in flight.
    Registering,
    /// Bound until `expires_at`; refreshed at about 80 % of the granted interval.
    Registered {
        expires_at: Instant,
    },
    /// The last attempt failed with `status` (408 when nothing answered); the next is at
    /// `retry_at` (exponential backoff).
    Failed {
        status: u16,
        retry_at: Instant,
    },
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The peer sent BYE.
    RemoteBye,
    /// We sent BYE (after [`super::Endpoint::hangup`]); reported when it completed or timed out.
    LocalBye,
    /// The caller cancelled before we answered.
    RemoteCancel,
    /// We cancelled our outbound INVITE (the application hung up).
    LocalCancel,
    /// We rejected the inbound call with this status (also `hangup` before answering: 480).
    LocalRejected { status: u16 },
    /// The callee (or a proxy) rejected our INVITE.
    RemoteRejected { status: u16, reason: String },
    /// We answered but no ACK came within 64·T1; a BYE was sent.
    AckTimeout,
    /// No response to our INVITE (Timer B).
    Timeout,
    /// Our INVITE rang for [`super::InviteParams::ringing_timeout`]; the core cancelled it.
    RingTimeout,
    /// A 401/407 we could not answer: no or wrong credentials, or an unsupported challenge.
    AuthFailed { status: u16 },
    /// The session timer ran out (RFC 4028), or a refresh was refused with 408/481: BYE sent.
    SessionExpired,
    /// A blind transfer succeeded and we left the call.
    Transferred,
    /// The driver reported the destination unreachable (ICMP, TCP connect failure).
    TransportError,
}

/// The coarse outcome of a failed outbound call, for campaign logic and reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    Busy,
    NoAnswer,
    Rejected,
    Unreachable,
}

impl FailureClass {
    pub fn code(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::NoAnswer => "no_answer",
            Self::Rejected => "rejected",
            Self::Unreachable => "unreachable",
        }
    }
}

impl EndReason {
    /// A stable snake_case code for storage and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RemoteBye => "remote_bye",
            Self::LocalBye => "local_bye",
            Self::RemoteCancel => "remote_cancel",
            Self::LocalCancel => "local_cancel",
            Self::LocalRejected { .. } => "local_rejected",
            Self::RemoteRejected { .. } => "remote_rejected",
            Self::AckTimeout => "ack_timeout",
            Self::Timeout => "timeout",
            Self::RingTimeout => "ring_timeout",
            Self::AuthFailed { .. } => "auth_failed",
            Self::SessionExpired => "session_expired",
            Self::Transferred => "transferred",
            Self::TransportError => "transport_error",
        }
    }

    /// Why an outbound call did not connect: 486/600 → busy; 408/480, or our ringing timeout
    /// → no answer; 502/503/504, no response or a transport error → unreachable; other
    /// rejections (403/404/603…, failed auth) → rejected. `None` for calls that ended
    /// normally or were cancelled by the application.
    pub fn failure_class(&self) -> Option<FailureClass> {
        Some(match self {
            Self::RemoteRejected { status, .. } => match status {
                486 | 600 => FailureClass::Busy,
                408 | 480 => FailureClass::NoAnswer,
                502..=504 => FailureClass::Unreachable,
                _ => FailureClass::Rejected,
            },
            Self::RingTimeout => FailureClass::NoAnswer,
            Self::Timeout | Self::TransportError => FailureClass::Unreachable,
            Self::AuthFailed { .. } => FailureClass::Rejected,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_classes() {
        let rej = |status| EndReason::RemoteRejected {
            status,
            reason: String::new(),
        };
        let class = |r: EndReason| r.failure_class().map(FailureClass::code);
        assert_eq!(class(rej(486)), Some("busy"));
        assert_eq!(class(rej(600)), Some("busy"));
        assert_eq!(class(rej(408)), Some("no_answer"));
        assert_eq!(class(rej(480)), Some("no_answer"));
        assert_eq!(class(EndReason::RingTimeout), Some("no_answer"));
        for s in [403, 404, 603, 488, 487] {
            assert_eq!(class(rej(s)), Some("rejected"), "{s}");
        }
        assert_eq!(class(rej(503)), Some("unreachable"));
        assert_eq!(class(EndReason::Timeout), Some("unreachable"));
        assert_eq!(class(EndReason::TransportError), Some("unreachable"));
        assert_eq!(
            class(EndReason::AuthFailed { status: 407 }),
            Some("rejected")
        );
        assert_eq!(class(EndReason::RemoteBye), None);
        assert_eq!(class(EndReason::LocalCancel), None);
    }
}
