//! End-of-turn detection: when has the caller finished speaking?
//!
//! A fixed silence rule either cuts callers off when they pause mid-sentence ("I'm calling
//! about … my last invoice": a 500 ms rule ends that turn in the pause) or makes every short
//! answer wait. The [`Endpointer`] instead waits for a time that depends on what was said:
//!
//! 1. It runs a [`SpeechDetector`] over per-frame VAD decisions. At the first silence after
//!    speech (the detector's hangover, [`EndpointConfig::detector`]) it emits
//!    [`TurnEvent::Pause`]: the caller should transcribe what it has now (a small, fast
//!    transcription: the audio so far) and hand the text to [`Endpointer::handle_transcript`].
//! 2. The interim text is classified ([`classify`]): complete-sounding, open, or unfinished
//!    (trailing "about"/"and"/"um"/"to", digits, a comma). Each class has a wait per
//!    [`TurnMode`] ([`ModeWaits`]), counted from the last voiced frame.
//! 3. Silence lasting that wait ends the turn ([`TurnEvent::EndOfTurn`]); speech resuming first
//!    keeps the turn open. Until a transcript arrives — and when there is none at all — the
//!    transcript-free wait applies ([`ModeWaits::no_transcript_ms`]).
//!
//! Modes are chosen per flow node: [`TurnMode::FreeSpeech`], [`TurnMode::YesNo`] (short waits)
//! and [`TurnMode::Digits`] (long waits, DTMF `#` ends the entry at once).
//!
//! Like the rest of this crate it is pure logic in *stream time*: frames pushed advance the
//! clock, nothing reads a real clock. Drive it sans-IO style: `handle_*` for input, then drain
//! [`Endpointer::poll_event`]; [`Endpointer::poll_timeout`] tells when the current wait would
//! end. No method allocates after construction.
//!
//! Measured (`tests/endpointing.rs`, `examples/vad_bench.rs`) on the labelled VAD set and the
//! fixture clips, with interim transcripts simulated from the reference transcripts: zero false
//! cut-offs, mean end-of-turn delay ~0.5 s from the end of speech with transcripts and ~0.95 s
//! without, where a fixed 500 ms rule cuts the hesitation clip. Tables in `audio/README.md`.

mod text;

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

pub use text::{Completeness, classify};

use crate::vad::{SpeechDetector, SpeechDetectorConfig, SpeechEvent};

/// What kind of answer the flow node expects; picks the waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TurnMode {
    /// Open-ended speech (`"free"`).
    #[default]
    FreeSpeech,
    /// A yes/no question (`"yes_no"`): short answers end quickly.
    YesNo,
    /// Digits, spoken or keyed (`"digits"`): long pauses between groups are normal, and the
    /// DTMF terminator ends the turn.
    Digits,
}

impl TurnMode {
    /// Every mode.
    pub const ALL: [TurnMode; 3] = [TurnMode::FreeSpeech, TurnMode::YesNo, TurnMode::Digits];

    /// The config name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::FreeSpeech => "free",
            Self::YesNo => "yes_no",
            Self::Digits => "digits",
        }
    }
}

impl fmt::Display for TurnMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TurnMode {
    type Err = UnknownTurnMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "free" | "free_speech" | "speech" => Ok(Self::FreeSpeech),
            "yes_no" | "yesno" | "confirm" => Ok(Self::YesNo),
            "digits" | "dtmf" | "number" => Ok(Self::Digits),
            _ => Err(UnknownTurnMode { name: s.to_owned() }),
        }
    }
}

/// A turn mode name that is not `free`, `yes_no` or `digits`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown turn mode {name:?} (expected \"free\", \"yes_no\" or \"digits\")")]
#[non_exhaustive]
pub struct UnknownTurnMode {
    /// The name given.
    pub name: String,
}

/// Silence to wait, from the last voiced frame, before ending the turn — per transcript class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModeWaits {
    /// After a complete-sounding transcript. Usually below the pause detection plus the interim
    /// transcription time, i.e. "end as soon as the text is in".
    pub complete_ms: u32,
    /// After a transcript with no closing punctuation and no trailing cue.
    pub open_ms: u32,
    /// After an unfinished-sounding transcript ("… about", "… and", "um", digits, a comma).
    pub incomplete_ms: u32,
    /// Before any transcript arrives, and when none ever does (transcript-free fallback).
    pub no_transcript_ms: u32,
    /// The transcript-free wait when the turn so far is shorter than
    /// [`EndpointConfig::short_turn_ms`]: a caller who stops after a second of speech has often
    /// only begun ("I'm calling about …"), so without words to go by it pays to wait longer.
    pub short_no_transcript_ms: u32,
}

impl ModeWaits {
    /// Waits in milliseconds, in field order; the short-turn transcript-free wait equals
    /// `no_transcript_ms` until set with [`ModeWaits::with_short_no_transcript`].
    pub const fn new(
        complete_ms: u32,
        open_ms: u32,
        incomplete_ms: u32,
        no_transcript_ms: u32,
    ) -> Self {
        Self {
            complete_ms,
            open_ms,
            incomplete_ms,
            no_transcript_ms,
            short_no_transcript_ms: no_transcript_ms,
        }
    }

    /// Sets [`ModeWaits::short_no_transcript_ms`].
    pub const fn with_short_no_transcript(mut self, ms: u32) -> Self {
        self.short_no_transcript_ms = ms;
        self
    }

    /// The wait for a transcript class (`None`: no transcript yet) after a turn of `short` or
    /// normal length. An empty transcript (noise, a cough) gets the transcript-free wait.
    pub const fn for_class(&self, class: Option<Completeness>, short: bool) -> u32 {
        match class {
            Some(Completeness::Complete) => self.complete_ms,
            Some(Completeness::Open) => self.open_ms,
            Some(Completeness::Incomplete) => self.incomplete_ms,
            Some(Completeness::Empty) | None if short => self.short_no_transcript_ms,
            Some(Completeness::Empty) | None => self.no_transcript_ms,
        }
    }
}

/// Endpointing settings. `Default` holds the tuned values; the numbers behind them are in
/// `tests/endpointing.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointConfig {
    /// Speech start/pause detection: `min_speech_ms` filters blips, `hangover_ms` is the silence
    /// that counts as a pause ([`TurnEvent::Pause`], when the interim transcription starts).
    pub detector: SpeechDetectorConfig,
    /// Waits in [`TurnMode::FreeSpeech`].
    pub free_speech: ModeWaits,
    /// Waits in [`TurnMode::YesNo`].
    pub yes_no: ModeWaits,
    /// Waits in [`TurnMode::Digits`]; also the inter-key timeout after a DTMF digit.
    pub digits: ModeWaits,
    /// No wait is shorter than this (a floor under every class).
    pub min_wait_ms: u32,
    /// No wait is longer than this (a cap over every class).
    pub max_wait_ms: u32,
    /// When the utterance before the current silence is shorter than this, the transcript-free
    /// wait is [`ModeWaits::short_no_transcript_ms`].
    pub short_turn_ms: u32,
    /// A pause at least this long starts a new utterance for [`EndpointConfig::short_turn_ms`]
    /// (otherwise the utterance starts with the turn): a turn that merged two utterances
    /// ("… my account." then, 0.6 s later, "I'm calling about …") must still see the second one
    /// as short.
    pub utterance_gap_ms: u32,
    /// Silence after a DTMF key before the entry counts as finished (inter-key timeout).
    pub dtmf_wait_ms: u32,
    /// The DTMF key that ends a [`TurnMode::Digits`] turn at once.
    pub terminator: char,
}

impl EndpointConfig {
    /// The waits for `mode`.
    pub const fn waits(&self, mode: TurnMode) -> ModeWaits {
        match mode {
            TurnMode::FreeSpeech => self.free_speech,
            TurnMode::YesNo => self.yes_no,
            TurnMode::Digits => self.digits,
        }
    }

    /// Sets the waits for `mode`.
    pub fn with_waits(mut self, mode: TurnMode, waits: ModeWaits) -> Self {
        match mode {
            TurnMode::FreeSpeech => self.free_speech = waits,
            TurnMode::YesNo => self.yes_no = waits,
            TurnMode::Digits => self.digits = waits,
        }
        self
    }

    /// Sets the pause detection.
    pub fn with_detector(mut self, detector: SpeechDetectorConfig) -> Self {
        self.detector = detector;
        self
    }

    /// Sets the floor and cap on every wait.
    pub fn with_limits(mut self, min_wait_ms: u32, max_wait_ms: u32) -> Self {
        self.min_wait_ms = min_wait_ms;
        self.max_wait_ms = max_wait_ms;
        self
    }

    /// The wait for `class` in `mode` after `speech_ms` of speech (see
    /// [`EndpointConfig::short_turn_ms`]), after the floor and cap.
    pub fn wait_ms(&self, mode: TurnMode, class: Option<Completeness>, speech_ms: u64) -> u32 {
        let short = speech_ms < u64::from(self.short_turn_ms);
        self.clamp(self.waits(mode).for_class(class, short))
    }

    fn clamp(&self, wait_ms: u32) -> u32 {
        wait_ms
            .max(self.min_wait_ms)
            .min(self.max_wait_ms.max(self.min_wait_ms))
    }
}

impl Default for EndpointConfig {
    /// Pause detection at 200 ms. Free speech ends 200 ms after the last voiced frame once a
    /// complete-sounding transcript is in (in practice: when the interim text arrives), waits
    /// 1.6 s after an unfinished one and 0.7 s after an open one. Without any transcript it waits
    /// 1.4 s after a stretch of less than 1.5 s of speech and 0.7 s otherwise: the hesitation
    /// clip's pause is
    /// ~1.3 s as the VADs see it (0.9 s of inserted silence plus soft word edges), and the sweep
    /// in `examples/vad_bench.rs --sweep` found no flat wait that bridges it without slowing
    /// every turn to ~1.2 s. Yes/no answers end fastest; digit entry waits 1.5 s after a number
    /// and 3 s after a key.
    fn default() -> Self {
        Self {
            detector: SpeechDetectorConfig::new(100, 200),
            free_speech: ModeWaits::new(200, 700, 1600, 700).with_short_no_transcript(1400),
            yes_no: ModeWaits::new(200, 500, 1200, 700),
            digits: ModeWaits::new(600, 1000, 1500, 1500),
            min_wait_ms: 200,
            max_wait_ms: 3000,
            short_turn_ms: 1500,
            utterance_gap_ms: 500,
            dtmf_wait_ms: 3000,
            terminator: '#',
        }
    }
}

/// Why a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// Silence lasted the wait for the transcript class in force.
    Silence {
        /// The class the wait was chosen by (`None`: no transcript).
        class: Option<Completeness>,
        /// The wait, from the last voiced frame or key.
        wait_ms: u32,
    },
    /// The DTMF terminator was pressed.
    Terminator,
    /// No key and no speech for [`EndpointConfig::dtmf_wait_ms`] after a DTMF key.
    DtmfTimeout {
        /// The wait, from the last key.
        wait_ms: u32,
    },
}

/// What the [`Endpointer`] tells its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TurnEvent {
    /// Speech started: a new turn, or the same turn going on after a pause (`resumed`). Useful for
    /// barge-in and to discard an interim transcription that is now stale.
    SpeechStart {
        /// Decision time (stream ms).
        at_ms: u64,
        /// Estimated onset: the first voiced frame.
        first_voiced_at_ms: u64,
        /// Whether this continues a turn that had paused.
        resumed: bool,
    },
    /// The caller went quiet: transcribe the turn so far now and pass the text to
    /// [`Endpointer::handle_transcript`].
    Pause {
        /// Decision time (stream ms).
        at_ms: u64,
        /// End of the last voiced frame.
        last_voiced_at_ms: u64,
    },
    /// The turn is over: answer now.
    EndOfTurn {
        /// Decision time (stream ms).
        at_ms: u64,
        /// End of the last voiced frame or DTMF key of the turn (end-of-turn delay is measured
        /// from here).
        last_activity_at_ms: u64,
        /// Why.
        reason: EndReason,
    },
}

/// Decides end of turn from VAD frames, interim transcripts and DTMF. See the
/// [module docs](self).
///
/// ```
/// # use audio::endpoint::{Endpointer, EndpointConfig, TurnEvent, TurnMode};
/// let mut ep = Endpointer::new(EndpointConfig::default(), TurnMode::YesNo);
/// for _ in 0..30 { ep.handle_frame(true, 20); }  // 600 ms of "yes"
/// for _ in 0..10 { ep.handle_frame(false, 20); } // 200 ms of silence: a pause
/// assert!(matches!(ep.poll_event(), Some(TurnEvent::SpeechStart { .. })));
/// assert!(matches!(ep.poll_event(), Some(TurnEvent::Pause { .. })));
/// ep.handle_transcript("Yes.");                   // the interim transcript
/// assert!(matches!(ep.poll_event(), Some(TurnEvent::EndOfTurn { .. })));
/// ```
#[derive(Debug, Clone)]
pub struct Endpointer {
    config: EndpointConfig,
    mode: TurnMode,
    detector: SpeechDetector,
    state: State,
    /// Class of the transcript that covers the current pause, if one came in.
    class: Option<Completeness>,
    /// First voiced frame (or key) of the current utterance (see
    /// [`EndpointConfig::short_turn_ms`]).
    utterance_start_ms: u64,
    /// The wait in force is the DTMF inter-key timeout.
    after_key: bool,
    /// DTMF keys of the current turn (terminator excluded).
    digits: String,
    events: VecDeque<TurnEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between turns.
    Idle,
    /// Speech (or keys) going on.
    Active,
    /// Silence since `last_activity_at_ms`; the turn ends when the wait runs out.
    Waiting { last_activity_at_ms: u64 },
}

impl Endpointer {
    /// An endpointer at stream time 0, between turns.
    pub fn new(config: EndpointConfig, mode: TurnMode) -> Self {
        Self {
            config,
            mode,
            detector: SpeechDetector::new(config.detector),
            state: State::Idle,
            class: None,
            utterance_start_ms: 0,
            after_key: false,
            digits: String::with_capacity(32),
            events: VecDeque::with_capacity(4),
        }
    }

    /// The settings.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// The mode in force.
    pub fn mode(&self) -> TurnMode {
        self.mode
    }

    /// Switches mode (a new flow node); applies to the wait in force at once.
    pub fn set_mode(&mut self, mode: TurnMode) {
        self.mode = mode;
    }

    /// Stream time: frames pushed so far, in ms.
    pub fn now_ms(&self) -> u64 {
        self.detector.now_ms()
    }

    /// Whether a turn has started and not ended.
    pub fn in_turn(&self) -> bool {
        self.state != State::Idle
    }

    /// DTMF keys pressed in the current turn (or the one just ended, until the next starts).
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The transcript class in force for the current pause (`None`: none yet).
    pub fn completeness(&self) -> Option<Completeness> {
        self.class
    }

    /// One frame of `frame_ms` with the VAD's decision: advances stream time.
    pub fn handle_frame(&mut self, voiced: bool, frame_ms: u32) {
        match self.detector.push(voiced, frame_ms) {
            Some(SpeechEvent::SpeechStart {
                at_ms,
                first_voiced_at_ms,
            }) => {
                let resumed = self.state != State::Idle;
                let new_utterance = match self.state {
                    State::Idle => true,
                    State::Active => false,
                    State::Waiting {
                        last_activity_at_ms,
                    } => {
                        let pause = first_voiced_at_ms.saturating_sub(last_activity_at_ms);
                        pause >= u64::from(self.config.utterance_gap_ms)
                    }
                };
                if !resumed {
                    self.digits.clear();
                }
                if new_utterance {
                    self.utterance_start_ms = first_voiced_at_ms;
                }
                self.state = State::Active;
                // Text about the audio before this point no longer describes the turn's end.
                self.class = None;
                self.after_key = false;
                self.events.push_back(TurnEvent::SpeechStart {
                    at_ms,
                    first_voiced_at_ms,
                    resumed,
                });
            }
            Some(SpeechEvent::SpeechEnd {
                at_ms,
                last_voiced_at_ms,
            }) if self.state == State::Active => {
                self.state = State::Waiting {
                    last_activity_at_ms: last_voiced_at_ms,
                };
                self.after_key = false;
                self.events.push_back(TurnEvent::Pause {
                    at_ms,
                    last_voiced_at_ms,
                });
            }
            // A speech end after the turn already ended (a DTMF terminator mid-speech).
            Some(SpeechEvent::SpeechEnd { .. }) | None => {}
        }
        self.check_deadline();
    }

    /// An interim transcript of the turn so far (whole text, not a delta). It counts for the
    /// current pause only: text handed in while the caller is still speaking is ignored, since it
    /// cannot describe how the turn ends.
    pub fn handle_transcript(&mut self, text: &str) {
        if matches!(self.state, State::Waiting { .. }) && !self.after_key {
            self.class = Some(classify(text, self.mode));
            self.check_deadline();
        }
    }

    /// A DTMF key. The terminator ends a [`TurnMode::Digits`] turn at once; any other key is
    /// turn activity — it starts a turn, restarts the wait with [`EndpointConfig::dtmf_wait_ms`]
    /// (unless the caller is also speaking), and is collected in [`Endpointer::digits`].
    pub fn handle_dtmf(&mut self, key: char) {
        let now = self.now_ms();
        if self.mode == TurnMode::Digits && key == self.config.terminator {
            // Between turns (nothing entered yet) the terminator means nothing.
            if self.state != State::Idle {
                self.end_turn(now, now, EndReason::Terminator);
            }
            return;
        }
        if self.state == State::Idle {
            self.digits.clear();
            self.utterance_start_ms = now;
            self.events.push_back(TurnEvent::SpeechStart {
                at_ms: now,
                first_voiced_at_ms: now,
                resumed: false,
            });
        }
        // Bounded: a caller leaning on the keypad must not grow the buffer.
        if self.digits.len() + key.len_utf8() <= self.digits.capacity() {
            self.digits.push(key);
        }
        if !self.detector.is_speaking() {
            self.state = State::Waiting {
                last_activity_at_ms: now,
            };
            self.class = None;
            self.after_key = true;
        }
        self.check_deadline();
    }

    /// The next event, oldest first. Drain after every `handle_*` call.
    pub fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }

    /// When (stream ms) the turn ends if silence goes on, and why; `None` between turns and while
    /// the caller speaks.
    pub fn poll_timeout(&self) -> Option<(u64, &'static str)> {
        let State::Waiting {
            last_activity_at_ms,
        } = self.state
        else {
            return None;
        };
        let why = match self.class {
            _ if self.after_key => "end of turn: DTMF inter-key timeout",
            None => "end of turn: no transcript yet",
            Some(Completeness::Complete) => "end of turn: complete transcript",
            Some(Completeness::Open) => "end of turn: open transcript",
            Some(Completeness::Incomplete) => "end of turn: unfinished transcript",
            Some(Completeness::Empty) => "end of turn: empty transcript",
        };
        Some((last_activity_at_ms + u64::from(self.wait_ms()), why))
    }

    /// Back to stream time 0, between turns, same mode.
    pub fn reset(&mut self) {
        self.detector.reset();
        self.state = State::Idle;
        self.class = None;
        self.after_key = false;
        self.digits.clear();
        self.events.clear();
    }

    fn wait_ms(&self) -> u32 {
        let State::Waiting {
            last_activity_at_ms,
        } = self.state
        else {
            return 0;
        };
        if self.after_key {
            return self.config.clamp(self.config.dtmf_wait_ms);
        }
        let speech_ms = last_activity_at_ms.saturating_sub(self.utterance_start_ms);
        self.config.wait_ms(self.mode, self.class, speech_ms)
    }

    fn check_deadline(&mut self) {
        let State::Waiting {
            last_activity_at_ms,
        } = self.state
        else {
            return;
        };
        let wait_ms = self.wait_ms();
        let now = self.now_ms();
        // A voiced run that has begun but not yet confirmed as speech may be the caller going on:
        // hold the decision until the detector settles it (at most `min_speech_ms`).
        let deciding = self.detector.is_candidate();
        if now >= last_activity_at_ms + u64::from(wait_ms) && !deciding {
            let reason = if self.after_key {
                EndReason::DtmfTimeout { wait_ms }
            } else {
                EndReason::Silence {
                    class: self.class,
                    wait_ms,
                }
            };
            self.end_turn(now, last_activity_at_ms, reason);
        }
    }

    fn end_turn(&mut self, at_ms: u64, last_activity_at_ms: u64, reason: EndReason) {
        self.state = State::Idle;
        self.class = None;
        self.after_key = false;
        self.events.push_back(TurnEvent::EndOfTurn {
            at_ms,
            last_activity_at_ms,
            reason,
        });
    }
}

#[cfg(test)]
mod tests;
