//! Recorded calls over real SIP: a flow with `[recording] enabled` says its consent prompt
//! before the greeting, and the call is written in two channels — what the caller said and
//! what the agent played — listed and downloaded through the admin API by a supervisor of the
//! call's tenant only; another tenant's key sees nothing.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::admin::{ended_call, get_json, supervisor_key};
use support::peers::{Baresip, padded_clip};
use support::speech::{Recording, transcribe, whisper_model, words};
use support::{Env, http_get, http_get_bytes};

const CONSENT: &str = "This call is recorded for quality and training.";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../audio/tests/data")
        .join(name)
}

/// The shipped receptionist, recording its calls.
fn recording_flows(dir: &Path) -> PathBuf {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/flows/receptionist.toml");
    let text = std::fs::read_to_string(shipped).unwrap();
    std::fs::write(
        flows.join("receptionist.toml"),
        format!("{text}\n[recording]\nenabled = true\nconsent = \"{CONSENT}\"\n"),
    )
    .unwrap();
    flows
}

#[test]
fn a_recorded_call_says_so_and_keeps_both_channels_for_its_tenant() {
    let env = Env::new(&format!(
        "[stt]\nmodel = \"{}\"\nthreads = 1\n[call]\nsilence_timeout_secs = 4\n",
        whisper_model().display()
    ));
    let key = supervisor_key(&env);
    let flows = recording_flows(env.dir.path());
    let daemon = env.serve_with(&[], &[("AGENT__FLOWS__DIR", flows.to_str().unwrap())]);

    // Consent (~3 s) and greeting (~5 s) first; then the caller asks and listens.
    let work = tempfile::tempdir().unwrap();
    let clip = work.path().join("caller.wav");
    padded_clip(&fixture("balance_question_8k.wav"), &clip, 9.0, 9.0);
    let mut phone = Baresip::dial(
        work.path(),
        "alice",
        &format!("sip:agent@{}", env.sip),
        &clip,
        Duration::from_secs(25),
    );
    phone.wait(Duration::from_secs(40));
    let call = ended_call(&daemon, &key, Duration::from_secs(10));
    let id = call["id"].as_str().unwrap().to_owned();
    let greeting = call["turns"][0]["agent_text"].as_str().unwrap_or("");
    assert!(greeting.starts_with(CONSENT), "consent first: {greeting:?}");

    let list = get_json(&daemon, &key, &format!("/v1/calls/{id}/recordings"));
    let recordings = list["recordings"].as_array().unwrap();
    let channels: Vec<&str> = recordings
        .iter()
        .map(|r| r["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["agent", "caller"], "{list:#}");
    let call_ms = call["duration_ms"].as_i64().unwrap();
    for r in recordings {
        assert_eq!(r["format"], "wav");
        assert_eq!(r["sample_rate"], 8_000, "PCMU call: {r}");
        let ms = r["duration_ms"].as_i64().unwrap();
        assert!(
            (call_ms - 1_500..=call_ms + 500).contains(&ms),
            "{ms} ms of a {call_ms} ms call"
        );
    }

    let download = |channel: &str| -> Recording {
        let url = daemon.url(&format!("/v1/calls/{id}/recordings/{channel}"));
        let (status, head, body) = http_get_bytes(&url, Some(&key)).unwrap();
        assert_eq!(status, 200, "{head}");
        assert!(
            head.to_lowercase().contains("content-type: audio/wav"),
            "{head}"
        );
        let path = work.path().join(format!("{channel}.wav"));
        std::fs::write(&path, body).unwrap();
        Recording::read(&path)
    };
    // The agent's channel: consent, then greeting, as played.
    let agent = download("agent");
    let opening = transcribe(&agent.to_16k(0, 4_000)).to_lowercase();
    println!("agent channel, first 4 s: {opening}");
    assert!(
        words(&opening).intersection(&words(CONSENT)).count() >= 3,
        "{opening:?}"
    );
    // The caller's channel: silent while the agent spoke, then the question.
    let caller = download("caller");
    let asked_at = caller.onset_after(0, -35.0, 200).expect("the caller spoke");
    assert!(asked_at >= 8_000, "caller audio at {asked_at} ms");
    let question = transcribe(&caller.to_16k(asked_at.saturating_sub(200), asked_at + 3_500));
    println!("caller channel: {question}");
    assert!(question.to_lowercase().contains("balance"), "{question:?}");
    // And the agent's answer follows the question in its own channel, time-aligned.
    let answer_at = agent
        .onset_after(asked_at + 1_000, -35.0, 200)
        .expect("an answer");
    assert!(answer_at < asked_at + 6_000, "answer at {answer_at} ms");

    // Another tenant's supervisor: the call does not exist for them.
    let out = env.run(&["tenants", "create", "other"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let out = env.run(&[
        "keys",
        "create",
        "--tenant",
        "other",
        "--role",
        "supervisor",
    ]);
    let other_key = support::stdout(&out).lines().last().unwrap().to_owned();
    for path in [
        format!("/v1/calls/{id}/recordings"),
        format!("/v1/calls/{id}/recordings/agent"),
    ] {
        let (status, body) = http_get(&daemon.url(&path), Some(&other_key)).unwrap();
        assert_eq!(status, 404, "{path}: {body}");
        let err: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(err["error"]["code"], "not_found");
    }
    let (status, _) = http_get(
        &daemon.url(&format!("/v1/calls/{id}/recordings/video")),
        Some(&key),
    )
    .unwrap();
    assert_eq!(status, 404);
}
