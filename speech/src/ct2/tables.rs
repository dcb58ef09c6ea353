//! Values the importer recomputes rather than copies: the mel filterbank, the encoder's
//! sinusoidal position table, and GPT-2's byte ↔ unicode table.
//!
//! Each follows the reference (librosa / OpenAI whisper / numpy) operation by operation in
//! f64 so the f32 results match it to the last bit or so; see the comparison test.

/// librosa.filters.mel(sr, n_fft, n_mels) with its defaults (`htk=False`, `norm='slaney'`),
/// row-major `n_mels × (n_fft/2 + 1)`: the table OpenAI ships as `mel_filters.npz`.
pub(crate) fn mel_filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    // numpy.fft.rfftfreq(n_fft, d = 1 / sr): i * (1 / (n * d)).
    let d = 1.0 / f64::from(sample_rate);
    let val = 1.0 / (n_fft as f64 * d);
    let fft_freqs: Vec<f64> = (0..n_bins).map(|i| i as f64 * val).collect();

    // numpy.linspace(lo, hi, n_mels + 2): i * step + lo, with the last point set to hi.
    let lo = hz_to_mel(0.0);
    let hi = hz_to_mel(f64::from(sample_rate) / 2.0);
    let n_pts = n_mels + 2;
    let step = (hi - lo) / (n_pts - 1) as f64;
    let mel_f: Vec<f64> = (0..n_pts)
        .map(|i| {
            let m = if i == n_pts - 1 {
                hi
            } else {
                i as f64 * step + lo
            };
            mel_to_hz(m)
        })
        .collect();
    let fdiff: Vec<f64> = mel_f.windows(2).map(|w| w[1] - w[0]).collect();

    let mut out = Vec::with_capacity(n_mels * n_bins);
    for i in 0..n_mels {
        // Slaney normalisation: constant energy per channel.
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for &f in &fft_freqs {
            let lower = -(mel_f[i] - f) / fdiff[i];
            let upper = (mel_f[i + 2] - f) / fdiff[i + 1];
            let w = lower.min(upper).max(0.0);
            out.push((w * enorm) as f32);
        }
    }
    out
}

/// Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa `htk=False`).
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(f: f64) -> f64 {
    if f >= MIN_LOG_HZ {
        MIN_LOG_MEL + (f.max(1e-10) / MIN_LOG_HZ).ln() / log_step()
    } else {
        f / F_SP
    }
}

fn mel_to_hz(m: f64) -> f64 {
    if m >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (m - MIN_LOG_MEL)).exp()
    } else {
        F_SP * m
    }
}

/// whisper `sinusoids(length, channels)`: row t = [sin(t·e^{-inc·k}), cos(t·e^{-inc·k})],
/// inc = ln(10000) / (channels/2 − 1). The products are formed in f32 as the reference does;
/// sin/cos are evaluated in f64 and rounded, which is within an ulp of numpy's f32 kernels.
pub(crate) fn sinusoids(length: usize, channels: usize) -> Vec<f32> {
    let half = channels / 2;
    let inc = 10000f64.ln() / (half as f64 - 1.0);
    let inv: Vec<f32> = (0..half).map(|k| (-inc * k as f64).exp() as f32).collect();
    let mut out = Vec::with_capacity(length * channels);
    for t in 0..length {
        let row: Vec<f64> = inv.iter().map(|&s| f64::from(t as f32 * s)).collect();
        out.extend(row.iter().map(|x| x.sin() as f32));
        out.extend(row.iter().map(|x| x.cos() as f32));
    }
    out
}

/// GPT-2's byte-level BPE table inverted: printable unicode char → raw byte.
pub(crate) fn unicode_to_byte() -> std::collections::HashMap<char, u8> {
    let mut bs: Vec<u32> = (u32::from('!')..=u32::from('~'))
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    bs.into_iter()
        .zip(cs)
        .filter_map(|(b, c)| Some((char::from_u32(c)?, u8::try_from(b).ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_bank_shape_and_known_values() {
        let m = mel_filters(16000, 400, 80);
        assert_eq!(m.len(), 80 * 201);
        // Each triangular filter is non-negative and has a peak; the DC bin is never covered.
        for row in m.chunks(201) {
            assert!(row.iter().all(|&w| w >= 0.0));
            assert!(row.iter().any(|&w| w > 0.0));
            assert_eq!(row[0], 0.0);
        }
    }

    #[test]
    fn sinusoid_first_rows() {
        let s = sinusoids(3, 8);
        // t = 0: sin = 0, cos = 1.
        assert_eq!(&s[..8], &[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        // t = 1, k = 0: sin(1), cos(1).
        assert!((s[8] - 1f32.sin()).abs() < 1e-7);
        assert!((s[12] - 1f32.cos()).abs() < 1e-7);
    }

    #[test]
    fn byte_table_is_a_bijection() {
        let t = unicode_to_byte();
        assert_eq!(t.len(), 256);
        assert_eq!(t[&'Ġ'], b' ');
        assert_eq!(t[&'A'], b'A');
        let mut bytes: Vec<u8> = t.values().copied().collect();
        bytes.sort_unstable();
        bytes.dedup();
        assert_eq!(bytes.len(), 256);
    }
}
