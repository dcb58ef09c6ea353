//! What the caller actually heard: sentences queued for playback with their frame ranges, so
//! a barge-in can trim the reply to the words played.

/// One sentence handed to the leg.
#[derive(Debug, Clone)]
struct Played {
    text: String,
    first_frame: u64,
    frames: u64,
}

/// The sentences of the reply being played.
#[derive(Debug, Default)]
pub struct PlaybackLog {
    sentences: Vec<Played>,
}

impl PlaybackLog {
    pub fn clear(&mut self) {
        self.sentences.clear();
    }

    pub fn push(&mut self, text: &str, first_frame: u64, frames: u64) {
        self.sentences.push(Played {
            text: text.to_owned(),
            first_frame,
            frames,
        });
    }

    /// All text queued so far.
    #[cfg(test)]
    pub fn full_text(&self) -> String {
        join(self.sentences.iter().map(|s| s.text.as_str()))
    }

    /// The text heard when playback stopped at frame `position`: whole sentences that ended
    /// before it, and the share of the next sentence's words proportional to its frames
    /// played (speech rate is close enough to even within a sentence).
    pub fn heard_until(&self, position: u64) -> String {
        let mut parts = Vec::new();
        for s in &self.sentences {
            if position >= s.first_frame + s.frames {
                parts.push(s.text.clone());
                continue;
            }
            if position > s.first_frame && s.frames > 0 {
                let words: Vec<&str> = s.text.split_whitespace().collect();
                let played = (position - s.first_frame) as f64 / s.frames as f64;
                let n = (words.len() as f64 * played).floor() as usize;
                if n > 0 {
                    parts.push(words[..n].join(" "));
                }
            }
            break;
        }
        join(parts.iter().map(String::as_str))
    }
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::PlaybackLog;

    #[test]
    fn heard_text_follows_the_frames_played() {
        let mut log = PlaybackLog::default();
        log.push("Hello there.", 100, 50);
        log.push("Your balance is forty two dollars today.", 150, 100);
        assert_eq!(log.heard_until(90), "");
        assert_eq!(log.heard_until(120), "");
        assert_eq!(log.heard_until(150), "Hello there.");
        // Half of the second sentence's frames: floor(7 × 0.5) = 3 of its words.
        assert_eq!(log.heard_until(200), "Hello there. Your balance is");
        assert_eq!(log.heard_until(1000), log.full_text());
    }
}
