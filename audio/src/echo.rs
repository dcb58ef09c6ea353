//! [`EchoGate`]: tells whether an inbound frame is (probably) the echo of what we played, so
//! the agent's own voice coming back from the far end does not count as the caller speaking.
//!
//! It works on frame levels, not samples: telephony echo (a hybrid, a speakerphone, a peer that
//! loops media back) arrives delayed by a fixed path and attenuated by an echo return loss
//! (ERL), after a codec round trip that ruins sample-level correlation but keeps the syllable
//! envelope. Every 20 ms tick takes the level of the frame we sent and of the frame we
//! received. The gate searches the delay (0–800 ms) at which the inbound envelope correlates
//! best with the outbound one, and, where it correlates, the ERL. An inbound frame is echo when
//! our audio was playing one delay ago and the frame is no louder than that audio minus the
//! ERL plus a margin; anything clearly louder is the caller talking over it (double talk).
//!
//! Before the first estimate (up to the first 0.7 s of our audio in a call) the gate cannot
//! know the path, so a frame counts as echo unless it is louder than what we were playing: a
//! quiet caller's barge-in in that window is delayed by at most that long. A delay is taken
//! only when 16 estimates in a row agree on it: a caller's speech correlates with ours by
//! chance at some delay now and then, a real echo path at the same delay all the time. When our
//! audio showed no echo at all, nothing is gated.

/// Frames of history kept (1.92 s at 20 ms).
const HISTORY: usize = 96;
/// Longest echo delay searched, in frames (800 ms).
const MAX_DELAY: usize = 40;
/// Frames compared per estimate.
const WINDOW: usize = 40;
/// Frames of our audio within the window needed to estimate.
const MIN_ACTIVE: usize = 16;
/// Our frames below this are silence, dBFS.
const ACTIVE_DB: f32 = -45.0;
/// Correlation needed to accept a delay.
const MIN_CORRELATION: f32 = 0.7;
/// Frames of our audio before the learning window closes (0.7 s).
const LEARNING_FRAMES: u32 = 35;
/// Correlation that confirms a delay within 6 estimates while learning.
const LEARNING_CORRELATION: f32 = 0.9;
/// Consecutive estimates that must agree on a delay before it is taken (or changed): among
/// 41 candidate delays, an unrelated envelope (the caller) correlates by chance now and then.
const CONFIRM: u32 = 16;
/// An echo attenuated more than this is too quiet to be taken for speech; a correlation with
/// it is a coincidence with noise or a far-away sound, not a path worth gating.
const MAX_ERL_DB: f32 = 30.0;
/// Correlation needed to update the return loss of the delay in use (double talk lowers it).
const ERL_UPDATE_CORRELATION: f32 = 0.85;

/// Where the estimate stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EchoPath {
    /// Not enough of our audio yet.
    Learning,
    /// Our audio played and nothing correlated with it: no echo.
    None,
    /// Echo found: delay in frames and return loss in dB (≥ 0 for a passive path).
    Found { delay_frames: usize, erl_db: f32 },
}

/// Settings of an [`EchoGate`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct EchoGateConfig {
    /// How much louder than the predicted echo a frame must be to count as the caller, dB.
    pub double_talk_margin_db: f32,
}

impl Default for EchoGateConfig {
    fn default() -> Self {
        Self {
            double_talk_margin_db: 6.0,
        }
    }
}

/// Per-call echo detector on 20 ms frame levels; see the module docs.
#[derive(Debug, Clone)]
pub struct EchoGate {
    config: EchoGateConfig,
    out_db: [f32; HISTORY],
    in_db: [f32; HISTORY],
    /// Index of the next write.
    head: usize,
    filled: usize,
    active_frames: u32,
    path: EchoPath,
    /// The delay recent estimates agree on, and for how many estimates in a row.
    candidate: Option<(usize, u32)>,
}

impl EchoGate {
    pub fn new(config: EchoGateConfig) -> Self {
        Self {
            config,
            out_db: [-96.0; HISTORY],
            in_db: [-96.0; HISTORY],
            head: 0,
            filled: 0,
            active_frames: 0,
            path: EchoPath::Learning,
            candidate: None,
        }
    }

    /// The current estimate.
    pub fn path(&self) -> EchoPath {
        self.path
    }

    /// One 20 ms tick: the level (dBFS) of the frame we sent (-96 when we sent none) and of
    /// the frame we received. Returns whether the received frame is echo.
    pub fn push(&mut self, out_db: f32, in_db: f32) -> bool {
        self.out_db[self.head] = out_db;
        self.in_db[self.head] = in_db;
        self.head = (self.head + 1) % HISTORY;
        self.filled = (self.filled + 1).min(HISTORY);
        if out_db > ACTIVE_DB {
            self.active_frames = self.active_frames.saturating_add(1);
        }
        self.estimate();
        self.is_echo(in_db)
    }

    /// The level `ago` frames back (0 = the frame just pushed).
    fn out_at(&self, ago: usize) -> f32 {
        self.out_db[(self.head + HISTORY - 1 - ago) % HISTORY]
    }

    /// Our loudest level within one frame of `ago`: a tick's frame may go out a tick early or
    /// late, and the jitter buffer moves the echo by a frame now and then.
    fn out_near(&self, ago: usize) -> f32 {
        let lo = ago.saturating_sub(1);
        let hi = (ago + 1).min(HISTORY - 1);
        (lo..=hi).map(|a| self.out_at(a)).fold(-96.0f32, f32::max)
    }

    fn in_at(&self, ago: usize) -> f32 {
        self.in_db[(self.head + HISTORY - 1 - ago) % HISTORY]
    }

    fn estimate(&mut self) {
        // Early in a call the window is whatever history there is (at least MIN_ACTIVE
        // frames), so a strong echo is found within half a second.
        if self.filled < MIN_ACTIVE + 1 {
            return;
        }
        let max_delay = MAX_DELAY
            .min(self.filled - MIN_ACTIVE)
            .min(HISTORY - WINDOW - 1);
        let mut best: Option<(f32, usize)> = None;
        for delay in 0..=max_delay {
            if let Some(r) = self.correlation(delay)
                && best.is_none_or(|(b, _)| r > b)
            {
                best = Some((r, delay));
            }
        }
        let Some((r, delay)) =
            best.filter(|(r, d)| *r >= MIN_CORRELATION && self.return_loss(*d) <= MAX_ERL_DB)
        else {
            self.candidate = None;
            if self.path == EchoPath::Learning && self.active_frames >= LEARNING_FRAMES {
                self.path = EchoPath::None;
            }
            return;
        };
        let agreed = match self.candidate {
            Some((d, n)) if d.abs_diff(delay) <= 1 => n + 1,
            _ => 1,
        };
        self.candidate = Some((delay, agreed));
        match self.path {
            EchoPath::Found {
                delay_frames,
                erl_db,
            } if delay_frames.abs_diff(delay) <= 1 => {
                if r >= ERL_UPDATE_CORRELATION {
                    // Smooth: one window's estimate moves the ERL only part of the way.
                    let erl = self.return_loss(delay);
                    self.path = EchoPath::Found {
                        delay_frames: delay,
                        erl_db: erl_db + 0.3 * (erl - erl_db),
                    };
                }
            }
            // Learning: a very strong, consistent correlation is taken sooner (a loop-back or a
            // loud hybrid echo), so the learning window can be short.
            _ if agreed >= CONFIRM
                || (self.path == EchoPath::Learning
                    && r >= LEARNING_CORRELATION
                    && agreed >= 6) =>
            {
                self.path = EchoPath::Found {
                    delay_frames: delay,
                    erl_db: self.return_loss(delay),
                };
            }
            _ => {
                if self.path == EchoPath::Learning && self.active_frames >= LEARNING_FRAMES {
                    self.path = EchoPath::None;
                }
            }
        }
    }

    /// Frames compared at `delay`: the full window, or the history there is.
    fn window(&self, delay: usize) -> usize {
        WINDOW.min(self.filled.saturating_sub(delay + 1))
    }

    /// Pearson correlation of inbound levels with outbound levels `delay` frames earlier, over
    /// the window, counting only frames where we were playing; `None` with too few of them, no
    /// variation, or sound arriving where our delayed audio had a gap (an echo is silent when
    /// its source is: sound there is someone else, and a chance correlation among 41 delays).
    fn correlation(&self, delay: usize) -> Option<f32> {
        let mut n = 0.0f32;
        let (mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0.0f32, 0.0, 0.0, 0.0, 0.0);
        let (mut gaps, mut sound_in_gaps) = (0usize, 0usize);
        // Frames where we played but nothing came back within MAX_ERL_DB: an echo path would
        // have returned them (the onset of a caller's speech after silence otherwise makes a
        // step that correlates with anything).
        let mut missing = 0usize;
        for ago in 0..self.window(delay) {
            let x = self.out_at(ago + delay);
            if x <= ACTIVE_DB {
                // A gap counts only when we were quiet a frame either side too.
                if self.out_near(ago + delay) <= ACTIVE_DB {
                    gaps += 1;
                    if self.in_at(ago) > ACTIVE_DB {
                        sound_in_gaps += 1;
                    }
                }
                continue;
            }
            let y = self.in_at(ago).max(-80.0);
            if y < x - MAX_ERL_DB {
                missing += 1;
            }
            n += 1.0;
            sx += x;
            sy += y;
            sxx += x * x;
            syy += y * y;
            sxy += x * y;
        }
        if (n as usize) < MIN_ACTIVE
            || (gaps >= 3 && sound_in_gaps * 10 > gaps)
            || missing * 10 > n as usize
        {
            return None;
        }
        let cov = sxy - sx * sy / n;
        let vx = sxx - sx * sx / n;
        let vy = syy - sy * sy / n;
        if vx <= 1.0 || vy <= 1.0 {
            return None;
        }
        Some(cov / (vx * vy).sqrt())
    }

    /// Mean of (outbound − inbound) level over the window's active frames at `delay`.
    fn return_loss(&self, delay: usize) -> f32 {
        let (mut sum, mut n) = (0.0f32, 0.0f32);
        for ago in 0..self.window(delay) {
            let x = self.out_at(ago + delay);
            if x > ACTIVE_DB {
                sum += x - self.in_at(ago).max(-80.0);
                n += 1.0;
            }
        }
        if n > 0.0 { sum / n } else { 0.0 }
    }

    fn is_echo(&self, in_db: f32) -> bool {
        match self.path {
            EchoPath::None => false,
            EchoPath::Learning => {
                // Unknown path: echo unless louder than anything we played lately.
                let loudest = (0..MAX_DELAY.min(self.filled))
                    .map(|ago| self.out_at(ago))
                    .fold(-96.0f32, f32::max);
                loudest > ACTIVE_DB && in_db <= loudest + 3.0
            }
            EchoPath::Found {
                delay_frames,
                erl_db,
            } => {
                // Our level around the echo time: a frame early, or up to 4 late (the jitter
                // buffer deepens under jitter and the echo of our last words comes late).
                let lo = delay_frames.saturating_sub(1);
                let hi = (delay_frames + 4).min(self.filled.saturating_sub(1));
                let played = (lo..=hi)
                    .map(|ago| self.out_at(ago))
                    .fold(-96.0f32, f32::max);
                played > ACTIVE_DB
                    && in_db <= played - erl_db.max(0.0) + self.config.double_talk_margin_db
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A speech-like envelope: syllables of varying loudness with short gaps.
    fn envelope(frames: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        let mut out = Vec::with_capacity(frames);
        while out.len() < frames {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let loud = -30.0 + (x % 20) as f32;
            let len = 3 + (x >> 8) as usize % 8;
            out.extend(std::iter::repeat_n(loud, len));
            let gap = (x >> 16) as usize % 4;
            out.extend(std::iter::repeat_n(-70.0, gap));
        }
        out.truncate(frames);
        out
    }

    fn run(gate: &mut EchoGate, out: &[f32], inp: &[f32]) -> Vec<bool> {
        out.iter()
            .zip(inp)
            .map(|(&o, &i)| gate.push(o, i))
            .collect()
    }

    /// `out` delayed by `delay` frames and attenuated by `erl` dB, over a noise floor.
    fn echo_of(out: &[f32], delay: usize, erl: f32) -> Vec<f32> {
        (0..out.len())
            .map(|t| {
                let e = if t >= delay {
                    out[t - delay] - erl
                } else {
                    -96.0
                };
                e.max(-65.0)
            })
            .collect()
    }

    #[test]
    fn finds_delay_and_return_loss_and_gates_the_echo() {
        let out = envelope(300, 7);
        let inp = echo_of(&out, 9, 12.0);
        let mut gate = EchoGate::new(EchoGateConfig::default());
        let echo = run(&mut gate, &out, &inp);
        match gate.path() {
            EchoPath::Found {
                delay_frames,
                erl_db,
            } => {
                assert_eq!(delay_frames, 9);
                assert!((erl_db - 12.0).abs() < 2.0, "{erl_db}");
            }
            other => panic!("{other:?}"),
        }
        // Every echo frame carrying our speech, after the first second, is gated.
        let voiced: Vec<usize> = (50..300).filter(|&t| inp[t] > -45.0).collect();
        let gated = voiced.iter().filter(|&&t| echo[t]).count();
        assert_eq!(gated, voiced.len(), "{gated} of {}", voiced.len());
    }

    #[test]
    fn a_perfect_loopback_is_gated_from_the_first_frame() {
        // A peer echoing our RTP back: 0 dB return loss, 2 frames late.
        let out = envelope(200, 11);
        let inp = echo_of(&out, 2, 0.0);
        let mut gate = EchoGate::new(EchoGateConfig::default());
        let echo = run(&mut gate, &out, &inp);
        let voiced: Vec<usize> = (0..200).filter(|&t| inp[t] > -45.0).collect();
        let missed: Vec<usize> = voiced.iter().copied().filter(|&t| !echo[t]).collect();
        assert!(missed.is_empty(), "echo frames taken as speech: {missed:?}");
    }

    #[test]
    fn the_caller_talking_over_the_echo_is_not_gated() {
        let out = envelope(400, 3);
        let mut inp = echo_of(&out, 6, 15.0);
        // From 4 s, the caller talks at a normal level over the (quieter) echo.
        let caller = envelope(200, 99);
        for (t, c) in caller.iter().enumerate() {
            let t = t + 200;
            if *c > -45.0 {
                inp[t] = c + 12.0;
            }
        }
        let mut gate = EchoGate::new(EchoGateConfig::default());
        let echo = run(&mut gate, &out, &inp);
        let talking: Vec<usize> = (200..400).filter(|&t| caller[t - 200] > -45.0).collect();
        let gated = talking.iter().filter(|&&t| echo[t]).count();
        assert!(
            gated * 10 <= talking.len(),
            "{gated} of {} caller frames gated",
            talking.len()
        );
    }

    #[test]
    fn without_echo_nothing_is_gated_after_learning() {
        let out = envelope(300, 5);
        let mut gate = EchoGate::new(EchoGateConfig::default());
        // A quiet line, then a quiet caller talking while we play.
        let mut inp = vec![-70.0f32; 300];
        let caller = envelope(150, 42);
        for (t, c) in caller.iter().enumerate() {
            inp[t + 150] = c - 10.0;
        }
        let echo = run(&mut gate, &out, &inp);
        assert_eq!(gate.path(), EchoPath::None);
        assert!(
            (150..300).all(|t| !echo[t] || inp[t] <= -45.0),
            "a caller quieter than us is still the caller once no echo was found"
        );
    }

    #[test]
    fn silence_on_our_side_gates_nothing() {
        let mut gate = EchoGate::new(EchoGateConfig::default());
        for level in envelope(200, 8) {
            assert!(!gate.push(-96.0, level));
        }
    }

    #[test]
    fn many_envelopes_paths_and_callers() {
        for seed in 1..40u32 {
            let out = envelope(300, seed);
            let delay = (seed as usize * 7) % 38;
            let erl = (seed % 4) as f32 * 6.0;
            let mut gate = EchoGate::new(EchoGateConfig::default());
            run(&mut gate, &out, &echo_of(&out, delay, erl));
            match gate.path() {
                EchoPath::Found { delay_frames, .. } => {
                    assert!(
                        delay_frames.abs_diff(delay) <= 1,
                        "seed {seed}: {delay_frames} vs {delay}"
                    );
                }
                other => panic!("seed {seed}: {other:?}"),
            }
            let mut gate = EchoGate::new(EchoGateConfig::default());
            let mut inp = vec![-70.0f32; 300];
            for (t, c) in envelope(200, seed + 1000).iter().enumerate() {
                inp[t + 100] = c - 6.0;
            }
            let echo = run(&mut gate, &out, &inp);
            let gated = (150..300).filter(|&t| echo[t] && inp[t] > -45.0).count();
            assert_eq!(gated, 0, "seed {seed}: {:?}", gate.path());
        }
    }
}
