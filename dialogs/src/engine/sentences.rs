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
    /// Adds a delta; returns the sentences it completed.
    pub(crate) fn push(&mut self, delta: &str) -> Vec<String> {
        self.buf.push_str(delta);
        let mut out = Vec::new();
        while let Some(end) = self.boundary() {
            let sentence: String = self.buf.drain(..end).collect();
            let s = sentence.trim();
            if !s.is_empty() {
                out.push(s.to_string());
            }
        }
        out
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
    fn abbreviations_and_initials() {
        assert_eq!(
            split_all("Dr. Smith and J. Doe are in. Bye!"),
            vec!["Dr. Smith and J. Doe are in.", "Bye!"]
        );
        assert_eq!(split_all("Really?! Yes."), vec!["Really?!", "Yes."]);
    }
}
