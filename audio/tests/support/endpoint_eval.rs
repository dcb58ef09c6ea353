//! Measuring the [`Endpointer`] on labelled audio: false cut-offs and end-of-turn delay.
//!
//! Shared (via `#[path]`) by `tests/endpointing.rs` (thresholds) and `examples/vad_bench.rs`
//! (numbers). Needs `vad_eval` included next to it as `super::vad_eval`.
//!
//! # Simulated interim transcripts (a simplification)
//!
//! The live design transcribes the audio so far at every [`TurnEvent::Pause`] and hands the text
//! in. Here no STT runs: the text is cut from the reference transcript (`TRANSCRIPTS.tsv`) in
//! proportion to how far into the labelled utterance the pause falls (by characters, rounded
//! down to whole words, keeping each word's own punctuation), and arrives `stt_latency_ms` after
//! the pause. A pause within 150 ms of the labelled end gets the whole text (VAD offsets run
//! ~100 ms late). The hesitation clip's `(0.9 s pause)` marker is honoured: a pause inside it
//! gets exactly "I'm calling about". Real interim text will differ (whisper may add a period or
//! drop a word), which is why the classifier looks at trailing words before punctuation.

#![allow(dead_code)]

use std::collections::HashMap;

use audio::endpoint::{EndpointConfig, Endpointer, TurnEvent, TurnMode};

use super::vad_eval::{self, Label};

/// Reference transcripts by clip name (`balance_question`, …), and where the marked pauses are.
pub struct Transcripts {
    texts: HashMap<String, String>,
    /// For clips with a pause marker, by source file name: the pause as (start, end) ms from the
    /// labelled start, found in the clean clip (the longest run of 10 ms frames at or below
    /// -45 dBFS, the labelling threshold).
    pauses: HashMap<String, (u64, u64)>,
}

const PAUSE_MARKER: &str = "(0.9 s pause)";

impl Transcripts {
    pub fn load() -> Self {
        let tsv = std::fs::read_to_string(vad_eval::data_dir().join("TRANSCRIPTS.tsv"))
            .expect("read TRANSCRIPTS.tsv");
        let texts: HashMap<String, String> = tsv
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(n, t)| (n.trim().to_owned(), t.trim().to_owned()))
            .collect();
        let mut pauses = HashMap::new();
        for (name, text) in &texts {
            if !text.contains(PAUSE_MARKER) {
                continue;
            }
            for khz in [8, 16] {
                let source = format!("{name}_{khz}k.wav");
                let audio =
                    audio::wav::read_wav(vad_eval::data_dir().join(&source)).expect("fixture clip");
                let loud = loud_frames(&audio.samples, audio.sample_rate);
                let first = loud.first().copied().unwrap_or(0);
                let gap = loud
                    .windows(2)
                    .max_by_key(|w| w[1] - w[0])
                    .map_or((first, first), |w| (w[0] + 1, w[1]));
                pauses.insert(
                    source,
                    ((gap.0 - first) as u64 * 10, (gap.1 - first) as u64 * 10),
                );
            }
        }
        Self { texts, pauses }
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.texts.keys().cloned().collect();
        v.sort();
        v
    }

    /// The reference text of `source` (`balance_question_8k.wav` or `balance_question`).
    pub fn text(&self, source: &str) -> &str {
        let name = clip_name(source);
        self.texts.get(name).map_or("", String::as_str)
    }

    /// Simulated interim text for a pause whose last voiced frame ends at `t_ms`, inside or
    /// after `label`. See the module docs.
    pub fn interim(&self, label: &Label, t_ms: u64) -> String {
        let text = self.text(&label.source);
        let (part1, part2) = match text.split_once(PAUSE_MARKER) {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (text, ""),
        };
        let full = if part2.is_empty() {
            part1.to_owned()
        } else {
            format!("{part1} {part2}")
        };
        if t_ms + 150 >= label.end_ms {
            return full;
        }
        let span = (label.end_ms - label.start_ms).max(1) as f64;
        let elapsed = t_ms.saturating_sub(label.start_ms) as f64;
        if part2.is_empty() {
            return prefix_words(part1, elapsed / span);
        }
        // A marked pause: the words before it belong to the speech before it.
        let (p0, p1) = self
            .pauses
            .get(label.source.as_str())
            .map_or((span / 2.0, span / 2.0), |&(a, b)| (a as f64, b as f64));
        if elapsed + 150.0 < p0 {
            prefix_words(part1, elapsed / p0.max(1.0))
        } else if elapsed <= p1 {
            part1.to_owned()
        } else {
            let f = (elapsed - p1) / (span - p1).max(1.0);
            format!("{part1} {}", prefix_words(part2, f))
        }
    }
}

/// Indices of the 10 ms frames above -45 dBFS.
fn loud_frames(samples: &[i16], rate: u32) -> Vec<usize> {
    samples
        .chunks_exact(rate as usize / 100)
        .enumerate()
        .filter(|(_, f)| audio::frame::dbfs(f) > -45.0)
        .map(|(i, _)| i)
        .collect()
}

/// `balance_question_8k.wav` → `balance_question`.
pub fn clip_name(source: &str) -> &str {
    let s = source.trim_end_matches(".wav");
    s.strip_suffix("_8k")
        .or_else(|| s.strip_suffix("_16k"))
        .unwrap_or(s)
}

/// The words of `text` whose last character falls within the first `fraction` of it (at least
/// one word).
fn prefix_words(text: &str, fraction: f64) -> String {
    let limit = (text.len() as f64 * fraction.clamp(0.0, 1.0)) as usize;
    let mut out = String::new();
    let mut pos = 0;
    for word in text.split_whitespace() {
        pos += word.len() + 1;
        if !out.is_empty() && pos - 1 > limit {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// How the flow would set the mode for an utterance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modes {
    /// Free speech everywhere.
    Free,
    /// As a flow would ask: yes/no for the yes/no answers, digits for the account number, free
    /// speech otherwise.
    PerNode,
}

pub fn mode_for(modes: Modes, source: &str) -> TurnMode {
    match (modes, clip_name(source)) {
        (Modes::Free, _) => TurnMode::FreeSpeech,
        (Modes::PerNode, "yes_correct" | "no_thanks") => TurnMode::YesNo,
        (Modes::PerNode, "account_digits") => TurnMode::Digits,
        (Modes::PerNode, _) => TurnMode::FreeSpeech,
    }
}

/// One simulation's setup.
#[derive(Debug, Clone, Copy)]
pub struct Sim {
    pub config: EndpointConfig,
    pub modes: Modes,
    /// `None`: transcript-free. `Some(ms)`: interim text arrives this long after each pause.
    pub stt_latency_ms: Option<u64>,
}

/// What happened to one labelled utterance.
#[derive(Debug, Clone)]
pub struct UtteranceOutcome {
    pub source: String,
    pub mode: TurnMode,
    /// End-of-turn decisions inside the utterance (it went on after them).
    pub cut_offs: usize,
    /// Labelled end → decision (what the caller waits), if the turn ended on this utterance.
    pub delay_from_end_ms: Option<u64>,
    /// Last voiced frame (as the VAD saw it) → decision.
    pub delay_from_voiced_ms: Option<u64>,
}

/// Totals over a set of utterances.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub utterances: Vec<UtteranceOutcome>,
    /// End-of-turn decisions that belong to no utterance (a turn made of noise).
    pub spurious: usize,
}

impl Outcome {
    pub fn cut_offs(&self) -> usize {
        self.utterances.iter().map(|u| u.cut_offs).sum()
    }

    /// Utterances cut off at least once, by name.
    pub fn cut_sources(&self) -> Vec<&str> {
        self.utterances
            .iter()
            .filter(|u| u.cut_offs > 0)
            .map(|u| u.source.as_str())
            .collect()
    }

    /// Utterances whose turn never ended on its own: the caller's next utterance came first and
    /// the two became one turn.
    pub fn merged(&self) -> usize {
        self.utterances
            .iter()
            .filter(|u| u.delay_from_end_ms.is_none())
            .count()
    }

    /// Mean delays (from the labelled end, from the last voiced frame) over utterances in `mode`
    /// (all when `None`) whose turn ended.
    pub fn mean_delays(&self, mode: Option<TurnMode>) -> (f64, f64, usize) {
        let ended: Vec<&UtteranceOutcome> = self
            .utterances
            .iter()
            .filter(|u| mode.is_none_or(|m| u.mode == m))
            .filter(|u| u.delay_from_end_ms.is_some())
            .collect();
        let n = ended.len().max(1) as f64;
        let sum = |f: fn(&UtteranceOutcome) -> Option<u64>| {
            ended.iter().filter_map(|u| f(u)).sum::<u64>() as f64 / n
        };
        (
            sum(|u| u.delay_from_end_ms),
            sum(|u| u.delay_from_voiced_ms),
            ended.len(),
        )
    }

    pub fn merge(&mut self, other: Outcome) {
        self.utterances.extend(other.utterances);
        self.spurious += other.spurious;
    }

    pub fn summary(&self) -> String {
        let (end, voiced, n) = self.mean_delays(None);
        let cut = self.cut_sources();
        format!(
            "false cut-offs {} {:?}, mean end-of-turn delay {end:.0} ms from speech end \
             ({voiced:.0} ms from last voiced frame) over {n}, merged {}, spurious turns {}",
            self.cut_offs(),
            cut,
            self.merged(),
            self.spurious
        )
    }
}

/// Runs an endpointer over per-frame VAD decisions (`frame_ms` each) of audio labelled with
/// `labels`, the mode set per utterance as `sim.modes` says.
pub fn simulate(
    voiced: &[bool],
    frame_ms: u32,
    labels: &[Label],
    transcripts: &Transcripts,
    sim: Sim,
) -> Outcome {
    let mut ep = Endpointer::new(sim.config, TurnMode::FreeSpeech);
    let mut ends: Vec<(u64, u64)> = Vec::new();
    // (arrival time, text) of the interim transcription in flight.
    let mut pending: Option<(u64, String)> = None;
    let label_at = |t: u64| -> Option<&Label> {
        // The utterance a pause at `t` belongs to: the last one started before it.
        labels.iter().rev().find(|l| l.start_ms <= t)
    };
    for &v in voiced {
        // The flow sets the mode per question: here, when the next utterance begins (or before
        // the first), whether or not the previous turn has ended.
        let now = ep.now_ms();
        if let Some(next) = labels.iter().find(|l| l.end_ms > now) {
            ep.set_mode(mode_for(sim.modes, &next.source));
        }
        ep.handle_frame(v, frame_ms);
        // Twice: a transcript due now may end the turn, which is another event to drain.
        for _ in 0..2 {
            while let Some(e) = ep.poll_event() {
                match e {
                    TurnEvent::Pause {
                        at_ms,
                        last_voiced_at_ms,
                    } => {
                        trace(format_args!("{e:?}"));
                        if let (Some(latency), Some(label)) =
                            (sim.stt_latency_ms, label_at(last_voiced_at_ms))
                        {
                            let text = transcripts.interim(label, last_voiced_at_ms);
                            trace(format_args!(
                                "  interim text for {}: {text:?}",
                                label.source
                            ));
                            pending = Some((at_ms + latency, text));
                        }
                    }
                    TurnEvent::SpeechStart { .. } => {
                        trace(format_args!("{e:?}"));
                        pending = None;
                    }
                    TurnEvent::EndOfTurn {
                        at_ms,
                        last_activity_at_ms,
                        ..
                    } => {
                        pending = None;
                        trace(format_args!("{e:?}"));
                        ends.push((at_ms, last_activity_at_ms));
                    }
                    _ => {}
                }
            }
            if pending.as_ref().is_some_and(|(at, _)| ep.now_ms() >= *at)
                && let Some((_, text)) = pending.take()
            {
                ep.handle_transcript(&text);
            }
        }
    }
    score(labels, &ends, sim.modes)
}

/// With `ENDPOINT_TRACE` set, prints every event of a simulation to stderr.
fn trace(what: std::fmt::Arguments<'_>) {
    if std::env::var_os("ENDPOINT_TRACE").is_some() {
        eprintln!("{what}");
    }
}

/// Each decision belongs to the utterance its turn's last activity falls in (the last one
/// started by then). Before that utterance's labelled end it is a cut-off; after it, the first
/// such decision ends the utterance's turn, later ones are spurious (noise turns). A decision
/// that comes after the next utterance began still belongs to the earlier one: the turn ended
/// late, it did not cut the next one off.
fn score(labels: &[Label], ends: &[(u64, u64)], modes: Modes) -> Outcome {
    let mut out = Outcome {
        utterances: labels
            .iter()
            .map(|l| UtteranceOutcome {
                source: l.source.clone(),
                mode: mode_for(modes, &l.source),
                cut_offs: 0,
                delay_from_end_ms: None,
                delay_from_voiced_ms: None,
            })
            .collect(),
        spurious: 0,
    };
    for &(at, last) in ends {
        let Some(i) = labels.iter().rposition(|l| l.start_ms <= last) else {
            out.spurious += 1;
            continue;
        };
        let (l, u) = (&labels[i], &mut out.utterances[i]);
        if at < l.end_ms {
            u.cut_offs += 1;
        } else if u.delay_from_end_ms.is_none() {
            u.delay_from_end_ms = Some(at - l.end_ms);
            u.delay_from_voiced_ms = Some(at.saturating_sub(last));
        } else {
            out.spurious += 1;
        }
    }
    out
}

/// A fixture clip as a one-utterance "set": the clip, then `tail_ms` of silence, labelled from
/// the first to the last 10 ms frame above -45 dBFS (as the VAD set's labels are).
pub fn fixture_as_set(name: &str, rate_khz: u32, tail_ms: u32) -> (Vec<i16>, u32, Label) {
    let audio = audio::wav::read_wav(vad_eval::data_dir().join(format!("{name}_{rate_khz}k.wav")))
        .expect("fixture clip");
    let loud = loud_frames(&audio.samples, audio.sample_rate);
    let (first, last) = (
        loud.first().copied().unwrap_or(0),
        loud.last().copied().unwrap_or(0),
    );
    let label = Label {
        start_ms: first as u64 * 10,
        end_ms: (last as u64 + 1) * 10,
        source: format!("{name}_{rate_khz}k.wav"),
    };
    let mut samples = audio.samples;
    samples.resize(
        samples.len() + audio.sample_rate as usize * tail_ms as usize / 1000,
        0,
    );
    (samples, audio.sample_rate, label)
}
