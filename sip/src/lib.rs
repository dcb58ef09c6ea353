//! SIP signalling and RTP/RTCP for the daemon: a sans-IO protocol core (message parsing,
//! transactions, dialogs, SDP offer/answer, RTP sessions, RFC 4733 telephone-events) plus a thin
//! tokio driver that owns the sockets and timers.
//!
//! It does not decode audio (payloads stay opaque bytes) and its core never reads the clock:
//! every core entry point takes `now` as input. `clippy.toml` disallows `Instant::now` and
//! `SystemTime::now` crate-wide; only a driver module may opt out with an `allow`.
#![deny(clippy::disallowed_methods)]

pub mod auth;
pub mod dialog;
pub mod driver;
pub mod endpoint;
mod ids;
pub mod message;
pub mod rtp;
pub mod sdp;
pub mod transaction;
mod transmit;

pub use auth::Credentials;
pub use endpoint::{
    CallError, CallId, Cidr, Config, EndReason, Endpoint, Event, FailureClass, IncomingCall,
    InviteParams, RateLimit, RegistrationState, Stats, TransferOutcome, Trunk, TrunkError,
    TrunkHealth,
};
pub use transmit::{ConnectionId, Transmit, TransportKind};

/// An arbitrary starting instant for simulated-time unit tests (the only clock read in tests).
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}
