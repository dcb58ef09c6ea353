//! The tokio shell around [`WorkerCore`]: owns the websocket, the timers and the channels to the
//! application. Reads the clock (tokio's, so tests can pause it) and passes it to the core.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use proto::worker_message;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, info, warn};

use super::protocol::{CoreConfig, CoreEvent, DisconnectReason, JobStatus, WorkerCore};
use super::{Admission, Counters, Job, JobHandle, WorkerOptions, WorkerState};
use crate::token::AccessToken;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Status updates from job handles waiting for the driver.
const UPDATES_QUEUE: usize = 64;

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

enum SessionEnd {
    Shutdown,
    Closed,
}

pub(super) struct Driver {
    options: WorkerOptions,
    endpoint: String,
    base_url: String,
    core: WorkerCore,
    admit: Admission,
    jobs: mpsc::Sender<Job>,
    updates_tx: mpsc::Sender<(String, JobStatus)>,
    updates_rx: Option<mpsc::Receiver<(String, JobStatus)>>,
    terminations: HashMap<String, watch::Sender<bool>>,
    shutdown: watch::Receiver<bool>,
    state: watch::Sender<WorkerState>,
    counters: Arc<Counters>,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        options: WorkerOptions,
        endpoint: String,
        base_url: String,
        admit: Admission,
        jobs: mpsc::Sender<Job>,
        shutdown: watch::Receiver<bool>,
        state: watch::Sender<WorkerState>,
        counters: Arc<Counters>,
    ) -> Self {
        let core = WorkerCore::new(
            CoreConfig {
                agent_name: options.agent_name.clone(),
                version: options.version.clone(),
                max_jobs: options.max_jobs,
                reconnect_initial: options.reconnect_initial,
                reconnect_max: options.reconnect_max,
            },
            now(),
        );
        let (updates_tx, updates_rx) = mpsc::channel(UPDATES_QUEUE);
        Self {
            options,
            endpoint,
            base_url,
            core,
            admit,
            jobs,
            updates_tx,
            updates_rx: Some(updates_rx),
            terminations: HashMap::new(),
            shutdown,
            state,
            counters,
        }
    }

    pub(super) async fn run(mut self) {
        let mut shutdown = self.shutdown.clone();
        let Some(mut updates) = self.updates_rx.take() else {
            return;
        };
        loop {
            if let Some((at, _)) = self.core.poll_timeout()
                && self.core.is_disconnected()
            {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = stopped(&mut shutdown) => break,
                    Some((id, status)) = updates.recv() => {
                        self.on_status(&id, status);
                        continue;
                    }
                }
            }
            let _ = self.state.send(WorkerState::Connecting);
            let ws = tokio::select! {
                ws = self.connect() => ws,
                _ = stopped(&mut shutdown) => break,
            };
            let Some(ws) = ws else {
                Counters::bump(&self.counters.connect_failures);
                self.core.handle_disconnected(now());
                let _ = self.state.send(WorkerState::Disconnected);
                continue;
            };
            Counters::bump(&self.counters.connects);
            self.core.handle_connected(now());
            match self.session(ws, &mut shutdown, &mut updates).await {
                SessionEnd::Shutdown => break,
                SessionEnd::Closed => {
                    Counters::bump(&self.counters.disconnects);
                    let retry_at = self.core.handle_disconnected(now());
                    let _ = self.state.send(WorkerState::Disconnected);
                    info!(
                        retry_in_ms = retry_at.saturating_duration_since(now()).as_millis() as u64,
                        running_jobs = self.core.job_count(),
                        "livekit worker disconnected; reconnecting"
                    );
                }
            }
        }
        let _ = self.state.send(WorkerState::Stopped);
    }

    async fn connect(&self) -> Option<Ws> {
        let credentials = &self.options.credentials;
        let token =
            AccessToken::for_agent_worker(&credentials.api_key).sign(credentials.api_secret());
        let mut request = match self.endpoint.as_str().into_client_request() {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "livekit worker: bad endpoint");
                return None;
            }
        };
        let bearer = format!("Bearer {token}").parse().ok()?;
        request.headers_mut().insert("Authorization", bearer);
        match tokio::time::timeout(
            self.options.connect_timeout,
            tokio_tungstenite::connect_async(request),
        )
        .await
        {
            Ok(Ok((ws, _response))) => Some(ws),
            Ok(Err(e)) => {
                warn!(error = %e, endpoint = %self.endpoint, "livekit worker: connect failed");
                None
            }
            Err(_) => {
                warn!(endpoint = %self.endpoint, "livekit worker: connect timed out");
                None
            }
        }
    }

    /// One connection, until it closes or the worker shuts down.
    async fn session(
        &mut self,
        ws: Ws,
        shutdown: &mut watch::Receiver<bool>,
        updates: &mut mpsc::Receiver<(String, JobStatus)>,
    ) -> SessionEnd {
        let (mut sink, mut stream) = ws.split();
        loop {
            while let Some(message) = self.core.poll_transmit() {
                self.count_outgoing(&message);
                let bytes = message.encode_to_vec();
                if sink.send(Message::Binary(bytes.into())).await.is_err() {
                    return SessionEnd::Closed;
                }
            }
            while let Some(event) = self.core.poll_event() {
                if let Some(reason) = self.on_event(event) {
                    let (code, text) = match reason {
                        DisconnectReason::RegisterTimeout => {
                            Counters::bump(&self.counters.register_timeouts);
                            (CloseCode::Policy, "register timeout")
                        }
                        DisconnectReason::Protocol(what) => {
                            Counters::bump(&self.counters.protocol_errors);
                            warn!(what, "livekit worker: protocol violation by the server");
                            (CloseCode::Protocol, what)
                        }
                        DisconnectReason::GoAway => (CloseCode::Away, "server going away"),
                    };
                    close(&mut sink, code, text).await;
                    return SessionEnd::Closed;
                }
            }
            let deadline = self
                .core
                .poll_timeout()
                .map(|(at, _)| at)
                .unwrap_or_else(|| now() + std::time::Duration::from_secs(3600));
            tokio::select! {
                frame = stream.next() => match frame {
                    Some(Ok(Message::Binary(bytes))) => {
                        match proto::ServerMessage::decode(bytes.as_ref()) {
                            Ok(message) => {
                                let admit = self.admit.clone();
                                self.core.handle_message(now(), message, &mut |job| admit(job));
                            }
                            Err(e) => {
                                Counters::bump(&self.counters.malformed_frames);
                                warn!(error = %e, len = bytes.len(), "livekit worker: malformed ServerMessage; closing");
                                close(&mut sink, CloseCode::Invalid, "malformed ServerMessage").await;
                                return SessionEnd::Closed;
                            }
                        }
                    }
                    Some(Ok(Message::Text(_))) => {
                        // We send protobuf, so the server answers in protobuf
                        // (wsprotocol.go); text is not a ServerMessage we can read.
                        Counters::bump(&self.counters.malformed_frames);
                        warn!("livekit worker: text frame on a protobuf connection; closing");
                        close(&mut sink, CloseCode::Unsupported, "expected binary protobuf").await;
                        return SessionEnd::Closed;
                    }
                    // tungstenite answers pings itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        debug!(?frame, "livekit worker: server closed the connection");
                        return SessionEnd::Closed;
                    }
                    Some(Err(e)) => {
                        // A connection cut without a close frame is a lost connection (a
                        // crashed server, a NAT timeout), not a frame we could not read.
                        let cut = matches!(
                            e,
                            tungstenite::Error::Protocol(
                                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
                            )
                        );
                        if !cut && matches!(e, tungstenite::Error::Protocol(_) | tungstenite::Error::Capacity(_) | tungstenite::Error::Utf8(_)) {
                            Counters::bump(&self.counters.malformed_frames);
                        }
                        debug!(error = %e, "livekit worker: connection error");
                        return SessionEnd::Closed;
                    }
                    None => return SessionEnd::Closed,
                },
                _ = tokio::time::sleep_until(deadline.into()) => self.core.handle_timeout(now()),
                Some((id, status)) = updates.recv() => self.on_status(&id, status),
                _ = stopped(shutdown) => {
                    close(&mut sink, CloseCode::Normal, "worker shutting down").await;
                    return SessionEnd::Shutdown;
                }
            }
        }
    }

    fn on_status(&mut self, id: &str, status: JobStatus) {
        if !matches!(status, JobStatus::Running) {
            self.terminations.remove(id);
        }
        self.core.handle_job_status(id, status);
    }

    /// Handles one core event; returns a reason when the connection must close.
    fn on_event(&mut self, event: CoreEvent) -> Option<DisconnectReason> {
        match event {
            CoreEvent::Registered { worker_id } => {
                Counters::bump(&self.counters.registrations);
                info!(%worker_id, agent_name = %self.options.agent_name, "livekit worker registered");
                let _ = self.state.send(WorkerState::Registered { worker_id });
            }
            CoreEvent::Assigned(assignment) => self.on_assigned(*assignment),
            CoreEvent::Terminated { job_id } => {
                Counters::bump(&self.counters.jobs_terminated);
                info!(%job_id, "livekit job terminated by the server");
                if let Some(tx) = self.terminations.get(&job_id) {
                    let _ = tx.send(true);
                }
            }
            CoreEvent::Disconnect(reason) => return Some(reason),
        }
        None
    }

    fn on_assigned(&mut self, assignment: proto::JobAssignment) {
        Counters::bump(&self.counters.jobs_assigned);
        let job = assignment.job.unwrap_or_default();
        let (term_tx, term_rx) = watch::channel(false);
        let url = assignment
            .url
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| self.base_url.clone());
        let room = job.room.unwrap_or_default();
        let id = job.id;
        let handle = JobHandle {
            job_id: id.clone(),
            updates: self.updates_tx.clone(),
            terminated: term_rx,
            finished: false,
        };
        let job = Job {
            id: id.clone(),
            dispatch_id: job.dispatch_id,
            room_name: room.name,
            room_sid: room.sid,
            url,
            token: assignment.token,
            participant: job.participant,
            metadata: job.metadata,
            attributes: job.attributes,
            agent_name: job.agent_name,
            handle,
        };
        info!(job_id = %id, room = %job.room_name, "livekit job assigned");
        match self.jobs.try_send(job) {
            Ok(()) => {
                self.terminations.insert(id, term_tx);
            }
            Err(e) => {
                Counters::bump(&self.counters.jobs_dropped);
                warn!(job_id = %id, "livekit worker: job queue full or closed; failing the job");
                let mut job = e.into_inner();
                // The handle's drop would queue the same failure; report it directly instead.
                job.handle.finished = true;
                self.core.handle_job_status(
                    &id,
                    JobStatus::Failed("worker could not take the job".into()),
                );
            }
        }
    }

    fn count_outgoing(&self, message: &proto::WorkerMessage) {
        if let Some(worker_message::Message::Availability(a)) = &message.message {
            let counter = if a.available {
                &self.counters.jobs_accepted
            } else {
                &self.counters.jobs_declined
            };
            Counters::bump(counter);
        }
    }
}

async fn close<S>(sink: &mut S, code: CloseCode, reason: &str)
where
    S: futures::Sink<Message> + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.to_owned().into(),
    };
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        sink.send(Message::Close(Some(frame))),
    )
    .await;
}

/// Resolves when shutdown is requested (or the handle is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across the caller's awaits.
    let _ = shutdown.wait_for(|s| *s).await.map(|_| ());
}
