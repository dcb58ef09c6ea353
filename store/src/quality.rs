//! A call's media quality (loss, jitter, round trip, estimated MOS), one row per call.
//!
//! Fractional values are stored as scaled integers (see the migration): the struct keeps the
//! stored units and offers the usual ones through methods.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{CallId, Store, StoreError};

/// A call's media quality as stored. Units are those of the columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallQuality {
    pub call_id: CallId,
    /// The negotiated codec's SDP name (e.g. `PCMU`).
    pub codec: String,
    /// The caller's packets, as their sequence numbers and our counts say.
    pub packets_expected: i64,
    pub packets_received: i64,
    /// `expected − received`; negative when duplicates outnumber losses.
    pub packets_lost: i64,
    /// Lost share of expected, in basis points (1/100 of a percent).
    pub loss_bp: i64,
    /// Interarrival jitter, in microseconds.
    pub jitter_us: i64,
    /// Round trip from RTCP, in microseconds.
    pub rtt_us: Option<i64>,
    /// Our stream as the peer reported it: packets lost, loss in basis points, jitter in µs.
    pub remote_packets_lost: Option<i64>,
    pub remote_loss_bp: Option<i64>,
    pub remote_jitter_us: Option<i64>,
    /// Estimated MOS × 100.
    pub mos_x100: i64,
    /// Unix milliseconds.
    pub recorded_at: i64,
}

impl CallQuality {
    /// Loss in percent.
    pub fn loss_pct(&self) -> f64 {
        self.loss_bp as f64 / 100.0
    }

    pub fn jitter_ms(&self) -> f64 {
        self.jitter_us as f64 / 1000.0
    }

    pub fn rtt_ms(&self) -> Option<f64> {
        self.rtt_us.map(|us| us as f64 / 1000.0)
    }

    pub fn remote_loss_pct(&self) -> Option<f64> {
        self.remote_loss_bp.map(|bp| bp as f64 / 100.0)
    }

    pub fn remote_jitter_ms(&self) -> Option<f64> {
        self.remote_jitter_us.map(|us| us as f64 / 1000.0)
    }

    /// Estimated MOS (1.0–4.5).
    pub fn mos(&self) -> f64 {
        self.mos_x100 as f64 / 100.0
    }
}

const COLUMNS: &str = "call_id, codec, packets_expected, packets_received, packets_lost, \
     loss_bp, jitter_us, rtt_us, remote_packets_lost, remote_loss_bp, remote_jitter_us, \
     mos_x100, recorded_at";

fn from_row(r: &AnyRow) -> CallQuality {
    CallQuality {
        call_id: CallId::new(r.get::<String, _>(0)),
        codec: r.get(1),
        packets_expected: r.get(2),
        packets_received: r.get(3),
        packets_lost: r.get(4),
        loss_bp: r.get(5),
        jitter_us: r.get(6),
        rtt_us: r.get(7),
        remote_packets_lost: r.get(8),
        remote_loss_bp: r.get(9),
        remote_jitter_us: r.get(10),
        mos_x100: r.get(11),
        recorded_at: r.get(12),
    }
}

impl Store {
    /// Stores a call's quality, replacing what an earlier write for the same call stored.
    pub async fn upsert_call_quality(&self, q: &CallQuality) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO call_quality ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (call_id) DO UPDATE SET codec = excluded.codec, \
             packets_expected = excluded.packets_expected, \
             packets_received = excluded.packets_received, \
             packets_lost = excluded.packets_lost, loss_bp = excluded.loss_bp, \
             jitter_us = excluded.jitter_us, rtt_us = excluded.rtt_us, \
             remote_packets_lost = excluded.remote_packets_lost, \
             remote_loss_bp = excluded.remote_loss_bp, \
             remote_jitter_us = excluded.remote_jitter_us, mos_x100 = excluded.mos_x100, \
             recorded_at = excluded.recorded_at"
        ))
        .bind(q.call_id.as_str())
        .bind(&q.codec)
        .bind(q.packets_expected)
        .bind(q.packets_received)
        .bind(q.packets_lost)
        .bind(q.loss_bp)
        .bind(q.jitter_us)
        .bind(q.rtt_us)
        .bind(q.remote_packets_lost)
        .bind(q.remote_loss_bp)
        .bind(q.remote_jitter_us)
        .bind(q.mos_x100)
        .bind(q.recorded_at)
        .execute(&self.pool)
        .await?;
        self.touch_call(&q.call_id).await?;
        Ok(())
    }

    /// A call's quality, if it was recorded.
    pub async fn get_call_quality(
        &self,
        call_id: &CallId,
    ) -> Result<Option<CallQuality>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM call_quality WHERE call_id = $1"
        ))
        .bind(call_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(from_row))
    }
}
