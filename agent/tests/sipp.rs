//! SIPp interop suite: each scenario in tests/sipp/*.xml runs once against a freshly started
//! daemon. A test asserts SIPp's exit status (the message flow happened as scripted), what the
//! daemon sent (headers and SDP, from SIPp's message trace) and, where the call reached the
//! application, what the daemon stored (admin API, polled with a deadline).
//!
//! Needs `sipp` (Debian `sip-tester`, 3.6) and the whisper test model (the daemon needs an STT
//! model to keep a call up: without one it apologises and hangs up). `play_pcap_audio` uses a
//! raw socket, so the DTMF test needs root or CAP_NET_RAW (./test runs as root).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use support::admin::{ended_call, event, event_kinds, supervisor_key, wait_for_call};
use support::sipp::{SippRun, TracedMessage, run, scenario};
use support::speech::whisper_model;
use support::{Daemon, Env};

/// A daemon config with the test whisper model.
fn env(extra: &str) -> Env {
    Env::new(&format!(
        "[stt]\nmodel = \"{}\"\nthreads = 1\n{extra}",
        whisper_model().display()
    ))
}

fn sipp(daemon: &Daemon, env: &Env, name: &str, within: Duration) -> SippRun {
    let r = run(&scenario(name), env.sip, &[], within);
    assert!(
        r.succeeded(),
        "{name}: sipp exit {:?}\n{}\nladder:\n{}\ndaemon log:\n{}",
        r.code,
        r.output,
        r.ladder(),
        daemon.log_text()
    );
    r
}

/// Distinct responses (retransmissions dropped) by CSeq, e.g. "2 INVITE" → its 200.
fn final_by_cseq(r: &SippRun, status: u16) -> BTreeMap<String, &TracedMessage> {
    r.responses()
        .into_iter()
        .filter(|(s, _, _)| *s == status)
        .filter_map(|(_, _, m)| Some((m.header("CSeq")?.to_owned(), m)))
        .collect()
}

fn statuses(r: &SippRun) -> Vec<u16> {
    r.responses().iter().map(|(s, _, _)| *s).collect()
}

#[test]
fn invite_without_a_common_codec_gets_488_and_our_ack_stops_it() {
    let env = env("");
    let daemon = env.serve();
    let r = sipp(
        &daemon,
        &env,
        "no_common_codec.xml",
        Duration::from_secs(15),
    );
    let all = statuses(&r);
    assert!(
        all.iter().all(|s| [100, 488].contains(s)),
        "only 100/488 expected: {all:?}"
    );
    // The scenario waits 1.6 s after its ACK: a 488 retransmitted meanwhile (Timer G, 500 ms)
    // would mean the daemon did not match the ACK to its transaction.
    assert_eq!(
        r.responses_to("INVITE", 488).len(),
        1,
        "488 retransmitted after the ACK:\n{}",
        r.ladder()
    );
    assert!(r.requests_received().is_empty(), "{}", r.ladder());
}

#[test]
fn cancel_while_ringing_gets_200_then_487_and_the_call_is_stored_as_caller_hangup() {
    let env = env("[call]\nanswer_delay_ms = 3000\n");
    let key = supervisor_key(&env);
    let daemon = env.serve();
    let r = sipp(&daemon, &env, "cancel.xml", Duration::from_secs(20));
    let to_cancel = r.responses_to("CANCEL", 200);
    let terminated = r.responses_to("INVITE", 487);
    assert_eq!(to_cancel.len(), 1, "{}", r.ladder());
    assert_eq!(terminated.len(), 1, "{}", r.ladder());
    assert!(
        r.responses_to("INVITE", 200).is_empty(),
        "answered despite the CANCEL:\n{}",
        r.ladder()
    );
    let tag = |m: &TracedMessage| {
        m.header("To")
            .and_then(|t| t.split_once(";tag=").map(|x| x.1.to_owned()))
    };
    assert!(
        tag(terminated[0]).is_some(),
        "487 carries a To tag: {}",
        terminated[0].text
    );

    let call = ended_call(&daemon, &key, Duration::from_secs(10));
    assert_eq!(call["end_reason"], "caller_hangup", "{call:#}");
    assert!(call["answered_at"].is_null(), "never answered: {call:#}");
    let (start, end) = (
        call["started_at"].as_i64().unwrap(),
        call["ended_at"].as_i64().unwrap(),
    );
    assert!(
        end - start < 3_000,
        "the CANCEL ends the call at once, not after the ring delay: {} ms",
        end - start
    );
}

#[test]
fn bye_from_the_caller_during_the_greeting_ends_the_call_as_caller_hangup() {
    let env = env("");
    let key = supervisor_key(&env);
    let daemon = env.serve();
    let r = sipp(
        &daemon,
        &env,
        "bye_during_speech.xml",
        Duration::from_secs(20),
    );
    assert_eq!(r.responses_to("BYE", 200).len(), 1, "{}", r.ladder());
    assert!(
        r.requests_received().is_empty(),
        "the daemon sent a request of its own:\n{}",
        r.ladder()
    );

    let call = ended_call(&daemon, &key, Duration::from_secs(10));
    assert_eq!(call["end_reason"], "caller_hangup", "{call:#}");
    let answered = call["answered_at"].as_i64().expect("answered");
    let ended = call["ended_at"].as_i64().unwrap();
    // BYE 1 s after the ACK; the call is over when it arrives (not when the greeting ends).
    assert!(
        (900..3_000).contains(&(ended - answered)),
        "answered → ended {} ms",
        ended - answered
    );
    let greeting = call["turns"]
        .as_array()
        .and_then(|t| t.first())
        .unwrap_or_else(|| panic!("a greeting turn: {call:#}"));
    assert!(
        greeting["agent_text"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{call:#}"
    );
    let media = event(&call, "media").unwrap_or_else(|| panic!("media event: {call:#}"));
    let frames = media["detail"]["frames_sent"].as_i64().unwrap_or(0);
    // The agent was speaking (frames on the wire) and stopped at the BYE: no more frames than
    // the call lasted.
    assert!(frames > 10, "frames sent {frames}: {media}");
    assert!(
        frames * 20 <= ended - answered + 500,
        "{frames} frames in a {} ms call",
        ended - answered
    );
}

#[test]
fn options_gets_200_with_allow_and_supported() {
    let env = env("");
    let daemon = env.serve();
    let r = sipp(&daemon, &env, "options.xml", Duration::from_secs(10));
    let ok = r.responses_to("OPTIONS", 200);
    assert_eq!(ok.len(), 1, "{}", r.ladder());
    let allow = ok[0].tokens("Allow");
    for m in ["invite", "ack", "bye", "cancel", "options"] {
        assert!(allow.iter().any(|a| a == m), "Allow lacks {m}: {allow:?}");
    }
    let supported = ok[0].tokens("Supported");
    assert!(
        supported.iter().any(|s| s == "timer"),
        "Supported: {supported:?}\n{}",
        ok[0].text
    );
}

#[test]
fn rfc2833_dtmf_played_from_a_pcap_is_stored_as_a_dtmf_event() {
    let env = env("");
    let key = supervisor_key(&env);
    let daemon = env.serve();
    let r = sipp(&daemon, &env, "dtmf_2833.xml", Duration::from_secs(20));
    assert_eq!(r.responses_to("BYE", 200).len(), 1, "{}", r.ladder());
    let answer = r.responses_to("INVITE", 200);
    assert!(
        answer[0].body().contains("telephone-event/8000"),
        "the answer keeps telephone-event: {}",
        answer[0].text
    );
    let call = wait_for_call(
        &daemon,
        &key,
        Duration::from_secs(10),
        "with a dtmf event",
        |c| c["status"] == "ended" && event(c, "dtmf").is_some(),
    );
    let digits: Vec<&Value> = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "dtmf")
        .collect();
    // One event in the pcap (8 packets, the end packet sent three times): one digit.
    assert_eq!(digits.len(), 1, "{:?}", event_kinds(&call));
    assert_eq!(digits[0]["detail"]["digit"], "1", "{}", digits[0]);
}

#[test]
fn invite_requiring_100rel_gets_420_with_unsupported_100rel() {
    let env = env("");
    let daemon = env.serve();
    let r = sipp(&daemon, &env, "require_100rel.xml", Duration::from_secs(10));
    let bad = r.responses_to("INVITE", 420);
    assert_eq!(bad.len(), 1, "{}", r.ladder());
    assert_eq!(
        bad[0].tokens("Unsupported"),
        vec!["100rel"],
        "{}",
        bad[0].text
    );
    assert!(
        statuses(&r).iter().all(|s| [100, 420].contains(s)),
        "{}",
        r.ladder()
    );
}

#[test]
fn reinvite_hold_is_answered_recvonly_and_resume_sendrecv() {
    let env = env("");
    let key = supervisor_key(&env);
    let daemon = env.serve();
    let r = sipp(&daemon, &env, "hold_resume.xml", Duration::from_secs(20));
    let ok = final_by_cseq(&r, 200);
    let sdp = |cseq: &str| {
        *ok.get(cseq)
            .unwrap_or_else(|| panic!("no 200 to {cseq}:\n{}", r.ladder()))
    };
    let (first, hold, resume) = (sdp("1 INVITE"), sdp("2 INVITE"), sdp("3 INVITE"));
    assert!(
        first.sdp_directions().iter().all(|d| *d == "sendrecv"),
        "{}",
        first.text
    );
    assert_eq!(hold.sdp_directions(), vec!["recvonly"], "{}", hold.text);
    assert_eq!(resume.sdp_directions(), vec!["sendrecv"], "{}", resume.text);
    // Each answer changed, so each carries a new o= version (RFC 3264 §8).
    let versions = [first, hold, resume].map(|m| m.sdp_version().expect("o= version"));
    assert!(
        versions[0] < versions[1] && versions[1] < versions[2],
        "o= versions {versions:?}"
    );
    assert_eq!(r.responses_to("BYE", 200).len(), 1, "{}", r.ladder());
    let call = ended_call(&daemon, &key, Duration::from_secs(10));
    assert_eq!(call["end_reason"], "caller_hangup", "{call:#}");
}

#[test]
fn session_timer_422_below_min_se_then_uac_refreshes_by_update_and_reinvite() {
    let env = env("");
    let key = supervisor_key(&env);
    let daemon = env.serve();
    let r = sipp(&daemon, &env, "session_timer.xml", Duration::from_secs(20));
    let too_small = r.responses_to("INVITE", 422);
    assert_eq!(too_small.len(), 1, "{}", r.ladder());
    assert_eq!(
        too_small[0].header("Min-SE"),
        Some("90"),
        "{}",
        too_small[0].text
    );

    let ok = final_by_cseq(&r, 200);
    let get = |cseq: &str| {
        *ok.get(cseq)
            .unwrap_or_else(|| panic!("no 200 to {cseq}:\n{}", r.ladder()))
    };
    let se = |m: &TracedMessage| {
        m.header("Session-Expires")
            .map(|v| v.replace(' ', "").to_ascii_lowercase())
    };
    let answer = get("2 INVITE");
    assert_eq!(
        se(answer).as_deref(),
        Some("90;refresher=uac"),
        "{}",
        answer.text
    );
    assert!(
        answer.tokens("Require").iter().any(|t| t == "timer"),
        "the UAC refreshes, so the 200 requires timer: {}",
        answer.text
    );
    for cseq in ["3 UPDATE", "4 INVITE"] {
        let refresh = get(cseq);
        assert_eq!(
            se(refresh).as_deref(),
            Some("90;refresher=uac"),
            "{cseq}: {}",
            refresh.text
        );
    }
    assert_eq!(r.responses_to("BYE", 200).len(), 1, "{}", r.ladder());
    assert!(r.requests_received().is_empty(), "{}", r.ladder());
    let call = ended_call(&daemon, &key, Duration::from_secs(10));
    assert_eq!(call["end_reason"], "caller_hangup", "{call:#}");
}

/// The daemon's side of RFC 4028 when the refresher (the UAC) goes quiet: BYE at
/// `interval - min(32, interval / 3)` = 60 s for the smallest interval the core allows (90 s;
/// the floor is hard-coded, so this takes a minute and is not in the default run).
#[test]
#[ignore = "takes ~60 s: the core's 90 s session-interval floor is not configurable"]
fn session_expiry_without_refresh_gets_a_bye_from_the_daemon() {
    let env = env("[call]\nsilence_timeout_secs = 600\n");
    let key = supervisor_key(&env);
    let daemon = env.serve();
    let r = sipp(&daemon, &env, "session_expiry.xml", Duration::from_secs(90));
    assert_eq!(r.requests_received().len(), 1, "{}", r.ladder());
    let call = ended_call(&daemon, &key, Duration::from_secs(10));
    assert_eq!(call["end_reason"], "session_expired", "{call:#}");
}

#[test]
fn our_own_greeting_echoed_back_is_not_taken_for_the_caller() {
    let env = env("");
    let key = supervisor_key(&env);
    let daemon = env.serve();
    let r = run(
        &scenario("echo_caller.xml"),
        env.sip,
        &["-rtp_echo"],
        Duration::from_secs(25),
    );
    assert!(r.succeeded(), "{}\n{}", r.output, r.ladder());
    let call = ended_call(&daemon, &key, Duration::from_secs(10));
    let kinds = event_kinds(&call);
    assert!(
        !kinds.iter().any(|k| k == "barge_in"),
        "the echo paused the agent: {:#}",
        call["events"]
    );
    let greeting = &call["turns"][0];
    assert_eq!(greeting["interrupted"], false, "{call:#}");
    assert!(
        greeting["agent_text"]
            .as_str()
            .is_some_and(|t| t.ends_with("how can I help you today?")),
        "the whole greeting was played: {greeting}"
    );
    assert!(
        call["turns"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["caller_text"].is_null()),
        "no caller turn from our own voice: {call:#}"
    );
    let media = event(&call, "media").unwrap_or_else(|| panic!("media event: {call:#}"));
    let echo = &media["detail"]["echo"];
    assert!(
        echo["delay_ms"].as_u64().is_some_and(|d| d <= 200),
        "echo path found: {media}"
    );
    assert!(
        echo["erl_db"].as_f64().is_some_and(|e| e.abs() < 3.0),
        "{media}"
    );
}
