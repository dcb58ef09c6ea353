//! Liveness, readiness and metrics endpoints (no authentication: probes and scrapers).

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::AppState;

#[utoipa::path(get, path = "/health", tag = "meta", responses((status = 200, description = "The process serves requests", content_type = "text/plain")))]
/// 200 while the process serves requests.
pub(crate) async fn health() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

#[utoipa::path(get, path = "/ready", tag = "meta", responses((status = 200, description = "The database answers", content_type = "text/plain"), (status = 503, description = "The database does not answer", content_type = "text/plain")))]
/// 200 when the database answers within two seconds, else 503.
pub(crate) async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let ok = tokio::time::timeout(Duration::from_secs(2), state.store.ping())
        .await
        .unwrap_or(false);
    ::metrics::gauge!("agent_database_up").set(if ok { 1.0 } else { 0.0 });
    if ok {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
    }
}

#[utoipa::path(get, path = "/metrics", tag = "meta", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
/// Prometheus text exposition.
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
