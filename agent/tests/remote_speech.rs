//! The daemon with `stt.provider = "openai"` and `tts.provider = "openai"`, against the local
//! fake of the OpenAI audio API: a baresip call is greeted with the fake's synthesised audio,
//! the caller's speech goes to the fake as 16 kHz WAV, and its transcript drives the turn.
//! No whisper model is configured, so every word the daemon understood came over HTTP.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::Env;
use support::admin::{ended_call, supervisor_key};
use support::peers::{Baresip, padded_clip};
use support::speech::Recording;
use testkit::openai::{FakeOpenAi, TranscriptionReply};

#[test]
fn remote_stt_and_tts_carry_a_whole_call() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeOpenAi::start());
    fake.require_api_key("sk-test-audio");
    fake.set_default_transcription(TranscriptionReply::text("What's my balance?"));
    let base = fake.base_url();
    let env = Env::new(&format!(
        "[stt]\nprovider = \"openai\"\nmodel = \"/nonexistent/ggml.bin\"\nbase_url = \"{base}\"\n\
         api_key = \"sk-test-audio\"\n\
         [tts]\nprovider = \"openai\"\nvoice = \"alloy\"\nbase_url = \"{base}\"\napi_key = \"sk-test-audio\"\n\
         [call]\nsilence_timeout_secs = 3\n"
    ));
    let key = supervisor_key(&env);
    let daemon = env.serve();

    let work = tempfile::tempdir().unwrap();
    let clip = work.path().join("caller.wav");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../audio/tests/data/balance_question_8k.wav");
    padded_clip(&fixture, &clip, 7.0, 30.0);
    let mut phone = Baresip::dial(
        work.path(),
        "alice",
        &format!("sip:agent@{}", env.sip),
        &clip,
        Duration::from_secs(60),
    );
    phone.wait(Duration::from_secs(70));
    assert!(phone.log().contains("Call established"), "{}", phone.log());

    let call = ended_call(&daemon, &key, Duration::from_secs(5));
    let turns = call["turns"].as_array().unwrap();
    let answered = turns
        .iter()
        // The fake answers every request with the whole question, so the interim transcript
        // at the clip's first pause already sounds complete and a reply starts; the rest of the
        // question then barges in and is answered in a turn of its own.
        .find(|t| t["caller_text"] == "What's my balance?" && t["agent_text"].is_string())
        .unwrap_or_else(|| panic!("the fake's transcript is the caller text: {call:#}"));
    assert!(
        answered["agent_text"].as_str().unwrap().contains("account"),
        "{answered}"
    );
    assert!(answered["latency"]["e2e_ms"].is_i64(), "{answered}");

    let requests = fake.requests();
    let speech: Vec<&Value> = requests
        .iter()
        .filter(|r| r.path == "/v1/audio/speech")
        .map(|r| &r.body)
        .collect();
    assert!(
        speech.iter().any(|b| b["input"]
            .as_str()
            .is_some_and(|t| t.contains("Thank you for calling"))),
        "the greeting was synthesised remotely: {speech:?}"
    );
    for b in &speech {
        assert_eq!(b["response_format"], "pcm", "{b}");
        assert_eq!(b["voice"], "alloy", "{b}");
        assert_eq!(b["model"], "tts-1", "{b}");
    }
    let transcriptions: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/v1/audio/transcriptions")
        .collect();
    assert!(
        !transcriptions.is_empty(),
        "the caller was transcribed remotely"
    );
    for r in &transcriptions {
        assert_eq!(r.authorization.as_deref(), Some("Bearer sk-test-audio"));
        assert_eq!(r.body["model"], "whisper-1", "{}", r.body);
        assert_eq!(r.body["language"], "en", "{}", r.body);
        assert_eq!(r.body["file"]["wav"]["sample_rate"], 16000, "{}", r.body);
        assert_eq!(r.body["file"]["wav"]["channels"], 1, "{}", r.body);
    }

    // What baresip heard is the fake's 440 Hz tone, resampled from 24 kHz to the call's 8 kHz.
    let (heard, _) = phone.recordings();
    let heard = Recording::read(&heard);
    assert!(
        heard.voiced_seconds(-35.0) > 2.0,
        "the caller heard the agent"
    );
    drop(rt);
}
