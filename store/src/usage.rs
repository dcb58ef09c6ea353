//! Usage records: metered quantities (call minutes, STT seconds, LLM tokens) for billing.

use serde::Serialize;
use sqlx::Row;

use crate::{CallId, Store, StoreError, TenantId, new_id};

/// One metered quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRecord {
    pub id: String,
    pub tenant_id: TenantId,
    pub call_id: Option<CallId>,
    /// What was used, e.g. `call_ms`, `stt_ms`, `llm_prompt_tokens`.
    pub kind: String,
    pub quantity: i64,
    /// Unit of `quantity`, e.g. `ms`, `tokens`.
    pub unit: String,
    pub at: i64,
}

impl Store {
    /// Records a usage quantity.
    pub async fn add_usage(
        &self,
        tenant_id: &TenantId,
        call_id: Option<&CallId>,
        kind: &str,
        quantity: i64,
        unit: &str,
        at: i64,
    ) -> Result<UsageRecord, StoreError> {
        let record = UsageRecord {
            id: new_id(),
            tenant_id: tenant_id.clone(),
            call_id: call_id.cloned(),
            kind: kind.to_owned(),
            quantity,
            unit: unit.to_owned(),
            at,
        };
        sqlx::query(
            "INSERT INTO usage_records (id, tenant_id, call_id, kind, quantity, unit, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&record.id)
        .bind(record.tenant_id.as_str())
        .bind(record.call_id.as_ref().map(CallId::as_str))
        .bind(&record.kind)
        .bind(record.quantity)
        .bind(&record.unit)
        .bind(record.at)
        .execute(&self.pool)
        .await?;
        if let Some(call_id) = call_id {
            // The call's cost and analytics change with its usage (see `rollup`).
            self.touch_call(call_id).await?;
        }
        Ok(record)
    }

    /// Sums usage of `kind` for a tenant over `[from_ms, to_ms)`.
    pub async fn usage_total(
        &self,
        tenant_id: &TenantId,
        kind: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<i64, StoreError> {
        // COALESCE(SUM…) is BIGINT on SQLite but NUMERIC on PostgreSQL; the cast keeps the
        // decoded type i64 on both.
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM usage_records \
             WHERE tenant_id = $1 AND kind = $2 AND at >= $3 AND at < $4",
        )
        .bind(tenant_id.as_str())
        .bind(kind)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get(0))
    }
}
