use super::*;

/// Drives an endpointer with a pattern, 20 ms per char: `#` voiced, `.` silent, `t` = hand in
/// `text` now (a silent frame), `k` = DTMF '5' (a silent frame), `e` = DTMF terminator.
fn drive(ep: &mut Endpointer, pattern: &str, text: &str) -> Vec<TurnEvent> {
    let mut events = Vec::new();
    for c in pattern.chars() {
        match c {
            '#' => ep.handle_frame(true, 20),
            't' => {
                ep.handle_frame(false, 20);
                ep.handle_transcript(text);
            }
            'k' => {
                ep.handle_frame(false, 20);
                ep.handle_dtmf('5');
            }
            'e' => ep.handle_dtmf('#'),
            _ => ep.handle_frame(false, 20),
        }
        while let Some(e) = ep.poll_event() {
            events.push(e);
        }
    }
    events
}

fn ends(events: &[TurnEvent]) -> Vec<(u64, u64, EndReason)> {
    events
        .iter()
        .filter_map(|e| match *e {
            TurnEvent::EndOfTurn {
                at_ms,
                last_activity_at_ms,
                reason,
            } => Some((at_ms, last_activity_at_ms, reason)),
            _ => None,
        })
        .collect()
}

fn config() -> EndpointConfig {
    EndpointConfig::default()
        .with_detector(SpeechDetectorConfig::new(40, 100))
        .with_limits(0, 5000)
        .with_waits(TurnMode::FreeSpeech, ModeWaits::new(100, 400, 1000, 600))
        .with_waits(TurnMode::YesNo, ModeWaits::new(100, 300, 800, 400))
        .with_waits(TurnMode::Digits, ModeWaits::new(300, 600, 1200, 1200))
}

#[test]
fn pause_then_complete_transcript_ends_when_the_text_arrives() {
    let mut ep = Endpointer::new(config(), TurnMode::FreeSpeech);
    // 10 voiced frames (0..200 ms), pause detected at 300 ms, text at 360 ms.
    let events = drive(&mut ep, "##########.....t.......", "When is it due?");
    assert!(matches!(
        events[0],
        TurnEvent::SpeechStart {
            at_ms: 40,
            first_voiced_at_ms: 0,
            resumed: false
        }
    ));
    assert_eq!(
        events[1],
        TurnEvent::Pause {
            at_ms: 300,
            last_voiced_at_ms: 200
        }
    );
    assert_eq!(
        ends(&events),
        [(
            320,
            200,
            EndReason::Silence {
                class: Some(Completeness::Complete),
                wait_ms: 100
            }
        )]
    );
    assert!(!ep.in_turn());
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn unfinished_transcript_bridges_a_long_pause() {
    let mut ep = Endpointer::new(config(), TurnMode::FreeSpeech);
    // Voiced 0..200, pause, "I'm calling about", 900 ms silence, voiced again, silence.
    let pattern = format!(
        "##########.....t{}##########{}",
        ".".repeat(39),
        ".".repeat(60)
    );
    let events = drive(&mut ep, &pattern, "I'm calling about");
    let starts = events
        .iter()
        .filter(|e| matches!(e, TurnEvent::SpeechStart { .. }))
        .count();
    assert_eq!(starts, 2);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, TurnEvent::SpeechStart { resumed: true, .. }))
    );
    // One end, after the second part, with no transcript for it: the fallback wait.
    let e = ends(&events);
    assert_eq!(e.len(), 1, "{events:?}");
    assert_eq!(e[0].1, 1300);
    assert_eq!(
        e[0].2,
        EndReason::Silence {
            class: None,
            wait_ms: 600
        }
    );
}

#[test]
fn without_transcripts_the_fallback_wait_applies() {
    let mut ep = Endpointer::new(config(), TurnMode::FreeSpeech);
    let events = drive(&mut ep, &format!("#####{}", ".".repeat(40)), "");
    assert_eq!(
        ends(&events),
        [(
            700,
            100,
            EndReason::Silence {
                class: None,
                wait_ms: 600
            }
        )]
    );
}

#[test]
fn timeout_reports_the_deadline_and_why() {
    let mut ep = Endpointer::new(config(), TurnMode::YesNo);
    assert_eq!(ep.poll_timeout(), None);
    drive(&mut ep, "#####", "");
    assert_eq!(ep.poll_timeout(), None, "speaking: no deadline");
    drive(&mut ep, ".....", "");
    assert_eq!(
        ep.poll_timeout(),
        Some((100 + 400, "end of turn: no transcript yet"))
    );
    ep.handle_transcript("yes and");
    assert_eq!(ep.completeness(), Some(Completeness::Incomplete));
    assert_eq!(
        ep.poll_timeout(),
        Some((100 + 800, "end of turn: unfinished transcript"))
    );
}

#[test]
fn transcript_while_speaking_is_ignored_and_resumed_speech_clears_it() {
    let mut ep = Endpointer::new(config(), TurnMode::FreeSpeech);
    drive(&mut ep, "#####", "");
    ep.handle_transcript("Done.");
    assert_eq!(ep.completeness(), None);
    drive(&mut ep, "......", "");
    ep.handle_transcript("I want to");
    assert_eq!(ep.completeness(), Some(Completeness::Incomplete));
    drive(&mut ep, "###", "");
    assert_eq!(ep.completeness(), None, "stale after speech resumed");
    assert!(ep.in_turn());
}

#[test]
fn a_blip_in_the_wait_holds_the_decision_only_until_it_is_rejected() {
    let mut ep = Endpointer::new(config(), TurnMode::FreeSpeech);
    // Wait 600 ms from 100 ms → deadline 700; a voiced frame at 680..700 (candidate) delays it,
    // the next silent frame rejects the candidate and the turn ends at 720.
    let pattern = format!("#####{}#.....", ".".repeat(29));
    let events = drive(&mut ep, &pattern, "");
    assert_eq!(ends(&events)[0].0, 720, "{events:?}");
}

#[test]
fn mode_switch_applies_to_the_current_wait() {
    let mut ep = Endpointer::new(config(), TurnMode::Digits);
    drive(&mut ep, "#####.....", "");
    assert_eq!(ep.poll_timeout().map(|t| t.0), Some(100 + 1200));
    ep.set_mode(TurnMode::YesNo);
    assert_eq!(ep.mode(), TurnMode::YesNo);
    assert_eq!(ep.poll_timeout().map(|t| t.0), Some(100 + 400));
}

#[test]
fn dtmf_digits_and_terminator() {
    let mut ep = Endpointer::new(config(), TurnMode::Digits);
    // Keys at 20, 40, 60 ms; terminator at 60 ms ends at once.
    let events = drive(&mut ep, "kkke", "");
    assert!(matches!(
        events[0],
        TurnEvent::SpeechStart {
            at_ms: 20,
            resumed: false,
            ..
        }
    ));
    assert_eq!(ends(&events), [(60, 60, EndReason::Terminator)]);
    assert_eq!(ep.digits(), "555");
    // A terminator with nothing entered is ignored.
    let events = drive(&mut ep, "e..", "");
    assert!(ends(&events).is_empty());
    // Without a terminator the inter-key timeout ends the entry.
    let mut c = config();
    c.dtmf_wait_ms = 1200;
    let mut ep = Endpointer::new(c, TurnMode::Digits);
    let events = drive(&mut ep, &format!("kk{}", ".".repeat(70)), "");
    assert_eq!(
        ends(&events),
        [(1240, 40, EndReason::DtmfTimeout { wait_ms: 1200 })]
    );
    // Transcripts do not shorten a key wait.
    let mut ep = Endpointer::new(c, TurnMode::Digits);
    drive(&mut ep, "k", "");
    ep.handle_transcript("Done.");
    assert_eq!(
        ep.poll_timeout(),
        Some((20 + 1200, "end of turn: DTMF inter-key timeout"))
    );
    // '#' is an ordinary key outside digits mode.
    let mut ep = Endpointer::new(config(), TurnMode::FreeSpeech);
    drive(&mut ep, "ke", "");
    assert_eq!(ep.digits(), "5#");
    assert!(ep.in_turn());
}

#[test]
fn keypad_mashing_does_not_grow_the_buffer() {
    let mut ep = Endpointer::new(config(), TurnMode::Digits);
    let cap = ep.digits.capacity();
    for _ in 0..1000 {
        ep.handle_dtmf('7');
        ep.handle_dtmf('é');
    }
    assert_eq!(ep.digits.capacity(), cap);
    assert!(ep.digits().len() <= cap);
}

#[test]
fn limits_clamp_every_wait() {
    let c = config().with_limits(250, 900);
    let long = 5000;
    assert_eq!(
        c.wait_ms(TurnMode::FreeSpeech, Some(Completeness::Complete), long),
        250
    );
    assert_eq!(c.wait_ms(TurnMode::Digits, None, long), 900);
    assert_eq!(
        c.wait_ms(TurnMode::FreeSpeech, Some(Completeness::Open), long),
        400
    );
    assert_eq!(
        c.wait_ms(TurnMode::FreeSpeech, Some(Completeness::Empty), long),
        600
    );
    // A cap below the floor cannot make the floor unreachable.
    assert_eq!(
        config()
            .with_limits(500, 100)
            .wait_ms(TurnMode::YesNo, None, long),
        500
    );
}

#[test]
fn reset_and_mode_names() {
    let mut ep = Endpointer::new(config(), TurnMode::FreeSpeech);
    drive(&mut ep, "#####..", "");
    ep.reset();
    assert_eq!(ep.now_ms(), 0);
    assert!(!ep.in_turn());
    assert_eq!(ep.poll_event(), None);
    for mode in TurnMode::ALL {
        assert_eq!(mode.to_string().parse::<TurnMode>().unwrap(), mode);
    }
    assert_eq!("yes-no".parse::<TurnMode>().unwrap(), TurnMode::YesNo);
    assert!("poetry".parse::<TurnMode>().is_err());
}

#[test]
fn classification() {
    use Completeness::*;
    let cases: &[(&str, TurnMode, Completeness)] = &[
        (
            "When is my next invoice due?",
            TurnMode::FreeSpeech,
            Complete,
        ),
        (
            "Hi, I would like to check the balance on my account.",
            TurnMode::FreeSpeech,
            Complete,
        ),
        ("I'm calling about", TurnMode::FreeSpeech, Incomplete),
        ("I'm calling about.", TurnMode::FreeSpeech, Incomplete),
        ("I'm calling about...", TurnMode::FreeSpeech, Incomplete),
        ("I need to", TurnMode::FreeSpeech, Incomplete),
        ("Um", TurnMode::FreeSpeech, Incomplete),
        (
            "the delivery arrived, and",
            TurnMode::FreeSpeech,
            Incomplete,
        ),
        ("the delivery arrived,", TurnMode::FreeSpeech, Incomplete),
        (
            "My account number is four, five",
            TurnMode::FreeSpeech,
            Incomplete,
        ),
        ("My account number is 4572", TurnMode::Digits, Incomplete),
        ("Please tell Sarah", TurnMode::FreeSpeech, Open),
        ("Please tell Sarah that", TurnMode::FreeSpeech, Incomplete),
        (
            "Could you please look into this?",
            TurnMode::FreeSpeech,
            Complete,
        ),
        (
            "Could you please look into this",
            TurnMode::FreeSpeech,
            Incomplete,
        ),
        ("Yes, it is.", TurnMode::YesNo, Complete),
        ("I want to.", TurnMode::FreeSpeech, Incomplete),
        ("Um.", TurnMode::FreeSpeech, Incomplete),
        ("Yes, that's correct.", TurnMode::YesNo, Complete),
        ("yes that's correct", TurnMode::YesNo, Complete),
        ("No, thank you.", TurnMode::YesNo, Complete),
        ("no thanks", TurnMode::FreeSpeech, Complete),
        ("Yes,", TurnMode::YesNo, Incomplete),
        ("Yes, but", TurnMode::YesNo, Incomplete),
        ("Nope", TurnMode::YesNo, Complete),
        ("That's right", TurnMode::YesNo, Complete),
        ("That is correct", TurnMode::YesNo, Complete),
        ("That's my", TurnMode::YesNo, Incomplete),
        ("Yes one", TurnMode::YesNo, Complete),
        ("", TurnMode::FreeSpeech, Empty),
        ("  ...  ", TurnMode::FreeSpeech, Empty),
        ("[BLANK_AUDIO]", TurnMode::FreeSpeech, Empty),
        ("(coughs)", TurnMode::YesNo, Empty),
        ("Goodbye!", TurnMode::FreeSpeech, Complete),
        ("\"Thanks.\"", TurnMode::FreeSpeech, Complete),
    ];
    for &(text, mode, want) in cases {
        assert_eq!(classify(text, mode), want, "{text:?} in {mode}");
    }
}

#[test]
fn classification_never_panics_on_odd_text() {
    for text in [
        "ÿ", "\u{0}", "….", "1-2-3", "--", "'", "a'", "Ü-ber", "💬?", "  ,  ",
    ] {
        for mode in TurnMode::ALL {
            let _ = classify(text, mode);
        }
    }
}

#[test]
fn short_turns_wait_longer_without_a_transcript() {
    let free = ModeWaits::new(100, 400, 1000, 600).with_short_no_transcript(900);
    let mut c = config().with_waits(TurnMode::FreeSpeech, free);
    c.short_turn_ms = 500;
    // 300 ms of speech: short; the fallback wait is 900 ms.
    let mut ep = Endpointer::new(c, TurnMode::FreeSpeech);
    let events = drive(
        &mut ep,
        &format!("{}{}", "#".repeat(15), ".".repeat(60)),
        "",
    );
    assert_eq!(
        ends(&events),
        [(
            1200,
            300,
            EndReason::Silence {
                class: None,
                wait_ms: 900
            }
        )]
    );
    // 600 ms: the normal fallback. A transcript overrides either.
    let mut ep = Endpointer::new(c, TurnMode::FreeSpeech);
    let events = drive(
        &mut ep,
        &format!("{}{}", "#".repeat(30), ".".repeat(40)),
        "",
    );
    assert_eq!(ends(&events)[0].0, 600 + 600);
    let mut ep = Endpointer::new(c, TurnMode::FreeSpeech);
    let events = drive(&mut ep, &format!("{}.....t...", "#".repeat(15)), "Yes.");
    assert_eq!(ends(&events)[0].0, 420);
}
