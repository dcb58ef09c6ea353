//! `[billing]` (prices, plans), `[dodo]` (payments) and `[email]` (Resend) sections.
//!
//! Money is integers: rates are micro-units of `billing.currency` (1 USD = 1,000,000), so a
//! fraction of a cent per minute is exact and nothing is a float.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Secret;

/// Prices, plans and whether plans are enforced.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    /// Refuse calls over a plan's limits (off: every call is admitted; usage is still metered
    /// and priced).
    pub enforce: bool,
    /// ISO 4217 code of every price.
    pub currency: String,
    /// The plan of tenants without an active subscription.
    pub default_plan: String,
    /// How often calls are folded into analytics and priced (ms).
    pub fold_interval_ms: u64,
    pub prices: PriceConfig,
    pub plans: BTreeMap<String, PlanConfig>,
}

/// Rates in micro-units of `billing.currency`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PriceConfig {
    pub inbound_per_minute: i64,
    pub outbound_per_minute: i64,
    pub stt_per_audio_minute: i64,
    pub llm_prompt_per_1k_tokens: i64,
    pub llm_completion_per_1k_tokens: i64,
    pub tts_per_1k_chars: i64,
}

/// What happens after the included minutes.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OverageConfig {
    /// New calls are refused (inbound 503 before answer, outbound not dialled).
    Block,
    /// Calls continue and are billed at `overage_per_minute`.
    Allow,
}

/// One plan.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    pub included_minutes: i64,
    /// Calls of the tenant at once; 0: only `call.max_concurrent` applies.
    pub concurrent_calls: u32,
    pub overage: OverageConfig,
    /// Micro-units per minute past the included ones.
    #[serde(default)]
    pub overage_per_minute: i64,
    /// The Dodo product that sells this plan; empty: not sold online.
    #[serde(default)]
    pub dodo_product_id: String,
}

impl Default for BillingConfig {
    fn default() -> Self {
        let plan = |minutes, calls, overage, per_minute| PlanConfig {
            included_minutes: minutes,
            concurrent_calls: calls,
            overage,
            overage_per_minute: per_minute,
            dodo_product_id: String::new(),
        };
        Self {
            enforce: false,
            currency: "USD".to_owned(),
            default_plan: "trial".to_owned(),
            fold_interval_ms: 2000,
            prices: PriceConfig::default(),
            plans: BTreeMap::from([
                ("trial".to_owned(), plan(60, 2, OverageConfig::Block, 0)),
                ("starter".to_owned(), plan(1000, 5, OverageConfig::Block, 0)),
                (
                    "pro".to_owned(),
                    plan(5000, 20, OverageConfig::Allow, 60_000),
                ),
            ]),
        }
    }
}

impl Default for PriceConfig {
    fn default() -> Self {
        Self {
            inbound_per_minute: 10_000,
            outbound_per_minute: 15_000,
            stt_per_audio_minute: 6_000,
            llm_prompt_per_1k_tokens: 150,
            llm_completion_per_1k_tokens: 600,
            tts_per_1k_chars: 15_000,
        }
    }
}

/// Dodo Payments.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DodoConfig {
    /// API root: test mode `https://test.dodopayments.com`, live `https://live.dodopayments.com`.
    pub base_url: String,
    /// Bearer key (DODO_PAYMENTS_API_KEY); empty: checkout and payment links are off.
    pub api_key: Secret,
    /// The webhook's signing secret (`whsec_…`); empty: POST /webhooks/dodo answers 503.
    pub webhook_secret: Secret,
    /// A pay-what-you-want product used for invoice payment links.
    pub invoice_product_id: String,
    /// Where the customer lands after paying; empty: Dodo's default page.
    pub return_url: String,
}

impl Default for DodoConfig {
    fn default() -> Self {
        Self {
            base_url: "https://test.dodopayments.com".to_owned(),
            api_key: Secret::default(),
            webhook_secret: Secret::default(),
            invoice_product_id: String::new(),
            return_url: String::new(),
        }
    }
}

/// E-mail through Resend.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// API root.
    pub base_url: String,
    /// Bearer key (`re_…`); empty: nothing is sent (the outbox keeps what is queued).
    pub api_key: Secret,
    /// Sender, e.g. `Acme Calls <calls@acme.example>` (a domain verified with Resend).
    pub from: String,
    /// Local time (tenant's zone, HH:MM) after which yesterday's summary is sent.
    pub daily_summary_time: String,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.resend.com".to_owned(),
            api_key: Secret::default(),
            from: String::new(),
            daily_summary_time: "07:00".to_owned(),
        }
    }
}
