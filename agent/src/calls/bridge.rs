//! Warm transfer: the daemon calls the transfer target itself (through `call.transfer_trunk`),
//! tells whoever answers who is calling (the core's brief, synthesised), and then bridges the
//! caller's leg and the target's leg — each hears the other's audio, relayed as 16 kHz frames
//! ([`CallLeg::relay`]) — until either hangs up. If the target does not answer, declines, or
//! hangs up during the brief, the core hears `TransferProgress::Failed` and takes the caller
//! back to the flow, as after a failed blind transfer.

use std::time::Duration;

use sip::driver::{DialEvent, DialRequest, SipHandle};
use tokio::sync::watch;

use super::core::PlaybackReport;
use super::leg::{CallLeg, LegEvent};
use super::speech::SpeechEngines;

/// What a warm transfer needs from the daemon.
#[derive(Clone)]
pub struct WarmTransfer {
    pub sip: SipHandle,
    /// The `[[trunks]]` name to dial through.
    pub trunk: String,
    pub ringing_timeout: Option<Duration>,
}

/// Why the consult call did not reach a person ready to take the caller: the final SIP status
/// when there was one (`None`: no answer in time, or the call dropped).
pub type ConsultFailed = Option<u16>;

/// Calls `to`, plays `brief` once answered, and returns the answered leg once it has been
/// heard.
pub async fn consult(
    warm: WarmTransfer,
    engines: SpeechEngines,
    to: String,
    brief: String,
) -> Result<CallLeg, ConsultFailed> {
    let dial = DialRequest {
        trunk: Some(warm.trunk.clone()),
        target: to.clone(),
        ringing_timeout: warm.ringing_timeout,
        ..DialRequest::default()
    };
    let mut call = warm.sip.dial(dial).await.map_err(|e| {
        tracing::warn!(error = %e, %to, "cannot dial the transfer target");
        None
    })?;
    // Synthesis runs while it rings.
    let speech = tokio::spawn({
        let engines = engines.clone();
        async move { engines.synthesize(brief).await }
    });
    let media = loop {
        match call.next().await {
            DialEvent::Answered(media) => break media,
            DialEvent::Ended(reason) => {
                tracing::info!(%to, reason = %reason.code(), "the transfer target did not answer");
                speech.abort();
                return Err(match reason {
                    sip::EndReason::RemoteRejected { status, .. } => Some(status),
                    _ => None,
                });
            }
            _ => {}
        }
    };
    let control = call.control();
    let domain = super::sip_domain(&call.target);
    let signals = call.into_signals();
    let mut leg = match CallLeg::sip(media, signals, control.clone(), domain) {
        Ok(leg) => leg,
        Err(e) => {
            tracing::error!(error = %e, "cannot run the consult call's media");
            let _ = control.hangup().await;
            return Err(None);
        }
    };
    let pcm = match speech.await {
        Ok(Ok(pcm)) => pcm,
        _ => {
            tracing::error!("cannot synthesise the transfer brief");
            leg.hangup().await;
            return Err(None);
        }
    };
    const BRIEF: u64 = 1;
    if leg
        .play(BRIEF, &pcm.samples, pcm.sample_rate, None)
        .is_err()
    {
        leg.hangup().await;
        return Err(None);
    }
    loop {
        match leg.next().await {
            LegEvent::Playback(PlaybackReport::Idle { item: BRIEF }) => return Ok(leg),
            LegEvent::Hangup { .. } => return Err(None),
            _ => {}
        }
    }
}

/// Which side ended a bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeEnd {
    Caller,
    Target,
    Shutdown,
}

/// Relays audio both ways until one side hangs up (or the daemon stops), then hangs up the
/// other.
pub async fn run(
    caller: &mut CallLeg,
    target: &mut CallLeg,
    stop: &mut watch::Receiver<bool>,
) -> BridgeEnd {
    let end = loop {
        tokio::select! {
            event = caller.next() => match event {
                LegEvent::Audio { pcm, .. } => {
                    let _ = target.relay(&pcm);
                }
                LegEvent::Hangup { .. } => break BridgeEnd::Caller,
                _ => {}
            },
            event = target.next() => match event {
                LegEvent::Audio { pcm, .. } => {
                    let _ = caller.relay(&pcm);
                }
                LegEvent::Hangup { .. } => break BridgeEnd::Target,
                _ => {}
            },
            _ = stop.wait_for(|s| *s) => break BridgeEnd::Shutdown,
        }
    };
    match end {
        BridgeEnd::Caller => target.hangup().await,
        BridgeEnd::Target => caller.hangup().await,
        BridgeEnd::Shutdown => {
            caller.hangup().await;
            target.hangup().await;
        }
    }
    end
}
