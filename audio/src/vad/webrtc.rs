//! [`WebRtcVad`]: the WebRTC GMM detector (libfvad, via the `webrtc-vad` crate).

use super::{Vad, VadError, VadKind, check_frame, check_rate};

/// WebRTC's aggressiveness modes: higher modes report speech less readily (fewer false starts
/// in noise, more clipped word edges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum WebRtcMode {
    /// Mode 0: most permissive.
    Quality,
    /// Mode 1.
    LowBitrate,
    /// Mode 2.
    Aggressive,
    /// Mode 3: most restrictive. The default here: on the labelled set, modes 0-2 take -42 dBFS
    /// background noise for speech and merge whole stretches of utterances and gaps.
    #[default]
    VeryAggressive,
}

/// The WebRTC VAD for 8 or 16 kHz frames. Returns 0.0 or 1.0 as its "probability".
pub struct WebRtcVad {
    rate: u32,
    mode: WebRtcMode,
    inner: webrtc_vad::Vad,
}

// SAFETY: `webrtc_vad::Vad` is `!Send` only because it holds a raw pointer to its libfvad
// instance. That instance is a plain heap block owned exclusively by this value (no thread-local
// or shared state in libfvad), so moving it to another thread is sound. It is not `Sync`, and
// every use goes through `&mut self`.
unsafe impl Send for WebRtcVad {}

impl WebRtcVad {
    /// A detector for frames at `sample_rate` (8000 or 16000) in `mode`.
    pub fn new(sample_rate: u32, mode: WebRtcMode) -> Result<Self, VadError> {
        check_rate(sample_rate)?;
        let inner = webrtc_vad::Vad::new_with_rate_and_mode(to_rate(sample_rate), to_mode(mode));
        Ok(Self {
            rate: sample_rate,
            mode,
            inner,
        })
    }

    /// The aggressiveness mode.
    pub fn mode(&self) -> WebRtcMode {
        self.mode
    }
}

impl Vad for WebRtcVad {
    fn kind(&self) -> VadKind {
        VadKind::WebRtc
    }

    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn speech_probability(&mut self, frame: &[i16]) -> Result<f32, VadError> {
        // Checked here: the binding indexes `frame[0]` and would panic on an empty slice.
        check_frame(frame.len(), self.rate)?;
        match self.inner.is_voice_segment(frame) {
            Ok(true) => Ok(1.0),
            Ok(false) => Ok(0.0),
            Err(()) => Err(VadError::BadFrameLength {
                len: frame.len(),
                rate: self.rate,
            }),
        }
    }

    fn threshold(&self) -> f32 {
        0.5
    }

    fn reset(&mut self) {
        // libfvad's reset also restores the default rate and mode, so set them again.
        self.inner.reset();
        self.inner.set_sample_rate(to_rate(self.rate));
        self.inner.set_mode(to_mode(self.mode));
    }
}

impl std::fmt::Debug for WebRtcVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcVad")
            .field("rate", &self.rate)
            .field("mode", &self.mode)
            .finish()
    }
}

fn to_rate(rate: u32) -> webrtc_vad::SampleRate {
    if rate == 8000 {
        webrtc_vad::SampleRate::Rate8kHz
    } else {
        webrtc_vad::SampleRate::Rate16kHz
    }
}

fn to_mode(mode: WebRtcMode) -> webrtc_vad::VadMode {
    match mode {
        WebRtcMode::Quality => webrtc_vad::VadMode::Quality,
        WebRtcMode::LowBitrate => webrtc_vad::VadMode::LowBitrate,
        WebRtcMode::Aggressive => webrtc_vad::VadMode::Aggressive,
        WebRtcMode::VeryAggressive => webrtc_vad::VadMode::VeryAggressive,
    }
}
