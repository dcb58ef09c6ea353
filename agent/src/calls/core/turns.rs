//! The caller's side: frames through the listener (voice activity and end of turn), barge-in,
//! interim and final transcripts, DTMF, and silence.

use std::time::Instant;

use dialogs::CallerInput;
use store::EventKind;

use super::hearing::FinalTurn;
use super::hearing::Interim;
use super::{BargeIn, CallCore, Output, Phase, Reply, SttText, Then};
use crate::calls::dialog::DialogCommand;
use crate::calls::exchange::{clean_transcript, is_backchannel};
use crate::calls::listen::Heard;
use crate::calls::recorder::Record;
use crate::calls::speech::SpeechError;

impl CallCore {
    pub(super) fn on_frame(&mut self, now: Instant, pcm: &[i16], arrived: Instant, echo: bool) {
        match self.listener.push(pcm, arrived, echo) {
            Heard::Nothing => {}
            Heard::SpeechStarted { .. } => self.quiet_since = now,
            Heard::Pause { pcm, revision } => {
                self.hearing.transcribe(revision, pcm, &mut self.outputs);
            }
            Heard::TurnEnded {
                pcm,
                last_voiced,
                revision,
            } => {
                let turn = FinalTurn {
                    revision,
                    last_voiced,
                    decided: now,
                };
                match self.hearing.interim.clone() {
                    // The words at the last pause cover the whole turn: no more to transcribe.
                    Some(i) if i.revision == revision => self.finalize(now, turn, i.text, i.at),
                    _ => {
                        self.hearing.awaiting = Some(turn);
                        if !self.hearing.covers(revision) {
                            self.hearing.transcribe(revision, pcm, &mut self.outputs);
                        }
                    }
                }
            }
        }
        self.maybe_barge_in(now);
    }

    /// Pauses the agent when the caller has been talking over it for `barge_in_min_ms`.
    fn maybe_barge_in(&mut self, now: Instant) {
        let talking_over = self.listener.in_turn()
            && self.listener.voiced_run_ms() >= self.config.barge_in_min_ms
            && self.speaking.is_playing();
        let interruptible = match &self.phase {
            Phase::Greeting(r) | Phase::Replying(r) => self.barge_in_allowed(r),
            _ => false,
        };
        if !talking_over || !interruptible {
            return;
        }
        let greeting = matches!(self.phase, Phase::Greeting(_));
        let reply = match std::mem::replace(&mut self.phase, Phase::Listening) {
            Phase::Greeting(r) | Phase::Replying(r) => r,
            other => {
                self.phase = other;
                return;
            }
        };
        self.outputs.push_back(Output::Pause);
        self.phase = Phase::BargedIn(BargeIn {
            reply,
            greeting,
            paused_at: now,
        });
        metrics::counter!("agent_barge_ins_total").increment(1);
        let heard = self.speaking.heard();
        self.event(
            now,
            EventKind::BargeIn,
            serde_json::json!({ "heard": heard }),
        );
    }

    /// Whether the caller may talk over this reply: the node allows it, and the flow is not
    /// ending the call.
    pub(super) fn barge_in_allowed(&self, reply: &Reply) -> bool {
        self.settings.is_none_or(|s| s.barge_in) && !matches!(reply.then, Then::End(_))
    }

    pub(super) fn on_transcript(
        &mut self,
        now: Instant,
        revision: u64,
        result: Result<SttText, SpeechError>,
    ) {
        let text = match result {
            Ok(stt) => {
                let at = self.unix_ms(now);
                self.record(Record::Usage {
                    kind: "stt_audio_ms",
                    quantity: i64::try_from(stt.audio.as_millis()).unwrap_or(i64::MAX),
                    unit: "ms",
                    at,
                });
                metrics::histogram!("agent_stt_seconds").record(stt.took.as_secs_f64());
                clean_transcript(&stt.text)
            }
            Err(e) => {
                tracing::error!(error = %e, "transcription failed");
                self.event(
                    now,
                    EventKind::SttError,
                    serde_json::json!({ "error": e.to_string() }),
                );
                String::new()
            }
        };
        self.hearing.interim = Some(Interim {
            revision,
            text: text.clone(),
            at: now,
        });
        if let Some(turn) = self.hearing.awaiting.filter(|t| t.revision == revision) {
            self.finalize(now, turn, text, now);
        } else if revision == self.listener.revision() {
            // An interim transcript: it may end the turn at once (a complete sentence).
            if let Heard::TurnEnded {
                last_voiced,
                revision,
                ..
            } = self.listener.transcript(revision, &text)
            {
                let turn = FinalTurn {
                    revision,
                    last_voiced,
                    decided: now,
                };
                self.finalize(now, turn, text, now);
            }
        }
        self.hearing.finished(revision, &mut self.outputs);
    }

    /// The turn's words are known (`available` is when): answer them, or resume the agent
    /// when they were noise or a backchannel spoken over it.
    fn finalize(&mut self, now: Instant, turn: FinalTurn, text: String, available: Instant) {
        self.hearing.awaiting = None;
        self.hearing.interim = None;
        let listening = match &self.phase {
            Phase::Screening(_) | Phase::Ending(_) | Phase::Ended(_) | Phase::Transferring(_) => {
                false
            }
            Phase::Greeting(r) | Phase::Replying(r) => !matches!(r.then, Then::End(_)),
            Phase::BargedIn(_) | Phase::Listening => true,
        };
        if !listening {
            return;
        }
        let barged = matches!(self.phase, Phase::BargedIn(_));
        if text.is_empty() || (barged && is_backchannel(&text)) {
            let kind = if text.is_empty() {
                EventKind::NoSpeech
            } else {
                EventKind::Backchannel
            };
            let detail = match std::mem::replace(&mut self.phase, Phase::Listening) {
                Phase::BargedIn(b) => {
                    self.outputs.push_back(Output::Resume);
                    let paused_ms = now.saturating_duration_since(b.paused_at).as_millis();
                    self.phase = if b.greeting {
                        Phase::Greeting(b.reply)
                    } else {
                        Phase::Replying(b.reply)
                    };
                    serde_json::json!({ "text": text, "resumed_after_ms": paused_ms })
                }
                other => {
                    self.phase = other;
                    serde_json::json!({ "text": text })
                }
            };
            self.event(now, kind, detail);
            return;
        }
        self.interrupt(now);
        let stt_done = available.max(turn.decided);
        self.start_exchange(
            now,
            Some(text.clone()),
            Some((turn.last_voiced, turn.decided, stt_done)),
        );
        self.reply_to(CallerInput::Speech(text));
    }

    pub(super) fn on_dtmf(&mut self, now: Instant, digit: char) {
        self.event(
            now,
            EventKind::Dtmf,
            serde_json::json!({ "digit": digit.to_string() }),
        );
        let answering = match &self.phase {
            Phase::Listening | Phase::BargedIn(_) => true,
            Phase::Greeting(r) | Phase::Replying(r) => !matches!(r.then, Then::End(_)),
            // Keys while screening are stored, not answered: the flow has not spoken yet.
            Phase::Screening(_) | Phase::Transferring(_) | Phase::Ending(_) | Phase::Ended(_) => {
                false
            }
        };
        if !answering {
            return;
        }
        self.interrupt(now);
        self.start_exchange(now, None, None);
        self.reply_to(CallerInput::Dtmf(digit));
    }

    pub(super) fn on_silence(&mut self, now: Instant) {
        self.quiet_since = now;
        let secs = self.config.silence_timeout.as_secs();
        self.event(now, EventKind::Silence, serde_json::json!({ "secs": secs }));
        self.start_exchange(now, None, None);
        self.reply_to(CallerInput::Silence);
    }

    /// Asks the dialog for the reply to `input`; the agent is replying from now on.
    fn reply_to(&mut self, input: CallerInput) {
        let reply = self.ask_dialog(DialogCommand::Turn(input));
        self.listener.set_open(true);
        self.phase = Phase::Replying(Reply::new(reply));
    }

    /// Opens a new exchange: the caller said `caller_text` (or pressed a key, or was silent).
    /// `timing`: the last voiced frame's arrival, the end-of-turn decision, the transcript.
    fn start_exchange(
        &mut self,
        now: Instant,
        caller_text: Option<String>,
        timing: Option<(Instant, Instant, Instant)>,
    ) {
        self.save_exchange();
        let seq = self.exchange.seq + 1;
        self.exchange = crate::calls::exchange::Exchange::new(seq, self.unix_ms(now));
        self.exchange.caller_text = caller_text;
        match timing {
            Some((last_voiced, decided, stt_done)) => {
                self.exchange.last_voiced = Some(last_voiced);
                self.exchange.decided = Some(decided);
                self.exchange.stt_done = Some(stt_done);
            }
            None => self.exchange.stt_done = Some(now),
        }
        self.speaking.new_reply();
        self.save_exchange();
    }
}
