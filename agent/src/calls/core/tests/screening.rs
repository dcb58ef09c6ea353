//! Answering-machine detection on answer, with recorded answers from the AMD set
//! (`audio/tests/data/amd`, 8 kHz, upsampled here): a person gets the greeting within the
//! detector's 3 s, a machine gets the voicemail message after its beep (or after its greeting
//! when it has none) and the call ends as `voicemail`; the flow never speaks over either.

use std::path::Path;

use dialogs::CallAction;
use store::{EndReason, EventKind};

use super::{Script, Sim, echo_dialog};
use crate::calls::core::Input;
use crate::calls::dialog::DialogCommand;

const VOICEMAIL: &str = "This is Acme with a message about your account.";

/// An AMD set recording at 16 kHz (linear interpolation from 8 kHz is enough for levels and
/// the 400–2000 Hz beep band the detector looks at).
fn answer(name: &str) -> Vec<i16> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../audio/tests/data/amd")
        .join(format!("{name}.wav"));
    let wav = audio::wav::read_wav(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert_eq!(wav.sample_rate, 8_000);
    let x = &wav.samples;
    let mut out = Vec::with_capacity(x.len() * 2);
    for (i, &a) in x.iter().enumerate() {
        let b = x.get(i + 1).copied().unwrap_or(a);
        out.push(a);
        out.push(((i32::from(a) + i32::from(b)) / 2) as i16);
    }
    out
}

/// A screened outbound call whose callee plays the AMD set recording `name`.
pub(super) fn sim(name: &str) -> Sim {
    Sim::screening(
        answer(name),
        Box::new(|command: &DialogCommand| match command {
            DialogCommand::Voicemail => Some(Script::say(&[VOICEMAIL]).then(CallAction::EndCall {
                reason: "voicemail".into(),
            })),
            other => echo_dialog(other),
        }),
    )
}

/// The ms at which the dialog was first asked anything.
fn first_ask_ms(sim: &mut Sim, max_ms: u64) -> u64 {
    for _ in 0..max_ms / 20 {
        if !sim.asked.is_empty() {
            return sim.ms();
        }
        sim.run(20);
    }
    panic!("the dialog was never asked; phases {:?}", sim.phases);
}

#[test]
fn a_person_is_greeted_once_the_detector_decides() {
    for name in ["human_hello", "human_yes", "human_late_hello"] {
        let mut sim = sim(name);
        assert_eq!(sim.phase(), "screening");
        let asked_at = first_ask_ms(&mut sim, 4_000);
        assert!(asked_at <= 3_100, "{name}: greeted at {asked_at} ms");
        assert!(matches!(sim.asked[0], DialogCommand::Start), "{name}");
        let amd = sim.event(EventKind::Amd);
        assert_eq!(amd["verdict"], "human", "{name}: {amd}");
        assert!(amd["after_ms"].as_u64().unwrap() <= 3_000, "{name}: {amd}");
        sim.run_until("listening", 10_000);
        assert_eq!(sim.phases[..2], ["screening", "greeting"], "{name}");
    }
}

#[test]
fn nobody_speaking_gets_the_greeting_at_the_deadline() {
    let mut sim = Sim::screening(vec![0; 16_000], Box::new(echo_dialog));
    let asked_at = first_ask_ms(&mut sim, 4_000);
    assert!((2_900..=3_100).contains(&asked_at), "{asked_at}");
    assert_eq!(sim.event(EventKind::Amd)["verdict"], "unknown");
    assert!(matches!(sim.asked[0], DialogCommand::Start));
}

#[test]
fn a_machine_gets_the_message_after_its_beep_and_the_call_ends_as_voicemail() {
    // (recording, where its beep ends in ms, from labels.tsv)
    for (name, beep_end) in [("machine_anna", 4_962), ("machine_short", 2_068)] {
        let mut sim = sim(name);
        let asked_at = first_ask_ms(&mut sim, 15_000);
        assert!(
            matches!(sim.asked[0], DialogCommand::Voicemail),
            "{name}: {:?}",
            sim.asked
        );
        // Not over the greeting: only once the beep is over (within two frames).
        assert!(
            asked_at + 40 >= beep_end && asked_at <= beep_end + 500,
            "{name}: message at {asked_at} ms, beep ended at {beep_end} ms"
        );
        assert_eq!(sim.event(EventKind::Amd)["verdict"], "machine", "{name}");
        let beep = sim.event(EventKind::AmdBeep);
        let at = beep["at_ms"].as_u64().unwrap();
        assert!(at.abs_diff(beep_end) <= 200, "{name}: {beep}");
        sim.run(15_000);
        assert_eq!(sim.ended(), Some(EndReason::Voicemail), "{name}");
        assert!(
            sim.did.iter().any(|d| d == &format!("say {VOICEMAIL}")),
            "{name}: {:?}",
            sim.did
        );
        // The greeting was never asked for: the machine heard only the message.
        assert!(
            !sim.asked.iter().any(|c| matches!(c, DialogCommand::Start)),
            "{name}"
        );
        assert_eq!(sim.turn(0).agent_text.as_deref(), Some(VOICEMAIL), "{name}");
    }
}

#[test]
fn a_machine_without_a_beep_gets_the_message_when_its_greeting_ends() {
    let mut sim = sim("machine_no_beep");
    first_ask_ms(&mut sim, 20_000);
    assert!(matches!(sim.asked[0], DialogCommand::Voicemail));
    assert_eq!(sim.event(EventKind::Amd)["verdict"], "machine");
    assert!(!sim.events().contains(&EventKind::AmdBeep));
    sim.run(15_000);
    assert_eq!(sim.ended(), Some(EndReason::Voicemail));
}

#[test]
fn a_hang_up_while_screening_ends_the_call_without_a_word() {
    let mut sim = sim("machine_anna");
    sim.run(1_000);
    assert_eq!(sim.phase(), "screening");
    sim.input(Input::Hangup {
        reason: EndReason::CallerHangup,
    });
    assert_eq!(sim.ended(), Some(EndReason::CallerHangup));
    assert!(sim.asked.is_empty());
    assert!(!sim.did.iter().any(|d| d.starts_with("say")));
}
