//! The only place that talks SQL: an sqlx pool over SQLite (the embedded default) or
//! PostgreSQL (several daemons sharing one database), the portable migrations runner, and
//! typed repositories.
//!
//! It holds no business rules beyond data integrity, and it never reads the clock: callers
//! pass timestamps (unix milliseconds) in, so repository behaviour is reproducible in tests.
//!
//! Portability rules (the same SQL runs on both engines):
//! - ids are TEXT UUIDv7 ([`new_id`]), timestamps BIGINT unix ms, money BIGINT minor units;
//! - every integer column is BIGINT, so both engines decode it as `i64`;
//! - placeholders are `$1, $2, …`, which PostgreSQL requires and SQLite accepts;
//! - no engine-specific SQL (no `RETURNING`-dependent logic, no `ON CONFLICT` variants that
//!   differ, no `SERIAL`/`AUTOINCREMENT`, row-value comparisons only where both support them).

mod analytics;
mod api_keys;
mod billing;
mod bulk;
mod calls;
mod campaigns;
mod customers;
mod error;
mod export;
mod ids;
mod messages;
mod outbox;
mod phone_numbers;
mod pool;
mod quality;
mod recordings;
pub mod rollup;
mod secrets;
mod tenant_admin;
mod tenants;
mod usage;
mod vocabulary;
mod zoho;

pub use analytics::{RangePiece, grain_for, plan_range};
pub use api_keys::{ApiKey, NewApiKey, Principal, Role};
pub use billing::{CheckoutSession, Payment, Subscription, WebhookApplied, WebhookEffect};
pub use bulk::{BulkCall, BulkFold};
pub use calls::{
    Call, CallCursor, CallDirection, CallEvent, CallFilter, CallPage, CallStatus, CallTransport,
    NewCall, Turn, TurnLatency,
};
pub use campaigns::{
    AttemptEnd, AttemptResult, CallingWindow, Campaign, CampaignAttempt, CampaignContact,
    CampaignKind, CampaignProgress, CampaignSettings, CampaignStatus, ClaimDecision, ClaimReport,
    ClaimRequest, Claimed, ContactNext, ContactState, CustomerToCall, Disposition, DncEntry,
    DncSource, FailurePause, NewCampaign, NewContact, NewDnc, RetryPolicy, RetryRule,
};
pub use customers::{
    Customer, CustomerPhone, CustomerUpsert, Invoice, InvoiceUpsert, PhoneKind, UpsertOutcome,
    Upserted,
};
pub use error::StoreError;
pub use export::{ExportFilter, ExportedCall};
pub use ids::{CallId, CampaignId, ContactId, TenantId};
pub use messages::{
    Callback, CallbackStatus, CreatedCursor, ListFilter, Message, MessageStatus, NewCallback,
    NewMessage, Page,
};
pub use outbox::{Enqueued, NewMail, OutboxMail};
pub use phone_numbers::PhoneNumber;
pub use pool::{Backend, Store, StoreOptions};
pub use quality::CallQuality;
pub use recordings::CallRecording;
pub use rollup::{CallFacts, Contribution, FoldOutcome, FoldTask, LedgerEntry, RollupTotals};
pub use secrets::{KeyUsage, NewSecret, StoredSecret};
pub use tenant_admin::{TenantSettings, TrunkRoute};
pub use tenants::Tenant;
pub use usage::UsageRecord;
pub use vocabulary::{EndReason, EventKind};
pub use zoho::customers::{BooksLink, CrmCustomerUpsert, CustomerRef, PhoneOwner};
pub use zoho::outbox::{NewOutboxItem, OutboxCounts, OutboxItem, OutboxStatus};
pub use zoho::runs::{SyncRun, SyncRunProgress, SyncRunStatus};
pub use zoho::{ZohoConnect, ZohoConnection, ZohoStatus};

/// A new time-ordered text id (UUIDv7). Ordering by id approximates ordering by creation.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
