//! The admin HTTP API for supervisors (axum): liveness, readiness, Prometheus metrics,
//! bearer-key authentication, and the `/v1` resources (calls with their turns and events,
//! messages, callbacks, customers, trunks, the Zoho integration).
//!
//! It holds no business rules that belong in `store` or `dialogs`: handlers check input, ask
//! the store, and shape JSON. Errors are JSON (`{"error": {"code", "message"}}`) with a 4xx for
//! bad input; a 500 says nothing about its cause to the client (the cause goes to the log).

mod auth;
mod calls;
mod customers;
mod error;
mod health;
mod integrations;
mod messages;
pub mod metrics;
mod trunks;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use auth::Authenticated;
pub use error::ApiError;
pub use integrations::{ConnectDone, ConnectError, ConnectFuture, ConnectStart, ZohoConnector};
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
    /// Connecting tenants to Zoho (`/v1/integrations/zoho/connect/*`); `None` when the
    /// integration is not configured.
    pub zoho: Option<Arc<dyn ZohoConnector>>,
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
            zoho: None,
        }
    }

    /// Serves the trunks' state from `directory`.
    pub fn with_trunks(mut self, directory: Arc<dyn TrunkDirectory>) -> Self {
        self.trunks = Some(directory);
        self
    }

    /// Serves the Zoho connect endpoints through `connector`.
    pub fn with_zoho(mut self, connector: Arc<dyn ZohoConnector>) -> Self {
        self.zoho = Some(connector);
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
        .route("/keys", get(auth::list_keys))
        .route("/calls", get(calls::list))
        .route("/calls/{id}", get(calls::get_one))
        .route("/messages", get(messages::list_messages))
        .route("/messages/{id}/handled", post(messages::mark_handled))
        .route("/callbacks", get(messages::list_callbacks))
        .route("/callbacks/{id}/done", post(messages::mark_callback_done))
        .route("/customers", get(customers::by_phone))
        .route("/trunks", get(trunks::list))
        .route("/integrations/zoho", get(integrations::status))
        .route(
            "/integrations/zoho/connect/start",
            post(integrations::start),
        )
        .route(
            "/integrations/zoho/connect/exchange",
            post(integrations::exchange),
        )
        .fallback(error::not_found)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ));
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
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
