//! Catching whisper's repetition loops while it decodes, and trimming what they left.
//!
//! With an encoder window fitted to a short utterance (the main latency lever), tiny.en
//! sometimes fails to emit end-of-text after the speech and re-reads the audio instead:
//! "Yes, that's correct. Yes, that's correct. Yes, …" until the token limit. Decoding such a
//! loop costs as much as the encoder saved, and the text is wrong. The guard below watches the
//! text tokens as they are produced; when the tail repeats (the same k tokens twice in a row
//! for k ≥ 3, three times for k = 2, four times for k = 1) or starts over with the
//! utterance's first tokens, decoding is stopped and the text is cut where the repeat began.
//! A speaker who really says the same three-token phrase twice loses the second copy — a
//! cheap price for a dialog turn.

/// Where a loop starts in `text` (token ids without timestamps and specials), or `None`.
pub(crate) fn loop_start(text: &[i32]) -> Option<usize> {
    let n = text.len();
    // The tail repeats the block just before it, `reps` copies in all.
    for k in 1..=n / 2 {
        let reps = match k {
            1 => 4,
            2 => 3,
            _ => 2,
        };
        if k * reps > n {
            continue;
        }
        let tail = &text[n - k..];
        let repeated = (1..reps).all(|r| &text[n - (r + 1) * k..n - r * k] == tail);
        if repeated {
            // Keep the first copy only.
            return Some(n - (reps - 1) * k);
        }
    }
    // The tail restarts the utterance from its first tokens.
    const RESTART: usize = 4;
    if n >= 2 * RESTART && text[n - RESTART..] == text[..RESTART] {
        return Some(n - RESTART);
    }
    None
}

/// After a loop was cut: the token-level cut can leave a copy (or the start of one) that
/// differs only in case or punctuation ("… my last invoice. My"). Finds the earliest point
/// from which the words repeat with some period k ≥ 2 up to the end, and keeps one period.
pub(crate) fn trim_repeated_tail(text: &str) -> &str {
    let words = word_spans(text);
    let n = words.len();
    let mut best: Option<usize> = None; // words to keep
    for k in 2..=n / 2 {
        // Smallest s such that words[i] == words[i + k] for all i in s..n-k.
        let mut s = n - k;
        while s > 0 && words[s - 1].0 == words[s - 1 + k].0 {
            s -= 1;
        }
        if s < n - k {
            best = Some(best.map_or(s + k, |b: usize| b.min(s + k)));
        }
    }
    match best {
        Some(keep) if keep < n => text[..words[keep].1].trim_end(),
        _ => text,
    }
}

fn word_spans(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(String, usize)> = None;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() || c == '\'' {
            let w = current.get_or_insert_with(|| (String::new(), i));
            w.0.extend(c.to_lowercase());
        } else if let Some(w) = current.take() {
            out.push(w);
        }
    }
    out.extend(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_loop_in_ordinary_text() {
        assert_eq!(loop_start(&[]), None);
        assert_eq!(loop_start(&[1, 2, 3, 4, 5, 6, 7]), None);
        // "no, no" and digit runs like "4 4" are speech, not loops.
        assert_eq!(loop_start(&[10, 11, 10]), None);
        assert_eq!(loop_start(&[5, 9, 9]), None);
        assert_eq!(loop_start(&[5, 9, 9, 9]), None);
        assert_eq!(loop_start(&[1, 2, 1, 2]), None);
    }

    #[test]
    fn finds_repeated_blocks() {
        // A B C A B C -> keep A B C
        assert_eq!(loop_start(&[1, 2, 3, 1, 2, 3]), Some(3));
        // X A B A B A B -> keep X A B
        assert_eq!(loop_start(&[7, 1, 2, 1, 2, 1, 2]), Some(3));
        // yes yes yes yes
        assert_eq!(loop_start(&[8, 4, 4, 4, 4]), Some(2));
    }

    #[test]
    fn finds_restart_from_the_beginning() {
        let t = [1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4];
        assert_eq!(loop_start(&t), Some(7));
    }

    #[test]
    fn trims_case_variant_copy() {
        assert_eq!(
            trim_repeated_tail("I'm calling about my last invoice. My last invoice."),
            "I'm calling about my last invoice."
        );
        assert_eq!(
            trim_repeated_tail("I'm calling about my last invoice. My"),
            "I'm calling about my last invoice."
        );
        assert_eq!(trim_repeated_tail("No, thank you."), "No, thank you.");
        assert_eq!(trim_repeated_tail("4 4"), "4 4");
    }
}
