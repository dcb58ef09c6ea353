//! `GET /dashboard`: the supervisors' page, one HTML file with its script and styles inline,
//! embedded in the binary (no CDN, no build step). It asks for a key once (kept in the tab's
//! sessionStorage) and reads the same `/v1` endpoints as any other client.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("dashboard.html");

/// The dashboard page (no authentication: the page itself holds no data).
#[utoipa::path(get, path = "/dashboard", tag = "meta",
    responses((status = 200, description = "The supervisors' dashboard", content_type = "text/html")))]
pub(crate) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Only our own script and our own API; nothing from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 img-src 'self' data:; connect-src 'self'",
            ),
        ],
        PAGE,
    )
}
