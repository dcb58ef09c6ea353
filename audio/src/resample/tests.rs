use super::*;
use std::f64::consts::PI;

fn tone(rate: u32, hz: f64, amp: f64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (amp * (2.0 * PI * hz * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

/// Linear chirp from `f0` to `f1` Hz over `n` samples.
fn chirp(rate: u32, f0: f64, f1: f64, n: usize) -> Vec<f32> {
    let dur = n as f64 / f64::from(rate);
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            (0.5 * (2.0 * PI * (f0 * t + (f1 - f0) * t * t / (2.0 * dur))).sin()) as f32
        })
        .collect()
}

fn power(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

/// Power of the `hz` component (Goertzel), normalised so a unit sine gives 0.5.
fn tone_power(x: &[f32], rate: u32, hz: f64) -> f64 {
    let w = 2.0 * PI * hz / f64::from(rate);
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s0 = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - c * s1 * s2;
    2.0 * p / (x.len() as f64).powi(2)
}

fn db(ratio: f64) -> f64 {
    10.0 * ratio.log10()
}

fn run_all(r: &mut Resampler, input: &[f32]) -> Vec<f32> {
    let mut out = Vec::new();
    r.process(input, &mut out).unwrap();
    r.flush(&mut out).unwrap();
    out
}

const PAIRS: [(u32, u32); 8] = [
    (8000, 16_000),
    (16_000, 8000),
    (24_000, 8000),
    (24_000, 16_000),
    (22_050, 8000),
    (22_050, 16_000),
    (44_100, 16_000),
    (48_000, 8000),
];

#[test]
fn chunking_does_not_change_the_output() {
    for (from, to) in PAIRS {
        let input = chirp(
            from,
            50.0,
            f64::from(from.min(to)) * 0.45,
            from as usize / 2 + 37,
        );
        let whole = run_all(&mut Resampler::new(from, to).unwrap(), &input);
        let mut r = Resampler::new(from, to).unwrap();
        let mut pieces: Vec<f32> = Vec::new();
        let mut pos = 0;
        let mut step = 1;
        while pos < input.len() {
            let end = (pos + step).min(input.len());
            r.process(&input[pos..end], &mut pieces).unwrap();
            pos = end;
            step = step * 7 % 613 + 1;
        }
        r.flush(&mut pieces).unwrap();
        assert_eq!(whole.len(), pieces.len(), "{from}->{to}");
        assert!(
            whole.iter().zip(&pieces).all(|(a, b)| (a - b).abs() < 1e-6),
            "{from}->{to}"
        );
        let expect = (input.len() as u64 * u64::from(to)).div_ceil(u64::from(from));
        assert_eq!(whole.len() as u64, expect, "{from}->{to}");
    }
}

#[test]
fn output_in_flight_equals_reported_latency() {
    for (from, to) in PAIRS {
        let mut r = Resampler::new(from, to).unwrap();
        let chunk = r.chunk_len_in();
        let mut out: Vec<i16> = Vec::with_capacity(r.max_output_len(chunk * 10));
        let mut fed = 0usize;
        for k in 1..=10 {
            r.process(&vec![0i16; chunk], &mut out).unwrap();
            fed += chunk;
            let owed = (fed as u64 * u64::from(to) / u64::from(from)) as usize;
            assert_eq!(
                out.len() + r.latency_samples(),
                owed,
                "{from}->{to} after {k} chunks"
            );
        }
        // 20 ms chunks: the filter delay stays at 10 ms or less.
        assert!(r.latency_samples() as u32 * 1000 / to <= 10, "{from}->{to}");
    }
}

/// Amplitude and phase of the `hz` component of `x`, sample 0 being time 0.
fn tone_phasor(x: &[f32], rate: u32, hz: f64, range: std::ops::Range<usize>) -> (f64, f64) {
    let w = 2.0 * PI * hz / f64::from(rate);
    let (mut re, mut im) = (0.0, 0.0);
    for i in range.clone() {
        re += f64::from(x[i]) * (w * i as f64).cos();
        im += f64::from(x[i]) * (w * i as f64).sin();
    }
    let n = range.len() as f64;
    (2.0 * (re * re + im * im).sqrt() / n, im.atan2(re))
}

#[test]
fn output_is_time_aligned_with_input() {
    // A 440 Hz tone resampled must have the amplitude and phase of the same tone generated at
    // the output rate: the start-up delay is trimmed exactly.
    for (from, to) in PAIRS {
        let input = tone(from, 440.0, 0.5, from as usize);
        let out = run_all(&mut Resampler::new(from, to).unwrap(), &input);
        // Skip the edges where the stream starts and stops abruptly; whole periods of 440 Hz
        // are not needed as the window is long.
        let mid = to as usize / 10..out.len() - to as usize / 10;
        let (amp, phase) = tone_phasor(&out, to, 440.0, mid);
        let (ref_amp, ref_phase) = tone_phasor(
            &tone(to, 440.0, 0.5, out.len()),
            to,
            440.0,
            to as usize / 10..out.len() - to as usize / 10,
        );
        let offset_s = (phase - ref_phase) / (2.0 * PI * 440.0);
        assert!(
            (amp / ref_amp - 1.0).abs() < 0.01,
            "{from}->{to}: amplitude {amp}"
        );
        // Within one input sample (odd FFT sizes, e.g. 441 at 22.05 kHz, shift by half of one).
        assert!(
            offset_s.abs() <= 1.0 / f64::from(from),
            "{from}->{to}: offset {:.1} µs",
            offset_s * 1e6
        );
    }
}

#[test]
fn sweep_energy_is_preserved_in_the_passband() {
    for (from, to) in PAIRS {
        // Sweep to 80 % of the lower Nyquist: telephony speech (300-3400 Hz at 8 kHz) is inside.
        let top = f64::from(from.min(to)) / 2.0 * 0.8;
        let input = chirp(from, 100.0, top, from as usize * 2);
        let out = run_all(&mut Resampler::new(from, to).unwrap(), &input);
        let loss = db(power(&out) / power(&input));
        assert!(loss.abs() < 0.3, "{from}->{to}: {loss:.2} dB");
    }
}

#[test]
fn telephony_band_edge_passes() {
    // 3.4 kHz is the top of the telephone band; it must survive 8 <-> 16 kHz.
    for (from, to) in [(8000, 16_000), (16_000, 8000)] {
        let input = tone(from, 3400.0, 0.5, from as usize);
        let out = run_all(&mut Resampler::new(from, to).unwrap(), &input);
        let loss = db(tone_power(&out, to, 3400.0) / tone_power(&input, from, 3400.0));
        assert!(loss > -1.0, "{from}->{to}: {loss:.2} dB at 3.4 kHz");
    }
}

#[test]
fn no_aliasing_when_downsampling() {
    // Tones above the output Nyquist fold back into the band if not filtered out.
    for (from, to, hz, alias) in [
        (16_000, 8000, 5000.0, 3000.0),
        (24_000, 8000, 6000.0, 2000.0),
        (24_000, 16_000, 10_000.0, 6000.0),
        (22_050, 8000, 5500.0, 2500.0),
        (48_000, 8000, 12_000.0, 4000.0),
    ] {
        let input = tone(from, hz, 0.5, from as usize);
        let out = run_all(&mut Resampler::new(from, to).unwrap(), &input);
        let folded = db(tone_power(&out, to, alias) / tone_power(&input, from, hz));
        let total = db(power(&out) / power(&input));
        assert!(
            folded < -50.0,
            "{from}->{to}: {hz} Hz aliases to {alias} Hz at {folded:.1} dB"
        );
        assert!(total < -40.0, "{from}->{to}: {hz} Hz leaks {total:.1} dB");
    }
}

#[test]
fn no_images_when_upsampling() {
    // Upsampling 8 -> 16 kHz must not create a mirror image of a 3 kHz tone at 5 kHz.
    let input = tone(8000, 3000.0, 0.5, 8000);
    let out = run_all(&mut Resampler::new(8000, 16_000).unwrap(), &input);
    let image = db(tone_power(&out, 16_000, 5000.0) / tone_power(&out, 16_000, 3000.0));
    assert!(image < -50.0, "image at {image:.1} dB");
}

#[test]
fn i16_in_f32_out_and_back() {
    let mut up = Resampler::new(8000, 16_000).unwrap();
    let mut down = Resampler::new(16_000, 8000).unwrap();
    let input: Vec<i16> = tone(8000, 1000.0, 0.3, 8000)
        .iter()
        .map(|&v| (v * 32767.0) as i16)
        .collect();
    let mut mid: Vec<f32> = Vec::new();
    up.process(&input, &mut mid).unwrap();
    up.flush(&mut mid).unwrap();
    let mut back: Vec<i16> = Vec::new();
    down.process(&mid, &mut back).unwrap();
    down.flush(&mut back).unwrap();
    assert_eq!(back.len(), input.len());
    let err = input[800..7200]
        .iter()
        .zip(&back[800..7200])
        .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
        .max();
    assert!(err.unwrap() < 40, "max error {err:?}");
}

#[test]
fn equal_rates_pass_through() {
    let mut r = Resampler::new(16_000, 16_000).unwrap();
    assert_eq!(r.latency_samples(), 0);
    let mut out: Vec<i16> = Vec::new();
    r.process(&[1i16, -2, 3], &mut out).unwrap();
    r.flush(&mut out).unwrap();
    assert_eq!(out, [1i16, -2, 3]);
}

#[test]
fn reuse_after_flush_is_a_fresh_stream() {
    let input = tone(8000, 700.0, 0.4, 1234);
    let mut r = Resampler::new(8000, 16_000).unwrap();
    let first = run_all(&mut r, &input);
    let second = run_all(&mut r, &input);
    assert_eq!(first, second);
}

#[test]
fn unsupported_rates_are_errors() {
    for (from, to) in [(0, 8000), (8000, 0), (8000, 400_000), (44_101, 8000)] {
        assert!(
            matches!(
                Resampler::new(from, to),
                Err(ResampleError::UnsupportedRates { .. })
            ),
            "{from}->{to}"
        );
    }
}
