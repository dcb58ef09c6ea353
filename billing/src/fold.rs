//! Folding calls into the analytics rollups and pricing them into the cost ledger.

use std::time::Duration;

use store::rollup::Counter;
use store::{CallDirection, CallFacts, CallStatus, Contribution, FoldOutcome, LedgerEntry, Store};
use tokio::sync::watch;

use crate::prices::{Prices, price_usage};

/// What a call adds to the rollups, and its priced cost.
///
/// - answered: it has an answer time; handled: answered and ended (handle time = end − answer);
/// - transferred: a transfer was accepted (or it ended `transferred`);
/// - follow-ups: a message or callback request was taken;
/// - contained: handled, not transferred, no follow-up (peers define containment the same way:
///   calls the agent finished alone, over answered calls).
pub fn contribution(f: &CallFacts, prices: &Prices) -> (Contribution, LedgerEntry) {
    let call = &f.call;
    let mut c = Contribution::empty(call.started_at);
    c.add(Counter::Calls, 1);
    match call.direction {
        CallDirection::Inbound => c.add(Counter::Inbound, 1),
        CallDirection::Outbound => c.add(Counter::Outbound, 1),
    }
    let ended = call.status == CallStatus::Ended;
    let answered = call.answered_at.is_some();
    if answered {
        c.add(Counter::Answered, 1);
    }
    if ended {
        c.add(Counter::Ended, 1);
        if let Some(reason) = &call.end_reason {
            c.keys.push(("end_reason".to_owned(), reason.to_string()));
        }
    }
    if let (true, Some(a), Some(e)) = (ended, call.answered_at, call.ended_at) {
        c.add(Counter::Handled, 1);
        c.add(Counter::HandleMs, (e - a).max(0));
        if !f.transferred && !f.followups {
            c.add(Counter::Contained, 1);
        }
    }
    if f.transferred {
        c.add(Counter::Transferred, 1);
    }
    if f.followups {
        c.add(Counter::Followups, 1);
    }
    if let Some(node) = &f.last_node {
        c.keys.push(("last_node".to_owned(), node.clone()));
    }
    c.add(Counter::Refusals, f.refusals);
    c.add(Counter::Turns, f.turns);
    if let Some(mos) = f.mos_x100 {
        c.add(Counter::MosX100Sum, mos);
        c.add(Counter::MosN, 1);
    }
    c.add(
        Counter::CallMs,
        f.usage.get("call_ms").copied().unwrap_or(0).max(0),
    );
    for ms in &f.e2e_ms {
        c.add_e2e(*ms);
    }
    for ms in &f.eot_ms {
        c.add_eot(*ms);
    }
    let (total, _, breakdown) = price_usage(prices, call.direction, &f.usage);
    c.add(Counter::CostMicros, total);
    (
        c,
        LedgerEntry {
            currency: prices.currency.clone(),
            total_micros: total,
            breakdown,
        },
    )
}

/// Keeps the rollups and the cost ledger up to date.
#[derive(Clone)]
pub struct Folder {
    store: Store,
    prices: Prices,
}

impl Folder {
    pub fn new(store: Store, prices: Prices) -> Folder {
        Folder { store, prices }
    }

    /// Folds up to `limit` stale calls; returns how many were applied.
    pub async fn fold_pending(&self, limit: u32, now_ms: i64) -> Result<usize, store::StoreError> {
        let tasks = self.store.calls_to_fold(limit).await?;
        let mut applied = 0;
        for task in tasks {
            let Some(facts) = self.store.call_facts(&task.call_id).await? else {
                continue;
            };
            let (c, ledger) = contribution(&facts, &self.prices);
            let outcome = self
                .store
                .apply_fold(
                    &facts.call.tenant_id,
                    &facts.call.id,
                    facts.rev,
                    &c,
                    &ledger,
                    now_ms,
                )
                .await?;
            if outcome == FoldOutcome::Applied {
                applied += 1;
            }
        }
        Ok(applied)
    }

    /// Folds until nothing is stale (bounded by `rounds` batches of 500).
    pub async fn fold_all(&self, rounds: u32, now_ms: i64) -> Result<usize, store::StoreError> {
        let mut total = 0;
        for _ in 0..rounds {
            let n = self.fold_pending(500, now_ms).await?;
            total += n;
            if n == 0 {
                break;
            }
        }
        Ok(total)
    }

    /// Folds every `every` until `stop` turns true. Store errors are logged and retried.
    pub async fn run(self, every: Duration, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            match self.fold_pending(500, crate::unix_ms_now()).await {
                Ok(n) if n > 0 => {
                    metrics::counter!("agent_rollup_folds_total").increment(n as u64);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "folding calls into analytics failed"),
            }
        }
    }
}
