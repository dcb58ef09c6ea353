//! Call-level behaviour shared by both directions: the application's commands on inbound calls
//! (ringing, answer, reject) and on any call (hangup), the UAS 2xx retransmission until ACK
//! (RFC 3261 §13.3.1.4), in-dialog requests and BYE, the per-call timers, and the call record.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::events::{EndReason, Event, TransferOutcome};
use super::session::{SessionTimer, TimerAsk};
use super::transfer::Transfer;
use super::types::{CallError, CallId};
use super::uac::Outbound;
use super::{ALLOWED_METHODS, Endpoint, Purpose, SUPPORTED, TimerOwner, Tx};
use crate::dialog::{Dialog, DialogKey};
use crate::message::{Method, Request, Response};
use crate::sdp::SessionDescription;
use crate::transaction::{Deadline, InviteClient, NonInviteClient, TxKey, earliest};
use crate::transmit::{Target, TransportKind};

impl Endpoint {
    /// Sends 180 Ringing for an inbound call (idempotent while ringing).
    pub fn ringing(&mut self, now: Instant, call: CallId) -> Result<(), CallError> {
        let c = self.calls.get(&call).ok_or(CallError::UnknownCall)?;
        if c.state != CallState::Ringing {
            return Err(CallError::InvalidState(
                "ringing needs an unanswered inbound call",
            ));
        }
        let resp = self.call_response(call, 180)?;
        self.respond_invite(now, call, &resp);
        Ok(())
    }

    /// Answers an inbound call with 200 OK carrying `local_sdp` (the answer, or our offer if
    /// the INVITE had none). The 200 is retransmitted until the ACK arrives. When the INVITE
    /// asked for a session timer (or [`super::Config::session_expires`] is set), the 200
    /// carries Session-Expires and the core refreshes or watches the session (RFC 4028).
    pub fn answer(
        &mut self,
        now: Instant,
        call: CallId,
        local_sdp: &SessionDescription,
    ) -> Result<(), CallError> {
        let c = self.calls.get(&call).ok_or(CallError::UnknownCall)?;
        if c.state != CallState::Ringing {
            return Err(CallError::InvalidState(
                "answer needs an unanswered inbound call",
            ));
        }
        let (Some(invite), peer, tag) = (c.invite.clone(), c.peer, c.local_tag.clone()) else {
            return Err(CallError::InvalidState("not an inbound call"));
        };
        let timer = c
            .timer_ask
            .as_ref()
            .and_then(|ask| ask.negotiate(self.config.session_expires, self.config.min_se));
        let mut resp = self.call_response(call, 200)?;
        for rr in invite.headers.get_all("Record-Route") {
            resp.headers.push("Record-Route", rr);
        }
        resp.headers.push("Allow", ALLOWED_METHODS);
        resp.headers.push("Supported", SUPPORTED);
        if let Some((interval, we_refresh)) = timer {
            super::session::add_response_headers(&mut resp, interval, we_refresh);
        }
        resp.headers.push("Content-Type", "application/sdp");
        resp.body = local_sdp.to_bytes();
        let local_seq = self.ids.initial_cseq();
        let dialog = Dialog::uas(&invite, &tag, local_seq, peer)
            .map_err(|_| CallError::InvalidState("INVITE cannot form a dialog"))?;
        self.respond_invite(now, call, &resp);
        let t = self.config.timers;
        if let Some(c) = self.calls.get_mut(&call) {
            c.dialog = Some(dialog);
            c.state = CallState::Answered;
            c.local_sdp = Some(local_sdp.clone());
            c.timer = timer.map(|(i, r)| SessionTimer::start(now, i, r));
            c.ok_retx = Some(OkRetransmit::new(
                resp.to_bytes(),
                now,
                t.t1,
                t.timeout(),
                None,
            ));
        }
        self.schedule(TimerOwner::Call(call));
        Ok(())
    }

    /// Rejects an inbound call with a final status (300–699), e.g. 486 Busy Here.
    pub fn reject(&mut self, now: Instant, call: CallId, status: u16) -> Result<(), CallError> {
        if !(300..=699).contains(&status) {
            return Err(CallError::InvalidStatus(status));
        }
        let c = self.calls.get(&call).ok_or(CallError::UnknownCall)?;
        if c.state != CallState::Ringing {
            return Err(CallError::InvalidState(
                "reject needs an unanswered inbound call",
            ));
        }
        self.reject_invite(now, call, status);
        self.end_call(call, EndReason::LocalRejected { status });
        Ok(())
    }

    /// Ends a call from our side: BYE when established, CANCEL for an outbound call not yet
    /// answered, 480 for an inbound call not yet answered. An answered inbound call whose ACK
    /// has not arrived gets its BYE once the ACK arrives (RFC 3261 §15). The
    /// [`super::Event::CallEnded`] follows when the exchange completes.
    pub fn hangup(&mut self, now: Instant, call: CallId) -> Result<(), CallError> {
        let state = self.calls.get(&call).ok_or(CallError::UnknownCall)?.state;
        match state {
            CallState::Ringing => {
                self.reject_invite(now, call, 480);
                self.end_call(call, EndReason::LocalRejected { status: 480 });
            }
            CallState::Answered => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.hangup_after_ack = true;
                }
            }
            CallState::Calling => {
                // CANCEL must wait for a provisional response (RFC 3261 §9.1).
                if let Some(c) = self.calls.get_mut(&call) {
                    c.cancel_pending = true;
                }
            }
            CallState::Early => self.send_cancel(now, call),
            CallState::Confirmed => self.send_bye(now, call, true),
            CallState::Terminating => {}
        }
        Ok(())
    }

    /// The SIP Call-ID of a call (for logs, the call record and correlation with peers).
    pub fn sip_call_id(&self, call: CallId) -> Option<&str> {
        let c = self.calls.get(&call)?;
        match &c.dialog_key {
            Some(key) if !key.call_id.is_empty() => Some(key.call_id.as_str()),
            _ => c.invite.as_ref()?.headers.call_id().ok(),
        }
    }

    // ---- internals --------------------------------------------------------------------

    pub(super) fn new_call_id(&mut self) -> CallId {
        self.next_call += 1;
        CallId(self.next_call)
    }

    /// A response to the call's INVITE with our tag and Contact.
    fn call_response(&self, call: CallId, status: u16) -> Result<Response, CallError> {
        let c = self.calls.get(&call).ok_or(CallError::UnknownCall)?;
        let invite = c
            .invite
            .as_ref()
            .ok_or(CallError::InvalidState("not an inbound call"))?;
        let mut resp = self.response(invite, status, Some(&c.local_tag), c.link);
        if status < 300 {
            resp.headers
                .push("Contact", self.config.contact_for(c.link.transport));
        }
        Ok(resp)
    }

    fn respond_invite(&mut self, now: Instant, call: CallId, resp: &Response) {
        let tx = self
            .calls
            .get(&call)
            .and_then(|c| c.invite_tx.as_ref())
            .and_then(|k| self.tx_index.get(k))
            .copied();
        if let Some(id) = tx {
            self.respond_tx(now, id, resp);
        }
    }

    /// Sends a final non-2xx to a pending inbound INVITE.
    pub(super) fn reject_invite(&mut self, now: Instant, call: CallId, status: u16) {
        if let Ok(resp) = self.call_response(call, status) {
            self.respond_invite(now, call, &resp);
        }
    }

    /// Emits `CallEnded` and forgets the call. Transactions it started run on unattended.
    /// A transfer still pending is reported as failed first.
    pub(super) fn end_call(&mut self, call: CallId, reason: EndReason) {
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        if let Some(k) = c.dialog_key {
            self.dialogs.remove(&k);
        }
        if c.transfer.is_some() && reason != EndReason::Transferred {
            self.events.push_back(Event::TransferResult {
                call,
                outcome: TransferOutcome::Failed { status: 487 },
            });
        }
        self.events.push_back(Event::CallEnded { call, reason });
    }

    pub(super) fn on_ack(&mut self, now: Instant, call: CallId, ack: &Request) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let seq = ack.headers.cseq().map(|s| s.seq).ok();
        let remote_sdp = if ack.body.is_empty() {
            None
        } else {
            SessionDescription::parse(&ack.body).ok()
        };
        match c.state {
            CallState::Answered => {}
            // The ACK for our 2xx to a re-INVITE.
            CallState::Confirmed | CallState::Terminating
                if c.ok_retx
                    .as_ref()
                    .is_some_and(|r| r.reinvite_seq == seq && seq.is_some()) =>
            {
                c.ok_retx = None;
                if let Some(sdp) = remote_sdp {
                    self.on_answer_in_ack(call, sdp);
                }
                return;
            }
            _ => {
                self.stats.stray_acks += 1;
                return;
            }
        }
        c.state = CallState::Confirmed;
        c.ok_retx = None;
        if remote_sdp.is_some() {
            c.remote_sdp.clone_from(&remote_sdp);
        }
        let hangup = c.hangup_after_ack;
        self.events
            .push_back(Event::CallEstablished { call, remote_sdp });
        if hangup {
            self.send_bye(now, call, true);
        }
        self.schedule(TimerOwner::Call(call));
    }

    /// Builds an in-dialog request (next CSeq), lets `customize` add headers and body, picks
    /// the dialog's transport and starts a client transaction owned by `owner`.
    pub(super) fn send_in_dialog(
        &mut self,
        now: Instant,
        call: CallId,
        method: Method,
        purpose: Purpose,
        owner: Option<CallId>,
        customize: impl FnOnce(&mut Request),
    ) -> bool {
        let (via, branch) = self.via();
        let symmetric = self.config.symmetric_signalling;
        let contact = self.config.contact();
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let Some(d) = c.dialog.as_mut() else {
            return false;
        };
        let mut req = d.request(method.clone(), &via);
        let dest = d.destination(symmetric);
        let link = c.link;
        if matches!(method, Method::Invite | Method::Update | Method::Refer) {
            req.headers.push("Contact", contact);
        }
        customize(&mut req);
        let pref = (link.transport == TransportKind::Tcp).then_some(TransportKind::Tcp);
        let conn = if dest == link.addr { link.conn } else { None };
        let target = self.route_request(&mut req, dest, pref, conn);
        let timers = self.config.timers;
        let key = TxKey::client(&branch, &method);
        let tx = if method == Method::Invite {
            Tx::InviteClient(Box::new(InviteClient::start(
                now,
                req,
                target,
                timers,
                &mut self.out,
            )))
        } else {
            Tx::NonInviteClient(NonInviteClient::start(
                now,
                req.to_bytes(),
                target,
                timers,
                &mut self.out,
            ))
        };
        self.add_tx(key, tx, owner, purpose);
        true
    }

    /// Sends BYE in the call's dialog. With `track`, the call ends when the BYE completes
    /// (with `end_after_bye`, or `LocalBye`); without, the caller ends the call itself.
    pub(super) fn send_bye(&mut self, now: Instant, call: CallId, track: bool) {
        let sent = self.send_in_dialog(
            now,
            call,
            Method::Bye,
            Purpose::Bye,
            track.then_some(call),
            |_| {},
        );
        if let Some(c) = self.calls.get_mut(&call) {
            c.state = CallState::Terminating;
            c.timer = None;
        }
        if !sent && track {
            let reason = self.bye_reason(call);
            self.end_call(call, reason);
        }
    }

    /// What to report once our tracked BYE completes.
    pub(super) fn bye_reason(&self, call: CallId) -> EndReason {
        self.calls
            .get(&call)
            .and_then(|c| c.end_after_bye.clone())
            .unwrap_or(EndReason::LocalBye)
    }

    pub(super) fn call_timeout(&mut self, now: Instant, call: CallId) {
        let timers = self.config.timers;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(r) = c.ok_retx.as_mut() {
            if r.give_up <= now {
                c.ok_retx = None;
                // RFC 3261 §13.3.1.4 (and §14.2 for re-INVITEs): no ACK within 64*T1 —
                // end the session.
                self.send_bye(now, call, false);
                self.end_call(call, EndReason::AckTimeout);
                return;
            }
            if r.next <= now {
                self.out.resend(c.link, &r.bytes);
                r.interval = (r.interval * 2).min(timers.t2);
                r.next = now + r.interval;
            }
        }
        if c.cancel_deadline.is_some_and(|t| t <= now) {
            // RFC 3261 §9.1: no final response 64*T1 after CANCEL; consider the INVITE done.
            if let Some(key) = c.invite_tx.clone()
                && let Some(id) = self.tx_index.remove(&key)
            {
                self.transactions.remove(&id);
            }
            let reason = if c.outbound.as_ref().is_some_and(|o| o.ring_timed_out) {
                EndReason::RingTimeout
            } else {
                EndReason::LocalCancel
            };
            self.end_call(call, reason);
            return;
        }
        self.ringing_timeout(now, call);
        self.session_timer_due(now, call);
        self.transfer_due(now, call);
        self.schedule(TimerOwner::Call(call));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallState {
    /// Inbound, not answered yet.
    Ringing,
    /// Inbound, 200 sent, waiting for the ACK.
    Answered,
    /// Outbound, no provisional response yet.
    Calling,
    /// Outbound, provisional received.
    Early,
    Confirmed,
    /// Our BYE is in flight.
    Terminating,
}

/// Retransmission schedule of our 2xx until the ACK arrives.
#[derive(Debug)]
pub(super) struct OkRetransmit {
    bytes: Vec<u8>,
    next: Instant,
    interval: Duration,
    give_up: Instant,
    /// For a 2xx to a re-INVITE: its CSeq (the ACK must match it).
    pub(super) reinvite_seq: Option<u32>,
}

impl OkRetransmit {
    pub(super) fn new(
        bytes: Vec<u8>,
        now: Instant,
        t1: Duration,
        timeout: Duration,
        reinvite_seq: Option<u32>,
    ) -> Self {
        Self {
            bytes,
            next: now + t1,
            interval: t1,
            give_up: now + timeout,
            reinvite_seq,
        }
    }
}

#[derive(Debug)]
pub(super) struct Call {
    pub(super) local_tag: String,
    pub(super) dialog_key: Option<DialogKey>,
    /// Inbound: where the INVITE came from; outbound: where we sent it.
    pub(super) peer: SocketAddr,
    /// Transport (and connection) for signalling with the peer.
    pub(super) link: Target,
    pub(super) state: CallState,
    /// The INVITE received (inbound) or sent (outbound, latest attempt).
    pub(super) invite: Option<Request>,
    pub(super) invite_tx: Option<TxKey>,
    pub(super) dialog: Option<Dialog>,
    pub(super) ok_retx: Option<OkRetransmit>,
    pub(super) hangup_after_ack: bool,
    pub(super) cancel_pending: bool,
    pub(super) cancelled: bool,
    pub(super) cancel_deadline: Option<Instant>,
    /// Outbound: our ACK for the 2xx, resent when the 2xx is retransmitted.
    pub(super) ack: Option<(Target, Vec<u8>)>,
    /// Outbound-only state (credentials, ringing timeout…).
    pub(super) outbound: Option<Box<Outbound>>,
    /// Our current SDP (answer or offer), the base for answering re-offers.
    pub(super) local_sdp: Option<SessionDescription>,
    pub(super) remote_sdp: Option<SessionDescription>,
    /// Inbound: what the INVITE asked of session timers.
    pub(super) timer_ask: Option<TimerAsk>,
    pub(super) timer: Option<SessionTimer>,
    /// The peer listed UPDATE in Allow (we refresh with UPDATE then).
    pub(super) peer_allows_update: bool,
    /// Our session refresh is in flight.
    pub(super) refresh_pending: bool,
    /// Our ACK for the 2xx to our refresh re-INVITE.
    pub(super) refresh_ack: Option<(Target, Vec<u8>, u32)>,
    pub(super) transfer: Option<Transfer>,
    /// Reported when our BYE completes (e.g. `Transferred`, `SessionExpired`).
    pub(super) end_after_bye: Option<EndReason>,
}

impl Call {
    pub(super) fn new(
        local_tag: String,
        dialog_key: DialogKey,
        link: Target,
        state: CallState,
    ) -> Self {
        Self {
            local_tag,
            dialog_key: Some(dialog_key),
            peer: link.addr,
            link,
            state,
            invite: None,
            invite_tx: None,
            dialog: None,
            ok_retx: None,
            hangup_after_ack: false,
            cancel_pending: false,
            cancelled: false,
            cancel_deadline: None,
            ack: None,
            outbound: None,
            local_sdp: None,
            remote_sdp: None,
            timer_ask: None,
            timer: None,
            peer_allows_update: false,
            refresh_pending: false,
            refresh_ack: None,
            transfer: None,
            end_after_bye: None,
        }
    }

    pub(super) fn deadline(&self) -> Deadline {
        let ringing = self
            .outbound
            .as_ref()
            .filter(|o| !o.ring_timed_out && !self.cancelled)
            .filter(|_| matches!(self.state, CallState::Calling | CallState::Early))
            .and_then(|o| o.ring_deadline)
            .map(|t| (t, "ringing timeout"));
        earliest(&[
            self.ok_retx.as_ref().map(|r| (r.next, "2xx retransmit")),
            self.ok_retx
                .as_ref()
                .map(|r| (r.give_up, "ACK wait (64*T1)")),
            self.cancel_deadline
                .map(|t| (t, "final response after CANCEL")),
            ringing,
            self.timer.as_ref().map(SessionTimer::deadline),
            self.transfer
                .as_ref()
                .map(|t| (t.deadline, "transfer timeout")),
        ])
    }
}

pub(super) fn sdp_body(body: &[u8]) -> Option<SessionDescription> {
    if body.is_empty() {
        return None;
    }
    SessionDescription::parse(body).ok()
}
