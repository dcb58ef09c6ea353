//! The agent's voice: sentences waiting for synthesis (one synthesis at a time, in order), the
//! sentences handed to the leg, and how much of each the caller has heard — so a barge-in can
//! trim the reply to the words actually played.

use std::collections::VecDeque;

use super::Output;

/// One sentence handed to the leg, and how much of it has gone out.
#[derive(Debug, Clone)]
struct Played {
    item: u64,
    text: String,
    played_ms: u64,
    /// 0 until the leg's first report on it.
    total_ms: u64,
}

#[derive(Debug, Default)]
pub(super) struct Speaking {
    next_item: u64,
    /// Sentences waiting for synthesis, in order.
    waiting: VecDeque<(u64, String)>,
    /// The sentence being synthesised.
    synthesizing: Option<(u64, String)>,
    /// Sentences of the current reply handed to the leg, in order.
    played: Vec<Played>,
    /// The last item handed to the leg, until the leg reports everything up to it played.
    playing: Option<u64>,
}

impl Speaking {
    /// Queues a sentence; synthesis starts at once when none runs.
    pub fn say(&mut self, text: String, out: &mut VecDeque<Output>) {
        self.next_item += 1;
        self.waiting.push_back((self.next_item, text));
        self.start_next(out);
    }

    fn start_next(&mut self, out: &mut VecDeque<Output>) {
        if self.synthesizing.is_some() {
            return;
        }
        if let Some((item, text)) = self.waiting.pop_front() {
            out.push_back(Output::Synthesize {
                item,
                text: text.clone(),
            });
            self.synthesizing = Some((item, text));
        }
    }

    /// The synthesis of `item` finished; returns its text when it is still wanted, and starts
    /// the next synthesis.
    pub fn synthesized(&mut self, item: u64, out: &mut VecDeque<Output>) -> Option<String> {
        let text = match &self.synthesizing {
            Some((running, _)) if *running == item => self.synthesizing.take().map(|(_, t)| t),
            _ => None,
        };
        self.start_next(out);
        text
    }

    /// `item` (with `text`) was handed to the leg.
    pub fn handed_to_leg(&mut self, item: u64, text: String) {
        self.played.push(Played {
            item,
            text,
            played_ms: 0,
            total_ms: 0,
        });
        self.playing = Some(item);
    }

    pub fn progress(&mut self, item: u64, played_ms: u64, total_ms: u64) {
        if let Some(p) = self.played.iter_mut().find(|p| p.item == item) {
            p.played_ms = played_ms.min(total_ms);
            p.total_ms = total_ms;
        }
    }

    /// Everything up to `item` has been played. Returns true when that ends playback.
    pub fn idle(&mut self, item: u64) -> bool {
        for p in self.played.iter_mut().filter(|p| p.item <= item) {
            p.total_ms = p.total_ms.max(1);
            p.played_ms = p.total_ms;
        }
        if self.playing.is_some_and(|last| last <= item) {
            self.playing = None;
            return true;
        }
        false
    }

    /// `item` will never play.
    pub fn failed(&mut self, item: u64) {
        self.played.retain(|p| p.item != item);
        if self.playing == Some(item) {
            self.playing = self.played.last().map(|p| p.item);
        }
    }

    /// Audio handed to the leg has not all been played (paused audio counts).
    pub fn is_playing(&self) -> bool {
        self.playing.is_some()
    }

    /// Nothing waits for synthesis, none runs, nothing plays.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.synthesizing.is_none() && self.playing.is_none()
    }

    /// What the caller has heard of the current reply: whole sentences played, and the share
    /// of the next sentence's words proportional to its time played (speech rate is close
    /// enough to even within a sentence).
    pub fn heard(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for p in &self.played {
            if p.total_ms > 0 && p.played_ms >= p.total_ms {
                parts.push(p.text.clone());
                continue;
            }
            if p.total_ms > 0 && p.played_ms > 0 {
                let words: Vec<&str> = p.text.split_whitespace().collect();
                let share = p.played_ms as f64 / p.total_ms as f64;
                let n = (words.len() as f64 * share).floor() as usize;
                if n > 0 {
                    parts.push(words[..n].join(" "));
                }
            }
            break;
        }
        parts.retain(|p| !p.is_empty());
        parts.join(" ")
    }

    /// Stops speaking for good: playback flushed, synthesis cancelled, queued sentences
    /// dropped. Returns what the caller heard of the reply.
    pub fn stop(&mut self, out: &mut VecDeque<Output>) -> String {
        let heard = self.heard();
        if self.playing.take().is_some() {
            out.push_back(Output::Flush);
        }
        if self.synthesizing.take().is_some() {
            out.push_back(Output::CancelSynthesis);
        }
        self.waiting.clear();
        self.played.clear();
        heard
    }

    /// A new reply starts: what was heard of the previous one no longer matters.
    pub fn new_reply(&mut self) {
        self.played.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heard_text_follows_the_time_played() {
        let mut out = VecDeque::new();
        let mut s = Speaking::default();
        s.handed_to_leg(1, "Hello there.".into());
        s.handed_to_leg(2, "Your balance is forty two dollars today.".into());
        assert_eq!(s.heard(), "");
        s.progress(1, 500, 1000);
        assert_eq!(s.heard(), "Hello", "half of two words");
        s.progress(1, 1000, 1000);
        assert_eq!(s.heard(), "Hello there.");
        // Half of the second sentence's time: floor(7 × 0.5) = 3 of its words.
        s.progress(2, 1000, 2000);
        assert_eq!(s.heard(), "Hello there. Your balance is");
        assert!(s.is_playing());
        assert!(s.idle(2));
        assert_eq!(
            s.heard(),
            "Hello there. Your balance is forty two dollars today."
        );
        let heard = s.heard();
        assert_eq!(s.stop(&mut out), heard);
        assert!(out.is_empty(), "nothing to flush once idle");
    }

    #[test]
    fn one_synthesis_at_a_time_in_order_and_stop_cancels() {
        let mut out = VecDeque::new();
        let mut s = Speaking::default();
        s.say("One.".into(), &mut out);
        s.say("Two.".into(), &mut out);
        assert!(matches!(
            out.pop_front(),
            Some(Output::Synthesize { item: 1, .. })
        ));
        assert!(out.is_empty());
        assert_eq!(s.synthesized(7, &mut out), None, "not the running item");
        assert_eq!(s.synthesized(1, &mut out).as_deref(), Some("One."));
        assert!(matches!(
            out.pop_front(),
            Some(Output::Synthesize { item: 2, .. })
        ));
        s.handed_to_leg(1, "One.".into());
        let heard = s.stop(&mut out);
        assert_eq!(heard, "");
        assert!(matches!(out.pop_front(), Some(Output::Flush)));
        assert!(matches!(out.pop_front(), Some(Output::CancelSynthesis)));
        assert!(s.is_idle());
        assert_eq!(
            s.synthesized(2, &mut out),
            None,
            "a cancelled synthesis is stale"
        );
    }
}
