//! WAV file read (mono or stereo, 16/24/32-bit integer or 32-bit float, any common rate) into
//! mono i16, and write (mono s16) — via `hound`.
//!
//! Used for fixtures, recordings of calls, and TTS/STT tooling; the media path never touches
//! files. A malformed or unsupported file is an error, never a panic.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::frame::sample_f32_to_i16;

/// Mono 16-bit audio with its rate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WavAudio {
    /// Samples per second.
    pub sample_rate: u32,
    /// Mono samples (stereo input is averaged).
    pub samples: Vec<i16>,
}

impl WavAudio {
    /// Duration in whole milliseconds.
    pub fn duration_ms(&self) -> u64 {
        crate::frame::samples_to_ms(self.samples.len() as u64, self.sample_rate)
    }
}

/// Why a WAV file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// The file could not be opened or created.
    #[error("cannot open {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The data is not a WAV file hound can parse, or is truncated, or writing failed.
    #[error("malformed or unwritable WAV data")]
    Format(#[from] hound::Error),
    /// More than two channels.
    #[error("unsupported channel count {channels} (mono or stereo only)")]
    UnsupportedChannels {
        /// Channels in the header.
        channels: u16,
    },
    /// A sample format other than 8/16/24/32-bit integer or 32-bit float.
    #[error("unsupported sample format: {bits} bits, float={float}")]
    UnsupportedFormat {
        /// Bits per sample in the header.
        bits: u16,
        /// Whether the header says IEEE float.
        float: bool,
    },
    /// A sample rate of zero or above 384 kHz.
    #[error("unsupported sample rate {0} Hz")]
    UnsupportedRate(u32),
}

/// Reads a WAV file into mono i16.
pub fn read_wav(path: impl AsRef<Path>) -> Result<WavAudio, WavError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| WavError::Open {
        path: path.to_owned(),
        source,
    })?;
    read_wav_from(BufReader::new(file))
}

/// Reads WAV data from any reader into mono i16.
pub fn read_wav_from<R: Read>(reader: R) -> Result<WavAudio, WavError> {
    let mut reader = hound::WavReader::new(reader)?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.channels > 2 {
        return Err(WavError::UnsupportedChannels {
            channels: spec.channels,
        });
    }
    if spec.sample_rate == 0 || spec.sample_rate > 384_000 {
        return Err(WavError::UnsupportedRate(spec.sample_rate));
    }
    let channels = usize::from(spec.channels);
    // The header's length is untrusted: cap the reservation so a lying header cannot make us
    // allocate gigabytes before the data runs out.
    let frames = (reader.len() as usize / channels).min(1 << 24);
    let mut samples = Vec::with_capacity(frames);
    let unsupported = WavError::UnsupportedFormat {
        bits: spec.bits_per_sample,
        float: spec.sample_format == hound::SampleFormat::Float,
    };
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 16) => {
            mix_down(
                reader.samples::<i16>().map(|s| s.map(i32::from)),
                channels,
                &mut samples,
            )?;
        }
        (hound::SampleFormat::Int, bits @ (8 | 24 | 32)) => {
            // Scale to 16 bits (8-bit WAV is unsigned on disk; hound already centres it).
            let shift = i32::from(bits) - 16;
            let scaled = reader
                .samples::<i32>()
                .map(move |s| s.map(|v| if shift >= 0 { v >> shift } else { v << -shift }));
            mix_down(scaled, channels, &mut samples)?;
        }
        (hound::SampleFormat::Float, 32) => {
            let scaled = reader
                .samples::<f32>()
                .map(|s| s.map(|v| i32::from(sample_f32_to_i16(v))));
            mix_down(scaled, channels, &mut samples)?;
        }
        _ => return Err(unsupported),
    }
    Ok(WavAudio {
        sample_rate: spec.sample_rate,
        samples,
    })
}

/// Writes mono 16-bit PCM to a WAV file.
pub fn write_wav(
    path: impl AsRef<Path>,
    sample_rate: u32,
    samples: &[i16],
) -> Result<(), WavError> {
    let path = path.as_ref();
    let file = File::create(path).map_err(|source| WavError::Open {
        path: path.to_owned(),
        source,
    })?;
    write_wav_to(BufWriter::new(file), sample_rate, samples)
}

/// Writes mono 16-bit PCM as WAV to any seekable writer.
pub fn write_wav_to<W: Write + Seek>(
    writer: W,
    sample_rate: u32,
    samples: &[i16],
) -> Result<(), WavError> {
    let mut w = hound::WavWriter::new(writer, mono16(sample_rate)?)?;
    for &s in samples {
        w.write_sample(s)?;
    }
    w.finalize()?;
    Ok(())
}

fn mono16(sample_rate: u32) -> Result<hound::WavSpec, WavError> {
    if sample_rate == 0 || sample_rate > 384_000 {
        return Err(WavError::UnsupportedRate(sample_rate));
    }
    Ok(hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    })
}

/// A mono 16-bit PCM WAV file written as the audio comes (a call recording): the header's
/// sizes are filled in by [`WavFileWriter::finish`].
pub struct WavFileWriter {
    inner: hound::WavWriter<BufWriter<File>>,
    samples: u64,
}

impl WavFileWriter {
    pub fn create(path: impl AsRef<Path>, sample_rate: u32) -> Result<Self, WavError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|source| WavError::Open {
            path: path.to_owned(),
            source,
        })?;
        let inner = hound::WavWriter::new(BufWriter::new(file), mono16(sample_rate)?)?;
        Ok(Self { inner, samples: 0 })
    }

    pub fn write(&mut self, pcm: &[i16]) -> Result<(), WavError> {
        let mut w = self.inner.get_i16_writer(pcm.len() as u32);
        for &s in pcm {
            w.write_sample(s);
        }
        w.flush()?;
        self.samples += pcm.len() as u64;
        Ok(())
    }

    /// Completes the header; returns the samples written.
    pub fn finish(self) -> Result<u64, WavError> {
        self.inner.finalize()?;
        Ok(self.samples)
    }
}

/// Collects interleaved samples (already on the 16-bit scale) into mono, averaging channels.
fn mix_down(
    mut interleaved: impl Iterator<Item = Result<i32, hound::Error>>,
    channels: usize,
    out: &mut Vec<i16>,
) -> Result<(), WavError> {
    loop {
        let mut sum = 0i32;
        for _ in 0..channels {
            match interleaved.next() {
                Some(s) => sum += s?,
                // End of data; a trailing partial frame is dropped rather than invented.
                None => return Ok(()),
            }
        }
        let avg = sum / channels as i32;
        out.push(avg.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16);
    }
}

#[cfg(test)]
mod tests;
