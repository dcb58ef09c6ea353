//! `agent serve`: the daemon's main job.

use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;

/// Runs until SIGTERM/SIGINT, then drains in-flight work for up to `shutdown.grace_secs`.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let store = crate::cli::open_store(&cfg).await?;
    let node = cfg.node_id();
    let now = crate::clock::now_ms();
    let orphaned = store.end_orphaned_calls(&node, now, "daemon_restart").await?;
    if orphaned > 0 {
        tracing::warn!(orphaned, "ended calls left unfinished by a previous run");
    }
    store.ensure_tenant(&cfg.call.default_tenant, now).await?;

    let metrics = admin::metrics::install();
    let listener = TcpListener::bind(cfg.admin.listen)
        .await
        .with_context(|| format!("cannot listen on admin.listen = {}", cfg.admin.listen))?;
    tracing::info!(addr = %cfg.admin.listen, database = %cfg.database.url, node, "admin API listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let app = admin::router(admin::AppState::new(store.clone(), metrics));
    let mut http = tokio::spawn(admin::serve(listener, app, wait_for(stop_rx.clone())));

    tokio::select! {
        () = crate::shutdown::signal() => {}
        res = &mut http => {
            // The server should only stop when told to.
            res.context("admin server task")?.context("admin server")?;
            anyhow::bail!("admin server stopped unexpectedly");
        }
    }
    let grace = Duration::from_secs(cfg.shutdown.grace_secs);
    tracing::info!(grace_secs = cfg.shutdown.grace_secs, "shutting down: no new work, finishing in-flight");
    let _ = stop_tx.send(true);
    match tokio::time::timeout(grace, &mut http).await {
        Ok(res) => res.context("admin server task")?.context("admin server")?,
        Err(_) => {
            tracing::warn!("grace period over; abandoning in-flight requests");
            http.abort();
        }
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
