//! Call-level behaviour: the application's commands (ringing, answer, reject, hangup, invite),
//! the UAS 2xx retransmission until ACK (RFC 3261 §13.3.1.4), the UAC side of INVITE (ACK for
//! 2xx, CANCEL after a provisional, §9.1), BYE, and how transaction outcomes end calls.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::types::{CallError, CallId, EndReason, Event, InviteParams};
use super::{ALLOWED_METHODS, Endpoint, Purpose, TimerOwner, Tx};
use crate::dialog::{Dialog, DialogKey};
use crate::message::{Method, NameAddr, Request, Response};
use crate::sdp::SessionDescription;
use crate::transaction::{Deadline, InviteClient, NonInviteClient, TxKey, earliest};

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
    /// the INVITE had none). The 200 is retransmitted until the ACK arrives.
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
        let mut resp = self.call_response(call, 200)?;
        for rr in invite.headers.get_all("Record-Route") {
            resp.headers.push("Record-Route", rr);
        }
        resp.headers.push("Allow", ALLOWED_METHODS);
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
            c.ok_retx = Some(OkRetransmit {
                bytes: resp.to_bytes(),
                next: now + t.t1,
                interval: t.t1,
                give_up: now + t.timeout(),
            });
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
    /// [`Event::CallEnded`] follows when the exchange completes.
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

    /// Places an outbound call: sends the INVITE with `params.offer`.
    pub fn invite(&mut self, now: Instant, params: InviteParams) -> Result<CallId, CallError> {
        let call = self.new_call_id();
        let host = self.config.sent_by();
        let sip_call_id = self.ids.call_id(&host);
        let local_tag = self.ids.tag();
        let seq = self.ids.initial_cseq();
        let (via, branch) = self.via();
        let mut from = NameAddr::new(params.from).with_tag(&local_tag);
        from.display_name = params.from_display;
        let mut req = Request::new(Method::Invite, params.target.clone());
        req.headers.push("Via", via);
        req.headers.push("Max-Forwards", "70");
        req.headers.push("From", from.to_string());
        req.headers
            .push("To", NameAddr::new(params.target).to_string());
        req.headers.push("Call-ID", sip_call_id.as_str());
        req.headers.push("CSeq", format!("{seq} INVITE"));
        req.headers.push("Contact", self.config.contact());
        req.headers.push("Allow", ALLOWED_METHODS);
        req.headers
            .push("User-Agent", self.config.user_agent.as_str());
        for (n, v) in params.headers {
            req.headers.push(&n, v);
        }
        req.headers.push("Content-Type", "application/sdp");
        req.body = params.offer.to_bytes();
        let key = TxKey::client(&branch, &Method::Invite);
        let tx = InviteClient::start(
            now,
            req.clone(),
            params.destination,
            false,
            self.config.timers,
            &mut self.out,
        );
        self.add_tx(
            key.clone(),
            Tx::InviteClient(Box::new(tx)),
            Some(call),
            Purpose::Invite,
        );
        let mut c = Call::new(
            local_tag,
            DialogKey {
                call_id: sip_call_id.clone(),
                local_tag: String::new(),
                remote_tag: String::new(),
            },
            params.destination,
            CallState::Calling,
        );
        c.dialog_key = None;
        c.invite = Some(req);
        c.invite_tx = Some(key);
        self.calls.insert(call, c);
        self.stats.calls_outbound += 1;
        self.stats.requests_sent += 1;
        Ok(call)
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
        let mut resp = self.response(invite, status, Some(&c.local_tag), c.peer);
        if status < 300 {
            resp.headers.push("Contact", self.config.contact());
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
    pub(super) fn end_call(&mut self, call: CallId, reason: EndReason) {
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        if let Some(k) = c.dialog_key {
            self.dialogs.remove(&k);
        }
        self.events.push_back(Event::CallEnded { call, reason });
    }

    pub(super) fn on_ack(&mut self, now: Instant, call: CallId, ack: &Request) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state != CallState::Answered {
            self.stats.stray_acks += 1;
            return;
        }
        c.state = CallState::Confirmed;
        c.ok_retx = None;
        let hangup = c.hangup_after_ack;
        let remote_sdp = if ack.body.is_empty() {
            None
        } else {
            SessionDescription::parse(&ack.body).ok()
        };
        self.events
            .push_back(Event::CallEstablished { call, remote_sdp });
        if hangup {
            self.send_bye(now, call, true);
        }
    }

    /// Sends BYE in the call's dialog. With `track`, the call ends when the BYE completes;
    /// without, the call is being ended by the caller of this function.
    fn send_bye(&mut self, now: Instant, call: CallId, track: bool) {
        let (via, branch) = self.via();
        let symmetric = self.config.symmetric_signalling;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(d) = c.dialog.as_mut() else {
            return;
        };
        let bye = d.request(Method::Bye, &via);
        let dest = d.destination(symmetric);
        c.state = CallState::Terminating;
        let tx = NonInviteClient::start(
            now,
            bye.to_bytes(),
            dest,
            false,
            self.config.timers,
            &mut self.out,
        );
        self.stats.requests_sent += 1;
        let owner = track.then_some(call);
        self.add_tx(
            TxKey::client(&branch, &Method::Bye),
            Tx::NonInviteClient(tx),
            owner,
            Purpose::Bye,
        );
    }

    /// CANCEL for our pending INVITE (same branch, RFC 3261 §9.1).
    fn send_cancel(&mut self, now: Instant, call: CallId) {
        let deadline = now + self.config.timers.timeout();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(inv) = &c.invite else {
            return;
        };
        let mut cancel = Request::new(Method::Cancel, inv.uri.clone());
        for name in ["Via", "Max-Forwards", "From", "To", "Call-ID"] {
            if let Some(v) = inv.headers.get(name) {
                cancel.headers.push(name, v);
            }
        }
        let seq = inv.headers.cseq().map(|s| s.seq).unwrap_or(1);
        cancel.headers.push("CSeq", format!("{seq} CANCEL"));
        for r in inv.headers.get_all("Route") {
            cancel.headers.push("Route", r);
        }
        let branch = inv
            .headers
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default();
        c.cancel_pending = false;
        c.cancelled = true;
        c.cancel_deadline = Some(deadline);
        let dest = c.peer;
        let tx = NonInviteClient::start(
            now,
            cancel.to_bytes(),
            dest,
            false,
            self.config.timers,
            &mut self.out,
        );
        self.stats.requests_sent += 1;
        self.add_tx(
            TxKey::client(&branch, &Method::Cancel),
            Tx::NonInviteClient(tx),
            Some(call),
            Purpose::Cancel,
        );
        self.schedule(TimerOwner::Call(call));
    }

    pub(super) fn on_client_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        call: CallId,
        purpose: Purpose,
        resp: &Response,
    ) {
        match purpose {
            Purpose::Invite => self.on_invite_response(now, from, call, resp),
            Purpose::Bye if resp.status >= 200 => self.end_call(call, EndReason::LocalBye),
            _ => {}
        }
    }

    fn on_invite_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        call: CallId,
        resp: &Response,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        match resp.status {
            100..=199 => {
                if c.state == CallState::Calling {
                    c.state = CallState::Early;
                }
                let cancel = c.cancel_pending;
                if resp.status > 100 {
                    self.events.push_back(Event::CallProgress {
                        call,
                        status: resp.status,
                        remote_sdp: sdp_body(resp),
                    });
                }
                if cancel {
                    self.send_cancel(now, call);
                }
            }
            200..=299 => {
                if let Some((dest, ack)) = &c.ack {
                    // A retransmitted 2xx: our ACK was lost.
                    self.out.resend(*dest, ack);
                    return;
                }
                let Some(invite) = c.invite.clone() else {
                    return;
                };
                let Ok(dialog) = Dialog::uac(&invite, resp, from) else {
                    // A 2xx we cannot form a dialog from: nothing sane to ACK; give up.
                    return self.end_call(
                        call,
                        EndReason::RemoteRejected {
                            status: resp.status,
                            reason: "unusable 2xx".into(),
                        },
                    );
                };
                let (via, _) = self.via();
                let seq = invite.headers.cseq().map(|s| s.seq).unwrap_or(1);
                let ack = dialog.ack(seq, &via).to_bytes();
                let dest = dialog.destination(self.config.symmetric_signalling);
                self.out.send(dest, ack.clone());
                self.stats.requests_sent += 1;
                let key = dialog.key();
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                let hang_up = c.cancel_pending || c.cancelled;
                c.ack = Some((dest, ack));
                c.dialog = Some(dialog);
                c.dialog_key = Some(key.clone());
                c.state = CallState::Confirmed;
                c.cancel_deadline = None;
                self.dialogs.insert(key, call);
                self.events.push_back(Event::CallEstablished {
                    call,
                    remote_sdp: sdp_body(resp),
                });
                if hang_up {
                    // CANCEL lost the race with the 2xx: end the call we no longer want.
                    self.send_bye(now, call, true);
                }
            }
            status => {
                let reason = if c.cancelled && status == 487 {
                    EndReason::LocalCancel
                } else {
                    EndReason::RemoteRejected {
                        status,
                        reason: resp.reason.clone(),
                    }
                };
                self.end_call(call, reason);
            }
        }
    }

    /// A response no transaction claims: a 2xx to an INVITE after Timer M would be a lost ACK.
    pub(super) fn on_stray_response(&mut self, _now: Instant, _from: SocketAddr, resp: &Response) {
        if resp.is_success()
            && let Ok(cseq) = resp.headers.cseq()
            && cseq.method == Method::Invite
            && let (Ok(call_id), Ok(from), Ok(to)) = (
                resp.headers.call_id(),
                resp.headers.from(),
                resp.headers.to(),
            )
        {
            let key = DialogKey {
                call_id: call_id.to_owned(),
                local_tag: from.tag().unwrap_or_default().to_owned(),
                remote_tag: to.tag().unwrap_or_default().to_owned(),
            };
            if let Some(c) = self.dialogs.get(&key).and_then(|id| self.calls.get(id))
                && let Some((dest, ack)) = &c.ack
            {
                self.out.resend(*dest, ack);
                return;
            }
        }
        self.stats.stray_responses += 1;
    }

    pub(super) fn on_tx_timed_out(&mut self, _now: Instant, call: CallId, purpose: Purpose) {
        let cancelled = self.calls.get(&call).is_some_and(|c| c.cancelled);
        match purpose {
            Purpose::Invite if cancelled => self.end_call(call, EndReason::LocalCancel),
            Purpose::Invite => self.end_call(call, EndReason::Timeout),
            Purpose::Bye => self.end_call(call, EndReason::LocalBye),
            Purpose::Cancel | Purpose::Server => {}
        }
    }

    pub(super) fn call_timeout(&mut self, now: Instant, call: CallId) {
        let timers = self.config.timers;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(r) = c.ok_retx.as_mut() {
            if r.give_up <= now {
                c.ok_retx = None;
                // RFC 3261 §13.3.1.4: no ACK within 64*T1 — confirm and end the session.
                self.send_bye(now, call, false);
                self.end_call(call, EndReason::AckTimeout);
                return;
            }
            if r.next <= now {
                self.out.resend(c.peer, &r.bytes);
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
            self.end_call(call, EndReason::LocalCancel);
            return;
        }
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
struct OkRetransmit {
    bytes: Vec<u8>,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

#[derive(Debug)]
pub(super) struct Call {
    pub(super) local_tag: String,
    dialog_key: Option<DialogKey>,
    /// Inbound: where the INVITE came from; outbound: where we sent it.
    peer: SocketAddr,
    pub(super) state: CallState,
    /// The INVITE received (inbound) or sent (outbound).
    pub(super) invite: Option<Request>,
    pub(super) invite_tx: Option<TxKey>,
    pub(super) dialog: Option<Dialog>,
    ok_retx: Option<OkRetransmit>,
    hangup_after_ack: bool,
    cancel_pending: bool,
    cancelled: bool,
    cancel_deadline: Option<Instant>,
    /// Outbound: our ACK for the 2xx, resent when the 2xx is retransmitted.
    ack: Option<(SocketAddr, Vec<u8>)>,
}

impl Call {
    pub(super) fn new(
        local_tag: String,
        dialog_key: DialogKey,
        peer: SocketAddr,
        state: CallState,
    ) -> Self {
        Self {
            local_tag,
            dialog_key: Some(dialog_key),
            peer,
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
        }
    }

    pub(super) fn deadline(&self) -> Deadline {
        earliest(&[
            self.ok_retx.as_ref().map(|r| (r.next, "2xx retransmit")),
            self.ok_retx
                .as_ref()
                .map(|r| (r.give_up, "ACK wait (64*T1)")),
            self.cancel_deadline
                .map(|t| (t, "final response after CANCEL")),
        ])
    }
}

fn sdp_body(resp: &Response) -> Option<SessionDescription> {
    if resp.body.is_empty() {
        return None;
    }
    SessionDescription::parse(&resp.body).ok()
}
