//! The LLM client: streamed chat completions with tools against any OpenAI-compatible base
//! URL (OpenAI, Groq, Ollama, vLLM, llama.cpp server), through `async-openai`.
//!
//! This module turns the wire stream into [`Delta`]s and assembles tool calls by index; it
//! does not decide timeouts or fallbacks (the engine does, per turn) and it never retries:
//! a caller on the line is better served by the flow's fallback than by backoff.

mod convert;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;
use futures::{Stream, StreamExt};
use serde::Deserialize;

pub(crate) use convert::{ChatMessage, ToolSpec, build_request};

/// `[llm]` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LlmConfig {
    /// e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// Bearer token; optional for local servers. Never logged.
    #[serde(default)]
    pub api_key: Option<String>,
    pub model: String,
    /// Deadline for the first streamed token and for each gap between chunks; past it the
    /// flow's fallback is spoken.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
}

impl LlmConfig {
    /// A config with the default timeout and sampling.
    pub fn new(base_url: &str, api_key: Option<&str>, model: &str) -> LlmConfig {
        LlmConfig {
            base_url: base_url.to_string(),
            api_key: api_key.map(str::to_string),
            model: model.to_string(),
            timeout_ms: default_timeout_ms(),
            temperature: None,
            max_completion_tokens: None,
        }
    }

    /// Sets `timeout_ms`.
    pub fn with_timeout_ms(mut self, ms: u64) -> LlmConfig {
        self.timeout_ms = ms;
        self
    }
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("timeout_ms", &self.timeout_ms)
            .field("temperature", &self.temperature)
            .field("max_completion_tokens", &self.max_completion_tokens)
            .finish()
    }
}

fn default_timeout_ms() -> u64 {
    1800
}

/// Why an LLM request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    #[error("no response within {after_ms} ms")]
    Timeout { after_ms: u64 },
    #[error("LLM API error {status}: {message}")]
    Api { status: u16, message: String },
    #[error("LLM transport error")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot build the HTTP client")]
    Setup(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl LlmError {
    /// A short stable label for call events (`timeout`, `api_500`, `transport`).
    pub fn label(&self) -> String {
        match self {
            LlmError::Timeout { .. } => "timeout".into(),
            LlmError::Api { status, .. } => format!("api_{status}"),
            LlmError::Transport(_) => "transport".into(),
            LlmError::Setup(_) => "setup".into(),
        }
    }
}

impl From<OpenAIError> for LlmError {
    fn from(e: OpenAIError) -> Self {
        match e {
            OpenAIError::ApiError(r) => LlmError::Api {
                status: r.status_code.as_u16(),
                message: r.api_error.message,
            },
            other => LlmError::Transport(Box::new(other)),
        }
    }
}

/// A shareable client (cheap to clone; one per daemon is enough).
#[derive(Clone)]
pub struct LlmClient {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<OpenAIConfig>,
    cfg: LlmConfig,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("cfg", &self.inner.cfg)
            .finish()
    }
}

/// One piece of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Delta {
    Text(String),
    ToolCall {
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: Option<String>,
    },
    Usage {
        prompt: u32,
        completion: u32,
    },
}

pub(crate) type DeltaStream = Pin<Box<dyn Stream<Item = Result<Delta, LlmError>> + Send>>;

impl LlmClient {
    /// Builds a client for `cfg`. Makes no request.
    pub fn new(cfg: LlmConfig) -> Result<LlmClient, LlmError> {
        // reqwest 0.13 is built without a bundled crypto provider (aws-lc is a slow C build);
        // ring is installed as the process default. An error only means one is already set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest_013::Client::builder()
            .connect_timeout(Duration::from_millis(cfg.timeout_ms.max(1)))
            .build()
            .map_err(|e| LlmError::Setup(Box::new(e)))?;
        let mut config = OpenAIConfig::new().with_api_base(cfg.base_url.trim_end_matches('/'));
        if let Some(key) = &cfg.api_key {
            config = config.with_api_key(key.clone());
        }
        // `build` takes our client (no panic path) and `with_http_service` drops the default
        // retry layer: retries with backoff would blow the caller's silence budget.
        let client =
            Client::build(http.clone(), config).with_http_service(ReqwestService::new(http));
        Ok(LlmClient {
            inner: Arc::new(Inner { client, cfg }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &LlmConfig {
        &self.inner.cfg
    }

    /// Starts a streamed completion.
    pub(crate) async fn stream(
        &self,
        request: async_openai::types::chat::CreateChatCompletionRequest,
    ) -> Result<DeltaStream, LlmError> {
        let raw = self.inner.client.chat().create_stream(request).await?;
        let mapped = raw.flat_map(|item| {
            let out: Vec<Result<Delta, LlmError>> = match item {
                Err(e) => vec![Err(e.into())],
                Ok(chunk) => convert::deltas(chunk).into_iter().map(Ok).collect(),
            };
            futures::stream::iter(out)
        });
        Ok(Box::pin(mapped))
    }
}

/// A tool call as the model asked for it, once its deltas are assembled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// Assembles tool-call deltas by index across chunks.
#[derive(Debug, Default)]
pub(crate) struct ToolCallAssembler {
    calls: std::collections::BTreeMap<u32, ToolCall>,
}

impl ToolCallAssembler {
    pub(crate) fn push(
        &mut self,
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: Option<String>,
    ) {
        let call = self.calls.entry(index).or_insert_with(|| ToolCall {
            id: String::new(),
            name: String::new(),
            arguments: String::new(),
        });
        if let Some(id) = id.filter(|s| !s.is_empty()) {
            call.id = id;
        }
        // The name arrives whole in the first delta; some servers repeat it later.
        if let Some(name) = name.filter(|s| !s.is_empty())
            && call.name.is_empty()
        {
            call.name = name;
        }
        if let Some(a) = arguments {
            call.arguments.push_str(&a);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    pub(crate) fn finish(self) -> Vec<ToolCall> {
        self.calls
            .into_iter()
            .filter(|(_, c)| !c.name.is_empty())
            .map(|(i, mut c)| {
                if c.id.is_empty() {
                    c.id = format!("call_{i}");
                }
                c
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_by_index() {
        let mut a = ToolCallAssembler::default();
        a.push(
            1,
            Some("b".into()),
            Some("take_message".into()),
            Some("{\"mess".into()),
        );
        a.push(
            0,
            Some("a".into()),
            Some("get_balance".into()),
            Some("{".into()),
        );
        a.push(1, None, None, Some("age\":\"hi\"}".into()));
        a.push(0, None, Some("get_balance".into()), Some("}".into()));
        let calls = a.finish();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].name, "get_balance");
        assert_eq!(calls[0].arguments, "{}");
        assert_eq!(calls[1].arguments, "{\"message\":\"hi\"}");
    }

    #[test]
    fn debug_redacts_key() {
        let cfg = LlmConfig::new("http://x", Some("sk-secret"), "m");
        assert!(!format!("{cfg:?}").contains("sk-secret"));
    }
}
