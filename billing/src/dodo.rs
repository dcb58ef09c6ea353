//! Dodo Payments: creating checkout sessions, and turning webhook events into store effects.
//!
//! Wire format from the official SDK `dodopayments/dodopayments-typescript`:
//! - `POST {base}/checkouts` (`src/resources/checkout-sessions.ts`), `Authorization: Bearer
//!   <key>` (`src/client.ts:572`); body `{product_cart: [{product_id, quantity, amount?}],
//!   customer?: {email, name?} | {customer_id}, return_url?, metadata?: {string: string}}`;
//!   response `{session_id, checkout_url}`. Base URLs: live `https://live.dodopayments.com`,
//!   test `https://test.dodopayments.com` (`src/client.ts:349-350`).
//! - Webhook envelope `{business_id, type, timestamp (ISO 8601), data}` (dodo-docs
//!   webhooks.mdx:208-216); `data` is a `Subscription` (`src/resources/subscriptions.ts`:
//!   `subscription_id, status, product_id, customer{customer_id,…}, metadata,
//!   previous_billing_date, next_billing_date, cancel_at_next_billing_date`) or a `Payment`
//!   (`payment_id, status, total_amount, currency, subscription_id?, metadata`).
//!
//! Delivery order is not guaranteed and retries repeat events, so effects carry the event's
//! own timestamp and are applied newest-wins (see `store::billing`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use store::{Payment, Store, StoreError, Subscription, WebhookEffect};

use crate::Plans;

/// Errors talking to Dodo.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DodoError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
}

/// A client for one Dodo account.
#[derive(Clone)]
pub struct DodoClient {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
}

impl std::fmt::Debug for DodoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DodoClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The customer a checkout is for.
#[derive(Debug, Clone, Serialize)]
pub struct CheckoutCustomer {
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One product in the cart.
#[derive(Debug, Clone, Serialize)]
pub struct CartItem {
    pub product_id: String,
    pub quantity: u32,
    /// Minor units, for pay-what-you-want products (an invoice's balance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
}

/// `POST /checkouts` body (the fields we use).
#[derive(Debug, Clone, Serialize)]
pub struct CheckoutRequest {
    pub product_cart: Vec<CartItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CheckoutCustomer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// `POST /checkouts` answer.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct CheckoutCreated {
    pub session_id: String,
    pub checkout_url: String,
}

impl DodoClient {
    /// A client for `base_url` (e.g. `https://test.dodopayments.com`) with a 10 s timeout.
    pub fn new(base_url: &str, api_key: &str) -> Result<DodoClient, DodoError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(DodoClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
        })
    }

    /// Creates a checkout session and returns its id and URL.
    pub async fn create_checkout(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutCreated, DodoError> {
        let response = self
            .http
            .post(format!("{}/checkouts", self.base_url))
            .bearer_auth(&self.api_key)
            .json(request)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(DodoError::Status {
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        Ok(response.json().await?)
    }
}

/// A webhook event's envelope.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    #[serde(rename = "type")]
    pub event_type: String,
    /// ISO 8601.
    pub timestamp: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

/// Why an event could not be turned into an effect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("not a Dodo webhook event: {0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The tenant an event is about: `metadata.tenant_id` (set on every checkout we create), else
/// the tenant that already owns the subscription.
async fn tenant_of(store: &Store, data: &serde_json::Value) -> Result<Option<String>, StoreError> {
    if let Some(t) = data["metadata"]["tenant_id"].as_str()
        && store.tenant(&store::TenantId::new(t)).await?.is_some()
    {
        return Ok(Some(t.to_owned()));
    }
    match data["subscription_id"].as_str() {
        Some(sub) => store.tenant_of_subscription(sub).await,
        None => Ok(None),
    }
}

/// Orders subscription states with equal event timestamps: later in a subscription's life
/// wins.
fn status_rank(status: &str) -> i64 {
    match status {
        "pending" => 0,
        "active" => 1,
        "paused" => 2,
        "on_hold" => 3,
        "failed" => 4,
        "cancelled" => 5,
        "expired" => 6,
        _ => 0,
    }
}

fn iso_ms(text: Option<&str>) -> Option<i64> {
    text?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// Turns a verified event into what to store. Unknown tenants and event types become
/// [`WebhookEffect::Nothing`] (answered 200 so the sender stops retrying; logged).
pub async fn effect_of(
    store: &Store,
    plans: &Plans,
    body: &[u8],
    now_ms: i64,
) -> Result<(Envelope, Option<String>, WebhookEffect), EventError> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| EventError::Malformed(e.to_string()))?;
    let event_at = iso_ms(Some(&env.timestamp))
        .ok_or_else(|| EventError::Malformed(format!("timestamp {:?}", env.timestamp)))?;
    let data = &env.data;
    let tenant = tenant_of(store, data).await?;
    let Some(tenant_id) = tenant.clone() else {
        tracing::warn!(event_type = %env.event_type, "webhook for no known tenant; ignored");
        return Ok((env, None, WebhookEffect::Nothing));
    };
    let str_of = |k: &str| data[k].as_str().map(str::to_owned);
    let effect = if env.event_type.starts_with("subscription.") {
        let status = str_of("status").unwrap_or_else(|| {
            // Fall back to the event name (subscription.cancelled → cancelled).
            env.event_type["subscription.".len()..].to_owned()
        });
        let product_id = str_of("product_id");
        let plan = product_id
            .as_deref()
            .and_then(|p| plans.for_product(p))
            .map(|p| p.name.clone())
            .or_else(|| data["metadata"]["plan"].as_str().map(str::to_owned))
            .unwrap_or_else(|| plans.default_plan.clone());
        WebhookEffect::Subscription(Subscription {
            tenant_id: store::TenantId::new(tenant_id.clone()),
            plan,
            event_rank: status_rank(&status),
            status,
            dodo_subscription_id: str_of("subscription_id"),
            dodo_customer_id: data["customer"]["customer_id"].as_str().map(str::to_owned),
            product_id,
            period_start: iso_ms(data["previous_billing_date"].as_str()),
            period_end: iso_ms(data["next_billing_date"].as_str()),
            cancel_at_period_end: data["cancel_at_next_billing_date"]
                .as_bool()
                .unwrap_or(false),
            event_at,
            updated_at: now_ms,
        })
    } else if env.event_type.starts_with("payment.") {
        let Some(payment_id) = str_of("payment_id") else {
            return Err(EventError::Malformed("payment without payment_id".into()));
        };
        let status =
            str_of("status").unwrap_or_else(|| env.event_type["payment.".len()..].to_owned());
        let purpose = data["metadata"]["purpose"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| {
                if data["subscription_id"].is_string() {
                    "plan".to_owned()
                } else {
                    "other".to_owned()
                }
            });
        WebhookEffect::Payment(Payment {
            payment_id,
            tenant_id: store::TenantId::new(tenant_id.clone()),
            subscription_id: str_of("subscription_id"),
            purpose,
            reference: data["metadata"]["invoice_number"]
                .as_str()
                .map(str::to_owned),
            status,
            total_minor: data["total_amount"].as_i64().unwrap_or(0),
            currency: str_of("currency").unwrap_or_default(),
            event_at,
            updated_at: now_ms,
        })
    } else {
        WebhookEffect::Nothing
    };
    Ok((env, tenant, effect))
}
