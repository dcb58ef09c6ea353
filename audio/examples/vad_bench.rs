//! Prints VAD accuracy on the labelled set and CPU cost per frame, for each detector and rate.
//!
//! ```text
//! scripts/vad-models.sh                                       # Silero model + ONNX Runtime
//! cargo run -p audio --release --example vad_bench            # defaults, as shipped
//! cargo run -p audio --release --example vad_bench -- --sweep # tuning grid
//! ```
//!
//! CPU time is the time spent inside `Vad::is_speech` on one thread, summed over the set and
//! divided by the number of frames (best of 3 passes, to shed scheduler noise on a shared box).
//! After the table on the set as labelled comes a stress table: the same set with extra white
//! noise at -35 and -30 dBFS (seeded), 20 ms frames. Silero needs `scripts/vad-models.sh`
//! (`AGENT_SKIP_MODEL_TESTS=1` leaves it out).
//!
//! Then endpointing ([`audio::endpoint`], default config): false cut-offs and mean end-of-turn
//! delay on the set and the fixture clips, per VAD and rate, for modes set per flow node with
//! simulated interim transcripts arriving 0/150/300 ms after each pause, free speech with and
//! without transcripts, and a fixed 500 ms silence rule for comparison. `--sweep` adds a sweep
//! of the transcript-free waits.

#[path = "../tests/support/endpoint_eval.rs"]
mod endpoint_eval;
#[path = "../tests/support/vad_eval.rs"]
mod vad_eval;

use std::time::{Duration, Instant};

use audio::G711;
use audio::codec::CodecKind;
use audio::endpoint::{EndpointConfig, ModeWaits, TurnMode};
use audio::jitter::{JitterBuffer, JitterConfig, Playout};
use audio::plc::Plc;
use audio::resample::Resampler;
use audio::vad::{
    EarshotVad, SileroVad, SpeechDetectorConfig, Vad, VadKind, WebRtcMode, WebRtcVad,
};
use endpoint_eval::{Modes, Outcome, Sim, Transcripts};
use vad_eval::Label;

fn main() {
    let sweep = std::env::args().any(|a| a == "--sweep");
    let sets = [vad_eval::load_set("8k"), vad_eval::load_set("16k")];
    if sweep {
        run_sweep(&sets);
        endpoint_sweep();
        return;
    }
    media_costs(&sets[0].audio.samples);
    codec_costs(&sets);
    let config = SpeechDetectorConfig::default();
    println!(
        "SpeechDetector: min_speech_ms={} hangover_ms={}",
        config.min_speech_ms, config.hangover_ms
    );
    for set in &sets {
        let rate = set.audio.sample_rate;
        for kind in vad_eval::kinds() {
            for frame_ms in [10u32, 20, 30] {
                let mut best = Duration::MAX;
                let mut score = None;
                let mut frames = 0;
                for _ in 0..3 {
                    let mut vad = vad_eval::build(kind, rate);
                    let run = vad_eval::run(vad.as_mut(), config, &set.audio.samples, frame_ms);
                    best = best.min(run.vad_time);
                    frames = run.voiced.len();
                    score = Some(vad_eval::score(&set.labels, &run));
                }
                let per_frame = best.as_secs_f64() / frames as f64;
                // Normalise to a 20 ms frame so the frame sizes compare.
                let per_20ms = per_frame * 20.0 / f64::from(frame_ms);
                println!(
                    "{:>3} {:<8} {frame_ms:>2} ms frames: {:6.1} µs/frame = {:6.1} µs per 20 ms ({:.3} % of a core) | {}",
                    set.name,
                    kind.name(),
                    per_frame * 1e6,
                    per_20ms * 1e6,
                    per_20ms / 0.020 * 100.0,
                    score.map(|s| s.summary()).unwrap_or_default(),
                );
            }
        }
    }
    for set in &sets {
        for dbfs in [-35.0, -30.0] {
            let noisy = vad_eval::with_noise(&set.audio.samples, dbfs, 7);
            for kind in vad_eval::kinds() {
                let mut vad = vad_eval::build(kind, set.audio.sample_rate);
                let run = vad_eval::run(vad.as_mut(), config, &noisy, 20);
                println!(
                    "{:>3} {:<8} +noise {dbfs} dBFS: {}",
                    set.name,
                    kind.name(),
                    vad_eval::score(&set.labels, &run).summary()
                );
            }
        }
    }
    endpoint_report();
}

/// Every tuning combination, 20 ms frames; decisions are computed once per VAD setting and
/// replayed through each detector setting.
fn run_sweep(sets: &[vad_eval::LabelledSet]) {
    for set in sets {
        let rate = set.audio.sample_rate;
        let mut vads: Vec<(String, Box<dyn Vad>)> = Vec::new();
        for t in [0.2f32, 0.3, 0.4, 0.5, 0.6, 0.7] {
            vads.push((
                format!("earshot t={t}"),
                Box::new(EarshotVad::with_threshold(rate, t).expect("earshot")),
            ));
        }
        for mode in [
            WebRtcMode::Quality,
            WebRtcMode::LowBitrate,
            WebRtcMode::Aggressive,
            WebRtcMode::VeryAggressive,
        ] {
            vads.push((
                format!("webrtc {mode:?}"),
                Box::new(WebRtcVad::new(rate, mode).expect("webrtc")),
            ));
        }
        if let Some(paths) = vad_eval::silero_paths() {
            for t in [0.3f32, 0.4, 0.5, 0.6, 0.7] {
                vads.push((
                    format!("silero t={t}"),
                    Box::new(SileroVad::with_threshold(rate, &paths, t).expect("silero")),
                ));
            }
        }
        for (name, mut vad) in vads {
            let (voiced, _) = vad_eval::decide(vad.as_mut(), &set.audio.samples, 20);
            for min_speech in [0u32, 40, 60, 100, 150] {
                for hangover in [100u32, 200, 300, 500] {
                    let config = SpeechDetectorConfig::new(min_speech, hangover);
                    let run = vad_eval::Run {
                        segments: vad_eval::detect(&voiced, 20, config),
                        voiced: voiced.clone(),
                        frame_ms: 20,
                        vad_time: Duration::ZERO,
                    };
                    let s = vad_eval::score(&set.labels, &run);
                    println!(
                        "{:>3} {name:<20} min={min_speech:>3} hang={hangover:>3} | {}",
                        set.name,
                        s.summary()
                    );
                }
            }
        }
    }
}

/// Per-20 ms-frame cost of the non-VAD media steps on the 8 kHz set: receive (jitter buffer +
/// µ-law decode + PLC bookkeeping + 8 → 16 kHz) and send (16 → 8 kHz + µ-law encode). Best of
/// 3 passes; the jitter buffer runs in simulated time.
fn media_costs(samples_8k: &[i16]) {
    let mut ulaw = vec![0u8; samples_8k.len()];
    G711::MuLaw
        .encode(samples_8k, &mut ulaw)
        .expect("sizes match");
    let frames = samples_8k.len() / 160;
    let mut best_rx = Duration::MAX;
    let mut best_tx = Duration::MAX;
    for _ in 0..3 {
        let mut up = Resampler::new(8000, 16_000).expect("resampler");
        let mut down = Resampler::new(16_000, 8000).expect("resampler");
        let mut pcm8 = [0i16; 160];
        let mut pcm16: Vec<i16> = Vec::with_capacity(up.max_output_len(160));
        let mut back8: Vec<i16> = Vec::with_capacity(down.max_output_len(320));
        let mut code = [0u8; 160];
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let mut plc = Plc::new(8000);
        let t0 = Instant::now();
        let (mut rx, mut tx) = (Duration::ZERO, Duration::ZERO);
        for (i, frame) in ulaw.chunks_exact(160).enumerate() {
            let at = t0 + Duration::from_millis(i as u64 * 20);
            let t = Instant::now();
            jb.push(at, i as u16, i as u32 * 160, frame);
            match jb.pop(at + Duration::from_millis(40)) {
                Playout::Packet { payload, .. } => {
                    G711::MuLaw.decode(payload, &mut pcm8).expect("sizes match");
                    plc.good_frame(&mut pcm8);
                }
                _ => plc.conceal(&mut pcm8),
            }
            pcm16.clear();
            up.process(&pcm8, &mut pcm16).expect("resample");
            rx += t.elapsed();
            let t = Instant::now();
            back8.clear();
            down.process(&pcm16, &mut back8).expect("resample");
            G711::MuLaw.encode(&back8, &mut code).expect("sizes match");
            tx += t.elapsed();
        }
        best_rx = best_rx.min(rx);
        best_tx = best_tx.min(tx);
    }
    let per = |d: Duration| d.as_secs_f64() / frames as f64 * 1e6;
    println!(
        "media per 20 ms frame: rx (jitter + µ-law decode + PLC + 8->16 kHz) {:.1} µs, \
         tx (16->8 kHz + µ-law encode) {:.1} µs",
        per(best_rx),
        per(best_tx)
    );
}

/// Per-frame decisions of one VAD over the set and each fixture clip at one rate.
fn endpoint_cases(kind: VadKind, rate_khz: u32, t: &Transcripts) -> Vec<(Vec<bool>, Vec<Label>)> {
    let set = vad_eval::load_set(&format!("{rate_khz}k"));
    let mut vad = vad_eval::build(kind, set.audio.sample_rate);
    let (voiced, _) = vad_eval::decide(vad.as_mut(), &set.audio.samples, 20);
    let mut cases = vec![(voiced, set.labels)];
    for name in t.names() {
        let (samples, rate, label) = endpoint_eval::fixture_as_set(&name, rate_khz, 4000);
        let mut vad = vad_eval::build(kind, rate);
        let (voiced, _) = vad_eval::decide(vad.as_mut(), &samples, 20);
        cases.push((voiced, vec![label]));
    }
    cases
}

fn simulate_all(cases: &[(Vec<bool>, Vec<Label>)], sim: Sim, t: &Transcripts) -> Outcome {
    let mut all = Outcome::default();
    for (voiced, labels) in cases {
        all.merge(endpoint_eval::simulate(voiced, 20, labels, t, sim));
    }
    all
}

fn endpoint_report() {
    let t = Transcripts::load();
    let config = EndpointConfig::default();
    let fixed_500 = {
        let w = ModeWaits::new(500, 500, 500, 500);
        EndpointConfig::default()
            .with_waits(TurnMode::FreeSpeech, w)
            .with_waits(TurnMode::YesNo, w)
            .with_waits(TurnMode::Digits, w)
    };
    println!(
        "endpointing (set + 11 fixture clips; delay from labelled speech end, in brackets from the last voiced frame):"
    );
    for kind in vad_eval::kinds() {
        for rate_khz in [8u32, 16] {
            let cases = endpoint_cases(kind, rate_khz, &t);
            let scenarios = [
                (
                    "per node, STT +0 ms",
                    Sim {
                        config,
                        modes: Modes::PerNode,
                        stt_latency_ms: Some(0),
                    },
                ),
                (
                    "per node, STT +150 ms",
                    Sim {
                        config,
                        modes: Modes::PerNode,
                        stt_latency_ms: Some(150),
                    },
                ),
                (
                    "per node, STT +300 ms",
                    Sim {
                        config,
                        modes: Modes::PerNode,
                        stt_latency_ms: Some(300),
                    },
                ),
                (
                    "free, STT +150 ms",
                    Sim {
                        config,
                        modes: Modes::Free,
                        stt_latency_ms: Some(150),
                    },
                ),
                (
                    "free, no transcripts",
                    Sim {
                        config,
                        modes: Modes::Free,
                        stt_latency_ms: None,
                    },
                ),
                (
                    "fixed 500 ms rule",
                    Sim {
                        config: fixed_500,
                        modes: Modes::Free,
                        stt_latency_ms: None,
                    },
                ),
            ];
            for (name, sim) in scenarios {
                let o = simulate_all(&cases, sim, &t);
                let per_mode: Vec<String> = TurnMode::ALL
                    .iter()
                    .filter_map(|&m| {
                        let (end, voiced, n) = o.mean_delays(Some(m));
                        (n > 0).then(|| format!("{m} {end:.0} ({voiced:.0})"))
                    })
                    .collect();
                println!(
                    "{rate_khz:>2}k {:<8} {name:<22} | {} | {}",
                    kind.name(),
                    o.summary(),
                    per_mode.join(", ")
                );
            }
        }
    }
}

/// The transcript-free waits: normal and short-utterance wait, and what counts as short.
fn endpoint_sweep() {
    let t = Transcripts::load();
    for kind in vad_eval::kinds() {
        let cases: Vec<_> = [8u32, 16]
            .into_iter()
            .flat_map(|r| endpoint_cases(kind, r, &t))
            .collect();
        for normal in [600u32, 700, 900, 1100] {
            for short in [700u32, 1100, 1400, 1600] {
                for short_turn in [1200u32, 1500, 2000] {
                    let d = EndpointConfig::default();
                    let w = d.free_speech;
                    let mut config = d.with_waits(
                        TurnMode::FreeSpeech,
                        ModeWaits::new(w.complete_ms, w.open_ms, w.incomplete_ms, normal)
                            .with_short_no_transcript(short),
                    );
                    config.short_turn_ms = short_turn;
                    let sim = Sim {
                        config,
                        modes: Modes::Free,
                        stt_latency_ms: None,
                    };
                    let o = simulate_all(&cases, sim, &t);
                    println!(
                        "{:<8} no transcript: normal {normal:>4} short {short:>4} (< {short_turn} ms) | {}",
                        kind.name(),
                        o.summary()
                    );
                }
            }
        }
    }
}

/// Per-20 ms-frame cost of each codec (encode + decode, and a concealed frame) on the set, and
/// the mean payload. Best of 3 passes.
fn codec_costs(sets: &[vad_eval::LabelledSet]) {
    for set in sets {
        let rate = set.audio.sample_rate;
        for kind in CodecKind::ALL {
            let Ok(mut codec) = kind.build(rate) else {
                continue; // G.711 is 8 kHz only
            };
            let n = codec.frame_len();
            let mut payload = vec![0u8; codec.max_payload_len()];
            let mut pcm = vec![0i16; n];
            let (mut best_enc, mut best_dec, mut best_plc) =
                (Duration::MAX, Duration::MAX, Duration::MAX);
            let mut bytes = 0usize;
            let frames = set.audio.samples.len() / n;
            for _ in 0..3 {
                codec.reset();
                let (mut enc, mut dec, mut plc) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
                bytes = 0;
                for (i, frame) in set.audio.samples.chunks_exact(n).enumerate() {
                    let t = Instant::now();
                    let len = codec.encode(frame, &mut payload).expect("encode");
                    enc += t.elapsed();
                    bytes += len;
                    let t = Instant::now();
                    if i % 50 == 25 {
                        codec
                            .conceal(Some(&payload[..len]), &mut pcm)
                            .expect("conceal");
                        plc += t.elapsed();
                    } else {
                        codec.decode(&payload[..len], &mut pcm).expect("decode");
                        dec += t.elapsed();
                    }
                }
                best_enc = best_enc.min(enc);
                best_dec = best_dec.min(dec);
                best_plc = best_plc.min(plc);
            }
            let us = |d: Duration, k: usize| d.as_secs_f64() * 1e6 / k as f64;
            let concealed = frames.div_ceil(50);
            println!(
                "codec {kind:<4} {:>2} kHz: encode {:6.1} µs, decode {:5.1} µs, conceal {:5.1} µs per 20 ms; \
                 {:.1} B/frame = {:.1} kbit/s",
                rate / 1000,
                us(best_enc, frames),
                us(best_dec, frames - concealed),
                us(best_plc, concealed),
                bytes as f64 / frames as f64,
                bytes as f64 * 8.0 / frames as f64 * 50.0 / 1000.0,
            );
        }
    }
}
