//! Answering-machine detection: from the moment an outbound call is answered, is it a person
//! or a machine — and when a machine's beep is heard, so a voicemail message starts after it.
//!
//! Sans-IO, like the rest of this crate: [`AmdDetector::push`] takes one frame of the callee's
//! audio (20 ms at the configured rate; the pipeline's is 16 kHz) and returns what it learned.
//! Time is frame time from the answer; nothing reads the clock.
//!
//! How it decides (the cadence rules of classic AMD, e.g. Asterisk's `AMD()`, on an adaptive
//! energy detector):
//!
//! - a person says something short ("Hello?", ≤ `max_greeting_ms`) and then waits: a silence of
//!   `after_greeting_silence_ms` after a short greeting → [`Verdict::Human`];
//! - a machine talks on: a greeting longer than `max_greeting_ms`, or `max_words` separate words
//!   before any long pause → [`Verdict::Machine`]; a beep → machine as well;
//! - nobody speaks within `decision_deadline_ms` → [`Verdict::Unknown`]; at the deadline a
//!   callee still talking is a machine and one who spoke and stopped is a person.
//!
//! A decision always comes within `decision_deadline_ms` (3 s by default) of the answer.
//!
//! Beeps are found separately by a Goertzel filter bank (`min_hz`–`max_hz`): a run of frames
//! whose energy is nearly all in one steady frequency, lasting at least `beep_min_ms`, reported
//! when it ends ([`AmdEvent::Beep`]). After a machine verdict, a greeting that ends without a
//! beep is reported too ([`AmdEvent::GreetingEnded`]).
//!
//! # When to stop feeding
//!
//! - after `Decided { verdict: Human }`: stop, talk to the person;
//! - after `Decided { verdict: Machine }`: keep feeding until `Beep` (start the message after
//!   it) or `GreetingEnded` (no beep came; start now) — or give up after your own limit;
//! - after `Decided { verdict: Unknown }`: the callee is silent; treat as a person (speak) or
//!   keep feeding to catch a late beep, as the flow prefers.
//!
//! Feeding more after the last event you need is harmless; the detector reports each event
//! kind at most once per call (a second beep is not reported).
//!
//! Measured on the labelled set in `tests/data/amd` (`cargo run --release -p audio --example
//! amd_bench`); the numbers are in `audio/README.md`.

mod tone;

/// Frames over which the noise floor is the minimum (2 s of 20 ms frames).
const FLOOR_WINDOW: usize = 100;
/// The floor never rises above this (louder is not noise but the far end talking).
const MAX_FLOOR_DB: f32 = -30.0;

use std::collections::VecDeque;

use self::tone::ToneBank;

/// Person or machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Human,
    Machine,
    /// Nobody spoke within the deadline (or the audio says nothing either way).
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Human => "human",
            Verdict::Machine => "machine",
            Verdict::Unknown => "unknown",
        }
    }
}

/// Why a verdict was reached (for logs and the call's events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// A short greeting, then silence.
    ShortGreetingThenSilence,
    /// Talking for longer than a person's greeting.
    LongGreeting,
    /// Too many words before a pause.
    ManyWords,
    /// A beep.
    Beep,
    /// The deadline, while still talking.
    TalkingAtDeadline,
    /// The deadline, after speech that stopped.
    SpokeBeforeDeadline,
    /// The deadline, without any speech.
    Silence,
}

/// What the detector learned from a frame.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum AmdEvent {
    /// The verdict, `after_ms` from the answer (at most `decision_deadline_ms`).
    Decided {
        verdict: Verdict,
        reason: Reason,
        after_ms: u32,
    },
    /// A beep ended `at_ms` after the answer: start the message now.
    Beep {
        at_ms: u32,
        /// Its frequency (± the filter spacing) and length.
        tone_hz: u32,
        duration_ms: u32,
    },
    /// After a machine verdict, the greeting ended (`greeting_end_silence_ms` of silence) and
    /// no beep came: start the message now.
    GreetingEnded { at_ms: u32 },
}

/// Settings; the defaults are the tuned ones (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct AmdConfig {
    /// Sample rate of the frames.
    pub sample_rate: u32,
    /// Frame length in ms.
    pub frame_ms: u32,
    /// A greeting longer than this is a machine's.
    pub max_greeting_ms: u32,
    /// Silence after a short greeting that makes it a person's.
    pub after_greeting_silence_ms: u32,
    /// The verdict comes by then, whatever was heard.
    pub decision_deadline_ms: u32,
    /// This many words before a long pause is a machine.
    pub max_words: u32,
    /// Shorter voiced bursts are not words (clicks, breaths).
    pub min_word_ms: u32,
    /// Silence that separates two words.
    pub word_gap_ms: u32,
    /// Voiced = this far above the tracked noise floor…
    pub speech_above_floor_db: f32,
    /// …and at least this loud.
    pub min_speech_dbfs: f32,
    /// Beep band and filter spacing.
    pub beep_min_hz: u32,
    pub beep_max_hz: u32,
    pub beep_step_hz: u32,
    /// Share of a frame's energy in its strongest bin for a tone frame.
    pub beep_purity: f32,
    /// Beep length bounds (longer: a continuous tone, not a beep).
    pub beep_min_ms: u32,
    pub beep_max_ms: u32,
    /// After a machine verdict, this much silence without a beep ends the greeting.
    pub greeting_end_silence_ms: u32,
}

impl Default for AmdConfig {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            frame_ms: 20,
            max_greeting_ms: 1_500,
            after_greeting_silence_ms: 800,
            decision_deadline_ms: 3_000,
            max_words: 4,
            min_word_ms: 100,
            word_gap_ms: 200,
            speech_above_floor_db: 12.0,
            min_speech_dbfs: -50.0,
            beep_min_hz: 400,
            beep_max_hz: 2_000,
            beep_step_hz: 25,
            beep_purity: 0.6,
            beep_min_ms: 140,
            beep_max_ms: 3_000,
            greeting_end_silence_ms: 1_500,
        }
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct AmdDetector {
    cfg: AmdConfig,
    tones: ToneBank,
    /// The frame after the high-pass: mains hum and rumble (brown noise, a bad line) are not
    /// speech, and the telephone band starts at 300 Hz anyway.
    highpass: HighPass,
    filtered: Vec<i16>,
    /// Frame time: ms from the answer at the end of the last frame.
    now_ms: u32,
    floor_db: f32,
    /// Levels of the last `FLOOR_WINDOW` frames: the noise floor is their minimum.
    levels: VecDeque<f32>,
    verdict: Option<Verdict>,
    /// First voiced frame of the greeting (start of the current utterance).
    greeting_start: Option<u32>,
    /// End of the last voiced frame.
    last_voiced_end: Option<u32>,
    /// Voiced ms of the word being spoken, and whether one is open.
    word_ms: u32,
    in_word: bool,
    words: u32,
    /// Current run of tone frames: start ms, frequency, frames.
    tone_run: Option<(u32, f32, u32)>,
    beep_reported: bool,
    greeting_end_reported: bool,
    events: VecDeque<AmdEvent>,
}

impl AmdDetector {
    pub fn new(cfg: AmdConfig) -> Self {
        let frame_len = (cfg.sample_rate * cfg.frame_ms / 1000) as usize;
        let tones = ToneBank::new(
            cfg.sample_rate,
            frame_len,
            cfg.beep_min_hz,
            cfg.beep_max_hz,
            cfg.beep_step_hz,
        );
        let highpass = HighPass::new(cfg.sample_rate, 250.0);
        Self {
            cfg,
            tones,
            highpass,
            filtered: Vec::with_capacity(frame_len),
            now_ms: 0,
            floor_db: -70.0,
            levels: VecDeque::with_capacity(FLOOR_WINDOW),
            verdict: None,
            greeting_start: None,
            last_voiced_end: None,
            word_ms: 0,
            in_word: false,
            words: 0,
            tone_run: None,
            beep_reported: false,
            greeting_end_reported: false,
            events: VecDeque::new(),
        }
    }

    /// Feeds the next frame of the callee's audio (mono i16 at `sample_rate`; its length sets
    /// how much time passes). Returns the first event it produced; more, if any, come from
    /// [`AmdDetector::poll_event`].
    pub fn push(&mut self, frame: &[i16]) -> Option<AmdEvent> {
        let rate = self.cfg.sample_rate.max(1) as u64;
        let start = self.now_ms;
        self.now_ms = start + (frame.len() as u64 * 1000 / rate) as u32;
        self.step(frame, start);
        self.events.pop_front()
    }

    /// Another event produced by the last [`AmdDetector::push`], if any.
    pub fn poll_event(&mut self) -> Option<AmdEvent> {
        self.events.pop_front()
    }

    /// The verdict, once decided.
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict
    }

    /// Ms of audio fed so far.
    pub fn elapsed_ms(&self) -> u32 {
        self.now_ms
    }

    fn step(&mut self, frame: &[i16], start: u32) {
        let mut filtered = std::mem::take(&mut self.filtered);
        filtered.clear();
        filtered.extend(frame.iter().map(|&x| self.highpass.run(x)));
        self.classify(&filtered, start);
        self.filtered = filtered;
    }

    fn classify(&mut self, frame: &[i16], start: u32) {
        let level = crate::frame::dbfs(frame);
        let voiced = level > self.floor_db + self.cfg.speech_above_floor_db
            && level > self.cfg.min_speech_dbfs;
        self.track_floor(level);
        self.track_tone(frame, voiced, start);
        if voiced {
            if self.greeting_start.is_none() {
                self.greeting_start = Some(start);
            }
            self.last_voiced_end = Some(self.now_ms);
            self.word_ms += self.cfg.frame_ms;
            self.in_word = true;
        } else if self.in_word && self.silence_ms() >= self.cfg.word_gap_ms {
            if self.word_ms >= self.cfg.min_word_ms {
                self.words += 1;
            }
            self.in_word = false;
            self.word_ms = 0;
        }
        if self.verdict.is_none() {
            self.decide();
        } else if self.verdict == Some(Verdict::Machine)
            && !self.beep_reported
            && !self.greeting_end_reported
            && self.last_voiced_end.is_some()
            && self.silence_ms() >= self.cfg.greeting_end_silence_ms
        {
            self.greeting_end_reported = true;
            let at_ms = self.now_ms;
            self.events.push_back(AmdEvent::GreetingEnded { at_ms });
        }
    }

    /// Silence since the last voiced frame (or since the answer).
    fn silence_ms(&self) -> u32 {
        self.now_ms - self.last_voiced_end.unwrap_or(0)
    }

    /// The noise floor is the quietest frame of the last two seconds (minimum statistics):
    /// steady line noise from the first frame on sets it at once, and speech — which always
    /// has quieter frames between words within two seconds — never lifts it. Capped, so even a
    /// greeting without any gap stays speech.
    fn track_floor(&mut self, level: f32) {
        if self.levels.len() == FLOOR_WINDOW {
            self.levels.pop_front();
        }
        self.levels.push_back(level);
        let min = self.levels.iter().copied().fold(f32::INFINITY, f32::min);
        self.floor_db = min.clamp(-90.0, MAX_FLOOR_DB);
    }

    fn track_tone(&mut self, frame: &[i16], voiced: bool, start: u32) {
        let peak = if voiced { self.tones.peak(frame) } else { None };
        let tonal = peak.filter(|p| p.purity >= self.cfg.beep_purity);
        let step = self.cfg.beep_step_hz as f32 * 2.0;
        match (tonal, self.tone_run) {
            (Some(p), Some((run_start, hz, frames))) if (p.hz - hz).abs() <= step => {
                self.tone_run = Some((run_start, hz, frames + 1));
            }
            (Some(p), _) => {
                self.end_tone_run();
                self.tone_run = Some((start, p.hz, 1));
            }
            (None, _) => self.end_tone_run(),
        }
    }

    fn end_tone_run(&mut self) {
        let Some((start, hz, frames)) = self.tone_run.take() else {
            return;
        };
        let duration_ms = frames * self.cfg.frame_ms;
        if self.beep_reported
            || duration_ms < self.cfg.beep_min_ms
            || duration_ms > self.cfg.beep_max_ms
        {
            return;
        }
        self.beep_reported = true;
        let at_ms = start + duration_ms;
        if self.verdict.is_none() {
            self.settle(Verdict::Machine, Reason::Beep);
        }
        self.events.push_back(AmdEvent::Beep {
            at_ms,
            tone_hz: hz.round() as u32,
            duration_ms,
        });
    }

    fn decide(&mut self) {
        let c = &self.cfg;
        let speaking = self.last_voiced_end == Some(self.now_ms);
        if let Some(start) = self.greeting_start {
            let greeting = self.last_voiced_end.unwrap_or(start) - start;
            if greeting > c.max_greeting_ms {
                return self.settle(Verdict::Machine, Reason::LongGreeting);
            }
            let open_word = u32::from(self.in_word && self.word_ms >= c.min_word_ms);
            if self.words + open_word >= c.max_words {
                return self.settle(Verdict::Machine, Reason::ManyWords);
            }
            if !speaking && self.silence_ms() >= c.after_greeting_silence_ms {
                return self.settle(Verdict::Human, Reason::ShortGreetingThenSilence);
            }
        }
        if self.now_ms >= c.decision_deadline_ms {
            match (self.greeting_start.is_some(), speaking) {
                (true, true) => self.settle(Verdict::Machine, Reason::TalkingAtDeadline),
                (true, false) => self.settle(Verdict::Human, Reason::SpokeBeforeDeadline),
                (false, _) => self.settle(Verdict::Unknown, Reason::Silence),
            }
        }
    }

    fn settle(&mut self, verdict: Verdict, reason: Reason) {
        self.verdict = Some(verdict);
        self.events.push_back(AmdEvent::Decided {
            verdict,
            reason,
            after_ms: self.now_ms,
        });
    }
}

/// A second-order Butterworth high-pass (RBJ biquad).
#[derive(Debug, Clone)]
struct HighPass {
    b: [f32; 3],
    a: [f32; 2],
    x: [f32; 2],
    y: [f32; 2],
}

impl HighPass {
    fn new(rate_hz: u32, cutoff_hz: f32) -> Self {
        let w0 = 2.0 * std::f32::consts::PI * cutoff_hz / rate_hz.max(1) as f32;
        let alpha = w0.sin() / (2.0 * std::f32::consts::FRAC_1_SQRT_2);
        let cos = w0.cos();
        let a0 = 1.0 + alpha;
        Self {
            b: [
                (1.0 + cos) / 2.0 / a0,
                -(1.0 + cos) / a0,
                (1.0 + cos) / 2.0 / a0,
            ],
            a: [-2.0 * cos / a0, (1.0 - alpha) / a0],
            x: [0.0; 2],
            y: [0.0; 2],
        }
    }

    fn run(&mut self, sample: i16) -> i16 {
        let x0 = f32::from(sample);
        let y0 = self.b[0] * x0 + self.b[1] * self.x[0] + self.b[2] * self.x[1]
            - self.a[0] * self.y[0]
            - self.a[1] * self.y[1];
        self.x = [x0, self.x[0]];
        self.y = [y0, self.y[0]];
        y0.clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
    }
}

#[cfg(test)]
mod tests;
