//! The daemon's side of billing (issue 11): building plans, prices, the payment provider and
//! the mail workers from `[billing]`, `[dodo]` and `[email]`; the admission check called when
//! a call is set up; and the background tasks `serve` starts (folding calls into analytics and
//! the cost ledger, delivering the mail outbox, queueing summaries and notices).

use std::time::Duration;

use anyhow::Context;
use billing::dodo::DodoClient;
use billing::mail::{Mailer, Notifier, ResendClient};
use billing::{Admission, Overage, Plan, Plans, Prices};
use tokio::sync::watch;

use crate::calls::{CallRequest, CallRuntime};
use crate::config::{Config, OverageConfig};

/// The price table.
pub fn prices(cfg: &Config) -> Prices {
    let p = &cfg.billing.prices;
    Prices {
        currency: cfg.billing.currency.clone(),
        inbound_per_minute: p.inbound_per_minute,
        outbound_per_minute: p.outbound_per_minute,
        stt_per_audio_minute: p.stt_per_audio_minute,
        llm_prompt_per_1k_tokens: p.llm_prompt_per_1k_tokens,
        llm_completion_per_1k_tokens: p.llm_completion_per_1k_tokens,
        tts_per_1k_chars: p.tts_per_1k_chars,
    }
}

/// The plans.
pub fn plans(cfg: &Config) -> Plans {
    Plans {
        enforce: cfg.billing.enforce,
        default_plan: cfg.billing.default_plan.clone(),
        plans: cfg
            .billing
            .plans
            .iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    Plan {
                        name: name.clone(),
                        included_minutes: p.included_minutes,
                        concurrent_calls: p.concurrent_calls,
                        overage: match p.overage {
                            OverageConfig::Block => Overage::Block,
                            OverageConfig::Allow => Overage::Allow,
                        },
                        overage_per_minute: p.overage_per_minute,
                        dodo_product_id: p.dodo_product_id.clone(),
                    },
                )
            })
            .collect(),
        max_call_ms: i64::try_from(cfg.call.max_duration_secs)
            .unwrap_or(i64::MAX / 2_000)
            .saturating_mul(1000)
            .saturating_add(60_000),
    }
}

/// Checks the billing keys that only make sense together.
pub fn validate(cfg: &Config) -> anyhow::Result<()> {
    let b = &cfg.billing;
    if b.enforce {
        anyhow::ensure!(
            b.plans.contains_key(&b.default_plan),
            "billing.default_plan = {:?}: no such plan in [billing.plans] (have: {:?})",
            b.default_plan,
            b.plans.keys().collect::<Vec<_>>()
        );
    }
    for (name, p) in &b.plans {
        anyhow::ensure!(
            p.included_minutes >= 0 && p.overage_per_minute >= 0,
            "billing.plans.{name}: minutes and prices must not be negative"
        );
    }
    summary_time(cfg)?;
    if !cfg.dodo.webhook_secret.is_empty() {
        billing::webhook::WebhookSecret::parse(cfg.dodo.webhook_secret.expose())
            .map_err(|e| anyhow::anyhow!("dodo.webhook_secret: {e}"))?;
    }
    Ok(())
}

fn summary_time(cfg: &Config) -> anyhow::Result<jiff::civil::Time> {
    cfg.email
        .daily_summary_time
        .parse::<jiff::civil::Time>()
        .with_context(|| {
            format!(
                "email.daily_summary_time = {:?}: expected HH:MM",
                cfg.email.daily_summary_time
            )
        })
}

fn dodo(cfg: &Config) -> anyhow::Result<Option<DodoClient>> {
    if cfg.dodo.api_key.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        DodoClient::new(&cfg.dodo.base_url, cfg.dodo.api_key.expose())
            .with_context(|| format!("dodo.base_url = {:?}", cfg.dodo.base_url))?,
    ))
}

/// A mail worker named after this node and process (leases name their owner).
fn mailer(cfg: &Config, store: &store::Store, role: &str) -> anyhow::Result<Option<Mailer>> {
    if cfg.email.api_key.is_empty() {
        return Ok(None);
    }
    anyhow::ensure!(
        cfg.email.from.contains('@'),
        "email.from = {:?}: a sender address is needed to send e-mail",
        cfg.email.from
    );
    let client = ResendClient::new(&cfg.email.base_url, cfg.email.api_key.expose())
        .with_context(|| format!("email.base_url = {:?}", cfg.email.base_url))?;
    let owner = format!("{}:{}:{role}", cfg.node_id(), std::process::id());
    Ok(Some(Mailer::new(
        store.clone(),
        client,
        &cfg.email.from,
        &owner,
    )))
}

/// What the admin API needs.
pub fn admin_context(cfg: &Config) -> anyhow::Result<admin::BillingContext> {
    validate(cfg)?;
    let webhook_secret = if cfg.dodo.webhook_secret.is_empty() {
        None
    } else {
        Some(
            billing::webhook::WebhookSecret::parse(cfg.dodo.webhook_secret.expose())
                .map_err(|e| anyhow::anyhow!("dodo.webhook_secret: {e}"))?,
        )
    };
    Ok(admin::BillingContext {
        plans: plans(cfg),
        prices: prices(cfg),
        dodo: dodo(cfg)?,
        webhook_secret,
        return_url: (!cfg.dodo.return_url.is_empty()).then(|| cfg.dodo.return_url.clone()),
    })
}

/// Payment links for the flows' `send_payment_link`, when Dodo, the invoice product and
/// e-mail are all configured.
pub fn payment_links(
    cfg: &Config,
    store: &store::Store,
) -> anyhow::Result<Option<billing::PaymentLinks>> {
    let (Some(dodo), Some(mailer)) = (dodo(cfg)?, mailer(cfg, store, "links")?) else {
        return Ok(None);
    };
    if cfg.dodo.invoice_product_id.is_empty() {
        return Ok(None);
    }
    Ok(Some(billing::PaymentLinks::new(
        store.clone(),
        dodo,
        &cfg.dodo.invoice_product_id,
        (!cfg.dodo.return_url.is_empty()).then(|| cfg.dodo.return_url.clone()),
        mailer,
    )))
}

/// Starts the folder, the mail worker (with a key) and the notifier; they stop with `stop`.
pub fn spawn_tasks(
    cfg: &Config,
    store: &store::Store,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    let folder = billing::Folder::new(store.clone(), prices(cfg));
    let every = Duration::from_millis(cfg.billing.fold_interval_ms.max(100));
    tasks.push(tokio::spawn(folder.run(every, stop.clone())));
    let notifier = Notifier::new(store.clone(), summary_time(cfg)?, &cfg.billing.currency);
    tasks.push(tokio::spawn(
        notifier.run(Duration::from_secs(30), stop.clone()),
    ));
    match mailer(cfg, store, "outbox")? {
        Some(m) => tasks.push(tokio::spawn(m.run(Duration::from_secs(2), stop.clone()))),
        None => tracing::info!("email.api_key is empty: e-mails stay queued in the outbox"),
    }
    Ok(tasks)
}

/// The admission check at call set-up (the one hook in `CallPlan::prepare`): over the plan's
/// limits the call is refused before it is answered (inbound: 503; outbound: not dialled) and
/// stored as a call that ended with the refusal's code (`quota_exceeded`,
/// `plan_concurrency`), so supervisors see it. A store error admits the call: billing must
/// not take the phones down when the database hiccups (the call itself then needs the store).
pub async fn admit(
    rt: &CallRuntime,
    tenant_id: &store::TenantId,
    request: &CallRequest,
) -> Result<(), billing::Refusal> {
    let now = crate::clock::now_ms();
    let decision = billing::check_admission(
        &rt.store,
        &plans(&rt.config),
        tenant_id,
        request.direction,
        now,
    )
    .await;
    let refusal = match decision {
        Ok(Admission::Admit) => return Ok(()),
        Ok(Admission::Refuse(r)) => r,
        Err(e) => {
            tracing::warn!(error = %e, "admission check failed; admitting the call");
            return Ok(());
        }
    };
    metrics::counter!("agent_calls_refused_total", "reason" => refusal.code()).increment(1);
    tracing::warn!(%tenant_id, reason = %refusal, "call refused by the tenant's plan");
    let id = store::CallId::generate();
    let stored = rt
        .store
        .insert_call(store::NewCall {
            id: id.clone(),
            tenant_id: tenant_id.clone(),
            direction: request.direction,
            from_number: request.from.clone(),
            to_number: request.to.clone(),
            sip_call_id: request.sip_call_id.clone(),
            flow: request.flow.clone(),
            flow_version: None,
            node: rt.node.clone(),
            started_at: now,
            transport: store::CallTransport::Sip,
        })
        .await;
    if stored.is_ok() {
        let reason = store::EndReason::from_code(refusal.code());
        let _ = rt.store.end_call(&id, now, &reason).await;
    }
    Err(refusal)
}
