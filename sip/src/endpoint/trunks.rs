//! Trunks: registration (REGISTER with digest auth, see `registration.rs`) and OPTIONS
//! keepalives with health reporting, one state per trunk, driven by the endpoint's timers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::events::{Event, RegistrationState};
use super::registration::Registration;
use super::{Endpoint, Purpose, TimerOwner, Tx};
use crate::auth::Credentials;
use crate::message::{Contact, Method, Request, Response, Uri};
use crate::transaction::{Deadline, NonInviteClient, TxKey, earliest};
use crate::transmit::TransportKind;

/// A SIP trunk (carrier or proxy) as the core needs it. DNS is the driver's job: `proxy` is
/// the resolved address of the registrar/outbound proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    /// Registrar / outbound proxy address.
    pub proxy: SocketAddr,
    /// The trunk's SIP domain: registrar URI `sip:{domain}`, AOR `sip:{user}@{domain}`.
    pub domain: String,
    /// AOR user part; defaults to the credentials' username, then our Contact user.
    pub user: Option<String>,
    /// `None`: UDP (TCP for large requests when enabled); `Some`: always this transport.
    pub transport: Option<TransportKind>,
    pub credentials: Option<Credentials>,
    /// Register with the trunk when added.
    pub register: bool,
    /// The expiry we ask for, seconds.
    pub register_expires: u32,
    /// Backoff after failed registrations: first delay, doubling up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Send OPTIONS this often and report [`Event::TrunkHealth`].
    pub keepalive_interval: Option<Duration>,
}

impl Trunk {
    pub fn new(name: impl Into<String>, proxy: SocketAddr, domain: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            proxy,
            domain: domain.into(),
            user: None,
            transport: None,
            credentials: None,
            register: false,
            register_expires: 3600,
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(600),
            keepalive_interval: None,
        }
    }

    fn aor_user<'a>(&'a self, fallback: &'a str) -> &'a str {
        self.user
            .as_deref()
            .or(self.credentials.as_ref().map(|c| c.username.as_str()))
            .unwrap_or(fallback)
    }
}

/// Trunk commands that failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TrunkError {
    #[error("no trunk named {0:?}")]
    Unknown(String),
    #[error("trunk domain {0:?} does not form a SIP URI")]
    InvalidDomain(String),
}

/// The last keepalive result of a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrunkHealth {
    pub up: bool,
    pub rtt: Option<Duration>,
    pub checked_at: Instant,
}

#[derive(Debug)]
pub(super) struct TrunkState {
    pub(super) config: Trunk,
    registrar: Uri,
    reg: Registration,
    /// Whether we want to be registered (cleared by `unregister`).
    wanted: bool,
    keepalive_next: Option<Instant>,
    /// When the OPTIONS in flight was sent.
    probe_sent: Option<Instant>,
    health: Option<TrunkHealth>,
}

impl TrunkState {
    pub(super) fn deadline(&self) -> Deadline {
        earliest(&[
            self.reg.deadline(),
            self.keepalive_next.map(|t| (t, "OPTIONS keepalive")),
        ])
    }
}

impl Endpoint {
    /// Adds (or replaces) a trunk; registers at once when `trunk.register`, and starts OPTIONS
    /// keepalives when `trunk.keepalive_interval` is set.
    pub fn add_trunk(&mut self, now: Instant, trunk: Trunk) -> Result<(), TrunkError> {
        let registrar = Uri::parse(&format!("sip:{}", trunk.domain))
            .map_err(|_| TrunkError::InvalidDomain(trunk.domain.clone()))?;
        let host = self.config.sent_by();
        let state = TrunkState {
            registrar,
            reg: Registration::new(
                self.ids.call_id(&host),
                self.ids.initial_cseq(),
                trunk.register_expires,
            ),
            wanted: trunk.register,
            keepalive_next: trunk.keepalive_interval.map(|_| now),
            probe_sent: None,
            health: None,
            config: trunk,
        };
        let idx = match self.trunk_index(&state.config.name) {
            Some(i) => {
                self.trunks[i as usize] = Some(state);
                i
            }
            None => {
                self.trunks.push(Some(state));
                (self.trunks.len() - 1) as u32
            }
        };
        if self.trunks[idx as usize].as_ref().is_some_and(|t| t.wanted) {
            let expires = self.trunks[idx as usize]
                .as_ref()
                .map_or(0, |t| t.reg.requested);
            self.send_register(now, idx, expires);
        }
        self.trunk_timeout(now, idx);
        Ok(())
    }

    /// Forgets a trunk, unregistering first when it is registered (the response is ignored).
    pub fn remove_trunk(&mut self, now: Instant, name: &str) -> Result<(), TrunkError> {
        let idx = self
            .trunk_index(name)
            .ok_or_else(|| TrunkError::Unknown(name.to_owned()))?;
        self.unregister(now, name)?;
        self.trunks[idx as usize] = None;
        Ok(())
    }

    /// (Re-)registers with a trunk now.
    pub fn register(&mut self, now: Instant, name: &str) -> Result<(), TrunkError> {
        let idx = self
            .trunk_index(name)
            .ok_or_else(|| TrunkError::Unknown(name.to_owned()))?;
        let Some(t) = self.trunks[idx as usize].as_mut() else {
            return Err(TrunkError::Unknown(name.to_owned()));
        };
        t.wanted = true;
        let expires = t.reg.requested;
        self.send_register(now, idx, expires);
        Ok(())
    }

    /// Removes our binding (REGISTER with Expires: 0) and stops refreshing; for shutdown.
    /// The state becomes `Unregistered` when the registrar answers (or does not).
    pub fn unregister(&mut self, now: Instant, name: &str) -> Result<(), TrunkError> {
        let idx = self
            .trunk_index(name)
            .ok_or_else(|| TrunkError::Unknown(name.to_owned()))?;
        let Some(t) = self.trunks[idx as usize].as_mut() else {
            return Err(TrunkError::Unknown(name.to_owned()));
        };
        t.wanted = false;
        t.reg.stop();
        let bound = t.reg.pending.is_some() || t.reg.state != RegistrationState::Unregistered;
        if bound {
            self.send_register(now, idx, 0);
        }
        Ok(())
    }

    /// A trunk's registration state (`None` for an unknown trunk).
    pub fn registration_state(&self, name: &str) -> Option<RegistrationState> {
        self.trunk(name).map(|t| t.reg.state)
    }

    /// A trunk's last keepalive result (`None` before the first, or for an unknown trunk).
    pub fn trunk_health(&self, name: &str) -> Option<TrunkHealth> {
        self.trunk(name).and_then(|t| t.health)
    }

    // ---- internals --------------------------------------------------------------------

    fn trunk_index(&self, name: &str) -> Option<u32> {
        self.trunks
            .iter()
            .position(|t| t.as_ref().is_some_and(|t| t.config.name == name))
            .map(|i| i as u32)
    }

    fn trunk(&self, name: &str) -> Option<&TrunkState> {
        let i = self.trunk_index(name)?;
        self.trunks.get(i as usize)?.as_ref()
    }

    pub(super) fn trunk_config(&self, name: &str) -> Option<&Trunk> {
        self.trunk(name).map(|t| &t.config)
    }

    pub(super) fn trunk_timeout(&mut self, now: Instant, idx: u32) {
        let Some(t) = self.trunks.get(idx as usize).and_then(Option::as_ref) else {
            return;
        };
        if t.wanted && t.reg.due(now) {
            let expires = t.reg.requested;
            self.send_register(now, idx, expires);
        }
        let probe_due = self
            .trunks
            .get(idx as usize)
            .and_then(Option::as_ref)
            .is_some_and(|t| t.keepalive_next.is_some_and(|k| k <= now));
        if probe_due {
            self.send_probe(now, idx);
        }
        self.schedule(TimerOwner::Trunk(idx));
    }

    fn send_register(&mut self, now: Instant, idx: u32, expires: u32) {
        let (via, branch) = self.via();
        let tag = self.ids.tag();
        let cnonce = self.ids.token();
        let contact_user = self.config.contact_user.clone();
        let user_agent = self.config.user_agent.clone();
        let Some(t) = self.trunks.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        let aor = format!(
            "<sip:{}@{}>",
            t.config.aor_user(&contact_user),
            t.config.domain
        );
        let mut req = Request::new(Method::Register, t.registrar.clone());
        req.headers.push("Via", via);
        req.headers.push("Max-Forwards", "70");
        req.headers.push("From", format!("{aor};tag={tag}"));
        req.headers.push("To", aor);
        req.headers.push("Call-ID", t.reg.call_id.as_str());
        req.headers
            .push("CSeq", format!("{} REGISTER", t.reg.seq.wrapping_add(1)));
        req.headers.push("Contact", self.config.contact());
        req.headers.push("Expires", expires.to_string());
        req.headers.push("Allow", super::ALLOWED_METHODS);
        req.headers.push("User-Agent", user_agent);
        if let Some(creds) = &t.config.credentials
            && t.reg.digest.has_challenges()
        {
            let uri = req.uri.to_string();
            for (n, v) in t
                .reg
                .digest
                .authorize(creds, &Method::Register, &uri, b"", &cnonce)
            {
                req.headers.push(n, v);
            }
        }
        let (proxy, pref) = (t.config.proxy, t.config.transport);
        let target = self.route_request(&mut req, proxy, pref, None);
        if expires == 0 {
            // Remove exactly our binding (RFC 3261 §10.2.2).
            let c = req.headers.get("Contact").unwrap_or_default().to_owned();
            req.headers.set("Contact", format!("{c};expires=0"));
        }
        let tx = NonInviteClient::start(
            now,
            req.to_bytes(),
            target,
            self.config.timers,
            &mut self.out,
        );
        let id = self.add_tx(
            TxKey::client(&branch, &Method::Register),
            Tx::NonInviteClient(tx),
            None,
            Purpose::Register(idx),
        );
        let Some(t) = self.trunks.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        let changed = t.reg.sending(id, expires);
        self.registration_changed(idx, changed);
    }

    pub(super) fn on_register_response(
        &mut self,
        now: Instant,
        idx: u32,
        tx: u64,
        resp: &Response,
    ) {
        if resp.status < 200 {
            return;
        }
        let our_contact = self.config.contact_user.clone();
        let sent_by = self.config.sent_by();
        let Some(t) = self.trunks.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        if t.reg.pending != Some(tx) {
            return;
        }
        let expires = t.reg.pending_expires;
        let (base, max) = (t.config.retry_base, t.config.retry_max);
        let changed = match resp.status {
            200..=299 => {
                let granted = if expires == 0 {
                    0
                } else {
                    granted_expiry(resp, &our_contact, &sent_by).unwrap_or(expires)
                };
                t.reg.succeeded(now, granted)
            }
            401 | 407 => match t
                .reg
                .digest
                .on_challenge(resp, t.config.credentials.as_ref())
            {
                Ok(()) => {
                    self.stats.auth_challenges_answered += 1;
                    t.reg.pending = None;
                    self.send_register(now, idx, expires);
                    return;
                }
                Err(_) => t.reg.failed(now, resp.status, base, max),
            },
            423 => {
                let min = resp
                    .headers
                    .get("Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok());
                match min {
                    Some(m) if m > expires && expires > 0 => {
                        t.reg.requested = m;
                        t.reg.pending = None;
                        self.send_register(now, idx, m);
                        return;
                    }
                    _ => t.reg.failed(now, 423, base, max),
                }
            }
            status => t.reg.failed(now, status, base, max),
        };
        self.registration_changed(idx, changed);
        self.schedule(TimerOwner::Trunk(idx));
    }

    pub(super) fn on_register_failed(&mut self, now: Instant, idx: u32, tx: u64) {
        let Some(t) = self.trunks.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        if t.reg.pending != Some(tx) {
            return;
        }
        let changed = t
            .reg
            .failed(now, 408, t.config.retry_base, t.config.retry_max);
        self.registration_changed(idx, changed);
        self.schedule(TimerOwner::Trunk(idx));
    }

    fn registration_changed(&mut self, idx: u32, changed: Option<RegistrationState>) {
        let Some(state) = changed else {
            return;
        };
        let Some(t) = self.trunks.get(idx as usize).and_then(Option::as_ref) else {
            return;
        };
        self.events.push_back(Event::RegistrationChanged {
            trunk: t.config.name.clone(),
            state,
        });
    }

    fn send_probe(&mut self, now: Instant, idx: u32) {
        let (via, branch) = self.via();
        let tag = self.ids.tag();
        let host = self.config.sent_by();
        let call_id = self.ids.call_id(&host);
        let contact_user = self.config.contact_user.clone();
        let user_agent = self.config.user_agent.clone();
        let Some(t) = self.trunks.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        let interval = t
            .config
            .keepalive_interval
            .unwrap_or(Duration::from_secs(30));
        t.keepalive_next = Some(now + interval);
        if t.probe_sent.is_some() {
            // The previous probe is still out (Timer F will report it).
            return;
        }
        t.probe_sent = Some(now);
        let mut req = Request::new(Method::Options, t.registrar.clone());
        req.headers.push("Via", via);
        req.headers.push("Max-Forwards", "70");
        req.headers.push(
            "From",
            format!(
                "<sip:{}@{}>;tag={tag}",
                t.config.aor_user(&contact_user),
                t.config.domain
            ),
        );
        req.headers.push("To", format!("<{}>", t.registrar));
        req.headers.push("Call-ID", call_id);
        req.headers.push("CSeq", "1 OPTIONS");
        req.headers.push("Accept", "application/sdp");
        req.headers.push("User-Agent", user_agent);
        let (proxy, pref) = (t.config.proxy, t.config.transport);
        let target = self.route_request(&mut req, proxy, pref, None);
        let tx = NonInviteClient::start(
            now,
            req.to_bytes(),
            target,
            self.config.timers,
            &mut self.out,
        );
        self.add_tx(
            TxKey::client(&branch, &Method::Options),
            Tx::NonInviteClient(tx),
            None,
            Purpose::Keepalive(idx),
        );
    }

    pub(super) fn on_keepalive_response(&mut self, now: Instant, idx: u32, resp: &Response) {
        if resp.status < 200 {
            return;
        }
        // Any answer shows the trunk alive, except the ones that say it cannot serve.
        let up = !matches!(resp.status, 408 | 503 | 504);
        self.probe_done(now, idx, up, true);
    }

    pub(super) fn on_keepalive_failed(&mut self, now: Instant, idx: u32) {
        self.probe_done(now, idx, false, false);
    }

    fn probe_done(&mut self, now: Instant, idx: u32, up: bool, answered: bool) {
        let Some(t) = self.trunks.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(sent) = t.probe_sent.take() else {
            return;
        };
        let rtt = answered.then(|| now.saturating_duration_since(sent));
        t.health = Some(TrunkHealth {
            up,
            rtt,
            checked_at: now,
        });
        self.events.push_back(Event::TrunkHealth {
            trunk: t.config.name.clone(),
            up,
            rtt,
        });
    }
}

/// The expiry the registrar granted our binding: our Contact's `expires` parameter, else the
/// Expires header (RFC 3261 §10.2.4).
fn granted_expiry(resp: &Response, contact_user: &str, sent_by: &str) -> Option<u32> {
    if let Ok(Some(Contact::List(contacts))) = resp.headers.contact() {
        let ours = contacts.iter().find(|c| {
            c.uri.as_sip().is_some_and(|u| {
                let hostport = match u.port {
                    Some(p) => format!("{}:{p}", u.host),
                    None => u.host.to_string(),
                };
                u.user.as_deref() == Some(contact_user) && hostport.eq_ignore_ascii_case(sent_by)
            })
        });
        let chosen = ours.or(if contacts.len() == 1 {
            contacts.first()
        } else {
            None
        });
        if let Some(e) = chosen
            .and_then(|c| c.params.value("expires"))
            .and_then(|v| v.trim().parse().ok())
        {
            return Some(e);
        }
    }
    resp.headers.expires().ok().flatten()
}
