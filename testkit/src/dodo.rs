//! [`FakeDodo`]: a local Dodo Payments API (checkout sessions) and a webhook signer.
//!
//! Wire format from `dodopayments/dodopayments-typescript` (`src/resources/checkout-sessions.ts`):
//! `POST /checkouts` with `Authorization: Bearer <key>` and `{product_cart: [{product_id,
//! quantity, amount?}], customer?, return_url?, metadata?}` answers `{session_id,
//! checkout_url}`. Webhooks follow Standard Webhooks (`standard-webhooks/spec/
//! standard-webhooks.md`): headers `webhook-id`, `webhook-timestamp` (unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256(secret, "id.timestamp.body")>`, the secret
//! being the base64 after `whsec_`. The envelope is `{business_id, type, timestamp, data}`
//! (dodo-docs webhooks.mdx:208-216). The signing here is written independently of the
//! daemon's verifier, so a test of one against the other checks both.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// A checkout session the fake created.
#[derive(Debug, Clone)]
pub struct CreatedCheckout {
    pub session_id: String,
    pub checkout_url: String,
    /// The request body as received.
    pub request: Value,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<DodoState>,
}

#[derive(Debug, Default)]
struct DodoState {
    api_key: String,
    checkouts: Vec<CreatedCheckout>,
    /// Answer the next requests with this status (for failure tests).
    fail_next: Vec<u16>,
}

/// A running fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeDodo {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDodo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeDodo {
    /// Starts on 127.0.0.1; requests must carry `Bearer api_key`.
    ///
    /// # Panics
    /// If the loopback socket cannot be bound.
    pub async fn start(api_key: &str) -> FakeDodo {
        let shared = Arc::new(Shared::default());
        shared.state.lock().unwrap().api_key = api_key.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let app = Router::new()
            .route("/checkouts", post(checkouts))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeDodo { addr, shared, task }
    }

    /// The base URL to configure (`dodo.base_url`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Checkouts created so far.
    pub fn checkouts(&self) -> Vec<CreatedCheckout> {
        self.shared.state.lock().unwrap().checkouts.clone()
    }

    /// Answers the next request with `status` and an error body.
    pub fn fail_next(&self, status: u16) {
        self.shared.state.lock().unwrap().fail_next.push(status);
    }
}

async fn checkouts(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", st.api_key) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"code": "UNAUTHORIZED", "message": "bad API key"})),
        )
            .into_response();
    }
    if !st.fail_next.is_empty() {
        let status = st.fail_next.remove(0);
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(json!({"code": "ERROR", "message": "scripted failure"})),
        )
            .into_response();
    }
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, "invalid JSON").into_response();
    };
    let cart_ok = request["product_cart"].as_array().is_some_and(|items| {
        !items.is_empty()
            && items
                .iter()
                .all(|i| i["product_id"].is_string() && i["quantity"].is_u64())
    });
    if !cart_ok {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"code": "INVALID_REQUEST", "message": "product_cart with product_id and quantity is required"})),
        )
            .into_response();
    }
    let n = st.checkouts.len() + 1;
    let session_id = format!("cks_test_{n:06}");
    let checkout_url = format!("https://test.checkout.dodopayments.com/session/{session_id}");
    st.checkouts.push(CreatedCheckout {
        session_id: session_id.clone(),
        checkout_url: checkout_url.clone(),
        request,
    });
    Json(json!({ "session_id": session_id, "checkout_url": checkout_url })).into_response()
}

/// A `whsec_` secret made of `bytes` (24–64 random bytes in production).
pub fn whsec(bytes: &[u8]) -> String {
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The three Standard Webhooks headers for `body`, signed with `secret` (`whsec_…`).
pub fn sign(
    secret: &str,
    webhook_id: &str,
    timestamp_secs: i64,
    body: &str,
) -> Vec<(String, String)> {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("a whsec_ secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{webhook_id}.{timestamp_secs}.{body}").as_bytes());
    let sig = STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("webhook-id".to_owned(), webhook_id.to_owned()),
        ("webhook-timestamp".to_owned(), timestamp_secs.to_string()),
        ("webhook-signature".to_owned(), format!("v1,{sig}")),
    ]
}

/// A webhook body: `{business_id, type, timestamp, data}`.
pub fn event(event_type: &str, timestamp_iso: &str, data: Value) -> String {
    json!({
        "business_id": "bus_test",
        "type": event_type,
        "timestamp": timestamp_iso,
        "data": data,
    })
    .to_string()
}

/// A `Subscription` payload as Dodo sends it (the fields of `src/resources/subscriptions.ts`
/// we and most integrations read), for `tenant_id` via metadata.
pub fn subscription(
    subscription_id: &str,
    status: &str,
    product_id: &str,
    tenant_id: &str,
    previous_billing_date: &str,
    next_billing_date: &str,
) -> Value {
    json!({
        "payload_type": "Subscription",
        "subscription_id": subscription_id,
        "status": status,
        "product_id": product_id,
        "quantity": 1,
        "currency": "USD",
        "recurring_pre_tax_amount": 4900,
        "customer": {"customer_id": "cus_test", "email": "owner@example.com", "name": "Owner"},
        "metadata": {"tenant_id": tenant_id},
        "previous_billing_date": previous_billing_date,
        "next_billing_date": next_billing_date,
        "cancel_at_next_billing_date": false,
        "created_at": previous_billing_date,
        "payment_frequency_count": 1,
        "payment_frequency_interval": "Month",
        "subscription_period_count": 1,
        "subscription_period_interval": "Month",
        "tax_inclusive": false,
        "trial_period_days": 0,
        "on_demand": false,
        "addons": [],
        "meters": [],
        "billing": {"country": "US"},
    })
}

/// A `Payment` payload.
pub fn payment(payment_id: &str, status: &str, total_amount: i64, metadata: Value) -> Value {
    json!({
        "payload_type": "Payment",
        "payment_id": payment_id,
        "business_id": "bus_test",
        "status": status,
        "total_amount": total_amount,
        "currency": "USD",
        "customer": {"customer_id": "cus_test", "email": "payer@example.com", "name": "Payer"},
        "metadata": metadata,
        "created_at": "2026-12-01T00:00:00Z",
        "disputes": [],
        "refunds": [],
        "settlement_amount": total_amount,
        "settlement_currency": "USD",
    })
}
