//! The built-in tools. Each returns a JSON result for the LLM (always with a `status` field,
//! which flows branch on) plus effects the engine applies atomically with the transition.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{
    CallEvent, CallServices, Customer, DncRequest, NewCallback, NewMessage, RefusalReason,
    format_money,
};
use crate::engine::CallAction;
use crate::flow::{Flow, ToolKind};

/// Argument keys that name a person or an account. Data tools act only for the identified
/// caller, so such an argument that does not match the caller is an attempt to reach someone
/// else's data.
const IDENTITY_KEYS: &[&str] = &[
    "customer_id",
    "customer",
    "customer_name",
    "account",
    "account_id",
    "account_number",
    "phone",
    "phone_number",
    "number",
    "caller",
    "name",
    "email",
    "id",
];

const MAX_VERIFY_FAILURES: u8 = 3;
/// Keys one `send_dtmf` call may press (a menu choice, an extension, an account number).
const MAX_DTMF_DIGITS: usize = 32;

/// A snapshot of what tools may see; cloned into the tool task so it outlives a dropped stream.
#[derive(Clone)]
pub(crate) struct ToolContext {
    pub host: Arc<dyn CallServices>,
    pub flow: Arc<Flow>,
    pub caller_number: Option<String>,
    pub customer: Option<Customer>,
    pub verified: bool,
    pub verify_failures: u8,
    pub caller_id_trusted: bool,
    pub business_open: bool,
}

/// What a tool call produced.
#[derive(Debug, Clone)]
pub(crate) struct ToolOutcome {
    pub result: Value,
    pub effects: Vec<Effect>,
}

/// State changes a tool asks for; applied by the engine at commit.
#[derive(Debug, Clone)]
pub(crate) enum Effect {
    SetCustomer(Customer),
    Verified,
    VerifyFailed,
    SetVar(String, String),
    Action(CallAction),
}

impl ToolOutcome {
    fn status(status: &str) -> ToolOutcome {
        ToolOutcome {
            result: json!({ "status": status }),
            effects: Vec::new(),
        }
    }

    /// False when the call never reached the tool (unknown function, unparsable arguments):
    /// such results go back to the LLM but never move the flow.
    pub(crate) fn ran(&self) -> bool {
        !matches!(
            self.status_str(),
            "unknown_function" | "invalid_arguments" | "skipped"
        )
    }

    pub(crate) fn status_str(&self) -> &str {
        self.result
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("ok")
    }
}

/// JSON Schema of a built-in tool's arguments.
pub(crate) fn tool_parameters(kind: Option<ToolKind>) -> Value {
    let empty = json!({ "type": "object", "properties": {} });
    let Some(kind) = kind else { return empty };
    match kind {
        ToolKind::LookupCustomer
        | ToolKind::GetBalance
        | ToolKind::ListInvoices
        | ToolKind::SendPaymentLink => empty,
        ToolKind::VerifyIdentity => json!({
            "type": "object",
            "properties": { "postal_code": { "type": "string", "description": "The postal code the caller said." } },
            "required": ["postal_code"]
        }),
        ToolKind::TakeMessage => json!({
            "type": "object",
            "properties": {
                "message": { "type": "string", "description": "The caller's message, in their words." },
                "caller_name": { "type": "string", "description": "The name the caller gave, if any." }
            },
            "required": ["message"]
        }),
        ToolKind::Transfer => json!({
            "type": "object",
            "properties": { "destination": { "type": "string", "description": "Name of an allowed destination." } },
            "required": ["destination"]
        }),
        ToolKind::ScheduleCallback => json!({
            "type": "object",
            "properties": {
                "when": { "type": "string", "description": "When the caller wants to be called." },
                "note": { "type": "string" },
                "number": { "type": "string", "description": "Only if the caller asks for a different number." }
            }
        }),
        ToolKind::RecordOutcome => json!({
            "type": "object",
            "properties": {
                "outcome": { "type": "string", "description": "e.g. promised_to_pay, link_sent, callback, refused, wrong_person" },
                "note": { "type": "string" }
            },
            "required": ["outcome"]
        }),
        ToolKind::EndCall => empty,
        ToolKind::SendDtmf => json!({
            "type": "object",
            "properties": {
                "digits": { "type": "string", "minLength": 1, "maxLength": MAX_DTMF_DIGITS, "description": "Keys to press: 0-9, *, #, A-D (e.g. \"1\" or \"123#\")." }
            },
            "required": ["digits"]
        }),
        ToolKind::AddToDnc => json!({
            "type": "object",
            "properties": {
                "reason": { "type": "string", "description": "Why, in the caller's words, if they said." }
            }
        }),
    }
}

/// Runs one function. `kind == None` is a pure transition function.
pub(crate) async fn run_tool(
    kind: Option<ToolKind>,
    name: &str,
    args: &Value,
    ctx: &ToolContext,
) -> ToolOutcome {
    let Some(kind) = kind else {
        return ToolOutcome::status("ok");
    };
    let refuse = |reason: RefusalReason| {
        ctx.host.record_event(CallEvent::Refused {
            tool: name.to_string(),
            reason,
        });
        // Flows branch on `status`: "not identified" and "not verified" lead somewhere
        // different from a plain refusal (which means someone tried something).
        let status = match reason {
            RefusalReason::NotIdentified => "not_identified",
            RefusalReason::NotVerified => "not_verified",
            _ => "refused",
        };
        ToolOutcome {
            result: json!({ "status": status, "reason": reason }),
            effects: Vec::new(),
        }
    };
    let failed = |e: super::ServiceError| {
        tracing::warn!(tool = name, error = %e, "tool backend failed");
        ToolOutcome::status("error")
    };
    match kind {
        ToolKind::LookupCustomer => {
            let Some(number) = &ctx.caller_number else {
                return ToolOutcome::status("no_caller_id");
            };
            match ctx.host.lookup_customer(number).await {
                Ok(Some(c)) => ToolOutcome {
                    result: json!({ "status": "ok", "name": c.name, "company": c.company }),
                    effects: vec![Effect::SetCustomer(c)],
                },
                Ok(None) => ToolOutcome::status("not_found"),
                Err(e) => failed(e),
            }
        }
        ToolKind::GetBalance | ToolKind::ListInvoices | ToolKind::SendPaymentLink => {
            let customer = match data_guard(args, ctx) {
                Ok(c) => c,
                Err(reason) => return refuse(reason),
            };
            match kind {
                ToolKind::GetBalance => match ctx.host.customer(&customer.id).await {
                    Ok(Some(fresh)) => {
                        let spoken = format_money(fresh.balance_minor, &fresh.currency);
                        ToolOutcome {
                            result: json!({ "status": "ok", "balance": spoken, "currency": fresh.currency }),
                            effects: vec![
                                Effect::SetVar("balance".into(), spoken),
                                Effect::SetCustomer(fresh),
                            ],
                        }
                    }
                    Ok(None) => ToolOutcome::status("not_found"),
                    Err(e) => failed(e),
                },
                ToolKind::ListInvoices => match ctx.host.invoices(&customer.id).await {
                    Ok(invoices) => invoices_outcome(&invoices),
                    Err(e) => failed(e),
                },
                _ => match ctx.host.send_payment_link(&customer.id).await {
                    Ok(result) => ToolOutcome::status(result.status()),
                    Err(e) => failed(e),
                },
            }
        }
        ToolKind::VerifyIdentity => {
            let Some(customer) = &ctx.customer else {
                return refuse(RefusalReason::NotIdentified);
            };
            if ctx.verify_failures >= MAX_VERIFY_FAILURES {
                return refuse(RefusalReason::VerificationLocked);
            }
            let said = args
                .get("postal_code")
                .and_then(Value::as_str)
                .unwrap_or("");
            let on_file = customer.postal_code.as_deref().unwrap_or("");
            if !on_file.is_empty() && normalize_code(said) == normalize_code(on_file) {
                ToolOutcome {
                    result: json!({ "status": "ok" }),
                    effects: vec![Effect::Verified],
                }
            } else {
                ToolOutcome {
                    result: json!({ "status": "mismatch" }),
                    effects: vec![Effect::VerifyFailed],
                }
            }
        }
        ToolKind::TakeMessage => {
            let text = args
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim();
            if text.is_empty() {
                return ToolOutcome::status("empty");
            }
            let msg = NewMessage {
                customer_id: ctx.customer.as_ref().map(|c| c.id.clone()),
                caller_number: ctx.caller_number.clone(),
                caller_name: args
                    .get("caller_name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| ctx.customer.as_ref().map(|c| c.name.clone())),
                text: text.to_string(),
            };
            match ctx.host.take_message(msg).await {
                Ok(()) => ToolOutcome::status("ok"),
                Err(e) => failed(e),
            }
        }
        ToolKind::Transfer => {
            let wanted = args
                .get("destination")
                .and_then(Value::as_str)
                .unwrap_or("");
            let transfers = &ctx.flow.spec().transfers;
            let found = transfers
                .iter()
                .find(|(k, v)| k.eq_ignore_ascii_case(wanted.trim()) || same_number(v, wanted));
            let Some((dest_name, dest)) = found else {
                return refuse(RefusalReason::TransferNotAllowed);
            };
            if !ctx.business_open && !ctx.flow.spec().guardrails.transfer_outside_hours {
                return ToolOutcome::status("closed");
            }
            ToolOutcome {
                result: json!({ "status": "ok", "destination": dest_name }),
                effects: vec![
                    Effect::SetVar("transfer_to".into(), dest_name.clone()),
                    Effect::Action(CallAction::Transfer {
                        to: dest.clone(),
                        name: dest_name.clone(),
                    }),
                ],
            }
        }
        ToolKind::ScheduleCallback => {
            let asked = args.get("number").and_then(Value::as_str).map(str::trim);
            let own = ctx.caller_number.as_deref();
            let number = match (asked, own) {
                (Some(a), Some(o)) if !a.is_empty() && !same_number(a, o) => {
                    let allowed = ctx
                        .flow
                        .spec()
                        .guardrails
                        .callback_allow
                        .iter()
                        .any(|n| same_number(n, a));
                    if !allowed {
                        return refuse(RefusalReason::CallbackNotAllowed);
                    }
                    a.to_string()
                }
                (Some(a), None) if !a.is_empty() => {
                    let allowed = ctx
                        .flow
                        .spec()
                        .guardrails
                        .callback_allow
                        .iter()
                        .any(|n| same_number(n, a));
                    if !allowed {
                        return refuse(RefusalReason::CallbackNotAllowed);
                    }
                    a.to_string()
                }
                (_, Some(o)) => o.to_string(),
                (_, None) => return ToolOutcome::status("no_number"),
            };
            let cb = NewCallback {
                customer_id: ctx.customer.as_ref().map(|c| c.id.clone()),
                number,
                when: args.get("when").and_then(Value::as_str).map(str::to_string),
                note: args.get("note").and_then(Value::as_str).map(str::to_string),
            };
            match ctx.host.schedule_callback(cb).await {
                Ok(()) => ToolOutcome::status("ok"),
                Err(e) => failed(e),
            }
        }
        ToolKind::RecordOutcome => {
            let outcome = args
                .get("outcome")
                .and_then(Value::as_str)
                .unwrap_or("unspecified");
            ctx.host.record_event(CallEvent::Outcome {
                outcome: outcome.to_string(),
                note: args.get("note").and_then(Value::as_str).map(str::to_string),
            });
            ToolOutcome::status("ok")
        }
        ToolKind::AddToDnc => {
            // The number is the call's, never an argument: nobody can list someone else.
            let Some(number) = &ctx.caller_number else {
                return ToolOutcome::status("no_number");
            };
            let reason = args
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_string);
            match ctx.host.add_to_dnc(DncRequest::new(number, reason)).await {
                Ok(()) => ToolOutcome::status("ok"),
                Err(e) => failed(e),
            }
        }
        ToolKind::SendDtmf => {
            let digits: String = args
                .get("digits")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_whitespace())
                .map(|c| c.to_ascii_uppercase())
                .collect();
            let valid = !digits.is_empty()
                && digits.chars().count() <= MAX_DTMF_DIGITS
                && digits.chars().all(|c| "0123456789*#ABCD".contains(c));
            if !valid {
                return ToolOutcome::status("invalid_digits");
            }
            ToolOutcome {
                result: json!({ "status": "ok", "digits": digits }),
                effects: vec![Effect::Action(CallAction::SendDtmf { digits })],
            }
        }
        ToolKind::EndCall => ToolOutcome {
            result: json!({ "status": "ok" }),
            effects: vec![Effect::Action(CallAction::EndCall {
                reason: "flow_completed".into(),
            })],
        },
    }
}

/// The identified (and, if required, verified) caller, or why data must not be returned.
fn data_guard(args: &Value, ctx: &ToolContext) -> Result<Customer, RefusalReason> {
    let Some(customer) = &ctx.customer else {
        return Err(RefusalReason::NotIdentified);
    };
    if let Some(obj) = args.as_object() {
        for key in IDENTITY_KEYS {
            let Some(v) = obj.get(*key) else { continue };
            let s = match v {
                Value::String(s) => s.trim().to_string(),
                Value::Null => continue,
                other => other.to_string(),
            };
            if s.is_empty() {
                continue;
            }
            let own = s == customer.id.0
                || s.eq_ignore_ascii_case(&customer.name)
                || ctx
                    .caller_number
                    .as_deref()
                    .is_some_and(|n| same_number(n, &s));
            if !own {
                return Err(RefusalReason::ForeignIdentity);
            }
        }
    }
    if ctx
        .flow
        .spec()
        .guardrails
        .verify
        .required(ctx.caller_id_trusted)
        && !ctx.verified
    {
        return Err(RefusalReason::NotVerified);
    }
    Ok(customer.clone())
}

fn invoices_outcome(invoices: &[super::Invoice]) -> ToolOutcome {
    let list: Vec<Value> = invoices
        .iter()
        .map(|i| {
            json!({
                "number": i.number,
                "status": i.status,
                "total": format_money(i.total_minor, &i.currency),
                "balance": format_money(i.balance_minor, &i.currency),
                "due_date": i.due_date,
            })
        })
        .collect();
    let mut effects = vec![Effect::SetVar(
        "invoice_count".into(),
        invoices.len().to_string(),
    )];
    let open: Vec<&super::Invoice> = invoices.iter().filter(|i| i.balance_minor > 0).collect();
    let summary = if open.is_empty() {
        "no open invoices".to_string()
    } else {
        open.iter()
            .map(|i| {
                format!(
                    "invoice {} for {}, due {}",
                    i.number,
                    format_money(i.balance_minor, &i.currency),
                    i.due_date
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    effects.push(Effect::SetVar("invoices_summary".into(), summary));
    if let Some(first) = invoices.first() {
        effects.push(Effect::SetVar(
            "last_invoice_amount".into(),
            format_money(first.total_minor, &first.currency),
        ));
    }
    let overdue: i64 = invoices
        .iter()
        .filter(|i| i.status == "overdue")
        .map(|i| i.balance_minor)
        .sum();
    if let Some(first) = invoices.first() {
        effects.push(Effect::SetVar(
            "overdue_amount".into(),
            format_money(overdue, &first.currency),
        ));
    }
    ToolOutcome {
        result: json!({ "status": "ok", "count": invoices.len(), "invoices": list }),
        effects,
    }
}

/// A postal code as said or typed, comparable with the one on file: letters and digits only,
/// upper case, and spoken digits ("nine four one one oh", as a transcript may spell them)
/// as digits.
fn normalize_code(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| match w.to_ascii_lowercase().as_str() {
            "zero" | "oh" | "o" => "0".to_owned(),
            "one" => "1".to_owned(),
            "two" => "2".to_owned(),
            "three" => "3".to_owned(),
            "four" => "4".to_owned(),
            "five" => "5".to_owned(),
            "six" => "6".to_owned(),
            "seven" => "7".to_owned(),
            "eight" => "8".to_owned(),
            "nine" => "9".to_owned(),
            _ => w.to_ascii_uppercase(),
        })
        .collect()
}

/// Compares phone numbers by their last ten digits, so `+1 (555) 123-4567` matches
/// `+15551234567`; anything that is not a number (a SIP URI) must match exactly.
pub(crate) fn same_number(a: &str, b: &str) -> bool {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let (da, db) = (digits(a), digits(b));
    if da.len() < 7 || db.len() < 7 {
        return a.trim().eq_ignore_ascii_case(b.trim());
    }
    let tail = |d: &str| d[d.len().saturating_sub(10)..].to_string();
    tail(&da) == tail(&db)
}

#[cfg(test)]
mod tests {
    use super::normalize_code;

    #[test]
    fn postal_codes_compare_as_said_or_typed() {
        for said in [
            "94110",
            "9 4 1 1 0",
            "Nine four one one zero.",
            "nine, four, one, one, oh",
        ] {
            assert_eq!(normalize_code(said), "94110", "{said}");
        }
        assert_eq!(normalize_code("sw1a 1aa"), "SW1A1AA");
        assert_ne!(normalize_code("nine four one one"), "94110");
    }
}
