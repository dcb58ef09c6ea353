//! The user-agent core: a sans-IO SIP endpoint that answers and places calls.
//!
//! # Driving it
//! The driver owns the UDP socket and a timer, and loops:
//! ```text
//! select! {
//!     (bytes, from) = socket.recv_from() => ep.handle_datagram(now, from, &bytes),
//!     _ = sleep_until(ep.poll_timeout()) => ep.handle_timeout(now),
//!     cmd = commands.recv() => ep.answer(now, call, sdp) / ep.hangup(now, call) / …,
//! }
//! while let Some(t) = ep.poll_transmit() { socket.send_to(&t.payload, t.destination) }
//! while let Some(e) = ep.poll_event() { dispatch(e) }
//! ```
//! After *any* `handle_*` or command call, drain `poll_transmit` and `poll_event`, then
//! re-read `poll_timeout` (the deadline may have moved earlier). Extra `handle_timeout` calls are
//! harmless. The core never reads the clock: `now` is always an argument.
//!
//! # Calls
//! Calls are named by [`CallId`], our own opaque handle (not the SIP Call-ID). Every call
//! produces exactly one [`Event::CallEnded`]. Inbound: [`Event::IncomingCall`] after the core
//! has sent 100 Trying; the application then calls [`Endpoint::ringing`], [`Endpoint::answer`]
//! or [`Endpoint::reject`]. Outbound: [`Endpoint::invite`].
//!
//! # What the core answers by itself
//! OPTIONS (200 with Allow/Accept/Supported), unknown methods (501), known but unsupported
//! methods such as REGISTER or MESSAGE (405), SIP versions other than 2.0 (505), non-SIP
//! Request-URIs (416), `Require` with extensions we lack (420), requests for unknown dialogs
//! (481), INVITEs whose body is not SDP (415), whose Accept excludes SDP (406), or whose offer
//! has no codec in common with [`Config::codecs`] (488 — decided by the core, before the
//! application hears of the call), CANCEL (200 + 487), BYE (200), malformed requests (400 when
//! answerable, otherwise dropped and counted in [`Stats`]).

mod calls;
mod inbound;
mod types;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

pub use types::{CallError, CallId, Config, EndReason, Event, IncomingCall, InviteParams, Stats};

use crate::dialog::DialogKey;
use crate::ids::IdGen;
use crate::message::{Method, ParseError, Response, SipMessage, parse_datagram};
use crate::transaction::{
    ClientOutcome, Expiry, InviteClient, InviteServer, NonInviteClient, NonInviteServer, TxKey,
};
use crate::transmit::{Outbox, Transmit};
use calls::Call;

/// The methods we implement, advertised in Allow.
pub const ALLOWED_METHODS: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO";

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
        }
    }

    /// Processes one received UDP datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams_received += 1;
        self.handle_message(now, from, parse_datagram(bytes));
    }

    /// Processes a message framed elsewhere (e.g. by a [`crate::message::StreamFramer`] on a
    /// TCP connection), or the error its parse produced.
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        parsed: Result<SipMessage, ParseError>,
    ) {
        match parsed {
            Ok(SipMessage::Request(req)) => self.handle_request(now, from, req),
            Ok(SipMessage::Response(resp)) => self.handle_response(now, from, resp),
            Err(e) => self.handle_parse_error(now, from, &e),
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
            }
        }
    }

    /// The next datagram to send.
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
        // now due at another time) are dropped here rather than causing spurious wake-ups.
        while let Some(Reverse((t, owner))) = self.timers.peek() {
            match self.owner_deadline(*owner) {
                Some((due, why)) if due == *t => return Some((due, why)),
                _ => {
                    self.timers.pop();
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

    fn owner_deadline(&self, owner: TimerOwner) -> Option<(Instant, &'static str)> {
        match owner {
            TimerOwner::Tx(id) => self.transactions.get(&id).and_then(|e| e.tx.deadline()),
            TimerOwner::Call(id) => self.calls.get(&id).and_then(Call::deadline),
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
        if expiry == Expiry::TimedOut
            && let Some(call) = call
        {
            self.on_tx_timed_out(now, call, purpose);
        }
    }

    /// Counts and queues a response sent outside any transaction.
    fn send_stateless(&mut self, dest: SocketAddr, resp: &Response) {
        self.count_response(resp.status);
        self.out.send(dest, resp.to_bytes());
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

    /// `Via` value for a request we originate.
    fn via(&mut self) -> (String, String) {
        let branch = self.ids.branch();
        let v = format!(
            "SIP/2.0/UDP {};branch={branch};rport",
            self.config.sent_by()
        );
        (v, branch)
    }

    fn handle_response(&mut self, now: Instant, from: SocketAddr, resp: Response) {
        self.stats.responses_received += 1;
        let Some(key) = TxKey::for_response(&resp) else {
            self.stats.stray_responses += 1;
            return;
        };
        let Some(&id) = self.tx_index.get(&key) else {
            self.on_stray_response(now, from, &resp);
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
        if let Some(call) = call {
            self.on_client_response(now, from, call, purpose, &resp);
        }
    }
}

/// Who owns a timer-heap entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum TimerOwner {
    Tx(u64),
    Call(CallId),
}

/// Why a client transaction was started (what its outcome means to the call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Server,
    Invite,
    Bye,
    Cancel,
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
    )
}
