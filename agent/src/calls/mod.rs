//! Calls: admission, per-call setup (tenant, flow, caller lookup, call record), and one task
//! per call: the sans-IO [`core::CallCore`] that decides, driven by `driver` that does the
//! I/O. See ARCHITECTURE.md.

mod bridge;
pub mod core;
mod dialog;
mod driver;
mod exchange;
mod leg;
mod listen;
mod outbound;
pub mod quality;
mod recorder;
pub mod recording;
mod room_dial;
mod rooms;
mod setup;
mod speech;
mod transport;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dialogs::{CallServices, FlowRegistry, LlmClient};
use sip::driver::{InboundCall, SipHandle};
use store::{CallDirection, Store};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use driver::Outcome;
pub use leg::CallLeg;
pub use listen::ListenConfig;
pub use outbound::{
    OutboundError, OutboundProgress, OutboundRequest, OutboundResult, run_outbound,
};
pub use rooms::RoomCalls;
pub use setup::{CallPlan, CallRequest, SetupError};
pub use speech::SpeechEngines;

use crate::config::Config;

/// Builds the data services a call's tools use (customer lookup, messages), handing the
/// flow's events to the call's recorder.
pub type ServicesFactory =
    Arc<dyn Fn(&CallScope, Arc<dyn crm::CallEventSink>) -> Arc<dyn CallServices> + Send + Sync>;

/// Who a call belongs to.
#[derive(Debug, Clone)]
pub struct CallScope {
    pub call_id: store::CallId,
    pub tenant_id: store::TenantId,
}

/// Everything calls share.
#[derive(Clone)]
pub struct CallRuntime {
    pub store: Store,
    pub engines: SpeechEngines,
    pub flows: Arc<FlowRegistry>,
    pub llm: Option<LlmClient>,
    pub services: ServicesFactory,
    pub vad: audio::VadKind,
    pub vad_options: audio::vad::VadOptions,
    pub config: Arc<Config>,
    pub node: String,
    /// The SIP driver, once started (after the runtime is built): what warm transfers dial
    /// through.
    pub sip: Arc<std::sync::OnceLock<SipHandle>>,
}

/// Accepts calls from the SIP driver and runs them until told to stop.
pub struct CallManager {
    runtime: CallRuntime,
    active: Arc<AtomicUsize>,
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl CallManager {
    pub fn new(runtime: CallRuntime) -> Self {
        let (stop, _) = watch::channel(false);
        Self {
            runtime,
            active: Arc::new(AtomicUsize::new(0)),
            tasks: JoinSet::new(),
            stop,
        }
    }

    /// The count of calls in progress, shared with the LiveKit worker so that
    /// `call.max_concurrent` holds over both transports.
    pub fn active_counter(&self) -> Arc<AtomicUsize> {
        self.active.clone()
    }

    /// Calls in progress.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Takes inbound calls until `shutdown` fires, then stops accepting, lets calls finish
    /// for up to `grace`, and hangs up the rest. The SIP driver keeps running (campaign calls
    /// may still use it): its owner shuts it down.
    pub async fn run(
        mut self,
        sip: SipHandle,
        mut inbound: mpsc::Receiver<InboundCall>,
        mut shutdown: watch::Receiver<bool>,
        grace: Duration,
    ) {
        loop {
            tokio::select! {
                call = inbound.recv() => match call {
                    Some(call) => self.admit(call).await,
                    None => break,
                },
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
                () = stopped(&mut shutdown) => break,
            }
        }
        sip.stop_accepting().await;
        let active = self.active();
        if active > 0 {
            tracing::info!(
                active,
                grace_secs = grace.as_secs(),
                "waiting for calls to finish"
            );
        }
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                active = self.active(),
                "grace period over; hanging up remaining calls"
            );
            let _ = self.stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while self.tasks.join_next().await.is_some() {}
            })
            .await;
        }
    }

    async fn admit(&mut self, call: InboundCall) {
        let max = self.runtime.config.call.max_concurrent as usize;
        if self.active() >= max {
            tracing::warn!(active = self.active(), max, "call refused: at capacity");
            metrics::counter!("agent_calls_refused_total", "reason" => "capacity").increment(1);
            let _ = call.reject(503).await;
            return;
        }
        self.active.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("agent_calls_active").increment(1.0);
        let active = self.active.clone();
        let runtime = self.runtime.clone();
        let stop = self.stop.subscribe();
        self.tasks.spawn(async move {
            run_inbound(runtime, call, stop).await;
            active.fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("agent_calls_active").decrement(1.0);
        });
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The dialled number: the Request-URI user (trunks put the DID there), else the To user.
fn dialled_number(call: &InboundCall) -> String {
    call.request_uri
        .user()
        .or_else(|| call.to.uri.user())
        .unwrap_or("")
        .to_owned()
}

async fn run_inbound(rt: CallRuntime, mut call: InboundCall, stop: watch::Receiver<bool>) {
    let from = call.from.uri.user().unwrap_or("").to_owned();
    let to = dialled_number(&call);
    tracing::debug!(%from, %to, source = %call.source, "inbound call");
    // Only a trunk that admitted the call by its source address can vouch for its caller ID.
    let caller_id_trusted = call.trunk.as_deref().is_some_and(|name| {
        rt.config
            .trunks
            .iter()
            .any(|t| t.name == name && t.trusted_caller_id)
    });
    let request = CallRequest {
        direction: CallDirection::Inbound,
        caller: from.clone(),
        caller_id_trusted,
        from,
        to,
        sip_call_id: Some(call.sip_call_id.clone()),
        tenant: None,
        vars: Default::default(),
        flow: None,
        transport: store::CallTransport::Sip,
    };
    let plan = match CallPlan::prepare(&rt, request).await {
        Ok(plan) => plan,
        Err(reason) => {
            tracing::error!(%reason, "refusing the call");
            let _ = call.reject(503).await;
            return;
        }
    };
    if let Err(e) = rt.engines.tts_available() {
        // Without a voice the call cannot be handled; a 503 lets the trunk try elsewhere.
        tracing::error!(error = %e, "refusing call");
        let _ = call.reject(503).await;
        plan.abandon(store::EndReason::TtsUnavailable).await;
        return;
    }
    // Ring for a moment first when configured (callers expect a ring; it also leaves room for
    // the caller to give up, which must not leave a half-answered call behind).
    let ring = Duration::from_millis(rt.config.call.answer_delay_ms);
    if !ring.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(ring) => {}
            signal = call.signals.recv() => {
                if let Some(sip::driver::CallSignal::Ended(reason)) = signal {
                    tracing::info!(reason = reason.code(), "caller gave up before the answer");
                }
                plan.abandon(store::EndReason::CallerHangup).await;
                return;
            }
        }
    }
    let media = match call.answer().await {
        Ok(media) => media,
        Err(e) => {
            tracing::warn!(error = %e, "could not answer");
            plan.abandon(store::EndReason::AnswerFailed).await;
            return;
        }
    };
    let control = call.control();
    // Transfers to a number go to the caller's domain: the trunk or proxy that routes numbers.
    let peer_domain = sip_domain(&call.from.uri);
    let InboundCall { signals, .. } = call;
    match leg::CallLeg::sip(media, signals, control.clone(), peer_domain) {
        Ok(leg) => {
            plan.converse(&rt, leg, stop).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot run media");
            let _ = control.hangup().await;
            plan.abandon(store::EndReason::MediaFailed).await;
        }
    }
}

/// `host[:port]` of a SIP URI (empty for other schemes).
pub(crate) fn sip_domain(uri: &sip::message::Uri) -> String {
    uri.as_sip().map_or_else(String::new, |u| match u.port {
        Some(port) => format!("{}:{port}", u.host),
        None => u.host.to_string(),
    })
}
