use super::*;

fn fixture(name: &str) -> Vec<i16> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    crate::wav::read_wav(path).unwrap().samples
}

#[test]
fn kinds_parse_from_config_names() {
    assert_eq!("earshot".parse::<VadKind>().unwrap(), VadKind::Earshot);
    assert_eq!(" WebRTC ".parse::<VadKind>().unwrap(), VadKind::WebRtc);
    assert_eq!("webrtc-vad".parse::<VadKind>().unwrap(), VadKind::WebRtc);
    assert_eq!("Silero".parse::<VadKind>().unwrap(), VadKind::Silero);
    assert_eq!("silero-vad".parse::<VadKind>().unwrap(), VadKind::Silero);
    assert!(matches!(
        "rnnoise".parse::<VadKind>(),
        Err(VadError::UnknownKind { .. })
    ));
    for kind in VadKind::ALL {
        assert_eq!(kind.to_string().parse::<VadKind>().unwrap(), kind);
    }
}

#[test]
fn default_kind_is_silero() {
    assert_eq!(VadKind::default(), VadKind::Silero);
}

#[test]
fn detectors_are_send() {
    fn is_send<T: Send>(_: &T) {}
    is_send(&VadKind::WebRtc.build(8000).unwrap());
    is_send(&VadKind::Earshot.build(8000).unwrap());
}

#[test]
fn frame_and_rate_validation() {
    for kind in VadKind::BUILTIN {
        assert!(matches!(
            kind.build(44_100),
            Err(VadError::UnsupportedRate { rate: 44_100 })
        ));
        for rate in [8000u32, 16_000] {
            let mut vad = kind.build(rate).unwrap();
            assert_eq!(vad.sample_rate(), rate);
            assert_eq!(vad.kind(), kind);
            let per_10 = rate as usize / 100;
            for ms in [1, 2, 3] {
                assert!(
                    vad.speech_probability(&vec![0; per_10 * ms]).is_ok(),
                    "{kind} {rate} {ms}0 ms"
                );
            }
            for len in [0, 1, per_10 - 1, per_10 + 1, per_10 * 4] {
                assert!(
                    matches!(
                        vad.is_speech(&vec![0; len]),
                        Err(VadError::BadFrameLength { .. })
                    ),
                    "{kind} {rate} len {len}"
                );
            }
        }
    }
    assert!(matches!(
        EarshotVad::with_threshold(8000, 1.5),
        Err(VadError::BadThreshold(_))
    ));
}

#[test]
fn silence_is_not_speech_and_speech_is() {
    for kind in VadKind::BUILTIN {
        for rate in [8000u32, 16_000] {
            let mut vad = kind.build(rate).unwrap();
            let frame = vec![0i16; rate as usize / 50];
            for _ in 0..50 {
                assert!(
                    !vad.is_speech(&frame).unwrap(),
                    "{kind} {rate}: digital silence"
                );
            }
            let clip = fixture(&format!("balance_question_{}k.wav", rate / 1000));
            let voiced = clip
                .chunks_exact(frame.len())
                .filter(|f| vad.is_speech(f).unwrap())
                .count();
            let total = clip.len() / frame.len();
            // The clip is mostly speech with short lead-in/out.
            assert!(
                voiced * 2 > total,
                "{kind} {rate}: {voiced}/{total} frames voiced"
            );
        }
    }
}

#[test]
fn reset_keeps_rate_and_forgets_history() {
    for kind in VadKind::BUILTIN {
        let mut vad = kind.build(16_000).unwrap();
        let clip = fixture("balance_question_16k.wav");
        let first: Vec<f32> = clip
            .chunks_exact(320)
            .take(40)
            .map(|f| vad.speech_probability(f).unwrap())
            .collect();
        vad.reset();
        // A 20 ms frame at 16 kHz is still accepted (libfvad's own reset falls back to 8 kHz).
        let again: Vec<f32> = clip
            .chunks_exact(320)
            .take(40)
            .map(|f| vad.speech_probability(f).unwrap())
            .collect();
        assert_eq!(first, again, "{kind}");
    }
}

#[test]
fn segment_speech_finds_the_utterance() {
    let clip = fixture("yes_correct_8k.wav");
    for kind in VadKind::BUILTIN {
        let mut vad = kind.build(8000).unwrap();
        let segs =
            segment_speech(vad.as_mut(), SpeechDetectorConfig::default(), &clip, 20).unwrap();
        assert!(!segs.is_empty(), "{kind}");
        assert!(
            segs.iter().all(|s| s.start_ms < s.end_ms),
            "{kind}: {segs:?}"
        );
    }
}

// Silero with real files is tested in `tests/silero.rs` (it needs scripts/vad-models.sh); these
// are the paths that fail before any file is read.

#[test]
fn silero_needs_files_and_names_the_missing_one() {
    assert!(VadKind::Silero.needs_files());
    assert!(VadKind::BUILTIN.iter().all(|k| !k.needs_files()));
    assert!(matches!(
        VadKind::Silero.build(8000),
        Err(VadError::MissingOption {
            kind: VadKind::Silero,
            ..
        })
    ));
    let dir = std::env::temp_dir().join("agent-audio-no-such-dir");
    let paths = SileroPaths::in_cache(&dir);
    assert_eq!(paths.model, dir.join("vad/silero_vad.onnx"));
    assert_eq!(paths.onnxruntime, dir.join("vad/libonnxruntime.so"));
    let opts = VadOptions::new().with_silero(paths.clone());
    let Err(err) = VadKind::Silero.build_with(16_000, &opts) else {
        panic!("built without files")
    };
    assert!(
        matches!(&err, VadError::ModelMissing { path } if *path == paths.model),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("silero_vad.onnx") && msg.contains("scripts/vad-models.sh"),
        "{msg}"
    );
    // Rate and threshold are checked before any file.
    assert!(matches!(
        VadKind::Silero.build_with(44_100, &opts),
        Err(VadError::UnsupportedRate { rate: 44_100 })
    ));
    assert!(matches!(
        VadKind::Silero.build_with(8000, &opts.clone().with_threshold(-0.1)),
        Err(VadError::BadThreshold(_))
    ));
}

#[test]
fn silero_missing_runtime_is_named() {
    // A model file that exists (any file: the runtime is checked before the model is parsed).
    let model = format!(
        "{}/tests/data/yes_correct_8k.wav",
        env!("CARGO_MANIFEST_DIR")
    );
    let lib = std::env::temp_dir().join("agent-audio-no-such-dir/libonnxruntime.so");
    let opts = VadOptions::new().with_silero(SileroPaths::new(&model, &lib));
    let Err(err) = VadKind::Silero.build_with(8000, &opts) else {
        panic!("built without a runtime")
    };
    assert!(
        matches!(&err, VadError::RuntimeMissing { path } if *path == lib),
        "{err}"
    );
    assert!(err.to_string().contains("libonnxruntime.so"), "{err}");
}

#[test]
fn options_tune_the_builtin_detectors() {
    let opts = VadOptions::new()
        .with_threshold(0.9)
        .with_webrtc_mode(WebRtcMode::Quality);
    let vad = VadKind::Earshot.build_with(8000, &opts).unwrap();
    assert_eq!(vad.threshold(), 0.9);
    let vad = VadKind::WebRtc.build_with(16_000, &opts).unwrap();
    assert_eq!(vad.kind(), VadKind::WebRtc);
    assert!(matches!(
        VadKind::Earshot.build_with(8000, &VadOptions::new().with_threshold(2.0)),
        Err(VadError::BadThreshold(_))
    ));
}
