//! Session timers (RFC 4028) and answering re-offers.
//!
//! Roles are kept as "do we refresh" and mapped to the `refresher` parameter per transaction:
//! in a request we send, we are `uac`; in a response to the peer's request, we are `uas`.
//! The refresher refreshes at half the interval (UPDATE without a body when the peer allows
//! UPDATE, else a re-INVITE with our unchanged SDP); the other side sends BYE when no refresh
//! came by `interval - min(32 s, interval/3)` (§10).

use std::time::{Duration, Instant};

use super::calls::CallState;
use super::events::{EndReason, Event};
use super::types::CallId;
use super::{Endpoint, Purpose, SUPPORTED, TimerOwner};
use crate::message::{Method, Request, Response};
use crate::sdp::{
    AnswerParams, Codec, Direction, SdpError, SessionDescription, build_answer, negotiate,
};

/// RFC 4028 §4: no session interval below 90 s.
const MIN_INTERVAL: u32 = 90;
const MAX_INTERVAL: u32 = 86_400;

/// What an inbound INVITE (or refresh) asked of session timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TimerAsk {
    /// Session-Expires delta, if present.
    pub(super) interval: Option<u32>,
    /// `refresher=uac` → Some(false) (the peer), `uas` → Some(true) (us).
    pub(super) we_refresh: Option<bool>,
    pub(super) min_se: Option<u32>,
    /// The peer listed `timer` in Supported or Require.
    pub(super) peer_supports: bool,
}

impl TimerAsk {
    pub(super) fn of(req: &Request) -> Self {
        let se = req.headers.get("Session-Expires");
        let peer_supports = req
            .headers
            .supported()
            .iter()
            .chain(req.headers.require().iter())
            .any(|t| t.eq_ignore_ascii_case("timer"));
        Self {
            interval: se.and_then(parse_delta),
            we_refresh: se.and_then(refresher_param).map(|r| r == "uas"),
            min_se: req.headers.get("Min-SE").and_then(parse_delta),
            peer_supports,
        }
    }

    /// Interval and role for our 2xx; `None` when no timer applies (RFC 4028 §9).
    pub(super) fn negotiate(&self, ours: Option<u32>, our_min: u32) -> Option<(u32, bool)> {
        let interval = match (self.interval, ours) {
            (Some(i), _) => i,
            (None, Some(o)) => o.max(self.min_se.unwrap_or(0)).max(our_min),
            (None, None) => return None,
        };
        // The UAC can only refresh if it supports timers; otherwise we do.
        let we_refresh = match self.we_refresh {
            Some(w) if self.peer_supports => w,
            _ => !self.peer_supports,
        };
        Some((interval.clamp(MIN_INTERVAL, MAX_INTERVAL), we_refresh))
    }
}

/// The session timer of an established (or answered) call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SessionTimer {
    pub(super) interval: u32,
    pub(super) we_refresh: bool,
    /// Refresh time (when we refresh) or expiry time (when the peer does).
    next: Instant,
}

impl SessionTimer {
    pub(super) fn start(now: Instant, interval: u32, we_refresh: bool) -> Self {
        // RFC 4028's floor (90 s) keeps a hostile or broken peer from making us refresh in a
        // loop; a day is plenty as a ceiling.
        let interval = interval.clamp(MIN_INTERVAL, MAX_INTERVAL);
        let i = u64::from(interval);
        let next = if we_refresh {
            now + Duration::from_secs(i) / 2
        } else {
            now + Duration::from_secs(i - (i / 3).min(32))
        };
        Self {
            interval,
            we_refresh,
            next,
        }
    }

    pub(super) fn deadline(&self) -> (Instant, &'static str) {
        if self.we_refresh {
            (self.next, "session refresh (RFC 4028)")
        } else {
            (self.next, "session expiry (RFC 4028)")
        }
    }
}

/// Session-Expires/Require/Supported on our 2xx to a request from the peer.
pub(super) fn add_response_headers(resp: &mut Response, interval: u32, we_refresh: bool) {
    let role = if we_refresh { "uas" } else { "uac" };
    resp.headers
        .push("Session-Expires", format!("{interval};refresher={role}"));
    if !we_refresh {
        // The peer must refresh: it has to understand that (RFC 4028 §9).
        resp.headers.push("Require", "timer");
    }
}

/// The session timer a 2xx to our INVITE (or refresh) sets: `(interval, we_refresh)`.
pub(super) fn timer_from_2xx(resp: &Response, _now: Instant) -> Option<(u32, bool)> {
    let se = resp.headers.get("Session-Expires")?;
    let interval = parse_delta(se)?;
    // Absent refresher: keep the session alive ourselves, refreshing is harmless.
    let we_refresh = refresher_param(se).is_none_or(|r| r == "uac");
    Some((interval, we_refresh))
}

/// `delta-seconds *(;param)`, the value of Session-Expires or Min-SE.
pub(super) fn parse_delta(v: &str) -> Option<u32> {
    let d = v.split(';').next()?.trim();
    if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) || d.len() > 9 {
        return None;
    }
    d.parse().ok()
}

fn refresher_param(v: &str) -> Option<String> {
    v.split(';').skip(1).find_map(|p| {
        let (n, val) = p.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| val.trim().to_ascii_lowercase())
    })
}

impl Endpoint {
    /// The session timer fired: refresh if we are the refresher, else the session expired.
    pub(super) fn session_timer_due(&mut self, now: Instant, call: CallId) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(t) = c.timer else {
            return;
        };
        if t.next > now || !matches!(c.state, CallState::Confirmed | CallState::Answered) {
            return;
        }
        if !t.we_refresh {
            c.end_after_bye = Some(EndReason::SessionExpired);
            return self.send_bye(now, call, true);
        }
        if c.refresh_pending || c.state != CallState::Confirmed {
            // Try again shortly rather than overlapping transactions.
            c.timer = Some(SessionTimer {
                next: now + Duration::from_secs(2),
                ..t
            });
            return;
        }
        c.refresh_pending = true;
        c.timer = Some(SessionTimer {
            next: now + Duration::from_secs(u64::from(t.interval)),
            ..t
        });
        let use_update = c.peer_allows_update;
        let sdp = c.local_sdp.as_ref().map(SessionDescription::to_bytes);
        let headers = [
            ("Session-Expires", format!("{};refresher=uac", t.interval)),
            ("Min-SE", self.config.min_se.to_string()),
            ("Supported", SUPPORTED.to_owned()),
        ];
        let method = if use_update {
            Method::Update
        } else {
            Method::Invite
        };
        self.send_in_dialog(now, call, method, Purpose::Refresh, Some(call), |r| {
            for (n, v) in headers {
                r.headers.push(n, v);
            }
            // A refresh re-INVITE offers our unchanged SDP (same o= version, RFC 3264 §8).
            if !use_update && let Some(sdp) = sdp {
                r.headers.push("Content-Type", "application/sdp");
                r.body = sdp;
            }
        });
    }

    pub(super) fn on_refresh_response(&mut self, now: Instant, call: CallId, resp: &Response) {
        if resp.status < 200 {
            return;
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.refresh_pending = false;
        let seq = resp.headers.cseq().ok();
        match resp.status {
            200..=299 => {
                if let Some(cseq) = seq.filter(|s| s.method == Method::Invite) {
                    self.ack_refresh(call, cseq.seq);
                }
                let timer = timer_from_2xx(resp, now);
                if let Some(c) = self.calls.get_mut(&call) {
                    if let Some(sdp) = super::calls::sdp_body(&resp.body) {
                        c.remote_sdp = Some(sdp);
                    }
                    // A 2xx without Session-Expires turns the timer off (RFC 4028 §7.4).
                    c.timer = timer.map(|(i, w)| SessionTimer::start(now, i, w));
                }
            }
            408 | 481 => self.on_refresh_failed(now, call),
            _ => {}
        }
        self.schedule(TimerOwner::Call(call));
    }

    fn ack_refresh(&mut self, call: CallId, seq: u32) {
        let (via, _) = self.via();
        let symmetric = self.config.symmetric_signalling;
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Some(d) = &c.dialog else {
            return;
        };
        let mut ack = d.ack(seq, &via);
        let dest = d.destination(symmetric);
        let link = c.link;
        let conn = if dest == link.addr { link.conn } else { None };
        let target = self.route_request(&mut ack, dest, Some(link.transport), conn);
        let bytes = ack.to_bytes();
        self.out.send(target, bytes.clone());
        if let Some(c) = self.calls.get_mut(&call) {
            c.refresh_ack = Some((target, bytes, seq));
        }
    }

    /// Our refresh got 408/481 or no answer: the dialog is gone (RFC 3261 §12.2.1.2).
    pub(super) fn on_refresh_failed(&mut self, now: Instant, call: CallId) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.refresh_pending = false;
        if c.state == CallState::Confirmed {
            c.end_after_bye = Some(EndReason::SessionExpired);
            self.send_bye(now, call, true);
        }
    }

    /// The peer's re-INVITE/UPDATE refreshed the session: restart the timer with what it asked
    /// and return the headers for our 2xx.
    pub(super) fn refresh_from_peer(
        &mut self,
        now: Instant,
        call: CallId,
        req: &Request,
    ) -> Option<(u32, bool)> {
        let ask = TimerAsk::of(req);
        let (ours, min) = (self.config.session_expires, self.config.min_se);
        let c = self.calls.get_mut(&call)?;
        let negotiated = match (ask.interval, c.timer) {
            (Some(_), _) => ask.negotiate(ours, min),
            // No Session-Expires: keep the running timer's terms, restarted.
            (None, Some(t)) => Some((t.interval, t.we_refresh)),
            (None, None) => None,
        };
        c.timer = negotiated.map(|(i, w)| SessionTimer::start(now, i, w));
        negotiated
    }

    /// Answers an offer in a re-INVITE or UPDATE from our current SDP: same address, port and
    /// session id, our codec preferred, the direction mirrored. The o= version goes up only
    /// when the answer changed (RFC 3264 §8). Returns the answer and our direction.
    pub(super) fn answer_reoffer(
        &self,
        call: CallId,
        offer: &SessionDescription,
    ) -> Result<(SessionDescription, Direction), SdpError> {
        let base = self
            .calls
            .get(&call)
            .and_then(|c| c.local_sdp.as_ref())
            .ok_or(SdpError::NoAudio)?;
        let audio = base.audio().ok_or(SdpError::NoAudio)?;
        let ip = audio
            .connection
            .as_ref()
            .or(base.connection.as_ref())
            .and_then(|c| c.ip_addr())
            .unwrap_or(self.config.media_ip());
        let mut prefs: Vec<Codec> = audio
            .formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter_map(|pt| match audio.rtpmap(pt) {
                Some((name, _, _)) if name.eq_ignore_ascii_case("telephone-event") => None,
                Some((name, rate, ch)) => Some(Codec::new(pt, &name, rate, ch)),
                None if pt == 0 => Some(Codec::pcmu()),
                None if pt == 8 => Some(Codec::pcma()),
                None => None,
            })
            .collect();
        prefs.extend(self.config.codecs.iter().cloned());
        let neg = negotiate(offer, &prefs)?;
        let (mut answer, _) = build_answer(
            offer,
            &AnswerParams {
                codecs: &prefs,
                address: ip,
                port: audio.port,
                session_id: 0,
                username: &base.origin.username,
            },
        )?;
        answer.origin = base.origin.clone();
        let mut changed = answer.clone();
        changed.origin = base.origin.clone();
        if changed != *base {
            answer.origin.session_version = base.origin.session_version.wrapping_add(1);
        }
        // Old-style hold (c=0.0.0.0, RFC 2543): the peer wants nothing from us.
        let direction = match (neg.remote_rtp, neg.direction) {
            (None, Direction::SendRecv) => Direction::RecvOnly,
            (None, Direction::SendOnly) => Direction::Inactive,
            (_, d) => d,
        };
        Ok((answer, direction))
    }

    /// The ACK to our 2xx for an offerless re-INVITE carried the peer's answer.
    pub(super) fn on_answer_in_ack(&mut self, call: CallId, sdp: SessionDescription) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let direction = c
            .local_sdp
            .as_ref()
            .and_then(|ours| crate::sdp::accept_answer(ours, &sdp).ok())
            .map_or(Direction::SendRecv, |n| n.direction);
        c.remote_sdp = Some(sdp.clone());
        self.events.push_back(Event::MediaUpdated {
            call,
            remote_sdp: sdp,
            direction,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_and_refresher() {
        assert_eq!(parse_delta("1800;refresher=uac"), Some(1800));
        assert_eq!(parse_delta(" 90 "), Some(90));
        assert_eq!(parse_delta("x"), None);
        assert_eq!(parse_delta("99999999999999"), None);
        assert_eq!(
            refresher_param("1800; refresher = UAS").as_deref(),
            Some("uas")
        );
        assert_eq!(refresher_param("1800"), None);
    }

    #[test]
    fn negotiation_picks_the_refresher() {
        let ask = TimerAsk {
            interval: Some(600),
            we_refresh: None,
            min_se: None,
            peer_supports: true,
        };
        assert_eq!(ask.negotiate(Some(1800), 90), Some((600, false)));
        let no_support = TimerAsk {
            peer_supports: false,
            ..ask
        };
        assert_eq!(no_support.negotiate(None, 90), Some((600, true)));
        let asks_us = TimerAsk {
            we_refresh: Some(true),
            ..ask
        };
        assert_eq!(asks_us.negotiate(None, 90), Some((600, true)));
        let nothing = TimerAsk {
            interval: None,
            we_refresh: None,
            min_se: Some(1000),
            peer_supports: false,
        };
        assert_eq!(nothing.negotiate(Some(900), 90), Some((1000, true)));
        assert_eq!(nothing.negotiate(None, 90), None);
    }

    #[test]
    fn timer_deadlines() {
        let t0 = crate::test_epoch();
        let r = SessionTimer::start(t0, 1800, true);
        assert_eq!(r.deadline().0 - t0, Duration::from_secs(900));
        let e = SessionTimer::start(t0, 90, false);
        assert_eq!(e.deadline().0 - t0, Duration::from_secs(60));
        let e = SessionTimer::start(t0, 1800, false);
        assert_eq!(e.deadline().0 - t0, Duration::from_secs(1768));
    }
}
