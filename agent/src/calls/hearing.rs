//! Hearing the caller: interim transcripts at each pause (so that little work is left when the
//! turn ends), the final transcript of a turn, and barge-in — pausing the agent as soon as the
//! caller starts talking, then deciding from the words whether it was a real interruption
//! (stop and answer), a backchannel ("mm-hm": resume) or noise (resume).

use std::time::Instant;

use dialogs::CallerInput;
use tokio::task::JoinHandle;

use super::actor::Actor;
use super::exchange::{clean_transcript, is_backchannel};
use super::listen::Heard;
use super::recorder::Record;
use super::speech::{SpeechEngines, SpeechError, TimedTranscript};
use crate::clock::now_ms;

/// A finished transcription: the audio revision it covers and its result.
pub(super) type SttResult = (
    u64,
    Result<Result<TimedTranscript, SpeechError>, tokio::task::JoinError>,
);

/// Transcription state of the call.
#[derive(Default)]
pub(super) struct Hearing {
    /// The running transcription and the revision it covers (one at a time per call).
    job: Option<(u64, JoinHandle<Result<TimedTranscript, SpeechError>>)>,
    /// The newest audio waiting for the running job to finish.
    queued: Option<(u64, Vec<i16>)>,
    /// The newest transcript: revision, text, when it became available.
    interim: Option<(u64, String, Instant)>,
    /// A turn that has ended and waits for its transcript.
    awaiting: Option<FinalTurn>,
    /// Playback paused because the caller started talking over it.
    barge: Option<BargePause>,
}

#[derive(Debug, Clone, Copy)]
struct FinalTurn {
    revision: u64,
    last_voiced: Instant,
    decided: Instant,
}

#[derive(Debug, Clone, Copy)]
struct BargePause {
    at: Instant,
}

impl Hearing {
    /// The next finished transcription; pending while none runs. Cancel-safe (polls the join
    /// handle by reference); the caller must clear the job when it returns.
    pub(super) async fn next_result(&mut self) -> SttResult {
        match &mut self.job {
            Some((revision, handle)) => (*revision, handle.await),
            None => std::future::pending().await,
        }
    }

    /// Nothing heard is waiting to be dealt with.
    pub(super) fn is_idle(&self) -> bool {
        self.job.is_none()
            && self.queued.is_none()
            && self.awaiting.is_none()
            && self.barge.is_none()
    }

    fn transcribe(&mut self, engines: &SpeechEngines, revision: u64, pcm: Vec<i16>) {
        if self.job.is_some() {
            // One transcription per call at a time keeps results in order; only the newest
            // audio matters for the next one.
            self.queued = Some((revision, pcm));
            return;
        }
        let engines = engines.clone();
        self.job = Some((
            revision,
            tokio::spawn(async move { engines.transcribe(pcm, None).await }),
        ));
    }

    fn running(&self, revision: u64) -> bool {
        self.job.as_ref().is_some_and(|(r, _)| *r == revision)
            || self.queued.as_ref().is_some_and(|(r, _)| *r == revision)
    }
}

impl Actor {
    /// What the listener reported for one frame.
    pub(super) async fn on_heard(&mut self, heard: Heard) {
        match heard {
            Heard::Nothing => {}
            Heard::SpeechStarted { .. } => self.quiet_since = Instant::now(),
            Heard::Pause { pcm, revision } => self.hearing.transcribe(&self.engines, revision, pcm),
            Heard::TurnEnded {
                pcm,
                last_voiced,
                revision,
            } => {
                let turn = FinalTurn {
                    revision,
                    last_voiced,
                    decided: Instant::now(),
                };
                match self.hearing.interim.clone() {
                    Some((r, text, at)) if r == revision => self.finalize(turn, text, at).await,
                    _ => {
                        self.hearing.awaiting = Some(turn);
                        if !self.hearing.running(revision) {
                            self.hearing.transcribe(&self.engines, revision, pcm);
                        }
                    }
                }
            }
        }
    }

    /// Pauses the agent when the caller has been talking over it for `min_ms`.
    pub(super) fn maybe_pause_for_barge_in(&mut self, min_ms: u32) {
        if self.hearing.barge.is_none()
            && self.listener.in_turn()
            && self.listener.voiced_run_ms() >= min_ms
            && self.leg.is_playing()
            && !self.leg.is_paused()
            && self.barge_in_allowed()
        {
            let position = self.leg.pause();
            self.hearing.barge = Some(BargePause { at: Instant::now() });
            metrics::counter!("agent_barge_ins_total").increment(1);
            self.recorder.event(
                store::EventKind::from_code("barge_in"),
                serde_json::json!({ "position": position }),
            );
        }
    }

    pub(super) async fn on_stt_result(&mut self, (revision, result): SttResult) {
        self.hearing.job = None;
        let available = Instant::now();
        let text = match result {
            Ok(Ok(timed)) => {
                let t = &timed.transcript;
                let audio_ms = t.audio.as_millis() as i64;
                self.recorder.record(Record::Usage {
                    kind: "stt_audio_ms",
                    quantity: audio_ms,
                    unit: "ms",
                    at: now_ms(),
                });
                metrics::histogram!("agent_stt_seconds").record(t.timings.total.as_secs_f64());
                clean_transcript(&t.text)
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "transcription failed");
                self.recorder.event(
                    store::EventKind::from_code("stt_error"),
                    serde_json::json!({ "error": e.to_string() }),
                );
                String::new()
            }
            Err(e) => {
                tracing::error!(error = %e, "transcription task failed");
                String::new()
            }
        };
        self.hearing.interim = Some((revision, text.clone(), available));
        if let Some(turn) = self.hearing.awaiting.filter(|t| t.revision == revision) {
            self.finalize(turn, text, available).await;
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
                    decided: available,
                };
                self.finalize(turn, text, available).await;
            }
        }
        if let Some((revision, pcm)) = self.hearing.queued.take() {
            self.hearing.transcribe(&self.engines, revision, pcm);
        }
    }

    /// The turn's words are known: answer them, or resume the agent when they were noise or a
    /// backchannel spoken over it.
    async fn finalize(&mut self, turn: FinalTurn, text: String, available: Instant) {
        self.hearing.awaiting = None;
        self.hearing.interim = None;
        let barge = self.hearing.barge.take();
        if self.ending.is_some() {
            return;
        }
        if text.is_empty() || (barge.is_some() && is_backchannel(&text)) {
            let kind = if text.is_empty() {
                "no_speech"
            } else {
                "backchannel"
            };
            if let Some(pause) = barge {
                self.leg.resume();
                let paused_ms = pause.at.elapsed().as_millis() as i64;
                self.recorder.event(
                    store::EventKind::from_code(kind),
                    serde_json::json!({ "text": text, "resumed_after_ms": paused_ms }),
                );
            } else {
                self.recorder.event(
                    store::EventKind::from_code(kind),
                    serde_json::json!({ "text": text }),
                );
            }
            return;
        }
        self.interrupt_reply().await;
        let stt_done = available.max(turn.decided);
        self.start_turn(
            Some(text.clone()),
            Some((turn.last_voiced, turn.decided, stt_done)),
        );
        self.send_turn(CallerInput::Speech(text)).await;
    }
}
