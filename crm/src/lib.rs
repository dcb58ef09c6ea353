//! Customer data for calls: phone normalisation to E.164, the customer directory over the
//! store's customers cache, CSV import into that cache, and the flow engine's
//! [`dialogs::CallServices`] implemented over the store.
//!
//! - [`phone`]: [`PhoneNormalizer`] turns caller IDs (`+1555…`, `5551234567`,
//!   `sip:+1555…@host`) into [`E164`] or a typed [`PhoneError`].
//! - [`money`]: exact decimal → minor units parsing.
//! - [`directory`]: [`CustomerDirectory::lookup_caller`], caller ID → customer + invoices.
//! - [`import`]: [`import_csv`] / [`import_invoices_csv`] (format in the module docs).
//! - [`services`]: [`StoreCallServices`], one per call.
//! - [`zoho`]: Zoho CRM and Books: OAuth per tenant with encrypted tokens, the sync into the
//!   cache, and the call write-back outbox.
//! - [`secrets`]: the encryption key checked against the database, and key rotation.
//! - [`campaign`]: campaign contacts (CSV, customer filter), callee time zones, calling
//!   windows ([`campaign::Schedule`]), settings validation, do-not-call CSVs.
//!
//! What it does **not** do: it never talks to callers, and never issues SQL itself (storage
//! goes through `store`). The cache is filled by CSV import and by the Zoho sync.

pub mod campaign;
pub mod directory;
pub mod import;
pub mod money;
pub mod phone;
pub mod secrets;
pub mod services;
pub mod zoho;

pub use directory::{CallerMatch, CustomerDirectory, DirectoryError, KnownCaller, LOOKUP_INVOICES};
pub use import::{
    ImportError, ImportOptions, ImportReport, RejectedRow, RowError, import_csv, import_customers,
    import_invoices, import_invoices_csv,
};
pub use money::MoneyError;
pub use phone::{E164, PhoneError, PhoneNormalizer};
pub use services::{CallEventSink, ServicesError, StoreCallServices, event_parts};
