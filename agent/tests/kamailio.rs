//! Interop through a SIP provider: Kamailio (registrar + proxy, digest auth) between the agent
//! and baresip phones, everything on 127.0.0.1 with free ports.
//!
//! - the daemon registers (401 challenge) and takes a call that alice places through the
//!   proxy (407 challenge on her side);
//! - `agent dial` calls bob through the proxy (407 on our side); bob's phone answers and hears
//!   the greeting;
//! - `agent dial` refuses numbers not allow-listed (nothing reaches the proxy) and reports
//!   callees that do not connect (404 from the proxy, no answer within the ringing timeout).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::dial::{final_line, kinds, run_agent, spawn_agent, stored_call};
use support::kamailio::Kamailio;
use support::peers::Baresip;
use support::speech::{Recording, transcribe, whisper_model, words};
use support::{Daemon, Env, http_get};

/// The agent's config: the whisper model, short silence timeout, and trunk `kam` to Kamailio.
fn env_with_trunk(kam: &Kamailio, register: bool, extra: &str) -> Env {
    Env::new(&format!(
        "[stt]\nmodel = \"{model}\"\nthreads = 1\n\
         [call]\nsilence_timeout_secs = 3\n{extra}\n\
         [[trunks]]\nname = \"kam\"\nproxy = \"sip:{proxy}\"\nusername = \"agent\"\n\
         password = \"agentpw\"\nrealm = \"127.0.0.1\"\nregister = {register}\n\
         register_expires = 300\nkeepalive_secs = 0\nallowed_destinations = [\"bob\", \"carol\"]\n",
        model = whisper_model().display(),
        proxy = kam.addr(),
    ))
}

/// 8 kHz mono silence (what an answering phone "says").
fn silence(path: &Path, secs: u32) {
    let status = Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
        .arg(path)
        .args(["trim", "0", &secs.to_string()])
        .status()
        .expect("sox");
    assert!(status.success());
}

/// What `phone` heard, once its recording holds at least `secs` seconds (baresip completes
/// the file when it sees the BYE, a moment after the agent stored the call as ended).
fn heard_by(phone: &Baresip, secs: usize) -> Recording {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (dec, _) = phone.recordings();
        let heard = Recording::read(&dec);
        if heard.samples.len() >= secs * heard.rate as usize || Instant::now() > deadline {
            return heard;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An admin key (GET /v1/trunks needs the admin role).
fn admin_key(env: &Env) -> String {
    let out = env.run(&["keys", "create", "--tenant", "default", "--role", "admin"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    support::stdout(&out).lines().last().unwrap().to_owned()
}

#[test]
fn daemon_registers_with_kamailio_and_answers_a_call_routed_through_it() {
    let kam = Kamailio::start();
    let env = env_with_trunk(&kam, true, "");
    let key = admin_key(&env);
    let daemon = env.serve();

    // Registered: 401 answered with the trunk's credentials, the binding saved.
    let deadline = Instant::now() + Duration::from_secs(10);
    let trunk = loop {
        let (status, body) = http_get(&daemon.url("/v1/trunks"), Some(&key)).unwrap();
        assert_eq!(status, 200, "{body}");
        let list: Value = serde_json::from_str(&body).unwrap();
        let trunk = list["trunks"][0].clone();
        if trunk["registered"] == true || Instant::now() > deadline {
            break trunk;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(trunk["name"], "kam");
    assert_eq!(
        trunk["registered"],
        true,
        "{trunk:#}\n{}",
        daemon.log_text()
    );
    assert!(trunk["expires_at"].is_i64(), "{trunk:#}");
    assert!(
        !kam.log_lines("CHALLENGE 401 REGISTER from sip:agent@127.0.0.1")
            .is_empty(),
        "{}",
        kam.log()
    );
    assert!(
        !kam.log_lines("REGISTER saved for sip:agent@127.0.0.1")
            .is_empty(),
        "{}",
        kam.log()
    );

    // Alice calls sip:agent@ the proxy; Kamailio challenges her (407), then routes the call
    // to the daemon's registered contact. She stays silent: the agent greets, reprompts once
    // and hangs up after call.silence_timeout_secs.
    let work = tempfile::tempdir().unwrap();
    let clip = work.path().join("alice.wav");
    silence(&clip, 60);
    let alice = Baresip::dial_via_proxy(
        work.path(),
        "alice",
        "alicepw",
        &kam.addr(),
        &format!("sip:agent@{}", kam.addr()),
        &clip,
        Duration::from_secs(60),
    );

    // Stored: one inbound call from alice, answered and ended by the agent.
    let mut call = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let (status, body) = http_get(&daemon.url("/v1/calls"), Some(&key)).unwrap();
        assert_eq!(status, 200, "{body}");
        let list: Value = serde_json::from_str(&body).unwrap();
        let calls = list["calls"].as_array().unwrap();
        assert!(calls.len() <= 1, "{body}");
        if let Some(id) = calls.first().and_then(|c| c["id"].as_str()) {
            let (_, body) = http_get(&daemon.url(&format!("/v1/calls/{id}")), Some(&key)).unwrap();
            call = serde_json::from_str(&body).unwrap();
            if call["status"] == "ended" {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(call["status"], "ended", "{call:#}\n{}", daemon.log_text());
    assert_eq!(call["direction"], "inbound");
    assert_eq!(
        (&call["from"], &call["to"]),
        (&"alice".into(), &"agent".into()),
        "{call:#}"
    );
    assert!(call["answered_at"].is_i64(), "{call:#}");
    assert_eq!(call["end_reason"], "silence_timeout", "{call:#}");
    assert!(alice.established(), "{}", alice.log());
    assert!(
        !kam.log_lines("CHALLENGE 407 INVITE from sip:alice@127.0.0.1")
            .is_empty(),
        "{}",
        kam.log()
    );
    assert!(
        !kam.log_lines("AUTHENTICATED INVITE from sip:alice@127.0.0.1 to sip:agent@")
            .is_empty(),
        "{}",
        kam.log()
    );

    // Media went peer to peer after the proxied signalling: alice heard the greeting.
    let heard = heard_by(&alice, 8);
    let greeting = transcribe(&heard.to_16k(0, 8_000)).to_lowercase();
    println!("alice heard: {greeting}");
    let w = words(&greeting);
    assert!(
        w.contains("thank") || w.contains("calling"),
        "greeting not heard: {greeting:?}"
    );
    let (code, _) = daemon.terminate();
    assert_eq!(code, Some(0));
}

#[test]
fn agent_dial_calls_bob_through_kamailio_and_bob_hears_the_greeting() {
    let kam = Kamailio::start();
    let work = tempfile::tempdir().unwrap();
    let clip = work.path().join("bob.wav");
    silence(&clip, 120);
    let mut bob = Baresip::answer_registered(
        work.path(),
        "bob",
        "bobpw",
        &kam.addr(),
        &clip,
        Duration::from_secs(120),
    );
    bob.wait_registered(Duration::from_secs(10));

    let env = env_with_trunk(&kam, false, "");
    let (out, took) = run_agent(
        &env,
        &["dial", "bob", "--trunk", "kam", "--flow", "receptionist"],
        Duration::from_secs(90),
    );
    let stdout = support::stdout(&out);
    println!("agent dial took {took:?}:\n{stdout}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        support::stderr(&out)
    );
    assert!(
        stdout.contains(&format!("dialling sip:bob@{}", kam.addr())),
        "{stdout}"
    );
    assert!(stdout.contains("answered (PCMU)"), "{stdout}");
    let (call_id, end_reason) = final_line(&stdout);
    // Bob says nothing: reprompt, goodbye, the agent hangs up.
    assert_eq!(end_reason, "silence_timeout");

    // Through the proxy: our INVITE was challenged (407) and then accepted with credentials.
    assert!(
        !kam.log_lines("CHALLENGE 407 INVITE from sip:agent@127.0.0.1")
            .is_empty(),
        "{}",
        kam.log()
    );
    assert!(
        kam.log_lines("AUTHENTICATED INVITE from sip:agent@127.0.0.1")
            .iter()
            .any(|l| l.contains(" to sip:bob@")),
        "{}",
        kam.log()
    );

    let (call, events, _) = stored_call(&env, &call_id);
    assert_eq!(call.direction, store::CallDirection::Outbound);
    assert_eq!(
        (call.from_number.as_str(), call.to_number.as_str()),
        ("agent", "bob")
    );
    assert_eq!(call.flow.as_deref(), Some("receptionist"));
    assert!(call.answered_at.is_some(), "{call:?}");
    assert_eq!(
        call.end_reason.as_ref().map(store::EndReason::as_str),
        Some("silence_timeout")
    );
    let kinds = kinds(&events);
    assert!(
        kinds.contains(&"dialling") && kinds.contains(&"answered"),
        "{kinds:?}"
    );

    // What bob's phone heard starts with the flow's greeting.
    assert!(bob.established(), "{}", bob.log());
    let heard = heard_by(&bob, 8);
    let greeting = transcribe(&heard.to_16k(0, 8_000)).to_lowercase();
    println!("bob heard: {greeting}");
    let w = words(&greeting);
    assert!(
        w.contains("thank") || w.contains("calling"),
        "greeting not heard: {greeting:?}"
    );
}

#[test]
fn agent_dial_refuses_numbers_not_allowed_and_reports_calls_that_do_not_connect() {
    let kam = Kamailio::start();
    let env = env_with_trunk(&kam, false, "ringing_timeout_secs = 2");

    // Refused before dialling: exit 2, and nothing reached the proxy.
    for (args, why) in [
        (
            ["dial", "dave", "--trunk", "kam"],
            "not in trunks.kam.allowed_destinations",
        ),
        (
            ["dial", "bob", "--trunk", "nope"],
            "no trunk named \"nope\"",
        ),
    ] {
        let (out, _) = run_agent(&env, &args, Duration::from_secs(30));
        let stderr = support::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
    let (out, _) = run_agent(
        &env,
        &["dial", "bob", "--trunk", "kam", "--flow", "nope"],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
    assert!(support::stderr(&out).contains("flow \"nope\" is not loaded"));
    assert!(kam.log_lines("REQ INVITE").is_empty(), "{}", kam.log());

    // Carol is allow-listed but not registered: the proxy answers 404 after authenticating us.
    let (out, _) = run_agent(
        &env,
        &["dial", "carol", "--trunk", "kam"],
        Duration::from_secs(30),
    );
    let stderr = support::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("carol did not connect: rejected (404"),
        "{stderr}"
    );
    let (call_id, end_reason) = final_line(&support::stdout(&out));
    assert_eq!(end_reason, "rejected");
    let (call, events, _) = stored_call(&env, &call_id);
    assert_eq!(
        call.end_reason.as_ref().map(store::EndReason::as_str),
        Some("rejected")
    );
    assert!(call.answered_at.is_none());
    let failed = events
        .iter()
        .find(|e| e.kind == "not_connected")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(failed.detail["sip"], "remote_rejected", "{failed:?}");

    // Bob's phone rings but nobody answers: cancelled after call.ringing_timeout_secs.
    let work = tempfile::tempdir().unwrap();
    let clip = work.path().join("bob.wav");
    silence(&clip, 5);
    let mut bob = Baresip::ring_registered(
        work.path(),
        "bob",
        "bobpw",
        &kam.addr(),
        &clip,
        Duration::from_secs(60),
    );
    bob.wait_registered(Duration::from_secs(10));
    let (out, took) = run_agent(
        &env,
        &["dial", "bob", "--trunk", "kam"],
        Duration::from_secs(30),
    );
    let stdout = support::stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        support::stderr(&out)
    );
    assert!(stdout.contains("ringing"), "{stdout}");
    let (call_id, end_reason) = final_line(&stdout);
    assert_eq!(end_reason, "no_answer");
    let (call, events, _) = stored_call(&env, &call_id);
    assert_eq!(
        call.end_reason.as_ref().map(store::EndReason::as_str),
        Some("no_answer")
    );
    assert!(kinds(&events).contains(&"ringing"), "{events:?}");
    let rang = events.iter().find(|e| e.kind == "ringing").unwrap().at;
    let ended = call.ended_at.unwrap();
    assert!(
        (1_800..6_000).contains(&(ended - rang)),
        "rang for {} ms with a 2 s ringing timeout (dial took {took:?})",
        ended - rang
    );

    // SIGINT while it rings: the INVITE is cancelled at once (default 30 s ringing timeout).
    let env = env_with_trunk(&kam, false, "");
    let mut dial = spawn_agent(&env, &["dial", "bob", "--trunk", "kam"]);
    let lines = std::io::BufRead::lines(std::io::BufReader::new(dial.stdout.take().unwrap()));
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut stdout = Vec::new();
    while !stdout.iter().any(|l: &String| l == "ringing") {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => stdout.push(line),
            Err(e) => panic!("no ringing ({e}): {stdout:?}"),
        }
    }
    let interrupted = Instant::now();
    Command::new("kill")
        .args(["-INT", &dial.id().to_string()])
        .status()
        .unwrap();
    let status = dial.wait().unwrap();
    let took = interrupted.elapsed();
    reader.join().unwrap();
    stdout.extend(rx.try_iter());
    let stdout = stdout.join("\n");
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(took < Duration::from_secs(5), "hung up after {took:?}");
    let (call_id, end_reason) = final_line(&stdout);
    assert_eq!(end_reason, "daemon_shutdown", "{stdout}");
    assert!(
        !kam.log_lines("REQ CANCEL sip:bob@").is_empty(),
        "{}",
        kam.log()
    );
    let (call, _, _) = stored_call(&env, &call_id);
    assert_eq!(
        call.end_reason.as_ref().map(store::EndReason::as_str),
        Some("daemon_shutdown")
    );
}

#[test]
fn a_caller_asking_for_a_person_is_transferred_by_refer_to_a_phone_that_answers() {
    let kam = Kamailio::start();
    let (_flows, _env, key, daemon) = transfer_daemon(&kam, "");

    let work = tempfile::tempdir().unwrap();
    let bob = bob_registered(&kam, work.path(), |clip| silence(clip, 40), 45);
    let _alice = alice_calls_agent(
        &kam,
        work.path(),
        |clip| sequence(&[("human_please_8k.wav", 6.0)], 30.0, clip),
        45,
    );

    let call = support::admin::ended_call(&daemon, &key, Duration::from_secs(45));
    assert_eq!(call["status"], "ended", "{call:#}\n{}", daemon.log_text());
    let events = call["events"].as_array().unwrap();
    let transfer: Vec<&Value> = events.iter().filter(|e| e["kind"] == "transfer").collect();
    assert!(
        transfer.iter().any(|e| e["detail"]["state"] == "requested"
            && e["detail"]["uri"]
                .as_str()
                .is_some_and(|u| u.starts_with("sip:bob@"))),
        "REFER to bob: {call:#}"
    );
    assert!(
        transfer.iter().any(|e| e["detail"]["state"] == "accepted"),
        "the transfer was accepted: {call:#}\n{}",
        daemon.log_text()
    );
    assert_eq!(call["end_reason"], "transferred", "{call:#}");
    // alice's phone followed the REFER: bob's phone answered a call from alice.
    assert!(bob.established(), "{}", bob.log());
    assert!(
        !kam.log_lines("AUTHENTICATED INVITE from sip:alice@127.0.0.1 to sip:bob@")
            .is_empty(),
        "{}",
        kam.log()
    );
}

/// Answering-machine detection over real SIP: carol's phone answers with a recorded machine
/// greeting and its beep (`machine_anna`, from the AMD set); the agent stays quiet through the
/// greeting, leaves the payment-reminder flow's voicemail message after the beep, and the call
/// ends as `voicemail` with the detector's verdict and the beep stored as events.
#[test]
fn agent_dial_leaves_the_voicemail_message_after_a_machines_beep() {
    let kam = Kamailio::start_with_users(&[("carol", "carolpw")]);
    let work = tempfile::tempdir().unwrap();
    let greeting =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../audio/tests/data/amd/machine_anna.wav");
    let clip = work.path().join("carol.wav");
    support::peers::padded_clip(&greeting, &clip, 0.0, 60.0);
    let mut carol = Baresip::answer_registered(
        work.path(),
        "carol",
        "carolpw",
        &kam.addr(),
        &clip,
        Duration::from_secs(90),
    );
    carol.wait_registered(Duration::from_secs(10));

    let env = env_with_trunk(&kam, false, "");
    let (out, _) = run_agent(
        &env,
        &[
            "dial",
            "carol",
            "--trunk",
            "kam",
            "--flow",
            "payment_reminder",
        ],
        Duration::from_secs(90),
    );
    let stdout = support::stdout(&out);
    println!("{stdout}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        support::stderr(&out)
    );
    let (call_id, end_reason) = final_line(&stdout);
    assert_eq!(end_reason, "voicemail");

    let (_, events, turns) = stored_call(&env, &call_id);
    let detail = |kind: &str| {
        events
            .iter()
            .find(|e| e.kind.as_str() == kind)
            .map(|e| e.detail.clone())
            .unwrap_or_else(|| panic!("no {kind} event: {:?}", kinds(&events)))
    };
    let amd = detail("amd");
    assert_eq!(amd["verdict"], "machine", "{amd}");
    assert!(amd["after_ms"].as_u64().unwrap() <= 3_000, "{amd}");
    let beep = detail("amd_beep");
    // The beep ends 4.96 s into the recording; the answer-to-playback offset adds a little.
    let beep_at = beep["at_ms"].as_u64().unwrap();
    assert!((4_700..=5_800).contains(&beep_at), "{beep}");
    // The only thing said is the voicemail message: no greeting over the machine's.
    assert_eq!(turns.len(), 1, "{turns:?}");
    let message = turns[0].agent_text.clone().unwrap_or_default();
    assert!(
        message.starts_with("Hello, this is Ava from Acme Plumbing"),
        "{message}"
    );

    // What carol's machine recorded: nothing during its greeting, the message after the beep.
    let heard = heard_by(&carol, 12);
    let during_greeting = heard.onset_after(0, -40.0, 200);
    assert!(
        during_greeting.is_some_and(|at| at + 300 >= beep_at),
        "the agent spoke at {during_greeting:?} ms, before the beep at {beep_at} ms"
    );
    let after = transcribe(&heard.to_16k(
        beep_at,
        heard.samples.len() as u64 * 1_000 / u64::from(heard.rate),
    ))
    .to_lowercase();
    println!("carol's machine recorded: {after}");
    let shared = words(&message).intersection(&words(&after)).count();
    assert!(shared >= 5, "stored {message:?}, recorded {after:?}");
}

/// The receptionist with its front desk at bob (a phone registered at the proxy) and
/// transfers allowed at any hour, in a flows directory of its own.
fn front_desk_at_bob() -> tempfile::TempDir {
    let flows = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/flows/receptionist.toml"),
    )
    .unwrap();
    let flow = original
        .replacen("front_desk = \"+15550100100\"", "front_desk = \"bob\"", 1)
        .replacen(
            "transfer_outside_hours = false",
            "transfer_outside_hours = true",
            1,
        );
    assert!(
        flow.contains("front_desk = \"bob\"") && flow.contains("transfer_outside_hours = true")
    );
    std::fs::write(flows.path().join("receptionist.toml"), flow).unwrap();
    flows
}

/// `[call]` settings for warm transfers through the proxy.
const WARM: &str = "transfer_mode = \"warm\"\ntransfer_trunk = \"kam\"";

/// A daemon registered at the proxy running [`front_desk_at_bob`] (`call_extra` goes into
/// `[call]`), with an admin key. Keep the flows directory and the env alive with it.
fn transfer_daemon(kam: &Kamailio, call_extra: &str) -> (tempfile::TempDir, Env, String, Daemon) {
    let flows = front_desk_at_bob();
    let env = env_with_trunk(kam, true, call_extra);
    let key = admin_key(&env);
    let daemon = env.serve_with(
        &[],
        &[("AGENT__FLOWS__DIR", flows.path().to_str().unwrap())],
    );
    (flows, env, key, daemon)
}

/// Bob's phone, registered at the proxy, answering with the clip `make_clip` writes (for
/// `secs`); returns once bob and the daemon are both registered, so calls to either route.
fn bob_registered(
    kam: &Kamailio,
    work: &Path,
    make_clip: impl FnOnce(&Path),
    secs: u64,
) -> Baresip {
    let dir = work.join("bob");
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("bob.wav");
    make_clip(&clip);
    let mut bob = Baresip::answer_registered(
        &dir,
        "bob",
        "bobpw",
        &kam.addr(),
        &clip,
        Duration::from_secs(secs),
    );
    bob.wait_registered(Duration::from_secs(10));
    assert!(
        kam.wait_log(
            "REGISTER saved for sip:agent@127.0.0.1",
            Duration::from_secs(10)
        ),
        "{}",
        kam.log()
    );
    bob
}

/// Alice calls sip:agent@ through the proxy, playing the clip `make_clip` writes, for `secs`.
fn alice_calls_agent(
    kam: &Kamailio,
    work: &Path,
    make_clip: impl FnOnce(&Path),
    secs: u64,
) -> Baresip {
    let dir = work.join("alice");
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("alice.wav");
    make_clip(&clip);
    Baresip::dial_via_proxy(
        &dir,
        "alice",
        "alicepw",
        &kam.addr(),
        &format!("sip:agent@{}", kam.addr()),
        &clip,
        Duration::from_secs(secs),
    )
}

/// `sox` concatenation of (clip, silence before it in s) parts, then `after` s of silence.
fn sequence(parts: &[(&str, f32)], after: f32, out: &Path) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../audio/tests/data");
    let dir = out.parent().unwrap();
    let mut files = Vec::new();
    for (i, (clip, before)) in parts.iter().enumerate() {
        let padded = dir.join(format!("part-{i}.wav"));
        let tail = if i + 1 == parts.len() { after } else { 0.0 };
        support::peers::padded_clip(&data.join(clip), &padded, *before, tail);
        files.push(padded);
    }
    let status = Command::new("sox")
        .args(&files)
        .arg(out)
        .status()
        .expect("sox");
    assert!(status.success());
}

/// Warm transfer (`call.transfer_mode = "warm"`): alice asks for a person; the daemon calls
/// bob itself through the trunk, tells him who is calling and what they said, then bridges
/// the two — bob hears alice's next question, alice hears bob's answer — until alice hangs up.
#[test]
fn a_warm_transfer_briefs_the_target_then_bridges_the_caller() {
    let kam = Kamailio::start();
    let (_flows, _env, key, daemon) = transfer_daemon(&kam, WARM);

    let work = tempfile::tempdir().unwrap();
    // Bob listens to the brief, then (bridged by then) answers alice.
    let bob = bob_registered(
        &kam,
        work.path(),
        |clip| sequence(&[("yes_correct_8k.wav", 20.0)], 20.0, clip),
        60,
    );
    // A person, please (after the greeting); then, once put through, a question for bob.
    let alice = alice_calls_agent(
        &kam,
        work.path(),
        |clip| {
            sequence(
                &[
                    ("human_please_8k.wav", 6.0),
                    ("balance_question_8k.wav", 22.0),
                ],
                8.0,
                clip,
            )
        },
        42,
    );

    let call = support::admin::ended_call(&daemon, &key, Duration::from_secs(70));
    let events = call["events"].as_array().unwrap();
    let transfer: Vec<&Value> = events.iter().filter(|e| e["kind"] == "transfer").collect();
    assert!(
        transfer.iter().any(|e| e["detail"]["state"] == "accepted"),
        "{call:#}\n{}",
        daemon.log_text()
    );
    assert_eq!(call["end_reason"], "transferred", "{call:#}");
    // Our INVITE to bob went through the proxy (not a REFER from alice's phone).
    assert!(
        kam.log_lines("AUTHENTICATED INVITE from sip:agent@127.0.0.1")
            .iter()
            .any(|l| l.contains(" to sip:bob@")),
        "{}",
        kam.log()
    );
    assert!(
        kam.log_lines("AUTHENTICATED INVITE from sip:alice@127.0.0.1 to sip:bob@")
            .is_empty(),
        "a blind transfer happened instead"
    );

    // What bob heard: the brief with alice's words, then alice herself.
    let bob_heard = heard_by(&bob, 20);
    let bob_ms = bob_heard.duration_ms();
    let brief = transcribe(&bob_heard.to_16k(0, 10_000)).to_lowercase();
    let later = transcribe(&bob_heard.to_16k(10_000, bob_ms.min(38_000))).to_lowercase();
    println!("bob heard: {brief} | {later}");
    let w = words(&brief);
    assert!(
        w.contains("caller") && (w.contains("person") || w.contains("human")),
        "brief: {brief:?}"
    );
    assert!(later.contains("balance"), "alice relayed to bob: {later:?}");
    // What alice heard after the brief: bob's answer.
    let alice_heard = heard_by(&alice, 35);
    let end = alice_heard.duration_ms();
    let from_bob = transcribe(&alice_heard.to_16k(end.saturating_sub(20_000), end)).to_lowercase();
    println!("alice heard at the end: {from_bob}");
    assert!(
        from_bob.contains("correct"),
        "bob relayed to alice: {from_bob:?}"
    );
}

/// A warm transfer nobody takes (bob's phone is not registered: the proxy answers 404): the
/// caller is back with the flow, told so, and the call goes on.
#[test]
fn a_warm_transfer_nobody_takes_returns_the_caller_to_the_flow() {
    let kam = Kamailio::start();
    let (_flows, _env, key, daemon) = transfer_daemon(&kam, WARM);
    assert!(
        kam.wait_log(
            "REGISTER saved for sip:agent@127.0.0.1",
            Duration::from_secs(10)
        ),
        "{}",
        kam.log()
    );
    let work = tempfile::tempdir().unwrap();
    let _alice = alice_calls_agent(
        &kam,
        work.path(),
        |clip| sequence(&[("human_please_8k.wav", 6.0)], 16.0, clip),
        24,
    );
    let call = support::admin::ended_call(&daemon, &key, Duration::from_secs(40));
    let failed = support::admin::event(&call, "transfer_failed")
        .unwrap_or_else(|| panic!("{call:#}\n{}", daemon.log_text()));
    assert_eq!(failed["detail"]["status"], 404, "{failed}");
    assert_ne!(call["end_reason"], "transferred", "{call:#}");
    let said: Vec<&str> = call["turns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["agent_text"].as_str())
        .collect();
    assert!(
        said.iter().any(|t| t.contains("couldn't put you through")),
        "the caller was told: {said:?}"
    );
}
