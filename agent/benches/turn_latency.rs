//! Turn-latency benchmark over real SIP and over a LiveKit room, on the same clips: per clip,
//! baresip calls the daemon (release build under `cargo bench`) and asks one question after the
//! greeting; then the testkit's LiveKit fake dispatches the daemon (an agent worker of the same
//! process) to a room whose SIP participant — a real WebRTC peer, Opus 48 kHz — asks the same
//! question (the clip's 16 kHz recording). The stored turn latencies are summarised per stage
//! and transport, side by side: p50/p95 of eot, stt, llm, tts and e2e (caller speech end →
//! first reply packet written), plus the daemon's own overhead (e2e minus the four stages).
//!
//! Run: `cargo bench -p agent --bench turn_latency` (needs baresip and sox, as `./test` installs,
//! and the whisper test model: AGENT_TEST_WHISPER_MODEL or ~/.cache/agent/models). Calls run one
//! at a time so the numbers are per-call latency, not contention. BENCH_ROUNDS repeats the clip
//! set (default 1: 8 calls per transport, about 5 minutes).
//!
//! Then barge-in reaction: BENCH_BARGE_CALLS calls (default 5) where the caller asks a
//! question 1.5 s into the greeting; from baresip's own recordings, the time from the caller's
//! speech onset (what it sent) to the agent going silent (what it heard, 400 ms of silence).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::livekit::wait_utterance;
use support::peers::{Baresip, padded_clip};
use support::speech::{Recording, whisper_model};
use support::{Env, http_get};
use testkit::livekit::{API_KEY, API_SECRET, FakeLiveKit, SipCall};

const CLIPS: &[&str] = &[
    "balance_question_8k.wav",
    "invoice_due_8k.wav",
    "leave_message_8k.wav",
    "human_please_8k.wav",
    "yes_correct_8k.wav",
    "no_thanks_8k.wav",
    "account_digits_8k.wav",
    "long_complaint_8k.wav",
];

const STAGES: &[&str] = &["eot_ms", "stt_ms", "llm_ms", "tts_ms", "e2e_ms"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../audio/tests/data")
        .join(name)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: then only check it builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeLiveKit::start());
    let env = Env::new(&format!(
        "[stt]\nmodel = \"{}\"\nthreads = 2\n[log]\nlevel = \"warn\"\n\
         [livekit]\nurl = \"{}\"\napi_key = \"{API_KEY}\"\napi_secret = \"{API_SECRET}\"\n\
         agent_name = \"bench\"\nmax_jobs = 1\nice = \"loopback\"\n",
        whisper_model().display(),
        fake.url()
    ));
    let key = {
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
    };
    let daemon = env.serve();
    rt.block_on(fake.wait_registrations(1, Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}: {}", daemon.log_text()));
    let work = tempfile::tempdir().unwrap();
    let mut sip = Samples::default();
    let mut room = Samples::default();
    for round in 0..rounds {
        for clip in CLIPS {
            let dir = work.path().join(format!("{round}-{clip}"));
            std::fs::create_dir_all(&dir).unwrap();
            let wav = dir.join("caller.wav");
            // The greeting lasts ~5 s; the reply is heard for 8 s, then baresip hangs up.
            padded_clip(&fixture(clip), &wav, 6.0, 8.0);
            let mut phone = Baresip::dial(
                &dir,
                "bench",
                &format!("sip:agent@{}", env.sip),
                &wav,
                Duration::from_secs(60),
            );
            phone.wait(Duration::from_secs(70));
            sip.add(
                &format!("sip     {clip}"),
                last_answered_turn(&daemon, &key),
            );

            let clip_16k = clip.replace("_8k", "_16k");
            let latency = livekit_turn(&rt, &fake, &daemon, &key, &fixture(&clip_16k));
            room.add(&format!("livekit {clip_16k}"), latency);
        }
    }
    println!(
        "\n{} turns over real SIP (baresip → daemon) and {} over a LiveKit room (fake server, \
         WebRTC Opus 48 kHz); whisper tiny.en, espeak-ng, scripted receptionist; {} CPUs",
        sip.turns,
        room.turns,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<10} {:>16} {:>16} {:>16}",
        "stage", "SIP p50/p95", "LiveKit p50/p95", "max SIP/LiveKit"
    );
    for (i, name) in STAGES
        .iter()
        .map(|s| s.trim_end_matches("_ms"))
        .chain(["overhead"])
        .enumerate()
    {
        let (a, b) = (sip.sorted(i, name), room.sorted(i, name));
        let pair = |v: &[i64], p: f64| format!("{}", percentile(v, p));
        println!(
            "{name:<10} {:>16} {:>16} {:>16}",
            format!("{}/{}", pair(&a, 50.0), pair(&a, 95.0)),
            format!("{}/{}", pair(&b, 50.0), pair(&b, 95.0)),
            format!(
                "{}/{}",
                a.last().copied().unwrap_or(-1),
                b.last().copied().unwrap_or(-1)
            )
        );
    }

    let barge_calls: usize = std::env::var("BENCH_BARGE_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let reactions = barge_in_reactions(&env, work.path(), barge_calls);
    println!(
        "\nbarge-in reaction (caller speech onset → agent silent), {} calls: p50 {} ms, p95 {} ms, max {} ms",
        reactions.len(),
        percentile(&reactions, 50.0),
        percentile(&reactions, 95.0),
        reactions.last().copied().unwrap_or(-1)
    );
}

/// Per-stage latencies of one transport's answered turns (the last column: overhead).
#[derive(Default)]
struct Samples {
    values: Vec<Vec<i64>>,
    turns: usize,
}

impl Samples {
    fn add(&mut self, label: &str, latency: Option<Value>) {
        let Some(latency) = latency else {
            println!("{label}: no answered turn");
            return;
        };
        self.values.resize(STAGES.len() + 1, Vec::new());
        self.turns += 1;
        let mut shown = Vec::new();
        for (i, stage) in STAGES.iter().enumerate() {
            let v = latency[stage].as_i64().unwrap_or(-1);
            self.values[i].push(v);
            shown.push(format!("{}={v}", stage.trim_end_matches("_ms")));
        }
        let overhead = latency["e2e_ms"].as_i64().unwrap_or(0)
            - STAGES[..4]
                .iter()
                .map(|s| latency[s].as_i64().unwrap_or(0))
                .sum::<i64>();
        self.values[STAGES.len()].push(overhead);
        println!("{label:<34} {} overhead={overhead}", shown.join(" "));
    }

    /// Stage `i`'s values, sorted; a stage that was not measured (-1) is left out.
    fn sorted(&self, i: usize, name: &str) -> Vec<i64> {
        let mut v = self.values.get(i).cloned().unwrap_or_default();
        v.retain(|x| *x >= 0 || name == "overhead");
        v.sort_unstable();
        v
    }
}

/// One LiveKit room call: the fake dispatches the daemon to a room whose SIP participant waits
/// for the greeting to end, asks `clip`, and hangs up once the reply has started.
fn livekit_turn(
    rt: &tokio::runtime::Runtime,
    fake: &FakeLiveKit,
    daemon: &support::Daemon,
    key: &str,
    clip: &Path,
) -> Option<Value> {
    let call = SipCall {
        caller: "+15550199000".into(),
        dialled: "+15550100000".into(),
        ..SipCall::default()
    };
    let handle = rt
        .block_on(fake.dispatch_sip_call(call))
        .unwrap_or_else(|e| panic!("{e}: {}", daemon.log_text()));
    rt.block_on(handle.media_connected(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}: {}", daemon.log_text()));
    wait_utterance(&handle, 0, Duration::from_secs(20));
    handle.play_wav(clip).unwrap();
    // Once the reply has started (its latency is stored with its first packet), the caller
    // hangs up: a reply may end in a transfer that takes the room away anyway.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while answered_turn(daemon, key, false).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no reply to {}: {}",
            clip.display(),
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    handle.leave();
    last_answered_turn(daemon, key)
}

/// Barge-in reaction of `calls` calls: caller onset → agent silent, from the recordings.
fn barge_in_reactions(env: &Env, work: &Path, calls: usize) -> Vec<i64> {
    let mut reactions = Vec::new();
    for i in 0..calls {
        let dir = work.join(format!("barge-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let wav = dir.join("caller.wav");
        padded_clip(&fixture(CLIPS[i % 4]), &wav, 1.5, 4.0);
        let mut phone = Baresip::dial(
            &dir,
            "bench",
            &format!("sip:agent@{}", env.sip),
            &wav,
            Duration::from_secs(12),
        );
        phone.wait(Duration::from_secs(20));
        let (heard, sent) = phone.recordings();
        let (heard, sent) = (Recording::read(&heard), Recording::read(&sent));
        let Some(onset) = sent.onset_after(1_000, -40.0, 60) else {
            println!("barge-in call {i}: no caller speech recorded");
            continue;
        };
        let stopped = heard.silence_after(onset, -40.0, 400);
        let reaction = stopped as i64 - onset as i64;
        println!(
            "barge-in call {i} ({}): reaction {reaction} ms",
            CLIPS[i % 4]
        );
        reactions.push(reaction);
    }
    reactions.sort_unstable();
    reactions
}

/// The latency object of the newest call's first turn with caller text and a reply, once the
/// call has ended.
fn last_answered_turn(daemon: &support::Daemon, key: &str) -> Option<Value> {
    answered_turn(daemon, key, true)
}

/// The latency object of the newest call's first answered turn; with `ended`, only once the
/// call has ended (then its figures are final).
fn answered_turn(daemon: &support::Daemon, key: &str, ended: bool) -> Option<Value> {
    // The recorder writes asynchronously: poll until the newest call has ended.
    for _ in 0..if ended { 50 } else { 1 } {
        let (_, body) = http_get(&daemon.url("/v1/calls?limit=1"), Some(key))?;
        let list: Value = serde_json::from_str(&body).ok()?;
        let id = list["calls"][0]["id"].as_str()?.to_owned();
        let (_, body) = http_get(&daemon.url(&format!("/v1/calls/{id}")), Some(key))?;
        let call: Value = serde_json::from_str(&body).ok()?;
        if call["status"] == "ended" || !ended {
            return call["turns"]
                .as_array()?
                .iter()
                .find(|t| t["caller_text"].is_string() && t["latency"]["e2e_ms"].is_i64())
                .map(|t| t["latency"].clone());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}
