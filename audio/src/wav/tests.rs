use super::*;
use std::io::Cursor;

fn encode(
    spec: hound::WavSpec,
    write: impl FnOnce(&mut hound::WavWriter<&mut Cursor<Vec<u8>>>),
) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
    write(&mut w);
    w.finalize().unwrap();
    buf.into_inner()
}

fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
    let sample_format = if float {
        hound::SampleFormat::Float
    } else {
        hound::SampleFormat::Int
    };
    hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format,
    }
}

#[test]
fn s16_mono_roundtrip() {
    let samples: Vec<i16> = (0..1000)
        .map(|i| (i * 37 % 65_536 - 32_768) as i16)
        .collect();
    let mut buf = Cursor::new(Vec::new());
    write_wav_to(&mut buf, 8000, &samples).unwrap();
    let audio = read_wav_from(Cursor::new(buf.into_inner())).unwrap();
    assert_eq!(
        audio,
        WavAudio {
            sample_rate: 8000,
            samples
        }
    );
    assert_eq!(audio.duration_ms(), 125);
}

#[test]
fn file_roundtrip_and_missing_file() {
    let dir = std::env::temp_dir().join(format!("audio-wav-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.wav");
    write_wav(&path, 16_000, &[1, 2, 3]).unwrap();
    assert_eq!(read_wav(&path).unwrap().samples, [1, 2, 3]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(read_wav(&path), Err(WavError::Open { .. })));
}

#[test]
fn stereo_float_is_mixed_to_mono() {
    let data = encode(spec(2, 44_100, 32, true), |w| {
        for (l, r) in [(0.5f32, 0.5f32), (1.0, -1.0), (0.25, 0.75), (2.0, 2.0)] {
            w.write_sample(l).unwrap();
            w.write_sample(r).unwrap();
        }
    });
    let audio = read_wav_from(Cursor::new(data)).unwrap();
    assert_eq!(audio.sample_rate, 44_100);
    assert_eq!(audio.samples, [16_384, 0, 16_384, 32_767]);
}

#[test]
fn integer_widths_are_scaled_to_16_bits() {
    let d24 = encode(spec(1, 48_000, 24, false), |w| {
        w.write_sample(0x7F_FFFF).unwrap();
        w.write_sample(-0x80_0000).unwrap();
        w.write_sample(256).unwrap();
    });
    assert_eq!(
        read_wav_from(Cursor::new(d24)).unwrap().samples,
        [32_767, -32_768, 1]
    );
    let d8 = encode(spec(1, 22_050, 8, false), |w| {
        w.write_sample(127i8).unwrap();
        w.write_sample(-128i8).unwrap();
    });
    assert_eq!(
        read_wav_from(Cursor::new(d8)).unwrap().samples,
        [32_512, -32_768]
    );
    let d16s = encode(spec(2, 24_000, 16, false), |w| {
        for s in [100i16, 300, -7, -9] {
            w.write_sample(s).unwrap();
        }
    });
    assert_eq!(read_wav_from(Cursor::new(d16s)).unwrap().samples, [200, -8]);
}

#[test]
fn unsupported_layouts_are_errors() {
    let three = encode(spec(3, 8000, 16, false), |w| {
        for _ in 0..3 {
            w.write_sample(0i16).unwrap();
        }
    });
    assert!(matches!(
        read_wav_from(Cursor::new(three)),
        Err(WavError::UnsupportedChannels { channels: 3 })
    ));
    assert!(matches!(
        write_wav_to(Cursor::new(Vec::new()), 0, &[0]),
        Err(WavError::UnsupportedRate(0))
    ));
}

#[test]
fn malformed_input_is_an_error() {
    assert!(matches!(
        read_wav_from(Cursor::new(Vec::new())),
        Err(WavError::Format(_))
    ));
    assert!(read_wav_from(Cursor::new(b"RIFF\x10\0\0\0WAVEjunkjunkjunk".to_vec())).is_err());
    assert!(read_wav_from(Cursor::new(vec![0u8; 1000])).is_err());
    // Truncated in the middle of the data chunk: an error, not a short read passed off as whole.
    let mut good = Cursor::new(Vec::new());
    write_wav_to(&mut good, 8000, &[1000; 400]).unwrap();
    let mut bytes = good.into_inner();
    bytes.truncate(bytes.len() - 101);
    assert!(read_wav_from(Cursor::new(bytes)).is_err());
}

#[test]
fn corrupted_files_never_panic() {
    // Deterministic mutation fuzzing of a valid file: header bytes are where parsers break.
    let mut good = Cursor::new(Vec::new());
    write_wav_to(&mut good, 8000, &[1234; 64]).unwrap();
    let good = good.into_inner();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let mut bytes = good.clone();
        for _ in 0..1 + next() % 4 {
            let pos = (next() % 48) as usize;
            bytes[pos] = next() as u8;
        }
        if next() % 4 == 0 {
            bytes.truncate((next() % bytes.len() as u64) as usize);
        }
        let result = std::panic::catch_unwind(|| read_wav_from(Cursor::new(bytes.clone())));
        assert!(
            result.is_ok(),
            "panic on {:02x?}",
            &bytes[..bytes.len().min(48)]
        );
    }
}
