//! The process-wide Prometheus recorder and HTTP request metrics.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs the global `metrics` recorder once and returns its render handle. Every crate
/// records through the `metrics` macros; this is the one exporter.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed, in which case ours renders nothing
            // but the process keeps working.
            if ::metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            handle
        })
        .clone()
}

/// Counts requests and their latency by matched route (not raw path: ids would explode the
/// label set).
pub(crate) async fn track_requests(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    ::metrics::counter!("agent_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    ::metrics::histogram!("agent_http_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
