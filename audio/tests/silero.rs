//! SileroVad with the real model and ONNX Runtime (from `scripts/vad-models.sh`, or
//! `AGENT_TEST_SILERO_MODEL` + `ORT_DYLIB_PATH`). Missing files fail these tests with the command
//! to run, unless `AGENT_SKIP_MODEL_TESTS=1`.
//!
//! Accuracy on the labelled set is in `vad_accuracy.rs`; this file covers the contract.

mod support {
    #[path = "../support/vad_eval.rs"]
    pub mod vad_eval;
}

use audio::vad::{SileroPaths, SileroVad, Vad, VadError, VadKind, VadOptions};
use support::vad_eval;

fn paths() -> Option<SileroPaths> {
    vad_eval::silero_paths()
}

fn fixture(name: &str) -> Vec<i16> {
    audio::wav::read_wav(vad_eval::data_dir().join(name))
        .expect("fixture")
        .samples
}

#[test]
fn builds_at_both_rates_through_the_kind() {
    let Some(paths) = paths() else { return };
    let opts = VadOptions::new().with_silero(paths);
    for rate in [8000u32, 16_000] {
        let vad = VadKind::Silero.build_with(rate, &opts).expect("build");
        assert_eq!(vad.kind(), VadKind::Silero);
        assert_eq!(vad.sample_rate(), rate);
        assert_eq!(vad.threshold(), SileroVad::DEFAULT_THRESHOLD);
        fn is_send<T: Send>(_: &T) {}
        is_send(&vad);
    }
}

#[test]
fn frame_validation_never_panics() {
    let Some(paths) = paths() else { return };
    for rate in [8000u32, 16_000] {
        let mut vad = SileroVad::new(rate, &paths).expect("build");
        let per_10 = rate as usize / 100;
        for ms in [1, 2, 3] {
            let p = vad
                .speech_probability(&vec![0; per_10 * ms])
                .expect("valid");
            assert!((0.0..=1.0).contains(&p));
        }
        for len in [0, 1, per_10 - 1, per_10 + 1, per_10 * 4] {
            assert!(
                matches!(
                    vad.is_speech(&vec![0; len]),
                    Err(VadError::BadFrameLength { .. })
                ),
                "{rate} len {len}"
            );
        }
        // Full-scale extremes are valid input.
        let loud: Vec<i16> = (0..per_10 * 2)
            .map(|i| if i % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        for _ in 0..10 {
            let p = vad.speech_probability(&loud).expect("valid");
            assert!((0.0..=1.0).contains(&p), "{p}");
        }
    }
}

#[test]
fn silence_is_not_speech_and_speech_is() {
    let Some(paths) = paths() else { return };
    for rate in [8000u32, 16_000] {
        let mut vad = SileroVad::new(rate, &paths).expect("build");
        let frame = vec![0i16; rate as usize / 50];
        for _ in 0..50 {
            assert!(!vad.is_speech(&frame).unwrap(), "{rate}: digital silence");
        }
        let clip = fixture(&format!("balance_question_{}k.wav", rate / 1000));
        let voiced = clip
            .chunks_exact(frame.len())
            .filter(|f| vad.is_speech(f).unwrap())
            .count();
        let total = clip.len() / frame.len();
        assert!(voiced * 2 > total, "{rate}: {voiced}/{total} frames voiced");
    }
}

#[test]
fn reset_forgets_history_and_runs_are_deterministic() {
    let Some(paths) = paths() else { return };
    let clip = fixture("invoice_due_16k.wav");
    let mut vad = SileroVad::new(16_000, &paths).expect("build");
    let scores = |vad: &mut SileroVad| -> Vec<f32> {
        clip.chunks_exact(320)
            .take(60)
            .map(|f| vad.speech_probability(f).unwrap())
            .collect()
    };
    let first = scores(&mut vad);
    vad.reset();
    assert_eq!(first, scores(&mut vad));
    // A second detector (its own session and state) agrees: no state is shared between calls.
    let mut other = SileroVad::new(16_000, &paths).expect("build");
    assert_eq!(first, scores(&mut other));
}

#[test]
fn detectors_sharing_sessions_keep_their_own_state() {
    let Some(paths) = paths() else { return };
    let a_clip = fixture("invoice_due_8k.wav");
    let b_clip = fixture("no_thanks_8k.wav");
    let alone = |clip: &[i16]| -> Vec<f32> {
        let mut vad = SileroVad::new(8000, &paths).expect("build");
        clip.chunks_exact(160)
            .map(|f| vad.speech_probability(f).unwrap())
            .collect()
    };
    let (a_alone, b_alone) = (alone(&a_clip), alone(&b_clip));
    // Interleaved frame by frame on one thread.
    let mut a = SileroVad::new(8000, &paths).expect("build");
    let mut b = SileroVad::new(8000, &paths).expect("build");
    let (mut a_scores, mut b_scores) = (Vec::new(), Vec::new());
    for (fa, fb) in a_clip.chunks_exact(160).zip(b_clip.chunks_exact(160)) {
        a_scores.push(a.speech_probability(fa).unwrap());
        b_scores.push(b.speech_probability(fb).unwrap());
    }
    assert_eq!(a_scores, a_alone[..a_scores.len()]);
    assert_eq!(b_scores, b_alone[..b_scores.len()]);
    // Concurrently from several threads (more detectors than pooled sessions).
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let paths = paths.clone();
            let clip = if i % 2 == 0 {
                a_clip.clone()
            } else {
                b_clip.clone()
            };
            std::thread::spawn(move || {
                let mut vad = SileroVad::new(8000, &paths).expect("build");
                clip.chunks_exact(160)
                    .map(|f| vad.speech_probability(f).unwrap())
                    .collect::<Vec<f32>>()
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let got = t.join().expect("thread");
        let want = if i % 2 == 0 { &a_alone } else { &b_alone };
        assert_eq!(&got, want, "thread {i}");
    }
}

#[test]
fn a_file_that_is_not_a_model_is_a_typed_error() {
    let Some(paths) = paths() else { return };
    let bogus = vad_eval::data_dir().join("TRANSCRIPTS.tsv");
    let err = SileroVad::new(8000, &SileroPaths::new(&bogus, &paths.onnxruntime)).unwrap_err();
    assert!(
        matches!(&err, VadError::Model { path, .. } if *path == bogus),
        "{err}"
    );
}

#[test]
fn one_runtime_per_process() {
    let Some(paths) = paths() else { return };
    SileroVad::new(8000, &paths).expect("build");
    // Any other existing file as "the library": refused before it is ever dlopen'ed.
    let other = vad_eval::data_dir().join("README.md");
    let err = SileroVad::new(8000, &SileroPaths::new(&paths.model, &other)).unwrap_err();
    assert!(
        matches!(&err, VadError::RuntimeMismatch { requested, .. } if *requested == other),
        "{err}"
    );
}
