//! WhisperStt against the converted tiny.en model and the fixture clips.

mod common;

use std::path::Path;

use speech::{AudioCtx, SpeechToText, SttError, TranscribeOptions, WhisperStt};

fn opts(audio_ctx: AudioCtx) -> TranscribeOptions {
    let mut o = TranscribeOptions::default();
    o.audio_ctx = audio_ctx;
    o
}

#[test]
fn balance_question_contains_balance() {
    let Some(stt) = common::whisper() else { return };
    let (pcm, rate) = common::read_wav("balance_question_16k.wav");
    assert_eq!(rate, 16_000);
    for mode in [AudioCtx::Fit, AudioCtx::Full] {
        let t = stt.transcribe(&pcm, &opts(mode)).expect("transcribe");
        eprintln!(
            "{mode:?}: {:?} audio_ctx={} timings={:?} p={:?}",
            t.text, t.audio_ctx, t.timings, t.avg_token_prob
        );
        assert!(
            t.text.to_lowercase().contains("balance"),
            "{mode:?}: {:?}",
            t.text
        );
        assert_eq!(t.text, t.text.trim());
        assert!(
            t.avg_token_prob.is_some_and(|p| p > 0.5),
            "{:?}",
            t.avg_token_prob
        );
        assert!(t.timings.total >= t.timings.encode + t.timings.decode);
    }
}

#[test]
fn fitted_window_is_smaller_than_full() {
    let Some(stt) = common::whisper() else { return };
    let (pcm, _) = common::read_wav("yes_correct_16k.wav");
    let fit = stt.audio_ctx_for(pcm.len(), &opts(AudioCtx::Fit));
    assert!(
        fit < 1500 && fit >= speech::stt::frames_for(pcm.len()),
        "{fit}"
    );
    assert_eq!(stt.audio_ctx_for(pcm.len(), &opts(AudioCtx::Full)), 1500);
    // An explicit window never cuts the audio short, nor exceeds the model's.
    assert_eq!(
        stt.audio_ctx_for(pcm.len(), &opts(AudioCtx::Frames(1))),
        speech::stt::frames_for(pcm.len())
    );
    assert_eq!(
        stt.audio_ctx_for(pcm.len(), &opts(AudioCtx::Frames(5000))),
        1500
    );
    let t = stt
        .transcribe(&pcm, &opts(AudioCtx::Fit))
        .expect("transcribe");
    assert_eq!(t.audio_ctx, fit);
    assert!(t.text.to_lowercase().contains("correct"), "{:?}", t.text);
}

#[test]
fn concurrent_calls_share_one_model() {
    let Some(stt) = common::whisper() else { return };
    let (a, _) = common::read_wav("no_thanks_16k.wav");
    let (b, _) = common::read_wav("goodbye_16k.wav");
    let (ta, tb) = std::thread::scope(|s| {
        let ha = s.spawn(|| stt.transcribe(&a, &TranscribeOptions::default()));
        let hb = s.spawn(|| stt.transcribe(&b, &TranscribeOptions::default()));
        (ha.join().expect("thread a"), hb.join().expect("thread b"))
    });
    let (ta, tb) = (ta.expect("a"), tb.expect("b"));
    assert!(ta.text.to_lowercase().contains("thank"), "{:?}", ta.text);
    assert!(tb.text.to_lowercase().contains("goodbye"), "{:?}", tb.text);
    // Deterministic: the same audio alone gives the same text.
    let again = stt
        .transcribe(&a, &TranscribeOptions::default())
        .expect("again");
    assert_eq!(again.text, ta.text);
}

#[test]
fn prompt_is_accepted() {
    let Some(stt) = common::whisper() else { return };
    let (pcm, _) = common::read_wav("account_digits_16k.wav");
    let mut o = TranscribeOptions::default();
    o.prompt = Some("Account number digits.\0".into()); // a stray NUL must not panic
    let t = stt.transcribe(&pcm, &o).expect("transcribe");
    assert!(t.text.to_lowercase().contains("account"), "{:?}", t.text);
}

#[test]
fn bad_audio_is_an_error_not_a_panic() {
    let Some(stt) = common::whisper() else { return };
    let o = TranscribeOptions::default();
    assert!(matches!(stt.transcribe(&[], &o), Err(SttError::EmptyAudio)));
    let mut pcm = vec![0.0f32; 16_000];
    pcm[7] = f32::NAN;
    assert!(matches!(
        stt.transcribe(&pcm, &o),
        Err(SttError::InvalidSample { index: 7 })
    ));
    // Silence and very short input transcribe to (almost) nothing rather than failing.
    let t = stt.transcribe(&[0.0; 800], &o).expect("short silence");
    assert!(t.text.len() < 20, "{:?}", t.text);
}

#[test]
fn missing_model_error_names_the_path() {
    let path = Path::new("/nonexistent/dir/ggml-missing.bin");
    let err = WhisperStt::load(path, 1).expect_err("must fail");
    assert!(matches!(err, SttError::ModelNotFound { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("/nonexistent/dir/ggml-missing.bin"),
        "{err}"
    );
}

#[test]
fn invalid_model_error_names_the_path() {
    let dir = std::env::temp_dir().join(format!("speech-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let bad = dir.join("not-a-model.bin");
    std::fs::write(&bad, b"RIFF this is not a ggml file").expect("write");
    let err = WhisperStt::load(&bad, 1).expect_err("must fail");
    assert!(matches!(err, SttError::InvalidModel { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-model.bin"), "{err}");

    // Right magic, truncated after the hyper-parameters.
    let mut trunc = 0x6767_6d6cu32.to_le_bytes().to_vec();
    for v in [51864i32, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1] {
        trunc.extend(v.to_le_bytes());
    }
    std::fs::write(&bad, &trunc).expect("write");
    let err = WhisperStt::load(&bad, 1).expect_err("must fail");
    assert!(matches!(err, SttError::InvalidModel { .. }), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
