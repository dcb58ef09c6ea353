//! Pages of a tenant's calls in start order with their priced cost, for the CSV export.

use sqlx::Row;

use crate::{Call, CallDirection, CallStatus, Store, StoreError, TenantId};

/// Which calls to export: started in `[from, to)`, optionally one status and direction.
#[derive(Debug, Clone)]
pub struct ExportFilter {
    pub from: i64,
    pub to: i64,
    pub status: Option<CallStatus>,
    pub direction: Option<CallDirection>,
}

/// A call with its cost (micro-units) once folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedCall {
    pub call: Call,
    pub currency: Option<String>,
    pub cost_micros: Option<i64>,
}

impl Store {
    /// Up to `limit` calls after `after` (`(started_at, id)` of the last one exported), oldest
    /// first. Keyset pages: the export streams without holding a connection between pages.
    pub async fn export_calls(
        &self,
        tenant_id: &TenantId,
        filter: &ExportFilter,
        after: Option<(i64, String)>,
        limit: u32,
    ) -> Result<Vec<ExportedCall>, StoreError> {
        let (after_ms, after_id) = match &after {
            Some((ms, id)) => (Some(*ms), Some(id.as_str())),
            None => (None, None),
        };
        // One statement: the call columns (as `calls.rs` reads them) plus the ledger's cost.
        let columns: Vec<String> = crate::calls::CALL_COLUMNS
            .split(',')
            .map(|c| format!("c.{}", c.trim()))
            .collect();
        let rows = sqlx::query(&format!(
            "SELECT {}, s.currency, s.cost_micros FROM calls c \
             LEFT JOIN call_rollup_state s ON s.call_id = c.id \
             WHERE c.tenant_id = $1 AND c.started_at >= $2 \
             AND c.started_at < $3 AND ($4 IS NULL OR c.status = $4) \
             AND ($5 IS NULL OR c.direction = $5) \
             AND ($6 IS NULL OR c.started_at > $6 OR (c.started_at = $6 AND c.id > $7)) \
             ORDER BY c.started_at, c.id LIMIT $8",
            columns.join(", ")
        ))
        .bind(tenant_id.as_str())
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.status.map(CallStatus::as_str))
        .bind(filter.direction.map(CallDirection::as_str))
        .bind(after_ms)
        .bind(after_id)
        .bind(i64::from(limit.clamp(1, 5000)))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(ExportedCall {
                call: crate::calls::call_from_row(r)?,
                currency: r.get(15),
                cost_micros: r.get(16),
            });
        }
        Ok(out)
    }
}
