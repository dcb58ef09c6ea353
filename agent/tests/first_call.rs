//! The first real phone call, end to end: baresip calls the daemon over SIP/UDP, plays a
//! caller clip, and records what the daemon says back. Checks the stored call, its turns and
//! latencies, and what was actually heard.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::peers::{Baresip, padded_clip};
use support::speech::{Recording, transcribe, whisper_model, words};
use support::{Daemon, Env, http_get};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../audio/tests/data")
        .join(name)
}

fn env_with_model(extra: &str) -> Env {
    Env::new(&format!(
        "[stt]\nmodel = \"{}\"\nthreads = 1\n[call]\nsilence_timeout_secs = 3\n{extra}",
        whisper_model().display()
    ))
}

fn admin_key(env: &Env) -> String {
    let out = env.run(&[
        "keys",
        "create",
        "--tenant",
        "default",
        "--role",
        "supervisor",
    ]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    support::stdout(&out).lines().last().unwrap().to_owned()
}

/// The one call stored, with turns and events.
fn only_call(daemon: &Daemon, key: &str) -> Value {
    let (status, body) = http_get(&daemon.url("/v1/calls"), Some(key)).unwrap();
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    let calls = list["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{body}");
    let id = calls[0]["id"].as_str().unwrap();
    let (status, body) = http_get(&daemon.url(&format!("/v1/calls/{id}")), Some(key)).unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits until the call is stored as ended (the recorder writes asynchronously).
fn ended_call(daemon: &Daemon, key: &str) -> Value {
    for _ in 0..50 {
        let call = only_call(daemon, key);
        if call["status"] == "ended" {
            return call;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("call not ended; log:\n{}", daemon.log_text());
}

#[test]
fn baresip_call_is_answered_transcribed_answered_and_hung_up() {
    let env = env_with_model("");
    let key = admin_key(&env);
    let daemon = env.serve();
    let work = tempfile::tempdir().unwrap();
    // 7 s for the greeting to finish, the question, then silence long enough for the agent to
    // answer, reprompt once and say goodbye (baresip would hang up at the end of the file).
    let clip = work.path().join("caller.wav");
    padded_clip(&fixture("balance_question_8k.wav"), &clip, 7.0, 60.0);
    let target = format!("sip:agent@{}", env.sip);
    let mut phone = Baresip::dial(
        work.path(),
        "alice",
        &target,
        &clip,
        Duration::from_secs(90),
    );
    phone.wait(Duration::from_secs(100));
    let log = phone.log();
    assert!(log.contains("Call established"), "{log}");
    assert!(
        !log.contains("audio error"),
        "the daemon, not the clip's end, must end the call:\n{log}"
    );

    let call = ended_call(&daemon, &key);
    assert!(call["answered_at"].is_i64(), "{call}");
    assert_eq!(call["direction"], "inbound");
    // Media quality measured over the call (RTP on loopback: no loss, little jitter).
    let quality = &call["quality"];
    assert_eq!(quality["codec"], "PCMU", "{quality}");
    assert!(
        quality["packets_received"].as_i64().unwrap() > 500,
        "{quality}"
    );
    assert!(quality["loss_pct"].as_f64().unwrap() < 1.0, "{quality}");
    assert!(quality["jitter_ms"].as_f64().unwrap() < 20.0, "{quality}");
    assert!(quality["mos"].as_f64().unwrap() > 4.0, "{quality}");
    // No caller speech after the answer: reprompt, then the flow says goodbye and hangs up.
    assert_eq!(call["end_reason"], "silence_timeout", "{call:#}");
    let turns = call["turns"].as_array().unwrap();
    let answer = turns
        .iter()
        .find(|t| t["caller_text"].is_string())
        .unwrap_or_else(|| panic!("{call:#}"));
    let caller_text = answer["caller_text"].as_str().unwrap();
    assert!(
        caller_text.to_lowercase().contains("balance"),
        "{caller_text}"
    );
    let agent_text = answer["agent_text"].as_str().unwrap();
    let latency = &answer["latency"];
    for field in ["eot_ms", "stt_ms", "llm_ms", "tts_ms", "e2e_ms"] {
        assert!(latency[field].is_i64(), "{field} missing: {latency}");
    }
    let e2e = latency["e2e_ms"].as_i64().unwrap();
    let eot = latency["eot_ms"].as_i64().unwrap();
    // The endpointer waits at least turn.complete_wait_ms (200) after the last voiced frame
    // (less one 20 ms frame of VAD granularity), and never longer than the unfinished-sentence
    // wait (1.6 s) plus a frame.
    assert!(
        (180..=1620).contains(&eot),
        "end of turn {eot} ms after the last voiced frame"
    );
    assert!(e2e >= eot, "{latency}");

    // What baresip heard: not silence, and whisper hears the stored reply in it.
    let (heard, sent) = phone.recordings();
    let heard = Recording::read(&heard);
    let sent = Recording::read(&sent);
    assert!(
        heard.voiced_seconds(-35.0) > 5.0,
        "the recording is (nearly) silent"
    );
    let caller_end = sent
        .offset_before(7_000 + 4_000, -40.0)
        .expect("caller speech in the sent audio");
    assert!(
        caller_end > 7_000,
        "caller speech ends after the 7 s pad: {caller_end}"
    );
    let reply_start = heard
        .onset_after(caller_end, -35.0, 100)
        .expect("a reply after the question");
    let measured = reply_start as i64 - caller_end as i64;
    println!("e2e stored {e2e} ms, measured in the recordings {measured} ms");
    assert!(
        (measured - e2e).abs() <= 400,
        "stored e2e {e2e} ms vs {measured} ms between the caller's last sound and the reply's first"
    );
    let reply_audio = heard.to_16k(reply_start, reply_start + 12_000);
    let heard_text = transcribe(&reply_audio);
    let shared: Vec<_> = words(agent_text)
        .intersection(&words(&heard_text))
        .cloned()
        .collect();
    println!("stored reply: {agent_text}\nheard: {heard_text}\nshared: {shared:?}");
    assert!(
        shared.len() >= 4,
        "stored reply and recording share too few words"
    );

    let events: Vec<&str> = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"answered") && events.contains(&"silence"),
        "{events:?}"
    );
}

#[test]
fn caller_hanging_up_mid_reply_stops_the_agent() {
    let env = env_with_model("");
    let key = admin_key(&env);
    let daemon = env.serve();
    let work = tempfile::tempdir().unwrap();
    // The clip ends 3 s after the question: baresip hangs up (BYE) while the reply plays.
    let clip = work.path().join("caller.wav");
    padded_clip(&fixture("balance_question_8k.wav"), &clip, 7.0, 3.0);
    let target = format!("sip:agent@{}", env.sip);
    let mut phone = Baresip::dial(
        work.path(),
        "alice",
        &target,
        &clip,
        Duration::from_secs(60),
    );
    phone.wait(Duration::from_secs(70));
    assert!(
        phone.log().contains("audio error (0,end of file)"),
        "{}",
        phone.log()
    );

    let call = ended_call(&daemon, &key);
    assert_eq!(call["end_reason"], "caller_hangup", "{call:#}");
    let turns = call["turns"].as_array().unwrap();
    let answer = turns
        .iter()
        .find(|t| t["caller_text"].is_string())
        .unwrap_or_else(|| panic!("{call:#}"));
    assert!(
        answer["agent_text"].is_string(),
        "the reply had started: {answer}"
    );
    let first_rtp_at = call["answered_at"].as_i64().unwrap();
    let ended_at = call["ended_at"].as_i64().unwrap();
    // The reply is ~10 s long; the call (answer → end) is over well before it could finish.
    let (heard, _) = phone.recordings();
    let heard = Recording::read(&heard);
    let heard_ms = heard.samples.len() as i64 * 1000 / i64::from(heard.rate);
    assert!(
        ended_at - first_rtp_at <= heard_ms + 1_500,
        "call stored as ending long after the BYE"
    );
    let media = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "media")
        .expect("media event");
    let frames_sent = media["detail"]["frames_sent"].as_i64().unwrap();
    // Frames the daemon put on the wire: no more than the call lasted (it stopped at the BYE).
    assert!(
        frames_sent * 20 <= heard_ms + 500,
        "sent {frames_sent} frames for a {heard_ms} ms call"
    );
}

#[test]
fn missing_stt_model_is_named_at_start_and_callers_are_told_to_call_back() {
    let missing = "/nonexistent/models/ggml-missing.bin";
    let env = Env::new(&format!("[stt]\nmodel = \"{missing}\"\n"));
    let key = admin_key(&env);
    let daemon = env.serve();
    let log = daemon.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("speech recognition unavailable") && l.contains(missing)),
        "the start-up error names the model path:\n{log}"
    );
    let work = tempfile::tempdir().unwrap();
    let clip = work.path().join("caller.wav");
    padded_clip(&fixture("balance_question_8k.wav"), &clip, 1.0, 20.0);
    let target = format!("sip:agent@{}", env.sip);
    let mut phone = Baresip::dial(
        work.path(),
        "alice",
        &target,
        &clip,
        Duration::from_secs(30),
    );
    phone.wait(Duration::from_secs(40));
    assert!(phone.log().contains("Call established"), "{}", phone.log());

    let call = ended_call(&daemon, &key);
    assert!(call["answered_at"].is_i64(), "answered: {call:#}");
    assert_eq!(call["end_reason"], "stt_unavailable", "{call:#}");
    let (heard, _) = phone.recordings();
    let heard = Recording::read(&heard);
    assert!(
        heard.voiced_seconds(-35.0) > 1.0,
        "the caller heard the apology"
    );
    let heard_text = transcribe(&heard.to_16k(0, 15_000)).to_lowercase();
    assert!(
        heard_text.contains("call") || heard_text.contains("sorry"),
        "heard: {heard_text}"
    );
}

#[test]
fn opus_is_chosen_when_offered_and_the_call_works_at_16_khz() {
    let env = env_with_model("");
    let key = admin_key(&env);
    let daemon = env.serve();
    let work = tempfile::tempdir().unwrap();
    let clip = work.path().join("caller.wav");
    padded_clip(&fixture("balance_question_16k.wav"), &clip, 7.0, 6.0);
    // baresip's file source must run at the codec's rate: opus/48000/2.
    let clip48 = work.path().join("caller48.wav");
    let status = std::process::Command::new("sox")
        .arg(&clip)
        .args(["-r", "48000", "-c", "2"])
        .arg(&clip48)
        .status()
        .unwrap();
    assert!(status.success());
    let clip = clip48;
    let target = format!("sip:agent@{}", env.sip);
    // baresip with only its opus module: the offer has opus/48000/2 and nothing else.
    let mut phone = Baresip::dial_with_codec(
        work.path(),
        "alice",
        &target,
        &clip,
        Duration::from_secs(40),
        "opus.so",
    );
    phone.wait(Duration::from_secs(50));
    assert!(phone.log().contains("Call established"), "{}", phone.log());

    let call = ended_call(&daemon, &key);
    let answered = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "answered")
        .unwrap_or_else(|| panic!("{call:#}"));
    assert_eq!(answered["detail"]["codec"], "opus", "{answered}");
    let caller_text = call["turns"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|t| t["caller_text"].as_str())
        .unwrap_or_else(|| panic!("{call:#}"));
    assert!(
        caller_text.to_lowercase().contains("balance"),
        "{caller_text}"
    );
    // baresip decoded our Opus stream: the greeting is speech whisper can read.
    let (heard, _) = phone.recordings();
    let heard = Recording::read(&heard);
    let greeting = transcribe(&heard.to_16k(0, 6_000)).to_lowercase();
    assert!(
        greeting.contains("thank you") || greeting.contains("calling"),
        "heard: {greeting}"
    );
}
