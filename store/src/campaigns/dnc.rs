//! A tenant's do-not-call list: E.164 numbers that campaigns never dial (checked when a contact
//! is claimed, see `claim`).

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{CallId, Store, StoreError, TenantId};

/// Where a do-not-call entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DncSource {
    /// The admin API.
    Api,
    /// A CSV import.
    Csv,
    /// `agent dnc add`.
    Cli,
    /// The callee asked during a call (the flow's `add_to_dnc` tool).
    Call,
}

impl DncSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DncSource::Api => "api",
            DncSource::Csv => "csv",
            DncSource::Cli => "cli",
            DncSource::Call => "call",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "api" => DncSource::Api,
            "csv" => DncSource::Csv,
            "cli" => DncSource::Cli,
            "call" => DncSource::Call,
            _ => {
                return Err(StoreError::Corrupt {
                    what: "dnc source",
                    value: s.to_owned(),
                });
            }
        })
    }
}

/// A number on the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DncEntry {
    pub tenant_id: TenantId,
    /// E.164.
    pub phone: String,
    pub source: DncSource,
    pub reason: Option<String>,
    /// The call in which the callee asked (source `call`).
    pub call_id: Option<CallId>,
    pub created_at: i64,
}

/// A number to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDnc {
    /// E.164 (the caller normalises).
    pub phone: String,
    pub source: DncSource,
    pub reason: Option<String>,
    pub call_id: Option<CallId>,
}

impl Store {
    /// Adds numbers to a tenant's list in one transaction; numbers already listed keep their
    /// first entry. Returns how many were new.
    pub async fn add_dnc(
        &self,
        tenant_id: &TenantId,
        entries: &[NewDnc],
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut added = 0;
        for e in entries {
            added += sqlx::query(
                "INSERT INTO dnc_numbers (tenant_id, phone, source, reason, call_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, phone) DO NOTHING",
            )
            .bind(tenant_id.as_str())
            .bind(&e.phone)
            .bind(e.source.as_str())
            .bind(&e.reason)
            .bind(e.call_id.as_ref().map(CallId::as_str))
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Takes a number off the list; false when it was not on it.
    pub async fn remove_dnc(&self, tenant_id: &TenantId, phone: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM dnc_numbers WHERE tenant_id = $1 AND phone = $2")
            .bind(tenant_id.as_str())
            .bind(phone)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether a number is on a tenant's list.
    pub async fn is_dnc(&self, tenant_id: &TenantId, phone: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM dnc_numbers WHERE tenant_id = $1 AND phone = $2")
            .bind(tenant_id.as_str())
            .bind(phone)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// A tenant's list in number order, `limit` at a time after `after`.
    pub async fn list_dnc(
        &self,
        tenant_id: &TenantId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Vec<DncEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant_id, phone, source, reason, call_id, created_at FROM dnc_numbers \
             WHERE tenant_id = $1 AND ($2 IS NULL OR phone > $2) ORDER BY phone LIMIT $3",
        )
        .bind(tenant_id.as_str())
        .bind(after)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(dnc_from_row).collect()
    }
}

fn dnc_from_row(r: &AnyRow) -> Result<DncEntry, StoreError> {
    Ok(DncEntry {
        tenant_id: TenantId::new(r.get::<String, _>(0)),
        phone: r.get(1),
        source: DncSource::parse(&r.get::<String, _>(2))?,
        reason: r.get(3),
        call_id: r.get::<Option<String>, _>(4).map(CallId::new),
        created_at: r.get(5),
    })
}
