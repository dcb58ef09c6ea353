//! Call-quality estimate: a simplified ITU-T G.107 E-model turning one-way delay and packet
//! loss into an R-factor and a MOS (1-4.5), for per-call stats next to jitter and loss.
//!
//! Simplifications, as commonly used for VoIP monitoring: default values for every
//! impairment other than delay and loss, random (not bursty) loss, and the Cole-Rosenbluth
//! fit for the delay impairment.

/// Codec constants for the E-model (ITU-T G.113 Appendix I).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CodecImpairment {
    /// Equipment impairment at zero loss.
    pub ie: f64,
    /// Packet-loss robustness factor.
    pub bpl: f64,
}

impl CodecImpairment {
    /// G.711 with packet-loss concealment (Ie 0, Bpl 25.1).
    pub const G711_PLC: Self = Self { ie: 0.0, bpl: 25.1 };
    /// G.711 without concealment (Ie 0, Bpl 4.3).
    pub const G711: Self = Self { ie: 0.0, bpl: 4.3 };
}

/// R-factor (0-100) for a mouth-to-ear one-way delay and a loss fraction (`0.0..=1.0`).
pub fn r_factor(one_way_delay_ms: f64, loss_fraction: f64, codec: CodecImpairment) -> f64 {
    let d = if one_way_delay_ms.is_finite() {
        one_way_delay_ms.max(0.0)
    } else {
        0.0
    };
    let ppl = if loss_fraction.is_finite() {
        loss_fraction.clamp(0.0, 1.0) * 100.0
    } else {
        0.0
    };
    // Delay impairment: slight up to ~177 ms, steep after (conversation starts to collide).
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let ie_eff = codec.ie + (95.0 - codec.ie) * ppl / (ppl + codec.bpl);
    (93.2 - id - ie_eff).clamp(0.0, 100.0)
}

/// MOS (1.0-4.5) from an R-factor (ITU-T G.107 Annex B).
pub fn mos_from_r(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

/// Estimated MOS for a delay and loss fraction: `mos_from_r(r_factor(..))`.
pub fn estimate_mos(one_way_delay_ms: f64, loss_fraction: f64, codec: CodecImpairment) -> f64 {
    mos_from_r(r_factor(one_way_delay_ms, loss_fraction, codec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_points() {
        // A clean G.711 call: R 93.2 minus a little delay, MOS about 4.4.
        let clean = estimate_mos(20.0, 0.0, CodecImpairment::G711_PLC);
        assert!((4.35..4.45).contains(&clean), "{clean}");
        assert!((r_factor(0.0, 0.0, CodecImpairment::G711) - 93.2).abs() < 1e-9);
        // 5 % random loss with PLC: R ≈ 93.2 - 15.8 = 77 → MOS ≈ 3.9.
        let lossy = estimate_mos(0.0, 0.05, CodecImpairment::G711_PLC);
        assert!((3.8..4.0).contains(&lossy), "{lossy}");
        // Without PLC the same loss is much worse.
        assert!(estimate_mos(0.0, 0.05, CodecImpairment::G711) < 3.0);
        // 400 ms one-way delay is poor even without loss.
        assert!(estimate_mos(400.0, 0.0, CodecImpairment::G711_PLC) < 3.6);
    }

    #[test]
    fn monotonic_and_bounded_for_any_input() {
        let mut prev = f64::MAX;
        for pct in 0..=100 {
            let m = estimate_mos(50.0, f64::from(pct) / 100.0, CodecImpairment::G711_PLC);
            assert!((1.0..=4.5).contains(&m) && m <= prev);
            prev = m;
        }
        for (d, l) in [
            (f64::NAN, f64::NAN),
            (-5.0, -1.0),
            (f64::INFINITY, 2.0),
            (1e9, 0.0),
        ] {
            let m = estimate_mos(d, l, CodecImpairment::G711_PLC);
            assert!((1.0..=4.5).contains(&m), "{d} {l} -> {m}");
        }
        assert_eq!(mos_from_r(-3.0), 1.0);
        assert_eq!(mos_from_r(150.0), 4.5);
    }
}
