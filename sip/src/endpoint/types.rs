//! Public types of the endpoint API: configuration, call handles, commands' parameters,
//! errors, counters. Events and end reasons are in `events.rs`, trunks in `trunks.rs`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use thiserror::Error;

use super::admission::{Cidr, RateLimit};
use crate::auth::Credentials;
use crate::message::{NameAddr, Uri};
use crate::sdp::{Codec, SessionDescription};
use crate::transaction::Timers;
use crate::transmit::TransportKind;

/// Endpoint configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address our SIP socket is bound to.
    pub local_addr: SocketAddr,
    /// The address to put in Via and Contact when it differs from `local_addr` (bound to
    /// 0.0.0.0, or behind NAT with a known public address). Use [`Config::media_ip`] for SDP.
    pub advertised_addr: Option<SocketAddr>,
    /// User part of our Contact URI.
    pub contact_user: String,
    /// User-Agent / Server header value.
    pub user_agent: String,
    /// Our codecs, most preferred first. An inbound offer with none of them gets 488.
    pub codecs: Vec<Codec>,
    pub timers: Timers,
    /// Seed for tags, branches, Call-IDs and cnonces; seed from the OS in production.
    pub seed: u64,
    /// Send in-dialog requests to the address the peer's messages came from (default), rather
    /// than to its Contact; robust behind NAT. A Record-Route set always wins.
    pub symmetric_signalling: bool,
    /// The driver accepts and opens TCP connections: requests too large for UDP
    /// (RFC 3261 §18.1.1) then go over TCP unless the target is pinned to UDP.
    pub tcp_enabled: bool,
    /// RFC 4028 session interval we ask for (outbound INVITEs, and inbound ones that ask for
    /// none); `None`: only honour the peer's. Seconds.
    pub session_expires: Option<u32>,
    /// The smallest session interval we accept (seconds, ≥ 90); below it we answer 422.
    pub min_se: u32,
    /// Inbound admission: `(trunk name, source networks)`. When any list is non-empty,
    /// requests from sources outside every list get 403 (counted in [`Stats`]).
    pub allowed_sources: Vec<(String, Vec<Cidr>)>,
    /// Per-source-IP request rate limit; excess requests are dropped (counted). Allow-listed
    /// sources are exempt.
    pub rate_limit: Option<RateLimit>,
    /// Calls (inbound and outbound) beyond which inbound INVITEs get 503 with Retry-After and
    /// [`super::Endpoint::invite`] fails.
    pub max_concurrent_calls: Option<usize>,
    /// Retry-After seconds on 503s the core sends.
    pub retry_after: u32,
    /// How long a transfer may take until its final NOTIFY ([`super::TransferOutcome::TimedOut`]).
    pub transfer_timeout: Duration,
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
            tcp_enabled: false,
            session_expires: Some(1800),
            min_se: 90,
            allowed_sources: Vec::new(),
            rate_limit: None,
            max_concurrent_calls: None,
            retry_after: 5,
            transfer_timeout: Duration::from_secs(60),
        }
    }

    /// `host:port` for Via sent-by and Contact.
    pub fn sent_by(&self) -> String {
        self.advertised_addr.unwrap_or(self.local_addr).to_string()
    }

    /// The IP to put in SDP `c=`/`o=` lines (the advertised address when set).
    pub fn media_ip(&self) -> IpAddr {
        self.advertised_addr.unwrap_or(self.local_addr).ip()
    }

    /// Our Contact header value (UDP).
    pub fn contact(&self) -> String {
        self.contact_for(TransportKind::Udp)
    }

    /// Our Contact for a transport (`;transport=tcp` on TCP).
    pub fn contact_for(&self, transport: TransportKind) -> String {
        match transport {
            TransportKind::Udp => format!("<sip:{}@{}>", self.contact_user, self.sent_by()),
            TransportKind::Tcp => format!(
                "<sip:{}@{};transport=tcp>",
                self.contact_user,
                self.sent_by()
            ),
        }
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
    /// answer arrives in the ACK, see [`super::Event::CallEstablished`]). When present, it is
    /// known to contain a codec from [`Config::codecs`].
    pub offer: Option<SessionDescription>,
    /// Where the INVITE came from.
    pub source: SocketAddr,
    /// The trunk whose [`Config::allowed_sources`] list admitted the source, if any.
    pub trunk: Option<String>,
}

/// Parameters of an outbound call. Build with [`InviteParams::new`] and set the rest.
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
    /// Answers 401/407 challenges; when `None`, the trunk's (if `trunk` is set).
    pub credentials: Option<Credentials>,
    /// The core CANCELs the INVITE when no final response came this long after it was sent
    /// (the call then ends with [`super::EndReason::RingTimeout`]).
    pub ringing_timeout: Option<Duration>,
    /// A trunk added with [`super::Endpoint::add_trunk`]: supplies credentials and transport
    /// when these are not given here.
    pub trunk: Option<String>,
    /// `None`: UDP, switching to TCP for large requests when [`Config::tcp_enabled`];
    /// `Some(t)`: always `t`.
    pub transport: Option<TransportKind>,
}

impl InviteParams {
    pub fn new(target: Uri, destination: SocketAddr, from: Uri, offer: SessionDescription) -> Self {
        Self {
            target,
            destination,
            from,
            from_display: None,
            offer,
            headers: Vec::new(),
            credentials: None,
            ringing_timeout: None,
            trunk: None,
            transport: None,
        }
    }
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
    #[error("max_concurrent_calls ({0}) reached")]
    TooManyCalls(usize),
    #[error("a transfer is already in progress")]
    TransferPending,
    #[error("no trunk named {0:?}")]
    UnknownTrunk(String),
}

/// Counters. Dropped datagrams are never answered; `dropped_malformed` are parse failures
/// that could not be answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    pub datagrams_received: u64,
    pub stream_messages_received: u64,
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
    /// Requests sent over TCP because they were too large for UDP.
    pub requests_switched_to_tcp: u64,
    pub responses_sent_1xx: u64,
    pub responses_sent_2xx: u64,
    pub responses_sent_3xx: u64,
    pub responses_sent_4xx: u64,
    pub responses_sent_5xx: u64,
    pub responses_sent_6xx: u64,
    pub calls_inbound: u64,
    pub calls_outbound: u64,
    pub calls_rejected_no_codec: u64,
    /// Inbound INVITEs refused with 503 by `max_concurrent_calls`.
    pub calls_rejected_capacity: u64,
    /// Requests from sources outside every allowed CIDR list (answered 403).
    pub rejected_source: u64,
    /// Requests dropped by the per-source rate limit.
    pub rate_limited: u64,
    /// Challenges answered with credentials (INVITE and REGISTER).
    pub auth_challenges_answered: u64,
}
