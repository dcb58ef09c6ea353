//! The call actor: one task per call owning all of its state, running the turn loop.
//!
//! Inputs arrive as messages (leg events, dialog outputs, finished STT/TTS jobs, timers) in one
//! `select!`; handlers mutate `&mut self` and never block. Blocking model work runs on the
//! blocking pool and reports back as a finished join handle. Hearing (interim and final
//! transcripts, barge-in decisions) is in `hearing.rs`, as a second `impl Actor` block.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use audio::endpoint::TurnMode;
use dialogs::{CallAction, CallerInput, ReplyEvent, TurnSettings, TurnSummary};
use speech::Pcm;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::dialog::{Dialog, DialogCommand, DialogOutput};
use super::exchange::Exchange;
use super::hearing::{Hearing, SttResult};
use super::leg::{CallLeg, LegEvent};
use super::listen::Listener;
use super::playback::PlaybackLog;
use super::recorder::{Record, Recorder};
use super::speech::{SpeechEngines, SpeechError};
use super::transfer::TransferState;
use crate::clock::now_ms;

/// Said when speech recognition is unavailable (model missing): the call is answered, the
/// caller told, and the call ended.
const UNAVAILABLE: &str =
    "Sorry, I can't take requests right now. Please call back a little later. Goodbye.";
/// Said when `call.max_duration_secs` is reached.
const TIME_LIMIT: &str =
    "We have reached the time limit for this call. Thank you for calling. Goodbye.";

/// Per-call settings the actor needs.
#[derive(Debug, Clone)]
pub struct ActorConfig {
    /// Caller speech over the agent for this long pauses the agent (barge-in).
    pub barge_in_min_ms: u32,
    pub silence_timeout: Duration,
    pub max_duration: Duration,
}

/// How the call ended, for the manager.
#[derive(Debug)]
pub struct Outcome {
    pub end_reason: String,
    pub turns: i64,
}

/// Runs the call to its end. The leg is answered; the recorder has the call row queued.
pub async fn run(
    leg: CallLeg,
    dialog: Dialog,
    listener: Listener,
    engines: SpeechEngines,
    recorder: Recorder,
    config: ActorConfig,
    stop: watch::Receiver<bool>,
) -> Outcome {
    let mut actor = Actor {
        stop,
        stopping: false,
        started: Instant::now(),
        leg,
        dialog,
        listener,
        engines,
        recorder,
        config,
        settings: None,
        reply: None,
        reply_finished: true,
        sentences: VecDeque::new(),
        tts_job: None,
        hearing: Hearing::default(),
        log: PlaybackLog::default(),
        turn: None,
        seq: 0,
        ending: None,
        hangup_sent: false,
        quiet_since: Instant::now(),
        transfer: TransferState::None,
    };
    actor.run().await
}

pub(super) struct Actor {
    /// Daemon shutdown after the grace period: hang up at once.
    stop: watch::Receiver<bool>,
    stopping: bool,
    started: Instant,
    pub(super) leg: CallLeg,
    pub(super) dialog: Dialog,
    pub(super) listener: Listener,
    pub(super) engines: SpeechEngines,
    pub(super) recorder: Recorder,
    config: ActorConfig,
    settings: Option<TurnSettings>,
    /// The reply being produced or played; outputs of other replies are stale.
    pub(super) reply: Option<u64>,
    pub(super) reply_finished: bool,
    /// Sentences waiting for synthesis, in order.
    sentences: VecDeque<String>,
    tts_job: Option<(String, JoinHandle<Result<Pcm, SpeechError>>)>,
    pub(super) hearing: Hearing,
    log: PlaybackLog,
    /// The exchange in progress (caller turn or greeting).
    pub(super) turn: Option<Exchange>,
    seq: i64,
    /// Set when the flow (or a limit) ends the call: hang up once playback is done.
    pub(super) ending: Option<String>,
    pub(super) hangup_sent: bool,
    /// Since when neither side has spoken (for `call.silence_timeout_secs`).
    pub(super) quiet_since: Instant,
    pub(super) transfer: TransferState,
}

/// One input to the actor's loop.
enum Input {
    Leg(LegEvent),
    Dialog(Option<DialogOutput>),
    Transcript(SttResult),
    Speech(Result<Result<Pcm, SpeechError>, tokio::task::JoinError>),
    Silence,
    Stop,
    TimeLimit,
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn join<T>(
    job: &mut Option<(impl Sized, JoinHandle<T>)>,
) -> Result<T, tokio::task::JoinError> {
    match job {
        Some((_, handle)) => handle.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl Actor {
    async fn run(&mut self) -> Outcome {
        self.recorder.record(Record::Answered { at: now_ms() });
        self.recorder.event(
            store::EventKind::from_code("answered"),
            serde_json::json!({ "codec": self.leg.codec_name() }),
        );
        self.turn = Some(Exchange::new(0));
        if let Err(e) = self.engines.stt_available() {
            tracing::error!(error = %e, "answering without speech recognition");
            self.recorder.event(
                store::EventKind::from_code("stt_unavailable"),
                serde_json::json!({ "error": e.to_string() }),
            );
            self.say_and_end(UNAVAILABLE, "stt_unavailable");
        } else {
            self.reply = Some(self.dialog.send(DialogCommand::Start).await);
            self.reply_finished = false;
        }
        let max_at = self.started + self.config.max_duration;
        loop {
            let silence_at = self.silence_deadline();
            let max_deadline = self.ending.is_none().then_some(max_at);
            // Wait for one input; the branch futures borrow fields of `self`, so the handling
            // happens after the select, with `&mut self` whole again.
            let input = tokio::select! {
                event = self.leg.next() => Input::Leg(event),
                output = self.dialog.outputs.recv() => Input::Dialog(output),
                result = self.hearing.next_result() => Input::Transcript(result),
                result = join(&mut self.tts_job) => Input::Speech(result),
                () = sleep_until(silence_at) => Input::Silence,
                () = stopped(&mut self.stop), if !self.stopping => Input::Stop,
                () = sleep_until(max_deadline) => Input::TimeLimit,
            };
            match input {
                Input::Leg(event) => {
                    if let Some(reason) = self.on_leg(event).await {
                        return self.finish(reason);
                    }
                }
                Input::Dialog(Some(output)) => self.on_dialog(output).await,
                Input::Dialog(None) => self.end_with("dialog_failed"),
                Input::Transcript(result) => self.on_stt_result(result).await,
                Input::Speech(result) => {
                    let text = self.tts_job.take().map(|(t, _)| t).unwrap_or_default();
                    self.on_speech(text, result);
                }
                Input::Silence => self.on_silence().await,
                Input::Stop => {
                    self.stopping = true;
                    self.interrupt_reply().await;
                    self.end_with("daemon_shutdown");
                }
                Input::TimeLimit => {
                    let secs = self.config.max_duration.as_secs();
                    self.recorder.event(
                        store::EventKind::from_code("max_duration"),
                        serde_json::json!({ "secs": secs }),
                    );
                    self.interrupt_reply().await;
                    self.say_and_end(TIME_LIMIT, "max_duration");
                }
            }
            self.maybe_hang_up().await;
        }
    }

    /// Handles a leg event; returns the end reason when the call is over.
    async fn on_leg(&mut self, event: LegEvent) -> Option<String> {
        match event {
            LegEvent::Audio { pcm, arrived, echo } => {
                let heard = self.listener.push(&pcm, arrived, echo);
                self.on_heard(heard).await;
                self.maybe_pause_for_barge_in(self.config.barge_in_min_ms);
            }
            LegEvent::Dtmf(digit) => {
                self.recorder.event(
                    store::EventKind::from_code("dtmf"),
                    serde_json::json!({ "digit": digit.to_string() }),
                );
                if self.ending.is_none() {
                    self.interrupt_reply().await;
                    self.start_turn(None, None);
                    self.send_turn(CallerInput::Dtmf(digit)).await;
                }
            }
            LegEvent::FrameSent { mark, at } => {
                if let Some(turn) = self
                    .turn
                    .as_mut()
                    .filter(|t| t.seq as u64 == mark && t.first_rtp.is_none())
                {
                    turn.first_rtp = Some(at);
                    let turn = turn.to_turn(self.recorder.call_id());
                    if let Some(e2e) = turn.latency.e2e_ms {
                        metrics::histogram!("agent_turn_e2e_seconds").record(e2e as f64 / 1000.0);
                    }
                    self.recorder.record(Record::Turn(turn));
                }
            }
            LegEvent::PlaybackIdle => self.quiet_since = Instant::now(),
            LegEvent::TransferResult(outcome) => self.on_transfer_result(outcome).await,
            LegEvent::Hangup { reason } => {
                self.leg.stop_playback();
                // A hang-up we asked for ends with our reason; otherwise the caller's.
                return Some(
                    self.ending
                        .clone()
                        .filter(|_| self.hangup_sent)
                        .unwrap_or(reason),
                );
            }
        }
        None
    }

    async fn on_dialog(&mut self, output: DialogOutput) {
        match output {
            DialogOutput::Event { reply, event } if Some(reply) == self.reply => match event {
                ReplyEvent::Sentence(text) => {
                    if let Some(turn) = self.turn.as_mut() {
                        turn.first_sentence.get_or_insert_with(Instant::now);
                    }
                    self.sentences.push_back(text);
                    self.next_synthesis();
                }
                ReplyEvent::Action(CallAction::EndCall { reason }) => {
                    self.recorder.event(
                        store::EventKind::from_code("flow_end"),
                        serde_json::json!({ "reason": reason }),
                    );
                    self.ending.get_or_insert(if reason.is_empty() {
                        "flow_completed".to_owned()
                    } else {
                        reason
                    });
                }
                ReplyEvent::Action(CallAction::Transfer { to, name }) => {
                    self.request_transfer(to, name);
                }
                ReplyEvent::Done(summary) => self.on_summary(&summary),
                _ => {}
            },
            DialogOutput::Finished { reply, settings } => {
                if Some(reply) == self.reply {
                    self.reply_finished = true;
                }
                self.apply_settings(settings);
            }
            DialogOutput::Event { .. } => {} // a reply that was interrupted
        }
    }

    /// Writes the current exchange as it stands (called at each milestone).
    pub(super) fn save_turn(&self) {
        if let Some(turn) = &self.turn {
            self.recorder
                .record(Record::Turn(turn.to_turn(self.recorder.call_id())));
        }
    }

    fn apply_settings(&mut self, settings: TurnSettings) {
        self.listener.set_mode(match settings.endpointing {
            dialogs::flow::Endpointing::Digits => TurnMode::Digits,
            dialogs::flow::Endpointing::YesNo => TurnMode::YesNo,
            _ => TurnMode::FreeSpeech,
        });
        self.settings = Some(settings);
    }

    /// Whether the caller may talk over the agent now.
    pub(super) fn barge_in_allowed(&self) -> bool {
        self.settings.is_none_or(|s| s.barge_in) && self.ending.is_none()
    }

    fn on_summary(&mut self, summary: &TurnSummary) {
        let at = now_ms();
        let usage = summary.usage;
        for (kind, quantity) in [
            ("llm_prompt_tokens", usage.prompt_tokens),
            ("llm_completion_tokens", usage.completion_tokens),
            ("llm_cut_off_tokens", usage.cut_off_completion_tokens),
        ] {
            if quantity > 0 {
                self.recorder.record(Record::Usage {
                    kind,
                    quantity: i64::from(quantity),
                    unit: "tokens",
                    at,
                });
            }
        }
        for tool in &summary.tools {
            self.recorder.event(
                store::EventKind::from_code("tool"),
                serde_json::json!({ "name": tool.name, "status": tool.status }),
            );
        }
        if summary.node != summary.node_before {
            self.recorder.event(
                store::EventKind::from_code("node"),
                serde_json::json!({ "from": summary.node_before, "to": summary.node }),
            );
        }
        if let Some(error) = &summary.llm_error {
            self.recorder.event(
                store::EventKind::from_code("llm_fallback"),
                serde_json::json!({ "error": error }),
            );
        }
    }

    fn next_synthesis(&mut self) {
        if self.tts_job.is_some() {
            return;
        }
        let Some(text) = self.sentences.pop_front() else {
            return;
        };
        let engines = self.engines.clone();
        let job_text = text.clone();
        self.tts_job = Some((
            text,
            tokio::spawn(async move { engines.synthesize(job_text).await }),
        ));
    }

    fn on_speech(
        &mut self,
        text: String,
        result: Result<Result<Pcm, SpeechError>, tokio::task::JoinError>,
    ) {
        match result {
            Ok(Ok(pcm)) if !pcm.samples.is_empty() => {
                let first_of_turn = self.turn.as_ref().is_some_and(|t| t.first_audio.is_none());
                let mark = first_of_turn.then(|| self.turn.as_ref().map_or(0, |t| t.seq as u64));
                match self.leg.play(&pcm.samples, pcm.sample_rate, mark) {
                    Ok((first, frames)) => {
                        self.log.push(&text, first, frames);
                        if let Some(turn) = self.turn.as_mut() {
                            turn.first_audio.get_or_insert_with(Instant::now);
                            turn.append_agent_text(&text);
                        }
                        if !self.barge_in_allowed() && self.ending.is_none() {
                            self.listener.set_open(false);
                        }
                        self.save_turn();
                    }
                    Err(e) => tracing::error!(error = %e, "cannot play synthesized speech"),
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "synthesis failed");
                self.recorder.event(
                    store::EventKind::from_code("tts_error"),
                    serde_json::json!({ "error": e.to_string() }),
                );
            }
            Err(e) => tracing::error!(error = %e, "synthesis task failed"),
        }
        self.next_synthesis();
    }

    /// Opens a new exchange: the caller said `caller_text` (or pressed a key, or was silent).
    pub(super) fn start_turn(
        &mut self,
        caller_text: Option<String>,
        timing: Option<(Instant, Instant, Instant)>,
    ) {
        self.save_turn();
        self.seq += 1;
        let mut turn = Exchange::new(self.seq);
        turn.caller_text = caller_text;
        match timing {
            Some((last_voiced, decided, stt_done)) => {
                turn.last_voiced = Some(last_voiced);
                turn.decided = Some(decided);
                turn.stt_done = Some(stt_done);
            }
            None => turn.stt_done = Some(Instant::now()),
        }
        self.turn = Some(turn);
        self.save_turn();
    }

    pub(super) async fn send_turn(&mut self, input: CallerInput) {
        self.log.clear();
        self.reply = Some(self.dialog.send(DialogCommand::Turn(input)).await);
        self.reply_finished = false;
    }

    /// Stops the current reply for good: playback cut, queued sentences dropped, the dialog
    /// told what was heard, and the turn stored as interrupted.
    pub(super) async fn interrupt_reply(&mut self) {
        let playing = self.leg.is_playing() || !self.sentences.is_empty() || self.tts_job.is_some();
        if !playing && self.reply_finished {
            return;
        }
        let position = self.leg.stop_playback();
        let heard = self.log.heard_until(position);
        self.sentences.clear();
        if let Some((_, job)) = self.tts_job.take() {
            job.abort();
        }
        self.log.clear();
        if let Some(turn) = self.turn.as_mut() {
            turn.interrupted = true;
            turn.agent_text = heard.clone();
        }
        self.save_turn();
        self.dialog
            .send(DialogCommand::Interrupt { spoken: heard })
            .await;
        self.reply = None;
        self.reply_finished = true;
        self.listener.set_open(true);
    }

    /// Speaks `text` outside the flow and ends the call once it has played.
    fn say_and_end(&mut self, text: &str, reason: &str) {
        if let Some(turn) = self.turn.as_mut() {
            turn.first_sentence.get_or_insert_with(Instant::now);
        }
        self.sentences.push_back(text.to_owned());
        self.ending = Some(reason.to_owned());
        self.next_synthesis();
    }

    fn end_with(&mut self, reason: &str) {
        self.ending.get_or_insert_with(|| reason.to_owned());
    }

    /// When the caller has been silent long enough for a reprompt; `None` while anything is
    /// in progress.
    fn silence_deadline(&self) -> Option<Instant> {
        let idle = self.ending.is_none()
            && !self.leg.is_playing()
            && !self.listener.in_turn()
            && self.hearing.is_idle()
            && self.reply_finished
            && self.sentences.is_empty()
            && self.tts_job.is_none();
        // Quiet since the later of the last speech and the end of our last playback.
        let since = self
            .leg
            .idle_since()
            .map_or(self.quiet_since, |t| t.max(self.quiet_since));
        idle.then(|| since + self.config.silence_timeout)
    }

    async fn on_silence(&mut self) {
        self.quiet_since = Instant::now();
        let secs = self.config.silence_timeout.as_secs();
        self.recorder.event(
            store::EventKind::from_code("silence"),
            serde_json::json!({ "secs": secs }),
        );
        self.start_turn(None, None);
        self.send_turn(CallerInput::Silence).await;
    }

    /// Hangs up once the flow has ended and everything it said has been played.
    async fn maybe_hang_up(&mut self) {
        let done_speaking =
            self.sentences.is_empty() && self.tts_job.is_none() && !self.leg.is_playing();
        self.maybe_start_transfer(done_speaking).await;
        if self.ending.is_some() && !self.hangup_sent && done_speaking && self.reply_finished {
            self.hangup_sent = true;
            self.leg.hangup().await;
        }
    }

    fn finish(&mut self, reason: String) -> Outcome {
        let at = now_ms();
        self.save_turn();
        let jitter = self.leg.jitter_stats();
        let media = self.leg.media_stats();
        super::quality::record(&self.recorder, self.leg.codec_name(), &media, &jitter);
        self.recorder.event(
            store::EventKind::from_code("media"),
            serde_json::json!({
                "codec": self.leg.codec_name(),
                "packets_received": media.packets_received,
                "packets_from_other_sources": media.packets_from_other_sources,
                "frames_sent": media.frames_sent,
                "lost": jitter.lost,
                "late": jitter.late,
                "jitter_ms": jitter.jitter_ms,
                "echo": match self.leg.echo_path() {
                    audio::EchoPath::Found { delay_frames, erl_db } => serde_json::json!({
                        "delay_ms": delay_frames * 20,
                        "erl_db": (erl_db * 10.0).round() / 10.0,
                    }),
                    _ => serde_json::Value::Null,
                },
            }),
        );
        self.recorder.record(Record::Usage {
            kind: "call_ms",
            quantity: self.started.elapsed().as_millis() as i64,
            unit: "ms",
            at,
        });
        self.recorder.record(Record::Ended {
            at,
            reason: store::EndReason::from_code(&reason),
        });
        metrics::counter!("agent_calls_ended_total", "reason" => reason.clone()).increment(1);
        Outcome {
            end_reason: reason,
            turns: self.seq,
        }
    }
}
