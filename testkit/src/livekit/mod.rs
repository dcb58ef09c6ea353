//! [`FakeLiveKit`]: a local LiveKit server for tests, protocol-faithful where the agent talks
//! to it: the `/agent` worker websocket, the `/rtc` signal websocket with real WebRTC media
//! (webrtc-rs), and twirp `livekit.SIP/*` + `livekit.AgentDispatchService/CreateDispatch`.
//!
//! Behaviour follows the server (`livekit/livekit` @788d4c35): tokens are checked as
//! `pkg/service/auth.go` and `agentservice.go` do (401 without the agent grant), a worker must
//! register within `RegisterTimeout` (10 s, `pkg/agent/worker.go`), an offered job waits
//! `AssignJobTimeout` (10 s) for the availability answer and is assigned at once with a token
//! minted for the identity the worker chose, and the signal order is the dual-PC one of
//! `pkg/rtc/participant.go` (join → subscriber offer; add_track → track_published → publisher
//! offer → answer; trickle per target).
//!
//! The SFU and the SIP participant are one peer here: the media the "caller" plays is sent
//! on the agent's subscriber connection directly, and what the agent publishes is decoded and
//! recorded where the SIP participant would hear it. That is the agent's view of a real room.
//!
//! The fake is strict: a message out of order (an answer before an offer, an offer whose
//! audio track was never announced with add_track, a trickle before its connection was
//! negotiated, anything but register first on `/agent`) is recorded in
//! [`FakeLiveKit::violations`] and closes the connection, so tests that pass mean the order
//! was right.

mod agent;
mod media;
mod outbound;
mod rtc;
mod twirp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use livekit::proto;
use livekit::token::Credentials;
use tokio::sync::{Notify, mpsc};

pub use agent::{Dispatch, WorkerMessageRecord};
pub use outbound::Callee;
pub use twirp::TwirpCall;

/// The fake's API key and secret.
pub const API_KEY: &str = "devkey";
pub const API_SECRET: &str = "secret";

/// A running fake. Dropping it stops the server.
pub struct FakeLiveKit {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLiveKit {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a fake operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FakeError {
    NoWorker,
    /// The worker answered the availability request with `available = false`.
    Declined,
    /// The worker did not answer within `AssignJobTimeout`.
    AvailabilityTimeout,
    Timeout(&'static str),
    Audio(String),
}

impl std::fmt::Display for FakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for FakeError {}

/// An inbound phone call for [`FakeLiveKit::dispatch_sip_call`].
#[derive(Debug, Clone, Default)]
pub struct SipCall {
    /// `sip.phoneNumber` (the caller).
    pub caller: String,
    /// `sip.trunkPhoneNumber` (the number dialled).
    pub dialled: String,
    /// A 16 kHz (or 8 kHz) mono WAV the caller plays once media is up; silence after it.
    pub wav: Option<PathBuf>,
    /// Extra participant attributes (e.g. `sip.h.x-customer`).
    pub attributes: HashMap<String, String>,
}

/// Server-side state shared by the handlers. Locks are never held across an await.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) changed: Notify,
    pub(crate) ids: AtomicU64,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn violation(&self, what: impl Into<String>) {
        let what = what.into();
        tracing::warn!(%what, "fake livekit: protocol violation");
        self.lock().violations.push(what);
        self.changed.notify_waiters();
    }

    pub(crate) fn secret_for(key: &str) -> Option<String> {
        (key == API_KEY).then(|| API_SECRET.to_owned())
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) workers: Vec<agent::WorkerConn>,
    pub(crate) worker_log: Vec<WorkerMessageRecord>,
    pub(crate) worker_connections: u64,
    pub(crate) refused_connections: u64,
    pub(crate) worker_pongs: u64,
    pub(crate) rooms: HashMap<String, rtc::RoomState>,
    pub(crate) twirp: Vec<TwirpCall>,
    pub(crate) violations: Vec<String>,
    /// How numbers dialled with `CreateSIPParticipant` answer.
    pub(crate) callees: HashMap<String, Callee>,
}

impl FakeLiveKit {
    /// Starts the fake on 127.0.0.1 (an ephemeral port).
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .route("/agent", axum::routing::get(agent::handler))
            .route("/rtc", axum::routing::get(rtc::handler))
            .route(
                "/twirp/{service}/{method}",
                axum::routing::post(twirp::handler),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn credentials(&self) -> Credentials {
        Credentials::new(API_KEY, API_SECRET)
    }

    /// Waits until `n` workers have registered over the fake's lifetime (reconnections count).
    pub async fn wait_registrations(&self, n: usize, timeout: Duration) -> Result<(), FakeError> {
        self.wait_until(timeout, "worker registration", |s| {
            s.worker_log
                .iter()
                .filter(|r| {
                    matches!(
                        r.message.message,
                        Some(proto::worker_message::Message::Register(_))
                    )
                })
                .count()
                >= n
                && s.workers.iter().any(|w| w.registered)
        })
        .await
    }

    /// Everything workers sent, in order, with the connection it came on.
    pub fn worker_messages(&self) -> Vec<WorkerMessageRecord> {
        self.shared.lock().worker_log.clone()
    }

    /// Connections accepted on `/agent` (after the token check) and refused (401).
    pub fn worker_connection_counts(&self) -> (u64, u64) {
        let s = self.shared.lock();
        (s.worker_connections, s.refused_connections)
    }

    /// Offers a room job to the registered worker and assigns it if accepted.
    pub async fn dispatch_job(&self, room_name: &str) -> Result<Dispatch, FakeError> {
        agent::dispatch(&self.shared, room_name, "").await
    }

    /// Creates a room with a SIP participant (kind SIP, `sip.*` attributes,
    /// `sip.callStatus = active`, one Opus track) and dispatches the agent to it.
    pub async fn dispatch_sip_call(&self, call: SipCall) -> Result<CallHandle, FakeError> {
        let n = self.shared.next_id();
        let room_name = format!("call-{n}");
        let audio = match &call.wav {
            Some(path) => media::load_wav_16k(path).map_err(FakeError::Audio)?,
            None => Vec::new(),
        };
        let room = rtc::RoomState::new(&room_name, n, &call, audio);
        self.shared.lock().rooms.insert(room_name.clone(), room);
        let dispatch = agent::dispatch(&self.shared, &room_name, "").await?;
        Ok(CallHandle {
            room_name,
            dispatch,
            shared: self.shared.clone(),
        })
    }

    /// How `number` answers when dialled with `CreateSIPParticipant` (default: at once, silent).
    pub fn set_callee(&self, number: &str, callee: Callee) {
        self.shared.lock().callees.insert(number.to_owned(), callee);
    }

    /// Waits until a `CreateSIPParticipant` put `number` in a room, and returns that call.
    pub async fn outbound_call(
        &self,
        number: &str,
        timeout: Duration,
    ) -> Result<CallHandle, FakeError> {
        let find = |s: &State| {
            s.rooms
                .iter()
                .find(|(_, r)| {
                    r.sip.attributes.get("sip.phoneNumber").map(String::as_str) == Some(number)
                        && r.sip
                            .attributes
                            .get("sip.callID")
                            .is_some_and(|id| id.starts_with("SCL_out"))
                })
                .map(|(name, _)| name.clone())
        };
        self.wait_until(timeout, "outbound call", |s| find(s).is_some())
            .await?;
        let room_name = find(&self.shared.lock()).ok_or(FakeError::Timeout("outbound call"))?;
        Ok(CallHandle {
            dispatch: Dispatch {
                job_id: String::new(),
                room_name: room_name.clone(),
                participant_identity: String::new(),
            },
            room_name,
            shared: self.shared.clone(),
        })
    }

    /// Sends `JobTermination` for a job to the worker that runs it.
    pub fn terminate_job(&self, job_id: &str) -> bool {
        agent::send_to_worker(
            &self.shared,
            agent::Outgoing::Message(Box::new(proto::ServerMessage {
                message: Some(proto::server_message::Message::Termination(
                    proto::JobTermination {
                        job_id: job_id.to_owned(),
                    },
                )),
            })),
        )
    }

    /// Closes the newest worker connection at the TCP level, as a crashed server would.
    pub fn drop_worker_connection(&self) -> bool {
        agent::send_to_worker(&self.shared, agent::Outgoing::Drop)
    }

    /// Sends a binary frame that is not a `ServerMessage` to the newest worker.
    pub fn send_malformed_frame(&self) -> bool {
        // Field 1 (register), wire type 2, length 100 with 2 bytes: a truncated message.
        agent::send_to_worker(&self.shared, agent::Outgoing::Raw(vec![0x0A, 100, 1, 2]))
    }

    /// Sends a websocket ping to the newest worker (the real server pings every 10 s).
    pub fn ping_worker(&self) -> bool {
        agent::send_to_worker(&self.shared, agent::Outgoing::Ping)
    }

    /// Websocket pongs received from workers.
    pub async fn wait_worker_pongs(&self, n: u64, timeout: Duration) -> Result<(), FakeError> {
        self.wait_until(timeout, "worker pong", |s| s.worker_pongs >= n)
            .await
    }

    /// Twirp calls received, in order.
    pub fn twirp_calls(&self) -> Vec<TwirpCall> {
        self.shared.lock().twirp.clone()
    }

    /// Protocol violations seen (empty in a correct run).
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    pub(crate) async fn wait_until(
        &self,
        timeout: Duration,
        what: &'static str,
        check: impl Fn(&State) -> bool,
    ) -> Result<(), FakeError> {
        wait_until(&self.shared, timeout, what, check).await
    }
}

pub(crate) async fn wait_until(
    shared: &Shared,
    timeout: Duration,
    what: &'static str,
    check: impl Fn(&State) -> bool,
) -> Result<(), FakeError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = shared.changed.notified();
        if check(&shared.lock()) {
            return Ok(());
        }
        // Poll as well as wait: some changes (media counters) do not notify.
        let step = tokio::time::Instant::now() + Duration::from_millis(20);
        if tokio::time::timeout_at(deadline.min(step), notified)
            .await
            .is_err()
            && tokio::time::Instant::now() >= deadline
        {
            return Err(FakeError::Timeout(what));
        }
    }
}

/// One dispatched phone call. Dropping it does nothing; the call lives as long as the fake.
pub struct CallHandle {
    room_name: String,
    dispatch: Dispatch,
    shared: Arc<Shared>,
}

impl CallHandle {
    pub fn room_name(&self) -> &str {
        &self.room_name
    }

    pub fn job_id(&self) -> &str {
        &self.dispatch.job_id
    }

    /// The SIP participant's identity (`sip_<caller>`).
    pub fn sip_identity(&self) -> String {
        self.with_room(|r| r.sip.identity.clone())
            .unwrap_or_default()
    }

    /// Waits until the agent joined the room and both peer connections are up.
    pub async fn media_connected(&self, timeout: Duration) -> Result<(), FakeError> {
        let room = self.room_name.clone();
        wait_until(&self.shared, timeout, "media connected", move |s| {
            s.rooms.get(&room).is_some_and(|r| r.media_connected())
        })
        .await
    }

    /// What the agent published, decoded to 16 kHz mono PCM.
    pub fn recorded_audio(&self) -> Vec<i16> {
        self.with_room(|r| r.recording.lock().map(|v| v.clone()).unwrap_or_default())
            .unwrap_or_default()
    }

    /// RTP packets the agent published (including silence frames).
    pub fn packets_from_agent(&self) -> u64 {
        self.with_room(|r| r.packets_from_agent.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Data packets the agent sent on its publisher data channels.
    pub fn data_from_agent(&self) -> Vec<proto::DataPacket> {
        self.with_room(|r| r.data_from_agent.clone())
            .unwrap_or_default()
    }

    /// Signal requests the agent sent, by name (`add_track`, `offer`, `answer`, …), in order.
    pub fn signal_log(&self) -> Vec<String> {
        self.with_room(|r| r.signal_log.clone()).unwrap_or_default()
    }

    /// True once the agent sent a `leave` request.
    pub fn agent_left(&self) -> bool {
        self.with_room(|r| r.agent_left).unwrap_or(false)
    }

    /// Plays more audio (16 kHz mono) after what is queued. Ignored before media is up
    /// (wait for [`CallHandle::media_connected`]).
    pub fn play(&self, samples_16k: Vec<i16>) {
        self.command(rtc::Command::Play(samples_16k));
    }

    /// Plays a WAV file (any rate, mono) like [`CallHandle::play`]: e.g. the caller speaks
    /// after the agent's greeting rather than over it ([`SipCall::wav`] plays at connect).
    pub fn play_wav(&self, path: &std::path::Path) -> Result<(), FakeError> {
        let samples = media::load_wav_16k(path).map_err(FakeError::Audio)?;
        self.play(samples);
        Ok(())
    }

    /// Writes [`CallHandle::recorded_audio`] as a 16 kHz mono WAV.
    pub fn write_recording(&self, path: &std::path::Path) -> Result<(), FakeError> {
        audio::wav::write_wav(path, 16_000, &self.recorded_audio())
            .map_err(|e| FakeError::Audio(e.to_string()))
    }

    /// The caller presses a key: a reliable `SipDTMF` data packet, as LiveKit SIP sends.
    pub fn send_dtmf(&self, digit: char) {
        self.command(rtc::Command::Dtmf(digit));
    }

    /// Changes the SIP participant's attributes (a `ParticipantUpdate` follows).
    pub fn update_attributes(&self, attributes: HashMap<String, String>) {
        self.command(rtc::Command::Attributes(attributes));
    }

    /// The caller hangs up: the SIP participant leaves (`ParticipantUpdate`, DISCONNECTED).
    pub fn leave(&self) {
        self.command(rtc::Command::SipLeave);
    }

    /// The room is deleted: `leave` (ROOM_DELETED) to the agent, then the socket closes.
    pub fn close_room(&self) {
        self.command(rtc::Command::CloseRoom);
    }

    /// The signal connection breaks: the socket closes without a `leave`.
    pub fn drop_signal(&self) {
        self.command(rtc::Command::DropSignal);
    }

    fn command(&self, command: rtc::Command) {
        let tx: Option<mpsc::Sender<rtc::Command>> =
            self.with_room(|r| r.commands.clone()).flatten();
        if let Some(tx) = tx {
            let _ = tx.try_send(command);
        }
    }

    fn with_room<T>(&self, f: impl FnOnce(&rtc::RoomState) -> T) -> Option<T> {
        self.shared.lock().rooms.get(&self.room_name).map(f)
    }
}
