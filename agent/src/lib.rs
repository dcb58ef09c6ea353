//! The `agent` daemon: CLI, configuration, wiring of the subsystems, and one actor per call
//! that runs the turn loop.
//!
//! It never parses SIP and never issues SQL: those belong to `sip` and `store`. Errors become
//! `anyhow` only at the binary edge (`main.rs` and the command functions in [`cli`]).

pub mod billing;
pub mod calls;
pub mod campaigns;
pub mod cli;
pub mod clock;
pub mod config;
mod integrations;
mod logging;
mod serve;
mod shutdown;
pub mod trunks;
mod wiring;
