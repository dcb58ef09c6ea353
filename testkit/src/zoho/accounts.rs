//! Zoho Accounts: consent and tokens (https://www.zoho.com/accounts/protocol/oauth/web-apps/authorization.html,
//! …/web-apps/access-token.html, …/multi-dc.html; wave2-facts.md §2).
//!
//! - `GET {accounts}/oauth/v2/auth?scope&client_id&response_type=code&access_type=offline&
//!   redirect_uri&state[&prompt=consent]` consents at once and redirects (302) to
//!   `redirect_uri?state=…&code=…&location={dc}&accounts-server={accounts}`.
//! - `POST {accounts}/oauth/v2/token` with `grant_type=authorization_code` (`code`,
//!   `client_id`, `client_secret`, `redirect_uri`) or `grant_type=refresh_token`
//!   (`refresh_token`, `client_id`, `client_secret`); parameters in the query string (as
//!   Zoho's examples) or a form body. Success: `{"access_token", "refresh_token" (code grant
//!   only), "api_domain", "token_type": "Bearer", "expires_in": 3600}`. Failure: HTTP 200 with
//!   `{"error": "invalid_code"}` (bad or used code, revoked refresh token) or
//!   `{"error": "invalid_client"}`; a refresh token past 10 access tokens in 10 minutes gets
//!   `{"error": "Access Denied", "error_description": "You have made too many requests
//!   continuously. Please try again after some time."}` (HTTP 400).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{AccessToken, DCS, RefreshToken, Shared, json_response, record};

/// Zoho's limit per refresh token.
pub const TOKENS_PER_WINDOW: usize = 10;
/// … in this window.
pub const WINDOW: Duration = Duration::from_secs(600);

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/accounts/{dc}/oauth/v2/auth", get(authorize))
        .route("/accounts/{dc}/oauth/v2/token", post(token))
}

async fn authorize(
    State(shared): State<Arc<Shared>>,
    Path(dc): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock();
    let body = json!(q);
    let ok_client = q.get("client_id") == Some(&s.client_id);
    let Some(redirect) = q.get("redirect_uri").cloned() else {
        record(
            &mut s,
            "GET",
            &dc,
            "/oauth/v2/auth",
            &q,
            &headers,
            body,
            400,
        );
        return (StatusCode::BAD_REQUEST, "redirect_uri missing").into_response();
    };
    if !ok_client
        || !DCS.contains(&dc.as_str())
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        record(
            &mut s,
            "GET",
            &dc,
            "/oauth/v2/auth",
            &q,
            &headers,
            body,
            400,
        );
        return (StatusCode::BAD_REQUEST, "invalid client or request").into_response();
    }
    let code = format!("1000.code{}.{dc}", s.next_id(0));
    s.codes.insert(code.clone(), dc.clone());
    let accounts = format!("{}/accounts/{dc}", s.base_url());
    let mut location = url_with(
        &redirect,
        &[
            ("state", q.get("state").map(String::as_str).unwrap_or("")),
            ("code", &code),
            ("location", &dc),
            ("accounts-server", &accounts),
        ],
    );
    if location.is_empty() {
        location = redirect;
    }
    record(
        &mut s,
        "GET",
        &dc,
        "/oauth/v2/auth",
        &q,
        &headers,
        body,
        302,
    );
    (StatusCode::FOUND, [("location", location)]).into_response()
}

fn url_with(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = base.to_owned();
    out.push(if base.contains('?') { '&' } else { '?' });
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent(v)))
        .collect();
    out.push_str(&encoded.join("&"));
    out
}

fn percent(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Path(dc): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut params = query.clone();
    for (k, v) in form_pairs(&body) {
        params.insert(k, v);
    }
    let mut s = shared.lock();
    // Never keep secrets in the log, even a fake's.
    let mut logged = params.clone();
    for secret in ["client_secret", "refresh_token", "code"] {
        if logged.contains_key(secret) {
            logged.insert(secret.to_owned(), "<present>".to_owned());
        }
    }
    let (status, answer) = token_answer(&mut s, &dc, &params);
    record(
        &mut s,
        "POST",
        &dc,
        "/oauth/v2/token",
        &query,
        &headers,
        json!(logged),
        status,
    );
    json_response(status, answer)
}

fn token_answer(s: &mut super::State, dc: &str, p: &BTreeMap<String, String>) -> (u16, Value) {
    let invalid_code = (200, json!({"error": "invalid_code"}));
    if p.get("client_id") != Some(&s.client_id) || p.get("client_secret") != Some(&s.client_secret)
    {
        return (200, json!({"error": "invalid_client"}));
    }
    let ttl = s.access_ttl.unwrap_or(Duration::from_secs(3600));
    let api_domain = format!("{}/api/{dc}", s.base_url());
    match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            if let Some(expected) = &s.redirect_uri
                && p.get("redirect_uri") != Some(expected)
            {
                return (200, json!({"error": "invalid_redirect_uri"}));
            }
            let Some(code) = p.get("code") else {
                return invalid_code;
            };
            // Codes are single-use and belong to the DC that issued them.
            if s.codes.get(code).map(String::as_str) != Some(dc) {
                return invalid_code;
            }
            s.codes.remove(code);
            let refresh = format!("1000.refresh{}.{dc}", s.next_id(0));
            let access = format!("1000.access{}.{dc}", s.next_id(0));
            s.refresh_tokens.insert(
                refresh.clone(),
                RefreshToken {
                    dc: dc.to_owned(),
                    revoked: false,
                    grants: Vec::new(),
                },
            );
            s.access_tokens.insert(
                access.clone(),
                AccessToken {
                    dc: dc.to_owned(),
                    expires: Instant::now() + ttl,
                },
            );
            (
                200,
                json!({"access_token": access, "refresh_token": refresh, "api_domain": api_domain,
                       "token_type": "Bearer", "expires_in": ttl.as_secs()}),
            )
        }
        Some("refresh_token") => {
            let Some(token) = p.get("refresh_token") else {
                return invalid_code;
            };
            let now = Instant::now();
            let Some(entry) = s.refresh_tokens.get_mut(token) else {
                return invalid_code;
            };
            if entry.revoked || entry.dc != dc {
                return invalid_code;
            }
            entry.grants.retain(|t| now.duration_since(*t) < WINDOW);
            if entry.grants.len() >= TOKENS_PER_WINDOW {
                return (
                    400,
                    json!({"error": "Access Denied", "error_description": "You have made too many requests continuously. Please try again after some time."}),
                );
            }
            entry.grants.push(now);
            let access = format!("1000.access{}.{dc}", s.next_id(0));
            s.access_tokens.insert(
                access.clone(),
                AccessToken {
                    dc: dc.to_owned(),
                    expires: now + ttl,
                },
            );
            (
                200,
                json!({"access_token": access, "api_domain": api_domain, "token_type": "Bearer",
                       "expires_in": ttl.as_secs()}),
            )
        }
        _ => (200, json!({"error": "unsupported_grant_type"})),
    }
}

fn form_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}
