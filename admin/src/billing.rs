//! The tenant's plan and usage (`GET /v1/billing`), upgrading through a Dodo checkout
//! (`POST /v1/billing/checkout`), and Dodo's webhooks (`POST /webhooks/dodo`, no API key: the
//! Standard Webhooks signature authenticates the sender).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use billing::dodo::{CartItem, CheckoutRequest, DodoClient};
use billing::webhook::WebhookSecret;
use billing::{Plans, Prices};
use serde::{Deserialize, Serialize};
use store::{CheckoutSession, Role, WebhookApplied};
use utoipa::ToSchema;

use crate::{ApiError, AppState, Authenticated};

/// What the billing endpoints need from the configuration.
#[derive(Clone, Debug)]
pub struct BillingContext {
    pub plans: Plans,
    pub prices: Prices,
    /// `None` when `dodo.api_key` is empty: checkout answers 503.
    pub dodo: Option<DodoClient>,
    /// `None` when `dodo.webhook_secret` is empty: webhooks answer 503.
    pub webhook_secret: Option<WebhookSecret>,
    /// Where Dodo sends the customer after paying.
    pub return_url: Option<String>,
}

impl BillingContext {
    /// Nothing configured: no plans enforced, prices zero, no payment provider.
    pub fn disabled() -> BillingContext {
        BillingContext {
            plans: Plans {
                enforce: false,
                default_plan: String::new(),
                plans: BTreeMap::new(),
                max_call_ms: 2 * 3_600_000,
            },
            prices: Prices {
                currency: "USD".to_owned(),
                inbound_per_minute: 0,
                outbound_per_minute: 0,
                stt_per_audio_minute: 0,
                llm_prompt_per_1k_tokens: 0,
                llm_completion_per_1k_tokens: 0,
                tts_per_1k_chars: 0,
            },
            dodo: None,
            webhook_secret: None,
            return_url: None,
        }
    }
}

/// A plan as configured.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PlanJson {
    name: String,
    included_minutes: i64,
    concurrent_calls: u32,
    /// `block` or `allow`.
    overage: String,
    overage_per_minute_micros: i64,
}

/// A payment reported by Dodo.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PaymentJson {
    payment_id: String,
    purpose: String,
    reference: Option<String>,
    status: String,
    total_minor: i64,
    currency: String,
    updated_at: i64,
}

/// The tenant's plan, subscription state and usage in the current period.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingStatus {
    /// The plan in force now (the default plan without an active subscription).
    plan: Option<PlanJson>,
    /// The subscription's status (`active`, `on_hold`, `cancelled`, …; `none` without one).
    status: String,
    subscription_id: Option<String>,
    cancel_at_period_end: bool,
    enforced: bool,
    period_start: i64,
    period_end: i64,
    used_ms: i64,
    /// Included minutes left (0 when used up).
    remaining_ms: Option<i64>,
    payments: Vec<PaymentJson>,
}

pub(crate) async fn status_of(
    state: &AppState,
    tenant_id: &store::TenantId,
) -> Result<BillingStatus, ApiError> {
    let now = state.now_ms();
    let sub = state.store.subscription(tenant_id).await?;
    let plans = &state.billing.plans;
    let plan = plans.effective(sub.as_ref());
    let (period_start, period_end) = billing::billing_period(sub.as_ref(), now);
    let used_ms = state
        .store
        .rollup_totals(tenant_id, period_start, period_end)
        .await?
        .get(store::rollup::Counter::CallMs);
    let payments = state.store.list_payments(tenant_id, 20).await?;
    Ok(BillingStatus {
        remaining_ms: plan.map(|p| (p.included_minutes.saturating_mul(60_000) - used_ms).max(0)),
        plan: plan.map(|p| PlanJson {
            name: p.name.clone(),
            included_minutes: p.included_minutes,
            concurrent_calls: p.concurrent_calls,
            overage: match p.overage {
                billing::Overage::Block => "block",
                billing::Overage::Allow => "allow",
            }
            .to_owned(),
            overage_per_minute_micros: p.overage_per_minute,
        }),
        status: sub
            .as_ref()
            .map_or_else(|| "none".to_owned(), |s| s.status.clone()),
        subscription_id: sub.as_ref().and_then(|s| s.dodo_subscription_id.clone()),
        cancel_at_period_end: sub.as_ref().is_some_and(|s| s.cancel_at_period_end),
        enforced: plans.enforce,
        period_start,
        period_end,
        used_ms,
        payments: payments
            .into_iter()
            .map(|p| PaymentJson {
                payment_id: p.payment_id,
                purpose: p.purpose,
                reference: p.reference,
                status: p.status,
                total_minor: p.total_minor,
                currency: p.currency,
                updated_at: p.updated_at,
            })
            .collect(),
    })
}

/// The tenant's plan, status and usage (supervisor).
#[utoipa::path(get, path = "/v1/billing", tag = "billing",
    responses((status = 200, body = BillingStatus)), security(("bearer" = [])))]
pub(crate) async fn get_status(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<BillingStatus>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    Ok(Json(status_of(&state, &p.tenant_id).await?))
}

/// `POST /v1/billing/checkout` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckoutBody {
    /// A configured plan sold through Dodo.
    plan: String,
    /// The billing contact.
    email: String,
    name: Option<String>,
}

/// A created checkout session.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CheckoutJson {
    session_id: String,
    checkout_url: String,
}

/// Start a checkout for a plan through Dodo Payments (admin); returns the URL to pay at.
#[utoipa::path(post, path = "/v1/billing/checkout", tag = "billing", request_body = CheckoutBody,
    responses((status = 201, body = CheckoutJson), (status = 400), (status = 403),
        (status = 502), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn checkout(
    State(state): State<AppState>,
    auth: Authenticated,
    b: Result<Json<CheckoutBody>, JsonRejection>,
) -> Result<(StatusCode, Json<CheckoutJson>), ApiError> {
    let p = auth.require(Role::Admin)?.clone();
    let Json(b) = b.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Some(plan) = state.billing.plans.plans.get(&b.plan) else {
        return Err(ApiError::bad_request(format!(
            "plan {:?} is not configured",
            b.plan
        )));
    };
    if plan.dodo_product_id.is_empty() {
        return Err(ApiError::bad_request(format!(
            "plan {:?} is not sold online (no dodo_product_id)",
            b.plan
        )));
    }
    if !b.email.contains('@') {
        return Err(ApiError::bad_request("email is not an e-mail address"));
    }
    let Some(dodo) = &state.billing.dodo else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "payments_unavailable",
            "payments are not configured",
        ));
    };
    let metadata = BTreeMap::from([
        ("tenant_id".to_owned(), p.tenant_id.to_string()),
        ("purpose".to_owned(), "plan".to_owned()),
        ("plan".to_owned(), plan.name.clone()),
    ]);
    let created = dodo
        .create_checkout(&CheckoutRequest {
            product_cart: vec![CartItem {
                product_id: plan.dodo_product_id.clone(),
                quantity: 1,
                amount: None,
            }],
            customer: Some(billing::dodo::CheckoutCustomer {
                email: b.email.clone(),
                name: b.name.clone(),
            }),
            return_url: state.billing.return_url.clone(),
            metadata,
        })
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "Dodo checkout failed");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "payment_provider_error",
                "the payment provider did not create a checkout",
            )
        })?;
    state
        .store
        .insert_checkout_session(&CheckoutSession {
            session_id: created.session_id.clone(),
            tenant_id: p.tenant_id.clone(),
            purpose: "plan".to_owned(),
            plan: Some(plan.name.clone()),
            reference: None,
            customer_id: None,
            call_id: None,
            url: created.checkout_url.clone(),
            created_at: state.now_ms(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CheckoutJson {
            session_id: created.session_id,
            checkout_url: created.checkout_url,
        }),
    ))
}

/// The webhook's answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookAck {
    /// `applied`, `duplicate` or `ignored`.
    outcome: String,
}

/// Dodo Payments webhooks (Standard Webhooks signature; no API key). A bad or stale signature
/// is 401 and changes nothing; a replayed `webhook-id` is 200 and applied once.
#[utoipa::path(post, path = "/webhooks/dodo", tag = "billing",
    request_body(content = String, content_type = "application/json"),
    responses((status = 200, body = WebhookAck), (status = 400), (status = 401), (status = 503)))]
pub(crate) async fn dodo_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAck>, ApiError> {
    let Some(secret) = &state.billing.webhook_secret else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhooks_unavailable",
            "dodo.webhook_secret is not configured",
        ));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = state.now_ms();
    if let Err(e) = secret.verify(
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        &body,
        now.div_euclid(1000),
    ) {
        metrics::counter!("agent_webhooks_rejected_total", "provider" => "dodo").increment(1);
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            format!("webhook rejected: {e}"),
        ));
    }
    let webhook_id = header("webhook-id").unwrap_or_default().to_owned();
    let (envelope, tenant, effect) =
        billing::dodo::effect_of(&state.store, &state.billing.plans, &body, now)
            .await
            .map_err(|e| match e {
                billing::dodo::EventError::Malformed(m) => ApiError::bad_request(m),
                billing::dodo::EventError::Store(s) => s.into(),
                other => {
                    tracing::error!(error = %other, "webhook");
                    ApiError::bad_request("unreadable event")
                }
            })?;
    let ignored = matches!(effect, store::WebhookEffect::Nothing);
    let applied = state
        .store
        .apply_webhook(
            "dodo",
            &webhook_id,
            &envelope.event_type,
            tenant.map(store::TenantId::new).as_ref(),
            &effect,
            now,
        )
        .await?;
    let outcome = match (applied, ignored) {
        (WebhookApplied::Duplicate, _) => "duplicate",
        (WebhookApplied::Applied, true) => "ignored",
        (WebhookApplied::Applied, false) => "applied",
    };
    tracing::info!(event_type = %envelope.event_type, outcome, "dodo webhook");
    Ok(Json(WebhookAck {
        outcome: outcome.to_owned(),
    }))
}
