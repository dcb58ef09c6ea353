//! Answering-machine detection on an answered outbound call: the callee's audio goes to the
//! detector (`audio::amd`) instead of the listener until it decides. A person (or nobody,
//! after the detector's deadline) gets the flow's greeting at once; a machine is left the
//! flow's voicemail message once its greeting is over — after the beep, or after the silence
//! that ends a greeting without one — and the call ends as `voicemail`.

use std::time::Instant;

use audio::amd::{AmdDetector, AmdEvent, Reason, Verdict};
use store::EventKind;

use super::{CallCore, Phase, Reply};
use crate::calls::dialog::DialogCommand;

/// A machine whose greeting neither beeps nor pauses is left the message after this long
/// (ms of callee audio from the answer).
const MACHINE_GREETING_LIMIT_MS: u32 = 30_000;

#[derive(Debug)]
pub(super) struct Screening {
    detector: AmdDetector,
    /// The machine verdict came this many ms after the answer.
    machine_at: Option<u32>,
}

impl Screening {
    pub(super) fn new(detector: AmdDetector) -> Self {
        Self {
            detector,
            machine_at: None,
        }
    }
}

impl CallCore {
    /// One frame of the callee's audio while screening.
    pub(super) fn screen(&mut self, now: Instant, pcm: &[i16]) {
        let Phase::Screening(screening) = &mut self.phase else {
            return;
        };
        let mut events = Vec::new();
        if let Some(first) = screening.detector.push(pcm) {
            events.push(first);
            events.extend(std::iter::from_fn(|| screening.detector.poll_event()));
        }
        let overdue = screening
            .machine_at
            .is_some_and(|at| screening.detector.elapsed_ms() >= at + MACHINE_GREETING_LIMIT_MS);
        for event in events {
            match event {
                AmdEvent::Decided {
                    verdict,
                    reason,
                    after_ms,
                } => {
                    self.event(
                        now,
                        EventKind::Amd,
                        serde_json::json!({
                            "verdict": verdict.as_str(),
                            "reason": reason_code(reason),
                            "after_ms": after_ms,
                        }),
                    );
                    if verdict == Verdict::Machine {
                        if let Phase::Screening(s) = &mut self.phase {
                            s.machine_at = Some(after_ms);
                        }
                    } else {
                        // A person, or nobody yet: the flow speaks first.
                        self.quiet_since = now;
                        self.greet();
                        return;
                    }
                }
                AmdEvent::Beep {
                    at_ms,
                    tone_hz,
                    duration_ms,
                } => {
                    self.event(
                        now,
                        EventKind::AmdBeep,
                        serde_json::json!({
                            "at_ms": at_ms,
                            "tone_hz": tone_hz,
                            "duration_ms": duration_ms,
                        }),
                    );
                    self.leave_message(now);
                    return;
                }
                AmdEvent::GreetingEnded { .. } => {
                    self.leave_message(now);
                    return;
                }
                _ => {}
            }
        }
        if overdue {
            tracing::info!("the machine's greeting never ended; leaving the message now");
            self.leave_message(now);
        }
    }

    /// The machine is listening: the flow's voicemail message, then the end of the call.
    fn leave_message(&mut self, now: Instant) {
        self.quiet_since = now;
        let reply = self.ask_dialog(DialogCommand::Voicemail);
        self.phase = Phase::Replying(Reply::new(reply));
    }
}

/// Stable codes for the `amd` event's `reason`.
fn reason_code(reason: Reason) -> &'static str {
    match reason {
        Reason::ShortGreetingThenSilence => "short_greeting_then_silence",
        Reason::LongGreeting => "long_greeting",
        Reason::ManyWords => "many_words",
        Reason::Beep => "beep",
        Reason::TalkingAtDeadline => "talking_at_deadline",
        Reason::SpokeBeforeDeadline => "spoke_before_deadline",
        Reason::Silence => "silence",
        _ => "other",
    }
}
