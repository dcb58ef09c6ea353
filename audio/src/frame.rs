//! Fixed-size framing, frame-duration arithmetic, i16 ↔ f32 conversion and signal level.
//!
//! The pipeline moves audio in 20 ms frames ([`FRAME_MS`]): 160 samples at 8 kHz, 320 at
//! 16 kHz. Producers (RTP, a resampler, TTS) deliver arbitrary amounts; [`Framer`] cuts them
//! into exact frames without allocating once its buffer has grown to the working size.

use crate::BufferTooSmall;

/// The pipeline's frame duration: one RTP packet of G.711 at the usual `ptime`.
pub const FRAME_MS: u32 = 20;

/// Samples in one frame of `frame_ms` at `rate_hz` (rounded down; exact for the rates used).
pub const fn samples_per_frame(rate_hz: u32, frame_ms: u32) -> usize {
    (rate_hz as u64 * frame_ms as u64 / 1000) as usize
}

/// Duration of `samples` samples at `rate_hz`, in whole milliseconds (rounded down).
///
/// Returns 0 for a zero rate rather than dividing by zero.
pub const fn samples_to_ms(samples: u64, rate_hz: u32) -> u64 {
    if rate_hz == 0 {
        return 0;
    }
    samples * 1000 / rate_hz as u64
}

/// Number of samples covering `ms` milliseconds at `rate_hz` (rounded down).
pub const fn ms_to_samples(ms: u64, rate_hz: u32) -> u64 {
    ms * rate_hz as u64 / 1000
}

/// Accumulates samples of any chunk size and hands them out as frames of exactly
/// `frame_len` samples.
///
/// ```
/// # use audio::Framer;
/// let mut framer = Framer::<i16>::new(160);
/// framer.push(&[0; 100]);
/// assert!(framer.next_frame().is_none());
/// framer.push(&[0; 300]);
/// let mut frames = 0;
/// while let Some(frame) = framer.next_frame() {
///     assert_eq!(frame.len(), 160);
///     frames += 1;
/// }
/// assert_eq!((frames, framer.pending()), (2, 80));
/// ```
#[derive(Debug, Clone)]
pub struct Framer<T> {
    frame_len: usize,
    buf: Vec<T>,
    /// Start of the unread part of `buf`; consumed samples are dropped lazily on the next push
    /// so that `next_frame` can lend a slice of `buf` without copying.
    read: usize,
}

impl<T: Copy + Default> Framer<T> {
    /// A framer for frames of `frame_len` samples (a zero length is treated as 1).
    pub fn new(frame_len: usize) -> Self {
        let frame_len = frame_len.max(1);
        Self {
            frame_len,
            buf: Vec::with_capacity(frame_len * 4),
            read: 0,
        }
    }

    /// A framer for [`FRAME_MS`] frames at `rate_hz`.
    pub fn for_rate(rate_hz: u32) -> Self {
        Self::new(samples_per_frame(rate_hz, FRAME_MS))
    }

    /// Samples per frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Appends samples.
    pub fn push(&mut self, samples: &[T]) {
        if self.read > 0 {
            self.buf.drain(..self.read);
            self.read = 0;
        }
        self.buf.extend_from_slice(samples);
    }

    /// The next complete frame, if one is buffered.
    pub fn next_frame(&mut self) -> Option<&[T]> {
        let end = self.read + self.frame_len;
        if end > self.buf.len() {
            return None;
        }
        let frame = &self.buf[self.read..end];
        self.read = end;
        Some(frame)
    }

    /// Samples buffered that do not yet make a whole frame (plus whole frames not yet taken).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.read
    }

    /// At end of stream: the remaining partial frame padded with zeros, or `None` if nothing
    /// is pending. Take whole frames with [`Framer::next_frame`] first.
    pub fn flush_padded(&mut self) -> Option<&[T]> {
        if self.pending() == 0 {
            return None;
        }
        let rem = self.pending() % self.frame_len;
        if rem != 0 {
            let pad = self.frame_len - rem;
            self.buf.extend(std::iter::repeat_n(T::default(), pad));
        }
        self.next_frame()
    }

    /// Drops everything buffered.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.read = 0;
    }
}

/// Converts i16 samples to f32 in `[-1.0, 1.0)` into `out[..input.len()]`.
pub fn i16_to_f32(input: &[i16], out: &mut [f32]) -> Result<usize, BufferTooSmall> {
    BufferTooSmall::check(input.len(), out.len())?;
    for (o, &s) in out.iter_mut().zip(input) {
        *o = sample_i16_to_f32(s);
    }
    Ok(input.len())
}

/// Converts f32 samples to i16 (rounded, clipped to full scale; NaN becomes 0) into
/// `out[..input.len()]`.
pub fn f32_to_i16(input: &[f32], out: &mut [i16]) -> Result<usize, BufferTooSmall> {
    BufferTooSmall::check(input.len(), out.len())?;
    for (o, &s) in out.iter_mut().zip(input) {
        *o = sample_f32_to_i16(s);
    }
    Ok(input.len())
}

/// One sample, i16 → f32 (divides by 32768, so `i16::MIN` maps to exactly -1.0).
#[inline]
pub fn sample_i16_to_f32(s: i16) -> f32 {
    f32::from(s) / 32768.0
}

/// One sample, f32 → i16, rounded and clipped; NaN maps to 0.
#[inline]
pub fn sample_f32_to_i16(s: f32) -> i16 {
    // `as` saturates and maps NaN to 0, which is exactly the clipping wanted here.
    (s * 32768.0).round() as i16
}

/// Root-mean-square level of `samples` relative to full scale (0.0 ..= 1.0); 0.0 when empty.
pub fn rms(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    ((sum / samples.len() as f64).sqrt() / 32768.0) as f32
}

/// RMS level in dBFS (a full-scale square wave is 0 dBFS, a full-scale sine about -3 dBFS).
///
/// Digital silence (or an empty slice) is `f32::NEG_INFINITY`.
pub fn dbfs(samples: &[i16]) -> f32 {
    let r = rms(samples);
    if r <= 0.0 {
        f32::NEG_INFINITY
    } else {
        20.0 * r.log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes() {
        assert_eq!(samples_per_frame(8000, FRAME_MS), 160);
        assert_eq!(samples_per_frame(16_000, FRAME_MS), 320);
        assert_eq!(samples_per_frame(22_050, FRAME_MS), 441);
        assert_eq!(samples_per_frame(24_000, 10), 240);
        assert_eq!(samples_to_ms(160, 8000), 20);
        assert_eq!(samples_to_ms(1, 0), 0);
        assert_eq!(ms_to_samples(20, 16_000), 320);
    }

    #[test]
    fn framer_reassembles_arbitrary_chunks_in_order() {
        let input: Vec<i16> = (0..1000).map(|i| i as i16).collect();
        let mut framer = Framer::new(160);
        let mut out = Vec::new();
        let mut pos = 0;
        for chunk in [1usize, 7, 159, 160, 161, 300, 2, 210] {
            framer.push(&input[pos..pos + chunk]);
            pos += chunk;
            while let Some(f) = framer.next_frame() {
                assert_eq!(f.len(), 160);
                out.extend_from_slice(f);
            }
        }
        assert_eq!(pos, 1000);
        assert_eq!(out.len(), 960);
        assert_eq!(framer.pending(), 40);
        let last = framer.flush_padded().unwrap().to_vec();
        assert_eq!(last.len(), 160);
        assert_eq!(&last[..40], &input[960..]);
        assert!(last[40..].iter().all(|&s| s == 0));
        out.extend_from_slice(&last[..40]);
        assert_eq!(out, input);
        assert!(framer.flush_padded().is_none());
    }

    #[test]
    fn framer_zero_length_and_clear() {
        let mut framer = Framer::<f32>::new(0);
        assert_eq!(framer.frame_len(), 1);
        framer.push(&[0.5, 0.25]);
        framer.clear();
        assert_eq!(framer.pending(), 0);
        assert_eq!(Framer::<i16>::for_rate(8000).frame_len(), 160);
    }

    #[test]
    fn pcm_conversions_roundtrip_and_clip() {
        let input = [i16::MIN, -1, 0, 1, 12345, i16::MAX];
        let mut f = [0.0f32; 6];
        let mut back = [0i16; 6];
        i16_to_f32(&input, &mut f).unwrap();
        assert_eq!(f[0], -1.0);
        f32_to_i16(&f, &mut back).unwrap();
        assert_eq!(back, input);
        let mut clipped = [0i16; 4];
        f32_to_i16(&[2.0, -2.0, f32::NAN, 0.5], &mut clipped).unwrap();
        assert_eq!(clipped, [i16::MAX, i16::MIN, 0, 16384]);
        assert!(f32_to_i16(&[0.0; 3], &mut [0; 2]).is_err());
        assert!(i16_to_f32(&[0; 3], &mut [0.0; 2]).is_err());
    }

    #[test]
    fn levels() {
        assert_eq!(rms(&[]), 0.0);
        assert_eq!(dbfs(&[0; 160]), f32::NEG_INFINITY);
        let square = [i16::MIN; 160];
        assert!(dbfs(&square).abs() < 0.01);
        let sine: Vec<i16> = (0..1600)
            .map(|n| (32767.0 * (n as f32 * 0.1).sin()) as i16)
            .collect();
        assert!((dbfs(&sine) + 3.01).abs() < 0.1, "{}", dbfs(&sine));
        let quiet: Vec<i16> = sine.iter().map(|&s| s / 100).collect();
        assert!((dbfs(&quiet) + 43.0).abs() < 0.2, "{}", dbfs(&quiet));
    }
}
