//! The admin HTTP API for supervisors (axum): liveness, readiness, Prometheus metrics,
//! bearer-key authentication, and the `/v1` resources (calls with their turns and events).
//!
//! It holds no business rules that belong in `store` or `dialogs`: handlers check input, ask
//! the store, and shape JSON. Errors are JSON (`{"error": {"code", "message"}}`) with a 4xx for
//! bad input; a 500 says nothing about its cause to the client (the cause goes to the log).

mod auth;
mod calls;
mod campaigns;
mod customers;
mod error;
mod health;
mod messages;
pub mod metrics;
mod trunks;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use tokio::net::TcpListener;

pub use auth::Authenticated;
pub use campaigns::CampaignSupport;
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
    /// Checks for campaign creation (flows, trunks, phone region); `None`: flows and trunks
    /// are not checked and national numbers are read as US numbers.
    pub campaigns: Option<CampaignSupport>,
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
            campaigns: None,
        }
    }

    /// Checks campaign requests against the daemon's flows, trunks and phone region.
    pub fn with_campaigns(mut self, support: CampaignSupport) -> Self {
        self.campaigns = Some(support);
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

/// Largest request body for CSV uploads (campaign contacts, do-not-call lists).
pub const UPLOAD_LIMIT: usize = 64 * 1024 * 1024;

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
        .route(
            "/campaigns",
            get(campaigns::list)
                .post(campaigns::create)
                .layer(DefaultBodyLimit::max(UPLOAD_LIMIT)),
        )
        .route("/campaigns/{id}", get(campaigns::get_one))
        .route("/campaigns/{id}/start", post(campaigns::start))
        .route("/campaigns/{id}/pause", post(campaigns::pause))
        .route("/campaigns/{id}/contacts", get(campaigns::contacts))
        .route(
            "/dnc",
            get(campaigns::dnc_list)
                .post(campaigns::dnc_add)
                .layer(DefaultBodyLimit::max(UPLOAD_LIMIT)),
        )
        .route("/dnc/{phone}", delete(campaigns::dnc_remove))
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
