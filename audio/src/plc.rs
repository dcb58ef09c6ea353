//! Packet-loss concealment on PCM, after ITU-T G.711 Appendix I (simplified): a lost frame is
//! replaced by repeating the last pitch period of the decoded signal, attenuated the longer the
//! loss lasts, and the first good frame after a loss is cross-faded from the synthetic signal.
//!
//! Used with [`crate::jitter::JitterBuffer`] for G.711: `Playout::Packet` → decode →
//! [`Plc::good_frame`]; `Playout::Lost`/`Underrun` → [`Plc::conceal`]. Opus conceals in its
//! own decoder instead.

/// Concealment state for one stream.
#[derive(Debug, Clone)]
pub struct Plc {
    rate: u32,
    /// Recent output (good and concealed), newest last; `HISTORY_MS` long.
    history: Vec<i16>,
    /// Pitch period in samples of the current concealment, 0 when not concealing.
    period: usize,
    /// Read position inside the last period of the history while concealing.
    phase: usize,
    /// Samples concealed in the current loss.
    concealed: usize,
    /// The last pitch period at the moment the loss began (the signal to repeat).
    template: Vec<i16>,
}

/// History kept: enough for the longest pitch lag plus the correlation window.
const HISTORY_MS: u32 = 48;
/// Pitch search range, 66-200 Hz fundamental … 5-15 ms lags as in G.711 Appendix I.
const MIN_LAG_MS: f32 = 5.0;
const MAX_LAG_MS: f32 = 15.0;
/// Correlation window.
const WINDOW_MS: f32 = 20.0;
/// Full level for the first 10 ms of a loss, then -20 % per 10 ms: silent after 60 ms.
const FULL_LEVEL_MS: u32 = 10;
const FADE_MS: u32 = 50;
/// Cross-fade into the first good frame after a loss.
const MERGE_MS: u32 = 4;

impl Plc {
    /// Concealment for mono PCM at `sample_rate`.
    pub fn new(sample_rate: u32) -> Self {
        let rate = sample_rate.clamp(1000, 192_000);
        let len = (rate * HISTORY_MS / 1000) as usize;
        Self {
            rate,
            history: vec![0; len],
            period: 0,
            phase: 0,
            concealed: 0,
            template: Vec::with_capacity(len),
        }
    }

    /// Whether the last frame was concealed.
    pub fn is_concealing(&self) -> bool {
        self.period != 0
    }

    /// Records a correctly received frame. If frames were concealed just before, the start of
    /// `frame` is cross-faded from the synthetic continuation so the seam does not click.
    pub fn good_frame(&mut self, frame: &mut [i16]) {
        if self.period != 0 {
            let merge = (self.ms_to_samples(MERGE_MS) as usize).min(frame.len());
            for (i, s) in frame.iter_mut().take(merge).enumerate() {
                let synth = f32::from(self.next_synth());
                let w = (i + 1) as f32 / (merge + 1) as f32;
                *s = (synth * (1.0 - w) + f32::from(*s) * w).round() as i16;
            }
            self.period = 0;
            self.concealed = 0;
        }
        self.remember(frame);
    }

    /// Writes one concealment frame of `out.len()` samples.
    pub fn conceal(&mut self, out: &mut [i16]) {
        if self.period == 0 {
            self.period = self.estimate_period();
            let start = self.history.len() - self.period;
            self.template.clear();
            self.template.extend_from_slice(&self.history[start..]);
            self.phase = 0;
        }
        for o in out.iter_mut() {
            *o = self.next_synth();
        }
        self.remember(out);
    }

    /// Forgets everything, as for a new stream.
    pub fn reset(&mut self) {
        self.history.fill(0);
        self.period = 0;
        self.concealed = 0;
    }

    /// Next sample of the repeated period, at the attenuation for the time concealed so far.
    fn next_synth(&mut self) -> i16 {
        let Some(&v) = self.template.get(self.phase) else {
            return 0;
        };
        self.phase = (self.phase + 1) % self.template.len().max(1);
        let full = self.ms_to_samples(FULL_LEVEL_MS);
        let fade = self.ms_to_samples(FADE_MS).max(1);
        let t = self.concealed as u64;
        self.concealed += 1;
        let gain = if t < full {
            1.0
        } else {
            1.0 - ((t - full) as f32 / fade as f32).min(1.0)
        };
        (f32::from(v) * gain).round() as i16
    }

    /// Pitch period by normalised autocorrelation over the most recent window.
    fn estimate_period(&self) -> usize {
        let r = self.rate as f32 / 1000.0;
        let (min_lag, max_lag, window) = (
            (MIN_LAG_MS * r) as usize,
            (MAX_LAG_MS * r) as usize,
            (WINDOW_MS * r) as usize,
        );
        let h = &self.history;
        let n = h.len();
        // The history holds window + max_lag for every supported rate; the guard keeps a
        // misconfiguration from indexing out of range.
        if min_lag == 0 || window + max_lag > n {
            return min_lag.clamp(1, n);
        }
        let recent = &h[n - window..];
        let mut best = (f64::MIN, max_lag);
        for lag in min_lag..=max_lag {
            let past = &h[n - window - lag..n - lag];
            let (mut xy, mut yy) = (0f64, 0f64);
            for (&x, &y) in recent.iter().zip(past) {
                xy += f64::from(x) * f64::from(y);
                yy += f64::from(y) * f64::from(y);
            }
            let score = if yy > 0.0 { xy / yy.sqrt() } else { 0.0 };
            if score > best.0 {
                best = (score, lag);
            }
        }
        best.1
    }

    fn remember(&mut self, samples: &[i16]) {
        let n = self.history.len();
        if samples.len() >= n {
            self.history.copy_from_slice(&samples[samples.len() - n..]);
        } else {
            self.history.copy_within(samples.len().., 0);
            self.history[n - samples.len()..].copy_from_slice(samples);
        }
    }

    fn ms_to_samples(&self, ms: u32) -> u64 {
        u64::from(self.rate) * u64::from(ms) / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A voiced-like periodic signal: 125 Hz fundamental plus harmonics (period 64 at 8 kHz).
    fn voiced(n0: usize, len: usize) -> Vec<i16> {
        (n0..n0 + len)
            .map(|n| {
                let t = n as f32 / 8000.0;
                let w = 2.0 * std::f32::consts::PI * 125.0 * t;
                (6000.0 * w.sin() + 3000.0 * (2.0 * w).sin() + 1500.0 * (3.0 * w + 0.5).sin())
                    as i16
            })
            .collect()
    }

    fn snr_db(reference: &[i16], test: &[i16]) -> f64 {
        let sig: f64 = reference.iter().map(|&v| f64::from(v).powi(2)).sum();
        let err: f64 = reference
            .iter()
            .zip(test)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        10.0 * (sig / err.max(1.0)).log10()
    }

    #[test]
    fn a_lost_voiced_frame_is_reconstructed_from_its_pitch() {
        let mut plc = Plc::new(8000);
        for k in 0..5 {
            plc.good_frame(&mut voiced(k * 160, 160));
        }
        let truth = voiced(5 * 160, 160);
        let mut out = [0i16; 160];
        plc.conceal(&mut out);
        assert!(plc.is_concealing());
        // Full level for 10 ms, then fading: the first half tracks the true signal closely.
        assert!(
            snr_db(&truth[..80], &out[..80]) > 20.0,
            "{:.1} dB",
            snr_db(&truth[..80], &out[..80])
        );
        assert!(snr_db(&truth, &out) > 6.0);
    }

    #[test]
    fn long_losses_fade_to_silence_and_recovery_is_smooth() {
        let mut plc = Plc::new(8000);
        for k in 0..5 {
            plc.good_frame(&mut voiced(k * 160, 160));
        }
        let mut out = [0i16; 160];
        let mut peaks = Vec::new();
        for _ in 0..4 {
            plc.conceal(&mut out);
            peaks.push(out.iter().map(|s| s.unsigned_abs()).max().unwrap());
        }
        // Full level, then fading by 20 % per 10 ms: silent from 60 ms on.
        assert!(
            peaks[0] > 8000 && peaks[1] < peaks[0] && peaks[2] < peaks[1],
            "{peaks:?}"
        );
        assert_eq!(peaks[3], 0);
        // After one short loss the first good frame is merged: the seam is no bigger a step
        // than the signal's own largest sample-to-sample change.
        let mut plc = Plc::new(8000);
        for k in 0..5 {
            plc.good_frame(&mut voiced(k * 160, 160));
        }
        let mut lost = [0i16; 160];
        plc.conceal(&mut lost);
        let mut next = voiced(6 * 160, 160);
        plc.good_frame(&mut next);
        assert!(!plc.is_concealing());
        let own_max = voiced(0, 800)
            .windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap();
        let seam = (i32::from(next[0]) - i32::from(lost[159])).abs();
        assert!(seam <= own_max * 2, "seam {seam} vs {own_max}");
    }

    #[test]
    fn silence_conceals_as_silence_at_any_rate() {
        for rate in [8000, 16_000, 48_000] {
            let mut plc = Plc::new(rate);
            let mut out = vec![1i16; rate as usize / 50];
            plc.conceal(&mut out);
            assert!(out.iter().all(|&s| s == 0));
            plc.reset();
            plc.good_frame(&mut [0; 7]);
            plc.conceal(&mut [0; 3]);
        }
    }
}
