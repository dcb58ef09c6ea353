//! The flow simulator: the real [`Engine`] driven by text, for `agent chat` (a REPL) and
//! `agent flows test` (YAML conversation tests), over the in-memory [`MemoryServices`].
//!
//! It does not start an LLM server: with `llm` set, tests need an OpenAI-compatible endpoint
//! (the project's tests use testkit's FakeOpenAi and feed it each step's `llm` replies through
//! the hook given to [`run_test`]).
//!
//! Test file format (YAML), one test or `tests: [...]`:
//! ```yaml
//! name: known caller asks for the balance
//! flow: receptionist
//! caller: "+15551234567"      # optional; the demo data knows +15551234567 and +15559876543
//! business_open: true         # default: by the flow's [business_hours] at `at`, else true
//! caller_id_trusted: false    # default false: the call came from a trunk trusted to pass
//!                             # caller IDs unforged (verify = "postal_code_unless_trusted")
//! at: "2025-06-02T14:30:00Z"   # optional: the call's time (RFC 3339) for [business_hours]
//! llm: false                  # default false: scripted mode
//! greeting: { reply_contains: ["Hi Jane Doe"] }
//! steps:
//!   - say: "I'd like to check my balance"      # or press: "1", or silence: true
//!     llm: [{ tool_calls: [{ name: get_balance }] }]   # replies for the fake, LLM tests only
//!     expect:
//!       node: balance
//!       tool: get_balance                       # a tool called this turn…
//!       tool_status: ok                         # …with this status
//!       tool_args: { destination: front_desk }  # …whose arguments include these
//!       reply_contains: ["$142.50"]
//!       reply_not_contains: ["Bob"]
//!       refusal: not_identified                 # a refusal event with this reason
//!       transfer: front_desk
//!       ended: flow_completed
//! ```

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::engine::{CallAction, CallSetup, CallerInput, Engine, ReplyEvent, TurnSummary};
use crate::flow::{Flow, FlowRegistry};
use crate::llm::LlmClient;
use crate::testing::MemoryServices;
use crate::tools::CallEvent;

/// One simulated call.
#[derive(Debug)]
pub struct Simulator {
    engine: Engine,
    host: Arc<MemoryServices>,
}

/// What the agent answered to one input.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SimReply {
    pub sentences: Vec<String>,
    pub actions: Vec<CallAction>,
    pub summary: Option<TurnSummary>,
}

impl SimReply {
    /// The sentences joined by spaces.
    pub fn text(&self) -> String {
        self.sentences.join(" ")
    }
}

impl Simulator {
    /// A call from `caller` (looked up in the demo data, as the agent does before answering).
    pub fn new(
        flow: Arc<Flow>,
        llm: Option<LlmClient>,
        caller: Option<&str>,
        business_open: bool,
        caller_id_trusted: bool,
    ) -> Simulator {
        let host = Arc::new(MemoryServices::demo());
        let customer = caller.and_then(|c| host.customer_by_phone(c));
        let setup = CallSetup::new(caller)
            .with_customer(customer)
            .with_business_open(business_open)
            .with_caller_id_trusted(caller_id_trusted);
        let engine = Engine::new(flow, host.clone(), llm, setup);
        Simulator { engine, host }
    }

    /// The greeting.
    pub async fn start(&mut self) -> SimReply {
        collect(self.engine.start()).await
    }

    /// One caller input.
    pub async fn send(&mut self, input: CallerInput) -> SimReply {
        collect(self.engine.turn(input)).await
    }

    /// The engine (node, transcript, usage…).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What the tools did (messages, callbacks, events).
    pub fn host(&self) -> &MemoryServices {
        &self.host
    }
}

async fn collect(mut s: crate::engine::ReplyStream<'_>) -> SimReply {
    use futures::StreamExt;
    let mut r = SimReply::default();
    while let Some(ev) = s.next().await {
        match ev {
            ReplyEvent::Sentence(t) => r.sentences.push(t),
            ReplyEvent::Action(a) => r.actions.push(a),
            ReplyEvent::Done(sum) => r.summary = Some(sum),
        }
    }
    r
}

/// A conversation test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ConversationTest {
    pub name: String,
    pub flow: String,
    #[serde(default)]
    pub caller: Option<String>,
    /// Forces the business open or closed; without it the flow's `[business_hours]` decide at
    /// `at` (or the business is open when `at` is not given).
    #[serde(default)]
    pub business_open: Option<bool>,
    /// When the call happens (RFC 3339, e.g. `2025-06-02T14:30:00Z`).
    #[serde(default)]
    pub at: Option<String>,
    /// The caller ID is trusted (the call came from a trunk with `trusted_caller_id`).
    #[serde(default)]
    pub caller_id_trusted: bool,
    /// Run with the LLM given to [`run_test`] (otherwise scripted).
    #[serde(default)]
    pub llm: bool,
    #[serde(default)]
    pub greeting: Expect,
    pub steps: Vec<Step>,
}

/// One caller input and what must follow.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Step {
    pub say: Option<String>,
    pub press: Option<String>,
    pub silence: bool,
    /// Scripted LLM replies for this step (opaque here; handed to the hook).
    pub llm: Vec<Value>,
    pub expect: Expect,
}

/// Expectations on one reply.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Expect {
    pub node: Option<String>,
    pub reply_contains: Vec<String>,
    pub reply_not_contains: Vec<String>,
    pub tool: Option<String>,
    pub tool_status: Option<String>,
    pub tool_args: Option<serde_json::Map<String, Value>>,
    pub refusal: Option<String>,
    pub transfer: Option<String>,
    pub ended: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TestFile {
    Many { tests: Vec<ConversationTest> },
    One(Box<ConversationTest>),
}

/// Why a test file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Yaml {
        path: std::path::PathBuf,
        source: serde_norway::Error,
    },
}

/// The outcome of one test.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TestReport {
    pub name: String,
    /// Empty when the test passed.
    pub failures: Vec<String>,
}

impl TestReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Reads the tests in one YAML file.
pub fn load_tests(path: &Path) -> Result<Vec<ConversationTest>, SimError> {
    let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file: TestFile = serde_norway::from_str(&text).map_err(|source| SimError::Yaml {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(match file {
        TestFile::Many { tests } => tests,
        TestFile::One(t) => vec![*t],
    })
}

/// Runs one test. `before_step` receives each step's `llm` replies before the input is sent.
pub async fn run_test(
    test: &ConversationTest,
    flows: &FlowRegistry,
    llm: Option<LlmClient>,
    mut before_step: impl FnMut(&[Value]),
) -> TestReport {
    let mut failures = Vec::new();
    let Some(flow) = flows.get(&test.flow) else {
        return TestReport {
            name: test.name.clone(),
            failures: vec![format!("unknown flow `{}`", test.flow)],
        };
    };
    let llm = if test.llm { llm } else { None };
    if test.llm && llm.is_none() {
        failures.push("test needs an LLM and none was given".to_string());
    }
    let business_open = match (test.business_open, test.at.as_deref()) {
        (Some(_), Some(_)) => {
            failures.push("give either business_open or at, not both".to_string());
            true
        }
        (Some(open), None) => open,
        (None, None) => true,
        (None, Some(at)) => match at.parse::<jiff::Timestamp>() {
            Ok(ts) => flow.business_open(ts.into()),
            Err(e) => {
                failures.push(format!("at: {at:?} is not an RFC 3339 time: {e}"));
                true
            }
        },
    };
    let mut sim = Simulator::new(
        flow,
        llm,
        test.caller.as_deref(),
        business_open,
        test.caller_id_trusted,
    );
    let greeting = sim.start().await;
    check(&test.greeting, &greeting, &sim, 0, &mut failures, &mut 0);
    let mut seen_events = sim.host().events().len();
    for (i, step) in test.steps.iter().enumerate() {
        before_step(&step.llm);
        let input = match (&step.say, &step.press, step.silence) {
            (Some(t), None, false) => CallerInput::Speech(t.clone()),
            (None, Some(k), false) if k.chars().count() == 1 => {
                CallerInput::Dtmf(k.chars().next().unwrap_or('#'))
            }
            (None, None, true) => CallerInput::Silence,
            _ => {
                failures.push(format!(
                    "step {}: give exactly one of say, press (one key) or silence",
                    i + 1
                ));
                continue;
            }
        };
        let reply = sim.send(input).await;
        check(
            &step.expect,
            &reply,
            &sim,
            i + 1,
            &mut failures,
            &mut seen_events,
        );
    }
    TestReport {
        name: test.name.clone(),
        failures,
    }
}

fn check(
    exp: &Expect,
    reply: &SimReply,
    sim: &Simulator,
    step: usize,
    failures: &mut Vec<String>,
    seen_events: &mut usize,
) {
    let text = reply.text();
    let lower = text.to_lowercase();
    let mut fail = |what: String| failures.push(format!("step {step}: {what} (reply: {text:?})"));
    if let Some(n) = &exp.node
        && sim.engine().node() != n
    {
        fail(format!("expected node `{n}`, at `{}`", sim.engine().node()));
    }
    for c in &exp.reply_contains {
        if !lower.contains(&c.to_lowercase()) {
            fail(format!("reply lacks {c:?}"));
        }
    }
    for c in &exp.reply_not_contains {
        if lower.contains(&c.to_lowercase()) {
            fail(format!("reply contains {c:?}"));
        }
    }
    let tools = reply
        .summary
        .as_ref()
        .map(|s| s.tools.as_slice())
        .unwrap_or_default();
    if let Some(name) = &exp.tool {
        let call = tools.iter().find(|t| &t.name == name);
        match call {
            None => fail(format!("tool `{name}` not called")),
            Some(call) => {
                if let Some(st) = &exp.tool_status
                    && &call.status != st
                {
                    fail(format!(
                        "tool `{name}` status `{}`, expected `{st}`",
                        call.status
                    ));
                }
                for (k, v) in exp.tool_args.iter().flatten() {
                    if call.arguments.get(k) != Some(v) {
                        fail(format!(
                            "tool `{name}` argument `{k}` is {:?}, expected {v}",
                            call.arguments.get(k)
                        ));
                    }
                }
            }
        }
    }
    let events = sim.host().events();
    let new_events = &events[(*seen_events).min(events.len())..];
    if let Some(reason) = &exp.refusal {
        let found = new_events.iter().any(|e| {
            matches!(e, CallEvent::Refused { reason: r, .. }
                if serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_string)).as_deref() == Some(reason.as_str()))
        });
        if !found {
            fail(format!("no `{reason}` refusal recorded"));
        }
    }
    *seen_events = events.len();
    if let Some(dest) = &exp.transfer
        && !reply
            .actions
            .iter()
            .any(|a| matches!(a, CallAction::Transfer { name, .. } if name == dest))
    {
        fail(format!("no transfer to `{dest}`"));
    }
    if let Some(reason) = &exp.ended
        && !reply
            .actions
            .iter()
            .any(|a| matches!(a, CallAction::EndCall { reason: r } if r == reason))
    {
        fail(format!("call not ended with `{reason}`"));
    }
}
