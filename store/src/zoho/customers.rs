//! Customer-cache operations a Zoho sync needs beyond the plain upserts in `customers`:
//! CRM upserts that keep the Books fields, linking a Books contact to a CRM customer, finding
//! customers by phone or by source, and the deletions a sync applies.
//!
//! External ids carry the source (`zoho:crm:Contacts:<id>`, `zoho:crm:Leads:<id>`,
//! `zoho:books:<contact_id>`); the rules for them live in `crm::zoho`, not here.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::customers::{
    CHUNK_ROWS, distinct_chunks, ids_after_upsert, placeholders, replace_phones, row_placeholders,
};
use crate::{CustomerPhone, Store, StoreError, TenantId, UpsertOutcome, Upserted, new_id};

/// A CRM record for the cache. An upsert replaces the name and contact fields and the phones,
/// and keeps what Books contributed (balance, currency, Books id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmCustomerUpsert {
    pub external_id: String,
    /// The CRM record id (Contacts or Leads).
    pub zoho_contact_id: String,
    pub name: String,
    pub company: Option<String>,
    pub email: Option<String>,
    pub postal_code: Option<String>,
    pub phones: Vec<CustomerPhone>,
}

/// Books data for a customer that already exists (linked from Books to a CRM customer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BooksLink {
    pub customer_id: String,
    pub zoho_books_id: String,
    pub balance_minor: i64,
    pub currency: String,
}

/// A customer's identity columns, for matching and deletions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRef {
    pub id: String,
    pub external_id: String,
    pub zoho_contact_id: Option<String>,
    pub zoho_books_id: Option<String>,
}

/// A customer reachable at a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneOwner {
    pub e164: String,
    pub customer: CustomerRef,
}

const REF_COLUMNS: &str = "c.id, c.external_id, c.zoho_contact_id, c.zoho_books_id";

fn ref_from_row(r: &AnyRow, first: usize) -> CustomerRef {
    CustomerRef {
        id: r.get(first),
        external_id: r.get(first + 1),
        zoho_contact_id: r.get(first + 2),
        zoho_books_id: r.get(first + 3),
    }
}

impl Store {
    /// Upserts CRM records by `(tenant, external_id)` in one transaction, replacing their
    /// phones. New customers start with a zero balance in `currency`; existing ones keep their
    /// balance, currency and Books id.
    pub async fn upsert_crm_customers(
        &self,
        tenant_id: &TenantId,
        records: &[CrmCustomerUpsert],
        currency: &str,
        now_ms: i64,
    ) -> Result<Vec<Upserted>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(records.len());
        for chunk in distinct_chunks(records, |r| r.external_id.as_str()) {
            let fresh: Vec<String> = chunk.iter().map(|_| new_id()).collect();
            let sql = format!(
                "INSERT INTO customers (id, tenant_id, external_id, zoho_contact_id, name, \
                 company, email, postal_code, balance_minor, currency, created_at, updated_at) \
                 VALUES {} ON CONFLICT (tenant_id, external_id) DO UPDATE SET \
                 zoho_contact_id = excluded.zoho_contact_id, name = excluded.name, \
                 company = excluded.company, email = excluded.email, \
                 postal_code = excluded.postal_code, updated_at = excluded.updated_at",
                row_placeholders(12, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for (r, id) in chunk.iter().zip(&fresh) {
                q = q
                    .bind(id)
                    .bind(tenant_id.as_str())
                    .bind(&r.external_id)
                    .bind(&r.zoho_contact_id)
                    .bind(&r.name)
                    .bind(&r.company)
                    .bind(&r.email)
                    .bind(&r.postal_code)
                    .bind(0_i64)
                    .bind(currency)
                    .bind(now_ms)
                    .bind(now_ms);
            }
            q.execute(&mut *tx).await?;
            let keys: Vec<&str> = chunk.iter().map(|r| r.external_id.as_str()).collect();
            let ids = ids_after_upsert(
                &mut tx,
                "customers",
                "external_id",
                tenant_id,
                &keys,
                &fresh,
            )
            .await?;
            let mut done = Vec::with_capacity(chunk.len());
            for (r, fresh_id) in chunk.iter().zip(fresh) {
                let id = ids.get(&r.external_id).ok_or(StoreError::NotFound {
                    what: "upserted customer",
                })?;
                let outcome = if *id == fresh_id {
                    UpsertOutcome::Inserted
                } else {
                    UpsertOutcome::Updated
                };
                done.push(Upserted {
                    id: id.clone(),
                    outcome,
                });
            }
            let rows: Vec<(&str, &[CustomerPhone])> = chunk
                .iter()
                .zip(&done)
                .map(|(r, u)| (u.id.as_str(), r.phones.as_slice()))
                .collect();
            replace_phones(&mut tx, tenant_id, &rows).await?;
            out.extend(done);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Every customer of the tenant reachable at any of `e164s`.
    pub async fn customers_by_phones(
        &self,
        tenant_id: &TenantId,
        e164s: &[&str],
    ) -> Result<Vec<PhoneOwner>, StoreError> {
        let mut out = Vec::new();
        for chunk in e164s.chunks(CHUNK_ROWS) {
            let sql = format!(
                "SELECT p.e164, {REF_COLUMNS} FROM customer_phones p \
                 JOIN customers c ON c.id = p.customer_id \
                 WHERE p.tenant_id = $1 AND c.tenant_id = $1 AND p.e164 IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(tenant_id.as_str());
            for e in chunk {
                q = q.bind(*e);
            }
            for row in q.fetch_all(&self.pool).await? {
                out.push(PhoneOwner {
                    e164: row.get(0),
                    customer: ref_from_row(&row, 1),
                });
            }
        }
        Ok(out)
    }

    /// Customers whose external id starts with `prefix` (e.g. `zoho:crm:Contacts:`).
    pub async fn customer_refs_by_source(
        &self,
        tenant_id: &TenantId,
        prefix: &str,
    ) -> Result<Vec<CustomerRef>, StoreError> {
        // substr() compares exactly on both engines (LIKE is case-insensitive on SQLite and
        // its index use differs); a full sync reads the tenant's rows once anyway.
        let rows = sqlx::query(&format!(
            "SELECT {REF_COLUMNS} FROM customers c WHERE c.tenant_id = $1 \
             AND substr(c.external_id, 1, length($2)) = $2 ORDER BY c.external_id"
        ))
        .bind(tenant_id.as_str())
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ref_from_row(r, 0))
            .filter(|c| c.external_id.starts_with(prefix))
            .collect())
    }

    /// Customers linked to a Books contact.
    pub async fn customer_refs_with_books_id(
        &self,
        tenant_id: &TenantId,
    ) -> Result<Vec<CustomerRef>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REF_COLUMNS} FROM customers c WHERE c.tenant_id = $1 \
             AND c.zoho_books_id IS NOT NULL ORDER BY c.id"
        ))
        .bind(tenant_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| ref_from_row(r, 0)).collect())
    }

    /// Customers by Books contact id (`zoho_books_id → customer`).
    pub async fn customers_by_books_ids(
        &self,
        tenant_id: &TenantId,
        books_ids: &[&str],
    ) -> Result<HashMap<String, CustomerRef>, StoreError> {
        let mut out = HashMap::with_capacity(books_ids.len());
        for chunk in books_ids.chunks(CHUNK_ROWS) {
            let sql = format!(
                "SELECT {REF_COLUMNS} FROM customers c WHERE c.tenant_id = $1 \
                 AND c.zoho_books_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(tenant_id.as_str());
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&self.pool).await? {
                let c = ref_from_row(&row, 0);
                if let Some(books) = c.zoho_books_id.clone() {
                    out.insert(books, c);
                }
            }
        }
        Ok(out)
    }

    /// Customers by external id (`external_id → customer`).
    pub async fn customer_refs_by_external_ids(
        &self,
        tenant_id: &TenantId,
        external_ids: &[&str],
    ) -> Result<HashMap<String, CustomerRef>, StoreError> {
        let mut out = HashMap::with_capacity(external_ids.len());
        for chunk in external_ids.chunks(CHUNK_ROWS) {
            let sql = format!(
                "SELECT {REF_COLUMNS} FROM customers c WHERE c.tenant_id = $1 \
                 AND c.external_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(tenant_id.as_str());
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&self.pool).await? {
                let c = ref_from_row(&row, 0);
                out.insert(c.external_id.clone(), c);
            }
        }
        Ok(out)
    }

    /// Writes Books data onto existing customers of the tenant (one transaction).
    pub async fn link_books_contacts(
        &self,
        tenant_id: &TenantId,
        links: &[BooksLink],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for l in links {
            sqlx::query(
                "UPDATE customers SET zoho_books_id = $1, balance_minor = $2, currency = $3, \
                 updated_at = $4 WHERE tenant_id = $5 AND id = $6",
            )
            .bind(&l.zoho_books_id)
            .bind(l.balance_minor)
            .bind(&l.currency)
            .bind(now_ms)
            .bind(tenant_id.as_str())
            .bind(&l.customer_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Gives a customer a new external id and CRM id (a Books-only customer that a CRM record
    /// turned out to describe). Its store id, phones and invoices stay.
    pub async fn rekey_customer(
        &self,
        tenant_id: &TenantId,
        customer_id: &str,
        external_id: &str,
        zoho_contact_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE customers SET external_id = $1, zoho_contact_id = $2, updated_at = $3 \
             WHERE tenant_id = $4 AND id = $5",
        )
        .bind(external_id)
        .bind(zoho_contact_id)
        .bind(now_ms)
        .bind(tenant_id.as_str())
        .bind(customer_id)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_insert(e, "customer external id"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "customer" });
        }
        Ok(())
    }

    /// Removes the Books side of customers: Books id cleared, balance zero, invoices deleted.
    pub async fn detach_books(
        &self,
        tenant_id: &TenantId,
        customer_ids: &[&str],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in customer_ids.chunks(CHUNK_ROWS) {
            let sql = format!(
                "DELETE FROM invoices WHERE tenant_id = $1 AND customer_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(tenant_id.as_str());
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
            let list = placeholders(3, chunk.len());
            let sql = format!(
                "UPDATE customers SET zoho_books_id = NULL, balance_minor = 0, updated_at = $2 \
                 WHERE tenant_id = $1 AND id IN ({list})"
            );
            let mut q = sqlx::query(&sql).bind(tenant_id.as_str()).bind(now_ms);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes customers with their phones and invoices; returns how many customers went.
    /// Messages, callbacks and call records keep their (now dangling) customer ids.
    pub async fn delete_customers(
        &self,
        tenant_id: &TenantId,
        customer_ids: &[&str],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut deleted = 0;
        for chunk in customer_ids.chunks(CHUNK_ROWS) {
            let list = placeholders(2, chunk.len());
            for table in ["invoices", "customer_phones", "customers"] {
                let column = if table == "customers" {
                    "id"
                } else {
                    "customer_id"
                };
                let sql =
                    format!("DELETE FROM {table} WHERE tenant_id = $1 AND {column} IN ({list})");
                let mut q = sqlx::query(&sql).bind(tenant_id.as_str());
                for id in chunk {
                    q = q.bind(*id);
                }
                let done = q.execute(&mut *tx).await?;
                if table == "customers" {
                    deleted += done.rows_affected();
                }
            }
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// Folds customer `from` into `into`: its invoices move, its phones and row go. Used when
    /// a Books-only customer turns out to be a CRM customer's Books contact.
    pub async fn merge_customer_into(
        &self,
        tenant_id: &TenantId,
        from: &str,
        into: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE invoices SET customer_id = $1 WHERE tenant_id = $2 AND customer_id = $3",
        )
        .bind(into)
        .bind(tenant_id.as_str())
        .bind(from)
        .execute(&mut *tx)
        .await?;
        for sql in [
            "DELETE FROM customer_phones WHERE tenant_id = $1 AND customer_id = $2",
            "DELETE FROM customers WHERE tenant_id = $1 AND id = $2",
        ] {
            sqlx::query(sql)
                .bind(tenant_id.as_str())
                .bind(from)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Invoices that came from Books, as `(store id, Books invoice id)`.
    pub async fn books_invoice_refs(
        &self,
        tenant_id: &TenantId,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, zoho_invoice_id FROM invoices WHERE tenant_id = $1 \
             AND zoho_invoice_id IS NOT NULL ORDER BY id",
        )
        .bind(tenant_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Deletes invoices by store id; returns how many went.
    pub async fn delete_invoices(
        &self,
        tenant_id: &TenantId,
        invoice_ids: &[&str],
    ) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for chunk in invoice_ids.chunks(CHUNK_ROWS) {
            let sql = format!(
                "DELETE FROM invoices WHERE tenant_id = $1 AND id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(tenant_id.as_str());
            for id in chunk {
                q = q.bind(*id);
            }
            deleted += q.execute(&self.pool).await?.rows_affected();
        }
        Ok(deleted)
    }

    /// How many invoices a tenant has.
    pub async fn count_invoices(&self, tenant_id: &TenantId) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM invoices WHERE tenant_id = $1")
            .bind(tenant_id.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get(0))
    }
}
