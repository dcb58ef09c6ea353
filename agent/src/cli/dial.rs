//! `agent dial NUMBER --trunk T [--flow F]`: places one call from this process (its own SIP
//! driver on `sip.listen`, or LiveKit SIP for a `[[livekit.outbound_trunks]]` trunk), runs the
//! flow when answered, and prints how the call went.
//!
//! Exit codes: 0 answered, 1 not connected (busy, no answer, rejected, unreachable) or a
//! runtime failure, 2 refused before dialling (unknown trunk or flow, number not in the
//! trunk's `allowed_destinations`). SIGINT or SIGTERM cancels a ringing call or hangs up.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::{mpsc, watch};

use crate::calls::{OutboundError, OutboundProgress, OutboundRequest, run_outbound};
use crate::config::Config;
use crate::wiring;

#[derive(Debug, Args)]
pub struct DialArgs {
    /// Number or user to call; must match the trunk's allowed_destinations
    pub number: String,
    /// Trunk to call through (a [[trunks]] name)
    #[arg(long, value_name = "NAME")]
    pub trunk: String,
    /// Flow to run when the call is answered [default: flows.default]
    #[arg(long, value_name = "NAME")]
    pub flow: Option<String>,
    /// SIP UDP address, overriding `sip.listen`
    #[arg(long, value_name = "ADDR")]
    pub sip_listen: Option<String>,
}

/// The request was refused before anything was dialled; `agent` exits with 2.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Refused(#[from] pub OutboundError);

pub async fn run(args: DialArgs, cfg: &Config) -> anyhow::Result<()> {
    // Refuse before opening anything: nothing is stored or dialled for a number not allowed.
    crate::trunks::check_destination(cfg, &args.trunk, &args.number)
        .map_err(|e| Refused(e.into()))?;
    let store = super::open_store(cfg).await?;
    let cfg = Arc::new(cfg.clone());
    let runtime = wiring::call_runtime(cfg.clone(), store.clone())?;
    let (sip, mut inbound) = sip::driver::start(wiring::sip_driver_config(&cfg)?)
        .await
        .with_context(|| format!("sip.listen = {}", cfg.sip.listen))?;
    let _ = runtime.sip.set(sip.clone());
    // This process places one call; a trunk it registers with may still route calls here.
    let refuse_inbound = tokio::spawn(async move {
        while let Some(call) = inbound.recv().await {
            let _ = call.reject(486).await;
        }
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let (progress_tx, mut progress) = mpsc::channel(16);
    let request = OutboundRequest {
        tenant: None,
        vars: Default::default(),
        trunk: args.trunk.clone(),
        number: args.number.clone(),
        flow: args.flow.clone(),
        progress: Some(progress_tx),
    };
    let mut call = tokio::spawn(run_outbound(runtime, sip.clone(), request, stop_rx));
    let mut interrupted = false;
    let result = loop {
        tokio::select! {
            Some(step) = progress.recv() => print_progress(&step),
            result = &mut call => break result,
            () = crate::shutdown::signal(), if !interrupted => {
                interrupted = true;
                println!("hanging up");
                let _ = stop_tx.send(true);
            }
        }
    };
    while let Ok(step) = progress.try_recv() {
        print_progress(&step);
    }

    refuse_inbound.abort();
    if cfg.trunks.iter().any(|t| t.register) && !sip.unregister_all(Duration::from_secs(2)).await {
        tracing::warn!("some trunks did not confirm unregistration");
    }
    sip.shutdown().await;
    store.close().await;

    let result = match result.context("call task")? {
        Ok(result) => result,
        Err(e) if e.is_refusal() => return Err(Refused(e).into()),
        Err(e) => return Err(e.into()),
    };
    println!("call {} ended: {}", result.call_id, result.end_reason);
    if result.answered {
        return Ok(());
    }
    let why = result.detail.unwrap_or_default();
    anyhow::bail!(
        "{} did not connect: {} ({why})",
        args.number,
        result.end_reason
    )
}

fn print_progress(step: &OutboundProgress) {
    match step {
        OutboundProgress::Dialling {
            call_id,
            sip_call_id,
            target,
        } if sip_call_id.is_empty() => println!("call {call_id}: dialling {target}"),
        OutboundProgress::Dialling {
            call_id,
            sip_call_id,
            target,
        } => println!("call {call_id}: dialling {target} (Call-ID {sip_call_id})"),
        OutboundProgress::Ringing {
            status,
            early_media: true,
        } => println!("progress {status} with early media"),
        OutboundProgress::Ringing { status: 180, .. } => println!("ringing"),
        OutboundProgress::Ringing { status, .. } => println!("progress {status}"),
        OutboundProgress::Answered { codec } => println!("answered ({codec})"),
    }
}
