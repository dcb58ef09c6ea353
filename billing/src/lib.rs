//! What calls cost and what tenants pay: the price table and per-call cost ledger, analytics
//! figures computed from the store's rollups, plans and the admission check, Dodo Payments
//! (checkout sessions, Standard Webhooks verification, subscription and payment events), and
//! e-mail through Resend from a durable outbox (daily summaries, message notices, payment
//! links).
//!
//! Money is integers throughout: prices and costs in micro-units (1e-6 of the currency unit),
//! provider amounts in minor units, never floats. Remote services are reached at configured
//! base URLs (test-mode Dodo by default); `testkit` has fakes that follow their wire formats.
//!
//! It does not touch calls in progress: the daemon calls [`check_admission`] when a call is set
//! up, runs [`Folder`] and the mail workers as background tasks, and hands [`PaymentLinks`] to
//! the flow's `send_payment_link` tool.

mod admission;
pub mod analytics;
pub mod dodo;
mod error;
mod fold;
pub mod mail;
mod payment_link;
mod prices;
pub mod webhook;

pub use admission::{Admission, Overage, Plan, Plans, Refusal, billing_period, check_admission};
pub use error::BillingError;
pub use fold::{Folder, contribution};
pub use payment_link::{PaymentLinkOutcome, PaymentLinks};
pub use prices::{CostItem, Prices, price_usage};

/// Current time as unix milliseconds.
pub fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
