//! One exchange between caller and agent as stored (a turn), and what counts as words. Part
//! of the call core: it never reads the clock.

#![deny(clippy::disallowed_methods)]

use std::time::Instant;

use store::{Turn, TurnLatency};

/// Timings and text of one exchange, measured at the RTP boundary.
#[derive(Debug, Clone)]
pub(super) struct Exchange {
    pub seq: i64,
    pub started_at: i64,
    pub caller_text: Option<String>,
    /// Arrival of the caller's last voiced frame.
    pub last_voiced: Option<Instant>,
    /// End of turn decided.
    pub decided: Option<Instant>,
    /// Final transcript available.
    pub stt_done: Option<Instant>,
    pub first_sentence: Option<Instant>,
    pub first_audio: Option<Instant>,
    pub first_rtp: Option<Instant>,
    pub interrupted: bool,
    pub agent_text: String,
}

impl Exchange {
    /// Exchange `seq` (0: the greeting), starting at `started_at` (unix ms).
    pub fn new(seq: i64, started_at: i64) -> Self {
        Self {
            seq,
            started_at,
            caller_text: None,
            last_voiced: None,
            decided: None,
            stt_done: None,
            first_sentence: None,
            first_audio: None,
            first_rtp: None,
            interrupted: false,
            agent_text: String::new(),
        }
    }

    pub fn append_agent_text(&mut self, text: &str) {
        if !self.agent_text.is_empty() {
            self.agent_text.push(' ');
        }
        self.agent_text.push_str(text);
    }

    pub fn to_turn(&self, call_id: &store::CallId) -> Turn {
        let ms = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(b.saturating_duration_since(a).as_millis() as i64),
            _ => None,
        };
        Turn {
            call_id: call_id.clone(),
            seq: self.seq,
            started_at: self.started_at,
            caller_text: self.caller_text.clone(),
            agent_text: (!self.agent_text.is_empty()).then(|| self.agent_text.clone()),
            interrupted: self.interrupted,
            latency: TurnLatency {
                eot_ms: ms(self.last_voiced, self.decided),
                stt_ms: ms(self.decided, self.stt_done),
                llm_ms: ms(self.stt_done, self.first_sentence),
                tts_ms: ms(self.first_sentence, self.first_audio),
                e2e_ms: ms(self.last_voiced, self.first_rtp),
            },
        }
    }
}

/// Whisper marks non-speech as `[BLANK_AUDIO]`, `(music)`, `*cough*`…; those are not words.
pub(super) fn clean_transcript(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0i32;
    let mut starred = false;
    for c in text.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = (depth - 1).max(0),
            '*' => starred = !starred,
            _ if depth == 0 && !starred => out.push(c),
            _ => {}
        }
    }
    let out = out.trim();
    if out.chars().any(char::is_alphanumeric) {
        out.to_owned()
    } else {
        String::new()
    }
}

/// Words a listener says to show they are following, not to take the turn.
const BACKCHANNELS: &[&str] = &[
    "mm", "mmm", "hm", "hmm", "mhm", "mm-hm", "mm-hmm", "uh-huh", "uh", "huh", "ah", "oh", "yeah",
    "yep", "yes", "ok", "okay", "right", "sure", "alright", "i", "see", "got", "it", "go", "on",
];

/// A short acknowledgement ("mm-hm", "yeah", "okay, I see") rather than a request: the agent
/// should keep talking.
pub(super) fn is_backchannel(text: &str) -> bool {
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '!' | '?'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    !words.is_empty()
        && words.len() <= 3
        && words.iter().all(|w| BACKCHANNELS.contains(&w.as_str()))
}

#[cfg(test)]
mod tests {
    use super::{clean_transcript, is_backchannel};

    #[test]
    fn non_speech_markers_are_not_words() {
        assert_eq!(clean_transcript(" [BLANK_AUDIO]"), "");
        assert_eq!(clean_transcript("(music) "), "");
        assert_eq!(clean_transcript(" ..."), "");
        assert_eq!(
            clean_transcript(" Hi, I'd like my balance."),
            "Hi, I'd like my balance."
        );
        assert_eq!(clean_transcript("[noise] Yes."), "Yes.");
        assert_eq!(clean_transcript("*cough* No thanks."), "No thanks.");
    }

    #[test]
    fn backchannels_are_short_acknowledgements() {
        for t in ["Mm-hm.", "Yeah.", "Okay, I see.", "uh-huh", "Right, right."] {
            assert!(is_backchannel(t), "{t}");
        }
        for t in [
            "Yes, I'd like to pay now.",
            "Stop.",
            "What's my balance?",
            "",
            "No.",
        ] {
            assert!(!is_backchannel(t), "{t}");
        }
    }
}
