//! The admin HTTP API for supervisors (axum): liveness, readiness, Prometheus metrics,
//! bearer-key authentication, the `/v1` resources (calls with their turns, events and cost;
//! messages, callbacks, customers, trunks; tenants, numbers, keys and settings; analytics and
//! the CSV export; the plan and checkout), Dodo's webhooks, the supervisors' dashboard page,
//! and the OpenAPI document of all of it (`/openapi.json`).
//!
//! It holds no business rules that belong in `store` or `dialogs`: handlers check input, ask
//! the store, and shape JSON. Errors are JSON (`{"error": {"code", "message"}}`) with a 4xx for
//! bad input; a 500 says nothing about its cause to the client (the cause goes to the log).

mod analytics;
mod auth;
mod billing;
mod calls;
mod customers;
mod dashboard;
mod error;
mod health;
mod messages;
pub mod metrics;
pub mod openapi;
mod tenants;
mod trunks;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, patch, post, put};
use tokio::net::TcpListener;

pub use auth::Authenticated;
pub use billing::BillingContext;
pub use error::ApiError;
pub use trunks::{TrunkDirectory, TrunkHealthInfo, TrunkInfo};

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub store: store::Store,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Clock for `last_used_at` and the like; injectable for tests.
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// The SIP trunks' live state (GET /v1/trunks); `None` without a SIP side.
    pub trunks: Option<Arc<dyn TrunkDirectory>>,
    /// Plans, prices and the payment provider.
    pub billing: Arc<BillingContext>,
    /// The loaded flows, to check names given for numbers; `None`: any name is accepted.
    pub flows: Option<Arc<dyn FlowCatalog>>,
}

/// Which flows exist (the daemon's flow registry).
pub trait FlowCatalog: Send + Sync {
    fn has_flow(&self, name: &str) -> bool;
    fn flow_names(&self) -> Vec<String>;
}

impl AppState {
    /// State with the system clock.
    pub fn new(
        store: store::Store,
        metrics: metrics_exporter_prometheus::PrometheusHandle,
    ) -> Self {
        Self {
            store,
            metrics,
            clock: Arc::new(unix_ms_now),
            trunks: None,
            billing: Arc::new(BillingContext::disabled()),
            flows: None,
        }
    }

    /// Uses `billing` for plans, prices and payments.
    pub fn with_billing(mut self, billing: BillingContext) -> Self {
        self.billing = Arc::new(billing);
        self
    }

    /// Checks flow names against `flows`.
    pub fn with_flows(mut self, flows: Arc<dyn FlowCatalog>) -> Self {
        self.flows = Some(flows);
        self
    }

    /// Serves the trunks' state from `directory`.
    pub fn with_trunks(mut self, directory: Arc<dyn TrunkDirectory>) -> Self {
        self.trunks = Some(directory);
        self
    }

    pub(crate) fn now_ms(&self) -> i64 {
        (self.clock)()
    }
}

/// Current time as unix milliseconds.
pub fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/whoami", get(auth::whoami))
        .route("/keys", get(auth::list_keys).post(tenants::create_key))
        .route("/keys/{id}", axum::routing::delete(tenants::revoke_key))
        .route("/calls", get(calls::list))
        .route("/calls/{id}", get(calls::get_one))
        .route("/messages", get(messages::list_messages))
        .route("/messages/{id}/handled", post(messages::mark_handled))
        .route("/callbacks", get(messages::list_callbacks))
        .route("/callbacks/{id}/done", post(messages::mark_callback_done))
        .route("/customers", get(customers::by_phone))
        .route("/trunks", get(trunks::list))
        .route(
            "/tenants",
            get(tenants::list_tenants).post(tenants::create_tenant),
        )
        .route("/tenants/{id}", get(tenants::get_tenant))
        .route("/tenants/{id}/keys", post(tenants::create_tenant_key))
        .route("/tenants/{id}/numbers", post(tenants::add_number))
        .route(
            "/tenants/{id}/numbers/{number}",
            axum::routing::delete(tenants::remove_number),
        )
        .route("/tenants/{id}/trunk-routes", post(tenants::add_trunk_route))
        .route(
            "/tenants/{id}/trunk-routes/{trunk_id}",
            axum::routing::delete(tenants::remove_trunk_route),
        )
        .route("/tenants/{id}/plan", put(tenants::set_plan))
        .route("/numbers", get(tenants::list_numbers))
        .route("/numbers/{number}", patch(tenants::set_number_flow))
        .route("/trunk-routes", get(tenants::list_trunk_routes))
        .route(
            "/trunk-routes/{trunk_id}",
            patch(tenants::set_trunk_route_flow),
        )
        .route(
            "/settings",
            get(tenants::get_settings).put(tenants::put_settings),
        )
        .route("/analytics/summary", get(analytics::summary))
        .route("/analytics/timeseries", get(analytics::timeseries))
        .route("/exports/calls", get(analytics::export_calls))
        .route("/billing", get(billing::get_status))
        .route("/billing/checkout", post(billing::checkout))
        .fallback(error::not_found)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ));
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/dashboard", get(dashboard::page))
        .route("/webhooks/dodo", post(billing::dodo_webhook))
        .nest("/v1", v1)
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn(metrics::track_requests))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
