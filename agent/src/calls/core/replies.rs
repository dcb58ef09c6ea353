//! The agent's side: the dialog's sentences and actions, synthesised audio handed to the leg,
//! playback reports, replies ending (the caller's turn, a transfer, the end of the call),
//! interruptions, limits, and the end of the call.

use std::time::Instant;

use dialogs::{CallAction, ReplyEvent, TurnSettings, TurnSummary};
use speech::Pcm;
use store::{EndReason, EventKind};

use super::{
    CallCore, Ending, Output, Phase, PlaybackReport, Reply, TIME_LIMIT, Then, Transfer,
    TransferProgress,
};
use crate::calls::dialog::{DialogCommand, DialogOutput};
use crate::calls::recorder::Record;
use crate::calls::speech::SpeechError;

impl CallCore {
    /// The reply in progress, if any.
    fn reply_mut(&mut self) -> Option<&mut Reply> {
        match &mut self.phase {
            Phase::Greeting(r) | Phase::Replying(r) => Some(r),
            Phase::BargedIn(b) => Some(&mut b.reply),
            _ => None,
        }
    }

    pub(super) fn on_dialog(&mut self, now: Instant, output: DialogOutput) {
        match output {
            DialogOutput::Event { reply, event } => {
                if self.reply_mut().is_none_or(|r| r.id != reply) {
                    return; // a reply that was interrupted
                }
                match event {
                    ReplyEvent::Sentence(text) => {
                        self.exchange.first_sentence.get_or_insert(now);
                        self.speaking.say(text, &mut self.outputs);
                    }
                    ReplyEvent::Action(CallAction::EndCall { reason }) => {
                        self.event(
                            now,
                            EventKind::FlowEnd,
                            serde_json::json!({ "reason": reason }),
                        );
                        let reason = if reason.is_empty() {
                            EndReason::FlowCompleted
                        } else {
                            EndReason::from_code(&reason)
                        };
                        if let Some(r) = self.reply_mut() {
                            r.then = Then::End(reason);
                        }
                    }
                    ReplyEvent::Action(CallAction::SendDtmf { digits }) => {
                        if let Some(r) = self.reply_mut() {
                            r.dtmf.push_str(&digits);
                        }
                    }
                    ReplyEvent::Action(CallAction::Transfer { to, name }) => {
                        if let Some(r) = self.reply_mut().filter(|r| r.then == Then::Listen) {
                            r.then = Then::Transfer { to, name };
                        }
                    }
                    ReplyEvent::Done(summary) => self.on_summary(now, &summary),
                    _ => {}
                }
            }
            DialogOutput::Finished { reply, settings } => {
                self.apply_settings(settings);
                if let Some(r) = self.reply_mut().filter(|r| r.id == reply) {
                    r.produced = true;
                }
            }
        }
    }

    fn apply_settings(&mut self, settings: TurnSettings) {
        self.listener.set_mode(match settings.endpointing {
            dialogs::flow::Endpointing::Digits => audio::endpoint::TurnMode::Digits,
            dialogs::flow::Endpointing::YesNo => audio::endpoint::TurnMode::YesNo,
            _ => audio::endpoint::TurnMode::FreeSpeech,
        });
        self.settings = Some(settings);
    }

    /// Token usage and node moves. Tool calls, refusals and LLM fallbacks are stored by the
    /// flow itself, through the call's services (one writer: the recorder).
    fn on_summary(&mut self, now: Instant, summary: &TurnSummary) {
        let at = self.unix_ms(now);
        let usage = summary.usage;
        for (kind, quantity) in [
            ("llm_prompt_tokens", usage.prompt_tokens),
            ("llm_completion_tokens", usage.completion_tokens),
            ("llm_cut_off_tokens", usage.cut_off_completion_tokens),
        ] {
            if quantity > 0 {
                self.record(Record::Usage {
                    kind,
                    quantity: i64::from(quantity),
                    unit: "tokens",
                    at,
                });
            }
        }
        if summary.node != summary.node_before {
            self.event(
                now,
                EventKind::Node,
                serde_json::json!({ "from": summary.node_before, "to": summary.node }),
            );
        }
    }

    pub(super) fn on_synthesized(
        &mut self,
        now: Instant,
        item: u64,
        result: Result<Pcm, SpeechError>,
    ) {
        let Some(text) = self.speaking.synthesized(item, &mut self.outputs) else {
            return; // cancelled
        };
        let pcm = match result {
            Ok(pcm) if !pcm.samples.is_empty() => pcm,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, "synthesis failed");
                self.event(
                    now,
                    EventKind::TtsError,
                    serde_json::json!({ "error": e.to_string() }),
                );
                return;
            }
        };
        let at = self.unix_ms(now);
        self.record(Record::Usage {
            kind: "tts_chars",
            quantity: i64::try_from(text.chars().count()).unwrap_or(i64::MAX),
            unit: "chars",
            at,
        });
        let mark = self
            .exchange
            .first_audio
            .is_none()
            .then_some(self.exchange.seq as u64);
        self.outputs.push_back(Output::Play { item, pcm, mark });
        self.speaking.handed_to_leg(item, text.clone());
        self.exchange.first_audio.get_or_insert(now);
        self.exchange.append_agent_text(&text);
        // A prompt the caller may not interrupt: do not even capture their speech meanwhile.
        let closed = match &self.phase {
            Phase::Greeting(r) | Phase::Replying(r) => !self.barge_in_allowed(r),
            _ => false,
        };
        if closed {
            self.listener.set_open(false);
        }
        self.save_exchange();
    }

    pub(super) fn on_playback(&mut self, now: Instant, report: PlaybackReport) {
        match report {
            PlaybackReport::Progress {
                item,
                played_ms,
                total_ms,
            } => self.speaking.progress(item, played_ms, total_ms),
            PlaybackReport::MarkSent { mark, at } => {
                if self.exchange.seq as u64 == mark && self.exchange.first_rtp.is_none() {
                    self.exchange.first_rtp = Some(at);
                    if let (Some(voiced), Some(sent)) = (self.exchange.last_voiced, Some(at)) {
                        let e2e = sent.saturating_duration_since(voiced);
                        metrics::histogram!("agent_turn_e2e_seconds").record(e2e.as_secs_f64());
                    }
                    self.save_exchange();
                }
            }
            PlaybackReport::Idle { item } => {
                if self.speaking.idle(item) {
                    self.quiet_since = now;
                }
            }
            PlaybackReport::Failed { item } => self.speaking.failed(item),
        }
    }

    /// Moves the conversation on once a reply has been produced and played, and hangs up once
    /// an ending call has said everything. Runs after every input.
    pub(super) fn settle(&mut self, now: Instant) {
        let done = match &self.phase {
            Phase::Greeting(r) | Phase::Replying(r) => r.produced && self.speaking.is_idle(),
            _ => false,
        };
        if done {
            let (then, dtmf) = match &mut self.phase {
                Phase::Greeting(r) | Phase::Replying(r) => {
                    (r.then.clone(), std::mem::take(&mut r.dtmf))
                }
                _ => (Then::Listen, String::new()),
            };
            // Keys go out after the words before them (a menu must hear "1" after we have
            // finished speaking) and before whatever comes next.
            if !dtmf.is_empty() {
                self.outputs.push_back(Output::SendDtmf { digits: dtmf });
            }
            match then {
                Then::Listen => {
                    self.listener.set_open(true);
                    self.quiet_since = self.quiet_since.max(now);
                    self.phase = Phase::Listening;
                }
                Then::End(reason) => {
                    self.phase = Phase::Ending(Ending {
                        reason,
                        hangup_at: None,
                    });
                }
                Then::Transfer { to, name } => {
                    let brief = transfer_brief(self.exchange.caller_text.as_deref());
                    self.outputs.push_back(Output::Transfer {
                        to: to.clone(),
                        name: name.clone(),
                        brief,
                    });
                    self.listener.set_open(false);
                    self.phase = Phase::Transferring(Transfer {
                        to,
                        name,
                        since: now,
                    });
                }
            }
        }
        if let Phase::Ending(e) = &mut self.phase
            && e.hangup_at.is_none()
            && self.speaking.is_idle()
        {
            e.hangup_at = Some(now);
            self.outputs.push_back(Output::Hangup);
        }
    }

    /// Stops the reply in progress for good: playback cut, queued sentences dropped, the
    /// exchange stored as interrupted with what was heard, and the dialog told what was heard.
    /// The caller's turn afterwards.
    pub(super) fn interrupt(&mut self, _now: Instant) {
        let active = matches!(
            self.phase,
            Phase::Greeting(_) | Phase::Replying(_) | Phase::BargedIn(_)
        );
        if !active {
            return;
        }
        let heard = self.speaking.stop(&mut self.outputs);
        self.exchange.interrupted = true;
        self.exchange.agent_text = heard.clone();
        self.save_exchange();
        self.ask_dialog(DialogCommand::Interrupt { spoken: heard });
        self.listener.set_open(true);
        self.phase = Phase::Listening;
    }

    /// Speaks `text` outside the flow and ends the call once it has played.
    pub(super) fn say_and_end(&mut self, now: Instant, text: &str, reason: EndReason) {
        self.exchange.first_sentence.get_or_insert(now);
        self.speaking.say(text.to_owned(), &mut self.outputs);
        self.phase = Phase::Ending(Ending {
            reason,
            hangup_at: None,
        });
    }

    pub(super) fn on_time_limit(&mut self, now: Instant) {
        let secs = self.config.max_duration.as_secs();
        self.event(
            now,
            EventKind::MaxDuration,
            serde_json::json!({ "secs": secs }),
        );
        self.interrupt(now);
        self.say_and_end(now, TIME_LIMIT, EndReason::MaxDuration);
    }

    /// Ends the call at once (daemon shutdown, dialog gone): whatever plays is cut, and the
    /// call is hung up. A call already ending keeps its reason.
    pub(super) fn end(&mut self, now: Instant, reason: EndReason) {
        self.interrupt(now);
        self.speaking.stop(&mut self.outputs);
        let (reason, hangup_at) = match &self.phase {
            Phase::Ending(e) => (e.reason.clone(), e.hangup_at),
            _ => (reason, None),
        };
        self.phase = Phase::Ending(Ending { reason, hangup_at });
    }

    pub(super) fn on_transfer(&mut self, now: Instant, progress: TransferProgress) {
        let Phase::Transferring(t) = &self.phase else {
            return;
        };
        let (to, name) = (t.to.clone(), t.name.clone());
        let after_ms = now.saturating_duration_since(t.since).as_millis();
        match progress {
            TransferProgress::Requested { uri } => {
                self.event(
                    now,
                    EventKind::Transfer,
                    serde_json::json!({ "to": to, "name": name, "uri": uri, "state": "requested" }),
                );
            }
            TransferProgress::CouldNotStart { reason } => {
                tracing::warn!(%reason, "transfer could not start");
                self.event(
                    now,
                    EventKind::TransferFailed,
                    serde_json::json!({ "to": to, "name": name, "reason": reason }),
                );
                self.transfer_failed();
            }
            TransferProgress::Accepted => {
                self.event(
                    now,
                    EventKind::Transfer,
                    serde_json::json!({
                        "to": to, "name": name, "state": "accepted", "after_ms": after_ms,
                    }),
                );
                metrics::counter!("agent_transfers_total", "outcome" => "accepted").increment(1);
                // The transport ends the call (BYE once the target answered).
                self.phase = Phase::Ending(Ending {
                    reason: EndReason::Transferred,
                    hangup_at: Some(now),
                });
            }
            TransferProgress::Failed { status } => {
                let reason = if status.is_some() {
                    "failed"
                } else {
                    "timed_out"
                };
                metrics::counter!("agent_transfers_total", "outcome" => reason).increment(1);
                self.event(
                    now,
                    EventKind::TransferFailed,
                    serde_json::json!({
                        "to": to, "name": name, "reason": reason, "status": status,
                        "after_ms": after_ms,
                    }),
                );
                self.transfer_failed();
            }
        }
    }

    /// Hands the call back to the flow, which says so and goes on.
    fn transfer_failed(&mut self) {
        let reply = self.ask_dialog(DialogCommand::TransferFailed);
        self.listener.set_open(true);
        self.phase = Phase::Replying(Reply::new(reply));
    }

    pub(super) fn on_hangup(&mut self, now: Instant, reason: EndReason) {
        // A hang-up we asked for ends with our reason; otherwise the transport's.
        let reason = match &self.phase {
            Phase::Ending(e) if e.hangup_at.is_some() => e.reason.clone(),
            _ => reason,
        };
        if self.speaking.is_playing() {
            // Cut off mid-reply: the turn keeps what the caller heard.
            self.exchange.interrupted = true;
            self.exchange.agent_text = self.speaking.heard();
        }
        self.speaking = Default::default();
        self.finish(now, reason);
    }
}

/// What a warm transfer's target hears before the caller is put through: who is calling in
/// the words of their last request.
fn transfer_brief(caller_said: Option<&str>) -> String {
    match caller_said.map(str::trim).filter(|t| !t.is_empty()) {
        Some(said) => format!(
            "Hello, this is the virtual receptionist with a caller on the line. They said: \
             {said} I am connecting you now."
        ),
        None => "Hello, this is the virtual receptionist with a caller on the line. I am \
                 connecting you now."
            .to_owned(),
    }
}
