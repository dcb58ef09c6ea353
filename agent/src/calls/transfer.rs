//! Blind transfer: when the flow asks for one, the actor first finishes what it is saying
//! ("Putting you through now."), then sends REFER through the leg, and reports the outcome:
//! accepted → the call ends as `transferred`; failed or timed out → the flow hears it failed
//! and the call goes on with the agent. Each step is a stored call event.

use std::time::Instant;

use super::actor::Actor;
use super::dialog::DialogCommand;

/// Where a transfer the flow asked for stands.
#[derive(Debug, Default)]
pub(super) enum TransferState {
    #[default]
    None,
    /// Asked for; waits until the agent has finished speaking.
    Pending { to: String, name: String },
    /// REFER sent; waiting for its outcome.
    InProgress {
        to: String,
        name: String,
        since: Instant,
    },
}

impl Actor {
    /// Records the flow's request; the REFER goes out once playback is done.
    pub(super) fn request_transfer(&mut self, to: String, name: String) {
        if matches!(self.transfer, TransferState::InProgress { .. }) {
            tracing::warn!(%to, "transfer requested while one is in progress; ignored");
            return;
        }
        self.transfer = TransferState::Pending { to, name };
    }

    /// Sends the REFER when one is pending and nothing is left to say.
    pub(super) async fn maybe_start_transfer(&mut self, done_speaking: bool) {
        if !done_speaking
            || !self.reply_finished
            || self.ending.is_some()
            || !matches!(self.transfer, TransferState::Pending { .. })
        {
            return;
        }
        let TransferState::Pending { to, name } = std::mem::take(&mut self.transfer) else {
            return;
        };
        let domain = self.leg.peer_domain().to_owned();
        match self.leg.transfer(&to, &domain).await {
            Ok(uri) => {
                self.recorder.event(
                    store::EventKind::from_code("transfer"),
                    serde_json::json!({
                        "to": to, "name": name, "uri": uri.to_string(), "state": "requested",
                    }),
                );
                self.transfer = TransferState::InProgress {
                    to,
                    name,
                    since: Instant::now(),
                };
            }
            Err(reason) => {
                tracing::warn!(%reason, "transfer could not start");
                self.recorder.event(
                    store::EventKind::from_code("transfer_failed"),
                    serde_json::json!({ "to": to, "name": name, "reason": reason }),
                );
                self.transfer_failed().await;
            }
        }
    }

    /// The REFER's outcome, from the SIP layer.
    pub(super) async fn on_transfer_result(&mut self, outcome: sip::TransferOutcome) {
        let TransferState::InProgress { to, name, since } = std::mem::take(&mut self.transfer)
        else {
            return;
        };
        let after_ms = since.elapsed().as_millis() as i64;
        match outcome {
            sip::TransferOutcome::Accepted => {
                self.recorder.event(
                    store::EventKind::from_code("transfer"),
                    serde_json::json!({
                        "to": to, "name": name, "state": "accepted", "after_ms": after_ms,
                    }),
                );
                metrics::counter!("agent_transfers_total", "outcome" => "accepted").increment(1);
                // The SIP layer ends the call (BYE after the target answered).
                self.ending.get_or_insert_with(|| "transferred".to_owned());
                self.hangup_sent = true;
            }
            other => {
                let (reason, status) = match other {
                    sip::TransferOutcome::Failed { status } => ("failed", Some(status)),
                    _ => ("timed_out", None),
                };
                metrics::counter!("agent_transfers_total", "outcome" => reason).increment(1);
                self.recorder.event(
                    store::EventKind::from_code("transfer_failed"),
                    serde_json::json!({
                        "to": to, "name": name, "reason": reason, "status": status,
                        "after_ms": after_ms,
                    }),
                );
                self.transfer_failed().await;
            }
        }
    }

    /// Hands the call back to the flow, which says so and goes on.
    async fn transfer_failed(&mut self) {
        self.reply = Some(self.dialog.send(DialogCommand::TransferFailed).await);
        self.reply_finished = false;
    }
}
