//! The call's task: a thin async driver around [`CallCore`], like the SIP driver's signalling
//! task around the SIP core. It owns the call's I/O — the leg, the dialog's sub-task, the one
//! running transcription and the one running synthesis, the recorder — turns what happens
//! into [`Input`]s with the time it happened, and carries out the core's [`Output`]s. All
//! decisions are the core's.
//!
//! Blocking model work runs on the blocking pool and comes back as a finished join handle; the
//! select loop never blocks. The loop runs inside the call's tracing span, so every log line of
//! the call carries its id.

use std::time::Instant;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::bridge::{ConsultFailed, WarmTransfer};
use super::core::{CallCore, Input, Output, PlaybackReport, SttText, TransferProgress};
use super::dialog::Dialog;
use super::leg::{CallLeg, LegEvent};
use super::recorder::Recorder;
use super::speech::{SpeechEngines, SpeechError, TimedTranscript};
use speech::Pcm;
use store::{EndReason, EventKind};

/// How the call ended, for the manager.
#[derive(Debug)]
pub struct Outcome {
    pub end_reason: EndReason,
    pub turns: i64,
}

/// Work the core asked for, running on the blocking pool: the id it was asked with and the
/// task.
type Job<T> = Option<(u64, JoinHandle<Result<T, SpeechError>>)>;

/// Runs the call to its end. The leg is answered; the recorder has the call row queued.
/// With `warm`, the flow's transfers are warm ([`super::bridge`]); otherwise blind.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    core: CallCore,
    leg: CallLeg,
    dialog: Dialog,
    engines: SpeechEngines,
    recorder: Recorder,
    warm: Option<WarmTransfer>,
    stop: watch::Receiver<bool>,
    span: tracing::Span,
) -> Outcome {
    let driver = Driver {
        core,
        leg,
        dialog,
        engines,
        recorder,
        stt: None,
        tts: None,
        warm,
        consult: None,
        bridged: None,
        stop,
        stopping: false,
    };
    driver.run().instrument(span).await
}

struct Driver {
    core: CallCore,
    leg: CallLeg,
    dialog: Dialog,
    engines: SpeechEngines,
    recorder: Recorder,
    stt: Job<TimedTranscript>,
    tts: Job<Pcm>,
    warm: Option<WarmTransfer>,
    /// The warm transfer's call to the target, until it is answered and briefed (or fails).
    consult: Option<JoinHandle<Result<CallLeg, ConsultFailed>>>,
    /// The briefed target, to bridge the caller with.
    bridged: Option<CallLeg>,
    /// Daemon shutdown after the grace period: end the call now.
    stop: watch::Receiver<bool>,
    stopping: bool,
}

impl Driver {
    async fn run(mut self) -> Outcome {
        loop {
            self.carry_out().await;
            if let Some(mut target) = self.bridged.take() {
                // The target took the call: the two legs talk until one hangs up.
                let end = super::bridge::run(&mut self.leg, &mut target, &mut self.stop).await;
                tracing::info!(?end, "bridged call over");
                self.record_media();
                self.core.handle(
                    now(),
                    Input::Hangup {
                        reason: EndReason::Transferred,
                    },
                );
                continue;
            }
            if let Some(reason) = self.core.end_reason() {
                if let Some((_, job)) = self.tts.take() {
                    job.abort();
                }
                if let Some(consult) = self.consult.take() {
                    // The caller left while the target was being called: whoever answers
                    // is hung up on, not left on an open line.
                    tokio::spawn(async move {
                        if let Ok(Ok(mut target)) = consult.await {
                            target.hangup().await;
                        }
                    });
                }
                return Outcome {
                    end_reason: reason.clone(),
                    turns: self.core.turns(),
                };
            }
            let deadline = self.core.poll_timeout().map(|(at, _)| at);
            // The branch futures borrow fields of `self`; what woke the loop is handled after
            // the select, with `&mut self` whole again.
            let wake = tokio::select! {
                event = self.leg.next() => Wake::Leg(event),
                output = self.dialog.outputs.recv() => Wake::Dialog(output),
                result = join(&mut self.stt) => Wake::Transcript(result),
                result = join(&mut self.tts) => Wake::Speech(result),
                result = join_consult(&mut self.consult) => Wake::Consulted(result.map(Box::new)),
                () = sleep_until(deadline) => Wake::Timer,
                () = stopped(&mut self.stop), if !self.stopping => Wake::Stop,
            };
            let input = match wake {
                Wake::Leg(event) => self.leg_input(event),
                Wake::Dialog(Some(output)) => Input::Dialog(output),
                Wake::Dialog(None) => Input::DialogGone,
                Wake::Transcript(result) => {
                    let revision = self.stt.take().map_or(0, |(revision, _)| revision);
                    let result = result.map(|t| SttText {
                        text: t.transcript.text,
                        audio: t.transcript.audio,
                        took: t.transcript.timings.total,
                    });
                    Input::Transcript { revision, result }
                }
                Wake::Speech(result) => {
                    let item = self.tts.take().map_or(0, |(item, _)| item);
                    Input::Synthesized { item, result }
                }
                Wake::Consulted(result) => {
                    self.consult = None;
                    match result {
                        Ok(target) => {
                            self.bridged = Some(*target);
                            Input::Transfer(TransferProgress::Accepted)
                        }
                        Err(status) => Input::Transfer(TransferProgress::Failed { status }),
                    }
                }
                Wake::Timer => {
                    self.core.handle_timeout(now());
                    continue;
                }
                Wake::Stop => {
                    self.stopping = true;
                    Input::Shutdown
                }
            };
            self.core.handle(now(), input);
        }
    }

    /// Carries out everything the core asked for, feeding back the results that are known at
    /// once (a play that failed, a transfer that could not start).
    async fn carry_out(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Play { item, pcm, mark } => {
                    if let Err(e) = self.leg.play(item, &pcm.samples, pcm.sample_rate, mark) {
                        tracing::error!(error = %e, "cannot play synthesized speech");
                        let failed = Input::Playback(PlaybackReport::Failed { item });
                        self.core.handle(now(), failed);
                    }
                }
                Output::Pause => {
                    self.leg.pause();
                }
                Output::Resume => self.leg.resume(),
                Output::Flush => {
                    self.leg.stop_playback();
                }
                Output::Transcribe { revision, pcm } => {
                    let engines = self.engines.clone();
                    let job = tokio::spawn(async move { engines.transcribe(pcm, None).await });
                    if let Some((_, old)) = self.stt.replace((revision, job)) {
                        // The core runs one at a time; a replaced job would be a core bug.
                        tracing::warn!("transcription replaced while running");
                        old.abort();
                    }
                }
                Output::Synthesize { item, text } => {
                    let engines = self.engines.clone();
                    let job = tokio::spawn(async move { engines.synthesize(text).await });
                    if let Some((_, old)) = self.tts.replace((item, job)) {
                        old.abort();
                    }
                }
                Output::CancelSynthesis => {
                    if let Some((_, job)) = self.tts.take() {
                        job.abort();
                    }
                }
                Output::AskDialog { reply, command } => self.dialog.send(reply, command).await,
                Output::Record(record) => self.recorder.record(record),
                Output::Transfer { to, brief, .. } => {
                    let progress = match self.warm.clone() {
                        // Warm: we call the target; the caller waits on this leg.
                        Some(warm) => {
                            let engines = self.engines.clone();
                            let uri = to.clone();
                            let consult = super::bridge::consult(warm, engines, to, brief);
                            self.consult = Some(tokio::spawn(consult));
                            TransferProgress::Requested { uri }
                        }
                        None => match self.leg.transfer(&to).await {
                            Ok(uri) => TransferProgress::Requested { uri },
                            Err(e) => TransferProgress::CouldNotStart {
                                reason: e.to_string(),
                            },
                        },
                    };
                    self.core.handle(now(), Input::Transfer(progress));
                }
                Output::SendDtmf { digits } => self.leg.send_dtmf(&digits).await,
                Output::Hangup => self.leg.hangup().await,
            }
        }
    }

    /// The core's input for a leg event. The end of the call first stores the leg's own
    /// measurements (media counters, quality), before the core's last writes.
    fn leg_input(&mut self, event: LegEvent) -> Input {
        match event {
            LegEvent::Audio { pcm, arrived, echo } => Input::CallerFrame { pcm, arrived, echo },
            LegEvent::Dtmf(digit) => Input::Dtmf(digit),
            LegEvent::Playback(report) => Input::Playback(report),
            LegEvent::Transfer(progress) => Input::Transfer(progress),
            LegEvent::Hangup { reason } => {
                self.leg.stop_playback();
                self.record_media();
                Input::Hangup { reason }
            }
        }
    }

    fn record_media(&self) {
        let jitter = self.leg.jitter_stats();
        let media = self.leg.media_stats();
        super::quality::record(&self.recorder, self.leg.codec_name(), &media, &jitter);
        self.recorder.event(
            EventKind::Media,
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
    }
}

/// What woke the driver's loop.
enum Wake {
    Leg(LegEvent),
    Dialog(Option<super::dialog::DialogOutput>),
    Transcript(Result<TimedTranscript, SpeechError>),
    Speech(Result<Pcm, SpeechError>),
    Consulted(Result<Box<CallLeg>, ConsultFailed>),
    Timer,
    Stop,
}

/// The driver is where the call's clock is read.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The result of the running job; pending while none runs. Cancel-safe (polls the handle by
/// reference); the caller takes the job once it returns.
async fn join<T>(job: &mut Job<T>) -> Result<T, SpeechError> {
    match job {
        Some((_, handle)) => match handle.await {
            Ok(result) => result,
            Err(e) => Err(SpeechError::Task(e.to_string())),
        },
        None => std::future::pending().await,
    }
}

/// The warm transfer's consult call, once it is settled; pending while none runs.
async fn join_consult(
    consult: &mut Option<JoinHandle<Result<CallLeg, ConsultFailed>>>,
) -> Result<CallLeg, ConsultFailed> {
    match consult {
        Some(handle) => handle.await.unwrap_or(Err(None)),
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
