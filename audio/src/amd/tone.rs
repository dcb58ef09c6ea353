//! A bank of Hann-windowed Goertzel filters: how much of a frame's energy is one steady
//! frequency, and which. A beep is nearly all of its energy in one bin; speech, even a held
//! vowel, spreads over its harmonics.

/// The strongest bin of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Peak {
    pub hz: f32,
    /// The bin's share of the frame's energy, 0 to ~1 (1: a pure tone on the bin).
    pub purity: f32,
}

/// Goertzel filters from `min_hz` to `max_hz`, `step_hz` apart, for frames of one length.
#[derive(Debug, Clone)]
pub(crate) struct ToneBank {
    coeffs: Vec<(f32, f32)>,
    window: Vec<f32>,
    windowed: Vec<f32>,
    frame_len: usize,
}

impl ToneBank {
    pub(crate) fn new(
        rate_hz: u32,
        frame_len: usize,
        min_hz: u32,
        max_hz: u32,
        step_hz: u32,
    ) -> Self {
        let nyquist = rate_hz / 2;
        let step = step_hz.max(1) as usize;
        let coeffs = (min_hz..=max_hz.min(nyquist.saturating_sub(step_hz)))
            .step_by(step)
            .map(|hz| {
                let w = 2.0 * std::f32::consts::PI * hz as f32 / rate_hz as f32;
                (hz as f32, 2.0 * w.cos())
            })
            .collect();
        let n = frame_len.max(2);
        let window = (0..n)
            .map(|i| {
                let x = std::f32::consts::PI * 2.0 * i as f32 / (n - 1) as f32;
                0.5 - 0.5 * x.cos()
            })
            .collect();
        Self {
            coeffs,
            window,
            windowed: vec![0.0; n],
            frame_len: n,
        }
    }

    /// The strongest bin of `frame` (`None` for a silent or empty frame).
    pub(crate) fn peak(&mut self, frame: &[i16]) -> Option<Peak> {
        let n = frame.len().min(self.frame_len);
        if n < 2 {
            return None;
        }
        let mut energy = 0.0f32;
        for (i, (&s, w)) in frame[..n].iter().zip(&self.window).enumerate() {
            let y = f32::from(s) * w;
            self.windowed[i] = y;
            energy += y * y;
        }
        if energy <= 0.0 {
            return None;
        }
        let mut best = (0.0f32, 0.0f32);
        for &(hz, coeff) in &self.coeffs {
            let (mut s1, mut s2) = (0.0f32, 0.0f32);
            for &y in &self.windowed[..n] {
                let s0 = y + coeff * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
            if power > best.1 {
                best = (hz, power);
            }
        }
        // For a pure tone on a bin, |Y|² = (A·Σw/2)² and Σy² = A²·Σw²/2; with a Hann window
        // that ratio is N/3, so dividing by it puts a pure tone at 1.
        let purity = best.1 / (energy * n as f32 / 3.0);
        Some(Peak { hz: best.0, purity })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f32, n: usize, amp: f32) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (2.0 * std::f32::consts::PI * hz * i as f32 / 16000.0).sin()) as i16)
            .collect()
    }

    #[test]
    fn a_pure_tone_is_pure_and_found() {
        let mut bank = ToneBank::new(16000, 320, 400, 2000, 25);
        for hz in [440.0, 1000.0, 1412.0, 1990.0] {
            let p = bank.peak(&sine(hz, 320, 8000.0)).unwrap();
            assert!((p.hz - hz).abs() <= 25.0, "{hz}: {p:?}");
            assert!(p.purity > 0.7, "{hz}: {p:?}");
        }
        // Two tones of equal strength: neither holds most of the energy.
        let a = sine(700.0, 320, 6000.0);
        let b = sine(1300.0, 320, 6000.0);
        let mix: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert!(bank.peak(&mix).unwrap().purity < 0.6);
        assert_eq!(bank.peak(&[0; 320]), None);
    }
}
