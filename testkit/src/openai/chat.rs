//! `POST /v1/chat/completions`: scripted replies in the documented wire format.
//!
//! Streaming (`"stream": true`) answers `text/event-stream` with `data: {chunk}\n\n` events
//! (`object: "chat.completion.chunk"`), a final chunk with `finish_reason`, a usage chunk
//! with empty `choices` when `stream_options.include_usage` is set, then `data: [DONE]`.
//! Errors use the documented body `{"error": {"message", "type", "param", "code"}}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{RecordedRequest, Shared};

/// One scripted answer to a chat request.
#[derive(Debug, Clone, Default)]
pub struct ChatReply {
    /// Content deltas, sent in order.
    text_chunks: Vec<String>,
    tool_calls: Vec<(String, String, Vec<String>)>,
    error: Option<(u16, String)>,
    first_byte_delay: Duration,
    chunk_delay: Duration,
    /// After this many chunks the stream goes quiet (never ends on its own).
    stall_after: Option<usize>,
    usage: Option<(u32, u32)>,
}

impl ChatReply {
    /// A text reply streamed word by word.
    pub fn text(text: &str) -> ChatReply {
        let mut chunks = Vec::new();
        for (i, w) in text.split(' ').enumerate() {
            chunks.push(if i == 0 {
                w.to_string()
            } else {
                format!(" {w}")
            });
        }
        ChatReply {
            text_chunks: chunks,
            ..ChatReply::default()
        }
    }

    /// A text reply streamed in exactly these deltas.
    pub fn chunks(chunks: &[&str]) -> ChatReply {
        ChatReply {
            text_chunks: chunks.iter().map(|s| s.to_string()).collect(),
            ..ChatReply::default()
        }
    }

    /// Adds a tool call whose `arguments` arrive in three pieces.
    pub fn tool_call(self, name: &str, arguments: &str) -> ChatReply {
        let chars: Vec<char> = arguments.chars().collect();
        let third = chars.len().div_ceil(3).max(1);
        let pieces: Vec<String> = chars.chunks(third).map(|c| c.iter().collect()).collect();
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        self.tool_call_chunked(name, &pieces)
    }

    /// Adds a tool call whose `arguments` arrive in exactly these pieces.
    pub fn tool_call_chunked(mut self, name: &str, pieces: &[&str]) -> ChatReply {
        let id = format!("call_{}_{}", name, self.tool_calls.len());
        self.tool_calls.push((
            id,
            name.to_string(),
            pieces.iter().map(|s| s.to_string()).collect(),
        ));
        self
    }

    /// Only tool calls, no text.
    pub fn tools() -> ChatReply {
        ChatReply::default()
    }

    /// An HTTP error with the documented error body (e.g. 500, 429).
    pub fn error(status: u16, message: &str) -> ChatReply {
        ChatReply {
            error: Some((status, message.to_string())),
            ..ChatReply::default()
        }
    }

    /// Waits before sending the response head.
    pub fn delay_first(mut self, d: Duration) -> ChatReply {
        self.first_byte_delay = d;
        self
    }

    /// Waits between chunks.
    pub fn delay_chunks(mut self, d: Duration) -> ChatReply {
        self.chunk_delay = d;
        self
    }

    /// Sends `n` chunks, then nothing more (the connection stays open).
    pub fn stall_after(mut self, n: usize) -> ChatReply {
        self.stall_after = Some(n);
        self
    }

    /// Reported token usage (default: 10 per message / 1 per content chunk).
    pub fn usage(mut self, prompt: u32, completion: u32) -> ChatReply {
        self.usage = Some((prompt, completion));
        self
    }
}

/// A [`ChatReply`] as data (JSON or YAML), for conversation test files:
/// `{ text = "…", tool_calls = [{ name, arguments }], error = 500, delay_ms = 0 }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatReplySpec {
    pub text: Option<String>,
    pub tool_calls: Vec<ToolCallSpec>,
    /// HTTP status of an error reply.
    pub error: Option<u16>,
    pub delay_ms: u64,
    pub chunk_delay_ms: u64,
}

/// A tool call in a [`ChatReplySpec`]; `arguments` is a JSON object (sent in three pieces).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCallSpec {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

impl From<ChatReplySpec> for ChatReply {
    fn from(s: ChatReplySpec) -> ChatReply {
        let mut r = match (s.error, &s.text) {
            (Some(status), _) => ChatReply::error(status, "scripted error"),
            (None, Some(t)) => ChatReply::text(t),
            (None, None) => ChatReply::tools(),
        };
        for tc in &s.tool_calls {
            let args = if tc.arguments.is_null() {
                "{}".to_string()
            } else {
                tc.arguments.to_string()
            };
            r = r.tool_call(&tc.name, &args);
        }
        r.delay_first(Duration::from_millis(s.delay_ms))
            .delay_chunks(Duration::from_millis(s.chunk_delay_ms))
    }
}

pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let last_user = last_user_text(&body).to_lowercase();
    let reply = {
        let mut st = shared.lock();
        st.requests.push(RecordedRequest {
            path: "/v1/chat/completions".into(),
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: body.clone(),
        });
        let matched = st
            .matchers
            .iter()
            .find(|(needle, _)| last_user.contains(needle.as_str()))
            .map(|(_, r)| r.clone());
        matched.or_else(|| st.queue.pop_front())
    };
    let Some(reply) = reply else {
        return error_response(500, "FakeOpenAi: no scripted reply for this request");
    };
    if !reply.first_byte_delay.is_zero() {
        tokio::time::sleep(reply.first_byte_delay).await;
    }
    if let Some((status, message)) = &reply.error {
        return error_response(*status, message);
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("fake-model")
        .to_string();
    let prompt_tokens = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, |m| m.len() as u32 * 10);
    let (prompt, completion) = reply
        .usage
        .unwrap_or((prompt_tokens, reply.text_chunks.len() as u32));
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    if !stream {
        return Json(full_completion(&reply, &model, prompt, completion)).into_response();
    }
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let events = sse_events(
        &reply,
        &model,
        include_usage.then_some((prompt, completion)),
    );
    let delay = reply.chunk_delay;
    let stall = reply.stall_after;
    let items: Vec<(Duration, Bytes)> = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let d = match stall {
                // "Forever" for a test: far beyond any client timeout.
                Some(n) if i >= n => Duration::from_secs(3600),
                _ if i == 0 => Duration::ZERO,
                _ => delay,
            };
            (d, Bytes::from(e))
        })
        .collect();
    let body_stream = futures::stream::unfold(items.into_iter(), |mut it| async move {
        let (d, bytes) = it.next()?;
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
        Some((Ok::<Bytes, Infallible>(bytes), it))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body_stream))
        .unwrap_or_else(|_| error_response(500, "FakeOpenAi: cannot build response"))
}

fn last_user_text(body: &Value) -> String {
    let Some(msgs) = body.get("messages").and_then(Value::as_array) else {
        return String::new();
    };
    msgs.iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

fn error_response(status: u16, message: &str) -> Response {
    let kind = match status {
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    };
    let body =
        json!({ "error": { "message": message, "type": kind, "param": null, "code": null } });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

fn chunk(model: &str, choices: Value, usage: Value) -> String {
    let c = json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": choices,
        "usage": usage,
    });
    format!("data: {c}\n\n")
}

fn sse_events(reply: &ChatReply, model: &str, usage: Option<(u32, u32)>) -> Vec<String> {
    let delta =
        |d: Value, finish: Value| json!([{ "index": 0, "delta": d, "finish_reason": finish }]);
    let mut out = vec![chunk(
        model,
        delta(json!({ "role": "assistant", "content": "" }), Value::Null),
        Value::Null,
    )];
    for t in &reply.text_chunks {
        out.push(chunk(
            model,
            delta(json!({ "content": t }), Value::Null),
            Value::Null,
        ));
    }
    for (index, (id, name, pieces)) in reply.tool_calls.iter().enumerate() {
        let head = json!({ "tool_calls": [{
            "index": index, "id": id, "type": "function",
            "function": { "name": name, "arguments": "" }
        }]});
        out.push(chunk(model, delta(head, Value::Null), Value::Null));
        for p in pieces {
            let d = json!({ "tool_calls": [{ "index": index, "function": { "arguments": p } }] });
            out.push(chunk(model, delta(d, Value::Null), Value::Null));
        }
    }
    let finish = if reply.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    out.push(chunk(model, delta(json!({}), json!(finish)), Value::Null));
    if let Some((p, c)) = usage {
        out.push(chunk(
            model,
            json!([]),
            json!({ "prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c }),
        ));
    }
    out.push("data: [DONE]\n\n".to_string());
    out
}

fn full_completion(reply: &ChatReply, model: &str, prompt: u32, completion: u32) -> Value {
    let text: String = reply.text_chunks.concat();
    let calls: Vec<Value> = reply
        .tool_calls
        .iter()
        .map(|(id, name, pieces)| {
            json!({ "id": id, "type": "function", "function": { "name": name, "arguments": pieces.concat() } })
        })
        .collect();
    let finish = if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": if text.is_empty() { Value::Null } else { Value::String(text) },
                "tool_calls": if calls.is_empty() { Value::Null } else { Value::Array(calls) },
            },
            "finish_reason": finish,
        }],
        "usage": { "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion },
    })
}
