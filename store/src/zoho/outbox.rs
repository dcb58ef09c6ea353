//! The write-back outbox: rows a worker sends to Zoho, durable across restarts.
//!
//! Claiming is a compare-and-set per row (`UPDATE … WHERE id = $ AND <still claimable>`), which
//! both engines serialise: on PostgreSQL a second daemon's UPDATE waits for the first one's
//! row lock, re-checks the condition and matches nothing. No `FOR UPDATE SKIP LOCKED` (SQLite
//! has none). A lease that runs out (the holder died) makes the row claimable again, so a row is
//! sent at least once; it is sent twice only if a send outlasts its lease, which the worker
//! prevents by keeping its HTTP timeout well under the lease.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{CallId, Store, StoreError, TenantId, new_id};

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Waiting to be sent (or retried at `next_attempt_at`).
    Pending,
    /// Zoho accepted it.
    Sent,
    /// Zoho refused it for good (a 4xx); `last_error` has its message.
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for OutboxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutboxStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(OutboxStatus::Pending),
            "sent" => Ok(OutboxStatus::Sent),
            "failed" => Ok(OutboxStatus::Failed),
            _ => Err(StoreError::Corrupt {
                what: "outbox status",
                value: s.to_owned(),
            }),
        }
    }
}

/// A write to make.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutboxItem {
    pub tenant_id: TenantId,
    pub call_id: CallId,
    /// e.g. `crm_call`.
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: i64,
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxItem {
    pub id: String,
    pub tenant_id: TenantId,
    pub call_id: CallId,
    pub kind: String,
    pub payload: serde_json::Value,
    pub status: OutboxStatus,
    /// Claims so far (each claim is one send attempt).
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub remote_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// How many rows of a tenant are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
}

const COLUMNS: &str = "id, tenant_id, call_id, kind, payload, status, attempts, \
     next_attempt_at, lease_owner, lease_until, last_error, remote_id, created_at, updated_at";

/// Still claimable: pending, due, and not leased by anyone (or the lease ran out).
const CLAIMABLE: &str = "status = 'pending' AND next_attempt_at <= $1 \
     AND (lease_until IS NULL OR lease_until < $1)";

fn from_row(r: &AnyRow) -> Result<OutboxItem, StoreError> {
    let payload: String = r.get(4);
    let status: String = r.get(5);
    Ok(OutboxItem {
        id: r.get(0),
        tenant_id: TenantId::new(r.get::<String, _>(1)),
        call_id: CallId::new(r.get::<String, _>(2)),
        kind: r.get(3),
        payload: serde_json::from_str(&payload).map_err(|_| StoreError::Corrupt {
            what: "outbox payload",
            value: payload.clone(),
        })?,
        status: status.parse()?,
        attempts: r.get(6),
        next_attempt_at: r.get(7),
        lease_owner: r.get(8),
        lease_until: r.get(9),
        last_error: r.get(10),
        remote_id: r.get(11),
        created_at: r.get(12),
        updated_at: r.get(13),
    })
}

impl Store {
    /// Adds a write for a call, due at once. A call has at most one row: a second enqueue for
    /// the same call is ignored and returns false.
    pub async fn enqueue_outbox(&self, item: &NewOutboxItem) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO zoho_outbox (id, tenant_id, call_id, kind, payload, status, attempts, \
             next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6) \
             ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(new_id())
        .bind(item.tenant_id.as_str())
        .bind(item.call_id.as_str())
        .bind(&item.kind)
        .bind(item.payload.to_string())
        .bind(item.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims up to `limit` due rows for `owner` until `now_ms + lease_ms`, oldest due first.
    /// Each claim counts as an attempt. Rows another worker claims first are skipped.
    pub async fn claim_outbox(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let candidates = sqlx::query(&format!(
            "SELECT id FROM zoho_outbox WHERE {CLAIMABLE} ORDER BY next_attempt_at, id LIMIT $2"
        ))
        .bind(now_ms)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::with_capacity(candidates.len());
        for row in candidates {
            let id: String = row.get(0);
            let done = sqlx::query(&format!(
                "UPDATE zoho_outbox SET updated_at = $1, lease_owner = $2, lease_until = $3, \
                 attempts = attempts + 1 WHERE id = $4 AND {CLAIMABLE}"
            ))
            .bind(now_ms)
            .bind(owner)
            .bind(now_ms + lease_ms)
            .bind(&id)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1
                && let Some(item) = self.outbox_item(&id).await?
            {
                claimed.push(item);
            }
        }
        Ok(claimed)
    }

    /// Marks a claimed row sent. False if `owner` no longer holds it (its lease ran out and
    /// someone else claimed it).
    pub async fn complete_outbox(
        &self,
        id: &str,
        owner: &str,
        remote_id: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE zoho_outbox SET status = 'sent', remote_id = $1, lease_owner = NULL, \
             lease_until = NULL, last_error = NULL, updated_at = $2 \
             WHERE id = $3 AND lease_owner = $4 AND status = 'pending'",
        )
        .bind(remote_id)
        .bind(now_ms)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Releases a claimed row for another attempt at `next_attempt_at`, recording why this one
    /// failed.
    pub async fn retry_outbox(
        &self,
        id: &str,
        owner: &str,
        next_attempt_at: i64,
        error: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE zoho_outbox SET next_attempt_at = $1, last_error = $2, lease_owner = NULL, \
             lease_until = NULL, updated_at = $3 \
             WHERE id = $4 AND lease_owner = $5 AND status = 'pending'",
        )
        .bind(next_attempt_at)
        .bind(error)
        .bind(now_ms)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a claimed row failed for good with Zoho's message.
    pub async fn fail_outbox(
        &self,
        id: &str,
        owner: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE zoho_outbox SET status = 'failed', last_error = $1, lease_owner = NULL, \
             lease_until = NULL, updated_at = $2 \
             WHERE id = $3 AND lease_owner = $4 AND status = 'pending'",
        )
        .bind(error)
        .bind(now_ms)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One row by id.
    pub async fn outbox_item(&self, id: &str) -> Result<Option<OutboxItem>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM zoho_outbox WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The row written for a call, if any.
    pub async fn outbox_item_for_call(
        &self,
        call_id: &CallId,
    ) -> Result<Option<OutboxItem>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM zoho_outbox WHERE call_id = $1"
        ))
        .bind(call_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A tenant's rows per state.
    pub async fn outbox_counts(&self, tenant_id: &TenantId) -> Result<OutboxCounts, StoreError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) FROM zoho_outbox WHERE tenant_id = $1 GROUP BY status",
        )
        .bind(tenant_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut counts = OutboxCounts::default();
        for r in rows {
            let status: String = r.get(0);
            let n: i64 = r.get(1);
            match status.parse()? {
                OutboxStatus::Pending => counts.pending = n,
                OutboxStatus::Sent => counts.sent = n,
                OutboxStatus::Failed => counts.failed = n,
            }
        }
        Ok(counts)
    }

    /// When the next pending row of any tenant is due (for the worker's sleep), if any.
    pub async fn next_outbox_due(&self) -> Result<Option<i64>, StoreError> {
        let row =
            sqlx::query("SELECT MIN(next_attempt_at) FROM zoho_outbox WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        Ok(row.get(0))
    }
}
