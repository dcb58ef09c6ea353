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
mod campaigns;
mod customers;
mod dashboard;
mod error;
mod health;
mod integrations;
mod messages;
pub mod metrics;
pub mod openapi;
mod tenants;
mod trunks;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;

pub use auth::Authenticated;
pub use billing::BillingContext;
pub use campaigns::CampaignSupport;
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
    /// Plans, prices and the payment provider.
    pub billing: Arc<BillingContext>,
    /// The loaded flows, to check names given for numbers; `None`: any name is accepted.
    pub flows: Option<Arc<dyn FlowCatalog>>,
    /// Checks for campaign creation (flows, trunks, phone region); `None`: flows and trunks
    /// are not checked and national numbers are read as US numbers.
    pub campaigns: Option<CampaignSupport>,
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
            zoho: None,
            billing: Arc::new(BillingContext::disabled()),
            flows: None,
            campaigns: None,
        }
    }

    /// Checks campaign requests against the daemon's flows, trunks and phone region.
    pub fn with_campaigns(mut self, support: CampaignSupport) -> Self {
        self.campaigns = Some(support);
        self
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

/// Declares a route table once: the function that adds the routes to a router and the list
/// of `(method, path)` pairs it adds, so tests can compare the live router with the OpenAPI
/// document (`tests/openapi.rs`).
macro_rules! routes {
    ($add:ident, $table:ident: $( $method:ident $path:literal => $handler:path ),* $(,)?) => {
        const $table: &[(&str, &str)] = &[ $( (stringify!($method), $path) ),* ];
        fn $add(mut router: Router<AppState>) -> Router<AppState> {
            $( router = router.route($path, axum::routing::$method($handler)); )*
            router
        }
    };
}

routes!(add_v1_routes, V1_ROUTES:
    get "/whoami" => auth::whoami,
    get "/keys" => auth::list_keys,
    post "/keys" => tenants::create_key,
    delete "/keys/{id}" => tenants::revoke_key,
    get "/calls" => calls::list,
    get "/calls/{id}" => calls::get_one,
    get "/calls/{id}/recordings" => calls::recordings,
    get "/calls/{id}/recordings/{channel}" => calls::recording_file,
    get "/messages" => messages::list_messages,
    post "/messages/{id}/handled" => messages::mark_handled,
    get "/callbacks" => messages::list_callbacks,
    post "/callbacks/{id}/done" => messages::mark_callback_done,
    get "/customers" => customers::by_phone,
    get "/trunks" => trunks::list,
    get "/tenants" => tenants::list_tenants,
    post "/tenants" => tenants::create_tenant,
    get "/tenants/{id}" => tenants::get_tenant,
    post "/tenants/{id}/keys" => tenants::create_tenant_key,
    post "/tenants/{id}/numbers" => tenants::add_number,
    delete "/tenants/{id}/numbers/{number}" => tenants::remove_number,
    post "/tenants/{id}/trunk-routes" => tenants::add_trunk_route,
    delete "/tenants/{id}/trunk-routes/{trunk_id}" => tenants::remove_trunk_route,
    put "/tenants/{id}/plan" => tenants::set_plan,
    get "/numbers" => tenants::list_numbers,
    patch "/numbers/{number}" => tenants::set_number_flow,
    get "/trunk-routes" => tenants::list_trunk_routes,
    patch "/trunk-routes/{trunk_id}" => tenants::set_trunk_route_flow,
    get "/settings" => tenants::get_settings,
    put "/settings" => tenants::put_settings,
    get "/analytics/summary" => analytics::summary,
    get "/analytics/timeseries" => analytics::timeseries,
    get "/exports/calls" => analytics::export_calls,
    get "/billing" => billing::get_status,
    post "/billing/checkout" => billing::checkout,
    get "/integrations/zoho" => integrations::status,
    post "/integrations/zoho/connect/start" => integrations::start,
    post "/integrations/zoho/connect/exchange" => integrations::exchange,
    get "/campaigns" => campaigns::list,
    get "/campaigns/{id}" => campaigns::get_one,
    post "/campaigns/{id}/start" => campaigns::start,
    post "/campaigns/{id}/pause" => campaigns::pause,
    get "/campaigns/{id}/contacts" => campaigns::contacts,
    get "/dnc" => campaigns::dnc_list,
    delete "/dnc/{phone}" => campaigns::dnc_remove,
);

/// Largest request body for CSV uploads (campaign contacts, do-not-call lists).
pub const UPLOAD_LIMIT: usize = 64 * 1024 * 1024;

/// Routes that take CSV uploads: the same table shape, with a larger body limit.
const UPLOAD_ROUTES: &[(&str, &str)] = &[("post", "/campaigns"), ("post", "/dnc")];

fn add_upload_routes(router: Router<AppState>) -> Router<AppState> {
    let limit = || DefaultBodyLimit::max(UPLOAD_LIMIT);
    router
        .route(
            "/campaigns",
            axum::routing::post(campaigns::create).layer(limit()),
        )
        .route(
            "/dnc",
            axum::routing::post(campaigns::dnc_add).layer(limit()),
        )
}

routes!(add_top_routes, TOP_ROUTES:
    get "/health" => health::health,
    get "/ready" => health::ready,
    get "/metrics" => health::metrics,
    get "/openapi.json" => openapi::openapi_json,
    get "/dashboard" => dashboard::page,
    post "/webhooks/dodo" => billing::dodo_webhook,
);

/// Every route the router serves, as `(METHOD, /full/path)`.
pub fn routes() -> Vec<(String, String)> {
    TOP_ROUTES
        .iter()
        .map(|(m, p)| (m.to_ascii_uppercase(), (*p).to_owned()))
        .chain(
            V1_ROUTES
                .iter()
                .chain(UPLOAD_ROUTES)
                .map(|(m, p)| (m.to_ascii_uppercase(), format!("/v1{p}"))),
        )
        .collect()
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let v1 = add_upload_routes(add_v1_routes(Router::new()))
        .fallback(error::not_found)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ));
    add_top_routes(Router::new())
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
