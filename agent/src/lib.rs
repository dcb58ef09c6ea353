//! The `agent` daemon: CLI, configuration, wiring of the subsystems, and one actor per call
//! that runs the turn loop.
//!
//! It never parses SIP and never issues SQL: those belong to `sip` and `store`.
