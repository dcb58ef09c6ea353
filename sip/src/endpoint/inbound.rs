//! Inbound requests: the RFC 3261 §8.2 checks in order (version, method, URI scheme, Require),
//! dialog matching (§12.2.2), and the out-of-dialog INVITE, OPTIONS and CANCEL handling.

use std::time::Instant;

use super::calls::{Call, CallState};
use super::session::TimerAsk;
use super::{ALLOWED_METHODS, Endpoint, Event, Purpose, SUPPORTED, Tx, admission, implemented};
use crate::dialog::DialogKey;
use crate::endpoint::events::EndReason;
use crate::endpoint::types::IncomingCall;
use crate::message::build::{error_response, response_to};
use crate::message::{Method, ParseError, Request, Response, Uri, Version};
use crate::sdp::{SessionDescription, negotiate};
use crate::transaction::AckMatch;
use crate::transaction::{InviteServer, NonInviteServer, TxKey};
use crate::transmit::Target;

impl Endpoint {
    pub(super) fn handle_parse_error(&mut self, _now: Instant, from: Target, e: &ParseError) {
        // Never answer an ACK; answer other requests when the error kept enough context.
        let Some(ctx) = e.reply_context().filter(|c| c.method != Some(Method::Ack)) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let status = ctx.suggested_status(implemented);
        let tag = self.ids.tag();
        let mut resp = error_response(ctx, status, Some(&tag));
        match status {
            501 => resp.headers.push("Allow", ALLOWED_METHODS),
            400 => {
                // The reason helps whoever debugs the peer; keep it a clean quoted-string.
                let text: String = e
                    .kind()
                    .to_string()
                    .chars()
                    .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\' || *c == ' ')
                    .collect();
                resp.headers.push(
                    "Warning",
                    format!("399 {} \"{text}\"", self.config.sent_by()),
                );
            }
            _ => {}
        }
        self.stats.malformed_answered += 1;
        self.send_stateless(from, &resp);
    }

    pub(super) fn handle_request(&mut self, now: Instant, source: Target, req: Request) {
        self.stats.requests_received += 1;
        if req.method == Method::Ack {
            self.handle_ack(now, source, req);
            return;
        }
        let Ok(key) = TxKey::for_request(&req) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        if let Some(&id) = self.tx_index.get(&key) {
            self.stats.retransmissions_received += 1;
            if let Some(entry) = self.transactions.get_mut(&id) {
                match &mut entry.tx {
                    Tx::InviteServer(t) => t.on_retransmission(&mut self.out),
                    Tx::NonInviteServer(t) => t.on_retransmission(&mut self.out),
                    _ => {}
                }
            }
            return;
        }
        if req.version != Version::SIP_2_0 {
            return self.reply(now, source, &req, key, 505, |_| {});
        }
        if !implemented(&req.method) {
            let status = if req.method.is_standard() { 405 } else { 501 };
            return self.reply(now, source, &req, key, status, |r| {
                r.headers.push("Allow", ALLOWED_METHODS);
            });
        }
        if !matches!(req.uri, Uri::Sip(_)) {
            return self.reply(now, source, &req, key, 416, |_| {});
        }
        let required: Vec<String> = req
            .headers
            .require()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let unsupported: Vec<String> = required
            .into_iter()
            .filter(|t| !SUPPORTED.split(", ").any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() && req.method != Method::Cancel {
            // Notably 100rel: we do not implement PRACK (RFC 3262); see the crate README.
            return self.reply(now, source, &req, key, 420, |r| {
                r.headers.push("Unsupported", unsupported.join(", "));
            });
        }
        // CANCEL matches a transaction, not a dialog (it may carry a To tag for a re-INVITE).
        if req.method == Method::Cancel {
            return self.handle_cancel(now, source, req, key);
        }
        let to_tag = req
            .headers
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned));
        if let Some(to_tag) = to_tag {
            return self.handle_in_dialog(now, source, req, key, to_tag);
        }
        match req.method {
            Method::Invite => self.handle_invite(now, source, req, key),
            Method::Options => self.reply(now, source, &req, key, 200, add_capabilities),
            // We do not let peers transfer the agent elsewhere.
            Method::Refer => self.reply(now, source, &req, key, 403, |_| {}),
            // BYE, INFO, UPDATE and NOTIFY only exist inside a dialog.
            _ => self.reply(now, source, &req, key, 481, |_| {}),
        }
    }

    /// Creates a server transaction for `req` and sends one response through it.
    pub(super) fn reply(
        &mut self,
        now: Instant,
        source: Target,
        req: &Request,
        key: TxKey,
        status: u16,
        customize: impl FnOnce(&mut Response),
    ) {
        let tag = self.ids.tag();
        let mut resp = self.response(req, status, Some(&tag), source);
        customize(&mut resp);
        let id = self.new_server_tx(req, key, source, None);
        self.respond_tx(now, id, &resp);
    }

    pub(super) fn new_server_tx(
        &mut self,
        req: &Request,
        key: TxKey,
        source: Target,
        call: Option<super::CallId>,
    ) -> u64 {
        let timers = self.config.timers;
        let tx = if req.method == Method::Invite {
            Tx::InviteServer(InviteServer::new(source, timers))
        } else {
            Tx::NonInviteServer(NonInviteServer::new(source, timers))
        };
        self.add_tx(key, tx, call, Purpose::Server)
    }

    /// A response to `req` with our Server header, `received`/`rport` filled in the top Via
    /// (RFC 3261 §18.2.1, RFC 3581). Responses always go to the source address (symmetric),
    /// which is right for NATed peers and for trunks that send from their listening port.
    pub(super) fn response(
        &self,
        req: &Request,
        status: u16,
        to_tag: Option<&str>,
        source: Target,
    ) -> Response {
        let source = source.addr;
        let mut resp = response_to(req, status, to_tag);
        if let Ok(mut via) = req.headers.top_via() {
            let source_ip = source.ip().to_string();
            if via.host.ip() != Some(source.ip()) {
                via.params.set("received", Some(&source_ip));
            }
            if via.rport().is_some() {
                via.params.set("received", Some(&source_ip));
                via.params.set("rport", Some(&source.port().to_string()));
            }
            let vias: Vec<String> = req
                .headers
                .get_all("Via")
                .skip(1)
                .map(str::to_owned)
                .collect();
            resp.headers.remove("Via");
            for v in vias.iter().rev() {
                resp.headers.push_front("Via", v.as_str());
            }
            resp.headers.push_front("Via", via.to_string());
        }
        resp.headers.push("Server", self.config.user_agent.as_str());
        resp
    }

    fn handle_invite(&mut self, now: Instant, source: Target, req: Request, key: TxKey) {
        let accept = req.headers.accept();
        if !accept.is_empty() && !accept.iter().any(|a| a.admits("application", "sdp")) {
            let warning = format!(
                "399 {} \"Accept does not admit application/sdp\"",
                self.config.sent_by()
            );
            return self.reply(now, source, &req, key, 406, |r| {
                r.headers.push("Warning", warning);
            });
        }
        let offer = if req.body.is_empty() {
            None
        } else {
            let is_sdp =
                matches!(req.headers.content_type(), Ok(Some(ct)) if ct.is("application", "sdp"));
            if !is_sdp {
                return self.reply(now, source, &req, key, 415, |r| {
                    r.headers.push("Accept", "application/sdp");
                });
            }
            match SessionDescription::parse(&req.body) {
                Ok(s) => Some(s),
                Err(_) => {
                    let warning = format!("399 {} \"Malformed SDP\"", self.config.sent_by());
                    return self.reply(now, source, &req, key, 400, |r| {
                        r.headers.push("Warning", warning);
                    });
                }
            }
        };
        let (Ok(from), Ok(to), Ok(call_id)) =
            (req.headers.from(), req.headers.to(), req.headers.call_id())
        else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let call_id = call_id.to_owned();
        let refuse = |ep: &mut Self, status: u16, f: &dyn Fn(&mut Response)| {
            ep.reply(now, source, &req, key.clone(), status, f);
            ep.events.push_back(Event::InboundRejected {
                sip_call_id: call_id.clone(),
                from: from.clone(),
                status,
                source: source.addr,
            });
        };
        if let Some(max) = self.config.max_concurrent_calls
            && self.calls.len() >= max
        {
            self.stats.calls_rejected_capacity += 1;
            let retry = self.config.retry_after.to_string();
            return refuse(self, 503, &|r| r.headers.push("Retry-After", retry.clone()));
        }
        let timer_ask = TimerAsk::of(&req);
        if timer_ask.interval.is_some_and(|i| i < self.config.min_se) {
            // RFC 4028 §8.1: the interval is below what we accept.
            let min = self.config.min_se.to_string();
            return refuse(self, 422, &|r| r.headers.push("Min-SE", min.clone()));
        }
        if let Some(offer) = &offer
            && negotiate(offer, &self.config.codecs).is_err()
        {
            self.stats.calls_rejected_no_codec += 1;
            let warning = format!(
                "305 {} \"Incompatible media format\"",
                self.config.sent_by()
            );
            return refuse(self, 488, &|r| r.headers.push("Warning", warning.clone()));
        }
        let trunk = admission::match_source(&self.config.allowed_sources, source.addr.ip())
            .ok()
            .flatten()
            .map(str::to_owned);
        self.stats.calls_inbound += 1;
        let call = self.new_call_id();
        let local_tag = self.ids.tag();
        let tx = self.new_server_tx(&req, key.clone(), source, Some(call));
        let trying = self.response(&req, 100, None, source);
        self.respond_tx(now, tx, &trying);
        let dialog_key = DialogKey {
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            remote_tag: from.tag().unwrap_or_default().to_owned(),
        };
        self.dialogs.insert(dialog_key.clone(), call);
        let mut c = Call::inbound(local_tag, dialog_key, req.clone(), key, source);
        c.timer_ask = Some(timer_ask);
        c.peer_allows_update = req.headers.allow().contains(&Method::Update);
        self.calls.insert(call, c);
        self.events
            .push_back(Event::IncomingCall(Box::new(IncomingCall {
                call,
                sip_call_id: call_id,
                from,
                to,
                request_uri: req.uri,
                offer,
                source: source.addr,
                trunk,
            })));
    }

    fn handle_cancel(&mut self, now: Instant, source: Target, req: Request, key: TxKey) {
        let invite_key = key.with_method(Method::Invite);
        let invite_tx = self.tx_index.get(&invite_key).copied();
        let Some(invite_tx) = invite_tx else {
            return self.reply(now, source, &req, key, 481, |_| {});
        };
        let (call, pending) = match self.transactions.get(&invite_tx) {
            Some(e) => (
                e.call,
                matches!(&e.tx, Tx::InviteServer(t) if t.is_proceeding()),
            ),
            None => (None, false),
        };
        let local_tag = call
            .and_then(|c| self.calls.get(&c))
            .map(|c| c.local_tag.clone());
        let ok = self.response(&req, 200, local_tag.as_deref().or(Some("cancel")), source);
        let id = self.new_server_tx(&req, key, source, None);
        self.respond_tx(now, id, &ok);
        if pending && let Some(call) = call {
            self.reject_invite(now, call, 487);
            self.end_call(call, EndReason::RemoteCancel);
        }
    }

    fn handle_ack(&mut self, now: Instant, _source: Target, req: Request) {
        if let Ok(key) = TxKey::for_request(&req)
            && let Some(&id) = self.tx_index.get(&key)
            && let Some(entry) = self.transactions.get_mut(&id)
            && let Tx::InviteServer(t) = &mut entry.tx
        {
            let m = t.on_ack(now);
            self.touch_tx(id);
            // RFC 2543 peers reuse the INVITE's branch in the ACK for a 2xx; hand it on.
            if m != AckMatch::Success {
                return;
            }
        }
        let dialog = req.headers.to().ok().and_then(|to| {
            Some(DialogKey {
                call_id: req.headers.call_id().ok()?.to_owned(),
                local_tag: to.tag()?.to_owned(),
                remote_tag: req
                    .headers
                    .from()
                    .ok()?
                    .tag()
                    .unwrap_or_default()
                    .to_owned(),
            })
        });
        let call = dialog.and_then(|k| self.dialogs.get(&k).copied());
        match call {
            Some(call) => self.on_ack(now, call, &req),
            None => self.stats.stray_acks += 1,
        }
    }
}

/// Allow / Accept / Supported for OPTIONS answers.
pub(super) fn add_capabilities(r: &mut Response) {
    r.headers.push("Allow", ALLOWED_METHODS);
    r.headers.push("Accept", "application/sdp");
    r.headers.push("Supported", SUPPORTED);
}

impl Call {
    pub(super) fn inbound(
        local_tag: String,
        dialog_key: DialogKey,
        invite: Request,
        invite_key: TxKey,
        source: Target,
    ) -> Self {
        let mut c = Call::new(local_tag, dialog_key, source, CallState::Ringing);
        c.invite = Some(invite);
        c.invite_tx = Some(invite_key);
        c
    }
}
