//! `agent campaigns …` and `agent dnc …`: outbound campaigns and the do-not-call list, from the
//! command line, with the same checks as the admin API (`crm::campaign`). Running daemons pick
//! a started campaign up within seconds.
//!
//! Exit codes: 0 done, 1 runtime failure (database), 2 bad input (nothing was created).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use crm::campaign::{
    CampaignRequest, Checks, ContactSource, CreateError, CsvError, CustomerFilter,
};
use store::{
    CallingWindow, Campaign, CampaignId, CampaignSettings, CampaignStatus, DncSource, NewDnc,
    RetryRule, Store, TenantId,
};

use super::open_store;
use crate::config::Config;

/// The input was refused before anything was stored; `agent` exits with 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// Create a campaign (a draft unless --start) from a CSV, the customer cache, or as the
    /// tenant's callbacks campaign.
    ///
    /// CSV: a header with `phone` (required), `name`, `time_zone` (IANA; default: from the
    /// number's country, else --default-time-zone), `customer_id`; other columns become flow
    /// variables. Every bad row is printed with its line and nothing is created.
    #[command(verbatim_doc_comment)]
    Create(Box<CreateArgs>),
    /// Start (or resume) a campaign
    Start(Which),
    /// Pause a campaign: no new calls; calls in progress finish
    Pause(Which),
    /// A campaign's status and progress: contacts by state and disposition, attempts
    Status(Which),
    /// A tenant's campaigns
    List {
        #[arg(long, value_name = "NAME")]
        tenant: String,
    },
}

#[derive(Debug, Args)]
pub struct Which {
    /// Campaign name or id
    pub campaign: String,
    #[arg(long, value_name = "NAME")]
    pub tenant: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Campaign name (unique in the tenant)
    pub name: String,
    #[arg(long, value_name = "NAME")]
    pub tenant: String,
    /// Flow to run when a callee answers
    #[arg(long, value_name = "NAME")]
    pub flow: String,
    /// Trunk to call through (a [[trunks]] name)
    #[arg(long, value_name = "NAME")]
    pub trunk: String,
    /// Contacts CSV
    #[arg(long, value_name = "FILE", conflicts_with_all = ["customers", "callbacks"])]
    pub csv: Option<PathBuf>,
    /// Call the customers of the cache owing at least --min-balance (minor units)
    #[arg(long, conflicts_with = "callbacks")]
    pub customers: bool,
    #[arg(long, value_name = "MINOR", requires = "customers")]
    pub min_balance: Option<i64>,
    #[arg(long, value_name = "ISO4217", requires = "customers")]
    pub currency: Option<String>,
    /// The tenant's callbacks campaign: scheduled callbacks become its contacts
    #[arg(long)]
    pub callbacks: bool,
    /// Settings as JSON (the admin API's `settings` object); the flags below override it
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// Calling window, repeatable: "mon-fri 09:00-20:00", "sat,sun 10:00-16:00"
    #[arg(long = "window", value_name = "DAYS HH:MM-HH:MM")]
    pub windows: Vec<String>,
    /// Zone for numbers whose country gives none (IANA name)
    #[arg(long, value_name = "ZONE")]
    pub default_time_zone: Option<String>,
    /// Calls at once, across all daemons
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<u32>,
    /// Call starts per second, across all daemons
    #[arg(long, value_name = "X")]
    pub calls_per_second: Option<f64>,
    /// Retry rule, repeatable: busy|no_answer|voicemail|failed=MAX_ATTEMPTS/SPACING_SECS
    #[arg(long = "retry", value_name = "OUTCOME=N/SECS")]
    pub retries: Vec<String>,
    /// Start at once
    #[arg(long)]
    pub start: bool,
}

#[derive(Debug, Subcommand)]
pub enum DncCommand {
    /// Put a number on the tenant's do-not-call list
    Add {
        phone: String,
        #[arg(long, value_name = "NAME")]
        tenant: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Import a CSV (`phone`, optional `reason`); a file with bad rows adds nothing
    Import {
        file: PathBuf,
        #[arg(long, value_name = "NAME")]
        tenant: String,
    },
    /// Take a number off the list
    Remove {
        phone: String,
        #[arg(long, value_name = "NAME")]
        tenant: String,
    },
    /// The list, in number order
    List {
        #[arg(long, value_name = "NAME")]
        tenant: String,
    },
}

pub(super) async fn run(cmd: CampaignsCommand, cfg: &Config) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    let result = match cmd {
        CampaignsCommand::Create(args) => create(&store, cfg, *args).await,
        CampaignsCommand::Start(w) => set_status(&store, w, CampaignStatus::Running).await,
        CampaignsCommand::Pause(w) => set_status(&store, w, CampaignStatus::Paused).await,
        CampaignsCommand::Status(w) => status(&store, w).await,
        CampaignsCommand::List { tenant } => list(&store, &tenant).await,
    };
    store.close().await;
    result
}

pub(super) async fn run_dnc(cmd: DncCommand, cfg: &Config) -> anyhow::Result<()> {
    let phones = crm::PhoneNormalizer::new(&cfg.crm.default_region)
        .map_err(|e| Invalid(format!("crm.default_region: {e}")))?;
    let store = open_store(cfg).await?;
    let result = async {
        match cmd {
            DncCommand::Add {
                phone,
                tenant,
                reason,
            } => {
                let t = tenant_id(&store, &tenant).await?;
                let phone = phones
                    .normalize(&phone)
                    .map_err(|e| Invalid(format!("phone: {e}")))?;
                let entry = NewDnc {
                    phone: phone.into_string(),
                    source: DncSource::Cli,
                    reason,
                    call_id: None,
                };
                let added = store.add_dnc(&t, &[entry], crate::clock::now_ms()).await?;
                println!(
                    "{}",
                    if added == 1 {
                        "added"
                    } else {
                        "already listed"
                    }
                );
            }
            DncCommand::Import { file, tenant } => {
                let t = tenant_id(&store, &tenant).await?;
                let f = std::fs::File::open(&file)
                    .with_context(|| format!("cannot open {}", file.display()))?;
                let entries = crm::campaign::parse_dnc_csv(f, &phones).map_err(csv_invalid)?;
                let added = store.add_dnc(&t, &entries, crate::clock::now_ms()).await?;
                println!("{added} added ({} in the file)", entries.len());
            }
            DncCommand::Remove { phone, tenant } => {
                let t = tenant_id(&store, &tenant).await?;
                let phone = phones
                    .normalize(&phone)
                    .map_err(|e| Invalid(format!("phone: {e}")))?;
                if !store.remove_dnc(&t, phone.as_str()).await? {
                    return Err(Invalid("not on the list".into()).into());
                }
                println!("removed");
            }
            DncCommand::List { tenant } => {
                let t = tenant_id(&store, &tenant).await?;
                let mut after: Option<String> = None;
                loop {
                    let page = store.list_dnc(&t, 1000, after.as_deref()).await?;
                    for d in &page {
                        println!(
                            "{}\t{}\t{}",
                            d.phone,
                            d.source.as_str(),
                            d.reason.as_deref().unwrap_or("")
                        );
                    }
                    match page.last() {
                        Some(last) if page.len() == 1000 => after = Some(last.phone.clone()),
                        _ => break,
                    }
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

async fn tenant_id(store: &Store, name: &str) -> anyhow::Result<TenantId> {
    Ok(store
        .tenant_by_name(name)
        .await?
        .ok_or_else(|| Invalid(format!("no tenant named {name:?}")))?
        .id)
}

async fn find(store: &Store, w: &Which) -> anyhow::Result<Campaign> {
    let t = tenant_id(store, &w.tenant).await?;
    if let Some(c) = store.campaign_by_name(&t, &w.campaign).await? {
        return Ok(c);
    }
    store
        .campaign(&t, &CampaignId::new(&w.campaign))
        .await?
        .ok_or_else(|| {
            Invalid(format!(
                "no campaign {:?} in tenant {:?}",
                w.campaign, w.tenant
            ))
            .into()
        })
}

async fn create(store: &Store, cfg: &Config, args: CreateArgs) -> anyhow::Result<()> {
    let tenant = tenant_id(store, &args.tenant).await?;
    let settings = settings_from(&args)?;
    let contacts = if args.callbacks {
        ContactSource::Callbacks
    } else if args.customers {
        ContactSource::Customers(CustomerFilter {
            min_balance_minor: args.min_balance,
            currency: args.currency.clone(),
        })
    } else if let Some(path) = &args.csv {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        ContactSource::Csv(text)
    } else {
        return Err(Invalid("give --csv FILE, --customers or --callbacks".into()).into());
    };
    let phones = crm::PhoneNormalizer::new(&cfg.crm.default_region)
        .map_err(|e| Invalid(format!("crm.default_region: {e}")))?;
    let trunk_exists = |name: &str| cfg.trunks.iter().any(|t| t.name == name);
    let flows = crate::wiring::load_flows(cfg).ok();
    let flow_exists = |name: &str| flows.as_ref().is_none_or(|f| f.get(name).is_some());
    let checks = Checks {
        phones: &phones,
        flow_exists: Some(&flow_exists),
        trunk_exists: Some(&trunk_exists),
    };
    let request = CampaignRequest {
        tenant_id: tenant,
        name: args.name,
        flow: args.flow,
        trunk: args.trunk,
        settings,
        contacts,
        start: args.start,
        now: crate::clock::now_ms(),
    };
    let c = match crm::campaign::create_campaign(store, request, &checks).await {
        Ok(c) => c,
        Err(CreateError::Store(e)) => return Err(e.into()),
        Err(CreateError::Contacts(e)) => return Err(csv_invalid(e).into()),
        Err(e) => return Err(Invalid(e.to_string()).into()),
    };
    let progress = store.campaign_progress(&c.id).await?;
    println!(
        "campaign {} {:?} created ({}): {} contacts",
        c.id, c.name, c.status, progress.total
    );
    Ok(())
}

async fn set_status(store: &Store, w: Which, to: CampaignStatus) -> anyhow::Result<()> {
    let c = find(store, &w).await?;
    let reason = (to == CampaignStatus::Paused).then_some("paused from the command line");
    match store
        .set_campaign_status(&c.tenant_id, &c.id, to, reason, crate::clock::now_ms())
        .await
    {
        Ok(c) => {
            println!("campaign {:?} is {}", c.name, c.status);
            Ok(())
        }
        Err(store::StoreError::Conflict { .. }) => Err(Invalid(format!(
            "campaign {:?} is {}: it cannot become {to}",
            c.name, c.status
        ))
        .into()),
        Err(e) => Err(e.into()),
    }
}

async fn status(store: &Store, w: Which) -> anyhow::Result<()> {
    let c = find(store, &w).await?;
    let p = store.campaign_progress(&c.id).await?;
    println!(
        "campaign {} {:?} ({}, flow {}, trunk {})",
        c.id, c.name, c.status, c.flow, c.trunk
    );
    if let Some(reason) = &c.status_reason {
        println!("  reason: {reason}");
    }
    println!(
        "  contacts: {} total, {} pending, {} in progress, {} done; {} calls placed",
        p.total, p.pending, p.claimed, p.done, p.attempts
    );
    for (disposition, count) in &p.dispositions {
        println!("  {disposition}: {count}");
    }
    Ok(())
}

async fn list(store: &Store, tenant: &str) -> anyhow::Result<()> {
    let t = tenant_id(store, tenant).await?;
    for c in store.list_campaigns(&t).await? {
        let p = store.campaign_progress(&c.id).await?;
        println!(
            "{}\t{}\t{}\t{}/{} done",
            c.id, c.name, c.status, p.done, p.total
        );
    }
    Ok(())
}

fn csv_invalid(e: CsvError) -> Invalid {
    match e {
        CsvError::BadRows(rows) => {
            let lines: Vec<String> = rows.iter().map(ToString::to_string).collect();
            Invalid(format!(
                "{} invalid rows; nothing was created:\n{}",
                rows.len(),
                lines.join("\n")
            ))
        }
        other => Invalid(other.to_string()),
    }
}

/// The settings: `--settings FILE` (JSON) or the defaults, then each flag given.
fn settings_from(args: &CreateArgs) -> Result<CampaignSettings, Invalid> {
    let mut s = match &args.settings {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Invalid(format!("cannot read {}: {e}", path.display())))?;
            serde_json::from_str(&text).map_err(|e| Invalid(format!("{}: {e}", path.display())))?
        }
        None => CampaignSettings::default(),
    };
    if !args.windows.is_empty() {
        s.windows = args
            .windows
            .iter()
            .map(|w| parse_window(w))
            .collect::<Result<_, _>>()?;
    }
    if let Some(z) = &args.default_time_zone {
        s.default_time_zone = Some(z.clone());
    }
    if let Some(n) = args.max_concurrent {
        s.max_concurrent = n;
    }
    if let Some(x) = args.calls_per_second {
        s.calls_per_second = x;
    }
    for r in &args.retries {
        let bad = || {
            Invalid(format!(
                "--retry {r:?}: expected OUTCOME=MAX_ATTEMPTS/SPACING_SECS"
            ))
        };
        let (outcome, rule) = r.split_once('=').ok_or_else(bad)?;
        let (n, secs) = rule.split_once('/').ok_or_else(bad)?;
        let rule = RetryRule::new(
            n.trim().parse().map_err(|_| bad())?,
            secs.trim().parse().map_err(|_| bad())?,
        );
        match outcome.trim() {
            "busy" => s.retry.busy = rule,
            "no_answer" => s.retry.no_answer = rule,
            "voicemail" => s.retry.voicemail = rule,
            "failed" => s.retry.failed = rule,
            _ => return Err(bad()),
        }
    }
    Ok(s)
}

/// `"mon-fri 09:00-20:00"`, `"sat,sun 10:00-16:00"`.
fn parse_window(text: &str) -> Result<CallingWindow, Invalid> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let bad = || Invalid(format!("--window {text:?}: expected DAYS HH:MM-HH:MM"));
    let (days, times) = text.trim().split_once(' ').ok_or_else(bad)?;
    let (start, end) = times.trim().split_once('-').ok_or_else(bad)?;
    let mut out = Vec::new();
    for part in days.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let ia = DAYS.iter().position(|d| *d == a).ok_or_else(bad)?;
                let ib = DAYS.iter().position(|d| *d == b).ok_or_else(bad)?;
                if ib < ia {
                    return Err(bad());
                }
                out.extend(DAYS[ia..=ib].iter().map(|d| (*d).to_owned()));
            }
            None => out.push(part.to_owned()),
        }
    }
    Ok(CallingWindow {
        days: out,
        start: start.to_owned(),
        end: end.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_from_the_command_line() {
        let w = parse_window("mon-fri 09:00-20:00").unwrap();
        assert_eq!(w.days, ["mon", "tue", "wed", "thu", "fri"]);
        assert_eq!((w.start.as_str(), w.end.as_str()), ("09:00", "20:00"));
        let w = parse_window("sat,sun 10:00-16:00").unwrap();
        assert_eq!(w.days, ["sat", "sun"]);
        assert!(parse_window("fri-mon 09:00-10:00").is_err());
        assert!(parse_window("weekdays").is_err());
    }
}
