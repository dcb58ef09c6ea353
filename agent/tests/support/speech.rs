//! Listening to recordings in tests: levels, speech onsets, and whisper transcripts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The whisper model the suite uses (`scripts/test-models.sh` prepares it).
pub fn whisper_model() -> PathBuf {
    let path = std::env::var_os("AGENT_TEST_WHISPER_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("AGENT_CACHE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/agent")
                });
            cache.join("models/ggml-tiny.en.bin")
        });
    assert!(
        path.is_file(),
        "whisper model {} missing: run scripts/test-models.sh (./test does)",
        path.display()
    );
    path
}

/// A recording as 8 kHz (or whatever rate it has) samples.
pub struct Recording {
    pub rate: u32,
    pub samples: Vec<i16>,
}

impl Recording {
    pub fn read(path: &Path) -> Recording {
        let wav = audio::wav::read_wav(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Recording {
            rate: wav.sample_rate,
            samples: wav.samples,
        }
    }

    /// Length in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(self.rate.max(1))
    }

    fn frame_len(&self) -> usize {
        (self.rate / 50) as usize
    }

    /// Level of each 20 ms frame, dBFS.
    pub fn frame_levels(&self) -> Vec<f32> {
        self.samples
            .chunks(self.frame_len())
            .map(audio::frame::dbfs)
            .collect()
    }

    /// Seconds of audio above `threshold_db`.
    pub fn voiced_seconds(&self, threshold_db: f32) -> f32 {
        self.frame_levels()
            .iter()
            .filter(|&&l| l > threshold_db)
            .count() as f32
            * 0.02
    }

    /// Start (ms) of the first run of `min_ms` frames above `threshold_db` at or after `from_ms`.
    pub fn onset_after(&self, from_ms: u64, threshold_db: f32, min_ms: u64) -> Option<u64> {
        let levels = self.frame_levels();
        let need = (min_ms / 20).max(1) as usize;
        let mut run = 0;
        for (i, &l) in levels.iter().enumerate().skip((from_ms / 20) as usize) {
            if l > threshold_db {
                run += 1;
                if run == need {
                    return Some((i + 1 - need) as u64 * 20);
                }
            } else {
                run = 0;
            }
        }
        None
    }

    /// Start (ms) of the first run of at least `min_ms` at or below `threshold_db` at or after
    /// `from_ms` (the end of the audio counts as silence).
    pub fn silence_after(&self, from_ms: u64, threshold_db: f32, min_ms: u64) -> u64 {
        let levels = self.frame_levels();
        let need = (min_ms / 20).max(1) as usize;
        let mut run = 0;
        for (i, &l) in levels.iter().enumerate().skip((from_ms / 20) as usize) {
            if l <= threshold_db {
                run += 1;
                if run == need {
                    return (i + 1 - need) as u64 * 20;
                }
            } else {
                run = 0;
            }
        }
        levels.len().saturating_sub(run) as u64 * 20
    }

    /// End (ms) of the last frame above `threshold_db` before `until_ms`.
    pub fn offset_before(&self, until_ms: u64, threshold_db: f32) -> Option<u64> {
        let levels = self.frame_levels();
        let end = ((until_ms / 20) as usize).min(levels.len());
        levels[..end]
            .iter()
            .rposition(|&l| l > threshold_db)
            .map(|i| (i as u64 + 1) * 20)
    }

    /// The audio from `from_ms` to `to_ms`, resampled to 16 kHz f32 for whisper.
    pub fn to_16k(&self, from_ms: u64, to_ms: u64) -> Vec<f32> {
        let per_ms = (self.rate / 1000) as usize;
        let a = (from_ms as usize * per_ms).min(self.samples.len());
        let b = (to_ms as usize * per_ms).min(self.samples.len());
        let mut out: Vec<f32> = Vec::new();
        let mut rs = audio::Resampler::new(self.rate, 16_000).unwrap();
        rs.process(&self.samples[a..b], &mut out).unwrap();
        rs.flush(&mut out).unwrap();
        out
    }
}

/// Transcribes 16 kHz audio with the suite's whisper model.
pub fn transcribe(pcm_16k: &[f32]) -> String {
    use speech::SpeechToText;
    let stt = speech::WhisperStt::load(&whisper_model(), 1).expect("load whisper");
    // Leading silence helps whisper start cleanly on a cut.
    let mut padded = vec![0.0f32; 4_800];
    padded.extend_from_slice(pcm_16k);
    stt.transcribe(&padded, &speech::TranscribeOptions::default())
        .expect("transcribe")
        .text
}

/// Lower-case words of at least 3 letters.
pub fn words(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| w.len() >= 3)
        .collect()
}
