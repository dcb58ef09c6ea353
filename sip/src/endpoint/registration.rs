//! The registration state machine of one trunk (RFC 3261 §10), sans-IO: it decides when the
//! next REGISTER goes out and what a response means; the endpoint builds and sends it.
//!
//! Refreshes go out at 80 % of the interval the registrar granted (the expires parameter of
//! our Contact in the 2xx, else its Expires header, else what we asked). Failures back off
//! exponentially from `retry_base` up to `retry_max`. Challenges (401/407) and 423 are
//! answered at once with the next CSeq.

use std::time::{Duration, Instant};

use super::events::RegistrationState;
use crate::auth::DigestClient;
use crate::transaction::Deadline;

const MAX_GRANTED: u32 = 7 * 86_400;

#[derive(Debug)]
pub(super) struct Registration {
    pub(super) state: RegistrationState,
    /// One Call-ID for every REGISTER of this trunk (RFC 3261 §10.2.4).
    pub(super) call_id: String,
    pub(super) seq: u32,
    pub(super) digest: DigestClient,
    /// The client transaction of the REGISTER in flight.
    pub(super) pending: Option<u64>,
    /// The expiry the REGISTER in flight asked for (0: unregister).
    pub(super) pending_expires: u32,
    /// When the next REGISTER (refresh or retry) is due.
    next: Option<Instant>,
    failures: u32,
    /// The expiry we ask for (raised by 423 Min-Expires).
    pub(super) requested: u32,
}

impl Registration {
    pub(super) fn new(call_id: String, seq: u32, requested: u32) -> Self {
        Self {
            state: RegistrationState::Unregistered,
            call_id,
            seq,
            digest: DigestClient::new(),
            pending: None,
            pending_expires: requested,
            next: None,
            failures: 0,
            requested,
        }
    }

    pub(super) fn deadline(&self) -> Deadline {
        self.next.map(|t| {
            let why = match self.state {
                RegistrationState::Registered { .. } => "REGISTER refresh",
                _ => "REGISTER retry",
            };
            (t, why)
        })
    }

    pub(super) fn due(&self, now: Instant) -> bool {
        self.next.is_some_and(|t| t <= now)
    }

    /// A REGISTER asking for `expires` is going out as transaction `tx`; returns the new state
    /// if it changed (first registration or one after a failure: `Registering`).
    pub(super) fn sending(&mut self, tx: u64, expires: u32) -> Option<RegistrationState> {
        self.seq = self.seq.wrapping_add(1);
        self.pending = Some(tx);
        self.pending_expires = expires;
        self.next = None;
        if expires > 0 && !matches!(self.state, RegistrationState::Registered { .. }) {
            return self.set(RegistrationState::Registering);
        }
        None
    }

    /// A 2xx granted `granted` seconds (0 after an unregister).
    pub(super) fn succeeded(&mut self, now: Instant, granted: u32) -> Option<RegistrationState> {
        self.pending = None;
        self.failures = 0;
        self.digest.on_success();
        if granted == 0 || self.pending_expires == 0 {
            self.next = None;
            return self.set(RegistrationState::Unregistered);
        }
        // A registrar may only shorten what we asked for; never trust more than a week.
        let interval = Duration::from_secs(u64::from(granted.min(MAX_GRANTED)));
        self.next = Some(now + interval * 4 / 5);
        self.set(RegistrationState::Registered {
            expires_at: now + interval,
        })
    }

    /// The REGISTER failed with `status` (408 for no answer): back off and retry.
    pub(super) fn failed(
        &mut self,
        now: Instant,
        status: u16,
        base: Duration,
        max: Duration,
    ) -> Option<RegistrationState> {
        self.pending = None;
        if self.pending_expires == 0 {
            // An unregister that failed: the binding will lapse by itself.
            self.next = None;
            return self.set(RegistrationState::Unregistered);
        }
        self.failures = self.failures.saturating_add(1);
        let shift = self.failures.saturating_sub(1).min(16);
        let delay = base.saturating_mul(1 << shift).min(max);
        let retry_at = now + delay;
        self.next = Some(retry_at);
        self.set(RegistrationState::Failed { status, retry_at })
    }

    /// Stops refreshing (unregistered locally, or about to send Expires: 0).
    pub(super) fn stop(&mut self) {
        self.next = None;
    }

    fn set(&mut self, s: RegistrationState) -> Option<RegistrationState> {
        let changed = self.state != s;
        self.state = s;
        changed.then_some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_at_80_percent_and_backoff() {
        let t0 = crate::test_epoch();
        let mut r = Registration::new("c".into(), 1, 3600);
        assert_eq!(r.sending(1, 3600), Some(RegistrationState::Registering));
        let s = r.succeeded(t0, 600);
        assert_eq!(
            s,
            Some(RegistrationState::Registered {
                expires_at: t0 + Duration::from_secs(600)
            })
        );
        assert_eq!(
            r.deadline().map(|(t, _)| t - t0),
            Some(Duration::from_secs(480))
        );
        // A refresh keeps the state Registered while in flight.
        assert_eq!(r.sending(2, 3600), None);
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(60));
        let delays: Vec<u64> = (0..5)
            .map(|_| {
                r.failed(t0, 503, base, max);
                (r.deadline().unwrap().0 - t0).as_secs()
            })
            .collect();
        assert_eq!(delays, vec![10, 20, 40, 60, 60]);
        assert!(matches!(
            r.state,
            RegistrationState::Failed { status: 503, .. }
        ));
        r.sending(3, 3600);
        r.succeeded(t0, 3600);
        r.sending(4, 0);
        assert_eq!(r.succeeded(t0, 0), Some(RegistrationState::Unregistered));
        assert_eq!(r.deadline(), None);
    }
}
