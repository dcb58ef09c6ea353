//! Flow definitions and the flow engine: what the agent says and does on each caller turn,
//! either scripted (keywords/phrases/DTMF) or through an OpenAI-compatible LLM with tools.
//!
//! - [`flow`]: the TOML flow format, validation with file/line/key errors, [`FlowRegistry`],
//!   business hours ([`Flow::business_open`]).
//! - [`engine`]: one [`Engine`] per call; caller input in, a cancel-safe stream of sentences,
//!   actions and a turn summary out.
//! - [`tools`]: built-in tools and their guardrails, over the [`CallServices`] trait the agent
//!   implements.
//! - [`llm`]: streamed chat completions with tools (async-openai) and its [`LlmConfig`].
//! - [`sim`]: a text simulator and YAML conversation tests for flows.
//! - [`testing`]: an in-memory [`CallServices`] for the simulator and tests.
//!
//! What it does **not** do: no audio, no SIP, no SQL, and it never reads the wall clock
//! ([`Flow::business_open`] answers for a `now` the caller passes). It never
//! speaks (sentences go to the agent's TTS), never hangs up or transfers by itself (it asks
//! the agent with a [`CallAction`]), and never stores anything directly (call events and
//! messages go through [`CallServices`]).

pub mod engine;
pub mod flow;
pub mod llm;
pub mod sim;
pub mod testing;
pub mod tools;

pub use engine::{
    CallAction, CallSetup, CallerInput, Engine, ReplyEvent, ReplyMode, ReplyStream,
    ToolCallSummary, TurnSettings, TurnSummary, Usage,
};
pub use flow::{Flow, FlowError, FlowErrorKind, FlowErrors, FlowRegistry};
pub use llm::{LlmClient, LlmConfig, LlmError};
pub use tools::{
    CallEvent, CallServices, Customer, CustomerId, DncRequest, Invoice, NewCallback, NewMessage,
    PaymentLinkResult, RefusalReason, ServiceError, ServiceFuture, identify_caller,
};
