//! A call's media quality at its end: the media session's measurements (RTP loss and jitter,
//! RTCP round trip and the peer's view of our stream), the jitter buffer's counts, and an
//! E-model MOS estimate from the `audio` crate — stored as the call's quality row.
//!
//! The MOS describes what the caller's audio was like by the time the pipeline played it:
//! - loss: packets lost on the network plus packets that arrived too late for the jitter
//!   buffer (both are gaps the concealment had to fill);
//! - one-way delay: half the RTCP round trip (nothing when the peer sent no report), plus the
//!   jitter buffer's delay (which grows with the jitter), plus one packet of packetisation.
//!
//! The stored `loss_bp` is the network loss alone, as RTCP reports it.

use audio::jitter::JitterStats;
use audio::quality::{CodecImpairment, estimate_mos};
use sip::driver::MediaStats;
use store::CallQuality;

use super::recorder::{Record, Recorder};

/// Packetisation delay of one 20 ms frame.
const FRAME_MS: f64 = 20.0;

/// The quality row for a call, `None` when no RTP arrived (nothing was measured).
pub fn call_quality(
    call_id: &store::CallId,
    codec: &str,
    media: &MediaStats,
    jitter: &JitterStats,
    at: i64,
) -> Option<CallQuality> {
    let q = &media.quality;
    if q.packets_expected == 0 {
        return None;
    }
    let lost = q.packets_lost.max(0) as f64 + jitter.late as f64;
    let loss = (lost / q.packets_expected as f64).clamp(0.0, 1.0);
    // The buffer's own target when it ran; otherwise twice the jitter, a common stand-in for
    // the depth an adaptive buffer settles at.
    let buffer_ms = if jitter.target_ms > 0 {
        f64::from(jitter.target_ms)
    } else {
        2.0 * q.jitter_ms
    };
    let one_way_ms = q.rtt_ms.unwrap_or(0.0) / 2.0 + buffer_ms + FRAME_MS;
    // G.107 has constants for G.711 only; every leg runs concealment, and Opus conceals at
    // least as well, so G.711 with PLC is the (conservative) reference for all codecs.
    let mos = estimate_mos(one_way_ms, loss, CodecImpairment::G711_PLC);
    Some(CallQuality {
        call_id: call_id.clone(),
        codec: codec.to_owned(),
        packets_expected: saturating_i64(q.packets_expected),
        packets_received: saturating_i64(q.packets_received),
        packets_lost: q.packets_lost,
        loss_bp: basis_points(q.loss_pct),
        jitter_us: micros(q.jitter_ms),
        rtt_us: q.rtt_ms.map(micros),
        remote_packets_lost: q.remote_packets_lost,
        remote_loss_bp: q.remote_loss_pct.map(basis_points),
        remote_jitter_us: q.remote_jitter_ms.map(micros),
        mos_x100: (mos * 100.0).round() as i64,
        recorded_at: at,
    })
}

/// Queues the call's quality row on its recorder (after the rows written so far).
pub fn record(recorder: &Recorder, codec: &str, media: &MediaStats, jitter: &JitterStats) {
    let at = crate::clock::now_ms();
    if let Some(q) = call_quality(recorder.call_id(), codec, media, jitter, at) {
        recorder.record(Record::Quality(q));
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Percent (0–100) to basis points.
fn basis_points(pct: f64) -> i64 {
    (pct.clamp(0.0, 100.0) * 100.0).round() as i64
}

/// Milliseconds to microseconds (non-finite or negative values as 0).
fn micros(ms: f64) -> i64 {
    if ms.is_finite() {
        (ms.max(0.0) * 1000.0).round() as i64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use sip::driver::MediaQuality;

    use super::*;

    fn media(expected: u64, lost: i64, jitter_ms: f64, rtt_ms: Option<f64>) -> MediaStats {
        let mut q = MediaQuality::default();
        q.packets_expected = expected;
        q.packets_received = (expected as i64 - lost) as u64;
        q.packets_lost = lost;
        q.loss_pct = lost.max(0) as f64 * 100.0 / expected.max(1) as f64;
        q.jitter_ms = jitter_ms;
        q.rtt_ms = rtt_ms;
        let mut m = MediaStats::default();
        m.quality = q;
        m
    }

    fn buffer(target_ms: u32, late: u64) -> JitterStats {
        let mut j = JitterStats::default();
        j.target_ms = target_ms;
        j.late = late;
        j
    }

    #[test]
    fn stored_units_and_mos_follow_the_measurements() {
        let mut m = media(1000, 30, 4.375, Some(80.0));
        m.quality.remote_packets_lost = Some(2);
        m.quality.remote_loss_pct = Some(0.2);
        m.quality.remote_jitter_ms = Some(1.5);
        let q = call_quality(&store::CallId::new("c1"), "PCMU", &m, &buffer(60, 0), 5_000).unwrap();
        assert_eq!((q.call_id.as_str(), q.codec.as_str()), ("c1", "PCMU"));
        assert_eq!(
            (q.packets_expected, q.packets_received, q.packets_lost),
            (1000, 970, 30)
        );
        assert_eq!(q.loss_bp, 300);
        assert_eq!(q.jitter_us, 4_375);
        assert_eq!(q.rtt_us, Some(80_000));
        assert_eq!(
            (q.remote_packets_lost, q.remote_loss_bp, q.remote_jitter_us),
            (Some(2), Some(20), Some(1_500))
        );
        assert_eq!(q.recorded_at, 5_000);
        // 3 % loss, 40 + 60 + 20 ms one way: the estimator's own answer, rounded.
        let expected = estimate_mos(120.0, 0.03, CodecImpairment::G711_PLC);
        assert_eq!(q.mos_x100, (expected * 100.0).round() as i64);
    }

    #[test]
    fn late_packets_and_delay_lower_the_mos() {
        let clean = call_quality(
            &store::CallId::new("c"),
            "PCMU",
            &media(1000, 0, 1.0, None),
            &buffer(40, 0),
            0,
        )
        .unwrap();
        let late = call_quality(
            &store::CallId::new("c"),
            "PCMU",
            &media(1000, 0, 1.0, None),
            &buffer(40, 50),
            0,
        )
        .unwrap();
        let far = call_quality(
            &store::CallId::new("c"),
            "PCMU",
            &media(1000, 0, 1.0, Some(600.0)),
            &buffer(40, 0),
            0,
        )
        .unwrap();
        assert!(clean.mos_x100 > 430, "{clean:?}");
        assert!(late.mos_x100 < clean.mos_x100 - 40, "{late:?}");
        assert_eq!(late.loss_bp, 0, "late packets are not network loss");
        assert!(far.mos_x100 < clean.mos_x100 - 30, "{far:?}");
        // Without the buffer's target, twice the jitter stands in for it.
        let jittery = call_quality(
            &store::CallId::new("c"),
            "PCMU",
            &media(1000, 0, 100.0, None),
            &buffer(0, 0),
            0,
        )
        .unwrap();
        let expected = estimate_mos(220.0, 0.0, CodecImpairment::G711_PLC);
        assert_eq!(jittery.mos_x100, (expected * 100.0).round() as i64);
    }

    #[test]
    fn no_rtp_means_no_quality_row() {
        assert_eq!(
            call_quality(
                &store::CallId::new("c"),
                "PCMU",
                &MediaStats::default(),
                &buffer(40, 0),
                0
            ),
            None
        );
        // Duplicates can make the loss negative: stored as measured, MOS as if none lost.
        let dup = call_quality(
            &store::CallId::new("c"),
            "PCMA",
            &media(100, -3, 0.0, None),
            &buffer(40, 0),
            0,
        )
        .unwrap();
        assert_eq!((dup.packets_lost, dup.loss_bp), (-3, 0));
        assert!(dup.mos_x100 > 430);
    }
}
