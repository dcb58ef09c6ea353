//! [`EarshotVad`]: earshot's neural VAD behind the [`Vad`] trait.

use super::{Vad, VadError, VadKind, check_frame, check_rate};
use crate::{Framer, Resampler};

/// earshot's fixed analysis hop: 256 samples = 16 ms at 16 kHz.
const EARSHOT_HOP: usize = 256;
const EARSHOT_RATE: u32 = 16_000;

/// earshot (pure Rust, small neural network) for 8 or 16 kHz frames.
///
/// earshot only understands 16 kHz in 16 ms hops, so 8 kHz input is upsampled (10 ms chunks,
/// 5 ms delay) and the stream is re-cut into hops. A pipeline frame's score is the highest score
/// of the hops completed during it; a frame that completes no hop (possible with 10 ms frames)
/// repeats the previous score.
pub struct EarshotVad {
    rate: u32,
    threshold: f32,
    detector: Box<earshot::Detector>,
    upsampler: Option<Resampler>,
    upsampled: Vec<i16>,
    hops: Framer<i16>,
    last_score: f32,
}

impl EarshotVad {
    /// Default decision threshold (earshot's recommended 0.5).
    pub const DEFAULT_THRESHOLD: f32 = 0.5;

    /// A detector for frames at `sample_rate` (8000 or 16000) with the default threshold.
    pub fn new(sample_rate: u32) -> Result<Self, VadError> {
        Self::with_threshold(sample_rate, Self::DEFAULT_THRESHOLD)
    }

    /// A detector with a custom speech threshold in `0..=1` (higher = fewer false starts,
    /// later onsets).
    pub fn with_threshold(sample_rate: u32, threshold: f32) -> Result<Self, VadError> {
        check_rate(sample_rate)?;
        if !(0.0..=1.0).contains(&threshold) {
            return Err(VadError::BadThreshold(threshold));
        }
        let upsampler = if sample_rate == EARSHOT_RATE {
            None
        } else {
            // 10 ms chunks so every allowed frame length (10/20/30 ms) is a whole number of
            // chunks: nothing waits in the resampler between frames.
            Some(Resampler::with_chunk_ms(sample_rate, EARSHOT_RATE, 10)?)
        };
        Ok(Self {
            rate: sample_rate,
            threshold,
            detector: earshot::Detector::default_boxed(),
            upsampler,
            upsampled: Vec::with_capacity(EARSHOT_RATE as usize * 30 / 1000 + EARSHOT_HOP),
            hops: Framer::new(EARSHOT_HOP),
            last_score: 0.0,
        })
    }
}

impl Vad for EarshotVad {
    fn kind(&self) -> VadKind {
        VadKind::Earshot
    }

    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn speech_probability(&mut self, frame: &[i16]) -> Result<f32, VadError> {
        check_frame(frame.len(), self.rate)?;
        match self.upsampler.as_mut() {
            Some(up) => {
                self.upsampled.clear();
                up.process(frame, &mut self.upsampled)?;
                self.hops.push(&self.upsampled);
            }
            None => self.hops.push(frame),
        }
        let mut best: Option<f32> = None;
        while let Some(hop) = self.hops.next_frame() {
            let score = self.detector.predict_i16(hop);
            best = Some(best.map_or(score, |b| b.max(score)));
        }
        if let Some(score) = best {
            self.last_score = score.clamp(0.0, 1.0);
        }
        Ok(self.last_score)
    }

    fn threshold(&self) -> f32 {
        self.threshold
    }

    fn reset(&mut self) {
        self.detector.reset();
        if let Some(up) = self.upsampler.as_mut() {
            up.reset();
        }
        self.hops.clear();
        self.last_score = 0.0;
    }
}

impl std::fmt::Debug for EarshotVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EarshotVad")
            .field("rate", &self.rate)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}
