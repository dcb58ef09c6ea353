//! CSV import into the customers cache (`agent customers import FILE.csv [--invoices FILE.csv]`),
//! until the Zoho sync exists.
//!
//! # Customers file
//!
//! UTF-8, comma-separated, one header row naming the columns (any order, case-insensitive):
//!
//! | column | required | meaning |
//! |---|---|---|
//! | `external_id` | yes | the customer's id in the source system; re-importing it updates the customer |
//! | `name` | yes | full name (greetings use it) |
//! | `company` | no | |
//! | `email` | no | `local@domain` |
//! | `phone` | no | one or more numbers separated by `;`, each optionally prefixed with its kind (`mobile:`, `work:`, `home:`, `other:`; default `work`). National numbers are read in the default region. A customer's numbers are replaced on re-import. |
//! | `postal_code` | no | for caller verification |
//! | `balance` | no | outstanding balance as a decimal in major units (`142.50`; `1,234.50` when quoted); empty means 0 |
//! | `currency` | yes (per row) | ISO 4217 code, e.g. `USD` |
//! | `zoho_contact_id`, `zoho_books_id` | no | external ids kept for the Zoho sync |
//!
//! ```csv
//! external_id,name,company,email,phone,postal_code,balance,currency
//! C-1001,Jane Doe,Doe Bakery,jane@example.com,+15551234567;mobile:(555) 765-4321,94107,142.50,USD
//! ```
//!
//! # Invoices file
//!
//! Same rules; each row names its customer by the customers file's `external_id`, which must be
//! imported first. Invoices are keyed by `number` (re-importing a number updates it).
//!
//! | column | required | meaning |
//! |---|---|---|
//! | `customer_external_id` | yes | |
//! | `number` | yes | invoice number, unique per tenant |
//! | `status` | yes | a lower-case word such as `open`, `overdue`, `partially_paid`, `paid`, `void` |
//! | `total`, `balance` | yes | decimals in major units, like the customers' balance |
//! | `currency` | yes | ISO 4217 |
//! | `due_date` | yes | `YYYY-MM-DD` |
//! | `issue_date` | no | `YYYY-MM-DD` |
//! | `zoho_invoice_id` | no | |
//!
//! # Behaviour
//!
//! Money is parsed exactly into minor units (no floats). A bad row (missing field, bad money,
//! bad phone, bad date, unknown customer, wrong number of fields, invalid UTF-8) is rejected
//! with its line number and reason and the import goes on. Good rows are written in batches,
//! **one transaction per batch**; a storage failure stops the import
//! ([`ImportError::Store`] says how many rows were already committed). An external id repeated
//! in one file is applied in file order: the later row updates the earlier.
//!
//! The CSV is read with blocking I/O between batches; the import is a command-line job, not
//! something that runs next to live calls on the same runtime thread.

mod rows;

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use store::{Store, StoreError, TenantId, UpsertOutcome};

use crate::money::MoneyError;
use crate::phone::{PhoneError, PhoneNormalizer};
use rows::{Columns, CustomerRow, InvoiceRow, RowReader};

/// Rows per transaction unless [`ImportOptions::batch_size`] says otherwise.
pub const DEFAULT_BATCH: usize = 1_000;

/// At most this many [`RejectedRow`]s are kept in a report; the rest are only counted.
pub const MAX_REJECTIONS_KEPT: usize = 10_000;

/// Imports the customers CSV at `path` for `tenant_id`, reading national phone numbers in
/// `default_region` (ISO 3166-1 alpha-2, e.g. `"US"`). See the module docs for the format.
pub async fn import_csv(
    store: &Store,
    tenant_id: &TenantId,
    path: &Path,
    default_region: &str,
) -> Result<ImportReport, ImportError> {
    let options = ImportOptions::new(PhoneNormalizer::new(default_region)?);
    let file = open(path)?;
    import_customers(store, tenant_id, file, &options).await
}

/// Imports the invoices CSV at `path` for `tenant_id`; its customers must be imported first.
pub async fn import_invoices_csv(
    store: &Store,
    tenant_id: &TenantId,
    path: &Path,
) -> Result<ImportReport, ImportError> {
    let file = open(path)?;
    import_invoices(store, tenant_id, file, &ImportOptions::default()).await
}

/// Import settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Reads national phone numbers.
    pub phones: PhoneNormalizer,
    /// Good rows per transaction (at least 1).
    pub batch_size: usize,
    /// `updated_at` of what is written; the wall clock unless set.
    pub now_ms: i64,
}

impl ImportOptions {
    /// Defaults with `phones` as the normaliser.
    pub fn new(phones: PhoneNormalizer) -> ImportOptions {
        ImportOptions {
            phones,
            batch_size: DEFAULT_BATCH,
            now_ms: unix_ms_now(),
        }
    }

    /// Sets the batch size (rows per transaction).
    pub fn with_batch_size(mut self, rows: usize) -> ImportOptions {
        self.batch_size = rows.max(1);
        self
    }

    /// Sets the timestamp written as `updated_at`.
    pub fn with_now_ms(mut self, now_ms: i64) -> ImportOptions {
        self.now_ms = now_ms;
        self
    }
}

impl Default for ImportOptions {
    /// Region `US`, [`DEFAULT_BATCH`], the wall clock.
    fn default() -> Self {
        ImportOptions::new(PhoneNormalizer::default())
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    /// Rows that created a record.
    pub inserted: u64,
    /// Rows that updated an existing record (including a repeat within the file).
    pub updated: u64,
    /// Rows refused, in file order (the first [`MAX_REJECTIONS_KEPT`]).
    pub rejected: Vec<RejectedRow>,
    /// All refused rows, including those not kept in `rejected`.
    pub rejected_count: u64,
}

impl ImportReport {
    /// Rows written (inserted + updated).
    pub fn imported(&self) -> u64 {
        self.inserted + self.updated
    }

    fn reject(&mut self, row: RejectedRow) {
        self.rejected_count += 1;
        if self.rejected.len() < MAX_REJECTIONS_KEPT {
            self.rejected.push(row);
        }
    }

    fn count(&mut self, outcomes: impl IntoIterator<Item = UpsertOutcome>) {
        for o in outcomes {
            match o {
                UpsertOutcome::Inserted => self.inserted += 1,
                UpsertOutcome::Updated => self.updated += 1,
            }
        }
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} inserted, {} updated, {} rejected",
            self.inserted, self.updated, self.rejected_count
        )
    }
}

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    /// 1-based line in the file where the row starts (the header is line 1).
    pub line: u64,
    /// The row's key when it could be read: the customer's external id or the invoice number.
    pub key: Option<String>,
    pub reason: RowError,
}

impl fmt::Display for RejectedRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "line {} ({key}): {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// Why one row was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RowError {
    /// Not the header's number of fields, or not UTF-8.
    #[error("malformed row: {detail}")]
    Malformed { detail: String },
    /// A required field is empty.
    #[error("{field} is required")]
    MissingField { field: &'static str },
    /// An amount or currency did not parse.
    #[error("{field}: {source}")]
    BadMoney {
        field: &'static str,
        #[source]
        source: MoneyError,
    },
    /// One of the `phone` entries (1-based position) is not a phone number.
    #[error("phone #{position}: {source}")]
    BadPhone {
        position: usize,
        #[source]
        source: PhoneError,
    },
    /// A phone kind prefix other than work, mobile, home, other.
    #[error("phone #{position}: unknown kind {kind:?} (work, mobile, home, other)")]
    BadPhoneKind { position: usize, kind: String },
    #[error("email is not of the form local@domain")]
    BadEmail,
    /// Not a real `YYYY-MM-DD` date.
    #[error("{field} {value:?} is not a YYYY-MM-DD date")]
    BadDate { field: &'static str, value: String },
    /// Not a lower-case word (`a`–`z`, `_`).
    #[error("status {value:?} is not a lower-case word such as open, overdue or paid")]
    BadStatus { value: String },
    /// The invoice's customer is not in the store for this tenant.
    #[error("no customer with external_id {external_id:?} (import customers first)")]
    UnknownCustomer { external_id: String },
}

/// Why an import could not run or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading the file failed (I/O), or its header row is unreadable.
    #[error("cannot read the CSV: {source}")]
    Read {
        #[source]
        source: csv::Error,
    },
    /// The header lacks a required column.
    #[error("the header has no {column:?} column")]
    MissingColumn { column: &'static str },
    /// The header names a column this format does not have (likely a typo that would
    /// otherwise drop data silently).
    #[error("unknown column {column:?} in the header")]
    UnknownColumn { column: String },
    /// The header names a column twice.
    #[error("column {column:?} appears twice in the header")]
    DuplicateColumn { column: String },
    /// The default region is unknown.
    #[error(transparent)]
    Region(#[from] PhoneError),
    /// Writing a batch failed; the batches before it are committed.
    #[error("storage failed after {committed} rows were committed: {source}")]
    Store {
        committed: u64,
        #[source]
        source: StoreError,
    },
}

/// Imports customers from CSV text (the customers format in the module docs).
pub async fn import_customers<R: Read>(
    store: &Store,
    tenant_id: &TenantId,
    input: R,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let mut reader = RowReader::new(input, &Columns::CUSTOMERS)?;
    let mut report = ImportReport::default();
    let mut batch = Vec::with_capacity(options.batch_size);
    while let Some(row) = reader.next_row() {
        match row.and_then(|r| CustomerRow::parse(&r, &options.phones)) {
            Ok(customer) => batch.push(customer.0),
            Err(rejected) => report.reject(rejected),
        }
        if batch.len() >= options.batch_size {
            write_customers(store, tenant_id, &mut batch, options, &mut report).await?;
        }
    }
    reader.finish()?;
    write_customers(store, tenant_id, &mut batch, options, &mut report).await?;
    refresh_statistics(store, &report).await?;
    Ok(report)
}

/// Imports invoices from CSV text (the invoices format in the module docs).
pub async fn import_invoices<R: Read>(
    store: &Store,
    tenant_id: &TenantId,
    input: R,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let mut reader = RowReader::new(input, &Columns::INVOICES)?;
    let mut report = ImportReport::default();
    let mut batch: Vec<(u64, InvoiceRow)> = Vec::with_capacity(options.batch_size);
    while let Some(row) = reader.next_row() {
        match row.and_then(|r| InvoiceRow::parse(&r).map(|inv| (r.line, inv))) {
            Ok(invoice) => batch.push(invoice),
            Err(rejected) => report.reject(rejected),
        }
        if batch.len() >= options.batch_size {
            write_invoices(store, tenant_id, &mut batch, options, &mut report).await?;
        }
    }
    reader.finish()?;
    write_invoices(store, tenant_id, &mut batch, options, &mut report).await?;
    refresh_statistics(store, &report).await?;
    // Unknown customers are found per batch, after that batch's other rejections.
    report.rejected.sort_by_key(|r| r.line);
    Ok(report)
}

async fn write_customers(
    store: &Store,
    tenant_id: &TenantId,
    batch: &mut Vec<store::CustomerUpsert>,
    options: &ImportOptions,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let done = store
        .upsert_customers(tenant_id, batch, options.now_ms)
        .await
        .map_err(|source| ImportError::Store {
            committed: report.imported(),
            source,
        })?;
    report.count(done.into_iter().map(|u| u.outcome));
    batch.clear();
    Ok(())
}

async fn write_invoices(
    store: &Store,
    tenant_id: &TenantId,
    batch: &mut Vec<(u64, InvoiceRow)>,
    options: &ImportOptions,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let failed = |source| ImportError::Store {
        committed: report.imported(),
        source,
    };
    let external: Vec<&str> = batch
        .iter()
        .map(|(_, r)| r.customer_external_id.as_str())
        .collect();
    let ids = store
        .customer_ids_by_external_ids(tenant_id, &external)
        .await
        .map_err(failed)?;
    let mut good = Vec::with_capacity(batch.len());
    let mut unknown = Vec::new();
    for (line, row) in batch.drain(..) {
        match ids.get(&row.customer_external_id) {
            Some(id) => good.push(row.into_upsert(id.clone())),
            None => unknown.push(RejectedRow {
                line,
                key: Some(row.invoice.number),
                reason: RowError::UnknownCustomer {
                    external_id: row.customer_external_id,
                },
            }),
        }
    }
    for r in unknown {
        report.reject(r);
    }
    if good.is_empty() {
        return Ok(());
    }
    let failed = |source| ImportError::Store {
        committed: report.imported(),
        source,
    };
    let done = store
        .upsert_invoices(tenant_id, &good, options.now_ms)
        .await
        .map_err(failed)?;
    report.count(done.into_iter().map(|u| u.outcome));
    Ok(())
}

/// Planner statistics after an import, so caller-ID lookups and the next re-import are planned
/// for the tables' real size (PostgreSQL's autovacuum may be off or behind; SQLite has no
/// statistics until ANALYZE runs).
async fn refresh_statistics(store: &Store, report: &ImportReport) -> Result<(), ImportError> {
    if report.imported() == 0 {
        return Ok(());
    }
    store.analyze().await.map_err(|source| ImportError::Store {
        committed: report.imported(),
        source,
    })
}

fn open(path: &Path) -> Result<std::fs::File, ImportError> {
    std::fs::File::open(path).map_err(|source| ImportError::Open {
        path: path.to_owned(),
        source,
    })
}

fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
