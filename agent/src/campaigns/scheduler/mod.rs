//! The campaign scheduler as a sans-IO state machine: which campaign to claim contacts from and
//! how many, when to dial each claimed contact, what becomes of a contact after its call, when
//! a trunk backs off and when a campaign pauses itself. It never touches the store, the SIP
//! stack or the clock; the runner (`campaigns::runner`) feeds it and carries its outputs out.
//!
//! Verbs, as in the SIP and call cores: [`Scheduler::handle`]`(now, input)` and
//! [`Scheduler::handle_timeout`]`(now)` mutate; [`Scheduler::poll_output`] drains what to do;
//! [`Scheduler::poll_timeout`] says when to call `handle_timeout` next and why. Extra
//! `handle_timeout` calls are harmless. Time is unix milliseconds throughout: calling windows
//! are wall-clock rules, so the scheduler's clock is the wall clock, passed in.
//!
//! Limits, and where each holds:
//! - a campaign's `max_concurrent` and `calls_per_second`: **global** (all daemons), enforced
//!   by the claim in the store (live claims counted, dial slots handed out from the campaign
//!   row); the scheduler only avoids asking for more than the campaign could take;
//! - a trunk's concurrency and call rate: **per daemon**, here ([`TrunkLimits`]);
//! - trunk backoff: after a trunk failure (refused, unreachable) this daemon waits
//!   `base · 2^(n−1)` (up to a maximum) before its next call through that trunk; any call the
//!   trunk carries (answered, busy, no answer) resets it;
//! - the failure pause: per daemon, over the last `pause_on_failures.window` calls of a
//!   campaign this daemon placed.

#![deny(clippy::disallowed_methods)]

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crm::campaign::{Schedule, parse_zones};
use jiff::tz::TimeZone;
use store::{
    AttemptResult, CallId, Campaign, CampaignContact, CampaignId, CampaignSettings, ClaimDecision,
    ClaimReport, ContactId, ContactNext, Disposition,
};

/// A day: how far a contact whose windows never open is put off.
const DAY_MS: i64 = 24 * 3600 * 1000;
/// A claim that found the campaign locked by another daemon is tried again this soon.
const CONTENDED_RETRY_MS: i64 = 200;

/// Calls through one trunk placed by this daemon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrunkLimits {
    pub max_concurrent: u32,
    pub calls_per_second: f64,
}

/// The scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// This daemon (`claimed_by`).
    pub node: String,
    /// How long a claim holds without renewal; renewed every third of it.
    pub lease_ms: i64,
    /// How often a campaign with nothing due is asked again.
    pub poll_ms: i64,
    /// How often the list of running campaigns is read again.
    pub refresh_ms: i64,
    /// Most contacts per claim.
    pub claim_batch: u32,
    /// A contact whose number another call is dialling is looked at again this much later.
    pub number_busy_retry_ms: i64,
    pub trunk_backoff_base_ms: i64,
    pub trunk_backoff_max_ms: i64,
    pub default_trunk_limits: TrunkLimits,
    pub trunk_limits: HashMap<String, TrunkLimits>,
}

/// What happened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Input {
    /// The running campaigns, as just read (answer to [`Output::RefreshCampaigns`]).
    Campaigns(Vec<Campaign>),
    /// The answer to [`Output::Claim`].
    Claimed {
        campaign_id: CampaignId,
        report: ClaimReport,
    },
    /// [`Output::Claim`] failed (the database); tried again after `poll_ms`.
    ClaimFailed { campaign_id: CampaignId },
    /// A call started by [`Output::Dial`] is over (or was never placed).
    CallEnded {
        contact_id: ContactId,
        ended: CallEnd,
    },
    /// Shut down: no new claims, queued contacts released, calls in progress finish.
    Stop,
}

/// How a dialled contact's call went.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEnd {
    /// The attempt's number; `None`: nothing was placed (the claim was lost first).
    pub seq: Option<i64>,
    pub result: AttemptResult,
    /// The trunk refused the call or could not be reached.
    pub trunk_failure: bool,
    /// Calling again cannot help (the number is not allowed through the trunk).
    pub permanent: bool,
    /// The campaign cannot run as configured (e.g. its flow is not loaded): it is paused with
    /// this reason.
    pub campaign_fault: Option<String>,
    pub call_id: Option<CallId>,
    pub end_reason: Option<String>,
    pub detail: Option<String>,
    /// The flow's outcome (`completed` results).
    pub outcome: Option<String>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Read the running campaigns and answer with [`Input::Campaigns`].
    RefreshCampaigns,
    /// Claim up to `max` contacts (deciding with [`Scheduler::claim_decision`]) and answer
    /// with [`Input::Claimed`] or [`Input::ClaimFailed`].
    Claim { campaign_id: CampaignId, max: u32 },
    /// Start the attempt and place the call now; report [`Input::CallEnded`].
    Dial(Box<Dial>),
    /// Store how the attempt went and what becomes of the contact.
    Finish(Finish),
    /// Give these undialled claims back.
    Release { contacts: Vec<ContactId> },
    /// Give an undialled claim back until `until` (its window closed while it waited).
    Defer { contact_id: ContactId, until: i64 },
    /// Extend this node's leases on `contacts` (every claim it holds) to `until`.
    RenewLeases {
        contacts: Vec<ContactId>,
        until: i64,
    },
    /// Pause the campaign with this reason.
    Pause {
        campaign_id: CampaignId,
        reason: String,
    },
}

/// A call to place.
#[derive(Debug, Clone, PartialEq)]
pub struct Dial {
    pub contact: CampaignContact,
    pub campaign_id: CampaignId,
    pub trunk: String,
    pub flow: String,
}

/// An attempt's end, to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub contact_id: ContactId,
    pub seq: i64,
    pub result: AttemptResult,
    pub next: ContactNext,
    pub call_id: Option<CallId>,
    pub end_reason: Option<String>,
    pub detail: Option<String>,
    pub outcome: Option<String>,
}

/// A running campaign as the scheduler uses it.
#[derive(Debug)]
struct Plan {
    id: CampaignId,
    trunk: String,
    flow: String,
    settings: CampaignSettings,
    schedule: Schedule,
}

#[derive(Debug)]
struct CampaignState {
    plan: Arc<Plan>,
    claim_pending: bool,
    next_claim_at: i64,
    /// Last placed calls of this campaign: true = trunk failure.
    recent: VecDeque<bool>,
    last_failure: Option<String>,
}

#[derive(Debug, Default)]
struct TrunkState {
    in_flight: u32,
    /// Earliest next call start (the trunk's call rate).
    next_start_at: i64,
    failures_in_row: u32,
    blocked_until: i64,
}

#[derive(Debug)]
struct Queued {
    contact: CampaignContact,
    zones: Vec<TimeZone>,
    plan: Arc<Plan>,
    dial_at: i64,
}

#[derive(Debug)]
struct InFlight {
    zones: Vec<TimeZone>,
    plan: Arc<Plan>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    campaigns: HashMap<CampaignId, CampaignState>,
    /// Paused by this scheduler; ignored in refreshes until the store agrees.
    paused_here: HashSet<CampaignId>,
    trunks: HashMap<String, TrunkState>,
    queued: Vec<Queued>,
    in_flight: HashMap<ContactId, InFlight>,
    outputs: VecDeque<Output>,
    next_refresh: i64,
    next_renew: Option<i64>,
    stopping: bool,
}

impl Scheduler {
    /// A scheduler that reads the running campaigns first thing.
    pub fn new(cfg: SchedulerConfig, now: i64) -> Self {
        Self {
            cfg,
            campaigns: HashMap::new(),
            paused_here: HashSet::new(),
            trunks: HashMap::new(),
            queued: Vec::new(),
            in_flight: HashMap::new(),
            outputs: VecDeque::new(),
            next_refresh: now,
            next_renew: None,
            stopping: false,
        }
    }

    /// Feeds what happened at `now`.
    pub fn handle(&mut self, now: i64, input: Input) {
        match input {
            Input::Campaigns(list) => self.on_campaigns(now, list),
            Input::Claimed {
                campaign_id,
                report,
            } => self.on_claimed(now, &campaign_id, report),
            Input::ClaimFailed { campaign_id } => {
                if let Some(c) = self.campaigns.get_mut(&campaign_id) {
                    c.claim_pending = false;
                    c.next_claim_at = now + self.cfg.poll_ms;
                }
            }
            Input::CallEnded { contact_id, ended } => self.on_call_ended(now, &contact_id, ended),
            Input::Stop => {
                self.stopping = true;
                let contacts: Vec<ContactId> =
                    self.queued.drain(..).map(|q| q.contact.id).collect();
                if !contacts.is_empty() {
                    self.outputs.push_back(Output::Release { contacts });
                }
            }
        }
        self.handle_timeout(now);
    }

    /// Does what is due at `now`: refresh, lease renewal, calls whose time has come, claims.
    pub fn handle_timeout(&mut self, now: i64) {
        if !self.stopping && now >= self.next_refresh {
            self.outputs.push_back(Output::RefreshCampaigns);
            self.next_refresh = now + self.cfg.refresh_ms;
        }
        if self.holds_claims() {
            let due = self.next_renew.get_or_insert(now + self.cfg.lease_ms / 3);
            if now >= *due {
                *due = now + self.cfg.lease_ms / 3;
                let contacts = self
                    .queued
                    .iter()
                    .map(|q| q.contact.id.clone())
                    .chain(self.in_flight.keys().cloned())
                    .collect();
                self.outputs.push_back(Output::RenewLeases {
                    contacts,
                    until: now + self.cfg.lease_ms,
                });
            }
        } else {
            self.next_renew = None;
        }
        self.dial_due(now);
        if !self.stopping {
            self.claim_due(now);
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`Scheduler::handle_timeout`] next, and why. `None`: only inputs can
    /// change anything.
    pub fn poll_timeout(&self) -> Option<(i64, &'static str)> {
        let mut best: Option<(i64, &'static str)> = None;
        let mut consider = |at: i64, why: &'static str| {
            if best.is_none_or(|(b, _)| at < b) {
                best = Some((at, why));
            }
        };
        if !self.stopping {
            consider(self.next_refresh, "refresh campaigns");
            for c in self.campaigns.values() {
                if !c.claim_pending {
                    consider(c.next_claim_at, "claim");
                }
            }
        }
        if let Some(at) = self.next_renew {
            consider(at, "renew leases");
        }
        for q in &self.queued {
            let trunk = self.trunks.get(&q.plan.trunk);
            let limits = self.limits(&q.plan.trunk);
            if trunk.is_some_and(|t| t.in_flight >= limits.max_concurrent) {
                continue; // a call ending wakes it
            }
            let gate = trunk.map_or(q.dial_at, |t| {
                q.dial_at.max(t.next_start_at).max(t.blocked_until)
            });
            consider(gate, "dial");
        }
        best
    }

    /// Whether a due contact of `campaign_id` may be claimed at `now`: inside a calling window
    /// in all its zones, else deferred to the next opening. Used by the store's claim.
    pub fn claim_decision(
        &self,
        campaign_id: &CampaignId,
        contact: &CampaignContact,
        now: i64,
    ) -> ClaimDecision {
        let Some(c) = self.campaigns.get(campaign_id) else {
            return ClaimDecision::Defer {
                until: now + self.cfg.poll_ms,
            };
        };
        let Ok(zones) = parse_zones(&contact.time_zone) else {
            tracing::warn!(contact = %contact.id, "contact has an unknown time zone; put off a day");
            return ClaimDecision::Defer {
                until: now + DAY_MS,
            };
        };
        match c.plan.schedule.next_open(&zones, now) {
            Some(at) if at <= now => ClaimDecision::Claim,
            Some(at) => ClaimDecision::Defer { until: at },
            None => ClaimDecision::Defer {
                until: now + DAY_MS,
            },
        }
    }

    /// Calls in progress.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Stopped and nothing left to wait for.
    pub fn is_finished(&self) -> bool {
        self.stopping
            && self.in_flight.is_empty()
            && self.queued.is_empty()
            && self.campaigns.values().all(|c| !c.claim_pending)
    }

    fn holds_claims(&self) -> bool {
        !self.queued.is_empty() || !self.in_flight.is_empty()
    }

    fn limits(&self, trunk: &str) -> TrunkLimits {
        self.cfg
            .trunk_limits
            .get(trunk)
            .copied()
            .unwrap_or(self.cfg.default_trunk_limits)
    }

    fn on_campaigns(&mut self, now: i64, list: Vec<Campaign>) {
        let present: HashSet<CampaignId> = list.iter().map(|c| c.id.clone()).collect();
        self.paused_here.retain(|id| present.contains(id));
        for campaign in list {
            if self.paused_here.contains(&campaign.id) {
                continue;
            }
            let schedule = match crm::campaign::validate_settings(&campaign.settings) {
                Ok(s) => s,
                Err(e) => {
                    self.pause(&campaign.id, format!("invalid settings: {e}"));
                    continue;
                }
            };
            let plan = Arc::new(Plan {
                id: campaign.id.clone(),
                trunk: campaign.trunk,
                flow: campaign.flow,
                settings: campaign.settings,
                schedule,
            });
            match self.campaigns.get_mut(&campaign.id) {
                Some(state) => state.plan = plan,
                None => {
                    self.campaigns.insert(
                        campaign.id,
                        CampaignState {
                            plan,
                            claim_pending: false,
                            next_claim_at: now,
                            recent: VecDeque::new(),
                            last_failure: None,
                        },
                    );
                }
            }
        }
        // Campaigns no longer running (paused, completed): their undialled claims go back.
        let gone: Vec<CampaignId> = self
            .campaigns
            .keys()
            .filter(|id| !present.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            self.drop_campaign(&id);
        }
    }

    fn on_claimed(&mut self, now: i64, campaign_id: &CampaignId, report: ClaimReport) {
        let asked_full = report.claimed.len() as u32 >= self.cfg.claim_batch;
        let plan = match self.campaigns.get_mut(campaign_id) {
            Some(c) if !self.stopping => {
                c.claim_pending = false;
                c.next_claim_at = if report.contended {
                    now + CONTENDED_RETRY_MS
                } else if asked_full {
                    now
                } else {
                    now + self.cfg.poll_ms
                };
                Some(c.plan.clone())
            }
            Some(c) => {
                c.claim_pending = false;
                None
            }
            None => None,
        };
        if report.not_running {
            self.drop_campaign(campaign_id);
        }
        let Some(plan) = plan.filter(|_| !report.not_running) else {
            // Stopping, or the campaign went away meanwhile: give the claims straight back.
            let contacts: Vec<ContactId> =
                report.claimed.into_iter().map(|c| c.contact.id).collect();
            if !contacts.is_empty() {
                self.outputs.push_back(Output::Release { contacts });
            }
            return;
        };
        for claimed in report.claimed {
            let zones = parse_zones(&claimed.contact.time_zone).unwrap_or_default();
            self.queued.push(Queued {
                contact: claimed.contact,
                zones,
                plan: plan.clone(),
                dial_at: claimed.dial_at,
            });
        }
        self.queued.sort_by_key(|q| q.dial_at);
    }

    fn on_call_ended(&mut self, now: i64, contact_id: &ContactId, ended: CallEnd) {
        let Some(call) = self.in_flight.remove(contact_id) else {
            return;
        };
        let trunk_name = call.plan.trunk.clone();
        if let Some(t) = self.trunks.get_mut(&trunk_name) {
            t.in_flight = t.in_flight.saturating_sub(1);
        }
        // A call ending frees capacity: campaigns on that trunk may claim at once.
        for c in self.campaigns.values_mut() {
            if c.plan.trunk == trunk_name {
                c.next_claim_at = c.next_claim_at.min(now);
            }
        }
        if let Some(reason) = &ended.campaign_fault {
            self.pause(&call.plan.id, reason.clone());
        }
        let Some(seq) = ended.seq else {
            return; // nothing was placed; the claim is someone else's now
        };
        let placed = !matches!(
            ended.result,
            AttemptResult::Interrupted | AttemptResult::Lost
        );
        if placed {
            self.note_trunk(now, &trunk_name, ended.trunk_failure);
            self.note_campaign(&call.plan, &ended);
        }
        let next = next_for(&call.plan, &call.zones, seq, &ended, now);
        self.outputs.push_back(Output::Finish(Finish {
            contact_id: contact_id.clone(),
            seq,
            result: ended.result,
            next,
            call_id: ended.call_id,
            end_reason: ended.end_reason,
            detail: ended.detail,
            outcome: ended.outcome,
        }));
    }

    fn note_trunk(&mut self, now: i64, trunk: &str, failure: bool) {
        let (base, max) = (
            self.cfg.trunk_backoff_base_ms,
            self.cfg.trunk_backoff_max_ms,
        );
        let t = self.trunks.entry(trunk.to_owned()).or_default();
        if failure {
            t.failures_in_row += 1;
            let shift = (t.failures_in_row - 1).min(20);
            let wait = base.saturating_mul(1i64 << shift).min(max);
            t.blocked_until = now + wait;
        } else {
            t.failures_in_row = 0;
            t.blocked_until = 0;
        }
    }

    fn note_campaign(&mut self, plan: &Plan, ended: &CallEnd) {
        let pause = plan.settings.pause_on_failures;
        let Some(c) = self.campaigns.get_mut(&plan.id) else {
            return;
        };
        if pause.ratio <= 0.0 || pause.window == 0 {
            return;
        }
        c.recent.push_back(ended.trunk_failure);
        if ended.trunk_failure {
            c.last_failure = ended.detail.clone().or_else(|| ended.end_reason.clone());
        }
        while c.recent.len() > pause.window as usize {
            c.recent.pop_front();
        }
        let failed = c.recent.iter().filter(|f| **f).count();
        if c.recent.len() == pause.window as usize
            && failed as f64 >= pause.ratio * f64::from(pause.window)
        {
            let reason = format!(
                "paused itself: {failed} of the last {} calls failed at trunk {:?} (last: {})",
                pause.window,
                plan.trunk,
                c.last_failure.as_deref().unwrap_or("unknown")
            );
            self.pause(&plan.id, reason);
        }
    }

    fn pause(&mut self, id: &CampaignId, reason: String) {
        if !self.paused_here.insert(id.clone()) {
            return;
        }
        self.outputs.push_back(Output::Pause {
            campaign_id: id.clone(),
            reason,
        });
        self.drop_campaign(id);
    }

    /// Forgets a campaign that no longer runs; its queued (undialled) claims are released.
    fn drop_campaign(&mut self, id: &CampaignId) {
        self.campaigns.remove(id);
        let (gone, keep): (Vec<_>, Vec<_>) = self.queued.drain(..).partition(|q| &q.plan.id == id);
        self.queued = keep;
        let contacts: Vec<ContactId> = gone.into_iter().map(|q| q.contact.id).collect();
        if !contacts.is_empty() {
            self.outputs.push_back(Output::Release { contacts });
        }
    }

    fn dial_due(&mut self, now: i64) {
        let mut i = 0;
        while i < self.queued.len() {
            let q = &self.queued[i];
            let limits = self.limits(&q.plan.trunk);
            let trunk = self.trunks.entry(q.plan.trunk.clone()).or_default();
            let gate = q.dial_at.max(trunk.next_start_at).max(trunk.blocked_until);
            if trunk.in_flight >= limits.max_concurrent || gate > now {
                i += 1;
                continue;
            }
            let q = self.queued.remove(i);
            if !q.plan.schedule.is_open(&q.zones, now) {
                // The window closed while it waited (trunk backoff, pacing).
                let until = q
                    .plan
                    .schedule
                    .next_open(&q.zones, now)
                    .unwrap_or(now + DAY_MS);
                self.outputs.push_back(Output::Defer {
                    contact_id: q.contact.id,
                    until,
                });
                continue;
            }
            let trunk = self.trunks.entry(q.plan.trunk.clone()).or_default();
            trunk.in_flight += 1;
            if limits.calls_per_second > 0.0 {
                trunk.next_start_at = now + (1000.0 / limits.calls_per_second).round() as i64;
            }
            self.in_flight.insert(
                q.contact.id.clone(),
                InFlight {
                    zones: q.zones,
                    plan: q.plan.clone(),
                },
            );
            self.outputs.push_back(Output::Dial(Box::new(Dial {
                campaign_id: q.plan.id.clone(),
                trunk: q.plan.trunk.clone(),
                flow: q.plan.flow.clone(),
                contact: q.contact,
            })));
        }
    }

    fn claim_due(&mut self, now: i64) {
        let mut asks = Vec::new();
        for (id, c) in &self.campaigns {
            if c.claim_pending || now < c.next_claim_at {
                continue;
            }
            let plan = &c.plan;
            let trunk = self.trunks.get(&plan.trunk);
            if let Some(t) = trunk
                && t.blocked_until > now
            {
                asks.push((id.clone(), 0, t.blocked_until));
                continue;
            }
            let limits = self.limits(&plan.trunk);
            let trunk_busy = trunk.map_or(0, |t| t.in_flight)
                + self
                    .queued
                    .iter()
                    .filter(|q| q.plan.trunk == plan.trunk)
                    .count() as u32;
            let campaign_busy = self.in_flight.values().filter(|f| f.plan.id == *id).count()
                + self.queued.iter().filter(|q| q.plan.id == *id).count();
            let max = self
                .cfg
                .claim_batch
                .min(limits.max_concurrent.saturating_sub(trunk_busy))
                .min(
                    plan.settings
                        .max_concurrent
                        .saturating_sub(campaign_busy as u32),
                );
            asks.push((id.clone(), max, now + self.cfg.poll_ms));
        }
        for (id, max, later) in asks {
            let Some(c) = self.campaigns.get_mut(&id) else {
                continue;
            };
            if max == 0 {
                c.next_claim_at = later;
                continue;
            }
            c.claim_pending = true;
            self.outputs.push_back(Output::Claim {
                campaign_id: id,
                max,
            });
        }
    }
}

/// What becomes of a contact after an attempt: reached → done; otherwise the retry rule of the
/// result decides, the next attempt placed at the first calling-window opening after the
/// spacing. An interrupted attempt (our shutdown) is tried again at once, outside the rules.
fn next_for(plan: &Plan, zones: &[TimeZone], seq: i64, ended: &CallEnd, now: i64) -> ContactNext {
    let retry = &plan.settings.retry;
    let (disposition, rule) = match ended.result {
        AttemptResult::Answered => return ContactNext::Done(Disposition::Answered),
        AttemptResult::Completed => return ContactNext::Done(Disposition::Completed),
        AttemptResult::Interrupted | AttemptResult::Lost => {
            return ContactNext::Retry { at: now };
        }
        AttemptResult::Busy => (Disposition::Busy, retry.busy),
        AttemptResult::NoAnswer => (Disposition::NoAnswer, retry.no_answer),
        AttemptResult::Voicemail => (Disposition::Voicemail, retry.voicemail),
        AttemptResult::Failed => (Disposition::Failed, retry.failed),
    };
    if ended.permanent || seq >= i64::from(rule.max_attempts) {
        return ContactNext::Done(disposition);
    }
    let earliest = now + i64::try_from(rule.spacing_secs).unwrap_or(i64::MAX / 2) * 1000;
    let at = plan.schedule.next_open(zones, earliest).unwrap_or(earliest);
    ContactNext::Retry { at }
}
