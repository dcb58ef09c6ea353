//! Analytics rollups: what each call contributes to per-slot sums, folded incrementally.
//!
//! Every write that changes what analytics sees of a call bumps `calls.rollup_rev`. The folder
//! ([`Store::calls_to_fold`], [`Store::call_facts`], [`Store::apply_fold`]) re-reads such a
//! call, and the caller (the `billing` crate, which knows prices) turns its [`CallFacts`] into
//! a [`Contribution`]. `apply_fold` then adds `new − old` to the rollup rows of the call's
//! start slot in three grains (15 minutes, hour, UTC day) and remembers `new`, all in one
//! transaction guarded by `rolled_rev` — so a call folded twice, ended late, ended again or
//! given a late turn is counted exactly once, with its latest data, and two daemons folding the
//! same call cannot both apply it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{Call, CallId, EndReason, Store, StoreError, TenantId};

/// Lower edges (ms) of the 40 latency histogram bins; the last bin is open-ended. 50 ms wide
/// below 1 s, 100 ms to 2 s, 250 ms to 3 s, 500 ms to 5 s, then 5–10 s and ≥ 10 s.
pub const BIN_EDGES: [i64; 40] = [
    0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 550, 600, 650, 700, 750, 800, 850, 900,
    950, 1000, 1100, 1200, 1300, 1400, 1500, 1600, 1700, 1800, 1900, 2000, 2250, 2500, 2750, 3000,
    3500, 4000, 4500, 5000, 10000,
];

/// The counter columns of `rollup_calls`, in [`Contribution::values`] order, before the bins.
pub const COUNTERS: [&str; 16] = [
    "calls",
    "inbound",
    "outbound",
    "answered",
    "ended",
    "handled",
    "handle_ms",
    "transferred",
    "followups",
    "contained",
    "refusals",
    "turns",
    "mos_x100_sum",
    "mos_n",
    "call_ms",
    "cost_micros",
];

/// Index of a counter in [`Contribution::values`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
#[non_exhaustive]
pub enum Counter {
    Calls,
    Inbound,
    Outbound,
    Answered,
    Ended,
    Handled,
    HandleMs,
    Transferred,
    Followups,
    Contained,
    Refusals,
    Turns,
    MosX100Sum,
    MosN,
    CallMs,
    CostMicros,
}

/// Values per contribution: counters, then 40 e2e bins, then 40 eot bins.
pub const VALUES: usize = COUNTERS.len() + 2 * BIN_EDGES.len();
const E2E_AT: usize = COUNTERS.len();
const EOT_AT: usize = COUNTERS.len() + BIN_EDGES.len();

/// The bin a latency falls in.
pub fn bin_of(ms: i64) -> usize {
    BIN_EDGES
        .partition_point(|&edge| edge <= ms)
        .saturating_sub(1)
}

/// Every column of `rollup_calls` after the key, in [`Contribution::values`] order.
pub fn value_columns() -> Vec<String> {
    let mut cols: Vec<String> = COUNTERS.iter().map(|c| (*c).to_owned()).collect();
    cols.extend((0..BIN_EDGES.len()).map(|i| format!("e2e_b{i:02}")));
    cols.extend((0..BIN_EDGES.len()).map(|i| format!("eot_b{i:02}")));
    cols
}

/// A time grain of the rollups: its name in the table and its width in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Grain {
    Quarter,
    Hour,
    Day,
}

impl Grain {
    pub const ALL: [Grain; 3] = [Grain::Day, Grain::Hour, Grain::Quarter];

    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Quarter => "q",
            Grain::Hour => "h",
            Grain::Day => "d",
        }
    }

    pub fn width_ms(self) -> i64 {
        match self {
            Grain::Quarter => 15 * 60_000,
            Grain::Hour => 3_600_000,
            Grain::Day => 86_400_000,
        }
    }

    /// The start of the slot holding `at`.
    pub fn slot_of(self, at: i64) -> i64 {
        at.div_euclid(self.width_ms()) * self.width_ms()
    }
}

/// What a call adds to the rollups of its start slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    pub started_at: i64,
    /// [`VALUES`] numbers: [`COUNTERS`], then e2e bins, then eot bins.
    pub values: Vec<i64>,
    /// Open-ended breakdowns: (`end_reason` | `last_node`, value).
    pub keys: Vec<(String, String)>,
}

impl Contribution {
    /// All zero, for a call starting at `started_at`.
    pub fn empty(started_at: i64) -> Contribution {
        Contribution {
            started_at,
            values: vec![0; VALUES],
            keys: Vec::new(),
        }
    }

    pub fn add(&mut self, counter: Counter, n: i64) {
        self.values[counter as usize] += n;
    }

    pub fn get(&self, counter: Counter) -> i64 {
        self.values[counter as usize]
    }

    /// Counts one end-to-end latency sample.
    pub fn add_e2e(&mut self, ms: i64) {
        self.values[E2E_AT + bin_of(ms)] += 1;
    }

    /// Counts one end-of-turn latency sample.
    pub fn add_eot(&mut self, ms: i64) {
        self.values[EOT_AT + bin_of(ms)] += 1;
    }
}

/// The priced cost of a call, stored with its fold (the cost ledger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub currency: String,
    pub total_micros: i64,
    /// JSON, as the pricing code shaped it.
    pub breakdown: serde_json::Value,
}

/// Everything about one call that analytics and pricing read.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFacts {
    pub call: Call,
    /// The revision read before the facts; pass it back to [`Store::apply_fold`].
    pub rev: i64,
    pub e2e_ms: Vec<i64>,
    pub eot_ms: Vec<i64>,
    pub turns: i64,
    /// `refused` call events (guardrail refusals).
    pub refusals: i64,
    /// A `transfer` event reported the transfer accepted, or the call ended `transferred`.
    pub transferred: bool,
    /// A message or a callback request was taken during the call.
    pub followups: bool,
    /// The node the flow was in last (`to` of the last `node` event).
    pub last_node: Option<String>,
    /// Usage of the call summed by kind (`call_ms`, `stt_audio_ms`, `llm_prompt_tokens`, …).
    pub usage: BTreeMap<String, i64>,
    pub mos_x100: Option<i64>,
}

/// Sums of [`Contribution::values`] over some slots, with the derived figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupTotals {
    pub values: Vec<i64>,
}

impl RollupTotals {
    pub fn zero() -> RollupTotals {
        RollupTotals {
            values: vec![0; VALUES],
        }
    }

    pub fn get(&self, counter: Counter) -> i64 {
        self.values[counter as usize]
    }

    pub fn add(&mut self, other: &RollupTotals) {
        for (a, b) in self.values.iter_mut().zip(&other.values) {
            *a += b;
        }
    }

    pub fn e2e_bins(&self) -> &[i64] {
        &self.values[E2E_AT..EOT_AT]
    }

    pub fn eot_bins(&self) -> &[i64] {
        &self.values[EOT_AT..]
    }
}

/// The `q`-th quantile (0–1) of a histogram over [`BIN_EDGES`], interpolated linearly inside
/// its bin (so accurate to the bin width); `None` without samples. The open last bin reports
/// its lower edge.
pub fn percentile(bins: &[i64], q: f64) -> Option<i64> {
    let total: i64 = bins.iter().sum();
    if total <= 0 {
        return None;
    }
    // Rank of the wanted sample, 1-based, nearest-rank definition.
    let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
    let mut seen = 0;
    for (i, &n) in bins.iter().enumerate() {
        if n <= 0 {
            continue;
        }
        if seen + n >= rank {
            let lo = BIN_EDGES[i];
            let Some(&hi) = BIN_EDGES.get(i + 1) else {
                return Some(lo);
            };
            // Samples spread evenly over the bin; the k-th of n sits at (k − ½)/n of its width.
            let into = ((rank - seen) as f64 - 0.5) / n as f64;
            return Some(lo + ((hi - lo) as f64 * into).round() as i64);
        }
        seen += n;
    }
    None
}

/// A call to fold: its id and the revision seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldTask {
    pub call_id: CallId,
    pub rev: i64,
}

/// Why [`Store::apply_fold`] did not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldOutcome {
    Applied,
    /// Another folder applied a revision first; nothing changed.
    Raced,
}

impl Store {
    /// Calls whose analytics are out of date, oldest first, at most `limit`.
    pub async fn calls_to_fold(&self, limit: u32) -> Result<Vec<FoldTask>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, rollup_rev FROM calls WHERE rollup_rev <> rolled_rev ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| FoldTask {
                call_id: CallId::new(r.get::<String, _>(0)),
                rev: r.get(1),
            })
            .collect())
    }

    /// Marks a call's analytics stale (its data changed); the folder picks it up.
    pub async fn touch_call(&self, call_id: &CallId) -> Result<(), StoreError> {
        sqlx::query("UPDATE calls SET rollup_rev = rollup_rev + 1 WHERE id = $1")
            .bind(call_id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Reads what analytics needs of one call. The revision is read first, so a write that
    /// lands while the facts are read leaves the call stale (and folded again).
    pub async fn call_facts(&self, call_id: &CallId) -> Result<Option<CallFacts>, StoreError> {
        let Some(rev_row) = sqlx::query("SELECT rollup_rev, tenant_id FROM calls WHERE id = $1")
            .bind(call_id.as_str())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let rev: i64 = rev_row.get(0);
        let tenant_id: TenantId = rev_row.get(1);
        let Some(call) = self.get_call(&tenant_id, call_id).await? else {
            return Ok(None);
        };
        let turns = sqlx::query("SELECT e2e_ms, eot_ms FROM turns WHERE call_id = $1")
            .bind(call_id.as_str())
            .fetch_all(&self.pool)
            .await?;
        let mut e2e_ms = Vec::new();
        let mut eot_ms = Vec::new();
        for t in &turns {
            if let Some(v) = t.get::<Option<i64>, _>(0) {
                e2e_ms.push(v);
            }
            if let Some(v) = t.get::<Option<i64>, _>(1) {
                eot_ms.push(v);
            }
        }
        let events = sqlx::query(
            "SELECT kind, detail FROM call_events WHERE call_id = $1 \
             AND kind IN ('refused', 'transfer', 'node') ORDER BY at, id",
        )
        .bind(call_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut refusals = 0;
        let mut transferred =
            call.end_reason.as_ref().map(EndReason::as_str) == Some("transferred");
        let mut last_node = None;
        for e in &events {
            let kind: String = e.get(0);
            let detail: String = e.get(1);
            let detail: serde_json::Value = serde_json::from_str(&detail).unwrap_or_default();
            match kind.as_str() {
                "refused" => refusals += 1,
                "transfer" => transferred |= detail["state"] == "accepted",
                _ => {
                    if let Some(to) = detail["to"].as_str() {
                        last_node = Some(to.to_owned());
                    }
                }
            }
        }
        let followups: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM messages WHERE call_id = $1) + \
             (SELECT COUNT(*) FROM callbacks WHERE call_id = $1)",
        )
        .bind(call_id.as_str())
        .fetch_one(&self.pool)
        .await?
        .get(0);
        let usage_rows = sqlx::query(
            "SELECT kind, CAST(SUM(quantity) AS BIGINT) FROM usage_records WHERE call_id = $1 \
             GROUP BY kind",
        )
        .bind(call_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        let usage = usage_rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
            .collect();
        let mos_x100 = self.get_call_quality(call_id).await?.map(|q| q.mos_x100);
        Ok(Some(CallFacts {
            call,
            rev,
            turns: turns.len() as i64,
            e2e_ms,
            eot_ms,
            refusals,
            transferred,
            followups: followups > 0,
            last_node,
            usage,
            mos_x100,
        }))
    }

    /// Replaces what call `call_id` contributes to the rollups with `new` and stores its
    /// priced cost, if no other folder applied revision ≥ `rev` meanwhile.
    pub async fn apply_fold(
        &self,
        tenant_id: &TenantId,
        call_id: &CallId,
        rev: i64,
        new: &Contribution,
        ledger: &LedgerEntry,
        now_ms: i64,
    ) -> Result<FoldOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The guard: first statement, so on PostgreSQL it also locks the call row against a
        // concurrent folder (which then sees rolled_rev moved and backs off).
        let claimed = sqlx::query(
            "UPDATE calls SET rolled_rev = $1 WHERE id = $2 AND rolled_rev < $1 \
             AND rollup_rev >= $1",
        )
        .bind(rev)
        .bind(call_id.as_str())
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(FoldOutcome::Raced);
        }
        let old: Option<Contribution> =
            sqlx::query("SELECT contribution FROM call_rollup_state WHERE call_id = $1")
                .bind(call_id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| {
                    let text: String = r.get(0);
                    serde_json::from_str(&text).map_err(|_| StoreError::Corrupt {
                        what: "rollup contribution",
                        value: text,
                    })
                })
                .transpose()?;
        let mut deltas = RollupDeltas::default();
        if let Some(old) = &old {
            deltas.add(old, -1);
        }
        deltas.add(new, 1);
        deltas.write(tenant_id, &mut tx).await?;
        let contribution = serde_json::to_string(new).unwrap_or_default();
        sqlx::query(
            "INSERT INTO call_rollup_state (call_id, tenant_id, contribution, currency, \
             cost_micros, cost_breakdown, folded_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (call_id) DO UPDATE SET contribution = excluded.contribution, \
             currency = excluded.currency, cost_micros = excluded.cost_micros, \
             cost_breakdown = excluded.cost_breakdown, folded_at = excluded.folded_at",
        )
        .bind(call_id.as_str())
        .bind(tenant_id.as_str())
        .bind(contribution)
        .bind(&ledger.currency)
        .bind(ledger.total_micros)
        .bind(ledger.breakdown.to_string())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(FoldOutcome::Applied)
    }

    /// The cost ledger entry of a call of `tenant_id`, once folded.
    pub async fn call_cost(
        &self,
        tenant_id: &TenantId,
        call_id: &CallId,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        let row = sqlx::query(
            "SELECT currency, cost_micros, cost_breakdown FROM call_rollup_state \
             WHERE tenant_id = $1 AND call_id = $2",
        )
        .bind(tenant_id.as_str())
        .bind(call_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| LedgerEntry {
            currency: r.get(0),
            total_micros: r.get(1),
            breakdown: serde_json::from_str(&r.get::<String, _>(2)).unwrap_or_default(),
        }))
    }
}

/// Deltas per rollup row, merged so each row is written once per fold.
#[derive(Default)]
pub(crate) struct RollupDeltas {
    calls: BTreeMap<(Grain, i64), Vec<i64>>,
    counts: BTreeMap<(Grain, i64, String, String), i64>,
}

impl RollupDeltas {
    pub(crate) fn add(&mut self, c: &Contribution, sign: i64) {
        for grain in Grain::ALL {
            let slot = grain.slot_of(c.started_at);
            let row = self
                .calls
                .entry((grain, slot))
                .or_insert_with(|| vec![0; VALUES]);
            for (a, b) in row.iter_mut().zip(&c.values) {
                *a += sign * b;
            }
            for (dim, value) in &c.keys {
                *self
                    .counts
                    .entry((grain, slot, dim.clone(), value.clone()))
                    .or_default() += sign;
            }
        }
    }

    /// Writes the non-zero deltas, in key order (so concurrent folders lock rows in the same
    /// order on PostgreSQL).
    pub(crate) async fn write(
        &self,
        tenant_id: &TenantId,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), StoreError> {
        let cols = value_columns();
        let placeholders: Vec<String> = (0..cols.len()).map(|i| format!("${}", i + 4)).collect();
        let updates: Vec<String> = cols
            .iter()
            .map(|c| format!("{c} = rollup_calls.{c} + excluded.{c}"))
            .collect();
        let sql = format!(
            "INSERT INTO rollup_calls (tenant_id, grain, slot, {}) VALUES ($1, $2, $3, {}) \
             ON CONFLICT (tenant_id, grain, slot) DO UPDATE SET {}",
            cols.join(", "),
            placeholders.join(", "),
            updates.join(", ")
        );
        for ((grain, slot), values) in &self.calls {
            if values.iter().all(|v| *v == 0) {
                continue;
            }
            let mut q = sqlx::query(&sql)
                .bind(tenant_id.as_str())
                .bind(grain.as_str())
                .bind(*slot);
            for v in values {
                q = q.bind(*v);
            }
            q.execute(&mut **tx).await?;
        }
        for ((grain, slot, dim, value), n) in &self.counts {
            if *n == 0 {
                continue;
            }
            sqlx::query(
                "INSERT INTO rollup_counts (tenant_id, grain, slot, dim, value, n) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, grain, slot, dim, value) \
                 DO UPDATE SET n = rollup_counts.n + excluded.n",
            )
            .bind(tenant_id.as_str())
            .bind(grain.as_str())
            .bind(*slot)
            .bind(dim)
            .bind(value)
            .bind(*n)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_and_percentiles() {
        assert_eq!(bin_of(0), 0);
        assert_eq!(bin_of(49), 0);
        assert_eq!(bin_of(50), 1);
        assert_eq!(bin_of(1050), 20);
        assert_eq!(bin_of(12_000), 39);
        assert_eq!(bin_of(-5), 0);
        let mut c = Contribution::empty(0);
        for ms in [100, 120, 140, 160, 900] {
            c.add_e2e(ms);
        }
        let t = RollupTotals { values: c.values };
        // Samples 100..149 (3) and 150..199 (1) and 900..949 (1): the median is the 3rd.
        let p50 = percentile(t.e2e_bins(), 0.5).unwrap();
        assert!((100..150).contains(&p50), "{p50}");
        let p95 = percentile(t.e2e_bins(), 0.95).unwrap();
        assert!((900..=950).contains(&p95), "{p95}");
        assert_eq!(percentile(t.eot_bins(), 0.5), None);
    }

    #[test]
    fn grains_slot_down() {
        assert_eq!(Grain::Quarter.slot_of(900_000 + 5), 900_000);
        assert_eq!(Grain::Day.slot_of(86_400_000 * 3 + 1), 86_400_000 * 3);
    }
}
