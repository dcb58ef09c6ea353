//! The detector on synthetic audio: harmonic "speech" bursts, silence, tones.

use super::*;

const FRAME: usize = 320;

/// Voice-like: a 140 Hz buzz with its harmonics (no single bin dominates), syllable-modulated.
fn speech(ms: u32) -> Vec<i16> {
    let n = (ms as usize) * 16;
    (0..n)
        .map(|i| {
            let t = i as f32 / 16000.0;
            let envelope = 0.6 + 0.4 * (2.0 * std::f32::consts::PI * 4.0 * t).sin();
            let v: f32 = (1..=12)
                .map(|h| (2.0 * std::f32::consts::PI * 140.0 * h as f32 * t).sin() / h as f32)
                .sum();
            (v * envelope * 3000.0) as i16
        })
        .collect()
}

fn silence(ms: u32) -> Vec<i16> {
    vec![0; ms as usize * 16]
}

fn tone(hz: f32, ms: u32) -> Vec<i16> {
    (0..ms as usize * 16)
        .map(|i| (6000.0 * (2.0 * std::f32::consts::PI * hz * i as f32 / 16000.0).sin()) as i16)
        .collect()
}

fn feed(parts: &[Vec<i16>]) -> Vec<AmdEvent> {
    let audio: Vec<i16> = parts.concat();
    let mut amd = AmdDetector::new(AmdConfig::default());
    let mut events = Vec::new();
    for frame in audio.chunks(FRAME) {
        if let Some(e) = amd.push(frame) {
            events.push(e);
        }
        while let Some(e) = amd.poll_event() {
            events.push(e);
        }
    }
    events
}

fn decided(events: &[AmdEvent]) -> (Verdict, Reason, u32) {
    events
        .iter()
        .find_map(|e| match *e {
            AmdEvent::Decided {
                verdict,
                reason,
                after_ms,
            } => Some((verdict, reason, after_ms)),
            _ => None,
        })
        .expect("a verdict")
}

#[test]
fn a_short_hello_then_silence_is_a_person() {
    let events = feed(&[silence(300), speech(500), silence(3000)]);
    let (verdict, reason, at) = decided(&events);
    assert_eq!(
        (verdict, reason),
        (Verdict::Human, Reason::ShortGreetingThenSilence)
    );
    // 800 ms of silence after the hello (the high-pass rings on for up to a frame).
    assert!((1_600..=1_620).contains(&at), "{at}");
}

#[test]
fn talking_on_is_a_machine() {
    let events = feed(&[silence(200), speech(4000)]);
    let (verdict, reason, at) = decided(&events);
    assert_eq!((verdict, reason), (Verdict::Machine, Reason::LongGreeting));
    assert!((1_700..=1_760).contains(&at), "{at}");
}

#[test]
fn many_short_words_are_a_machine() {
    let mut parts = vec![silence(200)];
    for _ in 0..4 {
        parts.push(speech(150));
        parts.push(silence(250));
    }
    parts.push(silence(2000));
    let (verdict, reason, _) = decided(&feed(&parts));
    assert_eq!((verdict, reason), (Verdict::Machine, Reason::ManyWords));
}

#[test]
fn silence_is_unknown_at_the_deadline() {
    let events = feed(&[silence(5000)]);
    assert_eq!(decided(&events), (Verdict::Unknown, Reason::Silence, 3_000));
    assert_eq!(events.len(), 1, "nothing else");
}

#[test]
fn the_beep_after_a_machine_greeting_is_reported_when_it_ends() {
    let events = feed(&[
        silence(200),
        speech(3000),
        silence(400),
        tone(1000.0, 400),
        silence(1000),
    ]);
    assert_eq!(decided(&events).0, Verdict::Machine);
    let beep = events
        .iter()
        .find_map(|e| match *e {
            AmdEvent::Beep {
                at_ms,
                tone_hz,
                duration_ms,
            } => Some((at_ms, tone_hz, duration_ms)),
            _ => None,
        })
        .expect("beep");
    assert!(beep.0.abs_diff(4_000) <= 20, "{beep:?}");
    assert!(beep.1.abs_diff(1000) <= 25, "{beep:?}");
    assert!(beep.2.abs_diff(400) <= 20, "{beep:?}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, AmdEvent::GreetingEnded { .. })),
        "the beep came: no greeting end"
    );
}

#[test]
fn a_beep_after_a_short_greeting_decides_machine() {
    let events = feed(&[
        silence(200),
        speech(700),
        silence(300),
        tone(1400.0, 300),
        silence(1000),
    ]);
    let (verdict, reason, at) = decided(&events);
    assert_eq!((verdict, reason), (Verdict::Machine, Reason::Beep));
    assert!(at <= 1_600, "{at}");
}

#[test]
fn continuous_tones_and_blips_are_not_beeps() {
    let long = feed(&[silence(200), speech(2500), tone(1000.0, 4000), silence(500)]);
    assert!(
        !long.iter().any(|e| matches!(e, AmdEvent::Beep { .. })),
        "{long:?}"
    );
    let blip = feed(&[silence(200), speech(2500), tone(1000.0, 80), silence(500)]);
    assert!(
        !blip.iter().any(|e| matches!(e, AmdEvent::Beep { .. })),
        "{blip:?}"
    );
}

#[test]
fn a_machine_without_a_beep_ends_its_greeting() {
    let events = feed(&[silence(200), speech(3000), silence(2500)]);
    let end = events.iter().find_map(|e| match *e {
        AmdEvent::GreetingEnded { at_ms } => Some(at_ms),
        _ => None,
    });
    // 1.5 s after the last voiced frame (the synthetic voice's last syllable trough may
    // already count as quiet).
    let end = end.expect("greeting end");
    assert!((4_500..=4_700).contains(&end), "{end}");
}

#[test]
fn steady_line_noise_is_not_speech() {
    // Pseudo-random noise at about -35 dBFS, then a short hello.
    let mut x: u32 = 7;
    let noise: Vec<i16> = (0..16 * 4000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ((x % 1200) as i16) - 600
        })
        .collect();
    let mut audio = noise.clone();
    let hello = speech(500);
    for (i, s) in hello.iter().enumerate() {
        audio[8000 + i] = audio[8000 + i].saturating_add(*s);
    }
    let (verdict, _, at) = decided(&feed(&[audio]));
    assert_eq!(verdict, Verdict::Human, "decided at {at}");
}
