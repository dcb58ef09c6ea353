//! The agent worker: registers on the server's `{url}/agent` websocket, answers job offers,
//! hands accepted jobs to the application and keeps the server informed of its load.
//!
//! ```no_run
//! # async fn example() -> Result<(), livekit::worker::WorkerError> {
//! use livekit::token::Credentials;
//! use livekit::worker::{JobStatus, Worker, WorkerOptions};
//!
//! let options = WorkerOptions::new("wss://lk.example.com", Credentials::new("key", "secret"), "receptionist");
//! let (worker, mut jobs) = Worker::start(options, |_job| true)?;
//! while let Some(mut job) = jobs.recv().await {
//!     // join job.url with job.token (see `room`), run the call, then:
//!     job.handle.set_status(JobStatus::Success).await;
//! }
//! # drop(worker);
//! # Ok(()) }
//! ```
//!
//! The protocol logic is the sans-IO [`protocol::WorkerCore`]; [`driver`] is its tokio shell.

mod driver;
pub mod protocol;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use livekit_protocol as proto;
use tokio::sync::{mpsc, watch};

use crate::token::Credentials;
pub use protocol::{
    AGENT_NAME_ATTRIBUTE, ASSIGNMENT_TIMEOUT, JobStatus, REGISTER_TIMEOUT, STATUS_INTERVAL,
};

/// How the worker connects and what it offers. Plain data; the agent's `[livekit]` config
/// section fills it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// The server's URL (`wss://…`, `ws://…`, or `https://…`/`http://…`, mapped to ws).
    pub url: String,
    pub credentials: Credentials,
    /// Explicit dispatch name (dispatch rules and `CreateDispatch` name it).
    pub agent_name: String,
    pub version: String,
    /// Jobs run at once; offers beyond it are declined.
    pub max_jobs: u32,
    /// Jobs the application has not taken yet before new assignments are failed back.
    pub jobs_queue: usize,
    /// First reconnection delay; doubles per failed attempt up to `reconnect_max`.
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// Limit for the websocket handshake.
    pub connect_timeout: Duration,
}

impl WorkerOptions {
    pub fn new(url: &str, credentials: Credentials, agent_name: &str) -> Self {
        Self {
            url: url.to_owned(),
            credentials,
            agent_name: agent_name.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            max_jobs: 4,
            jobs_queue: 8,
            reconnect_initial: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }

    pub fn with_max_jobs(mut self, max_jobs: u32) -> Self {
        self.max_jobs = max_jobs;
        self
    }

    pub fn with_version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }

    pub fn with_reconnect(mut self, initial: Duration, max: Duration) -> Self {
        self.reconnect_initial = initial;
        self.reconnect_max = max;
        self
    }
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    #[error("invalid LiveKit URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
}

/// A job assigned to this worker: join `url` with `token` and run the call.
#[non_exhaustive]
pub struct Job {
    pub id: String,
    pub dispatch_id: String,
    pub room_name: String,
    pub room_sid: String,
    /// The assignment's URL, or the worker's own server URL (as ws/wss).
    pub url: String,
    /// The room-join JWT the server minted for our participant (secret: not in `Debug`).
    pub token: String,
    /// For participant jobs; room jobs (ours) have none.
    pub participant: Option<proto::ParticipantInfo>,
    pub metadata: String,
    pub attributes: HashMap<String, String>,
    pub agent_name: String,
    /// Report status and learn of termination.
    pub handle: JobHandle,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("room_name", &self.room_name)
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("agent_name", &self.agent_name)
            .finish_non_exhaustive()
    }
}

/// Reports a job's status to the server and tells when the server terminates it. Dropping it
/// without a final status reports the job as failed.
pub struct JobHandle {
    job_id: String,
    updates: mpsc::Sender<(String, JobStatus)>,
    terminated: watch::Receiver<bool>,
    finished: bool,
}

impl JobHandle {
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Sends `UpdateJobStatus` (now, or after the next registration if the connection is
    /// down). A final status (success / failed) ends the job here. False once the worker has
    /// stopped.
    pub async fn set_status(&mut self, status: JobStatus) -> bool {
        let is_final = !matches!(status, JobStatus::Running);
        let sent = self
            .updates
            .send((self.job_id.clone(), status))
            .await
            .is_ok();
        if is_final {
            self.finished = true;
        }
        sent
    }

    /// Resolves when the server sends `JobTermination` for this job. Cancel-safe. Pending
    /// forever if the worker stops without a termination.
    pub async fn terminated(&mut self) {
        if self.terminated.wait_for(|t| *t).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    pub fn is_terminated(&self) -> bool {
        *self.terminated.borrow()
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.updates.try_send((
                self.job_id.clone(),
                JobStatus::Failed("job dropped without a final status".into()),
            ));
        }
    }
}

impl fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("job_id", &self.job_id)
            .field("terminated", &self.is_terminated())
            .finish()
    }
}

/// Counters for metrics. Monotonic since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerCounters {
    /// Websocket connections opened.
    pub connects: u64,
    /// Connection attempts that failed (refused, handshake error, timeout, 401).
    pub connect_failures: u64,
    pub registrations: u64,
    /// Connections lost or closed by us (not counting shutdown).
    pub disconnects: u64,
    /// Frames that were not a valid `ServerMessage`; each closes its connection.
    pub malformed_frames: u64,
    /// Valid messages out of order (e.g. before registration); each closes its connection.
    pub protocol_errors: u64,
    pub register_timeouts: u64,
    pub jobs_accepted: u64,
    pub jobs_declined: u64,
    pub jobs_assigned: u64,
    pub jobs_terminated: u64,
    /// Assignments failed back because the application's job queue was full or closed.
    pub jobs_dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connects: AtomicU64,
    connect_failures: AtomicU64,
    registrations: AtomicU64,
    disconnects: AtomicU64,
    malformed_frames: AtomicU64,
    protocol_errors: AtomicU64,
    register_timeouts: AtomicU64,
    jobs_accepted: AtomicU64,
    jobs_declined: AtomicU64,
    jobs_assigned: AtomicU64,
    jobs_terminated: AtomicU64,
    jobs_dropped: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> WorkerCounters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkerCounters {
            connects: get(&self.connects),
            connect_failures: get(&self.connect_failures),
            registrations: get(&self.registrations),
            disconnects: get(&self.disconnects),
            malformed_frames: get(&self.malformed_frames),
            protocol_errors: get(&self.protocol_errors),
            register_timeouts: get(&self.register_timeouts),
            jobs_accepted: get(&self.jobs_accepted),
            jobs_declined: get(&self.jobs_declined),
            jobs_assigned: get(&self.jobs_assigned),
            jobs_terminated: get(&self.jobs_terminated),
            jobs_dropped: get(&self.jobs_dropped),
        }
    }
}

/// Where the worker's connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerState {
    Connecting,
    Registered {
        worker_id: String,
    },
    /// Waiting to reconnect.
    Disconnected,
    Stopped,
}

/// The application's decision on a job offer that fits within `max_jobs`.
pub type Admission = Arc<dyn Fn(&proto::Job) -> bool + Send + Sync>;

/// The running worker. Dropping it stops the worker (jobs already handed out keep their
/// handles, whose status updates then go nowhere).
pub struct WorkerHandle {
    shutdown: watch::Sender<bool>,
    counters: Arc<Counters>,
    state: watch::Receiver<WorkerState>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Entry point: see [`Worker::start`].
pub struct Worker;

impl Worker {
    /// Starts the worker task. `admit` is asked about each offer that fits within `max_jobs`
    /// (e.g. "is the pipeline healthy?"); accepted jobs arrive on the returned channel.
    pub fn start(
        options: WorkerOptions,
        admit: impl Fn(&proto::Job) -> bool + Send + Sync + 'static,
    ) -> Result<(WorkerHandle, mpsc::Receiver<Job>), WorkerError> {
        let endpoint = crate::url::endpoint(&options.url, "agent").map_err(|reason| {
            WorkerError::InvalidUrl {
                url: options.url.clone(),
                reason,
            }
        })?;
        let base =
            crate::url::websocket_base(&options.url).map_err(|reason| WorkerError::InvalidUrl {
                url: options.url.clone(),
                reason,
            })?;
        let (jobs_tx, jobs_rx) = mpsc::channel(options.jobs_queue.max(1));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (state_tx, state_rx) = watch::channel(WorkerState::Connecting);
        let counters = Arc::new(Counters::default());
        let driver = driver::Driver::new(
            options,
            endpoint,
            base,
            Arc::new(admit),
            jobs_tx,
            shutdown_rx,
            state_tx,
            counters.clone(),
        );
        let task = tokio::spawn(driver.run());
        Ok((
            WorkerHandle {
                shutdown: shutdown_tx,
                counters,
                state: state_rx,
                task: Some(task),
            },
            jobs_rx,
        ))
    }
}

impl WorkerHandle {
    pub fn counters(&self) -> WorkerCounters {
        self.counters.snapshot()
    }

    pub fn state(&self) -> WorkerState {
        self.state.borrow().clone()
    }

    /// Waits until the worker is registered (again); returns its id. `None` if it stopped.
    pub async fn registered(&mut self) -> Option<String> {
        let state = self
            .state
            .wait_for(|s| matches!(s, WorkerState::Registered { .. } | WorkerState::Stopped))
            .await
            .ok()?;
        match &*state {
            WorkerState::Registered { worker_id } => Some(worker_id.clone()),
            _ => None,
        }
    }

    /// Closes the connection and stops the task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("state", &self.state())
            .field("counters", &self.counters())
            .finish()
    }
}
