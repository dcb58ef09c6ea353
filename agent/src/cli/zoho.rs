//! `agent zoho …`: connect a tenant to Zoho CRM/Books, sync it, show its state.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use crm::zoho::{DataCenter, SyncOptions, SyncProgress};

use super::open_store;
use crate::config::Config;
use crate::integrations::{BadConfig, lease_owner};

#[derive(Debug, Subcommand)]
pub enum ZohoCommand {
    /// Connect a tenant to Zoho.
    ///
    /// Step 1, `--dc DC`: prints the authorization URL to open (Zoho asks the user to
    /// consent, then redirects to zoho.redirect_uri with ?code=…&location=…&accounts-server=…).
    /// Step 2, `--code CODE [--accounts-server URL]`: exchanges the code; the tokens are stored
    /// encrypted (security.encryption_key). Data centres: us eu in au jp ca sa uk cn.
    #[command(verbatim_doc_comment)]
    Connect {
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// Data centre of the Zoho account (step 1; with --code: where to exchange it when the
        /// redirect named no accounts server)
        #[arg(long, value_name = "DC")]
        dc: Option<String>,
        /// The `code` from the redirect (step 2)
        #[arg(long)]
        code: Option<String>,
        /// The redirect's `accounts-server` (must be a Zoho accounts server)
        #[arg(long, value_name = "URL", requires = "code")]
        accounts_server: Option<String>,
    },
    /// Sync the tenant's customers and invoices from Zoho now (progress on stderr)
    Sync {
        /// Tenant name
        #[arg(long)]
        tenant: String,
        /// List everything and remove what Zoho no longer has (default: changes since the
        /// last sync)
        #[arg(long)]
        full: bool,
    },
    /// Show the tenant's Zoho connection, recent syncs and write-back queue (never tokens)
    Status {
        /// Tenant name
        #[arg(long)]
        tenant: String,
    },
}

pub(super) async fn run(cmd: ZohoCommand, cfg: &Config) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    let result = match cmd {
        ZohoCommand::Connect {
            tenant,
            dc,
            code,
            accounts_server,
        } => connect(cfg, &store, &tenant, dc, code, accounts_server).await,
        ZohoCommand::Sync { tenant, full } => sync(cfg, &store, &tenant, full).await,
        ZohoCommand::Status { tenant } => status(&store, &tenant).await,
    };
    store.close().await;
    result
}

async fn tenant_id(store: &store::Store, name: &str) -> anyhow::Result<store::TenantId> {
    Ok(store
        .tenant_by_name(name)
        .await?
        .with_context(|| {
            format!("no tenant named {name:?} (create it with `agent tenants create`)")
        })?
        .id)
}

fn parse_dc(dc: &str) -> anyhow::Result<DataCenter> {
    dc.parse()
        .map_err(|e: crm::zoho::UnknownDataCenter| BadConfig(format!("--dc: {e}")).into())
}

async fn connect(
    cfg: &Config,
    store: &store::Store,
    tenant: &str,
    dc: Option<String>,
    code: Option<String>,
    accounts_server: Option<String>,
) -> anyhow::Result<()> {
    let tenant_id = tenant_id(store, tenant).await?;
    let zoho = crate::integrations::zoho(cfg, store).await?;
    let dc = dc.as_deref().map(parse_dc).transpose()?;
    match (code, dc) {
        (None, None) => Err(BadConfig(
            "give --dc DC to start connecting, or --code CODE to finish".into(),
        )
        .into()),
        (None, Some(dc)) => {
            let auth = zoho.start_authorization(&tenant_id, dc).await?;
            println!("Open this URL, sign in to Zoho ({dc}) and allow access:");
            println!("{}", auth.url);
            println!(
                "Then run: agent zoho connect --tenant {tenant} --code CODE --accounts-server URL"
            );
            println!("(CODE and URL are the `code` and `accounts-server` of the redirect.)");
            Ok(())
        }
        (Some(code), dc) => {
            let done = zoho
                .complete_authorization(&tenant_id, &code, None, accounts_server.as_deref(), dc)
                .await
                .context("exchanging the authorization code")?;
            println!(
                "connected tenant {tenant} to Zoho {} (api {}); tokens stored encrypted",
                done.dc, done.api_domain
            );
            Ok(())
        }
    }
}

async fn sync(cfg: &Config, store: &store::Store, tenant: &str, full: bool) -> anyhow::Result<()> {
    let tenant_id = tenant_id(store, tenant).await?;
    let zoho = crate::integrations::zoho(cfg, store).await?;
    let options = SyncOptions {
        full,
        trigger: "cli".into(),
        node: lease_owner(cfg),
    };
    let tty = std::io::stderr().is_terminal();
    let last_line = Mutex::new(Instant::now());
    let progress = |p: &SyncProgress| {
        let line = format!(
            "{:<22} {:>5} pages {:>8} records {:>8.0} records/s",
            p.stream,
            p.pages,
            p.records,
            p.rate()
        );
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r{line}");
        } else {
            // Not a terminal: a line a second at most.
            let mut last = last_line.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed().as_millis() >= 1000 {
                *last = Instant::now();
                let _ = writeln!(err, "{line}");
            }
        }
    };
    let report = zoho.sync(&tenant_id, &options, &progress).await;
    if tty {
        eprintln!();
    }
    let report = report.context(
        "zoho sync failed (the run is stored; the cache is unchanged beyond the pages applied)",
    )?;
    let secs = report.elapsed_ms as f64 / 1000.0;
    println!(
        "{} sync of {tenant}: {} records in {:.1} s ({:.0} records/s), {} pages, {} skipped without a phone",
        if report.full { "full" } else { "incremental" },
        report.records(),
        secs,
        report.records() as f64 / secs.max(0.001),
        report.pages(),
        report.skipped_no_phone()
    );
    for (stream, c) in &report.streams {
        println!(
            "  {stream:<22} listed {:>7}  inserted {:>7}  updated {:>7}  deleted {:>5}  no phone {:>5}  skipped {:>5}",
            c.listed, c.inserted, c.updated, c.deleted, c.skipped_no_phone, c.skipped
        );
    }
    Ok(())
}

async fn status(store: &store::Store, tenant: &str) -> anyhow::Result<()> {
    let tenant_id = tenant_id(store, tenant).await?;
    let Some(conn) = store.zoho_connection(&tenant_id).await? else {
        println!("tenant {tenant}: not connected to Zoho");
        return Ok(());
    };
    println!("tenant {tenant}: {} ({})", conn.status, conn.dc);
    if let Some(api) = &conn.api_domain {
        println!("  api domain: {api}");
    }
    if let Some(reason) = &conn.status_reason {
        println!("  reason: {reason}");
    }
    for run in store.list_zoho_sync_runs(&tenant_id, 5).await? {
        println!(
            "  run {} {} {} started {} pages {} no-phone {}{}",
            run.id,
            if run.full { "full" } else { "incremental" },
            run.status,
            crm::zoho::time::format_ms(run.started_at),
            run.pages,
            run.skipped_no_phone,
            run.error
                .map(|e| format!(" error: {e}"))
                .unwrap_or_default()
        );
    }
    let outbox = store.outbox_counts(&tenant_id).await?;
    println!(
        "  call write-back: {} pending, {} sent, {} failed",
        outbox.pending, outbox.sent, outbox.failed
    );
    Ok(())
}

/// `agent keys rotate-encryption`: every secret re-sealed under `security.encryption_key`.
pub(super) async fn rotate_encryption(cfg: &Config, store: &store::Store) -> anyhow::Result<()> {
    let Some(ring) = crate::integrations::check_keys(cfg, store).await? else {
        return Err(
            BadConfig("security.encryption_key is not set: nothing to rotate to".into()).into(),
        );
    };
    let report = crm::secrets::rotate_secrets(store, &ring, crate::clock::now_ms())
        .await
        .context("rotating secrets")?;
    println!(
        "re-encrypted {} secret(s) under key id {} ({} changed meanwhile and were left as written)",
        report.resealed,
        ring.current_id(),
        report.skipped
    );
    if !cfg.security.previous_encryption_keys.is_empty() {
        println!(
            "every secret is now under the current key: remove security.previous_encryption_keys"
        );
    }
    Ok(())
}
