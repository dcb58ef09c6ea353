//! [`FakeOpenAi`]: a local server speaking the OpenAI HTTP API as documented, for tests.
//!
//! Today it serves `POST /v1/chat/completions` (streaming SSE and plain JSON) from scripted
//! [`ChatReply`]s. Each endpoint lives in its own module and adds its routes in
//! [`FakeOpenAi::router`]; `/v1/audio/transcriptions` and `/v1/audio/speech` will join the
//! same way, sharing the request log.

mod chat;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;

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
    /// The JSON body.
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
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}
