//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use dialogs::testing::MemoryServices;
use dialogs::{
    CallAction, CallSetup, Engine, Flow, LlmClient, ReplyEvent, ReplyStream, TurnSummary,
};
use futures::StreamExt;

pub fn flows_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/flows")
}

pub fn flow(name: &str) -> Arc<Flow> {
    Arc::new(Flow::load(&flows_dir().join(format!("{name}.toml"))).expect("flow loads"))
}

pub fn flow_from(text: &str) -> Arc<Flow> {
    Arc::new(
        dialogs::flow::parse_flow(std::path::Path::new("inline.toml"), text).expect("flow parses"),
    )
}

/// What one stream produced.
#[derive(Debug, Default)]
pub struct Reply {
    pub sentences: Vec<String>,
    pub actions: Vec<CallAction>,
    pub summary: Option<TurnSummary>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.sentences.join(" ")
    }
    pub fn summary(&self) -> &TurnSummary {
        self.summary.as_ref().expect("stream ended with Done")
    }
}

pub async fn collect(mut s: ReplyStream<'_>) -> Reply {
    let mut r = Reply::default();
    while let Some(ev) = s.next().await {
        match ev {
            ReplyEvent::Sentence(t) => r.sentences.push(t),
            ReplyEvent::Action(a) => r.actions.push(a),
            ReplyEvent::Done(sum) => r.summary = Some(sum),
            _ => {}
        }
    }
    r
}

/// An engine for `flow` with the demo customers; `caller` identifies (or not) the caller.
pub fn engine(
    flow: Arc<Flow>,
    host: Arc<MemoryServices>,
    llm: Option<LlmClient>,
    caller: Option<&str>,
) -> Engine {
    let customer = caller.and_then(|c| host.customer_by_phone(c));
    // These engines stand for a trunk that vouches for its caller IDs; the untrusted path
    // (postal code first) has its own conversation tests.
    let setup = CallSetup::new(caller)
        .with_customer(customer)
        .with_caller_id_trusted(true);
    Engine::new(flow, host, llm, setup)
}

pub const JANE: &str = "+15551234567";
pub const UNKNOWN: &str = "+15550000000";
