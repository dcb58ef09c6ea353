//! Barge-in over a real SIP call: baresip talks over the agent's greeting. A real request
//! stops the agent within a quarter second or so and is answered; a backchannel ("okay")
//! pauses it only until the words show it was not a request, then the greeting resumes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::Env;
use support::admin::{event_kinds, supervisor_key};
use support::peers::{Baresip, padded_clip};
use support::speech::{Recording, transcribe, whisper_model, words};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../audio/tests/data")
        .join(name)
}

fn env() -> Env {
    Env::new(&format!(
        "[stt]\nmodel = \"{}\"\nthreads = 1\n[call]\nsilence_timeout_secs = 3\n",
        whisper_model().display()
    ))
}

const GREETING: &str =
    "Thank you for calling Acme Plumbing, this is Ava. Hi there, how can I help you today?";

#[test]
fn a_question_over_the_greeting_stops_it_quickly_and_is_answered() {
    let env = env();
    let key = supervisor_key(&env);
    let daemon = env.serve();
    let work = tempfile::tempdir().unwrap();
    // The greeting takes ~5 s; the caller starts asking 1.5 s into it.
    let clip = work.path().join("caller.wav");
    padded_clip(&fixture("balance_question_8k.wav"), &clip, 1.5, 14.0);
    let mut phone = Baresip::dial(
        work.path(),
        "alice",
        &format!("sip:agent@{}", env.sip),
        &clip,
        Duration::from_secs(40),
    );
    phone.wait(Duration::from_secs(50));
    assert!(phone.log().contains("Call established"), "{}", phone.log());

    let call = support::admin::ended_call(&daemon, &key, Duration::from_secs(8));
    let kinds = event_kinds(&call);
    assert!(kinds.iter().any(|k| k == "barge_in"), "{kinds:?}");
    let turns = call["turns"].as_array().unwrap();
    let greeting = &turns[0];
    assert_eq!(greeting["interrupted"], true, "{greeting}");
    // The history keeps only what was played: not the whole greeting.
    let kept = greeting["agent_text"].as_str().unwrap_or("");
    assert!(kept.len() < GREETING.len(), "kept {kept:?}");
    let answer = turns
        .iter()
        .find(|t| {
            t["caller_text"]
                .as_str()
                .is_some_and(|c| c.to_lowercase().contains("balance"))
        })
        .unwrap_or_else(|| panic!("the question is answered: {call:#}"));
    assert!(answer["agent_text"].is_string(), "{answer}");

    // Reaction, from what baresip sent and heard: caller speech onset → agent silent.
    let (heard, sent) = phone.recordings();
    let (heard, sent) = (Recording::read(&heard), Recording::read(&sent));
    let onset = sent.onset_after(1_000, -40.0, 60).expect("caller speech");
    assert!(
        heard
            .onset_after(onset.saturating_sub(1_000), -35.0, 100)
            .is_some_and(|t| t < onset),
        "the greeting was playing when the caller started"
    );
    let stopped = heard.silence_after(onset, -40.0, 400);
    let reaction = stopped as i64 - onset as i64;
    println!(
        "barge-in reaction: caller onset {onset} ms, agent silent from {stopped} ms: {reaction} ms"
    );
    assert!(
        reaction <= 450,
        "the agent kept talking {reaction} ms over the caller"
    );
}

#[test]
fn a_backchannel_over_the_greeting_pauses_it_and_the_greeting_resumes() {
    let env = env();
    let key = supervisor_key(&env);
    let daemon = env.serve();
    let work = tempfile::tempdir().unwrap();
    // "Okay" (a listener's acknowledgement) spoken by espeak-ng at 8 kHz, 2.5 s into the
    // greeting: after the echo gate's first 0.7 s of our audio, during which only a caller
    // louder than the agent gets through (espeak's "okay" is not), see audio::echo. (espeak's
    // "mm hmm" is not a sound whisper reads back as words.)
    let raw = work.path().join("mmhmm_22k.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(&raw)
        .arg("okay")
        .status()
        .expect("espeak-ng is installed by ./test");
    assert!(status.success());
    let mono8k = work.path().join("mmhmm_8k.wav");
    let status = Command::new("sox")
        .arg(&raw)
        .args(["-r", "8000", "-c", "1", "-b", "16"])
        .arg(&mono8k)
        .status()
        .unwrap();
    assert!(status.success());
    let clip = work.path().join("caller.wav");
    padded_clip(&mono8k, &clip, 2.5, 14.0);
    let mut phone = Baresip::dial(
        work.path(),
        "alice",
        &format!("sip:agent@{}", env.sip),
        &clip,
        Duration::from_secs(30),
    );
    phone.wait(Duration::from_secs(40));

    let call = support::admin::ended_call(&daemon, &key, Duration::from_secs(8));
    let kinds = event_kinds(&call);
    let greeting = &call["turns"][0];
    assert_eq!(greeting["interrupted"], false, "{call:#}");
    assert_eq!(greeting["agent_text"], GREETING, "{greeting}");
    // It was heard as speech over the agent (paused), then judged not to be a request.
    let barge = kinds.iter().position(|k| k == "barge_in");
    let resumed = kinds
        .iter()
        .position(|k| k == "backchannel" || k == "no_speech");
    assert!(
        barge.is_some() && resumed > barge,
        "paused, then resumed: {kinds:?}"
    );
    let resumed_event = &call["events"][resumed.unwrap()];
    assert!(
        resumed_event["detail"]["resumed_after_ms"].is_i64(),
        "{resumed_event}"
    );
    // The caller heard the rest of the greeting, through to its last words.
    let (heard, _) = phone.recordings();
    let heard = Recording::read(&heard);
    // Greeting, a gap while paused, then the rest of the greeting from where it stopped.
    let paused_at = heard.silence_after(500, -40.0, 300);
    let resumed_at = heard
        .onset_after(paused_at, -35.0, 100)
        .expect("the greeting resumed");
    let rest_end = heard.silence_after(resumed_at, -40.0, 1_000);
    let text = transcribe(&heard.to_16k(resumed_at, rest_end)).to_lowercase();
    println!(
        "paused {paused_at}..{resumed_at} ms ({} ms by the daemon's clock); then heard: {text}",
        resumed_event["detail"]["resumed_after_ms"]
    );
    // Nothing was lost or repeated: what was heard before the pause plus after it lasts as long
    // as the same greeting synthesised in one go by the espeak-ng command line (same voice,
    // same rate), and the resumed part sounds like the greeting's end (whisper tiny on a
    // sentence cut mid-word is rough, so two shared words, not an exact phrase).
    let whole = work.path().join("greeting.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "175", "-w"])
        .arg(&whole)
        .arg(GREETING)
        .status()
        .unwrap();
    assert!(status.success());
    let whole = Recording::read(&whole);
    let total_ms = whole.samples.len() as u64 * 1000 / u64::from(whole.rate);
    let first = whole.onset_after(0, -40.0, 20).unwrap_or(0);
    let last = whole.offset_before(total_ms, -40.0).unwrap_or(total_ms);
    let expected_ms = (last - first) as f64;
    let heard_ms = (paused_at + (rest_end - resumed_at)) as f64;
    println!("greeting heard {heard_ms} ms in two parts; whole greeting {expected_ms:.0} ms");
    assert!(
        (heard_ms - expected_ms).abs() <= 0.15 * expected_ms,
        "heard {heard_ms} ms of greeting, the whole one lasts {expected_ms:.0} ms"
    );
    let shared = words(&text).intersection(&words(GREETING)).count();
    assert!(shared >= 2, "heard: {text}");
}
