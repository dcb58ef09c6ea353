//! Outbound calls: the trunk's allow-list is checked first (a refused number is never dialled),
//! the call is set up like an inbound one (tenant, flow, the customer looked up by the dialled
//! number, the call row), the INVITE goes out through the trunk, ringing and early media are
//! stored as events, a failure is stored as the call's end reason (`busy`, `no_answer`,
//! `rejected`, `unreachable`), and an answered call runs the same pipeline as an inbound one.
//!
//! [`run_outbound`] owns the call from the dial to the end, like `run_inbound`; a campaign runs
//! one per number it calls. A `[[livekit.outbound_trunks]]` trunk takes the same steps through
//! LiveKit SIP instead (`room_dial`): same plan, same end reasons, `transport = livekit`.

use std::time::Duration;

use serde_json::json;
use sip::driver::{DialEvent, DialRequest, SipHandle};
use store::CallDirection;
use tokio::sync::{mpsc, watch};

use super::{CallLeg, CallPlan, CallRequest, CallRuntime};
use crate::trunks::{DestinationError, Route};

/// What to call.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// A `[[trunks]]` name.
    pub trunk: String,
    /// The number (or user) to call; it must match the trunk's `allowed_destinations`.
    pub number: String,
    /// The tenant the call is for (a campaign's); `None`: `call.default_tenant`.
    pub tenant: Option<store::TenantId>,
    /// Extra template variables for the flow (a campaign contact's columns).
    pub vars: std::collections::BTreeMap<String, String>,
    /// Flow to run once answered; `None`: `flows.default`.
    pub flow: Option<String>,
    /// Where to report the call's progress (optional; full queues drop reports).
    pub progress: Option<mpsc::Sender<OutboundProgress>>,
}

/// How an outbound call is getting on, for whoever placed it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutboundProgress {
    /// The INVITE went out.
    Dialling {
        call_id: store::CallId,
        sip_call_id: String,
        target: String,
    },
    /// A provisional response (180 ringing, 183 progress), with or without early media.
    Ringing { status: u16, early_media: bool },
    /// The callee answered; the conversation runs.
    Answered { codec: String },
}

/// How an outbound call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResult {
    pub call_id: store::CallId,
    /// The stored end reason: `busy`, `no_answer`, `rejected`, `unreachable` when the call
    /// did not connect, otherwise the conversation's (see ARCHITECTURE.md, end reasons).
    pub end_reason: store::EndReason,
    /// The callee picked up.
    pub answered: bool,
    /// Why the call did not connect, e.g. `486 Busy Here`.
    pub detail: Option<String>,
}

/// Why a call was not placed (nothing was dialled).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    #[error(transparent)]
    Destination(#[from] DestinationError),
    #[error("flow {0:?} is not loaded")]
    UnknownFlow(String),
    #[error("cannot set the call up: {0}")]
    Setup(#[from] super::SetupError),
    /// A `[[livekit.outbound_trunks]]` trunk without `[livekit]` url, key and secret.
    #[error(
        "trunk {0:?} dials through LiveKit, but livekit.url, api_key and api_secret are not all set"
    )]
    LiveKitNotConfigured(String),
}

impl OutboundError {
    /// The request itself is at fault (unknown trunk or flow, number not allow-listed), as
    /// opposed to the daemon's state.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Destination(_)
                | Self::UnknownFlow(_)
                | Self::LiveKitNotConfigured(_)
                | Self::Setup(super::SetupError::Plan(_) | super::SetupError::UnknownFlow(_))
        )
    }
}

/// Places one call and runs it to its end. `stop` cancels a ringing call and ends a
/// connected one (`daemon_shutdown`).
pub async fn run_outbound(
    rt: CallRuntime,
    sip: SipHandle,
    req: OutboundRequest,
    mut stop: watch::Receiver<bool>,
) -> Result<OutboundResult, OutboundError> {
    let trunk = match crate::trunks::check_destination(&rt.config, &req.trunk, &req.number)? {
        Route::Sip(trunk) => trunk,
        Route::LiveKit(trunk) => {
            let trunk = trunk.clone();
            return super::room_dial::run(rt, &trunk, req, stop).await;
        }
    };
    // The same caller ID the driver puts in From (see `driver_trunk`).
    let from = [&trunk.from_number, &trunk.username]
        .into_iter()
        .find(|s| !s.is_empty())
        .map_or_else(|| "agent".to_owned(), |s| s.clone());
    let plan = plan_call(&rt, &req, from, store::CallTransport::Sip).await?;
    let plan = match refuse_without_voice(&rt, plan).await {
        Ok(plan) => plan,
        Err(refused) => return Ok(refused),
    };
    let call_id = plan.call_id.clone();
    let not_connected = |end_reason, detail| not_connected(&call_id, end_reason, detail);
    let ringing_timeout = rt.config.call.ringing_timeout_secs;
    let dial = DialRequest {
        trunk: Some(req.trunk.clone()),
        target: req.number.clone(),
        ringing_timeout: (ringing_timeout > 0).then(|| Duration::from_secs(ringing_timeout)),
        ..DialRequest::default()
    };
    let mut call = match sip.dial(dial).await {
        Ok(call) => call,
        Err(e) => {
            let reason = match e {
                sip::driver::DriverError::Resolve { .. } => store::EndReason::Unreachable,
                _ => store::EndReason::DialFailed,
            };
            tracing::warn!(error = %e, %reason, "cannot dial");
            plan.event(
                store::EventKind::DialFailed,
                json!({ "error": e.to_string() }),
            );
            plan.abandon(reason.clone()).await;
            return Ok(not_connected(reason, e.to_string()));
        }
    };
    let span = tracing::info_span!("call", call_id = %call_id, sip_call_id = %call.sip_call_id);
    tracing::info!(parent: &span, target = %call.target, via = %call.destination, "dialling");
    plan.event(
        store::EventKind::Dialling,
        json!({
            "trunk": req.trunk,
            "target": call.target.to_string(),
            "sip_call_id": call.sip_call_id,
        }),
    );
    report(
        &req.progress,
        OutboundProgress::Dialling {
            call_id: call_id.clone(),
            sip_call_id: call.sip_call_id.clone(),
            target: call.target.to_string(),
        },
    );
    let mut cancelled = false;
    let media = loop {
        let event = tokio::select! {
            event = call.next() => event,
            () = stopped(&mut stop), if !cancelled => {
                cancelled = true;
                tracing::info!(parent: &span, "cancelling the call: shutting down");
                let _ = call.cancel().await;
                continue;
            }
        };
        match event {
            DialEvent::Progress {
                status,
                early_media,
            } => {
                let kind = match (early_media, status) {
                    (true, _) => store::EventKind::EarlyMedia,
                    (false, 180) => store::EventKind::Ringing,
                    _ => store::EventKind::Progress,
                };
                plan.event(kind, json!({ "status": status }));
                report(
                    &req.progress,
                    OutboundProgress::Ringing {
                        status,
                        early_media,
                    },
                );
            }
            DialEvent::Answered(media) => break media,
            DialEvent::Ended(reason) => {
                let end_reason = match reason.failure_class() {
                    Some(class) => store::EndReason::from_code(class.code()),
                    None if cancelled => store::EndReason::DaemonShutdown,
                    None => super::transport::sip_end_reason(&reason),
                };
                let detail = describe(&reason);
                tracing::info!(parent: &span, %end_reason, %detail, "call did not connect");
                plan.event(
                    store::EventKind::NotConnected,
                    json!({ "sip": reason.code(), "detail": detail }),
                );
                plan.abandon(end_reason.clone()).await;
                return Ok(not_connected(end_reason, detail));
            }
            _ => {}
        }
    };
    let codec = media.negotiated().codec.name.clone();
    let control = call.control();
    let peer_domain = super::sip_domain(&call.target);
    let signals = call.into_signals();
    let leg = match CallLeg::sip(media, signals, control.clone(), peer_domain) {
        Ok(leg) => leg,
        Err(e) => {
            tracing::error!(parent: &span, error = %e, "cannot run media");
            let _ = control.hangup().await;
            plan.abandon(store::EndReason::MediaFailed).await;
            return Ok(OutboundResult {
                answered: true,
                ..not_connected(store::EndReason::MediaFailed, e.to_string())
            });
        }
    };
    Ok(converse_answered(rt, plan, leg, codec, &req.progress, stop).await)
}

/// The callee answered: reports it, runs the conversation to its end, and says how it ended.
pub(super) async fn converse_answered(
    rt: CallRuntime,
    plan: CallPlan,
    leg: CallLeg,
    codec: String,
    progress: &Option<mpsc::Sender<OutboundProgress>>,
    stop: watch::Receiver<bool>,
) -> OutboundResult {
    report(progress, OutboundProgress::Answered { codec });
    let call_id = plan.call_id.clone();
    let outcome = plan.converse(&rt, leg, stop).await;
    OutboundResult {
        call_id,
        end_reason: outcome.end_reason,
        answered: true,
        detail: None,
    }
}

/// Sets an outbound call up (tenant, flow, the callee looked up by number, the call row).
pub(super) async fn plan_call(
    rt: &CallRuntime,
    req: &OutboundRequest,
    from: String,
    transport: store::CallTransport,
) -> Result<CallPlan, OutboundError> {
    if let Some(flow) = &req.flow
        && rt.flows.get(flow).is_none()
    {
        return Err(OutboundError::UnknownFlow(flow.clone()));
    }
    let request = CallRequest {
        direction: CallDirection::Outbound,
        from,
        to: req.number.clone(),
        caller: req.number.clone(),
        // We dialled this number ourselves: whoever answers is on the line we reached.
        caller_id_trusted: true,
        sip_call_id: None,
        tenant: req.tenant.clone(),
        vars: req.vars.clone(),
        flow: req.flow.clone(),
        transport,
    };
    CallPlan::prepare(rt, request)
        .await
        .map_err(OutboundError::Setup)
}

/// Calling someone the agent cannot speak to would only annoy them: without a voice the call
/// is stored as `tts_unavailable` and not dialled.
pub(super) async fn refuse_without_voice(
    rt: &CallRuntime,
    plan: CallPlan,
) -> Result<CallPlan, OutboundResult> {
    let Err(e) = rt.engines.tts_available() else {
        return Ok(plan);
    };
    tracing::error!(error = %e, "not dialling: no speech synthesis");
    let call_id = plan.call_id.clone();
    plan.abandon(store::EndReason::TtsUnavailable).await;
    Err(not_connected(
        &call_id,
        store::EndReason::TtsUnavailable,
        e.to_string(),
    ))
}

/// The result of a call that did not connect.
pub(super) fn not_connected(
    call_id: &store::CallId,
    end_reason: store::EndReason,
    detail: String,
) -> OutboundResult {
    OutboundResult {
        call_id: call_id.clone(),
        end_reason,
        answered: false,
        detail: Some(detail),
    }
}

pub(super) fn report(progress: &Option<mpsc::Sender<OutboundProgress>>, event: OutboundProgress) {
    if let Some(tx) = progress {
        let _ = tx.try_send(event);
    }
}

pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Why a call did not connect, in words, with the SIP status when there was one.
pub(super) fn describe(reason: &sip::EndReason) -> String {
    match reason {
        sip::EndReason::RemoteRejected { status, reason } if reason.is_empty() => {
            format!("{status}")
        }
        sip::EndReason::RemoteRejected { status, reason } => format!("{status} {reason}"),
        sip::EndReason::RingTimeout => "not answered within call.ringing_timeout_secs".into(),
        sip::EndReason::Timeout => "no response to the INVITE".into(),
        sip::EndReason::TransportError => "the trunk is unreachable".into(),
        sip::EndReason::AuthFailed { status } => {
            format!("{status}: the trunk refused our credentials")
        }
        other => other.code().replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_described_with_their_status() {
        let busy = sip::EndReason::RemoteRejected {
            status: 486,
            reason: "Busy Here".into(),
        };
        assert_eq!(describe(&busy), "486 Busy Here");
        let bare = sip::EndReason::RemoteRejected {
            status: 404,
            reason: String::new(),
        };
        assert_eq!(describe(&bare), "404");
        assert!(describe(&sip::EndReason::AuthFailed { status: 407 }).starts_with("407"));
        assert_eq!(describe(&sip::EndReason::LocalCancel), "local cancel");
    }
}
