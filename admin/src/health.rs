//! Liveness, readiness and metrics endpoints (no authentication: probes and scrapers).

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::AppState;

/// 200 while the process serves requests.
pub(crate) async fn health() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

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
