//! The UAC side of INVITE: placing a call, answering 401/407 challenges (RFC 3261 §22.2: the
//! transaction ACKs the challenge, we resend with the same Call-ID and From tag, CSeq+1 and
//! credentials), 422 (RFC 4028 §7.4: retry with the larger interval), provisional responses
//! with or without early media, ACK for 2xx, CANCEL after a provisional (§9.1), the ringing
//! timeout, and what a final failure means for the call.

use std::time::Instant;

use super::calls::{Call, CallState, sdp_body};
use super::events::{EndReason, Event};
use super::session::{self, SessionTimer};
use super::types::{CallError, CallId, InviteParams};
use super::{ALLOWED_METHODS, Endpoint, Purpose, SUPPORTED, TimerOwner, Tx};
use crate::auth::{Credentials, DigestClient};
use crate::dialog::{Dialog, DialogKey};
use crate::message::{Method, NameAddr, Request, Response};
use crate::transaction::{InviteClient, NonInviteClient, TxKey};
use crate::transmit::{Target, TransportKind};

/// Retries after 422 before giving up.
const MAX_422_RETRIES: u8 = 2;

/// State only outbound calls have.
#[derive(Debug)]
pub(super) struct Outbound {
    credentials: Option<Credentials>,
    digest: DigestClient,
    pub(super) ring_deadline: Option<Instant>,
    pub(super) ring_timed_out: bool,
    transport: Option<TransportKind>,
    retries_422: u8,
}

impl Endpoint {
    /// Places an outbound call: sends the INVITE with `params.offer` (and `Supported: timer`,
    /// plus Session-Expires when [`super::Config::session_expires`] is set). Challenges are
    /// answered with `params.credentials` (or the trunk's); the call then goes on by itself.
    pub fn invite(&mut self, now: Instant, params: InviteParams) -> Result<CallId, CallError> {
        if let Some(max) = self.config.max_concurrent_calls
            && self.calls.len() >= max
        {
            return Err(CallError::TooManyCalls(max));
        }
        let mut credentials = params.credentials;
        let mut transport = params.transport;
        if let Some(name) = &params.trunk {
            let t = self
                .trunk_config(name)
                .ok_or_else(|| CallError::UnknownTrunk(name.clone()))?;
            if credentials.is_none() {
                credentials.clone_from(&t.credentials);
            }
            if transport.is_none() {
                transport = t.transport;
            }
        }
        let call = self.new_call_id();
        let host = self.config.sent_by();
        let sip_call_id = self.ids.call_id(&host);
        let local_tag = self.ids.tag();
        let seq = self.ids.initial_cseq();
        let mut from = NameAddr::new(params.from).with_tag(&local_tag);
        from.display_name = params.from_display;
        let mut req = Request::new(Method::Invite, params.target.clone());
        req.headers.push("Via", "");
        req.headers.push("Max-Forwards", "70");
        req.headers.push("From", from.to_string());
        req.headers
            .push("To", NameAddr::new(params.target).to_string());
        req.headers.push("Call-ID", sip_call_id.as_str());
        req.headers.push("CSeq", format!("{seq} INVITE"));
        req.headers.push("Contact", self.config.contact());
        req.headers.push("Allow", ALLOWED_METHODS);
        req.headers.push("Supported", SUPPORTED);
        if let Some(se) = self.config.session_expires {
            req.headers
                .push("Session-Expires", se.max(self.config.min_se).to_string());
            req.headers.push("Min-SE", self.config.min_se.to_string());
        }
        req.headers
            .push("User-Agent", self.config.user_agent.as_str());
        for (n, v) in params.headers {
            req.headers.push(&n, v);
        }
        req.headers.push("Content-Type", "application/sdp");
        req.body = params.offer.to_bytes();
        let mut c = Call::new(
            local_tag,
            DialogKey {
                call_id: sip_call_id,
                local_tag: String::new(),
                remote_tag: String::new(),
            },
            Target::udp(params.destination),
            CallState::Calling,
        );
        c.dialog_key = None;
        c.local_sdp = Some(params.offer);
        let ring_deadline = params.ringing_timeout.map(|d| now + d);
        c.outbound = Some(Box::new(Outbound {
            credentials,
            digest: DigestClient::new(),
            ring_deadline,
            ring_timed_out: false,
            transport,
            retries_422: 0,
        }));
        self.calls.insert(call, c);
        self.stats.calls_outbound += 1;
        self.send_invite_attempt(now, call, req);
        self.schedule(TimerOwner::Call(call));
        Ok(call)
    }

    /// Sends (a new attempt of) our INVITE with a fresh branch.
    fn send_invite_attempt(&mut self, now: Instant, call: CallId, mut req: Request) {
        let (via, branch) = self.via();
        req.headers.set("Via", via);
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let pref = c.outbound.as_ref().and_then(|o| o.transport);
        let target = self.route_request(&mut req, c.peer, pref, None);
        let key = TxKey::client(&branch, &Method::Invite);
        let tx = InviteClient::start(now, req.clone(), target, self.config.timers, &mut self.out);
        self.add_tx(
            key.clone(),
            Tx::InviteClient(Box::new(tx)),
            Some(call),
            Purpose::Invite,
        );
        if let Some(c) = self.calls.get_mut(&call) {
            c.invite = Some(req);
            c.invite_tx = Some(key);
            c.link = target;
            c.state = CallState::Calling;
        }
    }

    /// CANCEL for our pending INVITE (same branch and transport, RFC 3261 §9.1).
    pub(super) fn send_cancel(&mut self, now: Instant, call: CallId) {
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
        let dest = c.link;
        let tx = NonInviteClient::start(
            now,
            cancel.to_bytes(),
            dest,
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
        from: Target,
        call: CallId,
        purpose: Purpose,
        resp: &Response,
    ) {
        match purpose {
            Purpose::Invite => self.on_invite_response(now, from, call, resp),
            Purpose::Bye if resp.status >= 200 => {
                let reason = self.bye_reason(call);
                self.end_call(call, reason);
            }
            Purpose::Refresh => self.on_refresh_response(now, call, resp),
            Purpose::Refer => self.on_refer_response(now, call, resp),
            _ => {}
        }
    }

    /// How the call ends when our INVITE is over without a 2xx.
    fn cancelled_reason(&self, call: CallId) -> EndReason {
        match self.calls.get(&call) {
            Some(c) if c.outbound.as_ref().is_some_and(|o| o.ring_timed_out) => {
                EndReason::RingTimeout
            }
            _ => EndReason::LocalCancel,
        }
    }

    fn on_invite_response(&mut self, now: Instant, from: Target, call: CallId, resp: &Response) {
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
                        remote_sdp: sdp_body(&resp.body),
                    });
                }
                if cancel {
                    self.send_cancel(now, call);
                }
            }
            200..=299 => self.on_invite_success(now, from, call, resp),
            401 | 407 if !(c.cancelled || c.cancel_pending) => {
                let Some(o) = c.outbound.as_mut() else {
                    return;
                };
                let Some(invite) = c.invite.clone() else {
                    return;
                };
                if o.digest.on_challenge(resp, o.credentials.as_ref()).is_err() {
                    let status = resp.status;
                    return self.end_call(call, EndReason::AuthFailed { status });
                }
                let cnonce = self.ids.token();
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                let Some(o) = c.outbound.as_mut() else {
                    return;
                };
                let mut req = next_attempt(&invite);
                if let Some(creds) = &o.credentials {
                    let uri = req.uri.to_string();
                    for (name, value) in
                        o.digest
                            .authorize(creds, &Method::Invite, &uri, &req.body, &cnonce)
                    {
                        req.headers.push(name, value);
                    }
                }
                self.stats.auth_challenges_answered += 1;
                self.send_invite_attempt(now, call, req);
            }
            422 if !(c.cancelled || c.cancel_pending) => {
                let min_se = resp.headers.get("Min-SE").and_then(session::parse_delta);
                let Some(o) = c.outbound.as_mut() else {
                    return;
                };
                let (Some(min_se), Some(invite)) = (min_se, c.invite.clone()) else {
                    return self.rejected(call, resp);
                };
                if o.retries_422 >= MAX_422_RETRIES {
                    return self.rejected(call, resp);
                }
                o.retries_422 += 1;
                let mut req = next_attempt(&invite);
                req.headers.set("Session-Expires", min_se.to_string());
                req.headers.set("Min-SE", min_se.to_string());
                self.send_invite_attempt(now, call, req);
            }
            487 if c.cancelled => {
                let reason = self.cancelled_reason(call);
                self.end_call(call, reason);
            }
            _ if c.cancelled || c.cancel_pending => {
                let reason = self.cancelled_reason(call);
                self.end_call(call, reason);
            }
            _ => self.rejected(call, resp),
        }
    }

    fn rejected(&mut self, call: CallId, resp: &Response) {
        self.end_call(
            call,
            EndReason::RemoteRejected {
                status: resp.status,
                reason: resp.reason.clone(),
            },
        );
    }

    fn on_invite_success(&mut self, now: Instant, from: Target, call: CallId, resp: &Response) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some((dest, ack)) = &c.ack {
            // A retransmitted 2xx: our ACK was lost.
            self.out.resend(*dest, ack);
            return;
        }
        let Some(invite) = c.invite.clone() else {
            return;
        };
        let Ok(dialog) = Dialog::uac(&invite, resp, from.addr) else {
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
        let mut ack_req = dialog.ack(seq, &via);
        let dest = dialog.destination(self.config.symmetric_signalling);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        // Keep the transport of the INVITE; learn the connection the 2xx came on.
        let mut link = c.link;
        if from.conn.is_some() && from.addr == link.addr {
            link.conn = from.conn;
        }
        c.link = link;
        let pref = Some(link.transport);
        let conn = if dest == link.addr { link.conn } else { None };
        let target = self.route_request(&mut ack_req, dest, pref, conn);
        let ack = ack_req.to_bytes();
        self.out.send(target, ack.clone());
        let key = dialog.key();
        let timer = session::timer_from_2xx(resp, now);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(o) = c.outbound.as_mut() {
            o.digest.on_success();
        }
        let hang_up = c.cancel_pending || c.cancelled;
        c.ack = Some((target, ack));
        c.dialog = Some(dialog);
        c.dialog_key = Some(key.clone());
        c.state = CallState::Confirmed;
        c.cancel_deadline = None;
        c.remote_sdp = sdp_body(&resp.body);
        c.peer_allows_update = resp.headers.allow().contains(&Method::Update);
        c.timer =
            timer.map(|(interval, we_refresh)| SessionTimer::start(now, interval, we_refresh));
        self.dialogs.insert(key, call);
        self.events.push_back(Event::CallEstablished {
            call,
            remote_sdp: sdp_body(&resp.body),
        });
        if hang_up {
            // CANCEL lost the race with the 2xx: end the call we no longer want.
            self.send_bye(now, call, true);
        }
        self.schedule(TimerOwner::Call(call));
    }

    /// A response no transaction claims: a 2xx to an INVITE after Timer M means our ACK was
    /// lost (initial INVITE or a refresh re-INVITE).
    pub(super) fn on_stray_response(&mut self, _now: Instant, _from: Target, resp: &Response) {
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
            if let Some(c) = self.dialogs.get(&key).and_then(|id| self.calls.get(id)) {
                if let Some((dest, ack, seq)) = &c.refresh_ack
                    && *seq == cseq.seq
                {
                    self.out.resend(*dest, ack);
                    return;
                }
                if let Some((dest, ack)) = &c.ack {
                    self.out.resend(*dest, ack);
                    return;
                }
            }
        }
        self.stats.stray_responses += 1;
    }

    pub(super) fn on_tx_timed_out(
        &mut self,
        now: Instant,
        call: CallId,
        purpose: Purpose,
        transport: bool,
    ) {
        let cancelled = self.calls.get(&call).is_some_and(|c| c.cancelled);
        match purpose {
            Purpose::Invite if cancelled => {
                let reason = self.cancelled_reason(call);
                self.end_call(call, reason);
            }
            Purpose::Invite if transport => self.end_call(call, EndReason::TransportError),
            Purpose::Invite => self.end_call(call, EndReason::Timeout),
            Purpose::Bye => {
                let reason = self.bye_reason(call);
                self.end_call(call, reason);
            }
            Purpose::Refresh => self.on_refresh_failed(now, call),
            Purpose::Refer => self.on_refer_timed_out(call),
            _ => {}
        }
    }

    /// The core's own CANCEL after [`InviteParams::ringing_timeout`].
    pub(super) fn ringing_timeout(&mut self, now: Instant, call: CallId) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(o) = c.outbound.as_mut() else {
            return;
        };
        if o.ring_timed_out
            || c.cancelled
            || o.ring_deadline.is_none_or(|t| t > now)
            || !matches!(c.state, CallState::Calling | CallState::Early)
        {
            return;
        }
        o.ring_timed_out = true;
        if c.state == CallState::Early {
            self.send_cancel(now, call);
        } else {
            c.cancel_pending = true;
        }
    }
}

/// The next attempt of an INVITE after a challenge or 422: CSeq+1, old credentials removed.
fn next_attempt(invite: &Request) -> Request {
    let mut req = invite.clone();
    let seq = req.headers.cseq().map(|c| c.seq).unwrap_or(1);
    req.headers
        .set("CSeq", format!("{} INVITE", seq.wrapping_add(1)));
    req.headers.remove("Authorization");
    req.headers.remove("Proxy-Authorization");
    req
}
