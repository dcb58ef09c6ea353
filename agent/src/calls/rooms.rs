//! Calls from LiveKit rooms: the daemon registers as an agent worker (`[livekit]`), and each
//! job the server assigns — a room LiveKit SIP put a phone caller in — becomes a call like a
//! direct SIP one: the same [`CallPlan`] (tenant by the trunk's route or the dialled number,
//! caller looked up by `sip.phoneNumber`), the same core and driver, on a [`CallLeg`] whose
//! transport is the room.
//!
//! One task owns the worker and the calls' tasks, like [`super::CallManager`] for SIP: on
//! shutdown it declines new offers, lets calls finish for the grace period, then ends the
//! rest, and only then closes the worker connection (so the final job statuses still reach
//! the server).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ::livekit::room::{self, IcePolicy, RoomEvent, RoomOptions, RoomSession, SipParticipant};
use ::livekit::sip_api::ServerApi;
use ::livekit::token::Credentials;
use ::livekit::worker::{Job, JobStatus, Worker, WorkerCounters, WorkerHandle, WorkerOptions};
use anyhow::Context;
use store::{CallDirection, CallTransport};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::leg::CallLeg;
use super::setup::{CallPlan, CallRequest};
use super::transport::LiveKitRoom;
use super::{CallRuntime, stopped};
use crate::config::LiveKitConfig;

/// The LiveKit side of `agent serve`, ready to run.
pub struct RoomCalls {
    runtime: CallRuntime,
    worker: WorkerHandle,
    jobs: mpsc::Receiver<Job>,
    api: Arc<ServerApi>,
    active: Arc<AtomicUsize>,
    draining: Arc<AtomicBool>,
    join: JoinSettings,
    tasks: JoinSet<()>,
    stop_calls: watch::Sender<bool>,
}

#[derive(Clone)]
struct JoinSettings {
    ice: IcePolicy,
    media_timeout: Duration,
}

impl RoomCalls {
    /// Starts the worker when `[livekit] url` is set. `active` counts every call of the daemon
    /// (SIP ones too): offers are declined at `call.max_concurrent`.
    pub fn start(rt: &CallRuntime, active: Arc<AtomicUsize>) -> anyhow::Result<Option<Self>> {
        let cfg: &LiveKitConfig = &rt.config.livekit;
        if !cfg.enabled() {
            return Ok(None);
        }
        if cfg.api_key.is_empty() || cfg.api_secret.is_empty() {
            anyhow::bail!("livekit.api_key and livekit.api_secret are required with livekit.url");
        }
        let credentials = Credentials::new(cfg.api_key.clone(), cfg.api_secret.expose());
        let api = ServerApi::new(&cfg.url, credentials.clone())
            .with_context(|| format!("livekit.url = {}", cfg.url))?;
        let options =
            WorkerOptions::new(&cfg.url, credentials, &cfg.agent_name).with_max_jobs(cfg.max_jobs);
        let draining = Arc::new(AtomicBool::new(false));
        let admit = {
            let draining = draining.clone();
            let active = active.clone();
            let max = rt.config.call.max_concurrent as usize;
            let engines = rt.engines.clone();
            move |_: &::livekit::proto::Job| {
                // Without a voice the call cannot be handled: let another worker take it.
                !draining.load(Ordering::Relaxed)
                    && active.load(Ordering::Relaxed) < max
                    && engines.tts_available().is_ok()
            }
        };
        let (worker, jobs) =
            Worker::start(options, admit).with_context(|| format!("livekit.url = {}", cfg.url))?;
        tracing::info!(url = %cfg.url, agent_name = %cfg.agent_name, max_jobs = cfg.max_jobs, "LiveKit agent worker started");
        let ice = ice_policy(cfg);
        let (stop_calls, _) = watch::channel(false);
        Ok(Some(Self {
            runtime: rt.clone(),
            worker,
            jobs,
            api: Arc::new(api),
            active,
            draining,
            join: JoinSettings {
                ice,
                media_timeout: Duration::from_secs(cfg.media_timeout_secs.max(1)),
            },
            tasks: JoinSet::new(),
            stop_calls,
        }))
    }

    /// Takes jobs until `shutdown` fires, then drains like the SIP call manager: no new jobs,
    /// calls finish within `grace`, the rest are ended; the worker disconnects last.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let mut metrics_tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                job = self.jobs.recv() => match job {
                    Some(job) => self.spawn_call(job),
                    None => break,
                },
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
                _ = metrics_tick.tick() => export_metrics(self.worker.counters()),
                () = stopped(&mut shutdown) => break,
            }
        }
        self.draining.store(true, Ordering::Relaxed);
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                calls = self.tasks.len(),
                "grace period over; ending remaining LiveKit calls"
            );
            let _ = self.stop_calls.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while self.tasks.join_next().await.is_some() {}
            })
            .await;
        }
        export_metrics(self.worker.counters());
        self.worker.shutdown().await;
    }

    fn spawn_call(&mut self, job: Job) {
        self.active.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("agent_calls_active").increment(1.0);
        let rt = self.runtime.clone();
        let api = self.api.clone();
        let settings = self.join.clone();
        let stop = self.stop_calls.subscribe();
        let active = self.active.clone();
        let span = tracing::info_span!("livekit_job", job = %job.id, room = %job.room_name);
        self.tasks.spawn(tracing::Instrument::instrument(
            async move {
                run_job(rt, api, settings, job, stop).await;
                active.fetch_sub(1, Ordering::Relaxed);
                metrics::gauge!("agent_calls_active").decrement(1.0);
            },
            span,
        ));
    }
}

/// `[livekit] ice` as the room client's policy.
pub(super) fn ice_policy(cfg: &LiveKitConfig) -> IcePolicy {
    match cfg.ice.as_str() {
        "loopback" => IcePolicy::LoopbackOnly,
        _ => IcePolicy::Default,
    }
}

/// Why a job (or a dialled room call) could not become a call.
#[derive(Debug, thiserror::Error)]
pub(super) enum JobError {
    #[error("cannot join the room: {0}")]
    Join(#[from] room::RoomError),
    #[error("no SIP participant with media within {0:?}")]
    NoCaller(Duration),
    #[error("the room ended before the call started: {0:?}")]
    EndedEarly(room::EndReason),
}

async fn run_job(
    rt: CallRuntime,
    api: Arc<ServerApi>,
    settings: JoinSettings,
    job: Job,
    mut stop: watch::Receiver<bool>,
) {
    let Job {
        room_name,
        url,
        token,
        mut handle,
        ..
    } = job;
    handle.set_status(JobStatus::Running).await;
    let options = RoomOptions::default().with_ice(settings.ice);
    let joined = async {
        let mut session = room::join(&url, &token, options).await?;
        let caller = wait_for_caller(&mut session, settings.media_timeout).await?;
        Ok::<_, JobError>((session, caller))
    };
    let (session, caller) = match joined.await {
        Ok(joined) => joined,
        Err(e) => {
            tracing::warn!(error = %e, "LiveKit job failed before the call");
            metrics::counter!("agent_livekit_jobs_failed_total", "stage" => "join").increment(1);
            handle.set_status(JobStatus::Failed(e.to_string())).await;
            return;
        }
    };
    let request = call_request(&rt, &caller).await;
    tracing::debug!(from = %request.from, to = %request.to, "LiveKit call");
    let plan = match CallPlan::prepare(&rt, request).await {
        Ok(plan) => plan,
        Err(reason) => {
            // The bridge has the phone call up already: deleting the room hangs it up.
            tracing::error!(%reason, "refusing the LiveKit call");
            refuse(&api, &room_name, session).await;
            handle
                .set_status(JobStatus::Failed(reason.to_string()))
                .await;
            return;
        }
    };
    if let Err(e) = rt.engines.tts_available() {
        tracing::error!(error = %e, "refusing the LiveKit call");
        refuse(&api, &room_name, session).await;
        plan.abandon(store::EndReason::TtsUnavailable).await;
        handle.set_status(JobStatus::Failed(e.to_string())).await;
        return;
    }
    let leg = match CallLeg::livekit(LiveKitRoom {
        session,
        api,
        room_name,
        participant: caller.identity.clone(),
    }) {
        Ok(leg) => leg,
        Err(e) => {
            tracing::error!(error = %e, "cannot run media");
            plan.abandon(store::EndReason::MediaFailed).await;
            handle.set_status(JobStatus::Failed(e.to_string())).await;
            return;
        }
    };
    // The call stops when the daemon gives up on it (grace over) or the server terminates the
    // job; otherwise it runs to its own end.
    let (call_stop, call_stop_rx) = watch::channel(false);
    let conversation = plan.converse(&rt, leg, call_stop_rx);
    tokio::pin!(conversation);
    let mut stopping = false;
    let outcome = loop {
        tokio::select! {
            outcome = &mut conversation => break outcome,
            () = handle.terminated(), if !stopping => {
                tracing::info!("the server terminated the job");
                stopping = true;
                let _ = call_stop.send(true);
            }
            () = stopped(&mut stop), if !stopping => {
                stopping = true;
                let _ = call_stop.send(true);
            }
        }
    };
    tracing::debug!(end_reason = %outcome.end_reason, "LiveKit job done");
    handle.set_status(JobStatus::Success).await;
}

/// Waits until the SIP participant is in the room with its call up and both peer
/// connections carry media. Audio that arrives before is dropped (the greeting has not
/// started; nothing is listening yet).
pub(super) async fn wait_for_caller(
    session: &mut RoomSession,
    limit: Duration,
) -> Result<SipParticipant, JobError> {
    let mut caller = session.sip_participant();
    let mut media = false;
    let wait = async {
        loop {
            if media && let Some(up) = caller.as_ref().filter(|p| call_is_up(p)) {
                return Ok(up.clone());
            }
            match session.recv().await {
                Some(RoomEvent::SipParticipant(p)) => caller = Some(p),
                Some(RoomEvent::MediaConnected) => media = true,
                Some(RoomEvent::Ended(reason)) => return Err(JobError::EndedEarly(reason)),
                None => return Err(JobError::EndedEarly(room::EndReason::SignalLost)),
                Some(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .map_err(|_| JobError::NoCaller(limit))?
}

/// An inbound SIP participant is dispatched with its call answered; an outbound one only
/// counts once the callee answered (`active`). Servers that report no status are up.
fn call_is_up(p: &SipParticipant) -> bool {
    use ::livekit::room::CallStatus;
    matches!(
        p.call_status,
        None | Some(CallStatus::Active) | Some(CallStatus::Automation)
    )
}

/// The call as the SIP participant describes it. The tenant and flow come from the LiveKit
/// trunk's route (`POST /v1/tenants/{id}/trunk-routes`) when there is one; otherwise
/// `CallPlan` maps the dialled number as for a direct call.
async fn call_request(rt: &CallRuntime, caller: &SipParticipant) -> CallRequest {
    let from = caller.phone_number.clone().unwrap_or_default();
    let to = caller.trunk_phone_number.clone().unwrap_or_default();
    let trunk_id = caller.attributes.get("sip.trunkID");
    let caller_id_trusted =
        trunk_id.is_some_and(|id| rt.config.livekit.trusted_trunks.iter().any(|t| t == id));
    let route = match trunk_id {
        Some(trunk) if !trunk.is_empty() => match rt.store.trunk_route(trunk).await {
            Ok(route) => route,
            Err(e) => {
                tracing::warn!(error = %e, %trunk, "cannot read the trunk's route; mapping by number");
                None
            }
        },
        _ => None,
    };
    let (tenant, flow) = match route {
        Some(r) => (Some(r.tenant_id), Some(r.flow).filter(|f| !f.is_empty())),
        None => (None, None),
    };
    CallRequest {
        direction: CallDirection::Inbound,
        caller: from.clone(),
        caller_id_trusted,
        from,
        to,
        sip_call_id: caller.call_id.clone(),
        tenant,
        vars: Default::default(),
        flow,
        transport: CallTransport::LiveKit,
    }
}

/// Ends a call we will not take: the room goes (LiveKit SIP hangs the phone up), then we leave.
async fn refuse(api: &ServerApi, room_name: &str, session: RoomSession) {
    if let Err(e) = api.delete_room(room_name).await {
        tracing::warn!(error = %e, "cannot delete the room of a refused call");
    }
    session.leave().await;
}

/// The worker's counters as Prometheus counters (`agent_livekit_worker_total{event}`).
fn export_metrics(c: WorkerCounters) {
    for (event, value) in [
        ("connects", c.connects),
        ("connect_failures", c.connect_failures),
        ("registrations", c.registrations),
        ("disconnects", c.disconnects),
        ("malformed_frames", c.malformed_frames),
        ("protocol_errors", c.protocol_errors),
        ("register_timeouts", c.register_timeouts),
        ("jobs_accepted", c.jobs_accepted),
        ("jobs_declined", c.jobs_declined),
        ("jobs_assigned", c.jobs_assigned),
        ("jobs_terminated", c.jobs_terminated),
        ("jobs_dropped", c.jobs_dropped),
    ] {
        metrics::counter!("agent_livekit_worker_total", "event" => event).absolute(value);
    }
}
