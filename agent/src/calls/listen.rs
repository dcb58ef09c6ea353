//! Listening: per-frame voice activity, utterance capture with pre-roll, and the end-of-turn
//! decision by [`audio::Endpointer`] — a wait that depends on what the caller said so far
//! (interim transcripts at each pause), per flow-node mode (free speech, yes/no, digits).
//! Pure logic in stream time (frames pushed), so it is tested without audio I/O or clocks;
//! part of the call core, so it never reads the clock.

#![deny(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::time::Instant;

use audio::Vad;
use audio::endpoint::{EndpointConfig, Endpointer, TurnEvent, TurnMode};

use super::leg::PIPELINE_FRAME;

/// Audio kept from before speech was detected, so the first syllable is not clipped.
const PREROLL_FRAMES: usize = 15; // 300 ms
/// Frame arrival times remembered, to date the last voiced frame (longer than any wait).
const ARRIVALS: usize = 250; // 5 s
/// Trailing silence kept at the end of an utterance (whisper likes a clean ending).
const KEEP_TRAILING_MS: u64 = 200;

/// Settings for turn detection.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    pub endpoint: EndpointConfig,
    /// Longest utterance kept; the turn ends when it is reached.
    pub max_utterance_ms: u32,
}

/// What one frame (or transcript) changed.
#[derive(Debug, PartialEq)]
pub enum Heard {
    Nothing,
    /// Speech started (`resumed`: the same turn going on after a pause).
    SpeechStarted {
        resumed: bool,
    },
    /// The caller paused: transcribe the turn so far (`revision` identifies this audio; any
    /// later speech makes a new revision) and hand the text to [`Listener::transcript`].
    Pause {
        pcm: Vec<i16>,
        revision: u64,
    },
    /// The turn is over. `revision` says which interim transcript (if any) covers it exactly.
    TurnEnded {
        pcm: Vec<i16>,
        last_voiced: Instant,
        revision: u64,
    },
}

/// Voice activity → utterances → end of turn.
pub struct Listener {
    config: ListenConfig,
    vad: Box<dyn Vad>,
    endpointer: Endpointer,
    preroll: VecDeque<Vec<i16>>,
    /// Audio of the turn in progress, and the stream time of its first sample.
    utterance: Option<(Vec<i16>, u64)>,
    arrivals: VecDeque<(u64, Instant)>,
    revision: u64,
    /// Whether utterances may start (false while a non-interruptible prompt plays).
    open: bool,
    stream_ms: u64,
    voiced_run_ms: u32,
}

impl Listener {
    pub fn new(config: ListenConfig, vad: Box<dyn Vad>, mode: TurnMode) -> Self {
        let endpointer = Endpointer::new(config.endpoint, mode);
        Self {
            config,
            vad,
            endpointer,
            preroll: VecDeque::with_capacity(PREROLL_FRAMES + 1),
            utterance: None,
            arrivals: VecDeque::with_capacity(ARRIVALS + 1),
            revision: 0,
            open: true,
            stream_ms: 0,
            voiced_run_ms: 0,
        }
    }

    /// Whether the caller is in a turn (speaking, or paused within it).
    pub fn in_turn(&self) -> bool {
        self.utterance.is_some()
    }

    /// Milliseconds of the current run of voiced frames (0 when the last frame was silent).
    pub fn voiced_run_ms(&self) -> u32 {
        self.voiced_run_ms
    }

    /// The current audio revision (bumped by every start of speech).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Picks the waits for the kind of answer the flow node expects.
    pub fn set_mode(&mut self, mode: TurnMode) {
        self.endpointer.set_mode(mode);
    }

    /// Allows or stops capturing utterances (barge-in off while a prompt plays). Closing drops
    /// the turn in progress.
    pub fn set_open(&mut self, open: bool) {
        self.open = open;
        if !open && self.utterance.is_some() {
            self.utterance = None;
            self.endpointer.reset();
        }
    }

    /// Feeds one 20 ms frame at 16 kHz. `echo` marks a frame judged to be the agent's own
    /// voice coming back: it counts as silence.
    pub fn push(&mut self, pcm: &[i16], arrived: Instant, echo: bool) -> Heard {
        self.stream_ms += 20;
        if self.arrivals.len() == ARRIVALS {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back((self.stream_ms, arrived));
        let voiced = !echo && self.open && self.vad.is_speech(pcm).unwrap_or(false);
        self.voiced_run_ms = if voiced { self.voiced_run_ms + 20 } else { 0 };
        match self.utterance.as_mut() {
            Some((audio, _)) => audio.extend_from_slice(pcm),
            None => {
                if self.preroll.len() == PREROLL_FRAMES {
                    self.preroll.pop_front();
                }
                self.preroll.push_back(pcm.to_vec());
            }
        }
        self.endpointer.handle_frame(voiced, 20);
        self.drain()
    }

    /// An interim transcript of revision `revision`; ignored when the caller has spoken since.
    pub fn transcript(&mut self, revision: u64, text: &str) -> Heard {
        if revision != self.revision || self.utterance.is_none() {
            return Heard::Nothing;
        }
        self.endpointer.handle_transcript(text);
        self.drain()
    }

    fn drain(&mut self) -> Heard {
        let mut heard = Heard::Nothing;
        while let Some(event) = self.endpointer.poll_event() {
            match event {
                TurnEvent::SpeechStart { resumed, .. } => {
                    self.revision += 1;
                    if self.utterance.is_none() {
                        let mut audio = Vec::with_capacity(PIPELINE_FRAME * 150);
                        let start_ms = self
                            .stream_ms
                            .saturating_sub(self.preroll.len() as u64 * 20);
                        for f in self.preroll.drain(..) {
                            audio.extend_from_slice(&f);
                        }
                        self.utterance = Some((audio, start_ms));
                    }
                    heard = Heard::SpeechStarted { resumed };
                }
                TurnEvent::Pause { .. } => {
                    if let Some((audio, _)) = &self.utterance {
                        heard = Heard::Pause {
                            pcm: audio.clone(),
                            revision: self.revision,
                        };
                    }
                }
                TurnEvent::EndOfTurn {
                    last_activity_at_ms,
                    ..
                } => {
                    if let Some(ended) = self.end_turn(last_activity_at_ms) {
                        return ended;
                    }
                }
                _ => {}
            }
        }
        // A caller who never pauses still gets an answer.
        let too_long = self
            .utterance
            .as_ref()
            .is_some_and(|(a, _)| a.len() as u64 >= u64::from(self.config.max_utterance_ms) * 16);
        if too_long {
            self.endpointer.reset();
            if let Some(ended) = self.end_turn(self.stream_ms) {
                return ended;
            }
        }
        heard
    }

    fn end_turn(&mut self, last_activity_ms: u64) -> Option<Heard> {
        // Frames were pushed (a turn needs them), so some arrival is known.
        let (_, last_voiced) = *self
            .arrivals
            .iter()
            .rev()
            .find(|(ms, _)| *ms <= last_activity_ms)
            .or(self.arrivals.front())?;
        let (mut pcm, start_ms) = self.utterance.take()?;
        let keep_ms = last_activity_ms.saturating_sub(start_ms) + KEEP_TRAILING_MS;
        pcm.truncate((keep_ms * 16) as usize);
        Some(Heard::TurnEnded {
            pcm,
            last_voiced,
            revision: self.revision,
        })
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick an arbitrary start instant
mod tests {
    use std::time::{Duration, Instant};

    use audio::{Vad, VadError, VadKind};

    use super::*;

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

    fn listener(mode: TurnMode) -> Listener {
        let config = ListenConfig {
            endpoint: EndpointConfig::default(),
            max_utterance_ms: 30_000,
        };
        Listener::new(config, Box::new(Scripted), mode)
    }

    /// Feeds `(voiced, ms)` runs; `transcripts` answers each Pause with text, after `delay`
    /// frames, as the actor's interim transcription would.
    fn feed(
        l: &mut Listener,
        pattern: &[(bool, u32)],
        transcript: impl Fn(&[i16]) -> String,
        t0: Instant,
    ) -> Vec<(u64, Heard)> {
        let mut out = Vec::new();
        let mut ms = 0;
        let mut pending: Option<(u64, String, u32)> = None;
        for &(voiced, dur) in pattern {
            for _ in 0..dur / 20 {
                ms += 20;
                let frame = vec![if voiced { 1000 } else { 0 }; PIPELINE_FRAME];
                let mut heard = l.push(&frame, t0 + Duration::from_millis(ms), false);
                if let Some((rev, text, left)) = pending.take() {
                    if left == 0 {
                        let h = l.transcript(rev, &text);
                        if h != Heard::Nothing {
                            heard = h;
                        }
                    } else {
                        pending = Some((rev, text, left - 1));
                    }
                }
                if let Heard::Pause { pcm, revision } = &heard {
                    // An interim transcription takes ~100 ms (5 frames).
                    pending = Some((*revision, transcript(pcm), 5));
                }
                if heard != Heard::Nothing {
                    out.push((ms, heard));
                }
            }
        }
        out
    }

    fn ended(events: &[(u64, Heard)]) -> Vec<(u64, u64, usize)> {
        events
            .iter()
            .filter_map(|(at, h)| match h {
                Heard::TurnEnded { pcm, revision, .. } => Some((*at, *revision, pcm.len())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_complete_answer_ends_quickly_and_keeps_its_audio() {
        let mut l = listener(TurnMode::FreeSpeech);
        let t0 = Instant::now();
        let events = feed(
            &mut l,
            &[(false, 400), (true, 1600), (false, 2000)],
            |_| "I'd like my balance.".into(),
            t0,
        );
        let turns = ended(&events);
        assert_eq!(turns.len(), 1, "{events:?}");
        let (at, revision, samples) = turns[0];
        // Speech ends at 2000 ms; the pause is seen 200 ms later, the text 100 ms after that,
        // and a complete sentence needs no more wait.
        assert!((2200..=2400).contains(&at), "ended at {at}");
        assert_eq!(revision, 1);
        // 300 ms pre-roll (200 ms silence + the 100 ms that made it speech), the other 1.5 s
        // of speech, 200 ms of trailing silence.
        assert_eq!(samples, (300 + 1500 + 200) * 16);
        let Heard::TurnEnded { last_voiced, .. } = &events
            .iter()
            .find(|(_, h)| matches!(h, Heard::TurnEnded { .. }))
            .unwrap()
            .1
        else {
            unreachable!()
        };
        assert_eq!(*last_voiced, t0 + Duration::from_millis(2000));
    }

    #[test]
    fn a_hesitation_after_about_is_one_turn() {
        let mut l = listener(TurnMode::FreeSpeech);
        // "I'm calling about" … 900 ms … "my last invoice."
        let events = feed(
            &mut l,
            &[(true, 1000), (false, 900), (true, 1200), (false, 2500)],
            |pcm| {
                if pcm.len() < 40_000 {
                    "I'm calling about".into()
                } else {
                    "I'm calling about my last invoice.".into()
                }
            },
            Instant::now(),
        );
        let turns = ended(&events);
        assert_eq!(turns.len(), 1, "{events:?}");
        assert_eq!(
            turns[0].1, 2,
            "the resumed speech is a second revision of the same turn"
        );
    }

    #[test]
    fn without_transcripts_a_long_pause_still_splits() {
        let mut l = listener(TurnMode::FreeSpeech);
        let events = feed(
            &mut l,
            &[(true, 2000), (false, 2500), (true, 2000), (false, 2500)],
            |_| String::new(),
            Instant::now(),
        );
        assert_eq!(ended(&events).len(), 2, "{events:?}");
    }

    #[test]
    fn clicks_are_not_speech_and_a_closed_listener_hears_nothing() {
        let mut l = listener(TurnMode::YesNo);
        let events = feed(
            &mut l,
            &[(true, 40), (false, 1000)],
            |_| String::new(),
            Instant::now(),
        );
        assert!(events.is_empty(), "{events:?}");
        l.set_open(false);
        let events = feed(
            &mut l,
            &[(true, 600), (false, 1500)],
            |_| "Yes.".into(),
            Instant::now(),
        );
        assert!(events.is_empty(), "{events:?}");
        l.set_open(true);
        let events = feed(
            &mut l,
            &[(true, 600), (false, 1500)],
            |_| "Yes.".into(),
            Instant::now(),
        );
        assert_eq!(ended(&events).len(), 1, "{events:?}");
    }

    #[test]
    fn echo_frames_count_as_silence() {
        let mut l = listener(TurnMode::FreeSpeech);
        let t0 = Instant::now();
        for i in 0..100 {
            let heard = l.push(
                &[1000; PIPELINE_FRAME],
                t0 + Duration::from_millis(i * 20),
                true,
            );
            assert_eq!(heard, Heard::Nothing);
        }
        assert!(!l.in_turn());
    }
}
