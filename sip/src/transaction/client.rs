//! Client transactions (RFC 3261 §17.1, RFC 6026 §7.2).

use std::time::{Duration, Instant};

use super::{Deadline, Expiry, Timers, earliest};
use crate::message::{Method, Request, Response};
use crate::transmit::{Outbox, Target};

/// Whether a response goes on to the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientOutcome {
    PassToCore,
    Absorbed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InviteState {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

/// INVITE client transaction. It generates the ACK for non-2xx finals itself; ACKs for 2xx
/// belong to the core (they start a new transaction-less exchange).
#[derive(Debug)]
pub(crate) struct InviteClient {
    state: InviteState,
    request: Request,
    bytes: Vec<u8>,
    dest: Target,
    reliable: bool,
    timers: Timers,
    ack: Option<Vec<u8>>,
    timer_a: Option<(Instant, Duration)>,
    timer_b: Option<Instant>,
    timer_d: Option<Instant>,
    timer_m: Option<Instant>,
}

impl InviteClient {
    /// Sends `request` and starts Timers A and B.
    pub(crate) fn start(
        now: Instant,
        request: Request,
        dest: Target,
        timers: Timers,
        out: &mut Outbox,
    ) -> Self {
        let reliable = dest.reliable();
        let bytes = request.to_bytes();
        out.send(dest, bytes.clone());
        Self {
            state: InviteState::Calling,
            request,
            bytes,
            dest,
            reliable,
            timers,
            ack: None,
            timer_a: (!reliable).then_some((now + timers.t1, timers.t1)),
            timer_b: Some(now + timers.timeout()),
            timer_d: None,
            timer_m: None,
        }
    }

    pub(crate) fn on_response(
        &mut self,
        now: Instant,
        resp: &Response,
        out: &mut Outbox,
    ) -> ClientOutcome {
        match (self.state, resp.status) {
            (InviteState::Calling | InviteState::Proceeding, 100..=199) => {
                self.state = InviteState::Proceeding;
                self.timer_a = None;
                self.timer_b = None;
                ClientOutcome::PassToCore
            }
            (InviteState::Calling | InviteState::Proceeding, 200..=299) => {
                self.state = InviteState::Accepted;
                self.timer_a = None;
                self.timer_b = None;
                self.timer_m = Some(now + self.timers.timeout());
                ClientOutcome::PassToCore
            }
            (InviteState::Calling | InviteState::Proceeding, _) => {
                let ack = self.build_ack(resp).to_bytes();
                out.send(self.dest, ack.clone());
                self.ack = Some(ack);
                self.state = InviteState::Completed;
                self.timer_a = None;
                self.timer_b = None;
                self.timer_d = Some(if self.reliable {
                    now
                } else {
                    now + self.timers.timeout()
                });
                ClientOutcome::PassToCore
            }
            (InviteState::Completed, 300..=699) => {
                if let Some(a) = &self.ack {
                    out.resend(self.dest, a);
                }
                ClientOutcome::Absorbed
            }
            (InviteState::Accepted, 200..=299) => ClientOutcome::PassToCore,
            _ => ClientOutcome::Absorbed,
        }
    }

    /// RFC 3261 §17.1.1.3: same Request-URI, Call-ID, From, CSeq number and top Via as the
    /// INVITE, To from the response, the INVITE's Route headers.
    fn build_ack(&self, resp: &Response) -> Request {
        let inv = &self.request;
        let mut ack = Request::new(Method::Ack, inv.uri.clone());
        if let Some(v) = inv.headers.get("Via") {
            ack.headers.push("Via", v);
        }
        ack.headers.push("Max-Forwards", "70");
        for name in ["From", "Call-ID"] {
            if let Some(v) = inv.headers.get(name) {
                ack.headers.push(name, v);
            }
        }
        if let Some(v) = resp.headers.get("To").or(inv.headers.get("To")) {
            ack.headers.push("To", v);
        }
        let seq = inv.headers.cseq().map(|c| c.seq).unwrap_or(1);
        ack.headers.push("CSeq", format!("{seq} ACK"));
        for r in inv.headers.get_all("Route") {
            ack.headers.push("Route", r);
        }
        ack
    }

    /// True once a final response arrived.
    #[cfg(test)]
    pub(crate) fn is_final(&self) -> bool {
        matches!(
            self.state,
            InviteState::Completed | InviteState::Accepted | InviteState::Terminated
        )
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.state == InviteState::Terminated
    }

    pub(crate) fn dest(&self) -> Target {
        self.dest
    }

    /// Gives up at once (transport error); the caller treats it like Timer B.
    pub(crate) fn abort(&mut self) {
        self.terminate();
    }

    pub(crate) fn deadline(&self) -> Deadline {
        earliest(&[
            self.timer_a
                .map(|(t, _)| (t, "Timer A (INVITE retransmit)")),
            self.timer_b.map(|t| (t, "Timer B (INVITE timeout)")),
            self.timer_d.map(|t| (t, "Timer D")),
            self.timer_m.map(|t| (t, "Timer M")),
        ])
    }

    pub(crate) fn on_timeout(&mut self, now: Instant, out: &mut Outbox) -> Expiry {
        if self.timer_b.is_some_and(|t| t <= now) {
            self.terminate();
            return Expiry::TimedOut;
        }
        if self.timer_d.is_some_and(|t| t <= now) || self.timer_m.is_some_and(|t| t <= now) {
            self.terminate();
            return Expiry::Terminated;
        }
        if let Some((t, interval)) = self.timer_a
            && t <= now
        {
            out.resend(self.dest, &self.bytes);
            // Timer A doubles without the T2 cap (RFC 3261 §17.1.1.2).
            let next = interval * 2;
            self.timer_a = Some((now + next, next));
        }
        Expiry::Nothing
    }

    fn terminate(&mut self) {
        self.state = InviteState::Terminated;
        self.timer_a = None;
        self.timer_b = None;
        self.timer_d = None;
        self.timer_m = None;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// Non-INVITE client transaction (BYE, CANCEL, OPTIONS, INFO…).
#[derive(Debug)]
pub(crate) struct NonInviteClient {
    state: NonInviteState,
    bytes: Vec<u8>,
    dest: Target,
    reliable: bool,
    timers: Timers,
    timer_e: Option<(Instant, Duration)>,
    timer_f: Option<Instant>,
    timer_k: Option<Instant>,
}

impl NonInviteClient {
    pub(crate) fn start(
        now: Instant,
        bytes: Vec<u8>,
        dest: Target,
        timers: Timers,
        out: &mut Outbox,
    ) -> Self {
        let reliable = dest.reliable();
        out.send(dest, bytes.clone());
        Self {
            state: NonInviteState::Trying,
            bytes,
            dest,
            reliable,
            timers,
            timer_e: (!reliable).then_some((now + timers.t1, timers.t1)),
            timer_f: Some(now + timers.timeout()),
            timer_k: None,
        }
    }

    pub(crate) fn on_response(&mut self, now: Instant, status: u16) -> ClientOutcome {
        match self.state {
            NonInviteState::Trying | NonInviteState::Proceeding if status < 200 => {
                self.state = NonInviteState::Proceeding;
                ClientOutcome::PassToCore
            }
            NonInviteState::Trying | NonInviteState::Proceeding => {
                self.state = NonInviteState::Completed;
                self.timer_e = None;
                self.timer_f = None;
                self.timer_k = Some(if self.reliable {
                    now
                } else {
                    now + self.timers.t4
                });
                ClientOutcome::PassToCore
            }
            _ => ClientOutcome::Absorbed,
        }
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.state == NonInviteState::Terminated
    }

    pub(crate) fn dest(&self) -> Target {
        self.dest
    }

    /// Gives up at once (transport error); the caller treats it like Timer F.
    pub(crate) fn abort(&mut self) {
        self.terminate();
    }

    pub(crate) fn deadline(&self) -> Deadline {
        earliest(&[
            self.timer_e
                .map(|(t, _)| (t, "Timer E (request retransmit)")),
            self.timer_f.map(|t| (t, "Timer F (request timeout)")),
            self.timer_k.map(|t| (t, "Timer K")),
        ])
    }

    pub(crate) fn on_timeout(&mut self, now: Instant, out: &mut Outbox) -> Expiry {
        if self.timer_f.is_some_and(|t| t <= now) {
            self.terminate();
            return Expiry::TimedOut;
        }
        if self.timer_k.is_some_and(|t| t <= now) {
            self.terminate();
            return Expiry::Terminated;
        }
        if let Some((t, interval)) = self.timer_e
            && t <= now
        {
            out.resend(self.dest, &self.bytes);
            // In Proceeding the interval is T2 (RFC 3261 §17.1.2.2).
            let next = if self.state == NonInviteState::Proceeding {
                self.timers.t2
            } else {
                (interval * 2).min(self.timers.t2)
            };
            self.timer_e = Some((now + next, next));
        }
        Expiry::Nothing
    }

    fn terminate(&mut self) {
        self.state = NonInviteState::Terminated;
        self.timer_e = None;
        self.timer_f = None;
        self.timer_k = None;
    }
}
