//! Calls from LiveKit rooms, end to end: `agent serve` registers as an agent worker with the
//! testkit's protocol-faithful LiveKit fake (the `/agent` and `/rtc` websockets, twirp, a real
//! WebRTC peer as the SIP participant), is dispatched to a room whose SIP participant speaks a
//! caller clip, and answers with the same call model as a direct SIP call: stored with
//! `transport = livekit`, turns, latency and events; what it published is transcribed.
//! Also: DTMF data packets drive the flow, the caller leaving ends the call as caller_hangup,
//! offers beyond `max_jobs` are declined, the worker reconnects after the server drops it
//! without losing the job, and a malformed frame is counted and survived.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use livekit::proto;
use serde_json::Value;
use support::admin::{call, calls, supervisor_key};
use support::dial::{final_line, kinds, run_agent, stored_call};
use support::livekit::{heard, wait_utterance};
use support::speech::{transcribe, whisper_model, words};
use support::{Daemon, Env, http_get};
use testkit::livekit::{API_KEY, API_SECRET, Callee, FakeError, FakeLiveKit, SipCall, TwirpCall};

const JANE: &str = "+15550142000";
const DID: &str = "+15550100000";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../audio/tests/data")
        .join(name)
}

/// A daemon configured as a worker of `fake` (SIP stays on for the same process).
fn env_for(fake: &FakeLiveKit, max_jobs: u32) -> Env {
    env_with(fake, max_jobs, "")
}

/// [`env_for`] with `extra` appended to the `[livekit]` section.
fn env_with(fake: &FakeLiveKit, max_jobs: u32, extra: &str) -> Env {
    let env = Env::new(&format!(
        "[stt]\nmodel = \"{model}\"\nthreads = 1\n[call]\nsilence_timeout_secs = 8\n\
         [livekit]\nurl = \"{url}\"\napi_key = \"{API_KEY}\"\napi_secret = \"{API_SECRET}\"\n\
         agent_name = \"receptionist\"\nmax_jobs = {max_jobs}\nice = \"loopback\"\n\
         trusted_trunks = [\"ST_front\"]\n{extra}",
        model = whisper_model().display(),
        url = fake.url(),
    ));
    env.import_customers(&format!(
        "c-1,Jane Doe,Doe Ltd,jane@example.com,{JANE},94110,142.50,USD\n"
    ));
    env
}

/// The fake, and a daemon (with its temp dir and a supervisor key) registered with it as a
/// worker taking `max_jobs` rooms.
fn registered_worker(max_jobs: u32) -> (tokio::runtime::Runtime, FakeLiveKit, Env, String, Daemon) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeLiveKit::start());
    let env = env_for(&fake, max_jobs);
    let key = supervisor_key(&env);
    let daemon = env.serve();
    rt.block_on(fake.wait_registrations(1, Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}: {}", daemon.log_text()));
    (rt, fake, env, key, daemon)
}

fn jane_calls(wav: Option<PathBuf>) -> SipCall {
    SipCall {
        caller: JANE.into(),
        dialled: DID.into(),
        wav,
        attributes: HashMap::from([("sip.trunkID".to_owned(), "ST_front".to_owned())]),
    }
}

/// Polls the stored calls until `ready` holds for the one with `transport = livekit` and
/// `from = caller`.
fn wait_call(
    daemon: &Daemon,
    key: &str,
    within: Duration,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    let mut last = Value::Null;
    loop {
        for c in calls(daemon, key) {
            let full = call(daemon, key, c["id"].as_str().unwrap());
            if ready(&full) {
                return full;
            }
            last = full;
        }
        assert!(
            Instant::now() < deadline,
            "no such call; last seen {last:#}\nlog:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn turn_texts(call: &Value) -> Vec<String> {
    call["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["agent_text"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn a_room_call_is_answered_heard_stored_and_driven_by_dtmf() {
    let (rt, fake, _env, key, daemon) = registered_worker(2);

    let handle = rt
        .block_on(fake.dispatch_sip_call(jane_calls(None)))
        .unwrap_or_else(|e| panic!("{e}: {}", daemon.log_text()));
    rt.block_on(handle.media_connected(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}: {}", daemon.log_text()));

    // The greeting (by name: the caller ID is a cached customer), then the caller's question.
    let (_, greeting_end) = wait_utterance(&handle, 0, Duration::from_secs(20));
    let question_at = heard(&handle).samples.len() as u64 / 16;
    handle
        .play_wav(&fixture("balance_question_16k.wav"))
        .unwrap();
    let stored = wait_call(&daemon, &key, Duration::from_secs(30), |c| {
        c["turns"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["latency"]["e2e_ms"].is_number()))
    });
    assert_eq!(stored["transport"], "livekit", "{stored:#}");
    assert_eq!(stored["from"], JANE);
    assert_eq!(stored["to"], DID);
    assert!(
        stored["turns"][0]["agent_text"]
            .as_str()
            .unwrap()
            .contains("Jane Doe")
    );
    let answer = stored["turns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["latency"]["e2e_ms"].is_number())
        .unwrap()
        .clone();
    let caller_text = answer["caller_text"].as_str().unwrap_or("").to_lowercase();
    assert!(caller_text.contains("balance"), "{answer:#}");
    let agent_text = answer["agent_text"].as_str().unwrap().to_owned();
    assert!(agent_text.contains("$142.50"), "{answer:#}");
    for field in ["eot_ms", "stt_ms", "e2e_ms"] {
        assert!(answer["latency"][field].is_number(), "{field}: {answer:#}");
    }

    // What the SIP participant heard: the reply, transcribed, shares words with the stored text.
    let question_ms = 3_000; // the clip is ~2.4 s
    let (reply_at, reply_end) =
        wait_utterance(&handle, question_at + question_ms, Duration::from_secs(20));
    assert!(reply_at > greeting_end);
    let heard_text = transcribe(&heard(&handle).to_16k(reply_at, reply_end + 200)).to_lowercase();
    let shared: Vec<_> = words(&agent_text)
        .intersection(&words(&heard_text))
        .cloned()
        .collect();
    println!("stored: {agent_text}\nheard: {heard_text}\nshared: {shared:?}");
    assert!(
        shared.len() >= 4,
        "stored {agent_text:?}, heard {heard_text:?}"
    );

    // A key press (a SipDTMF data packet) asks for the balance again; the caller hangs up
    // while that reply plays.
    handle.send_dtmf('1');
    let after_dtmf = wait_call(&daemon, &key, Duration::from_secs(15), |c| {
        turn_texts(c)
            .iter()
            .filter(|t| t.contains("$142.50"))
            .count()
            >= 2
    });
    let dtmf = after_dtmf["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "dtmf")
        .unwrap_or_else(|| panic!("{after_dtmf:#}"));
    assert_eq!(dtmf["detail"]["digit"], "1");
    let heard_len = heard(&handle).samples.len() as u64 / 16;
    let deadline = Instant::now() + Duration::from_secs(10);
    while heard(&handle).onset_after(heard_len, -40.0, 200).is_none() {
        assert!(Instant::now() < deadline, "the DTMF reply never played");
        std::thread::sleep(Duration::from_millis(50));
    }
    handle.leave();
    let ended = wait_call(&daemon, &key, Duration::from_secs(10), |c| {
        c["status"] == "ended"
    });
    assert_eq!(ended["end_reason"], "caller_hangup", "{ended:#}");
    let last = ended["turns"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["interrupted"], true, "cut by the hang-up: {last:#}");

    // The worker told the server the job ran and succeeded; nothing broke the protocol.
    let statuses = job_statuses(&fake, handle.job_id());
    assert_eq!(
        statuses,
        vec![proto::JobStatus::JsRunning, proto::JobStatus::JsSuccess]
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    drop(daemon);
}

/// `agent dial` through a `[[livekit.outbound_trunks]]` trunk: LiveKit SIP dials (the request
/// waits for the answer), the daemon joins the callee's room itself and runs the flow; the
/// callee hears the greeting by name and the answer to its question. A busy callee is stored
/// as `busy` with its SIP status; a number not allow-listed is never dialled.
#[test]
fn agent_dial_calls_out_through_livekit_sip() {
    const BUSY: &str = "+15550142999";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeLiveKit::start());
    let env = env_with(
        &fake,
        2,
        "[[livekit.outbound_trunks]]\nname = \"lk\"\ntrunk_id = \"ST_out\"\n\
         from_number = \"+15550100000\"\nallowed_destinations = [\"+1555014\"]\n",
    );
    fake.set_callee(
        JANE,
        Callee::Answers {
            after: Duration::from_millis(1_500),
            wav: None,
        },
    );
    fake.set_callee(
        BUSY,
        Callee::Fails {
            after: Duration::from_millis(300),
            status: 486,
        },
    );

    let (out, heard_text) = std::thread::scope(|scope| {
        let dial = scope.spawn(|| {
            run_agent(
                &env,
                &["dial", JANE, "--trunk", "lk"],
                Duration::from_secs(90),
            )
        });
        let handle = rt
            .block_on(fake.outbound_call(JANE, Duration::from_secs(20)))
            .expect("Jane was dialled");
        rt.block_on(handle.media_connected(Duration::from_secs(15)))
            .expect("the agent joined the callee's room");
        let (_, greeting_end) = wait_utterance(&handle, 0, Duration::from_secs(20));
        let greeting = transcribe(&heard(&handle).to_16k(0, greeting_end + 200)).to_lowercase();
        let asked_at = heard(&handle).samples.len() as u64 / 16;
        handle
            .play_wav(&fixture("balance_question_16k.wav"))
            .unwrap();
        let (reply_at, reply_end) =
            wait_utterance(&handle, asked_at + 3_000, Duration::from_secs(30));
        let reply = transcribe(&heard(&handle).to_16k(reply_at, reply_end + 200)).to_lowercase();
        handle.leave();
        (dial.join().unwrap().0, format!("{greeting} | {reply}"))
    });
    let stdout = support::stdout(&out);
    println!("{stdout}\nheard: {heard_text}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        support::stderr(&out)
    );
    assert!(stdout.contains("answered (opus)"), "{stdout}");
    let (call_id, end_reason) = final_line(&stdout);
    assert_eq!(end_reason, "caller_hangup");
    let (call, events, turns) = stored_call(&env, &call_id);
    // Greeted by name (the callee is a cached customer), then the balance, and that is what
    // the callee heard.
    let said: Vec<&str> = turns
        .iter()
        .map(|t| t.agent_text.as_deref().unwrap_or(""))
        .collect();
    assert!(said[0].contains("Jane Doe"), "{said:?}");
    let answer = said
        .iter()
        .find(|t| t.contains("$142.50"))
        .unwrap_or_else(|| panic!("no balance read: {said:?}"));
    let shared = words(answer).intersection(&words(&heard_text)).count();
    assert!(shared >= 4, "stored {answer:?}, heard {heard_text:?}");
    assert_eq!(call.direction, store::CallDirection::Outbound);
    assert_eq!(call.transport, store::CallTransport::LiveKit);
    assert_eq!(
        (call.from_number.as_str(), call.to_number.as_str()),
        ("+15550100000", JANE)
    );
    let kinds = kinds(&events);
    assert!(
        kinds.contains(&"dialling") && kinds.contains(&"answered"),
        "{kinds:?}"
    );
    let dials: Vec<_> = fake
        .twirp_calls()
        .into_iter()
        .filter_map(|c| match c {
            TwirpCall::CreateSipParticipant(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(dials.len(), 1);
    assert_eq!(dials[0].sip_trunk_id, "ST_out");
    assert_eq!(dials[0].sip_call_to, JANE);
    assert_eq!(dials[0].sip_number, "+15550100000");
    assert!(dials[0].wait_until_answered);
    assert_eq!(dials[0].room_name, format!("call-{call_id}"));

    // Busy: exit 1, stored as busy with the SIP status.
    let (out, _) = run_agent(
        &env,
        &["dial", BUSY, "--trunk", "lk"],
        Duration::from_secs(30),
    );
    let stdout = support::stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        support::stderr(&out)
    );
    let (busy_id, end_reason) = final_line(&stdout);
    assert_eq!(end_reason, "busy", "{stdout}");
    let (_, events, _) = stored_call(&env, &busy_id);
    let failed = events
        .iter()
        .find(|e| e.kind.as_str() == "not_connected")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(failed.detail["sip"], 486, "{failed:?}");

    // Not allow-listed: refused (exit 2) before anything is dialled.
    let (out, _) = run_agent(
        &env,
        &["dial", "+15550200000", "--trunk", "lk"],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains("not in livekit.outbound_trunks.lk.allowed_destinations"),
        "{}",
        support::stderr(&out)
    );
    let dials = fake
        .twirp_calls()
        .iter()
        .filter(|c| matches!(c, TwirpCall::CreateSipParticipant(_)))
        .count();
    assert_eq!(dials, 2, "only Jane and the busy number were dialled");
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[test]
fn the_worker_declines_beyond_max_jobs_reconnects_and_survives_garbage() {
    let (rt, fake, _env, key, daemon) = registered_worker(1);

    let first = rt
        .block_on(fake.dispatch_sip_call(jane_calls(None)))
        .unwrap();
    rt.block_on(first.media_connected(Duration::from_secs(10)))
        .unwrap();
    // max_jobs = 1: a second call is declined (the server offers it to another worker).
    let second = rt.block_on(fake.dispatch_sip_call(SipCall {
        caller: "+15550177777".into(),
        dialled: DID.into(),
        ..SipCall::default()
    }));
    assert_eq!(second.err(), Some(FakeError::Declined));

    // The server drops the worker connection: the worker registers again, the call goes on.
    assert!(fake.drop_worker_connection());
    rt.block_on(fake.wait_registrations(2, Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}: {}", daemon.log_text()));
    // A frame that is not a ServerMessage: that connection is closed and counted, and the
    // worker registers a third time.
    assert!(fake.send_malformed_frame());
    rt.block_on(fake.wait_registrations(3, Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}: {}", daemon.log_text()));
    let metric = wait_metric(
        &daemon,
        "agent_livekit_worker_total{event=\"malformed_frames\"}",
        1.0,
    );
    assert_eq!(metric, 1.0);

    // The call is still up and still answered after both: the caller asks by key press.
    assert!(!first.agent_left());
    first.send_dtmf('1');
    let answered = wait_call(&daemon, &key, Duration::from_secs(15), |c| {
        turn_texts(c).iter().any(|t| t.contains("$142.50"))
    });
    assert_eq!(answered["transport"], "livekit");
    first.leave();
    wait_call(&daemon, &key, Duration::from_secs(10), |c| {
        c["status"] == "ended"
    });
    // The job's final status reached the server over the newest connection: no job lost.
    let deadline = Instant::now() + Duration::from_secs(10);
    while job_statuses(&fake, first.job_id()).last() != Some(&proto::JobStatus::JsSuccess) {
        assert!(Instant::now() < deadline, "no final job status");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Capacity is free again: the next call is taken; the server terminating its job ends it.
    let third = rt
        .block_on(fake.dispatch_sip_call(jane_calls(None)))
        .unwrap_or_else(|e| panic!("{e}: {}", daemon.log_text()));
    rt.block_on(third.media_connected(Duration::from_secs(10)))
        .unwrap();
    assert!(fake.terminate_job(third.job_id()));
    let deadline = Instant::now() + Duration::from_secs(15);
    while job_statuses(&fake, third.job_id()).last() != Some(&proto::JobStatus::JsSuccess) {
        assert!(
            Instant::now() < deadline,
            "terminated job not finished: {}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stored = calls(&daemon, &key);
    assert_eq!(stored.len(), 2, "{stored:#?}");
    assert!(stored.iter().all(|c| c["status"] == "ended"), "{stored:#?}");
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

/// The statuses the worker reported for `job_id`, in order.
fn job_statuses(fake: &FakeLiveKit, job_id: &str) -> Vec<proto::JobStatus> {
    fake.worker_messages()
        .into_iter()
        .filter_map(|r| match r.message.message {
            Some(proto::worker_message::Message::UpdateJob(u)) if u.job_id == job_id => {
                Some(u.status())
            }
            _ => None,
        })
        .collect()
}

/// Polls /metrics until the sample `name` reaches `at_least`; returns its value.
fn wait_metric(daemon: &Daemon, name: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = http_get(&daemon.url("/metrics"), None).unwrap_or_default();
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if let Some(v) = value.filter(|v| *v >= at_least) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {at_least}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn livekit_settings_are_checked_and_named() {
    let env = Env::new("[livekit]\nurl = \"ftp://lk.example\"\n");
    let out = env.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains("url"),
        "{}",
        support::stderr(&out)
    );
    let env = Env::new("[livekit]\nurl = \"wss://lk.example\"\n");
    let out = env.run(&["serve"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        support::stderr(&out).contains("livekit.api_key"),
        "{}",
        support::stderr(&out)
    );
    // Outbound trunks: a LiveKit trunk id, and a name no [[trunks]] entry has.
    for (config, names) in [
        (
            "[[livekit.outbound_trunks]]\nname = \"lk\"\ntrunk_id = \"lk-1\"\n",
            "outbound_trunks[0].trunk_id",
        ),
        (
            "[[livekit.outbound_trunks]]\nname = \"kam\"\ntrunk_id = \"ST_1\"\n\
             [[trunks]]\nname = \"kam\"\nproxy = \"127.0.0.1:5060\"\n",
            "livekit.outbound_trunks[0].name",
        ),
    ] {
        let out = Env::new(config).run(&["check-config"]);
        assert_eq!(out.status.code(), Some(2), "{config}");
        assert!(
            support::stderr(&out).contains(names),
            "{config}: {}",
            support::stderr(&out)
        );
    }
}
