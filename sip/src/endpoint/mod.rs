//! The user-agent core: a sans-IO SIP endpoint that answers and places calls, registers with
//! trunks and watches their health.
//!
//! # Driving it
//! The driver owns the sockets (UDP, and TCP connections it numbers with [`ConnectionId`]s)
//! and a timer, and loops:
//! ```text
//! select! {
//!     (bytes, from) = udp.recv_from() => ep.handle_datagram(now, from, &bytes),
//!     (conn, from, msg) = tcp_framed.next() => ep.handle_stream_message(now, from, conn, msg),
//!     _ = sleep_until(ep.poll_timeout()) => ep.handle_timeout(now),
//!     cmd = commands.recv() => ep.answer(now, call, sdp) / ep.hangup(now, call) / …,
//! }
//! while let Some(t) = ep.poll_transmit() { send t.payload over t.transport (see Transmit) }
//! while let Some(e) = ep.poll_event() { dispatch(e) }
//! ```
//! After *any* `handle_*` or command call, drain `poll_transmit` and `poll_event`, then
//! re-read `poll_timeout` (the deadline may have moved earlier). Extra `handle_timeout` calls are
//! harmless. The core never reads the clock: `now` is always an argument. When a send fails
//! (ICMP unreachable, TCP connect refused), tell the core with
//! [`Endpoint::handle_transport_error`].
//!
//! # Calls
//! Calls are named by [`CallId`], our own opaque handle (not the SIP Call-ID). Every call
//! produces exactly one [`Event::CallEnded`]. Inbound: [`Event::IncomingCall`] after the core
//! has sent 100 Trying; the application then calls [`Endpoint::ringing`], [`Endpoint::answer`]
//! or [`Endpoint::reject`]. Outbound: [`Endpoint::invite`] (digest challenges, 422, ringing
//! timeout handled by the core). In a call: [`Endpoint::transfer`], [`Endpoint::hangup`].
//!
//! # Trunks
//! [`Endpoint::add_trunk`] registers with a trunk (REGISTER with digest auth, refresh at 80 %
//! of the granted expiry, backoff after failures) and/or probes it with OPTIONS;
//! [`Endpoint::unregister`] on shutdown. See [`Event::RegistrationChanged`],
//! [`Event::TrunkHealth`].
//!
//! # What the core answers by itself
//! OPTIONS (200 with Allow/Accept/Supported), unknown methods (501), known but unsupported
//! methods such as REGISTER or MESSAGE (405), inbound REFER (403), SIP versions other than 2.0
//! (505), non-SIP Request-URIs (416), `Require` with extensions other than `timer` (420),
//! requests for unknown dialogs (481), INVITEs whose body is not SDP (415), whose Accept
//! excludes SDP (406), whose offer has no codec in common with [`Config::codecs`] (488 —
//! decided before the application hears of the call), whose session interval is below
//! [`Config::min_se`] (422), or beyond [`Config::max_concurrent_calls`] (503); re-INVITE and
//! UPDATE (the SDP answer is derived from our last one; [`Event::MediaUpdated`]), session
//! timer refreshes, INFO (200; DTMF typed as [`Event::Dtmf`]), CANCEL (200 + 487), BYE (200),
//! sources outside [`Config::allowed_sources`] (403), malformed requests (400 when answerable,
//! otherwise dropped and counted in [`Stats`]).

mod admission;
mod calls;
mod events;
mod inbound;
mod indialog;
mod registration;
mod session;
mod transfer;
mod trunks;
mod types;
mod uac;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

pub use admission::{Cidr, CidrError, RateLimit};
pub use events::{EndReason, Event, FailureClass, RegistrationState, TransferOutcome};
pub use trunks::{Trunk, TrunkError, TrunkHealth};
pub use types::{CallError, CallId, Config, IncomingCall, InviteParams, Stats};

use crate::dialog::DialogKey;
use crate::ids::IdGen;
use crate::message::{
    Method, ParseError, ParseErrorKind, Request, Response, SipMessage, parse_datagram,
};
use crate::transaction::{
    ClientOutcome, Expiry, InviteClient, InviteServer, NonInviteClient, NonInviteServer, TxKey,
};
use crate::transmit::{ConnectionId, Outbox, Target, Transmit, TransportKind};
use admission::RateLimiter;
use calls::Call;
use trunks::TrunkState;

/// The methods we implement, advertised in Allow.
pub const ALLOWED_METHODS: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY";

/// Option tags we support (Supported; anything else in Require gets 420).
pub const SUPPORTED: &str = "timer";

/// RFC 3261 §18.1.1: a request within 200 bytes of the 1500-byte path MTU goes over TCP.
pub const UDP_MAX_REQUEST: usize = 1300;

/// The sans-IO SIP user agent. See the module documentation for the driving contract.
#[derive(Debug)]
pub struct Endpoint {
    config: Config,
    ids: IdGen,
    out: Outbox,
    events: VecDeque<Event>,
    transactions: HashMap<u64, TxEntry>,
    tx_index: HashMap<TxKey, u64>,
    next_tx: u64,
    calls: HashMap<CallId, Call>,
    dialogs: HashMap<DialogKey, CallId>,
    next_call: u64,
    timers: BinaryHeap<Reverse<(Instant, TimerOwner)>>,
    stats: Stats,
    trunks: Vec<Option<TrunkState>>,
    limiter: RateLimiter,
}

impl Endpoint {
    pub fn new(config: Config) -> Self {
        Self {
            ids: IdGen::new(config.seed),
            config,
            out: Outbox::default(),
            events: VecDeque::new(),
            transactions: HashMap::new(),
            tx_index: HashMap::new(),
            next_tx: 0,
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            next_call: 0,
            timers: BinaryHeap::new(),
            stats: Stats::default(),
            trunks: Vec::new(),
            limiter: RateLimiter::default(),
        }
    }

    /// Processes one received UDP datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams_received += 1;
        self.handle_input(now, Target::udp(from), parse_datagram(bytes));
    }

    /// Processes a message that arrived over UDP but was parsed elsewhere, or its parse error.
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        parsed: Result<SipMessage, ParseError>,
    ) {
        self.handle_input(now, Target::udp(from), parsed);
    }

    /// Processes a message framed from TCP connection `conn` (by a
    /// [`crate::message::StreamFramer`]), or its parse error. Responses to it go back on `conn`.
    pub fn handle_stream_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        conn: ConnectionId,
        parsed: Result<SipMessage, ParseError>,
    ) {
        self.stats.stream_messages_received += 1;
        let src = Target {
            addr: from,
            transport: TransportKind::Tcp,
            conn: Some(conn),
        };
        self.handle_input(now, src, parsed);
    }

    /// The driver could not deliver to `destination` (ICMP unreachable, TCP connect failure or
    /// reset; `connection` when a specific one failed). Client transactions towards it fail at
    /// once, as RFC 3261 §8.1.3.1 asks (treated like a timeout).
    pub fn handle_transport_error(
        &mut self,
        now: Instant,
        destination: SocketAddr,
        connection: Option<ConnectionId>,
    ) {
        let hit = |t: Target| {
            t.addr == destination
                && (connection.is_none() || t.conn.is_none() || t.conn == connection)
        };
        let mut failed: Vec<u64> = self
            .transactions
            .iter()
            .filter(|(_, e)| match &e.tx {
                Tx::InviteClient(t) => hit(t.dest()),
                Tx::NonInviteClient(t) => hit(t.dest()),
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect();
        failed.sort_unstable();
        for id in failed {
            let Some(entry) = self.transactions.get_mut(&id) else {
                continue;
            };
            match &mut entry.tx {
                Tx::InviteClient(t) => t.abort(),
                Tx::NonInviteClient(t) => t.abort(),
                _ => {}
            }
            let (call, purpose) = (entry.call, entry.purpose);
            self.touch_tx(id);
            self.client_failed(now, id, call, purpose, true);
        }
    }

    /// Fires every timer due at `now`. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, owner))) = self.timers.peek().cloned() {
            if t > now {
                break;
            }
            self.timers.pop();
            match owner {
                TimerOwner::Tx(id) => self.tx_timeout(now, id),
                TimerOwner::Call(id) => self.call_timeout(now, id),
                TimerOwner::Trunk(idx) => self.trunk_timeout(now, idx),
            }
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.queue.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest deadline and what it is for; `None` when nothing is scheduled.
    pub fn poll_timeout(&mut self) -> Option<(Instant, &'static str)> {
        // Entries are pushed whenever a deadline changes, so stale ones (the owner is gone or
        // now due at another time) are dropped here rather than causing spurious wake-ups. A
        // deadline that moved later is re-queued, so no owner loses its timer.
        while let Some(Reverse((t, owner))) = self.timers.peek().copied() {
            match self.owner_deadline(owner) {
                Some((due, why)) if due == t => return Some((due, why)),
                later => {
                    self.timers.pop();
                    if let Some((due, _)) = later.filter(|(due, _)| *due > t) {
                        self.timers.push(Reverse((due, owner)));
                    }
                }
            }
        }
        None
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.retransmissions_sent = self.out.retransmissions;
        s
    }

    /// Number of calls the core still tracks.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    // ---- internals shared by the submodules ------------------------------------------

    fn handle_input(&mut self, now: Instant, src: Target, parsed: Result<SipMessage, ParseError>) {
        match parsed {
            Ok(SipMessage::Request(req)) => {
                if self.admit(now, src, Some(&req)) {
                    self.handle_request(now, src, req);
                }
            }
            Ok(SipMessage::Response(resp)) => self.handle_response(now, src, resp),
            Err(e) if *e.kind() == ParseErrorKind::Empty => self.stats.keepalives_received += 1,
            Err(e) => {
                if self.admit(now, src, None) {
                    self.handle_parse_error(now, src, &e);
                }
            }
        }
    }

    /// Source allow-lists and the rate limit. A refused request gets 403 (never an ACK, and
    /// never an unparsed message, which could be anything); a rate-limited one is dropped.
    fn admit(&mut self, now: Instant, src: Target, req: Option<&Request>) -> bool {
        let listed = admission::match_source(&self.config.allowed_sources, src.addr.ip());
        let Ok(trunk) = listed else {
            self.stats.rejected_source += 1;
            if let Some(req) = req.filter(|r| r.method != Method::Ack) {
                let tag = self.ids.tag();
                let resp = self.response(req, 403, Some(&tag), src);
                self.send_stateless(src, &resp);
            }
            return false;
        };
        if trunk.is_none()
            && let Some(limit) = &self.config.rate_limit
            && !self.limiter.allow(limit, now, src.addr.ip())
        {
            self.stats.rate_limited += 1;
            return false;
        }
        true
    }

    fn owner_deadline(&self, owner: TimerOwner) -> Option<(Instant, &'static str)> {
        match owner {
            TimerOwner::Tx(id) => self.transactions.get(&id).and_then(|e| e.tx.deadline()),
            TimerOwner::Call(id) => self.calls.get(&id).and_then(Call::deadline),
            TimerOwner::Trunk(idx) => self
                .trunks
                .get(idx as usize)
                .and_then(Option::as_ref)
                .and_then(TrunkState::deadline),
        }
    }

    fn schedule(&mut self, owner: TimerOwner) {
        if let Some((t, _)) = self.owner_deadline(owner) {
            self.timers.push(Reverse((t, owner)));
        }
    }

    fn add_tx(&mut self, key: TxKey, tx: Tx, call: Option<CallId>, purpose: Purpose) -> u64 {
        let id = self.next_tx;
        self.next_tx += 1;
        self.tx_index.insert(key.clone(), id);
        self.transactions.insert(
            id,
            TxEntry {
                key,
                tx,
                call,
                purpose,
            },
        );
        self.schedule(TimerOwner::Tx(id));
        id
    }

    /// Reschedules a transaction after a change, or forgets it once terminated.
    fn touch_tx(&mut self, id: u64) {
        let Some(entry) = self.transactions.get(&id) else {
            return;
        };
        if entry.tx.is_terminated() {
            let key = entry.key.clone();
            self.transactions.remove(&id);
            if self.tx_index.get(&key) == Some(&id) {
                self.tx_index.remove(&key);
            }
        } else {
            self.schedule(TimerOwner::Tx(id));
        }
    }

    fn tx_timeout(&mut self, now: Instant, id: u64) {
        let Some(entry) = self.transactions.get_mut(&id) else {
            return;
        };
        if entry.tx.deadline().is_none_or(|(t, _)| t > now) {
            return;
        }
        let expiry = match &mut entry.tx {
            Tx::InviteServer(t) => t.on_timeout(now, &mut self.out),
            Tx::NonInviteServer(t) => t.on_timeout(now),
            Tx::InviteClient(t) => t.on_timeout(now, &mut self.out),
            Tx::NonInviteClient(t) => t.on_timeout(now, &mut self.out),
        };
        let (call, purpose) = (entry.call, entry.purpose);
        self.touch_tx(id);
        if expiry == Expiry::TimedOut {
            self.client_failed(now, id, call, purpose, false);
        }
    }

    /// A transaction gave up (timeout, or a transport error when `transport`).
    fn client_failed(
        &mut self,
        now: Instant,
        id: u64,
        call: Option<CallId>,
        purpose: Purpose,
        transport: bool,
    ) {
        match purpose {
            Purpose::Register(t) => self.on_register_failed(now, t, id),
            Purpose::Keepalive(t) => self.on_keepalive_failed(now, t),
            _ => {
                if let Some(call) = call {
                    self.on_tx_timed_out(now, call, purpose, transport);
                }
            }
        }
    }

    /// Counts and queues a response sent outside any transaction.
    fn send_stateless(&mut self, to: Target, resp: &Response) {
        self.count_response(resp.status);
        self.out.send(to, resp.to_bytes());
    }

    fn count_response(&mut self, status: u16) {
        let s = &mut self.stats;
        match status / 100 {
            1 => s.responses_sent_1xx += 1,
            2 => s.responses_sent_2xx += 1,
            3 => s.responses_sent_3xx += 1,
            4 => s.responses_sent_4xx += 1,
            5 => s.responses_sent_5xx += 1,
            _ => s.responses_sent_6xx += 1,
        }
    }

    /// Sends a response through the server transaction `id`.
    fn respond_tx(&mut self, now: Instant, id: u64, resp: &Response) {
        let status = resp.status;
        let bytes = resp.to_bytes();
        let Some(entry) = self.transactions.get_mut(&id) else {
            return;
        };
        match &mut entry.tx {
            Tx::InviteServer(t) => t.respond(now, status, bytes, &mut self.out),
            Tx::NonInviteServer(t) => t.respond(now, status, bytes, &mut self.out),
            _ => return,
        }
        self.count_response(status);
        self.touch_tx(id);
    }

    /// `Via` value for a request we originate (always with `rport`, RFC 3581).
    fn via(&mut self) -> (String, String) {
        let branch = self.ids.branch();
        let v = format!(
            "SIP/2.0/UDP {};branch={branch};rport",
            self.config.sent_by()
        );
        (v, branch)
    }

    /// Picks the transport for a request we originate towards `dest` and adapts its top Via
    /// and our Contact to it. `pref`: `Some` pins the transport; `None` is UDP unless the
    /// request is too large for it and TCP is enabled (RFC 3261 §18.1.1).
    fn route_request(
        &mut self,
        req: &mut Request,
        dest: SocketAddr,
        pref: Option<TransportKind>,
        conn: Option<ConnectionId>,
    ) -> Target {
        let transport = match pref {
            Some(t) => t,
            None if self.config.tcp_enabled && req.to_bytes().len() > UDP_MAX_REQUEST => {
                self.stats.requests_switched_to_tcp += 1;
                TransportKind::Tcp
            }
            None => TransportKind::Udp,
        };
        if transport == TransportKind::Tcp {
            if let Some(v) = req.headers.get("Via").map(str::to_owned) {
                let fixed = v.replacen("SIP/2.0/UDP ", "SIP/2.0/TCP ", 1);
                replace_first(req, "Via", fixed);
            }
            if req.headers.get("Contact") == Some(self.config.contact().as_str()) {
                let c = self.config.contact_for(TransportKind::Tcp);
                replace_first(req, "Contact", c);
            }
        }
        self.stats.requests_sent += 1;
        Target {
            addr: dest,
            transport,
            conn: if transport == TransportKind::Tcp {
                conn
            } else {
                None
            },
        }
    }

    fn handle_response(&mut self, now: Instant, src: Target, resp: Response) {
        self.stats.responses_received += 1;
        let Some(key) = TxKey::for_response(&resp) else {
            self.stats.stray_responses += 1;
            return;
        };
        let Some(&id) = self.tx_index.get(&key) else {
            self.on_stray_response(now, src, &resp);
            return;
        };
        let Some(entry) = self.transactions.get_mut(&id) else {
            return;
        };
        let outcome = match &mut entry.tx {
            Tx::InviteClient(t) => t.on_response(now, &resp, &mut self.out),
            Tx::NonInviteClient(t) => t.on_response(now, resp.status),
            _ => ClientOutcome::Absorbed,
        };
        let (call, purpose) = (entry.call, entry.purpose);
        self.touch_tx(id);
        if outcome == ClientOutcome::Absorbed {
            self.stats.retransmissions_received += 1;
            return;
        }
        match purpose {
            Purpose::Register(t) => self.on_register_response(now, t, id, &resp),
            Purpose::Keepalive(t) => self.on_keepalive_response(now, t, &resp),
            _ => {
                if let Some(call) = call {
                    self.on_client_response(now, src, call, purpose, &resp);
                }
            }
        }
    }
}

/// Replaces the first header named `name` in place (keeping its position).
fn replace_first(req: &mut Request, name: &str, value: String) {
    let mut headers = crate::message::Headers::new();
    let mut done = false;
    for h in req.headers.iter() {
        if !done && h.name.eq_ignore_ascii_case(name) {
            headers.push(&h.name, value.clone());
            done = true;
        } else {
            headers.push(&h.name, h.value.clone());
        }
    }
    req.headers = headers;
}

/// Who owns a timer-heap entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum TimerOwner {
    Tx(u64),
    Call(CallId),
    Trunk(u32),
}

/// Why a client transaction was started (what its outcome means).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Server,
    Invite,
    Bye,
    Cancel,
    /// A session refresh (re-INVITE or UPDATE) we sent.
    Refresh,
    Refer,
    Register(u32),
    Keepalive(u32),
}

#[derive(Debug)]
struct TxEntry {
    key: TxKey,
    tx: Tx,
    call: Option<CallId>,
    purpose: Purpose,
}

#[derive(Debug)]
enum Tx {
    InviteServer(InviteServer),
    NonInviteServer(NonInviteServer),
    InviteClient(Box<InviteClient>),
    NonInviteClient(NonInviteClient),
}

impl Tx {
    fn deadline(&self) -> Option<(Instant, &'static str)> {
        match self {
            Tx::InviteServer(t) => t.deadline(),
            Tx::NonInviteServer(t) => t.deadline(),
            Tx::InviteClient(t) => t.deadline(),
            Tx::NonInviteClient(t) => t.deadline(),
        }
    }

    fn is_terminated(&self) -> bool {
        match self {
            Tx::InviteServer(t) => t.is_terminated(),
            Tx::NonInviteServer(t) => t.is_terminated(),
            Tx::InviteClient(t) => t.is_terminated(),
            Tx::NonInviteClient(t) => t.is_terminated(),
        }
    }
}

/// Whether the core implements `m` (for 405/501 decisions).
fn implemented(m: &Method) -> bool {
    matches!(
        m,
        Method::Invite
            | Method::Ack
            | Method::Cancel
            | Method::Bye
            | Method::Options
            | Method::Info
            | Method::Update
            | Method::Refer
            | Method::Notify
    )
}
