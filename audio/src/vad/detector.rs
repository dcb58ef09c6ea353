//! [`SpeechDetector`]: hysteresis over per-frame VAD decisions, in frame time.

use super::{Vad, VadError};

/// Hysteresis settings for [`SpeechDetector`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpeechDetectorConfig {
    /// Consecutive voiced audio needed before speech is declared started. Filters clicks and
    /// short noise bursts; every millisecond here is added to barge-in reaction time.
    pub min_speech_ms: u32,
    /// Consecutive unvoiced audio after which speech is declared ended. Bridges the short
    /// gaps between words; the agent's end-of-turn wait (`turn.end_silence_ms`) comes on top.
    pub hangover_ms: u32,
}

impl SpeechDetectorConfig {
    /// A config with the given thresholds.
    pub const fn new(min_speech_ms: u32, hangover_ms: u32) -> Self {
        Self {
            min_speech_ms,
            hangover_ms,
        }
    }
}

impl Default for SpeechDetectorConfig {
    /// 100 ms to start, 300 ms to end, from a sweep on the labelled VAD set
    /// (`examples/vad_bench.rs --sweep`): below 100 ms the WebRTC VAD makes false starts on
    /// noise; below 300 ms most multi-word utterances split at their inner pauses (the labelled
    /// 0.9 s hesitation pause still splits, by design: bridging it is the endpointer's job).
    fn default() -> Self {
        Self::new(100, 300)
    }
}

/// A speech boundary. Times are milliseconds of stream time since the detector started
/// (frames pushed), not wall-clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpeechEvent {
    /// Speech began.
    SpeechStart {
        /// When the decision was made: the end of the frame that completed `min_speech_ms`.
        at_ms: u64,
        /// Start of the first voiced frame of the run (the estimated onset).
        first_voiced_at_ms: u64,
    },
    /// Speech ended.
    SpeechEnd {
        /// When the decision was made: `hangover_ms` after the last voiced frame (or the end of
        /// stream, from [`SpeechDetector::finish`]).
        at_ms: u64,
        /// End of the last voiced frame (the estimated offset; end-of-turn latency is measured
        /// from here).
        last_voiced_at_ms: u64,
    },
}

/// Turns a stream of voiced/unvoiced frame decisions into [`SpeechEvent`]s.
///
/// ```
/// # use audio::{SpeechDetector, SpeechDetectorConfig, SpeechEvent};
/// let mut d = SpeechDetector::new(SpeechDetectorConfig::new(40, 60));
/// assert_eq!(d.push(true, 20), None);
/// assert_eq!(
///     d.push(true, 20),
///     Some(SpeechEvent::SpeechStart { at_ms: 40, first_voiced_at_ms: 0 })
/// );
/// d.push(false, 20);
/// d.push(false, 20);
/// assert_eq!(
///     d.push(false, 20),
///     Some(SpeechEvent::SpeechEnd { at_ms: 100, last_voiced_at_ms: 40 })
/// );
/// ```
#[derive(Debug, Clone)]
pub struct SpeechDetector {
    config: SpeechDetectorConfig,
    now_ms: u64,
    state: State,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Silence,
    /// Voiced frames seen, not yet `min_speech_ms` of them.
    Candidate {
        first_voiced_at_ms: u64,
    },
    Speech {
        last_voiced_at_ms: u64,
    },
}

impl SpeechDetector {
    /// A detector at stream time 0, in silence.
    pub fn new(config: SpeechDetectorConfig) -> Self {
        Self {
            config,
            now_ms: 0,
            state: State::Silence,
        }
    }

    /// The settings.
    pub fn config(&self) -> SpeechDetectorConfig {
        self.config
    }

    /// Stream time: the total duration of frames pushed so far.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Whether speech has started and not yet ended.
    pub fn is_speaking(&self) -> bool {
        matches!(self.state, State::Speech { .. })
    }

    /// Whether voiced frames have begun a run that is not yet `min_speech_ms` long (speech may be
    /// about to start).
    pub fn is_candidate(&self) -> bool {
        matches!(self.state, State::Candidate { .. })
    }

    /// Advances stream time by one frame of `frame_ms` with the VAD's decision for it.
    pub fn push(&mut self, voiced: bool, frame_ms: u32) -> Option<SpeechEvent> {
        let frame_start = self.now_ms;
        self.now_ms += u64::from(frame_ms);
        let now = self.now_ms;
        match (self.state, voiced) {
            (State::Silence, false) => None,
            (State::Silence, true) => {
                self.state = State::Candidate {
                    first_voiced_at_ms: frame_start,
                };
                self.try_start(frame_start)
            }
            (State::Candidate { first_voiced_at_ms }, true) => self.try_start(first_voiced_at_ms),
            // Only an unbroken run counts: an unvoiced frame means it was a blip.
            (State::Candidate { .. }, false) => {
                self.state = State::Silence;
                None
            }
            (State::Speech { .. }, true) => {
                self.state = State::Speech {
                    last_voiced_at_ms: now,
                };
                None
            }
            (State::Speech { last_voiced_at_ms }, false) => {
                if now - last_voiced_at_ms >= u64::from(self.config.hangover_ms) {
                    self.state = State::Silence;
                    Some(SpeechEvent::SpeechEnd {
                        at_ms: now,
                        last_voiced_at_ms,
                    })
                } else {
                    None
                }
            }
        }
    }

    /// End of stream: closes an open speech segment (`at_ms` = now).
    pub fn finish(&mut self) -> Option<SpeechEvent> {
        let state = std::mem::replace(&mut self.state, State::Silence);
        match state {
            State::Speech { last_voiced_at_ms } => Some(SpeechEvent::SpeechEnd {
                at_ms: self.now_ms,
                last_voiced_at_ms,
            }),
            State::Silence | State::Candidate { .. } => None,
        }
    }

    /// Back to silence at stream time 0.
    pub fn reset(&mut self) {
        self.now_ms = 0;
        self.state = State::Silence;
    }

    fn try_start(&mut self, first_voiced_at_ms: u64) -> Option<SpeechEvent> {
        if self.now_ms - first_voiced_at_ms >= u64::from(self.config.min_speech_ms) {
            self.state = State::Speech {
                last_voiced_at_ms: self.now_ms,
            };
            Some(SpeechEvent::SpeechStart {
                at_ms: self.now_ms,
                first_voiced_at_ms,
            })
        } else {
            self.state = State::Candidate { first_voiced_at_ms };
            None
        }
    }
}

/// A detected stretch of speech: first voiced frame start to last voiced frame end, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeechSegment {
    /// Start of the first voiced frame.
    pub start_ms: u64,
    /// End of the last voiced frame.
    pub end_ms: u64,
}

/// Offline: runs `vad` and a [`SpeechDetector`] over a whole clip in `frame_ms` frames and
/// returns the speech segments (a trailing partial frame is ignored). For tests, fixtures and
/// tooling; the live pipeline drives `Vad` and `SpeechDetector` frame by frame.
pub fn segment_speech(
    vad: &mut dyn Vad,
    config: SpeechDetectorConfig,
    samples: &[i16],
    frame_ms: u32,
) -> Result<Vec<SpeechSegment>, VadError> {
    let frame_len = crate::frame::samples_per_frame(vad.sample_rate(), frame_ms);
    if frame_len == 0 {
        return Err(VadError::BadFrameLength {
            len: 0,
            rate: vad.sample_rate(),
        });
    }
    let mut detector = SpeechDetector::new(config);
    let mut segments = Vec::new();
    let mut start = None;
    let mut on_event = |event: Option<SpeechEvent>| match event {
        Some(SpeechEvent::SpeechStart {
            first_voiced_at_ms, ..
        }) => start = Some(first_voiced_at_ms),
        Some(SpeechEvent::SpeechEnd {
            last_voiced_at_ms, ..
        }) => {
            if let Some(start_ms) = start.take() {
                segments.push(SpeechSegment {
                    start_ms,
                    end_ms: last_voiced_at_ms,
                });
            }
        }
        None => {}
    };
    for frame in samples.chunks_exact(frame_len) {
        let voiced = vad.is_speech(frame)?;
        on_event(detector.push(voiced, frame_ms));
    }
    on_event(detector.finish());
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: SpeechDetectorConfig, pattern: &str) -> Vec<SpeechEvent> {
        let mut d = SpeechDetector::new(config);
        let mut events: Vec<_> = pattern
            .chars()
            .filter_map(|c| d.push(c == '#', 10))
            .collect();
        events.extend(d.finish());
        events
    }

    fn start(at_ms: u64, first_voiced_at_ms: u64) -> SpeechEvent {
        SpeechEvent::SpeechStart {
            at_ms,
            first_voiced_at_ms,
        }
    }

    fn end(at_ms: u64, last_voiced_at_ms: u64) -> SpeechEvent {
        SpeechEvent::SpeechEnd {
            at_ms,
            last_voiced_at_ms,
        }
    }

    #[test]
    fn short_blips_do_not_start_speech() {
        let c = SpeechDetectorConfig::new(30, 50);
        assert_eq!(run(c, "..##..##.#.##...."), []);
    }

    #[test]
    fn start_after_min_speech_and_end_after_hangover() {
        let c = SpeechDetectorConfig::new(30, 50);
        // 10 ms per char: voiced 20..80, then silence.
        assert_eq!(run(c, "..######........"), [start(50, 20), end(130, 80)]);
    }

    #[test]
    fn gaps_shorter_than_hangover_are_bridged() {
        let c = SpeechDetectorConfig::new(30, 50);
        assert_eq!(run(c, "###....###........"), [start(30, 0), end(150, 100)]);
        // A gap of exactly the hangover ends the segment.
        assert_eq!(
            run(c, "###.....###"),
            [start(30, 0), end(80, 30), start(110, 80), end(110, 110)]
        );
    }

    #[test]
    fn zero_thresholds_react_on_the_first_frame() {
        let c = SpeechDetectorConfig::new(0, 0);
        assert_eq!(run(c, ".#."), [start(20, 10), end(30, 20)]);
    }

    #[test]
    fn finish_discards_an_unconfirmed_candidate_and_reset_restarts_time() {
        let c = SpeechDetectorConfig::new(100, 50);
        assert_eq!(run(c, "..####"), []);
        let mut d = SpeechDetector::new(c);
        d.push(true, 20);
        assert_eq!(d.now_ms(), 20);
        assert!(!d.is_speaking());
        d.reset();
        assert_eq!(d.now_ms(), 0);
        assert_eq!(d.config(), c);
    }

    #[test]
    fn frame_durations_may_vary() {
        let mut d = SpeechDetector::new(SpeechDetectorConfig::new(40, 60));
        assert_eq!(d.push(true, 30), None);
        assert_eq!(d.push(true, 10), Some(start(40, 0)));
        assert!(d.is_speaking());
        assert_eq!(d.push(false, 30), None);
        assert_eq!(d.push(false, 30), Some(end(100, 40)));
    }
}
