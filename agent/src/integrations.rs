//! Integrations at the binary edge: the secrets keyring from `[security]`, the start-up check
//! that it opens what the database holds, the Zoho integration built from `[zoho]`, and the
//! background work `serve` runs for it (periodic sync, call write-back worker) plus the admin
//! API's connector.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use crm::zoho::{ClientSecret, DataCenter, SyncOptions, Zoho, ZohoError};
use store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vault::{EncryptionKey, Keyring};

use crate::config::Config;

/// A configuration problem found after loading: the command exits with 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadConfig(pub String);

/// The keyring from `security.*`; `None` when no key is configured.
pub fn keyring(cfg: &Config) -> Result<Option<Keyring>, BadConfig> {
    let sec = &cfg.security;
    if sec.encryption_key.is_empty() {
        return Ok(None);
    }
    let current = EncryptionKey::from_base64(sec.encryption_key.expose())
        .map_err(|e| BadConfig(format!("security.encryption_key: {e}")))?;
    let previous = sec
        .previous_encryption_keys
        .iter()
        .map(|k| EncryptionKey::from_base64(k.expose()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BadConfig(format!("security.previous_encryption_keys: {e}")))?;
    Ok(Some(Keyring::new(current, previous)))
}

/// Checks that the configured key opens every secret in the database (see
/// `crm::secrets::check_encryption_keys`); a mismatch is a [`BadConfig`].
pub async fn check_keys(cfg: &Config, store: &Store) -> anyhow::Result<Option<Keyring>> {
    let ring = keyring(cfg)?;
    match crm::secrets::check_encryption_keys(store, ring.as_ref()).await {
        Ok(()) => Ok(ring),
        Err(e) if e.is_config() => Err(BadConfig(e.to_string()).into()),
        Err(e) => Err(e.into()),
    }
}

/// The integration's settings from `[zoho]`.
pub fn zoho_config(cfg: &Config) -> Result<crm::zoho::ZohoConfig, BadConfig> {
    let z = &cfg.zoho;
    let mut out = crm::zoho::ZohoConfig::new(
        z.client_id.trim(),
        ClientSecret::new(z.client_secret.expose()),
        z.redirect_uri.trim(),
    );
    out.scopes = z.scopes.clone();
    out.books_organization_id = z.books_organization_id.trim().to_owned();
    out.default_currency = crm::money::parse_currency(&z.default_currency)
        .map_err(|e| BadConfig(format!("zoho.default_currency: {e}")))?;
    out.http_timeout = Duration::from_secs(z.http_timeout_secs.clamp(1, 100));
    for (dc, url) in &z.accounts_servers {
        let dc: DataCenter = dc
            .parse()
            .map_err(|e| BadConfig(format!("zoho.accounts_servers: {e}")))?;
        out.accounts_servers
            .insert(dc, url.trim_end_matches('/').to_owned());
    }
    Ok(out)
}

/// The Zoho integration, or a [`BadConfig`] naming what is missing.
pub async fn zoho(cfg: &Config, store: &Store) -> anyhow::Result<Zoho> {
    let Some(ring) = check_keys(cfg, store).await? else {
        return Err(BadConfig(
            "security.encryption_key is not set: Zoho tokens are stored encrypted with it \
             (e.g. AGENT__SECURITY__ENCRYPTION_KEY=$(openssl rand -base64 32))"
                .into(),
        )
        .into());
    };
    let phones = crm::PhoneNormalizer::new(&cfg.crm.default_region)
        .map_err(|e| BadConfig(format!("crm.default_region: {e}")))?;
    match Zoho::new(store.clone(), ring, zoho_config(cfg)?, phones) {
        Ok(z) => Ok(z),
        Err(ZohoError::NotConfigured { key }) => {
            Err(BadConfig(format!("{key} is empty (needed for the Zoho integration)")).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Who holds leases from this process: the node id plus the process id, so `agent zoho sync`
/// and `serve` on one host never share a lease.
pub fn lease_owner(cfg: &Config) -> String {
    format!("{}:{}", cfg.node_id(), std::process::id())
}

/// `serve`'s Zoho work: running tasks and the admin API's connector.
pub struct Background {
    tasks: Vec<JoinHandle<()>>,
    pub connector: Option<Arc<dyn admin::ZohoConnector>>,
}

impl Background {
    /// Stops the tasks (they also stop by themselves when `stop` turns true).
    pub fn abort(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Checks the encryption key (a mismatch stops `serve` with exit 2), ends runs this node
/// left unfinished, and, when Zoho is configured, starts the periodic sync and the write-back
/// worker.
pub async fn start(
    cfg: &Config,
    store: &Store,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Background> {
    let ring = check_keys(cfg, store).await?;
    let interrupted = store
        .fail_interrupted_zoho_sync_runs(&cfg.node_id(), crate::clock::now_ms())
        .await
        .context("ending interrupted zoho sync runs")?;
    if interrupted > 0 {
        tracing::warn!(interrupted, "zoho sync runs interrupted by a previous stop");
    }
    let mut background = Background {
        tasks: Vec::new(),
        connector: None,
    };
    if cfg.zoho.client_id.trim().is_empty() {
        return Ok(background);
    }
    if ring.is_none() {
        tracing::warn!("zoho.client_id is set but security.encryption_key is not: zoho is off");
        return Ok(background);
    }
    let zoho = zoho(cfg, store).await?;
    let owner = lease_owner(cfg);
    if cfg.zoho.sync_interval_secs > 0 {
        background.tasks.push(tokio::spawn(sync_loop(
            zoho.clone(),
            Duration::from_secs(cfg.zoho.sync_interval_secs),
            cfg.zoho.full_sync_interval_secs.saturating_mul(1000) as i64,
            owner.clone(),
            stop.clone(),
        )));
    }
    background.tasks.push(tokio::spawn(outbox_loop(
        zoho.clone(),
        Duration::from_millis(cfg.zoho.outbox_poll_ms.max(50)),
        owner,
        stop,
    )));
    background.connector = Some(Arc::new(Connector(zoho)));
    tracing::info!("zoho integration on: periodic sync and call write-back running");
    Ok(background)
}

/// Every `interval`, syncs each connected tenant (full when the last full run is older than
/// `full_every_ms`). Failures are logged and retried on the next tick; calls never wait for
/// this (they read the cache).
async fn sync_loop(
    zoho: Zoho,
    interval: Duration,
    full_every_ms: i64,
    owner: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let tenants = match zoho.store().connected_zoho_tenants().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "zoho sync: cannot list tenants");
                continue;
            }
        };
        for conn in tenants {
            let tenant = conn.tenant_id;
            let full = match last_full_sync(zoho.store(), &tenant).await {
                Some(at) => crate::clock::now_ms() - at > full_every_ms,
                None => false,
            };
            let options = SyncOptions {
                full,
                trigger: "schedule".into(),
                node: owner.clone(),
            };
            let run = zoho.sync(&tenant, &options, &|_| {});
            let result = tokio::select! {
                r = run => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            match result {
                Ok(_) => {}
                Err(ZohoError::SyncBusy { .. }) => {
                    tracing::debug!(tenant = %tenant, "zoho sync skipped: another node is syncing")
                }
                // Logged once by the token layer when it happens.
                Err(ZohoError::RefreshRevoked { .. } | ZohoError::Disconnected { .. }) => {}
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "zoho sync failed; retrying next interval")
                }
            }
        }
    }
}

async fn last_full_sync(store: &Store, tenant: &store::TenantId) -> Option<i64> {
    let runs = store.list_zoho_sync_runs(tenant, 50).await.ok()?;
    runs.iter()
        .filter(|r| r.full && r.status == store::SyncRunStatus::Succeeded)
        .map(|r| r.started_at)
        .max()
        // Never had a full run: the first incremental one lists everything anyway, so count
        // the oldest run as the reference.
        .or_else(|| runs.iter().map(|r| r.started_at).min())
}

/// Sends due call logs; sleeps `poll` when there is nothing to do.
async fn outbox_loop(zoho: Zoho, poll: Duration, owner: String, mut stop: watch::Receiver<bool>) {
    loop {
        let idle = match zoho.process_outbox(&owner, 20).await {
            Ok(pass) => pass.handled() == 0,
            Err(e) => {
                tracing::warn!(error = %e, "zoho write-back worker: store unavailable");
                true
            }
        };
        if idle {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        } else if *stop.borrow() {
            return;
        }
    }
}

/// The admin API's way to connect tenants.
struct Connector(Zoho);

fn connect_error(e: ZohoError) -> admin::ConnectError {
    let message = e.to_string();
    match e {
        ZohoError::BadState
        | ZohoError::UnknownAccountsServer { .. }
        | ZohoError::CodeRejected { .. } => admin::ConnectError::Invalid { message },
        ZohoError::NotConfigured { .. } | ZohoError::BadClient { .. } => {
            admin::ConnectError::NotConfigured { message }
        }
        _ => admin::ConnectError::Upstream { message },
    }
}

impl admin::ZohoConnector for Connector {
    fn start<'a>(
        &'a self,
        tenant_id: &'a store::TenantId,
        dc: &'a str,
    ) -> admin::ConnectFuture<'a, admin::ConnectStart> {
        Box::pin(async move {
            let dc: DataCenter = dc.parse().map_err(|e: crm::zoho::UnknownDataCenter| {
                admin::ConnectError::Invalid {
                    message: e.to_string(),
                }
            })?;
            let auth = self
                .0
                .start_authorization(tenant_id, dc)
                .await
                .map_err(connect_error)?;
            Ok(admin::ConnectStart {
                authorization_url: auth.url,
                state: auth.state,
                dc: auth.dc.to_string(),
                expires_at: auth.expires_at,
            })
        })
    }

    fn exchange<'a>(
        &'a self,
        tenant_id: &'a store::TenantId,
        code: &'a str,
        state: &'a str,
        accounts_server: Option<&'a str>,
    ) -> admin::ConnectFuture<'a, admin::ConnectDone> {
        Box::pin(async move {
            let done = self
                .0
                .complete_authorization(tenant_id, code, Some(state), accounts_server, None)
                .await
                .map_err(connect_error)?;
            Ok(admin::ConnectDone {
                dc: done.dc.to_string(),
                api_domain: done.api_domain,
            })
        })
    }
}
