//! Tools the LLM (or a scripted intent) may call, and the guardrails around them.
//!
//! The engine never trusts tool arguments with identity: data tools take the customer id from
//! call state (set by caller-ID lookup before the call is answered), never from the LLM or the
//! caller. Refusals are reported through [`CallServices::record_event`] so the agent can store
//! them as call events.
//!
//! Data access goes through [`CallServices`], which the agent implements on top of `store`;
//! this crate holds no SQL. [`crate::testing::MemoryServices`] is the in-memory version.

mod builtin;
mod schema;

use futures::future::BoxFuture;
use serde::Serialize;

pub(crate) use builtin::{
    Effect, ToolContext, ToolOutcome, run_tool, same_number, tool_parameters,
};
pub(crate) use schema::{check_schema, validate as validate_arguments};

/// A future returned by [`CallServices`] methods.
pub type ServiceFuture<'a, T> = BoxFuture<'a, Result<T, ServiceError>>;

/// What the flow engine needs from the rest of the daemon: customer data and side effects.
///
/// Implementations should answer quickly (the caller is waiting); the engine bounds every call
/// by the flow's `tool_timeout_ms`.
pub trait CallServices: Send + Sync {
    /// The customer whose phone number matches `caller_number` (E.164), if any.
    fn lookup_customer<'a>(&'a self, caller_number: &'a str)
    -> ServiceFuture<'a, Option<Customer>>;
    /// Fresh data for an already identified customer.
    fn customer<'a>(&'a self, id: &'a CustomerId) -> ServiceFuture<'a, Option<Customer>>;
    /// The customer's invoices, newest first.
    fn invoices<'a>(&'a self, id: &'a CustomerId) -> ServiceFuture<'a, Vec<Invoice>>;
    /// Stores a message for the business (visible in the admin API).
    fn take_message(&self, message: NewMessage) -> ServiceFuture<'_, ()>;
    /// Stores a callback request.
    fn schedule_callback(&self, callback: NewCallback) -> ServiceFuture<'_, ()>;
    /// Sends the customer a payment link through the channel on file, and says exactly what
    /// happened (the flow repeats it to the caller).
    fn send_payment_link<'a>(&'a self, id: &'a CustomerId) -> ServiceFuture<'a, PaymentLinkResult>;
    /// Puts the caller's number on the tenant's do-not-call list ("stop calling me"); the
    /// number comes from call state, never from what was said.
    fn add_to_dnc(&self, request: DncRequest) -> ServiceFuture<'_, ()>;
    /// Records a call event (refusal, outcome, fallback…). Must not block: the agent's
    /// implementation forwards it to the call actor's bounded store channel.
    fn record_event(&self, event: CallEvent);
}

/// What [`CallServices::send_payment_link`] did. The tool reports it as its `status`: `ok`,
/// `queued`, `no_email`, `nothing_due` (a failure is `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaymentLinkResult {
    /// The link was e-mailed (the mail provider accepted it).
    Sent,
    /// The link exists and its e-mail is queued for another try.
    Queued,
    /// No e-mail address on file: nothing was sent.
    NoEmail,
    /// Nothing is owed: nothing was sent.
    NothingDue,
}

impl PaymentLinkResult {
    /// The tool status flows branch on.
    pub fn status(self) -> &'static str {
        match self {
            PaymentLinkResult::Sent => "ok",
            PaymentLinkResult::Queued => "queued",
            PaymentLinkResult::NoEmail => "no_email",
            PaymentLinkResult::NothingDue => "nothing_due",
        }
    }
}

/// Why a [`CallServices`] call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    #[error("backend error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("backend unavailable")]
    Unavailable,
}

/// A customer id from the store (text ids, see the architecture's storage rules).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CustomerId(pub String);

/// The identified caller, as the tool layer sees them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Customer {
    pub id: CustomerId,
    pub name: String,
    pub company: Option<String>,
    /// Outstanding balance in minor units (cents).
    pub balance_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Used by `verify = "postal_code"`.
    pub postal_code: Option<String>,
}

impl Customer {
    /// A customer with no company and no postal code.
    pub fn new(id: &str, name: &str, balance_minor: i64, currency: &str) -> Customer {
        Customer {
            id: CustomerId(id.to_string()),
            name: name.to_string(),
            company: None,
            balance_minor,
            currency: currency.to_string(),
            postal_code: None,
        }
    }

    /// Sets the company.
    pub fn with_company(mut self, company: &str) -> Customer {
        self.company = Some(company.to_string());
        self
    }

    /// Sets the postal code used for verification.
    pub fn with_postal_code(mut self, code: &str) -> Customer {
        self.postal_code = Some(code.to_string());
        self
    }
}

/// One invoice.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Invoice {
    pub number: String,
    /// e.g. `paid`, `open`, `overdue`.
    pub status: String,
    pub total_minor: i64,
    pub balance_minor: i64,
    pub currency: String,
    /// `YYYY-MM-DD`.
    pub due_date: String,
}

impl Invoice {
    /// Builds an invoice.
    pub fn new(
        number: &str,
        status: &str,
        total_minor: i64,
        balance_minor: i64,
        currency: &str,
        due_date: &str,
    ) -> Invoice {
        Invoice {
            number: number.into(),
            status: status.into(),
            total_minor,
            balance_minor,
            currency: currency.into(),
            due_date: due_date.into(),
        }
    }
}

/// A message left by the caller.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewMessage {
    /// From call state only.
    pub customer_id: Option<CustomerId>,
    /// From call state only.
    pub caller_number: Option<String>,
    /// The name the caller gave (free text, not used for any lookup).
    pub caller_name: Option<String>,
    pub text: String,
}

/// A callback request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewCallback {
    pub customer_id: Option<CustomerId>,
    /// The caller's own number or an allow-listed one.
    pub number: String,
    /// When the caller would like the call, as they said it ("tomorrow morning").
    pub when: Option<String>,
    pub note: Option<String>,
}

/// A do-not-call request made during a call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DncRequest {
    /// The number of the other party (the callee on outbound calls), from call state.
    pub number: String,
    /// Why, in the caller's words, if the flow gave it.
    pub reason: Option<String>,
}

impl DncRequest {
    pub fn new(number: &str, reason: Option<String>) -> DncRequest {
        DncRequest {
            number: number.to_owned(),
            reason,
        }
    }
}

/// Something worth storing with the call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CallEvent {
    /// A guardrail said no.
    Refused { tool: String, reason: RefusalReason },
    /// A tool ran (status is the result's `status`).
    ToolCalled { tool: String, status: String },
    /// A tool did not answer within `tool_timeout_ms`.
    ToolTimedOut { tool: String },
    /// The LLM failed or timed out and the flow's fallback was used.
    LlmFallback { reason: String },
    /// The LLM asked for more tool rounds than the flow allows.
    ToolRoundLimit { rounds: u8 },
    /// The flow recorded an outcome (e.g. `promised_to_pay`).
    Outcome {
        outcome: String,
        note: Option<String>,
    },
}

/// Why a guardrail refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefusalReason {
    /// A data tool was asked for while the caller is not identified.
    NotIdentified,
    /// The flow requires verification that has not passed yet.
    NotVerified,
    /// The arguments named another customer, account, phone or name.
    ForeignIdentity,
    /// Transfer destination not in the flow's `[transfers]` allow-list.
    TransferNotAllowed,
    /// Callback number neither the caller's own nor allow-listed.
    CallbackNotAllowed,
    /// The caller asked for the system prompt / instructions.
    PromptProbe,
    /// The LLM's reply quoted the system prompt; the sentence was not spoken.
    PromptLeak,
    /// Too many failed verification attempts.
    VerificationLocked,
}

/// Formats minor units for speech: `$1,234.50`, `€12.00`, `12.00 CHF`.
pub fn format_money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let units = abs / 100;
    let cents = abs % 100;
    let digits = units.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let symbol = match currency.to_ascii_uppercase().as_str() {
        "USD" | "CAD" | "AUD" => Some("$"),
        "EUR" => Some("€"),
        "GBP" => Some("£"),
        _ => None,
    };
    match symbol {
        Some(s) => format!("{sign}{s}{grouped}.{cents:02}"),
        None => format!("{sign}{grouped}.{cents:02} {currency}"),
    }
}

/// Looks the caller up before the call is answered, so the greeting can use their name.
/// A backend error is logged and treated as "unknown caller": the call goes on.
pub async fn identify_caller(host: &dyn CallServices, caller_number: &str) -> Option<Customer> {
    match host.lookup_customer(caller_number).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "customer lookup failed; treating caller as unknown");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money() {
        assert_eq!(format_money(123450, "USD"), "$1,234.50");
        assert_eq!(format_money(5, "EUR"), "€0.05");
        assert_eq!(format_money(-100000000, "CHF"), "-1,000,000.00 CHF");
    }
}
