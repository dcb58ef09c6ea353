//! An in-memory network joining two endpoints (quinn-proto `Pair` style): datagrams travel with
//! a fixed latency, may be lost (seeded) or dropped by a filter, and `step` jumps simulated time
//! to the next delivery or timer. No sockets, no sleeping.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::message::{Method, SipMessage, parse_datagram};
use sip::{Config, Endpoint, Event};

pub const UAC: &str = "192.0.2.10:5060";
pub const UAS: &str = "192.0.2.20:5060";

/// The single clock read of the tests: an arbitrary origin for simulated time.
#[allow(clippy::disallowed_methods)]
pub fn epoch() -> Instant {
    Instant::now()
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

pub fn config(local: &str, seed: u64) -> Config {
    let mut c = Config::new(addr(local));
    c.seed = seed;
    c.user_agent = "test".into();
    c
}

/// A datagram in flight.
#[derive(Debug, Clone)]
pub struct Packet {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
    pub deliver_at: Instant,
}

impl Packet {
    /// `"INVITE"`, `"ACK"`, `"200 INVITE"` … for filters and logs.
    pub fn label(&self) -> String {
        label(&self.bytes)
    }
}

pub fn label(bytes: &[u8]) -> String {
    match parse_datagram(bytes) {
        Ok(SipMessage::Request(r)) => r.method.to_string(),
        Ok(SipMessage::Response(r)) => {
            let m = r
                .headers
                .cseq()
                .map(|c| c.method)
                .unwrap_or(Method::Extension("?".into()));
            format!("{} {m}", r.status)
        }
        Err(_) => "garbage".into(),
    }
}

type Filter = Box<dyn FnMut(&Packet) -> bool>;

pub struct Pair {
    pub t0: Instant,
    pub now: Instant,
    pub uac: Endpoint,
    pub uas: Endpoint,
    pub uac_events: Vec<Event>,
    pub uas_events: Vec<Event>,
    in_flight: Vec<Packet>,
    pub latency: Duration,
    /// Loss probability in percent (seeded).
    pub loss_percent: u64,
    rng: u64,
    /// Returns true to drop a packet.
    pub drop_if: Option<Filter>,
    /// `(ms since t0, label, delivered)` for each datagram sent.
    pub log: Vec<(u128, String, bool)>,
    /// Every datagram sent, delivered or not.
    pub sent: Vec<Packet>,
}

impl Pair {
    pub fn new(seed: u64) -> Self {
        let t0 = epoch();
        Self {
            t0,
            now: t0,
            uac: Endpoint::new(config(UAC, seed)),
            uas: Endpoint::new(config(UAS, seed.wrapping_add(1))),
            uac_events: Vec::new(),
            uas_events: Vec::new(),
            in_flight: Vec::new(),
            latency: Duration::from_millis(10),
            loss_percent: 0,
            rng: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            drop_if: None,
            log: Vec::new(),
            sent: Vec::new(),
        }
    }

    pub fn ms(&self) -> u128 {
        (self.now - self.t0).as_millis()
    }

    fn random_percent(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % 100
    }

    /// Moves queued output into the network and events into the logs.
    pub fn drain(&mut self) {
        let mut out = Vec::new();
        while let Some(t) = self.uac.poll_transmit() {
            out.push((addr(UAC), t));
        }
        while let Some(t) = self.uas.poll_transmit() {
            out.push((addr(UAS), t));
        }
        for (from, t) in out {
            let p = Packet {
                from,
                to: t.destination,
                bytes: t.payload,
                deliver_at: self.now + self.latency,
            };
            let lost = self.random_percent() < self.loss_percent;
            let filtered = self.drop_if.as_mut().is_some_and(|f| f(&p));
            let delivered = !lost && !filtered && (p.to == addr(UAC) || p.to == addr(UAS));
            self.log.push((
                self.ms(),
                format!("{}->{} {}", side(from), side(p.to), p.label()),
                delivered,
            ));
            self.sent.push(p.clone());
            if delivered {
                self.in_flight.push(p);
            }
        }
        while let Some(e) = self.uac.poll_event() {
            self.uac_events.push(e);
        }
        while let Some(e) = self.uas.poll_event() {
            self.uas_events.push(e);
        }
    }

    /// Advances to the next delivery or timer (not beyond `limit`); false when idle.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.drain();
        let next_packet = self.in_flight.iter().map(|p| p.deliver_at).min();
        let next_timer = [self.uac.poll_timeout(), self.uas.poll_timeout()]
            .into_iter()
            .flatten()
            .map(|(t, _)| t)
            .min();
        let Some(next) = [next_packet, next_timer].into_iter().flatten().min() else {
            return false;
        };
        if next > limit {
            self.now = limit;
            return false;
        }
        self.now = self.now.max(next);
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) =
            self.in_flight.drain(..).partition(|p| p.deliver_at <= now);
        self.in_flight = rest;
        for p in due {
            if p.to == addr(UAC) {
                self.uac.handle_datagram(now, p.from, &p.bytes);
            } else {
                self.uas.handle_datagram(now, p.from, &p.bytes);
            }
        }
        self.uac.handle_timeout(now);
        self.uas.handle_timeout(now);
        self.drain();
        true
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        while self.step(limit) {}
        self.now = self.now.max(limit);
    }

    /// Runs until `pred` holds (checked after each step) or `d` elapses; returns whether it held.
    pub fn run_until(&mut self, d: Duration, mut pred: impl FnMut(&Self) -> bool) -> bool {
        let limit = self.now + d;
        loop {
            if pred(self) {
                return true;
            }
            if !self.step(limit) {
                return pred(self);
            }
        }
    }

    /// Labels sent by one side (`"uac"`/`"uas"`), in order, with delivery flags dropped.
    pub fn sent_by(&self, who: &str) -> Vec<String> {
        self.log
            .iter()
            .filter(|(_, l, _)| l.starts_with(who))
            .map(|(_, l, _)| {
                l.split_once(' ')
                    .map(|(_, x)| x.to_owned())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The first datagram `who` sent labelled `what`.
    pub fn first_sent(&self, from: &str, what: &str) -> Option<Vec<u8>> {
        self.sent
            .iter()
            .find(|p| p.from == addr(from) && p.label() == what)
            .map(|p| p.bytes.clone())
    }

    /// Times (ms) at which `who` sent a datagram labelled `what`.
    pub fn times_of(&self, who: &str, what: &str) -> Vec<u128> {
        self.log
            .iter()
            .filter(|(_, l, _)| l.starts_with(who) && l.ends_with(&format!(" {what}")))
            .map(|(t, _, _)| *t)
            .collect()
    }
}

fn side(a: SocketAddr) -> &'static str {
    if a == addr(UAC) {
        "uac"
    } else if a == addr(UAS) {
        "uas"
    } else {
        "other"
    }
}

/// Collects everything an endpoint wants sent, parsed (for scripted peers).
pub fn sent_messages(ep: &mut Endpoint) -> Vec<(sip::Transmit, SipMessage)> {
    let mut out = Vec::new();
    while let Some(t) = ep.poll_transmit() {
        let m = parse_datagram(&t.payload).expect("the core sends parseable messages");
        out.push((t, m));
    }
    out
}

/// The requests among `msgs` with method `m`.
pub fn requests(msgs: &[(sip::Transmit, SipMessage)], m: Method) -> Vec<sip::message::Request> {
    msgs.iter()
        .filter_map(|(_, msg)| match msg {
            SipMessage::Request(r) if r.method == m => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// The statuses of the responses among `msgs`.
pub fn statuses(msgs: &[(sip::Transmit, SipMessage)]) -> Vec<u16> {
    msgs.iter()
        .filter_map(|(_, msg)| match msg {
            SipMessage::Response(r) => Some(r.status),
            _ => None,
        })
        .collect()
}

/// All events queued by an endpoint.
pub fn events(ep: &mut Endpoint) -> Vec<Event> {
    let mut v = Vec::new();
    while let Some(e) = ep.poll_event() {
        v.push(e);
    }
    v
}

/// A response from a scripted peer to `req`.
pub fn respond(req: &sip::message::Request, status: u16, to_tag: Option<&str>) -> Vec<u8> {
    sip::message::build::response_to(req, status, to_tag).to_bytes()
}
