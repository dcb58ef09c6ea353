//! `agent serve`: the daemon's main job.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::calls::CallManager;
use crate::config::Config;
use crate::wiring;

/// Runs until SIGTERM/SIGINT, then drains in-flight work for up to `shutdown.grace_secs`.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let store = crate::cli::open_store(&cfg).await?;
    let node = cfg.node_id();
    let now = crate::clock::now_ms();
    let orphaned = store
        .end_orphaned_calls(&node, now, &store::EndReason::DaemonRestart)
        .await?;
    if orphaned > 0 {
        tracing::warn!(orphaned, "ended calls left unfinished by a previous run");
    }

    let cfg = Arc::new(cfg);
    let runtime = wiring::call_runtime(cfg.clone(), store.clone())?;
    let _flow_watch = runtime.flows.watch(Duration::from_secs(2));

    let metrics = admin::metrics::install();
    let listener = TcpListener::bind(cfg.admin.listen)
        .await
        .with_context(|| format!("cannot listen on admin.listen = {}", cfg.admin.listen))?;
    let (sip, inbound) = sip::driver::start(wiring::sip_driver_config(&cfg)?)
        .await
        .with_context(|| format!("sip.listen = {}", cfg.sip.listen))?;
    tracing::info!(
        admin = %cfg.admin.listen,
        sip = %sip.local_addr(),
        database = %cfg.database.url,
        node,
        "agent ready"
    );

    let grace = Duration::from_secs(cfg.shutdown.grace_secs);
    // Campaigns: this daemon's share of the outbound work (`campaigns::runner`). It has its own
    // stop signal because it must be drained before the call manager shuts the SIP driver down.
    let (campaigns_stop, campaigns_stop_rx) = watch::channel(false);
    let campaigns = crate::campaigns::runner_for(&cfg, runtime.clone(), sip.clone())?
        .map(|runner| tokio::spawn(runner.run(campaigns_stop_rx, grace)));

    let (stop_tx, stop_rx) = watch::channel(false);
    let app = admin::router(
        admin::AppState::new(store.clone(), metrics)
            .with_trunks(crate::trunks::directory(&sip))
            .with_campaigns(crate::campaigns::admin_support(
                &cfg,
                runtime.flows.clone(),
            )?),
    );
    let mut http = tokio::spawn(admin::serve(listener, app, wait_for(stop_rx.clone())));
    let mut calls =
        tokio::spawn(CallManager::new(runtime).run(sip.clone(), inbound, stop_rx.clone(), grace));
    let stats = tokio::spawn(wiring::export_sip_stats(sip.clone(), stop_rx.clone()));
    let trunk_metrics = tokio::spawn(crate::trunks::export_metrics(sip.clone(), stop_rx.clone()));

    tokio::select! {
        () = crate::shutdown::signal() => {}
        res = &mut http => {
            res.context("admin server task")?.context("admin server")?;
            anyhow::bail!("admin server stopped unexpectedly");
        }
        res = &mut calls => {
            res.context("call manager task")?;
            anyhow::bail!("SIP driver stopped unexpectedly");
        }
    }
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: no new calls, finishing in-flight work"
    );
    if let Some(mut campaigns) = campaigns {
        // No new calls at all (new INVITEs get 503), then the campaign calls in progress
        // finish (or are hung up after the grace period) while the SIP driver still runs.
        sip.stop_accepting().await;
        let _ = campaigns_stop.send(true);
        if tokio::time::timeout(grace + Duration::from_secs(15), &mut campaigns)
            .await
            .is_err()
        {
            tracing::warn!("campaign calls did not finish in time");
            campaigns.abort();
        }
    }
    let _ = stop_tx.send(true);
    // The call manager waits up to the grace period, then hangs up what is left.
    let deadline = grace + Duration::from_secs(6);
    if tokio::time::timeout(deadline, &mut calls).await.is_err() {
        tracing::warn!("calls did not finish in time");
        calls.abort();
    }
    // Registrars keep routing calls to us until the binding expires; remove it now.
    if !sip.unregister_all(Duration::from_secs(2)).await {
        tracing::warn!("some trunks did not confirm unregistration");
    }
    match tokio::time::timeout(Duration::from_secs(2), &mut http).await {
        Ok(res) => res.context("admin server task")?.context("admin server")?,
        Err(_) => http.abort(),
    }
    stats.abort();
    trunk_metrics.abort();
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
