//! What an interim transcript says about the turn: finished, open, or clearly unfinished.
//!
//! Plain word lists, no model: the decision has to be made in microseconds at every pause, and
//! the cues that matter on a phone line are few — a trailing "about"/"and"/"um"/"to", a trailing
//! number (more digits may follow), a trailing comma, or a bare yes/no answer. Everything here
//! works on `&str` without allocating.

use super::TurnMode;

/// How finished an interim transcript sounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Completeness {
    /// Sounds finished: ends with `.`, `!` or `?` after a word that does not ask for more, or is a
    /// bare yes/no answer ("Yes, that's correct", "no thanks").
    Complete,
    /// Neither: no closing punctuation and no trailing cue (whisper's interim text of a cut
    /// sentence often looks like this).
    Open,
    /// Sounds unfinished: ends with a conjunction, preposition, article, filler ("um") or
    /// possessive (even before a period), a number (in free speech and digit entry), a comma,
    /// an ellipsis or a dash; or, without closing punctuation, with a word that usually goes on
    /// ("that", "is", "I'm", …).
    Incomplete,
    /// No words at all (empty, or only punctuation / a non-speech tag like `[BLANK_AUDIO]`).
    Empty,
}

/// Classifies `text` for `mode`; see [`Completeness`] for the rules.
///
/// ```
/// # use audio::endpoint::{classify, Completeness, TurnMode};
/// assert_eq!(classify("I'm calling about.", TurnMode::FreeSpeech), Completeness::Incomplete);
/// assert_eq!(classify("No, thank you.", TurnMode::YesNo), Completeness::Complete);
/// assert_eq!(classify("My number is four, five", TurnMode::Digits), Completeness::Incomplete);
/// ```
pub fn classify(text: &str, mode: TurnMode) -> Completeness {
    let text = strip_tags(text.trim());
    let Some(last_word) = words(text).next_back() else {
        return Completeness::Empty;
    };
    // The character after the last word decides punctuation: "about." vs "about," vs "about".
    let tail = text.trim_end().trim_end_matches(['"', '\'', ')']);
    if tail.ends_with("...") || tail.ends_with('…') || tail.ends_with('-') || tail.ends_with('—')
    {
        return Completeness::Incomplete;
    }
    if tail.ends_with(',') || tail.ends_with(';') || tail.ends_with(':') {
        return Completeness::Incomplete;
    }
    if is_strong_continuation(last_word) {
        // Even with a period: whisper closes a cut-off sentence with one ("I'm calling about.").
        return Completeness::Incomplete;
    }
    if is_number(last_word) && mode != TurnMode::YesNo {
        return Completeness::Incomplete;
    }
    if is_short_answer(text) {
        return Completeness::Complete;
    }
    if tail.ends_with(['.', '!', '?']) {
        Completeness::Complete
    } else if is_weak_continuation(last_word) {
        Completeness::Incomplete
    } else {
        Completeness::Open
    }
}

/// Words lower-cased on comparison, punctuation trimmed; empty tokens dropped.
fn words(text: &str) -> impl DoubleEndedIterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '.' || c == '!' || c == '?')
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\''))
        .filter(|w| !w.is_empty())
}

/// Drops whisper-style non-speech tags (`[BLANK_AUDIO]`, `(coughs)`) when they are the whole
/// text; tags mixed with words are left to the word rules.
fn strip_tags(text: &str) -> &str {
    let bracketed = |t: &str| {
        (t.starts_with('[') && t.ends_with(']')) || (t.starts_with('(') && t.ends_with(')'))
    };
    if bracketed(text) { "" } else { text }
}

fn any_eq(word: &str, list: &[&str]) -> bool {
    list.iter().any(|w| w.eq_ignore_ascii_case(word))
}

/// Words after which an English sentence is almost never over, whatever punctuation follows.
fn is_strong_continuation(word: &str) -> bool {
    const WORDS: &[&str] = &[
        // conjunctions
        "and",
        "or",
        "but",
        "because",
        "if",
        "than",
        "although",
        "though",
        "unless",
        "whether",
        // prepositions that need an object
        "about",
        "to",
        "for",
        "of",
        "with",
        "from",
        "at",
        "by",
        "into",
        "onto",
        "regarding",
        "between",
        "without",
        // articles, possessives
        "a",
        "an",
        "the",
        "my",
        "our",
        "your",
        "their",
        "every",
        "each",
        // fillers
        "um",
        "umm",
        "uh",
        "uhh",
        "er",
        "erm",
    ];
    any_eq(word, WORDS)
}

/// Words that usually continue a sentence but can end one ("What is this?", "Come in.", "Yes,
/// it is."): unfinished only when no closing punctuation follows.
fn is_weak_continuation(word: &str) -> bool {
    const WORDS: &[&str] = &[
        "so", "that", "then", "when", "while", "until", "which", "who", "where", "in", "on",
        "like", "as", "after", "before", "under", "over", "this", "these", "those", "some", "any",
        "another", "his", "her", "its", "is", "are", "was", "were", "am", "be", "been", "have",
        "has", "had", "do", "does", "did", "will", "would", "can", "could", "should", "want",
        "need", "i", "i'm", "i've", "i'd", "it's", "we're", "you're", "there's", "hmm", "mm",
        "well",
    ];
    any_eq(word, WORDS)
}

/// A digit string or a spelled-out digit / number word.
fn is_number(word: &str) -> bool {
    const WORDS: &[&str] = &[
        "zero",
        "oh",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
        "thirty",
        "forty",
        "fifty",
        "sixty",
        "seventy",
        "eighty",
        "ninety",
        "hundred",
        "thousand",
        "double",
        "triple",
    ];
    word.chars().all(|c| c.is_ascii_digit() || c == '-') && word.chars().any(|c| c.is_ascii_digit())
        || any_eq(word, WORDS)
}

/// A complete short answer: starts with a yes/no word, at most five words, and (checked by the
/// caller first) no trailing cue asking for more.
fn is_short_answer(text: &str) -> bool {
    const FIRST: &[&str] = &[
        "yes",
        "yeah",
        "yep",
        "yup",
        "yea",
        "no",
        "nope",
        "nah",
        "sure",
        "correct",
        "right",
        "okay",
        "ok",
        "absolutely",
        "definitely",
        "exactly",
        "fine",
        "perfect",
        "great",
        "thanks",
        "that's",
        "that",
    ];
    const THAT: &[&str] = &[
        "right", "correct", "fine", "it", "all", "good", "great", "perfect",
    ];
    let mut it = words(text);
    let Some(first) = it.next() else {
        return false;
    };
    if words(text).count() > 5 || !any_eq(first, FIRST) {
        return false;
    }
    // "That's ..." / "That is ..." only counts as an answer when it is an assent.
    if first.eq_ignore_ascii_case("that's") || first.eq_ignore_ascii_case("that") {
        let next = it.find(|w| !w.eq_ignore_ascii_case("is"));
        return next.is_some_and(|w| any_eq(w, THAT));
    }
    true
}
