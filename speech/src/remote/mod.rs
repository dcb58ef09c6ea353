//! Remote STT and TTS over the OpenAI-compatible HTTP API, through `async-openai`:
//! [`RemoteStt`] (`POST {base_url}/audio/transcriptions`) and [`RemoteTts`]
//! (`POST {base_url}/audio/speech` with `response_format: "pcm"`).
//!
//! Both implement the crate's blocking traits. Each provider owns a one-thread tokio runtime
//! that runs its HTTP requests; `transcribe`/`synthesize` hand the request to it and block on
//! a channel. That works from any thread — the daemon's blocking pool, a plain thread, a test
//! — and, unlike `block_on`, never panics when called from inside another runtime.
//!
//! Choices that matter on a phone line:
//! - No retries (async-openai retries 429/5xx with backoff by default; its retry layer is
//!   replaced by a bare `ReqwestService`): the caller hears the call's fallback instead of
//!   waiting through backoff.
//! - One deadline for the whole request ([`RemoteSttConfig::timeout`]), reported as
//!   [`RemoteError::Timeout`].
//! - The API key goes only into the `Authorization` header: it never appears in `Debug`,
//!   errors or logs, and neither does a password or query string in the base URL.
//!   `OPENAI_API_KEY`/`OPENAI_ORG_ID`/`OPENAI_PROJECT_ID` from the environment are ignored so
//!   that a custom base URL never receives OpenAI credentials by accident.
//!
//! Why async-openai's `create_raw` for transcriptions: its typed `create` requires a `usage`
//! object in the reply, which OpenAI sends but many compatible servers (whisper.cpp's server,
//! faster-whisper servers) do not; the raw bytes are parsed here and only `text` is required.

mod stt;
mod tts;

use std::fmt;
use std::future::Future;
use std::sync::mpsc::sync_channel;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;

pub use stt::{RemoteStt, RemoteSttConfig};
pub use tts::{REMOTE_TTS_SAMPLE_RATE, RemoteTts, RemoteTtsConfig};

/// Why a request to a remote speech provider failed. Every variant that concerns a request
/// names its URL (without credentials); none carries the API key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    #[error("{url:?}: not an http:// or https:// base URL")]
    InvalidBaseUrl { url: String },
    #[error("the API key contains characters that cannot be sent in an HTTP header")]
    InvalidApiKey,
    #[error("{url}: cannot set up the HTTP client: {source}")]
    Setup {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{url}: no complete response within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("{url}: request failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server answered with an error status; `message` is its error message.
    #[error("{url}: HTTP {status}: {message}")]
    Api {
        url: String,
        status: u16,
        message: String,
        /// The error body's `type` (e.g. `invalid_request_error`), when it sent one.
        kind: Option<String>,
        code: Option<String>,
    },
    #[error("{url}: unexpected response: {reason}")]
    InvalidResponse { url: String, reason: String },
    #[error("the provider's HTTP worker has stopped")]
    WorkerGone,
}

impl RemoteError {
    /// The HTTP status of an [`RemoteError::Api`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            RemoteError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Connection details shared by the remote providers.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// Base URL without a trailing slash, e.g. `https://api.openai.com/v1`.
    base_url: String,
    api_key: Option<String>,
}

impl Endpoint {
    pub(crate) fn new(base_url: &str, api_key: Option<&str>) -> Result<Endpoint, RemoteError> {
        let base_url = base_url.trim().trim_end_matches('/').to_owned();
        let lower = base_url.to_ascii_lowercase();
        let host_part = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"));
        if host_part.is_none_or(str::is_empty) {
            return Err(RemoteError::InvalidBaseUrl {
                url: redact_url(&base_url),
            });
        }
        let api_key = api_key.filter(|k| !k.is_empty()).map(str::to_owned);
        // async-openai builds the header with `parse().unwrap()`: check here so a bad key is an
        // error at start-up, not a panic per request.
        if let Some(key) = &api_key
            && !key.bytes().all(|b| (0x21..0x7f).contains(&b))
        {
            return Err(RemoteError::InvalidApiKey);
        }
        Ok(Endpoint { base_url, api_key })
    }

    /// `{base_url}{path}` with credentials removed, for errors and logs.
    pub(crate) fn display_url(&self, path: &str) -> String {
        redact_url(&format!("{}{path}", self.base_url))
    }

    /// An async-openai client for this endpoint with no retry layer.
    pub(crate) fn client(&self, timeout: Duration) -> Result<Client<OpenAIConfig>, RemoteError> {
        // reqwest 0.13 is built without a bundled crypto provider; ring is installed as the
        // process default (as dialogs does). An error only means one is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest_013::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| RemoteError::Setup {
                url: self.display_url(""),
                source: Box::new(e),
            })?;
        // Every field set explicitly: `OpenAIConfig::new()` would read OPENAI_* variables.
        let config = OpenAIConfig::new()
            .with_api_base(&self.base_url)
            .with_api_key(self.api_key.clone().unwrap_or_default())
            .with_org_id("")
            .with_project_id("");
        Ok(Client::build(http.clone(), config).with_http_service(ReqwestService::new(http)))
    }

    /// Maps an async-openai error for a request to `path`, removing the key from any message
    /// the server echoed back.
    /// Runs one API call under `timeout`, mapping a timeout and the client's errors to
    /// [`RemoteError`]s that name the endpoint.
    pub(crate) async fn within<T>(
        &self,
        path: &str,
        timeout: Duration,
        call: impl std::future::Future<Output = Result<T, OpenAIError>>,
    ) -> Result<T, RemoteError> {
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(RemoteError::Timeout {
                url: self.display_url(path),
                after: timeout,
            }),
            Ok(Err(e)) => Err(self.map_error(path, e, timeout)),
            Ok(Ok(value)) => Ok(value),
        }
    }

    pub(crate) fn map_error(&self, path: &str, err: OpenAIError, timeout: Duration) -> RemoteError {
        let url = self.display_url(path);
        match err {
            OpenAIError::ApiError(api) => RemoteError::Api {
                url,
                status: api.status_code.as_u16(),
                message: self.scrub(api.api_error.message.trim()),
                kind: api.api_error.r#type,
                code: api.api_error.code,
            },
            OpenAIError::Reqwest(e) if e.is_timeout() => RemoteError::Timeout {
                url,
                after: timeout,
            },
            OpenAIError::Reqwest(e) => RemoteError::Transport {
                url,
                source: Box::new(e),
            },
            OpenAIError::JSONDeserialize(e, _) => RemoteError::InvalidResponse {
                url,
                reason: format!("error body is not JSON: {e}"),
            },
            other => RemoteError::Transport {
                url,
                source: self.scrub(&other.to_string()).into(),
            },
        }
    }

    fn scrub(&self, text: &str) -> String {
        match &self.api_key {
            Some(key) if text.contains(key.as_str()) => text.replace(key.as_str(), "<redacted>"),
            _ => text.to_owned(),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("base_url", &redact_url(&self.base_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `url` without a `user:password@` part and without a query string.
pub(crate) fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://<redacted>@{host}{path}"),
        None => url.to_owned(),
    }
}

/// A one-thread tokio runtime that runs one provider's requests for blocking callers.
pub(crate) struct Bridge {
    rt: Option<tokio::runtime::Runtime>,
}

impl Bridge {
    pub(crate) fn new(thread_name: &str, url: &str) -> Result<Bridge, RemoteError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(thread_name)
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Setup {
                url: url.to_owned(),
                source: Box::new(e),
            })?;
        Ok(Bridge { rt: Some(rt) })
    }

    /// Runs `fut` on the bridge's runtime and blocks the calling thread until it finishes.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, RemoteError> {
        let rt = self.rt.as_ref().ok_or(RemoteError::WorkerGone)?;
        let (tx, rx) = sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| RemoteError::WorkerGone)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside an async context (the daemon may
        // drop the last engine handle on a runtime thread): shut down in the background.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_queries() {
        assert_eq!(
            redact_url("https://user:pw@host:8080/v1/audio?key=sk-1"),
            "https://<redacted>@host:8080/v1/audio"
        );
        assert_eq!(redact_url("http://h/v1"), "http://h/v1");
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
    }

    #[test]
    fn endpoint_checks_base_url_and_key() {
        assert!(matches!(
            Endpoint::new("ftp://x", None),
            Err(RemoteError::InvalidBaseUrl { .. })
        ));
        assert!(matches!(
            Endpoint::new("http://", None),
            Err(RemoteError::InvalidBaseUrl { .. })
        ));
        assert!(matches!(
            Endpoint::new("http://x/v1", Some("sk-a\nb")),
            Err(RemoteError::InvalidApiKey)
        ));
        let e = Endpoint::new("http://x/v1/", Some("sk-secret")).unwrap();
        assert_eq!(e.display_url("/audio/speech"), "http://x/v1/audio/speech");
        assert!(!format!("{e:?}").contains("sk-secret"));
        assert_eq!(e.scrub("bad key sk-secret"), "bad key <redacted>");
    }

    #[test]
    fn bridge_runs_from_inside_a_runtime_without_panicking() {
        let bridge = Bridge::new("test-bridge", "http://x").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = rt.block_on(async { bridge.run(async { 7 }) });
        assert_eq!(got.unwrap(), 7);
        // Dropping the bridge inside an async context must not panic either.
        rt.block_on(async move { drop(bridge) });
    }
}
