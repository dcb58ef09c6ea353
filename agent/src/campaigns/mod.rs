//! Outbound campaigns inside `agent serve`: every daemon claims due contacts from the shared
//! store, calls them through a trunk with a flow (`calls::run_outbound`), and records each
//! attempt and the contact's disposition.
//!
//! - [`scheduler`]: the sans-IO core — claims, pacing, calling windows, retries, trunk backoff,
//!   the failure pause, shutdown — tested in simulated time;
//! - [`runner`]: the thin async task around it (store, SIP, clock);
//! - `outcome`: how a call's result counts (busy, no answer, voicemail, trunk failure…).
//!
//! Creating campaigns (CSV, customer filter, settings) is shared with the admin API in
//! `crm::campaign`; the claim/lease protocol is the store's (`store::Store::claim_contacts`).
//! See ARCHITECTURE.md, "Campaigns".

mod outcome;
pub mod runner;
pub mod scheduler;

pub use outcome::classify;
pub use runner::{CampaignRunner, runner_for};
pub use scheduler::{
    CallEnd, Dial, Finish, Input, Output, Scheduler, SchedulerConfig, TrunkLimits,
};

/// What the admin API checks new campaigns against: this daemon's flows (as loaded now,
/// reloads included), trunks and phone region.
pub fn admin_support(
    cfg: &crate::config::Config,
    flows: std::sync::Arc<dialogs::FlowRegistry>,
) -> anyhow::Result<admin::CampaignSupport> {
    let phones = crm::PhoneNormalizer::new(&cfg.crm.default_region)
        .map_err(|e| anyhow::anyhow!("crm.default_region: {e}"))?;
    let trunks: Vec<String> = cfg.trunks.iter().map(|t| t.name.clone()).collect();
    Ok(admin::CampaignSupport {
        phones,
        flow_exists: std::sync::Arc::new(move |name: &str| flows.get(name).is_some()),
        trunk_exists: std::sync::Arc::new(move |name: &str| trunks.iter().any(|t| t == name)),
    })
}
