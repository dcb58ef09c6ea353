//! Blind transfer by REFER (RFC 3515) with Referred-By (RFC 3892): the REFER, the implicit
//! subscription's NOTIFYs (message/sipfrag, RFC 3420) and the outcome. A 202 only means the
//! peer will try; success is a 2xx sipfrag, after which we BYE our leg.

use std::time::Instant;

use super::calls::CallState;
use super::events::{EndReason, Event, TransferOutcome};
use super::types::{CallError, CallId};
use super::{Endpoint, Purpose, TimerOwner};
use crate::message::{Method, NameAddr, Request, Response, Uri};

/// A transfer in progress.
#[derive(Debug, Clone)]
pub(super) struct Transfer {
    pub(super) deadline: Instant,
    /// The REFER was accepted (2xx).
    accepted: bool,
}

impl Endpoint {
    /// Transfers an established call to `target` (blind, RFC 3515): sends REFER with
    /// Refer-To and Referred-By. The result arrives as [`Event::TransferResult`]; on success
    /// the core hangs up our leg ([`EndReason::Transferred`]), otherwise the call goes on.
    /// Which targets are allowed is the application's decision.
    pub fn transfer(&mut self, now: Instant, call: CallId, target: Uri) -> Result<(), CallError> {
        let c = self.calls.get(&call).ok_or(CallError::UnknownCall)?;
        if c.state != CallState::Confirmed {
            return Err(CallError::InvalidState(
                "transfer needs an established call",
            ));
        }
        if c.transfer.is_some() {
            return Err(CallError::TransferPending);
        }
        let referred_by = c
            .dialog
            .as_ref()
            .map(|d| NameAddr::new(d.local_uri.uri.clone()).to_string())
            .unwrap_or_else(|| self.config.contact());
        let refer_to = NameAddr::new(target).to_string();
        let sent = self.send_in_dialog(now, call, Method::Refer, Purpose::Refer, Some(call), |r| {
            r.headers.push("Refer-To", refer_to);
            r.headers.push("Referred-By", referred_by);
        });
        if !sent {
            return Err(CallError::InvalidState("call has no dialog"));
        }
        let deadline = now + self.config.transfer_timeout;
        if let Some(c) = self.calls.get_mut(&call) {
            c.transfer = Some(Transfer {
                deadline,
                accepted: false,
            });
        }
        self.schedule(TimerOwner::Call(call));
        Ok(())
    }

    pub(super) fn on_refer_response(&mut self, _now: Instant, call: CallId, resp: &Response) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(t) = c.transfer.as_mut() else {
            return;
        };
        match resp.status {
            100..=199 => {}
            200..=299 => t.accepted = true,
            status => {
                c.transfer = None;
                self.transfer_result(call, TransferOutcome::Failed { status });
            }
        }
    }

    pub(super) fn on_refer_timed_out(&mut self, call: CallId) {
        if let Some(c) = self.calls.get_mut(&call)
            && c.transfer.take().is_some()
        {
            self.transfer_result(call, TransferOutcome::TimedOut);
        }
    }

    pub(super) fn transfer_due(&mut self, now: Instant, call: CallId) {
        if let Some(c) = self.calls.get_mut(&call)
            && c.transfer.as_ref().is_some_and(|t| t.deadline <= now)
        {
            c.transfer = None;
            self.transfer_result(call, TransferOutcome::TimedOut);
        }
    }

    /// The status for an in-dialog NOTIFY: 200 for our refer subscription, 489 for other
    /// event packages, 481 when no transfer is pending (RFC 6665 §4.1.3).
    pub(super) fn notify_status(&self, call: CallId, req: &Request) -> u16 {
        let event = req.headers.get("Event").unwrap_or_default();
        let package = event.split(';').next().unwrap_or_default().trim();
        if !package.eq_ignore_ascii_case("refer") {
            return 489;
        }
        match self.calls.get(&call) {
            Some(c) if c.transfer.is_some() => 200,
            _ => 481,
        }
    }

    /// A NOTIFY of our transfer's progress (already answered 200).
    pub(super) fn on_notify(&mut self, now: Instant, call: CallId, req: &Request) {
        let status = sipfrag_status(&req.body);
        let terminated = req
            .headers
            .get("Subscription-State")
            .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"));
        let outcome = match status {
            Some(200..=299) => TransferOutcome::Accepted,
            Some(s @ 300..=699) => TransferOutcome::Failed { status: s },
            _ if terminated => TransferOutcome::Failed { status: 487 },
            _ => return,
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.transfer.take().is_none() {
            return;
        }
        self.transfer_result(call, outcome);
        if outcome == TransferOutcome::Accepted {
            if let Some(c) = self.calls.get_mut(&call) {
                c.end_after_bye = Some(EndReason::Transferred);
            }
            self.send_bye(now, call, true);
        }
    }

    fn transfer_result(&mut self, call: CallId, outcome: TransferOutcome) {
        self.events
            .push_back(Event::TransferResult { call, outcome });
    }
}

/// The status code of a message/sipfrag body's status line (`SIP/2.0 200 OK`).
pub fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.to_ascii_uppercase().starts_with("SIP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok().filter(|c| (100..=699).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipfrag_lines() {
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(sipfrag_status(b"SIP/2.0 100 Trying"), Some(100));
        assert_eq!(
            sipfrag_status(b"\r\nSIP/2.0 486 Busy Here\r\nX: y\r\n"),
            Some(486)
        );
        assert_eq!(sipfrag_status(b"INVITE sip:x SIP/2.0"), None);
        assert_eq!(sipfrag_status(b"SIP/2.0 2000 OK"), None);
        assert_eq!(sipfrag_status(b"SIP/2.0 999 Nope"), None);
        assert_eq!(sipfrag_status(b""), None);
        assert_eq!(sipfrag_status(b"\xff"), None);
    }
}
