//! [`FakeOpenAi`]: a local server speaking the OpenAI HTTP API as documented, for tests.
//!
//! It serves `POST /v1/chat/completions` (streaming SSE and plain JSON) from scripted
//! [`ChatReply`]s, and `POST /v1/audio/transcriptions` / `POST /v1/audio/speech` from
//! scripted [`TranscriptionReply`]s and [`SpeechReply`]s (see [`audio`] for the formats).
//! Each endpoint lives in its own module and adds its routes in [`FakeOpenAi::router`]; all
//! share the request log.

pub mod audio;
mod chat;
mod multipart;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;

pub use audio::{SPEECH_SAMPLE_RATE, SpeechReply, TranscriptionReply, speech_signal};
pub use chat::{ChatReply, ChatReplySpec, ToolCallSpec};

/// A running fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeOpenAi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// e.g. `/v1/chat/completions`.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The JSON body; for a multipart upload, an object of its text fields, with `file` as
    /// `{filename, content_type, bytes, wav: {format_tag, channels, sample_rate,
    /// bits_per_sample, frames}}` (`wav` only for a well-formed WAV file).
    pub body: serde_json::Value,
}

#[derive(Debug, Default)]
struct Shared {
    // Never held across an await.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    queue: std::collections::VecDeque<ChatReply>,
    matchers: Vec<(String, ChatReply)>,
    requests: Vec<RecordedRequest>,
    transcriptions: std::collections::VecDeque<TranscriptionReply>,
    transcription_default: Option<TranscriptionReply>,
    speech: std::collections::VecDeque<SpeechReply>,
    /// When set, the audio endpoints answer 401 to any other bearer.
    api_key: Option<String>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FakeOpenAi {
    /// Starts a fake on 127.0.0.1 with an OS-assigned port.
    ///
    /// # Panics
    /// If the loopback socket cannot be bound (a broken test environment).
    pub async fn start() -> FakeOpenAi {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let app = FakeOpenAi::router(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOpenAi { addr, shared, task }
    }

    fn router(shared: Arc<Shared>) -> Router {
        Router::new()
            .route("/v1/chat/completions", post(chat::handle))
            .route(
                "/v1/audio/transcriptions",
                // OpenAI's upload limit.
                post(audio::transcriptions).layer(DefaultBodyLimit::max(25 << 20)),
            )
            .route("/v1/audio/speech", post(audio::speech))
            .with_state(shared)
    }

    /// The base URL to configure clients with (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a reply for the next chat request that no matcher claims.
    pub fn enqueue(&self, reply: ChatReply) {
        self.shared.lock().queue.push_back(reply);
    }

    /// Answers every chat request whose last user message contains `needle`
    /// (case-insensitive) with `reply`. Matchers are tried in order, before the queue.
    pub fn when_user_says(&self, needle: &str, reply: ChatReply) {
        self.shared
            .lock()
            .matchers
            .push((needle.to_lowercase(), reply));
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Replies still queued.
    pub fn pending(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// Queues the answer to the next transcription request.
    pub fn enqueue_transcription(&self, reply: TranscriptionReply) {
        self.shared.lock().transcriptions.push_back(reply);
    }

    /// Answers transcription requests with `reply` whenever the queue is empty.
    pub fn set_default_transcription(&self, reply: TranscriptionReply) {
        self.shared.lock().transcription_default = Some(reply);
    }

    /// Queues the answer to the next speech request (without one: [`speech_signal`]).
    pub fn enqueue_speech(&self, reply: SpeechReply) {
        self.shared.lock().speech.push_back(reply);
    }

    /// Makes the audio endpoints answer 401 unless the bearer is `key`.
    pub fn require_api_key(&self, key: &str) {
        self.shared.lock().api_key = Some(key.to_owned());
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}
