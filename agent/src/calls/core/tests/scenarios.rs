//! Whole conversations stepped in simulated time: each test drives the core through one
//! situation and checks what it did (outputs), what it stored (records) and where it went
//! (phases).

use std::time::Duration;

use dialogs::{CallAction, CallerInput};
use store::{EndReason, EventKind};

use super::{Script, Sim, TransferAnswer, config, echo_dialog};
use crate::calls::core::{Input, TIME_LIMIT, UNAVAILABLE};
use crate::calls::dialog::DialogCommand;

/// A call past its greeting: the caller's turn.
pub(super) fn listening() -> Sim {
    let mut sim = Sim::new();
    sim.run_until("listening", 5_000);
    sim
}

/// A call whose dialog answers the caller's first words with `reply`, and otherwise like
/// [`echo_dialog`].
fn answering(reply: Script) -> Sim {
    let mut first = Some(reply);
    let dialog = move |c: &DialogCommand| match c {
        DialogCommand::Turn(CallerInput::Speech(_)) if first.is_some() => first.take(),
        other => echo_dialog(other),
    };
    let mut sim = Sim::with(config(), None, Box::new(dialog));
    sim.run_until("listening", 5_000);
    sim
}

/// Runs until the reply being played has had `ms` of audio on the wire.
fn until_played(sim: &mut Sim, item: u64, ms: u64) {
    for _ in 0..500 {
        if sim.played_ms(item) >= ms {
            return;
        }
        sim.run(20);
    }
    panic!("item {item} never played {ms} ms; did {:?}", sim.did);
}

const LONG: &str =
    "Your balance is one hundred and forty two dollars and fifty cents due on the first";

#[test]
fn the_greeting_plays_then_it_is_the_callers_turn() {
    let mut sim = Sim::new();
    assert_eq!(sim.phase(), "greeting");
    assert_eq!(sim.asked, [DialogCommand::Start]);
    sim.run_until("listening", 5_000);
    let greeting = sim.turn(0);
    assert_eq!(
        greeting.agent_text.as_deref(),
        Some("Hello, thanks for calling. How can I help?")
    );
    assert!(!greeting.interrupted);
    // 4 words at 300 ms each, twice, all on the wire.
    assert_eq!((sim.played_ms(1), sim.played_ms(2)), (1_200, 1_200));
    assert_eq!(sim.events(), [EventKind::Answered]);
    assert_eq!(sim.phases, ["greeting", "listening"]);
}

#[test]
fn a_caller_turn_is_transcribed_answered_and_timed() {
    let mut sim = listening();
    let spoke_at = sim.ms();
    sim.say("What is my balance?", 1_000);
    sim.run_until("replying", 3_000);
    sim.run_until("listening", 5_000);
    let turn = sim.turn(1);
    assert_eq!(turn.caller_text.as_deref(), Some("What is my balance?"));
    assert_eq!(
        turn.agent_text.as_deref(),
        Some("You said What is my balance?")
    );
    assert!(matches!(
        sim.asked.last(),
        Some(DialogCommand::Turn(CallerInput::Speech(t))) if t == "What is my balance?"
    ));
    let l = turn.latency;
    let (eot, stt, llm, tts, e2e) = (
        l.eot_ms.unwrap(),
        l.stt_ms.unwrap(),
        l.llm_ms.unwrap(),
        l.tts_ms.unwrap(),
        l.e2e_ms.unwrap(),
    );
    // The pause is seen 200 ms after the last voiced frame and its transcript (a complete
    // sentence) 100 ms later ends the turn; it is reused, so the final STT costs nothing.
    assert!((280..=340).contains(&eot), "eot {eot}");
    assert_eq!(stt, 0);
    assert!((20..=60).contains(&llm), "llm {llm}");
    assert!((40..=80).contains(&tts), "tts {tts}");
    // e2e: the last voiced frame to the first reply frame on the wire.
    assert!(
        e2e >= eot + stt + llm + tts && e2e <= eot + stt + llm + tts + 40,
        "e2e {e2e}"
    );
    assert!(sim.ms() > spoke_at);
    // Usage: STT audio, tokens, TTS characters.
    let usage: Vec<&str> = sim
        .records
        .iter()
        .filter_map(|r| match r {
            crate::calls::recorder::Record::Usage { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    for kind in ["stt_audio_ms", "llm_prompt_tokens", "tts_chars"] {
        assert!(usage.contains(&kind), "{usage:?}");
    }
}

/// What the caller says over the agent, and what must follow.
struct BargeCase {
    words: &'static str,
    /// The agent resumes the reply (noise, backchannel) rather than stopping it.
    resumes: bool,
    event: Option<EventKind>,
}

#[test]
fn words_over_the_agent_decide_between_resuming_and_stopping() {
    let cases = [
        BargeCase {
            words: "",
            resumes: true,
            event: Some(EventKind::NoSpeech),
        },
        BargeCase {
            words: "Mm-hm.",
            resumes: true,
            event: Some(EventKind::Backchannel),
        },
        BargeCase {
            words: "Okay, I see.",
            resumes: true,
            event: Some(EventKind::Backchannel),
        },
        BargeCase {
            words: "What about my invoice?",
            resumes: false,
            event: None,
        },
        BargeCase {
            words: "No.",
            resumes: false,
            event: None,
        },
    ];
    for case in cases {
        let mut sim = answering(Script::say(&[LONG]));
        sim.say("What is my balance?", 1_000);
        sim.run_until("replying", 3_000);
        until_played(&mut sim, 3, 1_000);
        sim.say(case.words, 400);
        sim.run_until("barged_in", 300);
        assert_eq!(sim.did("pause"), 1, "{}", case.words);
        assert_eq!(sim.event(EventKind::BargeIn)["heard"], "Your balance is");
        // Words decide at once; without words the endpointer waits longer before ending
        // the turn.
        sim.run(2_500);
        if case.resumes {
            assert_eq!(sim.did("resume"), 1, "{}", case.words);
            assert_eq!(sim.did("flush"), 0, "{}", case.words);
            let event = sim.event(case.event.clone().unwrap());
            assert_eq!(event["text"], case.words);
            assert!(event["resumed_after_ms"].as_u64().unwrap() > 0);
            sim.run_until("listening", 10_000);
            let turn = sim.turn(1);
            assert_eq!(turn.agent_text.as_deref(), Some(LONG));
            assert!(!turn.interrupted);
            // Every millisecond of the reply played once: resumed where it paused.
            assert_eq!(
                sim.played_ms(3),
                LONG.split_whitespace().count() as u64 * 300
            );
        } else {
            assert_eq!(sim.did("flush"), 1, "{}", case.words);
            assert_eq!(sim.did("resume"), 0, "{}", case.words);
            let cut = sim.turn(1);
            assert!(cut.interrupted);
            let heard = cut.agent_text.clone().unwrap_or_default();
            assert!(
                heard.starts_with("Your balance is") && heard.len() < LONG.len(),
                "{heard:?}"
            );
            assert!(
                sim.asked.contains(&DialogCommand::Interrupt {
                    spoken: heard.clone()
                }),
                "the dialog is told exactly what was heard: {:?}",
                sim.asked
            );
            assert_eq!(sim.turn(2).caller_text.as_deref(), Some(case.words));
        }
    }
}

#[test]
fn our_own_voice_coming_back_never_interrupts() {
    let mut sim = Sim::new();
    sim.run(200);
    // Loud echo of the greeting for most of it: flagged by the echo gate, so silence.
    sim.echo(2_000);
    sim.run_until("listening", 5_000);
    assert!(!sim.phases.contains(&"barged_in"), "{:?}", sim.phases);
    assert!(!sim.events().contains(&EventKind::BargeIn));
    assert_eq!(sim.did("pause"), 0);
    assert!(!sim.turn(0).interrupted);
    assert_eq!(sim.turns(), 0, "no caller turn was heard");
}

impl Sim {
    fn turns(&self) -> i64 {
        self.core.turns()
    }
}

#[test]
fn an_uninterruptible_prompt_is_played_whole_and_the_caller_is_heard_after() {
    let dialog = |c: &DialogCommand| match c {
        DialogCommand::Start => {
            Some(Script::say(&["This call may be recorded for quality."]).uninterruptible())
        }
        other => echo_dialog(other),
    };
    let mut sim = Sim::with(config(), None, Box::new(dialog));
    sim.run(300);
    sim.say("Hello hello", 700);
    sim.run_until("listening", 5_000);
    assert_eq!(sim.did("pause"), 0);
    assert!(!sim.turn(0).interrupted);
    assert_eq!(sim.turns(), 0, "speech during the prompt is not captured");
    // After the prompt the caller is heard again.
    sim.say("What is my balance?", 1_000);
    sim.run_until("replying", 3_000);
    assert_eq!(
        sim.turn(1).caller_text.as_deref(),
        Some("What is my balance?")
    );
}

#[test]
fn silence_gets_a_reprompt_then_the_flow_says_goodbye() {
    let mut silences = 0;
    let dialog = move |c: &DialogCommand| match c {
        DialogCommand::Turn(CallerInput::Silence) => {
            silences += 1;
            Some(if silences == 1 {
                Script::say(&["Are you still there?"])
            } else {
                Script::say(&["I can't hear anything. Goodbye."]).then(CallAction::EndCall {
                    reason: "silence_timeout".into(),
                })
            })
        }
        other => echo_dialog(other),
    };
    let mut sim = Sim::with(config(), None, Box::new(dialog));
    sim.run_until("listening", 5_000);
    let quiet_from = sim.ms();
    sim.run_until("replying", 6_000);
    // The silence timer counts from the end of the greeting.
    assert!(
        (5_000..=5_040).contains(&(sim.ms() - quiet_from)),
        "{}",
        sim.ms() - quiet_from
    );
    sim.run_until("listening", 5_000);
    sim.run_until("ended", 12_000);
    assert_eq!(sim.ended(), Some(EndReason::SilenceTimeout));
    assert_eq!(
        sim.events()
            .iter()
            .filter(|k| **k == EventKind::Silence)
            .count(),
        2
    );
    assert_eq!(sim.event(EventKind::FlowEnd)["reason"], "silence_timeout");
    assert_eq!(sim.did("hangup"), 1);
    assert_eq!(
        sim.turn(2).agent_text.as_deref(),
        Some("I can't hear anything. Goodbye."),
        "the goodbye was played whole before hanging up"
    );
    assert_eq!(
        sim.phases,
        [
            "greeting",
            "listening",
            "replying",
            "listening",
            "replying",
            "ending",
            "ended"
        ]
    );
}

#[test]
fn the_time_limit_cuts_a_reply_says_why_and_hangs_up() {
    let mut cfg = config();
    cfg.max_duration = Duration::from_secs(5);
    let dialog = |c: &DialogCommand| match c {
        DialogCommand::Turn(CallerInput::Speech(_)) => Some(Script::say(&[LONG])),
        other => echo_dialog(other),
    };
    let mut sim = Sim::with(cfg, None, Box::new(dialog));
    sim.run_until("listening", 5_000);
    sim.say("What is my balance?", 800);
    sim.run_until("replying", 3_000);
    sim.run_until("ending", 3_000);
    assert_eq!(sim.ms(), 5_000, "at the limit, to the tick");
    assert_eq!(sim.did("flush"), 1);
    assert!(sim.turn(1).interrupted);
    sim.run_until("ended", 10_000);
    assert_eq!(sim.ended(), Some(EndReason::MaxDuration));
    assert_eq!(sim.event(EventKind::MaxDuration)["secs"], 5);
    assert!(
        sim.turn(1)
            .agent_text
            .unwrap_or_default()
            .ends_with(TIME_LIMIT)
    );
}

#[test]
fn send_dtmf_presses_the_keys_after_the_words_before_them_then_listens() {
    let mut sim = answering(
        Script::say(&["I'll choose billing."]).then(CallAction::SendDtmf {
            digits: "2#".into(),
        }),
    );
    sim.say("Press two for billing.", 800);
    sim.run_until("replying", 3_000);
    assert_eq!(sim.did("dtmf 2# with 0 queued"), 0, "not while speaking");
    sim.run_until("listening", 5_000);
    assert_eq!(
        sim.did("dtmf 2# with 0 queued"),
        1,
        "once, when everything before it has played: {:?}",
        sim.did
    );
    assert_eq!(sim.ended(), None);
}

#[test]
fn an_accepted_transfer_ends_the_call_as_transferred() {
    let mut sim = answering(
        Script::say(&["Putting you through."]).then(CallAction::Transfer {
            to: "+15550001111".into(),
            name: "front_desk".into(),
        }),
    );
    sim.transfer_answer = Some(TransferAnswer::Accept);
    sim.say("A person please.", 800);
    sim.run_until("transferring", 5_000);
    // Only after the agent finished speaking.
    assert_eq!(sim.played_ms(3), 900);
    assert_eq!(sim.did("transfer +15550001111"), 1);
    // A warm transfer's target is told who is calling, in the caller's own words.
    assert_eq!(
        sim.did(
            "brief Hello, this is the virtual receptionist with a caller on the line. They \
             said: A person please. I am connecting you now."
        ),
        1,
        "{:?}",
        sim.did
    );
    sim.run_until("ended", 5_000);
    assert_eq!(sim.ended(), Some(EndReason::Transferred));
    let accepted = sim.event(EventKind::Transfer);
    assert_eq!(accepted["state"], "accepted");
    assert_eq!(accepted["after_ms"], 2_000);
    assert_eq!(
        sim.did("hangup"),
        0,
        "the transport leaves the call, not us"
    );
}

#[test]
fn a_failed_transfer_returns_the_caller_to_the_flow() {
    for (answer, reason) in [
        (TransferAnswer::Refuse(486), "failed"),
        (TransferAnswer::CannotStart, "no route"),
    ] {
        let mut sim = answering(Script::say(&["Putting you through."]).then(
            CallAction::Transfer {
                to: "+15550001111".into(),
                name: "front_desk".into(),
            },
        ));
        sim.transfer_answer = Some(answer);
        sim.say("A person please.", 800);
        sim.run_until("transferring", 5_000);
        sim.run_until("replying", 5_000);
        assert_eq!(sim.asked.last(), Some(&DialogCommand::TransferFailed));
        let failed = sim.event(EventKind::TransferFailed);
        assert_eq!(failed["reason"], reason);
        sim.run_until("listening", 5_000);
        assert_eq!(sim.ended(), None);
        // The caller is heard again.
        sim.say("Then take a message.", 800);
        sim.run_until("replying", 3_000);
    }
}

#[test]
fn a_caller_hanging_up_mid_sentence_keeps_what_they_heard() {
    let mut sim = answering(Script::say(&[LONG]));
    sim.say("What is my balance?", 800);
    sim.run_until("replying", 3_000);
    until_played(&mut sim, 3, 1_500);
    sim.input(Input::Hangup {
        reason: EndReason::CallerHangup,
    });
    assert_eq!(sim.phase(), "ended");
    assert_eq!(sim.ended(), Some(EndReason::CallerHangup));
    let turn = sim.turn(1);
    assert!(turn.interrupted);
    assert_eq!(
        turn.agent_text.as_deref(),
        Some("Your balance is one hundred")
    );
    assert_eq!(sim.did("hangup"), 0);
    assert!(sim.core.poll_timeout().is_none(), "no timers after the end");
}

#[test]
fn shutdown_cuts_the_reply_and_hangs_up_at_once() {
    let mut sim = answering(Script::say(&[LONG]));
    sim.say("What is my balance?", 800);
    sim.run_until("replying", 3_000);
    until_played(&mut sim, 3, 600);
    sim.input(Input::Shutdown);
    assert_eq!(sim.phase(), "ending");
    assert_eq!((sim.did("flush"), sim.did("hangup")), (1, 1));
    sim.run_until("ended", 200);
    // Our hang-up, confirmed as agent_hangup by the transport, keeps our reason.
    assert_eq!(sim.ended(), Some(EndReason::DaemonShutdown));
}

#[test]
fn dtmf_during_a_reply_interrupts_it_and_is_answered() {
    let mut sim = answering(Script::say(&[LONG]));
    sim.say("What is my balance?", 800);
    sim.run_until("replying", 3_000);
    until_played(&mut sim, 3, 600);
    sim.input(Input::Dtmf('1'));
    assert_eq!(sim.event(EventKind::Dtmf)["digit"], "1");
    assert_eq!(sim.did("flush"), 1);
    assert!(matches!(
        &sim.asked[sim.asked.len() - 2..],
        [DialogCommand::Interrupt { spoken }, DialogCommand::Turn(CallerInput::Dtmf('1'))]
            if spoken == "Your balance"
    ));
    assert!(sim.turn(1).interrupted);
    sim.run_until("listening", 3_000);
    assert_eq!(sim.turn(2).agent_text.as_deref(), Some("You pressed 1."));
}

#[test]
fn without_speech_recognition_the_caller_hears_why_and_the_call_ends() {
    let mut sim = Sim::with(config(), Some("model missing"), Box::new(echo_dialog));
    assert_eq!(sim.phase(), "ending");
    assert!(sim.asked.is_empty(), "the flow is never started");
    assert_eq!(
        sim.event(EventKind::SttUnavailable)["error"],
        "model missing"
    );
    sim.run_until("ended", 10_000);
    assert_eq!(sim.ended(), Some(EndReason::SttUnavailable));
    assert_eq!(sim.turn(0).agent_text.as_deref(), Some(UNAVAILABLE));
    assert!(!sim.turn(0).interrupted, "the apology plays whole");
}

#[test]
fn an_unconfirmed_hang_up_still_ends_the_call() {
    let mut sim = Sim::new();
    sim.confirm_hangup = false;
    sim.run_until("listening", 5_000);
    sim.input(Input::DialogGone);
    assert_eq!((sim.phase(), sim.did("hangup")), ("ending", 1));
    sim.run(39_000);
    assert_eq!(sim.phase(), "ending");
    sim.run(1_100);
    assert_eq!(sim.ended(), Some(EndReason::DialogFailed));
}

#[test]
fn a_flow_ending_the_call_is_not_interrupted_and_hangs_up_after_its_goodbye() {
    let mut sim = answering(Script::say(&["Thank you for calling. Goodbye!"]).then(
        CallAction::EndCall {
            reason: "flow_completed".into(),
        },
    ));
    sim.say("That's all, thanks.", 800);
    sim.run_until("replying", 3_000);
    until_played(&mut sim, 3, 300);
    sim.say("Wait, one more thing", 800);
    sim.run_until("ended", 5_000);
    assert_eq!(sim.did("pause"), 0);
    assert_eq!(sim.ended(), Some(EndReason::FlowCompleted));
    assert!(!sim.turn(1).interrupted);
    assert_eq!(sim.turns(), 1, "words after the goodbye are not a turn");
}

#[test]
fn late_results_of_abandoned_work_are_dropped() {
    // A three-sentence reply, one sentence every 1.5 s: the caller stops it during the first.
    let mut sim =
        answering(Script::say(&["One two three.", "Four five six.", "Seven."]).paced(1_500));
    sim.say("What is my balance?", 800);
    sim.run_until("replying", 3_000);
    until_played(&mut sim, 3, 300);
    sim.say("Stop, I need a person.", 800);
    sim.run_until("barged_in", 400);
    sim.run(5_000);
    // The rest of the interrupted reply arrived after the interruption: never synthesised.
    assert_eq!(sim.did("say Four five six."), 0, "{:?}", sim.did);
    assert_eq!(sim.did("say Seven."), 0, "{:?}", sim.did);
    let turn2 = sim.turn(2);
    assert_eq!(turn2.caller_text.as_deref(), Some("Stop, I need a person."));
    assert_eq!(
        turn2.agent_text.as_deref(),
        Some("You said Stop, I need a person."),
        "the old reply's sentences do not leak into the new one"
    );
}
