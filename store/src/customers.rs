//! The customers cache: customers of a tenant with their E.164 phone numbers, and their
//! invoices. Filled by imports (CSV today, the Zoho sync later) through batched upserts keyed by
//! the source's id; read by caller-ID lookup, which must answer in well under a millisecond.
//!
//! The store does not normalise phone numbers (that is `crm`'s job): it stores and matches the
//! exact E.164 text it is given.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Backend, Store, StoreError, TenantId, new_id};

/// A cached customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Customer {
    pub id: String,
    pub tenant_id: TenantId,
    /// Id in the system the record came from; imports upsert on it.
    pub external_id: String,
    pub zoho_contact_id: Option<String>,
    pub zoho_books_id: Option<String>,
    pub name: String,
    pub company: Option<String>,
    pub email: Option<String>,
    /// For caller verification; keep it out of listings.
    pub postal_code: Option<String>,
    /// Outstanding balance in minor units of `currency`.
    pub balance_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What kind of line a customer's number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneKind {
    Work,
    Mobile,
    Home,
    Other,
}

/// One of a customer's numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CustomerPhone {
    /// E.164, e.g. `+15551234567`; matched exactly.
    pub e164: String,
    pub kind: PhoneKind,
}

/// A customer as an import or sync delivers it. Its phones replace the stored ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerUpsert {
    pub external_id: String,
    pub zoho_contact_id: Option<String>,
    pub zoho_books_id: Option<String>,
    pub name: String,
    pub company: Option<String>,
    pub email: Option<String>,
    pub postal_code: Option<String>,
    pub balance_minor: i64,
    pub currency: String,
    pub phones: Vec<CustomerPhone>,
}

/// A cached invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invoice {
    pub id: String,
    pub tenant_id: TenantId,
    pub customer_id: String,
    /// The business's invoice number; imports upsert on it.
    pub number: String,
    pub zoho_invoice_id: Option<String>,
    /// e.g. `draft`, `open`, `overdue`, `partially_paid`, `paid`, `void`.
    pub status: String,
    pub total_minor: i64,
    pub balance_minor: i64,
    pub currency: String,
    /// `YYYY-MM-DD`, a calendar date in the business's time zone.
    pub issue_date: Option<String>,
    /// `YYYY-MM-DD`, a calendar date in the business's time zone.
    pub due_date: String,
    pub updated_at: i64,
}

/// An invoice as an import or sync delivers it, for a customer already in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceUpsert {
    /// The store's customer id (not the external id).
    pub customer_id: String,
    pub number: String,
    pub zoho_invoice_id: Option<String>,
    pub status: String,
    pub total_minor: i64,
    pub balance_minor: i64,
    pub currency: String,
    pub issue_date: Option<String>,
    pub due_date: String,
}

/// Whether an upsert created the row or changed an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpsertOutcome {
    Inserted,
    Updated,
}

/// The id of an upserted row and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted {
    pub id: String,
    pub outcome: UpsertOutcome,
}

/// Rows per multi-row statement. Keeps the bind count (13 per customer) far below SQLite's
/// 32,766 and PostgreSQL's 65,535 parameter limits.
pub(crate) const CHUNK_ROWS: usize = 400;

impl Store {
    /// Inserts or updates customers by `(tenant, external_id)` in **one transaction**, and
    /// replaces each one's phone numbers. Returns one [`Upserted`] per record, in order. An
    /// external id repeated within `records` is applied in order (the last one wins).
    pub async fn upsert_customers(
        &self,
        tenant_id: &TenantId,
        records: &[CustomerUpsert],
        now_ms: i64,
    ) -> Result<Vec<Upserted>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(records.len());
        for chunk in distinct_chunks(records, |r| r.external_id.as_str()) {
            out.extend(upsert_customer_chunk(&mut tx, tenant_id, chunk, now_ms).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Upserts one customer; see [`Store::upsert_customers`].
    pub async fn upsert_customer(
        &self,
        tenant_id: &TenantId,
        record: &CustomerUpsert,
        now_ms: i64,
    ) -> Result<Upserted, StoreError> {
        let mut done = self
            .upsert_customers(tenant_id, std::slice::from_ref(record), now_ms)
            .await?;
        done.pop().ok_or(StoreError::NotFound {
            what: "upserted customer",
        })
    }

    /// One customer of a tenant by the store's id.
    pub async fn customer(
        &self,
        tenant_id: &TenantId,
        id: &str,
    ) -> Result<Option<Customer>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.tenant_id = $1 AND c.id = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(customer_from_row))
    }

    /// One customer of a tenant by the source system's id.
    pub async fn customer_by_external_id(
        &self,
        tenant_id: &TenantId,
        external_id: &str,
    ) -> Result<Option<Customer>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.tenant_id = $1 AND c.external_id = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(customer_from_row))
    }

    /// Maps external ids to store ids for those that exist in the tenant.
    pub async fn customer_ids_by_external_ids(
        &self,
        tenant_id: &TenantId,
        external_ids: &[&str],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut map = HashMap::with_capacity(external_ids.len());
        for chunk in external_ids.chunks(CHUNK_ROWS) {
            let sql = format!(
                "SELECT external_id, id FROM customers WHERE tenant_id = $1 AND external_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(tenant_id.as_str());
            for ext in chunk {
                q = q.bind(*ext);
            }
            for row in q.fetch_all(&self.pool).await? {
                map.insert(row.get(0), row.get(1));
            }
        }
        Ok(map)
    }

    /// Customers of a tenant reachable at `e164`, at most `limit` (oldest first). This is the
    /// caller-ID lookup: one probe of the `customer_phones` primary key plus one primary-key
    /// read per match. Callers treat more than one match as ambiguous.
    pub async fn customers_by_phone(
        &self,
        tenant_id: &TenantId,
        e164: &str,
        limit: u32,
    ) -> Result<Vec<Customer>, StoreError> {
        let rows = sqlx::query(LOOKUP_BY_PHONE)
            .bind(tenant_id.as_str())
            .bind(e164)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(customer_from_row).collect())
    }

    /// The query plan of the caller-ID lookup for `tenant_id` and `e164`, one line per plan row
    /// (SQLite's `EXPLAIN QUERY PLAN`, PostgreSQL's `EXPLAIN`), so benchmarks and tests can
    /// check the index is used.
    pub async fn customer_lookup_plan(
        &self,
        tenant_id: &TenantId,
        e164: &str,
    ) -> Result<Vec<String>, StoreError> {
        let (prefix, column) = match self.backend() {
            Backend::Sqlite => ("EXPLAIN QUERY PLAN", 3),
            Backend::Postgres => ("EXPLAIN", 0),
        };
        let rows = sqlx::query(&format!("{prefix} {LOOKUP_BY_PHONE}"))
            .bind(tenant_id.as_str())
            .bind(e164)
            .bind(2_i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>(column)).collect())
    }

    /// Refreshes the planner's statistics (`ANALYZE`, the same statement on both engines).
    /// Worth running after a bulk import so PostgreSQL plans lookups with the index.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        sqlx::query("ANALYZE").execute(&self.pool).await?;
        Ok(())
    }

    /// A customer's phone numbers.
    pub async fn customer_phones(
        &self,
        tenant_id: &TenantId,
        customer_id: &str,
    ) -> Result<Vec<CustomerPhone>, StoreError> {
        let rows = sqlx::query(
            "SELECT e164, kind FROM customer_phones WHERE tenant_id = $1 AND customer_id = $2 \
             ORDER BY e164",
        )
        .bind(tenant_id.as_str())
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.get(1);
                Ok(CustomerPhone {
                    e164: r.get(0),
                    kind: kind.parse()?,
                })
            })
            .collect()
    }

    /// How many customers a tenant has.
    pub async fn count_customers(&self, tenant_id: &TenantId) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM customers WHERE tenant_id = $1")
            .bind(tenant_id.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get(0))
    }

    /// Inserts or updates invoices by `(tenant, number)` in one transaction. Every
    /// `customer_id` must be a customer of `tenant_id`, otherwise nothing is written and the
    /// result is [`StoreError::NotFound`]. A number repeated within `records` is applied in
    /// order (the last one wins).
    pub async fn upsert_invoices(
        &self,
        tenant_id: &TenantId,
        records: &[InvoiceUpsert],
        now_ms: i64,
    ) -> Result<Vec<Upserted>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let customer_ids: HashSet<&str> = records.iter().map(|r| r.customer_id.as_str()).collect();
        let customer_ids: Vec<&str> = customer_ids.into_iter().collect();
        for chunk in customer_ids.chunks(CHUNK_ROWS) {
            let sql = format!(
                "SELECT COUNT(*) FROM customers WHERE tenant_id = $1 AND id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(tenant_id.as_str());
            for id in chunk {
                q = q.bind(*id);
            }
            let found: i64 = q.fetch_one(&mut *tx).await?.get(0);
            if found != chunk.len() as i64 {
                return Err(StoreError::NotFound {
                    what: "customer of this tenant",
                });
            }
        }
        let mut out = Vec::with_capacity(records.len());
        for chunk in distinct_chunks(records, |r| r.number.as_str()) {
            out.extend(upsert_invoice_chunk(&mut tx, tenant_id, chunk, now_ms).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// A customer's invoices, latest due date first, at most `limit`.
    pub async fn invoices_for_customer(
        &self,
        tenant_id: &TenantId,
        customer_id: &str,
        limit: u32,
    ) -> Result<Vec<Invoice>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE tenant_id = $1 AND customer_id = $2 \
             ORDER BY due_date DESC, number DESC LIMIT $3"
        ))
        .bind(tenant_id.as_str())
        .bind(customer_id)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(invoice_from_row).collect())
    }
}

impl PhoneKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PhoneKind::Work => "work",
            PhoneKind::Mobile => "mobile",
            PhoneKind::Home => "home",
            PhoneKind::Other => "other",
        }
    }
}

impl fmt::Display for PhoneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PhoneKind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "work" => Ok(PhoneKind::Work),
            "mobile" => Ok(PhoneKind::Mobile),
            "home" => Ok(PhoneKind::Home),
            "other" => Ok(PhoneKind::Other),
            _ => Err(StoreError::Corrupt {
                what: "phone kind",
                value: s.to_owned(),
            }),
        }
    }
}

/// The caller-ID lookup. It checks the tenant on `customers` too, so a phone row can never
/// surface another tenant's customer whatever the data says; the join itself is on the
/// primary key only, so the planner probes it rather than scanning the tenant.
const LOOKUP_BY_PHONE: &str = "SELECT c.id, c.tenant_id, c.external_id, c.zoho_contact_id, \
     c.zoho_books_id, c.name, c.company, c.email, c.postal_code, c.balance_minor, c.currency, \
     c.created_at, c.updated_at \
     FROM customer_phones p JOIN customers c ON c.id = p.customer_id \
     WHERE p.tenant_id = $1 AND p.e164 = $2 AND c.tenant_id = $1 \
     ORDER BY c.created_at, c.id LIMIT $3";

pub(crate) const CUSTOMER_COLUMNS: &str = "c.id, c.tenant_id, c.external_id, c.zoho_contact_id, \
     c.zoho_books_id, c.name, c.company, c.email, c.postal_code, c.balance_minor, c.currency, \
     c.created_at, c.updated_at";

const INVOICE_COLUMNS: &str = "id, tenant_id, customer_id, number, zoho_invoice_id, status, \
     total_minor, balance_minor, currency, issue_date, due_date, updated_at";

pub(crate) fn customer_from_row(r: &AnyRow) -> Customer {
    Customer {
        id: r.get(0),
        tenant_id: TenantId::new(r.get::<String, _>(1)),
        external_id: r.get(2),
        zoho_contact_id: r.get(3),
        zoho_books_id: r.get(4),
        name: r.get(5),
        company: r.get(6),
        email: r.get(7),
        postal_code: r.get(8),
        balance_minor: r.get(9),
        currency: r.get(10),
        created_at: r.get(11),
        updated_at: r.get(12),
    }
}

fn invoice_from_row(r: &AnyRow) -> Invoice {
    Invoice {
        id: r.get(0),
        tenant_id: TenantId::new(r.get::<String, _>(1)),
        customer_id: r.get(2),
        number: r.get(3),
        zoho_invoice_id: r.get(4),
        status: r.get(5),
        total_minor: r.get(6),
        balance_minor: r.get(7),
        currency: r.get(8),
        issue_date: r.get(9),
        due_date: r.get(10),
        updated_at: r.get(11),
    }
}

/// `$first, $first+1, …` for `n` values.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    let mut s = String::with_capacity(n * 5);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('$');
        s.push_str(&(first + i).to_string());
    }
    s
}

/// `($1, …, $k), ($k+1, …), …` for `rows` rows of `cols` values each.
pub(crate) fn row_placeholders(cols: usize, rows: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        s.push_str(&placeholders(1 + r * cols, cols));
        s.push(')');
    }
    s
}

/// Splits `records` into runs of at most [`CHUNK_ROWS`] with distinct keys. One multi-row
/// `INSERT … ON CONFLICT DO UPDATE` must not touch a row twice (PostgreSQL rejects it), so a
/// repeated key starts a new run and is applied after the earlier one.
pub(crate) fn distinct_chunks<T>(records: &[T], key: impl Fn(&T) -> &str) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, r) in records.iter().enumerate() {
        if i - start == CHUNK_ROWS || seen.contains(key(r)) {
            chunks.push(&records[start..i]);
            start = i;
            seen.clear();
        }
        seen.insert(key(r));
    }
    if start < records.len() {
        chunks.push(&records[start..]);
    }
    chunks
}

/// Reads back the ids of just-upserted rows as `key → id` (no RETURNING: see the crate's
/// portability rules). A row whose id is one we generated was inserted; any other id means
/// the row existed and was updated.
///
/// The rows we inserted are found by primary key first, and only the remaining keys by
/// `(tenant_id, key)`. Both are plain index probes; a single `tenant_id = $1 AND key IN (…)`
/// over a large IN list lets a planner without statistics (a fresh bulk load, autovacuum off)
/// scan the whole tenant per statement instead, which made loads quadratic.
pub(crate) async fn ids_after_upsert(
    tx: &mut Transaction<'static, Any>,
    table: &'static str,
    key_column: &'static str,
    tenant_id: &TenantId,
    keys: &[&str],
    fresh: &[String],
) -> Result<HashMap<String, String>, StoreError> {
    let sql = format!(
        "SELECT {key_column}, id FROM {table} WHERE id IN ({})",
        placeholders(1, fresh.len())
    );
    let mut q = sqlx::query(&sql);
    for id in fresh {
        q = q.bind(id);
    }
    let mut ids: HashMap<String, String> = q
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let rest: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !ids.contains_key(*k))
        .collect();
    if rest.is_empty() {
        return Ok(ids);
    }
    let sql = format!(
        "SELECT {key_column}, id FROM {table} WHERE tenant_id = $1 AND {key_column} IN ({})",
        placeholders(2, rest.len())
    );
    let mut q = sqlx::query(&sql).bind(tenant_id.as_str());
    for key in &rest {
        q = q.bind(*key);
    }
    ids.extend(
        q.fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1))),
    );
    Ok(ids)
}

async fn upsert_customer_chunk(
    tx: &mut Transaction<'static, Any>,
    tenant_id: &TenantId,
    chunk: &[CustomerUpsert],
    now_ms: i64,
) -> Result<Vec<Upserted>, StoreError> {
    let fresh: Vec<String> = chunk.iter().map(|_| new_id()).collect();
    let sql = format!(
        "INSERT INTO customers (id, tenant_id, external_id, zoho_contact_id, zoho_books_id, name, \
         company, email, postal_code, balance_minor, currency, created_at, updated_at) VALUES {} \
         ON CONFLICT (tenant_id, external_id) DO UPDATE SET \
         zoho_contact_id = excluded.zoho_contact_id, zoho_books_id = excluded.zoho_books_id, \
         name = excluded.name, company = excluded.company, email = excluded.email, \
         postal_code = excluded.postal_code, balance_minor = excluded.balance_minor, \
         currency = excluded.currency, updated_at = excluded.updated_at",
        row_placeholders(13, chunk.len())
    );
    let mut q = sqlx::query(&sql);
    for (r, id) in chunk.iter().zip(&fresh) {
        q = q
            .bind(id)
            .bind(tenant_id.as_str())
            .bind(&r.external_id)
            .bind(&r.zoho_contact_id)
            .bind(&r.zoho_books_id)
            .bind(&r.name)
            .bind(&r.company)
            .bind(&r.email)
            .bind(&r.postal_code)
            .bind(r.balance_minor)
            .bind(&r.currency)
            .bind(now_ms)
            .bind(now_ms);
    }
    q.execute(&mut **tx).await?;

    let keys: Vec<&str> = chunk.iter().map(|r| r.external_id.as_str()).collect();
    let ids = ids_after_upsert(tx, "customers", "external_id", tenant_id, &keys, &fresh).await?;
    let mut out = Vec::with_capacity(chunk.len());
    for (r, fresh_id) in chunk.iter().zip(fresh) {
        let id = ids.get(&r.external_id).ok_or(StoreError::NotFound {
            what: "upserted customer",
        })?;
        let outcome = if *id == fresh_id {
            UpsertOutcome::Inserted
        } else {
            UpsertOutcome::Updated
        };
        out.push(Upserted {
            id: id.clone(),
            outcome,
        });
    }

    let rows: Vec<(&str, &[CustomerPhone])> = chunk
        .iter()
        .zip(&out)
        .map(|(r, u)| (u.id.as_str(), r.phones.as_slice()))
        .collect();
    replace_phones(tx, tenant_id, &rows).await?;
    Ok(out)
}

/// Replaces the phones of each `(customer id, phones)` row (ids of this tenant's customers).
pub(crate) async fn replace_phones(
    tx: &mut Transaction<'static, Any>,
    tenant_id: &TenantId,
    rows: &[(&str, &[CustomerPhone])],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    // By customer id only: the ids were just read from this tenant's rows, and a `tenant_id`
    // condition would let a planner without statistics (a fresh bulk load) pick the primary
    // key's tenant prefix and scan every phone of the tenant per statement.
    for part in rows.chunks(CHUNK_ROWS) {
        let sql = format!(
            "DELETE FROM customer_phones WHERE customer_id IN ({})",
            placeholders(1, part.len())
        );
        let mut q = sqlx::query(&sql);
        for (id, _) in part {
            q = q.bind(*id);
        }
        q.execute(&mut **tx).await?;
    }
    let phones: Vec<(&str, &CustomerPhone)> = rows
        .iter()
        .flat_map(|(id, phones)| phones.iter().map(move |p| (*id, p)))
        .collect();
    for part in phones.chunks(CHUNK_ROWS * 2) {
        // DO NOTHING: the same number listed twice for one customer is stored once.
        let sql = format!(
            "INSERT INTO customer_phones (tenant_id, e164, customer_id, kind) VALUES {} \
             ON CONFLICT DO NOTHING",
            row_placeholders(4, part.len())
        );
        let mut q = sqlx::query(&sql);
        for (customer_id, p) in part {
            q = q
                .bind(tenant_id.as_str())
                .bind(&p.e164)
                .bind(*customer_id)
                .bind(p.kind.as_str());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn upsert_invoice_chunk(
    tx: &mut Transaction<'static, Any>,
    tenant_id: &TenantId,
    chunk: &[InvoiceUpsert],
    now_ms: i64,
) -> Result<Vec<Upserted>, StoreError> {
    let fresh: Vec<String> = chunk.iter().map(|_| new_id()).collect();
    let sql = format!(
        "INSERT INTO invoices (id, tenant_id, customer_id, number, zoho_invoice_id, status, \
         total_minor, balance_minor, currency, issue_date, due_date, updated_at) VALUES {} \
         ON CONFLICT (tenant_id, number) DO UPDATE SET customer_id = excluded.customer_id, \
         zoho_invoice_id = excluded.zoho_invoice_id, status = excluded.status, \
         total_minor = excluded.total_minor, balance_minor = excluded.balance_minor, \
         currency = excluded.currency, issue_date = excluded.issue_date, \
         due_date = excluded.due_date, updated_at = excluded.updated_at",
        row_placeholders(12, chunk.len())
    );
    let mut q = sqlx::query(&sql);
    for (r, id) in chunk.iter().zip(&fresh) {
        q = q
            .bind(id)
            .bind(tenant_id.as_str())
            .bind(&r.customer_id)
            .bind(&r.number)
            .bind(&r.zoho_invoice_id)
            .bind(&r.status)
            .bind(r.total_minor)
            .bind(r.balance_minor)
            .bind(&r.currency)
            .bind(&r.issue_date)
            .bind(&r.due_date)
            .bind(now_ms);
    }
    q.execute(&mut **tx).await?;

    let keys: Vec<&str> = chunk.iter().map(|r| r.number.as_str()).collect();
    let ids = ids_after_upsert(tx, "invoices", "number", tenant_id, &keys, &fresh).await?;
    chunk
        .iter()
        .zip(fresh)
        .map(|(r, fresh_id)| {
            let id = ids.get(&r.number).ok_or(StoreError::NotFound {
                what: "upserted invoice",
            })?;
            let outcome = if *id == fresh_id {
                UpsertOutcome::Inserted
            } else {
                UpsertOutcome::Updated
            };
            Ok(Upserted {
                id: id.clone(),
                outcome,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_consecutively() {
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
        assert_eq!(row_placeholders(2, 2), "($1, $2), ($3, $4)");
    }

    #[test]
    fn repeated_keys_start_a_new_chunk() {
        let keys = ["a", "b", "a", "c", "c"];
        let chunks = distinct_chunks(&keys, |k| k);
        assert_eq!(chunks, vec![&["a", "b"][..], &["a", "c"][..], &["c"][..]]);
        let many: Vec<String> = (0..CHUNK_ROWS * 2 + 1).map(|i| i.to_string()).collect();
        let sizes: Vec<usize> = distinct_chunks(&many, |k| k)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [CHUNK_ROWS, CHUNK_ROWS, 1]);
    }
}
