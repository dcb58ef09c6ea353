//! Plans, the usage meter and the admission check made when a call is set up.
//!
//! A tenant's plan is its subscription's while that is `active` (or set by hand), otherwise the
//! default plan. The meter counts call minutes (`call_ms` usage, from the rollups: calls that
//! started in the billing period — the subscription's current period when the provider gave
//! one, else the calendar month in UTC). Usage is written when a call ends, so a call in
//! progress is not counted yet; the concurrent-call limit bounds what can run over.

use std::collections::BTreeMap;

use store::{CallDirection, Store, StoreError, Subscription};

/// What happens when the included minutes are used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overage {
    /// New calls are refused until the next period.
    Block,
    /// Calls go on; minutes over are billed at the plan's overage rate.
    Allow,
}

/// One plan from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub name: String,
    pub included_minutes: i64,
    /// Calls of the tenant at once (0: no limit beyond the daemon's).
    pub concurrent_calls: u32,
    pub overage: Overage,
    /// Micro-units per minute over the included ones (with [`Overage::Allow`]).
    pub overage_per_minute: i64,
    /// The Dodo product a subscription to this plan is for (empty: not sold online).
    pub dodo_product_id: String,
}

/// The plans and whether they are enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plans {
    /// Off: every call is admitted (the meter still counts).
    pub enforce: bool,
    pub default_plan: String,
    pub plans: BTreeMap<String, Plan>,
    /// Calls unfinished for longer than this are not counted as running (orphans of a daemon
    /// that died; the next start ends them).
    pub max_call_ms: i64,
}

impl Plans {
    /// The plan a subscription entitles to (the default plan without an active one).
    pub fn effective(&self, sub: Option<&Subscription>) -> Option<&Plan> {
        let name = match sub {
            Some(s) if matches!(s.status.as_str(), "active" | "manual") => s.plan.as_str(),
            _ => self.default_plan.as_str(),
        };
        self.plans
            .get(name)
            .or_else(|| self.plans.get(&self.default_plan))
    }

    /// The plan sold as Dodo product `product_id`.
    pub fn for_product(&self, product_id: &str) -> Option<&Plan> {
        self.plans
            .values()
            .find(|p| !p.dodo_product_id.is_empty() && p.dodo_product_id == product_id)
    }
}

/// The admission decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admit,
    Refuse(Refusal),
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("plan {plan:?}: included minutes used ({used_ms} ms of {included_ms} ms)")]
    QuotaExhausted {
        plan: String,
        used_ms: i64,
        included_ms: i64,
    },
    #[error("plan {plan:?}: {running} calls running, the plan allows {limit}")]
    ConcurrencyLimit {
        plan: String,
        running: i64,
        limit: u32,
    },
    #[error("no plan: the default plan {0:?} is not configured")]
    NoPlan(String),
}

impl Refusal {
    /// A stable code for metrics and the stored end reason.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::QuotaExhausted { .. } => "quota_exceeded",
            Refusal::ConcurrencyLimit { .. } => "plan_concurrency",
            Refusal::NoPlan(_) => "no_plan",
        }
    }
}

const QUARTER: i64 = 15 * 60_000;

/// The billing period holding `now_ms`: the subscription's, when it has one around `now_ms`,
/// else the calendar month (UTC). Both ends on quarter hours (the rollups' finest grain).
pub fn billing_period(sub: Option<&Subscription>, now_ms: i64) -> (i64, i64) {
    if let Some((start, end)) = sub.and_then(|s| s.period_start.zip(s.period_end))
        && start <= now_ms
        && now_ms < end
    {
        return (
            start.div_euclid(QUARTER) * QUARTER,
            (end + QUARTER - 1).div_euclid(QUARTER) * QUARTER,
        );
    }
    let ts = jiff::Timestamp::from_millisecond(now_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let date = ts.to_zoned(jiff::tz::TimeZone::UTC).date();
    let first = date.first_of_month();
    let next = first
        .checked_add(jiff::Span::new().months(1))
        .unwrap_or(first);
    let ms = |d: jiff::civil::Date| {
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(0)
    };
    (ms(first), ms(next))
}

/// Minutes used (ms) in the period holding `now_ms`.
pub async fn used_ms(
    store: &Store,
    tenant_id: &store::TenantId,
    sub: Option<&Subscription>,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let (start, end) = billing_period(sub, now_ms);
    let totals = store.rollup_totals(tenant_id, start, end).await?;
    Ok(totals.get(store::rollup::Counter::CallMs))
}

/// Whether a new call of `tenant_id` may start. Outbound calls are checked the same way.
pub async fn check_admission(
    store: &Store,
    plans: &Plans,
    tenant_id: &store::TenantId,
    direction: CallDirection,
    now_ms: i64,
) -> Result<Admission, StoreError> {
    if !plans.enforce {
        return Ok(Admission::Admit);
    }
    let sub = store.subscription(tenant_id).await?;
    let Some(plan) = plans.effective(sub.as_ref()) else {
        return Ok(Admission::Refuse(Refusal::NoPlan(
            plans.default_plan.clone(),
        )));
    };
    if plan.concurrent_calls > 0 {
        let running = store
            .count_unfinished_calls(tenant_id, now_ms - plans.max_call_ms)
            .await?;
        if running >= i64::from(plan.concurrent_calls) {
            return Ok(Admission::Refuse(Refusal::ConcurrencyLimit {
                plan: plan.name.clone(),
                running,
                limit: plan.concurrent_calls,
            }));
        }
    }
    if plan.overage == Overage::Block {
        let used = used_ms(store, tenant_id, sub.as_ref(), now_ms).await?;
        let included = plan.included_minutes.saturating_mul(60_000);
        if used >= included {
            tracing::info!(
                tenant_id = %tenant_id,
                ?direction,
                used,
                included,
                "call refused: quota used"
            );
            return Ok(Admission::Refuse(Refusal::QuotaExhausted {
                plan: plan.name.clone(),
                used_ms: used,
                included_ms: included,
            }));
        }
    }
    Ok(Admission::Admit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_month_by_default_and_the_subscription_period_when_current() {
        // 2026-12-05T08:00:00Z
        let now = 1_796_457_600_000;
        let (start, end) = billing_period(None, now);
        assert_eq!(
            jiff::Timestamp::from_millisecond(start)
                .unwrap()
                .to_string(),
            "2026-12-01T00:00:00Z"
        );
        assert_eq!(
            jiff::Timestamp::from_millisecond(end).unwrap().to_string(),
            "2027-01-01T00:00:00Z"
        );
        let sub = Subscription {
            tenant_id: store::TenantId::new("t"),
            plan: "p".into(),
            status: "active".into(),
            dodo_subscription_id: None,
            dodo_customer_id: None,
            product_id: None,
            period_start: Some(now - 86_400_000 - 7),
            period_end: Some(now + 86_400_000 + 7),
            cancel_at_period_end: false,
            event_at: 0,
            event_rank: 0,
            updated_at: 0,
        };
        let (s, e) = billing_period(Some(&sub), now);
        assert_eq!((s % QUARTER, e % QUARTER), (0, 0));
        assert!(s <= now - 86_400_000 - 7 && e >= now + 86_400_000 + 7);
    }
}
