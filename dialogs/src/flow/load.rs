//! Loading and validating flow files. Every error names the file, the 1-based line and the
//! dotted key path (`nodes.main.functions[1].transition`), found through `toml_edit` spans.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use toml_edit::{Document, Item};

use super::hours::{self, BusinessHours};
use super::template::{self, BUILTIN_VARS};
use super::{Action, Flow, FlowSpec, FunctionDef, Intent};
use crate::tools::{check_schema, validate_arguments};

/// One problem in a flow file, shown as `file:line: key: message` (`file:line: message` when
/// the problem has no key, e.g. a TOML syntax error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub struct FlowError {
    pub file: PathBuf,
    /// 1-based; 0 when the position is unknown (e.g. the file could not be read).
    pub line: usize,
    /// Dotted key path, e.g. `nodes.main.intents[0].goto`.
    pub key: String,
    pub kind: FlowErrorKind,
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.kind)
    }
}

/// What is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowErrorKind {
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    #[error("TOML syntax: {0}")]
    Syntax(String),
    #[error("unknown key `{0}`")]
    UnknownKey(String),
    #[error("invalid value: {0}")]
    InvalidValue(String),
    #[error("transition to unknown node `{0}`")]
    DanglingTransition(String),
    #[error(
        "duplicate function name `{0}` in this node (node and global functions share one namespace)"
    )]
    DuplicateTool(String),
    #[error("unknown template variable `{0}`")]
    UnknownTemplateVariable(String),
    #[error("bad template: {0}")]
    BadTemplate(String),
    #[error("intent calls unknown function `{0}`")]
    UnknownFunction(String),
    #[error("transfer destination `{0}` is not in [transfers]")]
    UnknownTransfer(String),
    #[error("{0}")]
    UnknownTimeZone(String),
    #[error("bad business hours: {0}")]
    BadBusinessHours(String),
    #[error("bad JSON Schema: {0}")]
    BadSchema(String),
    #[error("intent arguments do not match the function's parameters: {0}")]
    BadArguments(String),
}

/// All problems found in one file (never empty).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub struct FlowErrors(pub Vec<FlowError>);

impl fmt::Display for FlowErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

pub(crate) fn load_file(path: &Path) -> Result<Flow, FlowErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        FlowErrors(vec![FlowError {
            file: path.to_path_buf(),
            line: 0,
            key: String::new(),
            kind: e.into(),
        }])
    })?;
    parse_flow(path, &text)
}

/// Parses and validates flow text; `file` only labels errors.
pub fn parse_flow(file: &Path, text: &str) -> Result<Flow, FlowErrors> {
    let err = |line, key: String, kind| FlowError {
        file: file.to_path_buf(),
        line,
        key,
        kind,
    };
    let doc = Document::parse(text.to_string()).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        FlowErrors(vec![err(
            line,
            String::new(),
            FlowErrorKind::Syntax(e.message().to_string()),
        )])
    })?;
    let spec: FlowSpec = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let msg = e.message().to_string();
        let kind = match unknown_field(&msg) {
            Some(k) => FlowErrorKind::UnknownKey(k),
            None => FlowErrorKind::InvalidValue(msg),
        };
        let path = path_at(doc.as_item(), offset).join_dotted();
        FlowErrors(vec![err(line_of(text, offset), path, kind)])
    })?;

    let mut problems = Vec::new();
    let mut validator = Validator {
        spec: &spec,
        out: &mut problems,
        hours: None,
    };
    validator.run();
    let hours = validator.hours.take();
    if !problems.is_empty() {
        return Err(FlowErrors(
            problems
                .into_iter()
                .map(|(path, kind)| {
                    let line = span_of(doc.as_item(), &path).map_or(0, |o| line_of(text, o));
                    err(line, path.join_dotted(), kind)
                })
                .collect(),
        ));
    }
    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    Ok(Flow::from_parts(spec, file.to_path_buf(), hash, hours))
}

fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Default, PartialEq)]
struct KeyPath(Vec<Seg>);

impl KeyPath {
    fn key(&self, k: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
    fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
    fn join_dotted(&self) -> String {
        let mut s = String::new();
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }
}

fn child<'a>(item: &'a Item, seg: &Seg) -> Option<(&'a Item, Option<usize>)> {
    match seg {
        Seg::Key(k) => {
            let t = item.as_table_like()?;
            let (key, it) = t.get_key_value(k)?;
            Some((it, key.span().map(|s| s.start)))
        }
        Seg::Index(i) => {
            if let Some(aot) = item.as_array_of_tables() {
                let t = aot.get(*i)?;
                // An array-of-tables element has no Item of its own; its span is its header.
                return Some((item, t.span().map(|s| s.start)));
            }
            let v = item.as_array()?.get(*i)?;
            Some((item, v.span().map(|s| s.start)))
        }
    }
}

/// Byte offset of the deepest part of `path` that exists in the document.
fn span_of(root: &Item, path: &KeyPath) -> Option<usize> {
    let mut item = root;
    let mut best = None;
    let mut segs = path.0.iter().peekable();
    while let Some(seg) = segs.next() {
        if let (Seg::Index(i), Some(aot)) = (seg, item.as_array_of_tables()) {
            let table = aot.get(*i)?;
            best = table.span().map(|s| s.start).or(best);
            // Continue inside the element table.
            let Some(Seg::Key(k)) = segs.next() else {
                return best;
            };
            let (key, it) = table.get_key_value(k)?;
            best = key.span().map(|s| s.start).or(best);
            item = it;
            continue;
        }
        if let (Seg::Index(i), Some(arr)) = (seg, item.as_array()) {
            let v = arr.get(*i)?;
            best = v.span().map(|s| s.start).or(best);
            // Values inside inline tables of the array.
            let Some(t) = v.as_inline_table() else {
                return best;
            };
            let Some(Seg::Key(k)) = segs.next() else {
                return best;
            };
            let Some((key, it)) = t.get_key_value(k) else {
                return best;
            };
            best = key.span().map(|s| s.start).or(best);
            item = it;
            continue;
        }
        let Some((next, off)) = child(item, seg) else {
            return best;
        };
        best = off.or(best);
        item = next;
    }
    best
}

/// The key path of the innermost key or value whose span contains `offset`.
fn path_at(root: &Item, offset: usize) -> KeyPath {
    fn contains(span: Option<std::ops::Range<usize>>, offset: usize) -> bool {
        span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
    }
    fn walk(item: &Item, here: &KeyPath, offset: usize, best: &mut KeyPath) {
        if let Some(t) = item.as_table_like() {
            for (k, it) in t.iter() {
                let p = here.key(k);
                let key_hit = t.key(k).is_some_and(|key| contains(key.span(), offset));
                if key_hit || contains(it.span(), offset) {
                    *best = p.clone();
                }
                walk(it, &p, offset, best);
            }
        } else if let Some(aot) = item.as_array_of_tables() {
            for (i, t) in aot.iter().enumerate() {
                let p = here.index(i);
                if contains(t.span(), offset) {
                    *best = p.clone();
                }
                for (k, it) in t.iter() {
                    let pk = p.key(k);
                    let key_hit = t.key(k).is_some_and(|key| contains(key.span(), offset));
                    if key_hit || contains(it.span(), offset) {
                        *best = pk.clone();
                    }
                    walk(it, &pk, offset, best);
                }
            }
        } else if let Some(arr) = item.as_array() {
            for (i, v) in arr.iter().enumerate() {
                if contains(v.span(), offset) {
                    *best = here.index(i);
                    if let Some(t) = v.as_inline_table() {
                        for (k, vv) in t.iter() {
                            if contains(vv.span(), offset)
                                || t.key(k).is_some_and(|key| contains(key.span(), offset))
                            {
                                *best = here.index(i).key(k);
                            }
                        }
                    }
                }
            }
        }
    }
    let mut best = KeyPath::default();
    walk(root, &KeyPath::default(), offset, &mut best);
    best
}

struct Validator<'a> {
    spec: &'a FlowSpec,
    out: &'a mut Vec<(KeyPath, FlowErrorKind)>,
    /// `[business_hours]`, compiled once it validates.
    hours: Option<BusinessHours>,
}

impl Validator<'_> {
    fn run(&mut self) {
        let spec = self.spec;
        let root = KeyPath::default();
        let known_vars = self.known_vars();
        self.node_ref(
            &spec.flow.initial_node,
            root.key("flow").key("initial_node"),
        );
        if let Some(role) = &spec.flow.role {
            self.template(role, root.key("flow").key("role"), &known_vars);
        }
        self.actions(
            &spec.flow.on_llm_error,
            &root.key("flow").key("on_llm_error"),
            &known_vars,
        );
        let m = &spec.messages;
        for (k, v) in [
            ("fallback", &m.fallback),
            ("not_understood", &m.not_understood),
            ("reprompt", &m.reprompt),
            ("silence_goodbye", &m.silence_goodbye),
            ("refusal", &m.refusal),
            ("transfer_failed", &m.transfer_failed),
            ("voicemail", &m.voicemail),
        ] {
            self.template(v, root.key("messages").key(k), &known_vars);
        }
        let consent = &spec.recording.consent;
        self.template(consent, root.key("recording").key("consent"), &known_vars);
        if spec.recording.enabled && consent.trim().is_empty() {
            self.push(
                root.key("recording").key("consent"),
                FlowErrorKind::InvalidValue(
                    "a recorded flow must tell the caller first: consent cannot be empty".into(),
                ),
            );
        }
        for (k, v) in &spec.variables {
            self.template(v, root.key("variables").key(k), &known_vars);
        }
        if let Some(h) = &spec.business_hours {
            match hours::compile(h) {
                Ok(compiled) => self.hours = Some(compiled),
                Err(problems) => {
                    for (key, msg) in problems {
                        let kind = if key == "timezone" {
                            FlowErrorKind::UnknownTimeZone(msg)
                        } else {
                            FlowErrorKind::BadBusinessHours(msg)
                        };
                        // `holidays[2]` is a key plus an index in the document.
                        let path = match key.split_once('[') {
                            Some((k, rest)) => {
                                let i = rest.trim_end_matches(']').parse().unwrap_or(0);
                                root.key("business_hours").key(k).index(i)
                            }
                            None => root.key("business_hours").key(&key),
                        };
                        self.push(path, kind);
                    }
                }
            }
        }

        let mut global_names = BTreeSet::new();
        for (i, f) in spec.functions.iter().enumerate() {
            let p = root.key("functions").index(i);
            if !global_names.insert(f.name.as_str()) {
                self.push(p.key("name"), FlowErrorKind::DuplicateTool(f.name.clone()));
            }
            self.function(f, &p);
        }
        let globals: Vec<&FunctionDef> = spec.functions.iter().collect();
        for (i, intent) in spec.intents.iter().enumerate() {
            self.intent(intent, &root.key("intents").index(i), &globals, &known_vars);
        }

        for (name, node) in &spec.nodes {
            let np = root.key("nodes").key(name);
            for (k, v) in [
                ("task", &node.task),
                ("opener", &node.opener),
                ("reprompt", &node.reprompt),
                ("fallback", &node.fallback),
            ] {
                if let Some(v) = v {
                    self.template(v, np.key(k), &known_vars);
                }
            }
            self.actions(&node.pre_actions, &np.key("pre_actions"), &known_vars);
            self.actions(&node.post_actions, &np.key("post_actions"), &known_vars);
            let mut names = global_names.clone();
            for (i, f) in node.functions.iter().enumerate() {
                let p = np.key("functions").index(i);
                if !names.insert(f.name.as_str()) {
                    self.push(p.key("name"), FlowErrorKind::DuplicateTool(f.name.clone()));
                }
                self.function(f, &p);
            }
            let available: Vec<&FunctionDef> =
                node.functions.iter().chain(spec.functions.iter()).collect();
            for (i, intent) in node.intents.iter().enumerate() {
                self.intent(intent, &np.key("intents").index(i), &available, &known_vars);
            }
        }
    }

    fn push(&mut self, path: KeyPath, kind: FlowErrorKind) {
        self.out.push((path, kind));
    }

    fn known_vars(&self) -> BTreeSet<String> {
        let mut vars: BTreeSet<String> = BUILTIN_VARS.iter().map(|s| s.to_string()).collect();
        vars.extend(self.spec.variables.keys().cloned());
        let mut collect = |actions: &[Action]| {
            for a in actions {
                if let Action::Set(s) = a {
                    vars.insert(s.var.clone());
                }
            }
        };
        collect(&self.spec.flow.on_llm_error);
        for i in &self.spec.intents {
            collect(&i.actions);
        }
        for n in self.spec.nodes.values() {
            collect(&n.pre_actions);
            collect(&n.post_actions);
            for i in &n.intents {
                collect(&i.actions);
            }
        }
        vars
    }

    fn node_ref(&mut self, target: &str, path: KeyPath) {
        if !self.spec.nodes.contains_key(target) {
            self.push(path, FlowErrorKind::DanglingTransition(target.to_string()));
        }
    }

    fn template(&mut self, tpl: &str, path: KeyPath, known: &BTreeSet<String>) {
        match template::placeholders(tpl) {
            Err(e) => self.push(path, FlowErrorKind::BadTemplate(e.to_string())),
            Ok(ph) => {
                for p in ph {
                    if !known.contains(p.var) {
                        self.push(
                            path.clone(),
                            FlowErrorKind::UnknownTemplateVariable(p.var.to_string()),
                        );
                    }
                }
            }
        }
    }

    fn actions(&mut self, actions: &[Action], path: &KeyPath, known: &BTreeSet<String>) {
        for (i, a) in actions.iter().enumerate() {
            let p = path.index(i);
            match a {
                Action::Say(t) => self.template(t, p.key("say"), known),
                Action::Set(s) => self.template(&s.value, p.key("set"), known),
                Action::Transfer(dest) => {
                    if !self.spec.transfers.contains_key(dest) {
                        self.push(
                            p.key("transfer"),
                            FlowErrorKind::UnknownTransfer(dest.clone()),
                        );
                    }
                }
                Action::EndCall(_) | Action::Outcome(_) => {}
            }
        }
    }

    fn function(&mut self, f: &FunctionDef, path: &KeyPath) {
        let name_ok = !f.name.is_empty()
            && f.name.len() <= 64
            && f.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            self.push(
                path.key("name"),
                FlowErrorKind::InvalidValue(format!(
                    "function name `{}` must be 1-64 characters of a-z, A-Z, 0-9, _ or -",
                    f.name
                )),
            );
        }
        if let Some(params) = &f.parameters {
            let is_object_schema = params.get("type").and_then(|t| t.as_str()) == Some("object");
            if !is_object_schema {
                self.push(
                    path.key("parameters"),
                    FlowErrorKind::InvalidValue(
                        "parameters must be a JSON Schema with type = \"object\"".into(),
                    ),
                );
            } else if let Err(e) = check_schema(params) {
                self.push(path.key("parameters"), FlowErrorKind::BadSchema(e));
            }
        }
        if let Some(t) = &f.transition {
            for target in t.targets() {
                self.node_ref(target, path.key("transition"));
            }
        }
    }

    fn intent(
        &mut self,
        intent: &Intent,
        path: &KeyPath,
        available: &[&FunctionDef],
        known: &BTreeSet<String>,
    ) {
        if let Some(call) = &intent.call {
            match available.iter().find(|f| &f.name == call) {
                None => self.push(
                    path.key("call"),
                    FlowErrorKind::UnknownFunction(call.clone()),
                ),
                Some(f) => {
                    // Templated values render to strings, so checking the written values
                    // catches missing required arguments and wrong types before a call does.
                    let schema = f.parameters_schema();
                    let args = serde_json::Value::Object(intent.args.clone());
                    let problems = validate_arguments(&schema, &args);
                    if !problems.is_empty() && check_schema(&schema).is_ok() {
                        let at = if intent.args.is_empty() {
                            path.key("call")
                        } else {
                            path.key("args")
                        };
                        self.push(at, FlowErrorKind::BadArguments(problems.join("; ")));
                    }
                }
            }
        }
        if let Some(goto) = &intent.goto {
            self.node_ref(goto, path.key("goto"));
        }
        if let Some(say) = &intent.say {
            self.template(say, path.key("say"), known);
        }
        for (k, v) in &intent.args {
            if let Some(s) = v.as_str() {
                self.template(s, path.key("args").key(k), known);
            }
        }
        let matches_something = intent.any
            || intent.when.is_some()
            || !intent.keywords.is_empty()
            || !intent.phrases.is_empty()
            || !intent.dtmf.is_empty();
        if !matches_something {
            self.push(
                path.clone(),
                FlowErrorKind::InvalidValue(
                    "intent matches nothing: give keywords, phrases, dtmf, when or any".into(),
                ),
            );
        }
        self.actions(&intent.actions, &path.key("actions"), known);
    }
}
