//! Opus through the [`Codec`] interface on real speech: round-trip quality, packet loss with and
//! without in-band FEC, and hostile payloads. `--nocapture` prints the numbers.
//!
//! Quality is measured as SNR after aligning for the codec delay (found by cross-correlation).
//! Opus is a perceptual codec, so waveform SNR is a conservative measure: what it catches is a
//! broken pipeline (wrong rate, misaligned frames, lost concealment), not subtle quality.

use audio::codec::{Codec, CodecError, CodecKind};
use audio::opus_codec::{OpusCodec, OpusConfig};

fn clip(rate_khz: u32) -> Vec<i16> {
    let path = format!(
        "{}/tests/data/balance_question_{rate_khz}k.wav",
        env!("CARGO_MANIFEST_DIR")
    );
    audio::wav::read_wav(path).expect("fixture").samples
}

/// Encodes `pcm` frame by frame; `lost(i)` drops packet `i`, which the decoder conceals (with the
/// next packet for FEC when `use_fec`). Returns the decoded signal and the payload sizes.
fn run(
    codec: &mut dyn Codec,
    pcm: &[i16],
    lost: impl Fn(usize) -> bool,
    use_fec: bool,
) -> (Vec<i16>, Vec<usize>) {
    let n = codec.frame_len();
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut buf = vec![0u8; codec.max_payload_len()];
    for frame in pcm.chunks_exact(n) {
        let len = codec.encode(frame, &mut buf).expect("encode");
        packets.push(buf[..len].to_vec());
    }
    let mut out = vec![0i16; n];
    let mut decoded = Vec::with_capacity(pcm.len());
    for (i, p) in packets.iter().enumerate() {
        let written = if lost(i) {
            let next = packets.get(i + 1).filter(|_| use_fec && !lost(i + 1));
            codec
                .conceal(next.map(Vec::as_slice), &mut out)
                .expect("conceal")
        } else {
            codec.decode(p, &mut out).expect("decode")
        };
        assert_eq!(written, n);
        decoded.extend_from_slice(&out[..written]);
    }
    (decoded, packets.iter().map(Vec::len).collect())
}

/// SNR in dB of `decoded` against `reference`, at the lag (0..max_lag) that correlates best.
fn snr_db(reference: &[i16], decoded: &[i16], max_lag: usize) -> (f64, usize) {
    let corr = |lag: usize| -> f64 {
        reference
            .iter()
            .zip(&decoded[lag..])
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum()
    };
    let lag = (0..max_lag)
        .max_by(|&a, &b| corr(a).total_cmp(&corr(b)))
        .unwrap_or(0);
    let (mut sig, mut noise) = (0.0, 0.0);
    for (&a, &b) in reference.iter().zip(&decoded[lag..]) {
        sig += f64::from(a).powi(2);
        noise += (f64::from(a) - f64::from(b)).powi(2);
    }
    (10.0 * (sig / noise.max(1.0)).log10(), lag)
}

#[test]
fn roundtrip_snr_on_speech() {
    for (rate_khz, min_snr) in [(16u32, 10.0), (8, 10.0)] {
        let pcm = clip(rate_khz);
        let mut codec = CodecKind::Opus.build(rate_khz * 1000).expect("opus");
        assert_eq!(codec.kind(), CodecKind::Opus);
        assert_eq!(codec.frame_len(), rate_khz as usize * 20);
        let (decoded, sizes) = run(codec.as_mut(), &pcm, |_| false, false);
        let (snr, lag) = snr_db(&pcm, &decoded, rate_khz as usize * 20);
        let mean_bytes = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        println!(
            "opus {rate_khz} kHz: SNR {snr:.1} dB at lag {lag} samples, mean payload {mean_bytes:.1} B/20 ms ({:.1} kbit/s)",
            mean_bytes * 8.0 * 50.0 / 1000.0
        );
        assert!(snr >= min_snr, "{rate_khz} kHz: SNR {snr:.1} dB");
        assert!(
            mean_bytes < 80.0,
            "{rate_khz} kHz: {mean_bytes} B per frame"
        );
    }
}

#[test]
fn packet_loss_is_concealed_and_fec_helps() {
    for rate_khz in [16u32, 8] {
        let pcm = clip(rate_khz);
        let rate = rate_khz * 1000;
        let max_lag = rate_khz as usize * 20;
        let lossless = {
            let mut c = OpusCodec::new(rate, OpusConfig::default()).expect("opus");
            snr_db(&pcm, &run(&mut c, &pcm, |_| false, false).0, max_lag).0
        };
        // Every 7th packet lost (14 %, single losses: what FEC repairs).
        let lost = |i: usize| i % 7 == 3;
        let mut plc_only = OpusCodec::new(rate, OpusConfig::default()).expect("opus");
        let (decoded, _) = run(&mut plc_only, &pcm, lost, false);
        let (plc_snr, _) = snr_db(&pcm, &decoded, max_lag);
        let mut with_fec = OpusCodec::new(rate, OpusConfig::default()).expect("opus");
        let (decoded, _) = run(&mut with_fec, &pcm, lost, true);
        let (fec_snr, _) = snr_db(&pcm, &decoded, max_lag);
        println!(
            "opus {rate_khz} kHz, 14 % loss: SNR lossless {lossless:.1} dB, PLC only {plc_snr:.1} dB, with FEC {fec_snr:.1} dB"
        );
        assert!(
            plc_snr > 0.0,
            "{rate_khz} kHz: concealment fails: {plc_snr}"
        );
        assert!(
            fec_snr > plc_snr + 3.0,
            "{rate_khz} kHz: FEC should recover much more than PLC: {fec_snr} vs {plc_snr}"
        );
    }

    // Long bursts, losses at the very start, FEC asked of an encoder that sent none: no panics,
    // right lengths.
    let mut no_fec = OpusCodec::new(8000, OpusConfig::default().with_fec(false)).expect("opus");
    let pcm8 = clip(8);
    let (decoded, _) = run(&mut no_fec, &pcm8, |i| i < 3 || (20..35).contains(&i), true);
    assert_eq!(decoded.len(), pcm8.len() / 160 * 160);
}

#[test]
fn hostile_payloads_are_errors_not_panics() {
    let mut c = CodecKind::Opus.build(16_000).expect("opus");
    let mut out = vec![0i16; 320];
    assert!(c.decode(&[], &mut out).is_err());
    let mut seed = 0x1234_5678_u32;
    for len in [1usize, 2, 3, 7, 60, 400, 1275, 1500, 4000] {
        for _ in 0..50 {
            let payload: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            // Either decodes to at most the buffer, or a typed error.
            if let Ok(n) = c.decode(&payload, &mut out) {
                assert!(n <= out.len());
            }
            let _ = c
                .conceal(Some(&payload), &mut out)
                .expect("conceal never fails");
        }
    }
    // A valid 60 ms packet into a 20 ms buffer: a size error.
    let mut enc = OpusCodec::new(16_000, OpusConfig::default()).expect("opus");
    let mut pkt = vec![0u8; OpusCodec::MAX_PACKET];
    let len = enc
        .encode(&vec![100i16; 960], &mut pkt)
        .expect("60 ms frame");
    assert!(matches!(
        c.decode(&pkt[..len], &mut out),
        Err(CodecError::BufferTooSmall(_))
    ));
    assert!(matches!(
        c.conceal(None, &mut [0i16; 100]),
        Err(CodecError::BufferTooSmall(_))
    ));
}

#[test]
fn settings_and_validation() {
    assert!(matches!(
        OpusCodec::new(44_100, OpusConfig::default()),
        Err(CodecError::UnsupportedRate { rate: 44_100, .. })
    ));
    let mut c = OpusCodec::new(
        8000,
        OpusConfig::default()
            .with_bitrate(12_000)
            .with_complexity(10),
    )
    .expect("opus");
    assert_eq!(c.config().bitrate_bps, Some(12_000));
    assert!(c.lookahead() > 0);
    for bad in [0usize, 1, 100, 159, 161, 640] {
        assert!(
            matches!(
                c.encode(&vec![0; bad], &mut [0u8; 1275]),
                Err(CodecError::BadFrameLength { .. })
            ),
            "{bad}"
        );
    }
    // No room at all for a packet is libopus's error, typed.
    let r = c.encode(&[1000i16; 160], &mut []);
    assert!(matches!(r, Err(CodecError::Opus { .. })), "{r:?}");
    c.reset();
    fn is_send<T: Send>(_: &T) {}
    is_send(&c);
    is_send(&CodecKind::Opus.build(16_000).expect("opus"));
}
