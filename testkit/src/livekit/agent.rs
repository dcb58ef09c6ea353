//! The fake's `/agent` endpoint: `pkg/service/agentservice.go` (upgrade only with a token that
//! has `video.agent`) and `pkg/agent/worker.go` (register within 10 s, availability → assignment
//! within 10 s, token minted for the identity the worker chose, termination).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use livekit::proto;
use livekit::token::{self, AccessToken, VideoGrants};
use prost::Message as _;
use proto::{server_message, worker_message};
use tokio::sync::{mpsc, oneshot};

use super::{FakeError, Shared};

/// `RegisterTimeout` and `AssignJobTimeout` in `pkg/agent/worker.go`.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
pub const ASSIGN_JOB_TIMEOUT: Duration = Duration::from_secs(10);

/// One message a worker sent.
#[derive(Debug, Clone)]
pub struct WorkerMessageRecord {
    /// 1 for the first connection, 2 after a reconnection, …
    pub connection: u64,
    pub at: Instant,
    pub message: proto::WorkerMessage,
}

/// An assigned job.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub job_id: String,
    pub room_name: String,
    /// The identity the worker asked for in its AvailabilityResponse.
    pub participant_identity: String,
}

pub(crate) enum Outgoing {
    Message(Box<proto::ServerMessage>),
    Raw(Vec<u8>),
    /// A websocket ping control frame (`wsprotocol.go` sends one every 10 s).
    Ping,
    /// Close the TCP connection without a close frame.
    Drop,
}

pub(crate) struct WorkerConn {
    pub(crate) connection: u64,
    pub(crate) registered: bool,
    pub(crate) agent_name: String,
    tx: mpsc::Sender<Outgoing>,
    availability: HashMap<String, oneshot::Sender<proto::AvailabilityResponse>>,
}

pub(crate) fn bearer(headers: &HeaderMap, query: &HashMap<String, String>) -> Option<String> {
    if let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some(token.to_owned());
    }
    query.get("access_token").cloned()
}

pub(crate) fn unauthorized(what: &str) -> Response {
    (StatusCode::UNAUTHORIZED, what.to_owned()).into_response()
}

pub(crate) async fn handler(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let claims = bearer(&headers, &query).ok_or("no token").and_then(|t| {
        token::verify(&t, Shared::secret_for, token::unix_now()).map_err(|_| "invalid token")
    });
    match claims {
        Ok(c) if c.video().agent => {}
        Ok(_) => {
            shared.lock().refused_connections += 1;
            return unauthorized("permission denied: no agent grant");
        }
        Err(what) => {
            shared.lock().refused_connections += 1;
            return unauthorized(what);
        }
    }
    let connection = {
        let mut s = shared.lock();
        s.worker_connections += 1;
        s.worker_connections
    };
    ws.on_upgrade(move |socket| serve(shared, socket, connection))
}

async fn serve(shared: Arc<Shared>, socket: WebSocket, connection: u64) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Outgoing>(32);
    shared.lock().workers.push(WorkerConn {
        connection,
        registered: false,
        agent_name: String::new(),
        tx: tx.clone(),
        availability: HashMap::new(),
    });
    let deadline = tokio::time::Instant::now() + REGISTER_TIMEOUT;
    loop {
        let registered = is_registered(&shared, connection);
        tokio::select! {
            frame = stream.next() => {
                let bytes = match frame {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Pong(_))) => {
                        shared.lock().worker_pongs += 1;
                        shared.changed.notify_waiters();
                        continue;
                    }
                    Some(Ok(Message::Ping(_))) => continue,
                    Some(Ok(Message::Text(_))) => {
                        // The real server would read protojson here; our worker never sends it.
                        shared.violation("text frame on /agent");
                        break;
                    }
                    _ => break,
                };
                let Ok(message) = proto::WorkerMessage::decode(bytes.as_ref()) else {
                    shared.violation("malformed WorkerMessage");
                    break;
                };
                shared.lock().worker_log.push(WorkerMessageRecord {
                    connection,
                    at: Instant::now(),
                    message: message.clone(),
                });
                shared.changed.notify_waiters();
                if !on_message(&shared, connection, &tx, message) {
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline), if !registered => {
                // worker.go: not registered in time → the connection is closed.
                break;
            }
            out = rx.recv() => match out {
                Some(Outgoing::Message(m)) => {
                    if sink.send(Message::Binary(m.encode_to_vec().into())).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Raw(bytes)) => {
                    if sink.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Ping) => {
                    if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Drop) | None => break,
            },
        }
    }
    let mut s = shared.lock();
    s.workers.retain(|w| w.connection != connection);
    drop(s);
    shared.changed.notify_waiters();
}

fn is_registered(shared: &Shared, connection: u64) -> bool {
    shared
        .lock()
        .workers
        .iter()
        .any(|w| w.connection == connection && w.registered)
}

/// Handles one worker message; false closes the connection.
fn on_message(
    shared: &Shared,
    connection: u64,
    tx: &mpsc::Sender<Outgoing>,
    message: proto::WorkerMessage,
) -> bool {
    let registered = is_registered(shared, connection);
    let reply = |m: server_message::Message| {
        let _ = tx.try_send(Outgoing::Message(Box::new(proto::ServerMessage {
            message: Some(m),
        })));
    };
    match message.message {
        Some(worker_message::Message::Register(register)) => {
            if registered {
                shared.violation("second RegisterWorkerRequest");
                return false;
            }
            if register.r#type != proto::JobType::JtRoom as i32 {
                shared.violation(format!("unexpected job type {}", register.r#type));
            }
            {
                let mut s = shared.lock();
                if let Some(w) = s.workers.iter_mut().find(|w| w.connection == connection) {
                    w.registered = true;
                    w.agent_name = register.agent_name.clone();
                }
            }
            shared.changed.notify_waiters();
            reply(server_message::Message::Register(
                proto::RegisterWorkerResponse {
                    worker_id: format!("AW_{connection}"),
                    server_info: Some(proto::ServerInfo {
                        version: "fake".into(),
                        protocol: 16,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ));
            true
        }
        _ if !registered => {
            shared.violation("worker message before RegisterWorkerRequest");
            false
        }
        Some(worker_message::Message::Availability(response)) => {
            let waiter = shared
                .lock()
                .workers
                .iter_mut()
                .find(|w| w.connection == connection)
                .and_then(|w| w.availability.remove(&response.job_id));
            match waiter {
                Some(w) => {
                    let _ = w.send(response);
                }
                None => shared.violation(format!(
                    "availability response for unknown job {}",
                    response.job_id
                )),
            }
            true
        }
        Some(worker_message::Message::Ping(ping)) => {
            reply(server_message::Message::Pong(proto::WorkerPong {
                last_timestamp: ping.timestamp,
                timestamp: livekit::token::unix_now() as i64 * 1000,
            }));
            true
        }
        // UpdateWorker / UpdateJob are recorded in the log; migrate / simulate are not used.
        Some(_) => true,
        None => {
            shared.violation("WorkerMessage without a body");
            false
        }
    }
}

/// Sends to the newest registered worker.
pub(crate) fn send_to_worker(shared: &Shared, out: Outgoing) -> bool {
    let s = shared.lock();
    match s.workers.iter().rev().find(|w| w.registered) {
        Some(w) => w.tx.try_send(out).is_ok(),
        None => false,
    }
}

/// `AgentHandler.JobRequest` + `Worker.AssignJob` for one room job.
pub(crate) async fn dispatch(
    shared: &Shared,
    room_name: &str,
    metadata: &str,
) -> Result<Dispatch, FakeError> {
    let n = shared.next_id();
    let job_id = format!("AJ_{n}");
    let (room_sid, agent_name) = {
        let s = shared.lock();
        let sid = s
            .rooms
            .get(room_name)
            .map(|r| r.sid.clone())
            .unwrap_or_else(|| format!("RM_{n}"));
        let name = s
            .workers
            .iter()
            .rev()
            .find(|w| w.registered)
            .map(|w| w.agent_name.clone())
            .ok_or(FakeError::NoWorker)?;
        (sid, name)
    };
    let job = proto::Job {
        id: job_id.clone(),
        dispatch_id: format!("AD_{n}"),
        r#type: proto::JobType::JtRoom as i32,
        room: Some(proto::Room {
            sid: room_sid,
            name: room_name.to_owned(),
            ..Default::default()
        }),
        metadata: metadata.to_owned(),
        agent_name: agent_name.clone(),
        state: Some(proto::JobState {
            status: proto::JobStatus::JsRunning as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    let (answer_tx, answer_rx) = oneshot::channel();
    let worker_tx = {
        let mut s = shared.lock();
        let worker = s
            .workers
            .iter_mut()
            .rev()
            .find(|w| w.registered)
            .ok_or(FakeError::NoWorker)?;
        worker.availability.insert(job_id.clone(), answer_tx);
        worker.tx.clone()
    };
    let request = proto::ServerMessage {
        message: Some(server_message::Message::Availability(
            proto::AvailabilityRequest {
                job: Some(job.clone()),
                resuming: false,
            },
        )),
    };
    worker_tx
        .send(Outgoing::Message(Box::new(request)))
        .await
        .map_err(|_| FakeError::NoWorker)?;
    let response = tokio::time::timeout(ASSIGN_JOB_TIMEOUT, answer_rx)
        .await
        .map_err(|_| FakeError::AvailabilityTimeout)?
        .map_err(|_| FakeError::NoWorker)?;
    if !response.available {
        return Err(FakeError::Declined);
    }
    let mut attributes: std::collections::BTreeMap<String, String> = response
        .participant_attributes
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // worker.go adds the agent name under this key.
    attributes.insert("lk.agent_name".into(), agent_name);
    let token = AccessToken::new(super::API_KEY, &response.participant_identity)
        .with_name(&response.participant_name)
        .with_metadata(&response.participant_metadata)
        .with_attributes(attributes)
        .with_video(VideoGrants {
            room_join: true,
            room: room_name.to_owned(),
            can_publish: Some(true),
            can_subscribe: Some(true),
            can_publish_data: Some(true),
            agent: true,
            ..VideoGrants::default()
        })
        .sign(super::API_SECRET);
    let assignment = proto::ServerMessage {
        message: Some(server_message::Message::Assignment(proto::JobAssignment {
            job: Some(job),
            url: None,
            token,
        })),
    };
    worker_tx
        .send(Outgoing::Message(Box::new(assignment)))
        .await
        .map_err(|_| FakeError::NoWorker)?;
    Ok(Dispatch {
        job_id,
        room_name: room_name.to_owned(),
        participant_identity: response.participant_identity,
    })
}
