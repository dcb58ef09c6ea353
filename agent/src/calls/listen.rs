//! Listening: per-frame voice activity, utterance capture with pre-roll, and the end-of-turn
//! decision (VAD speech end plus `turn.end_silence_ms` of silence). Pure logic in stream time
//! (frames pushed), so it is tested without audio I/O or clocks.

use std::collections::VecDeque;
use std::time::Instant;

use audio::{SpeechDetector, SpeechDetectorConfig, SpeechEvent, Vad};

use super::leg::PIPELINE_FRAME;

/// Audio kept from before speech was detected, so the first syllable is not clipped.
const PREROLL_FRAMES: usize = 15; // 300 ms

/// Settings for turn detection.
#[derive(Debug, Clone, Copy)]
pub struct ListenConfig {
    /// Voiced audio before it counts as speech.
    pub min_speech_ms: u32,
    /// Silence after the last voiced frame that ends the turn.
    pub end_silence_ms: u32,
    /// Longest utterance kept; the turn ends when it is reached.
    pub max_utterance_ms: u32,
}

/// What one frame changed.
#[derive(Debug, PartialEq)]
pub enum Heard {
    Nothing,
    /// Speech started (after `min_speech_ms` of voice): the caller is talking.
    SpeechStarted,
    /// The caller's turn is over: the utterance audio (16 kHz) and when its last voiced frame
    /// arrived.
    TurnEnded {
        pcm: Vec<i16>,
        last_voiced: Instant,
        voiced_ms: u32,
    },
}

/// Voice activity → utterances → end of turn.
pub struct Listener {
    config: ListenConfig,
    vad: Box<dyn Vad>,
    detector: SpeechDetector,
    preroll: VecDeque<Vec<i16>>,
    utterance: Option<Utterance>,
    /// Whether utterances may start (false while a non-interruptible prompt plays).
    open: bool,
    stream_ms: u64,
}

struct Utterance {
    pcm: Vec<i16>,
    last_voiced_ms: u64,
    last_voiced: Instant,
    voiced_ms: u32,
}

impl Listener {
    pub fn new(config: ListenConfig, vad: Box<dyn Vad>) -> Self {
        // The detector's own hangover only bridges gaps between words; the turn's end is
        // decided here from `end_silence_ms`, so keep the hangover short.
        let hangover = config.end_silence_ms.min(200);
        let detector =
            SpeechDetector::new(SpeechDetectorConfig::new(config.min_speech_ms, hangover));
        Self {
            config,
            vad,
            detector,
            preroll: VecDeque::with_capacity(PREROLL_FRAMES + 1),
            utterance: None,
            open: true,
            stream_ms: 0,
        }
    }

    /// Whether the caller is in the middle of an utterance we are capturing.
    pub fn in_utterance(&self) -> bool {
        self.utterance.is_some()
    }

    /// Voiced milliseconds of the current utterance.
    pub fn voiced_ms(&self) -> u32 {
        self.utterance.as_ref().map_or(0, |u| u.voiced_ms)
    }

    /// Allows or stops capturing utterances (barge-in off while a prompt plays). Closing drops
    /// the utterance in progress.
    pub fn set_open(&mut self, open: bool) {
        self.open = open;
        if !open {
            self.utterance = None;
        }
    }

    /// Feeds one 20 ms frame at 16 kHz.
    pub fn push(&mut self, pcm: &[i16], arrived: Instant) -> Heard {
        self.stream_ms += 20;
        let voiced = self.vad.is_speech(pcm).unwrap_or(false);
        let event = self.detector.push(voiced, 20);
        let mut heard = Heard::Nothing;
        if let Some(u) = self.utterance.as_mut() {
            u.pcm.extend_from_slice(pcm);
            if voiced {
                u.last_voiced_ms = self.stream_ms;
                u.last_voiced = arrived;
                u.voiced_ms += 20;
            }
        } else {
            if self.preroll.len() == PREROLL_FRAMES {
                self.preroll.pop_front();
            }
            self.preroll.push_back(pcm.to_vec());
        }
        let speaking = matches!(event, Some(SpeechEvent::SpeechStart { .. }))
            || (self.detector.is_speaking() && voiced);
        if self.open && self.utterance.is_none() && speaking {
            let mut audio = Vec::with_capacity(PIPELINE_FRAME * 100);
            let voiced_frames = self.config.min_speech_ms.div_ceil(20).max(1);
            for f in self.preroll.drain(..) {
                audio.extend_from_slice(&f);
            }
            self.utterance = Some(Utterance {
                pcm: audio,
                last_voiced_ms: self.stream_ms,
                last_voiced: arrived,
                voiced_ms: voiced_frames * 20,
            });
            heard = Heard::SpeechStarted;
        }
        if let Some(u) = &self.utterance {
            let silent_for = self.stream_ms - u.last_voiced_ms;
            let too_long = u.pcm.len() as u64 >= u64::from(self.config.max_utterance_ms) * 16;
            if silent_for >= u64::from(self.config.end_silence_ms) || too_long {
                let Some(u) = self.utterance.take() else {
                    return heard;
                };
                // Keep a little of the trailing silence (whisper likes a clean ending), not all.
                let keep = (u.pcm.len() as u64).saturating_sub(silent_for.saturating_sub(200) * 16)
                    as usize;
                let mut pcm = u.pcm;
                pcm.truncate(keep);
                return Heard::TurnEnded {
                    pcm,
                    last_voiced: u.last_voiced,
                    voiced_ms: u.voiced_ms,
                };
            }
        }
        heard
    }
}

#[cfg(test)]
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

    fn listener(end_silence_ms: u32) -> Listener {
        Listener::new(
            ListenConfig {
                min_speech_ms: 100,
                end_silence_ms,
                max_utterance_ms: 30_000,
            },
            Box::new(Scripted),
        )
    }

    fn feed(l: &mut Listener, pattern: &[(bool, u32)], t0: Instant) -> Vec<(u64, Heard)> {
        let mut out = Vec::new();
        let mut ms = 0;
        for &(voiced, dur) in pattern {
            for _ in 0..dur / 20 {
                ms += 20;
                let frame = vec![if voiced { 1000 } else { 0 }; PIPELINE_FRAME];
                let heard = l.push(&frame, t0 + Duration::from_millis(ms));
                if heard != Heard::Nothing {
                    out.push((ms, heard));
                }
            }
        }
        out
    }

    #[test]
    fn turn_ends_after_the_configured_silence() {
        let mut l = listener(500);
        let t0 = Instant::now();
        let events = feed(&mut l, &[(false, 400), (true, 1000), (false, 1000)], t0);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0].0, 500, "speech declared after min_speech_ms");
        let (
            at,
            Heard::TurnEnded {
                pcm,
                last_voiced,
                voiced_ms,
            },
        ) = &events[1]
        else {
            panic!()
        };
        assert_eq!(*at, 1400 + 500, "last voiced frame + 500 ms");
        assert_eq!(*last_voiced, t0 + Duration::from_millis(1400));
        assert_eq!(*voiced_ms, 1000);
        // 300 ms pre-roll (200 ms of silence and the 100 ms that made it speech), the other
        // 900 ms of speech, and 200 ms of the trailing silence.
        assert_eq!(pcm.len(), (300 + 900 + 200) * 16);
    }

    #[test]
    fn a_pause_shorter_than_the_silence_keeps_one_turn() {
        let mut l = listener(500);
        let events = feed(
            &mut l,
            &[(true, 600), (false, 400), (true, 600), (false, 600)],
            Instant::now(),
        );
        let ended: Vec<_> = events
            .iter()
            .filter(|(_, h)| matches!(h, Heard::TurnEnded { .. }))
            .collect();
        assert_eq!(ended.len(), 1, "{events:?}");
    }

    #[test]
    fn a_long_pause_splits_the_turn_and_clicks_are_not_speech() {
        let mut l = listener(500);
        let events = feed(
            &mut l,
            &[
                (true, 600),
                (false, 900),
                (true, 40),
                (false, 600),
                (true, 600),
                (false, 600),
            ],
            Instant::now(),
        );
        let ended = events
            .iter()
            .filter(|(_, h)| matches!(h, Heard::TurnEnded { .. }))
            .count();
        assert_eq!(ended, 2, "{events:?}");
    }

    #[test]
    fn closed_listener_ignores_speech() {
        let mut l = listener(500);
        l.set_open(false);
        let events = feed(&mut l, &[(true, 600), (false, 600)], Instant::now());
        assert!(events.is_empty(), "{events:?}");
        l.set_open(true);
        let events = feed(&mut l, &[(true, 600), (false, 600)], Instant::now());
        assert_eq!(events.len(), 2);
    }
}
