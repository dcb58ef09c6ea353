//! Plans, subscriptions and payments, as the payment provider's webhooks report them, and the
//! webhook deliveries already seen.
//!
//! Events may arrive in any order and more than once. Each applied state carries the event's
//! own timestamp (`event_at`, unix ms) and a rank for equal timestamps; an upsert only
//! replaces a row with an older one (a conditional `ON CONFLICT … DO UPDATE … WHERE`, atomic on
//! both engines). The delivery id is inserted in the same transaction as the effect, so a
//! replay changes nothing and a failed apply is retried by the sender.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{CallId, Store, StoreError, TenantId};

/// A tenant's plan and subscription state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub tenant_id: TenantId,
    /// Plan name from the configuration.
    pub plan: String,
    /// `pending`, `active`, `on_hold`, `paused`, `cancelled`, `failed`, `expired` (Dodo's
    /// subscription statuses), or `manual` for a plan set by a platform admin.
    pub status: String,
    pub dodo_subscription_id: Option<String>,
    pub dodo_customer_id: Option<String>,
    pub product_id: Option<String>,
    /// The current billing period (unix ms), when the provider said.
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub event_at: i64,
    pub event_rank: i64,
    pub updated_at: i64,
}

/// A payment's latest known state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub payment_id: String,
    pub tenant_id: TenantId,
    pub subscription_id: Option<String>,
    /// `plan` or `invoice`.
    pub purpose: String,
    /// The invoice number for `invoice` payments.
    pub reference: Option<String>,
    pub status: String,
    pub total_minor: i64,
    pub currency: String,
    pub event_at: i64,
    pub updated_at: i64,
}

/// A checkout session we created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    pub session_id: String,
    pub tenant_id: TenantId,
    /// `plan` or `invoice`.
    pub purpose: String,
    pub plan: Option<String>,
    pub reference: Option<String>,
    pub customer_id: Option<String>,
    pub call_id: Option<CallId>,
    pub url: String,
    pub created_at: i64,
}

/// What a verified webhook delivery does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookEffect {
    Subscription(Subscription),
    Payment(Payment),
    /// Recorded as seen, nothing else (event types we do not act on).
    Nothing,
}

/// The result of [`Store::apply_webhook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookApplied {
    /// First delivery; the effect was applied (or was older than the state and ignored).
    Applied,
    /// This webhook id was seen before: nothing done.
    Duplicate,
}

const SUB_COLUMNS: &str = "tenant_id, plan, status, dodo_subscription_id, dodo_customer_id, \
     product_id, period_start, period_end, cancel_at_period_end, event_at, event_rank, updated_at";

fn sub_from_row(r: &AnyRow) -> Subscription {
    Subscription {
        tenant_id: TenantId::new(r.get::<String, _>(0)),
        plan: r.get(1),
        status: r.get(2),
        dodo_subscription_id: r.get(3),
        dodo_customer_id: r.get(4),
        product_id: r.get(5),
        period_start: r.get(6),
        period_end: r.get(7),
        cancel_at_period_end: r.get::<i64, _>(8) != 0,
        event_at: r.get(9),
        event_rank: r.get(10),
        updated_at: r.get(11),
    }
}

/// Newer event wins; and a terminal event of another subscription than the tenant's current
/// one (an old subscription expiring late) never overrides it.
const UPSERT_SUBSCRIPTION: &str = "INSERT INTO subscriptions (tenant_id, plan, status, \
     dodo_subscription_id, dodo_customer_id, product_id, period_start, period_end, \
     cancel_at_period_end, event_at, event_rank, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (tenant_id) DO UPDATE SET plan = excluded.plan, status = excluded.status, \
     dodo_subscription_id = excluded.dodo_subscription_id, \
     dodo_customer_id = COALESCE(excluded.dodo_customer_id, subscriptions.dodo_customer_id), \
     product_id = excluded.product_id, period_start = excluded.period_start, \
     period_end = excluded.period_end, cancel_at_period_end = excluded.cancel_at_period_end, \
     event_at = excluded.event_at, event_rank = excluded.event_rank, \
     updated_at = excluded.updated_at \
     WHERE (subscriptions.event_at < excluded.event_at OR (subscriptions.event_at = \
     excluded.event_at AND subscriptions.event_rank < excluded.event_rank)) \
     AND (subscriptions.dodo_subscription_id IS NULL OR excluded.dodo_subscription_id IS NULL \
     OR subscriptions.dodo_subscription_id = excluded.dodo_subscription_id \
     OR excluded.status IN ('pending', 'active', 'on_hold', 'paused'))";

const UPSERT_PAYMENT: &str = "INSERT INTO billing_payments (payment_id, tenant_id, \
     subscription_id, purpose, reference, status, total_minor, currency, event_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (payment_id) DO UPDATE SET status = excluded.status, \
     total_minor = excluded.total_minor, currency = excluded.currency, \
     event_at = excluded.event_at, updated_at = excluded.updated_at \
     WHERE billing_payments.event_at < excluded.event_at";

impl Store {
    /// A tenant's subscription row, if any.
    pub async fn subscription(
        &self,
        tenant_id: &TenantId,
    ) -> Result<Option<Subscription>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SUB_COLUMNS} FROM subscriptions WHERE tenant_id = $1"
        ))
        .bind(tenant_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(sub_from_row))
    }

    /// The tenant that owns a provider subscription id.
    pub async fn tenant_of_subscription(
        &self,
        dodo_subscription_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT tenant_id FROM subscriptions WHERE dodo_subscription_id = $1")
                .bind(dodo_subscription_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Sets a plan by hand (platform admin), as an event at `now_ms`.
    pub async fn set_plan(
        &self,
        tenant_id: &TenantId,
        plan: &str,
        now_ms: i64,
    ) -> Result<Subscription, StoreError> {
        let sub = Subscription {
            tenant_id: tenant_id.clone(),
            plan: plan.to_owned(),
            status: "manual".to_owned(),
            dodo_subscription_id: None,
            dodo_customer_id: None,
            product_id: None,
            period_start: None,
            period_end: None,
            cancel_at_period_end: false,
            event_at: now_ms,
            event_rank: i64::MAX,
            updated_at: now_ms,
        };
        bind_subscription(sqlx::query(UPSERT_SUBSCRIPTION), &sub)
            .execute(&self.pool)
            .await?;
        self.subscription(tenant_id)
            .await?
            .ok_or(StoreError::NotFound {
                what: "subscription",
            })
    }

    /// Applies a verified webhook delivery once: records `webhook_id` and applies `effect` in
    /// one transaction. A delivery id seen before is [`WebhookApplied::Duplicate`].
    pub async fn apply_webhook(
        &self,
        provider: &str,
        webhook_id: &str,
        event_type: &str,
        tenant_id: Option<&TenantId>,
        effect: &WebhookEffect,
        now_ms: i64,
    ) -> Result<WebhookApplied, StoreError> {
        let mut tx = self.pool.begin().await?;
        let seen = sqlx::query(
            "INSERT INTO webhook_deliveries (provider, webhook_id, event_type, tenant_id, outcome, \
             received_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (provider, webhook_id) DO NOTHING",
        )
        .bind(provider)
        .bind(webhook_id)
        .bind(event_type)
        .bind(tenant_id.map(TenantId::as_str))
        .bind(match effect {
            WebhookEffect::Nothing => "ignored",
            _ => "applied",
        })
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if seen.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(WebhookApplied::Duplicate);
        }
        match effect {
            WebhookEffect::Subscription(sub) => {
                bind_subscription(sqlx::query(UPSERT_SUBSCRIPTION), sub)
                    .execute(&mut *tx)
                    .await?;
            }
            WebhookEffect::Payment(p) => {
                sqlx::query(UPSERT_PAYMENT)
                    .bind(&p.payment_id)
                    .bind(p.tenant_id.as_str())
                    .bind(&p.subscription_id)
                    .bind(&p.purpose)
                    .bind(&p.reference)
                    .bind(&p.status)
                    .bind(p.total_minor)
                    .bind(&p.currency)
                    .bind(p.event_at)
                    .bind(p.updated_at)
                    .execute(&mut *tx)
                    .await?;
            }
            WebhookEffect::Nothing => {}
        }
        tx.commit().await?;
        Ok(WebhookApplied::Applied)
    }

    /// How many deliveries of `provider` were recorded (for tests and metrics).
    pub async fn webhook_deliveries(&self, provider: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM webhook_deliveries WHERE provider = $1")
            .bind(provider)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get(0))
    }

    /// A tenant's payments, latest update first.
    pub async fn list_payments(
        &self,
        tenant_id: &TenantId,
        limit: u32,
    ) -> Result<Vec<Payment>, StoreError> {
        let rows = sqlx::query(
            "SELECT payment_id, tenant_id, subscription_id, purpose, reference, status, \
             total_minor, currency, event_at, updated_at FROM billing_payments \
             WHERE tenant_id = $1 ORDER BY updated_at DESC, payment_id LIMIT $2",
        )
        .bind(tenant_id.as_str())
        .bind(i64::from(limit.clamp(1, 200)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Payment {
                payment_id: r.get(0),
                tenant_id: TenantId::new(r.get::<String, _>(1)),
                subscription_id: r.get(2),
                purpose: r.get(3),
                reference: r.get(4),
                status: r.get(5),
                total_minor: r.get(6),
                currency: r.get(7),
                event_at: r.get(8),
                updated_at: r.get(9),
            })
            .collect())
    }

    /// Records a checkout session we created.
    pub async fn insert_checkout_session(&self, s: &CheckoutSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO checkout_sessions (session_id, tenant_id, purpose, plan, reference, \
             customer_id, call_id, url, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&s.session_id)
        .bind(s.tenant_id.as_str())
        .bind(&s.purpose)
        .bind(&s.plan)
        .bind(&s.reference)
        .bind(&s.customer_id)
        .bind(s.call_id.as_ref().map(CallId::as_str))
        .bind(&s.url)
        .bind(s.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_insert(e, "checkout session"))?;
        Ok(())
    }

    /// A tenant's checkout sessions, newest first.
    pub async fn list_checkout_sessions(
        &self,
        tenant_id: &TenantId,
        limit: u32,
    ) -> Result<Vec<CheckoutSession>, StoreError> {
        let rows = sqlx::query(
            "SELECT session_id, tenant_id, purpose, plan, reference, customer_id, call_id, url, \
             created_at FROM checkout_sessions WHERE tenant_id = $1 \
             ORDER BY created_at DESC, session_id LIMIT $2",
        )
        .bind(tenant_id.as_str())
        .bind(i64::from(limit.clamp(1, 200)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| CheckoutSession {
                session_id: r.get(0),
                tenant_id: TenantId::new(r.get::<String, _>(1)),
                purpose: r.get(2),
                plan: r.get(3),
                reference: r.get(4),
                customer_id: r.get(5),
                call_id: r.get::<Option<String>, _>(6).map(CallId::new),
                url: r.get(7),
                created_at: r.get(8),
            })
            .collect())
    }
}

fn bind_subscription<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    s: &'q Subscription,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(s.tenant_id.as_str())
        .bind(&s.plan)
        .bind(&s.status)
        .bind(&s.dodo_subscription_id)
        .bind(&s.dodo_customer_id)
        .bind(&s.product_id)
        .bind(s.period_start)
        .bind(s.period_end)
        .bind(i64::from(s.cancel_at_period_end))
        .bind(s.event_at)
        .bind(s.event_rank)
        .bind(s.updated_at)
}
