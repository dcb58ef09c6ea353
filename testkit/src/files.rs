//! [`FakeFileHost`]: a local static-file HTTP server for download tests, with what real file
//! hosts do — single `Range: bytes=N-` / `bytes=N-M` requests answered 206 with
//! `Content-Range` (416 past the end), `Accept-Ranges: bytes` — and what goes wrong with them:
//! a connection cut after N bytes, or ranges ignored (a full 200).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A running file host. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeFileHost {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// A request the host received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRequest {
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug, Default)]
struct Shared {
    // Never held across an await.
    state: Mutex<HostState>,
}

#[derive(Debug, Default)]
struct HostState {
    files: HashMap<String, Bytes>,
    /// path → bytes to send before cutting the connection, for the next requests of it.
    cuts: HashMap<String, Vec<usize>>,
    ignore_ranges: bool,
    requests: Vec<FileRequest>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HostState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FakeFileHost {
    /// Starts a host on 127.0.0.1 with an OS-assigned port.
    ///
    /// # Panics
    /// If the loopback socket cannot be bound (a broken test environment).
    pub async fn start() -> FakeFileHost {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let app = Router::new().fallback(serve).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeFileHost { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `bytes` at `path` (e.g. `/models/ggml-x.bin`).
    pub fn put(&self, path: &str, bytes: impl Into<Bytes>) {
        self.shared
            .lock()
            .files
            .insert(path.to_owned(), bytes.into());
    }

    /// The next GET of `path` sends `after_bytes` of its body, then drops the connection.
    /// Calls queue: each applies to one request.
    pub fn cut_next(&self, path: &str, after_bytes: usize) {
        self.shared
            .lock()
            .cuts
            .entry(path.to_owned())
            .or_default()
            .push(after_bytes);
    }

    /// Answers every request with the whole file (200), as hosts without range support do.
    pub fn ignore_ranges(&self, ignore: bool) {
        self.shared.lock().ignore_ranges = ignore;
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<FileRequest> {
        self.shared.lock().requests.clone()
    }
}

impl Drop for FakeFileHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let head = req.method() == axum::http::Method::HEAD;
    let mut st = shared.lock();
    let (file, cut, ignore) = (
        st.files.get(&path).cloned(),
        st.cuts
            .get_mut(&path)
            .and_then(|q| (!q.is_empty()).then(|| q.remove(0))),
        st.ignore_ranges,
    );
    let mut log = |status: u16| {
        st.requests.push(FileRequest {
            path: path.clone(),
            range: range.clone(),
            status,
        })
    };
    let Some(file) = file else {
        log(404);
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let len = file.len();
    let (status, start, end) = match range.as_deref().filter(|_| !ignore).map(parse_range) {
        None => (StatusCode::OK, 0, len),
        Some(Some((start, last))) if start < len => {
            let end = last.map_or(len, |l| (l + 1).min(len));
            if end <= start {
                log(416);
                return unsatisfiable(len);
            }
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
        Some(Some(_)) => {
            log(416);
            return unsatisfiable(len);
        }
        Some(None) => {
            log(400);
            return (StatusCode::BAD_REQUEST, "bad Range").into_response();
        }
    };
    log(status.as_u16());
    drop(st);
    let body_bytes = file.slice(start..end);
    let mut resp = Response::builder()
        .status(status)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, body_bytes.len());
    if status == StatusCode::PARTIAL_CONTENT {
        resp = resp.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", end - 1),
        );
    }
    let body = if head {
        Body::empty()
    } else if let Some(n) = cut {
        // Some bytes, then an error: hyper drops the connection mid-body.
        let n = n.min(body_bytes.len());
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(body_bytes.slice(..n)),
            Err(std::io::Error::other("FakeFileHost: connection cut")),
        ];
        Body::from_stream(futures::stream::iter(chunks))
    } else {
        Body::from(body_bytes)
    };
    resp.body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn unsatisfiable(len: usize) -> Response {
    (
        StatusCode::RANGE_NOT_SATISFIABLE,
        [(header::CONTENT_RANGE, format!("bytes */{len}"))],
    )
        .into_response()
}

/// `bytes=START-` or `bytes=START-LAST` → (START, LAST); `None` when malformed or multiple.
fn parse_range(v: &str) -> Option<(usize, Option<usize>)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, last) = spec.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let last = match last.trim() {
        "" => None,
        l => Some(l.parse().ok()?),
    };
    Some((start, last))
}
