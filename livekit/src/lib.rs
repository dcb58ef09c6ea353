//! The LiveKit transport: an agent worker, a room participant with WebRTC audio, and the SIP
//! and dispatch twirp APIs — what the daemon needs to take calls that LiveKit SIP bridges
//! into rooms.
//!
//! - [`token`]: HS256 access tokens (mint and verify).
//! - [`worker`]: registers on `{url}/agent`, accepts jobs within `max_jobs`, reports load.
//! - [`room`]: joins a job's room over `/rtc`, receives the SIP participant's Opus RTP,
//!   publishes our Opus track paced at 20 ms, DTMF as `SipDTMF` data packets.
//! - [`sip_api`]: `TransferSIPParticipant`, `CreateSIPParticipant`, `CreateDispatch`.
//!
//! # What this crate does not do
//!
//! - No audio processing: Opus payloads in and out; the caller encodes and decodes.
//! - No configuration files: plain option structs.
//! - No video, no simulcast, no end-to-end encryption, no single-PC `/rtc/v1` mode, no
//!   signal resumption after a lost signal connection (the call ends with
//!   [`room::EndReason::SignalLost`]).

pub mod room;
pub mod sip_api;
pub mod token;
mod url;
pub mod worker;

/// The protobuf types (`livekit-protocol`), for callers that need the wire structs.
pub use livekit_protocol as proto;
