//! Reading the rollups: totals over a time range, totals per bucket, breakdowns, and the
//! query plans behind them (for the benchmark). Ranges must fall on quarter hours (the finest
//! grain); callers check that and the range's size.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::rollup::{Grain, RollupTotals, VALUES, value_columns};
use crate::{Backend, Store, StoreError, TenantId};

/// One piece of a range answered from one grain: `[from, to)` in that grain's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangePiece {
    pub grain: Grain,
    pub from: i64,
    pub to: i64,
}

/// Splits `[from, to)` (quarter-hour aligned) into the fewest rollup reads: whole UTC days from
/// the day grain, whole hours at the edges from the hour grain, quarters for the rest.
pub fn plan_range(from: i64, to: i64) -> Vec<RangePiece> {
    let mut out = Vec::new();
    split(from, to, &Grain::ALL, &mut out);
    out.sort_by_key(|p| p.from);
    out
}

fn split(from: i64, to: i64, grains: &[Grain], out: &mut Vec<RangePiece>) {
    if from >= to {
        return;
    }
    let Some((&grain, finer)) = grains.split_first() else {
        return;
    };
    if finer.is_empty() {
        out.push(RangePiece { grain, from, to });
        return;
    }
    let w = grain.width_ms();
    let a = from.div_euclid(w) * w + if from.rem_euclid(w) == 0 { 0 } else { w };
    let b = to.div_euclid(w) * w;
    if a < b {
        split(from, a, finer, out);
        out.push(RangePiece {
            grain,
            from: a,
            to: b,
        });
        split(b, to, finer, out);
    } else {
        split(from, to, finer, out);
    }
}

/// The coarsest grain whose slots every boundary falls on.
pub fn grain_for(boundaries: &[i64]) -> Grain {
    Grain::ALL
        .into_iter()
        .find(|g| boundaries.iter().all(|b| b.rem_euclid(g.width_ms()) == 0))
        .unwrap_or(Grain::Quarter)
}

fn sum_columns() -> String {
    value_columns()
        .iter()
        .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT)"))
        .collect::<Vec<_>>()
        .join(", ")
}

const TOTALS_WHERE: &str = "tenant_id = $1 AND grain = $2 AND slot >= $3 AND slot < $4";

impl Store {
    /// Sums of a tenant's rollups over `[from, to)` (quarter-hour aligned).
    pub async fn rollup_totals(
        &self,
        tenant_id: &TenantId,
        from: i64,
        to: i64,
    ) -> Result<RollupTotals, StoreError> {
        let sql = format!(
            "SELECT {} FROM rollup_calls WHERE {TOTALS_WHERE}",
            sum_columns()
        );
        let mut totals = RollupTotals::zero();
        for piece in plan_range(from, to) {
            let row = sqlx::query(&sql)
                .bind(tenant_id.as_str())
                .bind(piece.grain.as_str())
                .bind(piece.from)
                .bind(piece.to)
                .fetch_one(&self.pool)
                .await?;
            let values = (0..VALUES).map(|i| row.get::<i64, _>(i)).collect();
            totals.add(&RollupTotals { values });
        }
        Ok(totals)
    }

    /// Counts per value of `dim` (`end_reason`, `last_node`) over `[from, to)`, largest first.
    pub async fn rollup_breakdown(
        &self,
        tenant_id: &TenantId,
        dim: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut merged: BTreeMap<String, i64> = BTreeMap::new();
        for piece in plan_range(from, to) {
            let rows = sqlx::query(
                "SELECT value, CAST(SUM(n) AS BIGINT) FROM rollup_counts WHERE tenant_id = $1 \
                 AND grain = $2 AND slot >= $3 AND slot < $4 AND dim = $5 GROUP BY value",
            )
            .bind(tenant_id.as_str())
            .bind(piece.grain.as_str())
            .bind(piece.from)
            .bind(piece.to)
            .bind(dim)
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                *merged.entry(r.get(0)).or_default() += r.get::<i64, _>(1);
            }
        }
        let mut out: Vec<(String, i64)> = merged.into_iter().filter(|(_, n)| *n != 0).collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Totals per bucket, buckets given by their boundaries `b0 < b1 < … < bn` (bucket i is
    /// `[b_i, b_{i+1})`), all on the slots of one grain (see [`grain_for`]).
    pub async fn rollup_buckets(
        &self,
        tenant_id: &TenantId,
        boundaries: &[i64],
    ) -> Result<Vec<RollupTotals>, StoreError> {
        let n = boundaries.len().saturating_sub(1);
        let mut out = vec![RollupTotals::zero(); n];
        if n == 0 {
            return Ok(out);
        }
        let grain = grain_for(boundaries);
        let sql = buckets_sql(boundaries);
        let rows = sqlx::query(&sql)
            .bind(tenant_id.as_str())
            .bind(grain.as_str())
            .bind(boundaries[0])
            .bind(boundaries[n])
            .fetch_all(&self.pool)
            .await?;
        for r in rows {
            let bucket: i64 = r.get(0);
            let Some(slot) = usize::try_from(bucket).ok().and_then(|b| out.get_mut(b)) else {
                continue;
            };
            slot.values = (0..VALUES).map(|i| r.get::<i64, _>(i + 1)).collect();
        }
        Ok(out)
    }

    /// The query plans of the analytics reads, for `[from, to)` and `boundaries` (SQLite's
    /// `EXPLAIN QUERY PLAN`, PostgreSQL's `EXPLAIN`).
    pub async fn analytics_plans(
        &self,
        tenant_id: &TenantId,
        from: i64,
        to: i64,
        boundaries: &[i64],
    ) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let (prefix, column) = match self.backend() {
            Backend::Sqlite => ("EXPLAIN QUERY PLAN", 3),
            Backend::Postgres => ("EXPLAIN", 0),
        };
        let piece = plan_range(from, to)
            .into_iter()
            .max_by_key(|p| p.to - p.from)
            .unwrap_or(RangePiece {
                grain: Grain::Quarter,
                from,
                to,
            });
        let grain = grain_for(boundaries);
        let queries = [
            (
                "totals",
                format!(
                    "{prefix} SELECT {} FROM rollup_calls WHERE {TOTALS_WHERE}",
                    sum_columns()
                ),
                piece.grain,
                piece.from,
                piece.to,
            ),
            (
                "breakdown",
                format!(
                    "{prefix} SELECT value, SUM(n) FROM rollup_counts WHERE {TOTALS_WHERE} \
                     AND dim = 'end_reason' GROUP BY value"
                ),
                piece.grain,
                piece.from,
                piece.to,
            ),
            (
                "buckets",
                format!("{prefix} {}", buckets_sql(boundaries)),
                grain,
                boundaries.first().copied().unwrap_or(from),
                boundaries.last().copied().unwrap_or(to),
            ),
        ];
        let mut out = Vec::new();
        for (name, sql, grain, lo, hi) in queries {
            let rows = sqlx::query(&sql)
                .bind(tenant_id.as_str())
                .bind(grain.as_str())
                .bind(lo)
                .bind(hi)
                .fetch_all(&self.pool)
                .await?;
            out.push((
                format!("{name} ({} grain)", grain.as_str()),
                rows.iter().map(|r| r.get::<String, _>(column)).collect(),
            ));
        }
        Ok(out)
    }

    /// Unfinished calls of a tenant started after `since` (older ones are orphans of a dead
    /// daemon that the next start ends), for concurrent-call admission.
    pub async fn count_unfinished_calls(
        &self,
        tenant_id: &TenantId,
        since: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM calls WHERE tenant_id = $1 AND status <> 'ended' \
             AND started_at >= $2",
        )
        .bind(tenant_id.as_str())
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get(0))
    }
}

/// Sums per bucket; the bucket index comes from a CASE over the boundaries (integers we
/// computed, inlined as literals: no user text reaches the SQL).
fn buckets_sql(boundaries: &[i64]) -> String {
    let n = boundaries.len().saturating_sub(1);
    let mut case = String::from("CASE");
    for (i, b) in boundaries
        .iter()
        .enumerate()
        .skip(1)
        .take(n.saturating_sub(1))
    {
        case.push_str(&format!(" WHEN slot < {b} THEN {}", i - 1));
    }
    case.push_str(&format!(" ELSE {} END", n.saturating_sub(1)));
    format!(
        "SELECT CAST({case} AS BIGINT) AS bucket, {} FROM rollup_calls WHERE {TOTALS_WHERE} \
         GROUP BY 1",
        sum_columns()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: i64 = 15 * 60_000;
    const H: i64 = 3_600_000;
    const D: i64 = 86_400_000;

    #[test]
    fn ranges_split_into_the_coarsest_pieces() {
        let from = D - 2 * H - Q;
        let to = 3 * D + H + 2 * Q;
        let pieces = plan_range(from, to);
        let total: i64 = pieces.iter().map(|p| p.to - p.from).sum();
        assert_eq!(total, to - from);
        assert_eq!(
            pieces
                .iter()
                .map(|p| (p.grain, (p.to - p.from) / Q))
                .collect::<Vec<_>>(),
            [
                (Grain::Quarter, 1),
                (Grain::Hour, 8),
                (Grain::Day, 2 * 96),
                (Grain::Hour, 4),
                (Grain::Quarter, 2)
            ]
        );
        assert_eq!(plan_range(5 * Q, 6 * Q).len(), 1);
        assert!(plan_range(5 * Q, 5 * Q).is_empty());
    }

    #[test]
    fn grain_follows_the_boundaries() {
        assert_eq!(grain_for(&[0, D, 2 * D]), Grain::Day);
        assert_eq!(grain_for(&[5 * H, D + 5 * H]), Grain::Hour);
        assert_eq!(grain_for(&[5 * H + 2 * Q, D]), Grain::Quarter);
    }

    #[test]
    fn bucket_case_covers_every_bucket() {
        let sql = buckets_sql(&[0, 10, 20, 30]);
        assert!(sql.contains("WHEN slot < 10 THEN 0 WHEN slot < 20 THEN 1 ELSE 2 END"));
        assert!(buckets_sql(&[0, 10]).contains("CASE ELSE 0 END"));
    }
}
