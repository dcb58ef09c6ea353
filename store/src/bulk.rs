//! Bulk loading for benchmarks: many calls with their turns, events, usage and quality in
//! multi-row statements, and their rollups merged at once from contributions computed by the
//! same code as the incremental folder (for calls never folded before). Nothing in the daemon
//! uses it.

use std::collections::BTreeMap;

use crate::rollup::{Contribution, Grain, LedgerEntry, VALUES, value_columns};
use crate::{CallDirection, CallId, CallStatus, Store, StoreError, TenantId};

/// One call to load.
#[derive(Debug, Clone)]
pub struct BulkCall {
    pub id: String,
    pub tenant_id: TenantId,
    pub direction: CallDirection,
    pub from_number: String,
    pub to_number: String,
    pub node: String,
    pub flow: String,
    pub status: CallStatus,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    /// (e2e_ms, eot_ms) per turn.
    pub turns: Vec<(Option<i64>, Option<i64>)>,
    /// (kind, detail JSON).
    pub events: Vec<(String, String)>,
    /// (kind, quantity, unit).
    pub usage: Vec<(String, i64, String)>,
    pub mos_x100: Option<i64>,
}

/// A computed fold for [`Store::bulk_fold`].
#[derive(Debug, Clone)]
pub struct BulkFold {
    pub tenant_id: TenantId,
    pub call_id: CallId,
    pub contribution: Contribution,
    pub ledger: LedgerEntry,
}

/// Rows per statement for `cols` columns. SQLite treats `$N` as named parameters and looks
/// each new name up in a list, so a statement's cost grows with the square of its parameter
/// count: about a thousand per statement is the sweet spot (and far under both engines' limits).
fn chunk(cols: usize) -> usize {
    (1_000 / cols).max(1)
}

fn placeholders(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let ps: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", ps.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

enum V {
    S(String),
    O(Option<String>),
    I(i64),
    N(Option<i64>),
}

async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table_cols: &str,
    cols: usize,
    rows: Vec<Vec<V>>,
) -> Result<(), StoreError> {
    upsert_rows(tx, table_cols, cols, rows, "").await
}

/// Multi-row INSERT with an optional `ON CONFLICT …` suffix (keys must be unique within
/// `rows`: PostgreSQL refuses to update one row twice in a statement).
async fn upsert_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table_cols: &str,
    cols: usize,
    rows: Vec<Vec<V>>,
    on_conflict: &str,
) -> Result<(), StoreError> {
    for part in rows.chunks(chunk(cols)) {
        let sql = format!(
            "INSERT INTO {table_cols} VALUES {} {on_conflict}",
            placeholders(part.len(), cols)
        );
        let mut q = sqlx::query(&sql);
        for row in part {
            for v in row {
                q = match v {
                    V::S(s) => q.bind(s.clone()),
                    V::O(s) => q.bind(s.clone()),
                    V::I(i) => q.bind(*i),
                    V::N(i) => q.bind(*i),
                };
            }
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Inserts calls and everything under them in one transaction.
    pub async fn bulk_insert(&self, calls: &[BulkCall]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut call_rows = Vec::new();
        let mut turn_rows = Vec::new();
        let mut event_rows = Vec::new();
        let mut usage_rows = Vec::new();
        let mut quality_rows = Vec::new();
        for c in calls {
            call_rows.push(vec![
                V::S(c.id.clone()),
                V::S(c.tenant_id.to_string()),
                V::S(c.direction.as_str().to_owned()),
                V::S(c.from_number.clone()),
                V::S(c.to_number.clone()),
                V::S(c.node.clone()),
                V::S(c.flow.clone()),
                V::S(c.status.as_str().to_owned()),
                V::I(c.started_at),
                V::N(c.answered_at),
                V::N(c.ended_at),
                V::O(c.end_reason.clone()),
            ]);
            for (seq, (e2e, eot)) in c.turns.iter().enumerate() {
                turn_rows.push(vec![
                    V::S(crate::new_id()),
                    V::S(c.id.clone()),
                    V::I(seq as i64),
                    V::I(c.started_at + seq as i64 * 10_000),
                    V::S("caller words".to_owned()),
                    V::S("agent words".to_owned()),
                    V::N(*eot),
                    V::N(*e2e),
                ]);
            }
            for (i, (kind, detail)) in c.events.iter().enumerate() {
                event_rows.push(vec![
                    V::S(crate::new_id()),
                    V::S(c.id.clone()),
                    V::I(c.started_at + i as i64),
                    V::S(kind.clone()),
                    V::S(detail.clone()),
                ]);
            }
            for (kind, qty, unit) in &c.usage {
                usage_rows.push(vec![
                    V::S(crate::new_id()),
                    V::S(c.tenant_id.to_string()),
                    V::S(c.id.clone()),
                    V::S(kind.clone()),
                    V::I(*qty),
                    V::S(unit.clone()),
                    V::I(c.ended_at.unwrap_or(c.started_at)),
                ]);
            }
            if let Some(mos) = c.mos_x100 {
                quality_rows.push(vec![
                    V::S(c.id.clone()),
                    V::S("PCMU".to_owned()),
                    V::I(1000),
                    V::I(990),
                    V::I(10),
                    V::I(100),
                    V::I(2000),
                    V::I(mos),
                    V::I(c.ended_at.unwrap_or(c.started_at)),
                ]);
            }
        }
        insert_rows(
            &mut tx,
            "calls (id, tenant_id, direction, from_number, to_number, node, flow, \
             status, started_at, answered_at, ended_at, end_reason)",
            12,
            call_rows,
        )
        .await?;
        insert_rows(
            &mut tx,
            "turns (id, call_id, seq, started_at, caller_text, agent_text, eot_ms, \
             e2e_ms)",
            8,
            turn_rows,
        )
        .await?;
        insert_rows(
            &mut tx,
            "call_events (id, call_id, at, kind, detail)",
            5,
            event_rows,
        )
        .await?;
        insert_rows(
            &mut tx,
            "usage_records (id, tenant_id, call_id, kind, quantity, unit, at)",
            7,
            usage_rows,
        )
        .await?;
        insert_rows(
            &mut tx,
            "call_quality (call_id, codec, packets_expected, packets_received, \
             packets_lost, loss_bp, jitter_us, mos_x100, recorded_at)",
            9,
            quality_rows,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds the contributions of freshly bulk-inserted, never folded calls to the rollups and
    /// writes their ledger entries and fold marks.
    pub async fn bulk_fold(&self, folds: &[BulkFold], now_ms: i64) -> Result<(), StoreError> {
        let mut calls: BTreeMap<(String, Grain, i64), Vec<i64>> = BTreeMap::new();
        let mut counts: BTreeMap<(String, Grain, i64, String, String), i64> = BTreeMap::new();
        for f in folds {
            for grain in Grain::ALL {
                let slot = grain.slot_of(f.contribution.started_at);
                let row = calls
                    .entry((f.tenant_id.to_string(), grain, slot))
                    .or_insert_with(|| vec![0; VALUES]);
                for (a, b) in row.iter_mut().zip(&f.contribution.values) {
                    *a += b;
                }
                for (dim, value) in &f.contribution.keys {
                    *counts
                        .entry((
                            f.tenant_id.to_string(),
                            grain,
                            slot,
                            dim.clone(),
                            value.clone(),
                        ))
                        .or_default() += 1;
                }
            }
        }
        let mut tx = self.pool.begin().await?;
        let cols = value_columns();
        let rows: Vec<Vec<V>> = calls
            .into_iter()
            .map(|((t, g, s), values)| {
                let mut row = vec![V::S(t), V::S(g.as_str().to_owned()), V::I(s)];
                row.extend(values.into_iter().map(V::I));
                row
            })
            .collect();
        let merge: Vec<String> = cols
            .iter()
            .map(|c| format!("{c} = rollup_calls.{c} + excluded.{c}"))
            .collect();
        upsert_rows(
            &mut tx,
            &format!("rollup_calls (tenant_id, grain, slot, {})", cols.join(", ")),
            cols.len() + 3,
            rows,
            &format!(
                "ON CONFLICT (tenant_id, grain, slot) DO UPDATE SET {}",
                merge.join(", ")
            ),
        )
        .await?;
        let rows: Vec<Vec<V>> = counts
            .into_iter()
            .map(|((t, g, s, d, v), n)| {
                vec![
                    V::S(t),
                    V::S(g.as_str().to_owned()),
                    V::I(s),
                    V::S(d),
                    V::S(v),
                    V::I(n),
                ]
            })
            .collect();
        upsert_rows(
            &mut tx,
            "rollup_counts (tenant_id, grain, slot, dim, value, n)",
            6,
            rows,
            "ON CONFLICT (tenant_id, grain, slot, dim, value) DO UPDATE SET n = rollup_counts.n + excluded.n",
        )
        .await?;
        let rows: Vec<Vec<V>> = folds
            .iter()
            .map(|f| {
                vec![
                    V::S(f.call_id.to_string()),
                    V::S(f.tenant_id.to_string()),
                    V::S(serde_json::to_string(&f.contribution).unwrap_or_default()),
                    V::S(f.ledger.currency.clone()),
                    V::I(f.ledger.total_micros),
                    V::S(f.ledger.breakdown.to_string()),
                    V::I(now_ms),
                ]
            })
            .collect();
        insert_rows(
            &mut tx,
            "call_rollup_state (call_id, tenant_id, contribution, currency, \
             cost_micros, cost_breakdown, folded_at)",
            7,
            rows,
        )
        .await?;
        for part in folds.chunks(1000) {
            let ids: Vec<String> = (1..=part.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "UPDATE calls SET rolled_rev = rollup_rev WHERE id IN ({})",
                ids.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for f in part {
                q = q.bind(f.call_id.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
