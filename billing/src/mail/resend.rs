//! Sending one e-mail through Resend's API.
//!
//! `POST {base}/emails` with `Authorization: Bearer re_…`, JSON `{from, to, subject, html,
//! text}`, header `Idempotency-Key` (1–256 characters, 24 h window); answer `{"id": …}`.
//! Rate limit: 429 with `retry-after` (seconds). Sources: resend.com/docs/api-reference/emails/
//! send-email, /docs/api-reference/rate-limit, /docs/dashboard/emails/idempotency-keys.

use std::time::Duration;

use serde::Serialize;

/// A client for one Resend account.
#[derive(Clone)]
pub struct ResendClient {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
}

impl std::fmt::Debug for ResendClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResendClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted; Resend's e-mail id.
    Sent(String),
    /// 429: try again after this long.
    RateLimited(Duration),
    /// Network trouble or a 5xx: try again later.
    Retry(String),
    /// Refused for good (4xx other than 429: bad address, bad key…).
    Rejected(String),
}

#[derive(Serialize)]
struct Body<'a> {
    from: &'a str,
    to: &'a [String],
    subject: &'a str,
    html: &'a str,
    text: &'a str,
}

impl ResendClient {
    /// A client for `base_url` (`https://api.resend.com`) with a 15 s timeout.
    pub fn new(base_url: &str, api_key: &str) -> Result<ResendClient, reqwest::Error> {
        Ok(ResendClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
        })
    }

    /// Sends one e-mail with `idempotency_key`.
    pub async fn send(
        &self,
        from: &str,
        to: &[String],
        subject: &str,
        html: &str,
        text: &str,
        idempotency_key: &str,
    ) -> SendOutcome {
        let request = self
            .http
            .post(format!("{}/emails", self.base_url))
            .bearer_auth(&self.api_key)
            .header("Idempotency-Key", idempotency_key)
            .json(&Body {
                from,
                to,
                subject,
                html,
                text,
            });
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return SendOutcome::Retry(e.to_string()),
        };
        let status = response.status().as_u16();
        if status == 429 {
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            return SendOutcome::RateLimited(Duration::from_secs(wait.clamp(1, 3600)));
        }
        let body = response.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            let id = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned));
            return match id {
                Some(id) => SendOutcome::Sent(id),
                None => SendOutcome::Retry(format!("HTTP {status} without an id")),
            };
        }
        let detail = format!(
            "HTTP {status}: {}",
            body.chars().take(300).collect::<String>()
        );
        if status >= 500 {
            SendOutcome::Retry(detail)
        } else {
            SendOutcome::Rejected(detail)
        }
    }
}
