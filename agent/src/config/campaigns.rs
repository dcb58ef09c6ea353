//! `[campaigns]`: how this daemon takes part in outbound campaigns.

use serde::{Deserialize, Serialize};

/// Outbound campaigns run by `agent serve`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignsConfig {
    /// Claim and call campaign contacts in this daemon.
    pub enabled: bool,
    /// How long a claim on a contact holds without renewal; a killed daemon's contacts are
    /// called by another one after this.
    pub lease_secs: u64,
    /// How often a campaign with nothing due is looked at again.
    pub poll_ms: u64,
    /// Most contacts claimed at once per campaign.
    pub claim_batch: u32,
    /// Calls through each trunk this daemon places at once, and starts per second, unless
    /// `trunk_limits` names the trunk.
    pub trunk_max_concurrent: u32,
    pub trunk_calls_per_second: f64,
    /// Per-trunk limits: `[{ trunk = "carrier", max_concurrent = 20, calls_per_second = 5.0 }]`.
    pub trunk_limits: Vec<TrunkLimit>,
    /// After a call the trunk refused, wait this long before the next one through it,
    /// doubling with each further refusal up to `trunk_backoff_max_secs`.
    pub trunk_backoff_base_ms: u64,
    pub trunk_backoff_max_secs: u64,
}

/// One trunk's campaign call limits in this daemon.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrunkLimit {
    pub trunk: String,
    pub max_concurrent: u32,
    pub calls_per_second: f64,
}

impl Default for CampaignsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            lease_secs: 60,
            poll_ms: 1000,
            claim_batch: 10,
            trunk_max_concurrent: 10,
            trunk_calls_per_second: 5.0,
            trunk_limits: Vec::new(),
            trunk_backoff_base_ms: 1000,
            trunk_backoff_max_secs: 300,
        }
    }
}
