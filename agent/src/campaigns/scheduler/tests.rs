//! The scheduler in simulated time: an in-memory campaign store (claims with global pacing and
//! concurrency, like the real one), callees with scripted behaviour, and a clock that jumps to
//! the next deadline. Days of calling windows, retries and backoff run in microseconds.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use store::{
    AttemptResult, CallingWindow, Campaign, CampaignContact, CampaignId, CampaignKind,
    CampaignSettings, CampaignStatus, ClaimDecision, ClaimReport, Claimed, ContactId, ContactNext,
    ContactState, Disposition, RetryPolicy, RetryRule, TenantId,
};

use super::*;

fn ms(s: &str) -> i64 {
    s.parse::<Timestamp>().unwrap().as_millisecond()
}

fn config() -> SchedulerConfig {
    SchedulerConfig {
        node: "n1".into(),
        lease_ms: 60_000,
        poll_ms: 1_000,
        refresh_ms: 5_000,
        claim_batch: 10,
        number_busy_retry_ms: 30_000,
        trunk_backoff_base_ms: 1_000,
        trunk_backoff_max_ms: 60_000,
        default_trunk_limits: TrunkLimits {
            max_concurrent: 100,
            calls_per_second: 0.0,
        },
        trunk_limits: HashMap::new(),
    }
}

fn weekdays(start: &str, end: &str) -> Vec<CallingWindow> {
    vec![CallingWindow {
        days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .map(str::to_owned)
            .to_vec(),
        start: start.into(),
        end: end.into(),
    }]
}

/// What a callee does on each attempt (the last entry repeats), and how long calls last.
#[derive(Clone)]
struct Callee {
    results: Vec<AttemptResult>,
    trunk_failure: bool,
    duration_ms: i64,
}

impl Callee {
    fn answers() -> Self {
        Self {
            results: vec![AttemptResult::Answered],
            trunk_failure: false,
            duration_ms: 10_000,
        }
    }
}

struct Contact {
    c: CampaignContact,
    callee: Callee,
    dials: Vec<i64>,
}

struct Sim {
    now: i64,
    s: Scheduler,
    campaign: Campaign,
    next_dial_at: i64,
    contacts: BTreeMap<String, Contact>,
    /// (end time, contact id, seq)
    calls: Vec<(i64, ContactId, i64)>,
    /// Every call start: (time, phone).
    log: Vec<(i64, String)>,
    in_flight_max: usize,
    paused: Option<String>,
    renewals: Vec<i64>,
    releases: Vec<ContactId>,
    claims_asked: usize,
}

impl Sim {
    fn new(now: i64, cfg: SchedulerConfig, settings: CampaignSettings) -> Self {
        let campaign = Campaign {
            id: CampaignId::new("camp"),
            tenant_id: TenantId::new("t"),
            name: "c".into(),
            kind: CampaignKind::List,
            flow: "payment_reminder".into(),
            trunk: "kam".into(),
            status: CampaignStatus::Running,
            status_reason: None,
            settings,
            created_at: now,
            updated_at: now,
        };
        Self {
            now,
            s: Scheduler::new(cfg, now),
            campaign,
            next_dial_at: now,
            contacts: BTreeMap::new(),
            calls: Vec::new(),
            log: Vec::new(),
            in_flight_max: 0,
            paused: None,
            renewals: Vec::new(),
            releases: Vec::new(),
            claims_asked: 0,
        }
    }

    fn add(&mut self, phone: &str, zone: &str, callee: Callee) -> ContactId {
        let id = ContactId::new(format!("k{:04}", self.contacts.len()));
        let c = CampaignContact {
            id: id.clone(),
            campaign_id: self.campaign.id.clone(),
            tenant_id: self.campaign.tenant_id.clone(),
            line: None,
            phone: phone.into(),
            name: None,
            time_zone: zone.into(),
            variables: serde_json::json!({}),
            customer_id: None,
            callback_id: None,
            state: ContactState::Pending,
            disposition: None,
            outcome: None,
            attempts: 0,
            next_attempt_at: self.now,
            claimed_by: None,
            lease_until: None,
            dial_at: None,
            last_call_id: None,
            updated_at: self.now,
        };
        self.contacts.insert(
            id.as_str().to_owned(),
            Contact {
                c,
                callee,
                dials: Vec::new(),
            },
        );
        id
    }

    fn contact(&self, id: &ContactId) -> &Contact {
        &self.contacts[id.as_str()]
    }

    /// The in-memory store's claim: due contacts in order, the scheduler's decision, the
    /// campaign's global concurrency and pacing.
    fn claim(&mut self, max: u32) -> ClaimReport {
        let mut report = ClaimReport::default();
        if self.campaign.status != CampaignStatus::Running {
            report.not_running = true;
            return report;
        }
        let settings = &self.campaign.settings;
        let live = self
            .contacts
            .values()
            .filter(|c| c.c.state == ContactState::Claimed)
            .count() as u32;
        let free = settings.max_concurrent.saturating_sub(live).min(max);
        let interval = (1000.0 / settings.calls_per_second).round() as i64;
        let mut slot = self.next_dial_at.max(self.now);
        let mut due: Vec<String> = self
            .contacts
            .iter()
            .filter(|(_, c)| c.c.state == ContactState::Pending && c.c.next_attempt_at <= self.now)
            .map(|(k, _)| k.clone())
            .collect();
        due.sort_by_key(|k| (self.contacts[k].c.next_attempt_at, k.clone()));
        for key in due {
            if report.claimed.len() as u32 == free {
                break;
            }
            let decision =
                self.s
                    .claim_decision(&self.campaign.id, &self.contacts[&key].c, self.now);
            let c = self.contacts.get_mut(&key).unwrap();
            match decision {
                ClaimDecision::Defer { until } => {
                    assert!(until > self.now, "deferred into the past");
                    c.c.next_attempt_at = until;
                    report.deferred += 1;
                }
                ClaimDecision::Claim => {
                    c.c.state = ContactState::Claimed;
                    report.claimed.push(Claimed {
                        contact: c.c.clone(),
                        dial_at: slot,
                    });
                    slot += interval;
                }
            }
        }
        self.next_dial_at = slot;
        report
    }

    fn drain(&mut self) {
        while let Some(out) = self.s.poll_output() {
            match out {
                Output::RefreshCampaigns => {
                    let list = if self.campaign.status == CampaignStatus::Running {
                        vec![self.campaign.clone()]
                    } else {
                        vec![]
                    };
                    self.s.handle(self.now, Input::Campaigns(list));
                }
                Output::Claim { campaign_id, max } => {
                    self.claims_asked += 1;
                    let report = self.claim(max);
                    self.s.handle(
                        self.now,
                        Input::Claimed {
                            campaign_id,
                            report,
                        },
                    );
                }
                Output::Dial(d) => {
                    let c = self.contacts.get_mut(d.contact.id.as_str()).unwrap();
                    assert_eq!(c.c.state, ContactState::Claimed);
                    c.c.attempts += 1;
                    c.dials.push(self.now);
                    self.log.push((self.now, c.c.phone.clone()));
                    let seq = c.c.attempts;
                    self.calls
                        .push((self.now + c.callee.duration_ms, d.contact.id.clone(), seq));
                    self.in_flight_max = self.in_flight_max.max(self.calls.len());
                }
                Output::Finish(f) => {
                    let c = self.contacts.get_mut(f.contact_id.as_str()).unwrap();
                    c.c.disposition = f.result.disposition().or(c.c.disposition);
                    match f.next {
                        ContactNext::Done(d) => {
                            c.c.state = ContactState::Done;
                            c.c.disposition = Some(d);
                        }
                        ContactNext::Retry { at } => {
                            c.c.state = ContactState::Pending;
                            c.c.next_attempt_at = at;
                        }
                    }
                }
                Output::Release { contacts } => {
                    for id in contacts {
                        let c = self.contacts.get_mut(id.as_str()).unwrap();
                        c.c.state = ContactState::Pending;
                        self.releases.push(id);
                    }
                }
                Output::Defer { contact_id, until } => {
                    let c = self.contacts.get_mut(contact_id.as_str()).unwrap();
                    c.c.state = ContactState::Pending;
                    c.c.next_attempt_at = until;
                }
                Output::RenewLeases { contacts, until } => {
                    assert_eq!(until, self.now + 60_000);
                    let held = self
                        .contacts
                        .values()
                        .filter(|c| c.c.state == ContactState::Claimed)
                        .count();
                    assert_eq!(contacts.len(), held, "every held claim, nothing else");
                    self.renewals.push(self.now);
                }
                Output::Pause {
                    campaign_id,
                    reason,
                } => {
                    assert_eq!(campaign_id, self.campaign.id);
                    self.campaign.status = CampaignStatus::Paused;
                    self.paused = Some(reason);
                }
            }
        }
    }

    /// Runs until `until` (simulated), jumping from deadline to deadline.
    fn run_until(&mut self, until: i64) {
        self.s.handle_timeout(self.now);
        loop {
            self.drain();
            let timer = self.s.poll_timeout().map(|(t, _)| t);
            let call_end = self.calls.iter().map(|(t, _, _)| *t).min();
            let next = [timer, call_end].into_iter().flatten().min();
            let Some(next) = next.filter(|&t| t <= until) else {
                self.now = until;
                return;
            };
            assert!(next >= self.now, "time went backwards");
            self.now = next;
            if let Some(i) = self.calls.iter().position(|(t, _, _)| *t <= self.now) {
                let (_, id, seq) = self.calls.remove(i);
                let callee = &self.contacts[id.as_str()].callee;
                let result = callee.results[(seq as usize - 1).min(callee.results.len() - 1)];
                let ended = CallEnd {
                    seq: Some(seq),
                    result,
                    trunk_failure: callee.trunk_failure,
                    permanent: false,
                    campaign_fault: None,
                    call_id: None,
                    end_reason: None,
                    detail: Some("503 Service Unavailable".into()),
                    outcome: None,
                };
                self.s.handle(
                    self.now,
                    Input::CallEnded {
                        contact_id: id,
                        ended,
                    },
                );
            } else {
                self.s.handle_timeout(self.now);
            }
        }
    }
}

fn local(ms_: i64, zone: &str) -> jiff::Zoned {
    Timestamp::from_millisecond(ms_)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get(zone).unwrap())
}

#[test]
fn calls_start_inside_each_callees_window_across_zones_and_dst() {
    let settings = CampaignSettings {
        windows: weekdays("09:00", "17:00"),
        ..CampaignSettings::default()
    };
    // Saturday 2026-03-07 20:00 UTC: 15:00 in New York, 05:00 Sunday in Tokyo, 20:00 London.
    let mut sim = Sim::new(ms("2026-03-07T20:00:00Z"), config(), settings);
    let ny = sim.add("+12125550100", "America/New_York", Callee::answers());
    let tokyo = sim.add("+81312345678", "Asia/Tokyo", Callee::answers());
    let london = sim.add("+442079460000", "Europe/London", Callee::answers());
    // A New Yorker busy at 15:00 is retried the next day, Sunday 2026-03-08, the day US
    // daylight saving starts: 09:00 EDT is 13:00 UTC, not 14:00.
    sim.contacts.get_mut(ny.as_str()).unwrap().callee.results =
        vec![AttemptResult::Busy, AttemptResult::Answered];
    sim.campaign.settings.retry.busy = RetryRule::new(3, 3 * 3600);
    sim.run_until(ms("2026-03-09T00:00:00Z"));

    let ny_dials = &sim.contact(&ny).dials;
    assert_eq!(ny_dials[0], ms("2026-03-07T20:00:00Z"), "open at once");
    // 3 h after 15:00 is 18:00, after the window: the next opening is Sunday 09:00 EDT.
    assert_eq!(ny_dials[1], ms("2026-03-08T13:00:00Z"));
    assert_eq!(
        sim.contact(&tokyo).dials,
        [ms("2026-03-08T00:00:00Z")],
        "09:00 JST"
    );
    assert_eq!(
        sim.contact(&london).dials,
        [ms("2026-03-08T09:00:00Z")],
        "09:00 GMT"
    );
    for (at, phone) in &sim.log {
        let zone = match &phone[..3] {
            "+12" => "America/New_York",
            "+81" => "Asia/Tokyo",
            _ => "Europe/London",
        };
        let t = local(*at, zone);
        assert!((9..17).contains(&t.hour()), "{phone} called at {t}");
    }
    assert_eq!(sim.contact(&ny).c.disposition, Some(Disposition::Answered));
}

#[test]
fn retries_follow_the_rule_of_each_outcome() {
    let settings = CampaignSettings {
        windows: weekdays("00:00", "24:00"),
        retry: RetryPolicy {
            busy: RetryRule::new(3, 600),
            no_answer: RetryRule::new(2, 3600),
            voicemail: RetryRule::new(1, 0),
            failed: RetryRule::new(2, 120),
        },
        ..CampaignSettings::default()
    };
    let start = ms("2026-05-05T12:00:00Z");
    let mut sim = Sim::new(start, config(), settings);
    let cb = |r: Vec<AttemptResult>| Callee {
        results: r,
        trunk_failure: false,
        duration_ms: 5_000,
    };
    let busy = sim.add("+15550000001", "UTC", cb(vec![AttemptResult::Busy]));
    let no_answer = sim.add("+15550000002", "UTC", cb(vec![AttemptResult::NoAnswer]));
    let machine = sim.add("+15550000003", "UTC", cb(vec![AttemptResult::Voicemail]));
    let late = sim.add(
        "+15550000004",
        "UTC",
        cb(vec![AttemptResult::Failed, AttemptResult::Completed]),
    );
    sim.run_until(start + 24 * 3600 * 1000);

    let gaps = |id: &ContactId| -> Vec<i64> {
        sim.contact(id)
            .dials
            .windows(2)
            .map(|w| w[1] - w[0])
            .collect()
    };
    // Busy: 3 attempts, each 600 s after the previous call ended (5 s calls).
    assert_eq!(gaps(&busy), [605_000, 605_000]);
    assert_eq!(sim.contact(&busy).c.disposition, Some(Disposition::Busy));
    assert_eq!(sim.contact(&busy).c.state, ContactState::Done);
    assert_eq!(gaps(&no_answer), [3_605_000]);
    assert_eq!(
        sim.contact(&no_answer).c.disposition,
        Some(Disposition::NoAnswer)
    );
    assert_eq!(
        sim.contact(&machine).dials.len(),
        1,
        "one message is enough"
    );
    assert_eq!(
        sim.contact(&machine).c.disposition,
        Some(Disposition::Voicemail)
    );
    assert_eq!(gaps(&late), [125_000]);
    assert_eq!(
        sim.contact(&late).c.disposition,
        Some(Disposition::Completed)
    );
}

#[test]
fn pacing_holds_per_campaign_and_per_trunk() {
    let settings = CampaignSettings {
        windows: weekdays("00:00", "24:00"),
        max_concurrent: 3,
        calls_per_second: 2.0,
        ..CampaignSettings::default()
    };
    let start = ms("2026-05-05T12:00:00Z");
    let mut sim = Sim::new(start, config(), settings.clone());
    for i in 0..20 {
        sim.add(&format!("+1555000{i:04}"), "UTC", Callee::answers());
    }
    sim.run_until(start + 600_000);
    assert_eq!(sim.log.len(), 20);
    assert_eq!(sim.in_flight_max, 3, "campaign max_concurrent");
    let starts: Vec<i64> = sim.log.iter().map(|(t, _)| *t).collect();
    assert!(starts.windows(2).all(|w| w[1] - w[0] >= 500), "{starts:?}");

    // The same campaign through a trunk limited to 2 calls and 1 call per second here.
    let mut cfg = config();
    cfg.trunk_limits.insert(
        "kam".into(),
        TrunkLimits {
            max_concurrent: 2,
            calls_per_second: 1.0,
        },
    );
    let mut sim = Sim::new(start, cfg, settings);
    for i in 0..20 {
        sim.add(&format!("+1555000{i:04}"), "UTC", Callee::answers());
    }
    sim.run_until(start + 600_000);
    assert_eq!(sim.log.len(), 20);
    assert_eq!(sim.in_flight_max, 2, "trunk max_concurrent");
    let starts: Vec<i64> = sim.log.iter().map(|(t, _)| *t).collect();
    assert!(starts.windows(2).all(|w| w[1] - w[0] >= 1000), "{starts:?}");
}

#[test]
fn a_refusing_trunk_backs_off_and_the_campaign_pauses_itself() {
    let settings = CampaignSettings {
        windows: weekdays("00:00", "24:00"),
        max_concurrent: 1,
        calls_per_second: 10.0,
        pause_on_failures: store::FailurePause {
            ratio: 0.75,
            window: 4,
        },
        ..CampaignSettings::default()
    };
    let start = ms("2026-05-05T12:00:00Z");
    let mut sim = Sim::new(start, config(), settings);
    let refused = Callee {
        results: vec![AttemptResult::Failed],
        trunk_failure: true,
        duration_ms: 100,
    };
    for i in 0..10 {
        sim.add(&format!("+1555000{i:04}"), "UTC", refused.clone());
    }
    sim.run_until(start + 3_600_000);
    // 1 s, 2 s, 4 s between the failures (after each 100 ms call), then the pause.
    let starts: Vec<i64> = sim.log.iter().map(|(t, _)| t - start).collect();
    assert_eq!(starts, [0, 1_100, 3_200, 7_300]);
    let reason = sim.paused.as_deref().expect("paused itself");
    assert!(
        reason.contains("4 of the last 4 calls failed") && reason.contains("503"),
        "{reason}"
    );
    // Nothing else was dialled or left claimed.
    assert!(
        sim.contacts
            .values()
            .all(|c| c.c.state != ContactState::Claimed)
    );
}

#[test]
fn a_working_call_resets_the_backoff() {
    let mut sched = Scheduler::new(config(), 0);
    sched.note_trunk(0, "kam", true);
    sched.note_trunk(0, "kam", true);
    assert_eq!(sched.trunks["kam"].blocked_until, 2_000);
    sched.note_trunk(5_000, "kam", false);
    assert_eq!(sched.trunks["kam"].blocked_until, 0);
    for _ in 0..30 {
        sched.note_trunk(0, "kam", true);
    }
    assert_eq!(sched.trunks["kam"].blocked_until, 60_000, "capped");
}

#[test]
fn leases_are_renewed_only_while_claims_are_held() {
    let settings = CampaignSettings {
        windows: weekdays("00:00", "24:00"),
        max_concurrent: 1,
        ..CampaignSettings::default()
    };
    let start = ms("2026-05-05T12:00:00Z");
    let mut sim = Sim::new(start, config(), settings);
    sim.add(
        "+15550000001",
        "UTC",
        Callee {
            duration_ms: 100_000,
            ..Callee::answers()
        },
    );
    sim.run_until(start + 400_000);
    // Held from 0 to 100 s (the call's end): renewed every 20 s meanwhile, never after.
    let at: Vec<i64> = sim.renewals.iter().map(|t| t - start).collect();
    assert_eq!(at, [20_000, 40_000, 60_000, 80_000]);
}

#[test]
fn stopping_releases_queued_claims_and_lets_calls_finish() {
    let settings = CampaignSettings {
        windows: weekdays("00:00", "24:00"),
        max_concurrent: 5,
        calls_per_second: 0.1,
        ..CampaignSettings::default()
    };
    let start = ms("2026-05-05T12:00:00Z");
    let mut sim = Sim::new(start, config(), settings);
    for i in 0..5 {
        sim.add(&format!("+1555000{i:04}"), "UTC", Callee::answers());
    }
    // At 15 s: two calls placed (0 s and 10 s), three queued for 20, 30, 40 s.
    sim.run_until(start + 15_000);
    assert_eq!(sim.log.len(), 2);
    sim.s.handle(sim.now, Input::Stop);
    sim.drain();
    assert_eq!(sim.releases.len(), 3);
    assert!(!sim.s.is_finished(), "calls in progress");
    let claims = sim.claims_asked;
    sim.run_until(start + 120_000);
    assert_eq!(sim.log.len(), 2, "nothing new dialled");
    assert_eq!(sim.claims_asked, claims, "no claims after stop");
    assert!(sim.s.is_finished());
    let done = sim
        .contacts
        .values()
        .filter(|c| c.c.state == ContactState::Done)
        .count();
    assert_eq!(done, 2, "both calls were recorded");
    // A claim answered after the stop goes straight back.
    let mut sched = Scheduler::new(config(), 0);
    sched.handle(0, Input::Stop);
    let late = ClaimReport {
        claimed: vec![Claimed {
            contact: sim.contacts.values().next().unwrap().c.clone(),
            dial_at: 0,
        }],
        ..ClaimReport::default()
    };
    sched.handle(
        1,
        Input::Claimed {
            campaign_id: CampaignId::new("camp"),
            report: late,
        },
    );
    assert!(matches!(sched.poll_output(), Some(Output::Release { .. })));
}

#[test]
fn contended_claims_are_retried_soon_and_faults_pause() {
    let mut sched = Scheduler::new(config(), 0);
    let campaign = Sim::new(0, config(), CampaignSettings::default()).campaign;
    sched.handle(0, Input::Campaigns(vec![campaign.clone()]));
    let claim = std::iter::from_fn(|| sched.poll_output())
        .find(|o| matches!(o, Output::Claim { .. }))
        .expect("claims at once");
    assert_eq!(
        claim,
        Output::Claim {
            campaign_id: campaign.id.clone(),
            max: 5
        },
        "min(batch 10, campaign max_concurrent 5)"
    );
    sched.handle(
        10,
        Input::Claimed {
            campaign_id: campaign.id.clone(),
            report: ClaimReport {
                contended: true,
                ..ClaimReport::default()
            },
        },
    );
    assert_eq!(sched.poll_timeout(), Some((210, "claim")));
    // A campaign with broken settings pauses instead of running.
    let mut broken = campaign;
    broken.id = CampaignId::new("broken");
    broken.settings.windows.clear();
    sched.handle(20, Input::Campaigns(vec![broken]));
    let pause =
        std::iter::from_fn(|| sched.poll_output()).find(|o| matches!(o, Output::Pause { .. }));
    assert!(
        matches!(&pause, Some(Output::Pause { reason, .. }) if reason.contains("windows")),
        "{pause:?}"
    );
}
