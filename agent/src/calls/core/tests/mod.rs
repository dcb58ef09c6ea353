//! The call core in simulated time. [`Sim`] steps a [`CallCore`] through a small world that
//! behaves like the real one, deterministically, 20 ms at a time:
//!
//! - a caller whose speech is scripted as segments of voiced frames (a scripted VAD calls a
//!   frame voiced when its samples are non-zero), with the words each segment carries;
//! - a recogniser that answers `Transcribe` after `stt_delay` with the words of the caller's
//!   latest segment;
//! - a synthesiser that answers `Synthesize` after `tts_delay` with 300 ms of audio per word;
//! - a leg that plays items 20 ms per tick, honours pause/resume/flush, and reports progress,
//!   marks and idleness as the real leg does;
//! - a dialog whose replies the test scripts (sentences, then an action, the summary and
//!   `Finished`), one sentence per 30 ms.
//!
//! Nothing here reads the clock: time starts at an arbitrary instant and only moves when the
//! test steps it.

#![allow(clippy::disallowed_methods)] // one `Instant::now()` to have a starting point

mod scenarios;
mod screening;
mod transitions;

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use audio::endpoint::{EndpointConfig, TurnMode};
use audio::{Vad, VadError, VadKind};
use dialogs::flow::Endpointing;
use dialogs::{CallAction, CallerInput, ReplyEvent, ReplyMode, TurnSettings, TurnSummary, Usage};
use speech::Pcm;
use store::{CallId, EndReason, EventKind};

use super::{CallCore, CallStart, CoreConfig, Input, Output, PlaybackReport, SttText};
use crate::calls::dialog::{DialogCommand, DialogOutput};
use crate::calls::listen::{ListenConfig, Listener};
use crate::calls::recorder::Record;

pub(super) const TICK: Duration = Duration::from_millis(20);

/// A VAD that calls a frame voiced when its first sample is non-zero.
struct Scripted;

impl Vad for Scripted {
    fn kind(&self) -> VadKind {
        VadKind::Earshot
    }
    fn sample_rate(&self) -> u32 {
        16_000
    }
    fn speech_probability(&mut self, frame: &[i16]) -> Result<f32, VadError> {
        Ok(if frame[0] != 0 { 1.0 } else { 0.0 })
    }
    fn threshold(&self) -> f32 {
        0.5
    }
    fn reset(&mut self) {}
}

/// What the scripted dialog does for one command.
#[derive(Debug, Clone, Default)]
pub(super) struct Script {
    pub sentences: Vec<String>,
    pub action: Option<CallAction>,
    pub barge_in: bool,
    /// Never finishes producing (an LLM that stalls).
    pub stall: bool,
    /// Time between sentences.
    pub pace: Duration,
}

impl Script {
    pub fn say(sentences: &[&str]) -> Script {
        Script {
            sentences: sentences.iter().map(|s| (*s).to_owned()).collect(),
            action: None,
            barge_in: true,
            stall: false,
            pace: Duration::from_millis(30),
        }
    }

    pub fn paced(mut self, pace_ms: u64) -> Script {
        self.pace = Duration::from_millis(pace_ms);
        self
    }

    pub fn then(mut self, action: CallAction) -> Script {
        self.action = Some(action);
        self
    }

    pub fn uninterruptible(mut self) -> Script {
        self.barge_in = false;
        self
    }
}

/// A stretch of the caller's audio.
#[derive(Debug, Clone)]
struct Segment {
    from_ms: u64,
    to_ms: u64,
    /// Our own voice coming back (the echo gate flags it), not the caller.
    echo: bool,
    words: String,
}

type DialogFn = Box<dyn FnMut(&DialogCommand) -> Option<Script>>;

pub(super) struct Sim {
    pub core: CallCore,
    pub t0: Instant,
    pub now: Instant,
    /// Every record the core wrote, in order.
    pub records: Vec<Record>,
    /// Every command the dialog received.
    pub asked: Vec<DialogCommand>,
    /// Phases in the order they were entered (consecutive duplicates collapsed).
    pub phases: Vec<&'static str>,
    /// Outputs carried out, by kind, in order.
    pub did: Vec<String>,
    dialog: DialogFn,
    caller: Vec<Segment>,
    /// Recorded callee audio (16 kHz) played frame by frame from the answer instead of the
    /// scripted segments; silence after it.
    recorded: Option<Vec<i16>>,
    scheduled: Vec<(Instant, u64, Input)>,
    seq: u64,
    stt_delay: Duration,
    tts_delay: Duration,
    leg: FakeLeg,
    /// The transcription in progress (the core must never ask for two).
    transcribing: bool,
    /// How the transport answers a transfer request.
    pub transfer_answer: Option<TransferAnswer>,
    /// The transport confirms our hang-ups (false: a peer that never answers the BYE).
    pub confirm_hangup: bool,
}

/// How the fake transport handles a transfer.
#[derive(Debug, Clone, Copy)]
pub(super) enum TransferAnswer {
    Accept,
    Refuse(u16),
    CannotStart,
}

#[derive(Debug, Default)]
struct FakeLeg {
    queue: VecDeque<Playing>,
    paused: bool,
    last_item: Option<u64>,
    idle_reported: bool,
    /// (item, ms) of audio actually put on the wire, for assertions.
    played_ms: Vec<(u64, u64)>,
}

#[derive(Debug)]
struct Playing {
    item: u64,
    total_ms: u64,
    played_ms: u64,
    mark: Option<u64>,
}

pub(super) fn config() -> CoreConfig {
    CoreConfig {
        barge_in_min_ms: 100,
        silence_timeout: Duration::from_secs(5),
        max_duration: Duration::from_secs(600),
    }
}

/// The default dialog: a two-sentence greeting, then it repeats what it heard.
pub(super) fn echo_dialog(command: &DialogCommand) -> Option<Script> {
    Some(match command {
        DialogCommand::Start => Script::say(&["Hello, thanks for calling.", "How can I help?"]),
        DialogCommand::Turn(CallerInput::Speech(t)) => Script::say(&[&format!("You said {t}")]),
        DialogCommand::Turn(CallerInput::Dtmf(d)) => Script::say(&[&format!("You pressed {d}.")]),
        DialogCommand::Turn(CallerInput::Silence) => Script::say(&["Are you still there?"]),
        DialogCommand::TransferFailed => Script::say(&["Sorry, nobody answered. What now?"]),
        DialogCommand::Interrupt { .. } => return None,
        _ => return None,
    })
}

impl Sim {
    pub fn new() -> Sim {
        Sim::with(config(), None, Box::new(echo_dialog))
    }

    pub fn with(config: CoreConfig, stt_unavailable: Option<&str>, dialog: DialogFn) -> Sim {
        Sim::build(config, stt_unavailable, None, dialog)
    }

    /// An answered outbound call screened for an answering machine; the callee plays
    /// `recorded` (16 kHz).
    pub fn screening(recorded: Vec<i16>, dialog: DialogFn) -> Sim {
        let amd = audio::amd::AmdDetector::new(audio::amd::AmdConfig::default());
        let mut sim = Sim::build(config(), None, Some(amd), dialog);
        sim.recorded = Some(recorded);
        sim
    }

    fn build(
        config: CoreConfig,
        stt_unavailable: Option<&str>,
        amd: Option<audio::amd::AmdDetector>,
        dialog: DialogFn,
    ) -> Sim {
        let t0 = Instant::now();
        let listener = Listener::new(
            ListenConfig {
                endpoint: EndpointConfig::default(),
                max_utterance_ms: 30_000,
            },
            Box::new(Scripted),
            TurnMode::FreeSpeech,
        );
        let start = CallStart {
            call_id: CallId::new("call-1"),
            at: t0,
            unix_ms: 1_700_000_000_000,
            codec: "PCMU".into(),
            stt_unavailable: stt_unavailable.map(str::to_owned),
            amd,
        };
        let core = CallCore::new(config, listener, start);
        let mut sim = Sim {
            core,
            t0,
            now: t0,
            records: Vec::new(),
            asked: Vec::new(),
            phases: Vec::new(),
            did: Vec::new(),
            dialog,
            caller: Vec::new(),
            recorded: None,
            scheduled: Vec::new(),
            seq: 0,
            stt_delay: Duration::from_millis(100),
            tts_delay: Duration::from_millis(50),
            leg: FakeLeg::default(),
            transcribing: false,
            transfer_answer: None,
            confirm_hangup: true,
        };
        sim.note_phase();
        sim.drain();
        sim
    }

    pub fn ms(&self) -> u64 {
        self.now.duration_since(self.t0).as_millis() as u64
    }

    pub fn phase(&self) -> &'static str {
        self.core.phase_name()
    }

    /// The caller says `words` for `ms` from now on (voiced frames).
    pub fn say(&mut self, words: &str, ms: u64) {
        let from_ms = self.ms();
        self.caller.push(Segment {
            from_ms,
            to_ms: from_ms + ms,
            echo: false,
            words: words.to_owned(),
        });
    }

    /// Our own voice comes back loud for `ms` from now on (flagged as echo by the gate).
    pub fn echo(&mut self, ms: u64) {
        let from_ms = self.ms();
        self.caller.push(Segment {
            from_ms,
            to_ms: from_ms + ms,
            echo: true,
            words: String::new(),
        });
    }

    /// Steps `ms` of simulated time, 20 ms at a time.
    pub fn run(&mut self, ms: u64) {
        for _ in 0..ms / 20 {
            self.tick();
        }
    }

    /// Steps until `phase` is entered (at most `max_ms`); panics otherwise.
    pub fn run_until(&mut self, phase: &str, max_ms: u64) {
        for _ in 0..max_ms / 20 {
            if self.phase() == phase {
                return;
            }
            self.tick();
        }
        assert_eq!(
            self.phase(),
            phase,
            "at {} ms; phases {:?}",
            self.ms(),
            self.phases
        );
    }

    /// Steps until `phase` has been entered at some point (at most `max_ms`).
    pub fn run_until_entered(&mut self, phase: &str, max_ms: u64) {
        for _ in 0..max_ms / 20 {
            if self.phases.contains(&phase) {
                return;
            }
            self.tick();
        }
        assert!(
            self.phases.contains(&phase),
            "{phase} never entered: {:?}",
            self.phases
        );
    }

    /// Feeds one input now.
    pub fn input(&mut self, input: Input) {
        self.core.handle(self.now, input);
        self.note_phase();
        self.drain();
    }

    fn tick(&mut self) {
        self.now += TICK;
        let now = self.now;
        // Results that are due, in the order they were scheduled.
        self.scheduled.sort_by_key(|(at, seq, _)| (*at, *seq));
        while self.scheduled.first().is_some_and(|(at, _, _)| *at <= now) {
            let (_, _, input) = self.scheduled.remove(0);
            if matches!(input, Input::Transcript { .. }) {
                self.transcribing = false;
            }
            self.input(input);
        }
        for report in self.leg.tick(now) {
            self.input(Input::Playback(report));
        }
        let ms = self.ms();
        let segment = self
            .caller
            .iter()
            .find(|s| s.from_ms < ms && ms <= s.to_ms)
            .cloned();
        let (voiced, echo) = match &segment {
            Some(s) => (true, s.echo),
            None => (false, false),
        };
        let pcm = match &self.recorded {
            Some(audio) => {
                let from = (ms as usize / 20 - 1) * 320;
                let mut frame = audio.get(from..).unwrap_or_default().to_vec();
                frame.resize(320, 0);
                frame.truncate(320);
                frame
            }
            None => vec![if voiced { 1000 } else { 0 }; 320],
        };
        self.input(Input::CallerFrame {
            pcm,
            arrived: now,
            echo,
        });
        self.core.handle_timeout(now);
        self.note_phase();
        self.drain();
    }

    fn schedule(&mut self, after: Duration, input: Input) {
        self.seq += 1;
        self.scheduled.push((self.now + after, self.seq, input));
    }

    fn note_phase(&mut self) {
        let phase = self.core.phase_name();
        if self.phases.last() != Some(&phase) {
            self.phases.push(phase);
        }
    }

    /// Carries out the core's outputs the way the world would.
    fn drain(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Play { item, pcm, mark } => {
                    self.did.push(format!("play {item}"));
                    let total_ms = pcm.samples.len() as u64 * 1000 / u64::from(pcm.sample_rate);
                    self.leg.play(item, total_ms, mark);
                }
                Output::Pause => {
                    self.did.push("pause".into());
                    self.leg.paused = true;
                }
                Output::Resume => {
                    self.did.push("resume".into());
                    self.leg.paused = false;
                }
                Output::Flush => {
                    self.did.push("flush".into());
                    self.leg.flush();
                }
                Output::Transcribe { revision, pcm: _ } => {
                    assert!(!self.transcribing, "two transcriptions at once");
                    self.transcribing = true;
                    self.did.push(format!("transcribe {revision}"));
                    let text = self.latest_words();
                    let result = Ok(SttText {
                        text,
                        audio: Duration::from_millis(1000),
                        took: self.stt_delay,
                    });
                    self.schedule(self.stt_delay, Input::Transcript { revision, result });
                }
                Output::Synthesize { item, text } => {
                    self.did.push(format!("synthesize {item}"));
                    self.did.push(format!("say {text}"));
                    let words = text.split_whitespace().count().max(1);
                    let pcm = Pcm {
                        samples: vec![1; words * 300 * 16],
                        sample_rate: 16_000,
                    };
                    self.schedule(
                        self.tts_delay,
                        Input::Synthesized {
                            item,
                            result: Ok(pcm),
                        },
                    );
                }
                Output::CancelSynthesis => {
                    self.did.push("cancel synthesis".into());
                    self.scheduled
                        .retain(|(_, _, i)| !matches!(i, Input::Synthesized { .. }));
                }
                Output::AskDialog { reply, command } => {
                    self.did.push(format!("ask {reply}"));
                    let script = (self.dialog)(&command);
                    self.asked.push(command);
                    if let Some(script) = script {
                        self.produce(reply, script);
                    }
                }
                Output::Record(record) => self.records.push(record),
                Output::SendDtmf { digits } => {
                    // Where the agent's playback stands when the keys go out.
                    let queued = self.leg.queue.len();
                    self.did.push(format!("dtmf {digits} with {queued} queued"));
                }
                Output::Transfer { to, brief, .. } => {
                    self.did.push(format!("transfer {to}"));
                    self.did.push(format!("brief {brief}"));
                    use super::TransferProgress as P;
                    match self.transfer_answer {
                        Some(TransferAnswer::CannotStart) => self.schedule(
                            Duration::ZERO,
                            Input::Transfer(P::CouldNotStart {
                                reason: "no route".into(),
                            }),
                        ),
                        answer => {
                            self.schedule(
                                Duration::ZERO,
                                Input::Transfer(P::Requested {
                                    uri: format!("sip:{to}@example.net"),
                                }),
                            );
                            let outcome = match answer {
                                Some(TransferAnswer::Refuse(status)) => P::Failed {
                                    status: Some(status),
                                },
                                _ => P::Accepted,
                            };
                            let accepted = outcome == P::Accepted;
                            self.schedule(Duration::from_secs(2), Input::Transfer(outcome));
                            if accepted {
                                // The transport leaves the call once the target answered.
                                self.schedule(
                                    Duration::from_millis(2100),
                                    Input::Hangup {
                                        reason: EndReason::AgentHangup,
                                    },
                                );
                            }
                        }
                    }
                }
                Output::Hangup => {
                    self.did.push("hangup".into());
                    if !self.confirm_hangup {
                        continue;
                    }
                    // The transport confirms: our BYE completed.
                    self.schedule(
                        Duration::from_millis(40),
                        Input::Hangup {
                            reason: EndReason::AgentHangup,
                        },
                    );
                }
            }
        }
    }

    /// Schedules the dialog's outputs for `reply`: one sentence per 30 ms, then the action,
    /// the summary, and `Finished`.
    fn produce(&mut self, reply: u64, script: Script) {
        let mut after = Duration::ZERO;
        let step = script.pace;
        for sentence in script.sentences {
            after += step;
            let event = ReplyEvent::Sentence(sentence);
            self.schedule(after, Input::Dialog(DialogOutput::Event { reply, event }));
        }
        if script.stall {
            return;
        }
        if let Some(action) = script.action {
            let event = ReplyEvent::Action(action);
            self.schedule(after, Input::Dialog(DialogOutput::Event { reply, event }));
        }
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 5,
            ..Usage::default()
        };
        let summary = TurnSummary::new("main", "main", ReplyMode::Scripted, usage);
        let event = ReplyEvent::Done(summary);
        self.schedule(after, Input::Dialog(DialogOutput::Event { reply, event }));
        let settings = TurnSettings::new(Endpointing::Free, script.barge_in);
        self.schedule(
            after,
            Input::Dialog(DialogOutput::Finished { reply, settings }),
        );
    }

    /// What the recogniser hears: the words of the caller's latest segment.
    fn latest_words(&self) -> String {
        let ms = self.ms();
        self.caller
            .iter()
            .rev()
            .find(|s| s.from_ms < ms && !s.echo)
            .map(|s| s.words.clone())
            .unwrap_or_default()
    }

    /// Kinds of the events recorded so far.
    pub fn events(&self) -> Vec<EventKind> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Event { kind, .. } => Some(kind.clone()),
                _ => None,
            })
            .collect()
    }

    /// The detail of the last event of `kind`.
    pub fn event(&self, kind: EventKind) -> serde_json::Value {
        self.records
            .iter()
            .rev()
            .find_map(|r| match r {
                Record::Event {
                    kind: k, detail, ..
                } if *k == kind => Some(detail.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {kind} event in {:?}", self.events()))
    }

    /// The last saved state of turn `seq`.
    pub fn turn(&self, seq: i64) -> store::Turn {
        self.records
            .iter()
            .rev()
            .find_map(|r| match r {
                Record::Turn(t) if t.seq == seq => Some(t.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("turn {seq} was never saved"))
    }

    /// The stored end reason, once the call has ended.
    pub fn ended(&self) -> Option<EndReason> {
        self.records.iter().find_map(|r| match r {
            Record::Ended { reason, .. } => Some(reason.clone()),
            _ => None,
        })
    }

    /// Phase transitions seen, as `from -> to`.
    pub fn transitions(&self) -> BTreeSet<String> {
        self.phases
            .windows(2)
            .map(|w| format!("{} -> {}", w[0], w[1]))
            .collect()
    }

    /// Milliseconds of item `item` that went out on the wire.
    pub fn played_ms(&self, item: u64) -> u64 {
        self.leg
            .played_ms
            .iter()
            .filter(|(i, _)| *i == item)
            .map(|(_, ms)| ms)
            .sum()
    }

    pub fn did(&self, what: &str) -> usize {
        self.did.iter().filter(|d| d.as_str() == what).count()
    }
}

impl FakeLeg {
    fn play(&mut self, item: u64, total_ms: u64, mark: Option<u64>) {
        self.queue.push_back(Playing {
            item,
            total_ms: total_ms.div_ceil(20) * 20,
            played_ms: 0,
            mark,
        });
        self.last_item = Some(item);
        self.idle_reported = false;
    }

    fn flush(&mut self) {
        self.queue.clear();
        self.paused = false;
        self.idle_reported = true;
    }

    /// One 20 ms frame out, as the real leg's tick reports it.
    fn tick(&mut self, now: Instant) -> Vec<PlaybackReport> {
        let mut reports = Vec::new();
        if self.paused {
            return reports;
        }
        if let Some(p) = self.queue.front_mut() {
            if p.played_ms == 0
                && let Some(mark) = p.mark
            {
                reports.push(PlaybackReport::MarkSent { mark, at: now });
            }
            p.played_ms = (p.played_ms + 20).min(p.total_ms);
            self.played_ms.push((p.item, 20));
            reports.push(PlaybackReport::Progress {
                item: p.item,
                played_ms: p.played_ms,
                total_ms: p.total_ms,
            });
            if p.played_ms == p.total_ms {
                self.queue.pop_front();
            }
        }
        if self.queue.is_empty()
            && !self.idle_reported
            && let Some(item) = self.last_item
        {
            self.idle_reported = true;
            reports.push(PlaybackReport::Idle { item });
        }
        reports
    }
}
