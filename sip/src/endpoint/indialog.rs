//! Requests inside a dialog (RFC 3261 §12.2.2): BYE, re-INVITE and UPDATE (RFC 3311) answered
//! by the core from our current SDP, INFO (DTMF typed), NOTIFY for our transfers, OPTIONS,
//! and refusals (inbound REFER 403, others 405).

use std::time::Instant;

use super::calls::{CallState, OkRetransmit};
use super::events::{EndReason, Event};
use super::session::add_response_headers;
use super::types::CallId;
use super::{ALLOWED_METHODS, Endpoint, SUPPORTED, TimerOwner};
use crate::dialog::DialogKey;
use crate::message::{MediaType, Method, Request, Response};
use crate::rtp::{digit_to_event, event_to_digit};
use crate::sdp::SessionDescription;
use crate::transaction::TxKey;
use crate::transmit::Target;

impl Endpoint {
    pub(super) fn handle_in_dialog(
        &mut self,
        now: Instant,
        src: Target,
        req: Request,
        key: TxKey,
        to_tag: String,
    ) {
        let dialog_key = DialogKey {
            call_id: req.headers.call_id().unwrap_or_default().to_owned(),
            local_tag: to_tag,
            remote_tag: req
                .headers
                .from()
                .ok()
                .and_then(|f| f.tag().map(str::to_owned))
                .unwrap_or_default(),
        };
        let Some(call) = self.dialogs.get(&dialog_key).copied() else {
            return self.reply(now, src, &req, key, 481, |_| {});
        };
        let seq = req.headers.cseq().map(|c| c.seq).unwrap_or(0);
        let in_order = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.dialog.as_mut())
            .is_none_or(|d| d.accept_remote_seq(seq));
        if !in_order {
            return self.reply(now, src, &req, key, 500, |_| {});
        }
        let tag = dialog_key.local_tag;
        let ctx = InDialog {
            src,
            key,
            call,
            tag,
        };
        match req.method {
            Method::Bye => {
                self.respond_in_dialog(now, &ctx, &req, 200, |_| {});
                let pending = self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.state == CallState::Ringing);
                if pending {
                    self.reject_invite(now, call, 487);
                }
                self.end_call(call, EndReason::RemoteBye);
            }
            Method::Options => {
                self.respond_in_dialog(now, &ctx, &req, 200, super::inbound::add_capabilities);
            }
            Method::Info => {
                self.respond_in_dialog(now, &ctx, &req, 200, |_| {});
                let ct = req.headers.content_type().ok().flatten();
                let event = match parse_dtmf_info(ct.as_ref(), &req.body) {
                    Some((digit, duration_ms)) => Event::Dtmf {
                        call,
                        digit,
                        duration_ms,
                    },
                    None => Event::InfoReceived {
                        call,
                        content_type: req.headers.get("Content-Type").map(str::to_owned),
                        body: req.body.clone(),
                    },
                };
                self.events.push_back(event);
            }
            Method::Invite | Method::Update => self.on_reoffer(now, &ctx, &req),
            Method::Notify => {
                let status = self.notify_status(call, &req);
                self.respond_in_dialog(now, &ctx, &req, status, |_| {});
                if status == 200 {
                    self.on_notify(now, call, &req);
                }
            }
            // We do not let peers transfer the agent elsewhere.
            Method::Refer => {
                self.respond_in_dialog(now, &ctx, &req, 403, |_| {});
            }
            _ => {
                self.respond_in_dialog(now, &ctx, &req, 405, |r| {
                    r.headers.push("Allow", ALLOWED_METHODS);
                });
            }
        }
    }

    fn respond_in_dialog(
        &mut self,
        now: Instant,
        ctx: &InDialog,
        req: &Request,
        status: u16,
        f: impl FnOnce(&mut Response),
    ) -> Response {
        let mut resp = self.response(req, status, Some(&ctx.tag), ctx.src);
        f(&mut resp);
        let id = self.new_server_tx(req, ctx.key.clone(), ctx.src, Some(ctx.call));
        self.respond_tx(now, id, &resp);
        resp
    }

    /// re-INVITE or UPDATE: a new offer (answered from our SDP), an offerless re-INVITE (our
    /// SDP as the offer, the answer comes in the ACK), or a session refresh.
    fn on_reoffer(&mut self, now: Instant, ctx: &InDialog, req: &Request) {
        let call = ctx.call;
        let is_invite = req.method == Method::Invite;
        let retry_after = self.config.retry_after.to_string();
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.refresh_pending {
            // Glare with our own refresh (RFC 3261 §14.2, RFC 3311 §5.2).
            self.respond_in_dialog(now, ctx, req, 491, |_| {});
            return;
        }
        let busy = c.ok_retx.is_some() || !matches!(c.state, CallState::Confirmed);
        let early_update =
            !is_invite && matches!(c.state, CallState::Ringing | CallState::Answered);
        if busy && !(early_update && req.body.is_empty()) {
            self.respond_in_dialog(now, ctx, req, 500, |r| {
                r.headers.push("Retry-After", retry_after);
            });
            return;
        }
        let offer = if req.body.is_empty() {
            None
        } else {
            let is_sdp =
                matches!(req.headers.content_type(), Ok(Some(ct)) if ct.is("application", "sdp"));
            if !is_sdp {
                self.respond_in_dialog(now, ctx, req, 415, |r| {
                    r.headers.push("Accept", "application/sdp");
                });
                return;
            }
            match SessionDescription::parse(&req.body) {
                Ok(s) => Some(s),
                Err(_) => {
                    self.respond_in_dialog(now, ctx, req, 400, |_| {});
                    return;
                }
            }
        };
        let answer = match &offer {
            Some(o) => match self.answer_reoffer(call, o) {
                Ok(a) => Some(a),
                Err(_) => {
                    // The session stays as it was (RFC 3261 §14.2).
                    self.respond_in_dialog(now, ctx, req, 488, |_| {});
                    return;
                }
            },
            None => None,
        };
        let timer = self.refresh_from_peer(now, call, req);
        let allows_update = req.headers.allow().contains(&Method::Update);
        let contact = self.config.contact_for(ctx.src.transport);
        let body = match (&answer, is_invite) {
            (Some((a, _)), _) => Some(a.to_bytes()),
            // Offerless re-INVITE: our current SDP is the offer.
            (None, true) => self
                .calls
                .get(&call)
                .and_then(|c| c.local_sdp.as_ref())
                .map(SessionDescription::to_bytes),
            (None, false) => None,
        };
        let resp = self.respond_in_dialog(now, ctx, req, 200, |r| {
            r.headers.push("Contact", contact);
            r.headers.push("Allow", ALLOWED_METHODS);
            r.headers.push("Supported", SUPPORTED);
            if let Some((interval, we_refresh)) = timer {
                add_response_headers(r, interval, we_refresh);
            }
            if let Some(b) = body {
                r.headers.push("Content-Type", "application/sdp");
                r.body = b;
            }
        });
        let t = self.config.timers;
        let seq = req.headers.cseq().map(|s| s.seq).ok();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if allows_update || req.headers.contains("Allow") {
            c.peer_allows_update = allows_update;
        }
        if is_invite {
            c.ok_retx = Some(OkRetransmit::new(
                resp.to_bytes(),
                now,
                t.t1,
                t.timeout(),
                seq,
            ));
        }
        if let (Some((answer, direction)), Some(offer)) = (answer, offer) {
            c.local_sdp = Some(answer);
            c.remote_sdp = Some(offer.clone());
            self.events.push_back(Event::MediaUpdated {
                call,
                remote_sdp: offer,
                direction,
            });
        }
        self.schedule(TimerOwner::Call(call));
    }
}

/// What identifies the server side of an in-dialog request.
struct InDialog {
    src: Target,
    key: TxKey,
    call: CallId,
    tag: String,
}

/// A DTMF digit from an INFO body: `application/dtmf-relay` (`Signal=5`, `Duration=160`) or
/// `application/dtmf` (the digit, or its RFC 4733 event code, alone).
pub fn parse_dtmf_info(
    content_type: Option<&MediaType>,
    body: &[u8],
) -> Option<(char, Option<u32>)> {
    let ct = content_type?;
    let text = std::str::from_utf8(body).ok()?;
    if ct.is("application", "dtmf-relay") {
        let mut digit = None;
        let mut duration = None;
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "signal" => digit = signal(v),
                "duration" => duration = v.parse().ok(),
                _ => {}
            }
        }
        return digit.map(|d| (d, duration));
    }
    if ct.is("application", "dtmf") {
        return signal(text.trim()).map(|d| (d, None));
    }
    None
}

fn signal(v: &str) -> Option<char> {
    let mut chars = v.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        // Multi-character: an event code such as 10 (*) or 11 (#).
        return v.parse::<u8>().ok().and_then(event_to_digit);
    };
    digit_to_event(c).and_then(event_to_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(s: &str) -> MediaType {
        MediaType::parse(s, "Content-Type").unwrap()
    }

    #[test]
    fn dtmf_bodies() {
        let relay = ct("application/dtmf-relay");
        assert_eq!(
            parse_dtmf_info(Some(&relay), b"Signal=5\r\nDuration=160\r\n"),
            Some(('5', Some(160)))
        );
        assert_eq!(
            parse_dtmf_info(Some(&relay), b"signal = #\nduration= 250"),
            Some(('#', Some(250)))
        );
        assert_eq!(
            parse_dtmf_info(Some(&relay), b"Signal=10"),
            Some(('*', None))
        );
        assert_eq!(
            parse_dtmf_info(Some(&relay), b"Signal=d"),
            Some(('D', None))
        );
        assert_eq!(parse_dtmf_info(Some(&relay), b"Signal=X"), None);
        assert_eq!(parse_dtmf_info(Some(&relay), b"Duration=100"), None);
        assert_eq!(parse_dtmf_info(Some(&relay), b"\xff\xfe"), None);
        let plain = ct("application/dtmf");
        assert_eq!(parse_dtmf_info(Some(&plain), b"7"), Some(('7', None)));
        assert_eq!(parse_dtmf_info(Some(&plain), b"11\r\n"), Some(('#', None)));
        assert_eq!(parse_dtmf_info(Some(&ct("text/plain")), b"7"), None);
        assert_eq!(parse_dtmf_info(None, b"7"), None);
    }
}
