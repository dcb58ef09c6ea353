//! Sync runs (what each run did) and watermarks (where each incremental stream continues).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, TenantId, new_id};

/// How a sync run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncRunStatus {
    Running,
    Succeeded,
    Failed,
}

impl SyncRunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncRunStatus::Running => "running",
            SyncRunStatus::Succeeded => "succeeded",
            SyncRunStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for SyncRunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SyncRunStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "running" => Ok(SyncRunStatus::Running),
            "succeeded" => Ok(SyncRunStatus::Succeeded),
            "failed" => Ok(SyncRunStatus::Failed),
            _ => Err(StoreError::Corrupt {
                what: "sync run status",
                value: s.to_owned(),
            }),
        }
    }
}

/// One sync run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRun {
    pub id: String,
    pub tenant_id: TenantId,
    pub full: bool,
    /// `cli`, `schedule` or `api`.
    pub trigger: String,
    pub node: String,
    pub status: SyncRunStatus,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// Per stream (`crm:Contacts`, `books:invoices`, …): counters such as `upserted`,
    /// `deleted`, `skipped_no_phone`.
    pub counts: serde_json::Value,
    pub skipped_no_phone: i64,
    pub pages: i64,
    pub error: Option<String>,
}

/// What a run has done so far.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRunProgress {
    pub counts: serde_json::Value,
    pub skipped_no_phone: i64,
    pub pages: i64,
}

const COLUMNS: &str = "id, tenant_id, full_sync, trigger_source, node, status, started_at, \
     finished_at, counts, skipped_no_phone, pages, error";

fn from_row(r: &AnyRow) -> Result<SyncRun, StoreError> {
    let status: String = r.get(5);
    let counts: String = r.get(8);
    Ok(SyncRun {
        id: r.get(0),
        tenant_id: TenantId::new(r.get::<String, _>(1)),
        full: r.get::<i64, _>(2) != 0,
        trigger: r.get(3),
        node: r.get(4),
        status: status.parse()?,
        started_at: r.get(6),
        finished_at: r.get(7),
        counts: serde_json::from_str(&counts).map_err(|_| StoreError::Corrupt {
            what: "sync run counts",
            value: counts.clone(),
        })?,
        skipped_no_phone: r.get(9),
        pages: r.get(10),
        error: r.get(11),
    })
}

impl Store {
    /// Records a run that starts now, in `running` state.
    pub async fn start_zoho_sync_run(
        &self,
        tenant_id: &TenantId,
        full: bool,
        trigger: &str,
        node: &str,
        started_at: i64,
    ) -> Result<SyncRun, StoreError> {
        let run = SyncRun {
            id: new_id(),
            tenant_id: tenant_id.clone(),
            full,
            trigger: trigger.to_owned(),
            node: node.to_owned(),
            status: SyncRunStatus::Running,
            started_at,
            finished_at: None,
            counts: serde_json::json!({}),
            skipped_no_phone: 0,
            pages: 0,
            error: None,
        };
        sqlx::query(&format!(
            "INSERT INTO zoho_sync_runs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11, $12)"
        ))
        .bind(&run.id)
        .bind(run.tenant_id.as_str())
        .bind(i64::from(run.full))
        .bind(&run.trigger)
        .bind(&run.node)
        .bind(run.status.as_str())
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(run.counts.to_string())
        .bind(run.skipped_no_phone)
        .bind(run.pages)
        .bind(&run.error)
        .execute(&self.pool)
        .await?;
        Ok(run)
    }

    /// Saves a running run's counters (so a crash still shows how far it got).
    pub async fn update_zoho_sync_run(
        &self,
        run_id: &str,
        progress: &SyncRunProgress,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE zoho_sync_runs SET counts = $1, skipped_no_phone = $2, pages = $3 \
             WHERE id = $4 AND status = 'running'",
        )
        .bind(progress.counts.to_string())
        .bind(progress.skipped_no_phone)
        .bind(progress.pages)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a run: succeeded (`error` None) or failed with the error.
    pub async fn finish_zoho_sync_run(
        &self,
        run_id: &str,
        progress: &SyncRunProgress,
        error: Option<&str>,
        finished_at: i64,
    ) -> Result<(), StoreError> {
        let status = match error {
            None => SyncRunStatus::Succeeded,
            Some(_) => SyncRunStatus::Failed,
        };
        sqlx::query(
            "UPDATE zoho_sync_runs SET status = $1, finished_at = $2, counts = $3, \
             skipped_no_phone = $4, pages = $5, error = $6 WHERE id = $7",
        )
        .bind(status.as_str())
        .bind(finished_at)
        .bind(progress.counts.to_string())
        .bind(progress.skipped_no_phone)
        .bind(progress.pages)
        .bind(error)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Fails the runs `node` left `running` (the process died mid-sync); returns how many.
    pub async fn fail_interrupted_zoho_sync_runs(
        &self,
        node: &str,
        at: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE zoho_sync_runs SET status = 'failed', finished_at = $1, \
             error = 'interrupted: the daemon stopped during the run' \
             WHERE node = $2 AND status = 'running'",
        )
        .bind(at)
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// A tenant's most recent runs, newest first.
    pub async fn list_zoho_sync_runs(
        &self,
        tenant_id: &TenantId,
        limit: u32,
    ) -> Result<Vec<SyncRun>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM zoho_sync_runs WHERE tenant_id = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2"
        ))
        .bind(tenant_id.as_str())
        .bind(i64::from(limit.clamp(1, 200)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Where `stream` continues for the tenant (Zoho's own time text), if it ever ran.
    pub async fn zoho_watermark(
        &self,
        tenant_id: &TenantId,
        stream: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT watermark FROM zoho_watermarks WHERE tenant_id = $1 AND stream = $2",
        )
        .bind(tenant_id.as_str())
        .bind(stream)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Moves `stream`'s watermark to `watermark`.
    pub async fn set_zoho_watermark(
        &self,
        tenant_id: &TenantId,
        stream: &str,
        watermark: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO zoho_watermarks (tenant_id, stream, watermark, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, stream) DO UPDATE SET \
             watermark = excluded.watermark, updated_at = excluded.updated_at",
        )
        .bind(tenant_id.as_str())
        .bind(stream)
        .bind(watermark)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every watermark of the tenant as `(stream, watermark)`, by stream.
    pub async fn zoho_watermarks(
        &self,
        tenant_id: &TenantId,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT stream, watermark FROM zoho_watermarks WHERE tenant_id = $1 ORDER BY stream",
        )
        .bind(tenant_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
