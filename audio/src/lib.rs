//! DSP on PCM frames: G.711 µ-law/A-law, resampling, 20 ms framing, voice activity detection,
//! WAV I/O.
//!
//! It does no I/O beyond WAV files and nothing async: every function is a plain computation on
//! samples, so it can run on any thread (media task or blocking pool).
