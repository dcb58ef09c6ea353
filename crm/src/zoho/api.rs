//! Authenticated requests to a tenant's `api_domain`, with retries.
//!
//! Every request carries `Authorization: Zoho-oauthtoken <token>`. A 401 whose body says the
//! token is invalid (CRM `{"code": "INVALID_TOKEN"}`, Books `{"code": 57}`; see
//! https://www.zoho.com/crm/developer/docs/api/v8/status-codes.html and
//! https://www.zoho.com/books/api/v3/errors/) gets one refresh and one more try. 429, 5xx and
//! network errors are retried with the configured backoff, honouring `Retry-After` (seconds or
//! an HTTP date). Anything else is returned to the caller as it came.

use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::{RetryPolicy, Zoho, ZohoError};

/// An HTTP method we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// A request relative to the tenant's `api_domain`.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// e.g. `/crm/v8/Contacts`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(&'static str, String)>,
    /// JSON body for POST.
    pub body: Option<serde_json::Value>,
}

impl ApiRequest {
    pub fn get(path: impl Into<String>) -> ApiRequest {
        ApiRequest {
            method: Method::Get,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn post(path: impl Into<String>, body: serde_json::Value) -> ApiRequest {
        ApiRequest {
            method: Method::Post,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Some(body),
        }
    }

    pub fn query(mut self, key: &str, value: impl Into<String>) -> ApiRequest {
        self.query.push((key.to_owned(), value.into()));
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> ApiRequest {
        self.headers.push((name, value.into()));
        self
    }
}

/// A response as received (after retries).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Bytes,
    /// `Retry-After`, when the server sent one.
    pub retry_after: Option<Duration>,
}

impl ApiResponse {
    /// The body as JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self, what: &'static str) -> Result<T, ZohoError> {
        serde_json::from_slice(&self.body).map_err(|e| ZohoError::Protocol {
            what,
            detail: e.to_string(),
        })
    }

    /// Zoho's error as `(code, message)` from either API's error body (CRM: `code` is a
    /// string; Books: a number), or from the first per-record entry of `data`.
    pub fn error_parts(&self) -> (String, String) {
        let value: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        let item = value
            .get("data")
            .and_then(|d| d.get(0))
            .filter(|d| d.get("code").is_some())
            .unwrap_or(&value);
        let code = match item.get("code") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) if !other.is_null() => other.to_string(),
            _ => format!("HTTP_{}", self.status),
        };
        let mut message = item
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_owned();
        if let Some(details) = item
            .get("details")
            .filter(|d| d.as_object().is_some_and(|o| !o.is_empty()))
        {
            message = format!("{message} ({details})");
        }
        (code, message)
    }

    /// This response as a [`ZohoError::Api`].
    pub fn into_error(self) -> ZohoError {
        let (code, message) = self.error_parts();
        ZohoError::Api {
            status: self.status,
            code,
            message,
        }
    }

    fn token_rejected(&self) -> bool {
        if self.status != 401 {
            return false;
        }
        let (code, _) = self.error_parts();
        // CRM: INVALID_TOKEN (expired or revoked access token). Books: 57 ("not authorized",
        // its answer to an invalid token). Other 401s (scope mismatch) do not improve with a
        // fresh token and must not burn the refresh budget.
        code == "INVALID_TOKEN" || code == "57" || code == "AUTHENTICATION_FAILURE"
    }
}

impl Zoho {
    /// Sends `request` for the tenant with the configured retry policy.
    pub async fn api(
        &self,
        tenant_id: &store::TenantId,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ZohoError> {
        self.api_with(tenant_id, request, self.inner.config.retry)
            .await
    }

    /// Sends `request` with `retry` (the outbox makes one try per claim: `attempts = 1`).
    pub async fn api_with(
        &self,
        tenant_id: &store::TenantId,
        request: &ApiRequest,
        retry: RetryPolicy,
    ) -> Result<ApiResponse, ZohoError> {
        let mut refreshed = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let token = self.access_token(tenant_id).await?;
            let outcome = self.send(&token.api_domain, &token.header(), request).await;
            let retry_after = match outcome {
                Ok(response) if response.token_rejected() && !refreshed => {
                    refreshed = true;
                    attempt -= 1;
                    self.invalidate_access_token(tenant_id, &token).await?;
                    continue;
                }
                Ok(response) if response.status == 429 || response.status >= 500 => {
                    if attempt >= retry.attempts {
                        // The caller turns it into an error, and may use its Retry-After.
                        return Ok(response);
                    }
                    tracing::debug!(
                        tenant_id = %tenant_id,
                        status = response.status,
                        attempt,
                        "zoho busy or failing; retrying"
                    );
                    response.retry_after
                }
                Ok(response) => return Ok(response),
                Err(source) => {
                    if attempt >= retry.attempts {
                        return Err(ZohoError::Network { source });
                    }
                    tracing::debug!(tenant_id = %tenant_id, attempt, error = %source, "zoho unreachable; retrying");
                    None
                }
            };
            tokio::time::sleep(retry.delay(attempt, retry_after)).await;
        }
    }

    async fn send(
        &self,
        api_domain: &str,
        authorization: &str,
        request: &ApiRequest,
    ) -> Result<ApiResponse, reqwest_013::Error> {
        let mut url = format!("{}{}", api_domain.trim_end_matches('/'), request.path);
        if !request.query.is_empty() {
            url.push('?');
            url.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(request.query.iter())
                    .finish(),
            );
        }
        let http = &self.inner.http;
        let mut builder = match request.method {
            Method::Get => http.get(&url),
            Method::Post => http.post(&url),
        };
        builder = builder.header("authorization", authorization);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = &request.body {
            builder = builder
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.now()));
        let body = response.bytes().await?;
        Ok(ApiResponse {
            status,
            body,
            retry_after,
        })
    }
}

/// `Retry-After` is delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(value: &str, now_ms: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value)
        .ok()?
        .timestamp()
        .as_millisecond();
    Some(Duration::from_millis(
        at.saturating_sub(now_ms).max(0) as u64
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7", 0), Some(Duration::from_secs(7)));
        let now = jiff::Timestamp::from_second(1_700_000_000)
            .unwrap()
            .as_millisecond();
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }

    #[test]
    fn error_bodies_of_both_apis() {
        let crm = ApiResponse {
            status: 401,
            body: Bytes::from_static(
                br#"{"code":"INVALID_TOKEN","details":{},"message":"invalid oauth token","status":"error"}"#,
            ),
            retry_after: None,
        };
        assert!(crm.token_rejected());
        assert_eq!(crm.error_parts().0, "INVALID_TOKEN");
        let books = ApiResponse {
            status: 401,
            body: Bytes::from_static(
                br#"{"code":57,"message":"You are not authorized to perform this operation"}"#,
            ),
            retry_after: None,
        };
        assert!(books.token_rejected());
        let record = ApiResponse {
            status: 400,
            body: Bytes::from_static(
                br#"{"data":[{"code":"MANDATORY_NOT_FOUND","details":{"api_name":"Call_Duration"},"message":"required field not found","status":"error"}]}"#,
            ),
            retry_after: None,
        };
        let (code, message) = record.error_parts();
        assert_eq!(code, "MANDATORY_NOT_FOUND");
        assert!(message.contains("required field not found") && message.contains("Call_Duration"));
        let scope = ApiResponse {
            status: 401,
            body: Bytes::from_static(br#"{"code":"OAUTH_SCOPE_MISMATCH","details":{},"message":"invalid oauth scope","status":"error"}"#),
            retry_after: None,
        };
        assert!(!scope.token_rejected());
    }
}
