//! Server transactions (RFC 3261 §17.2, RFC 6026 §7.1).

use std::time::{Duration, Instant};

use super::{Deadline, Expiry, Timers, earliest};
use crate::transmit::{Outbox, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InviteState {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

/// What an ACK matched to an INVITE server transaction means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckMatch {
    /// ACK of our non-2xx final response: absorbed.
    NonSuccess,
    /// The transaction sent a 2xx: this ACK is for the core (RFC 2543 peers reuse the branch).
    Success,
    /// Nothing to acknowledge (still proceeding, or a late duplicate).
    Stray,
}

/// INVITE server transaction.
#[derive(Debug)]
pub(crate) struct InviteServer {
    state: InviteState,
    peer: Target,
    reliable: bool,
    timers: Timers,
    last_response: Option<Vec<u8>>,
    /// Timer G: next retransmission of the final non-2xx response and the current interval.
    timer_g: Option<(Instant, Duration)>,
    timer_h: Option<Instant>,
    timer_i: Option<Instant>,
    timer_l: Option<Instant>,
}

impl InviteServer {
    pub(crate) fn new(peer: Target, timers: Timers) -> Self {
        let reliable = peer.reliable();
        Self {
            state: InviteState::Proceeding,
            peer,
            reliable,
            timers,
            last_response: None,
            timer_g: None,
            timer_h: None,
            timer_i: None,
            timer_l: None,
        }
    }

    /// Sends a response from the core through the transaction.
    pub(crate) fn respond(&mut self, now: Instant, status: u16, bytes: Vec<u8>, out: &mut Outbox) {
        match (self.state, status) {
            (InviteState::Proceeding, 100..=199) => {}
            (InviteState::Proceeding, 200..=299) => {
                self.state = InviteState::Accepted;
                self.timer_l = Some(now + self.timers.timeout());
            }
            // The core retransmits its 2xx itself (RFC 6026 §7.1); pass them through.
            (InviteState::Accepted, 200..=299) => {}
            (InviteState::Proceeding, _) => {
                self.state = InviteState::Completed;
                if !self.reliable {
                    self.timer_g = Some((now + self.timers.t1, self.timers.t1));
                }
                self.timer_h = Some(now + self.timers.timeout());
            }
            _ => return,
        }
        out.send(self.peer, bytes.clone());
        self.last_response = Some(bytes);
    }

    /// A retransmission of the INVITE arrived.
    pub(crate) fn on_retransmission(&mut self, out: &mut Outbox) {
        if matches!(self.state, InviteState::Proceeding | InviteState::Completed)
            && let Some(r) = &self.last_response
        {
            out.resend(self.peer, r);
        }
    }

    pub(crate) fn on_ack(&mut self, now: Instant) -> AckMatch {
        match self.state {
            InviteState::Completed => {
                self.state = InviteState::Confirmed;
                self.timer_g = None;
                self.timer_h = None;
                self.timer_i = Some(if self.reliable {
                    now
                } else {
                    now + self.timers.t4
                });
                AckMatch::NonSuccess
            }
            InviteState::Confirmed => AckMatch::NonSuccess,
            InviteState::Accepted => AckMatch::Success,
            _ => AckMatch::Stray,
        }
    }

    /// True until a final response was sent.
    pub(crate) fn is_proceeding(&self) -> bool {
        self.state == InviteState::Proceeding
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.state == InviteState::Terminated
    }

    pub(crate) fn deadline(&self) -> Deadline {
        earliest(&[
            self.timer_g
                .map(|(t, _)| (t, "Timer G (response retransmit)")),
            self.timer_h.map(|t| (t, "Timer H (ACK wait)")),
            self.timer_i.map(|t| (t, "Timer I")),
            self.timer_l.map(|t| (t, "Timer L")),
        ])
    }

    pub(crate) fn on_timeout(&mut self, now: Instant, out: &mut Outbox) -> Expiry {
        if self.timer_h.is_some_and(|t| t <= now) {
            self.terminate();
            return Expiry::TimedOut;
        }
        if self.timer_i.is_some_and(|t| t <= now) || self.timer_l.is_some_and(|t| t <= now) {
            self.terminate();
            return Expiry::Terminated;
        }
        if let Some((t, interval)) = self.timer_g
            && t <= now
        {
            if let Some(r) = &self.last_response {
                out.resend(self.peer, r);
            }
            let next = (interval * 2).min(self.timers.t2);
            self.timer_g = Some((now + next, next));
        }
        Expiry::Nothing
    }

    fn terminate(&mut self) {
        self.state = InviteState::Terminated;
        self.timer_g = None;
        self.timer_h = None;
        self.timer_i = None;
        self.timer_l = None;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// Non-INVITE server transaction.
#[derive(Debug)]
pub(crate) struct NonInviteServer {
    state: NonInviteState,
    peer: Target,
    reliable: bool,
    timers: Timers,
    last_response: Option<Vec<u8>>,
    timer_j: Option<Instant>,
}

impl NonInviteServer {
    pub(crate) fn new(peer: Target, timers: Timers) -> Self {
        let reliable = peer.reliable();
        Self {
            state: NonInviteState::Trying,
            peer,
            reliable,
            timers,
            last_response: None,
            timer_j: None,
        }
    }

    pub(crate) fn respond(&mut self, now: Instant, status: u16, bytes: Vec<u8>, out: &mut Outbox) {
        match self.state {
            NonInviteState::Trying | NonInviteState::Proceeding if status < 200 => {
                self.state = NonInviteState::Proceeding;
            }
            NonInviteState::Trying | NonInviteState::Proceeding => {
                self.state = NonInviteState::Completed;
                self.timer_j = Some(if self.reliable {
                    now
                } else {
                    now + self.timers.timeout()
                });
            }
            _ => return,
        }
        out.send(self.peer, bytes.clone());
        self.last_response = Some(bytes);
    }

    pub(crate) fn on_retransmission(&mut self, out: &mut Outbox) {
        if matches!(
            self.state,
            NonInviteState::Proceeding | NonInviteState::Completed
        ) && let Some(r) = &self.last_response
        {
            out.resend(self.peer, r);
        }
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.state == NonInviteState::Terminated
    }

    pub(crate) fn deadline(&self) -> Deadline {
        self.timer_j.map(|t| (t, "Timer J"))
    }

    pub(crate) fn on_timeout(&mut self, now: Instant) -> Expiry {
        if self.timer_j.is_some_and(|t| t <= now) {
            self.state = NonInviteState::Terminated;
            self.timer_j = None;
            return Expiry::Terminated;
        }
        Expiry::Nothing
    }
}
