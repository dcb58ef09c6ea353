//! Streaming sample-rate conversion over `rubato`'s synchronous FFT resampler.
//!
//! [`Resampler`] takes i16 or f32 mono PCM in chunks of any size, buffers internally up to one
//! fixed rubato chunk (20 ms of input by default), and appends converted samples to a
//! caller-owned `Vec` — once that `Vec` has grown to its working size nothing allocates per
//! call. [`Resampler::flush`] drains the tail at end of stream.
//!
//! Why the FFT resampler: the rates are fixed per call (8 ↔ 16 kHz, TTS output at 22.05 or
//! 24 kHz down to the call rate), so clock drift tracking is not needed, and it is both the
//! cheapest and the cleanest of rubato's converters for a fixed ratio.
//!
//! The output is time-aligned with the input: the filter's start-up delay is trimmed, so output
//! sample `k` corresponds to input time `k / to_hz`. The price is latency: output for an input
//! instant arrives [`Resampler::latency_samples`] output samples late (half an FFT block), plus
//! whatever input waits in the buffer for a chunk to fill.

use rubato::audioadapter_buffers::{SizeError, direct::InterleavedSlice};
use rubato::{Fft, FixedSync, Indexing, Resampler as _};

use crate::frame::{sample_f32_to_i16, sample_i16_to_f32};

/// Why a resampler could not be built or could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResampleError {
    /// The rate pair is outside what this crate converts (zero, above 192 kHz, or a ratio whose
    /// smallest exact block is so long that latency would be unacceptable).
    #[error("unsupported resampling {from_hz} Hz -> {to_hz} Hz")]
    UnsupportedRates {
        /// Input rate.
        from_hz: u32,
        /// Output rate.
        to_hz: u32,
    },
    /// rubato refused the configuration.
    #[error("resampler construction failed")]
    Construction(#[from] rubato::ResamplerConstructionError),
    /// rubato failed while processing (buffer sizing; indicates a bug here, not bad input).
    #[error("resampling failed")]
    Process(#[from] rubato::ResampleError),
    /// An internal buffer did not match rubato's chunk size (a bug here, not bad input).
    #[error("resampler buffer sizing")]
    BufferSize(#[from] SizeError),
}

/// A PCM sample type the resampler accepts and produces: `i16` or `f32`.
///
/// Sealed: the conversions live in [`crate::frame`].
pub trait PcmSample: Copy + sealed::Sealed {
    #[doc(hidden)]
    fn to_f32(self) -> f32;
    #[doc(hidden)]
    fn from_f32(v: f32) -> Self;
}

impl PcmSample for i16 {
    fn to_f32(self) -> f32 {
        sample_i16_to_f32(self)
    }
    fn from_f32(v: f32) -> Self {
        sample_f32_to_i16(v)
    }
}

impl PcmSample for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> Self {
        v
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for i16 {}
    impl Sealed for f32 {}
}

/// A streaming mono resampler between two fixed rates.
pub struct Resampler {
    from_hz: u32,
    to_hz: u32,
    /// `None` when the rates are equal: samples pass through (converted) untouched.
    inner: Option<Fft<f32>>,
    chunk_in: usize,
    chunk_out: usize,
    /// Input waiting for a full chunk; never longer than `chunk_in`.
    pending: Vec<f32>,
    /// rubato's output for one chunk, before trimming.
    scratch: Vec<f32>,
    /// Output samples still to drop at the start of the stream (the filter's start-up delay).
    to_trim: usize,
    total_in: u64,
    total_out: u64,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from_hz", &self.from_hz)
            .field("to_hz", &self.to_hz)
            .field("chunk_in", &self.chunk_in)
            .field("latency_samples", &self.latency_samples())
            .finish_non_exhaustive()
    }
}

/// Default processing chunk: one pipeline frame of input.
const DEFAULT_CHUNK_MS: u32 = crate::FRAME_MS;
/// Longest exact block (input samples per `from/gcd`) accepted; 44.1 kHz ↔ 8 kHz needs 441.
const MAX_MIN_BLOCK: u32 = 2048;

impl Resampler {
    /// A resampler from `from_hz` to `to_hz` processing 20 ms input chunks.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        Self::with_chunk_ms(from_hz, to_hz, DEFAULT_CHUNK_MS)
    }

    /// Like [`Resampler::new`] with a different processing chunk. Longer chunks make a longer
    /// FFT, which sharpens the anti-alias filter and adds latency (half a chunk).
    pub fn with_chunk_ms(from_hz: u32, to_hz: u32, chunk_ms: u32) -> Result<Self, ResampleError> {
        let unsupported = ResampleError::UnsupportedRates { from_hz, to_hz };
        if from_hz == 0 || to_hz == 0 || from_hz > 192_000 || to_hz > 192_000 {
            return Err(unsupported);
        }
        let g = gcd(from_hz, to_hz);
        if from_hz / g > MAX_MIN_BLOCK || to_hz / g > MAX_MIN_BLOCK {
            return Err(unsupported);
        }
        let chunk_ms = chunk_ms.clamp(1, 1000);
        let wanted = (from_hz as usize * chunk_ms as usize / 1000).max(1);
        if from_hz == to_hz {
            return Ok(Self {
                from_hz,
                to_hz,
                inner: None,
                chunk_in: wanted,
                chunk_out: wanted,
                pending: Vec::new(),
                scratch: Vec::new(),
                to_trim: 0,
                total_in: 0,
                total_out: 0,
            });
        }
        // One FFT block per chunk (sub_chunks = 1): the block is the chunk, so a 20 ms chunk
        // costs 10 ms of filter delay, and each pushed 20 ms frame comes straight back out.
        let fft = Fft::<f32>::new_custom(
            from_hz as usize,
            to_hz as usize,
            wanted,
            1,
            1,
            rubato::WindowFunction::BlackmanHarris2,
            FixedSync::Both,
        )?;
        let chunk_in = fft.input_frames_next();
        let chunk_out = fft.output_frames_next();
        let to_trim = fft.output_delay();
        Ok(Self {
            from_hz,
            to_hz,
            inner: Some(fft),
            chunk_in,
            chunk_out,
            pending: Vec::with_capacity(chunk_in),
            scratch: vec![0.0; chunk_out],
            to_trim,
            total_in: 0,
            total_out: 0,
        })
    }

    /// Input rate in Hz.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// Output rate in Hz.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Input samples per internal chunk. Pushing whole multiples of it adds no buffering delay.
    pub fn chunk_len_in(&self) -> usize {
        self.chunk_in
    }

    /// The filter's delay in output samples: output for an input instant arrives this much
    /// later than the input, on top of any input waiting for a chunk to fill (less than
    /// [`Resampler::chunk_len_in`]). Zero when the rates are equal.
    pub fn latency_samples(&self) -> usize {
        self.inner.as_ref().map_or(0, |f| f.output_delay())
    }

    /// An upper bound on the output of one `process` call with `input_len` samples; reserve
    /// this in the output `Vec` once to keep the hot path allocation-free.
    pub fn max_output_len(&self, input_len: usize) -> usize {
        (input_len + self.chunk_in).div_ceil(self.chunk_in) * self.chunk_out
    }

    /// Converts `input` and appends the output that became available to `out`; returns the
    /// number of samples appended.
    pub fn process<I: PcmSample, O: PcmSample>(
        &mut self,
        input: &[I],
        out: &mut Vec<O>,
    ) -> Result<usize, ResampleError> {
        self.total_in += input.len() as u64;
        let before = out.len();
        if self.inner.is_none() {
            out.extend(input.iter().map(|&s| O::from_f32(s.to_f32())));
            self.total_out += input.len() as u64;
            return Ok(input.len());
        }
        let mut rest = input;
        while !rest.is_empty() {
            let take = (self.chunk_in - self.pending.len()).min(rest.len());
            self.pending
                .extend(rest[..take].iter().map(|&s| s.to_f32()));
            rest = &rest[take..];
            if self.pending.len() == self.chunk_in {
                self.run_chunk(out, u64::MAX)?;
            }
        }
        Ok(out.len() - before)
    }

    /// End of stream: converts what is buffered (padding with silence) and appends the
    /// remaining output, so the total output is `ceil(total_input × to_hz / from_hz)` samples.
    /// The resampler is then reset and ready for a new stream.
    pub fn flush<O: PcmSample>(&mut self, out: &mut Vec<O>) -> Result<usize, ResampleError> {
        let before = out.len();
        if self.inner.is_some() {
            let expected =
                (self.total_in * u64::from(self.to_hz)).div_ceil(u64::from(self.from_hz));
            // Each round adds at least one chunk of output, so this ends.
            while self.total_out < expected {
                self.pending.resize(self.chunk_in, 0.0);
                self.run_chunk(out, expected)?;
            }
        }
        self.reset();
        Ok(out.len() - before)
    }

    /// Drops buffered input and filter state, as at construction.
    pub fn reset(&mut self) {
        if let Some(fft) = self.inner.as_mut() {
            fft.reset();
            self.to_trim = fft.output_delay();
        }
        self.pending.clear();
        self.total_in = 0;
        self.total_out = 0;
    }

    /// Runs one full chunk from `pending`, trims the start-up delay, and appends at most up to
    /// `limit` total output samples.
    fn run_chunk<O: PcmSample>(
        &mut self,
        out: &mut Vec<O>,
        limit: u64,
    ) -> Result<(), ResampleError> {
        let Some(fft) = self.inner.as_mut() else {
            return Ok(());
        };
        let input = InterleavedSlice::new(&self.pending[..], 1, self.chunk_in)?;
        let mut output = InterleavedSlice::new_mut(&mut self.scratch[..], 1, self.chunk_out)?;
        let (_, produced) = fft.process_into_buffer(&input, &mut output, None::<&Indexing>)?;
        self.pending.clear();
        let skip = self.to_trim.min(produced);
        self.to_trim -= skip;
        let room = usize::try_from(limit.saturating_sub(self.total_out)).unwrap_or(usize::MAX);
        let emit = (produced - skip).min(room);
        out.extend(
            self.scratch[skip..skip + emit]
                .iter()
                .map(|&s| O::from_f32(s)),
        );
        self.total_out += emit as u64;
        Ok(())
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests;
