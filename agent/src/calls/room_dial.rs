//! Outbound calls through LiveKit SIP: for a `[[livekit.outbound_trunks]]` trunk the daemon
//! asks the server to dial (`CreateSIPParticipant` into a new room, `wait_until_answered`), then
//! joins that room itself with a token it signs for it, and runs the call like any other
//! (same [`CallPlan`], core and driver, on a LiveKit [`CallLeg`]). The call stays with the
//! daemon that placed it — one owner per call — so `agent dial` and campaigns get their result
//! back as for a SIP trunk. A dial that fails carries its final SIP status (the twirp error's
//! `sip_status_code`), stored as the same end reasons (`busy`, `no_answer`, `rejected`, …).
//!
//! Hanging up, as for an inbound room call, deletes the room.

use std::sync::Arc;
use std::time::Duration;

use ::livekit::room::{self, RoomOptions};
use ::livekit::sip_api::{ApiError, Dial, ServerApi};
use ::livekit::token::{AccessToken, Credentials};
use serde_json::json;
use tokio::sync::watch;

use super::outbound::{
    OutboundError, OutboundProgress, OutboundRequest, OutboundResult, converse_answered, describe,
    not_connected, plan_call, refuse_without_voice, report, stopped,
};
use super::rooms::{JobError, ice_policy, wait_for_caller};
use super::transport::LiveKitRoom;
use super::{CallLeg, CallRuntime};
use crate::config::LiveKitTrunk;

/// Ringing limit when `call.ringing_timeout_secs` is 0 (LiveKit SIP's own default is 80 s).
const DEFAULT_RINGING: Duration = Duration::from_secs(60);

/// Places one call through LiveKit SIP and runs it to its end (see [`super::run_outbound`]).
pub(super) async fn run(
    rt: CallRuntime,
    trunk: &LiveKitTrunk,
    req: OutboundRequest,
    mut stop: watch::Receiver<bool>,
) -> Result<OutboundResult, OutboundError> {
    let cfg = rt.config.livekit.clone();
    if !cfg.enabled() || cfg.api_key.is_empty() || cfg.api_secret.is_empty() {
        return Err(OutboundError::LiveKitNotConfigured(trunk.name.clone()));
    }
    let from = match trunk.from_number.as_str() {
        "" => trunk.name.clone(),
        number => number.to_owned(),
    };
    let plan = plan_call(&rt, &req, from, store::CallTransport::LiveKit).await?;
    let plan = match refuse_without_voice(&rt, plan).await {
        Ok(plan) => plan,
        Err(refused) => return Ok(refused),
    };
    let call_id = plan.call_id.clone();
    let ringing = match rt.config.call.ringing_timeout_secs {
        0 => DEFAULT_RINGING,
        secs => Duration::from_secs(secs),
    };
    let credentials = Credentials::new(cfg.api_key.clone(), cfg.api_secret.expose());
    // The dial request lasts as long as the phone rings.
    let api = ServerApi::with_timeout(&cfg.url, credentials, ringing + Duration::from_secs(15))
        .map_err(|e| OutboundError::LiveKitNotConfigured(format!("{}: {e}", trunk.name)))?;
    let room_name = format!("call-{call_id}");
    let span = tracing::info_span!("call", call_id = %call_id, room = %room_name);
    tracing::info!(parent: &span, trunk = %trunk.trunk_id, "dialling through LiveKit SIP");
    plan.event(
        store::EventKind::Dialling,
        json!({
            "trunk": req.trunk,
            "target": req.number,
            "livekit_trunk": trunk.trunk_id,
            "room": room_name,
        }),
    );
    report(
        &req.progress,
        OutboundProgress::Dialling {
            call_id: call_id.clone(),
            sip_call_id: String::new(),
            target: req.number.clone(),
        },
    );
    let mut dial = Dial::new(&trunk.trunk_id, &req.number, &room_name);
    dial.from_number = trunk.from_number.clone();
    dial.ringing_timeout = Some(ringing);
    dial.wait_until_answered = true;
    let dialled = tokio::select! {
        dialled = api.create_sip_participant(dial) => dialled,
        () = stopped(&mut stop) => {
            // Deleting the room cancels the dial (and hangs up if it was answered meanwhile).
            tracing::info!(parent: &span, "cancelling the call: shutting down");
            let _ = api.delete_room(&room_name).await;
            plan.abandon(store::EndReason::DaemonShutdown).await;
            return Ok(not_connected(
                &call_id,
                store::EndReason::DaemonShutdown,
                "cancelled: shutting down".into(),
            ));
        }
    };
    let answered = match dialled {
        Ok(info) => info,
        Err(e) => {
            let (end_reason, detail, sip_status) = dial_failure(&e);
            tracing::info!(parent: &span, %end_reason, %detail, "call did not connect");
            plan.event(
                store::EventKind::NotConnected,
                json!({ "sip": sip_status, "detail": detail }),
            );
            plan.abandon(end_reason.clone()).await;
            return Ok(not_connected(&call_id, end_reason, detail));
        }
    };
    tracing::info!(parent: &span, sip_call_id = %answered.sip_call_id, "answered");

    // Join the room the callee is in, as the agent, with our own token for it.
    let identity = format!("agent-{call_id}");
    let token = AccessToken::for_room_join(&cfg.api_key, &identity, &room_name)
        .sign(cfg.api_secret.expose());
    let media_timeout = Duration::from_secs(cfg.media_timeout_secs.max(1));
    let joined = async {
        let options = RoomOptions::default().with_ice(ice_policy(&cfg));
        let mut session = room::join(&cfg.url, &token, options).await?;
        let callee = wait_for_caller(&mut session, media_timeout).await?;
        Ok::<_, JobError>((session, callee))
    };
    let media_failed = |detail: String| OutboundResult {
        answered: true,
        ..not_connected(&call_id, store::EndReason::MediaFailed, detail)
    };
    let (session, callee) = match joined.await {
        Ok(joined) => joined,
        Err(e) => {
            tracing::error!(parent: &span, error = %e, "cannot join the call's room");
            let _ = api.delete_room(&room_name).await;
            plan.abandon(store::EndReason::MediaFailed).await;
            return Ok(media_failed(e.to_string()));
        }
    };
    let leg = CallLeg::livekit(LiveKitRoom {
        session,
        api: Arc::new(api),
        room_name,
        participant: callee.identity.clone(),
    });
    let leg = match leg {
        Ok(leg) => leg,
        Err(e) => {
            tracing::error!(parent: &span, error = %e, "cannot run media");
            plan.abandon(store::EndReason::MediaFailed).await;
            return Ok(media_failed(e.to_string()));
        }
    };
    let codec = "opus".to_owned();
    Ok(converse_answered(rt, plan, leg, codec, &req.progress, stop).await)
}

/// A failed `CreateSIPParticipant` as a stored end reason, words, and the SIP status when the
/// server gave one: the same classes as a direct SIP call's final response.
fn dial_failure(e: &ApiError) -> (store::EndReason, String, Option<u16>) {
    if let Some((status, name)) = e.sip_status() {
        let rejected = sip::EndReason::RemoteRejected {
            status,
            reason: name.to_owned(),
        };
        let reason = rejected
            .failure_class()
            .map_or(store::EndReason::Rejected, |class| {
                store::EndReason::from_code(class.code())
            });
        return (reason, describe(&rejected), Some(status));
    }
    let reason = match e {
        ApiError::Twirp { code, .. } if code == "deadline_exceeded" => store::EndReason::NoAnswer,
        ApiError::Http { .. } | ApiError::Status { .. } => store::EndReason::Unreachable,
        _ => store::EndReason::DialFailed,
    };
    (reason, e.to_string(), None)
}
