//! The worker protocol as a sans-IO state machine: it takes the server's messages, the
//! application's job updates and the time, and yields the messages to send, events for the
//! application, and its next deadline. It never reads the clock and never touches a socket;
//! [`super::driver`] owns the websocket and the timers.
//!
//! Protocol (server side: `livekit/livekit:pkg/agent/worker.go`, `pkg/service/agentservice.go`;
//! worker side: `livekit/agents:livekit-agents/livekit/agents/worker.py`):
//!
//! 1. On connect the worker sends `RegisterWorkerRequest`; the server answers
//!    `RegisterWorkerResponse` (it drops a worker that has not registered within
//!    `RegisterTimeout` = 10 s, and so do we when the answer does not come in 10 s).
//! 2. The server offers a job with `AvailabilityRequest` and waits `AssignJobTimeout` = 10 s for
//!    `AvailabilityResponse`; if available it mints the room token for the identity we gave and
//!    sends `JobAssignment` at once. We hold the slot for [`ASSIGNMENT_TIMEOUT`].
//! 3. `UpdateWorkerStatus` (load, job count, WS_AVAILABLE / WS_FULL) every
//!    [`STATUS_INTERVAL`] (the Python SDK's `UPDATE_STATUS_INTERVAL`), `UpdateJobStatus` when
//!    a job starts and ends; `JobTermination` asks us to end a job.
//! 4. After a reconnection the new registration starts with no jobs on the server's side
//!    (`Worker.runningJobs` is per connection), so jobs still running here are re-reported
//!    with `UpdateJobStatus(JS_RUNNING)`, and final statuses that could not be sent while
//!    disconnected are sent then.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use proto::{server_message, worker_message};

/// How long the server's `RegisterWorkerResponse` may take.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a slot promised in an `AvailabilityResponse` is held for the `JobAssignment`
/// (the server's `AssignJobTimeout`).
pub const ASSIGNMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Cadence of `UpdateWorkerStatus`.
pub const STATUS_INTERVAL: Duration = Duration::from_millis(2500);
/// The participant attribute that names the agent (`ATTRIBUTE_AGENT_NAME` in
/// `livekit-agents/livekit/agents/types.py`).
pub const AGENT_NAME_ATTRIBUTE: &str = "lk.agent.name";

/// What the core needs to know about this worker.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub agent_name: String,
    pub version: String,
    /// Jobs this worker runs at once; availability requests beyond it are declined.
    pub max_jobs: u32,
    /// First reconnection delay; doubles per failed attempt up to `reconnect_max`.
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
}

/// A job's status as the application reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobStatus {
    Running,
    Success,
    Failed(String),
}

impl JobStatus {
    fn is_final(&self) -> bool {
        !matches!(self, JobStatus::Running)
    }

    fn to_proto(&self, job_id: &str) -> proto::UpdateJobStatus {
        let (status, error) = match self {
            JobStatus::Running => (proto::JobStatus::JsRunning, String::new()),
            JobStatus::Success => (proto::JobStatus::JsSuccess, String::new()),
            JobStatus::Failed(e) => (proto::JobStatus::JsFailed, e.clone()),
        };
        proto::UpdateJobStatus {
            job_id: job_id.to_owned(),
            status: status as i32,
            error,
        }
    }
}

/// What the core tells the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CoreEvent {
    Registered {
        worker_id: String,
    },
    /// A job to run: the assignment as received.
    Assigned(Box<proto::JobAssignment>),
    /// The server asked to end this job.
    Terminated {
        job_id: String,
    },
    /// The connection must be closed (register timeout, protocol violation, server going away).
    Disconnect(DisconnectReason),
}

/// Why the core wants the connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    RegisterTimeout,
    /// The server sent something other than `register` first, or a message without a body.
    Protocol(&'static str),
    /// The server is draining this connection (`GoAway`): re-register.
    GoAway,
}

#[derive(Debug, Clone, PartialEq)]
enum Connection {
    Disconnected { retry_at: Instant },
    Registering { deadline: Instant },
    Registered { next_status: Instant },
}

/// The worker protocol state. See the module docs.
#[derive(Debug)]
pub struct WorkerCore {
    config: CoreConfig,
    connection: Connection,
    /// Failed connection attempts since the last registration.
    attempts: u32,
    /// Jobs assigned and not finished: id → last status reported by the application.
    jobs: BTreeMap<String, JobStatus>,
    /// Slots promised in an `AvailabilityResponse`: job id → until when.
    promised: BTreeMap<String, Instant>,
    /// Final statuses reported while not registered, sent after the next registration.
    unsent_final: Vec<proto::UpdateJobStatus>,
    /// `UpdateWorkerStatus.seq`: monotonic per registration.
    status_seq: u64,
    transmit: VecDeque<proto::WorkerMessage>,
    events: VecDeque<CoreEvent>,
}

impl WorkerCore {
    /// A core that wants to connect at `now`.
    pub fn new(config: CoreConfig, now: Instant) -> Self {
        Self {
            config,
            connection: Connection::Disconnected { retry_at: now },
            attempts: 0,
            jobs: BTreeMap::new(),
            promised: BTreeMap::new(),
            unsent_final: Vec::new(),
            status_seq: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The websocket is open: register.
    pub fn handle_connected(&mut self, now: Instant) {
        self.transmit.clear();
        self.connection = Connection::Registering {
            deadline: now + REGISTER_TIMEOUT,
        };
        #[allow(deprecated)] // `agent` is still what the Python SDK sets
        let permissions = proto::ParticipantPermission {
            can_subscribe: true,
            can_publish: true,
            can_publish_data: true,
            can_update_metadata: true,
            agent: true,
            ..Default::default()
        };
        self.send(worker_message::Message::Register(
            proto::RegisterWorkerRequest {
                r#type: proto::JobType::JtRoom as i32,
                agent_name: self.config.agent_name.clone(),
                version: self.config.version.clone(),
                allowed_permissions: Some(permissions),
                ..Default::default()
            },
        ));
    }

    /// The connection closed (or could not be opened). Returns when to try again: the delay
    /// doubles per attempt since the last successful registration.
    pub fn handle_disconnected(&mut self, now: Instant) -> Instant {
        let shift = self.attempts.min(16);
        let delay = self
            .config
            .reconnect_initial
            .saturating_mul(1u32 << shift)
            .min(self.config.reconnect_max);
        self.attempts = self.attempts.saturating_add(1);
        let retry_at = now + delay;
        self.connection = Connection::Disconnected { retry_at };
        self.transmit.clear();
        // Promises were made to the old connection's server-side worker, which is gone.
        self.promised.clear();
        retry_at
    }

    /// A message from the server. `admit` is asked about a job that fits within `max_jobs`.
    pub fn handle_message(
        &mut self,
        now: Instant,
        message: proto::ServerMessage,
        admit: &mut dyn FnMut(&proto::Job) -> bool,
    ) {
        let Some(message) = message.message else {
            self.protocol_violation("server message without a body");
            return;
        };
        if let Connection::Registering { .. } = self.connection {
            match message {
                server_message::Message::Register(r) => self.on_registered(now, r),
                server_message::Message::Pong(_) => {}
                _ => self.protocol_violation("message before RegisterWorkerResponse"),
            }
            return;
        }
        if let Connection::Disconnected { .. } = self.connection {
            return;
        }
        match message {
            server_message::Message::Register(_) => {
                self.protocol_violation("second RegisterWorkerResponse")
            }
            server_message::Message::Availability(req) => self.on_availability(now, req, admit),
            server_message::Message::Assignment(a) => self.on_assignment(now, a),
            server_message::Message::Termination(t) => {
                if self.jobs.contains_key(&t.job_id) {
                    self.events
                        .push_back(CoreEvent::Terminated { job_id: t.job_id });
                }
            }
            server_message::Message::Pong(_) => {}
            server_message::Message::GoAway(_) => {
                self.events
                    .push_back(CoreEvent::Disconnect(DisconnectReason::GoAway));
            }
        }
    }

    /// The application's status for a job. A final status ends the job here.
    pub fn handle_job_status(&mut self, job_id: &str, status: JobStatus) {
        if !self.jobs.contains_key(job_id) {
            return;
        }
        let update = status.to_proto(job_id);
        if status.is_final() {
            self.jobs.remove(job_id);
        } else {
            self.jobs.insert(job_id.to_owned(), status);
        }
        if matches!(self.connection, Connection::Registered { .. }) {
            self.send(worker_message::Message::UpdateJob(update));
        } else if update.status != proto::JobStatus::JsRunning as i32 {
            self.unsent_final.push(update);
        }
    }

    /// Time has passed; harmless to call early or often.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.promised.retain(|_, until| *until > now);
        match self.connection {
            Connection::Registering { deadline } if now >= deadline => {
                self.events
                    .push_back(CoreEvent::Disconnect(DisconnectReason::RegisterTimeout));
                // Stop repeating the event; the driver closes and reports the disconnection.
                self.connection = Connection::Disconnected { retry_at: now };
            }
            Connection::Registered { next_status } if now >= next_status => {
                self.send_status();
                let mut next = next_status + STATUS_INTERVAL;
                if next <= now {
                    // Far behind (a stalled runtime): do not send a burst.
                    next = now + STATUS_INTERVAL;
                }
                self.connection = Connection::Registered { next_status: next };
            }
            _ => {}
        }
    }

    /// The next deadline and why, if any.
    pub fn poll_timeout(&self) -> Option<(Instant, &'static str)> {
        let connection = match self.connection {
            Connection::Disconnected { retry_at } => (retry_at, "reconnect"),
            Connection::Registering { deadline } => (deadline, "register timeout"),
            Connection::Registered { next_status } => (next_status, "worker status"),
        };
        let promise = self
            .promised
            .values()
            .min()
            .map(|at| (*at, "assignment timeout"));
        Some(match promise {
            Some(p) if p.0 < connection.0 => p,
            _ => connection,
        })
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<proto::WorkerMessage> {
        self.transmit.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }

    /// True while waiting to reconnect.
    pub fn is_disconnected(&self) -> bool {
        matches!(self.connection, Connection::Disconnected { .. })
    }

    pub fn is_registered(&self) -> bool {
        matches!(self.connection, Connection::Registered { .. })
    }

    /// Jobs assigned and not finished.
    pub fn job_count(&self) -> u32 {
        u32::try_from(self.jobs.len()).unwrap_or(u32::MAX)
    }

    /// Running jobs over `max_jobs`, 0.0 – 1.0.
    pub fn load(&self) -> f32 {
        if self.config.max_jobs == 0 {
            return 1.0;
        }
        (self.jobs.len() as f32 / self.config.max_jobs as f32).min(1.0)
    }

    fn at_capacity(&self) -> bool {
        self.jobs.len() + self.promised.len() >= self.config.max_jobs as usize
    }

    fn on_registered(&mut self, now: Instant, response: proto::RegisterWorkerResponse) {
        let worker_id = response.worker_id;
        self.attempts = 0;
        self.status_seq = 0;
        self.connection = Connection::Registered {
            next_status: now + STATUS_INTERVAL,
        };
        self.events.push_back(CoreEvent::Registered { worker_id });
        self.send_status();
        for update in std::mem::take(&mut self.unsent_final) {
            self.send(worker_message::Message::UpdateJob(update));
        }
        let running: Vec<_> = self
            .jobs
            .iter()
            .map(|(id, status)| status.to_proto(id))
            .collect();
        for update in running {
            self.send(worker_message::Message::UpdateJob(update));
        }
    }

    fn on_availability(
        &mut self,
        now: Instant,
        request: proto::AvailabilityRequest,
        admit: &mut dyn FnMut(&proto::Job) -> bool,
    ) {
        let Some(job) = request.job else {
            self.protocol_violation("AvailabilityRequest without a job");
            return;
        };
        let available = !self.at_capacity()
            && !self.jobs.contains_key(&job.id)
            && !self.promised.contains_key(&job.id)
            && admit(&job);
        let mut response = proto::AvailabilityResponse {
            job_id: job.id.clone(),
            available,
            ..Default::default()
        };
        if available {
            self.promised
                .insert(job.id.clone(), now + ASSIGNMENT_TIMEOUT);
            response.participant_identity = format!("agent-{}", job.id);
            response.participant_name = self.config.agent_name.clone();
            response.participant_attributes.insert(
                AGENT_NAME_ATTRIBUTE.to_owned(),
                self.config.agent_name.clone(),
            );
        }
        self.send(worker_message::Message::Availability(response));
    }

    fn on_assignment(&mut self, now: Instant, assignment: proto::JobAssignment) {
        let Some(job) = assignment.job.as_ref() else {
            self.protocol_violation("JobAssignment without a job");
            return;
        };
        let id = job.id.clone();
        let promised = self.promised.remove(&id).is_some_and(|until| until > now);
        if !promised {
            // Not offered by us (or too late): tell the server rather than leave it believing
            // the job runs here.
            self.send(worker_message::Message::UpdateJob(
                JobStatus::Failed("assignment without an accepted availability".into())
                    .to_proto(&id),
            ));
            return;
        }
        self.jobs.insert(id, JobStatus::Running);
        self.events
            .push_back(CoreEvent::Assigned(Box::new(assignment)));
    }

    fn send_status(&mut self) {
        let status = if self.jobs.len() >= self.config.max_jobs as usize {
            proto::WorkerStatus::WsFull
        } else {
            proto::WorkerStatus::WsAvailable
        };
        self.status_seq += 1;
        self.send(worker_message::Message::UpdateWorker(
            proto::UpdateWorkerStatus {
                status: Some(status as i32),
                load: self.load(),
                job_count: self.job_count(),
                seq: self.status_seq,
                ..Default::default()
            },
        ));
    }

    fn protocol_violation(&mut self, what: &'static str) {
        self.events
            .push_back(CoreEvent::Disconnect(DisconnectReason::Protocol(what)));
    }

    fn send(&mut self, message: worker_message::Message) {
        self.transmit.push_back(proto::WorkerMessage {
            message: Some(message),
        });
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
