//! espeak-ng start-up failures, in a process of their own: espeak-ng's state is global.

use speech::{EspeakConfig, EspeakTts, SynthesisOptions, TextToSpeech, TtsError};

#[test]
fn broken_data_dir_is_an_init_error_and_a_good_one_still_works() {
    let dir = std::env::temp_dir().join(format!(
        "speech-espeak-{}/espeak-ng-data",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    // Looks like a data directory, holds no usable data.
    std::fs::write(dir.join("phontab"), b"").expect("phontab");
    let mut cfg = EspeakConfig::default();
    cfg.data_dir = Some(dir.clone());
    let err = EspeakTts::new(cfg).expect_err("broken data must not initialise");
    assert!(matches!(err, TtsError::Init { .. }), "{err:?}");
    assert!(err.to_string().contains(&*dir.to_string_lossy()), "{err}");

    // A failed start leaves no worker behind: the system data can still be used.
    let tts = EspeakTts::new(EspeakConfig::default()).expect("system espeak-ng-data");
    let pcm = tts
        .synthesize("recovered", &SynthesisOptions::default())
        .expect("synthesize");
    assert!(pcm.rms() > 0.02);
    let _ = std::fs::remove_dir_all(dir.parent().unwrap_or(&dir));
}
