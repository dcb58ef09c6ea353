//! Setting a call up, the same for both directions: tenant and flow, the caller looked up in
//! the customer cache, the call row queued, the dialog engine built; then, once a leg exists,
//! the VAD, listener and actor that run the conversation.

use std::sync::Arc;
use std::time::Duration;

use audio::endpoint::{EndpointConfig, ModeWaits, TurnMode};
use audio::vad::SpeechDetectorConfig;
use dialogs::{CallSetup, Engine, Flow};
use store::{CallDirection, NewCall};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::core::{CallCore, CallStart, CoreConfig};
use super::dialog::Dialog;
use super::driver::{self, Outcome};
use super::leg::{CallLeg, PIPELINE_RATE};
use super::listen::{ListenConfig, Listener};
use super::recorder::{Record, Recorder};
use super::{CallRuntime, CallScope};
use crate::clock::now_ms;

/// What is known of a call before it is set up.
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub direction: CallDirection,
    /// From number as signalled (stored as is).
    pub from: String,
    /// Dialled number (inbound: our DID; outbound: the callee).
    pub to: String,
    /// The customer's number, for the caller-ID lookup (inbound: `from`; outbound: `to`).
    pub caller: String,
    /// `caller` is known to be genuine: an inbound call from a trunk with
    /// `trusted_caller_id`, or an outbound call (we dialled the number ourselves). Flows with
    /// `verify = "postal_code_unless_trusted"` ask anyone else for the postal code.
    pub caller_id_trusted: bool,
    pub sip_call_id: Option<String>,
    /// The tenant the call belongs to when the caller knows it (a campaign's); `None`: the
    /// dialled number's tenant, else `call.default_tenant`.
    pub tenant: Option<store::TenantId>,
    /// Extra template variables for the flow (a campaign contact's columns).
    pub vars: std::collections::BTreeMap<String, String>,
    /// Flow to run; `None` picks the dialled number's flow or `flows.default`.
    pub flow: Option<String>,
    /// What carries the call (stored with it).
    pub transport: store::CallTransport,
}

/// Why a call cannot be set up (it is refused before answer, or not dialled).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The dialled number maps to no tenant and `call.default_tenant` does not exist (or the
    /// store could not say).
    #[error("no tenant for the call: call.default_tenant {name:?} {detail}")]
    NoTenant { name: String, detail: String },
    #[error("flow {0:?} is not loaded")]
    UnknownFlow(String),
    /// The tenant's plan refuses the call (`[billing]`).
    #[error("refused by the tenant's plan: {0}")]
    Plan(#[from] billing::Refusal),
}

/// A call ready to be connected: its row is queued and its engine built.
pub struct CallPlan {
    pub call_id: store::CallId,
    pub tenant_id: store::TenantId,
    recorder: Recorder,
    recorder_task: JoinHandle<()>,
    engine: Engine,
    /// Screen the answer for an answering machine (outbound, `call.answering_machine_detection`).
    screen_for_machine: bool,
    /// The flow records its calls (`[recording] enabled`).
    record: bool,
}

impl CallPlan {
    /// Resolves tenant and flow, queues the call row, looks the customer up (bounded wait) and
    /// builds the engine. Errors say why the call cannot be taken.
    pub async fn prepare(rt: &CallRuntime, request: CallRequest) -> Result<CallPlan, SetupError> {
        let started_at = now_ms();
        let number = match request.direction {
            CallDirection::Inbound => rt.store.phone_number(&request.to).await.ok().flatten(),
            CallDirection::Outbound => None,
        };
        let default_flow = || {
            request
                .flow
                .clone()
                .unwrap_or_else(|| rt.config.flows.default.clone())
        };
        let (tenant_id, flow_name) = match (request.tenant.clone(), number) {
            (Some(tenant), _) => (tenant, default_flow()),
            (None, Some(n)) => (n.tenant_id, request.flow.clone().unwrap_or(n.flow)),
            (None, None) => match rt
                .store
                .tenant_by_name(&rt.config.call.default_tenant)
                .await
            {
                Ok(Some(t)) => (t.id, default_flow()),
                Ok(None) => {
                    return Err(SetupError::NoTenant {
                        name: rt.config.call.default_tenant.clone(),
                        detail: "does not exist".to_owned(),
                    });
                }
                Err(e) => {
                    return Err(SetupError::NoTenant {
                        name: rt.config.call.default_tenant.clone(),
                        detail: format!("could not be read: {e}"),
                    });
                }
            },
        };
        // billing (issue 11): over the plan's limits the call is refused here, before answer.
        crate::billing::admit(rt, &tenant_id, &request).await?;
        let flow: Arc<Flow> = rt
            .flows
            .get(&flow_name)
            .ok_or_else(|| SetupError::UnknownFlow(flow_name.clone()))?;
        let call_id = store::CallId::generate();
        let (recorder, recorder_task) =
            Recorder::spawn(rt.store.clone(), tenant_id.clone(), call_id.clone());
        recorder.record(Record::Call(NewCall {
            id: call_id.clone(),
            tenant_id: tenant_id.clone(),
            direction: request.direction,
            from_number: request.from.clone(),
            to_number: request.to.clone(),
            sip_call_id: request.sip_call_id.clone(),
            flow: Some(flow_name),
            flow_version: Some(flow.version_hash().to_owned()),
            node: rt.node.clone(),
            started_at,
            transport: request.transport,
        }));
        let scope = CallScope {
            call_id: call_id.clone(),
            tenant_id: tenant_id.clone(),
        };
        let services = (rt.services)(&scope, Arc::new(recorder.clone()));
        // Look the caller up before answering so the greeting can use their name.
        let lookup = dialogs::identify_caller(services.as_ref(), &request.caller);
        let customer = match tokio::time::timeout(Duration::from_millis(500), lookup).await {
            Ok(customer) => customer,
            Err(_) => {
                tracing::warn!("customer lookup timed out; continuing unidentified");
                None
            }
        };
        if customer.is_some() {
            recorder.event(store::EventKind::CallerIdentified, serde_json::json!({}));
        }
        let mut setup = CallSetup::new(Some(&request.caller))
            .with_customer(customer)
            .with_caller_id_trusted(request.caller_id_trusted);
        setup.vars = request.vars.clone();
        let record = flow.spec().recording.enabled;
        let engine = Engine::new(flow, services, rt.llm.clone(), setup);
        Ok(CallPlan {
            call_id,
            tenant_id,
            recorder,
            recorder_task,
            engine,
            screen_for_machine: request.direction == CallDirection::Outbound
                && rt.config.call.answering_machine_detection,
            record,
        })
    }

    /// Stores an event before the call is connected (an outbound call's progress).
    pub fn event(&self, kind: store::EventKind, detail: serde_json::Value) {
        self.recorder.event(kind, detail);
    }

    /// The call never connected: store why and wait for the writes.
    pub async fn abandon(self, reason: store::EndReason) {
        let CallPlan {
            recorder,
            recorder_task,
            engine,
            ..
        } = self;
        recorder.record(Record::Ended {
            at: now_ms(),
            reason,
        });
        // The engine's services hold the recorder too (the flow's events go through it): the
        // writer ends once every handle is gone.
        drop(engine);
        drop(recorder);
        let _ = recorder_task.await;
    }

    /// Runs the conversation on `leg` until the call ends; returns how it ended.
    pub async fn converse(
        self,
        rt: &CallRuntime,
        mut leg: CallLeg,
        stop: watch::Receiver<bool>,
    ) -> Outcome {
        let span = tracing::info_span!("call", call_id = %self.call_id);
        let vad = match rt.vad.build_with(PIPELINE_RATE, &rt.vad_options) {
            Ok(vad) => vad,
            Err(e) => {
                tracing::warn!(parent: &span, error = %e, "configured VAD unavailable; using earshot");
                match audio::VadKind::Earshot.build(PIPELINE_RATE) {
                    Ok(vad) => vad,
                    Err(e) => {
                        tracing::error!(parent: &span, error = %e, "no VAD");
                        leg.hangup().await;
                        self.abandon(store::EndReason::MediaFailed).await;
                        return Outcome {
                            end_reason: store::EndReason::MediaFailed,
                            turns: 0,
                        };
                    }
                }
            }
        };
        let cfg = &rt.config;
        let listen = ListenConfig {
            endpoint: endpoint_config(&cfg.turn),
            max_utterance_ms: 30_000,
        };
        let core_config = CoreConfig {
            barge_in_min_ms: cfg.turn.barge_in_min_ms,
            silence_timeout: Duration::from_secs(cfg.call.silence_timeout_secs),
            max_duration: Duration::from_secs(cfg.call.max_duration_secs),
        };
        let amd = self.screen_for_machine.then(|| {
            audio::amd::AmdDetector::new(audio::amd::AmdConfig {
                sample_rate: PIPELINE_RATE,
                ..audio::amd::AmdConfig::default()
            })
        });
        let start = CallStart {
            amd,
            call_id: self.call_id.clone(),
            at: answered_at(),
            unix_ms: now_ms(),
            codec: leg.codec_name().to_owned(),
            stt_unavailable: rt.engines.stt_available().err().map(|e| {
                tracing::error!(parent: &span, error = %e, "answering without speech recognition");
                e.to_string()
            }),
        };
        let listener = Listener::new(listen, vad, TurnMode::FreeSpeech);
        let core = CallCore::new(core_config, listener, start);
        let recording = match self.record {
            true => self.start_recording(rt, &mut leg, &span).await,
            false => None,
        };
        let dialog = Dialog::spawn(self.engine);
        let warm = warm_transfer(rt);
        let outcome = driver::run(
            core,
            leg,
            dialog,
            rt.engines.clone(),
            self.recorder,
            warm,
            stop,
            span.clone(),
        )
        .await;
        tracing::info!(parent: &span, end_reason = %outcome.end_reason, turns = outcome.turns, "call ended");
        if let Some(recording) = recording {
            recording.finish(&rt.store, now_ms()).await;
        }
        let _ = self.recorder_task.await;
        crm::zoho::spawn_call_log(&rt.store, &self.tenant_id, &self.call_id); // issue 10: Zoho write-back
        outcome
    }
}

impl CallPlan {
    /// Opens the call's recording files and taps the leg; a failure is logged and the call goes
    /// on unrecorded (the consent prompt still plays: it promised no more than may happen).
    async fn start_recording(
        &self,
        rt: &CallRuntime,
        leg: &mut CallLeg,
        span: &tracing::Span,
    ) -> Option<super::recording::Recording> {
        let dir = &rt.config.recording.dir;
        let started =
            super::recording::start(dir, &self.tenant_id, &self.call_id, leg.codec_rate()).await;
        match started {
            Ok((tap, recording)) => {
                leg.record_to(tap);
                Some(recording)
            }
            Err(e) => {
                tracing::error!(parent: span, error = %e, dir = %dir.display(), "cannot record the call (recording.dir)");
                None
            }
        }
    }
}

/// Warm transfers when `call.transfer_mode = "warm"` and the SIP driver runs.
fn warm_transfer(rt: &CallRuntime) -> Option<super::bridge::WarmTransfer> {
    let call = &rt.config.call;
    if call.transfer_mode != "warm" {
        return None;
    }
    let Some(sip) = rt.sip.get() else {
        tracing::warn!("warm transfer configured but no SIP driver; transfers are blind");
        return None;
    };
    Some(super::bridge::WarmTransfer {
        sip: sip.clone(),
        trunk: call.transfer_trunk.clone(),
        ringing_timeout: (call.ringing_timeout_secs > 0)
            .then(|| Duration::from_secs(call.ringing_timeout_secs)),
    })
}

/// The moment the call's clock starts (the driver side reads the clock, not the core).
#[allow(clippy::disallowed_methods)]
fn answered_at() -> std::time::Instant {
    std::time::Instant::now()
}

/// The endpointer's settings from `[turn]`: the detector and the free-speech waits come from
/// the config; yes/no and digits keep the measured defaults of `audio::endpoint`.
fn endpoint_config(turn: &crate::config::TurnConfig) -> EndpointConfig {
    let free = ModeWaits::new(
        turn.complete_wait_ms,
        turn.end_silence_ms,
        turn.incomplete_wait_ms,
        turn.end_silence_ms,
    )
    // Without words, a short utterance is more often a beginning than a whole answer.
    .with_short_no_transcript(turn.end_silence_ms.max(1400));
    EndpointConfig::default()
        .with_detector(SpeechDetectorConfig::new(turn.min_speech_ms, turn.pause_ms))
        .with_waits(TurnMode::FreeSpeech, free)
        .with_limits(turn.complete_wait_ms.min(200), turn.max_wait_ms)
}
