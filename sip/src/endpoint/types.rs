//! Public types of the endpoint API: configuration, call handles, events, errors, counters.

use std::fmt;
use std::net::SocketAddr;

use thiserror::Error;

use crate::message::{NameAddr, Uri};
use crate::sdp::{Codec, SessionDescription};
use crate::transaction::Timers;

/// Endpoint configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address our SIP socket is bound to.
    pub local_addr: SocketAddr,
    /// The address to put in Via and Contact when it differs from `local_addr` (bound to
    /// 0.0.0.0, or behind NAT with a known public address).
    pub advertised_addr: Option<SocketAddr>,
    /// User part of our Contact URI.
    pub contact_user: String,
    /// User-Agent / Server header value.
    pub user_agent: String,
    /// Our codecs, most preferred first. An inbound offer with none of them gets 488.
    pub codecs: Vec<Codec>,
    pub timers: Timers,
    /// Seed for tags, branches and Call-IDs; seed from the OS in production.
    pub seed: u64,
    /// Send in-dialog requests to the address the peer's messages came from (default), rather
    /// than to its Contact; robust behind NAT. A Record-Route set always wins.
    pub symmetric_signalling: bool,
}

impl Config {
    /// Defaults for everything but the bound address.
    pub fn new(local_addr: SocketAddr) -> Self {
        Self {
            local_addr,
            advertised_addr: None,
            contact_user: "agent".into(),
            user_agent: "agent".into(),
            codecs: vec![Codec::pcmu(), Codec::pcma()],
            timers: Timers::default(),
            seed: 0,
            symmetric_signalling: true,
        }
    }

    /// `host:port` for Via sent-by and Contact.
    pub fn sent_by(&self) -> String {
        self.advertised_addr.unwrap_or(self.local_addr).to_string()
    }

    /// Our Contact header value.
    pub fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.contact_user, self.sent_by())
    }
}

/// Our handle for a call (not the SIP Call-ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(pub(crate) u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// An inbound INVITE the application must decide on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    pub call: CallId,
    /// The SIP Call-ID (for logs and correlation).
    pub sip_call_id: String,
    pub from: NameAddr,
    pub to: NameAddr,
    pub request_uri: Uri,
    /// The SDP offer; `None` for an offerless INVITE (then our 200 carries the offer and the
    /// answer arrives in the ACK, see [`Event::CallEstablished`]). When present, it is known to
    /// contain a codec from [`Config::codecs`].
    pub offer: Option<SessionDescription>,
    /// Where the INVITE came from.
    pub source: SocketAddr,
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    IncomingCall(Box<IncomingCall>),
    /// An inbound INVITE the core refused before the application saw it (e.g. 488).
    InboundRejected {
        sip_call_id: String,
        from: NameAddr,
        status: u16,
        source: SocketAddr,
    },
    /// Outbound: a provisional response (180/183…), with early-media SDP if any.
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
    /// An in-dialog INFO (answered 200). SIP INFO DTMF (application/dtmf-relay) is decoded
    /// by the application for now; issue 4 may type it.
    InfoReceived {
        call: CallId,
        content_type: Option<String>,
        body: Vec<u8>,
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
    /// We cancelled our outbound INVITE.
    LocalCancel,
    /// We rejected the inbound call with this status (also `hangup` before answering: 480).
    LocalRejected { status: u16 },
    /// The callee rejected our INVITE.
    RemoteRejected { status: u16, reason: String },
    /// We answered but no ACK came within 64·T1; a BYE was sent.
    AckTimeout,
    /// No response to our INVITE (Timer B).
    Timeout,
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
        }
    }
}

/// Parameters of an outbound call.
#[derive(Debug, Clone)]
pub struct InviteParams {
    /// Request-URI (and To URI).
    pub target: Uri,
    /// Where to send the INVITE (the trunk/proxy, or the callee); DNS is the driver's job.
    pub destination: SocketAddr,
    /// Our identity (From URI); its tag is generated.
    pub from: Uri,
    pub from_display: Option<String>,
    /// The SDP offer (see [`crate::sdp::build_offer`]).
    pub offer: SessionDescription,
    /// Extra headers (name, value), e.g. P-Asserted-Identity.
    pub headers: Vec<(String, String)>,
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CallError {
    #[error("no such call")]
    UnknownCall,
    #[error("not possible in the call's current state ({0})")]
    InvalidState(&'static str),
    #[error("status {0} is not valid here")]
    InvalidStatus(u16),
}

/// Counters. Dropped datagrams are never answered; `dropped_malformed` are parse failures
/// that could not be answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    pub datagrams_received: u64,
    pub keepalives_received: u64,
    pub requests_received: u64,
    pub responses_received: u64,
    pub dropped_malformed: u64,
    /// Malformed requests answered with 400/501/505.
    pub malformed_answered: u64,
    pub stray_responses: u64,
    pub stray_acks: u64,
    /// Retransmitted requests/responses absorbed by a transaction.
    pub retransmissions_received: u64,
    pub retransmissions_sent: u64,
    pub requests_sent: u64,
    pub responses_sent_1xx: u64,
    pub responses_sent_2xx: u64,
    pub responses_sent_3xx: u64,
    pub responses_sent_4xx: u64,
    pub responses_sent_5xx: u64,
    pub responses_sent_6xx: u64,
    pub calls_inbound: u64,
    pub calls_outbound: u64,
    pub calls_rejected_no_codec: u64,
}
