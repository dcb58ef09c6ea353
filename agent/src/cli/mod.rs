//! The `agent` command line (clap derive; help text comes from these doc comments).
//!
//! Exit codes: 0 success, 1 runtime failure (e.g. database unreachable), 2 bad usage or bad
//! configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config, ConfigError, Override};

mod accounts;
mod campaigns;
mod chat;
mod customers;
mod dial;
mod flows;
mod models;
mod zoho;

pub use accounts::{KeysCommand, TenantsCommand};
pub use models::ModelsCommand;

/// Voice-first telephony AI agent: answers and places phone calls over SIP.
#[derive(Debug, Parser)]
#[command(name = "agent", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file [default: config/agent.toml, skipped when absent]
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "AGENT_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Database URL, overriding `database.url` (sqlite://FILE or postgres://…)
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Log format, overriding `log.format`: human or json
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: apply migrations, answer calls, serve the admin API
    Serve(ServeArgs),
    /// Apply database migrations and exit
    Migrate,
    /// Validate the configuration and print it (secrets redacted); exit 2 when invalid
    CheckConfig,
    /// Manage tenants
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Manage admin API keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage speech models
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Validate flows and run their conversation tests
    #[command(subcommand)]
    Flows(flows::FlowsCommand),
    /// Talk to a flow from the terminal: lines are caller speech, #5 presses keys, /quit ends
    Chat(chat::ChatArgs),
    /// Manage the customer cache
    #[command(subcommand)]
    Customers(customers::CustomersCommand),
    /// Outbound campaigns: create (CSV, customers, callbacks), start, pause, status, list
    #[command(subcommand)]
    Campaigns(campaigns::CampaignsCommand),
    /// The do-not-call list: add, import (CSV), remove, list
    #[command(subcommand)]
    Dnc(campaigns::DncCommand),
    /// Place one call through a trunk and run a flow on it; exit 0 answered, 1 not
    /// connected, 2 refused (unknown trunk or flow, number not allow-listed)
    Dial(dial::DialArgs),
    /// Zoho CRM and Books: connect a tenant, sync its customers, show its state
    #[command(subcommand)]
    Zoho(zoho::ZohoCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Admin HTTP address, overriding `admin.listen`
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// SIP UDP address, overriding `sip.listen`
    #[arg(long, value_name = "ADDR")]
    pub sip_listen: Option<String>,
}

/// Entry point used by `main`: parse, run, map failures to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match load_config(&cli) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::CheckConfig = cli.command {
        print!("{}", cfg.to_redacted_toml());
        return ExitCode::SUCCESS;
    }
    crate::logging::init(&cfg.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of causes, outermost first.
            eprintln!("error: {e:#}");
            if e.downcast_ref::<dial::Refused>().is_some()
                || e.downcast_ref::<crate::integrations::BadConfig>().is_some()
                || e.downcast_ref::<campaigns::Invalid>().is_some()
            {
                return ExitCode::from(2);
            }
            ExitCode::FAILURE
        }
    }
}

/// Builds the layered configuration for these arguments.
pub fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    let (file, required) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from("config/agent.toml"), false),
    };
    let mut overrides = Override::from_env(std::env::vars());
    let mut flag = |name: &str, key: &str, value: &Option<String>| {
        if let Some(v) = value {
            overrides.push(Override::flag(name, key, v.clone()));
        }
    };
    flag("--database-url", "database.url", &cli.database_url);
    flag("--log-format", "log.format", &cli.log_format);
    if let Command::Serve(args) = &cli.command {
        flag("--admin-listen", "admin.listen", &args.admin_listen);
        flag("--sip-listen", "sip.listen", &args.sip_listen);
    }
    if let Command::Dial(args) = &cli.command {
        flag("--sip-listen", "sip.listen", &args.sip_listen);
    }
    config::load(&file, required, &overrides)
}

async fn run(command: Command, cfg: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => crate::serve::run(cfg).await,
        Command::Migrate => {
            let store = open_store(&cfg).await?;
            println!("migrations applied to {}", cfg.database.url);
            store.close().await;
            Ok(())
        }
        Command::CheckConfig => Ok(()),
        Command::Tenants(cmd) => accounts::tenants(cmd, &cfg).await,
        Command::Keys(cmd) => accounts::keys(cmd, &cfg).await,
        Command::Models(cmd) => models::run(cmd, &cfg).await,
        Command::Flows(cmd) => flows::run(cmd, &cfg).await,
        Command::Chat(args) => chat::run(args, &cfg).await,
        Command::Customers(cmd) => customers::run(cmd, &cfg).await,
        Command::Dial(args) => dial::run(args, &cfg).await,
        Command::Zoho(cmd) => zoho::run(cmd, &cfg).await,
        Command::Campaigns(cmd) => campaigns::run(cmd, &cfg).await,
        Command::Dnc(cmd) => campaigns::run_dnc(cmd, &cfg).await,
    }
}

/// Connects to the configured database and applies migrations.
pub async fn open_store(cfg: &Config) -> anyhow::Result<store::Store> {
    let options = store::StoreOptions {
        max_connections: cfg.database.max_connections,
        ..Default::default()
    };
    let store = store::Store::connect(cfg.database.url.expose(), &options)
        .await
        .with_context(|| format!("database {}", cfg.database.url))?;
    store.migrate().await.context("applying migrations")?;
    // The tenant owning unmapped numbers always exists, so keys can be made for it at once.
    store
        .ensure_tenant(&cfg.call.default_tenant, crate::clock::now_ms())
        .await
        .context("creating the default tenant (call.default_tenant)")?;
    Ok(store)
}
