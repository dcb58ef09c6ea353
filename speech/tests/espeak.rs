//! EspeakTts: espeak-ng in-process; and the espeak → whisper round trip.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use speech::{
    EspeakConfig, EspeakTts, SpeechToText, SynthesisOptions, TextToSpeech, TranscribeOptions,
    TtsError,
};

fn tts() -> EspeakTts {
    EspeakTts::new(EspeakConfig::default()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn hello_world_is_speech_of_plausible_length() {
    let tts = tts();
    let started = Instant::now();
    let pcm = tts
        .synthesize("hello world", &SynthesisOptions::default())
        .expect("synthesize");
    let took = started.elapsed();
    eprintln!(
        "hello world: {:?} of audio at {} Hz in {took:?}, rms {:.3}",
        pcm.duration(),
        pcm.sample_rate,
        pcm.rms()
    );
    assert_eq!(pcm.sample_rate, tts.sample_rate());
    assert!((8_000..=48_000).contains(&pcm.sample_rate));
    // Two words at 175 wpm: well under a second of speech, more than a few syllables.
    let d = pcm.duration();
    assert!(
        d > Duration::from_millis(400) && d < Duration::from_secs(3),
        "{d:?}"
    );
    assert!(pcm.rms() > 0.02, "rms {}", pcm.rms());
    let peak = pcm
        .samples
        .iter()
        .map(|s| s.unsigned_abs())
        .max()
        .unwrap_or(0);
    assert!(peak > 3000, "peak {peak}");
}

#[test]
fn rate_changes_duration_and_voice_is_selectable() {
    let tts = tts();
    let text = "The quick brown fox jumps over the lazy dog.";
    let mut slow = SynthesisOptions::default();
    slow.rate_wpm = Some(120);
    let mut fast = SynthesisOptions::default();
    fast.rate_wpm = Some(300);
    let a = tts.synthesize(text, &slow).expect("slow");
    let b = tts.synthesize(text, &fast).expect("fast");
    assert!(
        a.duration() > b.duration() * 3 / 2,
        "{:?} vs {:?}",
        a.duration(),
        b.duration()
    );

    let mut gb = SynthesisOptions::default();
    gb.voice = Some("en-gb".into()); // a language: resolved to the voice "gmw/en"
    let c = tts.synthesize(text, &gb).expect("en-gb");
    assert!(c.rms() > 0.02);
}

#[test]
fn concurrent_requests_are_serialised_safely() {
    let tts = tts();
    let texts = ["one two three", "four five six", "seven eight nine", "ten"];
    std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .iter()
            .map(|t| {
                let tts = tts.clone();
                s.spawn(move || tts.synthesize(t, &SynthesisOptions::default()))
            })
            .collect();
        for h in handles {
            let pcm = h.join().expect("thread").expect("synthesize");
            assert!(pcm.rms() > 0.02);
        }
    });
}

#[test]
fn bad_input_is_an_error() {
    let tts = tts();
    let err = tts
        .synthesize("hello\0world", &SynthesisOptions::default())
        .expect_err("NUL");
    assert!(matches!(err, TtsError::InvalidText { index: 5 }), "{err:?}");
    let empty = tts
        .synthesize("  ", &SynthesisOptions::default())
        .expect("empty");
    assert!(empty.samples.is_empty());

    let mut o = SynthesisOptions::default();
    o.voice = Some("no-such-voice-xx".into());
    let err = tts.synthesize("hello", &o).expect_err("voice");
    assert!(matches!(err, TtsError::VoiceNotFound { .. }), "{err:?}");
    // The engine recovers: the default voice still works.
    assert!(
        tts.synthesize("hello", &SynthesisOptions::default())
            .is_ok()
    );

    let mut cfg = EspeakConfig::default();
    cfg.voice = "no-such-voice-xx".into();
    assert!(matches!(
        EspeakTts::new(cfg),
        Err(TtsError::VoiceNotFound { .. })
    ));
}

#[test]
fn missing_data_dir_is_reported() {
    let mut cfg = EspeakConfig::default();
    cfg.data_dir = Some(Path::new("/nonexistent/espeak-ng-data").to_owned());
    let err = EspeakTts::new(cfg).expect_err("no data");
    assert!(matches!(err, TtsError::DataNotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/espeak-ng-data"),
        "{err}"
    );
    let found = speech::espeak::find_data_dir(None).expect("system espeak-ng-data");
    assert!(found.join("phontab").is_file());
}

/// What espeak says, whisper hears.
#[test]
fn espeak_to_whisper_round_trip() {
    let Some(stt) = common::whisper() else { return };
    let tts = tts();
    let pcm = tts
        .synthesize(
            "Hello world. How can I help you today?",
            &SynthesisOptions::default(),
        )
        .expect("synthesize");
    // As heard on a call: the reply follows some silence (speech at t = 0 loses its onset).
    let mut pcm16k = vec![0.0; 16_000 * 3 / 10];
    pcm16k.extend(common::resample(&pcm.to_f32(), pcm.sample_rate, 16_000));
    let t = stt
        .transcribe(&pcm16k, &TranscribeOptions::default())
        .expect("transcribe");
    eprintln!("round trip: {:?} ({:?})", t.text, t.timings);
    let text = t.text.to_lowercase();
    assert!(text.contains("hello"), "{:?}", t.text);
    assert!(text.contains("help"), "{:?}", t.text);
}
