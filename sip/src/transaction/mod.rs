//! RFC 3261 §17 transactions with the RFC 6026 corrections (the INVITE server transaction
//! stays in "Accepted" after a 2xx so retransmitted INVITEs are absorbed; the INVITE client
//! transaction passes retransmitted 2xx to the core during Timer M).
//!
//! Each transaction is a small state machine with its own deadlines. They never read the clock:
//! every entry point takes `now`, writes datagrams to an output queue, and reports the earliest
//! deadline with a reason. The endpoint owns them, routes messages to them by `TxKey`, and
//! drops them once terminated.

mod client;
mod server;

use std::time::{Duration, Instant};

pub(crate) use client::{ClientOutcome, InviteClient, NonInviteClient};
pub(crate) use server::{AckMatch, InviteServer, NonInviteServer};

use crate::message::{Method, ParseErrorKind, Request, Response};

/// RFC 3261 timer base values (Table 4). The derived timers are B, F, H, J, L, M, and D
/// = 64·T1 (32 s with the default T1; Timer D's "> 32 s" is met at the default), I = K = T4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate, 500 ms by default.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, 4 s.
    pub t2: Duration,
    /// Maximum duration a message remains in the network, 5 s.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64·T1: Timers B, F, H, J, L, M and the 2xx/ACK wait.
    pub fn timeout(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// What a transaction timer firing meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Nothing for the core (a retransmission, or not due yet).
    Nothing,
    /// The transaction gave up (Timer B, F, or H): the core must be told.
    TimedOut,
    /// The transaction ended normally (D, I, J, K, L, M): forget it.
    Terminated,
}

/// How a request or response is matched to a transaction (RFC 3261 §17.1.3, §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TxKey {
    /// RFC 3261 branch (with magic cookie); `sent_by` is empty for client transactions.
    Branch {
        branch: String,
        sent_by: String,
        method: Method,
    },
    /// RFC 2543 peers: no usable branch, so match on dialog identifiers and the top Via.
    Legacy {
        call_id: String,
        cseq: u32,
        from_tag: String,
        via: String,
        method: Method,
    },
}

/// ACK belongs to the INVITE transaction it acknowledges.
fn tx_method(m: &Method) -> Method {
    if *m == Method::Ack {
        Method::Invite
    } else {
        m.clone()
    }
}

impl TxKey {
    /// The server-transaction key of an incoming request.
    pub(crate) fn for_request(req: &Request) -> Result<Self, ParseErrorKind> {
        let via = req.headers.top_via()?;
        let method = tx_method(&req.method);
        if via.has_rfc3261_branch() {
            return Ok(Self::Branch {
                branch: via.branch().unwrap_or_default().to_owned(),
                sent_by: via.sent_by().to_ascii_lowercase(),
                method,
            });
        }
        let from = req.headers.from()?;
        Ok(Self::Legacy {
            call_id: req.headers.call_id()?.to_owned(),
            cseq: req.headers.cseq()?.seq,
            from_tag: from.tag().unwrap_or_default().to_owned(),
            via: via.to_string().to_ascii_lowercase(),
            method,
        })
    }

    /// The client-transaction key for a request we send with `branch`.
    pub(crate) fn client(branch: &str, method: &Method) -> Self {
        Self::Branch {
            branch: branch.to_owned(),
            sent_by: String::new(),
            method: method.clone(),
        }
    }

    /// The client-transaction key a response belongs to.
    pub(crate) fn for_response(resp: &Response) -> Option<Self> {
        let via = resp.headers.top_via().ok()?;
        let cseq = resp.headers.cseq().ok()?;
        Some(Self::client(via.branch()?, &cseq.method))
    }

    /// The same key for another method (CANCEL → the INVITE it cancels).
    pub(crate) fn with_method(&self, m: Method) -> Self {
        let mut k = self.clone();
        match &mut k {
            Self::Branch { method, .. } | Self::Legacy { method, .. } => *method = m,
        }
        k
    }
}

/// A deadline slot: when it fires and why.
pub(crate) type Deadline = Option<(Instant, &'static str)>;

/// The earliest of several optional deadlines.
pub(crate) fn earliest(items: &[Deadline]) -> Deadline {
    items.iter().flatten().min_by_key(|(t, _)| *t).copied()
}

#[cfg(test)]
mod tests;
