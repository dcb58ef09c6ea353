//! Outbound calls: the trunk's allow-list is checked first (a refused number is never dialled),
//! the call is set up like an inbound one (tenant, flow, the customer looked up by the dialled
//! number, the call row), the INVITE goes out through the trunk, ringing and early media are
//! stored as events, a failure is stored as the call's end reason (`busy`, `no_answer`,
//! `rejected`, `unreachable`), and an answered call runs the same pipeline as an inbound one.
//!
//! [`run_outbound`] owns the call from the dial to the end, like `run_inbound`; a campaign runs
//! one per number it calls.

use std::time::Duration;

use serde_json::json;
use sip::driver::{DialEvent, DialRequest, SipHandle};
use store::CallDirection;
use tokio::sync::{mpsc, watch};

use super::{CallLeg, CallPlan, CallRequest, CallRuntime};
use crate::trunks::DestinationError;

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
}

impl OutboundError {
    /// The request itself is at fault (unknown trunk or flow, number not allow-listed), as
    /// opposed to the daemon's state.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Destination(_)
                | Self::UnknownFlow(_)
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
    let trunk = crate::trunks::check_destination(&rt.config, &req.trunk, &req.number)?;
    if let Some(flow) = &req.flow
        && rt.flows.get(flow).is_none()
    {
        return Err(OutboundError::UnknownFlow(flow.clone()));
    }
    // The same caller ID the driver puts in From (see `driver_trunk`).
    let from = [&trunk.from_number, &trunk.username]
        .into_iter()
        .find(|s| !s.is_empty())
        .map_or_else(|| "agent".to_owned(), |s| s.clone());
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
        transport: store::CallTransport::Sip,
    };
    let plan = CallPlan::prepare(&rt, request)
        .await
        .map_err(OutboundError::Setup)?;
    let call_id = plan.call_id.clone();
    let not_connected = |end_reason: store::EndReason, detail: String| OutboundResult {
        call_id: call_id.clone(),
        end_reason,
        answered: false,
        detail: Some(detail),
    };
    if let Err(e) = rt.engines.tts_available() {
        // Calling someone the agent cannot speak to would only annoy them.
        tracing::error!(error = %e, "not dialling: no speech synthesis");
        plan.abandon(store::EndReason::TtsUnavailable).await;
        return Ok(not_connected(
            store::EndReason::TtsUnavailable,
            e.to_string(),
        ));
    }
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
    report(&req.progress, OutboundProgress::Answered { codec });
    let outcome = plan.converse(&rt, leg, stop).await;
    Ok(OutboundResult {
        call_id,
        end_reason: outcome.end_reason,
        answered: true,
        detail: None,
    })
}

fn report(progress: &Option<mpsc::Sender<OutboundProgress>>, event: OutboundProgress) {
    if let Some(tx) = progress {
        let _ = tx.try_send(event);
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Why a call did not connect, in words, with the SIP status when there was one.
fn describe(reason: &sip::EndReason) -> String {
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
