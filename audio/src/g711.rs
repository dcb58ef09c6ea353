//! ITU-T G.711 µ-law (PCMU, RTP payload type 0) and A-law (PCMA, payload type 8).
//!
//! Decoding is a lookup in a 256-entry table built at compile time; encoding computes the
//! segment and mantissa exactly as the recommendation (and the classic Sun reference code)
//! does, so every code word survives decode → encode unchanged. Conversions work on slices
//! into caller-provided buffers: nothing allocates per frame.
//!
//! Decoded values use the 16-bit scale: µ-law spans ±32124, A-law ±32256.

use crate::BufferTooSmall;

/// A G.711 companding law, as negotiated in SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum G711 {
    /// µ-law, "PCMU", static RTP payload type 0 (North America, Japan).
    MuLaw,
    /// A-law, "PCMA", static RTP payload type 8 (rest of the world).
    ALaw,
}

impl G711 {
    /// The static RTP payload type (RFC 3551): 0 for PCMU, 8 for PCMA.
    pub const fn payload_type(self) -> u8 {
        match self {
            Self::MuLaw => 0,
            Self::ALaw => 8,
        }
    }

    /// The law for a static RTP payload type, if it is one of the two.
    pub const fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::MuLaw),
            8 => Some(Self::ALaw),
            _ => None,
        }
    }

    /// The SDP encoding name: `"PCMU"` or `"PCMA"`.
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Self::MuLaw => "PCMU",
            Self::ALaw => "PCMA",
        }
    }

    /// The code word for a zero sample (what a silent payload is filled with).
    pub const fn silence(self) -> u8 {
        match self {
            Self::MuLaw => 0xFF,
            Self::ALaw => 0xD5,
        }
    }

    /// Encodes `pcm` into `out[..pcm.len()]`; returns the number of bytes written.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        match self {
            Self::MuLaw => encode_ulaw(pcm, out),
            Self::ALaw => encode_alaw(pcm, out),
        }
    }

    /// Decodes `code` into `out[..code.len()]`; returns the number of samples written.
    pub fn decode(self, code: &[u8], out: &mut [i16]) -> Result<usize, BufferTooSmall> {
        match self {
            Self::MuLaw => decode_ulaw(code, out),
            Self::ALaw => decode_alaw(code, out),
        }
    }
}

/// Encodes 16-bit PCM to µ-law into `out[..pcm.len()]`; returns the count written.
pub fn encode_ulaw(pcm: &[i16], out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    BufferTooSmall::check(pcm.len(), out.len())?;
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = ulaw_from_linear(s);
    }
    Ok(pcm.len())
}

/// Decodes µ-law into 16-bit PCM in `out[..code.len()]`; returns the count written.
pub fn decode_ulaw(code: &[u8], out: &mut [i16]) -> Result<usize, BufferTooSmall> {
    BufferTooSmall::check(code.len(), out.len())?;
    for (o, &c) in out.iter_mut().zip(code) {
        *o = ULAW_TO_LINEAR[usize::from(c)];
    }
    Ok(code.len())
}

/// Encodes 16-bit PCM to A-law into `out[..pcm.len()]`; returns the count written.
pub fn encode_alaw(pcm: &[i16], out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    BufferTooSmall::check(pcm.len(), out.len())?;
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = alaw_from_linear(s);
    }
    Ok(pcm.len())
}

/// Decodes A-law into 16-bit PCM in `out[..code.len()]`; returns the count written.
pub fn decode_alaw(code: &[u8], out: &mut [i16]) -> Result<usize, BufferTooSmall> {
    BufferTooSmall::check(code.len(), out.len())?;
    for (o, &c) in out.iter_mut().zip(code) {
        *o = ALAW_TO_LINEAR[usize::from(c)];
    }
    Ok(code.len())
}

/// One sample to µ-law.
pub const fn ulaw_from_linear(sample: i16) -> u8 {
    // µ-law quantises 14-bit magnitudes (the two low bits of a 16-bit sample carry nothing).
    // Negative samples use the one's complement, as the ITU-T G.191 reference does, so that -1
    // is the negative zero code rather than the first step.
    let (mag, mask) = if sample < 0 {
        ((!sample) as i32 >> 2, 0x7F)
    } else {
        (sample as i32 >> 2, 0xFF)
    };
    // The bias shifts every value so that segment boundaries fall on powers of two.
    let mut v = mag + (ULAW_BIAS >> 2);
    if v > ULAW_MAX {
        v = ULAW_MAX;
    }
    let seg = segment(v, &ULAW_SEG_END);
    let code = ((seg as i32) << 4) | ((v >> (seg + 1)) & 0x0F);
    (code as u8) ^ mask
}

/// One µ-law code word to a 16-bit sample.
pub const fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TO_LINEAR[code as usize]
}

/// One sample to A-law.
pub const fn alaw_from_linear(sample: i16) -> u8 {
    // A-law works on 13-bit magnitudes.
    let mut v = (sample as i32) >> 3;
    let mask: u8 = if v >= 0 {
        0xD5
    } else {
        // One's complement, as G.711 defines A-law's negative side (no negative zero).
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &ALAW_SEG_END);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mantissa = if seg < 2 {
        (v >> 1) & 0x0F
    } else {
        (v >> seg) & 0x0F
    };
    (((seg as i32) << 4) | mantissa) as u8 ^ mask
}

/// One A-law code word to a 16-bit sample.
pub const fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TO_LINEAR[code as usize]
}

const ULAW_BIAS: i32 = 0x84;
/// Largest biased 14-bit magnitude: the top of segment 7.
const ULAW_MAX: i32 = 0x1FFF;
const ULAW_SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const ALAW_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// Index of the first segment whose end is ≥ `v`, or 8 when `v` is beyond the last
/// (A-law uses that to saturate; µ-law clamps `v` first).
const fn segment(v: i32, ends: &[i32; 8]) -> u32 {
    let mut i = 0;
    while i < 8 {
        if v <= ends[i] {
            return i as u32;
        }
        i += 1;
    }
    8
}

static ULAW_TO_LINEAR: [i16; 256] = build_ulaw_table();
static ALAW_TO_LINEAR: [i16; 256] = build_alaw_table();

const fn build_ulaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        // Code words are transmitted inverted.
        let u = !(i as u8) as i32;
        let mut t = ((u & 0x0F) << 3) + ULAW_BIAS;
        t <<= (u & 0x70) >> 4;
        table[i] = if u & 0x80 != 0 {
            (ULAW_BIAS - t) as i16
        } else {
            (t - ULAW_BIAS) as i16
        };
        i += 1;
    }
    table
}

const fn build_alaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        // Even bits are inverted on the wire (0x55) to keep line transitions frequent.
        let a = (i as i32) ^ 0x55;
        let mut t = (a & 0x0F) << 4;
        let seg = (a & 0x70) >> 4;
        match seg {
            0 => t += 8,
            1 => t += 0x108,
            _ => {
                t += 0x108;
                t <<= seg - 1;
            }
        }
        table[i] = if a & 0x80 != 0 { t as i16 } else { -t as i16 };
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ulaw_vectors() {
        assert_eq!(ulaw_from_linear(0), 0xFF);
        assert_eq!(ulaw_from_linear(-1), 0x7F);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_from_linear(i16::MAX), 0x80);
        assert_eq!(ulaw_from_linear(i16::MIN), 0x00);
        // First step above zero: 14-bit magnitude 2 lands in the second quantisation interval.
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_from_linear(8), 0xFE);
        assert_eq!(ulaw_to_linear(0xEF), 132); // the first value of segment 1
        assert_eq!(ulaw_from_linear(1000), 0xCE);
        assert_eq!(ulaw_to_linear(0xCE), 988);
    }

    #[test]
    fn known_alaw_vectors() {
        assert_eq!(alaw_from_linear(0), 0xD5);
        assert_eq!(alaw_from_linear(-1), 0x55);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(alaw_from_linear(i16::MAX), 0xAA);
        assert_eq!(alaw_from_linear(i16::MIN), 0x2A);
        assert_eq!(alaw_from_linear(1000), 0xFA);
        assert_eq!(alaw_to_linear(0xFA), 1008);
    }

    #[test]
    fn every_code_word_is_stable_through_decode_encode() {
        for c in 0..=255u8 {
            let u = ulaw_from_linear(ulaw_to_linear(c));
            // µ-law has two zeros (0xFF, 0x7F); both decode to 0, which encodes as +0.
            let expect = if c == 0x7F { 0xFF } else { c };
            assert_eq!(u, expect, "µ-law {c:#04x}");
            assert_eq!(alaw_from_linear(alaw_to_linear(c)), c, "A-law {c:#04x}");
        }
    }

    #[test]
    fn decode_tables_are_monotonic_per_sign() {
        // Positive µ-law codes 0x80..=0xFF run from loudest to zero.
        for c in 0x80..0xFFu8 {
            assert!(ulaw_to_linear(c) > ulaw_to_linear(c + 1));
        }
        for c in 0x00..0x7Fu8 {
            assert!(ulaw_to_linear(c) < ulaw_to_linear(c + 1));
        }
    }

    #[test]
    fn roundtrip_error_is_within_half_a_quantisation_step() {
        for x in i16::MIN..=i16::MAX {
            let mag = i32::from(x).abs();
            let u = i32::from(ulaw_to_linear(ulaw_from_linear(x)));
            let a = i32::from(alaw_to_linear(alaw_from_linear(x)));
            // Step sizes double per segment, so half a step is a fixed fraction of the value
            // (1/32 for A-law; up to 1/15 for µ-law, whose bias makes each segment start lower),
            // plus the bits G.711 drops before quantising, plus the clip at full scale.
            let u_bound = mag / 15 + 8 + (mag - 32124).max(0);
            let a_bound = (mag / 32).max(8) + 8 + (mag - 32256).max(0);
            assert!((u - i32::from(x)).abs() <= u_bound, "µ-law {x} -> {u}");
            assert!((a - i32::from(x)).abs() <= a_bound, "A-law {x} -> {a}");
            // Sign is preserved (zero may land on either side at the smallest step).
            assert!(u == 0 || (u > 0) == (x > 0) || x.unsigned_abs() < 8);
        }
    }

    #[test]
    fn sine_snr_matches_g711_expectations() {
        // A -10 dBFS 1 kHz tone: G.711 gives ~38 dB SNR over a wide level range.
        let pcm: Vec<i16> = (0..8000)
            .map(|n| {
                let t = n as f64 / 8000.0;
                (10_362.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
            })
            .collect();
        for law in [G711::MuLaw, G711::ALaw] {
            let mut code = vec![0u8; pcm.len()];
            let mut back = vec![0i16; pcm.len()];
            law.encode(&pcm, &mut code).unwrap();
            law.decode(&code, &mut back).unwrap();
            let sig: f64 = pcm.iter().map(|&s| f64::from(s).powi(2)).sum();
            let noise: f64 = pcm
                .iter()
                .zip(&back)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum();
            let snr = 10.0 * (sig / noise).log10();
            assert!(snr > 35.0, "{law:?} SNR {snr:.1} dB");
        }
    }

    #[test]
    fn short_output_is_an_error_not_a_panic() {
        let mut out = [0u8; 3];
        assert_eq!(
            G711::MuLaw.encode(&[1, 2, 3, 4], &mut out),
            Err(BufferTooSmall {
                needed: 4,
                available: 3
            })
        );
        let mut pcm = [0i16; 1];
        assert!(G711::ALaw.decode(&[1, 2], &mut pcm).is_err());
        // A longer output is fine; only the prefix is written.
        let mut big = [0xAAu8; 8];
        assert_eq!(G711::MuLaw.encode(&[0, 0], &mut big), Ok(2));
        assert_eq!(big[..3], [0xFF, 0xFF, 0xAA]);
    }

    #[test]
    fn payload_types() {
        assert_eq!(G711::from_payload_type(0), Some(G711::MuLaw));
        assert_eq!(G711::from_payload_type(8), Some(G711::ALaw));
        assert_eq!(G711::from_payload_type(9), None);
        assert_eq!(G711::ALaw.payload_type(), 8);
        assert_eq!(G711::MuLaw.encoding_name(), "PCMU");
        assert_eq!(
            G711::MuLaw.decode(&[G711::MuLaw.silence()], &mut [1]),
            Ok(1)
        );
    }
}
