//! [`FakeResend`]: a local Resend e-mail API.
//!
//! `POST /emails` (resend.com/docs/api-reference/emails/send-email): `Authorization: Bearer
//! re_…`, JSON `{from, to (string or array, ≤ 50), subject, html?, text?, …}` → `200 {"id"}`.
//! `Idempotency-Key` (resend.com/docs/dashboard/emails/idempotency-keys): 1–256 characters; a
//! repeat with the same key and body within 24 h returns the first answer without sending
//! again, the same key with another body is `409 invalid_idempotent_request`. Rate limit
//! (resend.com/docs/api-reference/rate-limit): `429 rate_limit_exceeded` with `retry-after`
//! seconds and `ratelimit-*` headers — scripted here with [`FakeResend::rate_limit_next`].
//! Error bodies: `{statusCode, name, message}` (resend.com/docs/api-reference/errors).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// An e-mail the fake accepted (once per idempotency key).
#[derive(Debug, Clone)]
pub struct SentEmail {
    pub id: String,
    pub idempotency_key: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
}

#[derive(Debug, Default)]
struct ResendState {
    api_key: String,
    sent: Vec<SentEmail>,
    /// key → (body, answer id)
    keys: HashMap<String, (Value, String)>,
    /// Scripted answers for the next requests: (status, retry-after seconds).
    script: Vec<(u16, Option<u64>)>,
    requests: usize,
}

/// A running fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeResend {
    addr: SocketAddr,
    shared: Arc<Mutex<ResendState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeResend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeResend {
    /// Starts on 127.0.0.1; requests must carry `Bearer api_key`.
    ///
    /// # Panics
    /// If the loopback socket cannot be bound.
    pub async fn start(api_key: &str) -> FakeResend {
        let shared = Arc::new(Mutex::new(ResendState {
            api_key: api_key.to_owned(),
            ..ResendState::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let app = Router::new()
            .route("/emails", post(emails))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeResend { addr, shared, task }
    }

    /// The base URL to configure (`email.base_url`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// E-mails delivered (one per idempotency key).
    pub fn sent(&self) -> Vec<SentEmail> {
        self.lock().sent.clone()
    }

    /// Requests received, repeats and refusals included.
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Answers the next request with 429 and `retry-after: secs`.
    pub fn rate_limit_next(&self, secs: u64) {
        self.lock().script.push((429, Some(secs)));
    }

    /// Answers the next request with `status` (e.g. 500, 422).
    pub fn fail_next(&self, status: u16) {
        self.lock().script.push((status, None));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ResendState> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn error(status: u16, name: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(json!({ "statusCode": status, "name": name, "message": message })),
    )
        .into_response()
}

async fn emails(
    State(shared): State<Arc<Mutex<ResendState>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
    st.requests += 1;
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", st.api_key) {
        return error(401, "missing_api_key", "Missing or invalid API key");
    }
    if !st.script.is_empty() {
        let (status, retry_after) = st.script.remove(0);
        let mut res = error(
            status,
            if status == 429 {
                "rate_limit_exceeded"
            } else {
                "application_error"
            },
            "scripted",
        );
        if let Some(secs) = retry_after {
            let h = res.headers_mut();
            h.insert("retry-after", secs.to_string().parse().expect("digits"));
            h.insert("ratelimit-limit", "5".parse().expect("digits"));
            h.insert("ratelimit-remaining", "0".parse().expect("digits"));
            h.insert("ratelimit-reset", secs.to_string().parse().expect("digits"));
        }
        return res;
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return error(422, "validation_error", "invalid JSON");
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(k) = &key {
        if k.is_empty() || k.len() > 256 {
            return error(400, "invalid_idempotency_key", "must be 1-256 characters");
        }
        if let Some((first, id)) = st.keys.get(k) {
            if *first == v {
                return Json(json!({ "id": id })).into_response();
            }
            return error(
                409,
                "invalid_idempotent_request",
                "same key, different payload",
            );
        }
    }
    let to: Vec<String> = match &v["to"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let (Some(from), Some(subject)) = (v["from"].as_str(), v["subject"].as_str()) else {
        return error(
            422,
            "missing_required_field",
            "from and subject are required",
        );
    };
    if to.is_empty() || to.len() > 50 || to.iter().any(|a| !a.contains('@')) {
        return error(422, "validation_error", "to: 1 to 50 e-mail addresses");
    }
    if !v["html"].is_string() && !v["text"].is_string() {
        return error(422, "validation_error", "html or text is required");
    }
    let id = format!("4ef9a417-02e9-4d39-ad75-{:012}", st.sent.len() + 1);
    st.sent.push(SentEmail {
        id: id.clone(),
        idempotency_key: key.clone(),
        from: from.to_owned(),
        to,
        subject: subject.to_owned(),
        html: v["html"].as_str().map(str::to_owned),
        text: v["text"].as_str().map(str::to_owned),
    });
    if let Some(k) = key {
        st.keys.insert(k, (v, id.clone()));
    }
    Json(json!({ "id": id })).into_response()
}
