//! Call recordings: one row per channel file, written when the call's recording is closed,
//! listed and served by the admin API (the call's tenant only), and swept after the retention
//! period.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{CallId, Store, StoreError, TenantId};

/// One recorded channel of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecording {
    pub call_id: CallId,
    pub tenant_id: TenantId,
    /// `caller` or `agent`.
    pub channel: String,
    /// Where the file is (as the daemon wrote it).
    pub path: String,
    /// `wav` (16-bit PCM, mono).
    pub format: String,
    pub sample_rate: i64,
    pub duration_ms: i64,
    pub bytes: i64,
    /// Unix milliseconds.
    pub created_at: i64,
}

const COLUMNS: &str =
    "call_id, tenant_id, channel, path, format, sample_rate, duration_ms, bytes, created_at";

fn from_row(r: &AnyRow) -> CallRecording {
    CallRecording {
        call_id: CallId::new(r.get::<String, _>(0)),
        tenant_id: TenantId::new(r.get::<String, _>(1)),
        channel: r.get(2),
        path: r.get(3),
        format: r.get(4),
        sample_rate: r.get(5),
        duration_ms: r.get(6),
        bytes: r.get(7),
        created_at: r.get(8),
    }
}

impl Store {
    /// Stores (or replaces) one channel's recording.
    pub async fn add_recording(&self, rec: &CallRecording) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO call_recordings ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (call_id, channel) DO UPDATE SET path = excluded.path, \
             format = excluded.format, sample_rate = excluded.sample_rate, \
             duration_ms = excluded.duration_ms, bytes = excluded.bytes, \
             created_at = excluded.created_at"
        ))
        .bind(rec.call_id.as_str())
        .bind(rec.tenant_id.as_str())
        .bind(&rec.channel)
        .bind(&rec.path)
        .bind(&rec.format)
        .bind(rec.sample_rate)
        .bind(rec.duration_ms)
        .bind(rec.bytes)
        .bind(rec.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A call's recordings, if it belongs to `tenant_id` (another tenant's call has none).
    pub async fn list_recordings(
        &self,
        tenant_id: &TenantId,
        call_id: &CallId,
    ) -> Result<Vec<CallRecording>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM call_recordings WHERE tenant_id = $1 AND call_id = $2 \
             ORDER BY channel"
        ))
        .bind(tenant_id.as_str())
        .bind(call_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect())
    }

    /// Recordings made before `cutoff` (unix ms), oldest first, at most `limit`.
    pub async fn recordings_before(
        &self,
        cutoff: i64,
        limit: u32,
    ) -> Result<Vec<CallRecording>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM call_recordings WHERE created_at < $1 \
             ORDER BY created_at LIMIT $2"
        ))
        .bind(cutoff)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect())
    }

    /// Forgets one channel's recording (its file is the caller's to delete).
    pub async fn delete_recording(
        &self,
        call_id: &CallId,
        channel: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM call_recordings WHERE call_id = $1 AND channel = $2")
            .bind(call_id.as_str())
            .bind(channel)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
