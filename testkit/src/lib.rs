//! Test support shared by the workspace's integration tests: local fakes of remote services
//! (OpenAI-compatible chat/STT/TTS, later Zoho and payments) that follow the documented wire
//! formats, a static file host for download tests, and helpers to run real SIP peers.
//!
//! It is a dev-dependency only: nothing in the daemon links it. The fakes listen on
//! 127.0.0.1 only and never reach the network.

pub mod dodo;
pub mod files;
pub mod livekit;
pub mod openai;
pub mod resend;
pub mod zoho;
