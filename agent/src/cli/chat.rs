//! `agent chat`: a text REPL against the real dialog engine.
//!
//! Everything a call would use except audio and SIP: the flow from `flows.dir`, the LLM from
//! `llm.*` (scripted mode without one), the caller looked up in the configured database's
//! customer cache (`crm.default_region` for national numbers) before the greeting, and the
//! business hours of the flow at the current time. Reads go to the store; what a call would
//! write (messages, callbacks, payment-link requests, call events) is printed instead, so
//! trying a flow leaves no fake calls or messages behind.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;
use dialogs::{
    CallAction, CallEvent, CallServices, CallSetup, CallerInput, Customer, CustomerId, Engine,
    Invoice, NewCallback, NewMessage, ReplyEvent, ReplyMode, ServiceError, ServiceFuture,
    TurnSummary,
};
use futures::StreamExt;
use tokio::io::AsyncBufReadExt;

use super::open_store;
use crate::config::Config;

/// What the caller types.
const HELP: &str = "type what the caller says; #5 or /dtmf 5 presses keys, /silence is a silent turn, /quit hangs up";

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Flow to talk to [default: flows.default]
    #[arg(long, value_name = "NAME")]
    pub flow: Option<String>,
    /// Caller ID to present, e.g. +15551234567; looked up in the customer cache like a real call
    #[arg(long, value_name = "NUMBER")]
    pub caller: Option<String>,
    /// Tenant whose customers are looked up [default: call.default_tenant]
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
    /// Business hours: auto (the flow's [business_hours] now), open or closed
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "open", "closed"])]
    pub business: String,
    /// Treat the caller ID as trusted, as on a trunk with `trusted_caller_id = true` (flows with
    /// verify = "postal_code_unless_trusted" then skip the postal code)
    #[arg(long)]
    pub trusted_caller_id: bool,
}

pub(super) async fn run(args: ChatArgs, cfg: &Config) -> anyhow::Result<()> {
    let flows = crate::wiring::load_flows(cfg)?;
    let name = args.flow.unwrap_or_else(|| cfg.flows.default.clone());
    let flow = flows.get(&name).with_context(|| {
        format!(
            "no flow named {name:?} in {} (have: {})",
            cfg.flows.dir.display(),
            flows.names().join(", ")
        )
    })?;
    let llm = crate::wiring::llm_client(cfg)?;
    let store = open_store(cfg).await?;
    let tenant_name = args
        .tenant
        .unwrap_or_else(|| cfg.call.default_tenant.clone());
    let tenant = store
        .tenant_by_name(&tenant_name)
        .await?
        .with_context(|| format!("no tenant named {tenant_name:?}"))?;
    let phones = crm::PhoneNormalizer::new(&cfg.crm.default_region)
        .with_context(|| format!("crm.default_region = {:?}", cfg.crm.default_region))?;
    // As a real call presents it: E.164 when the caller ID reads as a number.
    let caller = args
        .caller
        .map(|c| phones.normalize(&c).map_or(c, |n| n.into_string()));
    let services = Arc::new(ChatServices {
        inner: crm::StoreCallServices::new(
            store.clone(),
            &tenant.id,
            &store::CallId::new("agent-chat"),
            phones,
            Arc::new(PrintedInstead),
        ),
        written: Mutex::new(Vec::new()),
    });
    let customer = match &caller {
        Some(c) => dialogs::identify_caller(services.as_ref(), c).await,
        None => None,
    };
    let open = match args.business.as_str() {
        "open" => true,
        "closed" => false,
        _ => flow.business_open(SystemTime::now()),
    };

    let mode = match &llm {
        Some(l) => format!("LLM {} at {}", l.config().model, l.config().base_url),
        None => "scripted (no llm.base_url configured)".to_string(),
    };
    println!(
        "flow {} (version {}), {mode}",
        flow.name(),
        flow.version_hash().get(..12).unwrap_or_default()
    );
    match (&caller, &customer) {
        (Some(n), Some(c)) => println!(
            "caller {n}: {}{} (customer {})",
            c.name,
            c.company
                .as_deref()
                .map(|co| format!(", {co}"))
                .unwrap_or_default(),
            c.id.0
        ),
        (Some(n), None) => {
            println!("caller {n}: not in the customer cache of tenant {tenant_name}")
        }
        (None, _) => println!("caller: no caller ID"),
    }
    let hours = flow
        .business_hours()
        .map(|h| format!(" ({})", h.timezone()))
        .unwrap_or_default();
    println!(
        "business {}{hours}; messages, callbacks and call events are printed, not stored",
        if open { "open" } else { "closed" }
    );
    println!("{HELP}");

    let setup = CallSetup::new(caller.as_deref())
        .with_customer(customer)
        .with_business_open(open)
        .with_caller_id_trusted(args.trusted_caller_id);
    let host: Arc<dyn CallServices> = services.clone();
    let mut engine = Engine::new(flow, host, llm, setup);
    let mut repl = Repl {
        services,
        echo: !std::io::stdin().is_terminal(),
        prompt: std::io::stdin().is_terminal(),
    };

    let outcome = repl.play(engine.start()).await;
    let end = match outcome {
        Some(end) => end,
        None => repl.converse(&mut engine).await?,
    };
    println!("{end}");
    store.close().await;
    Ok(())
}

/// How a turn left the call.
type Ended = Option<String>;

struct Repl {
    services: Arc<ChatServices>,
    /// Print the caller's lines too (stdin is a file or a pipe, so they were not on screen).
    echo: bool,
    prompt: bool,
}

impl Repl {
    /// Reads caller lines until the call ends or the input does; returns the closing line.
    async fn converse(&mut self, engine: &mut Engine) -> anyhow::Result<String> {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        loop {
            if self.prompt {
                print!("> ");
                let _ = std::io::stdout().flush();
            }
            let Some(line) = lines.next_line().await.context("reading stdin")? else {
                return Ok("(end of input: the caller hung up)".to_string());
            };
            let inputs = match parse_line(&line) {
                Line::Skip => continue,
                Line::Quit => return Ok("(the caller hung up)".to_string()),
                Line::Help(why) => {
                    if let Some(why) = why {
                        println!("{why}");
                    }
                    println!("{HELP}");
                    continue;
                }
                Line::Inputs(inputs) => inputs,
            };
            for input in inputs {
                if self.echo {
                    match &input {
                        CallerInput::Speech(t) => println!("caller: {t}"),
                        CallerInput::Dtmf(d) => println!("caller: (presses {d})"),
                        CallerInput::Silence => println!("caller: (silence)"),
                        _ => {}
                    }
                }
                if let Some(end) = self.play(engine.turn(input)).await {
                    return Ok(end);
                }
            }
        }
    }

    /// Prints one reply as it streams, then what happened; `Some` when the call is over.
    async fn play(&mut self, mut stream: dialogs::ReplyStream<'_>) -> Ended {
        let mut actions = Vec::new();
        let mut summary = None;
        while let Some(ev) = stream.next().await {
            match ev {
                ReplyEvent::Sentence(s) => {
                    println!("agent: {s}");
                }
                ReplyEvent::Action(a) => actions.push(a),
                ReplyEvent::Done(s) => summary = Some(s),
                _ => {}
            }
        }
        drop(stream);
        if let Some(s) = &summary {
            self.print_summary(s);
        }
        for line in self.services.take_written() {
            println!("  · {line}");
        }
        let mut ended = None;
        for a in actions {
            match a {
                CallAction::Transfer { to, name } => {
                    println!("  · transfer to {name} ({to})");
                    ended.get_or_insert(format!("(call transferred to {name})"));
                }
                CallAction::SendDtmf { digits } => println!("  · presses {digits}"),
                CallAction::EndCall { reason } => {
                    println!("  · end call: {reason}");
                    ended.get_or_insert(format!("(call ended: {reason})"));
                }
                other => println!("  · {other:?}"),
            }
        }
        ended
    }

    fn print_summary(&self, s: &TurnSummary) {
        for t in &s.tools {
            println!("  · tool {} {} → {}", t.name, t.arguments, t.status);
        }
        if s.node != s.node_before {
            println!("  · node {} → {}", s.node_before, s.node);
        }
        if let Some(e) = &s.llm_error {
            let said = if s.mode == ReplyMode::Fallback {
                "fallback spoken"
            } else {
                "reply cut short"
            };
            println!("  · LLM failed ({e}): {said}");
        }
        if s.usage.prompt_tokens + s.usage.completion_tokens > 0 {
            println!(
                "  · tokens: {} prompt, {} completion",
                s.usage.prompt_tokens, s.usage.completion_tokens
            );
        }
    }
}

enum Line {
    Skip,
    Quit,
    /// Not for the caller: show the help (and why).
    Help(Option<String>),
    Inputs(Vec<CallerInput>),
}

/// One typed line → caller inputs. `#5`, `#123` and `/dtmf 5` press keys (one turn per key);
/// `#` alone presses `#`.
fn parse_line(line: &str) -> Line {
    let t = line.trim();
    if t.is_empty() {
        return Line::Skip;
    }
    let keys = if let Some(rest) = t.strip_prefix("/dtmf") {
        Some(rest.trim())
    } else if let Some(rest) = t.strip_prefix('#') {
        Some(if rest.trim().is_empty() {
            "#"
        } else {
            rest.trim()
        })
    } else {
        None
    };
    if let Some(keys) = keys {
        let keys: Vec<char> = keys
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if keys.is_empty() || !keys.iter().all(|c| "0123456789*#ABCD".contains(*c)) {
            return Line::Help(Some(format!("{t:?}: DTMF keys are 0-9, *, # and A-D")));
        }
        return Line::Inputs(keys.into_iter().map(CallerInput::Dtmf).collect());
    }
    match t {
        "/quit" | "/exit" | "/hangup" => Line::Quit,
        "/silence" => Line::Inputs(vec![CallerInput::Silence]),
        "/help" | "/?" => Line::Help(None),
        _ if t.starts_with('/') => Line::Help(Some(format!("unknown command {t:?}"))),
        _ => Line::Inputs(vec![CallerInput::Speech(t.to_string())]),
    }
}

/// The inner services' own event path is unused: [`ChatServices::record_event`] prints events
/// instead of storing them.
struct PrintedInstead;

impl crm::CallEventSink for PrintedInstead {
    fn record(&self, _kind: store::EventKind, _detail: serde_json::Value) {}

    fn customer_identified(&self, _customer_id: &str) {}
}

/// The store for reads; writes and call events are kept to be printed (see the module docs).
struct ChatServices {
    inner: crm::StoreCallServices,
    // Never held across an await.
    written: Mutex<Vec<String>>,
}

impl ChatServices {
    fn note(&self, line: String) {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }

    fn take_written(&self) -> Vec<String> {
        std::mem::take(&mut *self.written.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl CallServices for ChatServices {
    fn lookup_customer<'a>(
        &'a self,
        caller_number: &'a str,
    ) -> ServiceFuture<'a, Option<Customer>> {
        self.inner.lookup_customer(caller_number)
    }

    fn customer<'a>(&'a self, id: &'a CustomerId) -> ServiceFuture<'a, Option<Customer>> {
        self.inner.customer(id)
    }

    fn invoices<'a>(&'a self, id: &'a CustomerId) -> ServiceFuture<'a, Vec<Invoice>> {
        self.inner.invoices(id)
    }

    fn take_message(&self, message: NewMessage) -> ServiceFuture<'_, ()> {
        let from = message
            .caller_name
            .clone()
            .or(message.caller_number.clone())
            .unwrap_or_else(|| "unknown caller".into());
        self.note(format!("message from {from}: {:?}", message.text));
        Box::pin(async { Ok(()) })
    }

    fn schedule_callback(&self, callback: NewCallback) -> ServiceFuture<'_, ()> {
        let when = callback
            .when
            .as_deref()
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        self.note(format!("callback to {}{when}", callback.number));
        Box::pin(async { Ok(()) })
    }

    fn send_payment_link<'a>(
        &'a self,
        id: &'a CustomerId,
    ) -> ServiceFuture<'a, dialogs::PaymentLinkResult> {
        Box::pin(async move {
            // Same answer as the daemon for a customer that is not the tenant's.
            if self.inner.customer(id).await?.is_none() {
                return Err(ServiceError::Unavailable);
            }
            // The chat simulator sends nothing; it plays the "sent" branch and says so here.
            self.note(format!(
                "payment link for customer {} (simulated: nothing is sent from chat)",
                id.0
            ));
            Ok(dialogs::PaymentLinkResult::Sent)
        })
    }

    fn add_to_dnc(&self, request: dialogs::DncRequest) -> ServiceFuture<'_, ()> {
        self.note(format!("{} added to the do-not-call list", request.number));
        Box::pin(async { Ok(()) })
    }

    fn record_event(&self, event: CallEvent) {
        let line = match &event {
            // Tool calls are printed from the turn summary, with their arguments.
            CallEvent::ToolCalled { .. } => return,
            CallEvent::Refused { tool, reason } => {
                let reason = serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{reason:?}"));
                format!("refused ({tool}): {reason}")
            }
            CallEvent::ToolTimedOut { tool } => format!("tool {tool} timed out"),
            CallEvent::LlmFallback { reason } => format!("event: LLM fallback ({reason})"),
            CallEvent::ToolRoundLimit { rounds } => format!("tool round limit ({rounds}) reached"),
            CallEvent::Outcome { outcome, note } => match note {
                Some(n) => format!("outcome: {outcome} ({n})"),
                None => format!("outcome: {outcome}"),
            },
            other => format!(
                "event: {}",
                serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}"))
            ),
        };
        self.note(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(line: &str) -> Vec<CallerInput> {
        match parse_line(line) {
            Line::Inputs(i) => i,
            _ => Vec::new(),
        }
    }

    #[test]
    fn lines() {
        assert_eq!(
            inputs(" What's my balance? "),
            vec![CallerInput::Speech("What's my balance?".into())]
        );
        assert_eq!(inputs("#5"), vec![CallerInput::Dtmf('5')]);
        assert_eq!(
            inputs("/dtmf 1 2#"),
            vec![
                CallerInput::Dtmf('1'),
                CallerInput::Dtmf('2'),
                CallerInput::Dtmf('#')
            ]
        );
        assert_eq!(inputs("#"), vec![CallerInput::Dtmf('#')]);
        assert_eq!(inputs("/silence"), vec![CallerInput::Silence]);
        assert!(matches!(parse_line("#hello"), Line::Help(Some(_))));
        assert!(matches!(parse_line("/frobnicate"), Line::Help(Some(_))));
        assert!(matches!(parse_line("/quit"), Line::Quit));
        assert!(matches!(parse_line("   "), Line::Skip));
    }
}
