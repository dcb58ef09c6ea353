//! Every phase transition the core can make, each driven once, and a check that the list is
//! complete: a transition the core makes but this table lacks (or the reverse) fails the test.

use std::collections::BTreeSet;

use dialogs::{CallAction, CallerInput};
use store::EndReason;

use super::scenarios::listening;
use super::{Script, Sim, TransferAnswer, config, echo_dialog};
use crate::calls::core::Input;
use crate::calls::dialog::DialogCommand;

fn with_reply(reply: Script) -> Sim {
    let dialog = move |c: &DialogCommand| match c {
        DialogCommand::Turn(CallerInput::Speech(_)) => Some(reply.clone()),
        other => echo_dialog(other),
    };
    Sim::with(config(), None, Box::new(dialog))
}

fn replying(reply: Script) -> Sim {
    let mut sim = with_reply(reply);
    sim.run_until("listening", 5_000);
    sim.say("What is my balance?", 800);
    sim.run_until("replying", 3_000);
    sim.run(600);
    sim
}

const LONG: &str = "one two three four five six seven eight nine ten eleven twelve";

/// Drives a call into one transition.
type Drive = Box<dyn Fn() -> Sim>;

/// `(transition, how it is driven)`.
fn drives() -> Vec<(&'static str, Drive)> {
    vec![
        ("greeting -> listening", Box::new(listening)),
        (
            "greeting -> barged_in",
            Box::new(|| {
                let mut sim = Sim::new();
                sim.run(400);
                sim.say("Hello?", 400);
                sim.run_until("barged_in", 400);
                sim
            }),
        ),
        (
            "barged_in -> greeting",
            Box::new(|| {
                let mut sim = Sim::new();
                sim.run(400);
                sim.say("Mm-hm.", 300);
                sim.run_until("barged_in", 400);
                sim.run_until("greeting", 2_000);
                sim
            }),
        ),
        (
            "greeting -> replying",
            Box::new(|| {
                let mut sim = Sim::new();
                sim.run(400);
                sim.input(Input::Dtmf('2'));
                sim
            }),
        ),
        (
            "greeting -> ending",
            Box::new(|| {
                let mut sim = Sim::new();
                sim.run(400);
                sim.input(Input::Shutdown);
                sim
            }),
        ),
        (
            "greeting -> ended",
            Box::new(|| {
                let mut sim = Sim::new();
                sim.run(400);
                sim.input(Input::Hangup {
                    reason: EndReason::CallerHangup,
                });
                sim
            }),
        ),
        (
            "listening -> replying",
            Box::new(|| replying(Script::say(&[LONG]))),
        ),
        (
            "listening -> ending",
            Box::new(|| {
                let mut sim = listening();
                sim.input(Input::Shutdown);
                sim
            }),
        ),
        (
            "listening -> ended",
            Box::new(|| {
                let mut sim = listening();
                sim.input(Input::Hangup {
                    reason: EndReason::CallerHangup,
                });
                sim
            }),
        ),
        (
            "replying -> listening",
            Box::new(|| {
                let mut sim = replying(Script::say(&["Sure."]));
                sim.run_until("listening", 3_000);
                sim
            }),
        ),
        (
            "replying -> barged_in",
            Box::new(|| {
                let mut sim = replying(Script::say(&[LONG]));
                sim.say("Wait.", 400);
                sim.run_until("barged_in", 400);
                sim
            }),
        ),
        (
            "barged_in -> replying",
            Box::new(|| {
                let mut sim = replying(Script::say(&[LONG]));
                sim.say("Wait, a person please.", 600);
                sim.run_until("barged_in", 400);
                sim.run_until("replying", 2_000);
                sim
            }),
        ),
        (
            "barged_in -> ending",
            Box::new(|| {
                let mut sim = replying(Script::say(&[LONG]));
                sim.say("Wait.", 600);
                sim.run_until("barged_in", 400);
                sim.input(Input::Shutdown);
                sim
            }),
        ),
        (
            "barged_in -> ended",
            Box::new(|| {
                let mut sim = replying(Script::say(&[LONG]));
                sim.say("Wait.", 600);
                sim.run_until("barged_in", 400);
                sim.input(Input::Hangup {
                    reason: EndReason::CallerHangup,
                });
                sim
            }),
        ),
        (
            "replying -> transferring",
            Box::new(|| {
                let mut sim = replying(Script::say(&["Connecting you."]).then(
                    CallAction::Transfer {
                        to: "100".into(),
                        name: "desk".into(),
                    },
                ));
                sim.transfer_answer = Some(TransferAnswer::Refuse(480));
                sim.run_until_entered("transferring", 3_000);
                sim
            }),
        ),
        (
            "transferring -> replying",
            Box::new(|| {
                let mut sim = replying(Script::say(&["Connecting you."]).then(
                    CallAction::Transfer {
                        to: "100".into(),
                        name: "desk".into(),
                    },
                ));
                sim.transfer_answer = Some(TransferAnswer::Refuse(480));
                sim.run_until_entered("transferring", 3_000);
                sim.run_until("replying", 3_000);
                sim
            }),
        ),
        (
            "transferring -> ending",
            Box::new(|| {
                let mut sim = replying(Script::say(&["Connecting you."]).then(
                    CallAction::Transfer {
                        to: "100".into(),
                        name: "desk".into(),
                    },
                ));
                sim.transfer_answer = Some(TransferAnswer::Accept);
                sim.run_until("ended", 6_000);
                sim
            }),
        ),
        (
            "transferring -> ended",
            Box::new(|| {
                let mut sim = replying(Script::say(&["Connecting you."]).then(
                    CallAction::Transfer {
                        to: "100".into(),
                        name: "desk".into(),
                    },
                ));
                sim.transfer_answer = Some(TransferAnswer::Refuse(480));
                sim.run_until_entered("transferring", 3_000);
                sim.input(Input::Hangup {
                    reason: EndReason::CallerHangup,
                });
                sim
            }),
        ),
        (
            "replying -> ending",
            Box::new(|| {
                let mut sim = replying(Script::say(&["Goodbye."]).then(CallAction::EndCall {
                    reason: String::new(),
                }));
                sim.run_until_entered("ending", 3_000);
                sim
            }),
        ),
        (
            "replying -> ended",
            Box::new(|| {
                let mut sim = replying(Script::say(&[LONG]));
                sim.input(Input::Hangup {
                    reason: EndReason::MediaLost,
                });
                sim
            }),
        ),
        (
            "ending -> ended",
            Box::new(|| {
                let mut sim = listening();
                sim.input(Input::Shutdown);
                sim.run_until("ended", 1_000);
                sim
            }),
        ),
        // Outbound calls screened for an answering machine (recorded answers).
        (
            "screening -> greeting",
            Box::new(|| {
                let mut sim = super::screening::sim("human_hello");
                sim.run_until("greeting", 4_000);
                sim
            }),
        ),
        (
            "screening -> replying",
            Box::new(|| {
                let mut sim = super::screening::sim("machine_short");
                sim.run_until("replying", 6_000);
                sim
            }),
        ),
        (
            "screening -> ended",
            Box::new(|| {
                let mut sim = super::screening::sim("machine_anna");
                sim.run(1_000);
                sim.input(Input::Hangup {
                    reason: EndReason::CallerHangup,
                });
                sim
            }),
        ),
    ]
}

#[test]
fn every_phase_transition_is_driven_and_no_other_happens() {
    let declared: BTreeSet<String> = drives().iter().map(|(t, _)| (*t).to_owned()).collect();
    let mut seen = BTreeSet::new();
    for (transition, drive) in drives() {
        let sim = drive();
        let made = sim.transitions();
        assert!(
            made.contains(transition),
            "{transition} not made; phases {:?}",
            sim.phases
        );
        seen.extend(made);
    }
    let undeclared: Vec<_> = seen.difference(&declared).collect();
    assert!(
        undeclared.is_empty(),
        "transitions made but not declared: {undeclared:?}"
    );
    // The call starts greeting, or ending when it cannot listen.
    assert_eq!(Sim::new().phases, ["greeting"]);
}
