//! Scoring VAD + SpeechDetector output against the labelled set in `tests/data/vad/`.
//!
//! Shared (via `#[path]`) by `tests/vad_accuracy.rs`, which asserts thresholds, and
//! `examples/vad_bench.rs`, which prints the numbers.

// Each includer uses a different subset.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use audio::vad::{
    SileroPaths, SpeechDetector, SpeechDetectorConfig, SpeechEvent, SpeechSegment, Vad, VadKind,
    VadOptions,
};
use audio::wav::{WavAudio, read_wav};

/// The Silero files for tests: `AGENT_TEST_SILERO_MODEL` and `ORT_DYLIB_PATH` when set, else the
/// cache `scripts/vad-models.sh` fills (`${AGENT_CACHE_DIR:-$HOME/.cache/agent}/vad/`).
///
/// Missing files fail the test with the command that fetches them, unless
/// `AGENT_SKIP_MODEL_TESTS=1`, which returns `None` (callers skip Silero and say so).
pub fn silero_paths() -> Option<SileroPaths> {
    let cache = std::env::var_os("AGENT_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/agent")))
        .unwrap_or_else(|| PathBuf::from(".cache/agent"));
    let default = SileroPaths::in_cache(cache);
    let env_path = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let paths = SileroPaths::new(
        env_path("AGENT_TEST_SILERO_MODEL").unwrap_or(default.model),
        env_path("ORT_DYLIB_PATH").unwrap_or(default.onnxruntime),
    );
    if paths.model.is_file() && paths.onnxruntime.is_file() {
        return Some(paths);
    }
    if std::env::var("AGENT_SKIP_MODEL_TESTS").as_deref() == Ok("1") {
        eprintln!("AGENT_SKIP_MODEL_TESTS=1: skipping Silero ({paths:?} missing)");
        return None;
    }
    panic!(
        "Silero VAD files missing: model {} / runtime {}. Run scripts/vad-models.sh (or set \
         AGENT_TEST_SILERO_MODEL and ORT_DYLIB_PATH; AGENT_SKIP_MODEL_TESTS=1 skips these tests)",
        paths.model.display(),
        paths.onnxruntime.display()
    );
}

/// The VADs to measure: all three, or the two built-in ones when Silero is skipped.
pub fn kinds() -> Vec<VadKind> {
    if silero_paths().is_some() {
        VadKind::ALL.to_vec()
    } else {
        VadKind::BUILTIN.to_vec()
    }
}

/// Default options plus the Silero files when available.
pub fn vad_options() -> VadOptions {
    match silero_paths() {
        Some(p) => VadOptions::new().with_silero(p),
        None => VadOptions::new(),
    }
}

/// A detector of `kind` with default tuning (Silero from [`silero_paths`]).
pub fn build(kind: VadKind, rate: u32) -> Box<dyn Vad> {
    kind.build_with(rate, &vad_options())
        .unwrap_or_else(|e| panic!("build {kind} VAD at {rate} Hz: {e}"))
}

/// One labelled utterance.
#[derive(Debug, Clone)]
pub struct Label {
    pub start_ms: u64,
    pub end_ms: u64,
    pub source: String,
}

impl Label {
    /// The hesitation clips contain a 0.9 s pause that the labels count as inside.
    pub fn is_hesitation(&self) -> bool {
        self.source.starts_with("hesitation")
    }
}

/// A labelled set: the audio and its utterances.
pub struct LabelledSet {
    pub name: String,
    pub audio: WavAudio,
    pub labels: Vec<Label>,
}

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Loads `vad/vad_set_{8k,16k}.{wav,json}`.
pub fn load_set(rate_name: &str) -> LabelledSet {
    let dir = data_dir().join("vad");
    let audio = read_wav(dir.join(format!("vad_set_{rate_name}.wav"))).expect("read VAD set wav");
    let json = std::fs::read_to_string(dir.join(format!("vad_set_{rate_name}.json")))
        .expect("read labels");
    let v: serde_json::Value = serde_json::from_str(&json).expect("parse labels");
    assert_eq!(v["rate"].as_u64(), Some(u64::from(audio.sample_rate)));
    let labels = v["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| Label {
            start_ms: s["start_ms"].as_u64().expect("start_ms"),
            end_ms: s["end_ms"].as_u64().expect("end_ms"),
            source: s["source"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    LabelledSet {
        name: rate_name.to_owned(),
        audio,
        labels,
    }
}

/// `samples` plus seeded white Gaussian noise at `dbfs` RMS (relative to full scale), clipped:
/// a harder version of the set for stress numbers (the labels stay valid).
pub fn with_noise(samples: &[i16], dbfs: f64, seed: u64) -> Vec<i16> {
    let sigma = 32768.0 * 10f64.powf(dbfs / 20.0);
    let mut state = seed | 1;
    let mut uniform = move || {
        // xorshift64*: deterministic and dependency-free.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    samples
        .iter()
        .map(|&s| {
            // Box-Muller.
            let (u1, u2) = (uniform().max(1e-12), uniform());
            let n = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (f64::from(s) + sigma * n).clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// Output of one VAD run over a set.
pub struct Run {
    pub segments: Vec<SpeechSegment>,
    /// Per-frame decisions.
    pub voiced: Vec<bool>,
    pub frame_ms: u32,
    /// Time spent inside the VAD (not the detector), summed over frames.
    pub vad_time: Duration,
}

/// Runs `vad` + a detector with `config` over `samples` in `frame_ms` frames.
pub fn run(vad: &mut dyn Vad, config: SpeechDetectorConfig, samples: &[i16], frame_ms: u32) -> Run {
    let (voiced, vad_time) = decide(vad, samples, frame_ms);
    let segments = detect(&voiced, frame_ms, config);
    Run {
        segments,
        voiced,
        frame_ms,
        vad_time,
    }
}

/// Per-frame VAD decisions over `samples`, and the time spent in the VAD.
pub fn decide(vad: &mut dyn Vad, samples: &[i16], frame_ms: u32) -> (Vec<bool>, Duration) {
    let frame_len = vad.sample_rate() as usize * frame_ms as usize / 1000;
    let mut voiced = Vec::with_capacity(samples.len() / frame_len);
    let mut vad_time = Duration::ZERO;
    for frame in samples.chunks_exact(frame_len) {
        let t = Instant::now();
        let v = vad.is_speech(frame).expect("valid frame");
        vad_time += t.elapsed();
        voiced.push(v);
    }
    (voiced, vad_time)
}

/// Replays frame decisions through a [`SpeechDetector`] and collects its segments.
pub fn detect(voiced: &[bool], frame_ms: u32, config: SpeechDetectorConfig) -> Vec<SpeechSegment> {
    let mut detector = SpeechDetector::new(config);
    let mut segments = Vec::new();
    let mut start = None;
    let events = voiced
        .iter()
        .map(|&v| detector.push(v, frame_ms))
        .collect::<Vec<_>>();
    for e in events.into_iter().chain([detector.finish()]) {
        match e {
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
            _ => {}
        }
    }
    segments
}

/// Accuracy of one run against the labels.
#[derive(Debug, Clone, Default)]
pub struct Score {
    pub labelled: usize,
    /// Labelled utterances overlapped by at least one detected segment.
    pub detected: usize,
    /// Detected utterances that came out as more than one segment (sources listed).
    pub split: Vec<String>,
    /// Labelled utterances no segment overlaps.
    pub missed: Vec<String>,
    /// Segments that overlap no labelled utterance (speech declared in a gap).
    pub false_starts: usize,
    /// Segments that span more than one labelled utterance.
    pub merged: usize,
    /// Mean of (detected start − labelled start), signed and absolute, over detected utterances.
    pub onset_mean_ms: f64,
    pub onset_abs_mean_ms: f64,
    /// Mean of (detected end − labelled end), signed and absolute.
    pub offset_mean_ms: f64,
    pub offset_abs_mean_ms: f64,
    /// Per-frame agreement with the labels, hesitation utterances excluded (their labelled
    /// inside contains a pause that is silence, not speech).
    pub frame_accuracy: f64,
}

pub fn score(labels: &[Label], run: &Run) -> Score {
    let overlaps = |s: &SpeechSegment, l: &Label| s.start_ms < l.end_ms && s.end_ms > l.start_ms;
    let mut sc = Score {
        labelled: labels.len(),
        ..Score::default()
    };
    let (mut on, mut on_abs, mut off, mut off_abs) = (0.0, 0.0, 0.0, 0.0);
    for l in labels {
        let hits: Vec<&SpeechSegment> = run.segments.iter().filter(|s| overlaps(s, l)).collect();
        let (Some(first), Some(last)) = (hits.first(), hits.last()) else {
            sc.missed.push(l.source.clone());
            continue;
        };
        sc.detected += 1;
        if hits.len() > 1 {
            sc.split.push(l.source.clone());
        }
        let d_on = first.start_ms as f64 - l.start_ms as f64;
        let d_off = last.end_ms as f64 - l.end_ms as f64;
        on += d_on;
        on_abs += d_on.abs();
        off += d_off;
        off_abs += d_off.abs();
    }
    let n = sc.detected.max(1) as f64;
    (sc.onset_mean_ms, sc.onset_abs_mean_ms) = (on / n, on_abs / n);
    (sc.offset_mean_ms, sc.offset_abs_mean_ms) = (off / n, off_abs / n);
    for s in &run.segments {
        match labels.iter().filter(|l| overlaps(s, l)).count() {
            0 => sc.false_starts += 1,
            1 => {}
            _ => sc.merged += 1,
        }
    }
    let (mut right, mut total) = (0usize, 0usize);
    for (i, &v) in run.voiced.iter().enumerate() {
        let mid = i as u64 * u64::from(run.frame_ms) + u64::from(run.frame_ms) / 2;
        let inside = labels.iter().find(|l| mid >= l.start_ms && mid < l.end_ms);
        if inside.is_some_and(Label::is_hesitation) {
            continue;
        }
        total += 1;
        right += usize::from(v == inside.is_some());
    }
    sc.frame_accuracy = right as f64 / total.max(1) as f64;
    sc
}

impl Score {
    /// Split utterances other than the hesitation clips (whose pause is 0.9 s by design).
    pub fn non_hesitation_splits(&self) -> usize {
        self.split
            .iter()
            .filter(|s| !s.starts_with("hesitation"))
            .count()
    }

    pub fn summary(&self) -> String {
        format!(
            "detected {}/{} (split: {}; missed: {}), false starts {}, merged {}, \
             onset {:+.0} ms (|{:.0}|), offset {:+.0} ms (|{:.0}|), frame acc {:.1} %",
            self.detected,
            self.labelled,
            counted(&self.split),
            counted(&self.missed),
            self.false_starts,
            self.merged,
            self.onset_mean_ms,
            self.onset_abs_mean_ms,
            self.offset_mean_ms,
            self.offset_abs_mean_ms,
            self.frame_accuracy * 100.0,
        )
    }
}

/// "none", or "a×2, b" for a list of clip names.
fn counted(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    let mut unique: Vec<&String> = names.iter().collect();
    unique.sort();
    unique.dedup();
    let parts: Vec<String> = unique
        .into_iter()
        .map(|n| {
            let k = names.iter().filter(|m| *m == n).count();
            let short = n.trim_end_matches(".wav");
            if k > 1 {
                format!("{short}×{k}")
            } else {
                short.to_owned()
            }
        })
        .collect();
    format!("{} = {}", names.len(), parts.join(", "))
}
