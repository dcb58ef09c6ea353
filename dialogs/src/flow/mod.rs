//! Flow definitions: the declarative description of what the agent says and may do on a call.
//!
//! A flow is a TOML file (see `dialogs/FLOWS.md` and `dialogs/flow.schema.json`): metadata,
//! an initial node, nodes with instructions, an opener, scripted intents, functions (tools)
//! and transitions, pre/post actions, and `{{ var }}` templates filled from call state.
//!
//! This module only describes and validates flows; running them is [`crate::engine`]'s job.
//! A loaded [`Flow`] is immutable and shared as `Arc<Flow>`: a running call keeps the version
//! it started with while [`FlowRegistry`] hands newer versions to new calls.

mod hours;
mod load;
mod registry;
pub(crate) mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

pub use hours::{BusinessHours, BusinessHoursSpec};
pub use load::{FlowError, FlowErrorKind, FlowErrors, parse_flow};
pub use registry::{DirCheck, FlowRegistry, RegistryError};

/// A validated flow, ready to run. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Flow {
    spec: FlowSpec,
    path: PathBuf,
    version_hash: String,
    hours: Option<BusinessHours>,
}

impl Flow {
    /// Loads and validates one flow file.
    pub fn load(path: &Path) -> Result<Flow, FlowErrors> {
        load::load_file(path)
    }

    /// The flow's name (`[flow] name`).
    pub fn name(&self) -> &str {
        &self.spec.flow.name
    }

    /// Hex SHA-256 of the file content: the version stored with each call.
    pub fn version_hash(&self) -> &str {
        &self.version_hash
    }

    /// The file this flow was loaded from (or the label given to [`parse_flow`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Metadata and flow-wide settings.
    pub fn meta(&self) -> &FlowMeta {
        &self.spec.flow
    }

    /// The whole parsed file.
    pub fn spec(&self) -> &FlowSpec {
        &self.spec
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.spec.nodes.get(name)
    }

    /// The name of the node a call starts in.
    pub fn initial_node(&self) -> &str {
        &self.spec.flow.initial_node
    }

    /// Whether the business is open at `now` by the flow's `[business_hours]` (in the flow's
    /// time zone, holidays closed). A flow without `[business_hours]` is always open.
    ///
    /// The call set-up passes the result to [`crate::CallSetup::with_business_open`]; the
    /// `transfer` tool answers `closed` when it is false (unless
    /// `guardrails.transfer_outside_hours`).
    pub fn business_open(&self, now: SystemTime) -> bool {
        self.hours.as_ref().is_none_or(|h| h.is_open(now))
    }

    /// The validated `[business_hours]`, if the flow has them.
    pub fn business_hours(&self) -> Option<&BusinessHours> {
        self.hours.as_ref()
    }

    /// Functions callable in `node`: the node's own first, then the global ones.
    pub fn functions_for<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = &'a FunctionDef> {
        node.functions.iter().chain(self.spec.functions.iter())
    }

    /// Looks up a function callable in `node` by name.
    pub fn function<'a>(&'a self, node: &'a Node, name: &str) -> Option<&'a FunctionDef> {
        self.functions_for(node).find(|f| f.name == name)
    }

    pub(crate) fn from_parts(
        spec: FlowSpec,
        path: PathBuf,
        version_hash: String,
        hours: Option<BusinessHours>,
    ) -> Flow {
        Flow {
            spec,
            path,
            version_hash,
            hours,
        }
    }
}

/// The file as written (after defaults). Field docs are the format's reference.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FlowSpec {
    /// `[flow]`: metadata and flow-wide settings.
    pub flow: FlowMeta,
    /// `[variables]`: template variables with their default values (e.g. `company`).
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// `[messages]`: built-in lines (fallback, reprompt, refusal…).
    #[serde(default)]
    pub messages: Messages,
    /// `[guardrails]`: what tools may do for whom.
    #[serde(default)]
    pub guardrails: Guardrails,
    /// `[recording]`: whether calls on this flow are recorded, and the consent prompt.
    #[serde(default)]
    pub recording: RecordingSpec,
    /// `[business_hours]`: when transfers reach a person; absent means always open.
    #[serde(default)]
    pub business_hours: Option<BusinessHoursSpec>,
    /// `[transfers]`: the allow-list of transfer destinations, name → number or SIP URI.
    #[serde(default)]
    pub transfers: BTreeMap<String, String>,
    /// `[[functions]]`: global functions, callable from every node.
    #[serde(default)]
    pub functions: Vec<FunctionDef>,
    /// `[[intents]]`: global scripted intents, tried after the current node's own.
    #[serde(default)]
    pub intents: Vec<Intent>,
    /// `[nodes.NAME]`: the flow's states.
    pub nodes: BTreeMap<String, Node>,
}

/// `[flow]`: metadata and flow-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FlowMeta {
    pub name: String,
    /// A human label; the content hash is the version that matters.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// BCP 47 language tag, e.g. `en` or `en-US`.
    #[serde(default = "default_language")]
    pub language: String,
    /// TTS voice name, passed through to the speech layer.
    #[serde(default)]
    pub voice: Option<String>,
    pub initial_node: String,
    /// The agent's role for the LLM (system prompt head, templated).
    #[serde(default)]
    pub role: Option<String>,
    /// At most this many LLM tool rounds per caller turn.
    #[serde(default = "default_max_tool_rounds")]
    pub max_tool_rounds: u8,
    /// A tool call that takes longer is abandoned and reported to the LLM as timed out.
    #[serde(default = "default_tool_timeout_ms")]
    pub tool_timeout_ms: u64,
    /// What to do when the LLM fails or times out; default: say `messages.fallback`.
    #[serde(default)]
    pub on_llm_error: Vec<Action>,
}

/// `[messages]`: built-in lines, all templated and all optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Messages {
    /// Spoken when the LLM fails or times out.
    pub fallback: String,
    /// Scripted mode: no intent matched and the node has no `fallback`.
    pub not_understood: String,
    /// Said once after `call.silence_timeout_secs` of silence.
    pub reprompt: String,
    /// Said after a second silence, before the call ends.
    pub silence_goodbye: String,
    /// Said when a guardrail refuses a request.
    pub refusal: String,
    /// Said when the SIP layer reports a failed transfer.
    pub transfer_failed: String,
    /// Left on an answering machine (outbound calls, after the beep); empty: hang up without
    /// a message.
    pub voicemail: String,
}

impl Default for Messages {
    fn default() -> Self {
        Messages {
            fallback: "Sorry, I'm having a little trouble right now. Could you say that again?"
                .into(),
            not_understood: "Sorry, I didn't quite get that. Could you put it another way?".into(),
            reprompt: "Are you still there?".into(),
            silence_goodbye: "I can't hear anything, so I'll end the call now. Goodbye.".into(),
            refusal: "I'm sorry, I can't help with that on this call.".into(),
            transfer_failed: "I'm sorry, I couldn't connect you. I can take a message instead."
                .into(),
            voicemail:
                "Hello, we tried to reach you and will call again later. Thank you. Goodbye.".into(),
        }
    }
}

/// `[recording]`: calls on this flow are recorded (both channels, see the daemon's
/// `[recording]` settings for where and for how long), after the consent prompt is said first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RecordingSpec {
    pub enabled: bool,
    /// Said before the opener (templated); required when `enabled`.
    pub consent: String,
}

impl Default for RecordingSpec {
    fn default() -> Self {
        RecordingSpec {
            enabled: false,
            consent: "This call is recorded for quality and training.".into(),
        }
    }
}

/// `[guardrails]`: limits the tool layer enforces whatever the caller or the LLM asks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Guardrails {
    /// Before data tools answer, the caller must pass this check (`verify_identity` tool).
    pub verify: Verification,
    /// Numbers a callback may go to besides the caller's own number.
    pub callback_allow: Vec<String>,
    /// Allow transfers when the host says the business is closed.
    pub transfer_outside_hours: bool,
}

/// Identity verification required before data tools answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verification {
    /// Caller-ID match is enough.
    #[default]
    None,
    /// The caller must also say the postal code on file.
    PostalCode,
    /// A trusted caller ID ([`crate::CallSetup::caller_id_trusted`]) is enough; any other
    /// caller must say the postal code on file. Caller IDs are easy to forge on SIP, so this is
    /// what a flow reading account data to callers should use.
    PostalCodeUnlessTrusted,
}

impl Verification {
    /// Whether data tools need `verify_identity` first on a call whose caller ID is
    /// (`caller_id_trusted`) or is not trusted.
    pub fn required(self, caller_id_trusted: bool) -> bool {
        match self {
            Verification::None => false,
            Verification::PostalCode => true,
            Verification::PostalCodeUnlessTrusted => !caller_id_trusted,
        }
    }
}

/// `[nodes.NAME]`: one state of the flow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Node {
    /// Instructions for the LLM while in this node (templated).
    #[serde(default)]
    pub task: Option<String>,
    /// Spoken once each time the node is entered (templated).
    #[serde(default)]
    pub opener: Option<String>,
    /// What happens to the LLM history on entry.
    #[serde(default)]
    pub context: ContextStrategy,
    /// How the caller's turn ends while in this node.
    #[serde(default)]
    pub endpointing: Endpointing,
    /// Whether caller speech may interrupt the agent here.
    #[serde(default = "default_true")]
    pub barge_in: bool,
    /// Overrides `messages.reprompt` in this node.
    #[serde(default)]
    pub reprompt: Option<String>,
    /// Scripted mode: said when no intent matches (overrides `messages.not_understood`).
    #[serde(default)]
    pub fallback: Option<String>,
    /// Run on entry, before the opener.
    #[serde(default)]
    pub pre_actions: Vec<Action>,
    /// Run on entry, after the opener.
    #[serde(default)]
    pub post_actions: Vec<Action>,
    #[serde(default)]
    pub functions: Vec<FunctionDef>,
    #[serde(default)]
    pub intents: Vec<Intent>,
}

/// History handling when a node is entered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContextStrategy {
    /// Keep the conversation so far.
    #[default]
    Append,
    /// Start the LLM history afresh (the caller's facts stay in call state).
    Reset,
}

/// How the agent decides the caller has finished a turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Endpointing {
    /// Free speech, ended by silence.
    #[default]
    Free,
    /// DTMF or spoken digits.
    Digits,
    /// A short yes/no answer: end the turn early.
    YesNo,
}

/// A function (tool) the LLM or a scripted intent may call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FunctionDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The built-in tool that implements it; defaults to the one named like the function, or
    /// none (a pure transition function).
    #[serde(default)]
    pub tool: Option<ToolKind>,
    /// JSON Schema of the arguments (`type = "object"`); defaults to the tool's own.
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
    /// Where the flow goes after the call.
    #[serde(default)]
    pub transition: Option<TransitionSpec>,
}

impl FunctionDef {
    /// The built-in tool behind this function, if any.
    pub fn tool_kind(&self) -> Option<ToolKind> {
        self.tool.or_else(|| ToolKind::from_name(&self.name))
    }

    /// The JSON Schema the arguments are offered with and checked against: `parameters` when
    /// given, else the built-in tool's own (an empty object schema for pure transitions).
    pub fn parameters_schema(&self) -> serde_json::Value {
        self.parameters
            .clone()
            .unwrap_or_else(|| crate::tools::tool_parameters(self.tool_kind()))
    }
}

/// Built-in tools. Their guardrails live in [`crate::tools`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolKind {
    LookupCustomer,
    GetBalance,
    ListInvoices,
    VerifyIdentity,
    TakeMessage,
    Transfer,
    ScheduleCallback,
    SendPaymentLink,
    RecordOutcome,
    EndCall,
    AddToDnc,
    SendDtmf,
}

impl ToolKind {
    /// All built-in tools.
    pub const ALL: [ToolKind; 12] = [
        ToolKind::LookupCustomer,
        ToolKind::GetBalance,
        ToolKind::ListInvoices,
        ToolKind::VerifyIdentity,
        ToolKind::TakeMessage,
        ToolKind::Transfer,
        ToolKind::ScheduleCallback,
        ToolKind::SendPaymentLink,
        ToolKind::RecordOutcome,
        ToolKind::EndCall,
        ToolKind::AddToDnc,
        ToolKind::SendDtmf,
    ];

    /// The snake_case name used in flow files.
    pub fn name(self) -> &'static str {
        match self {
            ToolKind::LookupCustomer => "lookup_customer",
            ToolKind::GetBalance => "get_balance",
            ToolKind::ListInvoices => "list_invoices",
            ToolKind::VerifyIdentity => "verify_identity",
            ToolKind::TakeMessage => "take_message",
            ToolKind::Transfer => "transfer",
            ToolKind::ScheduleCallback => "schedule_callback",
            ToolKind::SendPaymentLink => "send_payment_link",
            ToolKind::RecordOutcome => "record_outcome",
            ToolKind::EndCall => "end_call",
            ToolKind::AddToDnc => "add_to_dnc",
            ToolKind::SendDtmf => "send_dtmf",
        }
    }

    /// The built-in tool with this name.
    pub fn from_name(name: &str) -> Option<ToolKind> {
        ToolKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// `transition = "node"` or `transition = { on = "status", cases = { ok = "a" }, default = "b" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum TransitionSpec {
    /// Always go to this node.
    To(String),
    /// Go to the node named by the tool result's field `on`.
    Branch(Branch),
}

/// A transition chosen by one field of the tool result.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Branch {
    /// Field of the tool result (e.g. `status`); its string form picks the case.
    pub on: String,
    pub cases: BTreeMap<String, String>,
    /// Used when no case matches; without it the flow stays put.
    #[serde(default)]
    pub default: Option<String>,
}

impl TransitionSpec {
    /// The target node for a tool result.
    pub fn target(&self, result: &serde_json::Value) -> Option<&str> {
        match self {
            TransitionSpec::To(node) => Some(node),
            TransitionSpec::Branch(b) => {
                let key = match result.get(&b.on) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Null) | None => String::new(),
                    Some(v) => v.to_string(),
                };
                b.cases.get(&key).or(b.default.as_ref()).map(String::as_str)
            }
        }
    }

    /// Every node this transition may lead to.
    pub fn targets(&self) -> Vec<&str> {
        match self {
            TransitionSpec::To(n) => vec![n.as_str()],
            TransitionSpec::Branch(b) => b
                .cases
                .values()
                .chain(b.default.iter())
                .map(String::as_str)
                .collect(),
        }
    }
}

/// A pre/post action, written as a one-key inline table: `{ say = "…" }`,
/// `{ end_call = "reason" }`, `{ transfer = "front_desk" }`, `{ set = { var = "x", value = "…" } }`,
/// `{ outcome = "promised_to_pay" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Action {
    /// Speak a line (templated).
    Say(String),
    /// End the call after everything before it is played; the value is the end reason.
    EndCall(String),
    /// Transfer to a destination named in `[transfers]`.
    Transfer(String),
    /// Set a template variable.
    Set(SetVar),
    /// Record a call outcome (a call event).
    Outcome(String),
}

/// `{ set = { var = "x", value = "{{ template }}" } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SetVar {
    pub var: String,
    pub value: String,
}

/// A scripted rule: when the caller's words or keys match, call/say/go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Intent {
    /// Any of these whole words (case-insensitive).
    pub keywords: Vec<String>,
    /// Any of these phrases, matched inside the normalised utterance.
    pub phrases: Vec<String>,
    /// Any of these DTMF keys.
    pub dtmf: Vec<String>,
    /// Built-in word lists for yes/no answers.
    pub when: Option<YesNo>,
    /// Matches anything (a node's catch-all, e.g. "leave your message").
    pub any: bool,
    /// A function available in the node to call (args below, templated).
    pub call: Option<String>,
    pub args: serde_json::Map<String, serde_json::Value>,
    /// Spoken after the call and before any transition's opener (templated).
    pub say: Option<String>,
    /// Node to go to (a function's transition wins when both are given).
    pub goto: Option<String>,
    /// Actions run after `say`.
    pub actions: Vec<Action>,
}

/// `when = "yes"` / `when = "no"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum YesNo {
    Yes,
    No,
}

fn default_language() -> String {
    "en".into()
}
fn default_max_tool_rounds() -> u8 {
    3
}
fn default_tool_timeout_ms() -> u64 {
    4000
}
fn default_true() -> bool {
    true
}
