//! Splits streamed text into sentences so TTS can start on the first one while the LLM is
//! still generating the rest.

/// Words that end with a period without ending a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "no", "approx", "inc",
    "ltd",
];

/// Accumulates text deltas and hands out complete sentences.
#[derive(Debug, Default)]
pub(crate) struct SentenceSplitter {
    buf: String,
}

impl SentenceSplitter {
    /// Adds a delta; returns the sentences it completed, including one that ends exactly at
    /// the end of this delta (TTS should not wait for the next chunk to start speaking it).
    pub(crate) fn push(&mut self, delta: &str) -> Vec<String> {
        self.buf.push_str(delta);
        let mut out = Vec::new();
        while let Some(end) = self.boundary() {
            let sentence: String = self.buf.drain(..end).collect();
            Self::emit(&sentence, &mut out);
        }
        if self.ends_sentence() {
            let sentence = std::mem::take(&mut self.buf);
            Self::emit(&sentence, &mut out);
        }
        out
    }

    fn emit(sentence: &str, out: &mut Vec<String>) {
        let s = sentence.trim();
        // A lone run of punctuation (the rest of an "..." split across chunks after its first
        // dot was handed out) is nothing to say.
        if s.chars().any(char::is_alphanumeric) {
            out.push(s.to_string());
        } else if let Some(last) = out.last_mut() {
            last.push_str(s);
        }
    }

    /// Whether the buffer ends with a sentence end, judged without the next delta. `!` and
    /// `?` always end one; `.` does unless it follows a digit ("$12." may go on as "$12.50")
    /// or closes an abbreviation or an initial.
    fn ends_sentence(&self) -> bool {
        let t = self.buf.trim_end_matches(['"', '\'', ')']);
        if t.len() != self.buf.len() && t.trim_end() != t {
            return false;
        }
        let Some(last) = t.chars().last() else {
            return false;
        };
        match last {
            '!' | '?' => true,
            '.' => {
                let body = t.trim_end_matches('.');
                let dots = t.len() - body.len();
                if body.trim().is_empty() {
                    return false;
                }
                if dots > 1 {
                    // An ellipsis ends a thought.
                    return true;
                }
                let before_dot = body.chars().last();
                !before_dot.is_some_and(|c| c.is_ascii_digit()) && !self.is_abbreviation(body.len())
            }
            _ => false,
        }
    }

    /// The rest, at the end of the stream.
    pub(crate) fn flush(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        let s = rest.trim();
        (!s.is_empty()).then(|| s.to_string())
    }

    /// Byte index just past a sentence end followed by whitespace (so "3.50" and "e.g." mid
    /// stream are not cut: the next delta decides).
    fn boundary(&self) -> Option<usize> {
        let b = self.buf.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c == b'\n' && !self.buf[..i].trim().is_empty() {
                return Some(i + 1);
            }
            if !matches!(c, b'.' | b'!' | b'?') {
                continue;
            }
            // Let a run of terminators ("?!", "...") and a closing quote stay together.
            let mut j = i + 1;
            while j < b.len() && matches!(b[j], b'.' | b'!' | b'?' | b'"' | b'\'' | b')') {
                j += 1;
            }
            if j >= b.len() || !b[j].is_ascii_whitespace() {
                continue;
            }
            if c == b'.' && self.is_abbreviation(i) {
                continue;
            }
            return Some(j);
        }
        None
    }

    fn is_abbreviation(&self, dot: usize) -> bool {
        let before = &self.buf[..dot];
        let word = before
            .rsplit(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .trim_start_matches(['(', '"', '\''])
            .to_ascii_lowercase();
        // Single letters ("J. Smith") are initials, not sentence ends.
        word.len() == 1 && word.chars().all(|c| c.is_ascii_alphabetic())
            || ABBREVIATIONS.contains(&word.as_str())
    }
}

/// Splits a finished text (an opener, a scripted reply) into sentences.
pub(crate) fn split_all(text: &str) -> Vec<String> {
    let mut s = SentenceSplitter::default();
    let mut out = s.push(text);
    out.extend(s.flush());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_across_deltas() {
        let mut s = SentenceSplitter::default();
        assert!(s.push("Your balance is $12").is_empty());
        assert!(s.push(".50").is_empty());
        assert_eq!(
            s.push(". Anything else? I"),
            vec!["Your balance is $12.50.", "Anything else?"]
        );
        assert_eq!(s.flush().as_deref(), Some("I"));
    }

    #[test]
    fn a_sentence_ending_at_a_chunk_end_is_not_held_back() {
        let mut s = SentenceSplitter::default();
        assert_eq!(s.push("Hello there."), vec!["Hello there."]);
        assert_eq!(s.push(" How are you?"), vec!["How are you?"]);
        assert_eq!(s.push(" Great!\")"), vec!["Great!\")"]);
        // Could still be a decimal, an abbreviation or an initial: wait for the next delta.
        assert!(s.push(" You owe $12.").is_empty());
        assert_eq!(s.push("50. Thanks"), vec!["You owe $12.50."]);
        assert!(s.push(", Dr.").is_empty());
        assert!(s.push(" J.").is_empty());
        assert_eq!(s.push(" Smith."), vec!["Thanks, Dr. J. Smith."]);
        assert_eq!(s.flush(), None);
        // An ellipsis split across deltas adds no empty sentence.
        assert_eq!(s.push("Well.."), vec!["Well.."]);
        assert_eq!(s.push(". I see."), vec!["I see."]);
        assert_eq!(s.flush(), None);
    }

    #[test]
    fn abbreviations_and_initials() {
        assert_eq!(
            split_all("Dr. Smith and J. Doe are in. Bye!"),
            vec!["Dr. Smith and J. Doe are in.", "Bye!"]
        );
        assert_eq!(split_all("Really?! Yes."), vec!["Really?!", "Yes."]);
    }
}
