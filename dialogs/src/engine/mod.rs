//! The flow engine: one [`Engine`] per call, driven by the call actor.
//!
//! The actor calls [`Engine::start`] once for the greeting, then [`Engine::turn`] per caller
//! turn, and consumes the returned [`ReplyStream`] inside its `select!` loop. Sentences come
//! out as soon as they are complete so TTS can start early.
//!
//! ## Cancel safety
//! The actor may drop a stream at any point (barge-in, hang-up). Guarantees:
//! - State changes happen in synchronous steps between awaits, never half-way.
//! - Tools run in a spawned task; their results, the node transition they cause and their
//!   effects are committed together. If the stream is dropped while a tool runs, the tool
//!   still completes and the commit happens at the start of the next `start`/`turn`/
//!   `transfer_failed` call: the flow is never stuck and never half-moved.
//! - A sentence enters the history as it is handed out, so history never holds words that
//!   were not at least sent to TTS; [`Engine::interrupted`] trims it to the words played.
//! - Lines still queued when a stream is dropped are discarded (an opener is spoken at most
//!   once per node entry); queued actions (end call, transfer) are kept and come out first
//!   on the next stream.

mod scripted;
pub(crate) mod sentences;
mod stream;

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use serde::Serialize;

use crate::flow::template;
use crate::flow::{Action, ContextStrategy, Endpointing, Flow, Intent, TransitionSpec};
use crate::llm::{ChatMessage, LlmClient, ToolCall};
use crate::tools::{CallEvent, CallServices, Customer};
use crate::tools::{Effect, ToolContext, ToolOutcome};

/// What the caller did this turn.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallerInput {
    /// A final transcript of one caller utterance.
    Speech(String),
    /// One DTMF key (`0-9`, `*`, `#`, `A-D`).
    Dtmf(char),
    /// No caller speech for `call.silence_timeout_secs`.
    Silence,
}

/// One item of a reply stream.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ReplyEvent {
    /// A sentence to speak.
    Sentence(String),
    /// Something the call must do after the sentences before it are played.
    Action(CallAction),
    /// The turn is over; always the last item.
    Done(TurnSummary),
}

/// A call-level action requested by the flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CallAction {
    /// Hang up once everything before it has been played. `reason` is a stable code
    /// (`flow_completed`, `silence_timeout`, or one a flow names).
    EndCall { reason: String },
    /// Transfer to an allow-listed destination (`to` is the number or SIP URI, `name` its
    /// key in the flow's `[transfers]`). Report failure with [`Engine::transfer_failed`].
    Transfer { to: String, name: String },
    /// Send these DTMF keys (`0-9`, `*`, `#`, `A-D`) to the other side once the sentences before
    /// it have been played: navigating a callee's phone menu.
    SendDtmf { digits: String },
}

/// Token usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Estimated completion tokens of replies cut off by barge-in (never heard).
    pub cut_off_completion_tokens: u32,
}

impl Usage {
    fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cut_off_completion_tokens += other.cut_off_completion_tokens;
    }
}

/// How the reply was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReplyMode {
    Scripted,
    Llm,
    /// The LLM failed or timed out and the flow's fallback was used.
    Fallback,
    /// Nothing to do (call already ended, empty input, repeated `start`).
    Idle,
}

/// One tool call, for logs and call events.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ToolCallSummary {
    pub name: String,
    pub arguments: serde_json::Value,
    /// The result's `status` (`ok`, `refused`, `timeout`, `not_found`…).
    pub status: String,
}

/// What a turn did; the last event of every stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TurnSummary {
    /// The node after the turn.
    pub node: String,
    /// The node before the turn.
    pub node_before: String,
    pub mode: ReplyMode,
    pub usage: Usage,
    /// Tools committed during this call (including those of an interrupted previous turn).
    pub tools: Vec<ToolCallSummary>,
    /// Set when the LLM failed (`timeout`, `api_500`…).
    pub llm_error: Option<String>,
    /// Set when the call is ending (the reason of the `EndCall` action).
    pub ended: Option<String>,
}

/// Per-node turn settings for the actor's endpointing and barge-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TurnSettings {
    pub endpointing: Endpointing,
    pub barge_in: bool,
}

impl TurnSettings {
    /// Settings as a node would give them (for callers that simulate the engine).
    pub fn new(endpointing: Endpointing, barge_in: bool) -> TurnSettings {
        TurnSettings {
            endpointing,
            barge_in,
        }
    }
}

impl TurnSummary {
    /// A summary without tools or errors (for callers that simulate the engine).
    pub fn new(node_before: &str, node: &str, mode: ReplyMode, usage: Usage) -> TurnSummary {
        TurnSummary {
            node: node.to_owned(),
            node_before: node_before.to_owned(),
            mode,
            usage,
            tools: Vec::new(),
            llm_error: None,
            ended: None,
        }
    }
}

/// A stream of reply events borrowing the engine; drop it to interrupt the turn.
pub type ReplyStream<'a> = Pin<Box<dyn Stream<Item = ReplyEvent> + Send + 'a>>;

/// Facts known when the call starts.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallSetup {
    /// Caller ID in E.164, if presented.
    pub caller_number: Option<String>,
    /// The caller, identified by caller ID before answering (see [`crate::identify_caller`]).
    pub customer: Option<Customer>,
    /// Whether the business is open now (the agent knows the hours and the time zone).
    pub business_open: bool,
    /// The caller ID comes from a trunk the business trusts to pass it unforged (a trunk's
    /// `trusted_caller_id`): flows with `verify = "postal_code_unless_trusted"` then treat a
    /// caller-ID match as verified.
    pub caller_id_trusted: bool,
    /// Extra template variables (override the flow's `[variables]`).
    pub vars: BTreeMap<String, String>,
}

impl CallSetup {
    /// An unknown caller while the business is open.
    pub fn new(caller_number: Option<&str>) -> CallSetup {
        CallSetup {
            caller_number: caller_number.map(str::to_string),
            customer: None,
            business_open: true,
            caller_id_trusted: false,
            vars: BTreeMap::new(),
        }
    }

    /// Sets whether the caller ID is trusted (see [`CallSetup::caller_id_trusted`]).
    pub fn with_caller_id_trusted(mut self, trusted: bool) -> CallSetup {
        self.caller_id_trusted = trusted;
        self
    }

    /// Sets the identified customer.
    pub fn with_customer(mut self, customer: Option<Customer>) -> CallSetup {
        self.customer = customer;
        self
    }

    /// Sets whether the business is open.
    pub fn with_business_open(mut self, open: bool) -> CallSetup {
        self.business_open = open;
        self
    }
}

/// Call state the tools and templates read.
#[derive(Debug, Clone)]
struct CallState {
    caller_number: Option<String>,
    customer: Option<Customer>,
    verified: bool,
    verify_failures: u8,
    caller_id_trusted: bool,
    business_open: bool,
    vars: BTreeMap<String, String>,
}

/// One call's dialog: flow position, history, call state.
pub struct Engine {
    flow: Arc<Flow>,
    host: Arc<dyn CallServices>,
    llm: Option<LlmClient>,
    state: CallState,
    node: String,
    history: Vec<ChatMessage>,
    started: bool,
    ended: Option<String>,
    silences: u8,
    inflight: Option<Inflight>,
    outbox: VecDeque<Out>,
    /// History index of the assistant message receiving this turn's sentences.
    cur_msg: Option<usize>,
    /// Assistant messages holding text spoken in the last turn (for `interrupted`).
    turn_msgs: Vec<usize>,
    turn: TurnAcc,
    usage: Usage,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("flow", &self.flow.name())
            .field("node", &self.node)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A new dialog for one call. `llm == None` runs the flow in scripted mode.
    pub fn new(
        flow: Arc<Flow>,
        host: Arc<dyn CallServices>,
        llm: Option<LlmClient>,
        setup: CallSetup,
    ) -> Engine {
        let node = flow.initial_node().to_string();
        Engine {
            flow,
            host,
            llm,
            state: CallState {
                caller_number: setup.caller_number,
                customer: setup.customer,
                verified: false,
                verify_failures: 0,
                caller_id_trusted: setup.caller_id_trusted,
                business_open: setup.business_open,
                vars: setup.vars,
            },
            node,
            history: Vec::new(),
            started: false,
            ended: None,
            silences: 0,
            inflight: None,
            outbox: VecDeque::new(),
            cur_msg: None,
            turn_msgs: Vec::new(),
            turn: TurnAcc::default(),
            usage: Usage::default(),
        }
    }

    /// The greeting: the initial node's pre-actions, opener and post-actions (or an LLM
    /// greeting when the node has no opener). A second call yields only `Done`.
    pub fn start(&mut self) -> ReplyStream<'_> {
        Box::pin(self.start_stream())
    }

    /// One caller turn.
    pub fn turn(&mut self, input: CallerInput) -> ReplyStream<'_> {
        Box::pin(self.turn_stream(input))
    }

    /// The SIP layer could not complete a transfer: say so and stay in the flow.
    pub fn transfer_failed(&mut self) -> ReplyStream<'_> {
        Box::pin(self.transfer_failed_stream())
    }

    /// An answering machine took the call: the flow's `messages.voicemail`, then the end of
    /// the call (`EndCall { reason: "voicemail" }`).
    pub fn voicemail(&mut self) -> ReplyStream<'_> {
        Box::pin(self.voicemail_stream())
    }

    /// Playback was cut off: keep only `spoken_prefix` (the text actually played, as the
    /// concatenation of the sentences heard, possibly cut mid-sentence) of the last reply.
    /// Returns the estimated completion tokens that were never heard.
    pub fn interrupted(&mut self, spoken_prefix: &str) -> u32 {
        let mut budget = spoken_prefix.split_whitespace().count();
        let mut total_words = 0usize;
        let mut kept_words = 0usize;
        for &idx in &self.turn_msgs {
            let Some(ChatMessage::Assistant { text, .. }) = self.history.get_mut(idx) else {
                continue;
            };
            let words: Vec<&str> = text.split_whitespace().collect();
            total_words += words.len();
            let keep = budget.min(words.len());
            budget -= keep;
            kept_words += keep;
            if keep < words.len() {
                *text = words[..keep].join(" ");
            }
        }
        let cut = if total_words == 0 || self.turn.llm_completion_tokens == 0 {
            0
        } else {
            let unheard = (total_words - kept_words) as u64;
            ((self.turn.llm_completion_tokens as u64 * unheard) / total_words as u64) as u32
        };
        self.usage.cut_off_completion_tokens += cut;
        // Only once per turn: a second call must not trim or count again.
        self.turn_msgs.clear();
        self.turn.llm_completion_tokens = 0;
        cut
    }

    /// The current node.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The flow this call runs (the version it started with).
    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    /// Endpointing and barge-in for the current node.
    pub fn turn_settings(&self) -> TurnSettings {
        let node = self.flow.node(&self.node);
        TurnSettings {
            endpointing: node.map(|n| n.endpointing).unwrap_or_default(),
            barge_in: node.is_none_or(|n| n.barge_in),
        }
    }

    /// Set once the flow has asked to end the call.
    pub fn ended(&self) -> Option<&str> {
        self.ended.as_deref()
    }

    /// Whether a tool call from an interrupted turn is still waiting to be committed.
    pub fn has_pending_tool(&self) -> bool {
        self.inflight.is_some()
    }

    /// Usage over the whole call.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The identified caller, if any.
    pub fn customer(&self) -> Option<&Customer> {
        self.state.customer.as_ref()
    }

    /// A template variable as the flow would see it now.
    pub fn var(&self, name: &str) -> Option<String> {
        self.lookup_var(name)
    }

    /// The conversation so far as (role, text) pairs, for transcripts and tests.
    pub fn transcript(&self) -> Vec<(&'static str, String)> {
        self.history
            .iter()
            .filter_map(|m| match m {
                ChatMessage::User(t) => Some(("caller", t.clone())),
                ChatMessage::Assistant { text, .. } if !text.is_empty() => {
                    Some(("agent", text.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

/// Per-turn accumulators.
#[derive(Debug, Default)]
struct TurnAcc {
    node_before: String,
    usage: Usage,
    tools: Vec<ToolCallSummary>,
    llm_error: Option<String>,
    mode: Option<ReplyMode>,
    llm_completion_tokens: u32,
    spoken_any: bool,
    leak_refused: bool,
}

/// Output queued by a commit, handed out by the stream in order.
#[derive(Debug, Clone)]
enum Out {
    Say(String),
    Action(CallAction),
}

/// A function call planned for the tool task.
#[derive(Debug, Clone)]
struct PlannedCall {
    call: ToolCall,
    kind: Option<crate::flow::ToolKind>,
    known: bool,
    /// The function's JSON Schema; the arguments are checked against it before the tool runs.
    parameters: serde_json::Value,
    transition: Option<TransitionSpec>,
}

/// Tool calls running in a spawned task, committed when they finish.
struct Inflight {
    handle: tokio::task::JoinHandle<Vec<ToolOutcome>>,
    calls: Vec<PlannedCall>,
    origin: Origin,
}

enum Origin {
    /// LLM tool calls: the assistant message at this index gets the `tool_calls`.
    Llm { assistant_msg: usize },
    /// A scripted intent's `call`; the rest of the intent runs at commit.
    Scripted { intent: Box<Intent> },
}

impl Engine {
    fn lookup_var(&self, name: &str) -> Option<String> {
        if let Some(v) = self.state.vars.get(name) {
            return Some(v.clone());
        }
        let c = self.state.customer.as_ref();
        let builtin = match name {
            "caller_number" => self.state.caller_number.clone(),
            "caller_name" => c.map(|c| c.name.clone()),
            "caller_company" => c.and_then(|c| c.company.clone()),
            "customer_id_known" => Some(if c.is_some() { "yes" } else { "no" }.to_string()),
            "balance" => c.map(|c| crate::tools::format_money(c.balance_minor, &c.currency)),
            "business_open" => Some(
                if self.state.business_open {
                    "yes"
                } else {
                    "no"
                }
                .to_string(),
            ),
            "flow_name" => Some(self.flow.name().to_string()),
            _ => None,
        };
        builtin.or_else(|| {
            self.flow.spec().variables.get(name).map(|t| {
                // Flow variables may reference builtins (`greeting = "Hi {{ caller_name }}"`);
                // one level only, so a self-reference cannot loop.
                template::render(t, |n| {
                    if n == name {
                        None
                    } else {
                        self.lookup_builtin_only(n)
                    }
                })
            })
        })
    }

    fn lookup_builtin_only(&self, name: &str) -> Option<String> {
        if self.flow.spec().variables.contains_key(name) && !self.state.vars.contains_key(name) {
            return self.flow.spec().variables.get(name).cloned();
        }
        self.lookup_var(name)
    }

    fn render(&self, tpl: &str) -> String {
        template::render(tpl, |n| self.lookup_var(n))
    }

    fn tool_context(&self) -> ToolContext {
        ToolContext {
            host: self.host.clone(),
            flow: self.flow.clone(),
            caller_number: self.state.caller_number.clone(),
            customer: self.state.customer.clone(),
            verified: self.state.verified,
            verify_failures: self.state.verify_failures,
            caller_id_trusted: self.state.caller_id_trusted,
            business_open: self.state.business_open,
        }
    }

    fn begin_turn(&mut self) {
        self.turn = TurnAcc {
            node_before: self.node.clone(),
            ..TurnAcc::default()
        };
        self.cur_msg = None;
        self.turn_msgs.clear();
    }

    fn summary(&mut self) -> TurnSummary {
        let mode = self.turn.mode.unwrap_or(ReplyMode::Idle);
        self.usage.add(self.turn.usage);
        TurnSummary {
            node: self.node.clone(),
            node_before: self.turn.node_before.clone(),
            mode,
            usage: self.turn.usage,
            tools: std::mem::take(&mut self.turn.tools),
            llm_error: self.turn.llm_error.take(),
            ended: self.ended.clone(),
        }
    }

    /// Records a spoken sentence in the history (before it is handed out).
    fn note_spoken(&mut self, sentence: &str) {
        if let Some(idx) = self.cur_msg
            && let Some(ChatMessage::Assistant { text, tool_calls }) = self.history.get_mut(idx)
            && tool_calls.is_empty()
        {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(sentence);
            if !self.turn_msgs.contains(&idx) {
                self.turn_msgs.push(idx);
            }
            return;
        }
        self.history.push(ChatMessage::Assistant {
            text: sentence.to_string(),
            tool_calls: Vec::new(),
        });
        let idx = self.history.len() - 1;
        self.cur_msg = Some(idx);
        self.turn_msgs.push(idx);
    }

    /// Queues a node entry: context strategy, pre-actions, opener, post-actions.
    fn enter(&mut self, target: &str) {
        let flow = self.flow.clone();
        let Some(node) = flow.node(target) else {
            // Validated at load; a missing node would be a bug, so stay put and say so in logs.
            tracing::error!(node = target, "transition to unknown node ignored");
            return;
        };
        self.node = target.to_string();
        if node.context == ContextStrategy::Reset {
            self.history.clear();
            self.cur_msg = None;
            self.turn_msgs.clear();
        }
        self.run_actions(&node.pre_actions);
        if let Some(opener) = &node.opener {
            let text = self.render(opener);
            self.outbox.push_back(Out::Say(text));
        }
        self.run_actions(&node.post_actions);
    }

    /// Applies `set` at once and queues the outputs.
    fn run_actions(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::Say(t) => {
                    let text = self.render(t);
                    self.outbox.push_back(Out::Say(text));
                }
                Action::Set(s) => {
                    let value = self.render(&s.value);
                    self.state.vars.insert(s.var.clone(), value);
                }
                Action::EndCall(reason) => {
                    self.outbox.push_back(Out::Action(CallAction::EndCall {
                        reason: reason.clone(),
                    }))
                }
                Action::Outcome(o) => self.host.record_event(CallEvent::Outcome {
                    outcome: o.clone(),
                    note: None,
                }),
                Action::Transfer(name) => {
                    if let Some(to) = self.flow.spec().transfers.get(name) {
                        self.outbox.push_back(Out::Action(CallAction::Transfer {
                            to: to.clone(),
                            name: name.clone(),
                        }));
                    }
                }
            }
        }
    }

    /// Applies finished tool calls, their effects and the transition in one step.
    fn commit(&mut self, inflight: Inflight, outcomes: Vec<ToolOutcome>) {
        let Inflight { calls, origin, .. } = inflight;
        let mut transition: Option<String> = None;
        let mut deferred = Vec::new();
        let mut results = Vec::with_capacity(calls.len());
        for (i, p) in calls.iter().enumerate() {
            let outcome = outcomes.get(i).cloned().unwrap_or_else(|| ToolOutcome {
                result: serde_json::json!({ "status": "skipped" }),
                effects: Vec::new(),
            });
            let args: serde_json::Value =
                serde_json::from_str(&p.call.arguments).unwrap_or(serde_json::Value::Null);
            let status = outcome.status_str().to_string();
            if p.known && status != "skipped" {
                self.host.record_event(CallEvent::ToolCalled {
                    tool: p.call.name.clone(),
                    status: status.clone(),
                });
            }
            self.turn.tools.push(ToolCallSummary {
                name: p.call.name.clone(),
                arguments: args,
                status,
            });
            for e in &outcome.effects {
                match e {
                    // Call actions wait until the new node's lines are queued: "Connecting
                    // you now" must be heard before the transfer.
                    Effect::Action(a) => deferred.push(Out::Action(a.clone())),
                    other => self.apply_effect(other),
                }
            }
            if transition.is_none()
                && outcome.ran()
                && let Some(t) = &p.transition
            {
                transition = t.target(&outcome.result).map(str::to_string);
            }
            results.push(outcome.result);
        }
        match origin {
            Origin::Llm { assistant_msg } => {
                if let Some(ChatMessage::Assistant { tool_calls, .. }) =
                    self.history.get_mut(assistant_msg)
                {
                    *tool_calls = calls.iter().map(|p| p.call.clone()).collect();
                }
                for (p, r) in calls.iter().zip(results) {
                    self.history.push(ChatMessage::Tool {
                        call_id: p.call.id.clone(),
                        content: r.to_string(),
                    });
                }
                // Later text goes into a new assistant message after the tool results.
                self.cur_msg = None;
                if let Some(target) = transition {
                    self.enter(&target);
                }
            }
            Origin::Scripted { intent } => self.apply_intent(&intent, transition),
        }
        self.outbox.extend(deferred);
    }

    fn apply_effect(&mut self, e: &Effect) {
        match e {
            Effect::SetCustomer(c) => self.state.customer = Some(c.clone()),
            Effect::Verified => self.state.verified = true,
            Effect::VerifyFailed => {
                self.state.verify_failures = self.state.verify_failures.saturating_add(1)
            }
            Effect::SetVar(k, v) => {
                self.state.vars.insert(k.clone(), v.clone());
            }
            Effect::Action(a) => self.outbox.push_back(Out::Action(a.clone())),
        }
    }

    /// Waits for running tools (if any) and commits them. Cancel-safe: the handle stays in
    /// `self.inflight` until the very step that commits it.
    async fn finish_inflight(&mut self) {
        let Some(inflight) = self.inflight.as_mut() else {
            return;
        };
        let outcomes = match (&mut inflight.handle).await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "tool task failed");
                Vec::new()
            }
        };
        if let Some(inflight) = self.inflight.take() {
            self.commit(inflight, outcomes);
        }
    }

    /// Brings the engine to a clean state at the start of a stream.
    async fn settle(&mut self) {
        self.finish_inflight().await;
        // Lines left from an interrupted stream were never heard; actions still stand.
        self.outbox.retain(|o| matches!(o, Out::Action(_)));
    }
}
