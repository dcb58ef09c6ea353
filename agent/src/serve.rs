//! `agent serve`: the daemon's main job.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::calls::{CallManager, RoomCalls};
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

    let (stop_tx, stop_rx) = watch::channel(false);
    // Zoho (issue 10): the encryption key must open the stored secrets (else exit 2), then the
    // periodic sync and the call write-back worker run until shutdown.
    let integrations = crate::integrations::start(&cfg, &store, stop_rx.clone()).await?;

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
    let _ = runtime.sip.set(sip.clone());
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

    let mut state = admin::AppState::new(store.clone(), metrics)
        .with_trunks(crate::trunks::directory(&sip))
        // billing (issue 11): plans, prices, Dodo; flow names checked for numbers.
        .with_billing(crate::billing::admin_context(&cfg)?)
        .with_flows(Arc::new(FlowNames(runtime.flows.clone())))
        .with_campaigns(crate::campaigns::admin_support(
            &cfg,
            runtime.flows.clone(),
        )?);
    if let Some(zoho) = integrations.connector.clone() {
        state = state.with_zoho(zoho);
    }
    let app = admin::router(state);
    // billing (issue 11): analytics/cost folding, mail outbox, daily summaries and notices.
    let billing_tasks = crate::billing::spawn_tasks(&cfg, &store, &stop_rx)?;
    let mut http = tokio::spawn(admin::serve(listener, app, wait_for(stop_rx.clone())));
    let manager = CallManager::new(runtime.clone());
    // LiveKit (issue 9): rooms LiveKit SIP bridged calls into, as an agent worker; the same
    // call count and the same drain on shutdown as direct SIP calls.
    let rooms = RoomCalls::start(&runtime, manager.active_counter())?
        .map(|rooms| tokio::spawn(rooms.run(stop_rx.clone(), grace)));
    let mut calls = tokio::spawn(manager.run(sip.clone(), inbound, stop_rx.clone(), grace));
    let stats = tokio::spawn(wiring::export_sip_stats(sip.clone(), stop_rx.clone()));
    let trunk_metrics = tokio::spawn(crate::trunks::export_metrics(sip.clone(), stop_rx.clone()));
    let recordings_sweep = tokio::spawn(sweep_recordings(
        store.clone(),
        cfg.recording.clone(),
        stop_rx.clone(),
    ));

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
    // No new calls at all (new INVITEs get 503); then inbound calls and campaign calls in
    // progress finish side by side within the grace period (or are hung up after it), while
    // the SIP driver still runs; it stops only once both are done.
    sip.stop_accepting().await;
    let _ = campaigns_stop.send(true);
    let _ = stop_tx.send(true);
    let deadline = grace + Duration::from_secs(6);
    // Each waits up to the grace period, then hangs up what is left; the margins let them.
    tokio::join!(
        finish_within(
            campaigns,
            deadline + Duration::from_secs(9),
            "campaign calls"
        ),
        finish_within(Some(calls), deadline, "calls"),
        finish_within(rooms, deadline + Duration::from_secs(3), "LiveKit calls"),
    );
    sip.shutdown().await;
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
    recordings_sweep.abort();
    integrations.abort();
    for task in billing_tasks {
        // They stop on stop_rx; a send or fold in flight is safe to cut (leases, revisions).
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Deletes recordings past `recording.retention_days`, at start and every
/// `recording.sweep_interval_secs`, until shutdown.
async fn sweep_recordings(
    store: store::Store,
    cfg: crate::config::RecordingConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(Duration::from_secs(cfg.sweep_interval_secs.max(1)));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let deleted =
            crate::calls::recording::sweep(&store, cfg.retention_days, crate::clock::now_ms())
                .await;
        if deleted > 0 {
            tracing::info!(
                deleted,
                retention_days = cfg.retention_days,
                "deleted old recordings"
            );
        }
    }
}

/// The flow registry as the admin API sees it (names only).
struct FlowNames(Arc<dialogs::FlowRegistry>);

impl admin::FlowCatalog for FlowNames {
    fn has_flow(&self, name: &str) -> bool {
        self.0.get(name).is_some()
    }
    fn flow_names(&self) -> Vec<String> {
        self.0.names()
    }
}

/// Waits for a draining task for up to `limit`, then aborts it.
async fn finish_within(task: Option<tokio::task::JoinHandle<()>>, limit: Duration, what: &str) {
    if let Some(mut task) = task
        && tokio::time::timeout(limit, &mut task).await.is_err()
    {
        tracing::warn!("{what} did not finish in time");
        task.abort();
    }
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
