//! The per-frame hot paths allocate nothing once warmed up: a counting global allocator checks
//! VADs, the endpointer and the codecs over a few seconds of speech. (Silero is the exception
//! and is measured, not asserted: ONNX Runtime and `ort` allocate small run bookkeeping inside
//! every 32 ms inference; our own buffers are preallocated.)

mod support {
    #[path = "../support/vad_eval.rs"]
    pub mod vad_eval;
}

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use audio::codec::{Codec, CodecKind};
use audio::endpoint::{EndpointConfig, Endpointer, TurnMode};
use audio::vad::{Vad, VadKind};
use support::vad_eval;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f`.
fn count(f: impl FnOnce()) -> usize {
    let before = ALLOCS.load(Ordering::Relaxed);
    f();
    ALLOCS.load(Ordering::Relaxed) - before
}

fn speech(rate_khz: u32) -> Vec<i16> {
    audio::wav::read_wav(vad_eval::data_dir().join(format!("hesitation_{rate_khz}k.wav")))
        .expect("fixture")
        .samples
}

// One test function: the counter is process-wide, and tests in one binary run in parallel.
#[test]
fn hot_paths_do_not_allocate_per_frame() {
    for rate_khz in [8u32, 16] {
        let pcm = speech(rate_khz);
        let n = rate_khz as usize * 20;
        let frames: Vec<&[i16]> = pcm.chunks_exact(n).collect();
        let (warm, rest) = frames.split_at(5);

        for kind in vad_eval::kinds() {
            let mut vad: Box<dyn Vad> = vad_eval::build(kind, rate_khz * 1000);
            let mut ep = Endpointer::new(EndpointConfig::default(), TurnMode::FreeSpeech);
            for f in warm {
                let v = vad.is_speech(f).expect("frame");
                ep.handle_frame(v, 20);
                while ep.poll_event().is_some() {}
            }
            let allocs = count(|| {
                for f in rest {
                    let v = vad.is_speech(f).expect("frame");
                    ep.handle_frame(v, 20);
                    if !v {
                        ep.handle_transcript("I'm calling about");
                    }
                    ep.handle_dtmf('5');
                    while ep.poll_event().is_some() {}
                }
            });
            let per_frame = allocs as f64 / rest.len() as f64;
            println!("{rate_khz}k {kind} + endpointer: {per_frame:.2} allocations per 20 ms frame");
            if kind != VadKind::Silero {
                assert_eq!(allocs, 0, "{rate_khz}k {kind}");
            }
        }

        for kind in CodecKind::ALL {
            let Ok(mut codec) = kind.build(rate_khz * 1000) else {
                continue;
            };
            let mut payload = vec![0u8; codec.max_payload_len()];
            let mut out = vec![0i16; n];
            let mut step = |codec: &mut Box<dyn Codec>, f: &[i16], i: usize| {
                let len = codec.encode(f, &mut payload).expect("encode");
                if i % 10 == 3 {
                    codec
                        .conceal(Some(&payload[..len]), &mut out)
                        .expect("conceal");
                } else {
                    codec.decode(&payload[..len], &mut out).expect("decode");
                }
            };
            for (i, f) in warm.iter().enumerate() {
                step(&mut codec, f, i);
            }
            let allocs = count(|| {
                for (i, f) in rest.iter().enumerate() {
                    step(&mut codec, f, i);
                }
            });
            println!(
                "{rate_khz}k {kind}: {allocs} allocations in {} frames",
                rest.len()
            );
            assert_eq!(allocs, 0, "{rate_khz}k {kind}");
        }
    }
}
