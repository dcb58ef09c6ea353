//! Calls: admission, per-call setup (tenant, flow, caller lookup, call record), and one actor
//! task per call. See ARCHITECTURE.md, "The call, as data".

mod actor;
mod dialog;
mod leg;
mod listen;
mod playback;
mod recorder;
mod speech;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dialogs::{CallServices, CallSetup, Engine, FlowRegistry, LlmClient};
use sip::driver::{InboundCall, SipHandle};
use store::{CallDirection, NewCall, Store};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use actor::ActorConfig;
pub use listen::ListenConfig;
pub use speech::SpeechEngines;

use crate::clock::now_ms;
use crate::config::Config;

/// Builds the data services a call's tools use (customer lookup, messages, events).
pub type ServicesFactory = Arc<dyn Fn(&CallScope) -> Arc<dyn CallServices> + Send + Sync>;

/// Who a call belongs to.
#[derive(Debug, Clone)]
pub struct CallScope {
    pub call_id: String,
    pub tenant_id: String,
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

    /// Calls in progress.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Takes inbound calls until `shutdown` fires, then stops accepting, lets calls finish
    /// for up to `grace`, and hangs up the rest.
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
        sip.shutdown().await;
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

async fn run_inbound(rt: CallRuntime, call: InboundCall, stop: watch::Receiver<bool>) {
    let call_id = store::new_id();
    let span = tracing::info_span!("call", call_id = %call_id, sip = %call.call);
    let _enter = span.enter();
    drop(_enter);
    let from = call.from.uri.user().unwrap_or("").to_owned();
    let to = dialled_number(&call);
    tracing::debug!(%from, %to, source = %call.source, "inbound call");
    let started_at = now_ms();

    // Which tenant and flow answer this number.
    let (tenant_id, flow_name) = match rt.store.phone_number(&to).await {
        Ok(Some(n)) => (n.tenant_id, n.flow),
        _ => match rt
            .store
            .tenant_by_name(&rt.config.call.default_tenant)
            .await
        {
            Ok(Some(t)) => (t.id, rt.config.flows.default.clone()),
            other => {
                tracing::error!(?other, "no default tenant: refusing the call");
                let _ = call.reject(503).await;
                return;
            }
        },
    };
    let Some(flow) = rt
        .flows
        .get(&flow_name)
        .or_else(|| rt.flows.get(&rt.config.flows.default))
    else {
        tracing::error!(flow = %flow_name, "flow not loaded: refusing the call");
        let _ = call.reject(503).await;
        return;
    };
    let scope = CallScope {
        call_id: call_id.clone(),
        tenant_id: tenant_id.clone(),
    };
    let (recorder, recorder_task) =
        recorder::Recorder::spawn(rt.store.clone(), tenant_id.clone(), call_id.clone());
    recorder.record(recorder::Record::Call(NewCall {
        id: call_id.clone(),
        tenant_id,
        direction: CallDirection::Inbound,
        from_number: from.clone(),
        to_number: to,
        sip_call_id: Some(call.sip_call_id.clone()),
        flow: Some(flow_name),
        flow_version: Some(flow.version_hash().to_owned()),
        node: rt.node.clone(),
        started_at,
    }));

    if let Err(e) = rt.engines.tts_available() {
        // Without a voice the call cannot be handled; a 503 lets the trunk try elsewhere.
        tracing::error!(error = %e, "refusing call");
        let _ = call.reject(503).await;
        recorder.record(recorder::Record::Ended {
            at: now_ms(),
            reason: "tts_unavailable".to_owned(),
        });
        drop(recorder);
        let _ = recorder_task.await;
        return;
    }

    // Look the caller up before answering so the greeting can use their name.
    let services = (rt.services)(&scope);
    let customer = match tokio::time::timeout(
        Duration::from_millis(500),
        dialogs::identify_caller(services.as_ref(), &from),
    )
    .await
    {
        Ok(customer) => customer,
        Err(_) => {
            tracing::warn!("customer lookup timed out; continuing unidentified");
            None
        }
    };
    if customer.is_some() {
        recorder.event("caller_identified", serde_json::json!({}));
    }
    let setup = CallSetup::new(Some(&from)).with_customer(customer);
    let engine = Engine::new(flow, services, rt.llm.clone(), setup);

    let media = match call.answer().await {
        Ok(media) => media,
        Err(e) => {
            tracing::warn!(error = %e, "could not answer");
            recorder.record(recorder::Record::Ended {
                at: now_ms(),
                reason: "answer_failed".to_owned(),
            });
            drop(recorder);
            let _ = recorder_task.await;
            return;
        }
    };
    let control = call.control();
    let InboundCall { signals, .. } = call;
    let leg = match leg::CallLeg::new(media, signals, control.clone()) {
        Ok(leg) => leg,
        Err(e) => {
            tracing::error!(error = %e, "cannot run media");
            let _ = control.hangup().await;
            recorder.record(recorder::Record::Ended {
                at: now_ms(),
                reason: "media_failed".to_owned(),
            });
            drop(recorder);
            let _ = recorder_task.await;
            return;
        }
    };
    let vad = match rt.vad.build_with(leg::PIPELINE_RATE, &rt.vad_options) {
        Ok(vad) => vad,
        Err(e) => {
            tracing::warn!(error = %e, "configured VAD unavailable; using earshot");
            match audio::VadKind::Earshot.build(leg::PIPELINE_RATE) {
                Ok(vad) => vad,
                Err(e) => {
                    tracing::error!(error = %e, "no VAD");
                    let _ = control.hangup().await;
                    return;
                }
            }
        }
    };
    let cfg = &rt.config;
    let listen = ListenConfig {
        min_speech_ms: cfg.turn.min_speech_ms,
        end_silence_ms: cfg.turn.end_silence_ms,
        max_utterance_ms: 30_000,
    };
    let actor_config = ActorConfig {
        listen,
        barge_in_min_ms: cfg.turn.barge_in_min_ms,
        silence_timeout: Duration::from_secs(cfg.call.silence_timeout_secs),
        max_duration: Duration::from_secs(cfg.call.max_duration_secs),
    };
    let dialog = dialog::Dialog::spawn(engine);
    let outcome = actor::run(
        leg,
        dialog,
        listen::Listener::new(listen, vad),
        rt.engines.clone(),
        recorder,
        actor_config,
        stop,
    )
    .await;
    tracing::info!(parent: &span, end_reason = %outcome.end_reason, turns = outcome.turns, "call ended");
    let _ = recorder_task.await;
}
